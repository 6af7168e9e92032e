// Side-by-side f32 GEMM speed: convnd's GEMM engine against OpenBLAS sgemm (when built with
// -DCONVND_BENCH_OPENBLAS), on the same inputs in the same run. C[M, N] = A[M, K]·Bt[N, K]^T,
// row-major, which is how the conv algorithms call it. Prints GFLOP/s (best of the repeats).
//
//   gemm_bench [--threads 1,2] [--min-time 0.5] [MxNxK ...]
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
extern "C" void openblas_set_num_threads(int);
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

// Lets the other library's worker threads go idle so they do not steal the 2 cores.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  double min_time = 0.5;
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = parse_list(argv[++i]);
    } else if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc) {
      min_time = std::atof(argv[++i]);
    } else {
      Shape s{};
      if (std::sscanf(argv[i], "%ldx%ldx%ld", &s.M, &s.N, &s.K) != 3) {
        std::fprintf(stderr, "usage: %s [--threads 1,2] [--min-time s] [MxNxK ...]\n", argv[0]);
        return 2;
      }
      shapes.push_back(s);
    }
  }
  if (shapes.empty())
    shapes = {{2048, 2048, 2048}, {25088, 64, 576}, {1568, 256, 2304}, {25088, 64, 256}};

  std::printf("isa=%s\n", convnd::gemm_isa_name(convnd::gemm_isa()));
  std::printf("%-18s %3s %12s %12s %12s %8s  %s\n", "MxNxK", "thr", "convnd", "prepackedB",
              "openblas", "ratio", "plan");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Shape& s : shapes) {
    std::vector<float> A(size_t(s.M * s.K)), Bt(size_t(s.N * s.K)), C(size_t(s.M * s.N)),
        Cref(size_t(s.M * s.N));
    for (float& x : A) x = dist(rng);
    for (float& x : Bt) x = dist(rng);
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    for (int t : threads) {
      convnd::ThreadPool pool(t);
      const convnd::GemmPlan plan = convnd::gemm_plan(s.M, s.N, s.K, convnd::DType::f32, t);
      convnd::DenseGemmA a(convnd::DType::f32, A.data(), s.K);
      convnd::DenseGemmB b(convnd::DType::f32, Bt.data(), s.K);
      const int64_t ws_bytes = convnd::gemm_workspace_bytes(plan, s.N, s.K, convnd::DType::f32, false);
      const int64_t pb_bytes = convnd::gemm_packed_b_bytes(plan, s.N, s.K);
      float* ws = static_cast<float*>(std::aligned_alloc(64, size_t(ws_bytes + 64)));
      float* pb = static_cast<float*>(std::aligned_alloc(64, size_t(pb_bytes + 64)));
      convnd::GemmArgs args;
      args.M = s.M, args.N = s.N, args.K = s.K, args.a = &a, args.b = &b;
      args.c = C.data(), args.ldc = s.N;
      double t_convnd = best_seconds([&] {
        convnd::Status st = convnd::gemm(plan, args, ws, ws_bytes, &pool);
        if (!st.ok()) { std::fprintf(stderr, "%s\n", st.message().c_str()); std::exit(1); }
      }, min_time);
      convnd::throw_if_error(convnd::gemm_pack_b(plan, s.N, s.K, b, pb, &pool));
      convnd::GemmArgs pre = args;
      pre.packed_b = pb;
      double t_pre = best_seconds([&] { (void)convnd::gemm(plan, pre, ws, ws_bytes, &pool); }, min_time);
      double t_blas = 0, max_err = 0;
#ifdef CONVND_BENCH_OPENBLAS
      settle();
      openblas_set_num_threads(t);
      t_blas = best_seconds([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.M), int(s.N), int(s.K), 1.f,
                    A.data(), int(s.K), Bt.data(), int(s.K), 0.f, Cref.data(), int(s.N));
      }, min_time);
      for (size_t i = 0; i < C.size(); ++i)
        max_err = std::max(max_err, double(std::fabs(C[i] - Cref[i])));
      settle();
#endif
      char name[64];
      std::snprintf(name, sizeof name, "%ldx%ldx%ld", s.M, s.N, s.K);
      std::printf("%-18s %3d %12.1f %12.1f %12.1f %8.3f  %s%s\n", name, t, flops / t_convnd * 1e-9,
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
