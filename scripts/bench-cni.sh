#!/usr/bin/env bash
# CNI ADD and DEL latency: weft-cni (against a real weft-switchd) versus the
# reference bridge + host-local plugins (Debian containernetworking-plugins),
# measured in the same run on the same machine. Prints p50/p99 per plugin
# and the ratios. Root; everything lives in namespaces weft-b<pid>-*.
#
#   scripts/bench-cni.sh [N]        # N pods per plugin (default 100)
#   BIN_DIR=dir scripts/bench-cni.sh # weft-cni and weft-switchd from dir, no build
#
# Also prints weft-cni's median time per phase of ADD and DEL (from
# `WEFT_CNI_TIMING`, see cni/src/timing.rs) under the table.
#
# Each sample is one plugin process as a runtime starts it (through
# `ip netns exec <node>`, the same for both plugins), timed from the
# outside with nanosecond clock reads. The two plugins alternate (pod i
# with weft-cni, then pod i with bridge; then the DELs the same way), so
# a change of the machine's load during the run hits both alike; each
# plugin has its own pod namespaces.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh
N=${1:-100}
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
ensure_pkgs ip:iproute2 /usr/lib/cni/bridge:containernetworking-plugins
PROFILE=${PROFILE:-release}
if [ -n "${BIN_DIR:-}" ]; then
    # Prebuilt weft-cni and weft-switchd (an A/B comparison of two builds).
    BIN=$BIN_DIR
    PROFILE="prebuilt $BIN_DIR"
elif [ "$PROFILE" = release ]; then
    # The whole workspace's binaries: building only these two packages
    # unifies dependency features differently and rebuilds everything.
    cargo build --release -q --workspace --bins
    BIN=target/release
else
    cargo build -q --workspace --bins
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
for i in $(seq "$N"); do addns "$ID-w$i"; addns "$ID-b$i"; done

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

# run PLUGIN_PATH CMD POD CONF -> prints elapsed ns (weft-cni's phase
# times go to $TMP/timing); POD is w<i> or b<i>
run() {
    local t0 t1
    t0=$(date +%s%N)
    WEFT_CNI_TIMING=$t0 CNI_COMMAND=$2 CNI_CONTAINERID="c$3" CNI_NETNS="/run/netns/$ID-$3" \
        CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni ip netns exec "$ID-node" "$1" <<<"$4" \
        >/dev/null 2>>"$TMP/timing" || die "$1 $2 pod $3 failed: $(tail -3 "$TMP/timing")"
    t1=$(date +%s%N)
    echo $((t1 - t0))
}

# pct FILE P -> the P-th percentile (nearest rank) in ms
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int((p/100)*NR+0.999); if(i<1)i=1; printf "%.2f", a[i]/1e6}'; }

log "$N ADDs then $N DELs, alternating weft-cni ($PROFILE build) and bridge + host-local"
: >"$TMP/weft.add"; : >"$TMP/weft.del"; : >"$TMP/bridge.add"; : >"$TMP/bridge.del"
for i in $(seq "$N"); do
    run "$BIN/weft-cni" ADD "w$i" "$WEFT_CONF" >>"$TMP/weft.add"
    run /usr/lib/cni/bridge ADD "b$i" "$BRIDGE_CONF" >>"$TMP/bridge.add"
done
for i in $(seq "$N"); do
    run "$BIN/weft-cni" DEL "w$i" "$WEFT_CONF" >>"$TMP/weft.del"
    run /usr/lib/cni/bridge DEL "b$i" "$BRIDGE_CONF" >>"$TMP/bridge.del"
done

printf '\n%-22s %10s %10s %10s %10s\n' plugin "ADD p50" "ADD p99" "DEL p50" "DEL p99"
for b in weft bridge; do
    printf '%-22s %8s ms %8s ms %8s ms %8s ms\n' "$b" "$(pct "$TMP/$b.add" 50)" \
        "$(pct "$TMP/$b.add" 99)" "$(pct "$TMP/$b.del" 50)" "$(pct "$TMP/$b.del" 99)"
done
awk -v w="$(pct "$TMP/weft.add" 50)" -v b="$(pct "$TMP/bridge.add" 50)" \
    -v wd="$(pct "$TMP/weft.del" 50)" -v bd="$(pct "$TMP/bridge.del" 50)" \
    'BEGIN {printf "\nADD p50 weft/bridge = %.2f, DEL p50 weft/bridge = %.2f (below 1: weft-cni faster)\n", w/b, wd/bd}'

# Median of each weft-cni phase (ms), in the order the phases run.
for cmd in ADD DEL; do
    { grep "^weft-cni timing $cmd:" "$TMP/timing" || true; } | sed "s/^weft-cni timing $cmd: *//" |
        awk -v cmd="$cmd" -F' [|] ' '
        { for (i = 1; i <= NF; i++) { n = split($i, f, " "); name = f[1]; v = f[2] + 0
              if (!(name in seen)) { seen[name] = 1; order[++k] = name }
              vals[name, ++cnt[name]] = v } }
        END { printf "\nweft-cni %s phases, median ms (%d runs):\n", cmd, NR
              for (j = 1; j <= k; j++) { name = order[j]; m = cnt[name]
                  for (a = 1; a <= m; a++) x[a] = vals[name, a]
                  for (a = 2; a <= m; a++) { t = x[a]; b = a - 1
                      while (b >= 1 && x[b] > t) { x[b + 1] = x[b]; b-- } x[b + 1] = t }
                  printf "  %-24s %7.2f\n", name, x[int((m + 1) / 2)] } }'
done
