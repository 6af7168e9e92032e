#include "cpu/direct_kernels.h"

#include "cpu/gemm.h"

namespace convnd {

const DirectKernels& direct_kernels(Isa isa) {
  switch (vector_isa(isa)) {
    case Isa::avx512: return direct_kernels_avx512();
    case Isa::avx2: return direct_kernels_avx2();
    default: return direct_kernels_generic();
  }
}

}  // namespace convnd
