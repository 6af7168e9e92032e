#include "cpu/conv_gemm.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "core/checked.h"
#include "cpu/config_checks.h"
#include "cpu/thread_pool.h"

namespace convnd {

namespace {

constexpr int64_t kMaxPanel = 64;  // largest mr or nr of any kernel

// The GEMM's compute type: bf16 data on a path with bf16 kernels runs them (gemm.h).
DType compute_of(DType t, GemmIsa isa) {
  if (t == DType::bf16 && gemm_has_bf16(isa)) return DType::bf16;
  return t == DType::f64 ? DType::f64 : DType::f32;
}

// Output pixel `pix` of the dense problem (flattened over N and the output extents) as
// (n, a[0], a[1], a[2]): by division once, then next() by counting (the divisions cost more than
// the rest of a panel row's set-up).
struct OutPixel {
  const Dims& out;
  int64_t n = 0, a[3] = {0, 0, 0};
  OutPixel(const Dims& extents, int64_t pix) : out(extents) {
    a[2] = pix % out[2];
    pix /= out[2];
    a[1] = pix % out[1];
    pix /= out[1];
    a[0] = pix % out[0];
    n = pix / out[0];
  }
  void next() {
    if (++a[2] < out[2]) return;
    a[2] = 0;
    if (++a[1] < out[1]) return;
    a[1] = 0;
    if (++a[0] == out[0]) a[0] = 0, ++n;
  }
};

// Tap t of a kernel of extents k as (t[0], t[1], t[2]), counted forward like OutPixel.
struct Tap {
  const Dims& k;
  int64_t t[3];
  Tap(const Dims& extents, int64_t tap) : k(extents) {
    t[2] = tap % k[2];
    t[1] = (tap / k[2]) % k[1];
    t[0] = tap / (k[2] * k[1]);
  }
  void next() {
    if (++t[2] < k[2]) return;
    t[2] = 0;
    if (++t[1] == k[1]) t[1] = 0, ++t[0];
  }
};

// A = implicit im2col of x for one group: row r is output pixel base + r of the dense
// problem, column k = tap·C/g + c. Rows are gathered straight from x while packing; taps that
// land on padding pack as zeros (null row pointers).
class Im2colA final : public GemmASource {
 public:
  Im2colA(const Geometry& s, const char* x, int64_t group, int64_t base) : s_(s), x_(x), base_(base) {
    es_ = dtype_size(s.dtype);
    c0_ = group * s.cg();
  }
  void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc, void* dst) const override {
    const int64_t mr = plan.mr, cg = s_.cg();
    const int64_t ces = gemm_a_elem_bytes(plan);
    const int64_t t_first = k0 / cg, t_last = (k0 + kc - 1) / cg;
    // Per row: the byte offset of its tap (0, 0, 0) (outside x when that tap is padding:
    // only used for taps inside), and per axis the range [lo, hi) of taps that land inside x.
    // A tap's row pointer is then one add, and a check only for rows near a border.
    std::array<int64_t, kMaxPanel> off;
    std::array<std::array<int64_t, 6>, kMaxPanel> range;
    for (int64_t p = 0; p * mr < mc; ++p) {
      const int64_t rcount = std::min(mr, mc - p * mr);
      char* panel = static_cast<char*>(dst) + p * gemm_a_panel_elems(plan, kc) * ces;
      bool interior = true;  // every tap of every row inside x
      OutPixel px(s_.out, base_ + m0 + p * mr);
      for (int64_t r = 0; r < rcount; ++r, px.next()) {
        int64_t i[3];
        for (int ax = 0; ax < 3; ++ax) {
          i[ax] = px.a[ax] * s_.stride[ax] - s_.lo[ax];
          // Taps t with 0 <= i + t·kdil < in.
          const int64_t d = s_.kdil[ax], below = -i[ax], room = s_.in[ax] - i[ax];
          int64_t lo = 0, hi = 0;
          if (d == 1) {  // no division in the common case
            lo = below > 0 ? below : 0;
            hi = room > 0 ? std::min(s_.k[ax], room) : 0;
          } else {
            lo = below > 0 ? (below + d - 1) / d : 0;
            hi = room > 0 ? std::min(s_.k[ax], (room + d - 1) / d) : 0;
          }
          range[r][2 * ax] = lo;
          range[r][2 * ax + 1] = hi;
          interior = interior && lo == 0 && hi == s_.k[ax];
        }
        off[r] = ((((px.n * s_.in[0] + i[0]) * s_.in[1] + i[1]) * s_.in[2] + i[2]) * s_.c + c0_) * es_;
      }
      Tap tap(s_.k, t_first);
      const int64_t* tt = tap.t;
      // Kernels of at most 64 taps: bit t of valid[r] says whether tap t of row r is inside x,
      // built from the per-axis ranges once per row rather than tested per (tap, row).
      const bool use_bits = s_.kernel_volume() <= 64 && !interior;
      std::array<uint64_t, kMaxPanel> valid;
      if (use_bits) {
        for (int64_t r = 0; r < rcount; ++r) {
          const std::array<int64_t, 6>& g = range[r];
          uint64_t bits = 0;
          if (g[4] < g[5]) {
            const uint64_t run = ((uint64_t(1) << (g[5] - g[4])) - 1) << g[4];  // taps of the last axis
            for (int64_t u0 = g[0]; u0 < g[1]; ++u0)
              for (int64_t u1 = g[2]; u1 < g[3]; ++u1) bits |= run << ((u0 * s_.k[1] + u1) * s_.k[2]);
          }
          valid[r] = bits;
        }
      }
      // The taps go to the packer in batches of kBatch segments (one call each).
      constexpr int64_t kBatch = 32;
      std::array<GemmASegment, kBatch> segs;
      std::array<const void*, kBatch * kMaxPanel> rows;
      int64_t nseg = 0;
      for (int64_t t = t_first; t <= t_last; ++t) {
        const int64_t c_lo = std::max(k0, t * cg) - t * cg, c_hi = std::min(k0 + kc, (t + 1) * cg) - t * cg;
        const int64_t t0 = tt[0], t1 = tt[1], t2 = tt[2];
        const int64_t toff = (((t0 * s_.kdil[0] * s_.in[1] + t1 * s_.kdil[1]) * s_.in[2] + t2 * s_.kdil[2]) * s_.c + c_lo) * es_;
        const void** tr = rows.data() + nseg * kMaxPanel;
        if (interior) {
          for (int64_t r = 0; r < rcount; ++r) tr[r] = x_ + off[r] + toff;
        } else if (use_bits) {
          for (int64_t r = 0; r < rcount; ++r) tr[r] = (valid[r] >> t) & 1 ? x_ + off[r] + toff : nullptr;
        } else {
          for (int64_t r = 0; r < rcount; ++r) {
            const std::array<int64_t, 6>& g = range[r];
            // & rather than &&: no branch to mispredict on the border pattern.
            const bool inside = (t0 >= g[0]) & (t0 < g[1]) & (t1 >= g[2]) & (t1 < g[3]) & (t2 >= g[4]) & (t2 < g[5]);
            tr[r] = inside ? x_ + off[r] + toff : nullptr;
          }
        }
        segs[size_t(nseg)].k_off = t * cg + c_lo - k0;
        segs[size_t(nseg)].kn = c_hi - c_lo;
        segs[size_t(nseg)].rows = tr;
        if (++nseg == kBatch || t == t_last) {
          gemm_pack_a_segments(plan, s_.dtype, segs.data(), nseg, rcount, mr, panel);
          nseg = 0;
        }
        tap.next();
      }
    }
  }

