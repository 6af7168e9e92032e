// weight_grad_gemm: the weight gradient of any conv as a GEMM per group and per block of rows,
// computed transposed:
//   dw[o, (tap, c)] = Σ_rows im2col(x)[row, (tap, c)] · dy[row, o],   M = taps·C/g, N = O/g,
// with the reduction (K of the GEMM) running over one fixed block of rows (n, output
// position): src/cpu/blocked_reduction.h adds the blocks' partials in block order, so the
// result is bitwise the same for every thread count, budget and column split (each element is
// one micro-kernel's sum over the block's K blocks of gemm_kc, in order, whatever tile it sits
// in: src/cpu/gemm.h).
// Why transposed: O/g is often small (64 is 5 panels of 14 with the last one 8/14 full) where
// taps·C/g is large, and im2col (taps times larger than dy) is best read where it lies. A
// k step of an A panel is mr consecutive columns (tap, c): for one tap, mr consecutive channels
// of one input pixel. The k-major kernels (GemmKernels::f32_gemm_krows) read them through one
// pointer per k (the pixel of row k under the tap, or a row of zeros on padding), so A is not
// packed at all; a panel that crosses into the next tap takes the kernel of two runs
// (f32_gemm_krows2); panels that are partial, span more taps or need a conversion (f16, bf16)
// are copied k-major from the same pointers. B is dy's rows of the group, read in place too
// when they fill whole panels of nr (else packed). Nothing is transposed, and the kernels'
// sums are the ones of the untransposed GEMM (a·b = b·a exactly), so the bits are those of
// the earlier dw = dy^T · im2col(x) form.
// Measured on the 2-core AVX-512 machine, 2 threads: 3x3 c64 on 56² 12.2 -> 6.4 ms, 3x3 c256
// on 14² 12.0 -> 6.6 ms, 1x1 c256 -> 64 on 56² 6.1 -> 3.0 ms (with the reduction's changes).
#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/blocked_reduction.h"
#include "cpu/isas.h"
#include "cpu/config_checks.h"
#include "cpu/gemm.h"

namespace convnd {

namespace {

struct Half {};
struct BFloat {};

// The element type in memory of storage S (Half and BFloat are tags for 16-bit storage).
template <class S>
using RawOf = std::conditional_t<std::is_same_v<S, Half> || std::is_same_v<S, BFloat>, uint16_t, S>;

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
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<const T*>(src)[i];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = load_as<S, T>(src, i);
  }
}

// Whether dy's rows are read in place as B: of the compute type, and every panel of nr output
// channels inside the group.
bool dy_in_place(const Geometry& g, int64_t nr) {
  return (g.dtype == DType::f32 || g.dtype == DType::f64) && g.og() % nr == 0;
}

// One thread's scratch for a block's GEMM (byte offsets): B packed for one K block (unless
// dy_in_place), one A panel copied k-major, the pointers to its rows, the row pointers of a few
// taps and the rows' output positions.
struct TaskLayout {
  int64_t b = 0, a = 0, a_rows = 0, tables = 0, pos = 0, total = 0;
  int64_t slots = 0;  // taps whose row pointers are kept at once
};

TaskLayout task_layout(const Geometry& g, int64_t mr, int64_t nr, int64_t kc, int64_t cs) {
  TaskLayout t;
  const int64_t cg = std::max<int64_t>(g.cg(), 1);
  // A panel spans at most (mr - 1) / cg + 2 taps: all of them must be at hand together.
  // At most mr + 1 <= 15 (block_partial keeps 16).
  t.slots = std::min<int64_t>((mr - 1) / cg + 2, std::max<int64_t>(g.kernel_volume(), 1));
  int64_t off = dy_in_place(g, nr) ? 0 : round_up_64((g.og() + nr - 1) / nr * nr * kc * cs);
  t.a = off;
  off += round_up_64(mr * kc * cs);
  t.a_rows = off;
  off += round_up_64(kc * int64_t(sizeof(void*)));
  t.tables = off;
  off += round_up_64(t.slots * kc * int64_t(sizeof(void*)));
  t.pos = off;
  off += round_up_64(kc * 5 * int64_t(sizeof(int64_t)));
  t.total = off;
  return t;
}

