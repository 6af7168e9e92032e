// Depthwise convs (one input and one output channel per group) by a direct kernel that
// vectorises over channels. A GEMM would have N = K = taps·1: all packing, no reuse.
#include <algorithm>
#include <memory>

#include "cpu/config_checks.h"
#include "cpu/isas.h"
#include "cpu/direct_kernels.h"
#include "cpu/thread_pool.h"
#include "engine/algorithm.h"

namespace convnd {

namespace {

int64_t compute_size(DType t) { return t == DType::f64 ? 8 : 4; }

// Accumulator elements per thread: a block of channels, or a run of one channel's positions.
int64_t acc_elems(const Geometry& g) { return std::max<int64_t>(g.c, 256); }

// One task per output row (n, p0, p1); the kernel vectorises over channels.
struct DepthwiseDirectConfig final : PlanConfig {
  Isa isa = Isa::generic;     // the direct-kernel table
  int64_t rows_per_task = 1;  // output rows (n, p0, p1) per task
  int64_t line_chunks = 1;    // pieces each row's last axis is cut into (long 1-D rows)
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"rows_per_task", rows_per_task}, {"line_chunks", line_chunks}};
  }
  // Outputs are independent and each sums its taps in a fixed order: any split, same bits.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if ((name != "rows_per_task" && name != "line_chunks") || value < 1) return nullptr;
    auto c = std::make_shared<DepthwiseDirectConfig>(*this);
    (name == "rows_per_task" ? c->rows_per_task : c->line_chunks) = value;
    return c;
  }
};

class DepthwiseDirect final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"depthwise_direct", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "weights as [taps, C] + one accumulator row of C per thread (compute type)"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    if (g.cg() != 1 || g.og() != 1) return "needs one input and one output channel per group";
    if (g.idil != Dims{1, 1, 1}) return "a transposed conv with stride > 1 (or input dilation) needs polyphase_gemm's stride phases";
    const int64_t cs = compute_size(g.dtype);
    // Repacked weights [taps, C] plus one accumulator row of max(C, 256) per thread.
    const int64_t ws = (g.kernel_volume() * g.c + int64_t(req.threads) * (acc_elems(g) + 16)) * cs;
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) + " bytes of workspace; the budget is " + std::to_string(req.budget);
    }
    auto cfg = std::make_shared<DepthwiseDirectConfig>();
    cfg->isa = req.isa;
    // Few rows (a long 1-D signal): cut each row's positions so that every thread has work.
    const int64_t rows = g.n * g.out[0] * g.out[1], threads = std::max(req.threads, 1);
    if (rows < 4 * threads) cfg->line_chunks = std::clamp<int64_t>((4 * threads + rows - 1) / rows, 1, (g.out[2] + 1023) / 1024);
    out->workspace_bytes = ws;
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const DepthwiseDirectConfig* cfg = config_of<DepthwiseDirectConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const int64_t taps = g.kernel_volume(), cs = compute_size(g.dtype), es = dtype_size(g.dtype);
    if (Status st = check_config_isa(ctx.plan, cfg->isa); !st.ok()) return st;
    // One accumulator row per thread of the pool this plan runs on.
    if (Status st = check_workspace_fits(ctx.plan, (taps * g.c + int64_t(ctx.pool->threads()) * (acc_elems(g) + 16)) * cs,
                                         "the weights and one accumulator row per thread");
        !st.ok())
      return st;
    char* ws = static_cast<char*>(ctx.workspace);
    // wt[t, c] = w[c, t'] in the compute type, with t' the flipped tap when flip is set.
    const char* w = static_cast<const char*>(ctx.w.data);
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t src = g.flip ? taps - 1 - t : t;
        const double val = load_as_double(w + (c * taps + src) * es, g.dtype);
        if (cs == 8) reinterpret_cast<double*>(ws)[t * g.c + c] = val;
        else reinterpret_cast<float*>(ws)[t * g.c + c] = float(val);
      }
    DepthwiseFn fn = direct_kernels(cfg->isa).depthwise[int(g.dtype)];
    const int64_t rows = g.n * g.out[0] * g.out[1], per = std::max<int64_t>(cfg->rows_per_task, 1);
    const int64_t chunks = std::clamp<int64_t>(cfg->line_chunks, 1, std::max<int64_t>(g.out[2], 1));
    const int64_t row_tasks = (rows + per - 1) / per, tasks = row_tasks * chunks;
    char* acc = ws + taps * g.c * cs;  // one accumulator row per thread
    const bool done = ctx.pool->parallel_for_reporting(
        tasks,
        [&](int64_t task, int thread) {
          const int64_t rt = task / chunks, ch = task % chunks;
          DepthwiseArgs a{&g, ctx.x.data, ws, ctx.y.data, acc + int64_t(thread) * (acc_elems(g) + 16) * cs};
          a.p2_begin = g.out[2] * ch / chunks;
          a.p2_end = g.out[2] * (ch + 1) / chunks;
          fn(a, rt * per, std::min(rows, (rt + 1) * per));
        },
        [&](int64_t finished) { return ctx.report(double(finished) / double(tasks)); });
    if (!done) return Status(ErrorKind::interrupted, "[depthwise_direct] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& depthwise_direct_algorithm() {
  static const DepthwiseDirect a;
  return a;
}

}  // namespace convnd
