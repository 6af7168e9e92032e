"""convnd.torch: values and gradients against torch.nn.functional, gradcheck, custom-operator
checks, torch.compile, autocast, modules and state dicts, convert(), DDP (gloo), CUDA.

Skipped as a whole when torch is not importable (python/run_torch_tests.sh runs it in a venv
with torch)."""

import copy
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (python/run_torch_tests.sh runs these tests)")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import convnd  # noqa: E402
import convnd.torch as ct  # noqa: E402
from conftest import seed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available() and convnd.has_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a GPU and convnd built with CUDA")

# Tolerances against torch's own result (both round differently): float64, float32, bf16.
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-4, 2e-4), torch.bfloat16: (3e-2, 3e-2)}


def close(got, want, what=""):
    rtol, atol = TOL[want.dtype]
    scale = max(1.0, float(want.detach().abs().max()))  # sums of many terms: absolute error grows with them
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol * scale, msg=lambda m: f"{what}: {m} (seed {seed()})")


# --------------------------------------------------------------------------------------------
# Problems: named cases and seeded random ones


def _case(rank, n=2, c=4, o=6, size=7, k=3, groups=1, transposed=False, bias=True, **kw):
    return dict(rank=rank, n=n, c=c, o=o, size=size, k=k, groups=groups, transposed=transposed, bias=bias, kw=kw)


NAMED = {
    "1d": _case(1, size=11),
    "1d_stride_pad_dil": _case(1, size=13, stride=2, padding=2, dilation=2),
    "1d_same_even_kernel": _case(1, size=10, k=4, padding="same", dilation=1),
    "1d_same_dilated": _case(1, size=10, k=4, padding="same", dilation=3),
    "1d_valid": _case(1, size=10, padding="valid"),
    "2d": _case(2, bias=False),
    "2d_groups": _case(2, c=6, o=9, groups=3, stride=(2, 1), padding=(1, 0)),
    "2d_depthwise": _case(2, c=5, o=5, groups=5, padding=1),
    "2d_depthwise_multiplier": _case(2, c=4, o=8, groups=4, padding="same"),
    "2d_pointwise": _case(2, c=8, o=3, k=1),
    "3d": _case(3, c=3, o=4, size=5, k=2, stride=2, padding=1),
    "3d_groups_same": _case(3, c=4, o=4, size=5, k=3, groups=2, padding="same"),
    "t1d": _case(1, transposed=True, size=6, stride=3, padding=1, output_padding=2),
    "t1d_dilated": _case(1, transposed=True, size=6, stride=1, padding=2, dilation=3, output_padding=1),
    "t1d_pad_beyond_kernel": _case(1, transposed=True, size=9, k=3, stride=2, padding=3),
    "t2d_groups": _case(2, transposed=True, c=6, o=4, groups=2, stride=2, padding=1, output_padding=1),
    "t2d_depthwise": _case(2, transposed=True, c=5, o=5, groups=5, stride=(2, 3), padding=(0, 1)),
    "t3d": _case(3, transposed=True, c=4, o=2, size=4, k=2, stride=2, groups=2, bias=False),
}


def random_problem(rng):
    rank = int(rng.integers(1, 4))
    transposed = bool(rng.integers(0, 2))
    groups = int(rng.choice([1, 1, 2, 3]))
    depthwise = rng.random() < 0.25
    cg, og = (1, int(rng.integers(1, 3))) if depthwise else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if depthwise:
        groups = int(rng.integers(2, 6))
    k = int(rng.integers(1, 4 if rank < 3 else 3))
    stride = [int(s) for s in rng.integers(1, 4, rank)]
    dilation = [int(d) for d in rng.integers(1, 3, rank)]
    size = int(rng.integers(4, 12 if rank < 3 else 6))
    kw = dict(stride=stride, dilation=dilation)
    if transposed:
        kw["padding"] = [int(rng.integers(0, 3)) for _ in range(rank)]
        kw["output_padding"] = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        # Every output extent must be >= 1.
        for i in range(rank):
            while (size - 1) * stride[i] - 2 * kw["padding"][i] + dilation[i] * (k - 1) + kw["output_padding"][i] < 0:
                kw["padding"][i] -= 1
    else:
        choice = rng.random()
        if choice < 0.15 and all(s == 1 for s in stride):
            kw["padding"] = "same"
        elif choice < 0.25:
            kw["padding"] = "valid"
        else:
            kw["padding"] = [int(rng.integers(0, 3)) for _ in range(rank)]
        size = max(size, max(dilation) * (k - 1) + 1)
    return _case(rank, n=int(rng.integers(1, 4)), c=groups * cg, o=groups * og, size=size, k=k, groups=groups,
                 transposed=transposed, bias=bool(rng.integers(0, 2)), **kw)


