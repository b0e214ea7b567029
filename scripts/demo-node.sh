#!/usr/bin/env bash
# The node in a box (the first demo; the main job is now scripts/demo.sh,
# the cluster in a box).
#
# The full cluster in a box (three nodes joined by Geneve tunnels, the
# controller reading examples/ manifests, pods created through weft-cni)
# takes this slot when tunnels, the controller and the CNI plugin land. Today
# the demo runs one real node:
#   1. installs what is missing and builds weft-switchd and weftctl;
#   2. creates network namespaces weft-demo-<pid>-{node,pod1,pod2,pod3} (all
#      addresses inside them, nothing in the root namespace), with a veth
#      from each pod into the node;
#   3. starts weft-switchd in the node namespace and programs it with weftctl:
#      table 0 port security (each pod may only send from its own MAC), table
#      10 an ACL (TCP port 81 to pod3 is dropped), table 20 NORMAL switching;
#   4. runs a connectivity matrix with real packets (ping, TCP 80, TCP 81
#      between every pair) and prints expected vs observed;
#   5. shows dump-flows counters, an offline trace, then kill -9s switchd and
#      restarts it from its persisted state, and checks traffic again;
#   6. removes everything it created.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces"
ensure_pkgs ip:iproute2 ping:iputils-ping python3:python3 ethtool:ethtool tshark:tshark tcpdump:tcpdump
ensure_toolchain
log "building weft-switchd and weftctl (release)"
cargo build --release --locked -q -p weft-switchd -p weft-tools
BIN="$ROOT/target/release"
WEFTCTL="$BIN/weftctl"

ID="weft-demo-$$"
NODE="$ID-node"
WORK=$(mktemp -d /tmp/weft-demo.XXXXXX)
SOCK="$WORK/switchd.sock"
export WEFT_SOCKET="$SOCK"
SWITCHD_PID=
cleanup() {
    [ -n "$SWITCHD_PID" ] && kill "$SWITCHD_PID" 2>/dev/null || true
    for ns in "$NODE" "$ID-pod1" "$ID-pod2" "$ID-pod3"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

start_switchd() {
    "$BIN/weft-switchd" --netns "$NODE" --socket "$SOCK" --state-dir "$WORK/state" \
        >"$WORK/switchd.log" 2>&1 &
    SWITCHD_PID=$!
    for _ in $(seq 50); do [ -S "$SOCK" ] && "$WEFTCTL" show >/dev/null 2>&1 && return 0; sleep 0.1; done
    cat "$WORK/switchd.log" >&2
    die "weft-switchd did not come up"
}

log "creating the node and three pods (namespaces $ID-*)"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
for i in 1 2 3; do
    pod="$ID-pod$i"
    ip netns add "$pod"
    ip link add "p$i" netns "$NODE" type veth peer name eth0 netns "$pod"
    ip -n "$pod" link set eth0 address "02:00:00:00:00:0$i"
    ip -n "$pod" addr add "10.244.0.$i/24" dev eth0
    ip -n "$pod" link set eth0 up
    ip -n "$pod" link set lo up
    ip -n "$NODE" link set "p$i" up
    # AF_PACKET ports see frames as the pod's stack sends them: without
    # offloads, so checksums are complete and frames fit the MTU.
    ip netns exec "$pod" ethtool -K eth0 tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    # A TCP server on ports 80 and 81 in every pod.
    ip netns exec "$pod" python3 -c '
import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"weft\n"); c.close()
for p in (80, 81):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()' &
done

log "starting weft-switchd in $NODE"
start_switchd
for i in 1 2 3; do "$WEFTCTL" add-port "p$i" --type afpacket --ofport "$i" >/dev/null; done
cat > "$WORK/flows.txt" <<'FLOWS'
# table 0: port security, each pod sends only from its own MAC
table=0,priority=100,in_port=1,dl_src=02:00:00:00:00:01,actions=goto_table:10
table=0,priority=100,in_port=2,dl_src=02:00:00:00:00:02,actions=goto_table:10
table=0,priority=100,in_port=3,dl_src=02:00:00:00:00:03,actions=goto_table:10
table=0,priority=0,actions=drop
# table 10: ACL, pod3 does not accept TCP port 81
table=10,priority=100,tcp,nw_dst=10.244.0.3,tp_dst=81,actions=drop
table=10,priority=0,actions=goto_table:20
# table 20: a MAC-learning switch
table=20,priority=0,actions=NORMAL
FLOWS
"$WEFTCTL" add-flows "$WORK/flows.txt"
"$WEFTCTL" show

tcp_ok() { # FROM_POD DST_IP PORT
    ip netns exec "$1" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
sys.exit(0 if s.recv(16) == b"weft\n" else 1)' "$2" "$3" >/dev/null 2>&1
}

matrix() {
    local fails=0 total=0 from to want got kind
    printf '%-6s %-6s %-7s %-8s %-8s\n' from to check expected observed
    for from in 1 2 3; do
        for to in 1 2 3; do
            [ "$from" = "$to" ] && continue
            for kind in ping tcp/80 tcp/81; do
                want=allow
                [ "$to" = 3 ] && [ "$kind" = tcp/81 ] && want=deny
                case $kind in
                    ping) ip netns exec "$ID-pod$from" ping -c 1 -W 1 "10.244.0.$to" >/dev/null 2>&1 && got=allow || got=deny ;;
                    tcp/*) tcp_ok "$ID-pod$from" "10.244.0.$to" "${kind#tcp/}" && got=allow || got=deny ;;
                esac
                total=$((total + 1))
                if [ "$want" = "$got" ]; then mark=ok; else mark=FAIL; fails=$((fails + 1)); fi
                printf '%-6s %-6s %-7s %-8s %-8s %s\n' "pod$from" "pod$to" "$kind" "$want" "$got" "$mark"
            done
        done
    done
    echo "$((total - fails)) passed, $fails failed"
    [ "$fails" -eq 0 ]
}

log "connectivity matrix (real packets between the pod namespaces)"
matrix

log "a pod that spoofs its MAC is stopped by table 0"
ip -n "$ID-pod1" link set eth0 address 02:00:00:00:00:99
if ip netns exec "$ID-pod1" ping -c 1 -W 1 10.244.0.2 >/dev/null 2>&1; then
    die "spoofed MAC got through"
fi
echo "pod1 with MAC 02:00:00:00:00:99: ping to pod2 blocked, as expected"
ip -n "$ID-pod1" link set eth0 address 02:00:00:00:00:01

log "flow counters (weftctl dump-flows)"
"$WEFTCTL" dump-flows

log "why is TCP 81 to pod3 dropped? (weftctl trace --offline, the real pipeline)"
"$WEFTCTL" trace --offline --flows "$WORK/flows.txt" --ports 1-3 --in-port 1 \
    --flow 'tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:03,nw_src=10.244.0.1,nw_dst=10.244.0.3,tp_dst=81'

log "kill -9 weft-switchd and restart it from its persisted state"
kill -9 "$SWITCHD_PID"; wait "$SWITCHD_PID" 2>/dev/null || true
start_switchd
"$WEFTCTL" dump-flows --no-stats | head -n 3
echo "..."
matrix
log "done; removing everything the demo created"
