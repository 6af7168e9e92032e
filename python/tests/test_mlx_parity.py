"""Parity with MLX (the mlx-cpu wheel) where MLX is right.

Inputs are small integers, so every partial sum is exact in every dtype and both libraries
must agree bit for bit whatever their summation order. Where MLX is wrong (the table in
semantics.md, and negative padding combined with input dilation, where MLX crops input
samples instead of dilated positions) test_semantics.py checks convnd against the NumPy
reference instead.
"""

import numpy as np
import pytest

import convnd
from conftest import DTYPES, random_array

mx = pytest.importorskip("mlx.core", reason="mlx (pip install 'mlx[cpu]') is the parity reference")

MX_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}  # MLX computes f64 in f32
PARITY_DTYPES = list(MX_DTYPES)


def to_mx(a, dtype):
    return mx.array(np.asarray(a).astype(np.float32)).astype(getattr(mx, MX_DTYPES[dtype]))


def from_mx(a):
    return np.array(a.astype(mx.float32))


def both(fn_name, x, w, dtype, **kw):
    ours = getattr(convnd, fn_name)(x, w, **kw)
    theirs = getattr(mx, fn_name)(to_mx(x, dtype), to_mx(w, dtype), **kw)
    return ours, from_mx(theirs)


GENERAL = [
    ((2, 9, 4), (6, 3, 2), dict(stride=2, padding=([1], [2]), kernel_dilation=2, groups=2)),
    ((1, 10, 2), (3, 3, 2), dict(padding=([-1], [2]))),                      # negative, no input dilation
    ((1, 10, 2), (3, 3, 2), dict(padding=([2], [-2]), flip=True)),
    ((2, 7, 3), (2, 2, 3), dict(input_dilation=3, padding=1, stride=2)),
    ((1, 8, 7, 4), (4, 3, 2, 2), dict(stride=[2, 1], padding=([0, 1], [2, 0]), kernel_dilation=[1, 2],
                                       input_dilation=[2, 1], groups=2, flip=True)),
    ((1, 5, 4, 6, 2), (3, 2, 3, 2, 2), dict(stride=[1, 2, 1], padding=([1, 0, 2], [0, 1, 1]),
                                            kernel_dilation=[2, 1, 1], input_dilation=[1, 1, 2], flip=True)),
]


@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("case", GENERAL, ids=[f"general{i}" for i in range(len(GENERAL))])
def test_conv_general(case, dtype, rng):
    xs, ws, kw = case
    x = random_array(rng, xs, dtype, ints=True)
    w = random_array(rng, ws, dtype, ints=True)
    ours, theirs = both("conv_general", x, w, dtype, **kw)
    np.testing.assert_array_equal(ours.astype(np.float32), theirs)


CONV = [
    ("conv1d", (2, 11, 4), (6, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv1d", (1, 9, 3), (3, 9, 1), dict(padding=4, groups=3)),               # depthwise
    ("conv2d", (2, 7, 6, 4), (4, 3, 2, 4), dict(stride=[2, 1], padding=[1, 0], dilation=[1, 2])),
    ("conv2d", (1, 6, 6, 6), (6, 3, 3, 2), dict(padding=1, groups=3)),
    ("conv3d", (1, 5, 4, 6, 2), (3, 2, 3, 2, 2), dict(stride=[1, 2, 1], padding=[1, 0, 1], dilation=[2, 1, 1])),
]


@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("case", CONV, ids=[f"{c[0]}_{i}" for i, c in enumerate(CONV)])
def test_conv(case, dtype, rng):
    name, xs, ws, kw = case
    x = random_array(rng, xs, dtype, ints=True)
    w = random_array(rng, ws, dtype, ints=True)
    ours, theirs = both(name, x, w, dtype, **kw)
    np.testing.assert_array_equal(ours.astype(np.float32), theirs)


# Transposed convs inside MLX's correct range: padding <= dilation*(K-1), groups only in 1-D/2-D.
TRANSPOSE = [
    ("conv_transpose1d", (2, 6, 3), (4, 3, 3), dict()),
    ("conv_transpose1d", (1, 5, 2), (3, 4, 2), dict(stride=3, padding=2, output_padding=2)),
    ("conv_transpose1d", (1, 6, 2), (2, 3, 2), dict(dilation=3, padding=6, output_padding=1)),
    ("conv_transpose1d", (2, 5, 6), (6, 3, 2), dict(stride=2, padding=1, groups=3)),
    ("conv_transpose1d", (1, 12, 1), (1, 64, 1), dict(stride=16)),
    ("conv_transpose2d", (1, 4, 5, 4), (6, 3, 2, 4), dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2])),
    ("conv_transpose2d", (1, 4, 4, 4), (4, 3, 3, 2), dict(stride=2, padding=1, groups=2)),
    ("conv_transpose3d", (1, 3, 4, 3, 2), (3, 2, 3, 2, 2), dict(stride=2, padding=[0, 1, 1], dilation=[1, 1, 2],
                                                             output_padding=1)),
]


@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE, ids=[f"{c[0]}_{i}" for i, c in enumerate(TRANSPOSE)])
def test_conv_transpose(case, dtype, rng):
    name, xs, ws, kw = case
    x = random_array(rng, xs, dtype, ints=True)
    w = random_array(rng, ws, dtype, ints=True)
    ours, theirs = both(name, x, w, dtype, **kw)
    np.testing.assert_array_equal(ours.astype(np.float32), theirs)


@pytest.mark.parametrize("dtype", PARITY_DTYPES)
def test_random_floats_close(dtype, rng):
    """Ordinary random inputs: close to MLX within the dtype's rounding."""
    x = random_array(rng, (2, 12, 10, 8), dtype)
    w = random_array(rng, (16, 3, 3, 8), dtype)
    ours, theirs = both("conv2d", x, w, dtype, padding=1)
    tol = {"f32": 1e-4, "f16": 3e-2, "bf16": 2e-1}[dtype]
    np.testing.assert_allclose(ours.astype(np.float32), theirs, rtol=tol, atol=tol)


def test_mlx_array_as_input(rng):
    """An mlx.core.array goes in through DLPack (no NumPy conversion)."""
    x = random_array(rng, (1, 8, 3), "f32", ints=True)
    w = random_array(rng, (2, 3, 3), "f32", ints=True)
    ours = convnd.conv1d(mx.array(x), mx.array(w), padding=1)
    np.testing.assert_array_equal(ours, from_mx(mx.conv1d(mx.array(x), mx.array(w), padding=1)))


def test_signatures_match_mlx():
    """Keyword names and defaults are MLX's (plus convnd's keyword-only extras)."""
    import inspect

    expected = {
        "conv_general": ["input", "weight", "stride", "padding", "kernel_dilation", "input_dilation", "groups", "flip"],
        "conv1d": ["input", "weight", "stride", "padding", "dilation", "groups"],
        "conv_transpose2d": ["input", "weight", "stride", "padding", "dilation", "output_padding", "groups"],
    }
    for name, params in expected.items():
        sig = inspect.signature(getattr(convnd, name))
        positional = [p.name for p in sig.parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
        assert positional == params, name
        # MLX accepts the same keywords.
        x = np.zeros((1, 5, 5, 2) if "2d" in name else (1, 5, 2), np.float32)
        w = np.zeros((2, 2, 2, 2) if "2d" in name else (2, 2, 2), np.float32)
        kw = {p: sig.parameters[p].default for p in params[2:]}
        getattr(mx, name)(mx.array(x), mx.array(w), **kw)
