// A small persistent thread pool. parallel_for hands out task indices dynamically; callers
// make each task own a fixed piece of the output, so results never depend on which thread
// ran what (bitwise identical for any thread count).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

namespace convnd {

class ThreadPool {
 public:
  /// threads >= 1 (the caller's thread counts as one).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  /// Runs fn(task, thread) for task in [0, tasks), thread in [0, threads()). Blocks until all
  /// tasks are done. Exceptions in fn are caught and rethrown on the caller's thread.
  /// Concurrent callers are served one job at a time. Not re-entrant: fn must not call
  /// parallel_for on the same pool.
  void parallel_for(int64_t tasks, const std::function<void(int64_t task, int thread)>& fn);

  /// parallel_for with progress: report(tasks_done) is called on the caller's thread between
  /// its own tasks, at most every ~5 ms, and once at the end with `tasks`; a report that
  /// returns false stops the run (the tasks not yet started are skipped, and this returns
  /// false).
  bool parallel_for_reporting(int64_t tasks, const std::function<void(int64_t task, int thread)>& fn,
                              const std::function<bool(int64_t done)>& report);

  /// A process-wide pool of the given size (created on first use, replaced when asked for
  /// another size; holders of the old one keep it alive).
  static std::shared_ptr<ThreadPool> shared(int threads);

  /// Where the jobs run: "own" (this pool's workers) or the file name of the process's OpenMP
  /// runtime ("libgomp.so.1"): when a framework has loaded one (PyTorch does), a pool runs on
  /// its team instead of starting workers of its own, unless CONVND_CPU_POOL=own.
  const char* runtime() const;

 private:
  ThreadPool(int threads, const void* openmp);
  void run_on_openmp(void* job);  // a Job of thread_pool.cpp

  struct Impl;
  Impl* impl_;
  int threads_;
};

}  // namespace convnd
