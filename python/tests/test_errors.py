"""Error types: ValueError (invalid), NotImplementedError (unsupported), MemoryError (budget or
device), TypeError (dtype or argument types); problem errors carry the problem string."""

import numpy as np
import pytest

import convnd


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


INVALID = [
    # (call, text the message must contain)
    (lambda: convnd.conv1d(zeros(1, 8, 4), zeros(4, 3, 4), groups=0), "groups g (0) must be >= 1"),  # MLX: SIGFPE
    (lambda: convnd.conv2d(zeros(1, 8, 8, 30), zeros(8, 3, 3, 7), groups=4), "divisible by groups"),
    (lambda: convnd.conv1d(zeros(1, 8, 6), zeros(5, 3, 2), groups=3), "output channels (5) must be divisible"),
    (lambda: convnd.conv1d(zeros(1, 8, 4), zeros(4, 3, 3)), "weight channels (3)"),
    (lambda: convnd.conv1d(zeros(1, 8, 4), zeros(4, 3, 4), stride=0), "stride"),
    (lambda: convnd.conv1d(zeros(1, 8, 4), zeros(4, 3, 4), dilation=[1, 1]), "expected 1"),
    (lambda: convnd.conv2d(zeros(1, 2, 2, 1), zeros(1, 3, 3, 1), stride=2), "problem: "),  # kernel > input
    (lambda: convnd.conv_general(zeros(1, 6, 1), zeros(1, 3, 1), padding=([-3], [-1])), "problem: "),
    (lambda: convnd.conv_transpose1d(zeros(1, 4, 1), zeros(1, 3, 1), stride=2, output_padding=2),
     "output"),  # outpad >= max(stride, dilation): MLX accepts
    (lambda: convnd.conv_transpose1d(zeros(1, 4, 1), zeros(1, 3, 1), padding=-1), "pad"),
    (lambda: convnd.conv_transpose1d(zeros(1, 2, 1), zeros(1, 2, 1), padding=3), "problem: "),  # empty output
    (lambda: convnd.conv2d(zeros(1, 8, 1), zeros(1, 3, 1)), "dimensions"),
    (lambda: convnd.conv_general(zeros(8, 1), zeros(3, 1)), "dimensions"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1, dtype=np.float64)), "must match"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), device="tpu"), "device"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), budget="lots"), "budget"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), budget=-1), "budget"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), algorithm="no_such_algorithm"), "no_such_algorithm"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), stride=[]), "stride"),
    (lambda: convnd.plan("in=8 c=1 o=1 k=3 bogus=1"), "bogus"),
    (lambda: convnd.plan("in=8 c=1 o=1 k=3x3"), "problem"),
    (lambda: convnd.plan("op=convT in=8 c=1 o=1 k=3 stride=2 outpad=2"), "outpad"),
]


@pytest.mark.parametrize("call,text", INVALID, ids=[f"invalid{i}" for i in range(len(INVALID))])
def test_invalid_raises_value_error(call, text):
    with pytest.raises(ValueError) as e:
        call()
    assert text in str(e.value)


def test_problem_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"^\[conv2d\] .*; problem: in=8x8 c=30 o=8 k=3x3 g=4$"):
        convnd.conv2d(zeros(1, 8, 8, 30), zeros(8, 3, 3, 7), groups=4)


@pytest.mark.skipif(convnd.has_cuda(), reason="this build has the CUDA backend")
def test_cuda_without_backend_is_not_implemented():
    with pytest.raises(NotImplementedError, match="problem: n=2 in=9 c=3 o=4 k=3"):
        convnd.conv1d(zeros(2, 9, 3), zeros(4, 3, 3), device="cuda")
    with pytest.raises(NotImplementedError):
        convnd.plan("in=8 c=1 o=1 k=3", device="cuda")


def test_plans_are_made_for_any_size():
    """A plan reads only shapes: a 400 TB problem plans (and says its algorithm and bytes)."""
    p = convnd.plan("n=1000000 in=100000 c=1000 o=1")
    assert p["problem"] == "n=1000000 in=100000 c=1000 o=1" and p["algorithm"]


