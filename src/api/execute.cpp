// The public execute() and run(), and device tensors: the API layer checks what the caller
// handed in against the plan, then hands the plan to its backend, which runs exactly it.
#include <convnd/plan.h>

#include "core/memory.h"
#include "plan/registry.h"

namespace convnd {

namespace {

std::string with_problem(const std::string& msg, const Problem& p) {
  return msg.find("; problem: ") == std::string::npos ? msg + "; problem: " + to_string(p) : msg;
}

void check_tensor(const char* what, const TensorView& t, const int64_t* shape, int ndim, DType dtype,
                  const Problem& p) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorKind::invalid, with_problem(std::string("[execute] ") + what + " " + why, p));
  };
  if (t.dtype != dtype)
    fail("has dtype " + std::string(dtype_name(t.dtype)) + ", the problem's is " + std::string(dtype_name(dtype)));
  if (t.ndim() != ndim || int(t.strides.size()) != ndim) fail("must have " + std::to_string(ndim) + " dimensions");
  for (int i = 0; i < ndim; ++i)
    if (t.shape[i] != shape[i])
      fail("has extent " + std::to_string(t.shape[i]) + " in dimension " + std::to_string(i) + ", expected " +
           std::to_string(shape[i]));
  for (int i = 0; i < ndim; ++i)
    if (t.strides[i] < 0) fail("has a negative stride");
  if (!t.data) fail("has no data");
}

}  // namespace

void execute(const Plan& plan, const TensorView& x, const TensorView& w, const TensorView& y,
             const ExecOptions& opt) {
  const Problem& p = plan.problem;
  const Algorithm* algo = find_algorithm(plan.algorithm);
  if (!algo || algo->backend() != plan.backend)
    throw Error(ErrorKind::invalid,
                with_problem("[execute] the plan names no " + std::string(backend_name(plan.backend)) +
                                 " algorithm '" + plan.algorithm + "'",
                             p));
  if (!plan.config)
    throw Error(ErrorKind::invalid, with_problem("[execute] the plan has no configuration", p));
  if (!algo->traits().directions.has(p.dir))
    throw Error(ErrorKind::invalid, with_problem("[execute] " + plan.algorithm + " does not compute dir=" +
                                                     std::string(direction_name(p.dir)),
                                                 p));
  // The same three tensors in every direction; the direction says which one is written.
  static const char* const names[3][3] = {{"input x", "weight w", "output y"},
                                          {"input gradient dx", "weight w", "cotangent dy"},
                                          {"input x", "weight gradient dw", "cotangent dy"}};
  const char* const* name = names[int(p.dir)];
  const TensorShapes ts = tensor_shapes(p, plan.geometry);
  check_tensor(name[0], x, ts.x.data(), ts.ndim, p.dtype, p);
  check_tensor(name[1], w, ts.w.data(), ts.ndim, p.dtype, p);
  check_tensor(name[2], y, ts.y.data(), ts.ndim, p.dtype, p);
  backend_impl(plan.backend).execute(plan, *algo, x, w, y, opt);
}

void check_memory(const Plan& plan, Allocating what) {
  const Status st = backend_impl(plan.backend).check_memory(plan, what);
  if (!st.ok()) throw Error(st.kind(), with_problem(st.message(), plan.problem));
}

namespace {

// Plans `problem` (its dir must be `dir`), checks memory and runs it with the output made
// here: the two given tensors go where execute() takes them.
Tensor run_direction(const Problem& problem, Direction dir, const char* api, const TensorView& a,
                     const TensorView& b, const ExecOptions& opt) {
  if (problem.dir != dir)
    throw Error(ErrorKind::invalid, with_problem(std::string("[") + api + "] needs a problem with dir=" +
                                                     std::string(direction_name(dir)) + ", got dir=" +
                                                     std::string(direction_name(problem.dir)),
                                                 problem));
  Plan plan = make_plan(problem, opt);
  check_memory(plan, Allocating::output);
  const TensorShapes ts = tensor_shapes(plan.problem, plan.geometry);
  const auto& shape = dir == Direction::fwd ? ts.y : dir == Direction::bwd_d ? ts.x : ts.w;
  Tensor out = Tensor::empty(problem.dtype, Shape(shape.begin(), shape.begin() + ts.ndim));
  if (dir == Direction::fwd) execute(plan, a, b, out, opt);
  else if (dir == Direction::bwd_d) execute(plan, out, a, b, opt);
  else execute(plan, a, out, b, opt);
  return out;
}

}  // namespace

Tensor run(const Problem& problem, const TensorView& x, const TensorView& w, const ExecOptions& opt) {
  return run_direction(problem, Direction::fwd, "run", x, w, opt);
}

Tensor run_backward_data(const Problem& problem, const TensorView& w, const TensorView& dy, const ExecOptions& opt) {
  return run_direction(problem, Direction::bwd_d, "run_backward_data", w, dy, opt);
}

Tensor run_backward_weight(const Problem& problem, const TensorView& x, const TensorView& dy,
                           const ExecOptions& opt) {
  return run_direction(problem, Direction::bwd_w, "run_backward_weight", x, dy, opt);
}

Tensor Tensor::empty(DType dtype, const Shape& shape, int device) {
  return empty(dtype, shape, device, nullptr);
}

Tensor Tensor::empty(DType dtype, const Shape& shape, int device, void* cuda_stream) {
  if (device < 0) return empty(dtype, shape);
  // Device memory comes from the backend that owns the device.
  std::shared_ptr<void> storage = cuda_backend().allocate(dense_bytes(dtype, shape), device, cuda_stream);
  TensorView view(storage.get(), dtype, shape);
  view.device = device;
  return from_storage(std::move(storage), std::move(view));
}

}  // namespace convnd
