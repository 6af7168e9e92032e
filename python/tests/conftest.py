"""Shared helpers: dtypes, fresh random inputs (seed printed on failure), tolerances."""

import os
import random

import ml_dtypes
import numpy as np
import pytest

DTYPES = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f64": np.dtype(np.float64),
}

# Error bound relative to sum |x*w| over the terms of one output: the output's rounding to its
# dtype (half an ulp) plus float32 accumulation for f16/bf16/f32; f64 computes in f64.
REL_TOL = {"f32": 2e-6, "f16": 1.5e-3, "bf16": 8e-3, "f64": 1e-13}


def pytest_report_header(config):
    return f"convnd test seed: {_SEED} (set CONVND_TEST_SEED to repeat)"


_SEED = int(os.environ.get("CONVND_TEST_SEED", random.SystemRandom().randrange(2**31)))


@pytest.fixture
def rng(request):
    """A generator seeded per test from the session seed and the test id (fresh each run)."""
    seed = (_SEED * 1_000_003 + sum(map(ord, request.node.nodeid))) % 2**32
    return np.random.default_rng(seed)


def random_array(rng, shape, dtype, ints=False):
    """Random values in the dtype: small integers (exact sums) or normals."""
    if ints:
        a = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        a = rng.standard_normal(shape)
    return a.astype(DTYPES[dtype] if isinstance(dtype, str) else dtype)


def assert_close(got, want64, scale64, dtype, what=""):
    """|got - want| <= REL_TOL[dtype] * scale (+ a tiny absolute term), elementwise."""
    got = np.asarray(got)
    assert got.shape == want64.shape, f"{what}: shape {got.shape} != {want64.shape}"
    err = np.abs(got.astype(np.float64) - want64)
    bound = REL_TOL[dtype] * scale64 + 1e-30
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} elements off; worst at {i}: got {got[i]!r}, "
            f"want {want64[i]!r}, bound {bound[i]:.3g} (seed {_SEED})"
        )


def dtype_name(a):
    return {v: k for k, v in DTYPES.items()}[np.asarray(a).dtype]


def seed():
    return _SEED
