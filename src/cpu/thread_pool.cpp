#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

namespace convnd {

namespace {

// The OpenMP runtime a framework brought into the process (PyTorch's libgomp, an Intel or LLVM
// runtime's GOMP entry points), found among the loaded objects; never loaded here.
//
// Why: a framework's OpenMP workers spin for milliseconds after each of its parallel ops
// (libgomp's default GOMP_SPINCOUNT), on the very cores a pool of our own then computes on.
// A convnd conv called right after a PyTorch op ran up to 3x slower on 2 cores
// (bench/py_vs_cli.py). Run on that team instead, the work finds its threads awake and leaves
// them so for the framework's next op. CONVND_CPU_POOL=own keeps convnd's own pool.
struct OpenMP {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;  // GOMP_parallel
  int (*thread_num)() = nullptr;                                            // omp_get_thread_num
  std::string name;
};

bool openmp_wanted() {
  static const bool wanted = [] {
    const char* v = std::getenv("CONVND_CPU_POOL");
    return !(v && std::string(v) == "own");
  }();
  return wanted;
}

int find_openmp(dl_phdr_info* info, size_t, void* out) {
  const std::string path = info->dlpi_name ? info->dlpi_name : "";
  const std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (base.rfind("libgomp", 0) != 0 && base.rfind("libiomp5", 0) != 0 && base.rfind("libomp", 0) != 0) return 0;
  void* h = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);  // a handle on what is loaded, nothing new
  if (!h) return 0;
  auto* o = static_cast<OpenMP*>(out);
  o->parallel = reinterpret_cast<decltype(o->parallel)>(dlsym(h, "GOMP_parallel"));
  o->thread_num = reinterpret_cast<decltype(o->thread_num)>(dlsym(h, "omp_get_thread_num"));
  if (o->parallel && o->thread_num) {
    o->name = base;
    return 1;  // found; the handle stays open (the runtime stays loaded while we use it)
  }
  *o = OpenMP();
  dlclose(h);
  return 0;
}

int count_loads(dl_phdr_info* info, size_t, void* out) {
  *static_cast<unsigned long long*>(out) = info->dlpi_adds;
  return 1;  // the counter is the same in every entry: the first one is enough
}

// The process-wide pool of ThreadPool::shared, and whether this process is a fork's child.
struct SharedPool {
  std::mutex mu;
  std::shared_ptr<ThreadPool> pool;
  bool forked_child = false;
};

// A fork's child has none of its parent's threads: a pool's workers, or an OpenMP team, that
// the parent started would never answer, and the child's first parallel call would wait
// forever (multiprocessing's fork start, a data loader's workers). So the child drops the
// parent's pool (leaked: its destructor would join threads that are not there) and makes
// pools of its own workers only: an OpenMP runtime's state after a fork is its own business
// (GNU libgomp's team does not survive one). The lock keeps a fork out of shared() itself.
SharedPool& shared_pool() {
  static SharedPool* s = [] {
    auto* made = new SharedPool;  // never destroyed: calls may run at exit
    pthread_atfork([] { shared_pool().mu.lock(); }, [] { shared_pool().mu.unlock(); },
                   [] {
                     SharedPool& c = shared_pool();
                     if (c.pool) new std::shared_ptr<ThreadPool>(std::move(c.pool));  // leaked on purpose
                     c.pool = nullptr;
                     c.forked_child = true;
                     c.mu.unlock();
                   });
    return made;
  }();
  return *s;
}

// The process's OpenMP runtime, or null. The objects are scanned again only when something was
// loaded since the last scan (glibc counts loads), so a call costs one step of the loader's list.
const OpenMP* process_openmp() {
  static std::mutex mu;
  static unsigned long long scanned = ~0ull;
  static OpenMP found;
  if (!openmp_wanted() || shared_pool().forked_child) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (found.parallel) return &found;
  unsigned long long loads = 0;
  dl_iterate_phdr(count_loads, &loads);
  if (loads != scanned) {
    scanned = loads;
    dl_iterate_phdr(find_openmp, &found);
  }
  return found.parallel ? &found : nullptr;
}

// A job: a task counter that every participant (the own pool's workers or an OpenMP team's
// members, and the caller) drains with fetch_add, so uneven tasks balance. The first
// exception stops the handing out and is kept for the caller. It lives on the caller's stack.
struct Job {
  const std::function<void(int64_t, int)>* fn;
  int64_t tasks;
  std::atomic<int64_t> next{0};
  std::mutex error_mu;
  std::exception_ptr error;

  Job(const std::function<void(int64_t, int)>* f, int64_t n) : fn(f), tasks(n) {}

