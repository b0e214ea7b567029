#!/usr/bin/env bash
# Weft's whole test suite: what CI runs (`.ci/run` calls exactly this).
#
# Tiers (shared/DESIGN.md): formatting and lints; unit, property and
# differential tests (tshark, etherparse); the end-to-end benchmark
# harness in --check mode (set-up and report only); the benches once each
# (`cargo bench -- --test`, so they never rot); every fuzz target for a
# bounded time. Needs root only to install missing packages.
#
# Environment:
#   FUZZ_SECONDS   seconds per fuzz target (default 40; 0 skips fuzzing,
#                  refused under CI=true)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-40}
if [ "${CI:-}" = "true" ] && [ "$FUZZ_SECONDS" = "0" ]; then
    die "FUZZ_SECONDS=0 is not allowed under CI=true"
fi

ensure_pkgs tshark:tshark tcpdump:tcpdump ip:iproute2 ping:iputils-ping python3:python3 \
    ovs-vswitchd:openvswitch-switch iptables:iptables tracepath:iputils-tracepath \
    /usr/lib/cni/portmap:containernetworking-plugins containerd:containerd \
    /usr/bin/busybox:busybox-static
ensure_toolchain
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

start=$(date +%s)
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test (unit, property, differential)"
# The tshark differential test must run, not skip, in CI.
export WEFT_REQUIRE_TSHARK=1
cargo test --workspace --locked

log "end-to-end benchmark harness, --check (every scenario forwards, the report builds; tiny loads, no rate asserted)"
# The full harness (release build, minutes) is run by hand: benches/e2e/run.sh.
benches/e2e/run.sh --check

log "cargo bench -- --test (each benchmark once)"
cargo bench --workspace --locked -- --test

if [ "$FUZZ_SECONDS" != "0" ]; then
    ensure_cargo_tool cargo-fuzz cargo-fuzz@0.13.2
    log "fuzzing each target for ${FUZZ_SECONDS}s"
    scripts/fuzz.sh "$FUZZ_SECONDS"
fi

log "all tests passed in $(( $(date +%s) - start ))s"
