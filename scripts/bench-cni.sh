#!/usr/bin/env bash
# CNI ADD and DEL latency: weft-cni (against a real weft-switchd) versus the
# reference bridge + host-local plugins (Debian containernetworking-plugins),
# measured in the same run on the same machine. Prints p50/p99 per plugin
# and the ratios. Root; everything lives in namespaces weft-b<pid>-*.
#
#   scripts/bench-cni.sh [N]        # N pods per plugin (default 100)
#
# Each sample is one plugin process as a runtime starts it (through
# `ip netns exec <node>`, the same for both plugins), timed from the
# outside with nanosecond clock reads.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh
N=${1:-100}
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
ensure_pkgs ip:iproute2 /usr/lib/cni/bridge:containernetworking-plugins
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p weft-cni -p weft-switchd
    BIN=target/release
else
    cargo build -q -p weft-cni -p weft-switchd
    BIN=target/debug
fi

ID=weft-b$$
TMP=$(mktemp -d)
SW_PID=
NSS=()
cleanup() {
    [ -n "$SW_PID" ] && kill "$SW_PID" 2>/dev/null && wait "$SW_PID" 2>/dev/null
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

addns() { ip netns add "$1"; NSS+=("$1"); }

addns "$ID-node"
ip -n "$ID-node" link set lo up
"$BIN/weft-switchd" --netns "$ID-node" --socket "$TMP/sw.sock" --state-dir "$TMP/sw" \
    2>"$TMP/switchd.log" &
SW_PID=$!
for _ in $(seq 100); do [ -S "$TMP/sw.sock" ] && break; sleep 0.05; done
[ -S "$TMP/sw.sock" ] || die "switchd did not start: $(cat "$TMP/switchd.log")"
for i in $(seq "$N"); do addns "$ID-p$i"; done

WEFT_CONF=$(cat <<JSON
{"cniVersion":"1.0.0","name":"bench","type":"weft-cni","socket":"$TMP/sw.sock",
 "ipam":{"subnet":"10.244.0.0/16","dataDir":"$TMP/ipam"}}
JSON
)
BRIDGE_CONF=$(cat <<JSON
{"cniVersion":"1.0.0","name":"bench","type":"bridge","bridge":"wbr$$","isGateway":true,
 "ipam":{"type":"host-local","subnet":"10.245.0.0/16","dataDir":"$TMP/host-local"}}
JSON
)

# run PLUGIN_PATH CMD POD CONF -> prints elapsed ns
run() {
    local t0 t1
    t0=$(date +%s%N)
    CNI_COMMAND=$2 CNI_CONTAINERID="c$3" CNI_NETNS="/run/netns/$ID-p$3" CNI_IFNAME=eth0 \
        CNI_PATH=/usr/lib/cni ip netns exec "$ID-node" "$1" <<<"$4" >/dev/null \
        || die "$1 $2 pod $3 failed"
    t1=$(date +%s%N)
    echo $((t1 - t0))
}

# pct FILE P -> the P-th percentile (nearest rank) in ms
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; printf "%.2f", a[i]/1e6}'; }

bench() { # name plugin conf
    : >"$TMP/$1.add"; : >"$TMP/$1.del"
    for i in $(seq "$N"); do run "$2" ADD "$i" "$3" >>"$TMP/$1.add"; done
    for i in $(seq "$N"); do run "$2" DEL "$i" "$3" >>"$TMP/$1.del"; done
}

log "weft-cni ($PROFILE build): $N ADDs then $N DELs"
bench weft "$BIN/weft-cni" "$WEFT_CONF"
log "bridge + host-local: $N ADDs then $N DELs"
bench bridge /usr/lib/cni/bridge "$BRIDGE_CONF"

printf '\n%-22s %10s %10s %10s %10s\n' plugin "ADD p50" "ADD p99" "DEL p50" "DEL p99"
for b in weft bridge; do
    printf '%-22s %8s ms %8s ms %8s ms %8s ms\n' "$b" "$(pct "$TMP/$b.add" 50)" \
        "$(pct "$TMP/$b.add" 99)" "$(pct "$TMP/$b.del" 50)" "$(pct "$TMP/$b.del" 99)"
done
awk -v w="$(pct "$TMP/weft.add" 50)" -v b="$(pct "$TMP/bridge.add" 50)" \
    -v wd="$(pct "$TMP/weft.del" 50)" -v bd="$(pct "$TMP/bridge.del" 50)" \
    'BEGIN {printf "\nADD p50 weft/bridge = %.2f, DEL p50 weft/bridge = %.2f (below 1: weft-cni faster)\n", w/b, wd/bd}'
