// The bf16 GEMM path (gemm.h, "bf16 compute"): its kernels and converters run here in plain
// C++ emulation of AMX tiles and of VDPBF16PS (the same templates the avx512_bf16 and amx files
// instantiate with the instructions), through the real driver, packers and sources, against a
// double reference: tile edges, K tails and blocks, both loop orders, threads, f32 and bf16 C,
// accumulate. The real instructions run in gemm_test.cpp and the algorithm tests on machines
// that have them (the paths join supported_isas() there).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bf16_emulation.h"
#include "cpu/gemm.h"
#include "cpu/isa/gemm_bf16_kernels.h"
#include "cpu/thread_pool.h"

namespace convnd {
namespace {

// One emulated path: the real one's tile and layouts, on top of the best path this machine runs
// (its B packers and stores).
struct Emulated {
  std::string name;
  GemmBf16Kernels bf16;
  GemmKernels table;
  GemmIsa base;
};

Emulated make_emulated(bool amx) {
  Emulated e;
  e.name = amx ? "amx (emulated)" : "avx512_bf16 (emulated)";
  e.base = gemm_isa();
  // The real tables' constants (reading them runs no instruction of their ISA).
  e.bf16 = emulated_bf16_kernels(amx);
  e.table = gemm_kernels(e.base);
  return e;
}

// Made once, so that the table can point at its own bf16 kernels.
const Emulated& emulated(bool amx) {
  static Emulated each[2] = {make_emulated(false), make_emulated(true)};
  Emulated& e = each[amx ? 1 : 0];
  e.table.bf16 = &e.bf16;
  return e;
}

// The emulated path's plan: the base path's blocking with the bf16 tile and K blocks.
GemmPlan plan_for(const Emulated& e, int64_t M, int64_t N, int64_t K, int threads) {
  GemmPlan p = gemm_plan(M, N, K, DType::f32, threads, e.base);
  const GemmTile t = e.bf16.tile;
  p.compute = DType::bf16;
  p.mr = t.mr, p.nr = t.nr, p.kg = t.kg;
  const int64_t blocks = (K + t.kc_max - 1) / t.kc_max;
  p.kc = K <= t.kc_max ? K : std::min(t.kc_max, ((K + blocks - 1) / blocks + 31) / 32 * 32);
  p.mc = std::max<int64_t>(1, (p.mc + t.mr - 1) / t.mr) * t.mr;
  p.nc = std::max<int64_t>(1, (p.nc + t.nr - 1) / t.nr) * t.nr;
  return p;
}

struct Buffer {
  explicit Buffer(int64_t bytes) : p(static_cast<char*>(std::aligned_alloc(64, size_t((bytes + 63) / 64 * 64 + 64)))) {}
  struct Free {
    void operator()(char* q) const { std::free(q); }
  };
  std::unique_ptr<char, Free> p;
};

struct Case {
  int64_t M, N, K;
  std::vector<uint16_t> a, bt;  // A [M, K], Bt [N, K], bf16
  std::vector<float> c0;        // the C accumulated onto
};

Case make_case(int64_t M, int64_t N, int64_t K, std::mt19937_64& rng, bool small_int) {
  Case c{M, N, K, std::vector<uint16_t>(size_t(M * K)), std::vector<uint16_t>(size_t(N * K)),
         std::vector<float>(size_t(M * N))};
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> ui(-3, 3);
  auto value = [&] { return small_int ? float(ui(rng)) : u(rng); };
  for (auto& v : c.a) v = float_to_bf16(value());
  for (auto& v : c.bt) v = float_to_bf16(value());
  for (auto& v : c.c0) v = bf16_to_float(float_to_bf16(value()));  // exact in a bf16 C too
  return c;
}

// C (f32 or bf16) (+)= A·B through gemm() with the emulated kernels; C as floats.
std::vector<float> run(const Emulated& e, const GemmPlan& plan, const Case& c, DType c_dtype, bool accumulate,
                       ThreadPool* pool, bool prepack) {
  DenseGemmA a(DType::bf16, c.a.data(), c.K);
  DenseGemmB b(DType::bf16, c.bt.data(), c.K);
  std::vector<float> cf = c.c0;
  std::vector<uint16_t> ch(cf.size());
  for (size_t i = 0; i < cf.size(); ++i) ch[i] = float_to_bf16(cf[i]);
  GemmArgs args;
  args.M = c.M, args.N = c.N, args.K = c.K, args.a = &a, args.b = &b, args.ldc = c.N;
  args.c = c_dtype == DType::f32 ? static_cast<void*>(cf.data()) : static_cast<void*>(ch.data());
  args.c_dtype = c_dtype, args.accumulate = accumulate;
  Buffer packed(gemm_packed_b_bytes(plan, c.N, c.K));
  if (prepack) {
    EXPECT_TRUE(gemm_pack_b(plan, c.N, c.K, b, packed.p.get(), pool, &e.table).ok());
    args.packed_b = packed.p.get();
  }
  const int64_t ws = gemm_workspace_bytes(plan, c.N, c.K, c_dtype, prepack);
  Buffer workspace(ws);
  const Status s = gemm(plan, args, workspace.p.get(), ws, pool, &e.table);
  EXPECT_TRUE(s.ok()) << s.message();
  if (c_dtype == DType::bf16)
    for (size_t i = 0; i < cf.size(); ++i) cf[i] = bf16_to_float(ch[i]);
  return cf;
}

// Against the double sum: within a K-term f32 sum's bound, plus the output's rounding; exact
// when `exact` (small integers: every partial sum is an integer an f32 holds).
void expect_matches(const Case& c, const std::vector<float>& got, DType c_dtype, bool accumulate, bool exact,
                    const std::string& what) {
  int failures = 0;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double ref = accumulate ? c.c0[size_t(m * c.N + n)] : 0.0, mag = std::fabs(ref);
      for (int64_t k = 0; k < c.K; ++k) {
        const double t = double(bf16_to_float(c.a[size_t(m * c.K + k)])) * bf16_to_float(c.bt[size_t(n * c.K + k)]);
        ref += t;
        mag += std::fabs(t);
      }
      const double out = c_dtype == DType::bf16 ? 0x1p-8 : 0.0;
      const double tol = exact ? out * std::fabs(ref) : double(c.K + 2) * 0x1p-24 * mag + out * std::fabs(ref) + 1e-30;
      const double g = got[size_t(m * c.N + n)];
      if (!(std::fabs(g - ref) <= tol) && ++failures <= 3)
        ADD_FAILURE() << what << ": C[" << m << ", " << n << "] = " << g << ", expected " << ref << " (tolerance "
                      << tol << ")";
    }
  EXPECT_EQ(failures, 0) << what;
}

TEST(GemmBf16, EmulatedPathsMatchTheReference) {
  std::mt19937_64 rng(std::random_device{}());
  ThreadPool pool(2);
  for (bool amx : {true, false}) {
    const Emulated& e = emulated(amx);
    const GemmTile t = e.bf16.tile;
    struct Shape {
      int64_t M, N, K;
    };
    const Shape shapes[] = {{1, 1, 1},           {t.mr, t.nr, 32},    {t.mr + 1, t.nr - 1, 33}, {t.mr - 1, t.nr + 1, 31},
                            {3 * t.mr + 5, 70, 2}, {37, 3 * t.nr, 63}, {29, 41, t.kc_max + 7},   {45, 33, 2 * t.kc_max + 77}};
    for (const Shape& s : shapes)
      for (bool small_int : {false, true}) {
        const Case c = make_case(s.M, s.N, s.K, rng, small_int);
        for (DType c_dtype : {DType::f32, DType::bf16})
          for (bool accumulate : {false, true}) {
            const std::string what = e.name + " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                                     " K=" + std::to_string(s.K) + (c_dtype == DType::bf16 ? " bf16 C" : " f32 C") +
                                     (accumulate ? " accumulate" : "") + (small_int ? " small integers" : "");
            const GemmPlan plan = plan_for(e, s.M, s.N, s.K, 2);
            const std::vector<float> base = run(e, plan, c, c_dtype, accumulate, &pool, false);
            expect_matches(c, base, c_dtype, accumulate, small_int, what);
            // Both loop orders, small blocks over M and N, B packed ahead, one thread: the same bits.
            for (bool whole_k : {false, true}) {
              GemmPlan q = plan;
              q.a_whole_k = whole_k;
              q.mc = t.mr;
              q.nc = t.nr;
              EXPECT_EQ(run(e, q, c, c_dtype, accumulate, &pool, true), base)
                  << what << (whole_k ? " whole-K" : " per K block");
            }
            EXPECT_EQ(run(e, plan, c, c_dtype, accumulate, nullptr, false), base) << what << " one thread";
          }
      }
  }
}

// The converted B layout, element by element: pairs from an f32 panel in place (an odd K gets a
// zero partner).
TEST(GemmBf16, ConvertedBLayout) {
  const int64_t nr = 32;
  for (int64_t K : {1, 2, 7, 32, 33}) {
    std::vector<float> panel(static_cast<size_t>(K * nr));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < nr; ++c) panel[size_t(k * nr + c)] = float(k * 100 + c);
    bf16_convert_b_impl(panel.data(), K, nr);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(panel.data());
    for (int64_t k = 0; k < (K + 1) / 2 * 2; ++k)
      for (int64_t c = 0; c < nr; ++c)
        ASSERT_EQ(bf16_to_float(h[(k / 2) * nr * 2 + c * 2 + k % 2]),
                  k < K ? bf16_to_float(float_to_bf16(float(k * 100 + c))) : 0.f)
            << "K=" << K << " k=" << k << " c=" << c;
  }
}

