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
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <functional>

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

/// One pass of the reduction over `elems` elements: for every block b (in waves of `wave`),
/// partial(b, part, slot, thread) for part < parts writes its share of block b's partial sums
/// into slot (elems values of the compute type, the parts covering all of them); then the
/// slots are added into acc/comp in block order. acc and comp are zeroed here. `slots` holds
/// wave · elems values. Reports progress as base + span · (blocks done / blocks).
inline Status blocked_reduce(const RunContext& ctx, int64_t blocks, int64_t elems, int64_t parts, int64_t wave,
                             bool f64, void* slots, double* acc, double* comp,
                             const std::function<void(int64_t b, int64_t part, void* slot, int thread)>& partial,
                             double base, double span) {
  ThreadPool& pool = *ctx.pool;
  const int64_t cs = f64 ? 8 : 4;
  // The element range one combine task adds (a few thousand, so tasks are cheap to hand out).
  const int64_t chunk = 4096, chunks = (elems + chunk - 1) / chunk;
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
    pool.parallel_for(chunks, [&](int64_t t, int) {
      const int64_t e0 = t * chunk, e1 = std::min(elems, e0 + chunk);
      for (int64_t s = 0; s < nb; ++s) {
        if (f64) {
          const double* p = static_cast<const double*>(slots) + s * elems;
          for (int64_t e = e0; e < e1; ++e) neumaier_add(acc[e], comp[e], p[e]);
        } else {
          const float* p = static_cast<const float*>(slots) + s * elems;
          for (int64_t e = e0; e < e1; ++e) neumaier_add(acc[e], comp[e], double(p[e]));
        }
      }
    });
    if (!ctx.report(base + span * double(b0 + nb) / double(blocks)))
      return Status(ErrorKind::interrupted, "[" + ctx.plan.algorithm + "] cancelled");
  }
  return Status::Ok();
}

}  // namespace convnd
