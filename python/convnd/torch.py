"""convnd for PyTorch (>= 2.4): ``torch.nn.functional``'s and ``torch.nn``'s convolutions, computed by convnd.

* Functions ``conv1d/2d/3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``
  and ``conv_transpose1d/2d/3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
  groups=1, dilation=1)`` with ``torch.nn.functional``'s signatures, layouts ``(N, C, *spatial)``
  (or unbatched ``(C, *spatial)``) and weight shapes (``(O, C / groups, *kernel)``; transposed:
  ``(C, O / groups, *kernel)``); ``padding="same"`` / ``"valid"`` for the forward ones.
* Modules ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``: subclasses of the ``torch.nn`` ones
  with the same constructor (``padding_mode`` included), parameters and state dict; only the
  convolution runs in convnd. ``convert(model)`` turns every ``torch.nn`` convolution of a model
  into its convnd class in place (the same module objects and parameters) and returns the model.
* Autograd: the convolutions are ``torch.library`` custom operators (``convnd::conv``,
  ``convnd::conv_input_grad``, ``convnd::conv_weight_grad``) with fake implementations, so
  ``torch.compile(fullgraph=True)`` traces them without a graph break; their gradients are
  convnd's own (``convnd.grad``), and the gradient operators have gradients too (double
  backward). In plain eager execution the implementations are called without the dispatcher
  (through a ``torch.autograd.Function`` with the same backward when a gradient is needed);
  tracing, modes, transforms and the profiler see the operators. Under ``torch.autocast`` the
  input, weight and bias are cast to the autocast dtype first, as ``torch.nn.functional.conv*d``
  is.
* Layouts: convnd computes channels-last. A ``channels_last`` (``channels_last_3d``) tensor
  reaches the engine without a copy, and the output is returned as a ``channels_last`` view of
  the engine's ``(N, *spatial, O)`` result, also without a copy; a channels-first (contiguous)
  input is transposed once, by PyTorch, before the call. Weights are small and are laid out for
  convnd (``(O, *kernel, C / groups)``) on every call.
* Devices: CPU tensors run on convnd's CPU backend with ``torch.get_num_threads()`` threads;
  CUDA tensors on its CUDA backend (a build with CUDA), on the tensor's device.

Importing this module imports torch; ``import convnd`` alone imports no framework.
"""

import functools as _functools
import re as _re
import weakref as _weakref
from typing import Any, List, Optional, Sequence, Tuple, Union

_MIN_TORCH = (2, 4)


def _import_torch():
    need = ".".join(map(str, _MIN_TORCH))
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"convnd.torch needs PyTorch >= {need}, which is not installed (pip install 'torch>={need}')"
        ) from e
    m = _re.match(r"(\d+)\.(\d+)", torch.__version__)
    if m is None or (int(m.group(1)), int(m.group(2))) < _MIN_TORCH:
        raise ImportError(
            f"convnd.torch needs PyTorch >= {need}; this is PyTorch {torch.__version__} "
            f"(pip install -U 'torch>={need}')"
        )
    return torch


torch = _import_torch()
# The private capsule import (see _tensor_of); None where this torch has no such function.
_from_capsule = getattr(torch._C, "_from_dlpack", None)
import numpy as _np  # noqa: E402
import torch.nn.functional as _F  # noqa: E402

import convnd as _convnd  # noqa: E402
import convnd.grad as _grad  # noqa: E402
from convnd import _core  # noqa: E402

