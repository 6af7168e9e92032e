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
    ("torch.from_dlpack(result)", None),
    ("convnd.torch._conv_impl", lambda: ct._conv_impl(xc, wc, *p)),
    ("torch.ops.convnd.conv", lambda: torch.ops.convnd.conv(xc, wc, *p)),
    ("convnd.torch.conv2d", lambda: ct.conv2d(x, w, padding=1)),
]
r = in_stream()
rows[6] = ("torch.from_dlpack(result)", lambda: torch.from_dlpack(r))
with torch.no_grad():
    for name, fn in rows:
        print(f"{name:40s} {us(fn):9.2f} us", flush=True)
