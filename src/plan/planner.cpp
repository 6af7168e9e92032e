// The planner: problem + options -> Plan. It resolves the options (budget, threads, ISA,
// device), asks the cache, and otherwise walks the backend's ordered algorithm list: the
// registry's traits filter direction, dtype and ISA; then each algorithm says no with a reason
// or returns its typed configuration. The first yes is the plan; execute() runs it as it is.
#include <convnd/plan.h>

#include <algorithm>
#include <cmath>
#include <list>
#include <mutex>
#include <unordered_map>

#include "core/checked.h"
#include "plan/registry.h"

namespace convnd {

namespace {

std::string with_problem(const std::string& msg, const Problem& p) {
  return msg.find("; problem: ") == std::string::npos ? msg + "; problem: " + to_string(p) : msg;
}

std::string_view direction_words(Direction d) {
  switch (d) {
    case Direction::fwd: return "the forward convolution";
    case Direction::bwd_d: return "the gradient of the input";
    case Direction::bwd_w: return "the gradient of the weight";
  }
  return "?";
}

// ---- the plan cache ------------------------------------------------------------------------
// A plan is a pure function of the problem and the resolved options, so equal keys may share
// one. What is not in the key (progress callbacks) does not enter a plan. The CUDA backend's
// free-memory check is made when a plan is first made; execute() checks its real allocations
// again before making them, so a cached plan never allocates unchecked.

struct PlanKey {
  Problem problem;
  Backend backend;
  int device;
  int64_t budget;
  int threads;
  Isa isa;
  bool allow_tf32;
  bool exact_threads;
  std::string algorithm;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    const Problem& p = k.problem;
    mix(uint64_t(p.op) | uint64_t(p.rank) << 8 | uint64_t(p.dtype) << 16 | uint64_t(p.dir) << 24 |
        uint64_t(p.flip) << 32);
    for (int64_t v : {p.n, p.c, p.o, p.groups}) mix(uint64_t(v));
    for (const Dims* d : {&p.in, &p.k, &p.stride, &p.pad_lo, &p.pad_hi, &p.dil, &p.idil, &p.outpad})
      for (int64_t v : *d) mix(uint64_t(v));
    mix(uint64_t(k.backend) | uint64_t(uint32_t(k.device)) << 8 | uint64_t(k.isa) << 40 |
        uint64_t(k.allow_tf32) << 48 | uint64_t(k.exact_threads) << 49);
    mix(uint64_t(k.budget));
    mix(uint64_t(k.threads));
    mix(std::hash<std::string>()(k.algorithm));
    return size_t(h);
  }
};

class PlanCache {
 public:
  static constexpr int64_t kCapacity = 512;  // plans; a plan is a few hundred bytes

  bool find(const PlanKey& key, Plan* out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return false;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used first
    *out = it->second->second;
    return true;
  }

  void insert(const PlanKey& key, const Plan& plan) {
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.count(key)) return;  // another thread planned it meanwhile
    lru_.emplace_front(key, plan);
    index_.emplace(key, lru_.begin());
    if (int64_t(lru_.size()) > kCapacity) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  PlanCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {hits_, misses_, int64_t(lru_.size()), kCapacity};
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    index_.clear();
    lru_.clear();
  }

 private:
  std::mutex mu_;
  std::list<std::pair<PlanKey, Plan>> lru_;
  std::unordered_map<PlanKey, std::list<std::pair<PlanKey, Plan>>::iterator, PlanKeyHash> index_;
  int64_t hits_ = 0, misses_ = 0;
};

PlanCache& plan_cache() {
  static PlanCache* cache = new PlanCache;  // never destroyed: plans may be made at exit
  return *cache;
}

// "a, b, c": the names of a backend's algorithms, in planner order.
std::string algorithm_names(const BackendImpl& impl) {
  std::string names;
  for (const Algorithm* a : impl.algorithms()) names += (names.empty() ? "" : ", ") + std::string(a->name());
  return names;
}

// Why an algorithm's traits rule the problem out, or "".
std::string traits_refusal(const AlgorithmTraits& t, const Geometry& g, Isa isa) {
  if (!t.directions.has(g.dir))
    return "does not compute dir=" + std::string(direction_name(g.dir)) + " (" +
           std::string(direction_words(g.dir)) + ")";
  if (!t.dtypes.has(g.dtype)) return "has no " + std::string(dtype_name(g.dtype)) + " kernels";
  if (!t.isas.has(isa)) return "has no " + std::string(isa_name(isa)) + " kernels";
  return {};
}

// At most `threads`, and no more than give each kMinWorkPerThread (plan.h says why).
int threads_for_work(const Geometry& g, int threads) {
  const double work = g.macs() + double(g.x_elems()) + double(g.w_elems()) + double(g.y_elems());
  const double most = std::max(1.0, std::floor(work / double(kMinWorkPerThread)));
  return most < double(threads) ? int(most) : threads;
}

