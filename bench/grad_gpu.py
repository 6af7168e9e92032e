"""The gradients (and with --dirs, the forward conv) on an NVIDIA GPU against cuDNN (through
PyTorch), in one run.

For each problem of bench/gpu-grad-suite.txt and each direction of --dirs (default bwd_d, bwd_w):
  cuDNN:  torch.ops.aten.convolution_backward on channels-last CUDA tensors with only that
          gradient asked for (torch.backends.cudnn.benchmark=True, TF32 off): the first call
          (which includes cuDNN's algorithm search) and the median of CUDA-event timings;
  convnd: `gpu_bench --reps R 'dir=... problem'` (device-resident: device tensors, the plan
          made once, CUDA-event timings of execute(), which synchronizes);
  convnd through Python (when `import convnd.torch` works and convnd has CUDA): the gradient
          operators a PyTorch model's backward calls (torch.ops.convnd.conv_input_grad /
          conv_weight_grad) on CUDA tensors, back to back on PyTorch's stream: the first
          call (planning included) and the mean per call over R calls between two events.
Writes one JSON line per measurement and a markdown table (ratio = cuDNN ms / convnd ms).

  python3 bench/grad_gpu.py --gpu-bench PATH --out grad-gpu.md [--suite bench/gpu-grad-suite.txt]
"""
import argparse, json, subprocess, sys, time

import torch

from report import emit, summaries  # noqa: E402  (bench/report.py)

DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64}


def parse(problem):
    f = dict(kv.split("=") for kv in problem.split())
    dims = lambda v: [int(t) for t in v.split("x")]
    ins = dims(f["in"])
    r = len(ins)
    per = lambda key, d: (dims(f[key]) * r)[:r] if key in f else [d] * r
    return {"op": f.get("op", "conv"), "n": int(f.get("n", 1)), "c": int(f["c"]), "o": int(f["o"]), "in": ins,
            "g": int(f.get("g", 1)), "k": per("k", 1), "stride": per("stride", 1), "pad": per("pad", 0),
            "dil": per("dil", 1),
            "dtype": DT[f.get("dtype", "f32")], "rank": r}


