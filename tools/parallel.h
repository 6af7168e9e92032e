// A parallel for of the CLI's own (input filling, checks against the oracle): plain threads
// that take tasks in order from a shared counter. The CLI uses the library's public API only,
// so it keeps this rather than reach for the library's internal thread pool.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace convnd::cli {

/// fn(task, thread) for task in [0, tasks), thread in [0, threads); returns when all are done.
/// The first exception a task throws is rethrown here (the other threads stop taking tasks).
template <class Fn>
void parallel_for(int64_t tasks, int threads, Fn&& fn) {
  const int n = int(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
  if (n <= 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto worker = [&](int thread) {
    for (;;) {
      const int64_t t = next.fetch_add(1);
      if (t >= tasks) return;
      try {
        fn(t, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(tasks);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(worker, i);
  worker(0);
  for (std::thread& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace convnd::cli