  // With no padding (a padded copy of x, or a conv without any), every tap of every row lies in
  // x, and f32 rows can be read in place: row r's group j is at its input pixel plus the tap's
  // offset plus the channel group. Nothing to pack.
  bool gather(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc, const void** rows,
              int64_t* groups) const override {
    const int64_t kg = plan.kg, cg = s_.cg();
    if (plan.compute != DType::f32 || s_.dtype != DType::f32 || mc != plan.mr || cg % kg != 0) return false;
    for (int ax = 0; ax < 3; ++ax)
      if (s_.lo[ax] > 0 || s_.hi[ax] > 0) return false;
    const float* x = reinterpret_cast<const float*>(x_);
    OutPixel px(s_.out, base_ + m0);
    for (int64_t r = 0; r < mc; ++r, px.next()) {
      const int64_t i0 = px.a[0] * s_.stride[0] - s_.lo[0], i1 = px.a[1] * s_.stride[1] - s_.lo[1],
                    i2 = px.a[2] * s_.stride[2] - s_.lo[2];
      rows[r] = x + (((px.n * s_.in[0] + i0) * s_.in[1] + i1) * s_.in[2] + i2) * s_.c + c0_;
    }
    // Group j is k = k0 + j·kg: tap t = k / cg, channels (k % cg) .. + kg; counted.
    const int64_t gpt = cg / kg;
    int64_t cgi = (k0 % cg) / kg;
    Tap tap(s_.k, k0 / cg);
    for (int64_t j = 0; j * kg < kc; ++j) {
      const int64_t* t = tap.t;
      groups[j] = ((t[0] * s_.kdil[0] * s_.in[1] + t[1] * s_.kdil[1]) * s_.in[2] + t[2] * s_.kdil[2]) * s_.c + cgi * kg;
      if (++cgi == gpt) cgi = 0, tap.next();
    }
    return true;
  }

