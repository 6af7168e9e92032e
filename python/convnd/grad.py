"""Gradients of convnd's convolutions (``convnd.grad``), like ``torch.nn.grad``.

For a forward call ``y = f(x, w, *args)`` of ``conv_general``, ``conv1d/2d/3d`` or
``conv_transpose1d/2d/3d`` and a cotangent ``dy`` of ``y``'s shape:

* ``<f>_input(input_shape, weight, cotangent, *args)`` returns ``dx = d<y, dy>/dx``, of shape
  ``input_shape``: the exact adjoint in ``x`` (input positions no output reads get 0);
* ``<f>_weight(input, weight_shape, cotangent, *args)`` returns ``dw = d<y, dy>/dw``, of shape
  ``weight_shape``: a reduction over the batch and every output position, bitwise the same for
  any thread count, budget or run.

The arguments after the cotangent are the forward function's, with its names and defaults
(MLX's), and the same keyword-only ``budget``, ``device``, ``threads``, ``algorithm``,
``isa`` and ``precision``. Layouts are convnd's (channels-last): input ``(N, *spatial, C)``,
weight ``(O, *kernel, C / groups)`` (also for transposed convolutions), cotangent
``(N, *out, O)``.
Inputs are NumPy arrays or DLPack producers as for the forward functions; the gradient is a new
NumPy array of the arrays' dtype (bfloat16 as ``ml_dtypes.bfloat16``), or, with
``device="cuda"`` and CUDA arrays, an array on that device that exports DLPack.
``float16``/``bfloat16`` accumulate in ``float32`` and round once; ``float64`` computes in
``float64``.

Unlike ``torch.nn.grad`` (``conv2d_input(input_size, weight, grad_output, ...)``), the shapes
are channels-last and the transposed convolutions have gradients too. Where MLX's input
gradient of a transposed convolution is wrong (``padding > dilation * (K - 1)``) this one is
the adjoint.

Errors are the forward function's: ValueError for an invalid problem or argument value,
including a cotangent whose shape or dtype is not the forward output's and a shape that
disagrees with the array given (each message ends with the gradient's problem string, e.g.
``...; problem: in=8x8 c=3 o=4 k=3x3 dir=bwd_d``, which ``convnd.plan`` and the CLI take),
TypeError for an unsupported dtype or an argument of the wrong type, NotImplementedError for a
valid problem the device does not compute, MemoryError when the budget or the device is too
small.
"""

from __future__ import annotations

import operator as _operator
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as _np

from . import _core
from . import (
    _SPATIAL,
    _KERNEL,
    _array,
    _conv_options,
    _conv_transpose_options,
    _exec_options,
    _general_options,
    _int64,
    _result,
    _shape_of,
)

__all__ = [
    "conv_general_input",
    "conv_general_weight",
    "conv1d_input",
    "conv2d_input",
    "conv3d_input",
    "conv1d_weight",
    "conv2d_weight",
    "conv3d_weight",
    "conv_transpose1d_input",
    "conv_transpose2d_input",
    "conv_transpose3d_input",
    "conv_transpose1d_weight",
    "conv_transpose2d_weight",
    "conv_transpose3d_weight",
]

IntOrSeq = Union[int, Sequence[int]]
Budget = Union[int, str, None]


def _shape(name: str, v: Any) -> list:
    """A shape: a sequence of ints (a tuple, list, torch.Size, 1-D integer array), each within int64."""
    def bad() -> TypeError:
        shape = getattr(v, "shape", None)
        if shape is not None and not isinstance(shape, (int, str)):  # the array itself, most likely
            got = f"an array of shape {tuple(shape)}"
        else:
            text = repr(v)
            got = text if len(text) <= 60 else f"a {type(v).__name__}"
        what = "input" if name == "input_shape" else "weight"
        return TypeError(f"{name} must be a sequence of ints (the {what}'s shape), got {got}")

    if isinstance(v, (str, bytes, bytearray)) or not hasattr(v, "__iter__"):
        raise bad()
    try:
        out = [_operator.index(e) for e in v]
    except TypeError:
        raise bad() from None
    return [_int64(name, e) for e in out]


