// Gradients computed as other convolutions (src/core/gradient.h): an adapter is an algorithm
// of the registry whose plan is another algorithm's plan for the dual problem, plus the
// permuted copy of the weight (bwd_d) or of the weight gradient (bwd_w) that the duality needs.
//   data_grad:        bwd_d of g = the forward conv g' of dy with w'. Every forward algorithm
//                     of the backend (polyphase for strided convs, GEMM for 1x1, depthwise,
//                     the long-kernel gather) thus serves the input gradient as well.
//   weight_grad_dual: bwd_w of an input-dilated conv with stride 1 (a transposed conv) = the
//                     permuted bwd_w of g' (stride = g's input dilation, no inserted zeros).
// Each backend instantiates both with its own algorithm list and its own permuted copy.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/gradient.h"
#include "engine/algorithm.h"

namespace convnd {

/// Plans g with the first algorithm of `list` that serves it, as the planner does: traits
/// first (direction, dtype, ISA), then the algorithm; a fallback only when nothing was over the
/// budget alone. Returns "" and fills *plan (geometry, algorithm, config, workspace, ISA,
/// threads, budget; problem from `problem`) and *chosen, or the reasons every one said no
/// (and *min_ws: the smallest workspace one of them would have needed, or -1).
inline std::string plan_with(const std::vector<const Algorithm*>& list, const Geometry& g, const PlanRequest& req,
                             const Problem& problem, Backend backend, Plan* plan, const Algorithm** chosen,
                             int64_t* min_ws) {
  std::string reasons;
  *min_ws = -1;
  for (const Algorithm* a : list) {
    const AlgorithmTraits& t = a->traits();
    if (!t.directions.has(g.dir) || !t.dtypes.has(g.dtype) || !t.isas.has(req.isa)) continue;
    if (t.fallback && *min_ws >= 0) continue;
    PlanChoice choice;
    int64_t need = -1;
    std::string why = a->plan(g, req, &choice, &need);
    if (why.empty() && !choice.config) why = "returned no configuration (a bug)";
    if (why.empty()) {
      plan->problem = problem;
      plan->geometry = g;
      plan->backend = backend;
      plan->algorithm = std::string(a->name());
      plan->isa = req.isa;
      plan->workspace_bytes = choice.workspace_bytes;
      plan->budget_bytes = req.budget;
      plan->index_bits = choice.index_bits;
      plan->threads = req.threads;
      plan->config = std::move(choice.config);
      *chosen = a;
      return {};
    }
    reasons += (reasons.empty() ? "" : "; ") + std::string(a->name()) + ": " + why;
    if (need >= 0 && (*min_ws < 0 || need < *min_ws)) *min_ws = need;
    // As in the planner: a weight gradient never changes algorithm (summation order) for the
    // budget alone.
    if (g.dir == Direction::bwd_w && need >= 0) break;
  }
  return reasons.empty() ? std::string("no algorithm serves it") : reasons;
}

/// An adapter's configuration: the inner plan it runs, and the bytes of its own permuted copy
/// (0 when the permutation is the identity: one channel in and out per group; for data_grad,
/// also when the inner plan reads w in place, Algorithm::with_swapped_weight).
struct ViaConfig final : PlanConfig {
  const Algorithm* inner = nullptr;
  Plan inner_plan;
  int64_t copy_bytes = 0;  // at the start of the workspace, rounded up to 64
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    std::vector<std::pair<std::string, int64_t>> p{{"copy_bytes", copy_bytes}};
    for (auto& [k, v] : inner_plan.parameters()) p.emplace_back("via." + k, v);
    return p;
  }
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name.substr(0, 4) != "via." || !inner_plan.config) return nullptr;
    auto changed = inner_plan.config->with_parameter(name.substr(4), value);
    if (!changed) return nullptr;
    auto c = std::make_shared<ViaConfig>(*this);
    c->inner_plan.config = std::move(changed);
    return c;
  }
  std::string via() const override { return inner ? std::string(inner->name()) : std::string(); }
};

