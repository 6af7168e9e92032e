// convnd._mlx_ext: convnd's convolutions as MLX primitives (the native half of convnd.mlx).
//
// One primitive class computes one direction of one convnd Problem (the forward problem's
// fields with Problem::dir = fwd, bwd_d or bwd_w). Every direction is bilinear in its two
// inputs, so its vjp and jvp are again the three directions of the same problem:
//   fwd   (x, w)  -> y   vjp: dx = bwd_d(w, c),  dw = bwd_w(x, c)
//   bwd_d (w, dy) -> dx  vjp: dw = bwd_w(c, dy), ddy = fwd(c, w)
//   bwd_w (x, dy) -> dw  vjp: dx = bwd_d(c, dy), ddy = fwd(x, c)
// (c: the cotangent of the primitive's output), which makes gradients of any order work,
// inside mx.compile too. eval_cpu plans on the calling thread (so invalid problems and budget
// errors raise from mx.eval) and runs convnd's execute() on MLX's CPU stream, reading MLX's
// row-major channels-last arrays in place (MLX and convnd share the layouts: x [N, spatial..., C],
// w [O, kernel..., C/groups], y [N, out..., O], for transposed convolutions too).
#include <convnd/conv.h>
#include <convnd/plan.h>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mlx/array.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "mlx/stream.h"
#include "mlx/utils.h"
#include "mlx/version.h"

namespace nb = nanobind;
namespace mx = mlx::core;
using namespace nb::literals;

