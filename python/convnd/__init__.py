"""convnd: MLX's conv_general family, correct at any size, in bounded memory.

The functions take MLX's Python signatures and keyword names, and channels-last layouts:
input ``(N, *spatial, C)``, weight ``(O, *kernel, C / groups)``, output ``(N, *out, O)``.
Inputs are NumPy arrays (float32, float16, float64, and bfloat16 through ``ml_dtypes``) or any
DLPack producer (torch, jax, cupy, MLX), strided views included. Outputs are NumPy arrays
(bfloat16 as ``ml_dtypes.bfloat16``); with ``device="cuda"`` and CUDA inputs, an array on that
device that exports DLPack (``torch.from_dlpack(y)`` takes it without a copy).

Every function also takes, keyword-only:

* ``budget``: workspace bytes the algorithm may allocate beyond input, weight and output; an
  int or a string such as ``"64MiB"``. None: ``CONVND_WORKSPACE_BYTES`` or the default
  (256 MiB, or 1/16 of physical memory if that is less).
* ``device``: ``"cpu"`` (default) or ``"cuda"``. A build without CUDA raises
  NotImplementedError for ``"cuda"``.
* ``threads``: the most worker threads, 0 to 4096; 0 (default) means ``CONVND_THREADS`` or
  every hardware thread. A problem too small to share (under 2^18 multiply-adds a thread)
  runs on fewer: waking a thread costs about as much as that much work.
* ``algorithm``: force one algorithm by name (tests, benchmarks); None lets the planner choose.
* ``isa``: the CPU instruction set, ``"generic"``, ``"avx2"``, ``"avx512"``, ``"avx512_bf16"``
  or ``"amx"`` (the last two add bfloat16 kernels); None or ``"auto"`` (default) is the best
  this CPU runs up to ``"avx512"``, and ``"amx"`` for bfloat16 where the CPU has AMX
  (``CONVND_ISA`` may lower it). One the CPU lacks raises NotImplementedError.
* ``precision``: ``"exact"`` (default: float32 products are exact) or ``"tf32"``: float32
  problems on a GPU may use TF32 tensor cores (about 10 bits of mantissa in the products,
  float32 accumulation). Ignored for other dtypes and on the CPU.

Errors: ValueError for an invalid problem or argument value, NotImplementedError for an
unsupported one, MemoryError when the budget or the device is too small, TypeError for an
unsupported dtype or an argument of the wrong type; each message names the argument or ends
with the problem string. The GIL is released while computing, and Ctrl-C stops a long
convolution between tiles (KeyboardInterrupt).

Gradients are in ``convnd.grad`` (``conv2d_input(input_shape, weight, cotangent, ...)``,
``conv2d_weight(input, weight_shape, cotangent, ...)``, and so on for every function here).
"""

from __future__ import annotations

import contextlib as _contextlib
import json as _json
import operator as _operator
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as _np

from . import _core

__all__ = [
    "conv_general",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "plan",
    "problem_string",
    "problem_shapes",
    "has_cuda",
    "default_workspace_budget",
]

__version__ = "0.1.0"

IntOrSeq = Union[int, Sequence[int]]
Budget = Union[int, str, None]

# The most worker threads a call may ask for (as the CLI's --threads): far above any machine's
# hardware threads, low enough that starting them stays quick.
_MAX_THREADS = 4096
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_OPS = (
    "conv_general",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def has_cuda() -> bool:
    """Whether this build of convnd has the CUDA backend."""
    return _core.has_cuda()


def default_workspace_budget() -> int:
    """The default workspace budget in bytes (without ``CONVND_WORKSPACE_BYTES``)."""
    return _core.default_workspace_budget()


# --------------------------------------------------------------------------------------------
# Argument normalisation (MLX's conventions -> per-axis int lists)


def _int64(name: str, v: int) -> int:
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"{name} ({v}) is out of range: convnd takes signed 64-bit integers")
    return v