  void drain(int thread) {
    for (;;) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks) return;
      try {
        (*fn)(t, thread);
      } catch (...) {  // nothing may leave a worker or an OpenMP region
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(tasks);  // stop handing out work
      }
    }
  }
};

}  // namespace

// Workers sleep on a condition variable between jobs.
struct ThreadPool::Impl {
  std::mutex one_job;  // one job at a time
  std::mutex mu;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  Job* job = nullptr;  // the current job (set with a new generation)
  std::atomic<uint64_t> generation{0};
  int active = 0;
  std::atomic<bool> stop{false};
  const OpenMP* openmp = nullptr;  // set: jobs run on the process's OpenMP team, no workers

  void worker(int thread) {
    uint64_t seen = 0;
    for (;;) {
      // Spin briefly before sleeping: convs issue short jobs back to back (a GEMM's B
      // packing, then blocks), and a condition-variable wake costs tens of microseconds.
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      for (int i = 0; generation.load(std::memory_order_acquire) == seen && !stop.load(std::memory_order_relaxed); ++i) {
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      Job* j;
      {
        std::unique_lock<std::mutex> lock(mu);
        wake.wait(lock, [&] { return stop.load() || generation.load() != seen; });
        if (stop) return;
        seen = generation.load();
        j = job;
      }
      j->drain(thread);
      std::lock_guard<std::mutex> lock(mu);
      if (--active == 0) done.notify_all();
    }
  }
};

ThreadPool::ThreadPool(int threads) : ThreadPool(threads, process_openmp()) {}

ThreadPool::ThreadPool(int threads, const void* openmp) : impl_(new Impl), threads_(threads < 1 ? 1 : threads) {
  impl_->openmp = static_cast<const OpenMP*>(openmp);
  if (impl_->openmp) return;
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
  Job job(&fn, tasks);
  if (s.openmp) {
    run_on_openmp(&job);
  } else {
    std::lock_guard<std::mutex> one_job(s.one_job);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.job = &job;
      s.active = int(s.workers.size());
      s.generation.fetch_add(1, std::memory_order_release);
    }
    s.wake.notify_all();
    job.drain(0);
    std::unique_lock<std::mutex> lock(s.mu);
    s.done.wait(lock, [&] { return s.active == 0; });
    s.job = nullptr;
  }
  if (job.error) std::rethrow_exception(job.error);
}

// The job on the OpenMP team of the calling thread, whose member 0 is the caller. Concurrent
// callers each have a team of their own in OpenMP, and their jobs their own stacks: no lock.
void ThreadPool::run_on_openmp(void* job) {
  struct Run {
    Job* job;
    int (*thread_num)();
  } run{static_cast<Job*>(job), impl_->openmp->thread_num};
  auto member = [](void* p) {
    const Run& r = *static_cast<const Run*>(p);
    r.job->drain(r.thread_num());
  };
  impl_->openmp->parallel(member, &run, unsigned(std::min<int64_t>(threads_, run.job->tasks)), 0);
}

const char* ThreadPool::runtime() const { return impl_->openmp ? impl_->openmp->name.c_str() : "own"; }

bool ThreadPool::parallel_for_reporting(int64_t tasks, const std::function<void(int64_t, int)>& fn,
                                        const std::function<bool(int64_t)>& report) {
  // One job, with the reports made by the caller (thread 0 in either runtime) between its own
  // tasks, at most every few milliseconds. Rounds of tasks with a report after each, as this
  // was, cost a wake-up and a wait for the slowest thread per round: on 16 threads a 1 ms
  // depthwise conv spent a fair share of itself in those barriers.
  std::atomic<int64_t> done{0};
  std::atomic<bool> stopped{false};
  auto last = std::chrono::steady_clock::now();
  parallel_for(tasks, [&](int64_t t, int thread) {
    if (stopped.load(std::memory_order_relaxed)) return;  // cancelled: the rest is skipped
    fn(t, thread);
    const int64_t finished = done.fetch_add(1, std::memory_order_relaxed) + 1;
    if (thread != 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(5)) return;
    last = now;
    if (!report(finished)) stopped.store(true, std::memory_order_relaxed);
  });
  if (stopped.load()) return false;
  return report(tasks);
}

std::shared_ptr<ThreadPool> ThreadPool::shared(int threads) {
  SharedPool& s = shared_pool();
  std::lock_guard<std::mutex> lock(s.mu);
  std::shared_ptr<ThreadPool>& pool = s.pool;
  // A pool made before a framework brought its OpenMP runtime in is replaced once it has.
  const OpenMP* openmp = process_openmp();
  if (!pool || pool->threads() != threads || pool->impl_->openmp != openmp)
    pool = std::shared_ptr<ThreadPool>(new ThreadPool(threads, openmp));
  return pool;
}

}  // namespace convnd
