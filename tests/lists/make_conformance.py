#!/usr/bin/env python3
"""Writes tests/lists/conformance.txt: the conformance problem list.

Every parameter of ../../shared/spec/problem-strings.md in every rank (1, 2, 3) and dtype, for
op=conv and op=convT: groups (depthwise too), strides, asymmetric and negative padding, kernel
and input dilation, flip, output padding, transposed padding beyond the kernel span, prime
sizes and channel counts, 1x1 kernels, kernels as large as the padded input, and extents and
channel counts around tile boundaries (7, 8, 9, 15, 16, 17, 31, 32, 33). Each problem is small
enough for the float64 oracle to check in full quickly (at most MAX_MACS multiply-adds). The last
section asks for both gradients (dir=bwd_d, dir=bwd_w) of every problem before it, which `check`
compares with the float64 gradient oracles (the same multiply-adds as the forward).

Deterministic: the same script writes the same file. Run it from anywhere:
    python3 tests/lists/make_conformance.py            # rewrites conformance.txt
    python3 tests/lists/make_conformance.py --check    # fails if the file is out of date
"""
import copy
import os
import random
import sys

MAX_MACS = 2_000_000
DTYPES = ["f32", "f16", "bf16", "f64"]
SEED = 20240611


class P:
    """A problem as in problem-strings.md; per-axis lists have one entry per axis."""

    def __init__(self, in_, c, o, k=None, op="conv", n=1, stride=None, pad=None, dil=None,
                 idil=None, outpad=None, g=1, flip=0, dtype="f32", dir="fwd"):
        r = len(in_)
        self.op, self.n, self.in_, self.c, self.o, self.g, self.flip, self.dtype = op, n, list(in_), c, o, g, flip, dtype
        self.dir = dir
        self.k = list(k) if k else [1] * r
        self.stride = axes(stride, r, 1)
        self.dil = axes(dil, r, 1)
        self.idil = axes(idil, r, 1)
        self.outpad = axes(outpad, r, 0)
        # pad: int, (lo, hi), or a per-axis list of ints / (lo, hi)
        pad = axes(pad, r, 0) if not isinstance(pad, tuple) else [pad] * r
        self.pad = [(p, p) if isinstance(p, int) else tuple(p) for p in pad]

    def out(self):
        """Output extents, or None when the problem is invalid (semantics.md)."""
        if self.c % self.g or self.o % self.g:
            return None
        res = []
        for i in range(len(self.in_)):
            I, K, s, d = self.in_[i], self.k[i], self.stride[i], self.dil[i]
            lo, hi = self.pad[i]
            if self.op == "conv":
                padded = self.idil[i] * (I - 1) + 1 + lo + hi
                E = d * (K - 1) + 1
                if padded < E:
                    return None
                res.append((padded - E) // s + 1)
            else:
                if lo != hi or lo < 0 or not 0 <= self.outpad[i] < max(s, d):
                    return None
                P_ = (I - 1) * s - 2 * lo + d * (K - 1) + self.outpad[i] + 1
                if P_ < 1:
                    return None
                res.append(P_)
        return res

    def macs(self):
        out = self.out()
        prod = lambda v: eval("*".join(map(str, v)))
        return self.n * prod(out) * self.o * prod(self.k) * (self.c // self.g)

    def __str__(self):
        f = []
        joined = lambda v, collapse: str(v[0]) if collapse and len(set(v)) == 1 else "x".join(map(str, v))
        if self.op == "convT":
            f.append("op=convT")
        if self.n != 1:
            f.append(f"n={self.n}")
        f += [f"in={joined(self.in_, False)}", f"c={self.c}", f"o={self.o}"]
        if any(v != 1 for v in self.k):
            f.append(f"k={joined(self.k, False)}")
        if any(v != 1 for v in self.stride):
            f.append(f"stride={joined(self.stride, True)}")
        if any(v != (0, 0) for v in self.pad):
            entries = [str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.pad]
            f.append(f"pad={joined(entries, True)}")
        for key, v in (("dil", self.dil), ("idil", self.idil)):
            if any(x != 1 for x in v):
                f.append(f"{key}={joined(v, True)}")
        if any(v != 0 for v in self.outpad):
            f.append(f"outpad={joined(self.outpad, True)}")
        if self.g != 1:
            f.append(f"g={self.g}")
        if self.flip:
            f.append("flip=1")
        if self.dtype != "f32":
            f.append(f"dtype={self.dtype}")
        if self.dir != "fwd":
            f.append(f"dir={self.dir}")
        return " ".join(f)


def axes(v, r, default):
    if v is None:
        return [default] * r
    if isinstance(v, (int, tuple)):
        return [v] * r
    assert len(v) == r, v
    return list(v)


class Writer:
    def __init__(self):
        self.lines, self.seen, self.problems = [], set(), []

    def section(self, title):
        self.lines += ["", f"# {title}"]

    def add(self, p):
        s = str(p)
        if s in self.seen:
            return False
        out = p.out()
        assert out is not None, f"invalid: {s}"
        assert p.macs() <= MAX_MACS, f"too big ({p.macs()} MACs): {s}"
        self.seen.add(s)
        self.lines.append(s)
        self.problems.append(p)
        return True


def hand_written(w):
    w.section("1x1 kernels (pointwise), every rank and dtype")
    for dt in DTYPES:
        w.add(P([17], 16, 33, dtype=dt))
        w.add(P([7, 9], 31, 8, dtype=dt))
        w.add(P([3, 5, 4], 9, 17, n=2, dtype=dt))
        w.add(P([8, 8], 8, 8, stride=2, dtype=dt))

    w.add(P([16], 32, 32, n=3))
    w.add(P([13, 11], 1, 1))

    w.section("channels and extents around tile boundaries (7, 8, 9, 15, 16, 17, 31, 32, 33)")
    for ch in (7, 8, 9, 15, 16, 17, 31, 32, 33):
        w.add(P([9, 9], ch, 16, k=[3, 3], pad=1))
        w.add(P([9, 9], 16, ch, k=[3, 3], pad=1))
        w.add(P([ch], 4, 5, k=[3]))
        w.add(P([ch, 5], 3, 4, k=[2, 3], stride=2))
        w.add(P([ch], 4, 4, k=[4], stride=2, op="convT", pad=1))
    for ch in (63, 64, 65):
        w.add(P([6, 6], ch, 64))
        w.add(P([5, 5], 16, ch, k=[3, 3]))
        w.add(P([4, 4], ch, ch, k=[3, 3], g=ch, pad=1))
    for ext in (7, 8, 9, 15, 16, 17, 31, 32, 33):
        w.add(P([ext, 3, 2], 3, 5, k=[3, 1, 2]))
        w.add(P([3, ext], 5, 7, k=[1, 3], pad=(0, 1), op="conv"))

    w.section("GEMM micro-tile and K-block boundaries: M = n*P, N = O/g, K = C/g*K (tiles 4x8, 6x16, 14x32, 14x16; K blocks 192, 256, 384)")
    ms, ns, ks = (5, 6, 7, 13, 14, 15, 27, 28, 29), (7, 8, 9, 15, 16, 17, 31, 32, 33), (191, 192, 193, 255, 256, 257, 383, 384, 385, 769)
    for i, m in enumerate(ms):
        for j, n_ in enumerate(ns):
            if (i + j) % 3 == 0:
                w.add(P([m], ks[(3 * i + j) % len(ks)], n_, dtype=DTYPES[(i + 2 * j) % 4]))
    w.add(P([7, 2], 43, 32, k=[3, 3], pad=1))          # K = 387
    w.add(P([4, 7], 64, 16, k=[3, 2], pad=1, dtype="f64"))  # K = 384
    w.add(P([3, 5], 86, 66, k=[3, 3], pad=1, g=2))        # K = 387, N = 33 per group

    w.section("kernel as large as the padded input (one output)")
    w.add(P([5], 3, 4, k=[5]))
    w.add(P([4], 3, 4, k=[5], pad=(0, 1)))
    w.add(P([4], 2, 2, k=[5], stride=3, pad=(1, 0)))
    w.add(P([6, 6], 3, 5, k=[6, 6]))
    w.add(P([5, 4], 3, 5, k=[7, 6], pad=1))
    w.add(P([3, 3, 3], 4, 2, k=[3, 3, 3], dtype="f64"))
    w.add(P([4, 4, 4], 2, 3, k=[3, 3, 3], dil=2, pad=1, dtype="bf16"))
    w.add(P([3], 2, 2, k=[5], idil=2))
    w.add(P([7], 3, 2, k=[7], stride=4, dtype="f16"))

    w.section("prime sizes and channel counts")
    for dt in DTYPES:
        w.add(P([13], 7, 11, k=[5], pad=2, dtype=dt))
        w.add(P([11, 7], 5, 3, k=[3, 5], stride=[2, 3], dtype=dt))
        w.add(P([5, 7, 3], 3, 13, k=[3, 3, 2], n=3, dtype=dt))
    w.add(P([29], 3, 5, k=[7], stride=3))
    w.add(P([23, 19], 2, 3, k=[5, 3], pad=[2, 1]))

    w.section("groups, depthwise and depthwise with a multiplier, every rank")
    for dt in DTYPES:
        w.add(P([12], 8, 8, k=[3], pad=1, g=8, dtype=dt))
        w.add(P([9, 9], 6, 12, k=[3, 3], pad=1, g=3, dtype=dt))
        w.add(P([5, 5, 5], 4, 4, k=[3, 3, 3], pad=1, g=4, dtype=dt))
        w.add(P([4, 6, 5], 6, 9, k=[2, 3, 3], g=3, stride=[1, 2, 1], dtype=dt))
    w.add(P([10, 10], 16, 32, k=[3, 3], g=16, pad=1))
    w.add(P([10, 10], 17, 17, k=[5, 5], g=17, pad=2))
    w.add(P([15], 9, 27, k=[3], g=9, stride=2))
    w.add(P([8, 8], 12, 12, k=[1, 1], g=4))
    w.add(P([6, 6, 6], 8, 8, k=[3, 3, 3], g=2, dil=2, pad=2))
    w.add(P([7], 6, 4, k=[3], g=2, op="convT", stride=2))
    w.add(P([5, 5], 8, 8, k=[3, 3], g=8, op="convT", stride=2, pad=1, outpad=1))
    w.add(P([3, 4, 3], 6, 9, k=[3, 3, 2], g=3, op="convT", stride=2))
    w.add(P([4, 4, 4], 4, 4, k=[2, 2, 2], g=4, op="convT", stride=2, dtype="bf16"))

    w.section("strides, including stride larger than the kernel")
    for dt in DTYPES:
        w.add(P([17], 3, 4, k=[3], stride=4, dtype=dt))
        w.add(P([9, 10], 3, 4, k=[2, 3], stride=[3, 2], dtype=dt))
        w.add(P([7, 8, 9], 2, 3, k=[3, 1, 2], stride=[2, 3, 4], dtype=dt))
    w.add(P([16, 16], 8, 8, k=[2, 2], stride=2))
    w.add(P([31], 2, 2, k=[1], stride=5))

    w.section("asymmetric and negative padding (crop after input dilation)")
    for dt in DTYPES:
        w.add(P([10], 3, 4, k=[3], pad=(0, 2), dtype=dt))
        w.add(P([9, 8], 3, 4, k=[3, 3], pad=[(2, 0), (-1, 1)], dtype=dt))
        w.add(P([6, 7, 5], 2, 3, k=[2, 3, 2], pad=[(1, -1), (0, 2), (-1, 0)], dtype=dt))
    w.add(P([12], 2, 3, k=[3], pad=-2))
    w.add(P([12], 2, 3, k=[3], pad=(-3, 1), stride=2))
    w.add(P([8, 8], 3, 3, k=[3, 3], pad=(-1, -2)))
    w.add(P([8, 8], 3, 3, k=[3, 3], pad=[(-2, 3), (3, -2)], idil=2))
    w.add(P([9], 2, 2, k=[2], pad=(-1, -1), idil=3, dil=2))
    w.add(P([5, 5, 5], 2, 2, k=[2, 2, 2], pad=(-1, 0), idil=2, stride=2))
    w.add(P([7], 2, 2, k=[1], pad=(-6, 0)))
    w.add(P([16], 3, 5, k=[4], pad=(3, 0), stride=2))

    w.section("kernel dilation")
    for dt in DTYPES:
        w.add(P([15], 3, 4, k=[3], dil=3, dtype=dt))
        w.add(P([11, 12], 2, 5, k=[3, 2], dil=[2, 4], pad=1, dtype=dt))
        w.add(P([7, 8, 9], 2, 3, k=[2, 2, 3], dil=[3, 2, 2], dtype=dt))
    w.add(P([20], 4, 4, k=[5], dil=4, stride=2, pad=4))
    w.add(P([9, 9], 3, 3, k=[3, 3], dil=4))

    w.section("input dilation (op=conv only)")
    for dt in DTYPES:
        w.add(P([6], 3, 4, k=[3], idil=2, dtype=dt))
        w.add(P([5, 4], 2, 3, k=[3, 2], idil=[3, 2], pad=1, dtype=dt))
        w.add(P([3, 4, 3], 2, 2, k=[2, 3, 2], idil=[2, 1, 3], dtype=dt))
    w.add(P([7], 2, 2, k=[4], idil=3, stride=2, dil=2))
    w.add(P([5, 5], 4, 4, k=[3, 3], idil=2, stride=3, pad=(2, 1), g=2))

    w.section("flip (convolution instead of cross-correlation)")
    for dt in DTYPES:
        w.add(P([9], 3, 4, k=[4], flip=1, dtype=dt))
        w.add(P([7, 6], 2, 3, k=[3, 2], flip=1, pad=[(1, 0), (0, 1)], dtype=dt))
        w.add(P([4, 5, 6], 2, 2, k=[2, 3, 3], flip=1, stride=2, dtype=dt))
    w.add(P([9, 7], 6, 4, k=[3, 2], stride=[2, 1], pad=[(0, 2), (1, 0)], dil=[1, 2], idil=[2, 1], g=2, flip=1, dtype="f64"))
    w.add(P([6], 4, 6, k=[3], flip=1, idil=2, dil=2, g=2, pad=-1))

    w.section("transposed: strides, output padding, every rank and dtype")
    for dt in DTYPES:
        w.add(P([5], 3, 4, k=[3], op="convT", stride=2, dtype=dt))
        w.add(P([5], 3, 4, k=[3], op="convT", stride=2, outpad=1, dtype=dt))
        w.add(P([4, 5], 2, 3, k=[3, 4], op="convT", stride=[2, 3], pad=1, outpad=[1, 2], dtype=dt))
        w.add(P([3, 3, 4], 2, 3, k=[2, 3, 3], op="convT", stride=2, pad=[0, 1, 1], outpad=[1, 0, 1], dtype=dt))
    w.add(P([6], 2, 2, k=[3], op="convT", dil=3, outpad=2))
    w.add(P([6, 6], 2, 2, k=[2, 2], op="convT", stride=2, dil=3, outpad=2, pad=1))
    w.add(P([8], 4, 3, k=[1], op="convT", stride=3, outpad=2))
    w.add(P([9, 9], 4, 4, k=[1, 1], op="convT"))
    w.add(P([7], 16, 8, k=[4], op="convT", stride=4))
    w.add(P([33], 1, 1, k=[16], op="convT", stride=8, pad=4))
    w.add(P([10], 2, 3, k=[8], op="convT", stride=3, pad=2, outpad=1))
    w.add(P([4, 4], 9, 7, k=[3, 3], op="convT", stride=2, pad=1, outpad=1, n=2))

    w.section("transposed: padding beyond the kernel span d*(K-1) (MLX gets these wrong)")
    for dt in DTYPES:
        w.add(P([5], 1, 1, k=[3], op="convT", stride=2, pad=3, dtype=dt))
        w.add(P([10], 2, 3, k=[2], op="convT", stride=3, pad=4, outpad=1, dtype=dt))
        w.add(P([6, 6], 2, 2, k=[2, 2], op="convT", stride=2, dil=3, pad=4, outpad=2, dtype=dt))
    w.add(P([7], 2, 2, k=[1], op="convT", stride=4, pad=5))
    w.add(P([5, 6, 4], 2, 2, k=[2, 2, 2], op="convT", stride=3, pad=[2, 3, 2]))
    w.add(P([9], 3, 3, k=[3], op="convT", stride=2, dil=2, pad=6, outpad=1))

    w.section("batches")
    w.add(P([6], 3, 4, k=[3], n=5))
    w.add(P([5, 5], 3, 4, k=[3, 3], n=4, pad=1, dtype="bf16"))
    w.add(P([3, 3, 3], 2, 2, k=[2, 2, 2], n=3, op="convT", stride=2, dtype="f16"))
    w.add(P([6], 2, 2, k=[2], n=7, op="convT", stride=2, dtype="f64"))


def random_section(w, rng, count):
    """Random valid problems mixing every parameter; a draw is kept when it is valid and small."""
    w.section(f"random mixtures (seed {SEED})")
    added = 0
    while added < count:
        op = rng.choice(["conv", "convT"])
        r = rng.randint(1, 3)
        g = rng.choice([1, 1, 1, 2, 3, 4])
        depthwise = rng.random() < 0.15
        cg = 1 if depthwise else rng.choice([1, 2, 3, 4, 5, 7, 8, 9])
        c = g * cg
        o = g * (rng.choice([1, 2]) if depthwise else rng.choice([1, 2, 3, 4, 5, 7, 8, 9]))
        max_in = {1: 33, 2: 12, 3: 6}[r]
        in_ = [rng.randint(1, max_in) for _ in range(r)]
        k = [rng.randint(1, 5 if r < 3 else 3) for _ in range(r)]
        stride = [rng.choice([1, 1, 2, 3]) for _ in range(r)]
        dil = [rng.choice([1, 1, 2, 3]) for _ in range(r)]
        kw = dict(op=op, n=rng.choice([1, 1, 2, 3]), stride=stride, dil=dil, g=g, dtype=rng.choice(DTYPES))
        if op == "conv":
            kw["idil"] = [rng.choice([1, 1, 1, 2, 3]) for _ in range(r)]
            kw["pad"] = [(rng.randint(-2, 3), rng.randint(-2, 3)) if rng.random() < 0.5 else rng.randint(0, 2) for _ in range(r)]
            kw["flip"] = int(rng.random() < 0.3)
        else:
            kw["pad"] = [rng.randint(0, 4) for _ in range(r)]
            kw["outpad"] = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dil)]
        p = P(in_, c, o, k, **kw)
        if p.out() is None or p.macs() > MAX_MACS // 4:
            continue
        added += w.add(p)


def gradient_section(w):
    """Both gradients of every problem so far: the forward problem with dir=bwd_d and dir=bwd_w."""
    w.section("gradients: dir=bwd_d (dx from w and dy) and dir=bwd_w (dw from x and dy) of every problem above")
    for p in list(w.problems):
        for d in ("bwd_d", "bwd_w"):
            g = copy.copy(p)
            g.dir = d
            w.add(g)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "conformance.txt")
    w = Writer()
    w.lines = [
        "# Conformance problems: every parameter in every rank and dtype, each checked in full",
        "# against the float64 oracle (convnd check --file tests/lists/conformance.txt).",
        "# The last section asks for both gradients (dir=bwd_d, dir=bwd_w) of every problem.",
        "# Generated by tests/lists/make_conformance.py; edit that script, not this file.",
    ]
    hand_written(w)
    random_section(w, random.Random(SEED), 120)
    gradient_section(w)
    text = "\n".join(w.lines) + "\n"
    if "--check" in sys.argv:
        with open(path) as f:
            if f.read() != text:
                sys.exit(f"{path} is out of date: run {sys.argv[0]}")
        return
    with open(path, "w") as f:
        f.write(text)
    print(f"{path}: {len(w.seen)} problems")


if __name__ == "__main__":
    main()
