// The reference oracle: conv_general by its definition (semantics.md step 5), with 64-bit
// indices and float64 accumulation. Deliberately plain; correctness is all it is for.
#include <convnd/reference.h>
#include <convnd/status.h>

#include <cstring>
#include <algorithm>
#include <array>
#include <thread>
#include <vector>


namespace convnd {

namespace {

// Strides of a rank+2 dim view mapped to the 3-D geometry's five axes
// [N, D, H, W, C]; the leading unit axes of a lower rank get stride 0.
struct Strides5 {
  int64_t s[5];
};

Strides5 strides5(const TensorView& v, const char* what) {
  const int nd = v.ndim();
  if (nd < 3 || nd > 5 || int(v.strides.size()) != nd)
    throw Error(ErrorKind::invalid, std::string("[reference] ") + what + " must have 3 to 5 dimensions");
  Strides5 r{};
  const int shift = 5 - nd;
  r.s[0] = v.strides[0];
  for (int i = 1; i < nd - 1; ++i) r.s[i + shift] = v.strides[i];
  r.s[4] = v.strides[nd - 1];
  return r;
}

double load(const TensorView& t, int64_t off) {
  return load_as_double(static_cast<const char*>(t.data) + off * dtype_size(t.dtype), t.dtype);
}

void store(const TensorView& t, int64_t off, double v) {
  store_from_double(static_cast<char*>(t.data) + off * dtype_size(t.dtype), t.dtype, v);
}

// Input index along one axis for output position p and tap k, or -1 when the tap lands on
// padding or on a zero inserted by input dilation.
inline int64_t input_index(const Geometry& g, int j, int64_t p, int64_t k) {
  int64_t u = p * g.stride[j] + k * g.kdil[j] - g.lo[j];  // position in the dilated input
  if (u < 0 || u % g.idil[j]) return -1;
  int64_t i = u / g.idil[j];
  return i < g.in[j] ? i : -1;
}

PointValue point(const Geometry& g, const TensorView& x, const Strides5& xs, const TensorView& w,
                 const Strides5& ws, int64_t n, const Dims& p, int64_t oc) {
  const int64_t cg = g.cg();
  const int64_t c0 = (oc / g.og()) * cg;
  PointValue r{0, 0, 0};
  for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
    int64_t i0 = input_index(g, 0, p[0], k0);
    if (i0 < 0) continue;
    for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
      int64_t i1 = input_index(g, 1, p[1], k1);
      if (i1 < 0) continue;
      for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
        int64_t i2 = input_index(g, 2, p[2], k2);
        if (i2 < 0) continue;
        int64_t kk0 = g.flip ? g.k[0] - 1 - k0 : k0;
        int64_t kk1 = g.flip ? g.k[1] - 1 - k1 : k1;
        int64_t kk2 = g.flip ? g.k[2] - 1 - k2 : k2;
        int64_t xo = n * xs.s[0] + i0 * xs.s[1] + i1 * xs.s[2] + i2 * xs.s[3] + c0 * xs.s[4];
        int64_t wo = oc * ws.s[0] + kk0 * ws.s[1] + kk1 * ws.s[2] + kk2 * ws.s[3];
        for (int64_t c = 0; c < cg; ++c) {
          double t = load(x, xo + c * xs.s[4]) * load(w, wo + c * ws.s[4]);
          r.value += t;
          r.abssum += t < 0 ? -t : t;
        }
        r.terms += cg;
      }
    }
  }
  return r;
}

void check_dtypes(const Geometry& g, const TensorView& x, const TensorView& w) {
  if (x.dtype != g.dtype || w.dtype != g.dtype)
    throw Error(ErrorKind::invalid, "[reference] tensor dtypes must match the problem's dtype");
}

}  // namespace

PointValue reference_point(const Geometry& g, const TensorView& x, const TensorView& w, int64_t n,
                           const Dims& p, int64_t oc) {
  check_dtypes(g, x, w);
  return point(g, x, strides5(x, "x"), w, strides5(w, "w"), n, p, oc);
}

void reference_conv_rows(const Geometry& g, const TensorView& x, const TensorView& w, const TensorView& y,
                         int64_t row_begin, int64_t row_end) {
  const Strides5 xs = strides5(x, "x"), ws = strides5(w, "w"), ys = strides5(y, "y");
  for (int64_t row = row_begin; row < row_end; ++row) {
    int64_t p1 = row % g.out[1], p0 = (row / g.out[1]) % g.out[0], n = row / (g.out[1] * g.out[0]);
    for (int64_t p2 = 0; p2 < g.out[2]; ++p2)
      for (int64_t oc = 0; oc < g.o; ++oc) {
        PointValue v = point(g, x, xs, w, ws, n, Dims{p0, p1, p2}, oc);
        store(y, n * ys.s[0] + p0 * ys.s[1] + p1 * ys.s[2] + p2 * ys.s[3] + oc * ys.s[4], v.value);
      }
  }
}

void reference_conv(const Geometry& g, const TensorView& x, const TensorView& w, const TensorView& y) {
  check_dtypes(g, x, w);
  if (y.dtype != g.dtype) throw Error(ErrorKind::invalid, "[reference] y's dtype must match the problem's dtype");
  // Rows (n, p0, p1) are independent, so plain threads over contiguous row ranges change no
  // bit. The oracle keeps its own threads: it shares no code with what it checks.
  const int64_t rows = g.n * g.out[0] * g.out[1];
  const int64_t threads = std::min<int64_t>(std::max(1u, std::thread::hardware_concurrency()), rows);
  if (threads <= 1) {
    reference_conv_rows(g, x, w, y, 0, rows);
    return;
  }
  std::vector<std::thread> workers;
  for (int64_t t = 0; t < threads; ++t)
    workers.emplace_back([&, t] { reference_conv_rows(g, x, w, y, rows * t / threads, rows * (t + 1) / threads); });
  for (std::thread& th : workers) th.join();
}

