// Direct kernels compiled for generic (flags from cmake/sources.cmake by file name).
#if defined(__F16C__)
#include <immintrin.h>
#endif
#include <convnd/dtype.h>
#define CONVND_ISA_NS isa_generic
#include "cpu/isa/direct_kernels.inc"

namespace convnd {
const DirectKernels& direct_kernels_generic() { return isa_generic::table(); }
}  // namespace convnd