namespace {

using Ints = std::vector<int64_t>;
using convnd::Direction;

// ---- dtypes and views ----------------------------------------------------------------------

std::optional<convnd::DType> convnd_dtype(mx::Dtype t) {
  if (t == mx::float32) return convnd::DType::f32;
  if (t == mx::float16) return convnd::DType::f16;
  if (t == mx::bfloat16) return convnd::DType::bf16;
  if (t == mx::float64) return convnd::DType::f64;
  return std::nullopt;
}

std::string dtype_text(mx::Dtype t) {
  std::ostringstream s;
  s << t;
  return s.str();
}

// "(1, 8, 8, 3)", as Python prints a shape.
std::string shape_text(const mx::Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

convnd::Shape shape_of(const mx::array& a) {
  return convnd::Shape(a.shape().begin(), a.shape().end());
}

// A data-less view: what problem_for_* reads (shapes and the dtype).
convnd::TensorView shape_view(const convnd::Shape& shape, convnd::DType t) {
  return convnd::TensorView(nullptr, t, shape);
}

// ---- problems ------------------------------------------------------------------------------

// The forward Problem of a call of `api` (a convnd.mlx function name), validated by convnd.
convnd::Problem problem_for_call(const std::string& api, const convnd::TensorView& x, const convnd::TensorView& w,
                                 const Ints& stride, const Ints& padding_lo, const Ints& padding_hi,
                                 const Ints& dilation, const Ints& input_dilation, const Ints& output_padding,
                                 int64_t groups, bool flip) {
  if (api == "conv_general") {
    convnd::ConvGeneralOptions g;
    g.stride = stride;
    g.padding_lo = padding_lo;
    g.padding_hi = padding_hi;
    g.kernel_dilation = dilation;
    g.input_dilation = input_dilation;
    g.groups = groups;
    g.flip = flip;
    return convnd::problem_for_conv_general(x, w, g);
  }
  for (int rank = 1; rank <= 3; ++rank) {
    if (api == "conv" + std::to_string(rank) + "d") {
      convnd::ConvOptions c;
      c.stride = stride;
      c.padding = padding_lo;
      c.dilation = dilation;
      c.groups = groups;
      return convnd::problem_for_conv(rank, x, w, c);
    }
    if (api == "conv_transpose" + std::to_string(rank) + "d") {
      convnd::ConvTransposeOptions t;
      t.stride = stride;
      t.padding = padding_lo;
      t.dilation = dilation;
      t.output_padding = output_padding;
      t.groups = groups;
      return convnd::problem_for_conv_transpose(rank, x, w, t);
    }
  }
  throw nb::value_error(("unknown operation '" + api + "'").c_str());
}

convnd::Problem with_dir(convnd::Problem p, Direction d) {
  p.dir = d;
  return p;
}

// The shape of what direction `p.dir` writes: y (fwd), x (bwd_d) or w (bwd_w).
mx::Shape output_shape(const convnd::Problem& p) {
  const convnd::TensorShapes ts = convnd::tensor_shapes(p, convnd::lower(p));
  const auto& s = p.dir == Direction::fwd ? ts.y : p.dir == Direction::bwd_d ? ts.x : ts.w;
  mx::Shape out;
  for (int i = 0; i < ts.ndim; ++i) {
    if (s[i] > INT32_MAX)
      throw convnd::Error(convnd::ErrorKind::unsupported,
                          "[convnd.mlx] an extent of " + std::to_string(s[i]) +
                              " does not fit MLX's 32-bit shapes; problem: " + convnd::to_string(p));
    out.push_back(mx::ShapeElem(s[i]));
  }
  return out;
}

// The problem `p` with the extents its two inputs have now (they differ from the ones it was
// made with only under mx.compile(shapeless=True)); the extents no input carries are kept.
convnd::Problem problem_for_inputs(convnd::Problem p, const mx::array& a, const mx::array& b) {
  const int r = p.rank;
  auto take_x = [&](const mx::array& x) {
    p.n = x.shape(0);
    for (int i = 0; i < r; ++i) p.in[i] = x.shape(1 + i);
    p.c = x.shape(r + 1);
  };
  auto take_w = [&](const mx::array& w) {
    p.o = w.shape(0);
    for (int i = 0; i < r; ++i) p.k[i] = w.shape(1 + i);
  };
  if (a.ndim() != size_t(r + 2) || b.ndim() != size_t(r + 2))
    throw convnd::Error(convnd::ErrorKind::invalid, "[convnd.mlx] inputs must have " + std::to_string(r + 2) +
                                                        " dimensions; problem: " + convnd::to_string(p));
  if (p.dir == Direction::fwd) {
    take_x(a);
    take_w(b);
  } else if (p.dir == Direction::bwd_d) {
    take_w(a);
    p.n = b.shape(0);
  } else {
    take_x(a);
    p.o = b.shape(r + 1);
  }
  convnd::lower(p);  // validates, naming the problem
  return p;
}

// ---- the primitive -------------------------------------------------------------------------

// Execution options without the progress callback (MLX runs the work on its own thread).
struct RunOptions {
  int64_t budget = -1;
  int threads = 0;
  std::string algorithm;
  convnd::Isa isa = convnd::Isa::automatic;

  bool operator==(const RunOptions&) const = default;
  convnd::ExecOptions exec() const {
    convnd::ExecOptions e;
    e.budget = budget;
    e.threads = threads;
    e.algorithm = algorithm;
    e.isa = isa;
    return e;
  }
};

mx::array make_conv(const convnd::Problem& p, const RunOptions& run, mx::Stream s, const mx::array& a,
                    const mx::array& b);

class ConvndConv : public mx::Primitive {
 public:
  ConvndConv(mx::Stream stream, convnd::Problem problem, RunOptions run)
      : mx::Primitive(stream), problem_(problem), run_(std::move(run)) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("[convnd.mlx] runs on MLX's CPU stream only; problem: " + convnd::to_string(problem_));
  }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;

  const char* name() const override {
    switch (problem_.dir) {
      case Direction::fwd: return "ConvndConv";
      case Direction::bwd_d: return "ConvndConvInputGrad";
      case Direction::bwd_w: return "ConvndConvWeightGrad";
    }
    return "ConvndConv";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    const auto* o = dynamic_cast<const ConvndConv*>(&other);
    return o && o->problem_ == problem_ && o->run_ == run_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {output_shape(problem_for_inputs(problem_, inputs[0], inputs[1]))};
  }

 private:
  // The problem in direction d, made from the same forward problem.
  mx::array direction(Direction d, const mx::array& a, const mx::array& b) {
    return make_conv(with_dir(problem_, d), run_, stream(), a, b);
  }

  convnd::Problem problem_;  // the forward problem's fields; dir says which tensor is computed
  RunOptions run_;
};

mx::array make_conv(const convnd::Problem& p, const RunOptions& run, mx::Stream s, const mx::array& a,
                    const mx::array& b) {
  return mx::array(output_shape(p), a.dtype(), std::make_shared<ConvndConv>(s, p, run), {a, b});
}

// Where an MLX array's elements are (its buffer exists once its own eval_cpu has run).
struct Raw {
  char* data;
  convnd::Shape shape, strides;  // strides in elements
};

Raw raw_of(const mx::array& a) {
  return {const_cast<char*>(a.data<char>()), shape_of(a), convnd::Shape(a.strides().begin(), a.strides().end())};
}

// A host view of an array, in place; one with a negative stride (a reversed slice) is gathered
// into `copy` first, as convnd takes non-negative strides only.
convnd::TensorView view_of(const Raw& a, convnd::DType t, convnd::Tensor* copy) {
  bool negative = false;
  for (int64_t s : a.strides) negative |= s < 0;
  if (!negative) return convnd::TensorView(a.data, t, a.shape, a.strides);
  *copy = convnd::Tensor::empty(t, a.shape);
  const int64_t item = convnd::dtype_size(t), n = copy->numel(), nd = int64_t(a.shape.size());
  char* dst = static_cast<char*>(copy->data());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;  // elements from a.data to the current index
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * item, a.data + off * item, item);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < a.shape[d]) {
        off += a.strides[d];
        break;
      }
      off -= a.strides[d] * (a.shape[d] - 1);
      idx[d] = 0;
    }
  }
  return copy->view();
}

