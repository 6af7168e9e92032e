// polyphase_gemm: input-dilated and transposed convs as one dense implicit GEMM per stride
// phase (src/core/phases.h), with a strided selection of the kernel as B.
#include <algorithm>

#include "cpu/conv_gemm.h"
#include "cpu/isas.h"
#include "core/phases.h"

namespace convnd {

namespace {

// Phases are enumerated (one GEMM each); beyond this many the per-phase work is tiny anyway.
constexpr int64_t kMaxPhases = int64_t(1) << 20;

// --- polyphase: input-dilated and transposed convs as one dense conv per output phase -----
// Each phase's outputs are a dense conv of the undilated input with a sub-kernel, so no
// multiply-add touches an inserted zero and nothing is unfolded.
class PolyphaseGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"polyphase_gemm", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "max over the phases' K of: packed B (K x n_tile) + per-thread A and C blocks"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    if (all_ones(g.idil)) return "no stride phases to split: neither a strided transposed conv nor input dilation";
    if (phase_count(g) > kMaxPhases) return "more than " + std::to_string(kMaxPhases) + " stride phases";
    auto cfg = std::make_shared<PolyphaseGemmConfig>();
    cfg->phases = phase_count(g);
    // Per axis, one representative phase for each tap count (the one with the most outputs:
    // the GEMM's blocks are chosen for the largest M of that K).
    std::vector<PhaseAxis> reps[3];
    for (int j = 0; j < 3; ++j)
      for (const PhaseAxis& a : axis_phases(g, j)) {
        if (a.taps == 0 || a.count == 0) continue;
        auto same = std::find_if(reps[j].begin(), reps[j].end(), [&](const PhaseAxis& r) { return r.taps == a.taps; });
        if (same == reps[j].end()) reps[j].push_back(a);
        else if (a.count > same->count) *same = a;
      }
    int64_t workspace = 0;
    for (const PhaseAxis& a0 : reps[0])
      for (const PhaseAxis& a1 : reps[1])
        for (const PhaseAxis& a2 : reps[2]) {
          const Phase ph{{a0, a1, a2}};
          const int64_t K = ph.taps() * g.cg();
          if (cfg->tiles_for(K)) continue;
          ConvGemmTiles t;
          std::string why = plan_conv_gemm(phase_geometry(g, ph), false, req.budget, req.threads, req.isa, &t, min_ws);
          if (!why.empty()) return why;
          auto at = std::lower_bound(cfg->k.begin(), cfg->k.end(), K);
          cfg->by_k.insert(cfg->by_k.begin() + (at - cfg->k.begin()), t);
          cfg->k.insert(at, K);
          workspace = std::max(workspace, t.workspace);
        }
    // No phase with taps (every output is zero) leaves the table empty and needs no workspace.
    out->workspace_bytes = workspace;
    out->config = std::move(cfg);
    return {};
  }
  std::shared_ptr<const PlanConfig> with_swapped_weight(const PlanConfig& config, DType dtype) const override {
    return with_swapped_weight_of<PolyphaseGemmConfig>(config, dtype);
  }
  Status run(const RunContext& ctx) const override {
    const PolyphaseGemmConfig* cfg = config_of<PolyphaseGemmConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const std::vector<PhaseAxis> ax[3] = {axis_phases(g, 0), axis_phases(g, 1), axis_phases(g, 2)};
    // Every reduction length the phases have must have its tiles, checked before any output is
    // written: a phase's kc (and so its bits) comes from the plan, never from a default.
    if (Status st = check_every_k(*cfg, ctx, ax); !st.ok()) return st;
    const int64_t es = dtype_size(g.dtype);
    int64_t done = 0;
    for (const PhaseAxis& a0 : ax[0])
      for (const PhaseAxis& a1 : ax[1])
        for (const PhaseAxis& a2 : ax[2]) {
          Phase ph{{a0, a1, a2}};
          if (ph.outputs() == 0) continue;
          if (ph.taps() == 0) {
            // No tap of this phase lands on real input: its outputs are zeros.
            zero_fill(ctx, ph, es);
            done += ph.outputs() * g.n * g.o;
            if (!ctx.report(double(done) / double(g.y_elems()))) return Status(ErrorKind::interrupted, "[polyphase_gemm] cancelled");
            continue;
          }
          const ConvGemmTiles* t = cfg->tiles_for(ph.taps() * g.cg());
          if (!t) return missing_k(ph.taps() * g.cg());  // not reached: check_every_k found them
          Status st = run_conv_gemm(*t, dense_conv_of(g, ph, cfg->w_swapped), ctx, progress_of(ctx, g.y_elems(), done));
          if (!st.ok()) return st;
          done += ph.outputs() * g.n * g.o;
        }
    return Status::Ok();
  }

