"""convnd.grad: the gradients of every convolution against the NumPy float64 references of the
spec (numpy_reference.py, written from the forward sums), adjoint identities, finite
differences, the transposed-conv case MLX gets wrong, determinism of the weight gradient,
errors, array handling, torch.nn.grad (if torch is installed) and CUDA (if there is a GPU)."""

import ast
import inspect
import itertools
import pathlib

import ml_dtypes
import numpy as np
import pytest

import convnd
import convnd.grad as grad
import numpy_reference as ref
from conftest import DTYPES, REL_TOL, random_array
from conftest import assert_close as _assert_close

ALL_DTYPES = list(DTYPES)


def _f64(a):
    return np.asarray(a).astype(np.float64)


def assert_close(got, want64, scale64, dtype, what=""):
    """conftest's bound, plus half an ulp of float16's subnormals (2**-25): a tiny gradient
    rounds to float16 with an absolute, not a relative, error."""
    floor = 2.0**-25 / REL_TOL[dtype] if dtype == "f16" else 0.0
    _assert_close(got, want64, np.asarray(scale64) + floor, dtype, what)


def _rounded(want, dtype):
    """The exact float64 sum rounded once to `dtype` (small integers: float32 accumulation is exact)."""
    return want.astype(dtype).astype(np.float64)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8)


# ---- problems --------------------------------------------------------------------------------

# (name, x shape, w shape, conv_general kwargs): every parameter, each alone and together.
GENERAL_CASES = [
    ("1d_basic", (2, 9, 3), (4, 3, 3), {}),
    ("1d_stride", (1, 11, 2), (3, 3, 2), dict(stride=2)),
    ("1d_stride_skips_inputs", (1, 10, 1), (2, 2, 1), dict(stride=4)),  # inputs no output reads: dx = 0
    ("1d_asym_pad", (1, 7, 2), (2, 3, 2), dict(padding=([1], [2]))),
    ("1d_negative_pad", (1, 10, 2), (3, 3, 2), dict(padding=([-2], [1]))),
    ("1d_negative_pad_idil", (1, 10, 2), (3, 3, 2), dict(padding=([-1], [0]), input_dilation=2)),
    ("1d_negative_hi_idil", (1, 6, 1), (1, 2, 1), dict(padding=([0], [-3]), input_dilation=3)),
    ("1d_kdil", (1, 12, 2), (2, 3, 2), dict(kernel_dilation=3, padding=2)),
    ("1d_idil_stride", (2, 5, 2), (2, 2, 2), dict(input_dilation=3, stride=2, padding=1)),
    ("1d_groups", (2, 8, 6), (4, 3, 3), dict(groups=2)),
    ("1d_flip", (1, 8, 2), (2, 4, 2), dict(flip=True, padding=([3], [0]))),
    ("1d_depthwise", (1, 9, 4), (4, 3, 1), dict(groups=4, padding=1)),
    ("1d_depthwise_multiplier", (2, 9, 3), (6, 3, 1), dict(groups=3, stride=2, padding=1)),
    ("1d_everything", (2, 9, 6), (6, 3, 2), dict(stride=2, padding=([2], [-1]), kernel_dilation=2,
                                                input_dilation=2, groups=3, flip=True)),
    ("2d_basic", (2, 6, 5, 3), (4, 3, 3, 3), dict(padding=1)),
    ("2d_spec_example", (1, 9, 7, 6), (4, 3, 2, 3), dict(stride=[2, 1], padding=([0, 1], [2, 0]),
                                                         kernel_dilation=[1, 2], input_dilation=[2, 1],
                                                         groups=2, flip=True)),
    ("2d_negative_pad", (1, 8, 8, 2), (2, 2, 3, 2), dict(padding=([-1, 2], [1, -2]))),
    ("2d_depthwise", (2, 7, 6, 4), (4, 3, 3, 1), dict(groups=4, padding=1, stride=2)),
    ("2d_1x1", (3, 5, 4, 6), (5, 1, 1, 6), {}),
    ("3d_basic", (1, 4, 5, 3, 2), (3, 2, 3, 2, 2), dict(padding=1)),
    ("3d_groups", (2, 4, 4, 5, 4), (6, 2, 3, 2, 2), dict(groups=2, stride=[1, 2, 1],
                                                        padding=([1, 0, -1], [0, 2, 1]),
                                                        input_dilation=[1, 1, 2], flip=True)),
    ("3d_depthwise_dil", (1, 5, 4, 6, 3), (3, 2, 2, 2, 1), dict(groups=3, kernel_dilation=[2, 1, 2], stride=2)),
]

# (name, x shape, w shape, conv_transpose kwargs)
TRANSPOSE_CASES = [
    ("1d_basic", (2, 6, 3), (4, 3, 3), {}),
    ("1d_stride", (1, 5, 2), (3, 4, 2), dict(stride=3)),
    ("1d_pad_outpad", (1, 5, 2), (2, 4, 2), dict(stride=3, padding=1, output_padding=2)),
    ("1d_pad_beyond_kernel", (1, 7, 2), (2, 3, 2), dict(stride=4, padding=3)),  # padding > d(K-1): MLX wrong
    ("1d_pad_far_beyond", (1, 9, 1), (1, 2, 1), dict(stride=5, padding=6, output_padding=3)),
    ("1d_seed_mlx_case", (1, 5, 1), (1, 3, 1), dict(stride=2, padding=3)),
    ("1d_dilation_outpad", (1, 6, 2), (2, 3, 2), dict(dilation=3, output_padding=2, padding=1)),
    ("1d_groups", (2, 5, 6), (6, 3, 2), dict(groups=3, stride=2)),
    ("1d_depthwise", (2, 6, 4), (4, 3, 1), dict(groups=4, stride=2, padding=1, output_padding=1)),
    ("1d_long_kernel", (1, 20, 1), (1, 64, 1), dict(stride=16)),  # op=convT k=4096 stride=1024, scaled down
    ("2d", (1, 4, 5, 4), (6, 3, 2, 2), dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2], groups=2)),
    ("2d_pad_beyond", (2, 4, 3, 2), (3, 2, 3, 2), dict(stride=[3, 2], padding=[2, 3], dilation=[1, 2],
                                                      output_padding=[2, 1])),
    ("3d_groups", (1, 3, 4, 3, 4), (6, 2, 3, 2, 2), dict(stride=2, padding=[0, 1, 2], dilation=[1, 2, 1],
                                                        output_padding=1, groups=2)),  # MLX refuses
]


def _rank(shape):
    return len(shape) - 2


def _valid(fn_name, xs, ws, kw):
    try:
        convnd.problem_string(np.zeros(xs, np.float32), np.zeros(ws, np.float32), op=fn_name, **kw)
        return True
    except ValueError:
        return False


def random_general_problem(rng, rank):
    """A random valid conv_general problem: strides, asymmetric and negative padding, kernel and
    input dilation, groups (depthwise included), flip."""
    while True:
        g = int(rng.choice([1, 1, 2, 3]))
        cg = 1 if rng.random() < 0.25 else int(rng.integers(1, 4))  # cg == 1 with g > 1: depthwise
        og = int(rng.integers(1, 4))
        kmax = 4 if rank < 3 else 3
        K = [int(rng.integers(1, kmax)) for _ in range(rank)]
        I = [int(rng.integers(1, 8 if rank < 3 else 5)) for _ in range(rank)]
        xs = (int(rng.integers(1, 3)), *I, g * cg)
        ws = (g * og, *K, cg)
        kw = dict(
            stride=[int(rng.integers(1, 4)) for _ in range(rank)],
            padding=([int(rng.integers(-2, 4)) for _ in range(rank)], [int(rng.integers(-2, 4)) for _ in range(rank)]),
            kernel_dilation=[int(rng.integers(1, 3)) for _ in range(rank)],
            input_dilation=[int(rng.integers(1, 4)) for _ in range(rank)],
            groups=g,
            flip=bool(rng.random() < 0.5),
        )
        if _valid("conv_general", xs, ws, kw):
            return xs, ws, kw


