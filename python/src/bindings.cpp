// convnd._core: the nanobind extension behind the `convnd` Python package.
//
// The Python layer (python/convnd/__init__.py) turns MLX-style arguments into per-axis lists
// and calls in here. Arrays arrive as DLPack tensors (NumPy, torch, jax, cupy, MLX): their
// dtype, shape, strides in elements, data pointer and device go straight into a
// convnd::TensorView, so no copy is made here except for negative strides, which the library
// does not accept. A CUDA tensor keeps its device ordinal in TensorView::device, so the CUDA
// backend can read it in place once it exists. The output is a new host NumPy array that owns
// the library's convnd::Tensor (no copy); bfloat16 comes back as uint16 bits, which the
// Python layer views as ml_dtypes.bfloat16.
//
// convnd.torch makes a Call per distinct call instead (its options converted once; run() then
// takes the arrays alone, optionally in PyTorch's channels-first layouts, reordered here).
//
// The gradients (convnd.grad) go through run_grad: the weight (input gradient) or the input
// (weight gradient), the shape of the tensor differentiated and the cotangent dy; the problem is
// the forward call's with dir=bwd_d or bwd_w, and its output is made here like y's.
//
// The GIL is released while the library computes. Between tiles the library calls
// ExecOptions::progress; on the calling thread we take the GIL back briefly (at most every
// few milliseconds) and run PyErr_CheckSignals, so Ctrl-C cancels cleanly: the progress
// callback returns false, the library throws Error(interrupted), and the Python exception the
// signal handler raised (KeyboardInterrupt by default) is re-raised here.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <convnd/convnd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Ints = std::vector<int64_t>;
// Read-only import: we never write to inputs, and read-only arrays (np.broadcast_to, ...)
// must be accepted.
using InArray = nb::ndarray<nb::ro>;

// The argument as an array, or a TypeError that names it (instead of nanobind's dump of the
// whole signature). The Python layer has checked NumPy arrays already; this catches the rest.
InArray import_array(nb::handle h, const char* what) {
  InArray a;
  if (!nb::try_cast<InArray>(h, a)) {
    const nb::handle type_object(reinterpret_cast<PyObject*>(Py_TYPE(h.ptr())));
    const std::string type = nb::cast<std::string>(type_object.attr("__name__"));
    throw nb::type_error((std::string(what) + " must be an array (NumPy, or a DLPack producer such as torch, jax, "
                                              "cupy or MLX), got " + type + " that DLPack cannot import")
                             .c_str());
  }
  return a;
}

// The most worker threads a call may ask for: the library's bound (convnd/__init__.py checks
// it first; the CLI's --threads has the same bound).
using convnd::kMaxThreads;

// DLPack device types (dlpack.h).
constexpr int kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13;

convnd::DType dtype_of(const InArray& a, const std::optional<std::string>& override_name, const char* what) {
  namespace dl = nb::dlpack;
  const dl::dtype t = a.dtype();
  if (override_name) {
    // The Python layer passes NumPy bfloat16 arrays (ml_dtypes) as uint16 views.
    convnd::DType d;
    if (!convnd::parse_dtype(*override_name, &d))
      throw nb::value_error(("unknown dtype name '" + *override_name + "'").c_str());
    if (t.bits != convnd::dtype_size(d) * 8 || t.lanes != 1)
      throw nb::type_error((std::string(what) + ": the array's element size does not match dtype " + *override_name).c_str());
    return d;
  }
  if (t.lanes == 1 && t.code == uint8_t(dl::dtype_code::Float)) {
    if (t.bits == 32) return convnd::DType::f32;
    if (t.bits == 16) return convnd::DType::f16;
    if (t.bits == 64) return convnd::DType::f64;
  }
  if (t.lanes == 1 && t.code == uint8_t(dl::dtype_code::Bfloat) && t.bits == 16) return convnd::DType::bf16;
  static const char* codes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  std::string name = t.code < 7 ? codes[t.code] : "dlpack code " + std::to_string(t.code);
  throw nb::type_error((std::string(what) + " has dtype " + name + std::to_string(t.bits) +
                        "; convnd computes float32, float16, bfloat16 and float64")
                           .c_str());
}

// A TensorView of the array's memory. With `copy`, negative strides (which the library does
// not accept) are replaced by a dense copy held there (host memory only); without it (shapes
// only, for planning) the view is returned as it is.
convnd::TensorView view_of(const InArray& a, const std::optional<std::string>& dtype_name, const char* what,
                           convnd::Tensor* copy) {
  convnd::TensorView v;
  v.dtype = dtype_of(a, dtype_name, what);
  v.data = const_cast<void*>(a.data());
  bool negative = false;
  v.shape.reserve(a.ndim());
  v.strides.reserve(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) {
    v.shape.push_back(int64_t(a.shape(i)));
    v.strides.push_back(a.stride(i));
    negative |= a.stride(i) < 0;
  }
  switch (a.device_type()) {
    case kDLCPU:
    case kDLCUDAHost:  // pinned host memory
      v.device = -1;
      break;
    case kDLCUDA:
    case kDLCUDAManaged:
      v.device = a.device_id();
      break;
    default:
      throw nb::value_error((std::string(what) + " lives on a device that convnd does not know (DLPack device type " +
                             std::to_string(a.device_type()) + "); pass host or CUDA memory")
                                .c_str());
  }
  if (negative && copy) {
    if (v.device >= 0)
      throw nb::value_error((std::string(what) + " has negative strides in CUDA memory; make it contiguous first").c_str());
    *copy = convnd::contiguous_copy(v);
    return copy->view();
  }
  return v;
}

