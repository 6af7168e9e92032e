// weight_grad_gemm: the weight gradient of any conv as a GEMM per group and per block of rows,
//   dw[o, (tap, c)] = Σ_rows dy[row, o] · im2col(x)[row, (tap, c)],   M = O/g, N = taps·C/g,
// with the reduction (K of the GEMM) running over one fixed block of rows (n, output
// position): src/cpu/blocked_reduction.h adds the blocks' partials in block order, so the
// result is bitwise the same for every thread count, budget and column split (the GEMM's
// bits depend on its K alone: src/cpu/gemm.h). Both operands are packed straight from dy and
// x: dy's rows give A's columns, and B's rows are gathered from x per tap (zeros where the tap
// lands on padding or on a zero of the input dilation), so nothing is unfolded in memory.
#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/blocked_reduction.h"
#include "cpu/config_checks.h"
#include "cpu/gemm.h"

namespace convnd {

namespace {

struct Half {};
struct BFloat {};

// Element i of storage S (float, double, or the 16-bit Half/BFloat) as T.
template <class S, class T>
inline T load_as(const void* base, int64_t i) {
  if constexpr (std::is_same_v<S, Half>) return T(half_to_float(static_cast<const uint16_t*>(base)[i]));
  else if constexpr (std::is_same_v<S, BFloat>) return T(bf16_to_float(static_cast<const uint16_t*>(base)[i]));
  else return T(static_cast<const S*>(base)[i]);
}

// n consecutive elements of storage S from src into dst (type T).
template <class S, class T>
inline void copy_run(T* dst, const void* src, int64_t n) {
  if constexpr (std::is_same_v<S, T>) {
    std::memcpy(dst, src, size_t(n) * sizeof(T));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = load_as<S, T>(src, i);
  }
}

// A = dy^T of one group and one block: A[m, k] = dy[row0 + k, o0 + m].
template <class S, class T>
class DyTransposed final : public GemmASource {
 public:
  DyTransposed(const void* dy, int64_t o, int64_t o0, int64_t row0) : dy_(dy), o_(o), o0_(o0), row0_(row0) {}
  void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc, void* dst) const override {
    const int64_t mr = plan.mr, kg = plan.kg, panel = gemm_a_panel_elems(plan, kc);
    T* out = static_cast<T*>(dst);
    for (int64_t p = 0; p * mr < mc; ++p) {
      const int64_t rows = std::min(mr, mc - p * mr);
      T* d = out + p * panel;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t src = (row0_ + k0 + k) * o_ + o0_ + m0 + p * mr;
        T* col = d + (k / kg) * mr * kg + k % kg;
        int64_t r = 0;
        for (; r < rows; ++r) col[r * kg] = load_as<S, T>(dy_, src + r);
        for (; r < mr; ++r) col[r * kg] = T(0);
      }
    }
  }

 private:
  const void* dy_;
  int64_t o_, o0_, row0_;
};

