#!/usr/bin/env bash
# End-to-end forwarding benchmark: the same topology and the same load
# through each switch, in the same run, so the ratios mean something.
#
#   sudo benches/e2e/run.sh                 # full: 3 reps, 5 s loads, results committed
#   sudo benches/e2e/run.sh --quick         # 1 rep, 1 s loads, about a minute (plus build)
#   sudo benches/e2e/run.sh --check         # CI: debug build, tiny loads, checks that
#                                           # every scenario forwards and the report builds
#                                           # (of the two-node rows only 2node-weft-geneve)
#   options: --reps N  --duration S  --scenarios a,b,...  --out DIR  --no-build
#            --profile (also perf-record weft-switchd under the 64-byte load
#                       with afpacket and with afxdp ports, and
#                       both two-node weft-switchds under TCP x1)
#            --profile-only --out DIR (only that, into an existing results dir)
#
# Topology (per scenario, namespaces weft-bench-<pid>-{sw,p1,p2}):
#
#   p1: eth0 10.244.0.1 --veth--> sw-p1 ┐ switch under test ┌ sw-p2 <--veth-- eth0 10.244.0.2 :p2
#                                       └── in netns sw ────┘
#   (TAP scenarios: the switch opens tap devices in sw and moves their
#    netdevs into p1/p2; no veths.)
#
# Scenarios: bridge (Linux bridge), ovs-afpacket / ovs-tap (Open vSwitch
# userspace datapath, datapath_type=netdev, private ovsdb-server and
# ovs-vswitchd in a temp dir), weft-afpacket / weft-tap / weft-afxdp
# (weft-switchd; afxdp = AF_XDP copy mode on the veths, native XDP; the
# row fails if the ports fell back to AF_PACKET), and
# weft-afpacket-acl{10,1k,10k} (the same plus an ACL of /32 matches in five
# masks that the bench traffic probes and misses; see gen_acl). Both OVS
# and weft get the same two port-to-port flows; the bridge learns MACs.
#
# Two-node scenarios (2node-*): namespaces weft-bench-<pid>-{sw,n2,p1,p2},
# nodes sw (192.0.2.1) and n2 (192.0.2.2) joined by one underlay veth
# (eth0 <-> eth0), pod p1 behind sw and pod p2 behind n2 (pod MTU 1450):
#
#   p1 --veth-- [node sw: switch] eth0 ==underlay veth== eth0 [node n2: switch] --veth-- p2
#
#   2node-weft-geneve   weft-switchd per node: eth0 afpacket underlay,
#                       weft0 internal port with the node IP, set-underlay,
#                       flow-based geneve port (set_field:->tun_dst/tun_id)
#   2node-ovs-geneve    private ovs-vswitchd per node (datapath_type=netdev):
#                       br-int (pod port + flow-based geneve port) and
#                       br-phy (eth0, node IP on the br-phy internal port),
#                       as OVS's Documentation/howto/userspace-tunneling.rst
#   2node-kernel-vxlan  Linux kernel VXLAN (VNI 42, port 4789) + bridge per
#                       node: the kernel reference. This kernel has no Geneve
#                       module, so the kernel row is VXLAN (same 50-byte
#                       overhead over IPv4, no options), not Geneve.
# Both switches are pinned to CPU 1 (they share it; the sender is on CPU 0),
# and "switch CPU" is the sum over both switch processes. Ratios of
# two-node rows are against 2node-ovs-geneve (x OVS) and 2node-kernel-vxlan
# (the x bridge column).
#
# Loads, in this order per scenario:
#   pps   trafgen (netsniff-ng) in p1 sends 60-byte UDP frames (64 on the
#         wire with the FCS) to p2's MAC, 256 source ports, as fast as it
#         can; counted by p2's eth0 rx_packets over the window.
#   tcp1, tcp4   iperf3 with 1 and 4 streams p1 -> p2 (received rate).
#   rr    e2e-udprr: one 64-byte UDP request in flight, avg and p99 RTT.
# Each load records the switch process's CPU (utime+stime from
# /proc/PID/stat over the window; 100 = one core busy). The Linux bridge has
# no process: its work is softirq time in whichever task sends.
#
# Pinning: the sender is pinned to CPU 0 and the switch daemon to CPU 1
# (on machines with >= 2 CPUs) so placement is the same in every scenario.
# Offloads: the pod veths of AF_PACKET ports (OVS and weft) have TX
# checksum/TSO/GSO off, as both need without virtio-net headers; the
# bridge keeps the defaults (that is what its users run).
#
# Output: benches/results/<UTC date>-<host kind>/ with raw.csv (every
# measurement), machine.json, and from e2e-report: results.csv,
# results.json, table.md and chart.png. --check writes to a temp dir.
# Nothing asserts a time or a rate; --check fails only when a scenario
# does not forward at all or a tool fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
. scripts/lib.sh

