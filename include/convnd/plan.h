// Problem -> plan -> execute. A Plan is plain data: the algorithm chosen, its tiles, the
// workspace bytes, the index width, the thread count, and why every other algorithm said no.
// Execution only runs a plan; a plan can be printed, compared and cached.
#pragma once
#include <convnd/problem.h>
#include <convnd/tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace convnd {

enum class Backend : uint8_t { cpu, cuda };
std::string_view backend_name(Backend b);
bool parse_backend(std::string_view s, Backend* out);

/// How to run a problem. Every field has a sensible default.
struct ExecOptions {
  Backend backend = Backend::cpu;
  /// Workspace budget in bytes (scratch memory an algorithm may allocate beyond x, w, y).
  /// Negative: the default, from the environment variable CONVND_WORKSPACE_BYTES if set,
  /// else default_workspace_budget().
  int64_t budget = -1;
  /// Worker threads; 0: CONVND_THREADS if set, else every hardware thread.
  int threads = 0;
  /// Force one algorithm by name (tests, benchmarks); empty: the planner chooses.
  std::string algorithm;
  /// Allow TF32 tensor-core math for float32 on GPUs (never used otherwise).
  bool allow_tf32 = false;
  /// Called between tiles with the fraction done (0..1), always on the thread that called
  /// execute() (bindings rely on this to check for signals). Returning false cancels the run,
  /// which then throws Error(interrupted); the output is unspecified but never reported as
  /// complete.
  std::function<bool(double)> progress;
};

/// The default workspace budget: 256 MiB, or 1/16 of physical memory if that is less.
int64_t default_workspace_budget();
/// The budget an ExecOptions resolves to (see ExecOptions::budget).
int64_t resolve_budget(const ExecOptions& opt);
/// The thread count an ExecOptions resolves to.
int resolve_threads(const ExecOptions& opt);
/// Parses a byte count: a whole number with an optional unit, binary (KiB, MiB, GiB, TiB, or
/// K, M, G, T) or decimal (KB, MB, GB, TB). Returns false for anything else or on overflow.
bool parse_byte_size(std::string_view s, int64_t* out);

struct Rejection {
  std::string algorithm;
  std::string reason;
};

struct Plan {
  Problem problem;
  Geometry geometry;
  Backend backend = Backend::cpu;
  std::string algorithm;        // name in the registry
  int64_t workspace_bytes = 0;  // scratch bytes execute() allocates
  int64_t budget_bytes = 0;     // the budget it was planned under
  int index_bits = 64;          // widest index type used inside tiles (32 only where proven)
  int threads = 1;
  /// Named tile parameters (algorithm-specific, e.g. {"rows", 64}).
  std::vector<std::pair<std::string, int64_t>> tiles;
  /// Why each algorithm tried before the chosen one said no.
  std::vector<Rejection> rejected;

  int64_t tile(std::string_view name, int64_t fallback = 0) const;
  std::string to_text() const;
  std::string to_json() const;
};

/// Plans a problem. Throws Error: invalid (bad problem), unsupported (no algorithm of the
/// backend implements it), out_of_memory (even the smallest tile exceeds the budget).
Plan make_plan(const Problem& problem, const ExecOptions& opt = {});

/// Runs a plan on tensors whose shapes and dtype match plan.problem (checked; Error(invalid)
/// otherwise). y is written in full on success.
void execute(const Plan& plan, const TensorView& x, const TensorView& w, const TensorView& y,
             const ExecOptions& opt = {});

/// Plans and runs, returning a new output tensor.
Tensor run(const Problem& problem, const TensorView& x, const TensorView& w,
           const ExecOptions& opt = {});

}  // namespace convnd
