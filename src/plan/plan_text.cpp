// Plan vocabulary and printing: backend and ISA names, budgets and thread counts as options
// resolve them, and a plan as text or JSON (`convnd plan`, the Python plan()).
#include <convnd/plan.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/checked.h"
#include "core/memory.h"

namespace convnd {

std::string_view backend_name(Backend b) {
  return b == Backend::cuda ? "cuda" : "cpu";
}

bool parse_backend(std::string_view s, Backend* out) {
  if (s == "cpu")
    *out = Backend::cpu;
  else if (s == "cuda")
    *out = Backend::cuda;
  else
    return false;
  return true;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::automatic: return "auto";
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512_bf16: return "avx512_bf16";
    case Isa::amx: return "amx";
    case Isa::sm_90: return "sm_90";
  }
  return "?";
}

bool parse_isa(std::string_view s, Isa* out) {
  for (Isa i : {Isa::automatic, Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx, Isa::sm_90})
    if (s == isa_name(i)) {
      *out = i;
      return true;
    }
  return false;
}

namespace {

std::string json_escape(std::string_view s) {
  std::string r;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += ch;
    } else if (uint8_t(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      r += buf;
    } else
      r += ch;
  }
  return r;
}

}  // namespace

bool parse_byte_size(std::string_view s, int64_t* out) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data() || v < 0) return false;
  std::string_view unit(ptr, size_t(s.data() + s.size() - ptr));
  struct U {
    std::string_view name;
    int64_t mult;
  };
  static constexpr U units[] = {{"", 1},
                                {"K", 1LL << 10},
                                {"KiB", 1LL << 10},
                                {"KB", 1000},
                                {"k", 1LL << 10},
                                {"M", 1LL << 20},
                                {"MiB", 1LL << 20},
                                {"MB", 1000000},
                                {"G", 1LL << 30},
                                {"GiB", 1LL << 30},
                                {"GB", 1000000000},
                                {"T", 1LL << 40},
                                {"TiB", 1LL << 40},
                                {"TB", 1000000000000},
                                {"B", 1}};
  for (const U& u : units)
    if (unit == u.name) return checked_mul(v, u.mult, out);
  return false;
}

int64_t default_workspace_budget() {
  return std::min<int64_t>(int64_t(256) << 20, physical_host_memory() / 16);
}

int64_t resolve_budget(const ExecOptions& opt) {
  if (opt.budget >= 0) return opt.budget;
  if (const char* env = std::getenv("CONVND_WORKSPACE_BYTES")) {
    int64_t v;
    if (!parse_byte_size(env, &v))
      throw Error(ErrorKind::invalid, std::string("[budget] CONVND_WORKSPACE_BYTES='") + env +
                                          "' is not a byte count such as 268435456 or 256MiB");
    return v;
  }
  return default_workspace_budget();
}

int resolve_threads(const ExecOptions& opt) {
  if (opt.threads > kMaxThreads)
    throw Error(ErrorKind::invalid, "[threads] threads=" + std::to_string(opt.threads) + " is more than " +
                                        std::to_string(kMaxThreads) + "; use 0 for every hardware thread");
  if (opt.threads > 0) return opt.threads;
  if (const char* env = std::getenv("CONVND_THREADS")) {
    int v = std::atoi(env);
    if (v > kMaxThreads)
      throw Error(ErrorKind::invalid, std::string("[threads] CONVND_THREADS=") + env + " is more than " +
                                          std::to_string(kMaxThreads));
    if (v > 0) return v;
  }
  // Read once: glibc answers hardware_concurrency() by reading /sys on every call (microseconds,
  // more than a cached plan's whole lookup).
  static const int hardware = std::min(kMaxThreads, int(std::max(1u, std::thread::hardware_concurrency())));
  return hardware;
}

std::vector<std::pair<std::string, int64_t>> Plan::parameters() const {
  return config ? config->parameters() : std::vector<std::pair<std::string, int64_t>>{};
}

Plan with_parameter(const Plan& plan, std::string_view name, int64_t value) {
  std::shared_ptr<const PlanConfig> changed = plan.config ? plan.config->with_parameter(name, value) : nullptr;
  if (!changed)
    throw Error(ErrorKind::invalid, "[plan] " + plan.algorithm + " cannot run with " + std::string(name) + "=" +
                                        std::to_string(value) + " (not a settable parameter, or not a value it runs)" +
                                        "; problem: " + to_string(plan.problem));
  Plan out = plan;
  out.config = std::move(changed);
  return out;
}

bool Plan::uses_tf32() const {
  for (const auto& [k, v] : parameters())
    if (k == "tf32") return v != 0;
  return false;
}

std::string Plan::to_text() const {
  std::string s;
  s += "problem:    " + to_string(problem) + "\n";
  s += "direction:  " + std::string(direction_name(problem.dir)) + "\n";
  s += "backend:    " + std::string(backend_name(backend)) + "\n";
  const std::string via = config ? config->via() : std::string();
  s += "algorithm:  " + algorithm + (via.empty() ? "" : " (via " + via + ")") + "\n";
  s += "isa:        " + std::string(isa_name(isa)) + "\n";
  if (uses_tf32()) s += "precision:  tf32 (float32 products on TF32 tensor cores)\n";
  s += "workspace:  " + std::to_string(workspace_bytes) + " bytes (budget " + std::to_string(budget_bytes) +
       ")\n";
  s += "index:      " + std::to_string(index_bits) + "-bit\n";
  s += "threads:    " + std::to_string(threads) + "\n";
  s += "config:    ";
  const auto params = parameters();
  if (params.empty()) s += " none";
  for (const auto& [k, v] : params) s += " " + k + "=" + std::to_string(v);
  s += "\n";
  if (!rejected.empty()) {
    s += "rejected:\n";
    for (const Rejection& r : rejected) s += "  " + r.algorithm + ": " + r.reason + "\n";
  }
  return s;
}

std::string Plan::to_json() const {
  std::string s = "{\"problem\": \"" + json_escape(to_string(problem)) + "\", \"direction\": \"" +
                  std::string(direction_name(problem.dir)) + "\", \"backend\": \"" +
                  std::string(backend_name(backend)) + "\", \"algorithm\": \"" + json_escape(algorithm) +
                  "\", \"via\": \"" + json_escape(config ? config->via() : std::string()) +
                  "\", \"isa\": \"" + std::string(isa_name(isa)) +
                  (uses_tf32() ? "\", \"precision\": \"tf32" : "") +
                  "\", \"workspace_bytes\": " + std::to_string(workspace_bytes) +
                  ", \"budget_bytes\": " + std::to_string(budget_bytes) +
                  ", \"index_bits\": " + std::to_string(index_bits) +
                  ", \"threads\": " + std::to_string(threads) + ", \"config\": {";
  const auto params = parameters();
  for (size_t i = 0; i < params.size(); ++i)
    s += (i ? ", \"" : "\"") + json_escape(params[i].first) + "\": " + std::to_string(params[i].second);
  s += "}, \"rejected\": [";
  for (size_t i = 0; i < rejected.size(); ++i)
    s += std::string(i ? ", " : "") + "{\"algorithm\": \"" + json_escape(rejected[i].algorithm) +
         "\", \"reason\": \"" + json_escape(rejected[i].reason) + "\"}";
  s += "]}";
  return s;
}

}  // namespace convnd