def random_transpose_problem(rng, rank):
    """A random valid conv_transpose problem, padding up to beyond d*(K-1), output_padding."""
    while True:
        g = int(rng.choice([1, 1, 2, 3]))
        cg = 1 if rng.random() < 0.25 else int(rng.integers(1, 4))
        og = int(rng.integers(1, 4))
        K = [int(rng.integers(1, 5 if rank < 3 else 3)) for _ in range(rank)]
        I = [int(rng.integers(1, 6 if rank < 3 else 4)) for _ in range(rank)]
        s = [int(rng.integers(1, 4)) for _ in range(rank)]
        d = [int(rng.integers(1, 3)) for _ in range(rank)]
        xs = (int(rng.integers(1, 3)), *I, g * cg)
        ws = (g * og, *K, cg)
        kw = dict(stride=s, dilation=d, groups=g,
                  padding=[int(rng.integers(0, d[i] * (K[i] - 1) + 3)) for i in range(rank)],
                  output_padding=[int(rng.integers(0, max(s[i], d[i]))) for i in range(rank)])
        if _valid(f"conv_transpose{rank}d", xs, ws, kw):
            return xs, ws, kw


def _out_shape(xs, ws, kw, op):
    return convnd.problem_shapes(np.zeros(xs, np.float32), np.zeros(ws, np.float32), op=op, **kw)[2]


def check_general(xs, ws, kw, dtype, rng, what):
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    dy = random_array(rng, _out_shape(xs, ws, kw, "conv_general"), dtype)
    dx = grad.conv_general_input(xs, w, dy, **kw)
    assert isinstance(dx, np.ndarray) and dx.dtype == DTYPES[dtype] and dx.shape == tuple(xs)
    assert_close(dx, ref.conv_general_input(xs, w, dy, **kw),
                 ref.conv_general_input(xs, np.abs(_f64(w)), np.abs(_f64(dy)), **kw), dtype, f"{what} dx")
    dw = grad.conv_general_weight(x, ws, dy, **kw)
    assert isinstance(dw, np.ndarray) and dw.dtype == DTYPES[dtype] and dw.shape == tuple(ws)
    assert_close(dw, ref.conv_general_weight(x, ws, dy, **kw),
                 ref.conv_general_weight(np.abs(_f64(x)), ws, np.abs(_f64(dy)), **kw), dtype, f"{what} dw")


def check_transpose(xs, ws, kw, dtype, rng, what):
    rank = _rank(xs)
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    dy = random_array(rng, _out_shape(xs, ws, kw, f"conv_transpose{rank}d"), dtype)
    dx = getattr(grad, f"conv_transpose{rank}d_input")(xs, w, dy, **kw)
    assert isinstance(dx, np.ndarray) and dx.dtype == DTYPES[dtype] and dx.shape == tuple(xs)
    assert_close(dx, ref.conv_transpose_input(xs, w, dy, **kw),
                 ref.conv_transpose_input(xs, np.abs(_f64(w)), np.abs(_f64(dy)), **kw), dtype, f"{what} dx")
    dw = getattr(grad, f"conv_transpose{rank}d_weight")(x, ws, dy, **kw)
    assert isinstance(dw, np.ndarray) and dw.dtype == DTYPES[dtype] and dw.shape == tuple(ws)
    assert_close(dw, ref.conv_transpose_weight(x, ws, dy, **kw),
                 ref.conv_transpose_weight(np.abs(_f64(x)), ws, np.abs(_f64(dy)), **kw), dtype, f"{what} dw")