namespace {

// Calls f(n, p, k, i, oc, kk, c0) for every (output, tap) pair whose tap lands on real input:
// output position p of sample n, tap k (kk with flip applied) reading input position i, output
// channel oc whose group starts at input channel c0. The same walk as point(), so the gradients
// are the adjoints of exactly what reference_conv computes.
template <class F>
void for_each_term(const Geometry& g, F&& f) {
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t p0 = 0; p0 < g.out[0]; ++p0)
      for (int64_t p1 = 0; p1 < g.out[1]; ++p1)
        for (int64_t p2 = 0; p2 < g.out[2]; ++p2)
          for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
            const int64_t i0 = input_index(g, 0, p0, k0);
            if (i0 < 0) continue;
            for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
              const int64_t i1 = input_index(g, 1, p1, k1);
              if (i1 < 0) continue;
              for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                const int64_t i2 = input_index(g, 2, p2, k2);
                if (i2 < 0) continue;
                const Dims kk{g.flip ? g.k[0] - 1 - k0 : k0, g.flip ? g.k[1] - 1 - k1 : k1,
                              g.flip ? g.k[2] - 1 - k2 : k2};
                for (int64_t oc = 0; oc < g.o; ++oc)
                  f(n, Dims{p0, p1, p2}, Dims{i0, i1, i2}, kk, oc, (oc / g.og()) * g.cg());
              }
            }
          }
}

// Rounds a dense float64 result of extents e (the 5-D order of t) into t, strides s.
void store_all(const std::vector<double>& acc, const TensorView& t, const Strides5& s,
               const std::array<int64_t, 5>& e) {
  int64_t lin = 0;
  for (int64_t a = 0; a < e[0]; ++a)
    for (int64_t b = 0; b < e[1]; ++b)
      for (int64_t c = 0; c < e[2]; ++c)
        for (int64_t d = 0; d < e[3]; ++d)
          for (int64_t f = 0; f < e[4]; ++f)
            store(t, a * s.s[0] + b * s.s[1] + c * s.s[2] + d * s.s[3] + f * s.s[4], acc[size_t(lin++)]);
}

void check_grad_dtypes(const Geometry& g, const TensorView& a, const TensorView& b, const TensorView& out) {
  if (a.dtype != g.dtype || b.dtype != g.dtype || out.dtype != g.dtype)
    throw Error(ErrorKind::invalid, "[reference] tensor dtypes must match the problem's dtype");
}

}  // namespace

void reference_conv_backward_data(const Geometry& g, const TensorView& dy, const TensorView& w,
                                  const TensorView& dx) {
  check_grad_dtypes(g, dy, w, dx);
  const Strides5 ys = strides5(dy, "dy"), ws = strides5(w, "w"), xs = strides5(dx, "dx");
  // Dense float64 accumulator in dx's logical order [N, I0, I1, I2, C].
  std::vector<double> acc(size_t(g.x_elems()), 0.0);
  const int64_t cg = g.cg();
  for_each_term(g, [&](int64_t n, const Dims& p, const Dims& i, const Dims& kk, int64_t oc, int64_t c0) {
    const double d = load(dy, n * ys.s[0] + p[0] * ys.s[1] + p[1] * ys.s[2] + p[2] * ys.s[3] + oc * ys.s[4]);
    const int64_t wo = oc * ws.s[0] + kk[0] * ws.s[1] + kk[1] * ws.s[2] + kk[2] * ws.s[3];
    double* a = acc.data() + ((((n * g.in[0] + i[0]) * g.in[1] + i[1]) * g.in[2] + i[2]) * g.c + c0);
    for (int64_t c = 0; c < cg; ++c) a[c] += d * load(w, wo + c * ws.s[4]);
  });
  store_all(acc, dx, xs, {g.n, g.in[0], g.in[1], g.in[2], g.c});
}

void reference_conv_backward_weight(const Geometry& g, const TensorView& x, const TensorView& dy,
                                    const TensorView& dw) {
  check_grad_dtypes(g, x, dy, dw);
  const Strides5 xs = strides5(x, "x"), ys = strides5(dy, "dy"), ws = strides5(dw, "dw");
  // Dense float64 accumulator in dw's logical order [O, K0, K1, K2, C/g].
  std::vector<double> acc(size_t(g.w_elems()), 0.0);
  const int64_t cg = g.cg();
  for_each_term(g, [&](int64_t n, const Dims& p, const Dims& i, const Dims& kk, int64_t oc, int64_t c0) {
    const double d = load(dy, n * ys.s[0] + p[0] * ys.s[1] + p[1] * ys.s[2] + p[2] * ys.s[3] + oc * ys.s[4]);
    const int64_t xo = n * xs.s[0] + i[0] * xs.s[1] + i[1] * xs.s[2] + i[2] * xs.s[3] + c0 * xs.s[4];
    double* a = acc.data() + ((((oc * g.k[0] + kk[0]) * g.k[1] + kk[1]) * g.k[2] + kk[2]) * cg);
    for (int64_t c = 0; c < cg; ++c) a[c] += d * load(x, xo + c * xs.s[4]);
  });
  store_all(acc, dw, ws, {g.o, g.k[0], g.k[1], g.k[2], cg});
}

}  // namespace convnd