__all__ = [
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
Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------
# The engine call: torch tensors (channels-last, convnd's layouts) in, a torch tensor out.
#
# Each call is a convnd function's: conv_general or conv_transposeNd, or one of their
# convnd.grad gradients. It goes to the native layer directly, as the MLX adapter's calls do,
# since the public function's per-call work (normalising the arguments, looking at the arrays)
# costs more than a tiny convolution: the arguments are normalised by convnd's own functions
# (which name a bad value), memoised, since a model makes the same few calls over and over, and
# the tensors go as DLPack capsules (torch.utils.dlpack.to_dlpack: the capsule that
# Tensor.__dlpack__() returns, without that method's Python-level checks).

_to_dlpack = torch.utils.dlpack.to_dlpack


def _engine_args(p: tuple, rank: int) -> Tuple[str, tuple]:
    """The convnd function of an operator's parameters p and its arguments after the arrays
    (hashable): conv_general's (stride, (lo, hi), kernel_dilation, input_dilation, groups) or
    conv_transposeNd's (stride, padding, dilation, output_padding, groups)."""
    stride, padding_lo, padding_hi, dilation, output_padding, groups, transposed = p
    if transposed:
        return (f"conv_transpose{rank}d",
                (tuple(stride), tuple(padding_lo), tuple(dilation), tuple(output_padding), groups))
    return "conv_general", (tuple(stride), (tuple(padding_lo), tuple(padding_hi)), tuple(dilation), 1, groups)


@_functools.lru_cache(maxsize=1024)
def _native_call(api: str, args: tuple, device: str, threads: int) -> Any:
    """The native call ``api(arrays..., *args, device=device, threads=threads)`` with its options
    converted once (_core.Call: each run then takes the arrays alone)."""
    build = _convnd._general_options if api.startswith("conv_general") else _convnd._conv_transpose_options
    return _core.Call(api, **build(*args), **_convnd._exec_options(None, device, threads, None, None))


def _tensor_of(y: Any, dtype: "torch.dtype") -> Tensor:
    """A convnd result of `dtype` as a torch tensor, without a copy."""
    if not isinstance(y, _np.ndarray):
        # A CUDA result, written in the order of PyTorch's current stream: its capsule, since
        # from_dlpack given the array would look the current stream up again (5 us) to hand it
        # to a producer that has nothing to wait for. torch.from_dlpack stopped taking capsules
        # (2.11: "'PyCapsule' object has no attribute '__dlpack__'"); torch._C._from_dlpack,
        # which it calls, still does; without it, the array goes through the public call.
        # Built against an older nanobind (2.x), the engine's device array is itself the
        # capsule (a framework-less ndarray casts to one there).
        capsule = y if type(y).__name__ == "PyCapsule" else None
        if _from_capsule is not None:
            return _from_capsule(capsule if capsule is not None else y.__dlpack__())
        return torch.utils.dlpack.from_dlpack(capsule) if capsule is not None else torch.from_dlpack(y)
    if dtype == torch.bfloat16:  # NumPy has none: the bits come as uint16 (ml_dtypes.bfloat16 from the public API)
        return torch.from_numpy(y.view(_np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(y)


def _native(api: str, args: tuple, a: Tensor, b: Tensor, shape: Optional[List[int]], device: str,
            threads: int) -> Any:
    """The native call of _engine (below) on `device`."""
    try:
        call = _native_call(api, args, device, threads)
        if shape is None:
            return call.run(_to_dlpack(a), _to_dlpack(b))
        return call.run_grad(_to_dlpack(a), shape, _to_dlpack(b))
    except TypeError:  # a dtype convnd does not compute: the public function's error names the shapes too
        if shape is None:
            return getattr(_convnd, api)(a, b, *args, device=device, threads=threads)
        arrays = (shape, a, b) if api.endswith("_input") else (a, shape, b)
        return getattr(_grad, api)(*arrays, *args, device=device, threads=threads)


def _engine(api: str, args: tuple, a: Tensor, b: Tensor, shape: Optional[List[int]] = None) -> Tensor:
    """convnd's `api` on contiguous tensors of one device, as a torch tensor of a's dtype:
    ``api(a, b, *args)`` for a forward function (a = x, b = w), or with `shape` a gradient,
    ``api(shape, a, b, *args)`` (``*_input``: a = w) or ``api(a, shape, b, *args)``
    (``*_weight``: a = x), b being the cotangent."""
    if a.is_cpu:
        return _tensor_of(_native(api, args, a, b, shape, "cpu", torch.get_num_threads()), a.dtype)
    device = a.device
    if device.type != "cuda":
        raise NotImplementedError(f"convnd.torch computes on CPU and CUDA tensors, got a tensor on {device}")
    return _tensor_of(_on_cuda_device(device, lambda: _native(api, args, a, b, shape, "cuda", 0)), a.dtype)


def _on_cuda_device(device: "torch.device", run) -> Any:
    """run() (a native call) on `device` and PyTorch's current stream there."""
    # The engine plans for the current device: make it the tensors' (usually it is already).
    if _current_cuda_device() == device.index:
        return _on_current_stream(run, device.index)
    with torch.cuda.device(device):
        return _on_current_stream(run, device.index)


# PyTorch's current device and raw current stream (what its generated code reads: a
# microsecond less each than torch.cuda.current_device() and current_stream(), which build
# Python objects); the public functions where a build lacks them.
_current_cuda_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda index: torch.cuda.current_stream(index).cuda_stream)


def _on_current_stream(run, index: int) -> Any:
    # PyTorch's current stream: the engine enqueues its work there and returns without
    # synchronising (its output is allocated in that stream's order), as a native op does.
    # (convnd.cuda_stream's body, without the context manager's cost.)
    # PyTorch's default stream is the legacy default stream, raw handle 0, which to the engine
    # means "no stream: wait for the result". It goes as cudaStreamLegacy (1) instead: the
    # same stream, enqueued on without a synchronisation per call.
    previous = _core.set_cuda_stream(_raw_stream(index) or 1)
    try:
        return run()
    finally:
        _core.set_cuda_stream(previous)


def _dense(t: Tensor) -> Tensor:
    # Contiguous: one PyTorch copy if not already (the engine would copy a strided view itself,
    # more slowly). A tensor that requires grad goes as it is: to_dlpack takes it, and the
    # engine only reads it.
    return t.contiguous()


def _out_spatial(in_spatial, kernel, stride, padding_lo, padding_hi, dilation, output_padding, transposed):
    """Output extents (symbolic ints welcome) per docs/semantics.md."""
    if transposed:
        return [(i - 1) * s - 2 * p + d * (k - 1) + op + 1
                for i, k, s, p, d, op in zip(in_spatial, kernel, stride, padding_lo, dilation, output_padding)]
    return [(i + lo + hi - d * (k - 1) - 1) // s + 1
            for i, k, s, lo, hi, d in zip(in_spatial, kernel, stride, padding_lo, padding_hi, dilation)]


def _out_shape(x: Tensor, w: Tensor, stride, padding_lo, padding_hi, dilation, output_padding, transposed):
    spatial = _out_spatial(x.shape[1:-1], w.shape[1:-1], stride, padding_lo, padding_hi, dilation,
                           output_padding, transposed)
    return [x.shape[0], *spatial, w.shape[0]]


# The convolution's parameters, in every operator's schema (convnd's layouts: x [N, *spatial, C],
# w [O, *kernel, C/g] also when transposed, y [N, *out, O]). A transposed convolution pads
# symmetrically: padding_lo is its padding and padding_hi is unused.
_PARAMS = ("SymInt[] stride, SymInt[] padding_lo, SymInt[] padding_hi, SymInt[] dilation, "
           "SymInt[] output_padding, SymInt groups, bool transposed")


def _conv_impl(x, w, stride, padding_lo, padding_hi, dilation, output_padding, groups, transposed):
    if x.shape[0] == 0:  # convnd takes n >= 1; an empty batch has an empty output
        return x.new_empty(_out_shape(x, w, stride, padding_lo, padding_hi, dilation, output_padding, transposed))
    api, args = _engine_args((stride, padding_lo, padding_hi, dilation, output_padding, groups, transposed),
                             x.dim() - 2)
    return _engine(api, args, _dense(x), _dense(w))


def _input_grad_impl(dy, w, input_shape, *p):
    if input_shape[0] == 0:
        return w.new_zeros(input_shape)
    api, args = _engine_args(p, len(input_shape) - 2)
    return _engine(api + "_input", args, _dense(w), _dense(dy), list(input_shape))


def _weight_grad_impl(dy, x, weight_shape, *p):
    if x.shape[0] == 0:
        return x.new_zeros(weight_shape)
    api, args = _engine_args(p, x.dim() - 2)
    return _engine(api + "_weight", args, _dense(x), _dense(dy), list(weight_shape))


_conv_op = torch.library.custom_op(
    "convnd::conv", _conv_impl, mutates_args=(), schema=f"(Tensor x, Tensor w, {_PARAMS}) -> Tensor")
_input_grad_op = torch.library.custom_op(
    "convnd::conv_input_grad", _input_grad_impl, mutates_args=(),
    schema=f"(Tensor dy, Tensor w, SymInt[] input_shape, {_PARAMS}) -> Tensor")
_weight_grad_op = torch.library.custom_op(
    "convnd::conv_weight_grad", _weight_grad_impl, mutates_args=(),
    schema=f"(Tensor dy, Tensor x, SymInt[] weight_shape, {_PARAMS}) -> Tensor")


# Fake (meta) implementations: empty tensors of the outputs' shapes, dtypes, devices and strides
# (contiguous, as the engine returns them).
@_conv_op.register_fake
def _conv_fake(x, w, stride, padding_lo, padding_hi, dilation, output_padding, groups, transposed):
    return x.new_empty(_out_shape(x, w, stride, padding_lo, padding_hi, dilation, output_padding, transposed))


@_input_grad_op.register_fake
def _input_grad_fake(dy, w, input_shape, *params):
    return w.new_empty(input_shape)


@_weight_grad_op.register_fake
def _weight_grad_fake(dy, x, weight_shape, *params):
    return x.new_empty(weight_shape)


# Autograd. y = conv(x, w) is bilinear, and so are its gradients dx = Gx(dy, w) and
# dw = Gw(dy, x), whose adjoints are the forward again:
#   <Gx(dy, w), u> = <dy, conv(u, w)>   and   <Gw(dy, x), v> = <dy, conv(x, v)>,
# so every backward here is one of the three operators (the gradients are twice differentiable).
# The backward functions call them through _run_conv, _run_input_grad and _run_weight_grad
# (below), as every other caller does.


def _save(ctx, a: Tensor, b: Tensor, params: tuple) -> None:
    ctx.save_for_backward(a, b)
    ctx.params = params


def _conv_setup(ctx, inputs, output):
    x, w, *params = inputs
    _save(ctx, x, w, tuple(params))


def _conv_grads(dy, x, w, p, need_x: bool, need_w: bool):
    """(dx, dw) of y = conv(x, w, *p) for the cotangent dy (convnd's layouts), None where not needed."""
    if need_x and need_w:  # dy made dense once, not by each gradient (y.sum()'s dy is a broadcast view)
        dy = _dense(dy)
    dx = _run_input_grad(dy, w, list(x.shape), *p) if need_x else None
    dw = _run_weight_grad(dy, x, list(w.shape), *p) if need_w else None
    return dx, dw


def _conv_backward(ctx, dy):
    x, w = ctx.saved_tensors
    p = ctx.params
    return _conv_grads(dy, x, w, p, *ctx.needs_input_grad[:2]) + (None,) * len(p)


def _input_grad_setup(ctx, inputs, output):
    dy, w, input_shape, *params = inputs
    _save(ctx, dy, w, tuple(params))


def _input_grad_backward(ctx, g):  # g: the cotangent of dx, shaped like x
    dy, w = ctx.saved_tensors
    p = ctx.params
    d_dy = _run_conv(g, w, *p) if ctx.needs_input_grad[0] else None
    d_w = _run_weight_grad(dy, g, list(w.shape), *p) if ctx.needs_input_grad[1] else None
    return (d_dy, d_w, None) + (None,) * len(p)


def _weight_grad_setup(ctx, inputs, output):
    dy, x, weight_shape, *params = inputs
    _save(ctx, dy, x, tuple(params))


def _weight_grad_backward(ctx, g):  # g: the cotangent of dw, shaped like w
    dy, x = ctx.saved_tensors
    p = ctx.params
    d_dy = _run_conv(x, g, *p) if ctx.needs_input_grad[0] else None
    d_x = _run_input_grad(dy, g, list(x.shape), *p) if ctx.needs_input_grad[1] else None
    return (d_dy, d_x, None) + (None,) * len(p)


_conv_op.register_autograd(_conv_backward, setup_context=_conv_setup)
_input_grad_op.register_autograd(_input_grad_backward, setup_context=_input_grad_setup)
_weight_grad_op.register_autograd(_weight_grad_backward, setup_context=_weight_grad_setup)


# --------------------------------------------------------------------------------------------
# Calling the operators. Through torch's dispatcher a custom operator costs tens of
# microseconds per call (hops between C++ and Python kernels, and checks), several times a
# small convolution. In plain eager execution nothing needs the dispatcher, so the
# implementations are called directly, and when a gradient is wanted, through a
# torch.autograd.Function with the operator's own setup_context and backward: the same
# functions, so the same results. Anything else (torch.compile, torch.export, make_fx, fake
# tensors, functionalisation, a TorchDispatchMode or TorchFunctionMode, vmap and the other
# torch.func transforms, forward-mode AD, TorchScript tracing, the profiler, tensor subclasses,
# other devices) gets the custom operators, which is all it ever sees.

_C = torch._C
_forward_ad = torch.autograd.forward_ad


def _eager(a: Tensor, b: Tensor) -> bool:
    """Whether a call on a and b may skip the dispatcher (see above)."""
    if torch.compiler.is_compiling():  # first: under Dynamo (and export) the rest is not traced
        return False
    return not (_C._len_torch_dispatch_stack() or _C._is_torch_function_mode_enabled()
                or _C._are_functorch_transforms_active() or _forward_ad._current_level >= 0
                or _C._get_tracing_state() is not None or torch.autograd._profiler_enabled()
                or type(a) is not Tensor or type(b) is not Tensor
                or not (a.is_cpu or a.is_cuda) or not (b.is_cpu or b.is_cuda))


def _function(name: str, impl, setup_context, backward) -> type:
    """A torch.autograd.Function computing impl, with a custom operator's autograd formula.
    (Its forward takes ctx and calls setup_context itself: a Function with a setup_context
    method binds its arguments with inspect.signature on every call, tens of microseconds.)"""

    def forward(ctx, *args):
        output = impl(*args)
        setup_context(ctx, args, output)
        return output

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward),
                                                   "backward": staticmethod(backward)})


