// The direct conv_general: one thread per output element, reading the definition (64-bit
// indices, taps in order, channels in order). It implements every problem, so the backend
// has a plan for everything; the specialised kernels beat it wherever they apply.
#include "elem.cuh"

namespace convnd::cuda {

namespace {

// Taps k of one axis that land on real input for output position p: first, first + step, ...
// up to last (none when first > last). Dilated position u = p·s + k·kd − lo must satisfy
// 0 <= u <= (I − 1)·id and u ≡ 0 (mod id).
struct TapRange {
  int64_t first, last, step;
  bool exact;  // every tap of the range is real (no per-tap check needed)
};

__device__ __forceinline__ TapRange tap_range(int64_t p, int64_t s, int64_t kd, int64_t id, int64_t lo,
                                              int64_t K, int64_t I) {
  const int64_t base = p * s - lo;
  if (id == 1) {
    const int64_t kmin = base >= 0 ? 0 : (-base + kd - 1) / kd;
    const int64_t room = I - 1 - base;
    if (room < 0) return {1, 0, 1, true};
    const int64_t kmax = min(K - 1, room / kd);
    return {kmin, kmax, 1, true};
  }
  if (kd == 1) {
    const int64_t kmin = max(int64_t(0), -base), kmax = min(K - 1, (I - 1) * id - base);
    if (kmin > kmax) return {1, 0, 1, true};
    const int64_t r = (base + kmin) % id;
    return {kmin + (r ? id - r : 0), kmax, id, true};
  }
  return {0, K - 1, 1, false};
}

template <class T>
__global__ void __launch_bounds__(256)
    direct_conv_kernel(ConvShape s, const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                       int64_t begin, int64_t end) {
  using C = compute_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = begin + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < end; e += stride) {
    int64_t r = e;
    const int64_t oc = r % s.o;
    r /= s.o;
    const int64_t p2 = r % s.out[2];
    r /= s.out[2];
    const int64_t p1 = r % s.out[1];
    r /= s.out[1];
    const int64_t p0 = r % s.out[0];
    const int64_t n = r / s.out[0];
    const int64_t q = oc / s.og;
    const TapRange t0 = tap_range(p0, s.stride[0], s.kdil[0], s.idil[0], s.lo[0], s.k[0], s.in[0]);
    const TapRange t1 = tap_range(p1, s.stride[1], s.kdil[1], s.idil[1], s.lo[1], s.k[1], s.in[1]);
    const TapRange t2 = tap_range(p2, s.stride[2], s.kdil[2], s.idil[2], s.lo[2], s.k[2], s.in[2]);
    C acc = C(0);
    for (int64_t k0 = t0.first; k0 <= t0.last; k0 += t0.step) {
      const int64_t u0 = p0 * s.stride[0] + k0 * s.kdil[0] - s.lo[0];
      if (!t0.exact && (u0 < 0 || u0 % s.idil[0] != 0 || u0 / s.idil[0] >= s.in[0])) continue;
      const int64_t i0 = u0 / s.idil[0], kk0 = s.flip ? s.k[0] - 1 - k0 : k0;
      for (int64_t k1 = t1.first; k1 <= t1.last; k1 += t1.step) {
        const int64_t u1 = p1 * s.stride[1] + k1 * s.kdil[1] - s.lo[1];
        if (!t1.exact && (u1 < 0 || u1 % s.idil[1] != 0 || u1 / s.idil[1] >= s.in[1])) continue;
        const int64_t i1 = u1 / s.idil[1], kk1 = s.flip ? s.k[1] - 1 - k1 : k1;
        for (int64_t k2 = t2.first; k2 <= t2.last; k2 += t2.step) {
          const int64_t u2 = p2 * s.stride[2] + k2 * s.kdil[2] - s.lo[2];
          if (!t2.exact && (u2 < 0 || u2 % s.idil[2] != 0 || u2 / s.idil[2] >= s.in[2])) continue;
          const int64_t i2 = u2 / s.idil[2], kk2 = s.flip ? s.k[2] - 1 - k2 : k2;
          const T* xp = x + (((n * s.in[0] + i0) * s.in[1] + i1) * s.in[2] + i2) * s.c + q * s.cg;
          const T* wp = w + (((oc * s.k[0] + kk0) * s.k[1] + kk1) * s.k[2] + kk2) * s.cg;
          for (int64_t c = 0; c < s.cg; ++c) acc += load(xp + c) * load(wp + c);
        }
      }
    }
    y[e] = from_compute<T>(acc);
  }
}

}  // namespace

cudaError_t launch_direct_conv(const ConvShape& s, const void* x, const void* w, void* y, int64_t y_begin,
                               int64_t y_end, cudaStream_t stream) {
  if (y_end <= y_begin) return cudaSuccess;
  return dispatch_elem(s.elem, [&](auto tag) {
    using T = typename decltype(tag)::type;
    direct_conv_kernel<T><<<grid_for(y_end - y_begin, 256, 132 * 64), 256, 0, stream>>>(
        s, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y), y_begin, y_end);
    return cudaGetLastError();
  });
}

}  // namespace convnd::cuda