// The CUDA stream this thread's calls enqueue on (convnd.cuda_stream(); 0: none, and each
// call waits for its result).
thread_local uintptr_t t_cuda_stream = 0;

convnd::ExecOptions exec_options(const std::string& device, const nb::object& budget, int threads,
                                 const std::optional<std::string>& algorithm, const std::optional<std::string>& isa,
                                 const std::string& precision) {
  convnd::ExecOptions e;
  e.cuda_stream = reinterpret_cast<void*>(t_cuda_stream);
  if (!convnd::parse_backend(device, &e.backend))
    throw nb::value_error(("device must be 'cpu' or 'cuda', got '" + device + "'").c_str());
  if (budget.is_none()) {
    e.budget = -1;
  } else if (nb::isinstance<nb::str>(budget)) {
    std::string s = nb::cast<std::string>(budget);
    if (!convnd::parse_byte_size(s, &e.budget))
      throw nb::value_error(("budget '" + s + "' is not a byte count such as 268435456 or '256MiB'").c_str());
  } else if (nb::isinstance<nb::bool_>(budget)) {
    throw nb::type_error("budget must be an int (bytes), a string such as '64MiB', or None");
  } else {
    int64_t b;
    if (!nb::try_cast<int64_t>(budget, b))
      throw nb::type_error("budget must be an int (bytes), a string such as '64MiB', or None");
    if (b < 0) throw nb::value_error(("budget (" + std::to_string(b) + ") must be >= 0 bytes").c_str());
    e.budget = b;
  }
  if (threads < 0 || threads > kMaxThreads)
    throw nb::value_error(("threads (" + std::to_string(threads) + ") must be from 0 (every hardware thread) to " +
                           std::to_string(kMaxThreads))
                              .c_str());
  e.threads = threads;
  if (algorithm) e.algorithm = *algorithm;
  if (isa && (!convnd::parse_isa(*isa, &e.isa) || e.isa == convnd::Isa::sm_90))
    throw nb::value_error(("isa must be 'auto', 'generic', 'avx2', 'avx512', 'avx512_bf16' or 'amx', got '" + *isa + "'").c_str());
  // "tf32": float32 problems on a GPU may use TF32 tensor cores (ignored for other dtypes and
  // on the CPU); "exact" (the default) keeps float32 products exact.
  if (precision == "tf32") e.allow_tf32 = true;
  else if (precision != "exact")
    throw nb::value_error(("precision must be 'exact' or 'tf32', got '" + precision + "'").c_str());
  return e;
}

// Per-call options of every API, as lists; empty lists keep the library's defaults.
struct CallOptions {
  Ints stride, padding_lo, padding_hi, dilation, input_dilation, output_padding;
  int64_t groups = 1;
  bool flip = false;
};

// The Problem of one call: `api` is the Python function's name.
convnd::Problem problem_for_call(const std::string& api, const convnd::TensorView& x, const convnd::TensorView& w,
                                 const CallOptions& o) {
  if (api == "conv_general") {
    convnd::ConvGeneralOptions g;
    g.stride = o.stride;
    g.padding_lo = o.padding_lo;
    g.padding_hi = o.padding_hi;
    g.kernel_dilation = o.dilation;
    g.input_dilation = o.input_dilation;
    g.groups = o.groups;
    g.flip = o.flip;
    return convnd::problem_for_conv_general(x, w, g);
  }
  for (int rank = 1; rank <= 3; ++rank) {
    if (api == "conv" + std::to_string(rank) + "d") {
      convnd::ConvOptions c;
      c.stride = o.stride;
      c.padding = o.padding_lo;
      c.dilation = o.dilation;
      c.groups = o.groups;
      return convnd::problem_for_conv(rank, x, w, c);
    }
    if (api == "conv_transpose" + std::to_string(rank) + "d") {
      convnd::ConvTransposeOptions t;
      t.stride = o.stride;
      t.padding = o.padding_lo;
      t.dilation = o.dilation;
      t.output_padding = o.output_padding;
      t.groups = o.groups;
      return convnd::problem_for_conv_transpose(rank, x, w, t);
    }
  }
  throw nb::value_error(("unknown operation '" + api + "'").c_str());
}

