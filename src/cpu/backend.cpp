// The CPU backend: its ordered algorithm list, the ISA a plan gets, the memory check, host
// memory, and the executor (dense copies of strided views, the workspace, the thread pool).
#include "engine/backend.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>

#include "core/checked.h"
#include "core/memory.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace convnd {

const Algorithm& pointwise_gemm_algorithm();
const Algorithm& depthwise_direct_algorithm();
const Algorithm& transposed_scatter_algorithm();
const Algorithm& grouped_direct_algorithm();
const Algorithm& im2col_gemm_algorithm();
const Algorithm& kernel_stride_gemm_algorithm();
const Algorithm& polyphase_gemm_algorithm();
const Algorithm& reference_algorithm();
const Algorithm& data_grad_algorithm();
const Algorithm& weight_grad_dual_algorithm();
const Algorithm& weight_grad_depthwise_algorithm();
const Algorithm& weight_grad_gemm_algorithm();

namespace {

class CpuBackend final : public BackendImpl {
 public:
  Backend kind() const override { return Backend::cpu; }
  std::string unavailable_reason() const override { return {}; }

  // Most specialised first; the reference last among the forward ones, so every valid forward
  // problem has a plan (and so every input gradient); weight_grad_gemm takes any bwd_w.
  const std::vector<const Algorithm*>& algorithms() const override {
    static const std::vector<const Algorithm*> list = {
        &pointwise_gemm_algorithm(), &depthwise_direct_algorithm(), &transposed_scatter_algorithm(),
        &grouped_direct_algorithm(), &im2col_gemm_algorithm(),      &kernel_stride_gemm_algorithm(),
        &polyphase_gemm_algorithm(), &reference_algorithm(),
        // The gradients: bwd_d as the dual forward conv (planned with the list above); bwd_w
        // of a transposed conv through its dual, then depthwise, then any conv.
        &data_grad_algorithm(),       &weight_grad_dual_algorithm(), &weight_grad_depthwise_algorithm(),
        &weight_grad_gemm_algorithm(),
    };
    return list;
  }

  // The bf16 levels add bf16 GEMM kernels only, so automatic plans stop at avx512 for every
  // dtype but bf16, which gets AMX tiles where the CPU has them: on a 16-core Sapphire Rapids
  // the GEMM layers of the CPU suite ran 1.9-4.7x faster there than through the f32 kernels
  // (geometric mean 1.7x over the suite, the layers without a GEMM unchanged; bench/results/
  // cpu-bf16-isa-2026-12-07-spr.md). Not avx512_bf16: its VDPBF16PS kernels were 1.3-1.5x
  // slower than the f32 ones there; it runs only when asked for (ExecOptions::isa, --isa, isa=).
  Isa resolve_isa(const ExecOptions& opt, DType dtype) const override {
    if (opt.isa == Isa::automatic) {
      const Isa best = gemm_isa();
      if (dtype == DType::bf16 && best == Isa::amx) return Isa::amx;
      return best > Isa::avx512 ? Isa::avx512 : best;
    }
    if (!gemm_isa_supported(opt.isa))
      throw Error(ErrorKind::unsupported, "[plan] this CPU cannot run the " + std::string(isa_name(opt.isa)) +
                                              " path (it has " + std::string(isa_name(gemm_isa())) +
                                              "; the cpu paths are generic, avx2, avx512, avx512_bf16 and amx)");
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
    const int64_t elems[3] = {g.x_elems(), g.w_elems(), g.y_elems()};
    const int out = output_role(g.dir);  // the tensor the call writes (y, dx or dw)
    for (int r = 0; r < 3; ++r)
      if ((what != Allocating::workspace && r == out) || what == Allocating::all)
        fits = fits && checked_add(bytes, elems[r] * es, &bytes);
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

  std::shared_ptr<void> allocate(int64_t bytes, int device, void* = nullptr) const override {
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
    // budget, as they are the caller's data in another layout). The direction says which of
    // x, w, y is written (y, or dx for bwd_d, or dw for bwd_w); the others are read. What
    // this allocates must fit in the memory available now, checked before anything is.
    const int out = output_role(g.dir);
    const TensorView* given[3] = {&x, &w, &y};
    const int64_t elems[3] = {g.x_elems(), g.w_elems(), g.y_elems()};
    // A read weight that the algorithm takes strided is passed as it is (a tiny conv's weight
    // in PyTorch's layout: the copy cost as much as a third of its conv, stop 28's callgrind).
    const bool w_as_given = out != 1 && algo.traits().strided_weight && !w.is_contiguous();
    auto copied = [&](int r) { return !given[r]->is_contiguous() && !(r == 1 && w_as_given); };
    {
      const int64_t es = dtype_size(g.dtype);
      int64_t bytes = plan.workspace_bytes;
      bool fits = true;
      for (int r = 0; r < 3; ++r)
        if (copied(r)) fits = fits && checked_add(bytes, elems[r] * es, &bytes);
      int64_t avail = 0;
      if (!fits || !host_memory_fits(bytes, &avail))
        throw Error(ErrorKind::out_of_memory,
                    with_problem("[execute] the workspace and dense copies of strided views need " +
                                 (fits ? std::to_string(bytes) : std::string("more than 2^63")) + " bytes; " +
                                 std::to_string(avail) + " bytes are available to this process"));
    }
    Tensor dense[3];
    const TensorView* view[3] = {&x, &w, &y};
    for (int r = 0; r < 3; ++r) {
      if (!copied(r)) continue;
      dense[r] = r == out ? Tensor::empty(given[r]->dtype, given[r]->shape) : contiguous_copy(*given[r]);
      view[r] = &dense[r].view();
    }
    DenseViews v5 = dense_views(g, view[0]->data, view[1]->data, view[2]->data);
    if (w_as_given) {
      // [O, k..., C/g] of rank + 2 axes as [O, KD, KH, KW, C/g]: the leading kernel axes of a
      // 1-D or 2-D conv are unit (stride 0).
      const int r = w.ndim() - 2;
      Shape strides(5, 0);
      strides[0] = w.strides[0];
      strides[4] = w.strides[size_t(r + 1)];
      for (int a = 0; a < r; ++a) strides[size_t(4 - r + a)] = w.strides[size_t(1 + a)];
      v5.w = TensorView(w.data, g.dtype, v5.w.shape, std::move(strides));
    }

    std::shared_ptr<void> ws;
    if (plan.workspace_bytes > 0) {
      try {
        ws = allocate_host(plan.workspace_bytes);  // a finished call's block when one fits (host_blocks.cpp)
      } catch (const Error&) {
        throw Error(ErrorKind::out_of_memory,
                    with_problem("[execute] could not allocate the plan's workspace of " +
                                 std::to_string(plan.workspace_bytes) + " bytes"));
      }
    }
    std::shared_ptr<ThreadPool> pool = ThreadPool::shared(plan.threads);
    RunContext ctx{plan, g, v5.x, v5.w, v5.y, ws.get(), pool.get(), &opt.progress};
    const Status st = algo.run(ctx);
    if (!st.ok()) throw Error(st.kind(), with_problem(st.message()));
    // The dense result into the caller's strided view.
    if (dense[out].defined()) copy_from_dense(dense[out].data(), *given[out]);
  }
};

}  // namespace

const BackendImpl& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace convnd
