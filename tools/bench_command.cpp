// convnd bench: median time of execute() on random inputs, with the figures derived from it.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <vector>

#include "cli.h"
#include "progress.h"

namespace convnd::cli {

namespace {

int64_t peak_rss_bytes() {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return int64_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

void bench_one(const Problem& p, const Options& o) {
  set_current_problem(p);
  ExecOptions exec = o.exec();
  const Plan plan = make_plan(p, exec);
  // The CLI allocates x, w and y itself: all of it must fit before anything is allocated.
  check_memory(plan, Allocating::all);
  const Geometry& g = plan.geometry;
  const Shapes sh = shapes_of(p, g);
  Tensor x = Tensor::empty(p.dtype, sh.x), w = Tensor::empty(p.dtype, sh.w), y = Tensor::empty(p.dtype, sh.y);
  // The two tensors the direction reads (x and w; w and dy; x and dy); execute() writes the third.
  fill_inputs(p.dir, x, w, y, o.seed, plan.threads);

  std::vector<double> times;
  {
    Progress progress("convnd bench");
    // Warm-up: at least one run, and more until 0.2 s have passed (at most 1000), so that a
    // short problem is timed with its caches, allocator and thread pool warm, as a caller
    // running it repeatedly would see it; then o.reps timed runs.
    // Progress counts the first warm-up run as one run (a long problem has only that one).
    const int runs = o.reps + 1;
    double warm = 0;
    for (int r = 0; r < 1000 && (r == 0 || warm < 0.2); ++r) {
      exec.progress = [&, r](double f) { return r > 0 || progress.update(f / runs); };
      const auto t0 = std::chrono::steady_clock::now();
      execute(plan, x, w, y, exec);
      warm += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    for (int r = 0; r < o.reps; ++r) {
      exec.progress = [&, r](double f) { return progress.update((r + 1 + f) / runs); };
      const auto t0 = std::chrono::steady_clock::now();
      execute(plan, x, w, y, exec);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  const double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  // The gradients do the forward's multiply-adds and move the same three tensors (two read,
  // one written), so the figures mean the same in every direction.
  const double gflops = 2.0 * g.macs() / median / 1e9;
  const double bytes = double(g.x_elems() + g.w_elems() + g.y_elems()) * double(dtype_size(g.dtype));
  const double gbps = bytes / median / 1e9;
  const int64_t rss = peak_rss_bytes();
  if (o.json) {
    std::printf(
        "{\"problem\": %s, \"backend\": \"%s\", \"algorithm\": %s, \"threads\": %d, \"reps\": %d, \"median_s\": %s, "
        "\"min_s\": %s, \"gflops\": %s, \"gbps\": %s, \"workspace_bytes\": %lld, \"peak_rss_bytes\": %lld}\n",
        json_string(to_string(p)).c_str(), std::string(backend_name(plan.backend)).c_str(),
        json_string(plan.algorithm).c_str(), plan.threads, o.reps, json_number(median).c_str(),
        json_number(times.front()).c_str(), json_number(gflops).c_str(), json_number(gbps).c_str(),
        static_cast<long long>(plan.workspace_bytes), static_cast<long long>(rss));
  } else {
    std::printf("%s | algorithm=%s median=%s min=%s reps=%d %.4g GFLOP/s %.4g GB/s workspace=%s peak_rss=%s\n",
                to_string(p).c_str(), plan.algorithm.c_str(), format_seconds(median).c_str(),
                format_seconds(times.front()).c_str(), o.reps, gflops, gbps,
                format_bytes(plan.workspace_bytes).c_str(), format_bytes(rss).c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int bench_command(const Options& o) {
  if (o.file.empty()) {
    bench_one(parse_problem(o.problem_text()), o);
    return kExitOk;
  }
  std::ifstream in(o.file);
  if (!in) throw Error(ErrorKind::invalid, "[bench] cannot open the list '" + o.file + "': " + std::strerror(errno));
  // Keep going past a problem that fails; exit with the first failure's code.
  int code = kExitOk;
  std::string line;
  while (std::getline(in, line)) {
    std::string text = line.substr(0, line.find('#'));
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    try {
      bench_one(parse_problem(text), o);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::interrupted) throw;
      print_error(e.what());
      if (e.kind() != ErrorKind::unsupported && code == kExitOk) code = exit_code_for(e.kind());
    } catch (const std::bad_alloc&) {
      print_error("[bench] out of memory" + current_problem_suffix());
      if (code == kExitOk) code = kExitOutOfMemory;
    }
  }
  return code;
}

}  // namespace convnd::cli
