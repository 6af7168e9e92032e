// The oracle as the planner's last resort: it implements every problem, slowly, with no
// workspace. `convnd plan` names it when nothing faster applies.
#include <algorithm>

#include "cpu/thread_pool.h"
#include "plan/algorithm.h"
#include <convnd/reference.h>

namespace convnd {

namespace {

class ReferenceAlgorithm final : public Algorithm {
 public:
  std::string_view name() const override { return "reference"; }
  Backend backend() const override { return Backend::cpu; }
  bool fallback() const override { return true; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t*) const override {
    plan->workspace_bytes = 0;
    plan->index_bits = 64;
    plan->tiles = {{"rows_per_task", 1}};
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const Geometry& g = ctx.g;
    const int64_t rows = g.n * g.out[0] * g.out[1];
    const bool done = ctx.pool->parallel_for_reporting(
        rows, [&](int64_t row, int) { reference_conv_rows(g, ctx.x, ctx.w, ctx.y, row, row + 1); },
        [&](int64_t finished) { return ctx.report(double(finished) / double(rows)); });
    if (!done) return Status(ErrorKind::interrupted, "[reference] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& reference_algorithm() {
  static const ReferenceAlgorithm a;
  return a;
}

}  // namespace convnd
