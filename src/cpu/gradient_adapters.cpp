// The CPU instances of the gradient adapters (src/engine/gradient_adapters.h): the input
// gradient as the dual forward conv, and a transposed conv's weight gradient as its dual's.
#include "engine/gradient_adapters.h"
#include "cpu/isas.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "cpu/thread_pool.h"
#include "engine/backend.h"

namespace convnd {

namespace {

// The permuted copy on the host. w [g, O/g, K, C/g] and w' [g, C/g, K, O/g] differ by swapping
// the two channel axes, so for each (group, tap) it is the transpose of an (O/g) x (C/g) matrix:
// done in 32 x 32 blocks, so that both the reads and the writes stay within a few cache lines
// (element by element, one side would jump K·(C/g) elements per step). Elements are copied as
// 2-, 4- or 8-byte words.
template <class Word>
void permute_words(ThreadPool& pool, const Word* s, Word* t, const WeightDual& d, bool to_permuted) {
  constexpr int64_t kB = 32;
  const int64_t groups = d.shape[0], og = d.shape[1], taps = d.shape[2], cg = d.shape[3];
  const int64_t oblocks = (og + kB - 1) / kB;
  pool.parallel_for(groups * taps * oblocks, [&](int64_t task, int) {
    const int64_t gi = task / (taps * oblocks), k = (task / oblocks) % taps, o0 = (task % oblocks) * kB;
    const int64_t o1 = std::min(og, o0 + kB);
    // w[gi, o, k, c] at dense ((gi·og + o)·taps + k)·cg + c; w'[gi, c, k, o] at gi·s0 + c·(taps·og) + k·og + o.
    const int64_t dense0 = (gi * og * taps + k) * cg, perm0 = gi * d.strides[0] + k * d.strides[2];
    for (int64_t c0 = 0; c0 < cg; c0 += kB) {
      const int64_t c1 = std::min(cg, c0 + kB);
      if (to_permuted) {
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t o = o0; o < o1; ++o) t[perm0 + c * d.strides[3] + o] = s[dense0 + o * taps * cg + c];
      } else {
        for (int64_t o = o0; o < o1; ++o)
          for (int64_t c = c0; c < c1; ++c) t[dense0 + o * taps * cg + c] = s[perm0 + c * d.strides[3] + o];
      }
    }
  });
}

Status cpu_permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                   int es) {
  if (d.strides[1] != 1 || d.strides[2] != d.shape[1] || d.strides[3] != d.shape[1] * d.shape[2])
    return Status(ErrorKind::invalid, "[gradient] the permutation is not weight_dual()'s");
  switch (es) {
    case 2: permute_words(*ctx.pool, static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), d, to_permuted); break;
    case 4: permute_words(*ctx.pool, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), d, to_permuted); break;
    case 8: permute_words(*ctx.pool, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), d, to_permuted); break;
    default: return Status(ErrorKind::invalid, "[gradient] elements of " + std::to_string(es) + " bytes");
  }
  return Status::Ok();
}


// Either adapter (DataGradAdapter, WeightGradDualAdapter) on the CPU's list and host copies.
template <class Adapter>
class CpuAdapter final : public Adapter {
 public:
  explicit CpuAdapter(const AlgorithmTraits& traits) : traits_(traits) {}
  const AlgorithmTraits& traits() const override { return traits_; }

 protected:
  const std::vector<const Algorithm*>& candidates() const override { return cpu_backend().algorithms(); }
  Status permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                 int es) const override {
    return cpu_permute(ctx, src, dst, d, to_permuted, es);
  }

 private:
  AlgorithmTraits traits_;
};

}  // namespace

const Algorithm& data_grad_algorithm() {
  static const CpuAdapter<DataGradAdapter> a({"data_grad", Backend::cpu, {Direction::bwd_d}, kAllDTypes, kCpuIsas,
                                              "w permuted to [C, K, O/g] (none when depthwise, or when the dual's "
                                              "GEMM reads w in place) + the dual forward plan's"});
  return a;
}

const Algorithm& weight_grad_dual_algorithm() {
  static const CpuAdapter<WeightGradDualAdapter> a({"weight_grad_dual", Backend::cpu, {Direction::bwd_w},
                                                    kAllDTypes, kCpuIsas,
                                                    "dw' [C, K, O/g] (none when depthwise) + the dual's "
                                                    "weight-gradient plan"});
  return a;
}

}  // namespace convnd
