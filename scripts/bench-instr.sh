#!/usr/bin/env bash
# Instructions per packet of one EMC or pipeline bench, for comparing
# builds on a loaded machine (time is noise there, instruction counts are
# not). This VM exposes no PMU (`perf stat -e instructions:u` says
# "<not supported>"), so the count is valgrind's (callgrind `Ir`): the
# bench binary runs `N` batches of bench `ID` in its fixed-count mode
# (`WEFT_BENCH_FIXED`, see `weft_benches::fixed_batches`) and once with 0
# batches; the difference over N x 32 packets is the per-packet count
# (set-up and warm-up cancel out, up to a few instructions per packet of
# run-to-run variation from randomly seeded hash tables: use N >= 20000).
#
# usage: scripts/bench-instr.sh BENCH_BINARY ID N
#   e.g. scripts/bench-instr.sh target/release/deps/classify-<hash> emc/hit/2flows 20000
#        (binary from `cargo bench -p weft-benches --bench classify --no-run`)
set -euo pipefail
bin=$1 id=$2 n=$3
# Criterion may start a child (gnuplot probe): the last summary is the bench's.
ir() {
    WEFT_BENCH_FIXED="$id:$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --bench 2>&1 >/dev/null | awk '/Collected/ {n = $NF} END {print n}'
}
i0=$(ir 0)
i1=$(ir "$n")
awk -v a="$i0" -v b="$i1" -v n="$n" -v id="$id" \
    'BEGIN { printf "%s: %.1f instructions/packet (%d batches of 32)\n", id, (b - a) / (n * 32), n }'