def _ints(name: str, v: Any) -> list:
    """An int or a sequence of ints as a non-empty list of Python ints (each within int64)."""
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {v!r}")
    try:
        return [_int64(name, _operator.index(v))]
    except TypeError:
        pass
    try:
        out = [_operator.index(e) for e in v]
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {v!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    return [_int64(name, e) for e in out]


def _general_padding(padding: Any) -> Tuple[list, list]:
    """conv_general padding: an int, a sequence of ints (lo = hi), or a (lo, hi) pair of sequences."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        lo, hi = padding
        lo_seq = not isinstance(lo, (str, bytes)) and hasattr(lo, "__len__")
        hi_seq = not isinstance(hi, (str, bytes)) and hasattr(hi, "__len__")
        if lo_seq and hi_seq:
            return _ints("padding (low)", lo), _ints("padding (high)", hi)
        if lo_seq or hi_seq:
            raise TypeError(
                "padding must be an int, a sequence of ints, or a pair (low, high) of sequences, "
                f"got {padding!r}"
            )
    p = _ints("padding", padding)
    return p, p


def _groups(groups: Any) -> int:
    try:
        return _int64("groups", _operator.index(groups))
    except TypeError:
        raise TypeError(f"groups must be an int, got {groups!r}") from None


def _exec_options(budget: Any, device: Any, threads: Any, algorithm: Any, isa: Any,
                  precision: Any = "exact") -> dict:
    """The keyword-only options, checked here so that a wrong one is named (the native layer
    would only say that its signature did not match)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if budget is not None and not isinstance(budget, str):
        if isinstance(budget, bool):
            raise TypeError(f"budget must be an int (bytes), a string such as '64MiB', or None, got {budget!r}")
        try:
            budget = _operator.index(budget)
        except TypeError:
            raise TypeError(
                f"budget must be an int (bytes), a string such as '64MiB', or None, got {budget!r}"
            ) from None
        if budget > _INT64_MAX:
            raise ValueError(f"budget ({budget}) is out of range: at most 2**63 - 1 bytes")
    if isinstance(threads, bool):
        raise TypeError(f"threads must be an int, got {threads!r}")
    try:
        threads = _operator.index(threads)
    except TypeError:
        raise TypeError(f"threads must be an int, got {threads!r}") from None
    if not 0 <= threads <= _MAX_THREADS:
        raise ValueError(f"threads ({threads}) must be from 0 (every hardware thread) to {_MAX_THREADS}")
    if algorithm is not None and not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a name (str) or None, got {algorithm!r}")
    if isa is not None and not isinstance(isa, str):
        raise TypeError(f"isa must be 'auto', 'generic', 'avx2', 'avx512', 'avx512_bf16', 'amx' or None, got {isa!r}")
    if not isinstance(precision, str):
        raise TypeError(f"precision must be 'exact' or 'tf32', got {precision!r}")
    return dict(budget=budget, device=device, threads=threads, algorithm=algorithm, isa=isa, precision=precision)


def _general_options(stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1, flip=False) -> dict:
    lo, hi = _general_padding(padding)
    return dict(
        stride=_ints("stride", stride),
        padding_lo=lo,
        padding_hi=hi,
        dilation=_ints("kernel_dilation", kernel_dilation),
        input_dilation=_ints("input_dilation", input_dilation),
        output_padding=[],
        groups=_groups(groups),
        flip=bool(flip),
    )


def _conv_options(stride=1, padding=0, dilation=1, groups=1) -> dict:
    p = _ints("padding", padding)
    return dict(
        stride=_ints("stride", stride),
        padding_lo=p,
        padding_hi=p,
        dilation=_ints("dilation", dilation),
        input_dilation=[],
        output_padding=[],
        groups=_groups(groups),
        flip=False,
    )


def _conv_transpose_options(stride=1, padding=0, dilation=1, output_padding=0, groups=1) -> dict:
    p = _ints("padding", padding)
    return dict(
        stride=_ints("stride", stride),
        padding_lo=p,
        padding_hi=p,
        dilation=_ints("dilation", dilation),
        input_dilation=[],
        output_padding=_ints("output_padding", output_padding),
        groups=_groups(groups),
        flip=False,
    )


def _options(op: str, args: tuple, kwargs: dict) -> dict:
    if op == "conv_general":
        return _general_options(*args, **kwargs)
    if op in ("conv1d", "conv2d", "conv3d"):
        return _conv_options(*args, **kwargs)
    if op in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        return _conv_transpose_options(*args, **kwargs)
    raise ValueError(f"op must be one of {', '.join(_OPS)}; got {op!r}")


# --------------------------------------------------------------------------------------------
# Arrays


# float16, float32, float64 in native byte order (dtype equality ignores nothing else that matters
# here: a big-endian dtype is not equal to these).
_NATIVE_FLOATS = frozenset(_np.dtype(t) for t in ("float16", "float32", "float64"))


def _array(a: Any, what: str) -> Tuple[Any, Optional[str]]:
    """(an object the native layer can import through DLPack, a dtype override or None).

    NumPy arrays go in as they are, except bfloat16 (ml_dtypes), which NumPy cannot export
    through DLPack: it travels as uint16 bits with the dtype named. Negative strides are
    handled by the native layer (one dense copy). Anything that is neither a NumPy array nor
    a DLPack producer is converted with numpy.asarray.
    """
    if a is None or isinstance(a, (str, bytes, bytearray)):
        raise TypeError(f"{what} must be an array (NumPy, or a DLPack producer such as torch, jax, cupy or MLX), "
                        f"got {type(a).__name__}")
    if isinstance(a, _np.ndarray):
        dt = a.dtype
        # The common case first, by a set lookup: dtype.name costs microseconds (NumPy builds
        # the string on every access), several times a tiny conv's whole run.
        if dt in _NATIVE_FLOATS and _np.little_endian:
            return a, None
        if dt.name == "bfloat16":
            return a.view(_np.uint16), "bf16"
        if dt.name not in ("float16", "float32", "float64"):
            raise TypeError(f"{what} has dtype {a.dtype}; convnd computes float32, float16, bfloat16 and float64")
        if dt.byteorder == ">" or (dt.byteorder == "=" and not _np.little_endian):
            a = a.astype(dt.newbyteorder("<"))
        return a, None
    if hasattr(a, "__dlpack__") or type(a).__name__ == "PyCapsule":  # a producer, or a DLPack capsule
        return a, None
    try:
        arr = _np.asarray(a)
    except Exception as e:  # pragma: no cover - depends on the object
        raise TypeError(f"{what} must be a NumPy array or a DLPack producer, got {type(a).__name__}") from e
    if arr.dtype.kind == "O":
        raise TypeError(f"{what} must be an array of numbers, got {type(a).__name__} (NumPy sees dtype object)")
    return _array(arr, what)


def _shape_of(a: Any) -> Optional[tuple]:
    try:
        return tuple(int(d) for d in a.shape)
    except Exception:
        return None


def _arrays(input: Any, weight: Any, call: Any) -> Any:
    """call(x, x_dtype, w, w_dtype) on the two arrays as the native layer takes them. A dtype
    convnd does not compute is a TypeError that names the argument and the two shapes (no
    problem string exists for such a call)."""
    try:
        x, x_dtype = _array(input, "input")
        w, w_dtype = _array(weight, "weight")
        return call(x, x_dtype, w, w_dtype)
    except TypeError as e:
        xs, ws = _shape_of(input), _shape_of(weight)
        if "convnd computes" in str(e) and xs is not None and ws is not None:
            raise TypeError(f"{e}; input shape {xs}, weight shape {ws}") from None
        raise


def _result(y: _np.ndarray) -> _np.ndarray:
    if not isinstance(y, _np.ndarray):  # a CUDA output: a DLPack array on the device
        return y
    if y.dtype == _np.uint16:  # bfloat16 bits (the native layer never returns integers otherwise)
        import ml_dtypes

        return y.view(ml_dtypes.bfloat16)
    return y


def _call(op: str, input: Any, weight: Any, opts: dict, budget: Budget, device: str, threads: int,
          algorithm: Optional[str], isa: Optional[str], precision: str = "exact") -> _np.ndarray:
    exec_opts = _exec_options(budget, device, threads, algorithm, isa, precision)
    y = _arrays(input, weight,
                lambda x, x_dtype, w, w_dtype: _core.run(op, x, w, x_dtype, w_dtype, **exec_opts, **opts))
    return _result(y)


# --------------------------------------------------------------------------------------------
# The MLX-compatible functions


def conv_general(
    input: Any,
    weight: Any,
    stride: IntOrSeq = 1,
    padding: Union[int, Sequence[int], Tuple[Sequence[int], Sequence[int]]] = 0,
    kernel_dilation: IntOrSeq = 1,
    input_dilation: IntOrSeq = 1,
    groups: int = 1,
    flip: bool = False,
    *,
    budget: Budget = None,
    device: str = "cpu",
    threads: int = 0,
    algorithm: Optional[str] = None,
    isa: Optional[str] = None,
    precision: str = "exact",
) -> _np.ndarray:
    """General convolution over 1, 2 or 3 spatial dimensions (``mlx.core.conv_general``).

    Args:
        input: ``(N, *spatial, C)`` array, 3 to 5 dimensions.
        weight: ``(O, *kernel, C / groups)`` array of the same dtype.
        stride: int or one int per spatial axis (default 1).
        padding: int, a sequence (one per axis, low = high), or a pair ``(low, high)`` of
            sequences. Negative values crop the (input-dilated) input.
        kernel_dilation: int or per axis (default 1).
        input_dilation: int or per axis (default 1): ``id - 1`` zeros between input samples.
        groups: int dividing both C and O (default 1).
        flip: True computes a convolution (kernel flipped), False a cross-correlation.
        budget, device, threads, algorithm, isa, precision: see the package docstring.

    Returns:
        A NumPy array (a CUDA DLPack array for CUDA inputs on ``device="cuda"``) ``(N, *out, O)`` of
        the input's dtype, where per axis
        ``out = floor((id*(I-1)+1 + lo + hi - (kd*(K-1)+1)) / stride) + 1``.

    Raises:
        ValueError: the problem is invalid (message ends with the problem string).
        NotImplementedError: valid but not implemented on ``device``.
        MemoryError: more than the budget or the device allows.
    """
    return _call("conv_general", input, weight,
                 _general_options(stride, padding, kernel_dilation, input_dilation, groups, flip),
                 budget, device, threads, algorithm, isa, precision)


# The spatial axes of x and of w by rank, as the docstrings name them.
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "K", 2: "KH, KW", 3: "KD, KH, KW"}


