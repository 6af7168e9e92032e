// Problem -> plan -> execute. A Plan is plain data: the algorithm chosen, its typed
// configuration (tiles, thread split), the instruction set, the workspace bytes, the index
// width, the thread count, and why every other algorithm said no. execute() runs exactly the
// plan it is given: nothing is chosen again at run time. make_plan() keeps recent plans in a
// bounded cache, so repeated calls with the same problem and options plan once.
#pragma once
#include <convnd/problem.h>
#include <convnd/tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace convnd {

enum class Backend : uint8_t { cpu, cuda };
std::string_view backend_name(Backend b);
bool parse_backend(std::string_view s, Backend* out);

/// The instruction set a plan's kernels are compiled for. CPU paths are chosen at run time
/// from CPUID (the best the machine has, or a lower one on request); CUDA kernels are sm_90.
enum class Isa : uint8_t {
  automatic,  // ExecOptions only: the best this machine runs (CONVND_ISA may lower it)
  generic,    // x86-64 baseline (or any CPU): plain C++ loops
  avx2,       // AVX2 + FMA + F16C
  avx512,     // AVX-512 F/BW/VL/DQ
  // The two levels above avx512 add bfloat16 GEMM kernels (products of bf16 pairs summed in
  // f32); every other kernel of a plan at these levels is the avx512 one.
  avx512_bf16,  // avx512 + AVX512-BF16 (VDPBF16PS): Zen 4, Cooper Lake, Sapphire Rapids
  amx,          // avx512_bf16 + AMX-TILE/AMX-BF16 tiles (TDPBF16PS), with the OS's permission
  sm_90,        // NVIDIA Hopper
};
/// "auto", "generic", "avx2", "avx512", "avx512_bf16", "amx", "sm_90".
std::string_view isa_name(Isa isa);
/// Parses an ISA name (as isa_name prints it); returns false for anything else.
bool parse_isa(std::string_view s, Isa* out);

/// The most worker threads a call may ask for (ExecOptions::threads, CONVND_THREADS).
inline constexpr int kMaxThreads = 4096;

/// The least work (multiply-adds plus the elements of x, w and y) a CPU plan gives each of its
/// threads unless ExecOptions::exact_threads: waking a worker and joining it costs a few
/// microseconds, about as much as this much work on one core, so a smaller problem runs
/// faster on fewer threads (a tiny layer of a model, called thousands of times a second).
inline constexpr int64_t kMinWorkPerThread = int64_t(1) << 18;

/// How to run a problem. Every field has a sensible default.
struct ExecOptions {
  Backend backend = Backend::cpu;
  /// Workspace budget in bytes (scratch memory an algorithm may allocate beyond x, w, y).
  /// Negative: the default, from the environment variable CONVND_WORKSPACE_BYTES if set,
  /// else default_workspace_budget().
  int64_t budget = -1;
  /// The most worker threads; 0: CONVND_THREADS if set, else every hardware thread. At most
  /// kMaxThreads (Error(invalid) naming threads above it). A CPU problem with too little work
  /// to share runs on fewer (Plan::threads; see exact_threads).
  int threads = 0;
  /// Run on `threads` threads even where the work is too small to be worth sharing (tests of
  /// the threaded code paths, scaling measurements). Off: the planner gives each thread at
  /// least kMinWorkPerThread units of work (multiply-adds plus the elements of x, w and y).
  bool exact_threads = false;
  /// Force one algorithm by name (tests, benchmarks); empty: the planner chooses.
  std::string algorithm;
  /// Allow TF32 tensor-core math for float32 on GPUs (never used otherwise).
  bool allow_tf32 = false;
  /// CPU instruction set: automatic (the best this CPU runs up to avx512, and amx for bfloat16
  /// problems where the CPU has AMX; lowered by the environment variable
  /// CONVND_ISA=amx|avx512_bf16|avx512|avx2|generic), or a given one (Error(unsupported) when
  /// this CPU lacks it). avx512_bf16 (VDPBF16PS) runs only when given: it was slower than the
  /// avx512 path on a Sapphire Rapids (docs/design.md). Ignored by the cuda backend.
  Isa isa = Isa::automatic;
  /// CUDA only: the stream (a cudaStream_t) the work is enqueued on. Null: the legacy default
  /// stream, and execute() returns when the result is complete. Given, with every tensor in
  /// device memory, execute() returns once the work is enqueued, without synchronising (the
  /// caller orders it with its stream, as PyTorch does with its current stream; strided device
  /// tensors are copied dense by kernels on that stream); with a host tensor it is staged and
  /// waited for on that stream. Workspace blocks released by
  /// one stream are reused by another only after the work enqueued before their release.
  /// To enqueue on the legacy default stream without waiting, give cudaStreamLegacy (0x1).
  /// A stream capturing a CUDA graph records the call (every tensor must be on the device;
  /// the workspace and dense copies of strided tensors become allocations of the graph).
  void* cuda_stream = nullptr;
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

/// An algorithm family's typed configuration (defined by the family, inside the library):
/// what the planner chose for it. Public code sees it only through Plan::parameters().
class PlanConfig {
 public:
  virtual ~PlanConfig() = default;
  /// Every field as (name, value), in a fixed order, for printing and comparing plans.
  virtual std::vector<std::pair<std::string, int64_t>> parameters() const = 0;
  /// A copy with one parameter changed, for hand-made plans (tests, timing the alternatives
  /// the planner decides between); null when `name` cannot be set this way or `value` is not
  /// one the family runs. Only parameters that change neither the result's bits nor the
  /// workspace are settable.
  virtual std::shared_ptr<const PlanConfig> with_parameter(std::string_view /*name*/, int64_t /*value*/) const {
    return nullptr;
  }
  /// For a family that runs another algorithm on a related problem (a gradient computed as
  /// another convolution): that algorithm's name; "" otherwise.
  virtual std::string via() const { return {}; }
};

struct Plan {
  Problem problem;
  Geometry geometry;
  Backend backend = Backend::cpu;
  std::string algorithm;        // the family's name in the registry
  Isa isa = Isa::generic;       // the instruction set its kernels run
  int64_t workspace_bytes = 0;  // scratch bytes execute() allocates
  int64_t budget_bytes = 0;     // the budget it was planned under
  int index_bits = 64;          // widest index type used inside tiles (32 only where proven)
  int threads = 1;  // the threads it runs on: at most ExecOptions::threads (kMinWorkPerThread)
  /// The family's configuration (never null in a plan make_plan returns).
  std::shared_ptr<const PlanConfig> config;
  /// Why each algorithm tried before the chosen one said no.
  std::vector<Rejection> rejected;