def test_memory_error_run_before_allocating():
    """Zero-stride views describe a 400 TB problem without memory: refused before allocation."""
    x = np.broadcast_to(np.zeros(1, np.float32), (1_000_000, 100_000, 1000))
    w = np.zeros((1, 1, 1000), np.float32)
    with pytest.raises(MemoryError, match="problem: "):
        convnd.conv1d(x, w)


def test_overflowing_shapes_are_value_errors():
    with pytest.raises(ValueError):
        convnd.plan("n=4611686018427387904 in=4 c=4 o=4")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.complex64, np.bool_])
def test_unsupported_dtype_is_type_error(dtype):
    with pytest.raises(TypeError, match="float32, float16, bfloat16 and float64; input shape "
                                        r"\(1, 8, 1\), weight shape \(1, 3, 1\)$"):
        convnd.conv1d(np.zeros((1, 8, 1), dtype), np.zeros((1, 3, 1), dtype))


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride="2"), dict(padding=1.5), dict(groups=None), dict(padding=([1], 2)), dict(budget=2.5),
     dict(budget=True)],
)
def test_bad_argument_types(kwargs):
    call = convnd.conv_general if "padding" in kwargs and isinstance(kwargs["padding"], tuple) else convnd.conv1d
    with pytest.raises(TypeError):
        call(zeros(1, 8, 1), zeros(1, 3, 1), **kwargs)


def test_errors_leave_the_library_usable():
    with pytest.raises(ValueError):
        convnd.conv1d(zeros(1, 8, 4), zeros(4, 3, 4), groups=0)
    y = convnd.conv1d(np.ones((1, 4, 1), np.float32), np.ones((1, 2, 1), np.float32))
    np.testing.assert_array_equal(y, np.full((1, 3, 1), 2.0, np.float32))


# ---- Argument checks that name the argument (issue #15) -------------------------------------

BAD_ARGUMENTS = [
    # (call, exception, text the message must contain)
    (lambda: convnd.conv1d(None, zeros(1, 3, 1)), TypeError, "input must be an array"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), b"abc"), TypeError, "weight must be an array"),
    (lambda: convnd.conv1d("x", zeros(1, 3, 1)), TypeError, "input must be an array"),
    (lambda: convnd.conv1d(object(), zeros(1, 3, 1)), TypeError, "input must be an array of numbers"),
    (lambda: convnd.conv1d(np.zeros((1, 8, 1), object), zeros(1, 3, 1)), TypeError, "input has dtype object"),
    (lambda: convnd.conv1d(np.array([[["a"]]]), zeros(1, 3, 1)), TypeError, "input has dtype <U1"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), np.zeros((1, 3, 1), np.longdouble)), TypeError,
     f"weight has dtype {np.dtype(np.longdouble)}"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), groups=2**63), ValueError, "groups (9223372036854775808)"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), stride=2**64), ValueError, "stride (18446744073709551616)"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), padding=[-2**63 - 1]), ValueError, "padding"),
    (lambda: convnd.conv_general(zeros(1, 8, 1), zeros(1, 3, 1), input_dilation=2**64), ValueError, "input_dilation"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), device=3), TypeError, "device must be 'cpu' or 'cuda'"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), algorithm=3), TypeError, "algorithm must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), isa=3), TypeError, "isa must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), isa="sse9"), ValueError, "isa must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), isa="sm_90"), ValueError, "isa must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), precision=32), TypeError,
     "precision must be 'exact' or 'tf32', got 32"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), precision=None), TypeError, "precision must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), precision=b"tf32"), TypeError, "precision must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), precision="fast"), ValueError,
     "precision must be 'exact' or 'tf32', got 'fast'"),
    (lambda: convnd.conv_transpose1d(zeros(1, 8, 1), zeros(1, 3, 1), precision="TF32"), ValueError,
     "precision must be 'exact' or 'tf32', got 'TF32'"),
    (lambda: convnd.plan("in=8 c=1 o=1", precision="fp32"), ValueError, "precision must be 'exact' or 'tf32'"),
    (lambda: convnd.plan("in=8 c=1 o=1", precision=True), TypeError, "precision must be"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), threads="2"), TypeError, "threads must be an int"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), threads=2.0), TypeError, "threads must be an int"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), threads=None), TypeError, "threads must be an int"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), budget=2**70), ValueError, "budget"),
    (lambda: convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), budget=[1]), TypeError, "budget must be"),
    (lambda: convnd.plan("in=8 c=1 o=1", threads=2**40), ValueError, "threads (1099511627776)"),
    (lambda: convnd.plan("in=8 c=1 o=1", device=None), TypeError, "device must be"),
    (lambda: convnd.plan(zeros(1, 8, 1), None), TypeError, "pass a problem string"),
    (lambda: convnd.problem_string(zeros(1, 8, 1), "w"), TypeError, "weight must be an array"),
]