def _caller(op, function: type, impl):
    """The way every caller calls `op`: op itself, or in eager execution function or impl."""

    def call(a: Tensor, b: Tensor, *args):
        if not _eager(a, b):
            return op(a, b, *args)
        if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
            return function.apply(a, b, *args)
        return impl(a, b, *args)

    return call


_run_conv = _caller(_conv_op, _function("_Conv", _conv_impl, _conv_setup, _conv_backward), _conv_impl)
_run_input_grad = _caller(_input_grad_op, _function("_InputGrad", _input_grad_impl, _input_grad_setup,
                                                    _input_grad_backward), _input_grad_impl)
_run_weight_grad = _caller(_weight_grad_op, _function("_WeightGrad", _weight_grad_impl, _weight_grad_setup,
                                                      _weight_grad_backward), _weight_grad_impl)


# The eager path of a forward call in PyTorch's own layouts: x (N, C, *spatial) already in
# channels-last memory and the weight as PyTorch holds it go to the engine as they are, which
# reorders their axes in place (the weight, then strided, is copied densely by the engine: on
# the CPU by the calling thread, on CUDA by a copy kernel on PyTorch's current stream, waiting
# for nothing) and returns y (N, O, *out) as a channels-last view of its output. Three PyTorch
# calls fewer (movedim and contiguous of the weight, movedim of x and of y): about 6 us of a
# tiny conv's host time on the CPU. Its first-order gradients on the CPU go to the engine the
# same way (_grad_channels_first); second-order ones (create_graph), and CUDA's for now, go to
# the gradient operators in convnd's layouts, as _conv_backward.