def tensors(case, dtype, gen, requires_grad=True, device="cpu"):
    r, g = case["rank"], case["groups"]
    x = torch.randn(case["n"], case["c"], *[case["size"]] * r, dtype=dtype, generator=gen)
    if case["transposed"]:
        w = torch.randn(case["c"], case["o"] // g, *[case["k"]] * r, dtype=dtype, generator=gen)
    else:
        w = torch.randn(case["o"], case["c"] // g, *[case["k"]] * r, dtype=dtype, generator=gen)
    b = torch.randn(case["o"], dtype=dtype, generator=gen) if case["bias"] else None
    out = [t.to(device).requires_grad_(requires_grad) if t is not None else None for t in (x, w, b)]
    return out


def run(case, mod, x, w, b):
    name = f"conv_transpose{case['rank']}d" if case["transposed"] else f"conv{case['rank']}d"
    return getattr(mod, name)(x, w, b, groups=case["groups"], **case["kw"])


def check_case(case, dtype, gen, device="cpu", what=""):
    x, w, b = tensors(case, dtype, gen, device=device)
    y = run(case, ct, x, w, b)
    y_ref = run(case, F, x, w, b)
    close(y, y_ref, f"{what} y")
    dy = torch.randn(y_ref.shape, dtype=dtype, generator=gen).to(device)
    inputs = [t for t in (x, w, b) if t is not None]
    got = torch.autograd.grad(y, inputs, dy)
    want = torch.autograd.grad(y_ref, inputs, dy)
    for name, a, e in zip("xwb", got, want):
        close(a, e, f"{what} d{name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(NAMED))
def test_named_problems_match_torch(name, dtype):
    gen = torch.Generator().manual_seed(seed() + len(name))
    check_case(NAMED[name], dtype, gen, what=name)


def test_random_problems_match_torch(rng):
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    for i in range(40):
        case = random_problem(rng)
        dtype = torch.float64 if i % 2 else torch.float32
        check_case(case, dtype, gen, what=f"random #{i} {case}")


def test_unbatched_and_channels_last_inputs():
    gen = torch.Generator().manual_seed(seed())
    x = torch.randn(3, 9, 8, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=gen)
    close(ct.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), "unbatched")
    wt = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=gen)
    close(ct.conv_transpose2d(x, wt, stride=2), F.conv_transpose2d(x, wt, stride=2), "unbatched transposed")
    x5 = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, generator=gen).to(memory_format=torch.channels_last_3d)
    w5 = torch.randn(4, 3, 2, 2, 2, dtype=torch.float64, generator=gen)
    y = ct.conv3d(x5, w5)
    close(y, F.conv3d(x5, w5), "channels_last_3d")
    assert y.is_contiguous(memory_format=torch.channels_last_3d)


def test_channels_last_reaches_the_engine_without_a_copy(monkeypatch):
    seen = []
    real = ct._to_dlpack

    def spy(t):  # every tensor handed to the engine
        seen.append(t.data_ptr())
        return real(t)

    monkeypatch.setattr(ct, "_to_dlpack", spy)
    x = torch.randn(2, 8, 6, 7).to(memory_format=torch.channels_last)
    w = torch.randn(5, 8, 3, 3).to(memory_format=torch.channels_last)
    y = ct.conv2d(x, w)
    assert seen == [x.data_ptr(), w.data_ptr()]  # the very tensors: no copy on the way in
    assert y.is_contiguous(memory_format=torch.channels_last)  # a view of the engine's output
    torch.testing.assert_close(y, F.conv2d(x, w), rtol=2e-4, atol=2e-4)