@pytest.mark.parametrize("call,exc,text", BAD_ARGUMENTS, ids=[f"bad{i}" for i in range(len(BAD_ARGUMENTS))])
def test_bad_arguments_are_named(call, exc, text):
    with pytest.raises(exc) as e:
        call()
    msg = str(e.value)
    assert text in msg
    assert "incompatible function arguments" not in msg and "\n" not in msg, msg


class _BrokenProducer:
    """Says it exports DLPack, but what it exports is not a DLPack capsule."""

    def __dlpack__(self, *args, **kwargs):
        return "not a capsule"

    def __dlpack_device__(self):
        return (1, 0)


def test_an_array_dlpack_cannot_import_is_named():
    with pytest.raises(TypeError, match="^weight must be an array .* got _BrokenProducer that DLPack cannot import"):
        convnd.conv1d(zeros(1, 8, 1), _BrokenProducer())


@pytest.mark.parametrize("threads", [-1, 4097, 10**6])
def test_thread_counts_are_bounded(threads):
    """threads=10**6 once answered with a MemoryError, or spent seconds failing to start threads."""
    with pytest.raises(ValueError, match=rf"^threads \({threads}\) must be from 0 \(every hardware thread\) to 4096$"):
        convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1), threads=threads)
    with pytest.raises(ValueError, match=r"^threads \("):
        convnd.plan("in=8 c=1 o=1", threads=threads)


def test_the_largest_thread_count_is_accepted():
    # threads is the most a call uses: a problem this small runs on one.
    assert convnd.plan("in=8 c=1 o=1", threads=4096)["threads"] == 1
    # 925M multiply-adds: one thread per 2^18 units of work (multiply-adds plus elements).
    assert 3000 < convnd.plan("n=8 in=56x56 c=64 o=64 k=3x3 pad=1", threads=4096)["threads"] < 4096


def test_dtype_mismatch_names_the_problem():
    with pytest.raises(ValueError, match=r"must match; problem: in=8 c=1 o=1 k=3$"):
        convnd.conv1d(zeros(1, 8, 1), zeros(1, 3, 1, dtype=np.float64))
    with pytest.raises(ValueError, match=r"must match; problem: n=2 in=8x8 c=4 o=3 k=3x3 pad=1 dtype=f16$"):
        convnd.conv2d(zeros(2, 8, 8, 4, dtype=np.float16), zeros(3, 3, 3, 4), padding=1)


def test_rank_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"got 3; input shape \(1, 8, 1\), weight shape \(1, 3, 1\)$"):
        convnd.conv2d(zeros(1, 8, 1), zeros(1, 3, 1))
    with pytest.raises(ValueError, match=r"; input shape \(8, 1\), weight shape \(3, 1\)$"):
        convnd.conv_general(zeros(8, 1), zeros(3, 1))


ALLOCATION_SCRIPT = """
import resource, sys
import numpy as np
import convnd

x = np.zeros((1, 1 << 16, 1), np.float32)
w = np.zeros((1 << 12, 1, 1), np.float32)  # y: 2**28 float32 = 1 GiB
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (512 << 20), hard))
try:
    convnd.conv1d(x, w, threads=1)
    print("COMPLETED")
except MemoryError as e:
    print("MEMORYERROR", e)
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_allocation_failures_name_the_problem():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", ALLOCATION_SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MEMORYERROR "), r.stdout
    assert r.stdout.rstrip().endswith("; problem: in=65536 c=1 o=4096"), r.stdout