void ConvndConv::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  const mx::array& a = inputs[0];  // x (fwd, bwd_w) or w (bwd_d)
  const mx::array& b = inputs[1];  // w (fwd) or dy (bwd_d, bwd_w)
  mx::array& out = outputs[0];     // y, dx or dw
  // Planned here, on the thread that evaluates: its errors raise from mx.eval.
  const convnd::Problem p = problem_for_inputs(problem_, a, b);
  const convnd::ExecOptions exec = run_.exec();
  const convnd::Plan plan = convnd::make_plan(p, exec);
  convnd::check_memory(plan, convnd::Allocating::output);
  out.set_data(mx::allocator::malloc(out.nbytes()));

  auto& encoder = mx::cpu::get_command_encoder(stream());
  encoder.set_input_array(a);
  encoder.set_input_array(b);
  encoder.set_output_array(out);
  const convnd::DType t = p.dtype;
  // The inputs' buffers exist now, but earlier tasks of this stream may still be writing them:
  // they are read in the task.
  encoder.dispatch([plan, exec, t, ar = raw_of(a), br = raw_of(b), or_ = raw_of(out)]() {
    convnd::Tensor a_copy, b_copy;
    const convnd::TensorView av = view_of(ar, t, &a_copy), bv = view_of(br, t, &b_copy);
    const convnd::TensorView ov(or_.data, t, or_.shape);
    switch (plan.problem.dir) {
      case Direction::fwd: convnd::execute(plan, av, bv, ov, exec); break;
      case Direction::bwd_d: convnd::execute(plan, ov, av, bv, exec); break;
      case Direction::bwd_w: convnd::execute(plan, av, ov, bv, exec); break;
    }
  });
}

std::vector<mx::array> ConvndConv::vjp(const std::vector<mx::array>& primals,
                                       const std::vector<mx::array>& cotangents, const std::vector<int>& argnums,
                                       const std::vector<mx::array>&) {
  const mx::array& a = primals[0];
  const mx::array& b = primals[1];
  const mx::array& c = cotangents[0];
  std::vector<mx::array> out;
  for (int arg : argnums) {
    switch (problem_.dir) {
      case Direction::fwd:  // a = x, b = w
        out.push_back(arg == 0 ? direction(Direction::bwd_d, b, c) : direction(Direction::bwd_w, a, c));
        break;
      case Direction::bwd_d:  // a = w, b = dy; output dx
        out.push_back(arg == 0 ? direction(Direction::bwd_w, c, b) : direction(Direction::fwd, c, a));
        break;
      case Direction::bwd_w:  // a = x, b = dy; output dw
        out.push_back(arg == 0 ? direction(Direction::bwd_d, c, b) : direction(Direction::fwd, a, c));
        break;
    }
  }
  return out;
}

std::vector<mx::array> ConvndConv::jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                                       const std::vector<int>& argnums) {
  // Bilinear: d f(a, b) = f(da, b) + f(a, db).
  std::optional<mx::array> sum;
  for (size_t i = 0; i < argnums.size(); ++i) {
    mx::array term = argnums[i] == 0 ? direction(problem_.dir, tangents[i], primals[1])
                                     : direction(problem_.dir, primals[0], tangents[i]);
    sum = sum ? mx::add(*sum, term, stream()) : term;
  }
  return {*sum};
}

// ---- Python entry points -------------------------------------------------------------------

RunOptions run_options(const nb::object& budget, int threads, const std::optional<std::string>& algorithm,
                       const std::optional<std::string>& isa) {
  RunOptions r;
  if (budget.is_none()) {
    r.budget = -1;
  } else if (nb::isinstance<nb::str>(budget)) {
    const std::string s = nb::cast<std::string>(budget);
    if (!convnd::parse_byte_size(s, &r.budget))
      throw nb::value_error(("budget '" + s + "' is not a byte count such as 268435456 or '256MiB'").c_str());
  } else {
    int64_t v;
    if (nb::isinstance<nb::bool_>(budget) || !nb::try_cast<int64_t>(budget, v))
      throw nb::type_error("budget must be an int (bytes), a string such as '64MiB', or None");
    if (v < 0) throw nb::value_error(("budget (" + std::to_string(v) + ") must be >= 0 bytes").c_str());
    r.budget = v;
  }
  if (threads < 0 || threads > convnd::kMaxThreads)
    throw nb::value_error(("threads (" + std::to_string(threads) + ") must be from 0 (every hardware thread) to " +
                           std::to_string(convnd::kMaxThreads))
                              .c_str());
  r.threads = threads;
  if (algorithm) r.algorithm = *algorithm;
  if (isa && (!convnd::parse_isa(*isa, &r.isa) || r.isa == convnd::Isa::sm_90))
    throw nb::value_error(("isa must be 'auto', 'generic', 'avx2', 'avx512', 'avx512_bf16' or 'amx', got '" + *isa + "'").c_str());
  return r;
}

