// cutlass_sm90__cuda: forward convs, stride-1 input gradients and weight gradients of f16 and
// bf16 on CUTLASS 4's Hopper implicit-GEMM kernels (TMA loads, wgmma, a producer warp and one
// consumer warpgroup; src/cuda/cutlass/), and forward convs of f32 as TF32 when the caller allows
// it (ExecOptions::allow_tf32; exact f32 is never planned here). Dense convs only: one group, no
// input dilation, no flip, no negative padding, channel counts that fill 16-byte rows (multiples
// of 8 in 16 bits, 4 in f32: TMA moves 16-byte rows), and what CUTLASS's own can_implement()
// accepts (im2col offset ranges, N·pixels < 2^31). Everything else goes down the list to
// convnd's own kernels.
//
// The weight gradient is one GEMM of M = O by N = C·taps over K = N·pixels; a layer with few
// output tiles (64 channels: 5 tiles) would leave most of the device idle, so the samples are
// split into chunks, each chunk's float partial dw is computed on a stream of its own (forked
// from the caller's stream and joined back, so the call stays asynchronous and capturable), and
// the partials are added in chunk order. The chunking depends on the shape and the device's
// multiprocessor count only, never on the budget: dw's bits do not change with it. Its N runs
// over (C, taps) a tap at a time, so every N tile of a 64-row tile reads the same dy rows:
// clusters of 2 CTAs can share one TMA load of dy's tile (cluster_n=2, not planned until it
// has been measured on a GPU).
//
// TMA needs 16-byte aligned addresses, known only when the call runs: the plan carries the
// plan of the next algorithm on the list for the same problem (its workspace within the
// plan's), which runs instead when a tensor is not aligned.
#include <algorithm>
#include <climits>
#include <mutex>

#include "cuda/algorithms.h"
#include "cuda/cutlass/sm90_conv.h"  // no CUTLASS header: it compiles without them too
#include "engine/backend.h"
#include "engine/gradient_adapters.h"

namespace convnd {

namespace {

constexpr int64_t kMaxSplits = 32;               // side streams of the weight gradient
constexpr int64_t kMinPixelsPerSplit = 1 << 14;  // K rows each chunk's GEMM runs at the least
// Forward and input-gradient convs of at most this many reduction values (C/g·taps; the
// input gradient's O/g·taps) into at most this many output channels go to the implicit GEMM
// (see plan()).
constexpr int64_t kShortReduction = 864;
constexpr int64_t kFewChannels = 96;

struct Sm90Config final : PlanConfig {
  cuda::sm90::Conv conv;                       // the problem in CUTLASS's terms (no tensors yet)
  const cuda::sm90::Kernel* kernel = nullptr;  // the instantiation for its operator, rank, tile
  int64_t splits = 1;                          // weight gradient: sample chunks (float partials)
  int64_t chunk = 0;                           // samples per chunk
  int64_t partial_bytes = 0;  // splits float copies of dw, at the start of the workspace
  int64_t samples = 0;         // the problem's N, and dw's elements: what a new chunking needs
  int64_t dw_elems = 0;
  int64_t workspace_bytes = 0;  // the plan's: a new chunking must fit in it
  const Algorithm* fallback = nullptr;
  Plan fallback_plan;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"op", int64_t(conv.op)}, {"rank", conv.rank},   {"tile", conv.tile}, {"cluster_n", conv.cluster_n},
            {"splits", splits},        {"chunk", chunk},      {"tf32", conv.elem == cuda::sm90::Elem::tf32}};
  }
  // Weight gradient only, to time the planner's choices against their neighbours (gpu_bench
  // --tile NAME=VALUE):
  //   splits: another sample chunking, where the chunks fit the plan's workspace and CUTLASS
  //     takes the larger chunk; dw's bits may differ in the last place from the planned
  //     chunking's (float partials added in another grouping);
  //   cluster_n: 1 or 2, where a kernel is compiled for it and CUTLASS takes it; the same bits
  //     (the multicast shares loads, the products and their order are the same).
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override;
  std::string via() const override { return fallback ? "unaligned: " + std::string(fallback->name()) : ""; }
};

