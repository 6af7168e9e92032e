// kernel_stride_gemm: transposed convs whose kernel equals their stride on every axis (U-Net's
// 2x2 stride-2 up-convolution, patch un-embeddings), with no padding to crop. Their outputs do
// not overlap: output (i·s + t) of every axis is x[i] times tap t alone. So the whole conv is
// one GEMM, [N·I0·I1·I2, C] × [C, taps·O], whose row for input pixel i holds every tap's O
// outputs; A is x itself (no copy), and each row's runs of s2·O outputs are copied to their
// places in y from a buffer of GEMM rows. polyphase_gemm ran it as one GEMM of O columns per
// tap, each over all of x (0.65x PyTorch for the 2x2 c256->128 layer on 2 AVX2 cores).
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "core/checked.h"
#include "cpu/isas.h"
#include "cpu/config_checks.h"
#include "cpu/conv_gemm.h"
#include "cpu/thread_pool.h"

namespace convnd {

namespace {

int64_t round64(int64_t v) { return (v + 63) / 64 * 64; }

// The weight tap that output offset t (per axis, 0 <= t < s) takes: as an input-dilated conv
// with lo = k − 1, output i·s + t reads x[i] at kernel index k − 1 − t, which flip reverses.
int64_t tap_of(const Geometry& g, int ax, int64_t t) { return g.flip ? t : g.k[ax] - 1 - t; }

struct KernelStrideConfig final : PlanConfig {
  GemmPlan gemm;
  int64_t buffer_rows = 0;  // GEMM rows per call (input pixels), written to the buffer
  int64_t workspace = 0;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"mr", gemm.mr},   {"nr", gemm.nr},        {"kc", gemm.kc},
            {"mc", gemm.mc},   {"nc", gemm.nc},        {"gemm_threads", gemm.threads},
            {"buffer_rows", buffer_rows}, {"workspace", workspace}};
  }
};

// B [C, taps·O]: column (t, o), t the output offset (t0, t1, t2) in row-major order, is weight
// row w[o, tap_of(t), :] (C contiguous), read through row pointers like SubKernelB.
class TapColumnsB final : public GemmBSource {
 public:
  TapColumnsB(const Geometry& g, const char* w) : g_(g), w_(w) {}
  void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc, void* dst) const override {
    const int64_t nr = plan.nr, es = dtype_size(g_.dtype), ces = gemm_b_elem_bytes(plan);
    const int64_t taps = g_.kernel_volume();
    std::array<const void*, 64> rows;
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int64_t cols = std::min(nr, nc - p * nr);
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t col = n0 + p * nr + j, t = col / g_.o, o = col % g_.o;
        const int64_t t2 = t % g_.k[2], t1 = (t / g_.k[2]) % g_.k[1], t0 = t / (g_.k[2] * g_.k[1]);
        const int64_t tap = (tap_of(g_, 0, t0) * g_.k[1] + tap_of(g_, 1, t1)) * g_.k[2] + tap_of(g_, 2, t2);
        rows[size_t(j)] = w_ + ((o * taps + tap) * g_.c + k0) * es;
      }
      gemm_pack_rows(plan, nr, g_.dtype, rows.data(), cols, kc, static_cast<char*>(dst) + p * kc * nr * ces);
    }
  }

 private:
  const Geometry& g_;
  const char* w_;
};

int64_t workspace_of(const GemmPlan& gp, int64_t N, int64_t K, int64_t rows, DType dt) {
  return gemm_packed_b_bytes(gp, N, K) + round64(gemm_workspace_bytes(gp, N, K, dt, true)) +
         round64(rows * N * dtype_size(dt));
}

class KernelStrideGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"kernel_stride_gemm", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "packed B (C x taps·O) + per-thread GEMM blocks + a buffer of GEMM rows"};
    return t;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    for (int ax = 0; ax < 3; ++ax)
      if (g.idil[ax] != g.k[ax] || g.kdil[ax] != 1 || g.stride[ax] != 1 || g.lo[ax] != g.k[ax] - 1 ||
          g.hi[ax] != g.k[ax] - 1 || g.out[ax] != g.in[ax] * g.k[ax])
        return "needs a transposed conv whose kernel equals its stride on every axis, with no padding or "
               "output padding (outputs that do not overlap)";
    if (all_ones(g.k)) return "a 1x1 kernel of stride 1 (pointwise_gemm)";
    if (g.groups != 1) return "needs one group (a group's outputs would not be contiguous in y)";
    if (g.k[2] * g.o > int64_t(1) << 24) return "more than 2^24 outputs per input pixel";
    const int64_t N = g.kernel_volume() * g.o, K = g.c, M = g.n * g.in_volume();
    const DType compute = g.dtype == DType::f64 ? DType::f64 : DType::f32;
    auto cfg = std::make_shared<KernelStrideConfig>();
    const GemmTile tile = gemm_tile(req.isa, compute);
    // Buffer rows: ~2 MiB of outputs, whole tiles, at most M; halved down to one tile when the
    // budget is short. (256 KiB, 128 rows of the 2x2 c256->128 layer's 512 columns, made GEMM
    // calls too short to share the packed weights well: 1.5x the time of one pointwise GEMM of
    // the same shape.)
    int64_t rows = std::max<int64_t>(tile.mr, (int64_t(2) << 20) / (N * dtype_size(g.dtype)) / tile.mr * tile.mr);
    rows = std::min(rows, (M + tile.mr - 1) / tile.mr * tile.mr);
    GemmPlan gp = gemm_plan(rows, N, K, compute, req.threads, req.isa);
    int64_t ws = workspace_of(gp, N, K, rows, g.dtype);
    while (ws > req.budget && rows > tile.mr) {
      rows = std::max(tile.mr, rows / 2 / tile.mr * tile.mr);
      gp = gemm_plan(rows, N, K, compute, req.threads, req.isa);
      ws = workspace_of(gp, N, K, rows, g.dtype);
    }
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) + " bytes of workspace (the packed weights and one tile of rows); "
             "the budget is " + std::to_string(req.budget);
    }
    cfg->gemm = gp;
    cfg->buffer_rows = rows;
    cfg->workspace = ws;
    out->workspace_bytes = ws;
    out->config = std::move(cfg);
    return {};
  }

  Status run(const RunContext& ctx) const override {
    const KernelStrideConfig* cfg = config_of<KernelStrideConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const int64_t N = g.kernel_volume() * g.o, K = g.c, M = g.n * g.in_volume(), es = dtype_size(g.dtype);
    const GemmPlan& gp = cfg->gemm;
    if (Status st = check_config_isa(ctx.plan, gp.isa); !st.ok()) return st;
    if (Status st = gemm_check_plan(gp, K); !st.ok()) return Status(st.kind(), "[kernel_stride_gemm] " + st.message());
    if (cfg->buffer_rows < 1)
      return Status(ErrorKind::invalid, "[kernel_stride_gemm] the plan's buffer_rows must be positive");
    const int64_t packed_bytes = gemm_packed_b_bytes(gp, N, K);
    const int64_t gemm_bytes = round64(gemm_workspace_bytes(gp, N, K, g.dtype, true));
    if (Status st = check_workspace_fits(ctx.plan, workspace_of(gp, N, K, cfg->buffer_rows, g.dtype),
                                         "the packed weights, GEMM blocks and row buffer");
        !st.ok())
      return st;
    char* packed = static_cast<char*>(ctx.workspace);
    char* gemm_ws = packed + packed_bytes;
    char* buf = gemm_ws + gemm_bytes;
    const char* x = static_cast<const char*>(ctx.x.data);
    char* y = static_cast<char*>(ctx.y.data);
    TapColumnsB b(g, static_cast<const char*>(ctx.w.data));
    if (Status st = gemm_pack_b(gp, N, K, b, packed, ctx.pool); !st.ok()) return st;
    GemmArgs args;
    args.N = N;
    args.K = K;
    args.packed_b = packed;
    args.c = buf;
    args.ldc = N;
    args.c_dtype = g.dtype;
    // A row's outputs: for each (t0, t1), the taps t2 of one input pixel land on s2 consecutive
    // output positions, so a run of s2·O elements, as in the buffer's row.
    const int64_t run = g.k[2] * g.o * es, runs = g.k[0] * g.k[1];
    for (int64_t m0 = 0; m0 < M; m0 += cfg->buffer_rows) {
      args.M = std::min(cfg->buffer_rows, M - m0);
      DenseGemmA a(g.dtype, x + m0 * K * es, K);
      args.a = &a;
      if (Status st = gemm(gp, args, gemm_ws, gemm_bytes, ctx.pool); !st.ok()) return st;
      const int64_t rows = args.M, chunk = 64;
      auto copy = [&](int64_t c, int) {
        for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); ++r) {
          const int64_t m = m0 + r, i2 = m % g.in[2], i1 = (m / g.in[2]) % g.in[1],
                        i0 = (m / (g.in[2] * g.in[1])) % g.in[0], n = m / g.in_volume();
          const char* src = buf + r * N * es;
          for (int64_t q = 0; q < runs; ++q) {
            const int64_t t0 = q / g.k[1], t1 = q % g.k[1];
            const int64_t p0 = i0 * g.k[0] + t0, p1 = i1 * g.k[1] + t1, p2 = i2 * g.k[2];
            std::memcpy(y + (((n * g.out[0] + p0) * g.out[1] + p1) * g.out[2] + p2) * g.o * es, src + q * run, size_t(run));
          }
        }
      };
      const int64_t chunks = (rows + chunk - 1) / chunk;
      ctx.pool->parallel_for(chunks, copy);
      if (!ctx.report(double(m0 + rows) / double(M)))
        return Status(ErrorKind::interrupted, "[kernel_stride_gemm] cancelled");
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& kernel_stride_gemm_algorithm() {
  static const KernelStrideGemm a;
  return a;
}

}  // namespace convnd