// The partial sums of one block of rows [row0, row0 + K), one group gi and the columns
// [col0, col0 + n) of the group's dw, for storage S computed in T, into a slot of the pass's
// layout (slot_elems): dw[gi·og + p·nr + r, j] at ((gi·npanels + p)·width + j - pass0)·nr + r.
template <class S, class T>
void block_partial(const Geometry& g, const GemmKernels& kt, int64_t mr, int64_t nr, int64_t kc,
                   const void* x_, const void* dy_, const void* zeros, int64_t row0, int64_t K, int64_t gi,
                   int64_t col0, int64_t n, int64_t pass0, int64_t width, T* slot, char* space,
                   const TaskLayout& lay) {
  using Raw = RawOf<S>;
  constexpr bool in_place = std::is_same_v<Raw, T>;
  const Raw* x = static_cast<const Raw*>(x_);
  const Raw* dy = static_cast<const Raw*>(dy_);
  const Raw* zero_row = static_cast<const Raw*>(zeros);
  const int64_t cg = g.cg(), og = g.og(), chan0 = gi * cg, o_first = gi * og;
  const int64_t npanels = (og + nr - 1) / nr;
  const bool dilated = g.idil[0] > 1 || g.idil[1] > 1 || g.idil[2] > 1;
  auto kernel = [&] {
    if constexpr (sizeof(T) == 8)
      return kt.f64_gemm_krows;
    else
      return kt.f32_gemm_krows;
  }();
  auto kernel2 = [&] {
    if constexpr (sizeof(T) == 8)
      return kt.f64_gemm_krows2;
    else
      return kt.f32_gemm_krows2;
  }();
  T* b = reinterpret_cast<T*>(space + lay.b);  // [npanels][klen][nr], unless dy_in_place
  T* a = reinterpret_cast<T*>(space + lay.a);  // [klen][mr]
  const T** a_rows = reinterpret_cast<const T**>(space + lay.a_rows);
  const Raw** tables = reinterpret_cast<const Raw**>(space + lay.tables);  // [slots][klen]
  int64_t* pos = reinterpret_cast<int64_t*>(space + lay.pos);              // [klen][n, i0, i1, i2, at]
  for (int64_t k = 0; k < kc; ++k) a_rows[k] = a + k * mr;
  int64_t slot_tap[16];

  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t klen = std::min(kc, K - k0);
    // Each row's sample, the input position of tap 0 per axis and (without input dilation)
    // where that position's channel 0 of the group would be in x, inside or not.
    {
      int64_t r = row0 + k0;
      int64_t p2 = r % g.out[2];
      r /= g.out[2];
      int64_t p1 = r % g.out[1];
      r /= g.out[1];
      int64_t p0 = r % g.out[0];
      int64_t nn = r / g.out[0];
      for (int64_t k = 0; k < klen; ++k) {
        int64_t* q = pos + 5 * k;
        q[0] = nn;
        q[1] = p0 * g.stride[0] - g.lo[0];
        q[2] = p1 * g.stride[1] - g.lo[1];
        q[3] = p2 * g.stride[2] - g.lo[2];
        q[4] = (((nn * g.in[0] + q[1]) * g.in[1] + q[2]) * g.in[2] + q[3]) * g.c + chan0;
        if (++p2 == g.out[2]) {
          p2 = 0;
          if (++p1 == g.out[1]) {
            p1 = 0;
            if (++p0 == g.out[0]) p0 = 0, ++nn;
          }
        }
      }
    }
    // B: the group's columns of dy's rows, read where they are when dy is of the compute type
    // and the group's channels fill whole panels; else packed, nr per panel with zeros past og,
    // row by row so that dy (read from memory) is read in order.
    const T* b_at = b;
    int64_t ldb = nr, pstride = klen * nr;
    if (dy_in_place(g, nr)) {
      b_at = reinterpret_cast<const T*>(dy) + (row0 + k0) * g.o + o_first;
      ldb = g.o;
      pstride = nr;
    } else {
      for (int64_t k = 0; k < klen; ++k)
        for (int64_t p = 0; p < npanels; ++p) {
          const int64_t o0 = p * nr, on = std::min(nr, og - o0);
          T* bk = b + (p * klen + k) * nr;
          copy_run<S, T>(bk, dy + (row0 + k0 + k) * g.o + o_first + o0, on);
          for (int64_t j = on; j < nr; ++j) bk[j] = T(0);
        }
    }
    // Row pointers of a tap: channel 0 of the group at row k's input pixel under the tap, or
    // the row of zeros where the tap lands on padding or on a zero of the input dilation.
    for (int64_t s = 0; s < lay.slots; ++s) slot_tap[s] = -1;
    auto tap_rows = [&](int64_t tap, int64_t lo, int64_t hi) -> const Raw** {
      int64_t s = 0;
      for (; s < lay.slots; ++s)
        if (slot_tap[s] == tap) return tables + s * kc;
      for (s = 0; s < lay.slots; ++s)
        if (slot_tap[s] < lo || slot_tap[s] > hi) break;
      const Raw** rows = tables + s * kc;
      slot_tap[s] = tap;
      const int64_t t[3] = {tap / (g.k[2] * g.k[1]), (tap / g.k[2]) % g.k[1], tap % g.k[2]};
      int64_t off[3];
      for (int ax = 0; ax < 3; ++ax) off[ax] = (g.flip ? g.k[ax] - 1 - t[ax] : t[ax]) * g.kdil[ax];
      if (!dilated) {
        const int64_t tap_at = ((off[0] * g.in[1] + off[1]) * g.in[2] + off[2]) * g.c;
        const uint64_t in0 = g.in[0], in1 = g.in[1], in2 = g.in[2];
        for (int64_t k = 0; k < klen; ++k) {
          const int64_t* q = pos + 5 * k;
          const bool inside = (uint64_t(q[1] + off[0]) < in0) & (uint64_t(q[2] + off[1]) < in1) &
                              (uint64_t(q[3] + off[2]) < in2);
          rows[k] = inside ? x + (q[4] + tap_at) : zero_row;
        }
        return rows;
      }
      for (int64_t k = 0; k < klen; ++k) {
        const int64_t* q = pos + 5 * k;
        int64_t i0 = q[1] + off[0], i1 = q[2] + off[1], i2 = q[3] + off[2];
        bool inside = i0 >= 0 && i1 >= 0 && i2 >= 0 && i0 % g.idil[0] == 0 && i1 % g.idil[1] == 0 &&
                      i2 % g.idil[2] == 0;
        i0 /= g.idil[0];
        i1 /= g.idil[1];
        i2 /= g.idil[2];
        inside = inside && i0 < g.in[0] && i1 < g.in[1] && i2 < g.in[2];
        rows[k] =
            inside ? x + (((q[0] * g.in[0] + i0) * g.in[1] + i1) * g.in[2] + i2) * g.c + chan0 : zero_row;
      }
      return rows;
    };
    for (int64_t jm = 0; jm < n; jm += mr) {
      const int64_t c_first = col0 + jm, mi = std::min(mr, n - jm);
      const int64_t lo = c_first / cg, hi = (c_first + mi - 1) / cg;
      T* c = slot + (gi * npanels * width + c_first - pass0) * nr;
      // All nr columns: those past og are the zeros of B's padding, stored into the slot's
      // padding (so that the reduction reads no unwritten memory).
      if (in_place && mi == mr && hi == lo + 1) {
        // Across two taps: the kernel reads both runs where they are.
        const T* const* rows = reinterpret_cast<const T* const*>(tap_rows(lo, lo, hi));
        const T* const* rows2 = reinterpret_cast<const T* const*>(tap_rows(hi, lo, hi));
        for (int64_t p = 0; p < npanels; ++p)
          kernel2(klen, rows, rows2, c_first - lo * cg, hi * cg - c_first, b_at + p * pstride, ldb,
                  c + p * width * nr, nr, mi, nr, k0 > 0);
        continue;
      }
      const T* const* rows;
      int64_t off = 0;
      if (in_place && mi == mr && lo == hi) {
        rows = reinterpret_cast<const T* const*>(tap_rows(lo, lo, hi));
        off = c_first - lo * cg;
      } else {
        // Copied k-major: each tap's run of the panel's columns, then zeros past mi.
        struct Seg {
          const Raw* const* rows;
          int64_t r0, run, c;
        } segs[16];
        int64_t nseg = 0;
        for (int64_t tap = lo; tap <= hi; ++tap) {
          const int64_t from = std::max(c_first, tap * cg), to = std::min(c_first + mi, (tap + 1) * cg);
          segs[nseg++] = {tap_rows(tap, lo, hi), from - c_first, to - from, from - tap * cg};
        }
        for (int64_t k = 0; k < klen; ++k) {
          T* d = a + k * mr;
          for (int64_t i = 0; i < nseg; ++i)
            copy_run<S, T>(d + segs[i].r0, segs[i].rows[k] + segs[i].c, segs[i].run);
          for (int64_t r = mi; r < mr; ++r) d[r] = T(0);
        }
        rows = a_rows;
      }
      for (int64_t p = 0; p < npanels; ++p)
        kernel(klen, rows, off, b_at + p * pstride, ldb, c + p * width * nr, nr, mi, nr, k0 > 0);
    }
  }
}

