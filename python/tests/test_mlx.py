"""convnd.mlx: values and gradients against mlx.core's own convolutions, MLX's transformations
(grad, vjp, jvp, value_and_grad, compile), the modules and convert(), and the seed case (a
transposed conv whose MLX unfold would need 156 GiB) against float64 NumPy.

Skipped without mlx; python/run_mlx_tests.sh runs it in its own venv (scripts/test's MLX stage).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import convnd
import numpy_reference as ref

mx = pytest.importorskip("mlx.core", reason="convnd.mlx needs mlx (pip install 'mlx[cpu]')")
nn = pytest.importorskip("mlx.nn")
try:
    import convnd.mlx as cm
except ImportError as e:  # e.g. a package built without mlx in its build environment
    pytest.skip(f"convnd.mlx does not import: {e}", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def np64(a):
    return np.array(a.astype(mx.float32) if a.dtype in (mx.float16, mx.bfloat16) else a).astype(np.float64)


def assert_close(got, want, scale, rel=1e-5, what=""):
    """|got - want| <= rel * scale elementwise, scale being the sum of |terms| of each output
    (so the bound is the float32 rounding of either library, whatever the summation order)."""
    got, want, scale = np64(got), np64(want), np64(scale)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.abs(got - want)
    bound = rel * scale + 1e-30
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} off; worst at {i}: got {got[i]}, "
                             f"want {want[i]}, bound {bound[i]:.3g}")


# --------------------------------------------------------------------------------------------
# Random problems inside MLX's correct range (semantics.md lists where it is not): negative
# padding only without input dilation, transposed padding <= dilation*(K-1), no groups in 3-D.


def random_problem(rng, family, rank):
    """(name, x shape, w shape, kwargs) of a valid problem of `family` in `rank` dimensions."""
    while True:
        g = 1 if rank == 3 else int(rng.choice([1, 1, 2, 3]))
        n, c, o = int(rng.integers(1, 3)), g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        k = [int(v) for v in rng.integers(1, 4, rank)]
        s = [int(v) for v in rng.integers(1, 4, rank)]
        d = [int(v) for v in rng.integers(1, 3, rank)]
        i = [int(v) for v in rng.integers(1, 9 if rank < 3 else 6, rank)]
        if family == "conv":
            name = f"conv{rank}d"
            kw = dict(stride=s, padding=[int(v) for v in rng.integers(0, 3, rank)], dilation=d, groups=g)
        elif family == "general":
            name = "conv_general"
            idil = [int(v) for v in rng.integers(1, 3, rank)]
            lo = [int(rng.integers(-1 if idil[a] == 1 else 0, 3)) for a in range(rank)]
            hi = [int(rng.integers(-1 if idil[a] == 1 else 0, 3)) for a in range(rank)]
            kw = dict(stride=s, padding=(lo, hi), kernel_dilation=d, input_dilation=idil, groups=g,
                      flip=bool(rng.integers(0, 2)))
        else:
            name = f"conv_transpose{rank}d"
            p = [int(rng.integers(0, d[a] * (k[a] - 1) + 1)) for a in range(rank)]
            op = [int(rng.integers(0, max(s[a], d[a]))) for a in range(rank)]
            kw = dict(stride=s, padding=p, dilation=d, output_padding=op, groups=g)
        if family != "general":  # mlx.core takes an int in 1-D, tuples in 2-D and 3-D
            kw = {key: (v[0] if rank == 1 else tuple(v)) if isinstance(v, list) else v for key, v in kw.items()}
        xs, ws = (n, *i, c), (o, *k, c // g)
        try:
            convnd.problem_string(np.zeros(xs, np.float32), np.zeros(ws, np.float32), op=name, **kw)
        except ValueError:
            continue
        return name, xs, ws, kw


_REFS = {  # family: (forward, input gradient, weight gradient), float64 NumPy
    "conv": (ref.conv, ref.conv_input, ref.conv_weight),
    "general": (ref.conv_general, ref.conv_general_input, ref.conv_general_weight),
    "transpose": (ref.conv_transpose, ref.conv_transpose_input, ref.conv_transpose_weight),
}


def grads(f, x, w, r):
    """f(x, w) and the gradients of <f(x, w), r> (mx.grad)."""
    y = f(x, w)
    dx, dw = mx.grad(lambda a, b: (f(a, b) * r).sum(), argnums=(0, 1))(x, w)
    mx.eval(y, dx, dw)
    return y, dx, dw


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("family", ["conv", "general", "transpose"])
def test_random_against_mlx_and_numpy(family, rank, rng):
    """Values and gradients against float64 NumPy, and against mlx.core's own functions: their
    values always, their gradients where MLX's are right. MLX's input gradient is wrong with
    input dilation (values, or its shape: conv_general x (2, 6, 2), w (3, 1, 2), padding
    ([2], [0]), input_dilation 2 gives dx (2, 5, 2)), and short in some transposed convs
    (conv_transpose2d x (2, 7, 1, 4), w (2, 3, 2, 2), stride (3, 2), padding (3, 0), dilation
    (2, 1), output_padding (1, 1), groups 2 gives dx (2, 7, 0, 4)); MLX refuses some valid
    conv_general problems (input (2, 5, 7, 6), weight (6, 5, 3, 2), padding ((2, 0), (0, 2))
    with input dilation) or fails in their vjp. Those are checked against NumPy only."""
    f64, f64_input, f64_weight = _REFS[family]
    for _ in range(6):
        name, xs, ws, kw = random_problem(rng, family, rank)
        x64, w64 = rng.standard_normal(xs), rng.standard_normal(ws)
        y64 = f64(x64, w64, **kw)
        r64 = rng.standard_normal(y64.shape)
        x, w, r = (mx.array(a.astype(np.float32)) for a in (x64, w64, r64))
        x64, w64, r64 = (np.array(a).astype(np.float64) for a in (x, w, r))  # as rounded
        ours = grads(lambda a, b: getattr(cm, name)(a, b, **kw), x, w, r)
        want = (f64(x64, w64, **kw), f64_input(xs, w64, r64, **kw), f64_weight(x64, ws, r64, **kw))
        ax, aw, ar = np.abs(x64), np.abs(w64), np.abs(r64)
        scale = (f64(ax, aw, **kw), f64_input(xs, aw, ar, **kw), f64_weight(ax, ws, ar, **kw))
        what = f"{name} x{xs} w{ws} {kw}"
        try:
            theirs = grads(lambda a, b: getattr(mx, name)(a, b, **kw), x, w, r)
        except ValueError:  # MLX refuses some valid conv_general problems, or fails in its vjp
            assert family == "general", what
            theirs = None
        mlx_grads = family != "general" or all(v == 1 for v in kw["input_dilation"])
        for j, part in enumerate(("y", "dx", "dw")):
            assert_close(ours[j], want[j], scale[j], rel=4e-6, what=f"{part} of {what} (NumPy)")
            if theirs is not None and (j == 0 or (mlx_grads and theirs[j].shape == ours[j].shape)):
                assert_close(ours[j], theirs[j], scale[j], what=f"{part} of {what} (MLX)")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes_bitwise_on_small_integers(dtype, rng):
    """Small-integer inputs: every sum is exact, so the two libraries agree bit for bit."""
    t = getattr(mx, dtype)
    for name, xs, ws, kw in [("conv2d", (2, 7, 6, 4), (6, 3, 2, 2), dict(stride=[2, 1], padding=1, groups=2)),
                             ("conv_transpose1d", (1, 9, 3), (2, 4, 3), dict(stride=3, padding=1))]:
        x = mx.array(rng.integers(-2, 3, xs).astype(np.float32)).astype(t)
        w = mx.array(rng.integers(-2, 3, ws).astype(np.float32)).astype(t)
        y = getattr(cm, name)(x, w, **kw)
        assert y.dtype == t
        np.testing.assert_array_equal(np64(y), np64(getattr(mx, name)(x, w, **kw)))


def test_float64_in_float64(rng):
    """float64 computes in float64 (MLX drops to float32): as convnd's NumPy path, to the bit."""
    x = rng.standard_normal((2, 9, 8, 3))
    w = rng.standard_normal((4, 3, 3, 3))
    xa, wa = mx.array(x, dtype=mx.float64), mx.array(w, dtype=mx.float64)
    y = cm.conv2d(xa, wa, stride=2, padding=1, stream=mx.cpu)
    assert y.dtype == mx.float64
    np.testing.assert_allclose(np.array(y), ref.conv(x, w, stride=2, padding=1), rtol=1e-13, atol=1e-13)
    dw = mx.grad(lambda w: cm.conv2d(xa, w, stride=2, padding=1).sum())(wa)
    assert dw.dtype == mx.float64
    want = ref.conv_weight(x, w.shape, np.ones(y.shape), stride=2, padding=1)
    np.testing.assert_allclose(np.array(dw), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [
    # transposed, padding > dilation*(K-1): MLX's shape and values are wrong
    ("conv_transpose1d", (1, 5, 1), (1, 3, 1), dict(stride=2, padding=3)),
    ("conv_transpose2d", (2, 6, 5, 2), (3, 2, 3, 2), dict(stride=[3, 1], padding=[2, 3], output_padding=[1, 0])),
    # groups in 3-D: MLX refuses
    ("conv3d", (1, 5, 4, 6, 4), (6, 2, 3, 2, 2), dict(stride=[1, 2, 1], padding=1, groups=2)),
    ("conv_transpose3d", (1, 3, 4, 3, 4), (6, 2, 3, 2, 2), dict(stride=2, padding=[0, 1, 1], groups=2)),
])
def test_where_mlx_differs_against_numpy(case, rng):
    name, xs, ws, kw = case
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    f = ref.conv_transpose if "transpose" in name else ref.conv
    f_input = ref.conv_transpose_input if "transpose" in name else ref.conv_input
    f_weight = ref.conv_transpose_weight if "transpose" in name else ref.conv_weight
    y64 = f(x, w, **kw)
    r = rng.standard_normal(y64.shape)
    xa, wa, ra = (mx.array(a.astype(np.float32)) for a in (x, w, r))
    y = getattr(cm, name)(xa, wa, **kw)
    dx, dw = mx.grad(lambda a, b: (getattr(cm, name)(a, b, **kw) * ra).sum(), argnums=(0, 1))(xa, wa)
    scale = f(np.abs(x), np.abs(w), **kw)
    assert_close(y, y64, scale, what=f"y of {name}")
    assert_close(dx, f_input(x.shape, w, r, **kw), f_input(x.shape, np.abs(w), np.abs(r), **kw), what="dx")
    assert_close(dw, f_weight(x, w.shape, r, **kw), f_weight(np.abs(x), w.shape, np.abs(r), **kw), what="dw")


