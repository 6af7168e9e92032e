#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace convnd {

// Workers sleep on a condition variable between jobs; a job is a task counter that every
// participant (workers and the caller) drains with fetch_add, so uneven tasks balance.
struct ThreadPool::Impl {
  std::mutex job;  // one job at a time
  std::mutex mu;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t tasks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<uint64_t> generation{0};
  int active = 0;
  std::atomic<bool> stop{false};
  std::exception_ptr error;

  void drain(int thread) {
    for (;;) {
      int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks) return;
      try {
        (*fn)(t, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next.store(tasks);  // stop handing out work
      }
    }
  }

  void worker(int thread) {
    uint64_t seen = 0;
    for (;;) {
      // Spin briefly before sleeping: convs issue many short jobs back to back (GEMM tiles,
      // progress chunks), and a condition-variable wake costs tens of microseconds.
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      for (int i = 0; generation.load(std::memory_order_acquire) == seen && !stop.load(std::memory_order_relaxed); ++i) {
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      {
        std::unique_lock<std::mutex> lock(mu);
        wake.wait(lock, [&] { return stop.load() || generation.load() != seen; });
        if (stop) return;
        seen = generation.load();
      }
      drain(thread);
      std::lock_guard<std::mutex> lock(mu);
      if (--active == 0) done.notify_all();
    }
  }
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl), threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < threads_; ++i) impl_->workers.emplace_back([this, i] { impl_->worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  for (auto& t : impl_->workers) t.join();
  delete impl_;
}

void ThreadPool::parallel_for(int64_t tasks, const std::function<void(int64_t, int)>& fn) {
  if (tasks <= 0) return;
  if (threads_ == 1 || tasks == 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  Impl& s = *impl_;
  std::lock_guard<std::mutex> one_job(s.job);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.fn = &fn;
    s.tasks = tasks;
    s.next.store(0);
    s.error = nullptr;
    s.active = int(s.workers.size());
    s.generation.fetch_add(1, std::memory_order_release);
  }
  s.wake.notify_all();
  s.drain(0);
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.done.wait(lock, [&] { return s.active == 0; });
    err = s.error;
    s.fn = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

bool ThreadPool::parallel_for_reporting(int64_t tasks, const std::function<void(int64_t, int)>& fn,
                                        const std::function<bool(int64_t)>& report) {
  int64_t round = 2 * int64_t(threads_);
  for (int64_t t0 = 0; t0 < tasks;) {
    const int64_t t1 = std::min(tasks, t0 + round);
    const auto start = std::chrono::steady_clock::now();
    parallel_for(t1 - t0, [&](int64_t t, int thread) { fn(t0 + t, thread); });
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(5)) round *= 2;
    t0 = t1;
    if (!report(t0)) return false;
  }
  return true;
}

std::shared_ptr<ThreadPool> ThreadPool::shared(int threads) {
  static std::mutex mu;
  static std::shared_ptr<ThreadPool> pool;
  std::lock_guard<std::mutex> lock(mu);
  if (!pool || pool->threads() != threads) pool = std::make_shared<ThreadPool>(threads);
  return pool;
}

}  // namespace convnd
