// Side-by-side GEMM speed: convnd's GEMM engine against OpenBLAS (sgemm for f32, dgemm for f64;
// when built with -DCONVND_BENCH_OPENBLAS) on the same inputs in the same run.
// C[M, N] = A[M, K]·Bt[N, K]^T, row-major, which is how the conv algorithms call it.
//
//   gemm_bench [--dtype f32|f16|bf16|f64] [--isa auto|generic|avx2|avx512] [--threads 1,2]
//              [--min-time 0.3] [--rounds 3] [MxNxK ...]
//
// --isa picks the kernel path (default auto: the best this CPU runs, lowered by CONVND_ISA,
// as the CPU backend's plans get it).
// Each round times each library for at least min-time seconds; the best time over all rounds
// counts, and the libraries alternate so that other work on a shared machine hurts both alike.
// convnd is timed with B packed inside the call (like sgemm) and with B pre-packed once.
// Prints GFLOP/s; ratio = convnd / OpenBLAS speed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

#ifdef CONVND_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t M, N, K;
};

// Best time of repeated runs of fn, repeating for at least min_time seconds (and 3 runs).
template <class Fn>
double best_seconds(Fn&& fn, double min_time) {
  fn();  // warm up: page faults, thread start, caches
  double best = 1e30, total = 0;
  for (int rep = 0; rep < 3 || total < min_time; ++rep) {
    auto t0 = Clock::now();
    fn();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return out;
}

// Random values in [-1, 1] stored as dtype.
std::vector<char> random_values(convnd::DType dt, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<char> out(size_t(n * convnd::dtype_size(dt)));
  for (int64_t i = 0; i < n; ++i) {
    const float v = dist(rng);
    char* p = out.data() + i * convnd::dtype_size(dt);
    if (dt == convnd::DType::f32) {
      std::memcpy(p, &v, 4);
    } else if (dt == convnd::DType::f64) {
      const double d = v;
      std::memcpy(p, &d, 8);
    } else {
      const uint16_t h = dt == convnd::DType::f16 ? convnd::float_to_half(v) : convnd::float_to_bf16(v);
      std::memcpy(p, &h, 2);
    }
  }
  return out;
}

#ifdef CONVND_BENCH_OPENBLAS
// Lets OpenBLAS's spinning worker threads go idle so that they do not steal the cores.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }
#endif

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  double min_time = 0.3;
  int rounds = 3;
  convnd::DType dt = convnd::DType::f32;
  convnd::Isa isa = convnd::Isa::automatic;
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = parse_list(argv[++i]);
    } else if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc) {
      min_time = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc && convnd::parse_dtype(argv[i + 1], &dt)) {
      ++i;
    } else if (!std::strcmp(argv[i], "--isa") && i + 1 < argc && convnd::parse_isa(argv[i + 1], &isa)) {
      ++i;
    } else {
      Shape s{};
      if (std::sscanf(argv[i], "%ldx%ldx%ld", &s.M, &s.N, &s.K) != 3) {
        std::fprintf(stderr,
                     "usage: %s [--dtype f32|f16|bf16|f64] [--isa auto|generic|avx2|avx512] "
                     "[--threads 1,2] [--min-time s] [--rounds n] [MxNxK ...]\n",
                     argv[0]);
        return 2;
      }
      shapes.push_back(s);
    }
  }
  if (isa == convnd::Isa::automatic) isa = convnd::gemm_isa();
  if (!convnd::gemm_isa_supported(isa)) {
    std::fprintf(stderr, "this CPU cannot run the %s path (it has %s)\n", convnd::gemm_isa_name(isa),
                 convnd::gemm_isa_name(convnd::gemm_isa()));
    return 2;
  }
  if (shapes.empty())
    shapes = {{2048, 2048, 2048}, {25088, 64, 576}, {1568, 256, 2304}, {25088, 64, 256}};
  [[maybe_unused]] const bool blas = dt == convnd::DType::f32 || dt == convnd::DType::f64;
  const int64_t es = convnd::dtype_size(dt);

  std::printf("dtype=%s isa=%s (GFLOP/s)\n", std::string(convnd::dtype_name(dt)).c_str(),
              convnd::gemm_isa_name(isa));
  std::printf("%-18s %3s %10s %11s %10s %7s  %s\n", "MxNxK", "thr", "convnd", "prepackedB",
              "openblas", "ratio", "plan");
  std::mt19937 rng(1);
  for (const Shape& s : shapes) {
    const std::vector<char> A = random_values(dt, s.M * s.K, rng), Bt = random_values(dt, s.N * s.K, rng);
    std::vector<char> C(size_t(s.M * s.N * es)), Cref(C.size());
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    for (int t : threads) {
      convnd::ThreadPool pool(t);
      const convnd::GemmPlan plan = convnd::gemm_plan(s.M, s.N, s.K, dt, t, isa);
      convnd::DenseGemmA a(dt, A.data(), s.K);
      convnd::DenseGemmB b(dt, Bt.data(), s.K);
      const int64_t ws_bytes = convnd::gemm_workspace_bytes(plan, s.N, s.K, dt, false);
      const int64_t pb_bytes = convnd::gemm_packed_b_bytes(plan, s.N, s.K);
      void* ws = std::aligned_alloc(64, size_t(ws_bytes + 64));
      void* pb = std::aligned_alloc(64, size_t(pb_bytes + 64));
      convnd::GemmArgs args;
      args.M = s.M, args.N = s.N, args.K = s.K, args.a = &a, args.b = &b;
      args.c = C.data(), args.ldc = s.N, args.c_dtype = dt;
      convnd::throw_if_error(convnd::gemm_pack_b(plan, s.N, s.K, b, pb, &pool));
      convnd::GemmArgs pre = args;
      pre.packed_b = pb;
      double t_convnd = 1e30, t_pre = 1e30, t_blas = 0, max_err = 0;
      for (int round = 0; round < rounds; ++round) {
        t_convnd = std::min(t_convnd, best_seconds([&] {
          convnd::throw_if_error(convnd::gemm(plan, args, ws, ws_bytes, &pool));
        }, min_time));
        t_pre = std::min(t_pre, best_seconds([&] {
          convnd::throw_if_error(convnd::gemm(plan, pre, ws, ws_bytes, &pool));
        }, min_time));
#ifdef CONVND_BENCH_OPENBLAS
        if (!blas) continue;
        settle();
        openblas_set_num_threads(t);
        const double tb = best_seconds([&] {
          const int M = int(s.M), N = int(s.N), K = int(s.K);
          if (dt == convnd::DType::f32)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f,
                        reinterpret_cast<const float*>(A.data()), K,
                        reinterpret_cast<const float*>(Bt.data()), K, 0.f,
                        reinterpret_cast<float*>(Cref.data()), N);
          else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0,
                        reinterpret_cast<const double*>(A.data()), K,
                        reinterpret_cast<const double*>(Bt.data()), K, 0.0,
                        reinterpret_cast<double*>(Cref.data()), N);
        }, min_time);
        t_blas = round ? std::min(t_blas, tb) : tb;
        settle();
#endif
      }
      if (t_blas > 0)
        for (int64_t i = 0; i < s.M * s.N; ++i) {
          double x, y;
          if (dt == convnd::DType::f32) {
            x = reinterpret_cast<const float*>(C.data())[i];
            y = reinterpret_cast<const float*>(Cref.data())[i];
          } else {
            x = reinterpret_cast<const double*>(C.data())[i];
            y = reinterpret_cast<const double*>(Cref.data())[i];
          }
          max_err = std::max(max_err, std::fabs(x - y));
        }
      char name[64];
      std::snprintf(name, sizeof name, "%ldx%ldx%ld", s.M, s.N, s.K);
      std::printf("%-18s %3d %10.1f %11.1f %10.1f %7.3f  %s%s\n", name, t, flops / t_convnd * 1e-9,
                  flops / t_pre * 1e-9, t_blas > 0 ? flops / t_blas * 1e-9 : 0.0,
                  t_blas > 0 ? t_blas / t_convnd : 0.0, convnd::gemm_plan_string(plan).c_str(),
                  max_err > 1e-3 ? "  MISMATCH vs openblas" : "");
      std::fflush(stdout);
      std::free(ws);
      std::free(pb);
    }
  }
  return 0;
}