std::string shape_text(const convnd::Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

// problem_for_call, with errors that name the problem as every other error does. Before a
// problem exists (the dtypes differ, or the ranks are wrong) the message gets what there is:
// the problem in the input's dtype (the weight's is the one named wrong), else the two shapes.
convnd::Problem problem_for(const std::string& api, const convnd::TensorView& x, const convnd::TensorView& w,
                            const CallOptions& o) {
  try {
    return problem_for_call(api, x, w, o);
  } catch (const convnd::Error& e) {
    std::string msg = e.what();
    if (msg.find("; problem: ") != std::string::npos) throw;
    std::string context;
    if (x.dtype != w.dtype) {
      convnd::TensorView w_as_x = w;  // only shapes and dtypes are read
      w_as_x.dtype = x.dtype;
      try {
        context = "; problem: " + convnd::to_string(problem_for_call(api, x, w_as_x, o));
      } catch (const convnd::Error&) {
      }
    }
    if (context.empty()) context = "; input shape " + shape_text(x.shape) + ", weight shape " + shape_text(w.shape);
    throw convnd::Error(e.kind(), msg + context);
  }
}

// Runs f; a library error that does not name the problem yet (an allocation, say) gets it.
template <class F>
auto naming(const convnd::Problem& p, F&& f) {
  try {
    return f();
  } catch (const convnd::Error& e) {
    const std::string msg = e.what();
    if (msg.find("; problem: ") != std::string::npos || e.kind() == convnd::ErrorKind::interrupted) throw;
    throw convnd::Error(e.kind(), msg + "; problem: " + convnd::to_string(p));
  }
}

// Cancellation state of one run. Only the calling thread (which holds a Python thread state)
// checks for signals; a progress call from another thread just reports a cancellation the
// caller's thread already saw.
struct SignalWatch {
  std::thread::id caller = std::this_thread::get_id();
  std::chrono::steady_clock::time_point last{};
  std::optional<nb::python_error> error;  // what the signal handler raised

  bool operator()(double) {
    if (error) return false;
    if (std::this_thread::get_id() != caller) return true;
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(5)) return true;
    last = now;
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      error.emplace();  // takes the pending Python exception
      return false;
    }
    return true;
  }
};

// The view with its axes taken in `order` (empty: as it is).
convnd::TensorView permuted(convnd::TensorView v, const std::vector<int>& order) {
  // The original extents and strides on the stack: a tiny conv's call permutes four views, and
  // a copy of the view would allocate two vectors each time (orders here have 3 to 5 axes).
  constexpr size_t kMax = 8;
  const size_t n = order.size();
  int64_t stack[2 * kMax];
  std::vector<int64_t> heap(n > kMax ? 2 * n : 0);
  int64_t* shape = n > kMax ? heap.data() : stack;
  int64_t* strides = shape + n;
  std::copy(v.shape.begin(), v.shape.begin() + ptrdiff_t(n), shape);
  std::copy(v.strides.begin(), v.strides.begin() + ptrdiff_t(n), strides);
  for (size_t i = 0; i < n; ++i) {
    v.shape[i] = shape[size_t(order[i])];
    v.strides[i] = strides[size_t(order[i])];
  }
  return v;
}

// The shape and element strides of a dense tensor's axes taken in `order` (empty: as they are).
struct ArrayLayout {
  std::vector<size_t> shape;
  std::vector<int64_t> strides;
};
ArrayLayout layout_of(const convnd::Tensor& t, const std::vector<int>& order) {
  const convnd::TensorView v = permuted(t.view(), order);
  return {std::vector<size_t>(v.shape.begin(), v.shape.end()), v.strides};
}

nb::object numpy_of(convnd::Tensor y, const std::vector<int>& order = {}) {
  // The capsule owns the tensor; the array aliases its buffer.
  auto* held = new convnd::Tensor(std::move(y));
  nb::capsule owner(held, [](void* p) noexcept { delete static_cast<convnd::Tensor*>(p); });
  const ArrayLayout l = layout_of(*held, order);
  namespace dl = nb::dlpack;
  dl::dtype t{};
  t.lanes = 1;
  switch (held->dtype()) {
    case convnd::DType::f32: t.code = uint8_t(dl::dtype_code::Float); t.bits = 32; break;
    case convnd::DType::f64: t.code = uint8_t(dl::dtype_code::Float); t.bits = 64; break;
    case convnd::DType::f16: t.code = uint8_t(dl::dtype_code::Float); t.bits = 16; break;
    // NumPy has no bfloat16: hand back the bits; the Python layer views them as ml_dtypes.bfloat16.
    case convnd::DType::bf16: t.code = uint8_t(dl::dtype_code::UInt); t.bits = 16; break;
  }
  nb::ndarray<nb::numpy> a(held->data(), l.shape.size(), l.shape.data(), owner, l.strides.data(), t, kDLCPU, 0);
  return a.cast();
}

// An output as a framework-less ndarray that exports DLPack with its device: a CUDA output
// (torch.from_dlpack, cupy, jax take it without a copy), or a Call's output on the host, which
// a framework adapter imports as one capsule (NumPy's asarray and torch.from_numpy on top of
// numpy_of cost about 3 us of a tiny conv's call). bfloat16 keeps its own DLPack code here.
nb::object dlpack_array_of(convnd::Tensor y, const std::vector<int>& order = {}) {
  auto* held = new convnd::Tensor(std::move(y));
  nb::capsule owner(held, [](void* p) noexcept { delete static_cast<convnd::Tensor*>(p); });
  const ArrayLayout l = layout_of(*held, order);
  namespace dl = nb::dlpack;
  dl::dtype t{};
  t.lanes = 1;
  switch (held->dtype()) {
    case convnd::DType::f32: t.code = uint8_t(dl::dtype_code::Float); t.bits = 32; break;
    case convnd::DType::f64: t.code = uint8_t(dl::dtype_code::Float); t.bits = 64; break;
    case convnd::DType::f16: t.code = uint8_t(dl::dtype_code::Float); t.bits = 16; break;
    case convnd::DType::bf16: t.code = uint8_t(dl::dtype_code::Bfloat); t.bits = 16; break;
  }
  const int device = held->view().device;
  nb::ndarray<> a(held->data(), l.shape.size(), l.shape.data(), owner, l.strides.data(), t,
                  device >= 0 ? kDLCUDA : kDLCPU, device >= 0 ? device : 0);
  return nb::cast(a);
}