# ---- against the references --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("case", GENERAL_CASES, ids=[c[0] for c in GENERAL_CASES])
def test_conv_general_grads(case, dtype, rng):
    name, xs, ws, kw = case
    check_general(xs, ws, kw, dtype, rng, f"conv_general {name} {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[c[0] for c in TRANSPOSE_CASES])
def test_conv_transpose_grads(case, dtype, rng):
    name, xs, ws, kw = case
    check_transpose(xs, ws, kw, dtype, rng, f"conv_transpose {name} {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_random_conv_general_grads(rank, i, dtype, rng):
    xs, ws, kw = random_general_problem(rng, rank)
    check_general(xs, ws, kw, dtype, rng, f"conv_general {xs} {ws} {kw} {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_random_conv_transpose_grads(rank, i, dtype, rng):
    xs, ws, kw = random_transpose_problem(rng, rank)
    check_transpose(xs, ws, kw, dtype, rng, f"conv_transpose{rank}d {xs} {ws} {kw} {dtype}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_nd_grads(rank, dtype, rng):
    """conv1d/2d/3d_input/_weight: stride, symmetric padding, dilation, groups."""
    spatial = [7, 6, 5][:rank]
    xs, ws = (2, *spatial, 6), (4, *[3, 2, 2][:rank], 3)
    kw = dict(stride=[2, 1, 2][:rank], padding=[1, 0, 2][:rank], dilation=[1, 2, 1][:rank], groups=2)
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    dy = random_array(rng, _out_shape(xs, ws, kw, f"conv{rank}d"), dtype)
    dx = getattr(grad, f"conv{rank}d_input")(xs, w, dy, **kw)
    assert dx.dtype == DTYPES[dtype]
    assert_close(dx, ref.conv_input(xs, w, dy, **kw), ref.conv_input(xs, np.abs(_f64(w)), np.abs(_f64(dy)), **kw),
                 dtype, f"conv{rank}d_input {dtype}")
    dw = getattr(grad, f"conv{rank}d_weight")(x, ws, dy, **kw)
    assert dw.dtype == DTYPES[dtype]
    assert_close(dw, ref.conv_weight(x, ws, dy, **kw), ref.conv_weight(np.abs(_f64(x)), ws, np.abs(_f64(dy)), **kw),
                 dtype, f"conv{rank}d_weight {dtype}")
    # The same problem through conv_general: the same bits.
    gkw = dict(stride=kw["stride"], padding=kw["padding"], kernel_dilation=kw["dilation"], groups=2)
    np.testing.assert_array_equal(_bits(grad.conv_general_input(xs, w, dy, **gkw)), _bits(dx))
    np.testing.assert_array_equal(_bits(grad.conv_general_weight(x, ws, dy, **gkw)), _bits(dw))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_small_integers_exact(dtype, rng):
    """Small integers: every sum is exact in every dtype here, so the gradients are the
    reference bit for bit."""
    xs, ws = (2, 7, 5, 4), (6, 3, 3, 2)
    kw = dict(stride=[1, 2], padding=([1, 0], [2, 1]), input_dilation=[2, 1], groups=2, flip=True)
    x = random_array(rng, xs, dtype, ints=True)
    w = random_array(rng, ws, dtype, ints=True)
    dy = random_array(rng, _out_shape(xs, ws, kw, "conv_general"), dtype, ints=True)
    dt = DTYPES[dtype]
    np.testing.assert_array_equal(_f64(grad.conv_general_input(xs, w, dy, **kw)),
                                  _rounded(ref.conv_general_input(xs, w, dy, **kw), dt))
    np.testing.assert_array_equal(_f64(grad.conv_general_weight(x, ws, dy, **kw)),
                                  _rounded(ref.conv_general_weight(x, ws, dy, **kw), dt))
    tkw = dict(stride=[2, 3], padding=[3, 1], output_padding=[1, 2], groups=2)
    dyt = random_array(rng, _out_shape(xs, ws, tkw, "conv_transpose2d"), dtype, ints=True)
    np.testing.assert_array_equal(_f64(grad.conv_transpose2d_input(xs, w, dyt, **tkw)),
                                  _rounded(ref.conv_transpose_input(xs, w, dyt, **tkw), dt))
    np.testing.assert_array_equal(_f64(grad.conv_transpose2d_weight(x, ws, dyt, **tkw)),
                                  _rounded(ref.conv_transpose_weight(x, ws, dyt, **tkw), dt))


@pytest.mark.parametrize("dtype,big,want", [("f16", 2048, 2112), ("bf16", 256, 320)])
def test_half_accumulates_in_float32(dtype, big, want):
    """big + 63 ones, exact in float32 and rounded once; in the 16-bit type each +1 is lost."""
    dt = DTYPES[dtype]
    # dw[0, 0, 0] = sum over 64 output positions of x * dy
    x = np.ones((1, 64, 1), dt)
    x[0, 0, 0] = big
    dw = grad.conv1d_weight(x, (1, 1, 1), np.ones((1, 64, 1), dt))
    assert dw.dtype == dt and float(dw[0, 0, 0]) == want
    # dx[0, 0, 0] = sum over 64 output channels of dy * w
    w = np.ones((64, 1, 1), dt)
    w[0, 0, 0] = big
    dx = grad.conv1d_input((1, 1, 1), w, np.ones((1, 1, 64), dt))
    assert dx.dtype == dt and float(dx[0, 0, 0]) == want


def test_float64_is_computed_in_float64():
    x = np.full((1, 4, 1), 1.0 + 2.0**-40)
    dw = grad.conv1d_weight(x, (1, 2, 1), np.ones((1, 3, 1)))
    assert dw.dtype == np.float64
    np.testing.assert_array_equal(dw, np.full((1, 2, 1), 3.0 + 3 * 2.0**-40))
    dx = grad.conv1d_input((1, 4, 1), np.ones((1, 2, 1)), x[:, :3])
    np.testing.assert_array_equal(dx[0, 1:3, 0], [2.0 + 2.0**-39] * 2)


# ---- identities that need no reference --------------------------------------------------------


def _assert_equal_products(a, b, c, scale):
    tol = 1e-12 * scale + 1e-300
    assert abs(a - b) <= tol and abs(a - c) <= tol, (a, b, c, tol)


@pytest.mark.parametrize("i", range(3))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adjoint_identities_conv_general(rank, i, rng):
    """<conv(x, w), dy> == <x, dx> == <w, dw> in float64."""
    xs, ws, kw = random_general_problem(rng, rank)
    x, w = random_array(rng, xs, "f64"), random_array(rng, ws, "f64")
    y = convnd.conv_general(x, w, **kw)
    dy = random_array(rng, y.shape, "f64")
    dx = grad.conv_general_input(xs, w, dy, **kw)
    dw = grad.conv_general_weight(x, ws, dy, **kw)
    scale = float(np.vdot(convnd.conv_general(np.abs(x), np.abs(w), **kw), np.abs(dy)))
    _assert_equal_products(float(np.vdot(y, dy)), float(np.vdot(x, dx)), float(np.vdot(w, dw)), scale)


@pytest.mark.parametrize("i", range(3))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adjoint_identities_conv_transpose(rank, i, rng):
    xs, ws, kw = random_transpose_problem(rng, rank)
    x, w = random_array(rng, xs, "f64"), random_array(rng, ws, "f64")
    y = getattr(convnd, f"conv_transpose{rank}d")(x, w, **kw)
    dy = random_array(rng, y.shape, "f64")
    dx = getattr(grad, f"conv_transpose{rank}d_input")(xs, w, dy, **kw)
    dw = getattr(grad, f"conv_transpose{rank}d_weight")(x, ws, dy, **kw)
    scale = float(np.vdot(getattr(convnd, f"conv_transpose{rank}d")(np.abs(x), np.abs(w), **kw), np.abs(dy)))
    _assert_equal_products(float(np.vdot(y, dy)), float(np.vdot(x, dx)), float(np.vdot(w, dw)), scale)


def _finite_differences(f, a, h=1e-3):
    """Central differences of the scalar f at a, element by element."""
    out = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        e = np.zeros_like(a)
        e[idx] = h
        out[idx] = (f(a + e) - f(a - e)) / (2 * h)
    return out


FD_CASES = [
    # (forward function name, x shape, w shape, kwargs)
    ("conv_general", (1, 5, 2), (2, 3, 1), dict(stride=2, padding=([2], [-1]), input_dilation=2, groups=2,
                                                flip=True)),
    ("conv2d", (1, 4, 3, 2), (2, 2, 2, 2), dict(stride=[1, 2], padding=1, dilation=[2, 1])),
    ("conv3d", (1, 3, 3, 2, 1), (2, 2, 1, 2, 1), dict(padding=[1, 0, 1])),
    ("conv_transpose1d", (1, 5, 1), (1, 3, 1), dict(stride=2, padding=3)),
    ("conv_transpose2d", (1, 3, 2, 2), (2, 2, 3, 1), dict(stride=[2, 1], padding=[1, 1], output_padding=[1, 0],
                                                          groups=2)),
]


@pytest.mark.parametrize("case", FD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FD_CASES)])
def test_finite_differences(case, rng):
    """The gradients of L = <f(x, w), dy> match central differences of convnd's own forward."""
    op, xs, ws, kw = case
    fwd = getattr(convnd, op)
    x, w = random_array(rng, xs, "f64"), random_array(rng, ws, "f64")
    dy = random_array(rng, fwd(x, w, **kw).shape, "f64")
    fd_x = _finite_differences(lambda a: float(np.vdot(fwd(a, w, **kw), dy)), x)
    fd_w = _finite_differences(lambda a: float(np.vdot(fwd(x, a, **kw), dy)), w)
    np.testing.assert_allclose(getattr(grad, f"{op}_input")(xs, w, dy, **kw), fd_x, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(getattr(grad, f"{op}_weight")(x, ws, dy, **kw), fd_w, rtol=1e-8, atol=1e-9)


def test_seed_case_where_mlx_is_wrong():
    """op=convT in=5 c=1 o=1 k=3 stride=2 pad=3: padding (3) > dilation*(K-1) (2). The input
    gradient is exactly the transpose of the forward's matrix."""
    kw = dict(stride=2, padding=3)
    w = np.array([[[1.0], [2.0], [4.0]]])
    cols = []
    for t in range(5):
        e = np.zeros((1, 5, 1))
        e[0, t, 0] = 1
        cols.append(convnd.conv_transpose1d(e, w, **kw).ravel())
    A = np.stack(cols, axis=1)  # y = A @ x
    assert A.shape == (5, 5)  # P = (5-1)*2 - 2*3 + 2 + 1
    np.testing.assert_array_equal(A, np.stack([ref.conv_transpose(c.reshape(1, 5, 1), w, **kw).ravel()
                                               for c in np.eye(5)], axis=1))
    for j in range(5):  # each unit cotangent picks one row of A
        dy = np.zeros((1, 5, 1))
        dy[0, j, 0] = 1
        np.testing.assert_array_equal(grad.conv_transpose1d_input((1, 5, 1), w, dy, **kw).ravel(), A[j])
    rng = np.random.default_rng(5)
    for dtype in ALL_DTYPES:
        dy = random_array(rng, (1, 5, 1), dtype, ints=True)
        x = random_array(rng, (1, 5, 1), dtype, ints=True)
        dx = grad.conv_transpose1d_input((1, 5, 1), w.astype(dy.dtype), dy, **kw)
        np.testing.assert_array_equal(_f64(dx).ravel(), _rounded(A.T @ _f64(dy).ravel(), dx.dtype))
        dw = grad.conv_transpose1d_weight(x, (1, 3, 1), dy, **kw)
        np.testing.assert_array_equal(_f64(dw), _rounded(ref.conv_transpose_weight(x, (1, 3, 1), dy, **kw), dw.dtype))
    # The problem string an error names is the one convnd.plan takes.
    p = convnd.plan("op=convT in=5 c=1 o=1 k=3 stride=2 pad=3 dir=bwd_d")
    assert p["direction"] == "bwd_d" and p["problem"] == "op=convT in=5 c=1 o=1 k=3 stride=2 pad=3 dir=bwd_d"


# ---- determinism of the weight gradient ---------------------------------------------------------

DETERMINISM_CASES = [
    # (function, input shape, weight shape, kwargs): long reductions (batch x output positions)
    ("conv2d", (4, 40, 40, 16), (16, 3, 3, 16), dict(padding=1)),
    ("conv1d", (2, 30000, 2), (3, 5, 2), dict(padding=2)),
    ("conv2d", (2, 33, 31, 8), (8, 3, 3, 1), dict(padding=1, groups=8)),  # depthwise
    ("conv_general", (2, 37, 4), (6, 3, 2), dict(stride=2, padding=([3], [-1]), input_dilation=3, groups=2,
                                                flip=True)),
    ("conv_transpose1d", (2, 2000, 4), (4, 8, 4), dict(stride=4, padding=5, output_padding=3)),
    ("conv3d", (2, 10, 12, 11, 4), (4, 3, 2, 3, 4), dict(stride=[1, 2, 1], padding=1)),
]


def _budgets(problem, threads):
    """Budgets from the default plan's workspace down to the least any plan fits in (found by
    bisection), each with its plan's configuration."""
    default = convnd.plan(problem, threads=threads)
    lo, hi = 0, default["workspace_bytes"]  # lo fails (0 bytes is never enough), hi plans
    if hi == 0:
        return [(None, default["config"])]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convnd.plan(problem, threads=threads, budget=mid)
            hi = mid
        except MemoryError:
            lo = mid
    out = [(None, default["config"])]
    for b in sorted({hi, (hi + default["workspace_bytes"]) // 2}):
        out.append((b, convnd.plan(problem, threads=threads, budget=b)["config"]))
    return out


@pytest.mark.parametrize("dtype", ["f32", "bf16", "f16", "f64"])
@pytest.mark.parametrize("case", DETERMINISM_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(DETERMINISM_CASES)])
def test_weight_gradient_is_bitwise_deterministic(case, dtype, rng):
    """The same dw, bit for bit, for threads 1 and 2, the default budget and the smallest ones
    any plan fits in (other tilings), and repeated runs."""
    op, xs, ws, kw = case
    f = getattr(grad, f"{op}_weight")
    x = random_array(rng, xs, dtype)
    dy = random_array(rng, _out_shape(xs, ws, kw, op), dtype)
    problem = convnd.problem_string(x, np.zeros(ws, x.dtype), op=op, **kw) + " dir=bwd_w"
    base = f(x, ws, dy, **kw)
    np.testing.assert_array_equal(_bits(f(x, ws, dy, **kw)), _bits(base))
    configs = set()
    for threads in (1, 2):
        for budget, config in _budgets(problem, threads):
            configs.add(tuple(sorted(config.items())))
            dw = f(x, ws, dy, **kw, threads=threads, budget=budget)
            np.testing.assert_array_equal(_bits(dw), _bits(base), err_msg=f"threads={threads} budget={budget}")
    if (op, xs) == ("conv2d", (4, 40, 40, 16)):
        assert len(configs) >= 3, configs  # the thread counts and budgets did change the tiling
    if op == "conv_general":  # and the bits are a correct answer
        want = ref.conv_general_weight(x, ws, dy, **kw)
        scale = ref.conv_general_weight(np.abs(_f64(x)), ws, np.abs(_f64(dy)), **kw)
        assert_close(base, want, scale, dtype, "dw")


def test_input_gradient_is_the_same_for_any_threads_and_budget(rng):
    """dx under a tiny budget and either thread count: whatever algorithm that forces, the same
    answer (small integers, so every algorithm's sums are exact)."""
    x_shape, ws, kw = (2, 31, 29, 8), (12, 3, 3, 4), dict(stride=2, padding=1, groups=2)
    w = random_array(rng, ws, "f32", ints=True)
    dy = random_array(rng, _out_shape(x_shape, ws, kw, "conv2d"), "f32", ints=True)
    base = grad.conv2d_input(x_shape, w, dy, **kw)
    np.testing.assert_array_equal(base, ref.conv_input(x_shape, w, dy, **kw))
    ran = 0
    for threads, budget in itertools.product([1, 2], [None, "64KiB", 8192]):
        try:
            dx = grad.conv2d_input(x_shape, w, dy, **kw, threads=threads, budget=budget)
        except MemoryError:
            continue
        ran += 1
        np.testing.assert_array_equal(dx, base)
    assert ran >= 2


INTERRUPT_SCRIPT = """
import os, signal, sys, threading, time
import numpy as np
import convnd.grad

which = sys.argv[1]
# About a second on one thread here. Dense arrays (134 MB), each passed twice: a strided view would
# be copied densely first, which reports no progress.
c, shape = (128, (4, 256, 256, 128)) if which == "weight" else (256, (8, 128, 128, 256))
x = np.ones(shape, np.float32)
w = np.ones((c, 3, 3, c), np.float32)
threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t = time.perf_counter()
try:
    if which == "weight":
        convnd.grad.conv2d_weight(x, w.shape, x, padding=1, threads=1)
    else:
        convnd.grad.conv2d_input(x.shape, w, x, padding=1, threads=1)
    print("COMPLETED", time.perf_counter() - t)
except BaseException as e:
    print("RAISED", type(e).__name__, time.perf_counter() - t)
dw = convnd.grad.conv1d_weight(np.ones((1, 4, 1), np.float32), (1, 2, 1), np.ones((1, 3, 1), np.float32))
print("AFTER", float(dw.sum()))
"""


@pytest.mark.parametrize("which", ["weight", "input"])
def test_sigint_stops_a_gradient(which):
    """Ctrl-C stops a long gradient between tiles (in a child process, as test_interrupt.py)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, which], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("RAISED ", "COMPLETED ",
                                                                                          "AFTER ")))
    assert "RAISED" in lines, r.stdout
    name, seconds = lines["RAISED"].split(" ")
    assert name == "KeyboardInterrupt" and float(seconds) < 1.0, r.stdout
    assert lines["AFTER"] == "6.0"


# ---- errors -------------------------------------------------------------------------------------


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


W = zeros(4, 3, 3, 3)  # conv2d weight: O=4, 3x3, C=3
X = zeros(1, 8, 8, 3)
DY = zeros(1, 6, 6, 4)  # conv2d(X, W)'s output

ERRORS = [
    # (call, exception, regular expression the message must match)
    (lambda: grad.conv2d_input((1, 8, 8, 3), W, zeros(1, 7, 8, 4)), ValueError,
     r"^\[conv2d_input\] cotangent shape \(1, 7, 8, 4\) must be the forward output's shape \(1, 6, 6, 4\); "
     r"problem: in=8x8 c=3 o=4 k=3x3 dir=bwd_d$"),
    (lambda: grad.conv2d_weight(X, (4, 3, 3, 3), zeros(1, 6, 6)), ValueError,
     r"^\[conv2d_weight\] cotangent shape \(1, 6, 6\) must be .*; problem: in=8x8 c=3 o=4 k=3x3 dir=bwd_w$"),
    (lambda: grad.conv2d_input((1, 8, 8, 3), W, zeros(1, 8, 8, 4), padding=1, stride=2), ValueError,
     r"output's shape \(1, 4, 4, 4\); problem: in=8x8 c=3 o=4 k=3x3 stride=2 pad=1 dir=bwd_d$"),
    (lambda: grad.conv2d_input((1, 8, 8, 3), W, DY.astype(np.float64)), ValueError,
     r"^\[conv2d_input\] cotangent dtype f64 and weight dtype f32 must match; problem: in=8x8 c=3 o=4 k=3x3 "
     r"dir=bwd_d$"),
    (lambda: grad.conv2d_weight(X.astype(np.float16), (4, 3, 3, 3), DY), ValueError,
     r"cotangent dtype f32 and input dtype f16 must match; problem: in=8x8 c=3 o=4 k=3x3 dtype=f16 dir=bwd_w$"),
    (lambda: grad.conv2d_input((1, 8, 8, 5), W, DY), ValueError,
     r"^\[conv2d_input\] weight channels \(3\) must equal input channels / groups .*; "
     r"problem: in=8x8 c=5 o=4 k=3x3 dir=bwd_d$"),
    (lambda: grad.conv2d_weight(X, (4, 3, 3, 2), DY), ValueError,
     r"^\[conv2d_weight\] weight channels \(2\) must equal .*; problem: in=8x8 c=3 o=4 k=3x3 dir=bwd_w$"),
    (lambda: grad.conv2d_weight(X, (4, 3, 3, 1), DY, groups=3), ValueError,
     r"output channels \(4\) must be divisible by groups \(3\); problem: .* g=3 dir=bwd_w$"),
    (lambda: grad.conv_general_input((1, 8, 8, 3), W, DY, groups=0), ValueError, r"groups g \(0\) must be >= 1"),
    (lambda: grad.conv2d_input((1, 8, 3), W, DY), ValueError,
     r"^\[conv2d_input\] input x must have 4 dimensions .*; input shape \(1, 8, 3\), weight shape \(4, 3, 3, 3\)$"),
    (lambda: grad.conv2d_weight(X, (4, 3, 3), DY), ValueError, r"weight w must have 4 dimensions"),
    (lambda: grad.conv2d_input((), W, DY), ValueError, r"input x must have 4 dimensions"),
    (lambda: grad.conv2d_input((0, 8, 8, 3), W, DY), ValueError, r"batch size n \(0\) must be >= 1.*dir=bwd_d$"),
    (lambda: grad.conv2d_input((1, -8, 8, 3), W, DY), ValueError, r"dir=bwd_d$"),
    (lambda: grad.conv2d_input((1, 2, 2, 3), W, DY, stride=2), ValueError, r"problem: .*dir=bwd_d$"),  # kernel > input
    (lambda: grad.conv_general_weight(zeros(1, 6, 1), (1, 3, 1), zeros(1, 1, 1), padding=([-3], [-1])), ValueError,
     r"problem: .*dir=bwd_w$"),
    (lambda: grad.conv_transpose1d_input((1, 4, 1), zeros(1, 3, 1), zeros(1, 9, 1), stride=2, output_padding=2),
     ValueError, r"output.*dir=bwd_d$"),
    (lambda: grad.conv_transpose1d_weight(zeros(1, 4, 1), (1, 3, 1), zeros(1, 4, 1), padding=-1), ValueError,
     r"pad.*dir=bwd_w$"),
    (lambda: grad.conv_transpose1d_input((1, 5, 1), zeros(1, 3, 1), zeros(1, 11, 1), stride=2, padding=3),
     ValueError, r"\(1, 5, 1\); problem: op=convT in=5 c=1 o=1 k=3 stride=2 pad=3 dir=bwd_d$"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), stride=0), ValueError, r"stride"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), dilation=[1, 1]), ValueError, r"expected 1"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), device="tpu"), ValueError, r"device"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), budget="lots"), ValueError, r"budget"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), budget=-1), ValueError, r"budget"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 3, 1), zeros(1, 6, 1), algorithm="no_such_algorithm"),
     ValueError, r"no_such_algorithm"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 3, 1), zeros(1, 6, 1), isa="sse9"), ValueError, r"isa must be"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), precision="half"), ValueError,
     r"^precision must be 'exact' or 'tf32', got 'half'$"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 3, 1), zeros(1, 6, 1), threads=4097), ValueError,
     r"^threads \(4097\) must be from 0"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 2**63, 1), zeros(1, 6, 1)), ValueError,
     r"^weight_shape \(9223372036854775808\) is out of range"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 3, 1), zeros(1, 6, 1), groups=2**63), ValueError, r"groups"),
    # types
    (lambda: grad.conv2d_input(X, W, DY), TypeError,
     r"^input_shape must be a sequence of ints \(the input's shape\), got an array of shape \(1, 8, 8, 3\)$"),
    (lambda: grad.conv2d_weight(X, W, DY), TypeError, r"^weight_shape must be a sequence of ints .*\(4, 3, 3, 3\)$"),
    (lambda: grad.conv1d_input(8, zeros(1, 3, 1), zeros(1, 6, 1)), TypeError, r"^input_shape must be .* got 8$"),
    (lambda: grad.conv1d_input("1x8x1", zeros(1, 3, 1), zeros(1, 6, 1)), TypeError, r"^input_shape must be"),
    (lambda: grad.conv1d_input((1, 8.0, 1), zeros(1, 3, 1), zeros(1, 6, 1)), TypeError, r"^input_shape must be"),
    (lambda: grad.conv1d_input((1, 8, 1), None, zeros(1, 6, 1)), TypeError, r"^weight must be an array"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), None), TypeError, r"^cotangent must be an array"),
    (lambda: grad.conv1d_weight("x", (1, 3, 1), zeros(1, 6, 1)), TypeError, r"^input must be an array"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1), (1, 3, 1), object()), TypeError, r"^cotangent must be an array"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1, dtype=np.int32)), TypeError,
     r"^cotangent has dtype int32; convnd computes float32, float16, bfloat16 and float64; input shape "
     r"\(1, 8, 1\), weight shape \(1, 3, 1\), cotangent shape \(1, 6, 1\)$"),
    (lambda: grad.conv1d_weight(zeros(1, 8, 1, dtype=np.int64), (1, 3, 1), zeros(1, 6, 1)), TypeError,
     r"^input has dtype int64; .*; input shape \(1, 8, 1\), weight shape \(1, 3, 1\), cotangent shape \(1, 6, 1\)$"),
    (lambda: grad.conv1d_input((1, 8, 1), np.zeros((1, 3, 1), np.complex64), zeros(1, 6, 1)), TypeError,
     r"^weight has dtype complex64"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), stride="2"), TypeError, r"stride"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), groups=None), TypeError, r"groups"),
    (lambda: grad.conv_general_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), padding=([1], 2)), TypeError,
     r"padding"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), threads="2"), TypeError,
     r"^threads must be an int"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), device=3), TypeError,
     r"^device must be 'cpu' or 'cuda'"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), budget=2.5), TypeError, r"^budget must be"),
    (lambda: grad.conv1d_input((1, 8, 1), zeros(1, 3, 1), zeros(1, 6, 1), algorithm=3), TypeError,
     r"^algorithm must be"),
]


@pytest.mark.parametrize("call,exc,pattern", ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_errors(call, exc, pattern):
    with pytest.raises(exc) as e:
        call()
    msg = str(e.value)
    assert type(e.value) is exc, type(e.value)
    assert __import__("re").search(pattern, msg), msg
    assert "incompatible function arguments" not in msg and "\n" not in msg, msg


def test_error_problem_strings_are_the_gradients():
    """The problem string an error ends with is the gradient's, which convnd.plan (and the CLI)
    take as they are."""
    with pytest.raises(ValueError) as e:
        grad.conv_transpose2d_weight(zeros(2, 5, 6, 4), (6, 3, 2, 2), zeros(2, 1, 1, 6), stride=[2, 3], padding=[1, 0],
                                     output_padding=[1, 2], groups=2)
    s = str(e.value).rsplit("; problem: ", 1)[1]
    assert s == "op=convT n=2 in=5x6 c=4 o=6 k=3x2 stride=2x3 pad=1x0 outpad=1x2 g=2 dir=bwd_w"
    x, w, y = convnd.problem_shapes(s)
    assert x == (2, 5, 6, 4) and w == (6, 3, 2, 2) and y == (2, 10, 19, 6)
    p = convnd.plan(s)
    assert p["problem"] == s and p["direction"] == "bwd_w"


@pytest.mark.skipif(convnd.has_cuda(), reason="this build has the CUDA backend")
def test_cuda_without_backend_is_not_implemented():
    with pytest.raises(NotImplementedError, match=r"problem: n=2 in=9 c=3 o=4 k=3 dir=bwd_d$"):
        grad.conv1d_input((2, 9, 3), zeros(4, 3, 3), zeros(2, 7, 4), device="cuda")
    with pytest.raises(NotImplementedError, match=r"problem: n=2 in=9 c=3 o=4 k=3 dir=bwd_w$"):
        grad.conv1d_weight(zeros(2, 9, 3), (4, 3, 3), zeros(2, 7, 4), device="cuda")


def test_memory_error_before_allocating():
    """Zero-stride views describe a huge problem without memory: refused before allocating dw's
    workspace or dx."""
    x = np.broadcast_to(np.zeros(1, np.float32), (1_000_000, 100_000, 1000))
    dy = np.broadcast_to(np.zeros(1, np.float32), (1_000_000, 100_000, 1))
    with pytest.raises(MemoryError, match=r"problem: .*dir=bwd_d$"):
        grad.conv1d_input(x.shape, np.zeros((1, 1, 1000), np.float32), dy)


def test_errors_leave_inputs_untouched_and_the_library_usable(rng):
    w = random_array(rng, (4, 3, 3, 3), "f32")
    dy = random_array(rng, (1, 6, 6, 4), "f32")
    w0, dy0 = w.copy(), dy.copy()
    with pytest.raises(ValueError):
        grad.conv2d_input((1, 8, 8, 3), w, dy[:, :5])
    with pytest.raises(ValueError):
        grad.conv2d_input((1, 8, 8, 3), w, dy, groups=0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dy, dy0)
    dx = grad.conv2d_input((1, 8, 8, 3), w, dy)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dy, dy0)
    assert_close(dx, ref.conv_input((1, 8, 8, 3), w, dy), ref.conv_input((1, 8, 8, 3), np.abs(_f64(w)),
                                                                          np.abs(_f64(dy))), "f32", "dx")


# ---- arrays ---------------------------------------------------------------------------------------


class DLPackOnly:
    """A producer that offers nothing but the DLPack protocol (wrapping NumPy's own)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.fixture
def problem2d(rng):
    xs, ws, kw = (2, 10, 8, 6), (4, 3, 2, 3), dict(padding=1, groups=2)
    x = random_array(rng, xs, "f32", ints=True)
    w = random_array(rng, ws, "f32", ints=True)
    dy = random_array(rng, _out_shape(xs, ws, kw, "conv2d"), "f32", ints=True)
    return x, w, dy, kw


def _check_exact(x, w, dy, kw, dx=None, dw=None):
    if dx is not None:
        np.testing.assert_array_equal(_f64(dx), _rounded(ref.conv_input(np.shape(x), w, dy, **kw), dx.dtype))
    if dw is not None:
        np.testing.assert_array_equal(_f64(dw), _rounded(ref.conv_weight(x, np.shape(w), dy, **kw), dw.dtype))


@pytest.mark.parametrize("layout", ["sliced_steps", "negative_strides", "fortran", "transposed_view", "read_only"])
def test_strided_arrays(layout, problem2d):
    x, w, dy, kw = problem2d

    def strided(a):
        if layout == "sliced_steps":
            big = np.zeros(tuple(2 * e for e in a.shape), a.dtype)
            big[(slice(None, None, 2),) * a.ndim] = a
            return big[(slice(None, None, 2),) * a.ndim]
        if layout == "negative_strides":
            big = a[::-1, ::-1].copy()
            return big[::-1, ::-1]
        if layout == "fortran":
            return np.asfortranarray(a)
        if layout == "transposed_view":
            return np.ascontiguousarray(np.swapaxes(a, 1, 2)).swapaxes(1, 2)
        r = a.copy()
        r.flags.writeable = False
        return r

    xs, ws, dys = strided(x), strided(w), strided(dy)
    np.testing.assert_array_equal(xs, x)
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, ws, dys, **kw), dw=grad.conv2d_weight(xs, w.shape, dys, **kw))


def test_zero_strides(rng):
    dy = np.broadcast_to(random_array(rng, (1, 1, 1, 4), "f32", ints=True), (2, 6, 6, 4))
    x = np.broadcast_to(random_array(rng, (1, 1, 8, 3), "f32", ints=True), (2, 8, 8, 3))
    w = random_array(rng, (4, 3, 3, 3), "f32", ints=True)
    _check_exact(x, w, dy, {}, dx=grad.conv2d_input(x.shape, w, dy), dw=grad.conv2d_weight(x, w.shape, dy))


def test_byte_swapped(problem2d):
    x, w, dy, kw = problem2d
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, w.astype(">f4"), dy.astype(">f4"), **kw),
                 dw=grad.conv2d_weight(x.astype(">f4"), w.shape, dy.astype(">f4"), **kw))


def test_dlpack_producers_and_capsules(problem2d):
    x, w, dy, kw = problem2d
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, DLPackOnly(w), DLPackOnly(dy), **kw),
                 dw=grad.conv2d_weight(DLPackOnly(x), w.shape, DLPackOnly(dy[:, ::1]), **kw))
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, w.__dlpack__(), dy.__dlpack__(), **kw),
                 dw=grad.conv2d_weight(x.__dlpack__(), w.shape, dy.__dlpack__(), **kw))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtypes_round_trip(dtype, problem2d):
    x, w, dy, kw = (a.astype(DTYPES[dtype]) if isinstance(a, np.ndarray) else a for a in problem2d)
    dx = grad.conv2d_input(x.shape, w, dy, **kw)
    dw = grad.conv2d_weight(x, w.shape, dy, **kw)
    assert type(dx) is np.ndarray and type(dw) is np.ndarray
    assert dx.dtype == DTYPES[dtype] and dw.dtype == DTYPES[dtype]
    _check_exact(x, w, dy, kw, dx=dx, dw=dw)