def test_strided_inputs(rng):
    """Transposed, reversed, sliced and broadcast arrays are read as they are."""
    base = mx.array(rng.standard_normal((2, 5, 13)).astype(np.float32))
    w = mx.array(rng.standard_normal((4, 3, 5)).astype(np.float32))
    views = {"transposed": base.transpose(0, 2, 1), "reversed": base.transpose(0, 2, 1)[:, ::-1, :],
             "every other": base.transpose(0, 2, 1)[:, 1::2, :],
             "broadcast": mx.broadcast_to(base[:1].transpose(0, 2, 1), (3, 13, 5))}
    for what, x in views.items():
        want = mx.conv1d(x, w, stride=2, padding=1)
        assert_close(cm.conv1d(x, w, stride=2, padding=1), want,
                     mx.conv1d(mx.abs(x), mx.abs(w), stride=2, padding=1), what=what)
    wt = mx.array(rng.standard_normal((3, 5, 4)).astype(np.float32)).transpose(2, 0, 1)[::-1]  # (4, 3, 5)
    x = base.transpose(0, 2, 1)
    assert_close(cm.conv1d(x, wt), mx.conv1d(x, wt), mx.conv1d(mx.abs(x), mx.abs(wt)), what="strided weight")


# --------------------------------------------------------------------------------------------
# Transformations