#if CONVND_WITH_CUTLASS
std::shared_ptr<const PlanConfig> Sm90Config::with_parameter(std::string_view name, int64_t value) const {
  if (conv.op != cuda::sm90::Op::wgrad) return nullptr;
  if (name == "cluster_n") {
    if (value != 1 && value != 2) return nullptr;
    auto c = std::make_shared<Sm90Config>(*this);
    c->conv.cluster_n = int(value);
    c->kernel = cuda::sm90::kernel_for(conv.op, conv.elem, conv.rank, conv.tile, int(value));
    if (!c->kernel || !c->kernel->can_implement(c->conv)) return nullptr;
    if (int64_t(c->kernel->workspace(c->conv)) * splits + partial_bytes > workspace_bytes) return nullptr;
    return c;
  }
  if (name != "splits" || value < 1 || value > std::min(kMaxSplits, samples)) return nullptr;
  auto c = std::make_shared<Sm90Config>(*this);
  c->chunk = (samples + value - 1) / value;
  c->splits = (samples + c->chunk - 1) / c->chunk;
  if (c->splits != value) return nullptr;  // no chunking of N gives exactly this many
  c->conv.n = int(c->chunk);
  if (!kernel->can_implement(c->conv)) return nullptr;
  c->partial_bytes = round_up_64(c->splits * dw_elems * int64_t(sizeof(float)));
  if (int64_t(kernel->workspace(c->conv)) * c->splits + c->partial_bytes > workspace_bytes) return nullptr;
  return c;
}
#else
std::shared_ptr<const PlanConfig> Sm90Config::with_parameter(std::string_view, int64_t) const { return nullptr; }
#endif

// The backend's list without this algorithm: where the fallback plan comes from.
const std::vector<const Algorithm*>& others() {
  static const std::vector<const Algorithm*> list = [] {
    std::vector<const Algorithm*> l;
    for (const Algorithm* a : cuda_backend().algorithms())
      if (a->name() != "cutlass_sm90__cuda") l.push_back(a);
    return l;
  }();
  return list;
}

#if CONVND_WITH_CUTLASS

