#!/usr/bin/env bash
# Runs the tunnel criterion bench (`benches/benches/tunnel.rs`) K times,
# pinned to CPU 1, with short warm-up and measurement times, and prints
# per row the minimum / median / maximum over the runs of criterion's
# per-run median (thread CPU ns per packet). One run moves a row by up to
# 2x on this VM, so "reliably <= 50 ns" is judged on the spread of K runs,
# not on one run. Numbers are only worth quoting from a quiet machine:
# the load average at the start and the end is printed with them.
#
# usage: scripts/bench-tunnel-runs.sh [K] [FILTER]
#   K       runs (default 5)
#   FILTER  criterion filter, e.g. encap/geneve2 (default: all 12 rows)
# env: WARM (s, default 0.5), MEAS (s, default 1), CPU (default 1)
set -euo pipefail
k=${1:-5}
filter=${2:-}
warm=${WARM:-0.5}
meas=${MEAS:-1}
cpu=${CPU:-1}
cd "$(dirname "$0")/.."

# The built bench binary (builds it first if needed).
bin=$(cargo bench -p weft-benches --bench tunnel --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tunnel" and m.get("executable"):
        print(m["executable"])
')
[ -x "$bin" ] || { echo "bench-tunnel-runs: no tunnel bench binary" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "bench: $bin; $k runs, warm-up ${warm}s, measurement ${meas}s, CPU $cpu"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$k"); do
    # shellcheck disable=SC2086
    taskset -c "$cpu" "$bin" --bench --noplot --warm-up-time "$warm" \
        --measurement-time "$meas" $filter >"$out/run$i.txt" 2>/dev/null
    echo "run $i/$k done"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" "$k" <<'EOF'
import pathlib, re, statistics, sys

out, k = pathlib.Path(sys.argv[1]), int(sys.argv[2])
scale = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6}
rows = {}
order = []
for i in range(1, k + 1):
    name = None
    for line in (out / f"run{i}.txt").read_text().splitlines():
        s = line.strip()
        m = re.match(r"^(tunnel/\S+)", s)
        if m:
            name = m.group(1)
        t = re.search(r"time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", s)
        if t and name:
            ns = float(t.group(3)) * scale[t.group(4)]
            if name not in rows:
                rows[name] = []
                order.append(name)
            rows[name].append(ns)
            name = None
if not order:
    sys.exit("bench-tunnel-runs: no criterion results parsed")
print(f"{'row':28} {'runs':>4} {'min':>8} {'median':>8} {'max':>8}  (ns per packet, thread CPU)")
for name in order:
    v = rows[name]
    flag = "  > 50 ns in some run" if max(v) > 50 else ""
    print(f"{name:28} {len(v):>4} {min(v):8.1f} {statistics.median(v):8.1f} {max(v):8.1f}{flag}")
EOF
