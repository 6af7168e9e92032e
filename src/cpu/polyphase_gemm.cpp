// polyphase_gemm: input-dilated and transposed convs as one dense implicit GEMM per stride
// phase (src/plan/phases.h), with a strided selection of the kernel as B.
#include <algorithm>

#include "cpu/conv_gemm.h"
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
  std::string_view name() const override { return "polyphase_gemm"; }
  Backend backend() const override { return Backend::cpu; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t* min_ws) const override {
    if (all_ones(g.idil)) return "no input dilation (a dense conv needs no phases)";
    if (phase_count(g) > kMaxPhases) return "more than " + std::to_string(kMaxPhases) + " stride phases";
    // The workspace grows with the sub-kernel; plan for the largest one.
    Phase widest;
    for (int j = 0; j < 3; ++j) {
      auto axis = axis_phases(g, j);
      widest.axis[j] = *std::max_element(axis.begin(), axis.end(), [](const PhaseAxis& a, const PhaseAxis& b) {
        return a.taps < b.taps;
      });
      widest.axis[j].count = std::max<int64_t>(widest.axis[j].count, 1);
    }
    if (widest.taps() == 0) {  // every output is zero
      plan->workspace_bytes = 0;
      plan->tiles = {{"phases", phase_count(g)}};
      return {};
    }
    ConvGemmTiles t;
    std::string why = plan_conv_gemm(phase_geometry(g, widest), false, req.budget, req.threads, &t, min_ws);
    if (!why.empty()) return why;
    record_tiles(t, plan);
    plan->tiles.insert(plan->tiles.begin(), {"phases", phase_count(g)});
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const Geometry& g = ctx.g;
    const std::vector<PhaseAxis> ax[3] = {axis_phases(g, 0), axis_phases(g, 1), axis_phases(g, 2)};
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
          DenseConv dc;
          dc.sub = phase_geometry(g, ph);
          dc.w_k = g.k;
          dc.y_out = g.out;
          for (int j = 0; j < 3; ++j) {
            dc.first[j] = ph.axis[j].first;
            dc.step[j] = ph.axis[j].step;
            dc.k_first[j] = ph.axis[j].k_first;
            dc.k_step[j] = ph.axis[j].k_step;
          }
          ConvGemmTiles t = tiles_from_plan(ctx.plan, dc.sub, false);
          if (t.workspace < 0) return Status(ErrorKind::backend, "[polyphase_gemm] a phase does not fit the planned workspace");
          Status st = run_conv_gemm(t, dc, ctx.x.data, ctx.w.data, ctx.y.data, ctx.workspace, ctx.pool,
                                    progress_of(ctx, g.y_elems(), done));
          if (!st.ok()) return st;
          done += ph.outputs() * g.n * g.o;
        }
    return Status::Ok();
  }

 private:
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
