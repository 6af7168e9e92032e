#!/usr/bin/env python3
"""Times two builds of the convnd CLI against each other on a suite, in one run: for each
problem, `convnd bench --json` with build A, then B, then A, then B (interleaved, so drift of
the machine hits both), and the better median of each side is kept. Used to show that a change
that should not touch speed (a restructuring) did not.

  bench/before_after.py --before OLD/convnd --after build/convnd --suite ../shared/bench/cpu-suite.txt \
      --out bench/results/arch-before-after-cpu.md [--skip-large] [-- extra bench args]
"""
import argparse
import datetime
import json
import math
import platform
import subprocess
import sys


def problems(path):
    for line in open(path):
        body = line.split("#", 1)[0].strip()
        if body:
            yield body


def bench(binary, problem, reps, extra):
    cmd = [binary, "bench", problem, "--json", "--reps", str(reps)] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return d, None


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--suite", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    rows, ratios = [], []
    for prob in problems(a.suite):
        if a.skip_large and prob.startswith("n=1025"):
            continue
        best = {"before": None, "after": None}
        algo = {}
        err = None
        for _ in range(a.rounds):
            for side, binary in (("before", a.before), ("after", a.after)):
                d, e = bench(binary, prob, a.reps, a.extra)
                if e:
                    err = f"{side}: {e}"
                    continue
                algo[side] = d["algorithm"]
                t = d["median_s"] * 1e3
                best[side] = t if best[side] is None else min(best[side], t)
        print(prob, best, err or "", flush=True)
        if best["before"] and best["after"]:
            r = best["before"] / best["after"]
            ratios.append(r)
            rows.append(f"| `{prob}` | {algo.get('after', '')} | {best['before']:.3f} | {best['after']:.3f} | {r:.3f} |")
        else:
            rows.append(f"| `{prob}` | | | | {err} |")
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    text = "\n".join([
        f"# Before and after, {datetime.date.today().isoformat()}", "",
        f"Machine: {cpu_name()}, {platform.machine()}. Same run, interleaved "
        f"({a.rounds} rounds of `convnd bench --reps {a.reps}` per side; the better median kept).", "",
        f"before: `{a.before}`; after: `{a.after}`; extra arguments: `{' '.join(a.extra)}`", "",
        "| problem | algorithm (after) | before ms | after ms | before/after |",
        "| --- | --- | --- | --- | --- |", *rows, "",
        f"Geometric mean of before/after: {gm:.3f} (above 1: the new code is faster).", ""])
    open(a.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
