#!/usr/bin/env bash
# Weft's whole test suite: what CI runs (`.ci/run` calls exactly this).
#
# Tiers (shared/DESIGN.md): formatting and lints; unit, property and
# differential tests (tshark, etherparse); the end-to-end benchmark
# harness in --check mode (set-up and report only); the benches once each
# (criterion's test mode, so they never rot); every fuzz target for a
# bounded time. Needs root only to install missing packages.
#
# Each stage prints its elapsed seconds and a table of all stages ends the
# output (also on failure). The bench smoke run builds only weft-benches'
# bench targets, with the test profile (shared with the test stage). The
# fuzz targets are built in the background while the tests run (the fuzz
# stage then only waits for that build and fuzzes).
#
# Environment:
#   FUZZ_SECONDS   seconds per fuzz target (default 30; 0 skips fuzzing,
#                  refused under CI=true)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [ "${CI:-}" = "true" ] && [ "$FUZZ_SECONDS" = "0" ]; then
    die "FUZZ_SECONDS=0 is not allowed under CI=true"
fi

ensure_pkgs tshark:tshark tcpdump:tcpdump ip:iproute2 ping:iputils-ping python3:python3 \
    ovs-vswitchd:openvswitch-switch iptables:iptables tracepath:iputils-tracepath \
    /usr/lib/cni/portmap:containernetworking-plugins containerd:containerd \
    /usr/bin/busybox:busybox-static /usr/bin/scapy:python3-scapy
ensure_toolchain
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Per-stage timing: `stage NAME` ends the previous stage (printing its
# elapsed seconds) and starts the next; a summary table is printed at the
# end, also when a stage fails, so the next engineer sees where time goes.
start=$(date +%s)
STAGE_NAMES=() STAGE_SECS=() stage_name="" stage_start=0
stage_end() {
    [ -n "$stage_name" ] || return 0
    local secs=$(( $(date +%s) - stage_start ))
    STAGE_NAMES+=("$stage_name") STAGE_SECS+=("$secs")
    log "stage '$stage_name' took ${secs}s"
    stage_name=""
}
stage() { stage_end; stage_name=$1; stage_start=$(date +%s); log "$*"; }
FUZZ_BUILD_PID=
stage_summary() {
    local rc=$? i
    # A failed run leaves no background fuzz build behind: it runs in its
    # own session (setsid), so its process group is exactly what this
    # script started.
    if [ -n "$FUZZ_BUILD_PID" ]; then
        kill -TERM -- "-$FUZZ_BUILD_PID" 2>/dev/null || true
    fi
    stage_end
    printf '\n%-12s %8s\n' "stage" "seconds" >&2
    for i in "${!STAGE_NAMES[@]}"; do
        printf '%-12s %8d\n' "${STAGE_NAMES[$i]}" "${STAGE_SECS[$i]}" >&2
    done
    printf '%-12s %8d  (%s)\n' "total" "$(( $(date +%s) - start ))" \
        "$([ "$rc" = 0 ] && echo passed || echo "FAILED, exit $rc")" >&2
}
trap stage_summary EXIT
# A signal ends the run as a failure (the summary says so).
trap 'exit 130' INT
trap 'exit 143' TERM

stage fmt "cargo fmt --check"
cargo fmt --all -- --check

stage clippy "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ "$FUZZ_SECONDS" != "0" ]; then
    stage fuzz-tool "cargo-fuzz"
    ensure_cargo_tool cargo-fuzz cargo-fuzz@0.13.2
fi

stage test "cargo test (unit, property, differential)"
# The tshark differential test must run, not skip, in CI.
export WEFT_REQUIRE_TSHARK=1
cargo test --workspace --locked --no-run
# The fuzz targets' ASan build (the whole graph again, ~8 minutes) runs in
# the background, niced, while the tests run: most test time is spent
# waiting on namespaces, daemons and packets, not on the CPU. The fuzz
# stage below waits for it and then only fuzzes.
if [ "$FUZZ_SECONDS" != "0" ]; then
    FUZZ_BUILD_LOG=$(mktemp)
    log "building the fuzz targets in the background (log: $FUZZ_BUILD_LOG)"
    setsid nice -n 10 scripts/fuzz.sh --build-only >"$FUZZ_BUILD_LOG" 2>&1 &
    FUZZ_BUILD_PID=$!
fi
cargo test --workspace --locked
# AF_PACKET ports again on the recvmmsg path they fall back to when the
# kernel refuses a PACKET_MMAP ring (a few seconds; --workspace, not -p:
# the same feature set as above, so nothing is rebuilt).
WEFT_AFPACKET_RING=0 cargo test --workspace --locked --test netns_ports

stage e2e-check "end-to-end benchmark harness, --check (every scenario forwards, the report builds; tiny loads, no rate asserted)"
# The full harness (release build, minutes) is run by hand: benches/e2e/run.sh.
# --no-build: weft-switchd, weftctl and the harness's e2e-udprr/e2e-report
# are the test stage's own builds (benches/tests/bins.rs makes `cargo test`
# build the last two); building them again with `-p` selects a different
# feature set and recompiled the workspace crates (5 minutes of CI).
benches/e2e/run.sh --check --no-build

stage bench "benches in test mode (each benchmark once, test profile)"
# Every criterion bench runs once (criterion's test mode: no `--bench`
# argument), built with the test profile so it reuses the artefacts of the
# test stage above: an optimised bench-profile build of the whole graph
# cost 5+ minutes of CI for a smoke run whose numbers nobody reads.
# `--workspace --bench '*'` (not `-p weft-benches --benches`): the same
# package selection as the test stage resolves the same features, so only
# the bench targets compile (`-p` recompiled the workspace crates, 4
# minutes). Real numbers come from `cargo bench -p weft-benches`.
cargo test --workspace --bench '*' --locked

if [ "$FUZZ_SECONDS" != "0" ]; then
    stage fuzz "fuzzing each target for ${FUZZ_SECONDS}s"
    if ! wait "$FUZZ_BUILD_PID"; then
        FUZZ_BUILD_PID=
        tail -n 60 "$FUZZ_BUILD_LOG" >&2
        die "building the fuzz targets failed (log above)"
    fi
    FUZZ_BUILD_PID=
    rm -f "$FUZZ_BUILD_LOG"
    scripts/fuzz.sh "$FUZZ_SECONDS"
fi

stage_end
log "all tests passed in $(( $(date +%s) - start ))s"
