#include "random_fill.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "parallel.h"

namespace convnd::cli {

namespace {

constexpr int64_t kChunk = int64_t(1) << 20;  // elements per task

template <class Store>
void fill_range(uint64_t key, int64_t begin, int64_t end, Store store) {
  for (int64_t i = begin; i < end; ++i) store(i, uniform_pm1(key, uint64_t(i)));
}

}  // namespace

void fill_uniform(const TensorView& t, uint64_t seed, uint64_t stream, int threads) {
  const uint64_t key = stream_key(seed, stream);
  const int64_t n = t.numel();
  const int64_t tasks = (n + kChunk - 1) / kChunk;
  auto body = [&](int64_t task, int) {
    const int64_t b = task * kChunk, e = std::min(n, b + kChunk);
    switch (t.dtype) {
      case DType::f64:
        fill_range(key, b, e, [&](int64_t i, double u) { t.ptr<double>()[i] = u; });
        break;
      case DType::f32:
        fill_range(key, b, e, [&](int64_t i, double u) {
          float f = float(u);
          t.ptr<float>()[i] = f < 1.0f ? f : std::nextafter(1.0f, 0.0f);
        });
        break;
      case DType::f16:
        fill_range(key, b, e, [&](int64_t i, double u) {
          uint16_t h = float_to_half(float(u));
          t.ptr<uint16_t>()[i] = h == 0x3c00 ? uint16_t(0x3bff) : h;  // 1.0 -> 1 - 2^-11
        });
        break;
      case DType::bf16:
        fill_range(key, b, e, [&](int64_t i, double u) {
          uint16_t h = float_to_bf16(float(u));
          t.ptr<uint16_t>()[i] = h == 0x3f80 ? uint16_t(0x3f7f) : h;  // 1.0 -> 1 - 2^-8
        });
        break;
    }
  };
  if (tasks <= 1) {
    if (tasks == 1) body(0, 0);
    return;
  }
  parallel_for(tasks, std::max(1, threads), body);
}

void fill_nan(const TensorView& t, int threads) {
  const int64_t n = t.numel();
  const int64_t tasks = (n + kChunk - 1) / kChunk;
  auto body = [&](int64_t task, int) {
    const int64_t b = task * kChunk, e = std::min(n, b + kChunk);
    switch (t.dtype) {
      case DType::f64: std::fill(t.ptr<double>() + b, t.ptr<double>() + e, std::nan("")); break;
      case DType::f32: std::fill(t.ptr<float>() + b, t.ptr<float>() + e, std::nanf("")); break;
      case DType::f16: std::fill(t.ptr<uint16_t>() + b, t.ptr<uint16_t>() + e, uint16_t(0x7e00)); break;
      case DType::bf16: std::fill(t.ptr<uint16_t>() + b, t.ptr<uint16_t>() + e, uint16_t(0x7fc0)); break;
    }
  };
  if (tasks <= 1) {
    if (tasks == 1) body(0, 0);
    return;
  }
  parallel_for(tasks, std::max(1, threads), body);
}

}  // namespace convnd::cli
