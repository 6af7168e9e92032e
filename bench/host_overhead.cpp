// Host overhead of a tiny convolution through the public C++ API: the time of one call of
// conv2d (plan + execute, as a user calls it), of make_plan alone, and of execute() on a
// plan made once. The problem is so small (n=1 in=8x8 c=8 o=8 k=3x3 pad=1: 37 kFLOP) that
// nearly all of a call's time is planning, checking and dispatch.
//   build: bench/host_overhead.sh   run: build-bench/host_overhead [calls] [threads]
#include <convnd/convnd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

template <class F>
double median_us(int calls, F&& f) {
  std::vector<double> rounds;
  for (int r = 0; r < 7; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f();
    auto t1 = std::chrono::steady_clock::now();
    rounds.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[3];
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const char* text = "n=1 in=8x8 c=8 o=8 k=3x3 pad=1";
  convnd::Tensor x = convnd::Tensor::zeros(convnd::DType::f32, {1, 8, 8, 8});
  convnd::Tensor w = convnd::Tensor::zeros(convnd::DType::f32, {8, 3, 3, 8});
  convnd::Tensor y = convnd::Tensor::zeros(convnd::DType::f32, {1, 8, 8, 8});
  convnd::ConvOptions opt;
  opt.padding = {1};
  convnd::ExecOptions exec;
  exec.threads = threads;
  const convnd::Problem problem = convnd::parse_problem(text);

  const double conv = median_us(calls, [&] { convnd::conv2d(x, w, opt, exec); });
  const double plan = median_us(calls, [&] { convnd::make_plan(problem, exec); });
  const convnd::Plan p = convnd::make_plan(problem, exec);
  const double exe = median_us(calls, [&] { convnd::execute(p, x, w, y, exec); });
  std::printf("problem: %s  threads: %d  algorithm: %s\n", text, threads, p.algorithm.c_str());
  std::printf("conv2d (plan + execute): %8.2f us/call\n", conv);
  std::printf("make_plan:               %8.2f us/call\n", plan);
  std::printf("execute (planned once):  %8.2f us/call\n", exe);
  return 0;
}
