// The planner and the executor: problem + backend + budget -> Plan; Plan +
// tensors -> y.
#include <convnd/plan.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "core/checked.h"
#include "cpu/thread_pool.h"
#include "cuda/backend.h"
#include "plan/algorithm.h"

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

namespace {

int64_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return (pages > 0 && page > 0) ? int64_t(pages) * int64_t(page) : (int64_t(1) << 34);
}

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

std::string with_problem(const std::string& msg, const Problem& p) {
  return msg + "; problem: " + to_string(p);
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
  return std::min<int64_t>(int64_t(256) << 20, physical_memory_bytes() / 16);
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
  if (opt.threads > 0) return opt.threads;
  if (const char* env = std::getenv("CONVND_THREADS")) {
    int v = std::atoi(env);
    if (v > 0) return v;
  }
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

int64_t Plan::tile(std::string_view name, int64_t fallback) const {
  for (const auto& [k, v] : tiles)
    if (k == name) return v;
  return fallback;
}

std::string Plan::to_text() const {
  std::string s;
  s += "problem:    " + to_string(problem) + "\n";
  s += "backend:    " + std::string(backend_name(backend)) + "\n";
  s += "algorithm:  " + algorithm + "\n";
  s += "workspace:  " + std::to_string(workspace_bytes) + " bytes (budget " + std::to_string(budget_bytes) +
       ")\n";
  s += "index:      " + std::to_string(index_bits) + "-bit\n";
  s += "threads:    " + std::to_string(threads) + "\n";
  s += "tiles:     ";
  if (tiles.empty()) s += " none";
  for (const auto& [k, v] : tiles) s += " " + k + "=" + std::to_string(v);
  s += "\n";
  if (!rejected.empty()) {
    s += "rejected:\n";
    for (const Rejection& r : rejected) s += "  " + r.algorithm + ": " + r.reason + "\n";
  }
  return s;
}

std::string Plan::to_json() const {
  std::string s = "{\"problem\": \"" + json_escape(to_string(problem)) + "\", \"backend\": \"" +
                  std::string(backend_name(backend)) + "\", \"algorithm\": \"" + json_escape(algorithm) +
                  "\", \"workspace_bytes\": " + std::to_string(workspace_bytes) +
                  ", \"budget_bytes\": " + std::to_string(budget_bytes) +
                  ", \"index_bits\": " + std::to_string(index_bits) +
                  ", \"threads\": " + std::to_string(threads) + ", \"tiles\": {";
  for (size_t i = 0; i < tiles.size(); ++i)
    s += (i ? ", \"" : "\"") + json_escape(tiles[i].first) + "\": " + std::to_string(tiles[i].second);
  s += "}, \"rejected\": [";
  for (size_t i = 0; i < rejected.size(); ++i)
    s += std::string(i ? ", " : "") + "{\"algorithm\": \"" + json_escape(rejected[i].algorithm) +
         "\", \"reason\": \"" + json_escape(rejected[i].reason) + "\"}";
  s += "]}";
  return s;
}

Plan make_plan(const Problem& problem, const ExecOptions& opt) {
  Plan plan;
  plan.problem = problem;
  plan.geometry = lower(problem);
  plan.backend = opt.backend;
  plan.budget_bytes = resolve_budget(opt);
  plan.threads = resolve_threads(opt);
  const Geometry& g = plan.geometry;
  const int64_t es = dtype_size(g.dtype);
  // Each tensor's bytes fit in int64 (validated); their sum may not, and then
  // it is certainly more than any machine has.
  int64_t tensor_bytes;
  const bool sum_fits = checked_add(g.x_elems() * es, g.w_elems() * es, &tensor_bytes) &&
                        checked_add(tensor_bytes, g.y_elems() * es, &tensor_bytes);

  if (opt.backend == Backend::cpu) {
    // Input, weight and output must fit in memory beside the workspace; say so
    // before anything is allocated rather than let the kernel's OOM killer
    // decide.
    const int64_t phys = physical_memory_bytes();
    if (!sum_fits)
      throw Error(ErrorKind::out_of_memory, with_problem("[plan] input, weight and output together need "
                                                         "more than 2^63 bytes",
                                                         problem));
    if (tensor_bytes > phys)
      throw Error(ErrorKind::out_of_memory,
                  with_problem("[plan] input, weight and output need " + std::to_string(tensor_bytes) +
                                   " bytes; this machine has " + std::to_string(phys) + " bytes of memory",
                               problem));
  }

  if (opt.backend == Backend::cuda) {
    // No device (or no CUDA in this build): unsupported, with the reason.
    const std::string why = cuda_unavailable_reason();
    if (!why.empty())
      throw Error(ErrorKind::unsupported,
                  with_problem("[plan] the cuda backend is unavailable: " + why, problem));
  }

  PlanRequest req{plan.budget_bytes, plan.threads, opt.allow_tf32};
  int64_t smallest_over_budget = -1;
  std::string over_budget_algo;
  bool any_for_backend = false;
  for (const Algorithm* a : algorithm_registry()) {
    if (a->backend() != opt.backend) continue;
    any_for_backend = true;
    if (!opt.algorithm.empty() && a->name() != opt.algorithm) continue;
    if (opt.algorithm.empty() && a->fallback() && smallest_over_budget >= 0) {
      plan.rejected.push_back({std::string(a->name()),
                               "not used as a fallback for a problem that a faster algorithm "
                               "covers within a larger budget"});
      continue;
    }
    Plan candidate = plan;
    int64_t min_ws = -1;
    std::string why = a->plan(g, req, &candidate, &min_ws);
    if (why.empty()) {
      candidate.algorithm = std::string(a->name());
      candidate.rejected = plan.rejected;
      if (opt.backend == Backend::cuda) {
        // The workspace must fit in the device's free memory, and the tensors with it in
        // the device (execute() checks the staging it needs).
        const Status mem = cuda_check_memory(candidate);
        if (!mem.ok()) throw Error(mem.kind(), with_problem(mem.message(), problem));
      }
      return candidate;
    }
    plan.rejected.push_back({std::string(a->name()), why});
    if (min_ws >= 0 && (smallest_over_budget < 0 || min_ws < smallest_over_budget)) {
      smallest_over_budget = min_ws;
      over_budget_algo = std::string(a->name());
    }
  }
  if (!opt.algorithm.empty() && plan.rejected.empty())
    throw Error(ErrorKind::invalid, with_problem("[plan] no " + std::string(backend_name(opt.backend)) +
                                                     " algorithm is named '" + opt.algorithm + "'",
                                                 problem));
  if (smallest_over_budget >= 0)
    throw Error(ErrorKind::out_of_memory,
                with_problem("[plan] the smallest tile needs " + std::to_string(smallest_over_budget) +
                                 " bytes of workspace (" + over_budget_algo + "); the budget is " +
                                 std::to_string(plan.budget_bytes) + " bytes",
                             problem));
  std::string reasons;
  for (const Rejection& r : plan.rejected)
    reasons += (reasons.empty() ? "" : "; ") + r.algorithm + ": " + r.reason;
  if (!any_for_backend) reasons = "this build has no " + std::string(backend_name(opt.backend)) + " backend";
  throw Error(ErrorKind::unsupported, with_problem("[plan] no " + std::string(backend_name(opt.backend)) +
                                                       " algorithm implements this problem (" + reasons + ")",
                                                   problem));
}

namespace {

void check_tensor(const char* what, const TensorView& t, const int64_t* shape, int ndim, DType dtype,
                  const Problem& p) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorKind::invalid, with_problem(std::string("[execute] ") + what + " " + why, p));
  };
  if (t.dtype != dtype)
    fail("has dtype " + std::string(dtype_name(t.dtype)) + ", the problem's is " +
         std::string(dtype_name(dtype)));
  if (t.ndim() != ndim || int(t.strides.size()) != ndim)
    fail("must have " + std::to_string(ndim) + " dimensions");
  for (int i = 0; i < ndim; ++i)
    if (t.shape[i] != shape[i])
      fail("has extent " + std::to_string(t.shape[i]) + " in dimension " + std::to_string(i) + ", expected " +
           std::to_string(shape[i]));
  for (int i = 0; i < ndim; ++i)
    if (t.strides[i] < 0) fail("has a negative stride");
  if (!t.data) fail("has no data");
}