// MLX's `stream` argument (None, a Stream, a ThreadLocalStream, a Device or a DeviceType) as
// a CPU stream: None is the CPU's default stream whatever the default device is.
mx::Stream cpu_stream(nb::handle h) {
  mx::StreamOrDevice sod = std::monostate{};
  if (!h.is_none()) {
    mx::Stream s(0, mx::Device::cpu);
    mx::ThreadLocalStream tls(0, mx::Device::cpu);
    mx::Device d(mx::Device::cpu);
    mx::Device::DeviceType dt = mx::Device::cpu;
    if (nb::try_cast<mx::Stream>(h, s)) sod = s;
    else if (nb::try_cast<mx::ThreadLocalStream>(h, tls)) sod = tls;
    else if (nb::try_cast<mx::Device>(h, d)) sod = d;
    else if (nb::try_cast<mx::Device::DeviceType>(h, dt)) sod = dt;
    else
      throw nb::type_error(("stream must be an mlx.core.Stream or Device, or None, got " +
                            nb::cast<std::string>(nb::str(h.type().attr("__name__"))))
                               .c_str());
  }
  mx::Stream s = std::holds_alternative<std::monostate>(sod) ? mx::default_stream(mx::Device(mx::Device::cpu))
                                                              : mx::to_stream(sod);
  if (s.device.type != mx::Device::cpu)
    throw convnd::Error(convnd::ErrorKind::unsupported,
                        "[convnd.mlx] runs on MLX's CPU stream only; pass stream=mlx.core.cpu or None");
  return s;
}

convnd::DType checked_dtype(const std::string& api, const mx::array& a, const char* what, const mx::array& x,
                            const mx::array& w) {
  auto t = convnd_dtype(a.dtype());
  if (!t) {
    std::ostringstream m;
    m << "[" << api << "] " << what << " has dtype " << dtype_text(a.dtype())
      << "; convnd computes float32, float16, bfloat16 and float64; input shape " << shape_text(x.shape())
      << ", weight shape " << shape_text(w.shape());
    throw nb::type_error(m.str().c_str());
  }
  return *t;
}

mx::array conv(const std::string& api, const mx::array& x, const mx::array& w, const Ints& stride,
               const Ints& padding_lo, const Ints& padding_hi, const Ints& dilation, const Ints& input_dilation,
               const Ints& output_padding, int64_t groups, bool flip, const nb::object& budget, int threads,
               const std::optional<std::string>& algorithm, const std::optional<std::string>& isa,
               nb::handle stream) {
  const convnd::DType xt = checked_dtype(api, x, "input", x, w), wt = checked_dtype(api, w, "weight", x, w);
  convnd::Problem p;
  try {
    p = problem_for_call(api, shape_view(shape_of(x), xt), shape_view(shape_of(w), wt), stride, padding_lo,
                         padding_hi, dilation, input_dilation, output_padding, groups, flip);
  } catch (const convnd::Error& e) {
    const std::string msg = e.what();
    if (msg.find("; problem: ") != std::string::npos) throw;
    std::ostringstream m;
    m << msg << "; input shape " << shape_text(x.shape()) << ", weight shape " << shape_text(w.shape());
    throw convnd::Error(e.kind(), m.str());
  }
  const RunOptions run = run_options(budget, threads, algorithm, isa);
  return make_conv(p, run, cpu_stream(stream), x, w);
}

}  // namespace

NB_MODULE(_mlx_ext, m) {
  m.doc() = "convnd's MLX primitives. Use convnd.mlx; this module's API is internal.";

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

  m.attr("mlx_version") = std::to_string(MLX_VERSION_MAJOR) + "." + std::to_string(MLX_VERSION_MINOR) + "." +
                          std::to_string(MLX_VERSION_PATCH);

  m.def("conv", &conv, "api"_a, "x"_a, "w"_a, "stride"_a, "padding_lo"_a, "padding_hi"_a, "dilation"_a,
        "input_dilation"_a, "output_padding"_a, "groups"_a, "flip"_a, "budget"_a.none(), "threads"_a,
        "algorithm"_a.none(), "isa"_a.none(), "stream"_a.none(),
        "The output of a call of `api` (a convnd function name) as a lazy MLX array: a ConvndConv primitive "
        "on MLX's CPU stream, differentiable to any order.");

  m.def("accepts_arrays", [](const mx::array&) { return true; }, "a"_a,
        "True: this module and mlx.core share nanobind's type registry (an mlx.core.array converts).");
}
