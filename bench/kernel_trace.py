"""The GPU kernels of one gradient (or forward) call, cuDNN's and convnd's, with their launch
geometry and their place on the device's timeline: what a layer's time is made of, on a machine
with no Nsight Systems.

For each problem and direction, after a warm-up, one call of each under torch.profiler:
  cuDNN:  torch.ops.aten.convolution_backward (or the functional conv for fwd) on channels-last
          tensors, cudnn.benchmark=True, TF32 off, as bench/grad_gpu.py times it;
  convnd: torch.ops.convnd.conv_weight_grad / conv_input_grad / the forward through
          convnd.torch, on the same tensors.
Prints, per call, each kernel's start (us after the call's first kernel), duration, grid, block,
registers and shared memory, its name cut to --width characters, then the call's span (first
start to last end) and the sum of kernel durations: a span well over the sum means kernels wait
on launches or on each other; a sum well over the span means they overlap.

  python3 bench/kernel_trace.py --dir bwd_w 'n=256 in=56x56 c=64 o=64 k=3x3 pad=1 dtype=bf16' ...
"""
import argparse, json, os, sys, tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grad_gpu import cl, parse  # noqa: E402


def calls(problem, d):
    """(label, fn) for cuDNN and, where convnd.torch imports, for convnd."""
    p = parse(problem)
    r, dev, dt = p["rank"], "cuda", p["dtype"]
    x = cl(torch.randn(p["n"], p["c"], *p["in"], device=dev, dtype=dt))
    w = cl(torch.randn(p["o"], p["c"] // p["g"], *p["k"], device=dev, dtype=dt))
    F = torch.nn.functional
    fwd = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[r]
    kw = dict(stride=p["stride"], padding=p["pad"], dilation=p["dil"], groups=p["g"])
    with torch.no_grad():
        y = fwd(x, w, **kw)
    dy = cl(torch.randn_like(y))
    out = []
    if d == "fwd":
        out.append(("cuDNN", lambda: fwd(x, w, **kw)))
    else:
        mask = [d == "bwd_d", d == "bwd_w", False]
        out.append(("cuDNN", lambda: torch.ops.aten.convolution_backward(
            dy, x, w, None, p["stride"], p["pad"], p["dil"], False, [0] * r, p["g"], mask)))
    try:
        import convnd.torch  # noqa: F401  (registers torch.ops.convnd)
    except Exception as e:  # noqa: BLE001
        print(f"  (convnd.torch not importable: {e})")
        return out
    # convnd's operators in its own layouts (channels last; w [O, *k, C/g]), as grad_gpu.py
    # times them: the same values' shapes, permuted.
    perm = lambda t: t.permute(0, *range(2, r + 2), 1).contiguous()
    xc, dyc, wc = perm(x), perm(dy), perm(w)
    params = (p["stride"], p["pad"], p["pad"], p["dil"], [0] * r, p["g"], False)
    if d == "fwd":
        out.append(("convnd", lambda: torch.ops.convnd.conv(xc, wc, *params)))
    elif d == "bwd_d":
        out.append(("convnd", lambda: torch.ops.convnd.conv_input_grad(dyc, wc, list(xc.shape), *params)))
    else:
        out.append(("convnd", lambda: torch.ops.convnd.conv_weight_grad(dyc, xc, list(wc.shape), *params)))
    return out


def trace(fn, width):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    os.unlink(path)
    ks = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    if not ks:
        print("    no kernels recorded")
        return
    t0 = ks[0]["ts"]
    for e in ks:
        a = e.get("args", {})
        print(f"    {e['ts'] - t0:8.1f} us {e['dur']:8.1f} us  grid={a.get('grid')} block={a.get('block')} "
              f"regs={a.get('registers per thread')} smem={a.get('shared memory')} stream={a.get('stream')}  "
              f"{e['name'][:width]}")
    span = max(e["ts"] + e["dur"] for e in ks) - t0
    print(f"    span {span:.1f} us, kernel time {sum(e['dur'] for e in ks):.1f} us, {len(ks)} kernels")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("problems", nargs="+")
    ap.add_argument("--dir", default="bwd_w", choices=["fwd", "bwd_d", "bwd_w"])
    ap.add_argument("--width", type=int, default=110)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for problem in a.problems:
        print(f"{problem} dir={a.dir}")
        for label, fn in calls(problem, a.dir):
            print(f"  {label}")
            try:
                trace(fn, a.width)
            except Exception as e:  # noqa: BLE001
                print(f"    failed: {e}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