def test_bfloat16_is_ml_dtypes(problem2d):
    x, w, dy, kw = problem2d
    dw = grad.conv2d_weight(x.astype(ml_dtypes.bfloat16)[:, ::-1][:, ::-1], w.shape, dy.astype(ml_dtypes.bfloat16),
                            **kw)
    assert dw.dtype == ml_dtypes.bfloat16
    _check_exact(x, w, dy, kw, dw=dw)


@pytest.mark.parametrize("shape_type", [tuple, list, np.array, lambda s: [np.int64(e) for e in s],
                                        lambda s: (e for e in s)])
def test_shape_forms(shape_type, problem2d):
    x, w, dy, kw = problem2d
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(shape_type(x.shape), w, dy, **kw),
                 dw=grad.conv2d_weight(x, shape_type(w.shape), dy, **kw))


def test_python_lists():
    dx = grad.conv1d_input((1, 3, 1), [[[1.0], [1.0]]], [[[1.0], [2.0]]])
    assert dx.dtype == np.float64
    np.testing.assert_array_equal(dx, [[[1.0], [3.0], [2.0]]])
    dw = grad.conv1d_weight([[[1.0], [2.0], [3.0]]], [1, 2, 1], [[[1.0], [1.0]]])
    np.testing.assert_array_equal(dw, [[[3.0], [5.0]]])