Plan plan_uncached(const Problem& problem, const ExecOptions& opt, const BackendImpl& impl, Plan plan) {
  const Geometry& g = plan.geometry;
  PlanRequest req{plan.budget_bytes, plan.threads, plan.isa, opt.allow_tf32, !opt.algorithm.empty()};
  int64_t smallest_over_budget = -1;
  std::string over_budget_algo;
  bool any_for_backend = false, any_for_direction = false, named_found = false;
  for (const Algorithm* a : impl.algorithms()) {
    any_for_backend = true;
    const AlgorithmTraits& t = a->traits();
    any_for_direction = any_for_direction || t.directions.has(g.dir);
    if (!opt.algorithm.empty() && a->name() != opt.algorithm) continue;
    named_found = true;
    if (std::string why = traits_refusal(t, g, plan.isa); !why.empty()) {
      plan.rejected.push_back({std::string(a->name()), why});
      continue;
    }
    if (opt.algorithm.empty() && t.fallback && smallest_over_budget >= 0) {
      plan.rejected.push_back({std::string(a->name()),
                               "not used as a fallback for a problem that a faster algorithm "
                               "covers within a larger budget"});
      continue;
    }
    PlanChoice choice;
    int64_t min_ws = -1;
    std::string why = a->plan(g, req, &choice, &min_ws);
    if (why.empty() && !choice.config) why = "returned no configuration (a bug)";
    if (why.empty()) {
      plan.algorithm = std::string(a->name());
      plan.config = std::move(choice.config);
      plan.workspace_bytes = choice.workspace_bytes;
      plan.index_bits = choice.index_bits;
      return plan;
    }
    plan.rejected.push_back({std::string(a->name()), why});
    if (min_ws >= 0 && (smallest_over_budget < 0 || min_ws < smallest_over_budget)) {
      smallest_over_budget = min_ws;
      over_budget_algo = std::string(a->name());
    }
    // The weight gradient's bits must not depend on the budget: the algorithm its shape selects
    // says no for the budget alone, and no other (another summation order) takes its place.
    if (g.dir == Direction::bwd_w && min_ws >= 0) break;
  }
  const std::string backend(backend_name(opt.backend));
  if (!any_for_backend)
    throw Error(ErrorKind::unsupported, with_problem("[plan] this build has no " + backend + " backend", problem));
  if (!any_for_direction)
    throw Error(ErrorKind::unsupported,
                with_problem("[plan] dir=" + std::string(direction_name(g.dir)) + " (" +
                                 std::string(direction_words(g.dir)) + ") is not implemented yet: no " + backend +
                                 " algorithm computes it",
                             problem));
  if (!opt.algorithm.empty() && !named_found)
    throw Error(ErrorKind::invalid,
                with_problem("[plan] no " + backend + " algorithm is named '" + opt.algorithm + "' (the " + backend +
                                 " algorithms: " + algorithm_names(impl) + ")",
                             problem));
  if (smallest_over_budget >= 0)
    throw Error(ErrorKind::out_of_memory,
                with_problem("[plan] the smallest tile needs " + std::to_string(smallest_over_budget) +
                                 " bytes of workspace (" + over_budget_algo + "); the budget is " +
                                 std::to_string(plan.budget_bytes) + " bytes",
                             problem));
  std::string reasons;
  for (const Rejection& r : plan.rejected) reasons += (reasons.empty() ? "" : "; ") + r.algorithm + ": " + r.reason;
  throw Error(ErrorKind::unsupported,
              with_problem("[plan] no " + backend + " algorithm implements this problem (" + reasons + ")", problem));
}

}  // namespace

Plan make_plan(const Problem& problem, const ExecOptions& opt) {
  const BackendImpl& impl = backend_impl(opt.backend);
  // No device (or no CUDA in this build): unsupported, with the reason; an invalid problem is
  // invalid first, whatever the backend.
  if (const std::string why = impl.unavailable_reason(); !why.empty()) {
    lower(problem);
    throw Error(ErrorKind::unsupported, with_problem("[plan] the " + std::string(backend_name(opt.backend)) +
                                                         " backend is unavailable: " + why,
                                                     problem));
  }
  Plan plan;
  plan.problem = problem;
  plan.backend = opt.backend;
  plan.budget_bytes = resolve_budget(opt);
  plan.threads = resolve_threads(opt);
  try {
    plan.isa = impl.resolve_isa(opt, problem.dtype);
  } catch (const Error& e) {
    lower(problem);
    throw Error(e.kind(), with_problem(e.what(), problem));
  }
  PlanKey key{problem,  opt.backend,    impl.current_device(), plan.budget_bytes, plan.threads,
              plan.isa, opt.allow_tf32, opt.exact_threads,     opt.algorithm};
  Plan cached;
  if (plan_cache().find(key, &cached)) return cached;
  plan.geometry = lower(problem);
  if (opt.backend == Backend::cpu && !opt.exact_threads) plan.threads = threads_for_work(plan.geometry, plan.threads);
  plan = plan_uncached(problem, opt, impl, std::move(plan));
  plan_cache().insert(key, plan);
  return plan;
}

PlanCacheStats plan_cache_stats() {
  return plan_cache().stats();
}

void clear_plan_cache() {
  plan_cache().clear();
}

}  // namespace convnd
