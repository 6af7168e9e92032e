#include "cpu/direct_kernels.h"

#include "cpu/gemm.h"

namespace convnd {

const DirectKernels& direct_kernels() {
  switch (gemm_isa()) {
    case GemmIsa::avx512: return direct_kernels_avx512();
    case GemmIsa::avx2: return direct_kernels_avx2();
    default: return direct_kernels_generic();
  }
}

}  // namespace convnd
