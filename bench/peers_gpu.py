"""PyTorch (cuDNN) on the problems of a convnd problem list, one problem per process with a time
limit, for bench/gpu.sh. Adapted from ../shared/bench/peers_gpu.py and peers_gpu_convT.py (which
do not travel to the GPU machine): torch.backends.cudnn.benchmark=True, channels_last, TF32 off,
medians of CUDA-event timings after a warm-up (the first call, timed separately, includes
cuDNN's algorithm search).

  python3 bench/peers_gpu.py --suite bench/gpu-suite.txt --out peers.jsonl [--timeout 60]
                             [--deadline UNIX_TIME] [--ceilings]
Writes one JSON object per problem (and one for the ceilings) to --out and to stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import time

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64"}


def parse_problem(text):
    """The subset of the problem-string grammar the suite uses (symmetric padding)."""
    f = {}
    for tok in text.split():
        k, _, v = tok.partition("=")
        f[k] = v
    ins = [int(a) for a in f["in"].split("x")]
    rank = len(ins)

    def axes(key, default):
        if key not in f:
            return [default] * rank
        vals = f[key].split("x")
        vals = vals * rank if len(vals) == 1 else vals
        return vals

    pads = axes("pad", "0")
    pad = []
    for p in pads:
        lo, _, hi = p.partition(":")
        if hi and hi != lo:
            raise ValueError("asymmetric padding is not mapped to PyTorch here")
        pad.append(int(lo))
    return {
        "op": f.get("op", "conv"),
        "n": int(f.get("n", 1)),
        "in": ins,
        "c": int(f["c"]),
        "o": int(f["o"]),
        "k": [int(a) for a in axes("k", "1")],
        "stride": [int(a) for a in axes("stride", "1")],
        "pad": pad,
        "dil": [int(a) for a in axes("dil", "1")],
        "outpad": [int(a) for a in axes("outpad", "0")],
        "g": int(f.get("g", 1)),
        "dtype": f.get("dtype", "f32"),
        "idil": f.get("idil"),
        "flip": f.get("flip"),
    }


def run_one(text):
    import torch
    import torch.nn.functional as F

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    p = parse_problem(text)
    if p["idil"] or p["flip"]:
        raise ValueError("input dilation / flip have no PyTorch conv equivalent here")
    dt = getattr(torch, DTYPES[p["dtype"]])
    rank = len(p["in"])
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(rank)
    x = torch.empty(p["n"], p["c"], *p["in"], device="cuda", dtype=dt).uniform_(-1, 1)
    if p["op"] == "convT":
        w = torch.empty(p["c"], p["o"] // p["g"], *p["k"], device="cuda", dtype=dt).uniform_(-1, 1)
    else:
        w = torch.empty(p["o"], p["c"] // p["g"], *p["k"], device="cuda", dtype=dt).uniform_(-1, 1)
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
        w = w.contiguous(memory_format=fmt)
    if p["op"] == "convT":
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
        call = lambda: fn(x, w, stride=p["stride"], padding=p["pad"], output_padding=p["outpad"], groups=p["g"],
                          dilation=p["dil"])
    else:
        fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
        call = lambda: fn(x, w, stride=p["stride"], padding=p["pad"], dilation=p["dil"], groups=p["g"])
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    y = call()
    torch.cuda.synchronize()
    first = time.time() - t
    # One warm call sizes the repetitions: about a second of them, 3 to 20.
    e0 = torch.cuda.Event(enable_timing=True)
    e1 = torch.cuda.Event(enable_timing=True)
    e0.record()
    call()
    e1.record()
    torch.cuda.synchronize()
    warm_ms = e0.elapsed_time(e1)
    reps = int(max(3, min(20, 1000.0 / max(warm_ms, 1e-3))))
    ts = []
    for _ in range(reps):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        call()
        e1.record()
        torch.cuda.synchronize()
        ts.append(e0.elapsed_time(e1))
    ts.sort()
    return {"problem": text, "ms": ts[len(ts) // 2], "min_ms": ts[0], "reps": reps, "first_call_s": round(first, 3),
            "out_elems": y.numel(), "peak_extra_GB": round((torch.cuda.max_memory_allocated() - base) / 1e9, 3),
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "device": torch.cuda.get_device_name()}


def ceilings():
    import torch

    r = {"ceilings": True, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    x = torch.empty(2**29, dtype=torch.float32, device="cuda").uniform_()  # 2 GiB
    y = torch.empty_like(x)

    def bench(fn, iters=10):
        fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(iters):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        ts.sort()
        return ts[len(ts) // 2]

    ms = bench(lambda: y.copy_(x))
    r["torch_copy_GBps"] = round(2 * x.numel() * 4 / ms / 1e6, 1)
    del x, y
    for name, dt in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        torch.backends.cuda.matmul.allow_tf32 = False
        a = torch.randn(8192, 8192, device="cuda", dtype=dt)
        b = torch.randn(8192, 8192, device="cuda", dtype=dt)
        ms = bench(lambda: a @ b, iters=5)
        r[f"gemm_{name}_TFLOPs"] = round(2 * 8192**3 / ms / 1e9, 1)
        del a, b
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one")
    ap.add_argument("--suite")
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--deadline", type=float, default=0)
    ap.add_argument("--ceilings", action="store_true")
    a = ap.parse_args()
    if a.one:
        try:
            print(json.dumps(ceilings() if a.one == "@ceilings" else run_one(a.one)), flush=True)
        except Exception as ex:  # one line, whatever failed
            print(json.dumps({"problem": a.one, "error": (type(ex).__name__ + ": " + str(ex))[:300]}), flush=True)
        return
    todo = []
    if a.ceilings:
        todo.append("@ceilings")
    with open(a.suite) as fh:
        for line in fh:
            text = line.split("#", 1)[0].strip()
            if text:
                todo.append(text)
    out = open(a.out, "w") if a.out else None
    for text in todo:
        left = a.deadline - time.time() if a.deadline else a.timeout
        if left < 5:
            rec = {"problem": text, "error": "skipped: the run's time was used up"}
        else:
            try:
                r = subprocess.run([sys.executable, __file__, "--one", text], capture_output=True, text=True,
                                   timeout=min(a.timeout, left))
                lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
                rec = json.loads(lines[-1]) if lines else {"problem": text, "error": (r.stderr.strip() or "no output")[-300:]}
            except subprocess.TimeoutExpired:
                rec = {"problem": text, "error": "over %.0f s (first call included)" % min(a.timeout, left)}
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()


if __name__ == "__main__":
    main()
