// The conv algorithms that run on the GEMM at the bf16 levels (avx512_bf16, amx), on a CPU
// without them: gemm_emulate_bf16_level puts the emulated kernels (bf16_emulation.h) in the
// level's place, and the algorithms plan and run as they would there (bf16 panels packed by the
// sources, im2col's shared tap rows at kg 2 and 32, B converted, the input gradient's dual),
// against the float64 oracle and bit for bit on small integers. Where the CPU has the level,
// the algorithm tests run the real one instead.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include "bf16_emulation.h"
#include "cpu/gemm.h"
#include "grad_test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

TEST(Bf16Levels, EmulatedLevelsRunTheGemmAlgorithms) {
  Rng rng = test_rng();
  int levels = 0;
  for (bool amx : {true, false}) {
    const Isa level = amx ? Isa::amx : Isa::avx512_bf16;
    if (gemm_isa_supported(level)) continue;  // the real one runs in the algorithm tests
    ++levels;
    const GemmBf16Kernels kernels = emulated_bf16_kernels(amx);
    gemm_emulate_bf16_level(level, &kernels);
    struct Off {  // whatever way the scope is left (a failed ASSERT returns early)
      Isa level;
      ~Off() { gemm_emulate_bf16_level(level, nullptr); }
    } off{level};
    struct Want {
      const char* algorithm;
      const char* problem;
      bool bf16_kernels;  // whether its GEMM computes in bf16 (kernel_stride_gemm: f32)
    };
    for (Want w : {Want{"im2col_gemm", "n=2 in=9x11 c=64 o=40 k=3x3 pad=1", true},  // shared tap rows
                   Want{"im2col_gemm", "in=6x7x9 c=48 o=8 k=3x3x3 pad=1", true},
                   Want{"im2col_gemm", "n=2 in=8x13 c=5 o=7 k=3x2 stride=2 pad=1 dil=2", true},
                   Want{"im2col_gemm", "n=1 in=5x40 c=32 o=33 k=1x7 pad=0x3 g=1", true},
                   Want{"pointwise_gemm", "n=3 in=7x5 c=13 o=31", true},
                   Want{"pointwise_gemm", "n=2 in=9x9 c=64 o=70", true},
                   Want{"polyphase_gemm", "op=convT n=2 in=9x7 c=16 o=8 k=4x4 stride=2 pad=1", true},
                   Want{"kernel_stride_gemm", "op=convT n=2 in=9x7 c=16 o=8 k=2x2 stride=2", false}}) {
      Problem p = parse_problem(w.problem);
      p.dtype = DType::bf16;
      SCOPED_TRACE(std::string(isa_name(level)) + " (emulated) " + w.algorithm + " on " + to_string(p));
      ExecOptions opt;
      opt.algorithm = w.algorithm;
      opt.isa = level;
      const Plan plan = make_plan(p, opt);
      ASSERT_EQ(plan.isa, level);
      if (w.bf16_kernels) EXPECT_EQ(plan_parameter(plan, "bf16_kernels"), 1) << plan.to_text();
      const Case c = make_case(p, rng);
      EXPECT_TRUE(matches_oracle(run_plan(plan, c), oracle(c)));
      const Case ci = make_case(p, rng, Fill::small_int, 2);
      EXPECT_TRUE(bit_equal(run_plan(plan, ci), reference_output(ci)));
    }
    // The input gradient through its dual forward conv, planned at the level.
    for (const char* s : {"n=2 in=9x9 c=32 o=40 k=3x3 pad=1", "n=2 in=12x12 c=16 o=24 k=3x3 pad=1 stride=2"}) {
      Problem p = parse_problem(s);
      p.dir = Direction::bwd_d;
      p.dtype = DType::bf16;
      SCOPED_TRACE(std::string(isa_name(level)) + " (emulated) bwd_d of " + s);
      ExecOptions opt;
      opt.isa = level;
      const GradCase gc = make_grad_case(p, rng);
      Tensor dx;
      ASSERT_TRUE(run_grad(gc, opt, &dx));
      EXPECT_TRUE(matches_oracle(dx, grad_oracle(gc)));
    }
  }
  if (levels == 0) GTEST_SKIP() << "this CPU has both bf16 levels: the algorithm tests run them";
}

}  // namespace
