// weight_grad_depthwise: the weight gradient of a conv with one input channel per group
// (depthwise, any channel multiplier) by a direct, memory-bound loop:
//   dw[o, tap] = Σ_rows dy[row, o] · x[row's position + tap, o / (O/g)].
// A GEMM per group would be 1 x taps: all packing and no reuse. Each block of rows is summed
// into a partial [taps, O] (vectorised over channels, rows in order), and the blocks are added
// in order by src/cpu/blocked_reduction.h: bitwise the same for any threads or budget.
// A single channel (C = O = 1, e.g. the dual of a long-kernel transposed conv) vectorises over
// the taps, or over the rows for short kernels. The loops are src/cpu/isa/direct_kernels.inc's
// depthwise_wgrad, compiled for each instruction set.
#include <algorithm>
#include <cstring>
#include <memory>

#include "cpu/blocked_reduction.h"
#include "cpu/isas.h"
#include "cpu/config_checks.h"
#include "cpu/direct_kernels.h"

namespace convnd {

namespace {

struct DepthwiseWgradConfig final : PlanConfig {
  Isa isa = Isa::generic;     // the direct-kernel table
  int64_t wave = 1;           // blocks computed at once
  int64_t channel_chunks = 1; // tasks a block is split into (channel ranges)
  int threads = 1;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"block_rows", kWgradBlockRows}, {"wave", wave}, {"channel_chunks", channel_chunks}};
  }
  // Channels are independent: any split gives the same bits.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "channel_chunks" || value < 1) return nullptr;
    auto c = std::make_shared<DepthwiseWgradConfig>(*this);
    c->channel_chunks = value;
    return c;
  }
};

class WeightGradDepthwise final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"weight_grad_depthwise", Backend::cpu, {Direction::bwd_w}, kAllDTypes,
                                   kCpuIsas,
                                   "taps x O float64 sums and compensations + wave x taps x O partials"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    if (g.cg() != 1) return "needs one input channel per group";
    const int64_t cs = g.dtype == DType::f64 ? 8 : 4, elems = g.kernel_volume() * g.o;
    const int64_t blocks = wgrad_blocks(g), threads = std::max(req.threads, 1);
    for (int64_t wave = wgrad_wave_max(blocks, threads, elems * cs);; wave = (wave + 1) / 2) {
      const int64_t ws = round_up_64(elems * 16) + round_up_64(wave * elems * cs);
      if (ws <= req.budget) {
        auto cfg = std::make_shared<DepthwiseWgradConfig>();
        cfg->isa = req.isa;
        cfg->wave = wave;
        cfg->threads = req.threads;
        // Split channels when blocks alone do not give every thread work (64 channels at least).
        const int64_t busy = std::min(blocks, wave);
        cfg->channel_chunks = busy >= 2 * threads ? 1 : std::clamp<int64_t>((2 * threads + busy - 1) / busy, 1,
                                                                            (g.o + 63) / 64);
        out->workspace_bytes = ws;
        out->config = std::move(cfg);
        return {};
      }
      if (wave == 1) {
        *min_ws = ws;
        return "needs " + std::to_string(ws) + " bytes of workspace; the budget is " + std::to_string(req.budget);
      }
    }
  }
  Status run(const RunContext& ctx) const override {
    const DepthwiseWgradConfig* cfg = config_of<DepthwiseWgradConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (Status st = check_config_isa(ctx.plan, cfg->isa); !st.ok()) return st;
    const DepthwiseWgradFn fn = direct_kernels(cfg->isa).depthwise_wgrad[int(ctx.g.dtype)];
    const Geometry& g = ctx.g;
    const bool f64 = g.dtype == DType::f64;
    const int64_t cs = f64 ? 8 : 4, taps = g.kernel_volume(), elems = taps * g.o;
    const int64_t blocks = wgrad_blocks(g), rows = wgrad_rows(g);
    if (Status st = check_workspace_fits(ctx.plan, round_up_64(elems * 16) + round_up_64(cfg->wave * elems * cs),
                                         "the sums and partials");
        !st.ok())
      return st;
    if (blocks == 0) {
      std::memset(ctx.w.data, 0, size_t(g.w_elems() * dtype_size(g.dtype)));
      return Status::Ok();
    }
    char* ws = static_cast<char*>(ctx.workspace);
    double* acc = reinterpret_cast<double*>(ws);
    double* comp = acc + elems;
    void* slots = ws + round_up_64(elems * 16);
    // Chunks of whole 64-byte vectors (16 channels): the kernel takes a chunk's channels a vector
    // at a time, and a chunk ending inside a vector would redo it or, narrower than one, run row
    // by row (the same bits either way, but slower).
    const int64_t chunks = std::min(cfg->channel_chunks, g.o), per = (g.o + chunks * 16 - 1) / (chunks * 16) * 16;
    auto partial = [&](int64_t b, int64_t part, void* slot, int) {
      const int64_t r0 = b * kWgradBlockRows, r1 = std::min(rows, r0 + kWgradBlockRows);
      const int64_t o0 = part * per, o1 = std::min(g.o, o0 + per);
      if (o0 >= o1) return;
      fn(g, ctx.x.data, ctx.y.data, r0, r1, o0, o1, slot);
    };
    if (Status st = blocked_reduce(ctx, blocks, elems, chunks, cfg->wave, f64, slots, acc, comp, partial, 0.0, 1.0);
        !st.ok())
      return st;
    // Slot element t·O + o is dw[o, t] (w [O, taps, 1]).
    char* dw = static_cast<char*>(ctx.w.data);
    const int64_t es = dtype_size(g.dtype);
    ctx.pool->parallel_for(g.o, [&](int64_t o, int) {
      for (int64_t t = 0; t < taps; ++t) store_from_double(dw + (o * taps + t) * es, g.dtype, acc[t * g.o + o] + comp[t * g.o + o]);
    });
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& weight_grad_depthwise_algorithm() {
  static const WeightGradDepthwise a;
  return a;
}

}  // namespace convnd
