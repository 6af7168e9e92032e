// The GEMM engine against a naive double-accumulated GEMM on fresh random inputs, on every
// path this CPU runs (chosen through GemmPlan::isa, so one process covers them all), every
// dtype, sizes around the micro-tile and the K block; bit-exact small-integer cases; and the
// determinism promise: the same bits whatever the M/N split, B pre-packing or thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace convnd {
namespace {

std::vector<GemmIsa> supported_isas() {
  std::vector<GemmIsa> out;
  for (GemmIsa isa : {GemmIsa::generic, GemmIsa::avx2, GemmIsa::avx512, GemmIsa::avx512_bf16, GemmIsa::amx})
    if (gemm_isa_supported(isa)) out.push_back(isa);
  return out;
}

DType compute_of(DType dt) { return dt == DType::f64 ? DType::f64 : DType::f32; }

// A 64-byte aligned byte buffer.
struct Buffer {
  explicit Buffer(int64_t bytes)
      : p(static_cast<char*>(std::aligned_alloc(64, size_t((bytes + 63) / 64 * 64 + 64)))) {}
  char* get() const { return p.get(); }
  struct Free {
    void operator()(char* q) const { std::free(q); }
  };
  std::unique_ptr<char, Free> p;
};

// Elements of one dtype held as raw bytes, with the values they hold as doubles.
struct Tensor {
  DType dt = DType::f32;
  std::vector<char> raw;
  std::vector<double> val;
  Tensor(DType d, int64_t n) : dt(d), raw(size_t(n * dtype_size(d))), val(size_t(n)) {}
  void set(int64_t i, double v) {
    switch (dt) {
      case DType::f32: {
        float f = float(v);
        std::memcpy(&raw[size_t(i * 4)], &f, 4);
        val[size_t(i)] = f;
        break;
      }
      case DType::f64:
        std::memcpy(&raw[size_t(i * 8)], &v, 8);
        val[size_t(i)] = v;
        break;
      case DType::f16: {
        uint16_t h = float_to_half(float(v));
        std::memcpy(&raw[size_t(i * 2)], &h, 2);
        val[size_t(i)] = half_to_float(h);
        break;
      }
      case DType::bf16: {
        uint16_t h = float_to_bf16(float(v));
        std::memcpy(&raw[size_t(i * 2)], &h, 2);
        val[size_t(i)] = bf16_to_float(h);
        break;
      }
    }
  }
  double get(int64_t i) const { return read(dt, raw.data() + i * dtype_size(dt)); }
  static double read(DType dt, const char* p) {
    switch (dt) {
      case DType::f32: { float f; std::memcpy(&f, p, 4); return f; }
      case DType::f64: { double d; std::memcpy(&d, p, 8); return d; }
      case DType::f16: { uint16_t h; std::memcpy(&h, p, 2); return half_to_float(h); }
      case DType::bf16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_float(h); }
    }
    return 0;
  }
  const char* at(int64_t i) const { return raw.data() + i * dtype_size(dt); }
  char* at(int64_t i) { return raw.data() + i * dtype_size(dt); }
};

uint64_t fresh_seed() {
  static const uint64_t seed = std::random_device{}();
  return seed;
}

// A [M, K] (row stride lda), Bt [N, K] (ldb), C [M, N] (ldc); the strides are padded so that
// the GEMM must honour them.
struct Problem {
  DType dt;
  int64_t M, N, K, lda, ldb, ldc;
  Tensor a, bt, c0;
  // Uniform values in [-1, 1], or integers in [-int_range, int_range] when int_range > 0.
  Problem(DType d, int64_t m, int64_t n, int64_t k, std::mt19937_64& rng, int int_range = 0)
      : dt(d), M(m), N(n), K(k), lda(k + 3), ldb(k + 1), ldc(n + 5),
        a(d, m * (k + 3)), bt(d, n * (k + 1)), c0(d, m * (n + 5)) {
    std::uniform_real_distribution<double> u(-1, 1);
    std::uniform_int_distribution<int> ui(-int_range, int_range);
    auto fill = [&](Tensor& t) {
      for (size_t i = 0; i < t.val.size(); ++i) t.set(int64_t(i), int_range ? ui(rng) : u(rng));
    };
    fill(a);
    fill(bt);
    fill(c0);
  }
};

