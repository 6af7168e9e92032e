// Direct kernels compiled for avx2 (flags from cmake/sources.cmake by file name).
#if defined(__F16C__)
#include <immintrin.h>
#endif
#include <convnd/dtype.h>
#define CONVND_ISA_NS isa_avx2
#include "cpu/isa/direct_kernels.inc"

namespace convnd {
const DirectKernels& direct_kernels_avx2() { return isa_avx2::table(); }
}  // namespace convnd