// B = im2col(x) of one group and one block: B[k, n] = x at row0 + k's output position shifted
// by tap (col0 + n) / (C/g), channel (col0 + n) % (C/g) of group gi; 0 on padding and on the
// zeros of the input dilation. The block's columns are cut once into segments (one tap's
// consecutive channels within one panel); each row then costs one bounds check per segment and
// a contiguous copy.
template <class S, class T>
class XColumns final : public GemmBSource {
 public:
  XColumns(const Geometry& g, const void* x, int64_t gi, int64_t col0, int64_t row0)
      : g_(g), x_(x), gi_(gi), col0_(col0), row0_(row0) {}
  void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc, void* dst) const override {
    const Geometry& g = g_;
    const int64_t nr = plan.nr, cg = g.cg(), panels = (nc + nr - 1) / nr;
    const bool dilated = g.idil[0] > 1 || g.idil[1] > 1 || g.idil[2] > 1;
    struct Seg {
      int64_t dst;        // offset of its first element in a row of the packed block (times nr per row)
      int64_t run;        // columns
      int64_t c;          // first channel (within the group)
      int64_t off[3];     // the (flipped) tap's offset kk·kdil per axis
    };
    thread_local std::vector<Seg> segs;
    segs.clear();
    for (int64_t j = 0; j < nc;) {
      const int64_t col = col0_ + n0 + j, tap = col / cg, c = col % cg;
      const int64_t within = j % nr, run = std::min({nc - j, cg - c, nr - within});
      const int64_t t[3] = {tap / (g.k[2] * g.k[1]), (tap / g.k[2]) % g.k[1], tap % g.k[2]};
      Seg sg{(j / nr) * kc * nr + within, run, c, {}};
      for (int a = 0; a < 3; ++a) sg.off[a] = (g.flip ? g.k[a] - 1 - t[a] : t[a]) * g.kdil[a];
      segs.push_back(sg);
      j += run;
    }
    T* out = static_cast<T*>(dst);
    // The element type in memory (Half and BFloat are tags for 16-bit storage).
    using Raw = std::conditional_t<std::is_same_v<S, Half> || std::is_same_v<S, BFloat>, uint16_t, S>;
    const Raw* x = static_cast<const Raw*>(x_);
    const int64_t chan0 = gi_ * cg;
    for (int64_t k = 0; k < kc; ++k) {
      // The output position of this row, as the input position of tap 0 per axis.
      int64_t r = row0_ + k0 + k;
      const int64_t p2 = r % g.out[2];
      r /= g.out[2];
      const int64_t p1 = r % g.out[1];
      r /= g.out[1];
      const int64_t p0 = r % g.out[0];
      const int64_t n = r / g.out[0];
      const int64_t b0 = p0 * g.stride[0] - g.lo[0], b1 = p1 * g.stride[1] - g.lo[1], b2 = p2 * g.stride[2] - g.lo[2];
      T* row = out + k * nr;
      for (const Seg& sg : segs) {
        T* d = row + sg.dst;
        int64_t i0 = b0 + sg.off[0], i1 = b1 + sg.off[1], i2 = b2 + sg.off[2];
        bool inside;
        if (!dilated) {
          inside = uint64_t(i0) < uint64_t(g.in[0]) && uint64_t(i1) < uint64_t(g.in[1]) && uint64_t(i2) < uint64_t(g.in[2]);
        } else {
          inside = i0 >= 0 && i1 >= 0 && i2 >= 0 && i0 % g.idil[0] == 0 && i1 % g.idil[1] == 0 && i2 % g.idil[2] == 0;
          i0 /= g.idil[0];
          i1 /= g.idil[1];
          i2 /= g.idil[2];
          inside = inside && i0 < g.in[0] && i1 < g.in[1] && i2 < g.in[2];
        }
        if (inside) {
          const Raw* src = x + (((n * g.in[0] + i0) * g.in[1] + i1) * g.in[2] + i2) * g.c + chan0 + sg.c;
          // Whole panel rows (the common case) as fixed-length copies the compiler unrolls.
          if (sg.run == 32) {
            for (int64_t q = 0; q < 32; ++q) d[q] = load_as<S, T>(src, q);
          } else if (sg.run == 16) {
            for (int64_t q = 0; q < 16; ++q) d[q] = load_as<S, T>(src, q);
          } else {
            for (int64_t q = 0; q < sg.run; ++q) d[q] = load_as<S, T>(src, q);
          }
        } else {
          for (int64_t q = 0; q < sg.run; ++q) d[q] = T(0);
        }
      }
    }
    // Columns past nc in the last panel.
    if (nc % nr)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = nc; j < panels * nr; ++j) out[(j / nr) * kc * nr + k * nr + j % nr] = T(0);
  }

 private:
  const Geometry& g_;
  const void* x_;
  int64_t gi_, col0_, row0_;
};

struct WeightGradGemmConfig final : PlanConfig {
  Isa isa = Isa::generic;
  GemmPlan full, last;           // the GEMM of a whole block of rows, and of the last block
  int64_t cols_per_pass = 0;     // columns (tap, c) of every group's dw summed per pass
  int64_t wave = 1;              // blocks computed at once (partial-sum slots)
  int64_t column_chunks = 1;     // GEMMs a block is split into per group (columns)
  int64_t gemm_bytes = 0;        // one thread's GEMM workspace
  int threads = 1;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"block_rows", kWgradBlockRows}, {"cols_per_pass", cols_per_pass}, {"wave", wave},
            {"column_chunks", column_chunks}, {"kc", full.kc}};
  }
  // The GEMM's bits do not depend on how N is split: the chunks change speed only, as long as
  // each stays within the per-thread GEMM workspace (chunks may only get narrower).
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "column_chunks" || value < column_chunks || value > cols_per_pass) return nullptr;
    auto c = std::make_shared<WeightGradGemmConfig>(*this);
    c->column_chunks = value;
    return c;
  }
};