def _call(api: str, given: Any, given_what: str, shape: Any, shape_name: str, cotangent: Any, opts: dict,
          budget: Budget, device: str, threads: int, algorithm: Optional[str], isa: Optional[str],
          precision: str = "exact") -> Any:
    exec_opts = _exec_options(budget, device, threads, algorithm, isa, precision)
    dims = _shape(shape_name, shape)
    try:
        g, g_dtype = _array(given, given_what)
        dy, dy_dtype = _array(cotangent, "cotangent")
        out = _core.run_grad(api, g, g_dtype, dims, dy, dy_dtype, **exec_opts, **opts)
    except TypeError as e:
        # A dtype convnd does not compute: no problem exists yet, so name the shapes.
        gs, ds = _shape_of(given), _shape_of(cotangent)
        if "convnd computes" in str(e) and gs is not None and ds is not None:
            xs, ws = (tuple(dims), gs) if given_what == "weight" else (gs, tuple(dims))
            raise TypeError(f"{e}; input shape {xs}, weight shape {ws}, cotangent shape {ds}") from None
        raise
    return _result(out)


def conv_general_input(
    input_shape: Sequence[int],
    weight: Any,
    cotangent: Any,
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
    """The gradient of ``convnd.conv_general`` with respect to its input.

    Args:
        input_shape: the input's shape ``(N, *spatial, C)``, a sequence of ints.
        weight: ``(O, *kernel, C / groups)`` array.
        cotangent: ``(N, *out, O)`` array of the weight's dtype: the gradient of the output.
        stride, padding, kernel_dilation, input_dilation, groups, flip: as ``conv_general``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dx`` of shape ``input_shape`` and the weight's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``): the adjoint of ``conv_general(., weight)``
        applied to ``cotangent``.

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``dir=bwd_d``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return _call("conv_general_input", weight, "weight", input_shape, "input_shape", cotangent,
                 _general_options(stride, padding, kernel_dilation, input_dilation, groups, flip),
                 budget, device, threads, algorithm, isa, precision)


def conv_general_weight(
    input: Any,
    weight_shape: Sequence[int],
    cotangent: Any,
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
    """The gradient of ``convnd.conv_general`` with respect to its weight.

    Args:
        input: ``(N, *spatial, C)`` array.
        weight_shape: the weight's shape ``(O, *kernel, C / groups)``, a sequence of ints.
        cotangent: ``(N, *out, O)`` array of the input's dtype: the gradient of the output.
        stride, padding, kernel_dilation, input_dilation, groups, flip: as ``conv_general``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dw`` of shape ``weight_shape`` and the input's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``); bitwise the same for any ``threads`` and
        ``budget``.

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``dir=bwd_w``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return _call("conv_general_weight", input, "input", weight_shape, "weight_shape", cotangent,
                 _general_options(stride, padding, kernel_dilation, input_dilation, groups, flip),
                 budget, device, threads, algorithm, isa, precision)


def _conv_input(rank: int):
    name = f"conv{rank}d_input"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input_shape: Sequence[int],
        weight: Any,
        cotangent: Any,
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
        return _call(name, weight, "weight", input_shape, "input_shape", cotangent,
                     _conv_options(stride, padding, dilation, groups), budget, device, threads, algorithm, isa,
                     precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""The gradient of ``convnd.conv{rank}d`` with respect to its input
    (``torch.nn.grad.conv{rank}d_input``, channels-last).

    Args:
        input_shape: the input's shape ``(N, {dims}, C)``, a sequence of ints.
        weight: ``(O, {kdims}, C / groups)`` array.
        cotangent: ``(N, {dims.replace("L", "P")}, O)`` array of the weight's dtype: the
            gradient of the output.
        stride, padding, dilation, groups: as ``conv{rank}d``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dx`` of shape ``input_shape`` and the weight's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``).

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``dir=bwd_d``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return f


def _conv_weight(rank: int):
    name = f"conv{rank}d_weight"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input: Any,
        weight_shape: Sequence[int],
        cotangent: Any,
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
        return _call(name, input, "input", weight_shape, "weight_shape", cotangent,
                     _conv_options(stride, padding, dilation, groups), budget, device, threads, algorithm, isa,
                     precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""The gradient of ``convnd.conv{rank}d`` with respect to its weight
    (``torch.nn.grad.conv{rank}d_weight``, channels-last).

    Args:
        input: ``(N, {dims}, C)`` array.
        weight_shape: the weight's shape ``(O, {kdims}, C / groups)``, a sequence of ints.
        cotangent: ``(N, {dims.replace("L", "P")}, O)`` array of the input's dtype: the
            gradient of the output.
        stride, padding, dilation, groups: as ``conv{rank}d``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dw`` of shape ``weight_shape`` and the input's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``); bitwise the same for any ``threads`` and
        ``budget``.

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``dir=bwd_w``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return f


def _conv_transpose_input(rank: int):
    name = f"conv_transpose{rank}d_input"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input_shape: Sequence[int],
        weight: Any,
        cotangent: Any,
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
        return _call(name, weight, "weight", input_shape, "input_shape", cotangent,
                     _conv_transpose_options(stride, padding, dilation, output_padding, groups),
                     budget, device, threads, algorithm, isa, precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""The gradient of ``convnd.conv_transpose{rank}d`` with respect to its input.

    The exact adjoint also where MLX's is wrong (``padding > dilation * (K - 1)``).

    Args:
        input_shape: the input's shape ``(N, {dims}, C)``, a sequence of ints.
        weight: ``(O, {kdims}, C / groups)`` array (MLX's layout, as the forward takes it).
        cotangent: ``(N, *out, O)`` array of the weight's dtype: the gradient of the output.
        stride, padding, dilation, output_padding, groups: as ``conv_transpose{rank}d``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dx`` of shape ``input_shape`` and the weight's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``).

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``op=convT ... dir=bwd_d``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return f


def _conv_transpose_weight(rank: int):
    name = f"conv_transpose{rank}d_weight"
    dims, kdims = _SPATIAL[rank], _KERNEL[rank]

    def f(
        input: Any,
        weight_shape: Sequence[int],
        cotangent: Any,
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
        return _call(name, input, "input", weight_shape, "weight_shape", cotangent,
                     _conv_transpose_options(stride, padding, dilation, output_padding, groups),
                     budget, device, threads, algorithm, isa, precision)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""The gradient of ``convnd.conv_transpose{rank}d`` with respect to its weight.

    Args:
        input: ``(N, {dims}, C)`` array.
        weight_shape: the weight's shape ``(O, {kdims}, C / groups)`` (MLX's layout), a
            sequence of ints.
        cotangent: ``(N, *out, O)`` array of the input's dtype: the gradient of the output.
        stride, padding, dilation, output_padding, groups: as ``conv_transpose{rank}d``.
        budget, device, threads, algorithm, isa, precision: see the ``convnd`` package docstring.

    Returns:
        ``dw`` of shape ``weight_shape`` and the input's dtype (a NumPy array, or a CUDA DLPack
        array for CUDA arrays on ``device="cuda"``); bitwise the same for any ``threads`` and
        ``budget``.

    Raises:
        ValueError: invalid problem, or a cotangent of the wrong shape or dtype (the message
            ends with the problem string, ``op=convT ... dir=bwd_w``).
        TypeError, NotImplementedError, MemoryError: see the ``convnd`` package docstring.
    """
    return f


conv1d_input = _conv_input(1)
conv2d_input = _conv_input(2)
conv3d_input = _conv_input(3)
conv1d_weight = _conv_weight(1)
conv2d_weight = _conv_weight(2)
conv3d_weight = _conv_weight(3)
conv_transpose1d_input = _conv_transpose_input(1)
conv_transpose2d_input = _conv_transpose_input(2)
conv_transpose3d_input = _conv_transpose_input(3)
conv_transpose1d_weight = _conv_transpose_weight(1)
conv_transpose2d_weight = _conv_transpose_weight(2)
conv_transpose3d_weight = _conv_transpose_weight(3)