// The bf16 A packer (compute bf16): the panel layout with the path's kg, rows from segments at
// any offset, null rows and rows past nrows zero.
TEST(GemmBf16, PackedALayout) {
  for (GemmIsa isa : {GemmIsa::avx512_bf16, GemmIsa::amx}) {
    GemmPlan plan = gemm_plan(100, 64, 70, DType::bf16, 1, isa);
    // The packer is portable C++ plus the path's f32 row packer: the best one here stands in
    // where this CPU lacks the path.
    if (!gemm_isa_supported(isa)) plan.isa = gemm_isa();
    const int64_t mr = plan.mr, kg = plan.kg, kc = 70, nrows = mr - 3;
    std::vector<std::vector<uint16_t>> data(static_cast<size_t>(nrows), std::vector<uint16_t>(size_t(kc)));
    std::vector<const void*> rows(static_cast<size_t>(nrows));
    for (int64_t r = 0; r < nrows; ++r) {
      for (int64_t k = 0; k < kc; ++k) data[size_t(r)][size_t(k)] = float_to_bf16(float(r + 1) + float(k) / 128);
      rows[size_t(r)] = r == 2 ? nullptr : data[size_t(r)].data();
    }
    // Two segments, the second starting inside a group: at an odd k (element by element) and
    // at an even one (whole pairs, through the row packer's transposes).
    for (int64_t split : {37, 36}) {
      std::vector<uint16_t> panel(static_cast<size_t>(gemm_a_panel_elems(plan, kc)), 0xffff);
      std::vector<const void*> rows2(rows.size());
      for (size_t r = 0; r < rows.size(); ++r)
        rows2[r] = rows[r] ? static_cast<const uint16_t*>(rows[r]) + split : nullptr;
      const GemmASegment segs[2] = {{0, split, rows.data()}, {split, kc - split, rows2.data()}};
      gemm_pack_a_segments(plan, DType::bf16, segs, 2, nrows, mr, panel.data());
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < mr; ++r) {
          const uint16_t want = r < nrows && r != 2 ? data[size_t(r)][size_t(k)] : 0;
          ASSERT_EQ(panel[size_t((k / kg) * mr * kg + r * kg + k % kg)], want)
              << gemm_isa_name(isa) << " split=" << split << " k=" << k << " r=" << r;
        }
    }
  }
}