// Bytes of the reduction's own buffers for `cols` columns: the float64 sums and their
// compensations, and `wave` slots of partials.
int64_t reduction_bytes(const Geometry& g, int64_t cols, int64_t wave, int64_t cs) {
  const int64_t elems = g.o * cols;
  return round_up_64(elems * 16) + round_up_64(wave * elems * cs);
}

class WeightGradGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"weight_grad_gemm", Backend::cpu, {Direction::bwd_w}, kAllDTypes,
                                   {Isa::generic, Isa::avx2, Isa::avx512},
                                   "O x cols float64 sums and compensations + wave x O x cols partials + per-thread "
                                   "GEMM blocks (B of 1024 rows x a column chunk)"};
    return t;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    auto cfg = std::make_shared<WeightGradGemmConfig>();
    cfg->isa = req.isa;
    cfg->threads = req.threads;
    const DType compute = g.dtype == DType::f64 ? DType::f64 : DType::f32;
    const int64_t cs = compute == DType::f64 ? 8 : 4;
    const int64_t kcols = g.kernel_volume() * g.cg();
    const int64_t rows = wgrad_rows(g), blocks = wgrad_blocks(g);
    const int64_t last_rows = rows - (blocks - 1) * kWgradBlockRows;
    const int64_t block_rows = std::min(rows, kWgradBlockRows);
    // Column chunks: enough GEMMs per wave to keep the threads busy when blocks are few, and
    // at most ~1024 columns each (B packed per thread: 1024 rows x 1024 columns).
    const int64_t threads = std::max(req.threads, 1);
    auto chunks_for = [&](int64_t cols, int64_t wave) {
      const int64_t busy = std::min(blocks, wave) * g.groups;
      int64_t ch = busy >= 2 * threads ? 1 : (2 * threads + busy - 1) / busy;
      ch = std::max(ch, (cols + 1023) / 1024);
      return std::clamp<int64_t>(ch, 1, cols);
    };
    auto gemm_ws = [&](int64_t cols, int64_t ch, GemmPlan* full, GemmPlan* last) {
      const int64_t width = (cols + ch - 1) / ch;
      *full = gemm_plan(g.og(), width, block_rows, compute, 1, req.isa);
      *last = gemm_plan(g.og(), width, last_rows, compute, 1, req.isa);
      return round_up_64(std::max(gemm_workspace_bytes(*full, width, block_rows, compute, false),
                                  gemm_workspace_bytes(*last, width, last_rows, compute, false)));
    };
    // Widest pass and most slots that fit: all columns and one slot per thread first; then
    // fewer slots, then fewer columns per pass (x is then read once per pass).
    int64_t best = -1;
    for (int64_t cols = kcols;; cols = (cols + 1) / 2) {
      for (int64_t wave = wgrad_wave_max(blocks, threads, g.o * cols * cs);; wave = (wave + 1) / 2) {
        const int64_t ch = chunks_for(cols, wave);
        GemmPlan full, last;
        const int64_t ws = reduction_bytes(g, cols, wave, cs) + threads * gemm_ws(cols, ch, &full, &last);
        if (best < 0 || ws < best) best = ws;
        if (ws <= req.budget) {
          cfg->cols_per_pass = cols;
          cfg->wave = wave;
          cfg->column_chunks = ch;
          cfg->full = full;
          cfg->last = last;
          cfg->gemm_bytes = (ws - reduction_bytes(g, cols, wave, cs)) / threads;
          out->workspace_bytes = ws;
          out->config = std::move(cfg);
          return {};
        }
        if (wave == 1) break;
      }
      if (cols == 1) break;
    }
    *min_ws = best;
    return "needs " + std::to_string(best) + " bytes of workspace at least; the budget is " +
           std::to_string(req.budget);
  }

  Status run(const RunContext& ctx) const override {
    const WeightGradGemmConfig* cfg = config_of<WeightGradGemmConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    if (Status st = check_config_isa(ctx.plan, cfg->isa); !st.ok()) return st;
    const Geometry& g = ctx.g;
    const bool f64 = g.dtype == DType::f64;
    const int64_t cs = f64 ? 8 : 4;
    const int64_t kcols = g.kernel_volume() * g.cg(), og = g.og();
    const int64_t blocks = wgrad_blocks(g), rows = wgrad_rows(g);
    const int64_t cols = cfg->cols_per_pass, chunks = cfg->column_chunks;
    if (ctx.pool->threads() > cfg->threads)
      return Status(ErrorKind::invalid, "[weight_grad_gemm] the pool has more threads than the plan");
    const int64_t red = reduction_bytes(g, cols, cfg->wave, cs);
    if (Status st = check_workspace_fits(ctx.plan, red + cfg->threads * cfg->gemm_bytes, "the sums and GEMM blocks");
        !st.ok())
      return st;
    if (blocks == 0 || kcols == 0) {
      std::memset(ctx.w.data, 0, size_t(g.w_elems() * dtype_size(g.dtype)));  // no terms: dw = 0
      return Status::Ok();
    }
    char* ws = static_cast<char*>(ctx.workspace);
    double* acc = reinterpret_cast<double*>(ws);
    double* comp = acc + g.o * cols;
    void* slots = ws + round_up_64(g.o * cols * 16);
    char* gemm_space = ws + red;
    const char* x = static_cast<const char*>(ctx.x.data);
    const char* dy = static_cast<const char*>(ctx.y.data);
    char* dw = static_cast<char*>(ctx.w.data);
    const int64_t es = dtype_size(g.dtype);
    const int64_t passes = (kcols + cols - 1) / cols;
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t j0 = pass * cols, width = std::min(cols, kcols - j0);
      const int64_t cw = (width + chunks - 1) / chunks;
      // Slot layout [O][width] (row stride `width`): element o·width + j is dw[o, j0 + j].
      auto partial = [&](int64_t b, int64_t part, void* slot, int thread) {
        const int64_t gi = part / chunks, c0 = (part % chunks) * cw;
        const int64_t n = std::min(cw, width - c0);
        if (n <= 0) return;
        const int64_t row0 = b * kWgradBlockRows, k = std::min(kWgradBlockRows, rows - row0);
        const GemmPlan& gp = k == std::min(rows, kWgradBlockRows) ? cfg->full : cfg->last;
        GemmArgs args;
        args.M = og;
        args.N = n;
        args.K = k;
        args.c = static_cast<char*>(slot) + (gi * og * width + c0) * cs;
        args.ldc = width;
        args.c_dtype = f64 ? DType::f64 : DType::f32;
        void* ws = gemm_space + int64_t(thread) * cfg->gemm_bytes;
        auto with = [&](auto s_tag, auto t_tag) {
          using S = decltype(s_tag);
          using T = decltype(t_tag);
          DyTransposed<S, T> a(dy, g.o, gi * og, row0);
          XColumns<S, T> bs(g, x, gi, j0 + c0, row0);
          args.a = &a;
          args.b = &bs;
          return gemm(gp, args, ws, cfg->gemm_bytes, nullptr);
        };
        Status st;
        switch (g.dtype) {
          case DType::f32: st = with(float(), float()); break;
          case DType::f16: st = with(Half(), float()); break;
          case DType::bf16: st = with(BFloat(), float()); break;
          case DType::f64: st = with(double(), double()); break;
        }
        if (!st.ok()) throw Error(st.kind(), st.message());
      };
      Status st;
      try {
        st = blocked_reduce(ctx, blocks, g.o * width, g.groups * chunks, cfg->wave, f64, slots, acc, comp, partial,
                            double(pass) / double(passes), 1.0 / double(passes));
      } catch (const Error& e) {
        return Status(e.kind(), e.what());
      }
      if (!st.ok()) return st;
      ctx.pool->parallel_for(g.o, [&](int64_t o, int) {
        for (int64_t j = 0; j < width; ++j) {
          const int64_t e = o * width + j;
          store_from_double(dw + (o * kcols + j0 + j) * es, g.dtype, acc[e] + comp[e]);
        }
      });
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& weight_grad_gemm_algorithm() {
  static const WeightGradGemm a;
  return a;
}

}  // namespace convnd