MODE=full REPS=3 DUR=5 WARM=1 RR_COUNT=10000 OUT="" BUILD=1 PROFILE=0
SCENARIOS_DEFAULT="bridge,ovs-afpacket,ovs-tap,weft-afpacket,weft-tap,weft-afxdp,weft-afpacket-acl10,weft-afpacket-acl1k,weft-afpacket-acl10k,2node-kernel-vxlan,2node-ovs-geneve,2node-weft-geneve"
SCENARIOS=$SCENARIOS_DEFAULT
user_reps="" user_dur="" user_scen=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --check) MODE=check ;;
        --reps) user_reps=$2; shift ;;
        --duration) user_dur=$2; shift ;;
        --scenarios) SCENARIOS=$2 user_scen=1; shift ;;
        --out) OUT=$2; shift ;;
        --profile) PROFILE=1 ;;
        --profile-only) PROFILE=2 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $MODE in
    quick) REPS=1 DUR=1 WARM=0.5 RR_COUNT=2000 ;;
    check) REPS=1 DUR=1 WARM=0.2 RR_COUNT=200 ;;
esac
[ -n "$user_reps" ] && REPS=$user_reps
# CI (--check) runs one two-node row, weft's (a few seconds); the OVS and
# kernel two-node rows are set-up heavy and run in the full/quick modes.
[ "$MODE" = check ] && [ -z "$user_scen" ] && SCENARIOS=${SCENARIOS/2node-kernel-vxlan,2node-ovs-geneve,/}
[ -n "$user_dur" ] && DUR=$user_dur
[[ $DUR =~ ^[0-9]+$ ]] || die "--duration must be whole seconds (iperf3 -t)"
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, AF_PACKET)"

ensure_pkgs ip:iproute2 ping:iputils-ping python3:python3 ethtool:ethtool \
    trafgen:netsniff-ng iperf3:iperf3 ovs-vswitchd:openvswitch-switch
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || ensure_pkgs fc-none-dejavu:fonts-dejavu-core
[ "$PROFILE" = 0 ] || ensure_pkgs perf:linux-perf

# --- binaries ---------------------------------------------------------------
if [ "$MODE" = check ]; then
    # The test profile is what `cargo test` already built in CI.
    PROFILE_ARGS=(--profile test) BIN=target/debug
else
    PROFILE_ARGS=(--release) BIN=target/release
fi
if [ "$BUILD" = 1 ]; then
    log "building weft-switchd, weftctl, e2e-udprr, e2e-report (${PROFILE_ARGS[*]})"
    cargo build --locked "${PROFILE_ARGS[@]}" -p weft-switchd -p weft-tools -p weft-benches --bins
fi
SWITCHD=$ROOT/$BIN/weft-switchd WEFTCTL=$ROOT/$BIN/weftctl
UDPRR=$ROOT/$BIN/e2e-udprr REPORT=$ROOT/$BIN/e2e-report
for b in "$SWITCHD" "$WEFTCTL" "$UDPRR" "$REPORT"; do [ -x "$b" ] || die "missing $b (drop --no-build)"; done

# --- run-wide state and cleanup ---------------------------------------------
ID=weft-bench-$$
TMP=$(mktemp -d "/tmp/$ID.XXXX")
NS_SW=$ID-sw NS_P1=$ID-p1 NS_P2=$ID-p2
NS_N2=$ID-n2     # second node of the two-node rows (the first is NS_SW)
PIDS=()          # background processes we started (killed by pid)
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then PIN_TX=(taskset -c 0) PIN_SW=(taskset -c 1); else PIN_TX=() PIN_SW=(); fi

forget_pid() { local p n=(); for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && n+=("$p"); done; PIDS=("${n[@]}"); }
kill_pids() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
teardown() {
    kill_pids
    local ns
    for ns in "$NS_SW" "$NS_P1" "$NS_P2" "$NS_N2"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$TMP/sw" "$TMP/sw2"
}
cleanup() { teardown; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$OUT" ]; then
    if [ "$MODE" = check ]; then
        OUT=$TMP/results
    else
        virt=$(systemd-detect-virt 2>/dev/null || true); [ -n "$virt" ] || virt=metal
        [ "$virt" = none ] && virt=metal
        OUT=$ROOT/benches/results/$(date -u +%Y-%m-%d)-${NCPU}cpu-$virt
        [ "$MODE" = quick ] && OUT=$OUT-quick
    fi
fi
mkdir -p "$OUT"
RAW=$OUT/raw.csv
[ "$PROFILE" = 2 ] || echo "scenario,rep,metric,value" > "$RAW"
record() { echo "$1,$2,$3,$4" >> "$RAW"; }
FAILURES=()
fail() { log "FAILED: $*"; FAILURES+=("$*"); }

# --- helpers ------------------------------------------------------------------
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
now() { date +%s.%N; }
# utime+stime of the switch process(es) in clock ticks (0 when there is
# no process); SW_PID2 is the second node's switch in two-node rows.
cpu_ticks() {
    [ -n "${SW_PID:-}" ] || { echo 0; return; }
    local f=("/proc/$SW_PID/stat")
    [ -n "${SW_PID2:-}" ] && f+=("/proc/$SW_PID2/stat")
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t }' "${f[@]}"
}
CLK_TCK=$(getconf CLK_TCK)
cpu_pct() { # ticks0 ticks1 t0 t1
    python3 -c "import sys; a,b,t0,t1=map(float,sys.argv[1:]); print(f'{(b-a)/$CLK_TCK/(t1-t0)*100:.1f}')" "$@"
}
rx_packets() { nsx "$NS_P2" cat "/sys/class/net/$PIF2/statistics/rx_packets"; }
wait_file() { local i; for i in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }

# Base: three namespaces with loopback up.
make_namespaces() {
    local ns
    for ns in "$NS_SW" "$NS_P1" "$NS_P2"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    mkdir -p "$TMP/sw"
}
# veth pairs p1:eth0 <-> sw:sw-p1 and p2:eth0 <-> sw:sw-p2.
make_veths() {
    local i
    for i in 1 2; do
        local pod=$ID-p$i
        ip -n "$pod" link add eth0 type veth peer name "sw-p$i" netns "$NS_SW"
        ip -n "$NS_SW" link set "sw-p$i" up
    done
    PIF1=eth0 PIF2=eth0
}
# Addresses and fixed MACs inside the pods (interface names PIF1/PIF2).
address_pods() {
    ip -n "$NS_P1" link set "$PIF1" address 02:00:00:00:00:01
    ip -n "$NS_P2" link set "$PIF2" address 02:00:00:00:00:02
    ip -n "$NS_P1" addr add 10.244.0.1/24 dev "$PIF1"
    ip -n "$NS_P2" addr add 10.244.0.2/24 dev "$PIF2"
    ip -n "$NS_P1" link set "$PIF1" up
    ip -n "$NS_P2" link set "$PIF2" up
}
offloads_off() {
    nsx "$NS_P1" ethtool -K "$PIF1" tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    nsx "$NS_P2" ethtool -K "$PIF2" tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
}

# --- scenarios: each sets PIF1, PIF2 and SW_PID (empty for the bridge) -------
scenario_bridge() {
    make_veths
    ip -n "$NS_SW" link add br0 type bridge stp_state 0
    ip -n "$NS_SW" link set sw-p1 master br0
    ip -n "$NS_SW" link set sw-p2 master br0
    ip -n "$NS_SW" link set br0 up
    SW_PID=""
    address_pods
}

OVSD=$TMP/sw     # the private OVS instance the ovs* helpers talk to
ovs() { # private OVS tools
    OVS_RUNDIR=$OVSD OVS_LOGDIR=$OVSD OVS_DBDIR=$OVSD OVS_SYSCONFDIR=$OVSD "$@"
}
vsctl() { ovs ovs-vsctl --db="unix:$OVSD/db.sock" --timeout=20 "$@"; }
# start_ovsd DIR NS: ovsdb-server and ovs-vswitchd (pinned like weft) with
# their state in DIR, the switch in namespace NS; sets OVSD and OVS_PID.
start_ovsd() {
    local d=$1 ns=$2
    OVSD=$d
    mkdir -p "$d"
    ovs ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --unixctl="$d/ovsdb.ctl" \
        --log-file="$d/ovsdb.log" --no-chdir >/dev/null 2>&1 &
    PIDS+=($!)
    wait_file "$d/db.sock" || die "ovsdb-server did not start ($d/ovsdb.log)"
    ovs ovs-vsctl --db="unix:$d/db.sock" --no-wait init
    OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d \
        ip netns exec "$ns" "${PIN_SW[@]}" ovs-vswitchd "unix:$d/db.sock" \
        --unixctl="$d/vswitchd.ctl" --log-file="$d/vswitchd.log" --no-chdir -vconsole:off \
        >/dev/null 2>&1 &
    OVS_PID=$!
    PIDS+=("$OVS_PID")
    wait_file "$d/vswitchd.ctl" || die "ovs-vswitchd did not start ($d/vswitchd.log)"
}
start_ovs() {
    start_ovsd "$TMP/sw" "$NS_SW"
    SW_PID=$OVS_PID
    vsctl -- add-br br0 -- set bridge br0 datapath_type=netdev fail-mode=secure
}
ovs_flows() {
    local m=unix:$TMP/sw/br0.mgmt
    wait_file "$TMP/sw/br0.mgmt" || die "OVS br0 has no management socket"
    ovs ovs-ofctl add-flow "$m" in_port=1,actions=output:2
    ovs ovs-ofctl add-flow "$m" in_port=2,actions=output:1
}
scenario_ovs-afpacket() {
    make_veths
    start_ovs
    ovs ovs-vsctl --db="unix:$TMP/sw/db.sock" --timeout=20 \
        -- add-port br0 sw-p1 -- set interface sw-p1 ofport_request=1 \
        -- add-port br0 sw-p2 -- set interface sw-p2 ofport_request=2
    ovs_flows
    address_pods
    offloads_off
}
scenario_ovs-tap() {
    start_ovs
    ovs ovs-vsctl --db="unix:$TMP/sw/db.sock" --timeout=20 \
        -- add-port br0 otap1 -- set interface otap1 type=tap ofport_request=1 \
        -- add-port br0 otap2 -- set interface otap2 type=tap ofport_request=2
    ovs_flows
    ip -n "$NS_SW" link set otap1 netns "$NS_P1"
    ip -n "$NS_SW" link set otap2 netns "$NS_P2"
    PIF1=otap1 PIF2=otap2
    address_pods
}

