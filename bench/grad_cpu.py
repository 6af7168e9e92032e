"""The gradients on the CPU against PyTorch's own backward, in one process, back to back.

For each layer of the CPU suite and each gradient (bwd_d: the input's, bwd_w: the weight's):
  torch:  torch.ops.aten.convolution_backward on channels-last tensors (oneDNN), with only that
          gradient asked for, torch.set_num_threads(T);
  convnd: convnd.grad.* from Python on NumPy views of the same torch tensors (no copies: a
          channels-last NCHW tensor is an NHWC array), threads=T: what a user's call costs,
          Python overhead included.
Both take the median of `--reps` calls after a warm-up, interleaved per problem. Prints one
JSON line per measurement and writes a markdown table with the ratios (torch ms / convnd ms).

  python bench/grad_cpu.py --threads 2 --out bench/results/grad-cpu-<date>.md
Needs torch and convnd importable (bench/grad_cpu.sh sets that up).
"""
import argparse, datetime, json, os, platform, re, statistics, time

import subprocess

import numpy as np
import torch

from report import emit, summaries  # noqa: E402  (bench/report.py: scripts run as bench/<name>.py)

try:  # the Python package; without it (--convnd-cli) the CLI times convnd instead
    import convnd
    import convnd.grad as cg
except ImportError:
    convnd = cg = None

# The CPU suite's layers (../shared/bench/cpu-suite.txt), without its 2^31-element case.
SUITE = [
    "n=8 in=56x56 c=64 o=64 k=3x3 pad=1",
    "n=8 in=14x14 c=256 o=256 k=3x3 pad=1",
    "n=8 in=56x56 c=256 o=64",
    "n=8 in=56x56 c=384 o=384 k=3x3 pad=1 g=384",
    "n=1 in=16x16x16 c=32 o=32 k=3x3x3 pad=1",
    "op=convT in=5160 c=1 o=1 k=4096 stride=1024",
    "op=convT in=20000 c=1 o=1 k=4096 stride=1024",
    "op=convT in=10000 c=512 o=256 k=16 stride=8",
]


def parse(problem):
    f = dict(kv.split("=") for kv in problem.split())
    dims = lambda v: [int(t) for t in v.split("x")]
    p = {"op": f.get("op", "conv"), "n": int(f.get("n", 1)), "c": int(f["c"]), "o": int(f["o"]),
         "in": dims(f["in"]), "g": int(f.get("g", 1))}
    r = len(p["in"])
    per = lambda key, d: (dims(f[key]) * r)[:r] if key in f and "x" not in f[key] else (dims(f[key]) if key in f else [d] * r)
    p["k"] = per("k", 1)
    p["stride"] = per("stride", 1)
    p["pad"] = per("pad", 0)
    return p


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def cl(t):  # channels-last memory for a 4-D or 5-D tensor
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5:
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.transpose(1, 2).contiguous().transpose(1, 2)  # 3-D: (N, C, L) stored as (N, L, C)


def nhwc(t):  # the channels-last tensor as a NumPy array [N, spatial..., C], no copy
    return t.permute(0, *range(2, t.dim()), 1).numpy()