// Plans `problem` and runs it with its output made here: the output y (fwd), the input
// gradient dx (bwd_d) or the weight gradient dw (bwd_w), on `out_device` (-1: host). `a` and
// `b` are the two tensors read: (x, w) fwd, (w, dy) bwd_d, (x, dy) bwd_w. The GIL is
// released while computing; a signal's exception (KeyboardInterrupt) is re-raised. Nothing is
// returned unless the output is complete. A host output is a NumPy array, or with `dlpack_out`
// a DLPack-exporting array (Call's, for framework adapters); a device output is always the latter.
nb::object run_problem(const convnd::Problem& problem, const convnd::TensorView& a, const convnd::TensorView& b,
                       convnd::ExecOptions e, int out_device, const std::vector<int>& out_order = {},
                       bool dlpack_out = false) {
  SignalWatch watch;
  // On a caller's stream the call only enqueues (a progress report would wait for the GPU).
  const bool on_stream = e.backend == convnd::Backend::cuda && e.cuda_stream != nullptr;
  if (!on_stream) e.progress = [&watch](double f) { return watch(f); };
  convnd::Tensor out;
  try {
    nb::gil_scoped_release release;
    naming(problem, [&] {
      convnd::Plan plan = convnd::make_plan(problem, e);
      convnd::check_memory(plan, convnd::Allocating::output);  // before the output is allocated
      convnd::TensorShapes ts = convnd::tensor_shapes(plan.problem, plan.geometry);
      const auto& shape = problem.dir == convnd::Direction::fwd     ? ts.y
                          : problem.dir == convnd::Direction::bwd_d ? ts.x
                                                                    : ts.w;
      out = convnd::Tensor::empty(problem.dtype, convnd::Shape(shape.begin(), shape.begin() + ts.ndim), out_device,
                                  e.backend == convnd::Backend::cuda ? e.cuda_stream : nullptr);
      switch (problem.dir) {
        case convnd::Direction::fwd: convnd::execute(plan, a, b, out, e); break;
        case convnd::Direction::bwd_d: convnd::execute(plan, out, a, b, e); break;
        case convnd::Direction::bwd_w: convnd::execute(plan, a, out, b, e); break;
      }
    });
  } catch (const convnd::Error& err) {
    if (watch.error) throw *watch.error;  // the signal handler's exception, e.g. KeyboardInterrupt
    throw;
  }
  // A signal that arrived during the last tile still counts.
  if (watch.error) throw *watch.error;
  return out_device >= 0 || dlpack_out ? dlpack_array_of(std::move(out), out_order) : numpy_of(std::move(out), out_order);
}

// PyTorch's layouts as axis orders of convnd's (docs/semantics.md), for `rank` spatial axes:
// x and y (N, C, *spatial) -> (N, *spatial, C); a conv's weight (O, C/g, *k) -> (O, *k, C/g);
// a transposed conv's weight (C, O, *k) -> (O, *k, C) (one group: with several, convnd's
// weight is no view of PyTorch's); and back for y.
struct ChannelsFirst {
  std::vector<int> x, w, y;
  std::vector<int> w_back;  // convnd's weight (a weight gradient) -> PyTorch's layout: w inverted
};
ChannelsFirst make_channels_first_orders(int rank, bool transposed) {
  ChannelsFirst c;
  c.x.push_back(0);
  c.w.push_back(transposed ? 1 : 0);
  for (int d = 0; d < rank; ++d) {
    c.x.push_back(2 + d);
    c.w.push_back(2 + d);
  }
  c.x.push_back(1);
  c.w.push_back(transposed ? 0 : 1);
  c.y = {0, rank + 1};
  for (int d = 0; d < rank; ++d) c.y.push_back(1 + d);
  c.w_back.resize(c.w.size());
  for (size_t i = 0; i < c.w.size(); ++i) c.w_back[size_t(c.w[i])] = int(i);
  return c;
}
// The orders of 1 to 3 spatial axes, made once.
const ChannelsFirst& channels_first_orders(int rank, bool transposed) {
  static const std::vector<ChannelsFirst> table = [] {
    std::vector<ChannelsFirst> t;
    for (int r = 1; r <= 3; ++r)
      for (bool tr : {false, true}) t.push_back(make_channels_first_orders(r, tr));
    return t;
  }();
  return table[size_t(2 * (rank - 1) + (transposed ? 1 : 0))];
}