/// What a backend supplies to the adapters: its algorithms and a permuted copy in its memory.
class GradientAdapter : public Algorithm {
 protected:
  /// The backend's ordered list (the adapter itself is in it; traits keep it from planning
  /// itself for the dual problem).
  virtual const std::vector<const Algorithm*>& candidates() const = 0;
  /// A copy over 4-D index space `d.shape`: to_permuted: dst[Σ i·d.strides] = src[dense i];
  /// otherwise dst[dense i] = src[Σ i·d.strides]. Elements of `elem_bytes`; memory of the
  /// backend (host on the CPU, the device on CUDA), enqueued like the algorithms' kernels.
  virtual Status permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                         int elem_bytes) const = 0;

  // Plans the dual problem `dual` for outer problem g, after the adapter's own `copy` bytes.
  std::string plan_dual(const Geometry& g, const Geometry& dual, int64_t copy, const PlanRequest& req,
                        PlanChoice* out, int64_t* min_ws) const {
    if (copy > req.budget) {
      // The bytes to report are the copy's plus what the dual needs beside it at the least
      // (planned with no budget), so that a budget of *min_ws does plan.
      PlanRequest none = req;
      none.budget = 0;
      Plan unused;
      const Algorithm* chosen = nullptr;
      int64_t need = -1;
      plan_with(candidates(), dual, none, Problem{}, traits().backend, &unused, &chosen, &need);
      *min_ws = copy + std::max<int64_t>(need, 0);
      return "its permuted copy needs " + std::to_string(copy) + " bytes of workspace; the budget is " +
             std::to_string(req.budget);
    }
    PlanRequest sub = req;
    sub.budget = req.budget - copy;
    auto cfg = std::make_shared<ViaConfig>();
    cfg->copy_bytes = copy;
    Problem none;  // the inner plan's problem is only used in messages; the outer one is g's
    none.dtype = g.dtype;
    none.dir = dual.dir;
    int64_t need = -1;
    const std::string why =
        plan_with(candidates(), dual, sub, none, traits().backend, &cfg->inner_plan, &cfg->inner, &need);
    if (!why.empty()) {
      if (need >= 0) *min_ws = need + copy;
      return "the dual problem (" + std::string(direction_name(dual.dir)) + " with stride and input dilation "
             "swapped): " + why;
    }
    out->workspace_bytes = copy + cfg->inner_plan.workspace_bytes;
    out->index_bits = cfg->inner_plan.index_bits;
    out->config = std::move(cfg);
    return {};
  }

  RunContext inner_context(const RunContext& ctx, const ViaConfig& cfg, const TensorView& x, const TensorView& w,
                           const TensorView& y) const {
    void* ws = cfg.inner_plan.workspace_bytes > 0 ? static_cast<char*>(ctx.workspace) + cfg.copy_bytes : nullptr;
    return RunContext{cfg.inner_plan, cfg.inner_plan.geometry, x, w, y, ws, ctx.pool, ctx.progress, ctx.stream};
  }

  static Status check(const RunContext& ctx, const ViaConfig& cfg) {
    if (!cfg.inner) return Status(ErrorKind::invalid, "[" + ctx.plan.algorithm + "] the plan has no inner algorithm");
    if (cfg.copy_bytes + cfg.inner_plan.workspace_bytes > ctx.plan.workspace_bytes)
      return Status(ErrorKind::invalid, "[" + ctx.plan.algorithm + "] the inner plan needs more workspace than the "
                                        "plan has (a hand-made plan?)");
    return Status::Ok();
  }
};