bool fits_int(int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

// g in CUTLASS's terms, or the reason it is not one of CUTLASS's convs.
std::string describe(const Geometry& g, bool allow_tf32, cuda::sm90::Conv* p) {
  // The traits keep f64 out; f32 runs here only as TF32.
  if (g.dtype == DType::f32) {
    if (!allow_tf32) return "f32 only as TF32, which the caller has not allowed (allow_tf32 / precision=tf32)";
    if (g.dir != Direction::fwd) return "TF32 for forward convs only (wgmma reads TF32 operands K-major only)";
  }
  if (g.groups != 1) return "no grouped convs (groups > 1)";
  if (g.idil != Dims{1, 1, 1}) return "no input dilation (transposed convs)";
  if (g.flip) return "no flipped kernels";
  const int64_t row = 16 / dtype_size(g.dtype);  // elements of a 16-byte TMA row
  if (g.c % row != 0 || g.o % row != 0)
    return "needs channel counts that are multiples of " + std::to_string(row) + " (16-byte TMA rows)";
  if (g.dir == Direction::bwd_d && g.stride != Dims{1, 1, 1})
    return "its input gradient is for stride 1 only (CUTLASS computes a strided one wrong, unchecked)";
  for (int j = 0; j < 3; ++j) {
    if (g.lo[j] < 0 || g.hi[j] < 0) return "no negative padding (cropping)";
    // CUTLASS's output extent; Geometry's is the same formula without input dilation.
    const int64_t span = g.in[j] + g.lo[j] + g.hi[j] - g.kdil[j] * (g.k[j] - 1) - 1;
    if (span < 0 || span / g.stride[j] + 1 != g.out[j]) return "output extent differs from CUTLASS's";
    if (!fits_int(g.in[j]) || !fits_int(g.k[j]) || !fits_int(g.lo[j]) || !fits_int(g.hi[j]) ||
        !fits_int(g.stride[j]) || !fits_int(g.kdil[j]))
      return "extents beyond 32 bits";
  }
  if (!fits_int(g.n) || !fits_int(g.c) || !fits_int(g.o)) return "extents beyond 32 bits";
  p->op = g.dir == Direction::fwd     ? cuda::sm90::Op::fprop
          : g.dir == Direction::bwd_d ? cuda::sm90::Op::dgrad
                                      : cuda::sm90::Op::wgrad;
  p->elem = g.dtype == DType::bf16  ? cuda::sm90::Elem::bf16
            : g.dtype == DType::f16 ? cuda::sm90::Elem::f16
                                    : cuda::sm90::Elem::tf32;
  const bool flat = g.in[0] == 1 && g.k[0] == 1 && g.lo[0] == 0 && g.hi[0] == 0;
  p->rank = flat ? 2 : 3;
  // The layer-dependent tile extent: fprop's N and wgrad's M run over the output channels,
  // dgrad's N over the input channels; 64 wide where 64 or fewer fill it (half of a 128-wide
  // tile would multiply zeros), else 128.
  const int64_t extent = p->op == cuda::sm90::Op::dgrad ? g.c : g.o;
  p->tile = extent <= 64 ? 64 : 128;
  p->n = int(g.n);
  p->c = int(g.c);
  p->k = int(g.o);
  for (int j = 0; j < 3; ++j) {
    p->in[j] = int(g.in[j]);
    p->flt[j] = int(g.k[j]);
    p->lo[j] = int(g.lo[j]);
    p->hi[j] = int(g.hi[j]);
    p->stride[j] = int(g.stride[j]);
    p->dil[j] = int(g.kdil[j]);
  }
  return {};
}

// The weight gradient's N tiles: CUTLASS tiles (C, taps) a tap at a time, 128 channels wide
// (9 tiles for a 3x3 conv of 64 channels, 18 of 256).
int64_t weight_grad_n_tiles(const Geometry& g) { return (g.c + 127) / 128 * g.kernel_volume(); }

// The weight gradient's sample chunks, by a model of the device: the (O/tile x N tiles)
// output tiles of each chunk run as one block each, in waves of one block per multiprocessor,
// a block's time proportional to its share of the rows (N·pixels / chunks); each chunk adds a
// float copy of dw written and read back. Chunks of at least kMinPixelsPerSplit rows, at most
// kMaxSplits of them. Shape and multiprocessor count only: never the budget.
int64_t weight_grad_splits(const Geometry& g, int tile) {
  const int64_t tiles = (g.o + tile - 1) / tile * weight_grad_n_tiles(g);
  const int64_t sms = cuda::device_info(cuda::current_device()).sm_count;
  // Seconds: a 128-row K step of one tile on one multiprocessor (about 60% of the tensor
  // cores' peak, 990 TFLOP/s over 132 SMs), and a byte of partials through memory (3 TB/s).
  const double tile_row_s = 2.0 * tile * 128 / (0.6 * 990e12 / 132), byte_s = 1.0 / 3e12;
  const double dw_bytes = double(g.w_elems()) * 4;
  int64_t best = 1;
  double best_s = 0;
  for (int64_t s = 1; s <= std::min(kMaxSplits, g.n); ++s) {
    const int64_t chunk = (g.n + s - 1) / s;
    const int64_t splits = (g.n + chunk - 1) / chunk;
    if (splits != s) continue;  // the same chunking as a smaller count
    if (s > 1 && double(chunk) * double(g.out_volume()) < kMinPixelsPerSplit) break;
    const double waves = double((tiles * s + sms - 1) / sms);
    const double t = waves * tile_row_s * double(chunk) * double(g.out_volume()) + 2.0 * s * dw_bytes * byte_s;
    if (s == 1 || t < best_s) best = s, best_s = t;
  }
  return best;
}

// Side streams and events of one device for the weight gradient's chunks, made on first use.
// The fork and join are enqueued under a lock: the events are shared.
struct SideStreams {
  std::mutex mu;
  bool made = false;
  cudaStream_t streams[kMaxSplits] = {};
  cudaEvent_t fork = nullptr;
  cudaEvent_t joins[kMaxSplits] = {};
};

SideStreams& side_streams(int device) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<SideStreams>> all;
  std::lock_guard<std::mutex> lock(mu);
  if (size_t(device) >= all.size()) all.resize(size_t(device) + 1);
  if (!all[size_t(device)]) all[size_t(device)] = std::make_unique<SideStreams>();
  return *all[size_t(device)];
}

