// convnd check: the planner's result against the oracle, in full or on a sample.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <vector>

#include "check_samples.h"
#include "cli.h"
#include "parallel.h"
#include "progress.h"
#include "random_fill.h"
#include "tolerance.h"

namespace convnd::cli {

namespace {

// Oracle work (see oracle_work) under which every element is compared by default.
constexpr double kFullCheckWork = 5e7;
// Elements compared per parallel task.
constexpr int64_t kCompareChunk = 1024;

struct Worst {
  double ratio = 0;
  double abs_err = 0;
  int64_t index = -1;  // linear index into y
  double got = 0, want = 0;
};

struct Outcome {
  bool pass = true;
  std::string algorithm;
  double seconds = 0;
  bool full = true;
  int64_t checked = 0;
  SampleSet samples;  // sampled mode
  Worst worst;
};

double load(const TensorView& t, int64_t i) {
  return load_as_double(static_cast<const char*>(t.data) + i * dtype_size(t.dtype), t.dtype);
}

// Compares `count` elements of the result `out`, the i-th being out[index_of(i)], with the
// oracle's want(linear index) (a PointValue).
template <class IndexOf, class Want>
Worst compare(const TensorView& out, int64_t count, IndexOf index_of, Want want_of, bool tf32, int threads,
              Progress& progress) {
  threads = std::max(1, threads);
  std::vector<Worst> per_thread(static_cast<size_t>(threads));
  const int64_t tasks = (count + kCompareChunk - 1) / kCompareChunk;
  const int64_t group = std::max<int64_t>(1, tasks / 64);  // tasks between progress reports
  for (int64_t t0 = 0; t0 < tasks; t0 += group) {
    const int64_t t1 = std::min(tasks, t0 + group);
    parallel_for(t1 - t0, threads, [&](int64_t task, int thread) {
      Worst& wt = per_thread[size_t(thread)];
      const int64_t b = (t0 + task) * kCompareChunk, e = std::min(count, b + kCompareChunk);
      for (int64_t i = b; i < e; ++i) {
        const int64_t lin = index_of(i);
        const PointValue want = want_of(lin);
        const double got = load(out, lin);
        const double ratio = error_ratio(out.dtype, got, want, tf32);
        const double abs_err = std::fabs(got - want.value);
        if (std::isfinite(abs_err) && abs_err > wt.abs_err) wt.abs_err = abs_err;
        if (wt.index < 0 || !(ratio <= wt.ratio)) {  // NaN counts as worst
          wt.ratio = std::isnan(ratio) ? INFINITY : ratio;
          wt.index = lin;
          wt.got = got;
          wt.want = want.value;
        }
      }
    });
    if (!progress.update(double(t1) / double(tasks))) throw Error(ErrorKind::interrupted, "[check] interrupted");
  }
  Worst r;
  for (const Worst& wt : per_thread) {
    r.abs_err = std::max(r.abs_err, wt.abs_err);
    if (wt.index >= 0 && (r.index < 0 || wt.ratio > r.ratio)) {
      double keep = r.abs_err;
      r = wt;
      r.abs_err = keep;
    }
  }
  return r;
}

// A float64 copy of a dense tensor, with every element's magnitude when `absolute`.
Tensor as_f64(const TensorView& t, bool absolute) {
  Tensor r = Tensor::empty(DType::f64, t.shape);
  double* d = static_cast<double*>(r.data());
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) d[i] = absolute ? std::fabs(load(t, i)) : load(t, i);
  return r;
}

// The full gradient oracle (reference_conv_backward_data/weight) in float64, twice: on the
// inputs for the exact values, and on their magnitudes for each element's sum of |terms| (the
// scale of the tolerance, as reference_point's abssum). Single-threaded: small problems only.
struct FullOracle {
  Tensor value, abssum;  // float64, the result's shape
};

FullOracle gradient_oracle(const Geometry& g, const TensorView& x, const TensorView& w, const TensorView& y,
                           const Shape& out_shape) {
  Geometry g64 = g;
  g64.dtype = DType::f64;
  FullOracle r{Tensor::empty(DType::f64, out_shape), Tensor::empty(DType::f64, out_shape)};
  for (bool absolute : {false, true}) {
    Tensor& dst = absolute ? r.abssum : r.value;
    const Tensor dy = as_f64(y, absolute);
    if (g.dir == Direction::bwd_d) reference_conv_backward_data(g64, dy, as_f64(w, absolute), dst);
    else reference_conv_backward_weight(g64, as_f64(x, absolute), dy, dst);
  }
  return r;
}

// CONVND_CHECK_CORRUPT=i adds 1 to y's element i (negative: from the end) after the run, so
// that the tests can see check catch a wrong result. Not for anything else.
void corrupt_for_testing(const TensorView& y) {  // y: the result (y, dx or dw)
  const char* env = std::getenv("CONVND_CHECK_CORRUPT");
  if (!env || !*env) return;
  int64_t i = std::strtoll(env, nullptr, 10);
  const int64_t n = y.numel();
  i = ((i % n) + n) % n;
  const double v = load(y, i) + 1.0;
  char* p = static_cast<char*>(y.data) + i * dtype_size(y.dtype);
  switch (y.dtype) {
    case DType::f32: { float f = float(v); std::memcpy(p, &f, 4); break; }
    case DType::f64: std::memcpy(p, &v, 8); break;
    case DType::f16: { uint16_t h = float_to_half(float(v)); std::memcpy(p, &h, 2); break; }
    case DType::bf16: { uint16_t h = float_to_bf16(float(v)); std::memcpy(p, &h, 2); break; }
  }
}

Outcome check_problem(const Problem& p, const Options& o, uint64_t seed) {
  ExecOptions exec = o.exec();
  const Plan plan = make_plan(p, exec);
  // The CLI allocates x, w and y itself: all of it must fit before anything is allocated.
  check_memory(plan, Allocating::all);
  const Geometry& g = plan.geometry;
  // A plan that multiplies float32 as TF32 is held to TF32's tolerance.
  const bool tf32 = plan.uses_tf32();
  const Shapes sh = shapes_of(p, g);
  Tensor x = Tensor::empty(p.dtype, sh.x), w = Tensor::empty(p.dtype, sh.w), y = Tensor::empty(p.dtype, sh.y);
  // The two tensors the direction reads are random; the one it writes (y, or dx in x's place,
  // or dw in w's place) is filled with NaN, so that an element the library never writes fails.
  fill_inputs(p.dir, x, w, y, seed, plan.threads);
  const int out_role = output_role(p.dir);
  Tensor& out = out_role == kRoleX ? x : out_role == kRoleW ? w : y;
  const Shape& out_shape = out_role == kRoleX ? sh.x : out_role == kRoleW ? sh.w : sh.y;
  fill_nan(out, plan.threads);

  Outcome r;
  r.algorithm = plan.algorithm;
  {
    Progress progress("convnd check: run");
    exec.progress = progress.callback();
    const auto t0 = std::chrono::steady_clock::now();
    execute(plan, x, w, y, exec);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  corrupt_for_testing(out);

  const ResultSpace space = result_space(g);
  const bool small = oracle_work(g) < kFullCheckWork;
  r.full = o.full || (o.samples < 0 && small);
  // The oracle of one element, by its linear index into the result.
  auto point = [&](int64_t lin) -> PointValue {
    const OutputIndex c = decompose(space, lin);
    switch (p.dir) {
      case Direction::bwd_d: return gradient_point_dx(g, w, y, c);
      case Direction::bwd_w: return gradient_point_dw(g, x, y, c);
      default: return reference_point(g, x, w, c.n, c.p, c.oc);
    }
  };
  Progress progress("convnd check: compare");
  if (r.full) {
    r.checked = space.elems();
    auto all = [](int64_t i) { return i; };
    if (p.dir != Direction::fwd && small) {
      // Small gradients: the library's own gradient oracles, on the whole result.
      const FullOracle full = gradient_oracle(g, x, w, y, out_shape);
      const double* v = static_cast<const double*>(full.value.data());
      const double* a = static_cast<const double*>(full.abssum.data());
      const auto exact = [v, a](int64_t i) { return PointValue{v[i], a[i], 0}; };
      r.worst = compare(out, r.checked, all, exact, tf32, plan.threads, progress);
    } else {
      // The forward, and gradients too large for the single-threaded full oracles (--full):
      // element by element, in parallel.
      r.worst = compare(out, r.checked, all, point, tf32, plan.threads, progress);
    }
  } else {
    r.samples = choose_samples(space, o.samples, seed);
    if (o.whole_batch_given) {
      // Every element of one entry (a batch entry; an output channel of dw), e.g. the last,
      // whose offsets are the largest.
      const int64_t b = o.whole_batch < 0 ? space.b + o.whole_batch : o.whole_batch;
      if (b < 0 || b >= space.b)
        throw UsageError("--whole-batch " + std::to_string(o.whole_batch) + " is outside the " +
                         (p.dir == Direction::bwd_w ? "output channels of dw, " : "batch of ") +
                         std::to_string(space.b));
      const int64_t per = space.elems() / space.b;
      std::vector<int64_t>& idx = r.samples.index;
      const size_t before = idx.size();
      idx.resize(before + size_t(per));
      for (int64_t i = 0; i < per; ++i) idx[before + size_t(i)] = b * per + i;
      std::sort(idx.begin(), idx.end());
      idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
    }
    r.checked = int64_t(r.samples.index.size());
    const int64_t* idx = r.samples.index.data();
    r.worst = compare(out, r.checked, [idx](int64_t i) { return idx[i]; }, point, tf32, plan.threads, progress);
  }
  r.pass = r.worst.ratio <= 1.0;
  return r;
}

// The element's name in the problem's own coordinates: y[n, p..., o], dx[n, i..., c] or
// dw[o, k..., c].
std::string coords(const Problem& p, const Geometry& g, int64_t lin) {
  const OutputIndex c = decompose(result_space(g), lin);
  std::string s = std::string(role_name(p.dir, output_role(p.dir))) + "[" + std::to_string(c.n);
  for (int j = 3 - p.rank; j < 3; ++j) s += "," + std::to_string(c.p[j]);
  return s + "," + std::to_string(c.oc) + "]";
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void print_outcome(const Problem& p, const Outcome& r, uint64_t seed, bool json) {
  const Geometry g = lower(p);
  const std::string mode = r.full ? "full" : "sampled";
  if (json) {
    std::string s = "{\"result\": \"" + std::string(r.pass ? "PASS" : "FAIL") + "\", \"problem\": " +
                    json_string(to_string(p)) + ", \"algorithm\": " + json_string(r.algorithm) +
                    ", \"time_s\": " + json_number(r.seconds) + ", \"mode\": \"" + mode +
                    "\", \"checked\": " + std::to_string(r.checked) + ", \"max_abs_err\": " +
                    json_number(r.worst.abs_err) + ", \"max_err_over_tol\": " + json_number(r.worst.ratio) +
                    ", \"seed\": " + std::to_string(seed);
    if (!r.full && r.samples.row_cap > 0)
      s += ", \"rows_capped\": {\"row_elements\": " + std::to_string(r.samples.row_length) +
           ", \"sampled_per_row\": " + std::to_string(r.samples.row_cap) + "}";
    if (!r.pass && r.worst.index >= 0)
      s += ", \"worst\": {\"index\": " + json_string(coords(p, g, r.worst.index)) + ", \"got\": " +
           json_number(r.worst.got) + ", \"want\": " + json_number(r.worst.want) + "}";
    std::printf("%s}\n", s.c_str());
  } else {
    std::string s = std::string(r.pass ? "PASS " : "FAIL ") + to_string(p) + " | algorithm=" + r.algorithm +
                    " time=" + format_seconds(r.seconds) + " checked=" + mode + ":" + std::to_string(r.checked);
    if (!r.full && r.samples.row_cap > 0)
      s += " rows_sampled=" + std::to_string(r.samples.row_cap) + "/" + std::to_string(r.samples.row_length);
    s += " max_err=" + fmt("%.3g", r.worst.abs_err) + " err/tol=" + fmt("%.3g", r.worst.ratio) +
         " seed=" + std::to_string(seed);
    if (!r.pass && r.worst.index >= 0)
      s += " worst=" + coords(p, g, r.worst.index) + " got=" + fmt("%.9g", r.worst.got) + " want=" +
           fmt("%.9g", r.worst.want);
    std::printf("%s\n", s.c_str());
  }
  std::fflush(stdout);
}

uint64_t fresh_seed() {
  std::random_device rd;
  uint64_t s = (uint64_t(rd()) << 32) ^ rd();
  s ^= uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  return s % 1000000000ull;  // short enough to retype
}

// A list line without its comment and surrounding blanks; empty when there is nothing left.
std::string strip_line(const std::string& line) {
  std::string s = line.substr(0, line.find('#'));
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

int check_list(const Options& o, uint64_t seed) {
  std::ifstream in(o.file);
  if (!in) throw Error(ErrorKind::invalid, "[check] cannot open the list '" + o.file + "': " + std::strerror(errno));
  int64_t passed = 0, failed = 0, skipped = 0, line_no = 0;
  std::string line;
  auto report_error = [&](const char* tag, const std::string& problem, const Error& e) {
    const std::string where = o.file + ":" + std::to_string(line_no);
    if (o.json)
      std::printf("{\"result\": \"%s\", \"problem\": %s, \"where\": %s, \"error\": %s, \"kind\": \"%s\"}\n", tag,
                  json_string(problem).c_str(), json_string(where).c_str(), json_string(one_line(e.what())).c_str(),
                  error_kind_name(e.kind()));
    else
      std::printf("%s %s (%s) | %s: %s\n", tag, problem.c_str(), where.c_str(), error_kind_name(e.kind()),
                  one_line(e.what()).c_str());
    std::fflush(stdout);
  };
  while (std::getline(in, line)) {
    ++line_no;
    const std::string text = strip_line(line);
    if (text.empty()) continue;
    Problem p;
    std::string shown = text;
    try {
      p = parse_problem(text);
      set_current_problem(p);
      shown = to_string(p);
      Outcome r = check_problem(p, o, seed);
      print_outcome(p, r, seed, o.json);
      (r.pass ? passed : failed)++;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::interrupted) throw;
      if (e.kind() == ErrorKind::unsupported) {
        report_error("SKIP", shown, e);
        ++skipped;
      } else {
        report_error("FAIL", shown, e);
        ++failed;
      }
    } catch (const std::bad_alloc&) {
      report_error("FAIL", shown, Error(ErrorKind::out_of_memory, "[check] out of memory; problem: " + shown));
      ++failed;
    }
  }
  if (in.bad()) throw Error(ErrorKind::invalid, "[check] error reading the list '" + o.file + "'");
  if (o.json)
    std::printf("{\"passed\": %lld, \"failed\": %lld, \"skipped\": %lld}\n", static_cast<long long>(passed),
                static_cast<long long>(failed), static_cast<long long>(skipped));
  else if (skipped)
    std::printf("%lld passed, %lld failed, %lld skipped\n", static_cast<long long>(passed),
                static_cast<long long>(failed), static_cast<long long>(skipped));
  else
    std::printf("%lld passed, %lld failed\n", static_cast<long long>(passed), static_cast<long long>(failed));
  return failed ? kExitMismatch : kExitOk;
}

}  // namespace

int check_command(const Options& o) {
  const uint64_t seed = o.seed_given ? o.seed : fresh_seed();
  if (!o.file.empty()) return check_list(o, seed);
  const Problem p = parse_problem(o.problem_text());
  set_current_problem(p);
  Outcome r = check_problem(p, o, seed);
  print_outcome(p, r, seed, o.json);
  return r.pass ? kExitOk : kExitMismatch;
}

}  // namespace convnd::cli
