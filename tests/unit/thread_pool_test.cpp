// The CPU thread pool on its own workers and on the process's OpenMP team (what a framework
// such as PyTorch loads): every task runs once, thread indices stay below the pool's size,
// an exception reaches the caller, and a conv's result is bitwise the same either way.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu/thread_pool.h"
#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

void check_pool(ThreadPool& pool) {
  const int64_t tasks = 1000;
  std::vector<std::atomic<int>> runs(tasks);
  std::atomic<int> bad_thread{0};
  pool.parallel_for(tasks, [&](int64_t t, int thread) {
    runs[size_t(t)].fetch_add(1);
    if (thread < 0 || thread >= pool.threads()) bad_thread.fetch_add(1);
  });
  for (int64_t t = 0; t < tasks; ++t) ASSERT_EQ(runs[size_t(t)].load(), 1) << "task " << t;
  EXPECT_EQ(bad_thread.load(), 0);
  EXPECT_THROW(pool.parallel_for(tasks,
                                 [&](int64_t t, int) {
                                   if (t == 517) throw std::runtime_error("task 517");
                                 }),
               std::runtime_error);
  // Still usable after the exception.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, [&](int64_t t, int) { sum.fetch_add(t); });
  EXPECT_EQ(sum.load(), 4950);
}

Tensor conv(const Case& c) {
  ExecOptions opt;
  opt.threads = 3;
  return run(c.problem, c.x, c.w, opt);
}

// Whether a fork's child computes `c` (3 threads) to the bits of `want`, within 30 s (a pool
// whose threads stayed in the parent would make it wait forever).
bool child_computes(const Case& c, const Tensor& want) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    const Tensor got = conv(c);
    _exit(std::memcmp(got.data(), want.data(), size_t(want.nbytes())) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST(ThreadPool, AForkedChildComputes) {
  Rng rng = test_rng();
  const Case a = make_case("n=2 in=23x19 c=40 o=24 k=3x3 pad=1 stride=2", rng);
  const Tensor want = conv(a);  // the parent's pool has started its threads
  EXPECT_TRUE(child_computes(a, want)) << "own pool";
  // The same after the parent ran on an OpenMP team.
  if (!dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL)) GTEST_SKIP() << "no libgomp.so.1 here: " << dlerror();
  const Tensor again = conv(a);
  EXPECT_EQ(std::memcmp(again.data(), want.data(), size_t(want.nbytes())), 0);
  EXPECT_TRUE(child_computes(a, want)) << ThreadPool::shared(3)->runtime();
}

TEST(ThreadPool, RunsOnTheProcessOpenMPTeamOnceLoaded) {
  Rng rng = test_rng();
  // A GEMM conv and a depthwise one, with more tasks than threads.
  const Case a = make_case("n=2 in=23x19 c=40 o=24 k=3x3 pad=1 stride=2", rng);
  const Case b = make_case("n=3 in=31x17 c=24 o=24 k=5x5 pad=2 g=24", rng);
  const bool loaded_before = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD) != nullptr;
  const char* env = std::getenv("CONVND_CPU_POOL");
  const bool own_only = env && std::string(env) == "own";
  if (!loaded_before) EXPECT_STREQ(ThreadPool::shared(3)->runtime(), "own");
  check_pool(*ThreadPool::shared(3));
  const Tensor ya = conv(a), yb = conv(b);

  if (!dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL)) GTEST_SKIP() << "no libgomp.so.1 here: " << dlerror();
  std::shared_ptr<ThreadPool> pool = ThreadPool::shared(3);
  if (own_only) {
    EXPECT_STREQ(pool->runtime(), "own");
  } else {
    EXPECT_EQ(std::string(pool->runtime()).rfind("libgomp", 0), 0u) << pool->runtime();
  }
  check_pool(*pool);
  const Tensor ya2 = conv(a), yb2 = conv(b);
  ASSERT_EQ(ya.nbytes(), ya2.nbytes());
  EXPECT_EQ(std::memcmp(ya.data(), ya2.data(), size_t(ya.nbytes())), 0);
  EXPECT_EQ(std::memcmp(yb.data(), yb2.data(), size_t(yb.nbytes())), 0);
}