  // A panel whose rows are consecutive outputs of one output line (last-axis stride 1): the
  // taps t2 = 0, 1, ... of one (t0, t1) read the same input run shifted by t2·kdil pixels. So
  // the input run is packed once per (t0, t1), as a block of E = mr + (k2 - 1)·kdil rows, and
  // tap t2's groups point kdil·t2 rows into it: k2 times fewer rows to gather than pack(),
  // and the same values in the same order for the kernels, so the same bits.
  bool pack_indexed(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc, void* dst,
                    int64_t* groups) const override {
    const int64_t mr = plan.mr, kg = plan.kg, cg = s_.cg(), k2 = s_.k[2], d2 = s_.kdil[2];
    if (mc > mr || s_.stride[2] != 1 || k2 < 2 || cg % kg != 0) return false;
    const int64_t E = mr + (k2 - 1) * d2;  // rows of a block
    if (E > kMaxPanel) return false;
    const OutPixel px(s_.out, base_ + m0);
    const int64_t a0 = px.a[0], a1 = px.a[1], a2 = px.a[2], n = px.n;
    if (a2 + mc > s_.out[2]) return false;  // the rows cross into the next output line
    // Blocks for the (t0, t1) pairs q_first .. q_last of the taps in [k0, k0 + kc).
    const int64_t q_first = k0 / cg / k2, q_last = (k0 + kc - 1) / cg / k2;
    const int64_t block = (cg / kg) * E * kg;  // elements: all of a tap's channel groups
    if ((q_last - q_first + 1) * block > gemm_a_panel_elems(plan, kc)) return false;
    const int64_t ces = gemm_a_elem_bytes(plan);
    const int64_t w0 = a2 - s_.lo[2];  // input position of row 0's tap 0 on the last axis
    const int64_t used = mc + (k2 - 1) * d2;  // rows any kept output reads; the rest are zeros
    std::array<const void*, kMaxPanel> rows;
    for (int64_t q = q_first; q <= q_last; ++q) {
      const int64_t j0 = a0 * s_.stride[0] - s_.lo[0] + (q / s_.k[1]) * s_.kdil[0];
      const int64_t j1 = a1 * s_.stride[1] - s_.lo[1] + (q % s_.k[1]) * s_.kdil[1];
      const bool line_inside = j0 >= 0 && j0 < s_.in[0] && j1 >= 0 && j1 < s_.in[1];
      const int64_t line = line_inside ? (((n * s_.in[0] + j0) * s_.in[1] + j1) * s_.in[2] * s_.c + c0_) * es_ : 0;
      for (int64_t e = 0; e < E; ++e) {
        const int64_t w = w0 + e;
        rows[size_t(e)] = line_inside && e < used && w >= 0 && w < s_.in[2] ? x_ + line + w * s_.c * es_ : nullptr;
      }
      GemmASegment seg;
      seg.k_off = 0;
      seg.kn = cg;
      seg.rows = rows.data();
      gemm_pack_a_segments(plan, s_.dtype, &seg, 1, E, E, static_cast<char*>(dst) + (q - q_first) * block * ces);
    }
    // Group j is k = k0 + j·kg: tap t = k / cg (pair t / k2, last-axis tap t % k2), channel
    // group (k % cg) / kg; counted rather than divided (a division per group costs as much as
    // packing it).
    const int64_t gpt = cg / kg;
    int64_t t = k0 / cg, cgi = (k0 % cg) / kg, q = t / k2 - q_first, t2 = t % k2;
    for (int64_t j = 0; j * kg < kc; ++j) {
      groups[j] = q * block + cgi * E * kg + t2 * d2 * kg;
      if (++cgi == gpt) {
        cgi = 0;
        if (++t2 == k2) t2 = 0, ++q;
      }
    }
    return true;
  }

 private:
  const Geometry& s_;
  const char* x_;
  int64_t base_, es_, c0_;
};

// B = the weights of output channels [oc0, oc0 + nc) restricted to the dense problem's taps:
// tap j of axis a is weight index k_first[a] + j·k_step[a] of the full kernel.
class SubKernelB final : public GemmBSource {
 public:
  SubKernelB(const DenseConv& dc, const char* w, int64_t oc0) : dc_(dc), w_(w), oc0_(oc0) {}
  void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc, void* dst) const override {
    const Geometry& s = dc_.sub;
    const int64_t nr = plan.nr, cg = s.cg(), es = dtype_size(s.dtype);
    const int64_t ces = gemm_b_elem_bytes(plan);
    const int64_t t_first = k0 / cg, t_last = (k0 + kc - 1) / cg;
    std::array<const void*, kMaxPanel> rows;
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int64_t ccount = std::min(nr, nc - p * nr);
      char* panel = static_cast<char*>(dst) + p * kc * nr * ces;
      for (int64_t t = t_first; t <= t_last; ++t) {
        const int64_t t2 = t % s.k[2], t1 = (t / s.k[2]) % s.k[1], t0 = t / (s.k[2] * s.k[1]);
        const int64_t kk0 = dc_.k_first[0] + t0 * dc_.k_step[0], kk1 = dc_.k_first[1] + t1 * dc_.k_step[1],
                      kk2 = dc_.k_first[2] + t2 * dc_.k_step[2];
        const int64_t c_lo = std::max(k0, t * cg) - t * cg, c_hi = std::min(k0 + kc, (t + 1) * cg) - t * cg;
        for (int64_t c = 0; c < ccount; ++c) {
          const int64_t oc = oc0_ + n0 + p * nr + c;
          rows[c] = w_ + ((((oc * dc_.w_k[0] + kk0) * dc_.w_k[1] + kk1) * dc_.w_k[2] + kk2) * cg + c_lo) * es;
        }
        gemm_pack_rows(plan, nr, s.dtype, rows.data(), ccount, c_hi - c_lo, panel + (t * cg + c_lo - k0) * nr * ces);
      }
    }
  }

 private:
  const DenseConv& dc_;
  const char* w_;
  int64_t oc0_;
};

