#include "cli.h"

#include <cmath>
#include <cstdio>

#include "random_fill.h"

namespace convnd::cli {

int exit_code_for(ErrorKind k) {
  switch (k) {
    case ErrorKind::ok: return kExitOk;
    case ErrorKind::invalid: return kExitInvalid;
    case ErrorKind::unsupported: return kExitUnsupported;
    case ErrorKind::out_of_memory: return kExitOutOfMemory;
    case ErrorKind::backend: return kExitBackend;
    case ErrorKind::interrupted: return kExitInterrupted;
  }
  return kExitBackend;
}

ExecOptions Options::exec() const {
  ExecOptions e;
  e.backend = backend;
  e.budget = budget;
  e.threads = threads;
  // A count given on the command line is the count used (benchmarks, scaling measurements);
  // the default lets the planner use fewer threads for a tiny problem.
  e.exact_threads = threads > 0;
  e.algorithm = algorithm;
  e.isa = isa;
  e.allow_tf32 = allow_tf32;
  return e;
}

std::string Options::problem_text() const {
  if (positionals.empty()) throw UsageError("no problem string given");
  std::string s;
  for (const std::string& p : positionals) s += (s.empty() ? "" : " ") + p;
  return s;
}

namespace {
std::string g_current_problem;
}  // namespace

void set_current_problem(const Problem& p) { g_current_problem = to_string(p); }

std::string current_problem_suffix() {
  return g_current_problem.empty() ? std::string() : "; problem: " + g_current_problem;
}

std::string with_current_problem(const std::string& message) {
  if (message.find("; problem: ") != std::string::npos) return message;
  return message + current_problem_suffix();
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (uint8_t(c) < 0x20 || c == 0x7f) c = ' ';
  return s;
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "convnd: %s\n", one_line(message).c_str());
  std::fflush(stderr);
}

std::string with_problem(const std::string& message, const Problem& p) {
  if (message.find("; problem: ") != std::string::npos) return message;
  return message + "; problem: " + to_string(p);
}

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += ch;
    } else if (uint8_t(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(uint8_t(ch)));
      r += buf;
    } else {
      r += ch;
    }
  }
  return r + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string json_shape(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string format_seconds(double s) {
  char buf[40];
  if (!std::isfinite(s)) return "?";
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.3gus", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.3gms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.3gs", s);
  return buf;
}

std::string format_bytes(int64_t b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[40];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else std::snprintf(buf, sizeof buf, "%.3g %s", v, units[u]);
  return buf;
}

Shapes shapes_of(const Problem& p, const Geometry& g) {
  TensorShapes t = tensor_shapes(p, g);
  return {Shape(t.x.begin(), t.x.begin() + t.ndim), Shape(t.w.begin(), t.w.begin() + t.ndim),
          Shape(t.y.begin(), t.y.begin() + t.ndim)};
}

namespace {
std::string spatial(int rank, const char* const names[3]) {
  std::string s;
  for (int i = 3 - rank; i < 3; ++i) s += std::string(", ") + names[i];
  return s;
}
}  // namespace

std::string x_layout(int rank) {
  static const char* const names[3] = {"D", "H", "W"};
  return "[N" + spatial(rank, names) + ", C]";
}

std::string w_layout(int rank) {
  static const char* const names[3] = {"KD", "KH", "KW"};
  return "[O" + spatial(rank, names) + ", C/g]";
}

std::string y_layout(int rank) {
  static const char* const names[3] = {"PD", "PH", "PW"};
  return "[N" + spatial(rank, names) + ", O]";
}

const char* role_name(Direction d, int role) {
  static const char* const names[3][3] = {{"x", "w", "y"}, {"dx", "w", "dy"}, {"x", "dw", "dy"}};
  return names[int(d)][role];
}

std::string role_description(Direction d, int role, int rank) {
  const bool out = role == output_role(d);
  std::string what;
  switch (role) {
    case kRoleX: what = out ? "input gradient" : "input"; break;
    case kRoleW: what = out ? "weight gradient" : "weight"; break;
    default: what = d == Direction::fwd ? "output" : "cotangent"; break;
  }
  const std::string layout = role == kRoleX ? x_layout(rank) : role == kRoleW ? w_layout(rank) : y_layout(rank);
  return what + " " + role_name(d, role) + " " + layout;
}

void fill_inputs(Direction d, const TensorView& x, const TensorView& w, const TensorView& y, uint64_t seed,
                 int threads) {
  if (reads(d, kRoleX)) fill_uniform(x, seed, kStreamX, threads);
  if (reads(d, kRoleW)) fill_uniform(w, seed, kStreamW, threads);
  if (reads(d, kRoleY)) fill_uniform(y, seed, kStreamDy, threads);
}

}  // namespace convnd::cli