 private:
  // Phase ph of g as a dense conv writing its outputs in place in y.
  static DenseConv dense_conv_of(const Geometry& g, const Phase& ph, bool w_swapped) {
    DenseConv dc;
    dc.w_swapped = w_swapped;
    dc.sub = phase_geometry(g, ph);
    dc.w_k = g.k;
    dc.y_out = g.out;
    for (int j = 0; j < 3; ++j) {
      dc.first[j] = ph.axis[j].first;
      dc.step[j] = ph.axis[j].step;
      dc.k_first[j] = ph.axis[j].k_first;
      dc.k_step[j] = ph.axis[j].k_step;
    }
    return dc;
  }

  static Status missing_k(int64_t K) {
    return Status(ErrorKind::invalid,
                  "[polyphase_gemm] the plan has no tiles for the phases of K = " + std::to_string(K));
  }

  // The phases are every combination of one phase per axis, so their reduction lengths are the
  // combinations of the per-axis tap counts (at most 2 per axis) of phases that have outputs.
  // One phase per combination stands for the rest: the tiles depend on K, not on the counts.
  static Status check_every_k(const PolyphaseGemmConfig& cfg, const RunContext& ctx,
                              const std::vector<PhaseAxis> (&ax)[3]) {
    std::vector<PhaseAxis> reps[3];
    for (int j = 0; j < 3; ++j)
      for (const PhaseAxis& a : ax[j])
        if (a.count > 0 && a.taps > 0 &&
            std::none_of(reps[j].begin(), reps[j].end(), [&](const PhaseAxis& r) { return r.taps == a.taps; }))
          reps[j].push_back(a);
    const Geometry& g = ctx.g;
    for (const PhaseAxis& a0 : reps[0])
      for (const PhaseAxis& a1 : reps[1])
        for (const PhaseAxis& a2 : reps[2]) {
          const Phase ph{{a0, a1, a2}};
          const ConvGemmTiles* t = cfg.tiles_for(ph.taps() * g.cg());
          if (!t) return missing_k(ph.taps() * g.cg());
          if (Status st = check_conv_gemm_tiles(*t, dense_conv_of(g, ph, cfg.w_swapped), ctx.plan); !st.ok()) return st;
        }
    return Status::Ok();
  }

  static void zero_fill(const RunContext& ctx, const Phase& ph, int64_t es) {
    const Geometry& g = ctx.g;
    char* y = static_cast<char*>(ctx.y.data);
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t m0 = 0; m0 < ph.axis[0].count; ++m0)
        for (int64_t m1 = 0; m1 < ph.axis[1].count; ++m1)
          for (int64_t m2 = 0; m2 < ph.axis[2].count; ++m2) {
            const int64_t p0 = ph.axis[0].first + ph.axis[0].step * m0, p1 = ph.axis[1].first + ph.axis[1].step * m1,
                          p2 = ph.axis[2].first + ph.axis[2].step * m2;
            std::fill_n(y + ((((n * g.out[0] + p0) * g.out[1] + p1) * g.out[2] + p2) * g.o) * es, g.o * es, char(0));
          }
  }
};


}  // namespace

const Algorithm& polyphase_gemm_algorithm() {
  static const PolyphaseGemm a;
  return a;
}

}  // namespace convnd