// B from a weight stored with its channel axes swapped, [g, C/g, w_k..., O/g]
// (DenseConv::w_swapped): B[k, n] for k = tap·C/g + c is w[q, c, tap', n_first + n] (tap' the
// full kernel's tap, as in SubKernelB), so a row of a B panel is nr consecutive output channels
// of one (c, tap'): a copy, where the standard layout [O, K, C/g] needs a transpose. The same
// values land in the same places, so the same bits as packing the permuted copy.
class SwappedKernelB final : public GemmBSource {
 public:
  SwappedKernelB(const DenseConv& dc, const char* w, int64_t group, int64_t n_first)
      : dc_(dc), w_(w), group_(group), n_first_(n_first) {}
  void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc, void* dst) const override {
    switch (dc_.sub.dtype) {
      case DType::f32: pack_as<float, float>(plan, n0, nc, k0, kc, dst); break;
      case DType::f64: pack_as<double, double>(plan, n0, nc, k0, kc, dst); break;
      case DType::bf16: pack_as<float, uint16_t>(plan, n0, nc, k0, kc, dst); break;
      case DType::f16: break;  // refused by check_conv_gemm_tiles (w_swapped_supported)
    }
  }

 private:
  static float widen(float v) { return v; }
  static double widen(double v) { return v; }
  static float widen(uint16_t v) { return bf16_to_float(v); }  // only bf16 reaches here

  template <class T, class S>
  void pack_as(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc, void* dst) const {
    const Geometry& s = dc_.sub;
    const int64_t nr = plan.nr, cg = s.cg(), og = s.og();
    const int64_t wk = dc_.w_k[0] * dc_.w_k[1] * dc_.w_k[2];
    // w[q, c, tap', o] at ((q·C/g + c)·wk + tap')·O/g + o.
    const S* w = reinterpret_cast<const S*>(w_) + group_ * cg * wk * og + n_first_ + n0;
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int64_t cols = std::min(nr, nc - p * nr);
      T* panel = static_cast<T*>(dst) + p * kc * nr;  // [kc, nr]
      int64_t t = k0 / cg, c = k0 % cg, tap = -1;
      for (int64_t k = 0; k < kc; ++k) {
        if (tap < 0) {
          const int64_t t2 = t % s.k[2], t1 = (t / s.k[2]) % s.k[1], t0 = t / (s.k[2] * s.k[1]);
          tap = ((dc_.k_first[0] + t0 * dc_.k_step[0]) * dc_.w_k[1] + dc_.k_first[1] + t1 * dc_.k_step[1]) *
                    dc_.w_k[2] + dc_.k_first[2] + t2 * dc_.k_step[2];
        }
        const S* src = w + (c * wk + tap) * og + p * nr;
        T* d = panel + k * nr;
        if constexpr (std::is_same_v<T, S>) {
          std::memcpy(d, src, size_t(cols) * sizeof(T));  // f32, f64: the row as it is
        } else {
          for (int64_t j = 0; j < cols; ++j) d[j] = widen(src[j]);
        }
        for (int64_t j = cols; j < nr; ++j) d[j] = T(0);
        if (++c == cg) c = 0, ++t, tap = -1;
      }
    }
  }

  const DenseConv& dc_;
  const char* w_;
  int64_t group_, n_first_;
};

}  // namespace

void append_tile_parameters(const ConvGemmTiles& t, const std::string& prefix,
                            std::vector<std::pair<std::string, int64_t>>* out) {
  const std::pair<const char*, int64_t> fields[] = {
      {"n_tile", t.n_tile}, {"m_tile", t.m_tile},   {"mr", t.gemm.mr},         {"nr", t.gemm.nr},
      {"kg", t.gemm.kg},    {"kc", t.gemm.kc},       {"mc", t.gemm.mc},         {"nc", t.gemm.nc},
      {"a_whole_k", t.gemm.a_whole_k}, {"gemm_threads", t.gemm.threads}, {"padded_input", t.padded},
      {"buffer_rows", t.buffer_rows}, {"workspace", t.workspace}, {"bf16_kernels", t.gemm.compute == DType::bf16},
  };
  for (const auto& [name, v] : fields) out->emplace_back(prefix + name, v);
}

