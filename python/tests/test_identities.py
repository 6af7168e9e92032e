"""Identities that need no reference: the adjoint, a delta input, linearity."""

import numpy as np
import pytest

import convnd
from conftest import random_array


def _transpose_weight(w, groups):
    """The weight of the adjoint: wT[q*C/g + c, k..., o] = w[q*O/g + o, k..., c]."""
    o, cg = w.shape[0], w.shape[-1]
    og = o // groups
    k = w.shape[1:-1]
    wg = w.reshape((groups, og) + k + (cg,))
    wt = np.moveaxis(wg, 1, -1)  # [g, ..., cg, og] -> want [g, cg, k..., og]
    wt = np.moveaxis(wt, -2, 1)
    return np.ascontiguousarray(wt.reshape((groups * cg,) + k + (og,)))


@pytest.mark.parametrize(
    "rank,xs,ws,kw",
    [
        (1, (2, 17, 6), (4, 3, 3), dict(stride=3, padding=2, dilation=2, groups=2)),
        (1, (1, 40, 1), (1, 16, 1), dict(stride=4, padding=5)),
        (2, (1, 9, 11, 4), (6, 3, 2, 2), dict(stride=[2, 3], padding=[1, 0], dilation=[1, 2], groups=2)),
        (3, (1, 5, 6, 7, 3), (6, 2, 3, 2, 1), dict(stride=[1, 2, 2], padding=[1, 1, 0], groups=3)),
    ],
)
def test_conv_transpose_is_the_adjoint(rank, xs, ws, kw, rng):
    """<conv(x, w), y> == <x, conv_transpose(y, w^T)> in float64."""
    x = random_array(rng, xs, "f64")
    w = random_array(rng, ws, "f64")
    fwd = getattr(convnd, f"conv{rank}d")(x, w, **kw)
    y = random_array(rng, fwd.shape, "f64")
    # output_padding recovers the input extent lost to the stride's floor.
    s = [kw["stride"]] * rank if np.isscalar(kw["stride"]) else kw["stride"]
    p = [kw["padding"]] * rank if np.isscalar(kw["padding"]) else kw["padding"]
    d = kw.get("dilation", 1)
    d = [d] * rank if np.isscalar(d) else d
    k = ws[1:-1]
    op = [xs[1 + i] - ((fwd.shape[1 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1) for i in range(rank)]
    back = getattr(convnd, f"conv_transpose{rank}d")(y, _transpose_weight(w, kw.get("groups", 1)),
                                                    output_padding=op, **kw)
    assert back.shape == x.shape
    lhs, rhs = float(np.vdot(fwd, y)), float(np.vdot(x, back))
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + 1), (lhs, rhs)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "f64"])
def test_delta_reproduces_the_kernel(dtype, rng):
    w = random_array(rng, (3, 5, 4, 1), dtype)
    x = np.zeros((1, 5, 4, 1), w.dtype)
    x[0, 4, 3, 0] = 1  # conv_general with full padding and flip puts the kernel at the delta
    y = convnd.conv_general(x, w, padding=[4, 3], flip=True)
    np.testing.assert_array_equal(y[0, 4:9, 3:7, :], np.moveaxis(w[..., 0], 0, -1))
    # conv_transpose of a one-sample input is the kernel itself
    one = np.ones((1, 1, 1, 1), w.dtype)
    np.testing.assert_array_equal(convnd.conv_transpose2d(one, w)[0], np.moveaxis(w[..., 0], 0, -1))


def test_linearity(rng):
    x1 = random_array(rng, (2, 12, 4), "f64")
    x2 = random_array(rng, (2, 12, 4), "f64")
    w = random_array(rng, (6, 3, 2), "f64")
    kw = dict(stride=2, padding=([1], [3]), input_dilation=2, groups=2)
    a = convnd.conv_general(3 * x1 - 2 * x2, w, **kw)
    b = 3 * convnd.conv_general(x1, w, **kw) - 2 * convnd.conv_general(x2, w, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
