"""Outputs beyond 2^31 elements, checked by sampling rows against NumPy matmul."""

import os

import numpy as np
import pytest

import convnd

# A 1x1 conv whose output has 1025 * 2048 * 1024 = 2^31 + 2^21 elements (8.6 GB of float32).
N, H, C, O = 1025, 2048, 8, 1024
PROBLEM = f"n={N} in={H}x1 c={C} o={O}"


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def test_pointwise_output_beyond_2g_elements(rng):
    plan = convnd.plan(PROBLEM)
    if plan["algorithm"] == "reference":
        pytest.skip(f"no fast pointwise algorithm yet: the plan of '{PROBLEM}' is the reference, "
                    "which would take hours; this test turns on when one lands")
    if os.environ.get("CONVND_SKIP_LARGE") == "1":
        pytest.skip("CONVND_SKIP_LARGE=1")
    need = N * H * O * 4 + N * H * C * 4 + (1 << 30)
    avail = _available_bytes()
    if avail is not None and avail < need:
        pytest.skip(f"needs about {need / 2**30:.1f} GiB of free memory, {avail / 2**30:.1f} GiB available")

    x = rng.standard_normal((N, H, 1, C), dtype=np.float32)
    w = rng.standard_normal((O, 1, 1, C), dtype=np.float32)
    y = convnd.conv2d(x, w)
    assert y.shape == (N, H, 1, O) and y.size > 2**31

    # Rows around element 2^31 (row 2^21 = (n 1024, h 0)), both ends, and random ones.
    rows = [(0, 0), (N - 1, H - 1), (1023, H - 1), (1024, 0), (1024, 1)]
    rows += [(int(n), int(h)) for n, h in zip(rng.integers(0, N, 64), rng.integers(0, H, 64))]
    w64 = w[:, 0, 0, :].astype(np.float64)  # [O, C]
    for n, h in rows:
        want = w64 @ x[n, h, 0].astype(np.float64)
        scale = np.abs(w64) @ np.abs(x[n, h, 0].astype(np.float64))
        err = np.abs(y[n, h, 0].astype(np.float64) - want)
        assert (err <= 2e-6 * scale + 1e-30).all(), f"row (n={n}, h={h}) wrong; max error {err.max()}"