// Runs C (+)= A·B with the given plan and returns C's raw bytes.
std::vector<char> run(const GemmPlan& plan, const Problem& p, bool accumulate,
                      ThreadPool* pool = nullptr, bool prepack = false) {
  Tensor c = p.c0;
  DenseGemmA a(p.dt, p.a.raw.data(), p.lda);
  DenseGemmB b(p.dt, p.bt.raw.data(), p.ldb);
  GemmArgs args;
  args.M = p.M, args.N = p.N, args.K = p.K, args.a = &a, args.b = &b;
  args.c = c.raw.data(), args.ldc = p.ldc, args.c_dtype = p.dt, args.accumulate = accumulate;
  Buffer packed(gemm_packed_b_bytes(plan, p.N, p.K));
  if (prepack) {
    EXPECT_TRUE(gemm_pack_b(plan, p.N, p.K, b, packed.get(), pool).ok());
    args.packed_b = packed.get();
  }
  const int64_t ws = gemm_workspace_bytes(plan, p.N, p.K, p.dt, prepack);
  Buffer workspace(ws);
  Status s = gemm(plan, args, workspace.get(), ws, pool);
  EXPECT_TRUE(s.ok()) << s.message();
  return c.raw;
}

// Checks C against the double reference within the bound of a K-term f32/f64 sum plus the
// output rounding: |c - ref| <= (K + 2)·eps·sum|a·b| (+ |c0|) + eps_out·|ref|.
void expect_close(const Problem& p, const std::vector<char>& c_raw, bool accumulate,
                  const std::string& what) {
  const double eps = p.dt == DType::f64 ? 0x1p-53 : 0x1p-24;
  const double eps_out = p.dt == DType::f16 ? 0x1p-11 : p.dt == DType::bf16 ? 0x1p-8 : eps;
  int failures = 0;
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N + 5; ++n) {
      const int64_t ci = m * p.ldc + n;
      const double got = Tensor::read(p.dt, c_raw.data() + ci * dtype_size(p.dt));
      if (n >= p.N) {  // the padding between rows must be untouched
        if (std::memcmp(c_raw.data() + ci * dtype_size(p.dt), p.c0.at(ci), size_t(dtype_size(p.dt))))
          ++failures;
        continue;
      }
      double ref = accumulate ? p.c0.val[size_t(ci)] : 0, mag = std::fabs(ref);
      for (int64_t k = 0; k < p.K; ++k) {
        const double t = p.a.val[size_t(m * p.lda + k)] * p.bt.val[size_t(n * p.ldb + k)];
        ref += t;
        mag += std::fabs(t);
      }
      const double tol = double(p.K + 2) * eps * mag + eps_out * std::fabs(ref) + 1e-300;
      if (!(std::fabs(got - ref) <= tol) && ++failures <= 3)
        ADD_FAILURE() << what << " C[" << m << ", " << n << "] = " << got << ", expected " << ref
                      << " (tolerance " << tol << ")";
    }
  EXPECT_EQ(failures, 0) << what;
}

// Byte equality, reporting the first difference instead of both vectors.
::testing::AssertionResult same_bytes(const std::vector<char>& x, const std::vector<char>& y) {
  if (x.size() != y.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != y[i]) return ::testing::AssertionFailure() << "first difference at byte " << i;
  return ::testing::AssertionSuccess();
}

std::string describe(GemmIsa isa, DType dt, int64_t M, int64_t N, int64_t K) {
  return std::string(gemm_isa_name(isa)) + " " + std::string(dtype_name(dt)) + " M=" +
         std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
         " seed=" + std::to_string(fresh_seed());
}

TEST(Gemm, MatchesReferenceAtTileEdges) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas()) {
    const GemmTile t = gemm_tile(isa, DType::f32);
    for (int64_t M : {int64_t(1), t.mr - 1, t.mr, t.mr + 1, 2 * t.mr, 3 * t.mr + 1, int64_t(7),
                      int64_t(13), int64_t(97), int64_t(131)})
      for (int64_t N : {int64_t(1), t.nr - 1, t.nr, t.nr + 1, 2 * t.nr, 2 * t.nr + 3, int64_t(13),
                        int64_t(131)})
        for (int64_t K : {1, 7, 16, 131}) {
          if (M < 1 || N < 1) continue;
          Problem p(DType::f32, M, N, K, rng);
          const GemmPlan plan = gemm_plan(M, N, K, DType::f32, 1, isa);
          expect_close(p, run(plan, p, false), false, describe(isa, DType::f32, M, N, K));
        }
  }
}

TEST(Gemm, KAroundTheBlock) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f64}) {
      const int64_t kc = gemm_tile(isa, dt).kc_max;
      for (int64_t K : {kc - 1, kc, kc + 1, 2 * kc + 1, 3 * kc - 5}) {
        Problem p(dt, 31, 45, K, rng);
        const GemmPlan plan = gemm_plan(p.M, p.N, K, dt, 1, isa);
        EXPECT_EQ(plan.kc, gemm_kc(isa, dt, K));
        EXPECT_LE(plan.kc, kc);
        if (K > kc) EXPECT_EQ(plan.kc % plan.kg, 0) << "a K block must start on an A-panel group";
        expect_close(p, run(plan, p, false), false, describe(isa, dt, p.M, p.N, K));
      }
    }
}

