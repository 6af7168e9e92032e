// Few-channel transposed and input-dilated convs along one axis (long-kernel audio
// upsampling: op=convT c=1 o=1 k=4096 stride=1024). With one or two channels a GEMM has
// nothing to reuse; the work is memory-bound. Each input sample adds its scaled kernel to a
// contiguous run of the output, so the kernel streams the output once per tile at near copy
// speed and does no work on the zeros that input dilation inserts.
#include <algorithm>

#include "cpu/config_checks.h"
#include "cpu/isas.h"
#include "cpu/direct_kernels.h"
#include "cpu/thread_pool.h"
#include "engine/algorithm.h"

namespace convnd {

namespace {

constexpr int64_t kMaxChannelProduct = 16;  // (C/g)·(O/g) beyond which a GEMM is better
constexpr int64_t kTile = 16384;            // output positions per task

int64_t compute_size(DType t) { return t == DType::f64 ? 8 : 4; }

// Output positions per task along the one axis (one accumulator tile per thread).
struct TransposedScatterConfig final : PlanConfig {
  Isa isa = Isa::generic;           // the direct-kernel table
  int64_t positions_per_task = 0;   // tile of output positions
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"positions_per_task", positions_per_task}};
  }
  // A smaller tile needs less of the planned workspace; the sums run over inputs in the same
  // order whatever the tile (direct_kernels.h), so the bits stay.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "positions_per_task" || value < 1 || value > positions_per_task) return nullptr;
    auto c = std::make_shared<TransposedScatterConfig>(*this);
    c->positions_per_task = value;
    return c;
  }
};

class TransposedScatter final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"transposed_scatter", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "weights (compute type) + one tile of positions x O/g per thread"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    for (int j = 0; j < 2; ++j)
      if (g.in[j] != 1 || g.k[j] != 1 || g.out[j] != 1 || g.lo[j] != 0 || g.idil[j] != 1 || g.stride[j] != 1)
        return "needs a problem along one axis (1-D, or unit leading axes)";
    if (g.stride[2] != 1) return "needs stride 1 (a transposed conv lowers to stride 1)";
    if (g.idil[2] == 1) return "neither a strided transposed conv nor input dilation: a dense conv is better";
    if (g.cg() * g.og() > kMaxChannelProduct)
      return "more than " + std::to_string(kMaxChannelProduct) + " channel pairs per group: a GEMM is better";
    // Repacked weights plus one accumulator tile per thread; the tile shrinks to the budget
    // (tiles change no bits, see direct_kernels.h).
    const int64_t cs = compute_size(g.dtype);
    auto workspace = [&](int64_t t) { return (g.w_elems() + int64_t(req.threads) * t * g.og()) * cs; };
    int64_t t = std::min(kTile, g.out[2]);
    while (t > 1 && workspace(t) > req.budget) t = (t + 1) / 2;
    if (workspace(t) > req.budget) {
      *min_ws = workspace(1);
      return "needs " + std::to_string(*min_ws) + " bytes of workspace; the budget is " + std::to_string(req.budget);
    }
    auto cfg = std::make_shared<TransposedScatterConfig>();
    cfg->isa = req.isa;
    cfg->positions_per_task = t;
    out->workspace_bytes = workspace(t);
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const TransposedScatterConfig* cfg = config_of<TransposedScatterConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (Status st = check_config_isa(ctx.plan, cfg->isa); !st.ok()) return st;
    const Geometry& g = ctx.g;
    const int64_t K = g.k[2], cs = compute_size(g.dtype), es = dtype_size(g.dtype), cg = g.cg();
    // A hand-made tile must fit the workspace the plan allocates.
    if (cfg->positions_per_task < 1)
      return Status(ErrorKind::invalid, "[transposed_scatter] the plan's tile of " +
                                            std::to_string(cfg->positions_per_task) + " positions is not positive");
    if (Status st = check_workspace_fits(
            ctx.plan, (g.w_elems() + int64_t(ctx.pool->threads()) * cfg->positions_per_task * g.og()) * cs,
            "the weights and one tile of " + std::to_string(cfg->positions_per_task) + " positions per thread");
        !st.ok())
      return st;
    char* ws = static_cast<char*>(ctx.workspace);
    // wt[o, c, j]: tap j in increasing output position is kernel tap k = K-1-j, i.e. weight
    // index j when flipped and K-1-j otherwise.
    const char* w = static_cast<const char*>(ctx.w.data);
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t j = 0; j < K; ++j) {
          const int64_t src = g.flip ? j : K - 1 - j;
          const double v = load_as_double(w + ((o * K + src) * cg + c) * es, g.dtype);
          const int64_t dst = (o * cg + c) * K + j;
          if (cs == 8) reinterpret_cast<double*>(ws)[dst] = v;
          else reinterpret_cast<float*>(ws)[dst] = float(v);
        }
    char* acc = ws + g.w_elems() * cs;
    const int64_t tile = cfg->positions_per_task;
    const int64_t tiles_per_n = (g.out[2] + tile - 1) / tile;
    const int64_t tasks = g.n * tiles_per_n;
    ScatterFn fn = direct_kernels(cfg->isa).scatter[int(g.dtype)];
    const bool done = ctx.pool->parallel_for_reporting(
        tasks,
        [&](int64_t task, int thread) {
          const int64_t n = task / tiles_per_n, pa = (task % tiles_per_n) * tile;
          ScatterArgs a{&g, ctx.x.data, ws, ctx.y.data, acc + int64_t(thread) * tile * g.og() * cs, n, pa,
                        std::min(g.out[2], pa + tile)};
          fn(a);
        },
        [&](int64_t finished) { return ctx.report(double(finished) / double(tasks)); });
    if (!done) return Status(ErrorKind::interrupted, "[transposed_scatter] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& transposed_scatter_algorithm() {
  static const TransposedScatter a;
  return a;
}

}  // namespace convnd
