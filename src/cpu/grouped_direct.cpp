// Grouped convs with few channels per group (ResNeXt's 32 groups of 8, say) and convs with few
// input channels (an RGB stem, 3-D layers of 32 channels), by a direct kernel with register tiles. As a GEMM per group
// they are tiny products (N = O/g of 4 to 64, K = taps·C/g) whose time goes into packing each
// group's panels and into micro-tiles wider than the group: 24 ms where oneDNN takes 4.4 for a
// 3x3 c256 g=32 layer on 28² (2 AVX2 cores). Here every output position broadcasts its inputs
// from a window of the input lines against weights laid out as vectors of the group's output
// channels (cpu/isa/direct_kernels.inc, `grouped`).
#include <algorithm>
#include <memory>

#include "core/checked.h"
#include "cpu/isas.h"
#include "cpu/config_checks.h"
#include "cpu/direct_kernels.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"
#include "engine/algorithm.h"

namespace convnd {

namespace {

int64_t compute_size(DType t) { return t == DType::f64 ? 8 : 4; }
int64_t lanes_of(DType t) { return 32 / compute_size(t); }
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The window of input positions a task of `chunk` outputs reads on the last axis (whole tiles
// of 12 positions, the widest tile).
int64_t span_of(const Geometry& g, int64_t chunk) {
  return (round_up(chunk, 12) - 1) * g.stride[2] + (g.k[2] - 1) * g.kdil[2] + 1;
}

struct GroupedDirectConfig final : PlanConfig {
  Isa isa = Isa::generic;
  int64_t chunk = 1;   // output positions of the last axis per task
  int64_t span = 1;    // window positions per line (span_of(chunk))
  int64_t og_pad = 0;  // output channels per group, rounded up to the vector lanes
  // The weight is stored [g, C/g, taps, O/g] (an input gradient's primal weight read as its dual
  // conv's, DenseConv::w_swapped): the repacking reads it there instead of a permuted copy.
  bool w_swapped = false;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"chunk", chunk}, {"span", span}, {"og_pad", og_pad}, {"w_swapped", w_swapped}};
  }
  // Every output sums its taps and channels in a fixed order: a shorter chunk (whose window
  // fits in the planned one) changes no bit.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "chunk" || value < 1 || value > chunk) return nullptr;
    auto c = std::make_shared<GroupedDirectConfig>(*this);
    c->chunk = value;
    return c;
  }
};

// Workspace: the repacked weights, then one window per thread (64-byte aligned pieces).
int64_t weights_bytes(const Geometry& g, int64_t og_pad) {
  return round_up(g.groups * g.kernel_volume() * g.cg() * og_pad * compute_size(g.dtype), 64);
}
int64_t window_bytes(const Geometry& g, int64_t span) {
  return round_up(g.k[0] * g.k[1] * span * g.c * compute_size(g.dtype), 64);
}