Status backend_error(const RunContext& ctx, const char* what, cudaError_t e) {
  return Status(ErrorKind::backend, "[" + ctx.plan.algorithm + "] " + what + ": " + cudaGetErrorString(e));
}

Status run_weight_grad(const RunContext& ctx, const Sm90Config& cfg, const cuda::sm90::Kernel& k,
                       cuda::sm90::Conv p) {
  const Geometry& g = ctx.g;
  const cudaStream_t stream = cuda::stream_of(ctx);
  const int64_t dw_elems = g.w_elems();
  float* partials = static_cast<float*>(ctx.workspace);
  char* kernel_ws = static_cast<char*>(ctx.workspace) + cfg.partial_bytes;
  const size_t each_ws = cfg.splits > 0 ? size_t(ctx.plan.workspace_bytes - cfg.partial_bytes) / size_t(cfg.splits) : 0;
  const int64_t es = dtype_size(g.dtype);
  const int64_t x_sample = g.in_volume() * g.c * es, y_sample = g.out_volume() * g.o * es;
  auto launch = [&](int64_t s, cudaStream_t on) {
    cuda::sm90::Conv q = p;
    const int64_t n0 = s * cfg.chunk;
    q.n = int(std::min(cfg.chunk, g.n - n0));
    q.act = static_cast<const char*>(ctx.x.data) + n0 * x_sample;
    q.out = static_cast<const char*>(ctx.y.data) + n0 * y_sample;
    q.flt_ptr = partials + s * dw_elems;
    return k.run(q, each_ws ? kernel_ws + size_t(s) * each_ws : nullptr, on);
  };
  if (cfg.splits == 1) {
    if (cudaError_t e = launch(0, stream); e != cudaSuccess) return backend_error(ctx, k.name, e);
  } else {
    int device = 0;
    if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return backend_error(ctx, "cudaGetDevice", e);
    SideStreams& side = side_streams(device);
    std::lock_guard<std::mutex> lock(side.mu);
    if (!side.made) {
      for (int64_t i = 0; i < kMaxSplits; ++i) {
        if (cudaError_t e = cudaStreamCreateWithFlags(&side.streams[i], cudaStreamNonBlocking); e != cudaSuccess)
          return backend_error(ctx, "cudaStreamCreateWithFlags", e);
        if (cudaError_t e = cudaEventCreateWithFlags(&side.joins[i], cudaEventDisableTiming); e != cudaSuccess)
          return backend_error(ctx, "cudaEventCreateWithFlags", e);
      }
      if (cudaError_t e = cudaEventCreateWithFlags(&side.fork, cudaEventDisableTiming); e != cudaSuccess)
        return backend_error(ctx, "cudaEventCreateWithFlags", e);
      side.made = true;
    }
    // Chunk 0 runs on the caller's stream, the others on side streams that wait for what the
    // caller enqueued before; the caller's stream then waits for all of them.
    if (cudaError_t e = cudaEventRecord(side.fork, stream); e != cudaSuccess)
      return backend_error(ctx, "cudaEventRecord", e);
    for (int64_t s = 1; s < cfg.splits; ++s) {
      if (cudaError_t e = cudaStreamWaitEvent(side.streams[s], side.fork, 0); e != cudaSuccess)
        return backend_error(ctx, "cudaStreamWaitEvent", e);
      if (cudaError_t e = launch(s, side.streams[s]); e != cudaSuccess) return backend_error(ctx, k.name, e);
      if (cudaError_t e = cudaEventRecord(side.joins[s], side.streams[s]); e != cudaSuccess)
        return backend_error(ctx, "cudaEventRecord", e);
    }
    if (cudaError_t e = launch(0, stream); e != cudaSuccess) return backend_error(ctx, k.name, e);
    for (int64_t s = 1; s < cfg.splits; ++s)
      if (cudaError_t e = cudaStreamWaitEvent(stream, side.joins[s], 0); e != cudaSuccess)
        return backend_error(ctx, "cudaStreamWaitEvent", e);
  }
  if (cudaError_t e = cuda::sm90::launch_sum_partials(partials, cfg.splits, dw_elems, ctx.w.data, p.elem, stream);
      e != cudaSuccess)
    return backend_error(ctx, "sum of the partial weight gradients", e);
  return Status::Ok();
}