struct WeightGradGemmConfig final : PlanConfig {
  Isa isa = Isa::generic;
  int64_t mr = 0, nr = 0;        // the kernel's tile: mr columns (tap, c) by nr channels o
  int64_t kc = 0;                // the longest K block of any block of rows (gemm_kc of its rows)
  int64_t cols_per_pass = 0;     // columns (tap, c) of every group's dw summed per pass
  int64_t wave = 1;              // blocks computed at once (partial-sum slots)
  int64_t column_chunks = 1;     // GEMMs a block is split into per group (columns)
  int64_t task_bytes = 0;        // one thread's scratch (TaskLayout)
  int threads = 1;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"block_rows", kWgradBlockRows},
            {"cols_per_pass", cols_per_pass},
            {"wave", wave},
            {"column_chunks", column_chunks},
            {"kc", kc}};
  }
  // The bits do not depend on how the columns are split: the chunks change speed only.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "column_chunks" || value < column_chunks || value > cols_per_pass) return nullptr;
    auto c = std::make_shared<WeightGradGemmConfig>(*this);
    c->column_chunks = value;
    return c;
  }
};

// Elements of a slot for `cols` columns: per group and panel of nr output channels (the last
// one padded), `cols` rows of nr, the layout the kernels' C tiles are stored in whole; the
// reduction then hands over runs of cols·nr sums that are whole stretches of nr rows of dw.
int64_t slot_elems(const Geometry& g, int64_t nr, int64_t cols) {
  return g.groups * ((g.og() + nr - 1) / nr) * nr * cols;
}