def cl(t):
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5:
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def torch_times(problem, d, reps):
    p = parse(problem)
    r, tr = p["rank"], p["op"] == "convT"
    dev, dt = "cuda", p["dtype"]
    x = cl(torch.randn(p["n"], p["c"], *p["in"], device=dev, dtype=dt))
    w = torch.randn(p["c"], p["o"] // p["g"], *p["k"], device=dev, dtype=dt) if tr else \
        torch.randn(p["o"], p["c"] // p["g"], *p["k"], device=dev, dtype=dt)
    w = cl(w)
    fwd = torch.nn.functional.conv_transpose1d if tr else {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
                                                           3: torch.nn.functional.conv3d}[r]
    with torch.no_grad():
        y = fwd(x, w, stride=p["stride"], padding=p["pad"], groups=p["g"], dilation=p["dil"])
    dy = cl(torch.randn_like(y))
    mask = [d == "bwd_d", d == "bwd_w", False]
    if d == "fwd":
        def fn():
            with torch.no_grad():
                return fwd(x, w, stride=p["stride"], padding=p["pad"], groups=p["g"], dilation=p["dil"])
    else:
        fn = lambda: torch.ops.aten.convolution_backward(dy, x, w, None, p["stride"], p["pad"], p["dil"], tr,
                                                         [0] * r, p["g"], mask)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return first, ts[len(ts) // 2]


def python_times(problem, d, reps):
    """convnd's gradient through its PyTorch operator, as a model's backward calls it."""
    import convnd.torch  # noqa: F401  (registers torch.ops.convnd)
    p = parse(problem)
    r, tr, g = p["rank"], p["op"] == "convT", p["g"]
    dev, dt = "cuda", p["dtype"]
    s, pad, k = p["stride"], p["pad"], p["k"]
    dil = p["dil"]
    out = [(i - 1) * st - 2 * pd + dl * (kk - 1) + 1 if tr else (i + 2 * pd - dl * (kk - 1) - 1) // st + 1
           for i, kk, st, pd, dl in zip(p["in"], k, s, pad, dil)]
    x = torch.randn(p["n"], *p["in"], p["c"], device=dev, dtype=dt)  # convnd's layouts: channels last,
    dy = torch.randn(p["n"], *out, p["o"], device=dev, dtype=dt)     # w [O, *k, C/g] in both directions
    w = torch.randn(p["o"], *k, p["c"] // g, device=dev, dtype=dt)
    params = (s, pad, pad, dil, [0] * r, g, tr)
    if d == "fwd":
        fn = lambda: torch.ops.convnd.conv(x, w, *params)
    elif d == "bwd_d":
        fn = lambda: torch.ops.convnd.conv_input_grad(dy, w, list(x.shape), *params)
    else:
        fn = lambda: torch.ops.convnd.conv_weight_grad(dy, x, list(w.shape), *params)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(2):
        fn()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    b.synchronize()
    return first, a.elapsed_time(b) / reps


def convnd_time(gpu_bench, problem, d, reps, algorithm=None):
    extra = ["--algorithm", algorithm] if algorithm else []
    out = subprocess.run([gpu_bench, "--reps", str(reps), *extra, f"{problem} dir={d}"], capture_output=True,
                         text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith('{"problem"'):
            j = json.loads(line)
            if "median_ms" in j:
                return j["median_ms"], j.get("algorithm", "?"), j.get("plan_ms")
            return None, j.get("error", "?"), None
    return None, (out.stderr or out.stdout)[-200:], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu-bench", required=True)
    ap.add_argument("--suite", default="bench/gpu-grad-suite.txt")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument("--dirs", default="bwd_d,bwd_w", help="comma-separated: fwd, bwd_d, bwd_w")
    ap.add_argument("--alt", action="append", default=[], metavar="DIR=ALGORITHM",
                    help="also time convnd device-resident with this algorithm forced for that direction "
                         "(e.g. the algorithm a new one replaces), in the same run")
    ap.add_argument("--no-cudnn-benchmark", action="store_true",
                    help="cuDNN's heuristic choice instead of its timed search (which can take minutes on "
                         "the long-kernel transposed convs)")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    probs = [l.split("#")[0].strip() for l in open(a.suite)]
    probs = [p for p in probs if p]
    try:
        import convnd
        have_python = convnd.has_cuda()
    except ImportError:
        have_python = False
    if have_python:  # the process's one-time costs (operator registration, dispatch caches) out of 'first'
        python_times("n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dtype=bf16", "bwd_d", 1)
        python_times("n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dtype=bf16", "bwd_w", 1)
    dirs = [d for d in a.dirs.split(",") if d]
    alts = [tuple(v.split("=", 1)) for v in a.alt]
    recs = []
    for prob in probs:
        for d in dirs:
            cms, algo, plan_ms = convnd_time(a.gpu_bench, prob, d, a.reps)
            print(f"convnd {prob} {d}: {cms} ms ({algo})", file=sys.stderr, flush=True)
            alt_runs = []
            for ad, aalgo in alts:
                if ad == d and aalgo != algo:
                    ams, aname, _ = convnd_time(a.gpu_bench, prob, d, a.reps, aalgo)
                    alt_runs.append({"algorithm": aalgo, "ms": ams, "note": None if ams else aname})
            try:
                first, tms = torch_times(prob, d, a.reps)
            except Exception as e:  # an out-of-memory or unsupported case: say so
                first, tms = None, None
                print(f"torch failed on {prob} {d}: {e}", file=sys.stderr)
            py_first = py_ms = None
            if have_python:
                try:
                    py_first, py_ms = python_times(prob, d, a.reps)
                except Exception as e:
                    print(f"convnd through Python failed on {prob} {d}: {e}", file=sys.stderr)
            rec = {"problem": prob, "dir": d, "cudnn_first_ms": first and round(first, 2), "cudnn_ms": tms and round(tms, 4),
                   "convnd_ms": cms, "convnd_algorithm": algo, "convnd_plan_ms": plan_ms,
                   "python_first_ms": py_first and round(py_first, 2), "python_ms": py_ms and round(py_ms, 4),
                   "ratio": round(tms / cms, 3) if tms and cms else None,
                   "python_ratio": round(tms / py_ms, 3) if tms and py_ms else None, "alt": alt_runs}
            print(json.dumps(rec), flush=True)
            recs.append(rec)
    name = torch.cuda.get_device_name()
    lines = [f"# GPU gradients: convnd against cuDNN's backward, {time.strftime('%Y-%m-%d')}", "",
             f"Device: {name}. torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()} "
             f"(`aten.convolution_backward`, channels-last, cudnn.benchmark={torch.backends.cudnn.benchmark}, TF32 off; CUDA-event median after "
             "warm-up; 'first' is the first call, algorithm search included). convnd: `gpu_bench` "
             "(device-resident, CUDA events around execute()); 'Python' is convnd through its PyTorch operator "
             "(torch.ops.convnd.conv_input_grad / conv_weight_grad, back to back on PyTorch's stream; 'first' "
             "includes planning). Ratio = cuDNN ms / convnd ms (above 1: convnd is faster).", "",
             "| problem | direction | cuDNN first ms | cuDNN ms | convnd ms | convnd algorithm | ratio | "
             "Python first ms | Python ms | Python ratio | other algorithms, ms (ratio) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in recs:
        other = "; ".join(f"{x['algorithm']} {x['ms']}" + (f" ({r['cudnn_ms'] / x['ms']:.3f})" if x["ms"] and
                                                           r["cudnn_ms"] else "") for x in r["alt"])
        lines.append(f"| `{r['problem']}` | {r['dir']} | {r['cudnn_first_ms']} | {r['cudnn_ms']} | {r['convnd_ms']} | "
                     f"{r['convnd_algorithm']} | {r['ratio']} | {r['python_first_ms']} | {r['python_ms']} | "
                     f"{r['python_ratio']} | {other} |")
    summaries(lines, [(f"{d} on the bf16 layers, {what}",
                       [r[key] for r in recs if r["dir"] == d and "dtype=bf16" in r["problem"]])
                      for d in dirs for key, what in (("ratio", "device-resident"), ("python_ratio", "through Python"))])
    emit(lines, a.out)


if __name__ == "__main__":
    main()
