// weight_grad_depthwise: the weight gradient of a conv with one input channel per group
// (depthwise, any channel multiplier) by a direct, memory-bound loop:
//   dw[o, tap] = Σ_rows dy[row, o] · x[row's position + tap, o / (O/g)].
// A GEMM per group would be 1 x taps: all packing and no reuse. Each block of rows is summed
// into a partial [taps, O] (vectorised over channels, rows in order), and the blocks are added
// in order by src/cpu/blocked_reduction.h: bitwise the same for any threads or budget.
// A single channel (C = O = 1, e.g. the dual of a long-kernel transposed conv) vectorises over
// the taps instead.
#include <algorithm>
#include <cstring>
#include <memory>

#include "cpu/blocked_reduction.h"
#include "cpu/config_checks.h"

namespace convnd {

namespace {

template <class S>
struct Load;
template <>
struct Load<float> {
  static float get(const float* p, int64_t i) { return p[i]; }
};
template <>
struct Load<double> {
  static double get(const double* p, int64_t i) { return p[i]; }
};
struct Half {};
struct BFloat {};

template <class S, class T>
inline T load_as(const void* base, int64_t i) {
  if constexpr (std::is_same_v<S, Half>) return T(half_to_float(static_cast<const uint16_t*>(base)[i]));
  else if constexpr (std::is_same_v<S, BFloat>) return T(bf16_to_float(static_cast<const uint16_t*>(base)[i]));
  else return T(static_cast<const S*>(base)[i]);
}

struct DepthwiseWgradConfig final : PlanConfig {
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

// One channel and a short last kernel axis: per run of rows along one output line and per
// tap, a dot product over the rows (kLanes interleaved lanes added in a fixed order), rather
// than a few taps per row: a 1-tap reduction over millions of rows is then a streaming dot.
template <class S, class T>
void single_short(const Geometry& g, const void* x, const void* dy, int64_t row0, int64_t row1, T* slot) {
  constexpr int64_t kLanes = 16;
  const int64_t K2 = g.k[2], s2 = g.stride[2], d2 = g.kdil[2];
  for (int64_t r = row0; r < row1;) {
    int64_t q = r;
    const int64_t a = q % g.out[2];  // first p2 of this run
    q /= g.out[2];
    const int64_t p1 = q % g.out[1];
    q /= g.out[1];
    const int64_t p0 = q % g.out[0];
    const int64_t n = q / g.out[0];
    const int64_t b = std::min(g.out[2], a + (row1 - r));  // the run is p2 in [a, b)
    for (int64_t t0 = 0; t0 < g.k[0]; ++t0) {
      const int64_t k0 = g.flip ? g.k[0] - 1 - t0 : t0;
      const int64_t pos0 = p0 * g.stride[0] + k0 * g.kdil[0] - g.lo[0];
      if (pos0 < 0 || pos0 % g.idil[0] || pos0 / g.idil[0] >= g.in[0]) continue;
      for (int64_t t1 = 0; t1 < g.k[1]; ++t1) {
        const int64_t k1 = g.flip ? g.k[1] - 1 - t1 : t1;
        const int64_t pos1 = p1 * g.stride[1] + k1 * g.kdil[1] - g.lo[1];
        if (pos1 < 0 || pos1 % g.idil[1] || pos1 / g.idil[1] >= g.in[1]) continue;
        const int64_t xrow = ((n * g.in[0] + pos0 / g.idil[0]) * g.in[1] + pos1 / g.idil[1]) * g.in[2];
        T* srow = slot + (t0 * g.k[1] + t1) * K2;
        for (int64_t t2 = 0; t2 < K2; ++t2) {
          const int64_t off = (g.flip ? K2 - 1 - t2 : t2) * d2 - g.lo[2];  // position = p2·s2 + off
          // p2 in [lo, hi): 0 <= p2·s2 + off < in.
          const int64_t lo = std::max(a, off >= 0 ? 0 : (-off + s2 - 1) / s2);
          const int64_t hi = std::min(b, g.in[2] - off <= 0 ? 0 : (g.in[2] - off - 1) / s2 + 1);
          if (lo >= hi) continue;
          T lane[kLanes] = {};
          const int64_t ybase = r - a;  // row of p2 = ybase + p2
          int64_t p = lo;
          if (s2 == 1) {
            for (; p + kLanes <= hi; p += kLanes)
              for (int64_t l = 0; l < kLanes; ++l)
                lane[l] += load_as<S, T>(dy, ybase + p + l) * load_as<S, T>(x, xrow + p + l + off);
          }
          for (int64_t l = 0; p < hi; ++p, l = (l + 1) % kLanes)
            lane[l] += load_as<S, T>(dy, ybase + p) * load_as<S, T>(x, xrow + p * s2 + off);
          T sum = T(0);
          for (int64_t l = 0; l < kLanes; ++l) sum += lane[l];
          srow[t2] += sum;
        }
      }
    }
    r += b - a;
  }
}

// The partial of block b for channels [o0, o1) into slot [taps][O] (compute type T).
template <class S, class T>
void depthwise_partial(const Geometry& g, const void* x, const void* dy, int64_t row0, int64_t row1, int64_t o0,
                       int64_t o1, T* slot) {
  const int64_t taps = g.kernel_volume(), O = g.o, C = g.c, og = g.og();
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t o = o0; o < o1; ++o) slot[t * O + o] = T(0);
  const bool single = C == 1 && O == 1 && g.idil[2] == 1;
  if (single && g.k[2] <= 64) {
    single_short<S, T>(g, x, dy, row0, row1, slot);
    return;
  }
  for (int64_t r = row0; r < row1; ++r) {
    int64_t q = r;
    const int64_t p2 = q % g.out[2];
    q /= g.out[2];
    const int64_t p1 = q % g.out[1];
    q /= g.out[1];
    const int64_t p0 = q % g.out[0];
    const int64_t n = q / g.out[0];
    for (int64_t t0 = 0; t0 < g.k[0]; ++t0) {
      const int64_t k0 = g.flip ? g.k[0] - 1 - t0 : t0;
      const int64_t pos0 = p0 * g.stride[0] + k0 * g.kdil[0] - g.lo[0];
      if (pos0 < 0 || pos0 % g.idil[0] || pos0 / g.idil[0] >= g.in[0]) continue;
      for (int64_t t1 = 0; t1 < g.k[1]; ++t1) {
        const int64_t k1 = g.flip ? g.k[1] - 1 - t1 : t1;
        const int64_t pos1 = p1 * g.stride[1] + k1 * g.kdil[1] - g.lo[1];
        if (pos1 < 0 || pos1 % g.idil[1] || pos1 / g.idil[1] >= g.in[1]) continue;
        const int64_t xrow = ((n * g.in[0] + pos0 / g.idil[0]) * g.in[1] + pos1 / g.idil[1]) * g.in[2];
        T* srow = slot + (t0 * g.k[1] + t1) * g.k[2] * O;
        if (single) {
          // One channel: taps along the last axis read consecutive (kdil apart) inputs.
          const T d = load_as<S, T>(dy, r);
          const int64_t base = p2 * g.stride[2] - g.lo[2], dl = g.kdil[2];
          // kk in [lo, hi]: 0 <= base + kk·dl < in.
          const int64_t lo = base >= 0 ? 0 : (-base + dl - 1) / dl;
          const int64_t hi = base > g.in[2] - 1 ? -1 : std::min(g.k[2] - 1, (g.in[2] - 1 - base) / dl);
          if (g.flip)
            for (int64_t kk = lo; kk <= hi; ++kk) srow[g.k[2] - 1 - kk] += d * load_as<S, T>(x, xrow + base + kk * dl);
          else if (dl == 1)  // the common case, contiguous: vectorises
            for (int64_t kk = lo; kk <= hi; ++kk) srow[kk] += d * load_as<S, T>(x, xrow + base + kk);
          else
            for (int64_t kk = lo; kk <= hi; ++kk) srow[kk] += d * load_as<S, T>(x, xrow + base + kk * dl);
          continue;
        }
        for (int64_t t2 = 0; t2 < g.k[2]; ++t2) {
          const int64_t k2 = g.flip ? g.k[2] - 1 - t2 : t2;
          const int64_t pos2 = p2 * g.stride[2] + k2 * g.kdil[2] - g.lo[2];
          if (pos2 < 0 || pos2 % g.idil[2] || pos2 / g.idil[2] >= g.in[2]) continue;
          const int64_t xb = (xrow + pos2 / g.idil[2]) * C;
          T* s = srow + t2 * O;
          const int64_t yb = r * O;
          if (og == 1) {
            for (int64_t o = o0; o < o1; ++o) s[o] += load_as<S, T>(dy, yb + o) * load_as<S, T>(x, xb + o);
          } else {
            // A channel multiplier: one input value per group, broadcast over its outputs.
            for (int64_t o = o0; o < o1;) {
              const int64_t gi = o / og, oe = std::min(o1, (gi + 1) * og);
              const T xv = load_as<S, T>(x, xb + gi);
              for (; o < oe; ++o) s[o] += load_as<S, T>(dy, yb + o) * xv;
            }
          }
        }
      }
    }
  }
}

class WeightGradDepthwise final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"weight_grad_depthwise", Backend::cpu, {Direction::bwd_w}, kAllDTypes,
                                   {Isa::generic, Isa::avx2, Isa::avx512},
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
    const int64_t chunks = std::min(cfg->channel_chunks, g.o), per = (g.o + chunks - 1) / chunks;
    auto partial = [&](int64_t b, int64_t part, void* slot, int) {
      const int64_t r0 = b * kWgradBlockRows, r1 = std::min(rows, r0 + kWgradBlockRows);
      const int64_t o0 = part * per, o1 = std::min(g.o, o0 + per);
      if (o0 >= o1) return;
      switch (g.dtype) {
        case DType::f32: depthwise_partial<float, float>(g, ctx.x.data, ctx.y.data, r0, r1, o0, o1, static_cast<float*>(slot)); break;
        case DType::f16: depthwise_partial<Half, float>(g, ctx.x.data, ctx.y.data, r0, r1, o0, o1, static_cast<float*>(slot)); break;
        case DType::bf16: depthwise_partial<BFloat, float>(g, ctx.x.data, ctx.y.data, r0, r1, o0, o1, static_cast<float*>(slot)); break;
        case DType::f64: depthwise_partial<double, double>(g, ctx.x.data, ctx.y.data, r0, r1, o0, o1, static_cast<double*>(slot)); break;
      }
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
