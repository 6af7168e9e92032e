#!/usr/bin/env python3
"""Train a small 1-D audio denoiser with convnd layers beside the same net in stock torch.nn.

    python examples/train_torch.py                     # 150 steps, about 15 s on 2 CPU cores
    python examples/train_torch.py --steps 400 --plot loss.png
    python examples/train_torch.py --device cuda       # with a CUDA build of convnd and a GPU

The data is synthetic (no downloads): clean signals are sums of a few sinusoids under a slow
envelope, the input adds white noise, and the net (five convolutions: strided, depthwise and a
transposed one; a residual output) learns to remove it. Both models start from the same
weights (``convnd.torch.convert`` of a deep copy) and see the same batches in the same order,
so their loss curves should lie on top of each other. Prints progress while training, both loss
curves, the held-out loss and the time per step of each; saves both curves as a PNG with
matplotlib (skipped, saying so, when matplotlib is not installed). Needs PyTorch >= 2.4.
"""

import argparse
import copy
import math
import sys
import time

import torch
import torch.nn as nn

import convnd.torch as ct


def make_signals(n, length, gen, noise):
    """(noisy, clean), each (n, 1, length): sums of 3 sinusoids under a random envelope, plus noise."""
    t = torch.arange(length, dtype=torch.float32)
    freq = 0.005 + 0.06 * torch.rand(n, 3, 1, generator=gen)  # cycles per sample
    phase = 2 * math.pi * torch.rand(n, 3, 1, generator=gen)
    amp = 0.3 + 0.7 * torch.rand(n, 3, 1, generator=gen)
    clean = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(1, keepdim=True) / 2
    envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * (t / length + torch.rand(n, 1, 1, generator=gen)))
    clean = clean * envelope
    return clean + noise * torch.randn(clean.shape, generator=gen), clean


class Denoiser(nn.Module):
    """Predicts the noise and subtracts it from the input."""

    def __init__(self, width=16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, width, 9, padding=4), nn.ReLU(),
            nn.Conv1d(width, 2 * width, 9, stride=2, padding=4), nn.ReLU(),
            nn.Conv1d(2 * width, 2 * width, 15, padding=7, groups=2 * width), nn.ReLU(),  # depthwise
            nn.ConvTranspose1d(2 * width, width, 8, stride=2, padding=3), nn.ReLU(),
            nn.Conv1d(width, 1, 9, padding=4),
        )

    def forward(self, x):
        return x - self.net(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    ap.add_argument("--batch", type=int, default=16, help="signals per batch (default 16)")
    ap.add_argument("--length", type=int, default=1024, help="samples per signal (default 1024)")
    ap.add_argument("--width", type=int, default=16, help="channels of the first layer (default 16)")
    ap.add_argument("--noise", type=float, default=0.3, help="noise standard deviation (default 0.3)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default 3e-3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--plot", default="train_torch_loss.png", help="where the PNG goes (default %(default)s)")
    ap.add_argument("--no-plot", action="store_true", help="draw no plot")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    torch.manual_seed(args.seed)
    models = {"torch.nn": Denoiser(args.width).to(dev)}
    models["convnd"] = ct.convert(copy.deepcopy(models["torch.nn"]))  # the same initial weights
    opts = {k: torch.optim.Adam(m.parameters(), lr=args.lr) for k, m in models.items()}
    gen = torch.Generator().manual_seed(args.seed + 1)
    test_x, test_y = (t.to(dev) for t in make_signals(64, args.length, gen, args.noise))
    curves = {k: [] for k in models}
    seconds = {k: 0.0 for k in models}
    print(f"denoising {args.steps} batches of {args.batch} x {args.length} samples "
          f"(noise {args.noise}) on {dev}, {torch.get_num_threads()} threads; "
          f"{sum(p.numel() for p in models['convnd'].parameters())} parameters")
    log_every = max(1, args.steps // 10)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = (t.to(dev) for t in make_signals(args.batch, args.length, gen, args.noise))
        for k, m in models.items():
            t0 = time.perf_counter()
            opts[k].zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(m(x), y)
            loss.backward()
            opts[k].step()
            curves[k].append(loss.item())
            seconds[k] += time.perf_counter() - t0
        if step % log_every == 0 or step == args.steps:
            print(f"  step {step:4d}/{args.steps}  loss convnd {curves['convnd'][-1]:.5f}  "
                  f"torch.nn {curves['torch.nn'][-1]:.5f}  ({time.perf_counter() - start:.1f} s)", flush=True)

    print("\nloss curves (mean over each stretch of steps):")
    print(f"  {'steps':>11}  {'convnd':>9}  {'torch.nn':>9}")
    for lo in range(0, args.steps, log_every):
        hi = min(lo + log_every, args.steps)
        a, b = (sum(curves[k][lo:hi]) / (hi - lo) for k in ("convnd", "torch.nn"))
        print(f"  {lo + 1:>5}-{hi:<5}  {a:9.5f}  {b:9.5f}")
    diff = max(abs(a - b) / max(b, 1e-12) for a, b in zip(curves["convnd"], curves["torch.nn"]))
    print(f"largest relative difference between the curves: {diff:.2e}")
    with torch.no_grad():
        base = nn.functional.mse_loss(test_x, test_y).item()
        for k, m in models.items():
            print(f"held-out loss {k:>8}: {nn.functional.mse_loss(m(test_x), test_y).item():.5f} "
                  f"(noisy input: {base:.5f}); {1e3 * seconds[k] / args.steps:.1f} ms per training step")

    if args.no_plot:
        return 0
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot drawn")
        return 0
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, style in (("torch.nn", "-"), ("convnd", "--")):
        ax.plot(range(1, args.steps + 1), curves[k], style, label=k)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE)")
    ax.set_title("1-D denoiser: convnd layers vs torch.nn, same initial weights")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