# On the CPU, weights up to this many elements are reordered by the engine (one thread, about
# a nanosecond an element); larger ones by PyTorch. PyTorch's copy is multi-threaded, but its
# OpenMP workers then spin for milliseconds on the cores the engine computes on: a 2x2
# stride-2 transposed conv c256->128 on 8x28x28 (a 131k-element weight) took 39 ms after the
# copy, 17 ms without (2 cores).
_ENGINE_REORDERS_WEIGHTS_UP_TO = 1 << 22


def _channels_last_dense(x: Tensor) -> bool:
    """Whether x (N, C, *spatial) is dense with channels innermost (movedim(1, -1) is contiguous)."""
    if x.dim() == 4:
        return x.is_contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        return x.is_contiguous(memory_format=torch.channels_last_3d)
    n, c, l = x.shape
    s0, s1, s2 = x.stride()
    return (c == 1 or s1 == 1) and (l == 1 or s2 == c) and (n == 1 or s0 == c * l)


def _weight_to_convnd(w: Tensor, transposed: bool) -> Tensor:
    # (O, C/g, *k) -> (O, *k, C/g); transposed, one group: (C, O, *k) -> (O, *k, C).
    return w.movedim(0, -1) if transposed else w.movedim(1, -1)


def _weight_from_convnd(w: Tensor, transposed: bool) -> Tensor:
    return w.movedim(-1, 0) if transposed else w.movedim(-1, 1)


