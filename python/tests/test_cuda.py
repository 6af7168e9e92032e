"""CUDA arrays in, CUDA arrays out (no copies), checked against the CPU. Skipped without a
CUDA build of convnd, torch, or a GPU."""
import numpy as np
import pytest

import convnd

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not (convnd.has_cuda() and torch.cuda.is_available()),
                                reason="needs convnd built with CUDA, torch and a GPU")


def _cpu(t):
    return t.detach().cpu().float().numpy() if t.dtype == torch.bfloat16 else t.detach().cpu().numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_conv2d_cuda_in_cuda_out(dtype):
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randint(-2, 3, (2, 9, 7, 6), device="cuda", generator=g).to(dtype)
    w = torch.randint(-2, 3, (4, 3, 2, 3), device="cuda", generator=g).to(dtype)
    y = convnd.conv2d(x, w, padding=1, groups=2, device="cuda")
    yt = torch.from_dlpack(y)
    assert yt.device.type == "cuda" and yt.dtype == dtype and tuple(yt.shape) == (2, 9, 8, 4)
    # Small integers: exact in every dtype, so the CPU result must match bit for bit.
    ref = convnd.conv2d(_cpu(x).astype(np.float64), _cpu(w).astype(np.float64), padding=1, groups=2)
    np.testing.assert_array_equal(_cpu(yt).astype(np.float64), ref)


def test_transposed_and_strided_cuda_inputs():
    x = torch.randn(3, 40, 5, device="cuda", dtype=torch.float64).transpose(0, 1).contiguous().transpose(0, 1)
    assert not x.is_contiguous()
    w = torch.randn(4, 6, 5, device="cuda", dtype=torch.float64)
    y = torch.from_dlpack(convnd.conv_transpose1d(x, w, stride=3, padding=2, output_padding=1, device="cuda"))
    ref = convnd.conv_transpose1d(_cpu(x), _cpu(w), stride=3, padding=2, output_padding=1)
    np.testing.assert_allclose(_cpu(y), ref, rtol=1e-12, atol=1e-12)


def test_host_arrays_on_the_cuda_backend_come_back_as_numpy():
    x = np.random.default_rng(0).standard_normal((1, 16, 3)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 3, 3)).astype(np.float32)
    y = convnd.conv1d(x, w, device="cuda")
    assert isinstance(y, np.ndarray)
    np.testing.assert_allclose(y, convnd.conv1d(x, w), rtol=1e-5, atol=1e-5)


def test_precision_tf32_on_the_gpu():
    """precision="tf32" lets a float32 conv run on TF32 tensor cores where the planner has such a
    kernel (CUTLASS's Hopper forward kernels): within TF32's rounding of the float64 result, and
    the plan says so. precision="exact" (the default) never does."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((4, 20, 20, 64)).astype(np.float32)).cuda()
    w = torch.from_numpy(rng.standard_normal((128, 3, 3, 64)).astype(np.float32)).cuda()
    exact = convnd.plan(_cpu(x), _cpu(w), 1, 1, op="conv2d", device="cuda")
    assert "precision" not in exact and exact["config"].get("tf32", 0) == 0
    tf32 = convnd.plan(_cpu(x), _cpu(w), 1, 1, op="conv2d", device="cuda", precision="tf32")
    ref = convnd.conv2d(_cpu(x).astype(np.float64), _cpu(w).astype(np.float64), padding=1)
    # Each product's operands are cut to 10 mantissa bits: within 2^-9 of the terms' absolute sum.
    bound = 2.0 ** -9 * convnd.conv2d(np.abs(_cpu(x)).astype(np.float64), np.abs(_cpu(w)).astype(np.float64),
                                      padding=1) + 1e-30
    for precision, plan in (("exact", exact), ("tf32", tf32)):
        y = _cpu(torch.from_dlpack(convnd.conv2d(x, w, padding=1, device="cuda", precision=precision)))
        assert np.all(np.abs(y - ref) <= bound), precision
    if tf32["algorithm"] == "cutlass_sm90__cuda":  # a Hopper GPU and a build with CUTLASS
        assert tf32["precision"] == "tf32" and tf32["config"]["tf32"] == 1
        y = _cpu(torch.from_dlpack(convnd.conv2d(x, w, padding=1, device="cuda", precision="tf32")))
        err = np.abs(y - ref).max() / np.abs(ref).max()
        assert err > 1e-6, "TF32 was asked for and planned, but the result is exact float32"
