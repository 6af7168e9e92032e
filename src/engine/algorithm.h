// The algorithm interface: what every entry of the registry (src/plan/registry.cpp) is. An
// algorithm family says which directions, backends, dtypes and instruction sets it serves and
// what its workspace is made of (Traits); for a problem it either says no with a reason or
// returns its typed configuration (a PlanConfig subclass of its own) with the workspace bytes;
// given a plan it runs exactly that configuration. Nothing here knows a backend's internals.
//
// Adding an algorithm: a file that defines `const Algorithm& NAME_algorithm()` plus one line
// in its backend's ordered list (src/cpu/backend.cpp or src/cuda/backend.cpp).
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace convnd {

class ThreadPool;

/// A small set of enum values (directions, dtypes, ISAs) as a bit mask.
template <class E>
struct EnumSet {
  uint32_t bits = 0;
  constexpr EnumSet() = default;
  constexpr EnumSet(std::initializer_list<E> values) {
    for (E e : values) bits |= 1u << unsigned(e);
  }
  constexpr bool has(E e) const { return (bits >> unsigned(e)) & 1u; }
};
using DirectionSet = EnumSet<Direction>;
using DTypeSet = EnumSet<DType>;
using IsaSet = EnumSet<Isa>;

inline constexpr DTypeSet kAllDTypes{DType::f32, DType::f16, DType::bf16, DType::f64};

/// What a registry entry serves. The planner checks direction, backend, dtype and ISA before
/// asking the algorithm itself, and says which one failed.
struct AlgorithmTraits {
  std::string_view name;       // unique; the plan's `algorithm`
  Backend backend;
  DirectionSet directions;
  DTypeSet dtypes;
  IsaSet isas;                 // the instruction sets it has kernels for
  std::string_view workspace;  // what its workspace holds, as a formula (docs, `plan`)
  /// A fallback (the reference) is chosen only for problems no other algorithm covers: when a
  /// faster one said no because of the budget alone, the planner reports out of memory
  /// instead of silently running the slow path.
  bool fallback = false;
  /// Reads the weight w through its strides where the backend receives it strided and w is
  /// read, not written (CPU: RunContext::w then has the caller's strides, [O, KD, KH, KW, C/g]
  /// in elements, 0 on unit axes); otherwise every tensor reaches run() dense.
  bool strided_weight = false;
};

/// What an algorithm may use when it plans.
struct PlanRequest {
  int64_t budget = 0;  // workspace bytes allowed
  int threads = 1;
  Isa isa = Isa::generic;  // the instruction set chosen for this plan (one of traits().isas)
  bool allow_tf32 = false;
  bool named = false;  // the caller named the algorithm (ExecOptions::algorithm): plan it even
                       // where it would step aside for a faster one further down the list
};

/// What an algorithm fills in when it says yes.
struct PlanChoice {
  std::shared_ptr<const PlanConfig> config;  // required
  int64_t workspace_bytes = 0;
  int index_bits = 64;
};

/// Dense views of g's three tensors in the 3-D geometry's layout over the given memory:
/// x [N, D, H, W, C], w [O, KD, KH, KW, C/g], y [N, PD, PH, PW, O] (device -1: host).
struct DenseViews {
  TensorView x, w, y;
};
inline DenseViews dense_views(const Geometry& g, const void* x, const void* w, const void* y, int device = -1) {
  auto view = [&](const void* data, int64_t a, const Dims& s, int64_t b) {
    TensorView v(const_cast<void*>(data), g.dtype, Shape{a, s[0], s[1], s[2], b});
    v.device = device;
    return v;
  };
  return {view(x, g.n, g.in, g.c), view(w, g.o, g.k, g.c / g.groups), view(y, g.n, g.out, g.o)};
}

/// Which of the three tensors (0: x, 1: w, 2: y) a direction writes: y for fwd, x (dx) for
/// bwd_d, w (dw) for bwd_w. The other two are read; for the gradients y holds dy.
inline int output_role(Direction d) { return d == Direction::fwd ? 2 : d == Direction::bwd_d ? 0 : 1; }

/// What an algorithm gets when it runs. x, w, y are dense (row-major) views in the 3-D
/// geometry's layout: x [N, D, H, W, C], w [O, KD, KH, KW, C/g], y [N, PD, PH, PW, O]. The
/// direction's output (output_role) is written; for bwd_d x is dx and y is dy, for bwd_w w is
/// dw and y is dy.
struct RunContext {
  const Plan& plan;
  const Geometry& g;
  const TensorView& x;
  const TensorView& w;
  const TensorView& y;
  void* workspace;  // plan.workspace_bytes bytes, 64-byte aligned (nullptr when 0)
  ThreadPool* pool;  // CPU backend only (nullptr on CUDA)
  /// Reports progress between tiles; returns false when the caller asked to stop, in which
  /// case the algorithm returns Status(interrupted) as soon as it can.
  const std::function<bool(double)>* progress;
  void* stream = nullptr;  // CUDA: the cudaStream_t to enqueue on (null: the legacy default stream)
  bool report(double fraction) const { return !progress || !*progress || (*progress)(fraction); }
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual const AlgorithmTraits& traits() const = 0;
  std::string_view name() const { return traits().name; }
  Backend backend() const { return traits().backend; }
  /// Returns "" and fills *out when it can implement the problem within req.budget; otherwise
  /// the reason it cannot (one line). When it could run except that its smallest tile exceeds
  /// the budget, it sets *min_workspace to the bytes that tile needs (for the out-of-memory
  /// message). Called only for problems whose direction, dtype and backend traits() serve.
  virtual std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out,
                           int64_t* min_workspace) const = 0;
  /// Runs plan exactly as configured (ctx.plan.config is this family's configuration type;
  /// config_of() checks it).
  virtual Status run(const RunContext& ctx) const = 0;
  /// For the input-gradient adapter (src/engine/gradient_adapters.h): `config`, this family's
  /// plan of the dual forward problem, changed to read the weight as the primal problem stores
  /// it, [g, C/g, K, O/g] of the dual's channels (its two channel axes swapped), so that no
  /// permuted copy is made; null (the default) when the family cannot for this dtype.
  virtual std::shared_ptr<const PlanConfig> with_swapped_weight(const PlanConfig& config, DType dtype) const {
    (void)config, (void)dtype;
    return nullptr;
  }
};

/// The plan's configuration as the family's own type T, or null when the plan carries another
/// type (a hand-made plan naming the wrong family), which run() reports as invalid.
template <class T>
const T* config_of(const Plan& plan) {
  return dynamic_cast<const T*>(plan.config.get());
}

/// Bytes rounded up to a whole 64-byte line (workspace pieces start on one).
inline int64_t round_up_64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

/// The Status run() returns for a plan whose configuration is not the family's.
inline Status wrong_config(const Plan& plan) {
  return Status(ErrorKind::invalid, "[execute] the plan's configuration is not one of " + plan.algorithm +
                                        " (a hand-made plan naming the wrong algorithm?)");
}

}  // namespace convnd