// A call's axis orders: as given, or with channels_first PyTorch's for the forward function
// `forward` on arrays of `ndim` axes (`agree`: the call's other arrays, and `arrays` what they
// are, have as many); ValueError naming `api` where that cannot be.
const ChannelsFirst& call_orders(bool channels_first, const std::string& forward, const std::string& api,
                                 int64_t groups, size_t ndim, bool agree, const char* arrays) {
  static const ChannelsFirst as_given;
  if (!channels_first) return as_given;
  const bool transposed = forward.rfind("conv_transpose", 0) == 0;
  if ((transposed && groups != 1) || ndim < 3 || ndim > 5 || !agree)
    throw nb::value_error(("channels_first takes 3-D to 5-D " + std::string(arrays) +
                           " of equal rank, and one group when transposed; got " + api).c_str());
  return channels_first_orders(int(ndim) - 2, transposed);
}

// The array's view with its axes taken in `axes` (view_of's `copy` as there).
convnd::TensorView permuted_view_of(const InArray& a, const std::optional<std::string>& dtype, const char* what,
                                    const std::vector<int>& axes, convnd::Tensor* copy) {
  return permuted(view_of(a, dtype, what, copy), axes);
}

// The view the library reads of array `a`, whose shape-only view v0 (permuted_view_of without
// a copy) was made for planning: v0 itself, unless a stride is negative (then a dense copy,
// held in *copy, made once here; its errors name the problem).
convnd::TensorView readable_view(const convnd::Problem& problem, const convnd::TensorView& v0, const InArray& a,
                                 const std::optional<std::string>& dtype, const char* what,
                                 const std::vector<int>& axes, convnd::Tensor* copy) {
  if (std::none_of(v0.strides.begin(), v0.strides.end(), [](int64_t s) { return s < 0; })) return v0;
  return naming(problem, [&] { return permuted_view_of(a, dtype, what, axes, copy); });
}

// A forward call of `api` (a convnd function name) on arrays x and w, as `run` and Call::run
// make it. With channels_first the arrays are in PyTorch's layouts and so is the result (a
// view of convnd's channels-last output, no copy): the axes are reordered here, and a weight
// that is then strided is copied densely by the backend.
nb::object run_forward(const std::string& api, nb::handle x_obj, nb::handle w_obj,
                       const std::optional<std::string>& x_dtype, const std::optional<std::string>& w_dtype,
                       const CallOptions& o, convnd::ExecOptions e, bool channels_first = false,
                       bool dlpack_out = false) {
  const InArray x = import_array(x_obj, "input"), w = import_array(w_obj, "weight");
  const ChannelsFirst& order =
      call_orders(channels_first, api, api, o.groups, x.ndim(), w.ndim() == x.ndim(), "arrays");
  const convnd::TensorView x0 = permuted_view_of(x, x_dtype, "input", order.x, nullptr);
  const convnd::TensorView w0 = permuted_view_of(w, w_dtype, "weight", order.w, nullptr);
  const convnd::Problem problem = problem_for(api, x0, w0, o);
  convnd::Tensor xc, wc;
  const convnd::TensorView xv = readable_view(problem, x0, x, x_dtype, "input", order.x, &xc);
  const convnd::TensorView wv = readable_view(problem, w0, w, w_dtype, "weight", order.w, &wc);
  // CUDA input on the CUDA backend: the output stays on that device, no copies.
  const int out_device = e.backend == convnd::Backend::cuda && xv.device >= 0 ? xv.device : -1;
  return run_problem(problem, xv, wv, std::move(e), out_device, order.y, dlpack_out);
}


// ---- gradients ------------------------------------------------------------------------------
// A gradient function's name is its forward function's plus "_input" (bwd_d: dx from w and dy)
// or "_weight" (bwd_w: dw from x and dy). The problem is the forward one, built from the
// array given and the shape of the tensor differentiated; its errors name the gradient
// function and the gradient's problem string (dir=bwd_d / dir=bwd_w), which the CLI runs.

struct GradApi {
  std::string forward;  // "conv2d", ...
  convnd::Direction dir;
};

GradApi grad_api(const std::string& api) {
  for (const auto& [suffix, dir] : {std::pair<std::string, convnd::Direction>{"_input", convnd::Direction::bwd_d},
                                    {"_weight", convnd::Direction::bwd_w}})
    if (api.size() > suffix.size() && api.compare(api.size() - suffix.size(), suffix.size(), suffix) == 0)
      return {api.substr(0, api.size() - suffix.size()), dir};
  throw nb::value_error(("unknown gradient '" + api + "'").c_str());
}

// A forward problem's message as the gradient's: "[conv2d] ..." -> "[conv2d_input] ...", and
// "; problem: <forward>" -> "; problem: <forward> dir=bwd_d" (re-printed canonically).
std::string grad_message(std::string msg, const std::string& forward, const std::string& api, convnd::Direction dir) {
  const std::string prefix = "[" + forward + "] ";
  if (msg.compare(0, prefix.size(), prefix) == 0) msg = "[" + api + "] " + msg.substr(prefix.size());
  const std::string tag = "; problem: ";
  const size_t at = msg.rfind(tag);
  if (at != std::string::npos) {
    convnd::Problem p;
    if (convnd::parse_problem(std::string_view(msg).substr(at + tag.size()), &p).ok()) {
      p.dir = dir;
      msg = msg.substr(0, at + tag.size()) + convnd::to_string(p);
    } else {  // a value parse_problem refuses (n=0, say): dir is the last field of the canonical form
      msg += " dir=" + std::string(convnd::direction_name(dir));
    }
  }
  return msg;
}