def cli_ms(cli, problem, d, threads, reps):
    """convnd's median through `convnd bench` (C++, no Python in the loop), milliseconds."""
    out = subprocess.run([cli, "bench", f"{problem} dir={d}", "--json", "--threads", str(threads), "--reps", str(reps)],
                         capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["median_s"] * 1e3
    raise RuntimeError(out.stderr[-300:])


def case(problem, threads, reps, cli=None):
    p = parse(problem)
    r = len(p["in"])
    torch.manual_seed(0)
    transposed = p["op"] == "convT"
    N, C, O, g = p["n"], p["c"], p["o"], p["g"]
    x = cl(torch.randn(N, C, *p["in"]))
    # torch's weight: conv (O, C/g, k...), transposed conv (C, O/g, k...).
    w = torch.randn(C, O // g, *p["k"]) * 0.01 if transposed else torch.randn(O, C // g, *p["k"])
    w = cl(w)
    fwd = torch.nn.functional.conv_transpose1d if transposed else {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[r]
    y = fwd(x, w, stride=p["stride"], padding=p["pad"], groups=g)
    dy = cl(torch.randn_like(y))
    # convnd's weight [O, k..., C/g] (for a transposed conv: O its output channels).
    if transposed:
        w_cn = w.reshape(g, C // g, O // g, *p["k"]).permute(0, 2, *range(3, 3 + r), 1).reshape(O, *p["k"], C // g)
    else:
        w_cn = w.permute(0, *range(2, 2 + r), 1)
    w_cn = np.ascontiguousarray(w_cn.numpy())
    xs, dys = nhwc(x), nhwc(dy)
    w_shape = w_cn.shape
    kw = dict(stride=p["stride"], padding=p["pad"], groups=g, threads=threads)
    out = []
    for d in ("bwd_d", "bwd_w"):
        mask = [d == "bwd_d", d == "bwd_w", False]
        t_fn = lambda: torch.ops.aten.convolution_backward(dy, x, w, None, p["stride"], p["pad"], [1] * r, transposed,
                                                           [0] * r, g, mask)
        if cli:
            c_fn = None
        elif transposed:
            c_fn = (lambda: cg.conv_transpose1d_input(xs.shape, w_cn, dys, **kw)) if d == "bwd_d" else \
                   (lambda: cg.conv_transpose1d_weight(xs, w_shape, dys, **kw))
        else:
            fin = getattr(cg, f"conv{r}d_input")
            fw = getattr(cg, f"conv{r}d_weight")
            c_fn = (lambda: fin(xs.shape, w_cn, dys, **kw)) if d == "bwd_d" else (lambda: fw(xs, w_shape, dys, **kw))
        if cli:  # the C++ path: timings only (the CLI's `check` tests the answers)
            tt, tc = [], []
            for _ in range(2):
                tt.append(median_ms(t_fn, reps))
                tc.append(cli_ms(cli, problem, d, threads, reps))
            rec = {"problem": problem, "dir": d, "torch_ms": round(min(tt), 3), "convnd_ms": round(min(tc), 3),
                   "ratio": round(min(tt) / min(tc), 3), "max_rel_diff": None}
            print(json.dumps(rec), flush=True)
            out.append(rec)
            continue
        # Same answer first (relative to the gradient's scale), then time, interleaved twice.
        ref = t_fn()[0 if d == "bwd_d" else 1]
        ref = nhwc(cl(ref)) if d == "bwd_d" else (ref.reshape(g, C // g, O // g, *p["k"]).permute(0, 2, *range(3, 3 + r), 1).reshape(O, *p["k"], C // g).numpy() if transposed else ref.permute(0, *range(2, 2 + r), 1).numpy())
        got = np.asarray(c_fn())
        err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
        tt, tc = [], []
        for _ in range(2):
            tt.append(median_ms(t_fn, reps))
            tc.append(median_ms(c_fn, reps))
        rec = {"problem": problem, "dir": d, "torch_ms": round(min(tt), 3), "convnd_ms": round(min(tc), 3),
               "ratio": round(min(tt) / min(tc), 3), "max_rel_diff": float(f"{err:.2e}")}
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def onednn():
    m = re.search(r"(?:oneDNN|MKL-DNN) v([0-9.]+)", torch.__config__.show())
    return f"oneDNN {m.group(1)}" if m else "oneDNN version unknown"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    isa = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "baseline")
    return f"{cpu}, {os.cpu_count()} cores, {isa}, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default=None, help="a regex: the problems to run")
    ap.add_argument("--convnd-cli", default=None,
                    help="time convnd with this `convnd` program's bench command instead of the Python package")
    a = ap.parse_args()
    if not a.convnd_cli and cg is None:
        ap.error("convnd is not importable: install it, or pass --convnd-cli build/convnd")
    torch.set_num_threads(a.threads)
    recs = []
    for prob in SUITE:
        if a.only and not re.search(a.only, prob):
            continue
        recs += case(prob, a.threads, a.reps, a.convnd_cli)
    lines = [f"# CPU gradients: convnd against PyTorch's backward, {datetime.date.today()}", "",
             f"Machine: {machine()}. {a.threads} threads for both. torch {torch.__version__} "
             f"({onednn()}); " +
             (f"convnd through `{os.path.basename(a.convnd_cli)} bench` (C++, its own random tensors of the same "
              "shapes). " if a.convnd_cli else
              f"convnd {getattr(convnd, '__version__', '?')} from Python on NumPy views of the same channels-last "
              "tensors. ") + "Median of the calls, the better of two interleaved rounds; ratio = torch ms / convnd ms "
             "(above 1: convnd is faster).", "",
             "| problem | gradient | torch ms | convnd ms | ratio | max rel. diff |", "| --- | --- | --- | --- | --- | --- |"]
    for r in recs:
        lines.append(f"| `{r['problem']}` | {r['dir']} | {r['torch_ms']} | {r['convnd_ms']} | {r['ratio']} | {r['max_rel_diff']} |")
    summaries(lines, [(d, [r["ratio"] for r in recs if r["dir"] == d]) for d in ("bwd_d", "bwd_w")])
    emit(lines, a.out)


if __name__ == "__main__":
    main()
