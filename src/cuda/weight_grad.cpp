// The weight gradient (dir=bwd_w) on the GPU, deterministic: dw = sum over the batch and every
// output position of dy ⊗ im2col(x), per group the GEMM M = O/g, N = K·C/g, K = N·P (see
// kernels/weight_grad.h). The reduction's rows are cut into blocks of block_rows, a power of
// two chosen from the shape alone; each block's sums are computed in row order (float32,
// float64 for f64) into the workspace, and a second kernel adds the blocks in block order in
// float64 (Neumaier-compensated for f64) and rounds once. When the budget cannot hold every
// block's partials, blocks run in waves of wave_blocks with the float64 sums kept in the
// workspace between waves: the order of every sum stays block 0, 1, 2, ..., so the bits do
// not depend on the budget. Block sums of at most 8192 rows in float32 and float64 across
// blocks keep the error growing with log(terms) in practice rather than with terms.
#include "cuda/kernels/weight_grad.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxExtent = int64_t(1) << 30;
constexpr int64_t kMaxWaveBlocks = 65535;  // grid.y of a partials launch
// Thread blocks of a partials launch that block_rows aims at (a constant, not the device's
// SM count, so that the bits are the same on every device).
constexpr int64_t kTargetTiledCtas = 1024;
constexpr int64_t kTargetDepthwiseCtas = 2048;
// block_rows bounds: a block sums at most 8192 rows in float32.
constexpr int64_t kMinTiledRows = 256, kMinDepthwiseRows = 64, kMaxBlockRows = 8192;

int64_t align_up(int64_t v, int64_t a) {
  return (v + a - 1) / a * a;
}

bool aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % uint64_t(bytes) == 0;
}

// The power of two in [lo, hi] nearest above rows·ctas / target: about `target` thread blocks
// per launch when every block runs at once.
int64_t block_rows_for(int64_t rows, int64_t ctas_per_block, int64_t lo, int64_t hi, int64_t target) {
  const double want = double(rows) * double(ctas_per_block) / double(target);
  int64_t r = lo;
  while (r < hi && double(r) < want) r <<= 1;
  return r;
}

struct WeightGradCudaConfig final : PlanConfig {
  cuda::WeightGradKernel kernel = cuda::WeightGradKernel::tiled;
  int64_t block_rows = 0;           // rows of the reduction per block (the last one may be shorter)
  int64_t blocks = 0;               // ceil(N·P / block_rows)
  int64_t wave_blocks = 0;          // blocks whose partials the workspace holds at once
  int64_t waves = 0;                // ceil(blocks / wave_blocks)
  int64_t channels_per_thread = 1;  // depthwise: 16 / element size where C allows it, else 1;
                                    // mma: 8 (16-byte loads where x and dy are aligned)
  // The workspace: wave_blocks partials, then (waves > 1) the float64 running sums.
  int64_t partial_bytes = 0;       // one block's partials
  int64_t accumulator_offset = 0;  // bytes
  int64_t accumulator_bytes = 0;   // 0 with one wave
  int64_t workspace_bytes() const {
    return accumulator_bytes ? accumulator_offset + accumulator_bytes : wave_blocks * partial_bytes;
  }
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    const bool tiles = kernel != cuda::WeightGradKernel::depthwise;
    return {{"kernel", int64_t(kernel)},
            {"block_rows", block_rows},
            {"blocks", blocks},
            {"wave_blocks", wave_blocks},
            {"waves", waves},
            {"tile_o", tiles ? cuda::kWeightGradTileO : 1},
            {"tile_j", tiles ? cuda::kWeightGradTileJ : 1},
            {"chunk_rows", kernel == cuda::WeightGradKernel::tiled       ? cuda::kWeightGradChunkRows
                           : kernel == cuda::WeightGradKernel::depthwise ? 1
                                                                         : cuda::kWeightGradMmaChunkRows},
            {"channels_per_thread", channels_per_thread}};
  }
};

class WeightGradCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{
        "weight_grad__cuda",
        Backend::cuda,
        {Direction::bwd_w},
        kAllDTypes,
        {Isa::sm_90},
        "wave_blocks·O·K·C/g block partials (f32; f64 for f64), plus O·K·C/g f64 sums (×2 for f64) "
        "when the blocks run in several waves"};
    return t;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out,
                   int64_t* min_ws) const override {
    if (g.dir != Direction::bwd_w) return "computes dir=bwd_w only";
    for (int j = 0; j < 3; ++j) {
      // Every position p·stride − lo + k·kdil of an axis stays inside int32 in the kernels.
      const int64_t span = (g.out[j] - 1) * g.stride[j] + (g.k[j] - 1) * g.kdil[j];
      if (g.in[j] >= kMaxExtent || g.out[j] >= kMaxExtent || g.k[j] >= kMaxExtent || span >= kMaxExtent ||
          g.stride[j] >= kMaxExtent || g.kdil[j] >= kMaxExtent || g.idil[j] >= kMaxExtent ||
          g.lo[j] >= kMaxExtent || -g.lo[j] >= kMaxExtent)
        return "an extent, span, stride, dilation or padding of 2^30 or more";
    }
    const int64_t rows = g.n * g.out_volume();
    const int64_t columns = g.kernel_volume() * g.cg();
    const int64_t w_elems = g.w_elems();
    if (w_elems > (int64_t(1) << 56)) return "2^56 or more weight elements";
    const bool f64 = g.dtype == DType::f64;
    auto cfg = std::make_shared<WeightGradCudaConfig>();
    if (g.cg() == 1 && g.og() == 1) {
      cfg->kernel = cuda::WeightGradKernel::depthwise;
      const int64_t vec = 16 / dtype_size(g.dtype);
      cfg->channels_per_thread = g.c % vec == 0 ? vec : 1;
      // Thread blocks per row block at one channel per thread (run() may fall back to it).
      const int64_t ctas =
          (g.kernel_volume() * g.c + cuda::kWeightGradThreads - 1) / cuda::kWeightGradThreads;
      if (ctas >= INT32_MAX) return "2^31 or more thread blocks per row block";
      const int64_t ctas_vec =
          (g.kernel_volume() * (g.c / cfg->channels_per_thread) + cuda::kWeightGradThreads - 1) /
          cuda::kWeightGradThreads;
      cfg->block_rows =
          block_rows_for(rows, ctas_vec, kMinDepthwiseRows, kMaxBlockRows, kTargetDepthwiseCtas);
    } else {
      // The tensor cores for f16 / bf16 where 8 channels of a group fill a 16-byte load; groups
      // of 8 to 32 output channels several to a tile (one group's would be mostly zero rows).
      const bool half = g.dtype == DType::f16 || g.dtype == DType::bf16;
      const int64_t og = g.og();
      const bool grouped = half && g.groups > 1 && g.cg() % 8 == 0 && (og == 8 || og == 16 || og == 32);
      cfg->kernel = grouped                                        ? cuda::WeightGradKernel::grouped_mma
                    : half && g.cg() % 8 == 0 && og % 8 == 0 ? cuda::WeightGradKernel::mma
                                                                   : cuda::WeightGradKernel::tiled;
      cfg->channels_per_thread = cfg->kernel == cuda::WeightGradKernel::tiled ? 1 : 8;
      const int64_t jtiles = (columns + cuda::kWeightGradTileJ - 1) / cuda::kWeightGradTileJ;
      const int64_t tiles = grouped ? jtiles * ((g.groups * og + cuda::kWeightGradTileO - 1) / cuda::kWeightGradTileO)
                                    : jtiles * ((og + cuda::kWeightGradTileO - 1) / cuda::kWeightGradTileO) * g.groups;
      if (tiles >= INT32_MAX) return "2^31 or more tiles of dw";
      cfg->block_rows = block_rows_for(rows, tiles, kMinTiledRows, kMaxBlockRows, kTargetTiledCtas);
    }
    cfg->blocks = (rows + cfg->block_rows - 1) / cfg->block_rows;
    cfg->partial_bytes = w_elems * (f64 ? 8 : 4);
    if (cfg->blocks <= kMaxWaveBlocks && cfg->blocks <= req.budget / cfg->partial_bytes) {
      cfg->wave_blocks = cfg->blocks;  // one wave: no running sums between launches
      cfg->waves = 1;
    } else {
      cfg->accumulator_bytes = w_elems * 8 * (f64 ? 2 : 1);
      const int64_t room = req.budget - cfg->accumulator_bytes;
      // The running sums sit after the partials at a 256-byte boundary: wave·align_up(partial, 256)
      // bounds that offset.
      int64_t wave = room <= 0 ? 0 : room / align_up(cfg->partial_bytes, 256);
      if (wave < 1) {
        *min_ws = align_up(cfg->partial_bytes, 256) + cfg->accumulator_bytes;
        return "needs " + std::to_string(*min_ws) +
               " bytes of workspace for one row block's partial sums and the float64 running sums; the "
               "budget is " +
               std::to_string(req.budget);
      }
      wave = std::min({wave, cfg->blocks, kMaxWaveBlocks});
      cfg->waves = (cfg->blocks + wave - 1) / wave;
      cfg->wave_blocks = (cfg->blocks + cfg->waves - 1) / cfg->waves;  // balanced waves
      cfg->accumulator_offset = align_up(cfg->wave_blocks * cfg->partial_bytes, 256);
    }
    out->workspace_bytes = cfg->workspace_bytes();
    out->index_bits = 64;
    out->config = std::move(cfg);
    return {};
  }

  Status run(const RunContext& ctx) const override {
    const WeightGradCudaConfig* cfg = config_of<WeightGradCudaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (cfg->workspace_bytes() > ctx.plan.workspace_bytes)
      return Status(ErrorKind::invalid, "[weight_grad__cuda] the plan's workspace (" +
                                            std::to_string(ctx.plan.workspace_bytes) +
                                            " bytes) is smaller than its configuration needs (" +
                                            std::to_string(cfg->workspace_bytes()) + ")");
    const Geometry& g = ctx.g;
    cuda::WeightGradParams p{};
    p.x = ctx.x.data;
    p.dy = ctx.y.data;
    p.dw = ctx.w.data;
    p.partial = ctx.workspace;
    p.acc = cfg->accumulator_bytes ? static_cast<char*>(ctx.workspace) + cfg->accumulator_offset : nullptr;
    p.n = g.n;
    p.c = g.c;
    p.o = g.o;
    p.groups = g.groups;
    p.cg = g.cg();
    p.og = g.og();
    for (int j = 0; j < 3; ++j) {
      p.in[j] = int32_t(g.in[j]);
      p.k[j] = int32_t(g.k[j]);
      p.out[j] = int32_t(g.out[j]);
      p.stride[j] = int32_t(g.stride[j]);
      p.lo[j] = int32_t(g.lo[j]);
      p.kdil[j] = int32_t(g.kdil[j]);
      p.idil[j] = int32_t(g.idil[j]);
      p.div_idil[j] = cuda::FastDivmod(g.idil[j]);
    }
    p.flip = g.flip ? 1 : 0;
    p.rows = g.n * g.out_volume();
    p.block_rows = cfg->block_rows;
    p.columns = g.kernel_volume() * g.cg();
    p.w_elems = g.w_elems();
    p.elem = cuda::elem_of(g.dtype);
    // Decided here, from the tensors' addresses (unknown when planning): the depthwise channel
    // vector and the mma kernel's 16-byte loads need x and dy aligned to their bytes. Either
    // form gives the same bits.
    int vec = int(cfg->channels_per_thread);
    const int64_t es = dtype_size(g.dtype);
    if (vec > 1 && !(aligned(p.x, vec * es) && aligned(p.dy, vec * es))) vec = 1;
    for (int64_t wave = 0; wave < cfg->waves; ++wave) {
      const int64_t block0 = wave * cfg->wave_blocks;
      const int64_t count = std::min(cfg->wave_blocks, cfg->blocks - block0);
      CONVND_CUDA_CHECK(cuda::launch_weight_grad_partials(p, cfg->kernel, vec, block0, count, cuda::stream_of(ctx)));
      CONVND_CUDA_CHECK(cuda::launch_weight_grad_reduce(p, count, wave == 0, wave + 1 == cfg->waves, cuda::stream_of(ctx)));
      if (!cuda::report_done(ctx, double(wave + 1) / double(cfg->waves)))
        return Status(ErrorKind::interrupted, "[weight_grad__cuda] cancelled");
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& weight_grad_cuda_algorithm() {
  static const WeightGradCuda a;
  return a;
}

}  // namespace convnd
