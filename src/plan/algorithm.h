// The internal algorithm interface. The planner walks an ordered list of
// algorithms (registry.cpp); each one either says no with a reason or fills in
// its part of a Plan. Adding an algorithm touches its own file plus one line in
// registry.cpp.
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <string>
#include <string_view>
#include <vector>

namespace convnd {

class ThreadPool;

/// What an algorithm may use when it plans.
struct PlanRequest {
  int64_t budget = 0;  // workspace bytes allowed
  int threads = 1;
  bool allow_tf32 = false;
};

/// What an algorithm gets when it runs. x, w, y are dense (row-major) views in
/// the 3-D geometry's layout: x [N, D, H, W, C], w [O, KD, KH, KW, C/g], y [N,
/// PD, PH, PW, O].
struct RunContext {
  const Plan& plan;
  const Geometry& g;
  const TensorView& x;
  const TensorView& w;
  const TensorView& y;
  void* workspace;  // plan.workspace_bytes bytes, 64-byte aligned (nullptr when 0)
  ThreadPool* pool;
  /// Reports progress between tiles; returns false when the caller asked to
  /// stop, in which case the algorithm returns Status(interrupted) as soon as
  /// it can.
  const std::function<bool(double)>* progress;
  bool report(double fraction) const { return !progress || !*progress || (*progress)(fraction); }
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual std::string_view name() const = 0;
  virtual Backend backend() const = 0;
  /// Returns an empty string and fills plan->tiles, workspace_bytes, index_bits
  /// when it can implement the problem within req.budget; otherwise the reason
  /// it cannot (one line). When it could run except that its smallest tile
  /// exceeds the budget, it sets *min_workspace to the bytes that tile needs
  /// (used for the out-of-memory message).
  virtual std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan,
                           int64_t* min_workspace) const = 0;
  virtual Status run(const RunContext& ctx) const = 0;
  /// A fallback (the reference) is chosen only for problems no other algorithm
  /// covers: when a faster one said no because of the budget alone, the planner
  /// reports out of memory instead of silently running the slow path.
  virtual bool fallback() const { return false; }
};

/// The ordered algorithm list (registry.cpp): most specialised first, the
/// reference last.
const std::vector<const Algorithm*>& algorithm_registry();
const Algorithm* find_algorithm(std::string_view name);

}  // namespace convnd