class _CallEntry:
    """One distinct forward call of the functions below (its arguments and the weight's shape):
    the operators' parameters p, and the native calls made for it, by CPU thread count (and
    "cuda"). A model makes the same few calls over and over; each then costs a dictionary
    lookup here, instead of normalising its arguments and hashing p again."""
    __slots__ = ("p", "api", "args", "calls", "__weakref__")

    def __init__(self, p: tuple, rank: int):
        self.p = p
        self.api, self.args = _engine_args(p, rank)
        self.calls = {}

    def native(self, key, gradient: str = "") -> Any:
        """The native call of the forward, or of its gradient ("_input", "_weight"), for key:
        a CPU thread count or "cuda"."""
        k = (gradient, key) if gradient else key
        call = self.calls.get(k)
        if call is None:
            call = self.calls[k] = _native_call(self.api + gradient, self.args, "cuda" if key == "cuda" else "cpu",
                                                0 if key == "cuda" else key)
        return call


def _run_native(entry: _CallEntry, t: Tensor, gradient: str, run) -> Any:
    """run(call) with entry's native call of the forward (gradient "") or of a gradient, for
    t's device: on the CPU with torch.get_num_threads() threads, on CUDA on t's device and
    PyTorch's current stream there."""
    if t.is_cpu:
        return run(entry.native(torch.get_num_threads(), gradient))
    return _on_cuda_device(t.device, lambda: run(entry.native("cuda", gradient)))


def _conv_cf_impl(x: Tensor, w: Tensor, entry: _CallEntry) -> Optional[Tensor]:
    """y (N, O, *out) of x and w in PyTorch's layouts (see above); None when convnd refuses the
    dtypes (the caller's other path then raises the error that names them)."""
    try:
        y = _run_native(entry, x, "", lambda call: call.run(_to_dlpack(x), _to_dlpack(w), True))
    except TypeError:
        return None
    return _tensor_of(y, x.dtype)


class _ConvChannelsFirst(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, entry):
        ctx.save_for_backward(x, w)
        ctx.params = entry.p
        # A weak reference: an output kept alive (a global, say) keeps its graph's nodes, and
        # they must not keep native objects past the interpreter's exit (nanobind reports them
        # as leaks). The entry lives in _ENTRIES; if it was dropped since, one is made again.
        ctx.entry = _weakref.ref(entry)
        return _conv_cf_impl(x, w, entry)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        if x.is_cpu and not torch.is_grad_enabled() and _eager(dy, w):
            # First-order gradients (no graph of them to record): the engine takes the tensors in
            # PyTorch's layouts, as the forward did, and returns the gradients in them (views),
            # with no axis moves or copies here (a broadcast dy is made dense by the engine).
            # CPU only until this has run on a GPU (the CUDA backend stages strided reads the
            # same way, but no device was lent when it was written); CUDA takes the path below.
            entry = ctx.entry() or _CallEntry(ctx.params, x.dim() - 2)
            dx = _grad_channels_first(entry, "_input", w, x.shape, dy) if need_x else None
            dw = _grad_channels_first(entry, "_weight", x, w.shape, dy) if need_w else None
            return dx, dw, None
        p = ctx.params
        transposed = p[-1]
        # _conv_backward's gradients, in convnd's layouts and back (views: no copies here).
        dx, dw = _conv_grads(dy.movedim(1, -1), x.movedim(1, -1), _weight_to_convnd(w, transposed), p,
                             *ctx.needs_input_grad[:2])
        if dx is not None:
            dx = dx.movedim(-1, 1)
        if dw is not None:
            dw = _weight_from_convnd(dw, transposed)
        return dx, dw, None