TensorView as_5d(const TensorView& t, int64_t a, const Dims& s, int64_t b) {
  return TensorView(t.data, t.dtype, Shape{a, s[0], s[1], s[2], b});
}

}  // namespace

void execute(const Plan& plan, const TensorView& x, const TensorView& w, const TensorView& y,
             const ExecOptions& opt) {
  const Problem& p = plan.problem;
  const Geometry& g = plan.geometry;
  TensorShapes ts = tensor_shapes(p, g);
  check_tensor("input x", x, ts.x.data(), ts.ndim, p.dtype, p);
  check_tensor("weight w", w, ts.w.data(), ts.ndim, p.dtype, p);
  check_tensor("output y", y, ts.y.data(), ts.ndim, p.dtype, p);
  const Algorithm* algo = find_algorithm(plan.algorithm);
  if (!algo || algo->backend() != plan.backend)
    throw Error(ErrorKind::invalid,
                with_problem("[execute] the plan names an unknown algorithm '" + plan.algorithm + "'", p));
  if (plan.backend == Backend::cuda) {
    // Device tensors run in place; host tensors are staged through device
    // memory.
    cuda_execute(plan, *algo, x, w, y, opt);
    return;
  }
  if (plan.backend == Backend::cpu && (x.device >= 0 || w.device >= 0 || y.device >= 0))
    throw Error(ErrorKind::invalid, with_problem("[execute] the cpu backend needs host tensors", p));

  // Algorithms read dense tensors; strided inputs are copied once (outside the
  // workspace budget, as they are the caller's data in another layout).
  Tensor xc, wc, yc;
  const TensorView* xv = &x;
  const TensorView* wv = &w;
  if (!x.is_contiguous()) {
    xc = contiguous_copy(x);
    xv = &xc.view();
  }
  if (!w.is_contiguous()) {
    wc = contiguous_copy(w);
    wv = &wc.view();
  }
  const bool y_dense = y.is_contiguous();
  if (!y_dense) yc = Tensor::empty(y.dtype, y.shape);
  TensorView x5 = as_5d(*xv, g.n, g.in, g.c);
  TensorView w5 = as_5d(*wv, g.o, g.k, g.cg());
  TensorView y5 = as_5d(y_dense ? y : yc.view(), g.n, g.out, g.o);

  std::unique_ptr<void, void (*)(void*)> ws(nullptr, [](void* q) { std::free(q); });
  if (plan.workspace_bytes > 0) {
    ws.reset(std::aligned_alloc(64, size_t(plan.workspace_bytes + 63) / 64 * 64));
    if (!ws)
      throw Error(ErrorKind::out_of_memory,
                  with_problem("[execute] could not allocate the plan's workspace of " +
                                   std::to_string(plan.workspace_bytes) + " bytes",
                               p));
  }
  std::shared_ptr<ThreadPool> pool = ThreadPool::shared(plan.threads);
  RunContext ctx{plan, g, x5, w5, y5, ws.get(), pool.get(), &opt.progress};
  Status st = algo->run(ctx);
  if (!st.ok())
    throw Error(st.kind(), st.message().find("; problem: ") == std::string::npos
                               ? with_problem(st.message(), p)
                               : st.message());
  if (!y_dense) {
    // Scatter the dense result into the caller's strided view.
    const int64_t es = dtype_size(y.dtype);
    const int nd = y.ndim();
    std::vector<int64_t> idx(nd, 0);
    const char* src = static_cast<const char*>(yc.data());
    char* dst = static_cast<char*>(y.data);
    for (int64_t lin = 0, total = y.numel(); lin < total; ++lin) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * y.strides[d];
      std::memcpy(dst + off * es, src + lin * es, size_t(es));
      for (int d = nd - 1; d >= 0 && ++idx[d] == y.shape[d]; --d) idx[d] = 0;
    }
  }
}

Tensor run(const Problem& problem, const TensorView& x, const TensorView& w, const ExecOptions& opt) {
  Plan plan = make_plan(problem, opt);
  TensorShapes ts = tensor_shapes(plan.problem, plan.geometry);
  Tensor y = Tensor::empty(problem.dtype, Shape(ts.y.begin(), ts.y.begin() + ts.ndim));
  execute(plan, x, w, y, opt);
  return y;
}

}  // namespace convnd