std::string plan_conv_gemm(const Geometry& sub, bool dense_output, int64_t budget, int threads, GemmIsa isa,
                           ConvGemmTiles* tiles, int64_t* min_workspace) {
  const DType compute = compute_of(sub.dtype, isa);
  const int64_t og = sub.og(), K = sub.kernel_volume() * sub.cg();
  GemmTile t = gemm_tile(isa, compute);
  if (t.mr > kMaxPanel || t.nr > kMaxPanel) return "micro-tile larger than the packers allow";
  // Spread-out outputs on lines shorter than kShortLine rows, of which there are several: one
  // GEMM per line would be many small GEMMs (a 2x2 stride-2 transposed conv on 28x28 ran its
  // phases as 224 GEMMs of 28 rows each, at half the speed of one pointwise GEMM of the same
  // work), so GEMMs of up to ~256 KiB of output rows go through a buffer instead.
  constexpr int64_t kShortLine = 128;
  const int64_t rows = sub.n * sub.out_volume();
  bool buffered = !dense_output && sub.out[2] < kShortLine && rows > sub.out[2];
  const int64_t es = dtype_size(sub.dtype);
  auto buffer_rows_for = [&](int64_t n_tile) {
    if (!buffered) return int64_t(0);
    const int64_t want = std::max<int64_t>(t.mr, (int64_t(256) << 10) / (n_tile * es) / t.mr * t.mr);
    return std::min(want, ceil_div(rows, t.mr) * t.mr);
  };
  auto workspace_for = [&](int64_t n_tile, GemmPlan* gp) {
    const int64_t b_rows = buffer_rows_for(n_tile);
    const int64_t M = dense_output ? rows : (b_rows > 0 ? b_rows : sub.out[2]);
    *gp = gemm_plan(M, n_tile, K, compute, threads, isa);
    return gemm_packed_b_bytes(*gp, n_tile, K) + gemm_workspace_bytes(*gp, n_tile, K, sub.dtype, true) +
           ceil_div(b_rows * n_tile * es, 64) * 64;
  };
  // Halve the output channels per packed B until the workspace fits; the K order (and so
  // every bit of the result) does not depend on it.
  // The row buffer first; where no tile fits with it, one GEMM per line (no buffer) as before.
  int64_t n_tile = og;
  GemmPlan gp;
  int64_t ws = workspace_for(n_tile, &gp);
  for (;;) {
    while (ws > budget && n_tile > t.nr) {
      n_tile = std::max(t.nr, ceil_div(ceil_div(n_tile, 2), t.nr) * t.nr);
      ws = workspace_for(n_tile, &gp);
    }
    if (ws <= budget || !buffered) break;
    buffered = false;
    n_tile = og;
    ws = workspace_for(n_tile, &gp);
  }
  if (ws > budget) {
    *min_workspace = ws;
    return "needs " + std::to_string(ws) + " bytes of workspace for one " + std::to_string(n_tile) +
           "-channel tile; the budget is " + std::to_string(budget);
  }
  tiles->gemm = gp;
  tiles->n_tile = n_tile;
  tiles->buffer_rows = buffer_rows_for(n_tile);
  // Enough rows per call to keep every thread busy, few enough to report progress often.
  const int64_t M = dense_output ? rows : sub.out[2];
  int64_t m_tile = std::clamp<int64_t>(M / 16, 32768, std::max<int64_t>(M, 1));
  tiles->m_tile = ceil_div(m_tile, gp.mr) * gp.mr;
  tiles->workspace = ws;
  // A padded f32 conv can read its panels in place (no packing) from a copy of each sample
  // with the padding written out, when the path has the gather kernel and the copy fits
  // beside the rest: one pass over the weights (one group, one channel tile) so the copy is
  // made once per sample, and channel groups of whole vectors. It pays where packing is dear:
  // when most panels cross from one output line into the next (lines shorter than 4 panels
  // and not a multiple of one), so that pack_indexed cannot share tap rows. Measured: 3x3x3
  // c32 on 16³ 1.14 -> 0.99 ms; 3x3 c64 on 56² (lines of 4 panels, rows shared) 6.6 -> 7.0 ms
  // with the copy, so not there. The result is the same bits either way (padding is a zero
  // operand in both), so this only changes the speed.
  const GemmKernels& kt = gemm_kernels(gp.isa);
  bool padded = false;
  for (int ax = 0; ax < 3; ++ax) padded = padded || sub.lo[ax] > 0 || sub.hi[ax] > 0;
  const bool lines_cross = sub.out[2] % gp.mr != 0 && sub.out[2] < 4 * gp.mr;
  if (padded && lines_cross && dense_output && sub.dtype == DType::f32 && kt.f32_gemm_gather && sub.groups == 1 &&
      n_tile == og && sub.cg() % gp.kg == 0) {
    int64_t vol = 1;
    bool ok = true;
    for (int ax = 0; ax < 3 && ok; ++ax)
      ok = checked_mul(vol, sub.in[ax] + std::max<int64_t>(sub.lo[ax], 0) + std::max<int64_t>(sub.hi[ax], 0), &vol);
    int64_t bytes = 0;
      if (ok && checked_mul(vol, sub.c * 4, &bytes) && ceil_div(bytes, 64) * 64 <= budget - ws) {
      tiles->padded = ceil_div(bytes, 64) * 64;
      tiles->workspace = ws + tiles->padded;
      // GEMM calls stay inside one sample (its padded copy).
      tiles->m_tile = std::min(tiles->m_tile, ceil_div(sub.out_volume(), gp.mr) * gp.mr);
    }
  }
  return {};
}

