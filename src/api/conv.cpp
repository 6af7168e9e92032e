// The public conv functions: tensors + options -> Problem -> plan -> execute. Every variant
// lowers to one Problem (and from there to one 3-D conv_general Geometry).
#include <convnd/conv.h>

#include <string>

namespace convnd {

namespace {

[[noreturn]] void fail(std::string_view api, const std::string& what) {
  throw Error(ErrorKind::invalid, "[" + std::string(api) + "] " + what);
}

// Reads the tensors' shapes into p: x [N, spatial..., C], w [O, kernel..., C/g].
void shapes_from_tensors(std::string_view api, int rank, const TensorView& x, const TensorView& w, Problem* p) {
  if (x.ndim() != rank + 2)
    fail(api, "input x must have " + std::to_string(rank + 2) + " dimensions [N, spatial..., C], got " +
                  std::to_string(x.ndim()));
  if (w.ndim() != rank + 2)
    fail(api, "weight w must have " + std::to_string(rank + 2) + " dimensions [O, kernel..., C/groups], got " +
                  std::to_string(w.ndim()));
  if (x.dtype != w.dtype)
    fail(api, "input dtype " + std::string(dtype_name(x.dtype)) + " and weight dtype " +
                  std::string(dtype_name(w.dtype)) + " must match");
  p->rank = rank;
  p->dtype = x.dtype;
  p->n = x.shape[0];
  p->c = x.shape[rank + 1];
  p->o = w.shape[0];
  for (int i = 0; i < rank; ++i) {
    p->in[i] = x.shape[1 + i];
    p->k[i] = w.shape[1 + i];
  }
}

void check_weight_channels(std::string_view api, const TensorView& w, const Problem& p) {
  int64_t cw = w.shape[p.rank + 1];
  if (p.groups >= 1 && p.c % p.groups == 0 && cw != p.c / p.groups)
    fail(api, "weight channels (" + std::to_string(cw) + ") must equal input channels / groups (" +
                  std::to_string(p.c) + " / " + std::to_string(p.groups) + " = " +
                  std::to_string(p.c / p.groups) + "); problem: " + to_string(p));
}

// Per-axis option: empty keeps the default, one value applies to every axis.
void per_axis(std::string_view api, const char* name, const std::vector<int64_t>& v, int rank, Dims* dst) {
  if (v.empty()) return;
  if (v.size() != 1 && int(v.size()) != rank)
    fail(api, std::string(name) + " has " + std::to_string(v.size()) + " values; expected 1 or " +
                  std::to_string(rank));
  for (int i = 0; i < rank; ++i) (*dst)[i] = v[v.size() == 1 ? 0 : i];
}


}  // namespace

Problem problem_for_conv_general(const TensorView& x, const TensorView& w, const ConvGeneralOptions& opt,
                                 std::string_view api) {
  const int rank = x.ndim() - 2;
  if (rank < 1 || rank > 3)
    fail(api, "input x must have 3, 4 or 5 dimensions [N, spatial..., C], got " + std::to_string(x.ndim()));
  Problem p;
  shapes_from_tensors(api, rank, x, w, &p);
  p.groups = opt.groups;
  p.flip = opt.flip;
  per_axis(api, "stride", opt.stride, rank, &p.stride);
  per_axis(api, "padding_lo", opt.padding_lo, rank, &p.pad_lo);
  per_axis(api, "padding_hi", opt.padding_hi.empty() ? opt.padding_lo : opt.padding_hi, rank, &p.pad_hi);
  per_axis(api, "kernel_dilation", opt.kernel_dilation, rank, &p.dil);
  per_axis(api, "input_dilation", opt.input_dilation, rank, &p.idil);
  throw_if_error(validate(p, nullptr, api));
  check_weight_channels(api, w, p);
  return p;
}

Problem problem_for_conv(int rank, const TensorView& x, const TensorView& w, const ConvOptions& opt) {
  const std::string api = "conv" + std::to_string(rank) + "d";
  Problem p;
  shapes_from_tensors(api, rank, x, w, &p);
  p.groups = opt.groups;
  per_axis(api, "stride", opt.stride, rank, &p.stride);
  per_axis(api, "padding", opt.padding, rank, &p.pad_lo);
  per_axis(api, "padding", opt.padding, rank, &p.pad_hi);
  per_axis(api, "dilation", opt.dilation, rank, &p.dil);
  throw_if_error(validate(p, nullptr, api));
  check_weight_channels(api, w, p);
  return p;
}

Problem problem_for_conv_transpose(int rank, const TensorView& x, const TensorView& w,
                                   const ConvTransposeOptions& opt) {
  const std::string api = "conv_transpose" + std::to_string(rank) + "d";
  Problem p;
  p.op = Op::conv_transpose;
  shapes_from_tensors(api, rank, x, w, &p);
  p.groups = opt.groups;
  per_axis(api, "stride", opt.stride, rank, &p.stride);
  per_axis(api, "padding", opt.padding, rank, &p.pad_lo);
  per_axis(api, "padding", opt.padding, rank, &p.pad_hi);
  per_axis(api, "dilation", opt.dilation, rank, &p.dil);
  per_axis(api, "output_padding", opt.output_padding, rank, &p.outpad);
  throw_if_error(validate(p, nullptr, api));
  check_weight_channels(api, w, p);
  return p;
}

Tensor conv_general(const TensorView& x, const TensorView& w, const ConvGeneralOptions& opt, const ExecOptions& exec) {
  return run(problem_for_conv_general(x, w, opt), x, w, exec);
}
Tensor conv1d(const TensorView& x, const TensorView& w, const ConvOptions& opt, const ExecOptions& exec) {
  return run(problem_for_conv(1, x, w, opt), x, w, exec);
}
Tensor conv2d(const TensorView& x, const TensorView& w, const ConvOptions& opt, const ExecOptions& exec) {
  return run(problem_for_conv(2, x, w, opt), x, w, exec);
}
Tensor conv3d(const TensorView& x, const TensorView& w, const ConvOptions& opt, const ExecOptions& exec) {
  return run(problem_for_conv(3, x, w, opt), x, w, exec);
}
Tensor conv_transpose1d(const TensorView& x, const TensorView& w, const ConvTransposeOptions& opt,
                        const ExecOptions& exec) {
  return run(problem_for_conv_transpose(1, x, w, opt), x, w, exec);
}
Tensor conv_transpose2d(const TensorView& x, const TensorView& w, const ConvTransposeOptions& opt,
                        const ExecOptions& exec) {
  return run(problem_for_conv_transpose(2, x, w, opt), x, w, exec);
}
Tensor conv_transpose3d(const TensorView& x, const TensorView& w, const ConvTransposeOptions& opt,
                        const ExecOptions& exec) {
  return run(problem_for_conv_transpose(3, x, w, opt), x, w, exec);
}

// ---- gradients -----------------------------------------------------------------------------
// The forward problem comes from the shapes (a data-less view stands for the tensor being
// differentiated); dy is then checked against it by execute(), which names the problem.

namespace {

TensorView shape_only(const Shape& shape, DType dtype) {
  return TensorView(nullptr, dtype, shape);
}

void check_rank(std::string_view api, int rank) {
  if (rank < 1 || rank > 3) fail(api, "rank must be 1, 2 or 3, got " + std::to_string(rank));
}

Problem with_dir(Problem p, Direction d) {
  p.dir = d;
  return p;
}

}  // namespace

Tensor conv_general_input(const Shape& x_shape, const TensorView& w, const TensorView& dy,
                          const ConvGeneralOptions& opt, const ExecOptions& exec) {
  const Problem p = problem_for_conv_general(shape_only(x_shape, w.dtype), w, opt, "conv_general_input");
  return run_backward_data(with_dir(p, Direction::bwd_d), w, dy, exec);
}

Tensor conv_general_weight(const TensorView& x, const Shape& w_shape, const TensorView& dy,
                           const ConvGeneralOptions& opt, const ExecOptions& exec) {
  const Problem p = problem_for_conv_general(x, shape_only(w_shape, x.dtype), opt, "conv_general_weight");
  return run_backward_weight(with_dir(p, Direction::bwd_w), x, dy, exec);
}

Tensor conv_input(int rank, const Shape& x_shape, const TensorView& w, const TensorView& dy, const ConvOptions& opt,
                  const ExecOptions& exec) {
  check_rank("conv_input", rank);
  const Problem p = problem_for_conv(rank, shape_only(x_shape, w.dtype), w, opt);
  return run_backward_data(with_dir(p, Direction::bwd_d), w, dy, exec);
}

Tensor conv_weight(int rank, const TensorView& x, const Shape& w_shape, const TensorView& dy,
                   const ConvOptions& opt, const ExecOptions& exec) {
  check_rank("conv_weight", rank);
  const Problem p = problem_for_conv(rank, x, shape_only(w_shape, x.dtype), opt);
  return run_backward_weight(with_dir(p, Direction::bwd_w), x, dy, exec);
}

Tensor conv_transpose_input(int rank, const Shape& x_shape, const TensorView& w, const TensorView& dy,
                            const ConvTransposeOptions& opt, const ExecOptions& exec) {
  check_rank("conv_transpose_input", rank);
  const Problem p = problem_for_conv_transpose(rank, shape_only(x_shape, w.dtype), w, opt);
  return run_backward_data(with_dir(p, Direction::bwd_d), w, dy, exec);
}

Tensor conv_transpose_weight(int rank, const TensorView& x, const Shape& w_shape, const TensorView& dy,
                             const ConvTransposeOptions& opt, const ExecOptions& exec) {
  check_rank("conv_transpose_weight", rank);
  const Problem p = problem_for_conv_transpose(rank, x, shape_only(w_shape, x.dtype), opt);
  return run_backward_weight(with_dir(p, Direction::bwd_w), x, dy, exec);
}

}  // namespace convnd
