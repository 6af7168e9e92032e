#!/usr/bin/env python3
"""Trains a small 1-D denoiser twice from the same initial weights: once with mlx.nn's
convolutions, once with convnd's (convnd.mlx.convert on a copy of the same model), and prints
and plots the two loss curves.

The data is synthetic (no downloads): sums of a few sinusoids with random frequencies, phases
and amplitudes, plus white noise; the model maps the noisy signal back to the clean one.
The model has a strided Conv1d and a ConvTranspose1d (the down/up-sampling pair of audio
models) between ordinary Conv1d layers. Each training step is compiled with mx.compile, so
this exercises convnd.mlx's primitives and their gradients inside compiled graphs.

    python examples/train_mlx.py                 # 200 steps: ~25 s on 2 cores, most of it mlx.nn's
    python examples/train_mlx.py --quick         # 20 steps (the test suite runs this)
    python examples/train_mlx.py --plot out.png  # where the PNG goes (default: train_mlx_losses.png)

Needs mlx (pip install 'mlx[cpu]') and convnd built with its MLX extension; matplotlib for the
plot (skipped, saying so, without it).
"""

import argparse
import math
import sys
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

import convnd.mlx as cm


class Denoiser(nn.Module):
    def __init__(self, channels: int = 16, k: int = 9):
        super().__init__()
        self.inp = nn.Conv1d(1, channels, k, padding=k // 2)
        self.down = nn.Conv1d(channels, channels, k, stride=2, padding=k // 2)
        self.mid = nn.Conv1d(channels, channels, k, padding=k // 2, groups=4)
        self.up = nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1)
        self.out = nn.Conv1d(channels, 1, k, padding=k // 2)

    def __call__(self, x):  # x: [N, L, 1]
        h = nn.relu(self.inp(x))
        d = nn.relu(self.down(h))
        d = nn.relu(self.mid(d)) + d
        u = nn.relu(self.up(d)) + h
        return x + self.out(u)  # predicts the correction


def batch(key, n: int, length: int, noise: float):
    """(noisy, clean) [n, length, 1]: 1-3 sinusoids per signal plus Gaussian noise."""
    k1, k2, k3, k4, k5 = mx.random.split(key, 5)
    t = mx.arange(length, dtype=mx.float32)[None, :, None]  # [1, L, 1]
    freq = mx.random.uniform(0.005, 0.08, (n, 1, 3), key=k1)
    phase = mx.random.uniform(0, 2 * math.pi, (n, 1, 3), key=k2)
    amp = mx.random.uniform(0.2, 1.0, (n, 1, 3), key=k3) * (mx.random.uniform(shape=(n, 1, 3), key=k4) < 0.7)
    clean = (amp * mx.sin(2 * math.pi * freq * t + phase)).sum(axis=-1, keepdims=True)
    return clean + noise * mx.random.normal(clean.shape, key=k5), clean


def train(model, steps: int, n: int, length: int, lr: float, seed: int, log, label: str):
    opt = optim.Adam(learning_rate=lr)
    loss_fn = lambda m, x, y: nn.losses.mse_loss(m(x), y)  # noqa: E731
    step_vg = nn.value_and_grad(model, loss_fn)
    state = [model.state, opt.state]

    def step_fn(x, y):
        loss, grads = step_vg(model, x, y)
        opt.update(model, grads)
        return loss

    compiled = mx.compile(step_fn, inputs=state, outputs=state)
    key = mx.random.key(seed)  # the same batches for both runs
    losses, t0 = [], time.perf_counter()
    for i in range(steps):
        key, sub = mx.random.split(key)
        x, y = batch(sub, n, length, noise=0.5)
        loss = compiled(x, y)
        mx.eval(state)
        losses.append(loss.item())
        if log and (i % max(1, steps // 10) == 0 or i == steps - 1):
            print(f"  [{label}] step {i + 1:4d}/{steps}  loss {losses[-1]:.5f}  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return losses, time.perf_counter() - t0


def plot(path: str, curves: dict):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for (label, losses), style in zip(curves.items(), ("-", "--")):
        ax.plot(range(1, len(losses) + 1), losses, style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("MSE loss")
    ax.set_yscale("log")
    ax.set_title("1-D denoiser, same initial weights and batches")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=512, help="samples per signal")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="20 steps of 8 signals of 256 samples")
    ap.add_argument("--plot", default="train_mlx_losses.png", help="PNG path ('' for none)")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.batch, a.length = 20, 8, 256

    mx.random.seed(a.seed)
    stock = Denoiser()
    mx.random.seed(a.seed)
    ours = cm.convert(Denoiser())  # the same initial weights, convnd's convolutions
    print(f"mlx {mx.__version__}; {a.steps} steps of {a.batch} signals x {a.length} samples; "
          f"{sum(v.size for _, v in nn.utils.tree_flatten(stock.parameters()))} parameters")
    curves, times = {}, {}
    for label, model in (("mlx.nn", stock), ("convnd", ours)):
        print(f"training with {label} convolutions")
        curves[label], times[label] = train(model, a.steps, a.batch, a.length, a.lr, a.seed, True, label)

    print("\nloss curves (step: mlx.nn / convnd):")
    every = max(1, a.steps // 20)
    for i in list(range(0, a.steps, every)) + ([a.steps - 1] if (a.steps - 1) % every else []):
        print(f"  {i + 1:4d}: {curves['mlx.nn'][i]:.6f} / {curves['convnd'][i]:.6f}")
    diff = max(abs(p - q) for p, q in zip(curves["mlx.nn"], curves["convnd"]))
    print(f"max |loss difference| over {a.steps} steps: {diff:.3g} (float32 rounding, compounded by training)")
    print(f"time: mlx.nn {times['mlx.nn']:.1f} s, convnd {times['convnd']:.1f} s")
    drop = curves["convnd"][-1] / curves["convnd"][0]
    print(f"convnd's loss went from {curves['convnd'][0]:.4f} to {curves['convnd'][-1]:.4f} ({drop:.2f}x)")
    if a.plot:
        plot(a.plot, curves)
    if not drop < 1:
        print("FAIL: the loss did not go down", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