#endif  // CONVND_WITH_CUTLASS

class CutlassSm90 final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"cutlass_sm90__cuda",
                                   Backend::cuda,
                                   {Direction::fwd, Direction::bwd_d, Direction::bwd_w},
                                   DTypeSet{DType::f16, DType::bf16, DType::f32},  // f32: TF32, when allowed
                                   {Isa::sm_90},
                                   "bwd_w: chunks x O·K·C/g floats (partial dw); or the fallback plan's",
                                   false};
    return t;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
#if CONVND_WITH_CUTLASS
    // A pointwise input gradient is one GEMM, which data_grad__cuda runs on cuBLAS faster
    // (0.25 against 0.35 ms for n=256 56x56 c=256 o=64 on an H100).
    if (!req.named && g.dir == Direction::bwd_d && g.k == Dims{1, 1, 1} && g.stride == Dims{1, 1, 1} &&
        g.kdil == Dims{1, 1, 1} && g.lo == Dims{0, 0, 0} && g.hi == Dims{0, 0, 0})
      return "a pointwise input gradient runs faster as data_grad__cuda's GEMM (named, it runs here)";
    // A short reduction into few channels runs faster on convnd's implicit GEMM: the forward
    // there, the input gradient as its dual forward (data_grad__cuda, whose reduction is O·taps
    // into C channels). CUTLASS's pipelined K loop then has few 64-deep steps over which to
    // hide its prologue and epilogue. On an H100, f16/bf16, the implicit GEMM was faster for
    // every layer with at most 864 reduction values and 96 output channels (3x3 c32/c64/c96 on
    // 56x56 by 15-43%, 1-D c64 k=3 and k=9 by 20-30%, 3x3x3 c32 by 45%), slower for every
    // other one (3x3 c64->128 on 28x28 by 16%, c128->64 by 5%, c128 by 36%, 3x3x3 c64 by 14%)
    // (bench/results/crossover-gpu-2026-12-07-h100.md). Float32 stays: CUTLASS's is its TF32.
    if (!req.named && g.dtype != DType::f32 && (g.dir == Direction::fwd || g.dir == Direction::bwd_d)) {
      const bool fwd = g.dir == Direction::fwd;
      const int64_t reduction = (fwd ? g.c : g.o) / g.groups * g.kernel_volume(), extent = fwd ? g.o : g.c;
      if (reduction <= kShortReduction && extent <= kFewChannels)
        return "a reduction of " + std::to_string(reduction) + " values into " + std::to_string(extent) +
               " channels runs faster on the implicit GEMM (named, it runs here)";
    }
    cuda::sm90::Conv p;
    if (std::string why = describe(g, req.allow_tf32, &p); !why.empty()) return why;
    const cuda::sm90::Kernel* k = cuda::sm90::kernel_for(p.op, p.elem, p.rank, p.tile);
    if (!k) return "no kernel compiled for this operator, rank and tile";
    auto cfg = std::make_shared<Sm90Config>();
    cfg->splits = 1;
    cfg->chunk = g.n;
    if (p.op == cuda::sm90::Op::wgrad) {
      cfg->splits = weight_grad_splits(g, p.tile);
      cfg->chunk = (g.n + cfg->splits - 1) / cfg->splits;
      cfg->splits = (g.n + cfg->chunk - 1) / cfg->chunk;
      p.n = int(cfg->chunk);  // the largest chunk is what CUTLASS must accept
      // Clusters of 2 that share dy's loads (sm90_wgrad_*.cu, cluster_n=2) are compiled but
      // not planned: they have not run on a GPU yet (with_parameter runs them, for the tests
      // and gpu_bench --tile cluster_n=2).
    }
    cfg->conv = p;  // a weight gradient's with the largest chunk's n (each launch sets its own)
    cfg->kernel = k;
    if (!k->can_implement(p)) return "CUTLASS's can_implement() says no (im2col offsets or extents out of range)";
    int64_t own = int64_t(k->workspace(p)) * cfg->splits;
    if (p.op == cuda::sm90::Op::wgrad) {
      cfg->partial_bytes = round_up_64(cfg->splits * g.w_elems() * int64_t(sizeof(float)));
      own += cfg->partial_bytes;
    }
    if (own > req.budget) {
      *min_ws = own;
      return "needs " + std::to_string(own) + " bytes of workspace; the budget is " + std::to_string(req.budget);
    }
    // What runs when a tensor is not 16-byte aligned: the next algorithm's plan, within the
    // same budget.
    Problem none;
    none.dtype = g.dtype;
    none.dir = g.dir;
    int64_t need = -1;
    if (plan_with(others(), g, req, none, Backend::cuda, &cfg->fallback_plan, &cfg->fallback, &need).empty()) {
      out->workspace_bytes = std::max(own, cfg->fallback_plan.workspace_bytes);
    } else {
      cfg->fallback = nullptr;  // unaligned tensors are then an error at run time
      out->workspace_bytes = own;
    }
    cfg->samples = g.n;
    cfg->dw_elems = g.w_elems();
    cfg->workspace_bytes = out->workspace_bytes;
    out->config = std::move(cfg);
    return {};
