#!/usr/bin/env python3
"""Sweep a 1x1 convolution across the 2^31-output-element threshold.

    python examples/sweep_pointwise_2g.py            # n = 1023, 1024, 1025 of in=2048x1 c=8 o=1024
    python examples/sweep_pointwise_2g.py --quick    # the same sweep around 2^20 elements

Input (n, 2048, 1, 8), weight (1024, 1, 1, 8): n = 1024 gives exactly 2^31 output elements
(8 GiB of float32), n = 1025 gives 2^31 + 2^21. Each batch size runs in its own process and is
checked by sampling output rows (both sides of element 2^31, both ends, random ones) against
a NumPy matmul in float64. Prints a PASS/FAIL table with the conv's time and the process's
peak memory up to the end of the conv; exits 1 when a case fails.
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


def run_case(n, h, c, o, dtype, log2, samples, seed):
    """Runs one batch size; returns the result fields."""
    import numpy as np

    import convnd

    rng = np.random.default_rng(seed)
    dt = np_dtype(dtype)
    x = rng.standard_normal((n, h, 1, c), dtype=np.float32).astype(dt)
    w = rng.standard_normal((o, 1, 1, c), dtype=np.float32).astype(dt)
    plan = convnd.plan(x, w, op="conv2d")
    y, seconds = sweep_common.timed(lambda: convnd.conv2d(x, w))
    assert y.shape == (n, h, 1, o), y.shape
    peak_mib = sweep_common.peak_rss_mib()  # through the conv, before the check allocates

    rows = n * h
    edge = (1 << log2) // o  # the first row holding an element at index >= 2^log2
    picks = {0, rows - 1, edge - 1, edge, edge + 1}
    picks |= set(int(r) for r in rng.integers(0, rows, samples))
    picks = sorted(r for r in picks if 0 <= r < rows)
    x2 = x.reshape(rows, c)
    y2 = y.reshape(rows, o)
    w64 = w.reshape(o, c).astype(np.float64)
    worst = 0.0
    for r in picks:
        xr = x2[r].astype(np.float64)
        err = np.abs(y2[r].astype(np.float64) - w64 @ xr)
        scale = np.abs(w64) @ np.abs(xr) + 1e-30
        worst = max(worst, float((err / scale).max()))
    return dict(
        n=n,
        elements=y.size,
        beyond=y.size >= (1 << log2),
        algorithm=plan["algorithm"],
        seconds=seconds,
        checked_rows=len(picks),
        max_rel_err=worst,
        peak_mib=peak_mib,
        status="PASS" if worst <= REL_TOL[dtype] else "FAIL",
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small sweep around 2^20 elements (h=256 o=256)")
    ap.add_argument("--h", type=int, help="spatial rows per sample (default 2048; 256 with --quick)")
    ap.add_argument("--c", type=int, default=8, help="input channels (default 8)")
    ap.add_argument("--o", type=int, help="output channels (default 1024; 256 with --quick)")
    ap.add_argument("--log2", type=int, help="the threshold 2^LOG2 output elements (default 31; 20 with --quick)")
    ap.add_argument("--batches", help="comma-separated batch sizes (default: the threshold's, one below, one above)")
    ap.add_argument("--dtype", default="f32", choices=sorted(REL_TOL))
    ap.add_argument("--samples", type=int, default=256, help="random rows checked per case (default 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per case (default: none)")
    ap.add_argument("--inline", action="store_true", help="run cases in this process (peak memory accumulates)")
    ap.add_argument("--child", nargs=8, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        n, h, c, o, dtype, log2, samples, seed = a.child
        sweep_common.child_report(**run_case(int(n), int(h), int(c), int(o), dtype, int(log2), int(samples), int(seed)))
        return 0

    h = a.h or (256 if a.quick else 2048)
    o = a.o or (256 if a.quick else 1024)
    log2 = a.log2 or (20 if a.quick else 31)
    if a.batches:
        batches = [int(b) for b in a.batches.split(",")]
    else:
        t = (1 << log2) // (h * o)
        batches = [max(1, t - 1), t, t + 1] if (1 << log2) % (h * o) == 0 else [t, t + 1]
    rows = []
    for n in batches:
        args = (n, h, a.c, o, a.dtype, log2, a.samples, a.seed)
        if a.inline:
            try:
                r = run_case(*args)
            except Exception as e:  # noqa: BLE001 - report and go on
                r = dict(n=n, status="FAIL", detail=f"{type(e).__name__}: {e}")
        else:
            r = sweep_common.run_child(os.path.abspath(__file__), args, a.timeout)
            r.setdefault("n", n)
        rows.append(r)
        print(f"n={n}: {r.get('status')} {r.get('detail', '')}".rstrip(), flush=True)

    cols = [("n", "n", "{}"), ("elements", "output elements", "{:,}"), ("beyond", "past threshold", "{}"),
            ("algorithm", "algorithm", "{}"), ("seconds", "conv s", "{:.3f}"), ("peak_mib", "peak MiB", "{:.0f}"),
            ("checked_rows", "rows checked", "{}"), ("max_rel_err", "max rel err", "{:.2e}"),
            ("status", "result", "{}"), ("detail", "detail", "{}")]
    title = f"1x1 conv sweep: in=(n, {h}, 1, {a.c}) w=({o}, 1, 1, {a.c}) dtype={a.dtype}, threshold 2^{log2} outputs"
    return 1 if sweep_common.print_table(title, cols, rows) else 0


if __name__ == "__main__":
    sys.exit(main())