TEST(Gemm, EveryDtypeOverwriteAndAccumulate) {
  std::mt19937_64 rng(fresh_seed());
  ThreadPool pool(2);
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::f64})
      for (bool accumulate : {false, true}) {
        const GemmTile t = gemm_tile(isa, compute_of(dt));
        Problem p(dt, 3 * t.mr + 2, 2 * t.nr + 5, t.kc_max + 45, rng);  // two K blocks
        const GemmPlan plan = gemm_plan(p.M, p.N, p.K, dt, 2, isa);
        const std::string what = describe(isa, dt, p.M, p.N, p.K) +
                                 (accumulate ? " accumulate" : " overwrite");
        expect_close(p, run(plan, p, accumulate, &pool), accumulate, what);
        expect_close(p, run(plan, p, accumulate, &pool, true), accumulate, what + " prepacked");
      }
}

// Conv-like shapes with the default plans on 2 threads: small N (A panels over all of K), and
// a B slice of 1.2 MB, which on cores with up to 2 MiB of L2 takes the other loop order (A
// panels per K block; ManySmallBlocks covers both orders on any machine).
TEST(Gemm, ConvShapedProblems) {
  std::mt19937_64 rng(fresh_seed());
  ThreadPool pool(2);
  struct Shape {
    int64_t M, N, K;
  };
  for (GemmIsa isa : supported_isas())
    for (Shape sh : {Shape{1000, 64, 576}, Shape{250, 300, 1000}})
      for (DType dt : {DType::f32, DType::bf16}) {
        Problem p(dt, sh.M, sh.N, sh.K, rng);
        const GemmPlan plan = gemm_plan(sh.M, sh.N, sh.K, dt, 2, isa);
        expect_close(p, run(plan, p, false, &pool), false,
                     describe(isa, dt, sh.M, sh.N, sh.K) + " " + gemm_plan_string(plan));
      }
}

// Blocks of a few tiles, so that one GEMM has many tasks over both M and N, with edges in
// both, in either loop order; the bits must match the default plan's.
TEST(Gemm, ManySmallBlocks) {
  std::mt19937_64 rng(fresh_seed());
  ThreadPool pool(2);
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::f64}) {
      const GemmTile t = gemm_tile(isa, compute_of(dt));
      Problem p(dt, 7 * t.mr + 3, 5 * t.nr + 1, t.kc_max + 3, rng);
      const GemmPlan plan = gemm_plan(p.M, p.N, p.K, dt, 2, isa);
      const std::string what = describe(isa, dt, p.M, p.N, p.K);
      for (bool whole_k : {false, true}) {
        GemmPlan small = plan;
        small.mc = 2 * t.mr;
        small.nc = t.nr;
        small.a_whole_k = whole_k;  // both loop orders
        for (bool accumulate : {false, true}) {
          const std::vector<char> c = run(small, p, accumulate, &pool);
          const std::string how = what + (whole_k ? " whole-K A panels" : " A panels per K block");
          expect_close(p, c, accumulate, how);
          EXPECT_TRUE(same_bytes(c, run(plan, p, accumulate, &pool))) << how << ": other bits";
        }
      }
    }
}

// A dense A that only packs: no direct(), so the kernels never read it in place.
class PackedOnlyA final : public GemmASource {
 public:
  PackedOnlyA(DType dt, const void* a, int64_t lda) : inner_(dt, a, lda) {}
  void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc, void* dst) const override {
    inner_.pack(plan, m0, mc, k0, kc, dst);
  }

 private:
  DenseGemmA inner_;
};

// Full f32 panels of a dense A are read in place by the kernels that can (no packing); the
// bits must be those of the packed kernels, in both loop orders, with partial panels and N
// tiles, several K blocks, accumulating or not.
TEST(Gemm, InPlaceAMatchesPackedBitwise) {
  std::mt19937_64 rng(fresh_seed());
  ThreadPool pool(2);
  for (GemmIsa isa : supported_isas()) {
    if (!gemm_kernels(isa).f32_gemm_rows) continue;
    const GemmTile t = gemm_tile(isa, DType::f32);
    Problem p(DType::f32, 9 * t.mr + 5, 3 * t.nr + 7, 2 * t.kc_max + 21, rng);
    const GemmPlan plan = gemm_plan(p.M, p.N, p.K, DType::f32, 2, isa);
    for (bool whole_k : {false, true})
      for (bool accumulate : {false, true}) {
        GemmPlan q = plan;
        q.mc = 3 * t.mr;
        q.a_whole_k = whole_k;
        const std::vector<char> in_place = run(q, p, accumulate, &pool);
        Tensor c = p.c0;
        PackedOnlyA a(DType::f32, p.a.raw.data(), p.lda);
        DenseGemmB b(DType::f32, p.bt.raw.data(), p.ldb);
        GemmArgs args;
        args.M = p.M, args.N = p.N, args.K = p.K, args.a = &a, args.b = &b;
        args.c = c.raw.data(), args.ldc = p.ldc, args.c_dtype = DType::f32, args.accumulate = accumulate;
        const int64_t ws = gemm_workspace_bytes(q, p.N, p.K, DType::f32, false);
        Buffer workspace(ws);
        ASSERT_TRUE(gemm(q, args, workspace.get(), ws, &pool).ok());
        const std::string what = describe(isa, DType::f32, p.M, p.N, p.K) + (whole_k ? " whole-K" : " per K block");
        expect_close(p, in_place, accumulate, what);
        EXPECT_TRUE(same_bytes(in_place, c.raw)) << what;
      }
  }
}

