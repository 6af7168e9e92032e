"""Host time per call of a tiny CUDA conv from Python, layer by layer of convnd.torch, beside
torch.nn.functional.conv2d (the C++ side of the same is bench/cuda_host_overhead.cu).
Median of 7 rounds of back-to-back calls, one synchronisation per round; us per call.
  python3 bench/cuda_host_overhead.py [calls]"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import convnd
import convnd.torch as ct

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
dev = torch.device("cuda")
x = torch.randn(1, 8, 8, 8, device=dev).contiguous(memory_format=torch.channels_last)
w = torch.randn(8, 8, 3, 3, device=dev)
xc, wc = x.permute(0, 2, 3, 1), w.permute(0, 2, 3, 1).contiguous()  # convnd's layouts
stream = torch.cuda.current_stream()


def us(fn):
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(rounds)


def in_stream():
    with convnd.cuda_stream(stream):
        return convnd.conv_general(xc, wc, 1, ([1, 1], [1, 1]), device="cuda")


def ctx_only():
    with convnd.cuda_stream(stream):
        pass


def dev_ctx_only():
    with torch.cuda.device(dev):
        pass


p = ([1, 1], [1, 1], [1, 1], [1, 1], [0, 0], 1, False)
rows = [
    ("torch.nn.functional.conv2d", lambda: F.conv2d(x, w, padding=1)),
    ("torch.cuda.current_stream()", lambda: torch.cuda.current_stream(dev)),
    ("with torch.cuda.device(...)", dev_ctx_only),
    ("with convnd.cuda_stream(...)", ctx_only),
    ("convnd.conv_general, synchronous", lambda: convnd.conv_general(xc, wc, 1, ([1, 1], [1, 1]), device="cuda")),
    ("convnd.conv_general, in cuda_stream", in_stream),
    ("torch._C._cuda_getCurrentRawStream", lambda: torch._C._cuda_getCurrentRawStream(0)),
    ("torch._C._cuda_getDevice", lambda: torch._C._cuda_getDevice()),
    ("in cuda_stream + torch.from_dlpack(capsule)", lambda: torch.from_dlpack(in_stream().__dlpack__())),
    ("convnd.torch._conv_impl", lambda: ct._conv_impl(xc, wc, *p)),
    ("torch.ops.convnd.conv", lambda: torch.ops.convnd.conv(xc, wc, *p)),
    ("convnd.torch.conv2d", lambda: ct.conv2d(x, w, padding=1)),
]
with torch.no_grad():
    for name, fn in rows:
        print(f"{name:40s} {us(fn):9.2f} us", flush=True)

# A mid-size gradient (issue 11's through-Python figures were slower than device-resident
# ones): host time per call without synchronising, and GPU time per call back to back.
import convnd.grad as grad  # noqa: E402

n, hw, c = 256, 14, 256
dy = torch.randn(n, hw, hw, c, device=dev, dtype=torch.bfloat16)
xg = torch.randn(n, hw, hw, c, device=dev, dtype=torch.bfloat16)
wg = torch.randn(c, 3, 3, c, device=dev, dtype=torch.bfloat16)
gp = ([1, 1], [1, 1], [1, 1], [1, 1], [0, 0], 1, False)


def both(name, fn, reps=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    a.record()
    for _ in range(reps):
        fn()
    host = (time.perf_counter() - t0) / reps * 1e3
    b.record()
    b.synchronize()
    print(f"{name:48s} host {host:7.3f} ms/call  gpu {a.elapsed_time(b) / reps:7.3f} ms/call", flush=True)


def grad_in_stream(f, *args):
    def g():
        with convnd.cuda_stream(stream):
            f(*args, 1, ([1, 1], [1, 1]), device="cuda")
    return g


both("torch.ops.convnd.conv_input_grad", lambda: torch.ops.convnd.conv_input_grad(dy, wg, list(xg.shape), *gp))
both("convnd.grad.conv_general_input (stream)", grad_in_stream(grad.conv_general_input, list(xg.shape), wg, dy))
both("torch.ops.convnd.conv_weight_grad", lambda: torch.ops.convnd.conv_weight_grad(dy, xg, list(wg.shape), *gp))
both("convnd.grad.conv_general_weight (stream)", grad_in_stream(grad.conv_general_weight, xg, list(wg.shape), dy))
both("torch.ops.convnd.conv (forward)", lambda: torch.ops.convnd.conv(xg, wg, *gp))