def test_output_is_owned_writable_numpy(problem2d):
    x, w, dy, kw = problem2d
    for out in (grad.conv2d_input(x.shape, w, dy, **kw), grad.conv2d_weight(x, w.shape, dy, **kw)):
        assert type(out) is np.ndarray and out.flags.c_contiguous and out.flags.writeable
        before = out.copy()
        out += 0
        np.testing.assert_array_equal(out, before)
        assert not np.shares_memory(out, x) and not np.shares_memory(out, w) and not np.shares_memory(out, dy)


def test_positional_and_keyword_arguments_as_forward(rng):
    """The arguments after the cotangent are the forward function's, positionally too."""
    x = random_array(rng, (1, 12, 4), "f64")
    w = random_array(rng, (6, 3, 2), "f64")
    dy = random_array(rng, convnd.conv1d(x, w, 2, 1, 2, 2).shape, "f64")
    np.testing.assert_array_equal(grad.conv1d_input(x.shape, w, dy, 2, 1, 2, 2),
                                  grad.conv1d_input(input_shape=x.shape, weight=w, cotangent=dy, stride=2, padding=1,
                                                    dilation=2, groups=2))
    np.testing.assert_array_equal(grad.conv1d_weight(x, w.shape, dy, 2, 1, 2, 2),
                                  grad.conv1d_weight(input=x, weight_shape=w.shape, cotangent=dy, stride=2, padding=1,
                                                     dilation=2, groups=2))
    dyt = random_array(rng, convnd.conv_transpose1d(x, w, 2, 1, 2, 1, 2).shape, "f64")
    np.testing.assert_array_equal(grad.conv_transpose1d_input(x.shape, w, dyt, 2, 1, 2, 1, 2),
                                  grad.conv_transpose1d_input(x.shape, w, dyt, stride=2, padding=1, dilation=2,
                                                              output_padding=1, groups=2))
    dyg = random_array(rng, convnd.conv_general(x, w, 2, ([1], [0]), 1, 2, 2, True).shape, "f64")
    np.testing.assert_array_equal(grad.conv_general_weight(x, w.shape, dyg, 2, ([1], [0]), 1, 2, 2, True),
                                  grad.conv_general_weight(x, w.shape, dyg, stride=2, padding=([1], [0]),
                                                           input_dilation=2, groups=2, flip=True))