// Small integers: every product and partial sum is exact, so C must equal the reference bit
// for bit on every path and dtype (16-bit outputs stay below 256, exact in bf16 and f16).
TEST(Gemm, SmallIntegersAreExact) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::f64})
      for (bool accumulate : {false, true}) {
        const bool narrow = dt == DType::f16 || dt == DType::bf16;
        const int64_t K = narrow ? 60 : 1000;
        const int range = narrow ? 2 : 8;
        Problem p(dt, 37, 41, K, rng, range);
        const GemmPlan plan = gemm_plan(p.M, p.N, K, dt, 1, isa);
        const std::vector<char> c = run(plan, p, accumulate);
        int failures = 0;
        for (int64_t m = 0; m < p.M; ++m)
          for (int64_t n = 0; n < p.N; ++n) {
            double ref = accumulate ? p.c0.val[size_t(m * p.ldc + n)] : 0;
            for (int64_t k = 0; k < K; ++k)
              ref += p.a.val[size_t(m * p.lda + k)] * p.bt.val[size_t(n * p.ldb + k)];
            const double got = Tensor::read(dt, c.data() + (m * p.ldc + n) * dtype_size(dt));
            if (got != ref && ++failures <= 3)
              ADD_FAILURE() << describe(isa, dt, p.M, p.N, K) << " C[" << m << ", " << n
                            << "] = " << got << ", exactly " << ref;
          }
        EXPECT_EQ(failures, 0);
      }
}

