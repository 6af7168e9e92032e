// The oracle as the planner's last resort: it implements every problem, slowly, with no
// workspace. `convnd plan` names it when nothing faster applies.
#include <convnd/reference.h>

#include <algorithm>

#include "cpu/thread_pool.h"
#include "cpu/isas.h"
#include "engine/algorithm.h"

namespace convnd {

namespace {

struct ReferenceConfig final : PlanConfig {
  int64_t rows_per_task = 1;  // output rows (n, p0, p1) per task on the thread pool
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"rows_per_task", rows_per_task}};
  }
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "rows_per_task" || value < 1) return nullptr;
    auto c = std::make_shared<ReferenceConfig>(*this);
    c->rows_per_task = value;
    return c;
  }
};

class ReferenceAlgorithm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"reference", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas, "none", /*fallback=*/true};
    return t;
  }
  std::string plan(const Geometry&, const PlanRequest&, PlanChoice* out, int64_t*) const override {
    out->config = std::make_shared<ReferenceConfig>();
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const ReferenceConfig* cfg = config_of<ReferenceConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const int64_t rows = g.n * g.out[0] * g.out[1], per = std::max<int64_t>(cfg->rows_per_task, 1);
    const int64_t tasks = (rows + per - 1) / per;
    const bool done = ctx.pool->parallel_for_reporting(
        tasks,
        [&](int64_t task, int) {
          reference_conv_rows(g, ctx.x, ctx.w, ctx.y, task * per, std::min(rows, (task + 1) * per));
        },
        [&](int64_t finished) { return ctx.report(double(finished) / double(tasks)); });
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
