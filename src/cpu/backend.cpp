// The CPU backend: its ordered algorithm list, the ISA a plan gets, the memory check, host
// memory, and the executor (dense copies of strided views, the workspace, the thread pool).
#include "engine/backend.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/checked.h"
#include "core/memory.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace convnd {

const Algorithm& pointwise_gemm_algorithm();
const Algorithm& depthwise_direct_algorithm();
const Algorithm& transposed_scatter_algorithm();
const Algorithm& im2col_gemm_algorithm();
const Algorithm& polyphase_gemm_algorithm();
const Algorithm& reference_algorithm();

namespace {

TensorView as_5d(const TensorView& t, int64_t a, const Dims& s, int64_t b) {
  return TensorView(t.data, t.dtype, Shape{a, s[0], s[1], s[2], b});
}

class CpuBackend final : public BackendImpl {
 public:
  Backend kind() const override { return Backend::cpu; }
  std::string unavailable_reason() const override { return {}; }

  // Most specialised first; the reference last, so every valid forward problem has a plan.
  const std::vector<const Algorithm*>& algorithms() const override {
    static const std::vector<const Algorithm*> list = {
        &pointwise_gemm_algorithm(),  &depthwise_direct_algorithm(), &transposed_scatter_algorithm(),
        &im2col_gemm_algorithm(),     &polyphase_gemm_algorithm(),   &reference_algorithm(),
    };
    return list;
  }

  Isa resolve_isa(const ExecOptions& opt) const override {
    if (opt.isa == Isa::automatic) return gemm_isa();
    if (!gemm_isa_supported(opt.isa))
      throw Error(ErrorKind::unsupported, "[plan] this CPU cannot run the " + std::string(isa_name(opt.isa)) +
                                              " path (it has " + std::string(isa_name(gemm_isa())) +
                                              "; the cpu paths are generic, avx2 and avx512)");
    return opt.isa;
  }

  int current_device() const override { return -1; }

  // What the caller will allocate (the output, and for the CLI the inputs too) plus the
  // workspace, against the host memory available now; tensors that already exist count nothing.
  Status check_memory(const Plan& plan, Allocating what) const override {
    const Geometry& g = plan.geometry;
    const int64_t es = dtype_size(g.dtype);
    int64_t bytes = plan.workspace_bytes;
    bool fits = true;
    if (what != Allocating::workspace) fits = fits && checked_add(bytes, g.y_elems() * es, &bytes);
    if (what == Allocating::all)
      fits = fits && checked_add(bytes, g.x_elems() * es, &bytes) && checked_add(bytes, g.w_elems() * es, &bytes);
    const std::string parts = what == Allocating::all      ? "input, weight, output and workspace"
                              : what == Allocating::output ? "output and workspace"
                                                           : "workspace";
    if (!fits) return Status(ErrorKind::out_of_memory, "[memory] the " + parts + " need more than 2^63 bytes");
    int64_t avail;
    if (!host_memory_fits(bytes, &avail))
      return Status(ErrorKind::out_of_memory, "[memory] the " + parts + " need " + std::to_string(bytes) +
                                                  " bytes; " + std::to_string(avail) +
                                                  " bytes are available to this process (MemAvailable, within "
                                                  "its cgroup limit)");
    return Status::Ok();
  }

  std::shared_ptr<void> allocate(int64_t bytes, int device) const override {
    if (device >= 0)
      throw Error(ErrorKind::invalid, "[tensor] the cpu backend allocates host memory only (device -1)");
    return allocate_host(bytes);
  }

  void copy(void* dst, int dst_device, const void* src, int src_device, int64_t bytes) const override {
    if (dst_device >= 0 || src_device >= 0)
      throw Error(ErrorKind::invalid, "[copy] the cpu backend copies host memory only");
    if (bytes > 0) std::memmove(dst, src, size_t(bytes));
  }

  void synchronize(int) const override {}  // every CPU call returns when its work is done

  void execute(const Plan& plan, const Algorithm& algo, const TensorView& x, const TensorView& w,
               const TensorView& y, const ExecOptions& opt) const override {
    const Problem& p = plan.problem;
    const Geometry& g = plan.geometry;
    auto with_problem = [&](const std::string& msg) {
      return msg.find("; problem: ") == std::string::npos ? msg + "; problem: " + to_string(p) : msg;
    };
    if (x.device >= 0 || w.device >= 0 || y.device >= 0)
      throw Error(ErrorKind::invalid, with_problem("[execute] the cpu backend needs host tensors"));
    if (plan.isa != Isa::generic && !gemm_isa_supported(plan.isa))
      throw Error(ErrorKind::unsupported,
                  with_problem("[execute] the plan's " + std::string(isa_name(plan.isa)) + " path does not run on this CPU"));

    // Algorithms read dense tensors; strided views are copied once (outside the workspace
    // budget, as they are the caller's data in another layout). What this allocates must fit
    // in the memory available now, checked before anything is allocated.
    {
      const int64_t es = dtype_size(g.dtype);
      int64_t bytes = plan.workspace_bytes;
      bool fits = true;
      if (!x.is_contiguous()) fits = fits && checked_add(bytes, g.x_elems() * es, &bytes);
      if (!w.is_contiguous()) fits = fits && checked_add(bytes, g.w_elems() * es, &bytes);
      if (!y.is_contiguous()) fits = fits && checked_add(bytes, g.y_elems() * es, &bytes);
      int64_t avail = 0;
      if (!fits || !host_memory_fits(bytes, &avail))
        throw Error(ErrorKind::out_of_memory,
                    with_problem("[execute] the workspace and dense copies of strided views need " +
                                 (fits ? std::to_string(bytes) : std::string("more than 2^63")) + " bytes; " +
                                 std::to_string(avail) + " bytes are available to this process"));
    }
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
    const TensorView x5 = as_5d(*xv, g.n, g.in, g.c);
    const TensorView w5 = as_5d(*wv, g.o, g.k, g.cg());
    const TensorView y5 = as_5d(y_dense ? y : yc.view(), g.n, g.out, g.o);

    std::shared_ptr<void> ws;
    if (plan.workspace_bytes > 0) {
      try {
        ws = allocate_host(plan.workspace_bytes);
      } catch (const Error&) {
        throw Error(ErrorKind::out_of_memory,
                    with_problem("[execute] could not allocate the plan's workspace of " +
                                 std::to_string(plan.workspace_bytes) + " bytes"));
      }
    }
    std::shared_ptr<ThreadPool> pool = ThreadPool::shared(plan.threads);
    RunContext ctx{plan, g, x5, w5, y5, ws.get(), pool.get(), &opt.progress};
    const Status st = algo.run(ctx);
    if (!st.ok()) throw Error(st.kind(), with_problem(st.message()));
    if (!y_dense) copy_from_dense(yc.data(), y);  // the dense result into the caller's strided view
  }
};

}  // namespace

const BackendImpl& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace convnd