// The determinism promise: C computed whole, in M pieces of odd sizes (each its own GEMM, as
// a tiled conv calls it), in N pieces, with B pre-packed, and on 1 or 2 threads has the same
// bytes.
TEST(Gemm, SameBitsWhateverTheSplitAndThreads) {
  std::mt19937_64 rng(fresh_seed());
  ThreadPool pool(2);
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
      const int64_t K = 2 * gemm_tile(isa, compute_of(dt)).kc_max + 37;  // three K blocks
      Problem p(dt, 211, 77, K, rng);
      const int64_t es = dtype_size(dt);
      const GemmPlan one = gemm_plan(p.M, p.N, K, dt, 1, isa);
      const GemmPlan two = gemm_plan(p.M, p.N, K, dt, 2, isa);
      const std::vector<char> whole = run(one, p, true);
      const std::string what = describe(isa, dt, p.M, p.N, K);
      EXPECT_TRUE(same_bytes(whole, run(two, p, true, &pool))) << what << " on 2 threads";
      EXPECT_TRUE(same_bytes(whole, run(two, p, true, &pool, true))) << what << " B pre-packed, 2 threads";
      EXPECT_TRUE(same_bytes(whole, run(one, p, true, nullptr, true))) << what << " B pre-packed";

      // M pieces: each piece a GEMM of its own over a shifted A and C, sharing one packed B,
      // with the whole problem's plan (as a conv reuses it) or a plan of the piece's own.
      for (bool own_plan : {false, true}) {
        Tensor c = p.c0;
        Buffer packed(gemm_packed_b_bytes(two, p.N, K));
        DenseGemmB b(dt, p.bt.raw.data(), p.ldb);
        ASSERT_TRUE(gemm_pack_b(two, p.N, K, b, packed.get(), &pool).ok());
        int64_t m0 = 0;
        for (int64_t piece : {1, 13, 29, 7, 45, 3}) {
          const int64_t mlen = std::min(piece, p.M - m0);
          const GemmPlan plan = own_plan ? gemm_plan(mlen, p.N, K, dt, 2, isa) : two;
          DenseGemmA a(dt, p.a.at(m0 * p.lda), p.lda);
          GemmArgs args;
          args.M = mlen, args.N = p.N, args.K = K, args.a = &a, args.packed_b = packed.get();
          args.c = c.at(m0 * p.ldc), args.ldc = p.ldc, args.c_dtype = dt, args.accumulate = true;
          const int64_t ws = gemm_workspace_bytes(plan, p.N, K, dt, true);
          Buffer workspace(ws);
          ASSERT_TRUE(gemm(plan, args, workspace.get(), ws, &pool).ok());
          m0 += mlen;
        }
        // The rest in one piece, on one thread without a pool.
        DenseGemmA a(dt, p.a.at(m0 * p.lda), p.lda);
        GemmArgs args;
        args.M = p.M - m0, args.N = p.N, args.K = K, args.a = &a, args.b = &b;
        args.c = c.at(m0 * p.ldc), args.ldc = p.ldc, args.c_dtype = dt, args.accumulate = true;
        const GemmPlan rest = gemm_plan(args.M, p.N, K, dt, 1, isa);
        const int64_t ws = gemm_workspace_bytes(rest, p.N, K, dt, false);
        Buffer workspace(ws);
        ASSERT_TRUE(gemm(rest, args, workspace.get(), ws, nullptr).ok());
        EXPECT_TRUE(same_bytes(whole, c.raw)) << what << " in M pieces" << (own_plan ? " (own plans)" : "");
      }

      // N pieces: columns [0, 5) and [5, N) as two GEMMs over shifted Bt and C.
      {
        Tensor c = p.c0;
        for (int64_t n0 : {int64_t(0), int64_t(5)}) {
          const int64_t nlen = n0 == 0 ? 5 : p.N - 5;
          DenseGemmA a(dt, p.a.raw.data(), p.lda);
          DenseGemmB b(dt, p.bt.at(n0 * p.ldb), p.ldb);
          GemmArgs args;
          args.M = p.M, args.N = nlen, args.K = K, args.a = &a, args.b = &b;
          args.c = c.at(n0), args.ldc = p.ldc, args.c_dtype = dt, args.accumulate = true;
          const GemmPlan plan = gemm_plan(p.M, nlen, K, dt, 2, isa);
          const int64_t ws = gemm_workspace_bytes(plan, nlen, K, dt, false);
          Buffer workspace(ws);
          ASSERT_TRUE(gemm(plan, args, workspace.get(), ws, &pool).ok());
        }
        EXPECT_TRUE(same_bytes(whole, c.raw)) << what << " in N pieces";
      }
    }
}

// gemm_pack_rows writes the documented layout, for the row pointers a conv source would pass:
// null rows, fewer rows than the panel, and a partial panel written at a k offset.
TEST(Gemm, PackRowsLayout) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
      const GemmPlan plan = gemm_plan(100, 100, 100, compute_of(dt), 1, isa);
      const int64_t pe = dtype_size(compute_of(dt));
      for (int64_t width : {plan.nr})
        for (int64_t kn : {1, 15, 16, 17, 40}) {
          Tensor src(dt, width * kn);
          for (int64_t i = 0; i < width * kn; ++i) src.set(i, double(rng() % 1000) - 500);
          const int64_t nrows = width - 1;
          std::vector<const void*> rows(static_cast<size_t>(width));
          for (int64_t r = 0; r < width; ++r) rows[size_t(r)] = r == 2 ? nullptr : src.at(r * kn);
          const int64_t off = 3;  // written at panel + off·width, as a segment of a panel
          std::vector<char> dst(size_t((kn + off) * width * pe), 0x55);
          gemm_pack_rows(plan, width, dt, rows.data(), nrows, kn, dst.data() + off * width * pe);
          int failures = 0;
          for (int64_t k = 0; k < kn + off; ++k)
            for (int64_t r = 0; r < width; ++r) {
              const char* d = dst.data() + (k * width + r) * pe;
              const double got = Tensor::read(compute_of(dt), d);
              if (k < off) {
                failures += d[0] != 0x55;
                continue;
              }
              const double want =
                  (r == 2 || r >= nrows) ? 0.0 : src.val[size_t(r * kn + k - off)];
              failures += got != want;
            }
          EXPECT_EQ(failures, 0) << gemm_isa_name(isa) << " " << dtype_name(dt)
                                 << " width=" << width << " kn=" << kn;
        }
    }
}

