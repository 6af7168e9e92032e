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

// An input (x, w or dy): from a .npy file, or seeded random numbers.
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

// Writes the result (y, dx or dw); a Ctrl-C that arrives before it is in place writes nothing
// (exit 130).
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

namespace {

// The file flag that gives each tensor (x, w, y) of a direction as an input, and its value.
const char* const kFlagOf[3] = {"--input", "--weight", "--dy"};

const std::string& file_of(const Options& o, int role) {
  return role == kRoleX ? o.input : role == kRoleW ? o.weight : o.dy;
}

// A file flag for the tensor the direction writes (or --dy in the forward) is a usage error,
// reported before anything is planned, read or written.
void check_file_flags(const Options& o, const Problem& p) {
  const int out = output_role(p.dir);
  if (file_of(o, out).empty()) return;
  std::string why;
  if (p.dir == Direction::fwd)
    why = "--dy applies to dir=bwd_d and dir=bwd_w problems only (the cotangent of y)";
  else
    why = std::string(kFlagOf[out]) + " does not apply to dir=" + std::string(direction_name(p.dir)) + ": " +
          (out == kRoleX ? "x is not read, dx is what it computes (--output writes it); its inputs are --weight and --dy"
                         : "w is not read, dw is what it computes (--output writes it); its inputs are --input and --dy");
  throw UsageError(with_problem(why, p));
}

}  // namespace

int run_command(const Options& o) {
  if (!o.file.empty()) throw UsageError("--file does not apply to 'run'");
  const Problem p = parse_problem(o.problem_text());
  set_current_problem(p);
  check_file_flags(o, p);
  ExecOptions exec = o.exec();
  const Plan plan = make_plan(p, exec);
  // The CLI allocates x, w and y itself: all of it must fit before anything is allocated.
  check_memory(plan, Allocating::all);
  const Shapes sh = shapes_of(p, plan.geometry);
  const Shape* shapes[3] = {&sh.x, &sh.w, &sh.y};
  const uint64_t streams[3] = {kStreamX, kStreamW, kStreamDy};
  const int out_role = output_role(p.dir);

  // Prepare the output first (its temporary file, or the stream it is): an unwritable or
  // refused target fails before a long run.
  OutputFile out;
  if (!o.output.empty())
    if (Status s = out.open(o.output, watch_temp_file); !s.ok())
      throw Error(s.kind(), with_problem(s.message(), p));

  // The two tensors the direction reads come from their files or are drawn at random; the
  // third is what execute() writes (y, or dx in x's place, or dw in w's place).
  Tensor t[3];
  for (int r = 0; r < 3; ++r) {
    if (r == out_role) {
      t[r] = Tensor::empty(p.dtype, *shapes[r]);
      continue;
    }
    const std::string what = role_description(p.dir, r, p.rank);
    t[r] = make_input(file_of(o, r), what.c_str(), p, *shapes[r], o.seed, streams[r], plan.threads);
  }

  double seconds;
  {
    Progress progress("convnd run");
    exec.progress = progress.callback();
    const auto t0 = std::chrono::steady_clock::now();
    execute(plan, t[kRoleX], t[kRoleW], t[kRoleY], exec);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!o.output.empty()) write_output(out, t[out_role], p);

  // With the result on standard output, the summary goes to stderr.
  std::FILE* info = out.is_stdout() ? stderr : stdout;
  const double gflops = 2.0 * plan.geometry.macs() / seconds / 1e9;
  const std::string dt(dtype_name(p.dtype));
  auto source = [&](const std::string& path) { return path.empty() ? "random (seed " + std::to_string(o.seed) + ")" : path; };
  const std::string dir(direction_name(p.dir));
  if (o.json) {
    // x_shape, w_shape, y_shape are the forward problem's (dy has y's shape, dx x's, dw w's);
    // a source for each tensor read, "computes" names the one written.
    std::string sources;
    for (int r = 0; r < 3; ++r)
      if (r != out_role) {
        const std::string& f = file_of(o, r);
        sources += ", \"" + std::string(role_name(p.dir, r)) + "_source\": " + json_string(f.empty() ? "random" : f);
      }
    std::fprintf(info,
        "{\"problem\": %s, \"dir\": \"%s\", \"dtype\": \"%s\", \"x_shape\": %s, \"w_shape\": %s, \"y_shape\": %s%s, "
        "\"computes\": \"%s\", \"seed\": %llu, \"output\": %s, \"backend\": \"%s\", "
        "\"algorithm\": %s, \"threads\": %d, \"workspace_bytes\": %lld, \"time_s\": %s, \"gflops\": %s}\n",
        json_string(to_string(p)).c_str(), dir.c_str(), dt.c_str(), json_shape(sh.x).c_str(), json_shape(sh.w).c_str(),
        json_shape(sh.y).c_str(), sources.c_str(), role_name(p.dir, out_role), static_cast<unsigned long long>(o.seed),
        o.output.empty() ? "null" : json_string(o.output).c_str(), std::string(backend_name(plan.backend)).c_str(),
        json_string(plan.algorithm).c_str(), plan.threads, static_cast<long long>(plan.workspace_bytes),
        json_number(seconds).c_str(), json_number(gflops).c_str());
  } else {
    std::fprintf(info, "problem:   %s\n", to_string(p).c_str());
    // The inputs in the order x, w, dy, then the output.
    for (int r = 0; r < 3; ++r) {
      if (r == out_role) continue;
      const std::string layout = r == kRoleX ? x_layout(p.rank) : r == kRoleW ? w_layout(p.rank) : y_layout(p.rank);
      const std::string label = std::string(role_name(p.dir, r)) + ":";
      std::fprintf(info, "%-10s %s %s %s, %s\n", label.c_str(), npy::shape_string(*shapes[r]).c_str(), dt.c_str(),
                   layout.c_str(), source(file_of(o, r)).c_str());
    }
    const std::string label = std::string(role_name(p.dir, out_role)) + ":";
    std::fprintf(info, "%-10s %s %s%s%s\n", label.c_str(), npy::shape_string(*shapes[out_role]).c_str(), dt.c_str(),
                 o.output.empty() ? "" : ", written to ", out.is_stdout() ? "standard output" : o.output.c_str());
    std::fprintf(info, "algorithm: %s (%s, %d thread%s, workspace %s)\n", plan.algorithm.c_str(),
                 std::string(backend_name(plan.backend)).c_str(), plan.threads, plan.threads == 1 ? "" : "s",
                 format_bytes(plan.workspace_bytes).c_str());
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
