#include "check_samples.h"

#include <algorithm>

#include "random_fill.h"

namespace convnd::cli {

OutputIndex decompose(const Geometry& g, int64_t lin) {
  OutputIndex c;
  c.oc = lin % g.o;
  lin /= g.o;
  c.p[2] = lin % g.out[2];
  lin /= g.out[2];
  c.p[1] = lin % g.out[1];
  lin /= g.out[1];
  c.p[0] = lin % g.out[0];
  c.n = lin / g.out[0];
  return c;
}

int64_t linear_index(const Geometry& g, const OutputIndex& c) {
  return (((c.n * g.out[0] + c.p[0]) * g.out[1] + c.p[1]) * g.out[2] + c.p[2]) * g.o + c.oc;
}

SampleSet choose_samples(const Geometry& g, int64_t random_samples, uint64_t seed) {
  Rng rng(seed, kStreamSampling);
  // Oracle cost of one element, on average.
  const double cost = std::max(1.0, oracle_work(g) / double(g.y_elems()));
  const int64_t budget = std::clamp<int64_t>(int64_t(kSampleWorkBudget / cost), 1024, int64_t(1) << 20);
  const int64_t total = g.y_elems();
  SampleSet s;
  std::vector<int64_t>& v = s.index;
  auto add_range = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) v.push_back(i);
  };

  // Whole rows: first row of the first batch entry, last rows of the first and last entries.
  const int64_t row = g.out[2] * g.o;
  s.row_length = row;
  const int64_t row_cap = std::max<int64_t>(256, budget / 8);
  const int64_t rows[3][3] = {{0, 0, 0}, {0, g.out[0] - 1, g.out[1] - 1}, {g.n - 1, g.out[0] - 1, g.out[1] - 1}};
  for (const auto& r : rows) {
    const int64_t base = ((r[0] * g.out[0] + r[1]) * g.out[1] + r[2]) * row;
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
    if (g.out[j] < 2) continue;
    for (int64_t side : {int64_t(0), g.out[j] - 1})
      for (int m = 0; m < kPointsPerBorder; ++m) {
        OutputIndex c{rng.below(g.n), {rng.below(g.out[0]), rng.below(g.out[1]), rng.below(g.out[2])}, 0};
        c.p[j] = side;
        const int64_t base = linear_index(g, c);
        if (g.o <= channel_cap) {
          add_range(base, base + g.o);
        } else {
          add_range(base, base + channel_cap / 4);
          add_range(base + g.o - channel_cap / 4, base + g.o);
          for (int64_t k = 0; k < channel_cap / 2; ++k) v.push_back(base + rng.below(g.o));
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

}  // namespace convnd::cli
