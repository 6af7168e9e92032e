#include "check_samples.h"

#include <algorithm>
#include <utility>

#include "random_fill.h"

namespace convnd::cli {

namespace {

ResultSpace forward_space(const Geometry& g) { return {g.n, g.out, g.o, oracle_work(g) / double(g.y_elems())}; }

}  // namespace

ResultSpace result_space(const Geometry& g) {
  switch (g.dir) {
    case Direction::fwd: break;
    case Direction::bwd_d:
      // Per element: every tap of every axis is tried, then O/g products for each combination of
      // taps that lands (about macs / x elements).
      return {g.n, g.in, g.c,
              double(g.k[0] + g.k[1] + g.k[2]) + double(g.kernel_volume()) + g.macs() / double(g.x_elems())};
    case Direction::bwd_w:
      // Per element: every output position of every axis is tried, then one product per
      // (n, positions) whose tap lands (about macs / w elements).
      return {g.o, g.k, g.cg(), double(g.out[0] + g.out[1] + g.out[2]) + g.macs() / double(g.w_elems())};
  }
  return forward_space(g);
}

OutputIndex decompose(const ResultSpace& s, int64_t lin) {
  OutputIndex c;
  c.oc = lin % s.ch;
  lin /= s.ch;
  c.p[2] = lin % s.e[2];
  lin /= s.e[2];
  c.p[1] = lin % s.e[1];
  lin /= s.e[1];
  c.p[0] = lin % s.e[0];
  c.n = lin / s.e[0];
  return c;
}

int64_t linear_index(const ResultSpace& s, const OutputIndex& c) {
  return (((c.n * s.e[0] + c.p[0]) * s.e[1] + c.p[1]) * s.e[2] + c.p[2]) * s.ch + c.oc;
}

OutputIndex decompose(const Geometry& g, int64_t lin) { return decompose(forward_space(g), lin); }
int64_t linear_index(const Geometry& g, const OutputIndex& c) { return linear_index(forward_space(g), c); }

SampleSet choose_samples(const Geometry& g, int64_t random_samples, uint64_t seed) {
  return choose_samples(forward_space(g), random_samples, seed);
}

SampleSet choose_samples(const ResultSpace& sp, int64_t random_samples, uint64_t seed) {
  Rng rng(seed, kStreamSampling);
  // Oracle cost of one element, on average.
  const double cost = std::max(1.0, sp.cost);
  const int64_t budget = std::clamp<int64_t>(int64_t(kSampleWorkBudget / cost), 1024, int64_t(1) << 20);
  const int64_t total = sp.elems();
  SampleSet s;
  std::vector<int64_t>& v = s.index;
  auto add_range = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) v.push_back(i);
  };

  // Whole rows: first row of the first entry, last rows of the first and last entries.
  const int64_t row = sp.e[2] * sp.ch;
  s.row_length = row;
  const int64_t row_cap = std::max<int64_t>(256, budget / 8);
  const int64_t rows[3][3] = {{0, 0, 0}, {0, sp.e[0] - 1, sp.e[1] - 1}, {sp.b - 1, sp.e[0] - 1, sp.e[1] - 1}};
  for (const auto& r : rows) {
    const int64_t base = ((r[0] * sp.e[0] + r[1]) * sp.e[1] + r[2]) * row;
    if (row <= row_cap) {
      add_range(base, base + row);
      continue;
    }
    s.row_cap = row_cap;
    const int64_t edge = row_cap / 4, middle = row_cap / 2;
    add_range(base, base + edge);
    add_range(base + row - edge, base + row);
    const int64_t step = (row - 2 * edge) / middle;  // >= 1 since row > row_cap
    for (int64_t j = 0; j < middle; ++j) v.push_back(base + edge + j * step + rng.below(step));
  }

  // Borders of every spatial axis (an axis of extent 1 has none worth the name).
  constexpr int kPointsPerBorder = 4;
  const int64_t channel_cap = std::max<int64_t>(16, budget / (4 * 6 * kPointsPerBorder));
  for (int j = 0; j < 3; ++j) {
    if (sp.e[j] < 2) continue;
    for (int64_t side : {int64_t(0), sp.e[j] - 1})
      for (int m = 0; m < kPointsPerBorder; ++m) {
        OutputIndex c{rng.below(sp.b), {rng.below(sp.e[0]), rng.below(sp.e[1]), rng.below(sp.e[2])}, 0};
        c.p[j] = side;
        const int64_t base = linear_index(sp, c);
        if (sp.ch <= channel_cap) {
          add_range(base, base + sp.ch);
        } else {
          add_range(base, base + channel_cap / 4);
          add_range(base + sp.ch - channel_cap / 4, base + sp.ch);
          for (int64_t k = 0; k < channel_cap / 2; ++k) v.push_back(base + rng.below(sp.ch));
        }
      }
  }

  v.push_back(total - 1);
  const int64_t k = random_samples >= 0 ? random_samples
                                        : std::min(kDefaultRandomSamples, std::max<int64_t>(256, budget / 4));
  for (int64_t i = 0; i < k; ++i) v.push_back(rng.below(total));
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return s;
}