def _problem(rng):
    x = mx.array(rng.standard_normal((2, 9, 8, 3)).astype(np.float32))
    w = mx.array(rng.standard_normal((6, 3, 2, 3)).astype(np.float32))
    kw = dict(stride=[2, 1], padding=1, dilation=[1, 2])
    return x, w, kw


def test_vjp_and_jvp(rng):
    x, w, kw = _problem(rng)
    f = lambda x, w: cm.conv2d(x, w, **kw)  # noqa: E731
    g = lambda x, w: mx.conv2d(x, w, **kw)  # noqa: E731
    y = g(x, w)
    c = mx.array(rng.standard_normal(y.shape).astype(np.float32))
    (yo,), (dxo, dwo) = mx.vjp(f, [x, w], [c])
    (ym,), (dxm, dwm) = mx.vjp(g, [x, w], [c])
    np.testing.assert_allclose(np.array(yo), np.array(ym), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.array(dxo), np.array(dxm), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.array(dwo), np.array(dwm), rtol=1e-4, atol=1e-4)
    # jvp (MLX's own convolution has none): bilinear, d f = f(dx, w) + f(x, dw)
    tx = mx.array(rng.standard_normal(x.shape).astype(np.float32))
    tw = mx.array(rng.standard_normal(w.shape).astype(np.float32))
    _, (t,) = mx.jvp(f, [x, w], [tx, tw])
    np.testing.assert_allclose(np.array(t), np.array(g(tx, w) + g(x, tw)), rtol=1e-4, atol=1e-4)
    _, (t,) = mx.jvp(lambda x: f(x, w), [x], [tx])
    np.testing.assert_allclose(np.array(t), np.array(g(tx, w)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_second_order(name, rng):
    """Gradients of gradients (the gradient primitives' own vjp), against MLX's."""
    x, w, kw = _problem(rng)
    if name == "conv_transpose2d":
        w = mx.array(rng.standard_normal((4, 3, 2, 3)).astype(np.float32))
        kw = dict(stride=2, padding=[1, 0])  # MLX's second order is short with output_padding
    ours, theirs = getattr(cm, name), getattr(mx, name)

    def inner(f):
        return lambda x, w: (mx.grad(lambda a, b: (f(a, b, **kw) ** 2).sum(), argnums=(0, 1))(x, w)[0] ** 2).sum()

    for argnum in (0, 1):
        a = mx.grad(inner(ours), argnums=argnum)(x, w)
        b = mx.grad(inner(theirs), argnums=argnum)(x, w)
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=2e-3, atol=2e-3 * float(mx.abs(b).max()))


def test_jvp_of_gradients(rng):
    """Forward over reverse (the gradient primitives' jvp): a Hessian-vector product of a
    quadratic loss in float64, against the loss's exact second difference and against
    reverse over reverse."""
    x = mx.array(rng.standard_normal((2, 7, 6, 3)), dtype=mx.float64)
    w = mx.array(rng.standard_normal((4, 3, 2, 3)), dtype=mx.float64)
    v = mx.array(rng.standard_normal(w.shape), dtype=mx.float64)
    kw = dict(stride=2, padding=1, output_padding=1)
    loss = lambda x, w: (cm.conv_transpose2d(x, w, **kw) ** 2).sum()  # noqa: E731
    for argnum, (p, t) in ((1, (w, v)), (0, (x, mx.array(rng.standard_normal(x.shape), dtype=mx.float64)))):
        g = lambda p: mx.grad(loss, argnums=argnum)(*((p, w) if argnum == 0 else (x, p)))  # noqa: E731
        _, (hv_fwd,) = mx.jvp(g, [p], [t])
        hv_rev = mx.grad(lambda p: (g(p) * t).sum())(p)
        # quadratic: g(p + t) - g(p - t) = 2 H t exactly, up to rounding
        hv_fd = (g(p + t) - g(p - t)) / 2
        np.testing.assert_allclose(np.array(hv_fwd), np.array(hv_fd), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(np.array(hv_rev), np.array(hv_fd), rtol=1e-10, atol=1e-10)


def test_compile(rng):
    x, w, kw = _problem(rng)
    loss_ours = lambda x, w: (cm.conv2d(x, w, **kw) ** 2).mean()  # noqa: E731
    loss_mlx = lambda x, w: (mx.conv2d(x, w, **kw) ** 2).mean()  # noqa: E731
    vg = mx.compile(mx.value_and_grad(loss_ours, argnums=(0, 1)))
    want_v, (want_dx, want_dw) = mx.value_and_grad(loss_mlx, argnums=(0, 1))(x, w)
    for _ in range(2):  # the second call runs the compiled graph
        v, (dx, dw) = vg(x, w)
        np.testing.assert_allclose(v.item(), want_v.item(), rtol=1e-5)
        np.testing.assert_allclose(np.array(dx), np.array(want_dx), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.array(dw), np.array(want_dw), rtol=1e-4, atol=1e-5)
    # compiled forward, and a compiled function of a gradient used twice (vjp inside compile)
    fwd = mx.compile(lambda x, w: cm.conv2d(x, w, **kw) + 1)
    np.testing.assert_allclose(np.array(fwd(x, w)), np.array(mx.conv2d(x, w, **kw) + 1), rtol=1e-4, atol=1e-4)
    twice = mx.compile(lambda x, w: mx.grad(loss_ours)(x, w) + mx.grad(loss_ours)(x, w))
    np.testing.assert_allclose(np.array(twice(x, w)), 2 * np.array(want_dx), rtol=1e-4, atol=1e-6)
    # shapeless: a new batch and extent reuse the graph; the output shape follows the input's
    f = mx.compile(lambda x, w: cm.conv2d(x, w, **kw), shapeless=True)
    for xs in ((2, 9, 8, 3), (3, 11, 8, 3)):
        xx = mx.array(rng.standard_normal(xs).astype(np.float32))
        np.testing.assert_allclose(np.array(f(xx, w)), np.array(mx.conv2d(xx, w, **kw)), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Modules and convert()

MODULES = [
    ("Conv1d", (2, 11, 4), (4, 6, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("Conv2d", (2, 9, 8, 3), (3, 5, (3, 2)), dict(stride=(2, 1), padding=(1, 0))),
    ("Conv3d", (1, 5, 6, 4, 2), (2, 3, 2), dict(padding=1)),
    ("ConvTranspose1d", (2, 7, 3), (3, 2, 4), dict(stride=3, padding=1, output_padding=2)),
    ("ConvTranspose2d", (1, 5, 4, 3), (3, 2, 3), dict(stride=2, padding=1, output_padding=1)),
    ("ConvTranspose3d", (1, 3, 4, 3, 2), (2, 3, 2), dict(stride=2, dilation=2)),
]


@pytest.mark.parametrize("case", MODULES, ids=[c[0] for c in MODULES])
def test_modules_match_mlx_nn(case, rng, tmp_path):
    name, xs, args, kw = case
    mx.random.seed(7)
    ref_m = getattr(nn, name)(*args, **kw)
    mx.random.seed(7)
    ours = getattr(cm, name)(*args, **kw)
    assert isinstance(ours, getattr(nn, name)) and repr(ours) == repr(ref_m)
    for k, v in ref_m.parameters().items():  # the same initialisation
        np.testing.assert_array_equal(np.array(ours.parameters()[k]), np.array(v))
    ref_m.bias = mx.array(rng.standard_normal(ref_m.bias.shape).astype(np.float32))
    x = mx.array(rng.standard_normal(xs).astype(np.float32))
    # state both ways: parameters() / update(), and save_weights / load_weights
    ours.update(ref_m.parameters())
    np.testing.assert_allclose(np.array(ours(x)), np.array(ref_m(x)), rtol=1e-4, atol=1e-5)
    ours.update({"weight": ref_m.weight * 2})
    ours.save_weights(str(tmp_path / "w.safetensors"))
    ref_m.load_weights(str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(np.array(ref_m.weight), np.array(ours.weight))
    fresh = getattr(cm, name)(*args, **kw)
    fresh.load_weights(list(ref_m.parameters().items()))
    np.testing.assert_allclose(np.array(fresh(x)), np.array(ref_m(x)), rtol=1e-4, atol=1e-5)
    # gradients through nn.value_and_grad
    loss = lambda m, x: (m(x) ** 2).mean()  # noqa: E731
    v1, g1 = nn.value_and_grad(fresh, loss)(fresh, x)
    v2, g2 = nn.value_and_grad(ref_m, loss)(ref_m, x)
    np.testing.assert_allclose(v1.item(), v2.item(), rtol=1e-5)
    for k in ("weight", "bias"):
        np.testing.assert_allclose(np.array(g1[k]), np.array(g2[k]), rtol=1e-4, atol=1e-6)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = [nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Linear(4, 4)]
        self.dec = nn.ConvTranspose2d(4, 1, 2, stride=2)

    def __call__(self, x):
        h = nn.relu(self.enc(x))
        h = nn.relu(self.blocks[0](h))
        return self.dec(self.blocks[1](h))


def test_convert_in_place_and_trains(rng):
    mx.random.seed(3)
    model = _Net()
    mx.random.seed(3)
    ref_model = _Net()
    enc, w = model.enc, model.enc.weight
    assert cm.convert(model) is model
    assert model.enc is enc and model.enc.weight is w  # the same objects
    assert type(model.enc) is cm.Conv2d and type(model.blocks[0]) is cm.Conv2d
    assert type(model.dec) is cm.ConvTranspose2d and type(model.blocks[1]) is nn.Linear
    assert cm.convert(model) is model  # idempotent
    single = nn.Conv1d(2, 3, 3)
    assert type(cm.convert(single)) is cm.Conv1d  # the model itself

    class MyConv(nn.Conv2d):
        pass

    assert type(cm.convert(MyConv(1, 1, 1))) is MyConv  # subclasses are left alone
    with pytest.raises(TypeError, match="mlx.nn.Module"):
        cm.convert(object())

    import mlx.optimizers as optim

    x = mx.array(rng.standard_normal((4, 8, 8, 1)).astype(np.float32))
    target = mx.array(rng.standard_normal((4, 16, 16, 1)).astype(np.float32))
    losses = {}
    for tag, m in (("ours", model), ("mlx", ref_model)):
        opt = optim.SGD(learning_rate=0.05)
        step = nn.value_and_grad(m, lambda m, x, t: ((m(x) - t) ** 2).mean())
        losses[tag] = []
        for _ in range(5):
            loss, grads = step(m, x, target)
            opt.update(m, grads)
            mx.eval(m.parameters(), opt.state)
            losses[tag].append(loss.item())
    np.testing.assert_allclose(losses["ours"], losses["mlx"], rtol=1e-4)
    assert losses["ours"][-1] < losses["ours"][0]


# --------------------------------------------------------------------------------------------
# The seed case: conv_transpose1d of (1, 10000, 1) with a (1, 4096, 1) kernel, stride 1024.
# 39 MiB of output; MLX's unfold asks for 156 GiB.


def test_seed_case_forward_and_gradient(rng):
    x64 = rng.standard_normal(10000)
    w64 = rng.standard_normal(4096)
    x = mx.array(x64.astype(np.float32).reshape(1, 10000, 1))
    w = mx.array(w64.astype(np.float32).reshape(1, 4096, 1))
    x64, w64 = np.array(x).astype(np.float64).ravel(), np.array(w).astype(np.float64).ravel()
    s, L = 1024, (10000 - 1) * 1024 + 4096
    y = cm.conv_transpose1d(x, w, stride=s)
    assert y.shape == (1, L, 1)
    r64 = rng.standard_normal(L)
    r = mx.array(r64.astype(np.float32).reshape(1, L, 1))
    r64 = np.array(r).astype(np.float64).ravel()
    loss = lambda x, w: (cm.conv_transpose1d(x, w, stride=s) * r).sum()  # noqa: E731
    v, (dx, dw) = mx.value_and_grad(loss, argnums=(0, 1))(x, w)
    mx.eval(y, v, dx, dw)
    yv, dxv, dwv = np.array(y).ravel(), np.array(dx).ravel(), np.array(dw).ravel()

    def y_at(t):  # every input position i with 0 <= t - s*i < K
        i = np.arange(max(0, (t - 4096) // s), min(10000, t // s + 1))
        i = i[(t - s * i >= 0) & (t - s * i < 4096)]
        return np.sum(x64[i] * w64[t - s * i]), np.sum(np.abs(x64[i] * w64[t - s * i]))

    for t in np.concatenate([[0, 1023, 1024, 4095, 4096, L - 1], rng.integers(0, L, 300)]):
        want, scale = y_at(int(t))
        assert abs(yv[t] - want) <= 1e-5 * scale + 1e-30, (t, yv[t], want)
    for i in np.concatenate([[0, 9999], rng.integers(0, 10000, 100)]):
        seg = r64[s * i: s * i + 4096]  # dx[i] = sum_k r[s*i + k] w[k]
        assert abs(dxv[i] - seg @ w64) <= 1e-5 * (np.abs(seg) @ np.abs(w64)), i
    for k in np.concatenate([[0, 1023, 4095], rng.integers(0, 4096, 100)]):
        seg = r64[k::s][:10000]  # dw[k] = sum_i x[i] r[s*i + k]
        assert abs(dwv[k] - seg @ x64) <= 1e-5 * (np.abs(seg) @ np.abs(x64)), k
    # it trains: a gradient step lowers a quadratic loss
    target = mx.zeros((1, L, 1))
    q = lambda w: ((cm.conv_transpose1d(x, w, stride=s) - target) ** 2).mean()  # noqa: E731
    l0, gw = mx.value_and_grad(q)(w)
    l1 = q(w - 0.1 * gw / mx.abs(gw).max())
    assert l1.item() < l0.item()


# --------------------------------------------------------------------------------------------
# API surface and errors


def test_signatures_match_mlx():
    import inspect

    for name in ("conv_general", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d"):
        ours = inspect.signature(getattr(cm, name)).parameters
        mine = [(p.name, p.kind, p.default) for p in ours.values() if p.name not in
                ("budget", "threads", "algorithm", "isa")]
        doc = getattr(mx, name).__doc__ or ""
        # mlx.core's nanobind signature line, e.g. "conv1d(input: array, weight: array, /, stride: int = 1, ..."
        head = doc.splitlines()[0] if doc else ""
        for pname, kind, default in mine:
            if kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                assert f"{pname}:" in head, (name, pname, head)
        assert [p for p, k, _ in mine if k == inspect.Parameter.POSITIONAL_ONLY] == ["input", "weight"]
        assert [p for p, k, _ in mine if k == inspect.Parameter.KEYWORD_ONLY] == ["stream"]


def test_errors(rng):
    x = mx.zeros((1, 8, 3))
    with pytest.raises(ValueError, match=r"weight channels .*; problem: in=8 c=3 o=4 k=3"):
        cm.conv1d(x, mx.zeros((4, 3, 5)))
    with pytest.raises(ValueError, match="must be divisible by groups"):
        cm.conv1d(x, mx.zeros((4, 3, 1)), groups=2)
    with pytest.raises(TypeError, match="int32; convnd computes"):
        cm.conv1d(x.astype(mx.int32), mx.zeros((4, 3, 3), dtype=mx.int32))
    with pytest.raises(ValueError, match="must match"):
        cm.conv1d(x, mx.zeros((4, 3, 3), dtype=mx.float16))
    with pytest.raises(ValueError, match="outpad"):
        cm.conv_transpose1d(x, mx.zeros((4, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(TypeError, match="stream must be"):
        cm.conv1d(x, mx.zeros((4, 3, 3)), stream="cpu")
    with pytest.raises(ValueError, match="threads"):
        cm.conv1d(x, mx.zeros((4, 3, 3)), threads=-1)
    # the plan is made when the graph is evaluated: a budget nothing fits is a MemoryError there
    y = cm.conv1d(x, mx.zeros((4, 3, 3)), budget=1, algorithm="im2col_gemm")
    with pytest.raises(MemoryError, match="budget"):
        mx.eval(y)
    # convnd's keyword-only options reach the engine
    xa = mx.array(rng.standard_normal((2, 16, 8)).astype(np.float32))
    wa = mx.array(rng.standard_normal((8, 3, 8)).astype(np.float32))
    base = np.array(cm.conv1d(xa, wa, padding=1))
    for opts in (dict(threads=1), dict(budget="64KiB"), dict(isa="generic"), dict(algorithm="im2col_gemm")):
        np.testing.assert_allclose(np.array(cm.conv1d(xa, wa, padding=1, **opts)), base, rtol=1e-5, atol=1e-5)


def test_numpy_inputs_and_streams(rng):
    x = rng.standard_normal((1, 8, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3)).astype(np.float32)
    want = np.array(mx.conv1d(mx.array(x), mx.array(w)))
    for stream in (None, mx.cpu, mx.Device(mx.cpu), mx.default_stream(mx.cpu), mx.new_stream(mx.cpu)):
        y = cm.conv1d(x, w, stream=stream)
        assert isinstance(y, mx.array)
        np.testing.assert_allclose(np.array(y), want, rtol=1e-5, atol=1e-5)


def _python(code):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_import_convnd_imports_no_framework():
    r = _python("import sys, convnd, convnd.grad; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'torch')))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_missing_mlx_names_the_version():
    r = _python("import sys; sys.modules['mlx'] = None\n"
                "try:\n    import convnd.mlx\nexcept ImportError as e:\n    print(e)")
    assert r.returncode == 0 and "convnd.mlx needs MLX >= 0.32" in r.stdout and "pip install" in r.stdout, \
        r.stdout + r.stderr


def test_example_quick(tmp_path):
    script = ROOT / "examples" / "train_mlx.py"
    if not script.exists():
        pytest.skip(f"{script} not in this checkout")
    r = subprocess.run([sys.executable, str(script), "--quick", "--plot", str(tmp_path / "curves.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "convnd" in r.stdout and "mlx.nn" in r.stdout and "max |loss difference|" in r.stdout, r.stdout
