"""convnd for MLX (>= 0.32): ``mlx.core``'s and ``mlx.nn``'s convolutions, computed by convnd.

* Functions ``conv_general``, ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d`` with
  ``mlx.core``'s signatures (``stream=`` included) and layouts: input ``(N, *spatial, C)``,
  weight ``(O, *kernel, C / groups)`` for every one of them (MLX's transposed weight is
  ``(C_out, *kernel, C_in / groups)``, the same), output ``(N, *out, O)``. They return lazy
  ``mlx.core.array`` s, like MLX's own. Keyword-only ``budget``, ``threads``, ``algorithm``
  and ``isa`` are convnd's (see the ``convnd`` package docstring).
* Modules ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``: subclasses of the ``mlx.nn`` ones
  with the same constructor, parameters (``weight``, ``bias``), initialisation and state; only
  the convolution runs in convnd. ``convert(model)`` turns every ``mlx.nn`` convolution of a
  model into its convnd class in place (the same module objects and parameter arrays) and
  returns the model.
* Transformations: each convolution is an MLX primitive of the extension ``convnd._mlx_ext``
  whose vjp and jvp are convnd's gradient primitives (themselves differentiable), so
  ``mx.grad``, ``mx.vjp``, ``mx.jvp``, ``nn.value_and_grad`` and ``mx.compile`` work, to any
  order. ``mx.vmap`` is not implemented.
* Where it runs: on MLX's CPU stream (``stream=None`` is the CPU's default stream whatever the
  default device is; a GPU stream raises). The arrays are read and written in place.
* Semantics are convnd's (``docs/semantics.md``): where MLX is wrong or refuses (transposed
  convs with ``padding > dilation * (K - 1)``, groups in 3-D, float64, large transposed convs
  with stride > 1, whose unfold MLX cannot allocate) convnd gives PyTorch's answer.

Importing this module imports mlx; ``import convnd`` alone imports no framework. The
extension is built with the package when MLX is importable by the Python that builds it
(``pip install --no-build-isolation .``) and works with that MLX version only.
"""

from __future__ import annotations

import re as _re
from typing import Any, Optional, Sequence, Tuple, Union

_MIN_MLX = (0, 32)
_NEED = ".".join(map(str, _MIN_MLX))
_REBUILD = ("pip install --no-build-isolation --force-reinstall <convnd source> in an environment "
            "that has the mlx to use")


def _import_mlx():
    try:
        import mlx.core as mx
        import mlx.nn as nn
    except ImportError as e:
        raise ImportError(
            f"convnd.mlx needs MLX >= {_NEED}, which is not installed "
            f"(pip install 'mlx[cpu]>={_NEED}' on Linux, 'mlx>={_NEED}' on macOS)"
        ) from e
    m = _re.match(r"(\d+)\.(\d+)", mx.__version__)
    if m is None or (int(m.group(1)), int(m.group(2))) < _MIN_MLX:
        raise ImportError(f"convnd.mlx needs MLX >= {_NEED}; this is MLX {mx.__version__} "
                          f"(pip install -U 'mlx[cpu]>={_NEED}')")
    return mx, nn


def _import_extension(mx):
    try:
        from . import _mlx_ext
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == f"{__package__}._mlx_ext":
            raise ImportError(
                "this convnd was built without its MLX extension (mlx was not importable when the "
                f"package was built); rebuild it with MLX {mx.__version__} present: {_REBUILD}"
            ) from e
        raise ImportError(f"convnd's MLX extension does not load with MLX {mx.__version__} ({e}); "
                          f"rebuild convnd: {_REBUILD}") from e
    base = _re.match(r"\d+\.\d+\.\d+", mx.__version__)
    if base is None or base.group(0) != _mlx_ext.mlx_version:
        raise ImportError(f"convnd's MLX extension was built against MLX {_mlx_ext.mlx_version}, and this is "
                          f"MLX {mx.__version__} (MLX's C++ ABI changes between releases); rebuild convnd: "
                          f"{_REBUILD}")
    try:
        _mlx_ext.accepts_arrays(mx.array(0.0))
    except TypeError as e:
        raise ImportError("convnd's MLX extension and mlx.core were built with incompatible nanobind versions "
                          f"(an mlx.core.array does not convert); rebuild convnd with the nanobind that "
                          f"MLX {mx.__version__} was built with: {_REBUILD}") from e
    return _mlx_ext


