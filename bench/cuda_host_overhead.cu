// Host time per call of a tiny convolution on CUDA through the public C++ API, piece by piece:
// what a framework's per-layer call pays on the host before its kernels run. The problem
// (n=1 in=8x8 c=8 o=8 k=3x3 pad=1, f32) takes microseconds on the GPU, so back-to-back calls
// are bound by the host; each figure is the median of 7 rounds of `calls` calls (a round ends
// with one stream synchronisation), in microseconds per call.
//   nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude bench/cuda_host_overhead.cu build-cuda/libconvnd.a -ldl \
//     -o cuda_host_overhead && ./cuda_host_overhead [calls [f32|bf16 [algorithm]]]
// (the dtype defaults to f32; an algorithm name forces that algorithm instead of the planner's)
#include <convnd/convnd.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

cudaStream_t g_stream = nullptr;

template <class F>
double median_us(int calls, F&& f) {
  std::vector<double> rounds;
  for (int i = 0; i < 20; ++i) f();  // warm: caches, pools, lazy module loading
  cudaStreamSynchronize(g_stream);
  for (int r = 0; r < 7; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f();
    cudaStreamSynchronize(g_stream);
    auto t1 = std::chrono::steady_clock::now();
    rounds.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[3];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convnd;
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  DType dt = DType::f32;
  if (argc > 2 && !parse_dtype(argv[2], &dt)) {
    std::fprintf(stderr, "cuda_host_overhead: unknown dtype %s\n", argv[2]);
    return 2;
  }
  cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  const std::string text = std::string("n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dtype=") + std::string(dtype_name(dt));
  const Problem problem = parse_problem(text);
  const int64_t es = dtype_size(dt);
  Tensor x = Tensor::empty(dt, {1, 8, 8, 8}, 0, g_stream);
  Tensor w = Tensor::empty(dt, {8, 3, 3, 8}, 0, g_stream);
  Tensor y = Tensor::empty(dt, {1, 8, 8, 8}, 0, g_stream);
  cudaMemsetAsync(x.view().data, 0, size_t(8 * 8 * 8 * es), g_stream);
  cudaMemsetAsync(w.view().data, 0, size_t(8 * 9 * 8 * es), g_stream);
  ConvOptions copt;
  copt.padding = {1};
  ExecOptions sync_opt;
  sync_opt.backend = Backend::cuda;
  if (argc > 3) sync_opt.algorithm = argv[3];
  ExecOptions async_opt = sync_opt;
  async_opt.cuda_stream = g_stream;
  const Plan plan = make_plan(problem, async_opt);
  std::printf("problem: %s  algorithm: %s  workspace: %lld bytes\n", text.c_str(), plan.algorithm.c_str(),
              static_cast<long long>(plan.workspace_bytes));

  size_t f = 0, t = 0;
  int dev = 0;
  const double memget = median_us(calls, [&] { cudaMemGetInfo(&f, &t); });
  const double getdev = median_us(calls, [&] { cudaGetDevice(&dev); });
  const double sync_idle = median_us(calls, [&] { cudaStreamSynchronize(g_stream); });
  const double planning = median_us(calls, [&] { (void)make_plan(problem, async_opt); });
  const double checking = median_us(calls, [&] { check_memory(plan, Allocating::output); });
  const double alloc = median_us(calls, [&] { (void)Tensor::empty(dt, {1, 8, 8, 8}, 0, g_stream); });
  const double exec_async = median_us(calls, [&] { execute(plan, x.view(), w.view(), y.view(), async_opt); });
  const double exec_sync = median_us(calls, [&] { execute(plan, x.view(), w.view(), y.view(), sync_opt); });
  const double conv_async = median_us(calls, [&] { (void)conv2d(x, w, copt, async_opt); });
  const double conv_sync = median_us(calls, [&] { (void)conv2d(x, w, copt, sync_opt); });
  std::printf("cudaMemGetInfo                          %8.2f us\n", memget);
  std::printf("cudaGetDevice                           %8.2f us\n", getdev);
  std::printf("cudaStreamSynchronize (idle stream)     %8.2f us\n", sync_idle);
  std::printf("make_plan (cache hit)                   %8.2f us\n", planning);
  std::printf("check_memory                            %8.2f us\n", checking);
  std::printf("Tensor::empty on the stream             %8.2f us\n", alloc);
  std::printf("execute, on the caller's stream         %8.2f us\n", exec_async);
  std::printf("execute, synchronous                    %8.2f us\n", exec_sync);
  std::printf("conv2d, on the caller's stream          %8.2f us\n", conv_async);
  std::printf("conv2d, synchronous                     %8.2f us\n", conv_sync);
  return 0;
}