def _grad_channels_first(entry: _CallEntry, gradient: str, given: Tensor, shape, dy: Tensor) -> Tensor:
    """The gradient ("_input": dx from the weight, "_weight": dw from x) of entry's forward in
    PyTorch's layouts: given, shape and dy as PyTorch holds them, the result too."""
    g = _run_native(entry, given, gradient,
                    lambda call: call.run_grad(_to_dlpack(given), list(shape), _to_dlpack(dy), True))
    return _tensor_of(g, given.dtype)


def _run_conv_channels_first(x: Tensor, w: Tensor, entry: _CallEntry) -> Optional[Tensor]:
    """conv(x, w) in PyTorch's layouts through the path above, or None where it does not apply
    (not eager, tensors on two devices, x not channels-last, a large weight on the CPU, several
    groups of a transposed conv, a dtype convnd refuses): the caller then takes the operators'
    path."""
    if x.is_cpu:
        if not w.is_cpu or w.numel() > _ENGINE_REORDERS_WEIGHTS_UP_TO:
            return None
    elif not (x.is_cuda and w.device == x.device):
        return None
    p = entry.p
    if not (x.shape[0] > 0 and (not p[-1] or p[-2] == 1) and _eager(x, w) and _channels_last_dense(x)):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return _ConvChannelsFirst.apply(x, w, entry) if _conv_cf_impl_accepts(x, w) else None
    return _conv_cf_impl(x, w, entry)


def _conv_cf_impl_accepts(x: Tensor, w: Tensor) -> bool:
    # The dtypes convnd computes: an autograd.Function must return a tensor, so a refusal is
    # known before it runs (the operators' path raises the error).
    return x.dtype in _ENGINE_DTYPES and w.dtype == x.dtype


_ENGINE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------------------------
# torch.nn.functional's signatures and layouts


def _per_axis(name: str, v: Any, rank: int) -> Tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * rank
    out = tuple(v)
    if len(out) == 1:
        out = out * rank
    if len(out) != rank or not all(isinstance(e, int) for e in out):
        raise ValueError(f"{name} must be an int or {rank} ints, got {v!r}")
    return out


def _memoised(fn):
    """fn, a pure function of its arguments, with its results kept: a model makes the same few
    calls over and over. Unhashable arguments (lists) are not kept, and under Dynamo fn itself
    is traced (its arguments may be symbolic)."""
    cached = _functools.lru_cache(maxsize=1024)(fn)

    def call(*args):
        if torch.compiler.is_compiling():
            return fn(*args)
        try:
            return cached(*args)
        except TypeError:  # unhashable (or fn's own TypeError, which fn raises again)
            return fn(*args)

    return call


# The _CallEntry of each distinct call, by the call's own arguments and the weight's shape.
# Unhashable arguments (lists) are not kept, nor is anything under Dynamo, which traces the
# normalisation itself (its arguments may be symbolic); errors are raised before an entry is made.
_ENTRIES: dict = {}
_MAX_ENTRIES = 1024


def _entry(key: tuple, make) -> _CallEntry:
    """The entry of `key`, made by make() (which checks the arguments) the first time; under
    Dynamo, made by make() every time (traced, not cached)."""
    if torch.compiler.is_compiling():
        return make()
    try:
        e = _ENTRIES.get(key)
    except TypeError:  # unhashable
        return make()
    if e is None:
        e = make()
        if len(_ENTRIES) >= _MAX_ENTRIES:
            _ENTRIES.clear()
        _ENTRIES[key] = e
    return e