// gemm_pack_a_rows writes the grouped A-panel layout at any k offset (partial groups at both
// ends), with null rows and fewer rows than the panel, and writes nothing outside its range.
TEST(Gemm, PackARowsLayout) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
      const GemmPlan plan = gemm_plan(100, 100, 100, compute_of(dt), 1, isa);
      const int64_t pe = dtype_size(compute_of(dt)), mr = plan.mr, kg = plan.kg;
      for (int64_t k_off : {int64_t(0), int64_t(3), kg - 1, kg, kg + 5})
        for (int64_t kn : {int64_t(1), int64_t(15), int64_t(16), int64_t(17), int64_t(40), 2 * kg}) {
          const int64_t total = k_off + kn + 7;  // the panel's columns
          Tensor src(dt, mr * kn);
          for (int64_t i = 0; i < mr * kn; ++i) src.set(i, double(rng() % 1000) - 500);
          const int64_t nrows = mr - 1;
          std::vector<const void*> rows(static_cast<size_t>(mr));
          for (int64_t r = 0; r < mr; ++r) rows[size_t(r)] = r == 2 ? nullptr : src.at(r * kn);
          std::vector<char> dst(size_t(gemm_a_panel_elems(plan, total) * pe), 0x55);
          gemm_pack_a_rows(plan, dt, rows.data(), nrows, k_off, kn, dst.data());
          int failures = 0;
          for (int64_t k = 0; k < total; ++k)
            for (int64_t r = 0; r < mr; ++r) {
              const char* d = dst.data() + ((k / kg) * mr * kg + r * kg + k % kg) * pe;
              if (k < k_off || k >= k_off + kn) {
                failures += d[0] != 0x55;
                continue;
              }
              const double want = (r == 2 || r >= nrows) ? 0.0 : src.val[size_t(r * kn + k - k_off)];
              failures += Tensor::read(compute_of(dt), d) != want;
            }
          EXPECT_EQ(failures, 0) << gemm_isa_name(isa) << " " << dtype_name(dt) << " k_off=" << k_off
                                 << " kn=" << kn;
        }
    }
}

// A source that packs like an implicit im2col: each panel in two K segments, rows shifted by
// one pixel with a zero (padding) row first, through gemm_pack_rows.
class ShiftedSource final : public GemmASource {
 public:
  ShiftedSource(const float* a, int64_t lda) : a_(a), lda_(lda) {}
  void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            void* dst) const override {
    std::vector<const void*> rows(static_cast<size_t>(plan.mr));
    for (int64_t p = 0; p * plan.mr < mc; ++p) {
      float* panel = static_cast<float*>(dst) + p * gemm_a_panel_elems(plan, kc);
      const int64_t nrows = std::min(plan.mr, mc - p * plan.mr);
      const int64_t split = kc / 3;
      for (int64_t seg = 0; seg < 2; ++seg) {
        const int64_t ka = seg ? split : 0, kb = seg ? kc : split;
        for (int64_t r = 0; r < nrows; ++r) {
          const int64_t m = m0 + p * plan.mr + r;
          rows[size_t(r)] = m == 0 ? nullptr : a_ + (m - 1) * lda_ + k0 + ka;
        }
        gemm_pack_a_rows(plan, DType::f32, rows.data(), nrows, ka, kb - ka, panel);
      }
    }
  }

 private:
  const float* a_;
  int64_t lda_;
};

TEST(Gemm, CustomSourceLikeIm2col) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas()) {
    Problem p(DType::f32, 53, 40, 300, rng);
    // The expected result: the same GEMM over a dense A whose row 0 is zero and row m is row
    // m - 1 of p.a.
    Problem q = p;
    for (int64_t m = p.M - 1; m >= 0; --m)
      for (int64_t k = 0; k < p.lda; ++k) q.a.set(m * p.lda + k, m ? p.a.val[size_t((m - 1) * p.lda + k)] : 0.0);
    const GemmPlan plan = gemm_plan(p.M, p.N, p.K, DType::f32, 1, isa);
    const std::vector<char> want = run(plan, q, false);
    Tensor c = p.c0;
    ShiftedSource a(reinterpret_cast<const float*>(p.a.raw.data()), p.lda);
    DenseGemmB b(DType::f32, p.bt.raw.data(), p.ldb);
    GemmArgs args;
    args.M = p.M, args.N = p.N, args.K = p.K, args.a = &a, args.b = &b;
    args.c = c.raw.data(), args.ldc = p.ldc;
    const int64_t ws = gemm_workspace_bytes(plan, p.N, p.K, DType::f32, false);
    Buffer workspace(ws);
    ASSERT_TRUE(gemm(plan, args, workspace.get(), ws, nullptr).ok());
    EXPECT_TRUE(same_bytes(want, c.raw)) << gemm_isa_name(isa);
  }
}