WEFTD=$TMP/sw    # the weft-switchd instance weftctl talks to
weftctl() { "$WEFTCTL" --socket "$WEFTD/s.sock" "$@"; }
# start_weftd DIR NS: weft-switchd (pinned) with socket and state in DIR,
# in namespace NS; sets WEFTD and WEFT_PID.
start_weftd() {
    WEFTD=$1
    mkdir -p "$WEFTD"
    "${PIN_SW[@]}" "$SWITCHD" --netns "$2" --socket "$WEFTD/s.sock" \
        --state-dir "$WEFTD" >/dev/null 2>"$WEFTD/switchd.log" &
    WEFT_PID=$!
    PIDS+=("$WEFT_PID")
    local i
    for i in $(seq 200); do
        [ -S "$WEFTD/s.sock" ] && weftctl dump-tables >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "weft-switchd did not come up: $(cat "$WEFTD/switchd.log")"
}
start_weft() {
    start_weftd "$TMP/sw" "$NS_SW"
    SW_PID=$WEFT_PID
}
weft_flows() { # extra ACL size (0 = only the two port flows)
    {
        echo "table=0,priority=100,in_port=1,actions=output:2"
        echo "table=0,priority=100,in_port=2,actions=output:1"
        [ "$1" -gt 2 ] && gen_acl $(($1 - 2))
    } > "$WEFTD/flows.txt"
    weftctl add-flows "$WEFTD/flows.txt" >/dev/null
}
# gen_acl N: N drop rules of the kind a NetworkPolicy compiler installs,
# spread round-robin over five masks, every one above the forwarding
# flows in priority and none matching the bench traffic (whose addresses
# are 10.244.0.1 -> 10.244.0.99 and 10.244.0.1 <-> .2), so every packet
# probes all five subtables and then hits its port flow:
#   ip,nw_src=A/32          ip,nw_dst=A/32           tcp,nw_src=A/32,tp_dst=P
#   udp,nw_dst=A/32,tp_dst=P    ip,nw_src=B/24,nw_dst=A/32
gen_acl() {
    python3 - "$1" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    a = f"10.{245 + (i >> 16) % 10}.{(i >> 8) & 255}.{i & 255}"
    b = f"10.{240 + i % 4}.{(i >> 3) & 255}.0/24"
    p = 1024 + i % 60000
    m = i % 5
    match = [f"ip,nw_src={a}", f"ip,nw_dst={a}", f"tcp,nw_src={a},tp_dst={p}",
             f"udp,nw_dst={a},tp_dst={p}", f"ip,nw_src={b},nw_dst={a}"][m]
    print(f"table=0,priority={300 - m},{match},actions=drop")
EOF
}
scenario_weft() { # port type, flow count
    start_weft
    if [ "$1" = afpacket ] || [ "$1" = afxdp ]; then
        make_veths
        weftctl add-port sw-p1 --type "$1" --ofport 1 >/dev/null
        weftctl add-port sw-p2 --type "$1" --ofport 2 >/dev/null
    else
        weftctl add-port wtap1 --type tap --ofport 1 >/dev/null
        weftctl add-port wtap2 --type tap --ofport 2 >/dev/null
        ip -n "$NS_SW" link set wtap1 netns "$NS_P1"
        ip -n "$NS_SW" link set wtap2 netns "$NS_P2"
        PIF1=wtap1 PIF2=wtap2
    fi
    weft_flows "$2"
    address_pods
    # weft-switchd opens AF_PACKET ports with PACKET_VNET_HDR and TAPs with
    # IFF_VNET_HDR (switchd/src/offload.rs), so the pods keep checksum/TSO/GSO
    # offload as with the bridge. WEFT_BENCH_OFFLOADS=off restores the old
    # setting (veth offloads off) for comparison.
    [ "$1" = afpacket ] && [ "${WEFT_BENCH_OFFLOADS:-on}" = off ] && offloads_off
    if [ "$1" = afxdp ]; then
        # AF_XDP carries no checksum metadata: the pods complete their
        # checksums (OVS documents the same for AF_XDP on veth). With XDP
        # attached the kernel also stops offering GSO to the pods.
        nsx "$NS_P1" ethtool -K "$PIF1" tx off >/dev/null
        nsx "$NS_P2" ethtool -K "$PIF2" tx off >/dev/null
        # Read the whole listing first: `weftctl show | grep -q` would close
        # the pipe early, weftctl would die of EPIPE and pipefail would fail
        # the check. Both ports must be on AF_XDP.
        local shown
        shown=$(weftctl show)
        [ "$(grep -c 'backend="afxdp' <<<"$shown")" = 2 ] ||
            die "weft-afxdp: ports fell back to AF_PACKET: $shown"
    fi
    return 0
}
scenario_weft-afpacket() { scenario_weft afpacket 2; }
scenario_weft-tap() { scenario_weft tap 2; }
scenario_weft-afxdp() { scenario_weft afxdp 2; }
scenario_weft-afpacket-acl10() { scenario_weft afpacket 10; }
scenario_weft-afpacket-acl1k() { scenario_weft afpacket 1000; }
scenario_weft-afpacket-acl10k() { scenario_weft afpacket 10000; }
# --- two-node scenarios (see the header): node 1 is NS_SW, node 2 NS_N2 ---
VNI=42
# Namespaces n2 as well, the underlay veth eth0 (192.0.2.1) <-> eth0
# (192.0.2.2; addresses assigned by each scenario), pod veths
# p1:eth0 <-> sw:sw-p1 and p2:eth0 <-> n2:sw-p2, pod MTU 1450 (what a
# 50-byte Geneve-without-options / VXLAN overhead leaves of 1500).
two_nodes() {
    ip netns add "$NS_N2"
    ip -n "$NS_N2" link set lo up
    ip -n "$NS_SW" link add eth0 type veth peer name eth0 netns "$NS_N2"
    ip -n "$NS_SW" link set eth0 up
    ip -n "$NS_N2" link set eth0 up
    ip -n "$NS_P1" link add eth0 type veth peer name sw-p1 netns "$NS_SW"
    ip -n "$NS_P2" link add eth0 type veth peer name sw-p2 netns "$NS_N2"
    ip -n "$NS_SW" link set sw-p1 up
    ip -n "$NS_N2" link set sw-p2 up
    PIF1=eth0 PIF2=eth0
    ip -n "$NS_P1" link set eth0 mtu 1450
    ip -n "$NS_P2" link set eth0 mtu 1450
}
node_ns() { if [ "$1" = 1 ]; then echo "$NS_SW"; else echo "$NS_N2"; fi; }
# No checksum/TSO/GSO offload on the veths an AF_PACKET switch without
# vnet headers (OVS netdev) reads: it would see partial checksums.
two_node_offloads_off() {
    local ns dev
    for ns in "$NS_SW" "$NS_N2"; do
        for dev in eth0 sw-p1 sw-p2; do
            nsx "$ns" ethtool -K "$dev" tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
        done
    done
    offloads_off
}
# Fills the kernel neighbour tables of both nodes' underlay addresses
# before traffic (ARP through the switches under test).
underlay_ping() { # dev
    nsx "$NS_SW" ping -c 1 -W 2 -I "$1" 192.0.2.2 >/dev/null 2>&1 || true
    nsx "$NS_N2" ping -c 1 -W 2 -I "$1" 192.0.2.1 >/dev/null 2>&1 || true
}

scenario_2node-kernel-vxlan() {
    two_nodes
    local i ns
    for i in 1 2; do
        ns=$(node_ns "$i")
        ip -n "$ns" addr add "192.0.2.$i/24" dev eth0
        ip -n "$ns" link add vx0 type vxlan id "$VNI" dstport 4789 \
            local "192.0.2.$i" remote "192.0.2.$((3 - i))" dev eth0
        ip -n "$ns" link add br0 type bridge stp_state 0
        ip -n "$ns" link set vx0 master br0
        ip -n "$ns" link set "sw-p$i" master br0
        ip -n "$ns" link set vx0 up
        ip -n "$ns" link set br0 up
    done
    SW_PID="" SW_PID2=""
    address_pods
}

# OVS userspace tunnelling, per node (Documentation/howto/userspace-tunneling.rst):
# br-int with the pod port (ofport 1) and a flow-based geneve port
# (ofport 2), br-phy with eth0 and the node's IP on its internal port.
ovs_node() { # i
    local i=$1 ns d
    ns=$(node_ns "$i")
    d=$TMP/sw; [ "$i" = 2 ] && d=$TMP/sw2
    start_ovsd "$d" "$ns"
    if [ "$i" = 1 ]; then SW_PID=$OVS_PID; else SW_PID2=$OVS_PID; fi
    vsctl -- add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure \
        -- add-port br-int "sw-p$i" -- set interface "sw-p$i" ofport_request=1 \
        -- add-port br-int gnv0 -- set interface gnv0 type=geneve ofport_request=2 \
            options:remote_ip=flow options:key=flow \
        -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail-mode=standalone \
        -- add-port br-phy eth0
    ip -n "$ns" addr add "192.0.2.$i/24" dev br-phy
    ip -n "$ns" link set br-phy up
    # The tunnel route, in case OVS's route cache missed the address.
    ovs ovs-appctl -t "$d/vswitchd.ctl" ovs/route/add 192.0.2.0/24 br-phy >/dev/null 2>&1 || true
    local m=unix:$d/br-int.mgmt
    wait_file "$d/br-int.mgmt" || die "OVS br-int has no management socket"
    ovs ovs-ofctl add-flow "$m" "in_port=1,actions=set_field:192.0.2.$((3 - i))->tun_dst,set_field:$VNI->tun_id,output:2"
    ovs ovs-ofctl add-flow "$m" "in_port=2,tun_id=$VNI,actions=output:1"
}
scenario_2node-ovs-geneve() {
    two_nodes
    two_node_offloads_off
    ovs_node 1
    ovs_node 2
    address_pods
    underlay_ping br-phy
}

# weft per node, as README "Tunnels": eth0 the underlay afpacket port
# (ofport 1), weft0 the internal port with the node's IP, geneve0 (ofport
# 100) flow-based, the pod port sw-p<i> (ofport 10).
weft_node() { # i
    local i=$1 ns d
    ns=$(node_ns "$i")
    d=$TMP/sw; [ "$i" = 2 ] && d=$TMP/sw2
    start_weftd "$d" "$ns"
    if [ "$i" = 1 ]; then SW_PID=$WEFT_PID; else SW_PID2=$WEFT_PID; fi
    weftctl add-port eth0 --type afpacket --ofport 1 >/dev/null
    weftctl add-port weft0 --type internal >/dev/null
    ip -n "$ns" addr add "192.0.2.$i/24" dev weft0
    ip -n "$ns" link set weft0 up
    weftctl set-underlay --port eth0 --host-port weft0 >/dev/null
    weftctl add-port geneve0 --type geneve --ofport 100 >/dev/null
    weftctl add-port "sw-p$i" --type afpacket --ofport 10 >/dev/null
    {
        echo "table=0,priority=100,in_port=10,actions=set_field:192.0.2.$((3 - i))->tun_dst,set_field:$VNI->tun_id,output:100"
        echo "table=0,priority=100,in_port=100,tun_id=$VNI,actions=output:10"
    } > "$d/flows.txt"
    weftctl add-flows "$d/flows.txt" >/dev/null
}
scenario_2node-weft-geneve() {
    two_nodes
    weft_node 1
    weft_node 2
    address_pods
    # Offloads stay on as in weft-afpacket (vnet headers; TSO frames are
    # segmented in userspace before encapsulation, switchd/src/offload.rs);
    # WEFT_BENCH_OFFLOADS=off turns the veth offloads off for comparison.
    [ "${WEFT_BENCH_OFFLOADS:-on}" = off ] && two_node_offloads_off
    underlay_ping weft0
}

# --- loads ----------------------------------------------------------------------
connectivity() {
    local i
    for i in $(seq 30); do
        nsx "$NS_P1" ping -c 1 -W 1 10.244.0.2 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
# trafgen forks one sender per --cpus; SIGINT the senders (children of the
# pid we started) and then the parent, as Ctrl-C on its process group would.
stop_trafgen() {
    pkill -INT -P "$1" 2>/dev/null || true
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
load_pps() { # scenario rep
    cat > "$TMP/trafgen.cfg" <<'EOF'
{
  eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01),
  ipv4(saddr=10.244.0.1, daddr=10.244.0.99, ttl=64),
  udp(sp=dinc(1024, 1279), dp=9),
  fill(0x00, 18)
}
EOF
    ip netns exec "$NS_P1" "${PIN_TX[@]}" trafgen --dev "$PIF1" --conf "$TMP/trafgen.cfg" --cpus 1 \
        --no-cpu-stats --notouch-irq --no-sock-mem >"$TMP/trafgen.log" 2>&1 &
    local tg=$!
    PIDS+=("$tg")
    sleep "$WARM"
    local c0 c1 k0 k1 t0 t1 s0 s1
    s0=$(nsx "$NS_P1" cat "/sys/class/net/$PIF1/statistics/tx_packets")
    c0=$(rx_packets); k0=$(cpu_ticks); t0=$(now)
    sleep "$DUR"
    c1=$(rx_packets); k1=$(cpu_ticks); t1=$(now)
    s1=$(nsx "$NS_P1" cat "/sys/class/net/$PIF1/statistics/tx_packets")
    stop_trafgen "$tg"
    forget_pid "$tg"
    local pps tx
    pps=$(python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/(float(sys.argv[4])-float(sys.argv[3])):.0f}')" "$c0" "$c1" "$t0" "$t1")
    tx=$(python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/(float(sys.argv[4])-float(sys.argv[3])):.0f}')" "$s0" "$s1" "$t0" "$t1")
    record "$1" "$2" pps "$pps"
    record "$1" "$2" pps_offered "$tx"
    [ -n "${SW_PID:-}" ] && record "$1" "$2" pps_cpu "$(cpu_pct "$k0" "$k1" "$t0" "$t1")"
    log "  pps: received $pps/s (sender $tx/s)"
    [ "$pps" -gt 0 ] || fail "$1: no 64-byte frame received ($(tail -3 "$TMP/trafgen.log"))"
}
load_tcp() { # scenario rep streams
    ip netns exec "$NS_P2" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local srv=$!
    PIDS+=("$srv")
    local i
    for i in $(seq 50); do
        nsx "$NS_P2" ss -ltn 2>/dev/null | grep -q ':5201 ' && break
        sleep 0.05
    done
    local omit=0 k0 k1 t0 t1 out gbps
    [ "$MODE" = full ] && omit=1
    k0=$(cpu_ticks); t0=$(now)
    if out=$(nsx "$NS_P1" iperf3 -c 10.244.0.2 -p 5201 -t "$DUR" -O "$omit" -P "$3" -J 2>&1); then
        k1=$(cpu_ticks); t1=$(now)
        gbps=$(printf '%s' "$out" | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
        record "$1" "$2" "tcp$3_gbps" "$gbps"
        [ -n "${SW_PID:-}" ] && record "$1" "$2" "tcp$3_cpu" "$(cpu_pct "$k0" "$k1" "$t0" "$t1")"
        log "  tcp x$3: $gbps Gb/s"
    else
        fail "$1: iperf3 -P $3: $(printf '%s' "$out" | grep -m1 '"error"' || printf '%s' "$out" | tail -2)"
    fi
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    forget_pid "$srv"
}
load_rr() { # scenario rep
    ip netns exec "$NS_P2" "$UDPRR" server 10.244.0.2:7777 &
    local srv=$!
    PIDS+=("$srv")
    sleep 0.1
    local k0 k1 t0 t1 out
    k0=$(cpu_ticks); t0=$(now)
    if out=$(nsx "$NS_P1" "$UDPRR" client 10.244.0.2:7777 --count "$RR_COUNT" --warmup 100); then
        k1=$(cpu_ticks); t1=$(now)
        local kv
        for kv in $out; do
            case ${kv%%=*} in
                avg_us|p99_us|lost) record "$1" "$2" "rr_${kv%%=*}" "${kv#*=}" ;;
            esac
        done
        [ -n "${SW_PID:-}" ] && record "$1" "$2" rr_cpu "$(cpu_pct "$k0" "$k1" "$t0" "$t1")"
        log "  udp rr: $out"
    else
        fail "$1: e2e-udprr failed"
    fi
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    forget_pid "$srv"
}

run_scenario() { # name rep
    local s=$1
    log "[$s] rep $2"
    make_namespaces
    SW_PID="" SW_PID2=""
    "scenario_$s"
    if ! connectivity; then
        fail "$s: p1 cannot ping p2"
        teardown
        return 0
    fi
    load_pps "$s" "$2"
    load_tcp "$s" "$2" 1
    load_tcp "$s" "$2" 4
    load_rr "$s" "$2"
    local p
    for p in ${SW_PID:-} ${SW_PID2:-}; do
        kill -0 "$p" 2>/dev/null || fail "$s: a switch process ($p) died"
    done
    teardown
}

# One perf profile of weft-switchd forwarding 64-byte frames
# (weft-afpacket, or with `afxdp` weft-afxdp).
profile_weft() { # port type (afpacket by default)
    local pt=${1:-afpacket}
    log "[profile] perf record of weft-switchd ($pt ports) under the 64-byte load"
    make_namespaces
    scenario_weft "$pt" 2
    connectivity || { fail "profile: no connectivity"; teardown; return 0; }
    local ev=cycles
    # Hardware events are often missing in VMs and containers.
    if perf stat -e instructions true 2>&1 | grep 'not supported' >/dev/null; then ev=cpu-clock; fi
    cat > "$TMP/trafgen.cfg" <<'EOF'
{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(saddr=10.244.0.1, daddr=10.244.0.99, ttl=64), udp(sp=dinc(1024, 1279), dp=9), fill(0x00, 18) }
EOF
    ip netns exec "$NS_P1" "${PIN_TX[@]}" trafgen --dev "$PIF1" --conf "$TMP/trafgen.cfg" --cpus 1 \
        --no-cpu-stats --notouch-irq --no-sock-mem >/dev/null 2>&1 &
    local tg=$!
    PIDS+=("$tg")
    sleep 1
    perf record -e "$ev" -F 4000 -p "$SW_PID" -o "$TMP/perf.data" -- sleep "$DUR" >/dev/null 2>&1
    stop_trafgen "$tg"
    forget_pid "$tg"
    {
        echo "# perf record -e $ev -F 4000 -p <weft-switchd> -- sleep $DUR, 64-byte UDP load (weft-$pt)"
        echo "# $(date -u +%FT%TZ), $(nproc) CPUs, load: $(uptime | sed 's/.*load average/load average/')"
        echo "## by shared object"
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -v -e '^#' -e '^$' | sed 's/[[:space:]-]*$//' | head -12 || true
        echo "## top symbols"
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v -e '^#' -e '^$' | sed 's/[[:space:]-]*$//' | head -45 || true
    } > "$OUT/profile-weft-$pt.txt"
    log "profile summary in $OUT/profile-weft-$pt.txt"
    teardown
}

# One perf profile of both weft-switchd processes (2node-weft-geneve) under
# the single-stream TCP load: where the two-node TCP row's time goes. Both
# switches share CPU 1, as in the measured rows; the profile also counts
# the kernel work done in their context (AF_PACKET send, veth, softirq).
profile_weft_2node_tcp() {
    log "[profile] perf record of both weft-switchds under TCP x1 (2node-weft-geneve)"
    make_namespaces
    SW_PID="" SW_PID2=""
    scenario_2node-weft-geneve
    connectivity || { fail "profile 2node: no connectivity"; teardown; return 0; }
    local ev=cycles
    if perf stat -e instructions true 2>&1 | grep 'not supported' >/dev/null; then ev=cpu-clock; fi
    ip netns exec "$NS_P2" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local srv=$!
    PIDS+=("$srv")
    local i
    for i in $(seq 50); do
        nsx "$NS_P2" ss -ltn 2>/dev/null | grep -q ':5201 ' && break
        sleep 0.05
    done
    nsx "$NS_P1" iperf3 -c 10.244.0.2 -p 5201 -t $((DUR + 2)) -P 1 >"$TMP/iperf-profile.txt" 2>&1 &
    local cli=$!
    PIDS+=("$cli")
    sleep 1
    perf record -e "$ev" -F 4000 -p "$SW_PID,$SW_PID2" -o "$TMP/perf2.data" -- sleep "$DUR" >/dev/null 2>&1
    wait "$cli" 2>/dev/null || true
    forget_pid "$cli"
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    forget_pid "$srv"
    {
        echo "# perf record -e $ev -F 4000 -p <both weft-switchds> -- sleep $DUR, iperf3 -P 1 p1 -> p2 (2node-weft-geneve)"
        echo "# $(date -u +%FT%TZ), $(nproc) CPUs, load: $(uptime | sed 's/.*load average/load average/')"
        echo "# iperf3 (sender side): $(grep -E 'sender' "$TMP/iperf-profile.txt" | tail -1 | tr -s ' ')"
        echo "## by shared object"
        perf report -i "$TMP/perf2.data" --stdio --no-children --sort dso 2>/dev/null | grep -v -e '^#' -e '^$' | sed 's/[[:space:]-]*$//' | head -12 || true
        echo "## top symbols"
        perf report -i "$TMP/perf2.data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v -e '^#' -e '^$' | sed 's/[[:space:]-]*$//' | head -45 || true
    } > "$OUT/profile-weft-2node-tcp1.txt"
    log "profile summary in $OUT/profile-weft-2node-tcp1.txt"
    teardown
}

# --- machine details ------------------------------------------------------------
uptime_before=$(uptime)
write_machine() {
    python3 - "$OUT/machine.json" <<EOF
import json, sys, platform
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({
  "date_utc": "$(date -u +%FT%TZ)",
  "mode": "$MODE", "reps": $REPS, "duration_s": $DUR, "rr_count": $RR_COUNT,
  "cpus": $NCPU, "cpu_model": cpu, "mem_mib": mem,
  "kernel": platform.release(), "virt": "$(systemd-detect-virt 2>/dev/null || echo unknown)",
  "os": "$(. /etc/os-release; echo "$PRETTY_NAME")",
  "git": "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)",
  "rustc": "$(rustc --version 2>/dev/null)",
  "ovs": "$(ovs-vswitchd --version | head -1)",
  "trafgen": "$(trafgen --version 2>&1 | head -1)",
  "iperf3": "$(iperf3 --version 2>&1 | head -1)",
  "uptime_before": "$uptime_before",
  "uptime_after": "$(uptime)",
  "pinning": "sender CPU 0, switch daemon CPU 1" if $NCPU >= 2 else "none",
  "note": "shared machine: other jobs run at the same time, numbers are noisy; compare ratios within this run",
}, open(sys.argv[1], "w"), indent=2)
EOF
}

log "results in $OUT ($MODE: $REPS rep(s), ${DUR}s loads, scenarios $SCENARIOS)"
IFS=, read -r -a scen_list <<< "$SCENARIOS"
[ "$PROFILE" = 2 ] && REPS=0
for rep in $(seq "$REPS"); do
    for s in "${scen_list[@]}"; do
        case $s in
            bridge|ovs-afpacket|ovs-tap|weft-afpacket|weft-tap|weft-afxdp|weft-afpacket-acl10|weft-afpacket-acl1k|weft-afpacket-acl10k) ;;
            2node-kernel-vxlan|2node-ovs-geneve|2node-weft-geneve) ;;
            *) die "unknown scenario $s (known: $SCENARIOS_DEFAULT)" ;;
        esac
        run_scenario "$s" "$rep"
    done
done
if [ "$PROFILE" = 2 ]; then
    # Only the profiles, into an existing results directory.
    profile_weft
    profile_weft afxdp
    profile_weft_2node_tcp
    exit 0
fi
[ "$PROFILE" = 0 ] || { profile_weft; profile_weft afxdp; profile_weft_2node_tcp; }
write_machine
"$REPORT" "$OUT"
if [ "$MODE" = check ]; then
    for f in results.csv results.json table.md chart.png; do
        [ -s "$OUT/$f" ] || fail "report: $f missing or empty"
    done
fi
if [ ${#FAILURES[@]} -gt 0 ]; then
    printf 'failed: %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
log "done: $OUT"