mx, nn = _import_mlx()
_ext = _import_extension(mx)

from . import (  # noqa: E402
    _conv_options,
    _conv_transpose_options,
    _exec_options,
    _general_options,
)

__all__ = [
    "conv_general",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "convert",
]

IntOrSeq = Union[int, Sequence[int]]
Budget = Union[int, str, None]


# --------------------------------------------------------------------------------------------
# Functions


def _call(api: str, input: Any, weight: Any, opts: dict, stream: Any, budget: Budget, threads: int,
          algorithm: Optional[str], isa: Optional[str]) -> "mx.array":
    run = _exec_options(budget, "cpu", threads, algorithm, isa)
    del run["device"], run["precision"]  # MLX's stream is the CPU, where float32 is always exact
    x = input if isinstance(input, mx.array) else mx.array(input)
    w = weight if isinstance(weight, mx.array) else mx.array(weight)
    return _ext.conv(api, x, w, **opts, **run, stream=stream)


def conv_general(
    input: "mx.array",
    weight: "mx.array",
    /,
    stride: IntOrSeq = 1,
    padding: Union[int, Sequence[int], Tuple[Sequence[int], Sequence[int]]] = 0,
    kernel_dilation: IntOrSeq = 1,
    input_dilation: IntOrSeq = 1,
    groups: int = 1,
    flip: bool = False,
    *,
    stream: Any = None,
    budget: Budget = None,
    threads: int = 0,
    algorithm: Optional[str] = None,
    isa: Optional[str] = None,
) -> "mx.array":
    """``mlx.core.conv_general``, computed by convnd.

    Args:
        input: ``(N, *spatial, C)`` array, 1 to 3 spatial axes.
        weight: ``(O, *kernel, C / groups)`` array of the same dtype.
        stride: int or one per spatial axis (default 1).
        padding: int, a sequence (one per axis, low = high), or a pair ``(low, high)`` of
            sequences. Negative values crop the (input-dilated) input.
        kernel_dilation, input_dilation: int or per axis (default 1).
        groups: int dividing both C and O (default 1).
        flip: True computes a convolution (kernel flipped), False a cross-correlation.
        stream: an ``mlx.core`` CPU stream or device, or None (the CPU's default stream).
        budget, threads, algorithm, isa: see the ``convnd`` package docstring.

    Returns:
        A lazy ``mlx.core.array`` ``(N, *out, O)`` of the input's dtype.

    Raises:
        ValueError: the problem is invalid (the message ends with the problem string).
        TypeError: a dtype convnd does not compute (float32, float16, bfloat16, float64).
        MemoryError: from evaluation, when no plan fits the workspace budget or memory.
    """
    return _call("conv_general", input, weight,
                 _general_options(stride, padding, kernel_dilation, input_dilation, groups, flip),
                 stream, budget, threads, algorithm, isa)


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "K", 2: "KH, KW", 3: "KD, KH, KW"}


