// The instruction-set levels CPU algorithms plan for.
#pragma once
#include "engine/algorithm.h"

namespace convnd {

/// Every CPU level. An algorithm without bf16 kernels of its own runs its avx512 kernels at the
/// avx512_bf16 and amx levels (gemm.h vector_isa), so each algorithm plans for all of them.
inline constexpr IsaSet kCpuIsas{Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx};

}  // namespace convnd
