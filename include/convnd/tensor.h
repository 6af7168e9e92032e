// Host tensors: a non-owning view (dtype, 64-bit shape and strides in elements, data pointer)
// and a small owning tensor. Enough for the conv API; not a general array library.
#pragma once
#include <convnd/dtype.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace convnd {

using Shape = std::vector<int64_t>;

/// A view of memory someone else owns. Strides are in elements and may be any non-negative
/// values (non-contiguous views are accepted; the API copies them when an algorithm needs
/// dense data).
struct TensorView {
  DType dtype = DType::f32;
  Shape shape;
  Shape strides;  // elements; same length as shape
  void* data = nullptr;
  int32_t device = -1;  // -1: host memory; >= 0: CUDA device ordinal

  TensorView() = default;
  /// A dense row-major (C order) view.
  TensorView(void* data, DType dtype, Shape shape);
  TensorView(void* data, DType dtype, Shape shape, Shape strides);

  int ndim() const { return int(shape.size()); }
  /// Number of elements; 0 for an empty shape list is never produced (a 0-d view has 1).
  int64_t numel() const;
  int64_t nbytes() const { return numel() * dtype_size(dtype); }
  /// True when the strides are the dense row-major strides of the shape.
  bool is_contiguous() const;
  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
};

/// Dense row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);

/// An owning, dense, 64-byte aligned tensor. Copies share the buffer (like a shared_ptr).
class Tensor {
 public:
  Tensor() = default;
  /// Uninitialised storage. Throws Error(out_of_memory) naming the bytes when allocation fails,
  /// and Error(invalid) when the byte count overflows int64.
  static Tensor empty(DType dtype, const Shape& shape);
  /// The same on a CUDA device (device >= 0; -1 is host memory). Error(unsupported) in a
  /// build without CUDA, Error(out_of_memory) when the device has no room.
  static Tensor empty(DType dtype, const Shape& shape, int device);
  /// The same for use on a CUDA stream (a cudaStream_t; null: as above): memory another stream
  /// released is handed out only after that stream's earlier work, without waiting on the host.
  /// On a stream capturing a CUDA graph, the tensor gets memory of its own (not the cache's),
  /// at an address every replay of the graph writes, freed when the tensor goes.
  static Tensor empty(DType dtype, const Shape& shape, int device, void* cuda_stream);
  static Tensor zeros(DType dtype, const Shape& shape);
  /// A tensor over memory that `storage` keeps alive (view.data points into it).
  static Tensor from_storage(std::shared_ptr<void> storage, TensorView view);

  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }
  DType dtype() const { return view_.dtype; }
  const Shape& shape() const { return view_.shape; }
  int64_t numel() const { return view_.numel(); }
  int64_t nbytes() const { return view_.nbytes(); }
  void* data() const { return view_.data; }
  template <class T>
  T* ptr() const { return static_cast<T*>(view_.data); }
  bool defined() const { return storage_ != nullptr; }

 private:
  std::shared_ptr<void> storage_;
  TensorView view_;
};

/// Copies src into a new dense tensor (same dtype).
Tensor contiguous_copy(const TensorView& src);

/// The inverse: writes dense row-major host data of dst's shape and dtype into dst's view (any
/// strides), element by element.
void copy_from_dense(const void* dense, const TensorView& dst);

/// Reads element i (row-major logical index over shape, honouring strides) as double.
double element_as_double(const TensorView& t, const Shape& index);

}  // namespace convnd
