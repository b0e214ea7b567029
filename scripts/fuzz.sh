#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the
# first crash (the crashing input is left in fuzz/artifacts/<target>/ and
# printed as hex, ready to become a unit test).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (FUZZ_JOBS=N: targets at a time)
#        scripts/fuzz.sh --build-only    # build every target, run none
#
# `--build-only` lets CI build the targets (ASan, the whole graph: minutes)
# in the background while the test stage runs; the later run finds them
# built (same flags) and only fuzzes.
#
# Seeds: fuzz/seeds/<target>/ (committed: crash regressions and hand-picked
# inputs) plus, for packet targets, every frame of the captures in
# ../shared/pcaps when that directory exists. The working corpus lives in
# fuzz/corpus/<target>/ (not committed; kept between runs for speed).
#
# Toolchain: the pinned stable toolchain with RUSTC_BOOTSTRAP=1 so that
# AddressSanitizer (-Zsanitizer=address) works without a nightly.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
BUILD_ONLY=
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
SECS=${1:-60}; shift || true
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
PCAPS=${WEFT_PCAPS:-$ROOT/../shared/pcaps}

split_pcaps() { # DIR: one file per captured frame
    python3 - "$PCAPS" "$1" <<'PY'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
if not os.path.isdir(src):
    sys.exit(0)
for name in sorted(os.listdir(src)):
    if not name.endswith(".pcap"):
        continue
    data = open(os.path.join(src, name), "rb").read()
    if len(data) < 24:
        continue
    end = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, i = 24, 0
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        open(os.path.join(out, "pcap-%s-%03d" % (name[:-5], i)), "wb").write(frame)
        off += 16 + incl
        i += 1
PY
}

# The same build flags for `build` and `run`: `cargo fuzz run` calls
# `cargo build` again with its own flags, and any difference (sanitizer,
# --dev/-O, features) would rebuild the whole graph (switchd, controller,
# k8s-openapi) once per target. ASan is kept: it is what finds memory bugs
# (in dependencies and the one `unsafe` module).
BUILD_FLAGS=(--sanitizer address)
log "building fuzz targets: ${targets[*]}"
cargo fuzz build "${BUILD_FLAGS[@]}"
if [ -n "$BUILD_ONLY" ]; then
    log "fuzz targets built"
    exit 0
fi
# Targets run FUZZ_JOBS at a time (default: the number of CPUs): each
# libFuzzer run is one single-threaded process, so on a 2-core machine two
# targets fuzz side by side for the same per-target time at half the wall
# time. Each target's log goes to fuzz-<target>.log; a crash in any target
# fails the run after the running batch ends, with its log tail and input.
JOBS=${FUZZ_JOBS:-$(nproc)}
[ "$JOBS" -ge 1 ] 2>/dev/null || die "FUZZ_JOBS must be a positive number (got '$JOBS')"
prepare_corpus() { # TARGET
    local t=$1 corpus="corpus/$1"
    mkdir -p "$corpus"
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    case "$t" in
        wire_*|flow_extract|tunnel_*) split_pcaps "$corpus" ;;
        pcap_read) [ -d "$PCAPS" ] && cp -n "$PCAPS"/*.pcap "$corpus"/ 2>/dev/null || true ;;
    esac
}
report_crash() { # TARGET
    local t=$1
    tail -n 60 fuzz-"$t".log >&2
    for a in artifacts/"$t"/*; do
        [ -f "$a" ] && { echo "crash input $a:" >&2; xxd "$a" | head -n 40 >&2; }
    done
}
failed=()
i=0
while [ "$i" -lt "${#targets[@]}" ]; do
    batch=("${targets[@]:i:JOBS}")
    i=$((i + JOBS))
    pids=()
    for t in "${batch[@]}"; do
        prepare_corpus "$t"
        log "fuzz $t for ${SECS}s ($(ls "corpus/$t" | wc -l) corpus entries)"
        cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "corpus/$t" -- -max_total_time="$SECS" -timeout=10 \
            -rss_limit_mb=4096 -print_final_stats=1 2>fuzz-"$t".log &
        pids+=($!)
    done
    for k in "${!batch[@]}"; do
        t=${batch[$k]}
        if wait "${pids[$k]}"; then
            grep -E "stat::number_of_executed_units|Done" fuzz-"$t".log | tail -n 2 || true
            rm -f fuzz-"$t".log
        else
            report_crash "$t"
            failed+=("$t")
        fi
    done
    [ ${#failed[@]} -eq 0 ] || die "fuzz target(s) failed: ${failed[*]}"
done
log "fuzzing done: ${#targets[@]} targets, ${SECS}s each, $JOBS at a time, no crash"