class GroupedDirect final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"grouped_direct", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "weights as [g, taps, C/g, O/g rounded up to a vector] + a window of k0·k1 "
                                   "input lines per thread (compute type)",
                                   false, /*strided_weight=*/true};
    return t;
  }
  // The weights are repacked element by element anyway: any layout, any dtype.
  std::shared_ptr<const PlanConfig> with_swapped_weight(const PlanConfig& config, DType) const override {
    const auto* c = dynamic_cast<const GroupedDirectConfig*>(&config);
    if (!c) return nullptr;
    auto swapped = std::make_shared<GroupedDirectConfig>(*c);
    swapped->w_swapped = true;
    return swapped;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    const int64_t cg = g.cg(), og = g.og();
    if (g.idil != Dims{1, 1, 1}) return "a transposed conv with stride > 1 (or input dilation) needs polyphase_gemm's stride phases";
    if (cg == 1 && og == 1) return "a depthwise conv (depthwise_direct)";
    if (og < 4) return "fewer than 4 output channels per group leave most of a vector idle";
    // Where the packed GEMM wins: more than 32 input channels per group (its panels, reused
    // across many outputs, beat broadcasting each input; measured on 2 AVX2 cores: 3x3 convs
    // of 64 channels tie, of 256 channels the GEMM takes 0.7 the time, while at 32 and fewer
    // this kernel takes 0.5-0.8 of the GEMM's). On AVX-512 the GEMM's vectors are twice this
    // kernel's, so there dense convs keep the GEMM above 4 channels (not measured: no AVX-512
    // machine at hand when this was tuned).
    if (cg > 32) return "more than 32 input channels per group (a packed GEMM: im2col_gemm)";
    const int64_t dense_max = vector_isa(req.isa) == Isa::avx512 ? 4 : 32;
    if (g.groups == 1 && cg > dense_max)
      return "a dense conv with more than " + std::to_string(dense_max) + " input channels on this ISA (im2col_gemm)";
    if (g.k[0] * g.k[1] > kGroupedMaxLines)
      return "more than " + std::to_string(kGroupedMaxLines) + " kernel lines (k0·k1)";
    auto cfg = std::make_shared<GroupedDirectConfig>();
    cfg->isa = req.isa;
    cfg->og_pad = round_up(og, lanes_of(g.dtype));
    // A task: one output row (n, p0, p1) or an even piece of it, with a window of at most
    // 384 KiB (cache-resident while the groups run over it); more pieces where rows are few
    // (1-D) so that every thread has work.
    const int64_t rows = g.n * g.out[0] * g.out[1], threads = std::max(req.threads, 1);
    const int64_t out2 = std::max<int64_t>(g.out[2], 1);
    int64_t pieces = std::max<int64_t>(1, (4 * threads + rows - 1) / rows);
    auto chunk_of = [&](int64_t p) { return (out2 + p - 1) / p; };
    while (chunk_of(pieces) > 12 && window_bytes(g, span_of(g, chunk_of(pieces))) > (int64_t(384) << 10)) ++pieces;
    const int64_t chunk = std::max<int64_t>(chunk_of(std::min(pieces, out2)), 1);
    cfg->chunk = chunk;
    cfg->span = span_of(g, chunk);
    const int64_t ws = weights_bytes(g, cfg->og_pad) + threads * window_bytes(g, cfg->span);
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) + " bytes of workspace; the budget is " + std::to_string(req.budget);
    }
    out->workspace_bytes = ws;
    out->config = std::move(cfg);
    return {};
  }

  // wt[q, t, c, o] = w[q·og + o, t', c] (or w[q, c, t', o] swapped) in the compute type C, t'
  // the flipped tap under flip; zeros for o >= og. Typed, element by element: for a tiny conv
  // this runs on every call, and a per-element dtype switch made it cost as much as the
  // conv itself (13% of a 1x8x8x8 conv's call from Python). Unswapped, w is read through its
  // strides (traits().strided_weight: PyTorch's [O, C/g, k...] arrives uncopied).
  template <class S, class C, class Cvt>
  static void pack_weights(const Geometry& g, const GroupedDirectConfig& cfg, const TensorView& wv, C* wt, Cvt cvt) {
    const S* w = static_cast<const S*>(wv.data);
    const int64_t cg = g.cg(), og = g.og(), taps = g.kernel_volume(), pad = cfg.og_pad;
    int64_t st[5] = {};  // unswapped: [O, KD, KH, KW, C/g] strides (RunContext's 5-D view)
    if (!cfg.w_swapped)
      for (int a = 0; a < 5; ++a) st[a] = wv.strides[size_t(a)];
    const int64_t so = st[0], sc = st[4];
    for (int64_t q = 0; q < g.groups; ++q)
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t src = g.flip ? taps - 1 - t : t;
        const int64_t kd = src / (g.k[1] * g.k[2]), kh = src / g.k[2] % g.k[1], kw = src % g.k[2];
        const int64_t tap_at = kd * st[1] + kh * st[2] + kw * st[3];
        for (int64_t c = 0; c < cg; ++c) {
          C* dst = wt + ((q * taps + t) * cg + c) * pad;
          if (cfg.w_swapped) {
            const S* from = w + ((q * cg + c) * taps + src) * og;
            for (int64_t o = 0; o < og; ++o) dst[o] = C(cvt(from[o]));
          } else {
            const S* from = w + q * og * so + tap_at + c * sc;
            for (int64_t o = 0; o < og; ++o) dst[o] = C(cvt(from[o * so]));
          }
          for (int64_t o = og; o < pad; ++o) dst[o] = C(0);
        }
      }
  }

  Status run(const RunContext& ctx) const override {
    const GroupedDirectConfig* cfg = config_of<GroupedDirectConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    if (Status st = check_config_isa(ctx.plan, cfg->isa); !st.ok()) return st;
    const int64_t og = g.og();
    if (cfg->og_pad < og || cfg->og_pad % lanes_of(g.dtype) != 0 || cfg->chunk < 1 || cfg->span < span_of(g, cfg->chunk))
      return Status(ErrorKind::invalid, "[grouped_direct] og_pad, chunk or span does not fit the problem (a hand-made plan?)");
    const int64_t wbytes = weights_bytes(g, cfg->og_pad), per_thread = window_bytes(g, cfg->span);
    if (Status st = check_workspace_fits(ctx.plan, wbytes + int64_t(ctx.pool->threads()) * per_thread,
                                         "the weights and one input window per thread");
        !st.ok())
      return st;
    char* ws = static_cast<char*>(ctx.workspace);
    switch (g.dtype) {
      case DType::f32: pack_weights<float>(g, *cfg, ctx.w, reinterpret_cast<float*>(ws), [](float v) { return v; }); break;
      case DType::f64: pack_weights<double>(g, *cfg, ctx.w, reinterpret_cast<double*>(ws), [](double v) { return v; }); break;
      case DType::f16: pack_weights<uint16_t>(g, *cfg, ctx.w, reinterpret_cast<float*>(ws), half_to_float); break;
      case DType::bf16: pack_weights<uint16_t>(g, *cfg, ctx.w, reinterpret_cast<float*>(ws), bf16_to_float); break;
    }
    GroupedFn fn = direct_kernels(cfg->isa).grouped[int(g.dtype)];
    const int64_t rows = g.n * g.out[0] * g.out[1];
    const int64_t pieces = (g.out[2] + cfg->chunk - 1) / cfg->chunk, tasks = rows * pieces;
    char* windows = ws + wbytes;
    const bool done = ctx.pool->parallel_for_reporting(
        tasks,
        [&](int64_t task, int thread) {
          const int64_t row = task / pieces, pa = (task % pieces) * cfg->chunk;
          GroupedArgs a{&g, ctx.x.data, ws, ctx.y.data, windows + int64_t(thread) * per_thread, cfg->og_pad, cfg->span};
          fn(a, row, pa, std::min(g.out[2], pa + cfg->chunk));
        },
        [&](int64_t finished) { return ctx.report(double(finished) / double(tasks)); });
    if (!done) return Status(ErrorKind::interrupted, "[grouped_direct] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& grouped_direct_algorithm() {
  static const GroupedDirect a;
  return a;
}

}  // namespace convnd
