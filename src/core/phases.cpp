#include "core/phases.h"

#include <algorithm>
#include <climits>
#include <numeric>

namespace convnd {

namespace {

int64_t mod(int64_t a, int64_t m) {
  int64_t r = a % m;
  return r < 0 ? r + m : r;
}

// Inverse of a modulo m (gcd(a, m) == 1, m >= 1), by the extended Euclidean algorithm.
int64_t inverse_mod(int64_t a, int64_t m) {
  if (m == 1) return 0;
  __int128 t = 0, newt = 1, r = m, newr = mod(a, m);
  while (newr != 0) {
    __int128 q = r / newr, tmp = t - q * newt;
    t = newt;
    newt = tmp;
    tmp = r - q * newr;
    r = newr;
    newr = tmp;
  }
  return int64_t(t < 0 ? t + m : t);
}

}  // namespace

Dims phase_counts(const Geometry& g) {
  Dims d;
  for (int j = 0; j < 3; ++j) d[j] = g.idil[j] / std::gcd(g.stride[j], g.idil[j]);
  return d;
}

int64_t phase_count(const Geometry& g) {
  Dims d = phase_counts(g);
  int64_t r = 1;
  for (int64_t v : d)
    if (__builtin_mul_overflow(r, v, &r)) return INT64_MAX;
  return r;
}

double axis_tap_pairs(const Geometry& g, int j) {
  const int64_t st = g.stride[j], kd = g.kdil[j], id = g.idil[j], lo = g.lo[j], K = g.k[j], P = g.out[j];
  if (id == 1) return double(P) * double(K);
  // Output p uses tap k when p·st ≡ lo − k·kd (mod id): for each k an arithmetic progression
  // of p with period Pp = id / gcd(st, id), present iff gcd(st, id) divides the right side.
  // Tap residues repeat with period T = id / gcd(kd, id), so at most T taps need solving.
  const int64_t gs = std::gcd(st, id), Pp = id / gs, T = id / std::gcd(kd, id);
  const int64_t inv = inverse_mod(st / gs, Pp);
  double pairs = 0;
  for (int64_t k = 0; k < std::min(K, T); ++k) {
    const int64_t rk = mod(mod(lo, id) - int64_t((__int128)mod(k, id) * mod(kd, id) % id), id);
    if (rk % gs) continue;
    const int64_t p0 = int64_t((__int128)(rk / gs) * inv % Pp);
    const double per_p = p0 < P ? double((P - 1 - p0) / Pp + 1) : 0;
    const double taps_like_k = double((K - 1 - k) / T + 1);  // taps k, k + T, ... share p0
    pairs += per_p * taps_like_k;
  }
  return pairs;
}

std::vector<PhaseAxis> axis_phases(const Geometry& g, int j) {
  const int64_t st = g.stride[j], kd = g.kdil[j], id = g.idil[j], lo = g.lo[j], K = g.k[j], P = g.out[j];
  const int64_t gs = std::gcd(st, id), gk = std::gcd(kd, id);
  const int64_t Pp = id / gs, T = id / gk;
  std::vector<PhaseAxis> out(static_cast<size_t>(Pp));
  for (int64_t phi = 0; phi < Pp; ++phi) {
    PhaseAxis& a = out[size_t(phi)];
    a.first = phi;
    a.step = Pp;
    a.count = phi < P ? (P - phi + Pp - 1) / Pp : 0;
    a.stride = st / gs;
    a.dil = kd / gk;
    // Real taps satisfy k·kd ≡ lo − φ·st (mod id); solvable iff gk divides the right side.
    // Work modulo id to keep the products small: phi < id and st, kd, lo are reduced first.
    const int64_t rhs = mod(mod(lo, id) - int64_t((__int128)phi * mod(st, id) % id), id);
    if (rhs % gk != 0) {
      a.taps = 0;
      continue;
    }
    const int64_t k0 = int64_t((__int128)(rhs / gk) * inverse_mod(kd / gk, T) % T);
    if (k0 >= K) {
      a.taps = 0;
      continue;
    }
    a.taps = (K - k0 + T - 1) / T;
    // (φ·st + k0·kd − lo) is an exact multiple of id by construction.
    const __int128 base = (__int128)phi * st + (__int128)k0 * kd - lo;
    a.lo = int64_t(-(base / id));
    a.k_first = g.flip ? K - 1 - k0 : k0;
    a.k_step = g.flip ? -T : T;
  }
  return out;
}

Geometry phase_geometry(const Geometry& g, const Phase& ph) {
  Geometry s = g;
  s.flip = false;
  for (int j = 0; j < 3; ++j) {
    const PhaseAxis& a = ph.axis[j];
    s.k[j] = a.taps;
    s.out[j] = a.count;
    s.stride[j] = a.stride;
    s.kdil[j] = a.dil;
    s.idil[j] = 1;
    s.lo[j] = a.lo;
    // hi makes (in + lo + hi − ((taps−1)·dil + 1)) / stride + 1 == count.
    s.hi[j] = (a.count - 1) * a.stride + (a.taps - 1) * a.dil + 1 - a.lo - g.in[j];
  }
  return s;
}

}  // namespace convnd
