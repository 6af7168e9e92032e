"""Array inputs and outputs: NumPy layouts (strided, negative and zero strides, read-only,
Fortran order, byte-swapped), bfloat16 through ml_dtypes, DLPack producers, output ownership."""

import gc
import threading
import time

import ml_dtypes
import numpy as np
import pytest

import convnd
import numpy_reference as ref
from conftest import DTYPES, random_array


class DLPackOnly:
    """A producer that offers nothing but the DLPack protocol (wrapping NumPy's own)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def _check(y, x, w, **kw):
    want = ref.conv_general(x, w, **kw)
    np.testing.assert_array_equal(np.asarray(y).astype(np.float64), want)


@pytest.fixture
def xw(rng):
    x = random_array(rng, (3, 10, 8, 6), "f32", ints=True)
    w = random_array(rng, (4, 3, 2, 6), "f32", ints=True)
    return x, w


@pytest.mark.parametrize(
    "layout",
    ["sliced_steps", "channel_stride", "negative_strides", "fortran", "transposed_view", "offset"],
)
def test_strided_inputs(layout, rng):
    big = random_array(rng, (4, 21, 17, 12), "f32", ints=True)
    if layout == "sliced_steps":
        x = big[::2, ::2, 1::2, :6]
    elif layout == "channel_stride":
        x = big[:, :10, :8, ::2]
    elif layout == "negative_strides":
        x = big[::-1, 10:0:-1, ::-2, 6:]
    elif layout == "fortran":
        x = np.asfortranarray(big[:, :9, :7, :6])
    elif layout == "transposed_view":
        x = np.transpose(big, (0, 2, 1, 3))[:, :, :9, :6]
    else:
        x = big[1:, 3:, 2:, 6:]
    assert not x.flags.c_contiguous or layout == "offset"
    w = random_array(rng, (6, 3, 2, 3), "f32", ints=True)[:, ::-1]  # a strided weight too
    y = convnd.conv2d(x, w, padding=1, groups=2)
    _check(y, np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1, groups=2)


def test_zero_strides_and_read_only(rng):
    row = random_array(rng, (1, 1, 1, 6), "f32", ints=True)
    x = np.broadcast_to(row, (2, 9, 7, 6))  # read-only, strides 0
    assert not x.flags.writeable
    w = random_array(rng, (4, 3, 3, 6), "f32", ints=True)
    w.flags.writeable = False
    _check(convnd.conv2d(x, w), np.ascontiguousarray(x), w)


def test_byte_swapped(xw):
    x, w = xw
    y = convnd.conv2d(x.astype(">f4"), w.astype(">f4"))
    _check(y, x, w)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_dtypes_round_trip(dtype, rng):
    x = random_array(rng, (2, 7, 4), dtype, ints=True)
    w = random_array(rng, (3, 3, 4), dtype, ints=True)
    y = convnd.conv1d(x, w)
    assert y.dtype == DTYPES[dtype]
    assert isinstance(y, np.ndarray)
    _check(y, x, w)


def test_bfloat16_strided(rng):
    x = random_array(rng, (2, 14, 8), "bf16", ints=True)[:, ::2, ::2]
    w = random_array(rng, (3, 2, 4), "bf16", ints=True)
    y = convnd.conv1d(x, w)
    assert y.dtype == ml_dtypes.bfloat16
    _check(y, np.ascontiguousarray(x), w)


def test_output_is_owned_writable_numpy(xw):
    x, w = xw
    y = convnd.conv2d(x, w)
    assert y.flags.c_contiguous and y.flags.writeable
    before = y.copy()
    del x, w
    gc.collect()
    y += 0  # the buffer is alive and writable
    np.testing.assert_array_equal(y, before)


def test_dlpack_producer(xw):
    x, w = xw
    y = convnd.conv2d(DLPackOnly(x), DLPackOnly(w), padding=1)
    _check(y, x, w, padding=1)


def test_dlpack_producer_strided(rng):
    big = random_array(rng, (2, 12, 12, 8), "f32", ints=True)
    x = big[:, ::2, 1::3, ::2]
    w = random_array(rng, (4, 3, 3, 4), "f32", ints=True)
    y = convnd.conv2d(DLPackOnly(x), DLPackOnly(w))
    _check(y, np.ascontiguousarray(x), w)


def test_dlpack_capsule(xw):
    x, w = xw
    y = convnd.conv2d(x.__dlpack__(), w.__dlpack__())
    _check(y, x, w)


def test_output_exports_dlpack(xw):
    x, w = xw
    y = convnd.conv2d(x, w)
    z = np.from_dlpack(y)
    assert np.shares_memory(y, z)
    # and goes back in
    w2 = w[..., :4]  # y has 4 channels
    np.testing.assert_array_equal(convnd.conv2d(DLPackOnly(z), w2), convnd.conv2d(y, w2))


def test_python_lists():
    y = convnd.conv1d([[[1.0], [2.0], [3.0]]], [[[1.0], [1.0]]])
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[[3.0], [5.0]]])


def test_torch_round_trip(rng):
    torch = pytest.importorskip("torch", reason="torch not installed (optional DLPack producer)")
    x = random_array(rng, (2, 9, 6), "f32", ints=True)
    w = random_array(rng, (4, 3, 3), "f32", ints=True)
    tx = torch.from_numpy(x).transpose(1, 2).contiguous().transpose(1, 2)  # strided view
    y = convnd.conv1d(tx, torch.from_numpy(w), groups=2)
    _check(y, x, w, groups=2)
    for td, nd in [(torch.bfloat16, ml_dtypes.bfloat16), (torch.float16, np.float16), (torch.float64, np.float64)]:
        yt = convnd.conv1d(tx.to(td), torch.from_numpy(w).to(td), groups=2)
        assert yt.dtype == nd
        _check(yt, x, w, groups=2)
    assert torch.from_dlpack(y).shape == (2, 7, 4)


def test_gil_released_while_computing(rng):
    """Another Python thread keeps running while a (forced reference) conv computes."""
    x = random_array(rng, (1, 96, 96, 64), "f32")
    w = random_array(rng, (64, 3, 3, 64), "f32")
    done = threading.Event()
    result = {}

    def work():
        t = time.perf_counter()
        result["y"] = convnd.conv2d(x, w, padding=1, algorithm="reference", threads=1)
        result["t"] = time.perf_counter() - t
        done.set()

    th = threading.Thread(target=work)
    ticks = 0
    th.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    th.join()
    assert result["y"].shape == (1, 96, 96, 64)
    # With the GIL held the loop above could not have ticked during the conv.
    assert ticks >= min(20, result["t"] / 0.002 * 0.5), (ticks, result["t"])