// The gradient's problem (dir set): `given` is the weight (bwd_d) or the input (bwd_w), `shape`
// the other tensor's shape (only shapes and dtypes are read).
convnd::Problem grad_problem(const std::string& api, const convnd::TensorView& given, const Ints& shape,
                             const CallOptions& o) {
  const GradApi g = grad_api(api);
  // Zero strides: the view is never read, and dense strides of an absurd shape could overflow.
  const convnd::TensorView shaped(nullptr, given.dtype, shape, convnd::Shape(shape.size(), 0));
  const bool bwd_d = g.dir == convnd::Direction::bwd_d;
  convnd::Problem p;
  try {
    p = problem_for(g.forward, bwd_d ? shaped : given, bwd_d ? given : shaped, o);
  } catch (const convnd::Error& e) {
    throw convnd::Error(e.kind(), grad_message(e.what(), g.forward, api, g.dir));
  }
  p.dir = g.dir;
  return p;
}

// The cotangent must be the forward output's dtype and shape: ValueError naming the problem,
// before anything is allocated.
void check_cotangent(const std::string& api, const convnd::Problem& p, const convnd::TensorView& dy) {
  const convnd::Geometry geo = convnd::lower(p);
  const convnd::TensorShapes ts = convnd::tensor_shapes(p, geo);
  const convnd::Shape want(ts.y.begin(), ts.y.begin() + ts.ndim);
  const char* given = p.dir == convnd::Direction::bwd_d ? "weight" : "input";
  auto fail = [&](const std::string& why) {
    throw convnd::Error(convnd::ErrorKind::invalid, "[" + api + "] " + why + "; problem: " + convnd::to_string(p));
  };
  if (dy.dtype != p.dtype)
    fail("cotangent dtype " + std::string(convnd::dtype_name(dy.dtype)) + " and " + given + " dtype " +
         std::string(convnd::dtype_name(p.dtype)) + " must match");
  if (dy.shape != want)
    fail("cotangent shape " + shape_text(dy.shape) + " must be the forward output's shape " + shape_text(want));
}

// A gradient call (a convnd.grad function name: <forward>_input or <forward>_weight), as
// `run_grad` and Call::run_grad make it: `given` is the weight (_input) or the input (_weight),
// `shape` the other tensor's shape, dy the cotangent. With channels_first, as run_forward's:
// the arrays and `shape` are in PyTorch's layouts (x and dy (N, C, *spatial), the weight
// PyTorch's), and so is the gradient returned (a view of convnd's output, no copy); strided
// views (a broadcast dy, say) are copied densely by the backend.
nb::object run_gradient(const std::string& api, nb::handle given_obj, const std::optional<std::string>& given_dtype,
                        const Ints& shape, nb::handle dy_obj, const std::optional<std::string>& dy_dtype,
                        const CallOptions& o, convnd::ExecOptions e, bool dlpack_out = false,
                        bool channels_first = false) {
  const GradApi g = grad_api(api);
  const bool bwd_d = g.dir == convnd::Direction::bwd_d;
  const char* given_name = bwd_d ? "weight" : "input";
  const InArray given = import_array(given_obj, given_name), dy = import_array(dy_obj, "cotangent");
  const ChannelsFirst& order =
      call_orders(channels_first, g.forward, api, o.groups, given.ndim(),
                  dy.ndim() == given.ndim() && shape.size() == given.ndim(), "arrays and shape");
  const std::vector<int>& given_axes = bwd_d ? order.w : order.x;
  // The other tensor's shape in convnd's layout.
  Ints shape_c = shape;
  const std::vector<int>& shape_axes = bwd_d ? order.x : order.w;
  for (size_t i = 0; i < shape_axes.size(); ++i) shape_c[i] = shape[size_t(shape_axes[i])];
  const convnd::TensorView g0 = permuted_view_of(given, given_dtype, given_name, given_axes, nullptr);
  const convnd::Problem problem = grad_problem(api, g0, shape_c, o);
  const convnd::TensorView dy0 =
      naming(problem, [&] { return permuted_view_of(dy, dy_dtype, "cotangent", order.x, nullptr); });
  check_cotangent(api, problem, dy0);
  convnd::Tensor gc, dyc;
  const convnd::TensorView gv = readable_view(problem, g0, given, given_dtype, given_name, given_axes, &gc);
  const convnd::TensorView dyv = readable_view(problem, dy0, dy, dy_dtype, "cotangent", order.x, &dyc);
  // CUDA arrays on the CUDA backend: the gradient stays on their device, no copies.
  const int out_device =
      e.backend != convnd::Backend::cuda ? -1 : gv.device >= 0 ? gv.device : dyv.device >= 0 ? dyv.device : -1;
  return run_problem(problem, gv, dyv, std::move(e), out_device, bwd_d ? order.y : order.w_back, dlpack_out);
}

