// convnd run and convnd plan.
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "npy.h"
#include "output_file.h"
#include "progress.h"
#include "random_fill.h"
#include "signals.h"

namespace convnd::cli {

namespace {

// x or w: from a .npy file, or seeded random numbers.
Tensor make_input(const std::string& path, const char* what, const Problem& p, const Shape& shape, uint64_t seed,
                  uint64_t stream, int threads) {
  if (!path.empty()) {
    Tensor t;
    Status s = npy::load(path, what, &p.dtype, &shape, &t);
    if (!s.ok()) throw Error(s.kind(), with_problem(s.message(), p));
    return t;
  }
  Tensor t = Tensor::empty(p.dtype, shape);
  fill_uniform(t, seed, stream, threads);
  return t;
}

// Writes y; a Ctrl-C that arrives before y is in place writes nothing (exit 130).
void write_output(OutputFile& out, const TensorView& y, const Problem& p) {
  auto check = [&](const Status& s) {
    if (!s.ok()) throw Error(s.kind(), with_problem(s.message(), p));
  };
  const Status stopped(ErrorKind::interrupted, "[run] interrupted; nothing was written to " + out.path());
  if (interrupted()) check(stopped);
  check(out.write(y, [] { return !interrupted(); }));
  if (out.mode() != OutputFile::Mode::replace) return;
  if (!begin_commit()) {
    out.abandon();
    check(stopped);
  }
  const Status s = out.publish();
  end_commit();  // a signal held back during the rename ends the process here
  check(s);
}

}  // namespace

int run_command(const Options& o) {
  if (!o.file.empty()) throw UsageError("--file does not apply to 'run'");
  const Problem p = parse_problem(o.problem_text());
  set_current_problem(p);
  ExecOptions exec = o.exec();
  const Plan plan = make_plan(p, exec);
  // The CLI allocates x, w and y itself: all of it must fit before anything is allocated.
  check_memory(plan, Allocating::all);
  const Shapes sh = shapes_of(p, plan.geometry);

  // Prepare the output first (its temporary file, or the stream it is): an unwritable or
  // refused target fails before a long run.
  OutputFile out;
  if (!o.output.empty())
    if (Status s = out.open(o.output, watch_temp_file); !s.ok())
      throw Error(s.kind(), with_problem(s.message(), p));

  const std::string x_what = "input x " + x_layout(p.rank), w_what = "weight w " + w_layout(p.rank);
  Tensor x = make_input(o.input, x_what.c_str(), p, sh.x, o.seed, kStreamX, plan.threads);
  Tensor w = make_input(o.weight, w_what.c_str(), p, sh.w, o.seed, kStreamW, plan.threads);
  Tensor y = Tensor::empty(p.dtype, sh.y);

  double seconds;
  {
    Progress progress("convnd run");
    exec.progress = progress.callback();
    const auto t0 = std::chrono::steady_clock::now();
    execute(plan, x, w, y, exec);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!o.output.empty()) write_output(out, y, p);

  // With y on standard output, the summary goes to stderr.
  std::FILE* info = out.is_stdout() ? stderr : stdout;
  const double gflops = 2.0 * plan.geometry.macs() / seconds / 1e9;
  const std::string dt(dtype_name(p.dtype));
  auto source = [&](const std::string& path) { return path.empty() ? "random (seed " + std::to_string(o.seed) + ")" : path; };
  if (o.json) {
    std::fprintf(info,
        "{\"problem\": %s, \"dtype\": \"%s\", \"x_shape\": %s, \"w_shape\": %s, \"y_shape\": %s, "
        "\"x_source\": %s, \"w_source\": %s, \"seed\": %llu, \"output\": %s, \"backend\": \"%s\", "
        "\"algorithm\": %s, \"threads\": %d, \"workspace_bytes\": %lld, \"time_s\": %s, \"gflops\": %s}\n",
        json_string(to_string(p)).c_str(), dt.c_str(), json_shape(sh.x).c_str(), json_shape(sh.w).c_str(),
        json_shape(sh.y).c_str(), json_string(o.input.empty() ? "random" : o.input).c_str(),
        json_string(o.weight.empty() ? "random" : o.weight).c_str(), static_cast<unsigned long long>(o.seed),
        o.output.empty() ? "null" : json_string(o.output).c_str(), std::string(backend_name(plan.backend)).c_str(),
        json_string(plan.algorithm).c_str(), plan.threads, static_cast<long long>(plan.workspace_bytes),
        json_number(seconds).c_str(), json_number(gflops).c_str());
  } else {
    std::fprintf(info, "problem:   %s\n", to_string(p).c_str());
    std::fprintf(info, "x:         %s %s %s, %s\n", npy::shape_string(sh.x).c_str(), dt.c_str(), x_layout(p.rank).c_str(),
                source(o.input).c_str());
    std::fprintf(info, "w:         %s %s %s, %s\n", npy::shape_string(sh.w).c_str(), dt.c_str(), w_layout(p.rank).c_str(),
                source(o.weight).c_str());
    std::fprintf(info, "y:         %s %s%s%s\n", npy::shape_string(sh.y).c_str(), dt.c_str(), o.output.empty() ? "" : ", written to ",
                out.is_stdout() ? "standard output" : o.output.c_str());
    std::fprintf(info, "algorithm: %s (%s, %d threads, workspace %s)\n", plan.algorithm.c_str(),
                std::string(backend_name(plan.backend)).c_str(), plan.threads, format_bytes(plan.workspace_bytes).c_str());
    std::fprintf(info, "time:      %s (%.3g GFLOP/s)\n", format_seconds(seconds).c_str(), gflops);
  }
  return kExitOk;
}

int plan_command(const Options& o) {
  if (!o.file.empty()) throw UsageError("--file does not apply to 'plan'");
  const Problem p = parse_problem(o.problem_text());
  set_current_problem(p);
  const Plan plan = make_plan(p, o.exec());
  if (o.json) std::printf("%s\n", plan.to_json().c_str());
  else std::fputs(plan.to_text().c_str(), stdout);
  return kExitOk;
}

}  // namespace convnd::cli