// The real paths' tables are constants any machine may read; where the CPU has them, gemm()
// takes them (and gemm_test.cpp runs them).
TEST(GemmBf16, TablesAndPlans) {
  for (GemmIsa isa : {GemmIsa::avx512_bf16, GemmIsa::amx}) {
    SCOPED_TRACE(gemm_isa_name(isa));
    EXPECT_TRUE(gemm_has_bf16(isa));
    const GemmPlan p = gemm_plan(1000, 256, 2304, DType::bf16, 2, isa);
    EXPECT_EQ(p.compute, DType::bf16);
    EXPECT_EQ(p.nr, 32);
    EXPECT_EQ(p.kc % 32, 0);
    EXPECT_NE(gemm_plan_string(p).find("compute=bf16"), std::string::npos);
    // f32 data at these levels runs avx512's f32 kernels.
    EXPECT_EQ(gemm_tile(isa, DType::f32).mr, gemm_tile(GemmIsa::avx512, DType::f32).mr);
    if (gemm_isa_supported(isa)) {
      EXPECT_TRUE(gemm_check_plan(p, 2304).ok());
    } else {
      EXPECT_EQ(gemm_check_plan(p, 2304).kind(), ErrorKind::unsupported);
    }
  }
  for (GemmIsa isa : {GemmIsa::generic, GemmIsa::avx2, GemmIsa::avx512}) {
    EXPECT_FALSE(gemm_has_bf16(isa));
    EXPECT_EQ(gemm_plan(100, 100, 100, DType::bf16, 1, isa).compute, DType::f32) << "no bf16 kernels: f32 compute";
  }
}

}  // namespace
}  // namespace convnd