TEST(Gemm, BGivenKMajor) {
  std::mt19937_64 rng(fresh_seed());
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f16, DType::f64}) {
      Problem p(dt, 20, 37, 50, rng);
      const GemmPlan plan = gemm_plan(p.M, p.N, p.K, dt, 1, isa);
      // B [K, N] row-major with row stride N + 2.
      const int64_t ldb = p.N + 2;
      Tensor bkn(dt, p.K * ldb);
      for (int64_t k = 0; k < p.K; ++k)
        for (int64_t n = 0; n < p.N; ++n) bkn.set(k * ldb + n, p.bt.val[size_t(n * p.ldb + k)]);
      Tensor c = p.c0;
      DenseGemmA a(dt, p.a.raw.data(), p.lda);
      DenseGemmB b(dt, bkn.raw.data(), ldb, /*k_major=*/true);
      GemmArgs args;
      args.M = p.M, args.N = p.N, args.K = p.K, args.a = &a, args.b = &b;
      args.c = c.raw.data(), args.ldc = p.ldc, args.c_dtype = dt;
      const int64_t ws = gemm_workspace_bytes(plan, p.N, p.K, dt, false);
      Buffer workspace(ws);
      ASSERT_TRUE(gemm(plan, args, workspace.get(), ws, nullptr).ok());
      EXPECT_TRUE(same_bytes(run(plan, p, false), c.raw)) << describe(isa, dt, p.M, p.N, p.K);
    }
}

TEST(Gemm, EmptySizes) {
  std::mt19937_64 rng(fresh_seed());
  for (bool accumulate : {false, true}) {
    Problem p(DType::f32, 5, 6, 0, rng);
    const GemmPlan plan = gemm_plan(5, 6, 0, DType::f32, 1, gemm_isa());
    const std::vector<char> c = run(plan, p, accumulate);
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n)
        EXPECT_EQ(Tensor::read(DType::f32, c.data() + (m * p.ldc + n) * 4),
                  accumulate ? p.c0.val[size_t(m * p.ldc + n)] : 0.0);
  }
  GemmPlan plan = gemm_plan(0, 0, 10, DType::f32, 1, gemm_isa());
  GemmArgs args;
  args.K = 10;
  EXPECT_TRUE(gemm(plan, args, nullptr, 0, nullptr).ok());
}

TEST(Gemm, RejectsBadArguments) {
  std::mt19937_64 rng(fresh_seed());
  Problem p(DType::f32, 20, 20, 500, rng);
  DenseGemmA a(DType::f32, p.a.raw.data(), p.lda);
  DenseGemmB b(DType::f32, p.bt.raw.data(), p.ldb);
  Tensor c = p.c0;
  GemmArgs args;
  args.M = p.M, args.N = p.N, args.K = p.K, args.a = &a, args.b = &b;
  args.c = c.raw.data(), args.ldc = p.ldc;
  const GemmPlan plan = gemm_plan(p.M, p.N, p.K, DType::f32, 1, gemm_isa());
  const int64_t ws = gemm_workspace_bytes(plan, p.N, p.K, DType::f32, false);
  Buffer workspace(ws);
  EXPECT_TRUE(gemm(plan, args, workspace.get(), ws, nullptr).ok());
  EXPECT_EQ(gemm(plan, args, workspace.get(), ws - 1, nullptr).kind(), ErrorKind::invalid);
  GemmPlan other_k = gemm_plan(p.M, p.N, 10 * p.K, DType::f32, 1, gemm_isa());  // kc of another K
  if (other_k.kc != plan.kc)
    EXPECT_EQ(gemm(other_k, args, workspace.get(), ws, nullptr).kind(), ErrorKind::invalid);
  GemmArgs f64_c = args;  // f64 C with an f32 plan
  f64_c.c_dtype = DType::f64;
  EXPECT_EQ(gemm(plan, f64_c, workspace.get(), ws, nullptr).kind(), ErrorKind::invalid);
  GemmArgs narrow = args;
  narrow.ldc = p.N - 1;
  EXPECT_EQ(gemm(plan, narrow, workspace.get(), ws, nullptr).kind(), ErrorKind::invalid);
  ThreadPool pool(2);
  EXPECT_EQ(gemm(plan, args, workspace.get(), ws, &pool).kind(), ErrorKind::invalid);
}

// gemm_check_plan is what gemm() and the conv algorithms check a plan they were handed with:
// the path must run here, the tile must be the path's, kc the path's for this K.
TEST(Gemm, CheckPlanNamesWhatIsWrong) {
  for (GemmIsa isa : supported_isas())
    for (DType dt : {DType::f32, DType::f64}) {
      const GemmPlan plan = gemm_plan(300, 70, 900, dt, 2, isa);
      EXPECT_TRUE(gemm_check_plan(plan, 900).ok()) << gemm_plan_string(plan);
      if (gemm_kc(isa, dt, 9000) != plan.kc)
        EXPECT_EQ(gemm_check_plan(plan, 9000).kind(), ErrorKind::invalid);
      GemmPlan wrong_tile = plan;
      wrong_tile.nr *= 2;
      EXPECT_EQ(gemm_check_plan(wrong_tile, 900).kind(), ErrorKind::invalid);
      GemmPlan no_threads = plan;
      no_threads.threads = 0;
      EXPECT_EQ(gemm_check_plan(no_threads, 900).kind(), ErrorKind::invalid);
    }
  // Not a CPU path at all.
  GemmPlan gpu = gemm_plan(300, 70, 900, DType::f32, 1, GemmIsa::generic);
  gpu.isa = Isa::sm_90;
  EXPECT_EQ(gemm_check_plan(gpu, 900).kind(), ErrorKind::unsupported);
}

