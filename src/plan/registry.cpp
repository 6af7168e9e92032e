// The ordered list of algorithms: the planner takes the first that says yes. Most specialised
// first; the reference last, so every valid problem has a plan. Adding an algorithm: its own
// file defining `const Algorithm& NAME_algorithm()`, plus one line in each list below.
#include "cuda/backend.h"
#include "plan/algorithm.h"

namespace convnd {

const Algorithm& pointwise_gemm_algorithm();
const Algorithm& depthwise_direct_algorithm();
const Algorithm& transposed_scatter_algorithm();
const Algorithm& im2col_gemm_algorithm();
const Algorithm& polyphase_gemm_algorithm();
const Algorithm& reference_algorithm();

const std::vector<const Algorithm*>& algorithm_registry() {
  static const std::vector<const Algorithm*> list = [] {
    std::vector<const Algorithm*> l = {
        &pointwise_gemm_algorithm(),
        &depthwise_direct_algorithm(),
        &transposed_scatter_algorithm(),
        &im2col_gemm_algorithm(),
        &polyphase_gemm_algorithm(),
        &reference_algorithm(),
    };
    // The CUDA backend's own ordered list (src/cuda/backend.cpp; empty without CUDA).
    for (const Algorithm* a : cuda_algorithms()) l.push_back(a);
    return l;
  }();
  return list;
}

const Algorithm* find_algorithm(std::string_view name) {
  for (const Algorithm* a : algorithm_registry())
    if (a->name() == name) return a;
  return nullptr;
}

}  // namespace convnd