def test_empty_batch():
    x = torch.randn(0, 3, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, requires_grad=True)
    y = ct.conv1d(x, w, padding=1)
    assert y.shape == (0, 4, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape and torch.all(w.grad == 0)


def test_errors():
    x, w = torch.randn(1, 2, 8), torch.randn(3, 2, 3)
    with pytest.raises(ValueError, match="strided"):
        ct.conv1d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        ct.conv1d(x, w, padding="full")
    with pytest.raises(ValueError, match="transposed"):
        ct.conv_transpose1d(x, torch.randn(2, 3, 3), padding="same")
    with pytest.raises(ValueError, match="groups"):  # convnd's own message, with its problem string
        ct.conv1d(x, torch.randn(3, 1, 3), groups=2)
    with pytest.raises(ValueError, match="output padding"):
        ct.conv_transpose1d(x, torch.randn(2, 3, 3), stride=2, output_padding=2)


# --------------------------------------------------------------------------------------------
# Gradients: gradcheck, double backward, the custom operators' own checks


GRADCHECK = {
    "conv1d": (lambda x, w: ct.conv1d(x, w, stride=2, padding=1, dilation=2), (1, 2, 9), (3, 2, 3)),
    "conv2d_groups": (lambda x, w: ct.conv2d(x, w, stride=(1, 2), padding=1, groups=2),
                      (2, 4, 5, 6), (4, 2, 3, 2)),
    "conv3d": (lambda x, w: ct.conv3d(x, w, padding=(1, 0, 1)), (1, 2, 3, 4, 3), (2, 2, 2, 2, 2)),
    "conv_transpose1d": (lambda x, w: ct.conv_transpose1d(x, w, stride=3, padding=1, output_padding=2),
                         (2, 2, 4), (2, 3, 3)),
    "conv_transpose2d_groups": (lambda x, w: ct.conv_transpose2d(x, w, stride=2, padding=(0, 1), groups=2,
                                                                 dilation=(1, 2), output_padding=1),
                                (1, 4, 3, 4), (4, 1, 2, 3)),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradcheck_float64(name):
    f, xs, ws = GRADCHECK[name]
    gen = torch.Generator().manual_seed(seed())
    x = torch.randn(xs, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(ws, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def _op_samples():
    gen = torch.Generator().manual_seed(seed())

    def t(*shape):
        return torch.randn(shape, generator=gen)

    # (x [N, *spatial, C], w [O, *kernel, C/g], stride, lo, hi, dilation, output_padding, groups, transposed)
    return [
        (t(2, 7, 3), t(4, 3, 3), [2], [1], [0], [1], [0], 1, False),
        (t(1, 5, 6, 4), t(6, 2, 3, 2), [1, 2], [0, 1], [1, 1], [2, 1], [0, 0], 2, False),
        (t(2, 4, 5, 4), t(6, 3, 2, 2), [2, 2], [1, 0], [1, 0], [1, 1], [1, 0], 2, True),
        (t(1, 3, 3, 3, 2), t(2, 2, 2, 2, 2), [2, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0], 1, True),
    ]


@pytest.mark.parametrize("i", range(4))
def test_custom_operators_opcheck(i):
    x, w, *p = _op_samples()[i]
    torch.library.opcheck(torch.ops.convnd.conv.default, (x, w, *p))
    y = torch.ops.convnd.conv(x, w, *p)
    dy = torch.randn_like(y)
    torch.library.opcheck(torch.ops.convnd.conv_input_grad.default, (dy, w, list(x.shape), *p))
    torch.library.opcheck(torch.ops.convnd.conv_weight_grad.default, (dy, x, list(w.shape), *p))


def test_fake_shapes_match_real():
    from torch._subclasses.fake_tensor import FakeTensorMode

    for x, w, *p in _op_samples():
        y = torch.ops.convnd.conv(x, w, *p)
        with FakeTensorMode() as mode:
            fx, fw = mode.from_tensor(x), mode.from_tensor(w)
            fy = torch.ops.convnd.conv(fx, fw, *p)
            fdx = torch.ops.convnd.conv_input_grad(torch.empty_like(fy), fw, list(x.shape), *p)
            fdw = torch.ops.convnd.conv_weight_grad(torch.empty_like(fy), fx, list(w.shape), *p)
        assert fy.shape == y.shape and fy.stride() == y.stride() and fy.dtype == y.dtype
        assert fdx.shape == x.shape and fdw.shape == w.shape


def test_eager_calls_match_the_operators():
    # Eager calls skip the dispatcher (a plain autograd.Function around the same implementations);
    # values and first and second derivatives must be the operators' bit for bit.
    for x, w, *p in _op_samples():
        x, w = x.double().requires_grad_(), w.double().requires_grad_()
        outs = []
        for conv in (ct._run_conv, torch.ops.convnd.conv):
            y = conv(x, w, *p)
            dy = torch.ones_like(y)
            dx, dw = torch.autograd.grad(y, (x, w), dy, create_graph=True)
            ddx, = torch.autograd.grad((dx.square().sum() + dw.square().sum()), x)
            outs.append((y, dx, dw, ddx))
        for a, b in zip(*outs):
            assert torch.equal(a, b)


def _channels_last(t):
    return t.movedim(1, -1).contiguous().movedim(-1, 1)  # (N, C, *spatial), channels innermost in memory


def test_channels_first_path_matches_the_operators(monkeypatch):
    # A channels-last CPU input with a small weight goes to the engine in PyTorch's layouts
    # (_run_conv_channels_first: the engine reorders the axes); values and first and second
    # derivatives must be those of the operators' path bit for bit, in every dtype. First-order
    # gradients there go to the engine in PyTorch's layouts too (_grad_channels_first), also
    # with a broadcast cotangent (y.sum()'s, strides 0).
    gen = torch.Generator().manual_seed(seed())
    calls, grad_calls = [], []
    real, real_grad = ct._conv_cf_impl, ct._grad_channels_first

    def spy(*args):
        calls.append(1)
        return real(*args)

    def grad_spy(*args):
        grad_calls.append(1)
        return real_grad(*args)

    monkeypatch.setattr(ct, "_conv_cf_impl", spy)
    monkeypatch.setattr(ct, "_grad_channels_first", grad_spy)

    def r(*shape):
        return torch.randn(shape, dtype=torch.float64, generator=gen)

    cases = [
        (ct.conv1d, r(2, 3, 11), r(4, 3, 3), dict(stride=2, padding=1)),
        (ct.conv2d, r(2, 4, 7, 6), r(6, 2, 3, 2), dict(padding=(1, 0), dilation=(2, 1), groups=2)),
        (ct.conv3d, r(1, 3, 4, 5, 3), r(2, 3, 2, 2, 2), dict(stride=(2, 1, 1))),
        (ct.conv_transpose1d, r(2, 3, 5), r(3, 4, 3), dict(stride=2, dilation=2, output_padding=1)),
        (ct.conv_transpose2d, r(1, 2, 4, 5), r(2, 3, 2, 3), dict(stride=2, padding=(0, 1))),
    ]
    for f, x, w, kw in cases:
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            xd, wd = _channels_last(x.to(dtype)), w.to(dtype)
            outs = []
            for limit in (1 << 16, -1):  # the channels-first path, then the operators' path
                monkeypatch.setattr(ct, "_ENGINE_REORDERS_WEIGHTS_UP_TO", limit)
                before, grads_before = len(calls), len(grad_calls)
                with torch.no_grad():
                    y0 = f(xd, wd, **kw)
                xg, wg = xd.clone().requires_grad_(), wd.clone().requires_grad_()
                y = f(xg, wg, **kw)
                assert (len(calls) > before) == (limit > 0), (f.__name__, dtype)
                dx, dw = torch.autograd.grad(y, (xg, wg), torch.ones_like(y), create_graph=dtype == torch.float64)
                outs.append([y0, y, dx, dw])
                if dtype != torch.float64:
                    ones = torch.ones((), dtype=dtype).expand(y.shape)
                    outs[-1] += torch.autograd.grad(f(xg, wg, **kw), (xg, wg), ones)
                assert (len(grad_calls) > grads_before) == (limit > 0 and dtype != torch.float64), (f.__name__, dtype)
                if dtype == torch.float64:
                    outs[-1].append(torch.autograd.grad(dx.square().sum() + dw.square().sum(), xg)[0])
            for a, b in zip(*outs):
                assert a.shape == b.shape and torch.equal(a, b), (f.__name__, dtype)
            assert outs[0][0].is_contiguous(memory_format=torch.channels_last) or x.dim() != 4
    # What takes the operators' path: a channels-first input, several groups of a transposed
    # conv, a large weight; each still right.
    monkeypatch.setattr(ct, "_ENGINE_REORDERS_WEIGHTS_UP_TO", 1 << 16)
    before = len(calls)
    x, w = r(2, 4, 6, 5), r(6, 2, 3, 3)
    close(ct.conv2d(x, w, groups=2), F.conv2d(x, w, groups=2), "channels-first input")
    wt = r(4, 3, 2, 2)
    close(ct.conv_transpose2d(_channels_last(x), wt, groups=2), F.conv_transpose2d(x, wt, groups=2), "groups=2 transposed")
    wl = r(300, 4, 8, 8)
    close(ct.conv2d(_channels_last(x), wl, padding=3), F.conv2d(x, wl, padding=3), "large weight")
    assert len(calls) == before


def test_traced_calls_see_the_operators():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Log(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(1, 2, 6, requires_grad=True)
    w = torch.randn(3, 2, 3, requires_grad=True)
    with Log() as log:
        ct.conv1d(x, w, padding=1).sum().backward()
    assert {"convnd.conv.default", "convnd.conv_input_grad.default", "convnd.conv_weight_grad.default"} <= set(log.ops)


def test_unsupported_dtype_names_the_shapes():
    with pytest.raises(TypeError, match=r"convnd computes .*; input shape \(1, 8, 2\), weight shape \(3, 3, 2\)"):
        ct.conv1d(torch.ones(1, 2, 8, dtype=torch.int32), torch.ones(3, 2, 3, dtype=torch.int32))


# --------------------------------------------------------------------------------------------
# Modules, state dicts, convert()


class Net(nn.Module):
    """Nested convolutions of every kind, stock torch.nn."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False))
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(8, 8, 1), nn.GELU()),
                                     nn.Sequential(nn.Conv2d(8, 8, 3, padding="same", padding_mode="circular"))])
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.head = nn.ModuleDict({"out": nn.Conv2d(4, 2, 3, padding=1, padding_mode="replicate")})

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = x + b(x)
        return self.head["out"](torch.relu(self.up(x)))


class Conv2dSubclass(nn.Conv2d):
    pass


@pytest.mark.parametrize("pair", [
    (nn.Conv1d, ct.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2,
                                padding_mode="circular"), (2, 4, 11)),
    (nn.Conv2d, ct.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), padding="same", dilation=2,
                                padding_mode="reflect"), (2, 3, 8, 9)),
    (nn.Conv3d, ct.Conv3d, dict(in_channels=2, out_channels=4, kernel_size=2, padding=1, bias=False,
                                padding_mode="replicate"), (1, 2, 4, 5, 3)),
    (nn.ConvTranspose1d, ct.ConvTranspose1d, dict(in_channels=4, out_channels=2, kernel_size=4, stride=2,
                                                  padding=1, groups=2), (2, 4, 7)),
    (nn.ConvTranspose2d, ct.ConvTranspose2d, dict(in_channels=3, out_channels=6, kernel_size=3, stride=2,
                                                  padding=1, output_padding=1, groups=3), (2, 3, 5, 4)),
    (nn.ConvTranspose3d, ct.ConvTranspose3d, dict(in_channels=2, out_channels=2, kernel_size=2, stride=2,
                                                  dilation=1), (1, 2, 3, 3, 2)),
], ids=lambda p: p[0].__name__ if isinstance(p, tuple) else "")
def test_modules_and_state_dicts(pair):
    torch_cls, convnd_cls, kwargs, xshape = pair
    torch.manual_seed(seed() % 2**31)
    ref = torch_cls(**kwargs, dtype=torch.float64)
    mine = convnd_cls(**kwargs, dtype=torch.float64)
    assert isinstance(mine, torch_cls)
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    mine.load_state_dict(ref.state_dict())  # torch.nn -> convnd
    x = torch.randn(xshape, dtype=torch.float64, requires_grad=True)
    y, y_ref = mine(x), ref(x)
    close(y, y_ref, "module output")
    dy = torch.randn_like(y_ref)
    for a, e in zip(torch.autograd.grad(y, [x, *mine.parameters()], dy),
                    torch.autograd.grad(y_ref, [x, *ref.parameters()], dy)):
        close(a, e, "module gradient")
    back = torch_cls(**kwargs, dtype=torch.float64)
    back.load_state_dict(mine.state_dict())  # convnd -> torch.nn
    close(back(x), y_ref, "state dict back")
    assert repr(mine).startswith("convnd.")


def test_conv_transpose_output_size():
    torch.manual_seed(0)
    m = ct.ConvTranspose2d(3, 2, 3, stride=3, padding=1, dtype=torch.float64)
    ref = nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1, dtype=torch.float64)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    y = m(x, output_size=[11, 15])
    assert y.shape == (1, 2, 11, 15)
    close(y, ref(x, output_size=[11, 15]), "output_size")


def test_convert_nested_model():
    torch.manual_seed(seed() % 2**31)
    model = Net().double()
    model.extra = Conv2dSubclass(2, 2, 1).double()  # a user's subclass: left alone
    x = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    y_ref = model.extra(model(x))
    params = {n: p for n, p in model.named_parameters()}
    modules = dict(model.named_modules())
    assert ct.convert(model) is model
    converted = {n: type(m) for n, m in model.named_modules() if type(m).__module__ == "convnd.torch"}
    assert converted == {"stem.0": ct.Conv2d, "stem.2": ct.Conv2d, "blocks.0.0": ct.Conv2d, "blocks.1.0": ct.Conv2d,
                         "up": ct.ConvTranspose2d, "head.out": ct.Conv2d}
    assert type(model.extra) is Conv2dSubclass
    assert all(modules[n] is m for n, m in model.named_modules())  # the same module objects
    assert all(params[n] is p for n, p in model.named_parameters())  # and the same parameters
    close(model.extra(model(x)), y_ref, "converted model")
    # A conv module by itself converts too.
    single = nn.Conv1d(2, 2, 3)
    assert type(ct.convert(single)) is ct.Conv1d


# --------------------------------------------------------------------------------------------
# torch.compile, autocast


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = ct.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.c2 = ct.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.t = ct.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.c3 = ct.Conv1d(4, 2, 3, padding="same")

    def forward(self, x):
        y = self.t(torch.relu(self.c2(torch.relu(self.c1(x)))))
        return self.c3(y.flatten(2)).square().mean()


@pytest.mark.parametrize("backend,dynamic", [("inductor", False), ("aot_eager", True)])
def test_torch_compile_fullgraph(backend, dynamic):
    torch.manual_seed(0)
    model = SmallNet()
    x = torch.randn(2, 3, 12, 12)
    loss = model(x)
    loss.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend, dynamic=dynamic)
    got_loss = compiled(x)
    got_loss.backward()
    torch.testing.assert_close(got_loss, loss, rtol=1e-4, atol=1e-6)
    for p, g in zip(model.parameters(), want):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    if dynamic:  # another batch size through the same graph
        compiled(torch.randn(3, 3, 12, 12)).backward()


@pytest.mark.parametrize("rank,transposed", [(1, False), (2, False), (3, False), (2, True)])
def test_autocast_bf16(rank, transposed):
    gen = torch.Generator().manual_seed(seed())
    case = _case(rank, size=6, stride=2, padding=1, transposed=transposed)
    x, w, b = tensors(case, torch.float32, gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = run(case, ct, x, w, b)
        y_ref = run(case, F, x, w, b)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    close(y, y_ref, "autocast y")
    dy = torch.randn(y.shape, generator=gen).to(torch.bfloat16)
    got = torch.autograd.grad(y, (x, w, b), dy)
    want = torch.autograd.grad(y_ref, (x, w, b), dy)
    for a, e in zip(got, want):
        assert a.dtype == torch.float32  # gradients come back in the parameters' dtype
        close(a.bfloat16(), e.bfloat16(), "autocast gradient")


def test_bf16_and_f16_tensors():
    gen = torch.Generator().manual_seed(seed())
    x, w, b = tensors(_case(2, groups=2, padding=1), torch.float32, gen, requires_grad=False)
    for dt in (torch.bfloat16, torch.float16):
        y = ct.conv2d(x.to(dt), w.to(dt), b.to(dt), padding=1, groups=2)
        assert y.dtype == dt
        torch.testing.assert_close(y.float(), F.conv2d(x, w, b, padding=1, groups=2), rtol=3e-2, atol=6e-2)


# --------------------------------------------------------------------------------------------
# DistributedDataParallel (gloo, two processes, CPU)


def _ddp_model():
    torch.manual_seed(1234)
    return nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 3, stride=2, groups=2),
                         nn.ReLU(), nn.ConvTranspose1d(8, 2, 4, stride=2, padding=1))


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = DDP(ct.convert(_ddp_model()))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(7)
        for _ in range(2):
            x = torch.randn(4 * world, 2, 16, generator=gen)
            opt.zero_grad()
            model(x[rank::world]).square().mean().backward()
            opt.step()
        torch.save({n: p.detach() for n, p in model.module.named_parameters()}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_processes():
    import torch.multiprocessing as mp

    world = 2
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(world, os.path.join(d, "init"), d), nprocs=world, join=True)
        got = [torch.load(os.path.join(d, f"{r}.pt")) for r in range(world)]
    # The same two steps on the whole batch in one process, stock torch.nn.
    model = _ddp_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(7)
    for _ in range(2):
        x = torch.randn(4 * world, 2, 16, generator=gen)
        opt.zero_grad()
        # DDP averages the ranks' gradients: the mean of the shards' mean losses.
        sum(model(x[r::world]).square().mean() for r in range(world)).div(world).backward()
        opt.step()
    for n, p in model.named_parameters():
        for r in range(world):
            torch.testing.assert_close(got[r][n], p.detach(), rtol=1e-4, atol=1e-5, msg=f"rank {r} {n}")


# --------------------------------------------------------------------------------------------
# Packaging: import convnd imports no framework; a missing or old torch is named


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_convnd_imports_no_framework():
    r = _python("import sys, convnd, convnd.grad; "
                "print(sorted(m for m in ('torch', 'mlx', 'jax', 'tensorflow') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_missing_or_old_torch_is_named():
    r = _python("import sys; sys.modules['torch'] = None\n"
                "try:\n    import convnd.torch\nexcept ImportError as e:\n    print(e)")
    assert "needs PyTorch >= 2.4" in r.stdout and "not installed" in r.stdout, r.stdout + r.stderr
    r = _python("import sys, types; t = types.ModuleType('torch'); t.__version__ = '2.3.1'; sys.modules['torch'] = t\n"
                "try:\n    import convnd.torch\nexcept ImportError as e:\n    print(e)")
    assert "needs PyTorch >= 2.4" in r.stdout and "2.3.1" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------------------------
# The example


def test_example_train_torch_quick():
    path = ROOT / "examples" / "train_torch.py"
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, str(path), "--steps", "12", "--plot", os.path.join(d, "loss.png")],
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "convnd" in r.stdout and "torch.nn" in r.stdout


# --------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU or a CUDA build of convnd)


@needs_cuda
@pytest.mark.parametrize("name", ["2d_groups", "2d_depthwise", "3d", "t1d", "t2d_groups", "1d_same_even_kernel"])
def test_cuda_matches_torch(name):
    gen = torch.Generator().manual_seed(seed())
    torch.backends.cudnn.allow_tf32 = False
    check_case(NAMED[name], torch.float64, gen, device="cuda", what=f"cuda {name}")
    check_case(NAMED[name], torch.float32, gen, device="cuda", what=f"cuda {name}")


@needs_cuda
def test_cuda_side_stream_and_autocast():
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    x = torch.randn(4, 8, 32, 32, device="cuda").to(memory_format=torch.channels_last)
    w = torch.randn(16, 8, 3, 3, device="cuda")
    want = F.conv2d(x, w, padding=1)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        x2 = x * 2  # produced on the side stream, read by convnd after it
        y = ct.conv2d(x2, w, padding=1)
        z = y + 0  # consumed on the side stream
    torch.cuda.current_stream().wait_stream(s)
    torch.testing.assert_close(z, 2 * want, rtol=1e-4, atol=1e-3)
    with torch.autocast("cuda", dtype=torch.float16):
        y16 = ct.conv2d(x, w, padding=1)
        r16 = F.conv2d(x, w, padding=1)
    assert y16.dtype == r16.dtype == torch.float16
    torch.testing.assert_close(y16.float(), r16.float(), rtol=2e-2, atol=5e-2)
    model = SmallNet().cuda()
    compiled = torch.compile(model, fullgraph=True)
    loss = compiled(torch.randn(2, 3, 12, 12, device="cuda"))
    loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in model.parameters())


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_capture_and_replay(dtype):
    # Forward and both gradients captured under torch.cuda.graph and replayed on new inputs,
    # twice: no synchronisation may happen in a captured call, its workspace must be the
    # graph's, and its results must keep their memory from one replay to the next. (In
    # bf16 the weight gradient runs on CUTLASS's kernels, here in sample chunks on side
    # streams: a fork and join inside the capture.)
    torch.manual_seed(0)
    x = torch.randn(16, 32, 64, 64, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(32, 32, 3, 3, device="cuda", dtype=dtype, requires_grad=True)
    dy = torch.randn(16, 32, 64, 64, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    xs = x.clone().requires_grad_(True)

    def step():
        y = ct.conv2d(xs, w, padding=1)
        gx, gw = torch.autograd.grad(y, (xs, w), dy)
        return y, gx, gw

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):  # warm-up: plans cached, side streams made, before the capture
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = step()
    for _ in range(2):  # the outputs keep their memory: every replay writes the same tensors
        with torch.no_grad():
            xs.copy_(torch.randn_like(xs))
            dy.copy_(torch.randn_like(dy))
        g.replay()
        torch.cuda.synchronize()
        want = step()
        for got, ref in zip(out, want):
            torch.testing.assert_close(got, ref, rtol=0, atol=0)  # the same kernels on the same inputs
    ref_y = F.conv2d(xs.detach().float(), w.detach().float(), padding=1)
    tol = dict(rtol=2e-2, atol=1e-1) if dtype == torch.bfloat16 else dict(rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(out[0].float(), ref_y, **tol)


def test_a_forked_child_computes_after_torch_ran():
    """convnd.torch on PyTorch's OpenMP team in the parent, then a fork's child (a data loader
    worker): GNU libgomp's team does not survive a fork, so the child must use threads of its own."""
    from test_api import _in_forked_child
    x = torch.randn(2, 24, 17, 13).to(memory_format=torch.channels_last)
    w = torch.randn(16, 24, 3, 3)
    F.conv2d(x, w, padding=1)  # PyTorch's team has run
    want = ct.conv2d(x, w, padding=1)
    assert _in_forked_child(lambda: torch.equal(ct.conv2d(x, w, padding=1), want)) == 0