@_memoised
def _conv_args(rank: int, stride: IntOrSeq, padding: Union[str, IntOrSeq], dilation: IntOrSeq,
               kernel: Sequence[int]) -> tuple:
    """conv{rank}d's stride, padding, dilation (kernel: the weight's) as the convnd::conv
    operator's stride, padding_lo, padding_hi, dilation and output_padding."""
    name = f"conv{rank}d"
    stride = _per_axis("stride", stride, rank)
    dilation = _per_axis("dilation", dilation, rank)
    if isinstance(padding, str):
        if padding == "valid":
            lo = hi = (0,) * rank
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            lo = tuple(t // 2 for t in total)  # as PyTorch: the odd one at the high end
            hi = tuple(t - l for t, l in zip(total, lo))
        else:
            raise ValueError(f"{name}: padding must be 'same', 'valid', an int or {rank} ints, got {padding!r}")
    else:
        lo = hi = _per_axis("padding", padding, rank)
    return stride, lo, hi, dilation, (0,) * rank


@_memoised
def _conv_transpose_args(rank: int, stride: IntOrSeq, padding: IntOrSeq, output_padding: IntOrSeq,
                         dilation: IntOrSeq) -> tuple:
    """conv_transpose{rank}d's stride, padding, output_padding, dilation, per axis."""
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose{rank}d: padding must be an int or {rank} ints (PyTorch has no string "
                         f"padding for transposed convolutions), got {padding!r}")
    return (_per_axis("stride", stride, rank), _per_axis("padding", padding, rank),
            _per_axis("output_padding", output_padding, rank), _per_axis("dilation", dilation, rank))


if hasattr(torch, "get_autocast_dtype"):
    _is_autocast_enabled, _get_autocast_dtype = torch.is_autocast_enabled, torch.get_autocast_dtype

    def _autocast_dtype(device_type: str) -> Optional["torch.dtype"]:
        return _get_autocast_dtype(device_type) if _is_autocast_enabled(device_type) else None
else:  # pragma: no cover - older PyTorch
    def _autocast_dtype(device_type: str) -> Optional["torch.dtype"]:
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


# Whether autocast is on for any device: one call without arguments, where this torch has it.
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", None) or (lambda: True)


def _autocast(input: Tensor, weight: Tensor, bias: Optional[Tensor]):
    """As autocast does for torch's convolutions: floating tensors other than float64 go to the
    autocast dtype (the casts are differentiable: gradients come back in the original dtypes)."""
    if not _any_autocast():
        return input, weight, bias
    # (is_cpu first: input.device builds a device object, a microsecond of a tiny conv's call)
    dtype = _autocast_dtype("cpu" if input.is_cpu else input.device.type)
    if dtype is None:
        return input, weight, bias

    def cast(t):
        if t is None or not t.is_floating_point() or t.dtype in (torch.float64, dtype):
            return t
        return t.to(dtype)

    return cast(input), cast(weight), cast(bias)


def _batched(input: Tensor, rank: int, name: str) -> Tuple[Tensor, bool]:
    if input.dim() == rank + 2:
        return input, False
    if input.dim() == rank + 1:
        return input.unsqueeze(0), True
    raise ValueError(f"{name}: expected a {rank + 1}-D (unbatched) or {rank + 2}-D (batched) input, "
                     f"got shape {tuple(input.shape)}")


def _finish(y_cl: Tensor, bias: Optional[Tensor], rank: int, unbatched: bool) -> Tensor:
    return _finish_channels_first(y_cl.movedim(-1, 1), bias, rank, unbatched)  # channels-last strides: no copy


def _finish_channels_first(y: Tensor, bias: Optional[Tensor], rank: int, unbatched: bool) -> Tensor:
    if bias is not None:
        y = y + bias.reshape(1, -1, *([1] * rank))
    return y.squeeze(0) if unbatched else y


def _conv_entry(rank: int, stride, padding, dilation, groups: int, wshape) -> _CallEntry:
    if len(wshape) != rank + 2:
        raise ValueError(f"conv{rank}d: expected a {rank + 2}-D weight (O, C/groups, *kernel), got shape "
                         f"{tuple(wshape)}")
    stride, lo, hi, dilation, output_padding = _conv_args(rank, stride, padding, dilation, wshape[2:])
    return _CallEntry((stride, lo, hi, dilation, output_padding, groups, False), rank)


def _conv(rank: int, input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: IntOrSeq,
          padding: Union[str, IntOrSeq], dilation: IntOrSeq, groups: int) -> Tensor:
    input, weight, bias = _autocast(input, weight, bias)
    unbatched = False
    if input.dim() != rank + 2:
        input, unbatched = _batched(input, rank, f"conv{rank}d")
    wshape = weight.shape
    entry = _entry((rank, stride, padding, dilation, groups, wshape),
                   lambda: _conv_entry(rank, stride, padding, dilation, groups, wshape))
    y = _run_conv_channels_first(input, weight, entry)
    if y is not None:
        return _finish_channels_first(y, bias, rank, unbatched)
    x = input.movedim(1, -1).contiguous()  # [N, *spatial, C]; no copy for a channels_last input
    w = weight.movedim(1, -1).contiguous()  # [O, *kernel, C/g]
    y = _run_conv(x, w, *entry.p)  # [N, *out, O]
    return _finish(y, bias, rank, unbatched)


def _conv_transpose_entry(rank: int, stride, padding, output_padding, groups: int, dilation,
                          wshape) -> _CallEntry:
    name = f"conv_transpose{rank}d"
    if len(wshape) != rank + 2:
        raise ValueError(f"{name}: expected a {rank + 2}-D weight (C, O/groups, *kernel), got shape {tuple(wshape)}")
    stride, padding, output_padding, dilation = _conv_transpose_args(rank, stride, padding, output_padding,
                                                                     dilation)
    c = wshape[0]
    if groups < 1 or c % groups:
        raise ValueError(f"{name}: the weight's first dimension ({c}, the input channels) must be divisible "
                         f"by groups ({groups})")
    return _CallEntry((stride, padding, padding, dilation, output_padding, groups, True), rank)


def _conv_transpose(rank: int, input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: IntOrSeq,
                    padding: IntOrSeq, output_padding: IntOrSeq, groups: int, dilation: IntOrSeq) -> Tensor:
    input, weight, bias = _autocast(input, weight, bias)
    unbatched = False
    if input.dim() != rank + 2:
        input, unbatched = _batched(input, rank, f"conv_transpose{rank}d")
    wshape = weight.shape
    entry = _entry((-rank, stride, padding, output_padding, groups, dilation, wshape),
                   lambda: _conv_transpose_entry(rank, stride, padding, output_padding, groups, dilation, wshape))
    y = _run_conv_channels_first(input, weight, entry)
    if y is not None:
        return _finish_channels_first(y, bias, rank, unbatched)
    c, og, kernel = wshape[0], wshape[1], list(wshape[2:])
    # PyTorch's (C, O/g, *kernel) -> convnd's (O, *kernel, C/g):
    # w[q*O/g + o, k..., c] = weight[q*C/g + c, o, k...] (docs/semantics.md).
    w = (weight.reshape(groups, c // groups, og, *kernel)
         .permute(0, 2, *range(3, 3 + rank), 1)
         .reshape(groups * og, *kernel, c // groups))
    x = input.movedim(1, -1).contiguous()
    y = _run_conv(x, w, *entry.p)
    return _finish(y, bias, rank, unbatched)


def _functional(rank: int):
    name = f"conv{rank}d"

    def f(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrSeq = 1,
          padding: Union[str, IntOrSeq] = 0, dilation: IntOrSeq = 1, groups: int = 1) -> Tensor:
        return _conv(rank, input, weight, bias, stride, padding, dilation, groups)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""``torch.nn.functional.{name}`` computed by convnd (same signature and layouts).

    input ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; weight ``(O, C / groups, *kernel)``;
    bias ``(O,)`` or None; stride, dilation: int or {rank} ints; padding: int, {rank} ints,
    ``"same"`` (stride 1; an odd total goes to the high end, as PyTorch) or ``"valid"``.
    Returns ``(N, O, *out)``, a ``channels_last`` view of convnd's output (no copy). CPU and CUDA
    tensors; differentiable (convnd's gradients), ``torch.compile`` and autocast aware.
    """
    return f


def _functional_transpose(rank: int):
    name = f"conv_transpose{rank}d"

    def f(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrSeq = 1,
          padding: IntOrSeq = 0, output_padding: IntOrSeq = 0, groups: int = 1,
          dilation: IntOrSeq = 1) -> Tensor:
        return _conv_transpose(rank, input, weight, bias, stride, padding, output_padding, groups, dilation)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""``torch.nn.functional.{name}`` computed by convnd (same signature and layouts).

    input ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; weight ``(C, O / groups, *kernel)``
    (PyTorch's transposed layout); bias ``(O,)`` or None; stride, padding, output_padding,
    dilation: int or {rank} ints; ``0 <= output_padding < max(stride, dilation)``.
    Returns ``(N, O, *out)`` with ``out = (I - 1) * stride - 2 * padding + dilation * (K - 1) +
    output_padding + 1``, a ``channels_last`` view of convnd's output (no copy).
    """
    return f


conv1d = _functional(1)
conv2d = _functional(2)
conv3d = _functional(3)
conv_transpose1d = _functional_transpose(1)
conv_transpose2d = _functional_transpose(2)
conv_transpose3d = _functional_transpose(3)

_FUNCTIONS = {1: conv1d, 2: conv2d, 3: conv3d}
_TRANSPOSE_FUNCTIONS = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


# --------------------------------------------------------------------------------------------
# Modules: torch.nn's classes with the convolution swapped (constructor, parameters, state dict,
# initialisation and padding modes are theirs).


class _ConvMixin:
    _rank = 0

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        f = _FUNCTIONS[self._rank]
        if self.padding_mode != "zeros":  # as torch.nn: pad first (reflect, replicate, circular)
            return f(_F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode), weight, bias,
                     self.stride, 0, self.dilation, self.groups)
        return f(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _get_name(self) -> str:
        return "convnd." + type(self).__name__


class _ConvTransposeMixin:
    _rank = 0

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for {type(self).__name__}")
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              self._rank, self.dilation)
        return _TRANSPOSE_FUNCTIONS[self._rank](input, self.weight, self.bias, self.stride, self.padding,
                                                output_padding, self.groups, self.dilation)

    def _get_name(self) -> str:
        return "convnd." + type(self).__name__


class Conv1d(_ConvMixin, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 1


class Conv2d(_ConvMixin, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 2


class Conv3d(_ConvMixin, torch.nn.Conv3d):
    """``torch.nn.Conv3d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 3


class ConvTranspose1d(_ConvTransposeMixin, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 1


class ConvTranspose2d(_ConvTransposeMixin, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 2


class ConvTranspose3d(_ConvTransposeMixin, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` computed by convnd: the same constructor, parameters and state dict."""
    _rank = 3


_CONVERSIONS = {
    torch.nn.Conv1d: Conv1d,
    torch.nn.Conv2d: Conv2d,
    torch.nn.Conv3d: Conv3d,
    torch.nn.ConvTranspose1d: ConvTranspose1d,
    torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d,
}


def convert(model: "torch.nn.Module") -> "torch.nn.Module":
    """Makes every ``torch.nn`` convolution of ``model`` (the model itself included, at any depth)
    compute with convnd, in place, and returns ``model``.

    Each ``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` becomes the convnd class of the
    same name: the same module object with the same parameters, buffers, hooks and state dict
    (so optimizers, DDP buckets and checkpoints keep working). Subclasses of those classes
    (which may change ``forward``) and lazy modules not yet initialised are left alone.
    """
    for m in model.modules():
        cls = _CONVERSIONS.get(type(m))
        if cls is not None:
            m.__class__ = cls
    return model