def _conv(rank: int):
    name = f"conv{rank}d"

    def f(
        input: "mx.array",
        weight: "mx.array",
        /,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        *,
        stream: Any = None,
        budget: Budget = None,
        threads: int = 0,
        algorithm: Optional[str] = None,
        isa: Optional[str] = None,
    ) -> "mx.array":
        return _call(name, input, weight, _conv_options(stride, padding, dilation, groups),
                     stream, budget, threads, algorithm, isa)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""``mlx.core.{name}``, computed by convnd: a {rank}-D cross-correlation.

    Args:
        input: ``(N, {_SPATIAL[rank]}, C)`` array.
        weight: ``(O, {_KERNEL[rank]}, C / groups)`` array of the same dtype.
        stride, padding (symmetric), dilation: int or per axis; groups: int (default 1).
        stream, budget, threads, algorithm, isa: see ``conv_general``.

    Returns:
        A lazy ``mlx.core.array`` ``(N, *out, O)``.
    """
    return f


def _conv_transpose(rank: int):
    name = f"conv_transpose{rank}d"

    def f(
        input: "mx.array",
        weight: "mx.array",
        /,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        output_padding: IntOrSeq = 0,
        groups: int = 1,
        *,
        stream: Any = None,
        budget: Budget = None,
        threads: int = 0,
        algorithm: Optional[str] = None,
        isa: Optional[str] = None,
    ) -> "mx.array":
        return _call(name, input, weight,
                     _conv_transpose_options(stride, padding, dilation, output_padding, groups),
                     stream, budget, threads, algorithm, isa)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""``mlx.core.{name}``, computed by convnd: a {rank}-D transposed convolution.

    The adjoint of ``conv{rank}d`` with the same stride, padding, dilation and groups, split
    into stride phases (no work on inserted zeros, no unfold); PyTorch's answer also where
    MLX's differs (``padding > dilation * (K - 1)``).

    Args:
        input: ``(N, {_SPATIAL[rank]}, C)`` array.
        weight: ``(O, {_KERNEL[rank]}, C / groups)`` array of the same dtype (MLX's layout).
        stride, padding, dilation, output_padding: int or per axis,
            ``0 <= output_padding < max(stride, dilation)``; groups: int (default 1).
        stream, budget, threads, algorithm, isa: see ``conv_general``.

    Returns:
        A lazy ``mlx.core.array`` ``(N, *out, O)``, per axis
        ``out = (I - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1``.
    """
    return f


conv1d = _conv(1)
conv2d = _conv(2)
conv3d = _conv(3)
conv_transpose1d = _conv_transpose(1)
conv_transpose2d = _conv_transpose(2)
conv_transpose3d = _conv_transpose(3)


# --------------------------------------------------------------------------------------------
# Modules: the mlx.nn classes with convnd's convolution. Only __call__ differs, so parameters,
# initialisation, repr and saved weights are MLX's.


def _module(base, conv, transposed: bool):
    def __call__(self, x):
        groups = getattr(self, "groups", 1)
        if transposed:
            y = conv(x, self.weight, self.stride, self.padding, self.dilation, self.output_padding, groups)
        else:
            y = conv(x, self.weight, self.stride, self.padding, self.dilation, groups)
        if "bias" in self:
            y = y + self.bias
        return y

    cls = type(base.__name__, (base,), {
        "__call__": __call__,
        "__module__": __name__,
        "__doc__": f"``mlx.nn.{base.__name__}`` with the convolution computed by convnd "
                   f"(``convnd.mlx.{conv.__name__}``): the same constructor, parameters and state.",
    })
    return cls


Conv1d = _module(nn.Conv1d, conv1d, False)
Conv2d = _module(nn.Conv2d, conv2d, False)
Conv3d = _module(nn.Conv3d, conv3d, False)
ConvTranspose1d = _module(nn.ConvTranspose1d, conv_transpose1d, True)
ConvTranspose2d = _module(nn.ConvTranspose2d, conv_transpose2d, True)
ConvTranspose3d = _module(nn.ConvTranspose3d, conv_transpose3d, True)

_CONVERSIONS = {
    nn.Conv1d: Conv1d,
    nn.Conv2d: Conv2d,
    nn.Conv3d: Conv3d,
    nn.ConvTranspose1d: ConvTranspose1d,
    nn.ConvTranspose2d: ConvTranspose2d,
    nn.ConvTranspose3d: ConvTranspose3d,
}


def convert(model: "nn.Module") -> "nn.Module":
    """Makes every ``mlx.nn`` convolution of ``model`` (the model itself included) compute with
    convnd, in place, and returns the model.

    Each ``mlx.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` (exactly those classes, not
    subclasses of them) becomes an instance of its ``convnd.mlx`` subclass: the same object,
    with the same parameter arrays, so optimizer state and references stay valid.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert takes an mlx.nn.Module, got {type(model).__name__}")
    for _, m in model.named_modules():
        cls = _CONVERSIONS.get(type(m))
        if cls is not None:
            m.__class__ = cls
    return model
