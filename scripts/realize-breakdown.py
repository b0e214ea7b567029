#!/usr/bin/env python3
"""Per-stage breakdown of `weftctl demo bench --times FILE` runs.

    scripts/realize-breakdown.py STATE_DIR TIMES_FILE

Lines up each change's rename time (from the bench) with the controller's
`model compiled` line (its end time and `ms`, so its start) and each
switchd's first `published` line after it, and prints p50/p90/p99 of:
  notice   rename -> controller reload starts (inotify wake-up)
  reload   controller: read + translate + compile + per-node tables
  push     reload end -> last switchd published (session diff, bundle
           round trip, switchd compile + journal fdatasync + swap)
  detect   last publish -> the bench saw the flows (its poll: flow dumps
           of every node, 2 ms sleep)
  total    the bench's realization time
"""
import datetime
import re
import sys
from pathlib import Path

TS = re.compile(r"^(\S+Z)\s")


def ts(line):
    m = TS.match(line)
    if not m:
        return None
    d = datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1e6


def events(path, needle):
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if needle in line:
            t = ts(line)
            if t is not None:
                out.append((t, line))
    return out


def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    i = max(1, min(len(v), int(-(-p * len(v) // 100))))
    return v[i - 1]


def main():
    state, times = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [l.split() for l in times.read_text().splitlines() if l and not l.startswith("#")]
    head = times.read_text().splitlines()[0].split()[3:]
    compiled = events(state / "controller.log", "model compiled")
    published = {n: events(state / f"{n}-switchd.log", "published") for n in head}
    stages = {k: [] for k in ("notice", "reload", "push", "detect", "total")}
    starts = [int(r[1]) for r in rows]
    for k, r in enumerate(rows):
        t0 = int(r[1])
        nxt = starts[k + 1] if k + 1 < len(starts) else float("inf")
        total = max(float(x) for x in r[2:])
        c = next((c for c in compiled if t0 < c[0] < nxt), None)
        if c is None:
            continue
        ms = float(re.search(r" ms=([0-9.]+)", c[1]).group(1))
        end = c[0]
        start = end - ms * 1e3
        pubs = []
        for n in head:
            p = next((p[0] for p in published[n] if end - ms * 1e3 < p[0] < nxt), None)
            if p is not None:
                pubs.append(p)
        if not pubs:
            continue
        last = max(pubs)
        stages["notice"].append((start - t0) / 1e3)
        stages["reload"].append(ms)
        stages["push"].append((last - end) / 1e3)
        stages["detect"].append(total - (last - t0) / 1e3)
        stages["total"].append(total)
    print(f"{len(stages['total'])} changes lined up (ms)")
    print(f"{'stage':8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for k, v in stages.items():
        print(f"{k:8} {pct(v, 50):8.2f} {pct(v, 90):8.2f} {pct(v, 99):8.2f} {max(v) if v else float('nan'):8.2f}")


if __name__ == "__main__":
    main()
