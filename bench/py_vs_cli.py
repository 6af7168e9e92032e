"""Where a CPU call from Python loses time against the same call in C++ (`convnd bench`).

On 16 cores convnd.torch ran some layers at half the speed of `convnd bench` (bench/results/
cpu-vs-torch-2026-12-07-spr-16t-partial.md). This times each problem, f32, at --threads T, as:
  cli:         `convnd bench` (plans once, reuses its tensors);
  numpy:       convnd.conv_general on NumPy arrays, in a process that never imports torch;
  torch:       convnd.torch.convNd on channels-last tensors, torch imported, its convs not run;
  torch-after: the same, each call right after one of PyTorch's own (its OpenMP team awake);
  own-after:   torch-after with CONVND_CPU_POOL=own (convnd's own workers, not PyTorch's team);
with the minor page faults per call of each Python side. Each Python side runs in a child
process of its own.

  python bench/py_vs_cli.py --cli build/convnd --threads 16 --out bench/results/py-vs-cli-<date>.md
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

PROBLEMS = ["n=8 in=56x56 c=64 o=64 k=3x3 pad=1", "n=8 in=56x56 c=256 o=64",
            "n=8 in=56x56 c=384 o=384 k=3x3 pad=1 g=384", "n=1 in=16x16x16 c=32 o=32 k=3x3x3 pad=1"]


def fields(problem):
    f = dict(kv.split("=") for kv in problem.split())
    dims = lambda v: [int(t) for t in v.split("x")]
    sp = dims(f["in"])
    k = dims(f.get("k", "x".join(["1"] * len(sp))))
    return int(f.get("n", 1)), sp, int(f["c"]), int(f["o"]), k, int(f.get("pad", 0)), int(f.get("g", 1))


def child(side, problem, threads, reps):
    """Runs in the child: prints {"ms": median, "faults": per call}."""
    n, sp, c, o, k, pad, g = fields(problem)
    if side == "numpy":
        import numpy as np
        import convnd
        x = np.random.default_rng(0).standard_normal((n, *sp, c), dtype=np.float32)
        w = np.random.default_rng(1).standard_normal((o, *k, c // g), dtype=np.float32)
        call = lambda: convnd.conv_general(x, w, padding=pad, groups=g, threads=threads)
    else:
        import torch
        import torch.nn.functional as F
        import convnd.torch as ct
        torch.set_num_threads(threads)
        fmt = torch.channels_last if len(sp) == 2 else torch.channels_last_3d if len(sp) == 3 else torch.contiguous_format
        x = torch.randn(n, c, *sp).to(memory_format=fmt)
        w = torch.randn(o, c // g, *k).to(memory_format=fmt)
        name = f"conv{len(sp)}d"
        mine, theirs = getattr(ct, name), getattr(F, name)
        if side == "torch":
            call = lambda: mine(x, w, padding=pad, groups=g)
        else:
            def call():
                theirs(x, w, padding=pad, groups=g)
                t = time.perf_counter()
                mine(x, w, padding=pad, groups=g)
                return time.perf_counter() - t
    for _ in range(3):
        call()
    ts, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(reps):
        t = time.perf_counter()
        inner = call()
        ts.append(inner if isinstance(inner, float) else time.perf_counter() - t)
        inner = None  # the result goes before the next call, as in a loop that drops it
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / reps
    print(json.dumps({"ms": statistics.median(ts) * 1e3, "faults": faults}))


def cpu_model():
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return os.uname().machine


def run_child(side, problem, a):
    env = dict(os.environ, CONVND_CPU_POOL="own") if side == "own-after" else None
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                          "torch-after" if side == "own-after" else side, "--one", problem,
                          "--threads", str(a.threads), "--reps", str(a.reps)],
                         capture_output=True, text=True, timeout=300, env=env)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{side} {problem}: {out.stderr[-400:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=False)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out")
    ap.add_argument("--child")
    ap.add_argument("--one")
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.one, a.threads, a.reps)
    rows = []
    for prob in ([a.one] if a.one else PROBLEMS):
        row = {"problem": prob}
        if a.cli:
            out = subprocess.run([a.cli, "bench", prob, "--json", "--threads", str(a.threads), "--reps", str(a.reps)],
                                 capture_output=True, text=True, timeout=300)
            row["cli"] = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])["median_s"] * 1e3
        for side in ("numpy", "torch", "torch-after", "own-after"):
            r = run_child(side, prob, a)
            row[side], row[side + " faults"] = r["ms"], r["faults"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.out:
        cols = ["cli", "numpy", "torch", "torch-after", "own-after"]
        with open(a.out, "w") as f:
            f.write(f"# convnd from Python against `convnd bench`, f32, {a.threads} threads\n\n"
                    f"`{' '.join(sys.argv)}` on {cpu_model()} ({os.cpu_count()} CPUs). "
                    "ms: median of the calls; faults: minor page faults per call.\n\n"
                    "| problem | " + " | ".join(f"{c} ms" for c in cols) + " | numpy faults | torch faults |\n"
                    "| --- | " + " | ".join("---" for _ in cols) + " | --- | --- |\n")
            for r in rows:
                f.write(f"| `{r['problem']}` | " + " | ".join(f"{r[c]:.3f}" if c in r else "-" for c in cols) +
                        f" | {r['numpy faults']:.1f} | {r['torch faults']:.1f} |\n")


if __name__ == "__main__":
    main()