// One call's options, converted once. A framework adapter keeps a Call per distinct call (a
// model makes the same few calls over and over), so each run pays for its arrays alone: the
// keyword arguments, the lists and the options' checks cost as much as a tiny convolution.
// The CUDA stream is the calling thread's at run time, as for `run`.
class Call {
 public:
  Call(std::string api, CallOptions o, convnd::ExecOptions e) : api_(std::move(api)), o_(std::move(o)), e_(std::move(e)) {}
  nb::object run(nb::handle x, nb::handle w, bool channels_first) const {
    return run_forward(api_, x, w, {}, {}, o_, options(), channels_first, /*dlpack_out=*/true);
  }
  nb::object run_grad(nb::handle given, const Ints& shape, nb::handle dy, bool channels_first) const {
    return run_gradient(api_, given, {}, shape, dy, {}, o_, options(), /*dlpack_out=*/true, channels_first);
  }

 private:
  convnd::ExecOptions options() const {
    convnd::ExecOptions e = e_;
    e.cuda_stream = reinterpret_cast<void*>(t_cuda_stream);
    return e;
  }
  std::string api_;
  CallOptions o_;
  convnd::ExecOptions e_;
};

class ProblemObject {
 public:
  explicit ProblemObject(convnd::Problem p) : p_(p) {}
  const convnd::Problem& get() const { return p_; }

 private:
  convnd::Problem p_;
};

}  // namespace