namespace {

// The geometry of one sample of s copied with its (positive) padding: the same outputs from an
// input with no padding left to add (negative padding, a crop, stays).
Geometry padded_sample(const Geometry& s) {
  Geometry p = s;
  p.n = 1;
  for (int ax = 0; ax < 3; ++ax) {
    const int64_t lo = std::max<int64_t>(s.lo[ax], 0), hi = std::max<int64_t>(s.hi[ax], 0);
    p.in[ax] = s.in[ax] + lo + hi;
    p.lo[ax] = s.lo[ax] - lo;
    p.hi[ax] = s.hi[ax] - hi;
  }
  return p;
}

// Copies sample n of x ([N, in..., C] f32) into xp with its padding as zeros (geometry ps).
void copy_padded(const Geometry& s, const Geometry& ps, const float* x, int64_t n, float* xp, ThreadPool* pool) {
  const int64_t lo0 = ps.in[0] - s.in[0] - std::max<int64_t>(s.hi[0], 0), lo1 = ps.in[1] - s.in[1] - std::max<int64_t>(s.hi[1], 0),
                lo2 = ps.in[2] - s.in[2] - std::max<int64_t>(s.hi[2], 0);
  const int64_t rows = ps.in[0] * ps.in[1], row = ps.in[2] * s.c;
  auto copy_row = [&](int64_t r, int) {
    float* d = xp + r * row;
    const int64_t j0 = r / ps.in[1] - lo0, j1 = r % ps.in[1] - lo1;
    if (j0 < 0 || j0 >= s.in[0] || j1 < 0 || j1 >= s.in[1]) {
      std::memset(d, 0, size_t(row) * 4);
      return;
    }
    const float* src = x + ((n * s.in[0] + j0) * s.in[1] + j1) * s.in[2] * s.c;
    std::memset(d, 0, size_t(lo2 * s.c) * 4);
    std::memcpy(d + lo2 * s.c, src, size_t(s.in[2] * s.c) * 4);
    std::memset(d + (lo2 + s.in[2]) * s.c, 0, size_t((ps.in[2] - lo2 - s.in[2]) * s.c) * 4);
  };
  if (pool)
    pool->parallel_for(rows, copy_row);
  else
    for (int64_t r = 0; r < rows; ++r) copy_row(r, 0);
}

// Whether the tiles copy each sample with its padding (dense outputs of a non-pointwise A).
bool uses_padded_copy(const ConvGemmTiles& tiles, const DenseConv& dc) {
  const bool dense_out = dc.first == Dims{0, 0, 0} && dc.step == Dims{1, 1, 1} && dc.y_out == dc.sub.out;
  return tiles.padded > 0 && dense_out && !dc.pointwise_a;
}

// Bytes of the row buffer (ConvGemmTiles::buffer_rows), which sits before the padded copy.
int64_t buffer_bytes(const ConvGemmTiles& tiles, const Geometry& s) {
  return ceil_div(tiles.buffer_rows * tiles.n_tile * dtype_size(s.dtype), 64) * 64;
}

}  // namespace

Status check_conv_gemm_tiles(const ConvGemmTiles& tiles, const DenseConv& dc, const Plan& plan) {
  const Geometry& s = dc.sub;
  const bool padded = uses_padded_copy(tiles, dc);
  if (Status st = check_config_isa(plan, tiles.gemm.isa); !st.ok()) return st;
  const int64_t K = s.kernel_volume() * s.cg();
  if (Status st = gemm_check_plan(tiles.gemm, K); !st.ok())
    return Status(st.kind(), "[" + plan.algorithm + "] " + st.message());
  if (dc.w_swapped && !w_swapped_supported(s.dtype))
    return Status(ErrorKind::invalid, "[" + plan.algorithm + "] a weight with swapped channel axes cannot be " +
                                          std::string(dtype_name(s.dtype)) + " (a hand-made plan?)");
  if (tiles.n_tile < 1 || tiles.m_tile < 1)
    return Status(ErrorKind::invalid, "[" + plan.algorithm + "] the plan's n_tile " + std::to_string(tiles.n_tile) +
                                          " and m_tile " + std::to_string(tiles.m_tile) + " must be positive");
  if (padded) {
    // The copy is of f32 elements, one sample with its padding, at the workspace's end.
    const Geometry ps = padded_sample(s);
    int64_t bytes = 4 * s.c;
    bool fits = true;
    for (int ax = 0; ax < 3; ++ax) fits = fits && checked_mul(bytes, ps.in[ax], &bytes);
    if (s.dtype != DType::f32 || !fits || tiles.padded < bytes)
      return Status(ErrorKind::invalid, "[" + plan.algorithm + "] the plan's padded_input of " +
                                            std::to_string(tiles.padded) + " bytes cannot hold one padded " +
                                            std::string(dtype_name(s.dtype)) + " sample as f32 (" +
                                            std::to_string(bytes) + " bytes)");
  }
  if (tiles.buffer_rows < 0)
    return Status(ErrorKind::invalid, "[" + plan.algorithm + "] the plan's buffer_rows must not be negative");
  const int64_t used = gemm_packed_b_bytes(tiles.gemm, tiles.n_tile, K) +
                       gemm_workspace_bytes(tiles.gemm, tiles.n_tile, K, s.dtype, true) +
                       buffer_bytes(tiles, s) + tiles.padded;
  if (used > tiles.workspace)
    return Status(ErrorKind::invalid, "[" + plan.algorithm + "] the tiles use " + std::to_string(used) +
                                          " bytes of workspace but reserve " + std::to_string(tiles.workspace) +
                                          " (a hand-made plan?)");
  return check_workspace_fits(plan, tiles.workspace, "the tiles (packed B, GEMM blocks, padded copy)");
}

