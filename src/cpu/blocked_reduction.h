// The deterministic reduction under the CPU weight gradients. dw is a sum over the batch and
// every output position: rows = N·PD·PH·PW terms per element, which can exceed 2^31. The rows
// are cut into blocks of a fixed length (kWgradBlockRows: a constant, never a function of the
// threads or the budget); a block's partial sum of every element is computed in the compute
// type (float32 for f32/f16/bf16, float64 for f64) by whichever thread, and the partials are
// added into a float64 accumulator with Neumaier compensation in block order: 0, 1, 2, ...
// So the bits depend on the inputs alone, and the error is that of one block's sum (fixed
// length) plus a compensated sum over blocks, which does not grow with the number of terms.
//
// Threads compute a wave of blocks at once into `wave` slots, then add the slots in order.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

#include "cpu/direct_kernels.h"
#include "cpu/thread_pool.h"
#include "engine/algorithm.h"

namespace convnd {

/// Rows per block: long enough that the per-block additions cost nothing next to the block's
/// multiply-adds, short enough that a block's float32 sum stays accurate.
inline constexpr int64_t kWgradBlockRows = 1024;

inline int64_t wgrad_rows(const Geometry& g) { return g.n * g.out_volume(); }
inline int64_t wgrad_blocks(const Geometry& g) { return (wgrad_rows(g) + kWgradBlockRows - 1) / kWgradBlockRows; }

/// The most blocks a wave computes at once: one per thread, and more when a block's partials
/// are small (up to 64 per thread within 16 MiB of slots), so that a reduction of many short
/// blocks (a small weight over a long input) does not synchronise the threads per block.
inline int64_t wgrad_wave_max(int64_t blocks, int64_t threads, int64_t slot_bytes) {
  const int64_t by_bytes = (int64_t(16) << 20) / std::max<int64_t>(slot_bytes, 1);
  return std::max<int64_t>(1, std::min(blocks, std::max(threads, std::min(threads * 64, by_bytes))));
}

/// s + c += v, compensated (Neumaier): the lost low-order bits of each addition go to c.
inline void neumaier_add(double& s, double& c, double v) {
  const double t = s + v;
  c += std::fabs(s) >= std::fabs(v) ? (s - t) + v : (v - t) + s;
  s = t;
}

/// Hands over finished sums: acc[i] + comp[i] is the result of element e0 + i, e0 <= e < e1.
using WgradFinish = std::function<void(int64_t e0, int64_t e1, const double* acc, const double* comp)>;

/// One pass of the reduction over `elems` elements: for every block b (in waves of `wave`),
/// partial(b, part, slot, thread) for part < parts writes its share of block b's partial sums
/// into slot (elems values of the compute type, the parts covering all of them); then the
/// slots are added into acc/comp in block order. acc and comp are zeroed here. `slots` holds
/// wave · elems values. Reports progress as base + span · (blocks done / blocks).
/// With `finish`, each range of elements is handed to it as soon as its sums are complete,
/// while they are still in cache; when one wave holds all blocks (blocks <= wave) the sums then
/// never leave a thread's stack and acc/comp are not touched (they may be null): for a large
/// weight, that traffic was most of the reduction's time.
inline Status blocked_reduce(
    const RunContext& ctx, int64_t blocks, int64_t elems, int64_t parts, int64_t wave, bool f64, void* slots,
    double* acc, double* comp,
    const std::function<void(int64_t b, int64_t part, void* slot, int thread)>& partial, double base,
    double span, const WgradFinish* finish = nullptr) {
  ThreadPool& pool = *ctx.pool;
  const int64_t cs = f64 ? 8 : 4;
  const DirectKernels& dk = direct_kernels(ctx.plan.isa);
  // The element range one combine task adds (a few thousand, so tasks are cheap to hand out).
  const int64_t chunk = 4096, chunks = (elems + chunk - 1) / chunk;
  // Adds slots [0, nb) of elements [e0, e1) into a and c (indexed from e0).
  auto add_slots = [&](int64_t nb, int64_t e0, int64_t e1, double* a, double* c) {
    for (int64_t s = 0; s < nb; ++s) {
      if (f64)
        dk.neumaier_add_f64(a, c, static_cast<const double*>(slots) + s * elems + e0, e1 - e0);
      else
        dk.neumaier_add_f32(a, c, static_cast<const float*>(slots) + s * elems + e0, e1 - e0);
    }
  };
  const bool one_wave = finish && blocks <= wave;
  if (!one_wave)
    pool.parallel_for(chunks, [&](int64_t t, int) {
      const int64_t e0 = t * chunk, e1 = std::min(elems, e0 + chunk);
      for (int64_t e = e0; e < e1; ++e) acc[e] = comp[e] = 0.0;
    });
  for (int64_t b0 = 0; b0 < blocks; b0 += wave) {
    const int64_t nb = std::min(wave, blocks - b0);
    pool.parallel_for(nb * parts, [&](int64_t task, int thread) {
      const int64_t s = task / parts;
      partial(b0 + s, task % parts, static_cast<char*>(slots) + s * elems * cs, thread);
    });
    const bool last = b0 + nb >= blocks;
    pool.parallel_for(chunks, [&](int64_t t, int) {
      const int64_t e0 = t * chunk, e1 = std::min(elems, e0 + chunk);
      if (one_wave) {
        constexpr int64_t kPiece = 512;
        double a[kPiece], c[kPiece];
        for (int64_t p0 = e0; p0 < e1; p0 += kPiece) {
          const int64_t p1 = std::min(e1, p0 + kPiece);
          for (int64_t i = 0; i < p1 - p0; ++i) a[i] = c[i] = 0.0;
          add_slots(nb, p0, p1, a, c);
          (*finish)(p0, p1, a, c);
        }
        return;
      }
      add_slots(nb, e0, e1, acc + e0, comp + e0);
      if (finish && last) (*finish)(e0, e1, acc + e0, comp + e0);
    });
    if (!ctx.report(base + span * double(b0 + nb) / double(blocks)))
      return Status(ErrorKind::interrupted, "[" + ctx.plan.algorithm + "] cancelled");
  }
  return Status::Ok();
}

}  // namespace convnd
