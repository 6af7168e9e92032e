// Seeded random tensors from a counter-based hash: element i of stream s under seed S is
// a pure function of (S, s, i), so generation runs in parallel chunks, gives the same values
// for any thread count, and costs a few nanoseconds per element even for multi-GB tensors.
//
//   key   = mix(mix(S) + (s + 1) * 0xD1B54A32D192ED03)
//   bits  = mix(key + (i + 1) * 0x9E3779B97F4A7C15)      (SplitMix64 over the index)
//   u     = (bits >> 11) * 2^-52 - 1                      (uniform in [-1, 1), 53 bits)
//   value = u rounded to the dtype (to nearest even; a result of 1.0 becomes the largest
//           value below 1)
//
// mix is SplitMix64's finaliser. Streams: 0 = input x, 1 = weight w, 2 = sampling, 3 = the
// cotangent dy of the gradients (dir=bwd_d, dir=bwd_w).
#pragma once
#include <convnd/tensor.h>

#include <cstdint>

namespace convnd::cli {

inline constexpr uint64_t kStreamX = 0, kStreamW = 1, kStreamSampling = 2, kStreamDy = 3;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t stream_key(uint64_t seed, uint64_t stream) {
  return mix64(mix64(seed) + (stream + 1) * 0xD1B54A32D192ED03ull);
}

inline uint64_t hash_bits(uint64_t key, uint64_t index) { return mix64(key + (index + 1) * 0x9E3779B97F4A7C15ull); }

/// Uniform in [-1, 1) with 53 random bits.
inline double uniform_pm1(uint64_t key, uint64_t index) {
  return double(hash_bits(key, index) >> 11) * 0x1p-52 - 1.0;
}

/// Fills a dense tensor with uniform values in [-1, 1) rounded to its dtype.
void fill_uniform(const TensorView& t, uint64_t seed, uint64_t stream, int threads);

/// Fills a dense tensor with quiet NaNs (check does this to y first, so that an element the
/// library never writes cannot pass).
void fill_nan(const TensorView& t, int threads);

/// A small sequential generator for sampling decisions (SplitMix64 over a counter).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : key_(stream_key(seed, stream)) {}
  uint64_t next() { return hash_bits(key_, counter_++); }
  /// Uniform in [0, n), n >= 1.
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace convnd::cli