// ---- the gradients, one element at a time --------------------------------------------------

namespace {

double load_at(const TensorView& t, int64_t i) {
  return load_as_double(static_cast<const char*>(t.data) + i * dtype_size(t.dtype), t.dtype);
}

// Input index along axis j for output position p and tap k, or -1 when the tap lands on
// padding or on a zero inserted by input dilation (reference.cpp's input_index).
int64_t input_index(const Geometry& g, int j, int64_t p, int64_t k) {
  const int64_t u = p * g.stride[j] + k * g.kdil[j] - g.lo[j];  // position in the dilated input
  if (u < 0 || u % g.idil[j]) return -1;
  const int64_t i = u / g.idil[j];
  return i < g.in[j] ? i : -1;
}

void add_term(PointValue& r, double t) {
  r.value += t;
  r.abssum += t < 0 ? -t : t;
  ++r.terms;
}

}  // namespace

PointValue gradient_point_dx(const Geometry& g, const TensorView& w, const TensorView& dy, const OutputIndex& at) {
  const int64_t cg = g.cg(), og = g.og();
  const int64_t n = at.n, c = at.oc, cc = c % cg, oc0 = (c / cg) * og;
  // Per axis, the (weight tap, output position) pairs whose tap reads input position at.p[j]:
  // p·stride + k·kdil − lo = i·idil.
  std::vector<std::pair<int64_t, int64_t>> taps[3];
  for (int j = 0; j < 3; ++j)
    for (int64_t k = 0; k < g.k[j]; ++k) {
      const int64_t ps = at.p[j] * g.idil[j] + g.lo[j] - k * g.kdil[j];  // p·stride
      if (ps < 0 || ps % g.stride[j]) continue;
      const int64_t p = ps / g.stride[j];
      if (p >= g.out[j] || input_index(g, j, p, k) != at.p[j]) continue;
      taps[j].emplace_back(g.flip ? g.k[j] - 1 - k : k, p);
    }
  PointValue r{0, 0, 0};
  for (const auto& [k0, p0] : taps[0])
    for (const auto& [k1, p1] : taps[1])
      for (const auto& [k2, p2] : taps[2]) {
        const int64_t yo = (((n * g.out[0] + p0) * g.out[1] + p1) * g.out[2] + p2) * g.o;
        const int64_t wk = ((k0 * g.k[1] + k1) * g.k[2] + k2) * cg + cc;
        for (int64_t oc = oc0; oc < oc0 + og; ++oc)
          add_term(r, load_at(dy, yo + oc) * load_at(w, oc * g.kernel_volume() * cg + wk));
      }
  return r;
}

PointValue gradient_point_dw(const Geometry& g, const TensorView& x, const TensorView& dy, const OutputIndex& at) {
  const int64_t cg = g.cg();
  const int64_t oc = at.n, c = (oc / g.og()) * cg + at.oc;
  // Per axis, the (output position, input position) pairs where the tap that reads weight tap
  // at.p[j] (k' = K − 1 − k with flip) lands on real input.
  // Listed for the two outer axes; the last one (which may hold billions of positions in a
  // long 1-D problem) is walked without a list.
  std::vector<std::pair<int64_t, int64_t>> pos[2];
  int64_t k[3];
  for (int j = 0; j < 3; ++j) k[j] = g.flip ? g.k[j] - 1 - at.p[j] : at.p[j];
  for (int j = 0; j < 2; ++j)
    for (int64_t p = 0; p < g.out[j]; ++p)
      if (const int64_t i = input_index(g, j, p, k[j]); i >= 0) pos[j].emplace_back(p, i);
  PointValue r{0, 0, 0};
  for (int64_t n = 0; n < g.n; ++n)
    for (const auto& [p0, i0] : pos[0])
      for (const auto& [p1, i1] : pos[1])
        for (int64_t p2 = 0; p2 < g.out[2]; ++p2) {
          const int64_t i2 = input_index(g, 2, p2, k[2]);
          if (i2 < 0) continue;
          const int64_t yo = (((n * g.out[0] + p0) * g.out[1] + p1) * g.out[2] + p2) * g.o + oc;
          const int64_t xo = (((n * g.in[0] + i0) * g.in[1] + i1) * g.in[2] + i2) * g.c + c;
          add_term(r, load_at(dy, yo) * load_at(x, xo));
        }
  return r;
}

}  // namespace convnd::cli