  /// config->parameters(), or none.
  std::vector<std::pair<std::string, int64_t>> parameters() const;
  /// Whether the chosen configuration multiplies float32 as TF32 (its tf32 parameter; a plan
  /// gets it only where ExecOptions::allow_tf32 permits and its algorithm has TF32 kernels).
  bool uses_tf32() const;
  std::string to_text() const;
  std::string to_json() const;
};

/// Plans a problem of any size (memory is checked when running; see check_memory). Throws
/// Error: invalid (bad problem), unsupported (no algorithm of the backend implements it, e.g. a
/// direction not implemented yet), out_of_memory (even the smallest tile exceeds the budget). Plans are cached (see plan_cache_stats): the same
/// problem with the same backend, device, budget, threads, ISA, algorithm and TF32 choice
/// returns the plan made the first time.
Plan make_plan(const Problem& problem, const ExecOptions& opt = {});

/// A hand-made plan: `plan` with one configuration parameter changed (see
/// PlanConfig::with_parameter). Error(invalid) naming the parameter when the algorithm cannot
/// run with that value. Results are the same bits; only speed changes.
Plan with_parameter(const Plan& plan, std::string_view name, int64_t value);

/// The plan cache: hits, misses, entries held, and its capacity (entries; the least recently
/// used one goes first). Thread-safe.
struct PlanCacheStats {
  int64_t hits = 0, misses = 0, entries = 0, capacity = 0;
};
PlanCacheStats plan_cache_stats();
/// Empties the cache (the counters stay).
void clear_plan_cache();

/// What a caller is about to allocate to run a plan, besides the plan's workspace.
enum class Allocating : uint8_t {
  workspace,  // nothing else: x, w and y exist (execute())
  output,     // the output y too (run(), or a binding that makes y)
  all,        // x, w and y too (the CLI, before it reads or draws the inputs)
};

/// Throws Error(out_of_memory), with the bytes, when what running `plan` will allocate does
/// not fit in the memory available now: on the CPU, the host memory available to this process
/// (MemAvailable, lowered by its cgroup's limit); on CUDA, the device's (execute() checks the
/// staging it really needs again). make_plan never checks memory: a plan reads only shapes,
/// so it can be made (and printed, to learn the bytes) for a problem of any size.
void check_memory(const Plan& plan, Allocating what);

/// Runs a plan on tensors whose shapes and dtype match plan.problem (checked; Error(invalid)
/// otherwise). The same three tensors serve every direction, which says the one written:
///   fwd:   y  = conv(x, w)            (x, w read; y written)
///   bwd_d: x <- dx from w and y = dy  (the input gradient, x's shape)
///   bwd_w: w <- dw from x and y = dy  (the weight gradient, w's shape)
/// The written tensor is complete on success.
void execute(const Plan& plan, const TensorView& x, const TensorView& w, const TensorView& y,
             const ExecOptions& opt = {});

/// Plans, checks memory (check_memory(plan, Allocating::output)) and runs, returning a new
/// output tensor (host memory). problem.dir must be fwd.
Tensor run(const Problem& problem, const TensorView& x, const TensorView& w,
           const ExecOptions& opt = {});
/// The same for the gradients: problem.dir must be bwd_d (returns dx from w and dy) or bwd_w
/// (returns dw from x and dy); dy has the forward output's shape.
Tensor run_backward_data(const Problem& problem, const TensorView& w, const TensorView& dy,
                         const ExecOptions& opt = {});
Tensor run_backward_weight(const Problem& problem, const TensorView& x, const TensorView& dy,
                           const ExecOptions& opt = {});

}  // namespace convnd