def test_isa_and_algorithm_keywords(problem2d):
    x, w, dy, kw = problem2d
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, w, dy, **kw, isa="generic"),
                 dw=grad.conv2d_weight(x, w.shape, dy, **kw, isa="auto", threads=1, budget="64MiB"))
    algo = convnd.plan(convnd.problem_string(x, w, op="conv2d", **kw) + " dir=bwd_w")["algorithm"]
    _check_exact(x, w, dy, kw, dw=grad.conv2d_weight(x, w.shape, dy, **kw, algorithm=algo))
    # precision: TF32 never applies on the CPU
    _check_exact(x, w, dy, kw, dx=grad.conv2d_input(x.shape, w, dy, **kw, precision="tf32"),
                 dw=grad.conv2d_weight(x, w.shape, dy, **kw, precision="exact"))


# ---- the package surface ------------------------------------------------------------------------


def test_import_forms():
    import importlib

    assert convnd.grad is grad
    assert importlib.import_module("convnd.grad") is grad
    from convnd.grad import conv2d_input  # noqa: F401

    assert "grad" not in convnd.__all__  # a module, not a function
    assert len(grad.__all__) == 14


def test_every_function_has_a_docstring_and_mirrors_its_forward():
    for name in grad.__all__:
        f = getattr(grad, name)
        assert f.__name__ == name and f.__module__ == "convnd.grad"
        assert f.__doc__ and "Args:" in f.__doc__ and "cotangent" in f.__doc__, name
        fwd_name, which = name.rsplit("_", 1)
        fwd = inspect.signature(getattr(convnd, fwd_name)).parameters
        sig = inspect.signature(f).parameters
        first = ["input_shape", "weight", "cotangent"] if which == "input" else ["input", "weight_shape", "cotangent"]
        assert list(sig)[:3] == first, name
        # everything after the arrays: the forward's names, defaults and kinds
        want = [(p.name, p.default, p.kind) for p in list(fwd.values())[2:]]
        got = [(p.name, p.default, p.kind) for p in list(sig.values())[3:]]
        assert got == want, name