std::shared_ptr<const PlanConfig> ConvGemmConfig::with_parameter(std::string_view name, int64_t value) const {
  auto c = std::make_shared<ConvGemmConfig>(*this);
  if (name == "n_tile" && value >= 1 && value <= tiles.n_tile) {
    c->tiles.n_tile = value;  // packed B shrinks; the workspace field stays an upper bound
  } else if (name == "m_tile" && value >= 1) {
    c->tiles.m_tile = value;
  } else {
    return nullptr;
  }
  return c;
}

Status run_conv_gemm(const ConvGemmTiles& tiles, const DenseConv& dc, const RunContext& ctx,
                     const std::function<bool(int64_t)>& progress) {
  const Geometry& s = dc.sub;
  const int64_t es = dtype_size(s.dtype), og = s.og(), cg = s.cg(), K = s.kernel_volume() * cg;
  const char* x = static_cast<const char*>(ctx.x.data);
  const char* w = static_cast<const char*>(ctx.w.data);
  char* y = static_cast<char*>(ctx.y.data);
  ThreadPool* pool = ctx.pool;
  const bool dense_out = dc.first == Dims{0, 0, 0} && dc.step == Dims{1, 1, 1} && dc.y_out == s.out;
  const bool plain_w = dc.k_first == Dims{0, 0, 0} && dc.k_step == Dims{1, 1, 1} && dc.w_k == s.k;
  const bool padded = uses_padded_copy(tiles, dc);
  if (Status st = check_conv_gemm_tiles(tiles, dc, ctx.plan); !st.ok()) return st;
  const GemmPlan& gp = tiles.gemm;
  const int64_t packed_bytes = gemm_packed_b_bytes(gp, tiles.n_tile, K);
  char* packed = static_cast<char*>(ctx.workspace);
  char* rest = packed + packed_bytes;
  // The row buffer, then the padded sample copy, sit at the end of the tiles' workspace.
  const int64_t buf_bytes = dense_out ? 0 : buffer_bytes(tiles, s);
  const int64_t rest_bytes = tiles.workspace - packed_bytes - tiles.padded - buffer_bytes(tiles, s);
  char* buf = static_cast<char*>(ctx.workspace) + tiles.workspace - tiles.padded - buffer_bytes(tiles, s);
  float* xp = reinterpret_cast<float*>(static_cast<char*>(ctx.workspace) + tiles.workspace - tiles.padded);
  const Geometry ps = padded ? padded_sample(s) : s;
  // One GEMM of args.M rows from output row m0 of group q, with A read in place from x where A
  // is x itself (a pointwise conv, or a phase of one tap reading input pixel m for output m),
  // else gathered by the implicit im2col.
  auto gemm_from = [&](GemmArgs& args, int64_t q, int64_t m0, bool a_is_x) {
    if (a_is_x) {
      DenseGemmA a(s.dtype, x + (m0 * s.c + q * s.cg()) * es, s.c);
      args.a = &a;
      return gemm(gp, args, rest, rest_bytes, pool);
    }
    Im2colA a(s, x, q, m0);
    args.a = &a;
    return gemm(gp, args, rest, rest_bytes, pool);
  };
  int64_t done = 0;
  for (int64_t q = 0; q < s.groups; ++q) {
    for (int64_t n0 = 0; n0 < og; n0 += tiles.n_tile) {
      const int64_t nt = std::min(tiles.n_tile, og - n0);
      const int64_t oc0 = q * og + n0;
      Status st;
      if (dc.w_swapped) {
        SwappedKernelB b(dc, w, q, n0);
        st = gemm_pack_b(gp, nt, K, b, packed, pool);
      } else if (plain_w) {
        DenseGemmB b(s.dtype, w + oc0 * K * es, K);
        st = gemm_pack_b(gp, nt, K, b, packed, pool);
      } else {
        SubKernelB b(dc, w, oc0);
        st = gemm_pack_b(gp, nt, K, b, packed, pool);
      }
      if (!st.ok()) return st;
      GemmArgs args;
      args.N = nt;
      args.K = K;
      args.packed_b = packed;
      args.c_dtype = s.dtype;
      if (padded) {
        // Sample by sample from its padded copy; every panel is read in place.
        const int64_t per_sample = s.out_volume();
        for (int64_t n = 0; n < s.n; ++n) {
          copy_padded(s, ps, reinterpret_cast<const float*>(x), n, xp, pool);
          for (int64_t m0 = 0; m0 < per_sample; m0 += tiles.m_tile) {
            args.M = std::min(tiles.m_tile, per_sample - m0);
            args.c = y + ((n * per_sample + m0) * s.o + oc0) * es;
            args.ldc = s.o;
            Im2colA a(ps, reinterpret_cast<const char*>(xp), q, m0);
            args.a = &a;
            st = gemm(gp, args, rest, rest_bytes, pool);
            if (!st.ok()) return st;
            done += args.M * nt;
            if (progress && !progress(done)) return Status(ErrorKind::interrupted, "[conv_gemm] cancelled");
          }
        }
      } else if (dense_out) {
        const int64_t M = s.n * s.out_volume();
        for (int64_t m0 = 0; m0 < M; m0 += tiles.m_tile) {
          args.M = std::min(tiles.m_tile, M - m0);
          args.c = y + (m0 * s.o + oc0) * es;
          args.ldc = s.o;
          st = gemm_from(args, q, m0, dc.pointwise_a);
          if (!st.ok()) return st;
          done += args.M * nt;
          if (progress && !progress(done)) return Status(ErrorKind::interrupted, "[conv_gemm] cancelled");
        }
      } else if (buf_bytes > 0 && tiles.buffer_rows > 0) {
        // Phase outputs on short lines: GEMMs of buffer_rows rows into the buffer, whose rows
        // are then copied to their places (the same sums: the same bits as one GEMM a line).
        const int64_t total = s.n * s.out_volume(), rb = tiles.buffer_rows;
        // A phase of one tap reading input pixel m for output m (a transposed conv whose kernel
        // is its stride): A is x itself, read in place like pointwise_gemm's.
        const bool a_is_x = s.k == Dims{1, 1, 1} && s.stride == Dims{1, 1, 1} && all_zeros(s.lo) && all_zeros(s.hi) &&
                            s.out == s.in;
        args.ldc = nt;
        args.c = buf;
        for (int64_t m0 = 0; m0 < total; m0 += rb) {
          args.M = std::min(rb, total - m0);
          st = gemm_from(args, q, m0, a_is_x);
          if (!st.ok()) return st;
          const int64_t M = args.M, chunk = 64;
          auto copy_rows = [&](int64_t c, int) {
            const int64_t r0 = c * chunk, r1 = std::min(M, r0 + chunk);
            OutPixel px(s.out, m0 + r0);
            for (int64_t r = r0; r < r1; ++r, px.next()) {
              const int64_t p0 = dc.first[0] + dc.step[0] * px.a[0], p1 = dc.first[1] + dc.step[1] * px.a[1],
                            p2 = dc.first[2] + dc.step[2] * px.a[2];
              std::memcpy(y + ((((px.n * dc.y_out[0] + p0) * dc.y_out[1] + p1) * dc.y_out[2] + p2) * s.o + oc0) * es,
                          buf + r * nt * es, size_t(nt * es));
            }
          };
          const int64_t chunks = ceil_div(M, chunk);
          if (pool) pool->parallel_for(chunks, copy_rows);
          else for (int64_t c = 0; c < chunks; ++c) copy_rows(c, 0);
          done += args.M * nt;
          if (progress && !progress(done)) return Status(ErrorKind::interrupted, "[conv_gemm] cancelled");
        }
      } else {
        // Phase outputs are spread out in y: one GEMM per output line, whose rows are evenly
        // spaced step[2]·O elements apart.
        const int64_t lines = s.n * s.out[0] * s.out[1];
        args.M = s.out[2];
        args.ldc = dc.step[2] * s.o;
        for (int64_t line = 0; line < lines; ++line) {
          const int64_t a1 = line % s.out[1], a0 = (line / s.out[1]) % s.out[0], n = line / (s.out[1] * s.out[0]);
          const int64_t p0 = dc.first[0] + dc.step[0] * a0, p1 = dc.first[1] + dc.step[1] * a1, p2 = dc.first[2];
          args.c = y + ((((n * dc.y_out[0] + p0) * dc.y_out[1] + p1) * dc.y_out[2] + p2) * s.o + oc0) * es;
          st = gemm_from(args, q, line * s.out[2], false);
          if (!st.ok()) return st;
          done += args.M * nt;
          if (progress && (line % 64 == 63 || line + 1 == lines) && !progress(done))
            return Status(ErrorKind::interrupted, "[conv_gemm] cancelled");
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace convnd
