"""convnd against the NumPy references of semantics.md, for every dtype.

This covers what MLX gets wrong as well (the table at the end of semantics.md): transposed
convs with padding > d*(K-1), groups in 3-D, float64, output_padding, and the dilate-then-pad
order of negative padding; the reference follows PyTorch's definitions there.
"""

import numpy as np
import pytest

import convnd
import numpy_reference as ref
from conftest import DTYPES, assert_close, random_array

ALL_DTYPES = list(DTYPES)

# (name, x shape, w shape, conv_general kwargs)
GENERAL_CASES = [
    ("1d_basic", (2, 9, 3), (4, 3, 3), {}),
    ("1d_stride", (1, 11, 2), (3, 3, 2), dict(stride=2)),
    ("1d_asym_pad", (1, 7, 2), (2, 3, 2), dict(padding=([1], [2]))),
    ("1d_negative_pad", (1, 10, 2), (3, 3, 2), dict(padding=([-2], [1]))),
    ("1d_negative_pad_idil", (1, 10, 2), (3, 3, 2), dict(padding=([-1], [0]), input_dilation=2)),
    ("1d_negative_hi_idil", (1, 6, 1), (1, 2, 1), dict(padding=([0], [-3]), input_dilation=3)),
    ("1d_kdil", (1, 12, 2), (2, 3, 2), dict(kernel_dilation=3, padding=2)),
    ("1d_idil_stride", (2, 5, 2), (2, 2, 2), dict(input_dilation=3, stride=2, padding=1)),
    ("1d_groups", (2, 8, 6), (4, 3, 3), dict(groups=2)),
    ("1d_flip", (1, 8, 2), (2, 4, 2), dict(flip=True, padding=([3], [0]))),
    ("1d_depthwise", (1, 9, 4), (4, 3, 1), dict(groups=4, padding=1)),
    ("1d_everything", (2, 9, 6), (6, 3, 2), dict(stride=2, padding=([2], [-1]), kernel_dilation=2,
                                                input_dilation=2, groups=3, flip=True)),
    ("2d_basic", (2, 6, 5, 3), (4, 3, 3, 3), dict(padding=1)),
    # The last example of problem-strings.md.
    ("2d_spec_example", (1, 9, 7, 6), (4, 3, 2, 3), dict(stride=[2, 1], padding=([0, 1], [2, 0]),
                                                         kernel_dilation=[1, 2], input_dilation=[2, 1],
                                                         groups=2, flip=True)),
    ("2d_negative_pad", (1, 8, 8, 2), (2, 2, 3, 2), dict(padding=([-1, 2], [1, -2]))),
    ("3d_basic", (1, 4, 5, 3, 2), (3, 2, 3, 2, 2), dict(padding=1)),
    ("3d_groups", (2, 4, 4, 5, 4), (6, 2, 3, 2, 2), dict(groups=2, stride=[1, 2, 1],
                                                        padding=([1, 0, -1], [0, 2, 1]),
                                                        input_dilation=[1, 1, 2], flip=True)),
]

# (name, x shape, w shape, conv_transpose kwargs)
TRANSPOSE_CASES = [
    ("1d_basic", (2, 6, 3), (4, 3, 3), {}),
    ("1d_stride", (1, 5, 2), (3, 4, 2), dict(stride=3)),
    ("1d_pad_outpad", (1, 5, 2), (2, 4, 2), dict(stride=3, padding=1, output_padding=2)),
    ("1d_pad_beyond_kernel", (1, 7, 2), (2, 3, 2), dict(stride=4, padding=3)),  # padding > d(K-1): MLX wrong
    ("1d_pad_far_beyond", (1, 9, 1), (1, 2, 1), dict(stride=5, padding=6, output_padding=3)),
    ("1d_dilation_outpad", (1, 6, 2), (2, 3, 2), dict(dilation=3, output_padding=2, padding=1)),
    ("1d_groups", (2, 5, 6), (6, 3, 2), dict(groups=3, stride=2)),
    ("1d_long_kernel", (1, 20, 1), (1, 64, 1), dict(stride=16)),  # op=convT k=4096 stride=1024, scaled down
    ("2d", (1, 4, 5, 4), (6, 3, 2, 2), dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2], groups=2)),
    ("3d_groups", (1, 3, 4, 3, 4), (6, 2, 3, 2, 2), dict(stride=2, padding=[0, 1, 2], dilation=[1, 2, 1],
                                                        output_padding=1, groups=2)),  # MLX refuses
]


