#!/usr/bin/env python3
"""Sweep the long-kernel transposed convolution `op=convT in=L c=1 o=1 k=4096 stride=1024`.

    python examples/sweep_long_kernel_convT.py           # L = 5150..5160, then 100x (L = 516000)
    python examples/sweep_long_kernel_convT.py --quick   # k=256 stride=64, then 10x

This is the audio-synthesis shape where MLX unfolds a buffer K/O times the output size.
Every case runs in its own process and is checked in full, block by block, against a NumPy
scatter reference in float64 (y[t*stride + k] += x[t] * w[k]). Prints a PASS/FAIL table with
the conv's time and the process's peak memory up to the end of the conv; exits 1 when a case fails.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_common  # noqa: E402

REL_TOL = {"f32": 2e-6, "f16": 1.5e-3, "bf16": 8e-3, "f64": 1e-13}


def np_dtype(name):
    import numpy as np

    if name == "bf16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype({"f32": np.float32, "f16": np.float16, "f64": np.float64}[name])


def max_rel_error(x, w, stride, y, block_rows=1 << 14):
    """Worst |y - ref| / sum|x*w| over the whole output, computed in blocks of `stride`-wide rows.

    Output position p = r*stride + i (row r, lane i) gets x[r - j] * w[j*stride + i] for every
    j with 0 <= r - j < L: the scatter of the spec, regrouped so each block is a few outer
    products and no full-size reference is ever held in memory.
    """
    import numpy as np

    L, K, s = x.size, w.size, stride
    m = -(-K // s)  # kernel rows
    wp = np.zeros(m * s)
    wp[:K] = w
    P = y.size
    rows = -(-P // s)
    worst = 0.0
    for r0 in range(0, rows, block_rows):
        r1 = min(rows, r0 + block_rows)
        ref = np.zeros((r1 - r0, s))
        mag = np.zeros((r1 - r0, s))
        for j in range(m):
            t0, t1 = max(r0 - j, 0), min(r1 - j, L)
            if t1 > t0:
                wj = wp[j * s:(j + 1) * s]
                ref[t0 + j - r0:t1 + j - r0] += np.outer(x[t0:t1], wj)
                mag[t0 + j - r0:t1 + j - r0] += np.outer(np.abs(x[t0:t1]), np.abs(wj))
        p0, p1 = r0 * s, min(r1 * s, P)
        got = y[p0:p1].astype(np.float64)
        err = np.abs(got - ref.reshape(-1)[: p1 - p0]) / (mag.reshape(-1)[: p1 - p0] + 1e-30)
        worst = max(worst, float(err.max()))
    return worst


def run_case(L, k, stride, dtype, seed):
    import numpy as np

    import convnd

    rng = np.random.default_rng(seed + L)
    dt = np_dtype(dtype)
    x = rng.standard_normal((1, L, 1), dtype=np.float32).astype(dt)
    w = rng.standard_normal((1, k, 1), dtype=np.float32).astype(dt)
    plan = convnd.plan(x, w, op="conv_transpose1d", stride=stride)
    y, seconds = sweep_common.timed(lambda: convnd.conv_transpose1d(x, w, stride=stride))
    P = (L - 1) * stride + k
    assert y.shape == (1, P, 1), y.shape
    peak_mib = sweep_common.peak_rss_mib()  # through the conv, before the check allocates
    err = max_rel_error(x.reshape(-1).astype(np.float64), w.reshape(-1).astype(np.float64), stride, y.reshape(-1))
    return dict(L=L, elements=y.size, algorithm=plan["algorithm"], seconds=seconds, max_rel_err=err,
                peak_mib=peak_mib, status="PASS" if err <= REL_TOL[dtype] else "FAIL")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="k=256 stride=64, beyond factor 10")
    ap.add_argument("--k", type=int, help="kernel length (default 4096; 256 with --quick)")
    ap.add_argument("--stride", type=int, help="stride (default 1024; 64 with --quick)")
    ap.add_argument("--lengths", default="5150:5161", help="input lengths, START:STOP or a comma list (default 5150:5161)")
    ap.add_argument("--beyond", type=int, help="also run the last length times this (default 100; 10 with --quick; 0: no)")
    ap.add_argument("--dtype", default="f32", choices=sorted(REL_TOL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per case (default: none)")
    ap.add_argument("--inline", action="store_true", help="run cases in this process (peak memory accumulates)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        L, k, stride, dtype, seed = a.child
        sweep_common.child_report(**run_case(int(L), int(k), int(stride), dtype, int(seed)))
        return 0

    k = a.k or (256 if a.quick else 4096)
    stride = a.stride or (64 if a.quick else 1024)
    beyond = a.beyond if a.beyond is not None else (10 if a.quick else 100)
    if ":" in a.lengths:
        start, stop = (int(v) for v in a.lengths.split(":"))
        lengths = list(range(start, stop))
    else:
        lengths = [int(v) for v in a.lengths.split(",")]
    if beyond:
        lengths.append(lengths[-1] * beyond)

    rows = []
    for L in lengths:
        args = (L, k, stride, a.dtype, a.seed)
        if a.inline:
            try:
                r = run_case(*args)
            except Exception as e:  # noqa: BLE001 - report and go on
                r = dict(L=L, status="FAIL", detail=f"{type(e).__name__}: {e}")
        else:
            r = sweep_common.run_child(os.path.abspath(__file__), args, a.timeout)
            r.setdefault("L", L)
        rows.append(r)
        print(f"L={L}: {r.get('status')} {r.get('detail', '')}".rstrip(), flush=True)

    cols = [("L", "L", "{}"), ("elements", "output elements", "{:,}"), ("algorithm", "algorithm", "{}"),
            ("seconds", "conv s", "{:.3f}"), ("peak_mib", "peak MiB", "{:.0f}"),
            ("max_rel_err", "max rel err", "{:.2e}"), ("status", "result", "{}"), ("detail", "detail", "{}")]
    title = f"op=convT in=L c=1 o=1 k={k} stride={stride} dtype={a.dtype}"
    return 1 if sweep_common.print_table(title, cols, rows) else 0


if __name__ == "__main__":
    sys.exit(main())