NB_MODULE(_core, m) {
  m.def(
      "set_cuda_stream",
      [](uintptr_t stream) {
        const uintptr_t previous = t_cuda_stream;
        t_cuda_stream = stream;
        return previous;
      },
      "stream"_a, "Sets this thread's CUDA stream (a cudaStream_t as an int; 0: none); returns the previous one.");
  m.doc() = "convnd's native core. Use the `convnd` package; this module's API is internal.";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const convnd::Error& e) {
      PyObject* type = PyExc_RuntimeError;
      switch (e.kind()) {
        case convnd::ErrorKind::invalid: type = PyExc_ValueError; break;
        case convnd::ErrorKind::unsupported: type = PyExc_NotImplementedError; break;
        case convnd::ErrorKind::out_of_memory: type = PyExc_MemoryError; break;
        case convnd::ErrorKind::interrupted: type = PyExc_KeyboardInterrupt; break;
        case convnd::ErrorKind::backend:
        case convnd::ErrorKind::ok: type = PyExc_RuntimeError; break;
      }
      PyErr_SetString(type, e.what());
    }
  });

  nb::class_<ProblemObject>(m, "Problem", "A validated convolution problem (see problem-strings.md).")
      .def("__str__", [](const ProblemObject& p) { return convnd::to_string(p.get()); })
      .def("__repr__", [](const ProblemObject& p) { return "convnd.Problem('" + convnd::to_string(p.get()) + "')"; })
      .def("__eq__", [](const ProblemObject& a, const ProblemObject& b) { return a.get() == b.get(); })
      .def_prop_ro("shapes", [](const ProblemObject& p) {
        // (x, w, y) shapes, each rank+2 ints.
        convnd::Geometry g = convnd::lower(p.get());
        convnd::TensorShapes s = convnd::tensor_shapes(p.get(), g);
        auto tup = [&](const std::array<int64_t, 5>& a) {
          nb::list l;
          for (int i = 0; i < s.ndim; ++i) l.append(a[i]);
          return nb::tuple(l);
        };
        return nb::make_tuple(tup(s.x), tup(s.w), tup(s.y));
      }, "The shapes (x, w, y) of the problem's tensors.")
      .def_prop_ro("dtype", [](const ProblemObject& p) { return std::string(convnd::dtype_name(p.get().dtype)); },
                   "The dtype's short name: 'f32', 'f16', 'bf16' or 'f64'.");

  m.def("parse_problem", [](const std::string& s) {
        convnd::Problem p = convnd::parse_problem(s);
        convnd::lower(p);  // semantic validation too
        return ProblemObject(p);
      }, "text"_a, "Parses and validates a problem string.");

  m.def("problem_for",
        [](const std::string& api, nb::handle x, nb::handle w, std::optional<std::string> x_dtype,
           std::optional<std::string> w_dtype, Ints stride, Ints padding_lo, Ints padding_hi, Ints dilation,
           Ints input_dilation, Ints output_padding, int64_t groups, bool flip) {
          // Only shapes and dtypes are read here.
          convnd::TensorView xv = view_of(import_array(x, "input"), x_dtype, "input", nullptr);
          convnd::TensorView wv = view_of(import_array(w, "weight"), w_dtype, "weight", nullptr);
          CallOptions o{stride, padding_lo, padding_hi, dilation, input_dilation, output_padding, groups, flip};
          return ProblemObject(problem_for(api, xv, wv, o));
        },
        "api"_a, "x"_a, "w"_a, "x_dtype"_a.none(), "w_dtype"_a.none(), "stride"_a, "padding_lo"_a, "padding_hi"_a,
        "dilation"_a, "input_dilation"_a, "output_padding"_a, "groups"_a, "flip"_a,
        "The validated Problem of a call of `api` (a convnd function name) on arrays x and w.");

  m.def("plan_json",
        [](const ProblemObject& p, const std::string& device, nb::object budget, int threads,
           std::optional<std::string> algorithm, std::optional<std::string> isa, const std::string& precision) {
          convnd::ExecOptions e = exec_options(device, budget, threads, algorithm, isa, precision);
          return convnd::make_plan(p.get(), e).to_json();
        },
        "problem"_a, "device"_a, "budget"_a.none(), "threads"_a, "algorithm"_a.none(), "isa"_a.none() = nb::none(),
        "precision"_a = "exact",
        "Plans a problem; returns Plan::to_json().");

  m.def("run",
        [](const std::string& api, nb::handle x_obj, nb::handle w_obj, std::optional<std::string> x_dtype,
           std::optional<std::string> w_dtype, Ints stride, Ints padding_lo, Ints padding_hi, Ints dilation,
           Ints input_dilation, Ints output_padding, int64_t groups, bool flip, const std::string& device,
           nb::object budget, int threads, std::optional<std::string> algorithm,
           std::optional<std::string> isa, const std::string& precision) -> nb::object {
          CallOptions o{stride, padding_lo, padding_hi, dilation, input_dilation, output_padding, groups, flip};
          return run_forward(api, x_obj, w_obj, x_dtype, w_dtype, o,
                             exec_options(device, budget, threads, algorithm, isa, precision));
        },
        "api"_a, "x"_a, "w"_a, "x_dtype"_a.none(), "w_dtype"_a.none(), "stride"_a, "padding_lo"_a, "padding_hi"_a,
        "dilation"_a, "input_dilation"_a, "output_padding"_a, "groups"_a, "flip"_a, "device"_a, "budget"_a.none(),
        "threads"_a, "algorithm"_a.none(), "isa"_a.none() = nb::none(), "precision"_a = "exact",
        "Runs a call of `api` (a convnd function name) on arrays x and w; returns a new NumPy array.");

  m.def("run_grad",
        [](const std::string& api, nb::handle given_obj, std::optional<std::string> given_dtype, Ints shape,
           nb::handle dy_obj, std::optional<std::string> dy_dtype, Ints stride, Ints padding_lo, Ints padding_hi,
           Ints dilation, Ints input_dilation, Ints output_padding, int64_t groups, bool flip,
           const std::string& device, nb::object budget, int threads, std::optional<std::string> algorithm,
           std::optional<std::string> isa, const std::string& precision) -> nb::object {
          CallOptions o{stride, padding_lo, padding_hi, dilation, input_dilation, output_padding, groups, flip};
          return run_gradient(api, given_obj, given_dtype, shape, dy_obj, dy_dtype, o,
                              exec_options(device, budget, threads, algorithm, isa, precision));
        },
        "api"_a, "given"_a, "given_dtype"_a.none(), "shape"_a, "dy"_a, "dy_dtype"_a.none(), "stride"_a,
        "padding_lo"_a, "padding_hi"_a, "dilation"_a, "input_dilation"_a, "output_padding"_a, "groups"_a, "flip"_a,
        "device"_a, "budget"_a.none(), "threads"_a, "algorithm"_a.none(), "isa"_a.none() = nb::none(),
        "precision"_a = "exact",
        "Runs a gradient `api` (a convnd.grad function name: <forward>_input or <forward>_weight): `given` is "
        "the weight (_input) or the input (_weight), `shape` the other tensor's shape, `dy` the cotangent of the "
        "forward output; returns the gradient as a new array.");

  nb::class_<Call>(m, "Call",
                   "A call's options converted once (see `run`): run(x, w) for a forward function, "
                   "run_grad(given, shape, dy) for a gradient. Each returns a new array that exports "
                   "DLPack (__dlpack__), on the host or the device: framework adapters take it without "
                   "a copy.")
      .def("__init__",
           [](Call* self, const std::string& api, Ints stride, Ints padding_lo, Ints padding_hi, Ints dilation,
              Ints input_dilation, Ints output_padding, int64_t groups, bool flip, const std::string& device,
              nb::object budget, int threads, std::optional<std::string> algorithm, std::optional<std::string> isa,
              const std::string& precision) {
             CallOptions o{stride, padding_lo, padding_hi, dilation, input_dilation, output_padding, groups, flip};
             new (self) Call(api, std::move(o), exec_options(device, budget, threads, algorithm, isa, precision));
           },
           "api"_a, "stride"_a, "padding_lo"_a, "padding_hi"_a, "dilation"_a, "input_dilation"_a, "output_padding"_a,
           "groups"_a, "flip"_a, "device"_a, "budget"_a.none(), "threads"_a, "algorithm"_a.none(),
           "isa"_a.none() = nb::none(), "precision"_a = "exact")
      .def("run", &Call::run, "x"_a, "w"_a, "channels_first"_a = false)
      .def("run_grad", &Call::run_grad, "given"_a, "shape"_a, "dy"_a, "channels_first"_a = false);

  m.def("default_workspace_budget", &convnd::default_workspace_budget,
        "The default workspace budget in bytes (CONVND_WORKSPACE_BYTES overrides it).");
  m.def("has_cuda", []() {
#ifdef CONVND_WITH_CUDA
    return true;
#else
    return false;
#endif
  }, "Whether this build has the CUDA backend.");
}