def _conv(rank: int):
    name = f"conv{rank}d"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input: Any,
        weight: Any,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        *,
        budget: Budget = None,
        device: str = "cpu",
        threads: int = 0,
        algorithm: Optional[str] = None,
        isa: Optional[str] = None,
        precision: str = "exact",
    ) -> _np.ndarray:
        return _call(name, input, weight, _conv_options(stride, padding, dilation, groups),
                     budget, device, threads, algorithm, isa, precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""{rank}-D cross-correlation (``mlx.core.{name}``) with symmetric padding.

    Args:
        input: ``(N, {dims}, C)`` array.
        weight: ``(O, {kdims}, C / groups)`` array of the same dtype.
        stride: int or one int per spatial axis (default 1).
        padding: symmetric zero padding, int or per axis (default 0).
        dilation: kernel dilation, int or per axis (default 1).
        groups: int dividing both C and O (default 1).
        budget, device, threads, algorithm, isa, precision: see the package docstring.

    Returns:
        A NumPy array (a CUDA DLPack array for CUDA inputs on ``device="cuda"``)
        ``(N, {dims.replace("L", "P")}, O)`` of the input's dtype.

    Raises:
        ValueError, NotImplementedError, MemoryError: see the package docstring.
    """
    return f


def _conv_transpose(rank: int):
    name = f"conv_transpose{rank}d"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input: Any,
        weight: Any,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        output_padding: IntOrSeq = 0,
        groups: int = 1,
        *,
        budget: Budget = None,
        device: str = "cpu",
        threads: int = 0,
        algorithm: Optional[str] = None,
        isa: Optional[str] = None,
        precision: str = "exact",
    ) -> _np.ndarray:
        return _call(name, input, weight,
                     _conv_transpose_options(stride, padding, dilation, output_padding, groups),
                     budget, device, threads, algorithm, isa, precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""{rank}-D transposed convolution (``mlx.core.{name}``).

    The adjoint (gradient with respect to the input) of ``conv{rank}d`` with the same stride,
    padding, dilation and groups; PyTorch's definition, also where MLX differs (padding larger
    than ``dilation * (K - 1)``, groups in 3-D, float64). The weight keeps MLX's layout.

    Args:
        input: ``(N, {dims}, C)`` array.
        weight: ``(O, {kdims}, C / groups)`` array of the same dtype.
        stride: int or per axis (default 1).
        padding: symmetric padding removed from the output, int or per axis, >= 0.
        dilation: kernel dilation, int or per axis (default 1).
        output_padding: extra output at the high end, ``0 <= output_padding < max(stride, dilation)``.
        groups: int dividing both C and O (default 1).
        budget, device, threads, algorithm, isa, precision: see the package docstring.

    Returns:
        A NumPy array (a CUDA DLPack array for CUDA inputs on ``device="cuda"``) ``(N, *out, O)``
        with, per axis,
        ``out = (I - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1``.

    Raises:
        ValueError, NotImplementedError, MemoryError: see the package docstring.
    """
    return f


conv1d = _conv(1)
conv2d = _conv(2)
conv3d = _conv(3)
conv_transpose1d = _conv_transpose(1)
conv_transpose2d = _conv_transpose(2)
conv_transpose3d = _conv_transpose(3)


# --------------------------------------------------------------------------------------------
# Problems and plans


def _problem(problem: Any, weight: Any, args: tuple, op: str, kwargs: dict):
    if isinstance(problem, str):
        if weight is not None or args or kwargs:
            raise TypeError("a problem string takes no weight or convolution arguments")
        if op != "conv_general":
            raise TypeError("a problem string names its operation itself (op=conv or op=convT)")
        return _core.parse_problem(problem)
    if weight is None:
        raise TypeError("pass a problem string, or the input and weight arrays")
    opts = _options(op, args, kwargs)
    return _arrays(problem, weight,
                   lambda x, x_dtype, w, w_dtype: _core.problem_for(op, x, w, x_dtype, w_dtype, **opts))


def problem_string(problem: Any, weight: Any = None, *args: Any, op: str = "conv_general", **kwargs: Any) -> str:
    """The canonical problem string (see problem-strings.md) of a call, validated.

    ``problem_string(x, w, stride=2, op="conv2d")`` describes ``conv2d(x, w, stride=2)``;
    ``op`` names any convnd function and the remaining arguments are that function's.
    ``problem_string("in=8 c=1 o=1 k=3")`` returns the canonical form of a problem string.
    Only the arrays' shapes and dtypes are read.

    Raises:
        ValueError: the problem is invalid or the string malformed.
    """
    return str(_problem(problem, weight, args, op, kwargs))


def problem_shapes(problem: Any, weight: Any = None, *args: Any, op: str = "conv_general",
                   **kwargs: Any) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
    """The shapes ``(input, weight, output)`` of a problem, given as for ``problem_string``."""
    return _problem(problem, weight, args, op, kwargs).shapes


def plan(
    problem: Any,
    weight: Any = None,
    *args: Any,
    op: str = "conv_general",
    budget: Budget = None,
    device: str = "cpu",
    threads: int = 0,
    algorithm: Optional[str] = None,
    isa: Optional[str] = None,
    precision: str = "exact",
    **kwargs: Any,
) -> dict:
    """The plan convnd would run for a problem, as a dict (``Plan::to_json``).

    The problem is either a problem string (``plan("op=convT in=5160 c=1 o=1 k=4096 stride=1024")``)
    or a call: ``plan(x, w, *args, op="conv2d", **kwargs)`` plans ``conv2d(x, w, *args, **kwargs)``;
    ``op`` defaults to ``"conv_general"`` and may name any convnd function. Only the arrays'
    shapes and dtypes are read, nothing is computed.

    Returns:
        A dict with keys ``problem`` (canonical string), ``direction`` (``fwd``, ``bwd_d`` or
        ``bwd_w``), ``backend``, ``algorithm``, ``via`` (the algorithm it runs through, e.g.
        the forward algorithm an input gradient uses; empty if none), ``isa`` (the instruction
        set its kernels run: ``generic``, ``avx2``, ``avx512`` or ``sm_90``), ``workspace_bytes``,
        ``budget_bytes``, ``index_bits``, ``threads``, ``config`` (a dict: every field of the
        algorithm's configuration) and ``rejected`` (a list of ``{"algorithm", "reason"}``: why
        faster algorithms said no). A problem string may carry ``dir=bwd_d`` or ``dir=bwd_w``
        (the plan of a ``convnd.grad`` function; its errors name that string). A plan that
        multiplies float32 as TF32 (``precision="tf32"`` on a GPU, where the chosen algorithm
        has TF32 kernels) also has ``precision: "tf32"``, and ``tf32: 1`` in ``config``.

    Raises:
        ValueError, NotImplementedError, MemoryError: as the convolution itself would.
    """
    opts = _exec_options(budget, device, threads, algorithm, isa, precision)
    p = _problem(problem, weight, args, op, kwargs)
    return _json.loads(_core.plan_json(p, **opts))


@_contextlib.contextmanager
def cuda_stream(stream: Any):
    """Enqueues this thread's convnd CUDA calls inside the ``with`` block on ``stream``.

    ``stream`` is a ``cudaStream_t`` as an int (0: none; 1: the legacy default stream,
    ``cudaStreamLegacy``), or an object with a ``cuda_stream`` attribute (``torch.cuda.Stream``,
    ``cupy.cuda.Stream``; PyTorch's default stream, handle 0, is the legacy default stream), or
    None (no stream: each call waits for its result, as outside the block). On a stream, a
    call whose tensors are all dense device arrays only enqueues its work there and returns
    (no synchronisation, no progress reports:
    Ctrl-C does not interrupt it); its output is allocated in that stream's order. Host or
    strided arrays are staged and waited for on the stream. The caller orders everything else,
    e.g. ``with convnd.cuda_stream(torch.cuda.current_stream()):`` in PyTorch code."""
    if stream is None:
        ptr = 0
    elif hasattr(stream, "cuda_stream"):
        # A stream object's handle 0 is the legacy default stream (PyTorch's default stream):
        # given to convnd as cudaStreamLegacy (1), a stream to enqueue on, since 0 means none.
        ptr = int(stream.cuda_stream) or 1
    elif isinstance(stream, int) and not isinstance(stream, bool):
        ptr = stream
    else:
        raise TypeError(f"stream must be a cudaStream_t (int), an object with .cuda_stream, or None; got {stream!r}")
    if ptr < 0:
        raise ValueError(f"stream ({ptr}) must be a cudaStream_t, not negative")
    previous = _core.set_cuda_stream(ptr)
    try:
        yield
    finally:
        _core.set_cuda_stream(previous)


def __getattr__(name: str) -> Any:
    # The framework adapters load on first use (``convnd.torch``, ``convnd.mlx``), so that
    # ``import convnd`` imports neither framework.
    if name in ("torch", "mlx"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The gradients (imported last: convnd.grad uses the helpers above).
from . import grad  # noqa: E402
