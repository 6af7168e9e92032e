"""Host overhead of a tiny convolution through convnd.torch against torch.nn.functional, in one run.

The problem is issue 12's yardstick: a conv so small that the call's host work is its cost
(x (1, 8, 8, 8) channels-last, w (8, 8, 3, 3), padding 1). For each device (cpu, and cuda when
there is a GPU and a CUDA build of convnd) and each of
  fwd       y = conv2d(x, w) under torch.no_grad()
  fwd+bwd   y = conv2d(x, w); y.sum().backward()   (x and w require grad)
it times `calls` back-to-back calls of torch.nn.functional.conv2d and of convnd.torch.conv2d,
interleaved round by round, and prints the median of the rounds in microseconds per call
(on CUDA the round ends with one synchronisation, as a training loop's step does).

With --profile FILE, each case is then run 100 more times per side under torch.profiler
(CPU and, on CUDA, the runtime calls and kernels), and the tables of both sides, ordered by
self CPU time and by device time, are written to FILE: where the extra microseconds go.

  python3 bench/torch_overhead.py [--calls 2000] [--rounds 7] [--threads 1] [--out FILE.md]
                                  [--profile FILE.txt]
"""
import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import convnd
import convnd.torch as ct

from report import emit  # noqa: E402  (bench/report.py)


def round_us(fn, calls, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def cases(device):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, 8, 8, 8, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 8, 3, 3, generator=g).to(device)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()

    def fwd(conv):
        def f():
            with torch.no_grad():
                conv(x, w, padding=1)
        return f

    def fwd_bwd(conv):
        def f():
            conv(xg, wg, padding=1).sum().backward()
        return f

    return [("fwd", fwd), ("fwd+bwd", fwd_bwd)]


def profile(fns, device, name, path):
    """Appends torch.profiler's tables of 100 calls of each side to path."""
    from torch.profiler import ProfilerActivity, profile as prof
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with open(path, "a") as f:
        for side, fn in fns.items():
            with prof(activities=acts) as p:
                for _ in range(100):
                    fn()
                if device == "cuda":
                    torch.cuda.synchronize()
            ka = p.key_averages()
            f.write(f"\n=== {device} {name} {side}: 100 calls, by self CPU time ===\n")
            f.write(ka.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60) + "\n")
            if device == "cuda":
                f.write(f"=== {device} {name} {side}: by device time ===\n")
                f.write(ka.table(sort_by="self_device_time_total", row_limit=15, max_name_column_width=60) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--profile", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and convnd.has_cuda() else [])
    rows = []
    for dev in devices:
        for name, make in cases(dev):
            fns = {"torch": make(F.conv2d), "convnd": make(ct.conv2d)}
            for fn in fns.values():  # warm-up: plans, caches, cuDNN's choice, allocator pools
                for _ in range(50):
                    fn()
            times = {k: [] for k in fns}
            calls = a.calls if name == "fwd" else max(a.calls // 4, 100)
            for _ in range(a.rounds):
                for k, fn in fns.items():
                    times[k].append(round_us(fn, calls, dev))
            t, c = statistics.median(times["torch"]), statistics.median(times["convnd"])
            rows.append((dev, name, t, c))
            if a.profile:
                profile(fns, dev, name, a.profile)
            print(f"{dev:5s} {name:8s} torch {t:8.2f} us  convnd {c:8.2f} us  extra {c - t:+8.2f} us", flush=True)
    where = torch.cuda.get_device_name() if "cuda" in devices else "no GPU"
    lines = [f"# Host overhead of a tiny conv: convnd.torch against torch.nn.functional ({time.strftime('%Y-%m-%d')})",
             "",
             f"`bench/torch_overhead.py --calls {a.calls} --rounds {a.rounds} --threads {a.threads}`: x (1, 8, 8, 8) "
             "channels-last, w (8, 8, 3, 3), padding 1, float32; back-to-back calls, median of the rounds, both "
             "interleaved in one process. "
             f"Machine: {platform.processor() or platform.machine()}, {where}; torch {torch.__version__}.", "",
             "| device | call | torch.nn.functional (us) | convnd.torch (us) | convnd extra (us) |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {d} | {n} | {t:.2f} | {c:.2f} | {c - t:+.2f} |" for d, n, t, c in rows]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
