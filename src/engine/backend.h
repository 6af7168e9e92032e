// The backend interface: what the planner and the public API need of a place that runs
// convolutions. src/cpu/backend.cpp and src/cuda/backend.cpp (or src/cuda/no_cuda.cpp in a
// build without CUDA) implement it; nothing above this layer includes a backend's own headers.
#pragma once
#include <convnd/plan.h>
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/algorithm.h"

namespace convnd {

class BackendImpl {
 public:
  virtual ~BackendImpl() = default;
  virtual Backend kind() const = 0;
  /// "" when the backend can run in this process; otherwise why not, in one line.
  virtual std::string unavailable_reason() const = 0;
  /// Its algorithms in planner order: most specialised first, the fallback last.
  virtual const std::vector<const Algorithm*>& algorithms() const = 0;
  /// The instruction set a plan of a `dtype` problem gets for these options (Error(unsupported)
  /// when the machine lacks a requested one).
  virtual Isa resolve_isa(const ExecOptions& opt, DType dtype) const = 0;
  /// The device plans are made for (-1 on the CPU; the current CUDA device otherwise).
  virtual int current_device() const = 0;
  /// Checks, before anything is allocated, that what a caller is about to allocate for a plan
  /// (`what`, besides the workspace) fits in the memory available now (Status out_of_memory
  /// with the bytes otherwise). The public check_memory() dispatches here.
  virtual Status check_memory(const Plan& plan, Allocating what) const = 0;
  /// Memory for a tensor on `device`, freed when the last owner lets go. Error(out_of_memory)
  /// when there is no room.
  /// `stream` (CUDA, may be null): the memory is used in that stream's order (a block another
  /// stream released is reused only after that stream's earlier work).
  virtual std::shared_ptr<void> allocate(int64_t bytes, int device, void* stream = nullptr) const = 0;
  /// Copies bytes between host memory (device -1) and this backend's memory.
  virtual void copy(void* dst, int dst_device, const void* src, int src_device, int64_t bytes) const = 0;
  /// Waits until the work this backend enqueued on `device` has finished.
  virtual void synchronize(int device) const = 0;
  /// Runs a plan made for this backend on tensors already checked against its problem (any
  /// strides; host tensors on the CUDA backend are staged). Throws Error.
  virtual void execute(const Plan& plan, const Algorithm& algorithm, const TensorView& x, const TensorView& w,
                       const TensorView& y, const ExecOptions& opt) const = 0;
};

const BackendImpl& cpu_backend();   // src/cpu/backend.cpp
const BackendImpl& cuda_backend();  // src/cuda/backend.cpp, or src/cuda/no_cuda.cpp

}  // namespace convnd
