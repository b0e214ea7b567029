#!/usr/bin/env bash
# Weft's main job: the cluster in a box.
#
# Installs what is missing (iproute2, iputils-ping, python3, the Rust
# toolchain), builds weft-switchd, weft-controller, weft-cni and weftctl
# (release), removes the previous run's demo if one is still up, and ends in
# `weftctl demo up`: three nodes in network namespaces, each with its own
# weft-switchd, joined by an underlay bridge and Geneve tunnels;
# weft-controller reading examples/manifests; every pod a network namespace
# attached by the real weft-cni binary, called as a container runtime calls
# it; a connectivity matrix with real packets (expected from the compiled
# policy vs observed); a live NetworkPolicy change with its realization
# time. The cluster stays up afterwards:
#   target/release/weftctl demo check --state-dir /run/weft-demo
#   target/release/weftctl demo down  --state-dir /run/weft-demo
# Extra arguments go to `weftctl demo up`. The single-node demo of earlier
# versions is scripts/demo-node.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces"
ensure_pkgs ip:iproute2 ping:iputils-ping python3:python3
ensure_toolchain
log "building weft-switchd, weft-controller, weft-cni and weftctl (release)"
cargo build --release --locked -q -p weft-switchd -p weft-controller -p weft-cni -p weft-tools
WEFTCTL="$ROOT/target/release/weftctl"
STATE=${WEFT_DEMO_STATE:-/run/weft-demo}
if [ -e "$STATE/state.json" ]; then
    log "removing the demo still up from an earlier run ($STATE)"
    "$WEFTCTL" demo down --state-dir "$STATE"
fi
exec "$WEFTCTL" demo up --state-dir "$STATE" "$@"