// Bytes of the float64 sums and their compensations for `cols` columns: none when one wave
// holds every block (blocked_reduce then sums each range of elements on a thread's stack).
int64_t sums_bytes(const Geometry& g, int64_t nr, int64_t cols, int64_t wave) {
  return wave >= wgrad_blocks(g) ? 0 : round_up_64(slot_elems(g, nr, cols) * 16);
}

// Bytes of the reduction's own buffers for `cols` columns: the sums, and `wave` slots of
// partials.
int64_t reduction_bytes(const Geometry& g, int64_t nr, int64_t cols, int64_t wave, int64_t cs) {
  return sums_bytes(g, nr, cols, wave) + round_up_64(wave * slot_elems(g, nr, cols) * cs);
}

// Bytes of the row of zeros that padded taps point to (C/g elements of any dtype).
int64_t zero_row_bytes(const Geometry& g) {
  return round_up_64(std::max<int64_t>(g.cg(), 1) * 8);
}

// Columns per chunk: whole panels, so that only the last panel of a pass can be partial.
int64_t chunk_width(int64_t width, int64_t chunks, int64_t mr) {
  return ((width + chunks - 1) / chunks + mr - 1) / mr * mr;
}

class WeightGradGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{
        "weight_grad_gemm",
        Backend::cpu,
        {Direction::bwd_w},
        kAllDTypes,
        kCpuIsas,
        "O x cols float64 sums and compensations (none when one wave holds every "
        "block) + wave x O x cols partials + a row of C/g zeros + per-thread GEMM "
        "scratch (one A panel, row pointers; dy's rows of one K block unless read in "
        "place)"};
    return t;
  }

  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    auto cfg = std::make_shared<WeightGradGemmConfig>();
    cfg->isa = req.isa;
    cfg->threads = req.threads;
    const DType compute = g.dtype == DType::f64 ? DType::f64 : DType::f32;
    const int64_t cs = compute == DType::f64 ? 8 : 4;
    const GemmTile tile = gemm_tile(req.isa, compute);
    cfg->mr = tile.mr;
    cfg->nr = tile.nr;
    const int64_t kcols = g.kernel_volume() * g.cg();
    const int64_t rows = wgrad_rows(g), blocks = wgrad_blocks(g);
    const int64_t last_rows = rows - (blocks - 1) * kWgradBlockRows;
    const int64_t block_rows = std::min(rows, kWgradBlockRows);
    cfg->kc =
        std::max<int64_t>({gemm_kc(req.isa, compute, block_rows), gemm_kc(req.isa, compute, last_rows), 1});
    cfg->task_bytes = task_layout(g, cfg->mr, cfg->nr, cfg->kc, cs).total;
    // Column chunks: enough GEMMs per wave to keep the threads busy when blocks are few.
    // (Finer chunks to even out a short last block were tried: no faster, they read x and dy
    // once per chunk.)
    const int64_t threads = std::max(req.threads, 1);
    auto chunks_for = [&](int64_t cols, int64_t wave) {
      const int64_t busy = std::min(blocks, wave) * g.groups;
      const int64_t ch = busy >= 2 * threads ? 1 : (2 * threads + busy - 1) / busy;
      return std::clamp<int64_t>(ch, 1, cols);
    };
    // Widest pass and most slots that fit: all columns and one slot per thread first; then
    // fewer slots, then fewer columns per pass (x is then read once per pass).
    const int64_t fixed = zero_row_bytes(g) + threads * cfg->task_bytes;
    int64_t best = -1;
    for (int64_t cols = kcols;; cols = (cols + 1) / 2) {
      for (int64_t wave = wgrad_wave_max(blocks, threads, slot_elems(g, cfg->nr, cols) * cs);;
           wave = (wave + 1) / 2) {
        const int64_t ws = reduction_bytes(g, cfg->nr, cols, wave, cs) + fixed;
        if (best < 0 || ws < best) best = ws;
        if (ws <= req.budget) {
          cfg->cols_per_pass = cols;
          cfg->wave = wave;
          cfg->column_chunks = chunks_for(cols, wave);
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
    const DType compute = f64 ? DType::f64 : DType::f32;
    const int64_t cs = f64 ? 8 : 4;
    const int64_t kcols = g.kernel_volume() * g.cg();
    const int64_t blocks = wgrad_blocks(g), rows = wgrad_rows(g);
    const int64_t cols = cfg->cols_per_pass, chunks = cfg->column_chunks;
    if (ctx.pool->threads() > cfg->threads)
      return Status(ErrorKind::invalid, "[weight_grad_gemm] the pool has more threads than the plan");
    const GemmTile tile = gemm_tile(cfg->isa, compute);
    const TaskLayout lay = task_layout(g, cfg->mr, cfg->nr, cfg->kc, cs);
    if (tile.mr != cfg->mr || tile.nr != cfg->nr || lay.total != cfg->task_bytes)
      return Status(ErrorKind::invalid, "[weight_grad_gemm] the configuration's tile is not its path's");
    const int64_t red = reduction_bytes(g, cfg->nr, cols, cfg->wave, cs);
    if (Status st = check_workspace_fits(ctx.plan, red + zero_row_bytes(g) + cfg->threads * cfg->task_bytes,
                                         "the sums and GEMM scratch");
        !st.ok())
      return st;
    if (blocks == 0 || kcols == 0) {
      std::memset(ctx.w.data, 0, size_t(g.w_elems() * dtype_size(g.dtype)));  // no terms: dw = 0
      return Status::Ok();
    }
    char* ws = static_cast<char*>(ctx.workspace);
    const bool sums = sums_bytes(g, cfg->nr, cols, cfg->wave) > 0;
    double* acc = sums ? reinterpret_cast<double*>(ws) : nullptr;
    double* comp = sums ? acc + slot_elems(g, cfg->nr, cols) : nullptr;
    void* slots = ws + sums_bytes(g, cfg->nr, cols, cfg->wave);
    void* zeros = ws + red;
    std::memset(zeros, 0, size_t(zero_row_bytes(g)));
    char* task_space = ws + red + zero_row_bytes(g);
    const GemmKernels& kt = gemm_kernels(cfg->isa);
    char* dw = static_cast<char*>(ctx.w.data);
    const int64_t es = dtype_size(g.dtype);
    const int64_t passes = (kcols + cols - 1) / cols;
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t j0 = pass * cols, width = std::min(cols, kcols - j0);
      const int64_t cw = chunk_width(width, chunks, cfg->mr);
      // Slots in the layout of slot_elems (block_partial).
      auto partial = [&](int64_t b, int64_t part, void* slot, int thread) {
        const int64_t gi = part / chunks, c0 = (part % chunks) * cw;
        const int64_t n = std::min(cw, width - c0);
        if (n <= 0) return;
        const int64_t row0 = b * kWgradBlockRows, k = std::min(kWgradBlockRows, rows - row0);
        const int64_t kc = gemm_kc(cfg->isa, compute, k);
        char* space = task_space + int64_t(thread) * cfg->task_bytes;
        auto with = [&](auto s_tag, auto t_tag) {
          using S = decltype(s_tag);
          using T = decltype(t_tag);
          block_partial<S, T>(g, kt, cfg->mr, cfg->nr, kc, ctx.x.data, ctx.y.data, zeros, row0, k, gi,
                              j0 + c0, n, j0, width, static_cast<T*>(slot), space, lay);
        };
        switch (g.dtype) {
          case DType::f32: with(float(), float()); break;
          case DType::f16: with(Half(), float()); break;
          case DType::bf16: with(BFloat(), float()); break;
          case DType::f64: with(double(), double()); break;
        }
      };
      // dw[o, j0 + j] = acc + comp of element ((gi·npanels + p)·width + j)·nr + r, o = gi·og + p·nr
      // + r, stored as each range is finished (the padding of a group's last panel dropped).
      const int64_t nr = cfg->nr, og = g.og(), npanels = (og + nr - 1) / nr;
      const WgradFinish finish = [&](int64_t e0, int64_t e1, const double* a, const double* c) {
        // By stretches of whole slot rows of one plane (a partial row at either end alone), each
        // output channel's run of the stretch written in order: a line of dw is finished before
        // the next is started.
        for (int64_t e = e0; e < e1;) {
          const int64_t plane = e / (width * nr), j = e % (width * nr) / nr, r0 = e % nr;
          int64_t rows_n = r0 == 0 ? std::min((e1 - e) / nr, width - j) : 0, r1 = nr;
          if (rows_n == 0) rows_n = 1, r1 = std::min(nr, r0 + e1 - e);
          const int64_t in_group = plane % npanels * nr, o_first = plane / npanels * og + in_group;
          const int64_t valid = std::min(r1, og - in_group);
          const double* ai = a + (e - e0) - r0;
          const double* ci = c + (e - e0) - r0;
          for (int64_t r = r0; r < valid; ++r) {
            const int64_t at = (o_first + r) * kcols + j0 + j;
            if (g.dtype == DType::f32) {
              float* d = reinterpret_cast<float*>(dw) + at;
              for (int64_t q = 0; q < rows_n; ++q) d[q] = float(ai[q * nr + r] + ci[q * nr + r]);
            } else {
              for (int64_t q = 0; q < rows_n; ++q)
                store_from_double(dw + (at + q) * es, g.dtype, ai[q * nr + r] + ci[q * nr + r]);
            }
          }
          e += (rows_n - 1) * nr + (r1 - r0);
        }
      };
      if (Status st = blocked_reduce(ctx, blocks, slot_elems(g, nr, width), g.groups * chunks, cfg->wave, f64,
                                     slots, acc, comp, partial, double(pass) / double(passes),
                                     1.0 / double(passes), &finish);
          !st.ok())
        return st;
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