#else
    (void)g, (void)req, (void)out, (void)min_ws;
    return "this build has no CUTLASS kernels (configured without its headers)";
#endif
  }

  Status run(const RunContext& ctx) const override {
    const Sm90Config* cfg = config_of<Sm90Config>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
#if CONVND_WITH_CUTLASS
    if (!cuda::aligned16(ctx.x.data) || !cuda::aligned16(ctx.w.data) || !cuda::aligned16(ctx.y.data)) {
      if (!cfg->fallback)
        return Status(ErrorKind::invalid, "[" + ctx.plan.algorithm +
                                              "] a tensor is not 16-byte aligned and the plan has no other "
                                              "algorithm to run");
      RunContext inner{cfg->fallback_plan, cfg->fallback_plan.geometry, ctx.x,        ctx.w, ctx.y,
                       ctx.workspace,      ctx.pool,                    ctx.progress, ctx.stream};
      return cfg->fallback->run(inner);
    }
    cuda::sm90::Conv p = cfg->conv;
    const cuda::sm90::Kernel* k = cfg->kernel;
    p.act = ctx.x.data;
    p.flt_ptr = ctx.w.data;
    p.out = ctx.y.data;
    Status st = Status::Ok();
    if (p.op == cuda::sm90::Op::wgrad) {
      st = run_weight_grad(ctx, *cfg, *k, p);
    } else if (cudaError_t e = k->run(p, ctx.workspace, cuda::stream_of(ctx)); e != cudaSuccess) {
      st = backend_error(ctx, k->name, e);
    }
    if (!st.ok()) return st;
    if (!cuda::report_done(ctx, 1.0))
      return Status(ErrorKind::interrupted, "[" + ctx.plan.algorithm + "] cancelled");
    return Status::Ok();
#else
    return Status(ErrorKind::unsupported, "[" + ctx.plan.algorithm + "] this build has no CUTLASS kernels");
#endif
  }
};

}  // namespace

const Algorithm& cutlass_sm90_cuda_algorithm() {
  static const CutlassSm90 a;
  return a;
}

}  // namespace convnd