def test_stubs_match_the_module():
    pkg = pathlib.Path(convnd.__file__).parent
    tree = ast.parse((pkg / "grad.pyi").read_text())
    stubs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(stubs) == set(grad.__all__)
    for name, node in stubs.items():
        sig = inspect.signature(getattr(grad, name))
        pos = [p.name for p in sig.parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
        kwonly = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
        assert [a.arg for a in node.args.args] == pos, name
        assert [a.arg for a in node.args.kwonlyargs] == kwonly, name
    init = ast.parse((pkg / "__init__.pyi").read_text())
    assert any(isinstance(n, ast.ImportFrom) and any(a.name == "grad" for a in n.names) for n in init.body)


# ---- torch.nn.grad (optional) -----------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch", reason="torch not installed (optional comparison)")


def _to_torch_x(torch, x):  # (N, *S, C) -> (N, C, *S)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _to_torch_w(torch, w):  # (O, *K, C/g) -> (O, C/g, *K)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, -1, 1)))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_against_torch_nn_grad(rank, rng):
    torch = _torch()
    xs, ws = (2, *[9, 7, 6][:rank], 6), (4, *[3, 2, 3][:rank], 3)
    kw = dict(stride=[2, 1, 2][:rank], padding=[1, 0, 1][:rank], dilation=[1, 2, 1][:rank], groups=2)
    x, w = random_array(rng, xs, "f64"), random_array(rng, ws, "f64")
    dy = random_array(rng, convnd.__dict__[f"conv{rank}d"](x, w, **kw).shape, "f64")
    tg = getattr(torch.nn.grad, f"conv{rank}d_input")(list(_to_torch_x(torch, x).shape), _to_torch_w(torch, w),
                                                      _to_torch_x(torch, dy), **kw)
    np.testing.assert_allclose(getattr(grad, f"conv{rank}d_input")(xs, w, dy, **kw), np.moveaxis(tg.numpy(), 1, -1),
                               rtol=1e-10, atol=1e-10)
    tw = getattr(torch.nn.grad, f"conv{rank}d_weight")(_to_torch_x(torch, x), list(_to_torch_w(torch, w).shape),
                                                       _to_torch_x(torch, dy), **kw)
    np.testing.assert_allclose(getattr(grad, f"conv{rank}d_weight")(x, ws, dy, **kw), np.moveaxis(tw.numpy(), 1, -1),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [c for c in TRANSPOSE_CASES if c[0] != "1d_long_kernel"],
                         ids=[c[0] for c in TRANSPOSE_CASES if c[0] != "1d_long_kernel"])
def test_conv_transpose_against_torch_autograd(case, rng):
    torch = _torch()
    _, xs, ws, kw = case
    rank, g = _rank(xs), kw.get("groups", 1)
    x, w = random_array(rng, xs, "f64"), random_array(rng, ws, "f64")
    # torch's transposed weight (C, O/g, K...): wt[q*C/g + c, o] = w[q*O/g + o, ..., c]
    o, cg = ws[0], ws[-1]
    wt = np.moveaxis(w.reshape((g, o // g, *ws[1:-1], cg)), -1, 1).reshape((g * cg, o // g, *ws[1:-1]))
    tx = _to_torch_x(torch, x).requires_grad_()
    tw = torch.from_numpy(np.ascontiguousarray(wt)).requires_grad_()
    fn = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    ty = fn(tx, tw, stride=kw.get("stride", 1), padding=kw.get("padding", 0),
            output_padding=kw.get("output_padding", 0), groups=g, dilation=kw.get("dilation", 1))
    dy = random_array(rng, np.moveaxis(ty.detach().numpy(), 1, -1).shape, "f64")
    ty.backward(_to_torch_x(torch, dy))
    np.testing.assert_allclose(getattr(grad, f"conv_transpose{rank}d_input")(xs, w, dy, **kw),
                               np.moveaxis(tx.grad.numpy(), 1, -1), rtol=1e-10, atol=1e-10)
    dwt = tw.grad.numpy().reshape((g, cg, o // g, *ws[1:-1]))
    dw = np.moveaxis(dwt, 1, -1).reshape(ws)
    np.testing.assert_allclose(getattr(grad, f"conv_transpose{rank}d_weight")(x, ws, dy, **kw), dw,
                               rtol=1e-10, atol=1e-10)


# ---- CUDA (skipped without a CUDA build, torch and a GPU) ------------------------------------------


def _cuda_torch():
    torch = _torch()
    if not (convnd.has_cuda() and torch.cuda.is_available()):
        pytest.skip("needs convnd built with CUDA, torch and a GPU")
    return torch


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "f64"])
def test_cuda_in_cuda_out(dtype):
    torch = _cuda_torch()
    td = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64}[dtype]
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randint(-2, 3, (2, 9, 7, 6), device="cuda", generator=gen).to(td)
    w = torch.randint(-2, 3, (4, 3, 2, 3), device="cuda", generator=gen).to(td)
    dy = torch.randint(-2, 3, (2, 9, 8, 4), device="cuda", generator=gen).to(td)

    def cpu(t):
        return (t.detach().cpu().float() if t.dtype == torch.bfloat16 else t.detach().cpu()).numpy().astype(np.float64)

    dx = torch.from_dlpack(grad.conv2d_input(tuple(x.shape), w, dy, padding=1, groups=2, device="cuda"))
    dw = torch.from_dlpack(grad.conv2d_weight(x, tuple(w.shape), dy, padding=1, groups=2, device="cuda"))
    assert dx.device.type == "cuda" and dx.dtype == td and tuple(dx.shape) == (2, 9, 7, 6)
    assert dw.device.type == "cuda" and dw.dtype == td and tuple(dw.shape) == (4, 3, 2, 3)
    # small integers: exact everywhere, so the CPU's bits
    np.testing.assert_array_equal(cpu(dx), ref.conv_input(tuple(x.shape), cpu(w), cpu(dy), padding=1, groups=2))
    np.testing.assert_array_equal(cpu(dw), ref.conv_weight(cpu(x), tuple(w.shape), cpu(dy), padding=1, groups=2))
    dyt = torch.randint(-2, 3, (2, 18, 8, 4), device="cuda", generator=gen).to(td)
    kw = dict(stride=[2, 1], padding=[1, 0], output_padding=[1, 0], groups=2)
    dxt = torch.from_dlpack(grad.conv_transpose2d_input(tuple(x.shape), w, dyt, **kw, device="cuda"))
    np.testing.assert_array_equal(cpu(dxt), ref.conv_transpose_input(tuple(x.shape), cpu(w), cpu(dyt), **kw))
    dwt = torch.from_dlpack(grad.conv_transpose2d_weight(x, tuple(w.shape), dyt, **kw, device="cuda"))
    np.testing.assert_array_equal(cpu(dwt), ref.conv_transpose_weight(cpu(x), tuple(w.shape), cpu(dyt), **kw))


def test_cuda_weight_gradient_is_deterministic():
    torch = _cuda_torch()
    x = torch.randn(8, 64, 64, 32, device="cuda")
    dy = torch.randn(8, 64, 64, 32, device="cuda")
    runs = [torch.from_dlpack(grad.conv2d_weight(x, (32, 3, 3, 32), dy, padding=1, device="cuda", budget=b)).cpu()
            for b in (None, None, "1MiB")]
    for r in runs[1:]:
        assert torch.equal(r.view(torch.int32), runs[0].view(torch.int32))


def _gpu():
    """Skips unless this build has CUDA and a GPU runs a forward conv (torch not needed)."""
    if not convnd.has_cuda():
        pytest.skip("needs convnd built with CUDA")
    try:
        convnd.conv1d(np.ones((1, 4, 1), np.float32), np.ones((1, 2, 1), np.float32), device="cuda")
    except (RuntimeError, NotImplementedError, MemoryError) as e:
        pytest.skip(f"no usable GPU: {e}")


def test_cuda_host_arrays_come_back_as_numpy(rng):
    _gpu()
    x = random_array(rng, (1, 16, 3), "f32")
    w = random_array(rng, (2, 3, 3), "f32")
    dy = random_array(rng, (1, 14, 2), "f32")
    dx = grad.conv1d_input(x.shape, w, dy, device="cuda")
    dw = grad.conv1d_weight(x, w.shape, dy, device="cuda")
    assert isinstance(dx, np.ndarray) and isinstance(dw, np.ndarray)
    np.testing.assert_allclose(dx, grad.conv1d_input(x.shape, w, dy), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, grad.conv1d_weight(x, w.shape, dy), rtol=1e-5, atol=1e-5)
