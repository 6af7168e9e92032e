// Gradient tests' shared pieces: a case with its cotangent, the float64 gradient oracle with
// its error scale, and running one direction with an algorithm forced (CPU and CUDA tests).
#pragma once
#include "test_util.h"

namespace convnd::test {

/// A forward case plus a random cotangent dy of y's shape.
struct GradCase {
  Case c;
  Tensor dy;
};
inline GradCase make_grad_case(const Problem& p, Rng& rng, Fill fill = Fill::uniform, int64_t range = 3) {
  Problem fwd = p;
  fwd.dir = Direction::fwd;
  GradCase g{make_case(fwd, rng, fill, range), {}};
  g.c.problem.dir = p.dir;
  g.c.geometry.dir = p.dir;
  g.dy = random_tensor(p.dtype, y_shape(g.c.shapes), rng, fill, range);
  return g;
}

/// The gradient (dx for bwd_d, dw for bwd_w) by the float64 oracle, and the sum of |terms|
/// of each element (the same oracle on absolute values), row-major.
inline Oracle grad_oracle(const GradCase& gc) {
  Geometry g64 = gc.c.geometry;
  g64.dtype = DType::f64;
  Tensor x64 = cast(gc.c.x, DType::f64), w64 = cast(gc.c.w, DType::f64), dy64 = cast(gc.dy, DType::f64);
  const bool data = gc.c.problem.dir == Direction::bwd_d;
  Tensor out = Tensor::empty(DType::f64, data ? x_shape(gc.c.shapes) : w_shape(gc.c.shapes));
  auto eval = [&] {
    if (data) reference_conv_backward_data(g64, dy64, w64, out);
    else reference_conv_backward_weight(g64, x64, dy64, out);
    return to_doubles(out);
  };
  Oracle r;
  r.value = eval();
  for (Tensor* t : {&x64, &w64, &dy64})
    for (int64_t i = 0; i < t->numel(); ++i) t->ptr<double>()[i] = std::fabs(t->ptr<double>()[i]);
  r.abssum = eval();
  return r;
}

/// The oracle in the problem's dtype (the float64 sums rounded once).
inline Tensor grad_reference(const GradCase& gc) {
  const bool data = gc.c.problem.dir == Direction::bwd_d;
  Tensor out = Tensor::empty(gc.c.problem.dtype, data ? x_shape(gc.c.shapes) : w_shape(gc.c.shapes));
  if (data) reference_conv_backward_data(gc.c.geometry, gc.dy, gc.c.w, out);
  else reference_conv_backward_weight(gc.c.geometry, gc.c.x, gc.dy, out);
  return out;
}

/// Runs `plan` (gc's direction) into a fresh NaN-filled output (every element must be written).
inline Tensor run_grad_plan(const Plan& plan, const GradCase& gc, const ExecOptions& opt = {}) {
  const bool data = gc.c.problem.dir == Direction::bwd_d;
  Tensor out = Tensor::empty(gc.c.problem.dtype, data ? x_shape(gc.c.shapes) : w_shape(gc.c.shapes));
  fill(out.view(), std::nan(""));
  if (data) execute(plan, out, gc.c.w, gc.dy, opt);
  else execute(plan, gc.c.x, out, gc.dy, opt);
  return out;
}

/// Runs gc's direction through make_plan/execute with `opt` (algorithm forced when set) into a
/// fresh NaN-filled output; false when the plan is unsupported (the algorithm declines).
inline bool run_grad(const GradCase& gc, const ExecOptions& opt, Tensor* out, std::string* chosen = nullptr) {
  Plan plan;
  try {
    plan = make_plan(gc.c.problem, opt);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::unsupported) return false;
    throw;
  }
  if (!opt.algorithm.empty()) EXPECT_EQ(plan.algorithm, opt.algorithm);
  if (chosen) *chosen = plan.algorithm;
  *out = run_grad_plan(plan, gc, opt);
  return true;
}

}  // namespace convnd::test