def _rank(shape):
    return len(shape) - 2


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("case", GENERAL_CASES, ids=[c[0] for c in GENERAL_CASES])
def test_conv_general(case, dtype, rng):
    _, xs, ws, kw = case
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    y = convnd.conv_general(x, w, **kw)
    assert y.dtype == DTYPES[dtype]
    want = ref.conv_general(x, w, **kw)
    scale = ref.conv_general(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), **kw)
    assert_close(y, want, scale, dtype, f"conv_general {case[0]} {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[c[0] for c in TRANSPOSE_CASES])
def test_conv_transpose(case, dtype, rng):
    name, xs, ws, kw = case
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    fn = getattr(convnd, f"conv_transpose{_rank(xs)}d")
    y = fn(x, w, **kw)
    assert y.dtype == DTYPES[dtype]
    want = ref.conv_transpose(x, w, **kw)
    scale = ref.conv_transpose(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), **kw)
    assert_close(y, want, scale, dtype, f"{fn.__name__} {name} {dtype}")


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[c[0] for c in TRANSPOSE_CASES])
def test_reference_transpose_identity(case, rng):
    """Self-check of the references: the scatter equals the spec's conv_general form."""
    _, xs, ws, kw = case
    x = random_array(rng, xs, "f64")
    w = random_array(rng, ws, "f64")
    np.testing.assert_allclose(ref.conv_transpose(x, w, **kw), ref.conv_transpose_as_general(x, w, **kw),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_nd(rank, dtype, rng):
    """conv1d/2d/3d: stride, symmetric padding, dilation, groups (groups in 3-D: MLX refuses)."""
    spatial = [7, 6, 5][:rank]
    x = random_array(rng, (2, *spatial, 6), dtype)
    w = random_array(rng, (4, *[3, 2, 2][:rank], 3), dtype)
    kw = dict(stride=[2, 1, 2][:rank], padding=[1, 0, 2][:rank], dilation=[1, 2, 1][:rank], groups=2)
    y = getattr(convnd, f"conv{rank}d")(x, w, **kw)
    want = ref.conv(x, w, **kw)
    scale = ref.conv(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), **kw)
    assert_close(y, want, scale, dtype, f"conv{rank}d {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_small_integers_exact(dtype, rng):
    """Small-integer inputs: every sum is exact, so the result is bit-for-bit the reference."""
    x = random_array(rng, (2, 7, 5, 4), dtype, ints=True)
    w = random_array(rng, (6, 3, 3, 2), dtype, ints=True)
    y = convnd.conv_general(x, w, stride=[1, 2], padding=([1, 0], [2, 1]), input_dilation=[2, 1], groups=2)
    want = ref.conv_general(x, w, stride=[1, 2], padding=([1, 0], [2, 1]), input_dilation=[2, 1], groups=2)
    np.testing.assert_array_equal(y.astype(np.float64), want)


def test_float64_is_computed_in_float64(rng):
    """MLX drops float64 to float32; here values that need f64 survive."""
    x = np.full((1, 4, 1), 1.0 + 2.0**-40)
    w = np.ones((1, 2, 1))
    y = convnd.conv1d(x, w)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, np.full((1, 3, 1), 2.0 + 2.0**-39))


@pytest.mark.parametrize("dtype,big,want", [("f16", 2048, 2112), ("bf16", 256, 320)])
def test_half_accumulates_in_float32(dtype, big, want):
    """big + 63 ones: exact in float32 accumulation, then rounded once (to even); adding in the
    16-bit type would lose every one (big + 1 rounds back to big)."""
    x = np.ones((1, 64, 1), DTYPES[dtype])
    x[0, 0, 0] = big
    w = np.ones((1, 64, 1), DTYPES[dtype])
    y = convnd.conv1d(x, w)
    assert y.dtype == DTYPES[dtype]
    assert float(y[0, 0, 0]) == want


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_output_extent_formula(dtype):
    x = np.zeros((1, 13, 1), DTYPES[dtype])
    w = np.zeros((1, 4, 1), DTYPES[dtype])
    for s, p, d, op in [(1, 0, 1, 0), (3, 1, 1, 2), (2, 5, 2, 1), (4, 7, 1, 3)]:
        y = convnd.conv_transpose1d(x, w, stride=s, padding=p, dilation=d, output_padding=op)
        assert y.shape == (1, (13 - 1) * s - 2 * p + d * 3 + op + 1, 1)