/// bwd_d as the dual forward conv.
class DataGradAdapter : public GradientAdapter {
 public:
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    const Geometry dual = dual_forward(g);
    if (weight_dual_is_identity(g)) return plan_dual(g, dual, 0, req, out, min_ws);
    // First with no copy and the whole budget: where the dual's algorithm reads w in place
    // with its channel axes swapped (with_swapped_weight), w' is never written, which saves
    // w's bytes of workspace and a transposing pass over them per call (2.4 MB and about 7% of
    // the 3x3 c256 on 14x14 input gradient; its B panels then pack by copying rows).
    PlanChoice direct;
    int64_t need = -1;
    if (plan_in_place(g, dual, req, &direct, &need)) {
      *out = std::move(direct);
      return {};
    }
    const int64_t copy = round_up_64(g.w_elems() * dtype_size(g.dtype));
    const std::string why = plan_dual(g, dual, copy, req, out, min_ws);
    // Over the budget: the smallest workspace is the in-place plan's where that plan, given
    // the bytes it asked for, reads w in place (else the copy's, as plan_dual said).
    if (!why.empty() && need >= 0 && (*min_ws < 0 || need < *min_ws)) {
      PlanRequest at = req;
      at.budget = need;
      int64_t unused = -1;
      if (plan_in_place(g, dual, at, &direct, &unused)) *min_ws = need;
    }
    return why;
  }
  Status run(const RunContext& ctx) const override {
    const ViaConfig* cfg = config_of<ViaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (Status st = check(ctx, *cfg); !st.ok()) return st;
    const Geometry& g = ctx.g;
    const Geometry& d = cfg->inner_plan.geometry;
    const void* wd = ctx.w.data;
    if (cfg->copy_bytes > 0) {
      if (Status st = permute(ctx, ctx.w.data, ctx.workspace, weight_dual(g), true, int(dtype_size(g.dtype)));
          !st.ok())
        return st;
      wd = ctx.workspace;
    }
    // The dual reads dy as its input and w' as its weight, and writes dx as its output. With
    // no copy and a non-identity w', the inner plan reads w itself as w' with swapped channel
    // axes (with_swapped_weight): the view's shape is w''s, its memory w's.
    const DenseViews v = dense_views(d, ctx.y.data, wd, ctx.x.data, ctx.x.device);
    return cfg->inner->run(inner_context(ctx, *cfg, v.x, v.w, v.y));
  }

 private:
  // The dual planned with no copy whose algorithm reads w in place (with_swapped_weight):
  // true and *out, else false (*need as plan_dual sets it).
  bool plan_in_place(const Geometry& g, const Geometry& dual, const PlanRequest& req, PlanChoice* out,
                     int64_t* need) const {
    if (!plan_dual(g, dual, 0, req, out, need).empty()) return false;
    const auto* via = static_cast<const ViaConfig*>(out->config.get());
    auto swapped = via->inner->with_swapped_weight(*via->inner_plan.config, g.dtype);
    if (!swapped) return false;
    auto cfg = std::make_shared<ViaConfig>(*via);
    cfg->inner_plan.config = std::move(swapped);
    out->config = std::move(cfg);
    return true;
  }
};

/// bwd_w of a stride-1 input-dilated conv as the permuted bwd_w of its dual.
class WeightGradDualAdapter : public GradientAdapter {
 public:
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    bool dilated = false;
    for (int j = 0; j < 3; ++j) {
      if (g.stride[j] != 1) return "needs stride 1 (the dual of a strided conv has input dilation again)";
      dilated = dilated || g.idil[j] > 1;
    }
    if (!dilated) return "needs input dilation (a transposed conv); without it there are no zeros to skip";
    Geometry dual = dual_forward(g);
    dual.dir = Direction::bwd_w;
    const int64_t copy = weight_dual_is_identity(g) ? 0 : round_up_64(g.w_elems() * dtype_size(g.dtype));
    return plan_dual(g, dual, copy, req, out, min_ws);
  }
  Status run(const RunContext& ctx) const override {
    const ViaConfig* cfg = config_of<ViaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (Status st = check(ctx, *cfg); !st.ok()) return st;
    const Geometry& g = ctx.g;
    const Geometry& d = cfg->inner_plan.geometry;
    void* dwd = cfg->copy_bytes > 0 ? ctx.workspace : ctx.w.data;
    // The dual's input is dy, its cotangent is x, and its weight gradient is dw'.
    const DenseViews v = dense_views(d, ctx.y.data, dwd, ctx.x.data, ctx.x.device);
    if (Status st = cfg->inner->run(inner_context(ctx, *cfg, v.x, v.w, v.y)); !st.ok()) return st;
    if (cfg->copy_bytes > 0) return permute(ctx, dwd, ctx.w.data, weight_dual(g), false, int(dtype_size(g.dtype)));
    return Status::Ok();
  }
};

}  // namespace convnd
