#!/usr/bin/env bash
# Weft's main job, as far as it exists today.
#
# The cluster-in-a-box demo (three nodes in network namespaces, the
# controller reading examples/ manifests, pods created through weft-cni) will
# take this slot when switchd, tunnels and the controller land. Until then
# this script shows the foundation working on real packets:
#   1. installs what is missing (tshark, tcpdump) and builds weftctl;
#   2. makes two namespaces joined by a veth pair (names start with
#      weft-demo-<pid>, addresses only inside them), pings and opens a TCP
#      connection across them while tcpdump captures;
#   3. prints every captured packet's flow key in ovs-ofctl syntax with
#      `weftctl parse-pcap`, and the same for the VXLAN/Geneve captures in
#      ../shared/pcaps when they are present (inner flows with tunnel
#      fields);
#   4. removes everything it created.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces"
ensure_pkgs tshark:tshark tcpdump:tcpdump ip:iproute2 ping:iputils-ping python3:python3
ensure_toolchain
log "building weftctl (release)"
cargo build --release --locked -q -p weft-tools
WEFTCTL="$ROOT/target/release/weftctl"

ID="weft-demo-$$"
A="$ID-a"; B="$ID-b"
WORK=$(mktemp -d /tmp/weft-demo.XXXXXX)
cleanup() {
    [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "creating namespaces $A and $B joined by a veth pair"
ip netns add "$A"; ip netns add "$B"
ip link add wd-a netns "$A" type veth peer name wd-b netns "$B"
ip -n "$A" addr add 10.244.0.1/24 dev wd-a; ip -n "$B" addr add 10.244.0.2/24 dev wd-b
ip -n "$A" link set wd-a up; ip -n "$B" link set wd-b up
ip -n "$A" link set lo up; ip -n "$B" link set lo up

log "capturing ARP, ping and a TCP connection"
ip netns exec "$A" tcpdump -i wd-a -w "$WORK/demo.pcap" -U -q 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
ip netns exec "$A" ping -c 2 -i 0.2 10.244.0.2 >/dev/null
ip netns exec "$B" python3 -c '
import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.244.0.2", 8080)); s.listen(1); s.settimeout(5); c, _ = s.accept(); c.sendall(c.recv(100)); c.close()' &
SERVER=$!
sleep 0.5
ip netns exec "$A" python3 -c '
import socket; s = socket.create_connection(("10.244.0.2", 8080), timeout=5); s.sendall(b"hello weft"); s.recv(100); s.close()'
wait "$SERVER"
sleep 0.5
kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; TCPDUMP_PID=

log "flow keys of the captured packets (weftctl parse-pcap)"
"$WEFTCTL" parse-pcap "$WORK/demo.pcap"

PCAPS=${WEFT_PCAPS:-$ROOT/../shared/pcaps}
if [ -f "$PCAPS/tcpdump-geneve.pcap" ]; then
    log "a Geneve capture, decapsulated (first 4 packets)"
    "$WEFTCTL" parse-pcap "$PCAPS/tcpdump-geneve.pcap" | head -n 12
fi
log "done; namespaces removed"