TEST(Gemm, IsaSelection) {
  EXPECT_TRUE(gemm_isa_supported(GemmIsa::generic));
  EXPECT_TRUE(gemm_isa_supported(gemm_isa()));
  // CONVND_ISA can only lower the path.
  if (const char* env = std::getenv("CONVND_ISA"))
    for (GemmIsa isa : {GemmIsa::generic, GemmIsa::avx2, GemmIsa::avx512, GemmIsa::avx512_bf16, GemmIsa::amx})
      if (std::string(env) == gemm_isa_name(isa)) EXPECT_LE(int(gemm_isa()), int(isa));
  for (GemmIsa isa : supported_isas()) {
    const GemmPlan plan = gemm_plan(1000, 1000, 1000, DType::f32, 2, isa);
    EXPECT_EQ(plan.mc % plan.mr, 0);
    EXPECT_EQ(plan.nc % plan.nr, 0);
    EXPECT_NE(gemm_plan_string(plan).find(gemm_isa_name(isa)), std::string::npos);
  }
}

}  // namespace
}  // namespace convnd

namespace convnd {

// Each path's store of float accumulators to bf16 and f16 gives float_to_bf16's and
// float_to_half's bits (round to nearest even, quiet NaNs, overflow to infinity), whole vectors
// and tails, with and without adding to what is there.
TEST(Gemm, NarrowStoresRoundLikeTheScalarConversions) {
  std::vector<float> special = {0.0f, -0.0f, 1.0f, -1.5f, 1.00390625f, 1.01171875f, 1.0f + 0x1p-9f, 1.0f + 0x1p-8f + 0x1p-9f,
                                3.4e38f, -3.4e38f, 65504.0f, 65520.0f, 1e-40f, -1e-45f, 6e-8f, 3e-8f,
                                INFINITY, -INFINITY, NAN, -NAN};
  uint32_t snan_bits = 0x7f800001u, big_nan_bits = 0xffc12345u;
  float snan, big_nan;
  std::memcpy(&snan, &snan_bits, 4);
  std::memcpy(&big_nan, &big_nan_bits, 4);
  special.push_back(snan);
  special.push_back(big_nan);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  while (special.size() < 37) special.push_back(u(rng));  // 37: whole vectors and a tail on every path
  const int64_t n = int64_t(special.size());
  for (GemmIsa isa : {GemmIsa::generic, GemmIsa::avx2, GemmIsa::avx512, GemmIsa::avx512_bf16, GemmIsa::amx}) {
    if (!gemm_isa_supported(isa)) continue;
    for (DType dt : {DType::bf16, DType::f16})
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(std::string(gemm_isa_name(isa)) + (dt == DType::bf16 ? " bf16" : " f16") +
                     (accumulate ? " accumulate" : ""));
        std::vector<uint16_t> c(static_cast<size_t>(n)), want(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
          const float before = accumulate ? 0.25f * float(j % 5) : 0.0f;
          c[size_t(j)] = dt == DType::bf16 ? float_to_bf16(before) : float_to_half(before);
          const float prior = dt == DType::bf16 ? bf16_to_float(c[size_t(j)]) : half_to_float(c[size_t(j)]);
          const float v = accumulate ? special[size_t(j)] + prior : special[size_t(j)];
          want[size_t(j)] = dt == DType::bf16 ? float_to_bf16(v) : float_to_half(v);
        }
        gemm_kernels(isa).f32_store(special.data(), n, 1, n, dt, c.data(), n, accumulate);
        for (int64_t j = 0; j < n; ++j) {
          // A NaN stays a NaN (the f16 hardware conversion keeps another payload than the
          // software one); everything else bit for bit.
          const uint16_t exp_mask = dt == DType::bf16 ? 0x7f80u : 0x7c00u;
          const bool nan_kept = std::isnan(special[size_t(j)]) && (c[size_t(j)] & exp_mask) == exp_mask &&
                                (c[size_t(j)] & ~exp_mask & 0x7fffu) != 0;
          EXPECT_TRUE(nan_kept || c[size_t(j)] == want[size_t(j)])
              << "element " << j << " (" << special[size_t(j)] << "): " << std::hex << c[size_t(j)] << " want " << want[size_t(j)];
        }
      }
  }
}

}  // namespace convnd
