#include <convnd/status.h>
#include <convnd/tensor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/checked.h"
#include "core/memory.h"

namespace convnd {

Shape contiguous_strides(const Shape& shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

TensorView::TensorView(void* d, DType t, Shape sh)
    : dtype(t), shape(std::move(sh)), strides(contiguous_strides(shape)), data(d) {}

TensorView::TensorView(void* d, DType t, Shape sh, Shape st)
    : dtype(t), shape(std::move(sh)), strides(std::move(st)), data(d) {}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

bool TensorView::is_contiguous() const {
  if (strides.size() != shape.size()) return false;
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

// Bytes of a dense tensor, or Error(invalid). The strides multiply every extent but the
// first, so the product of max(e, 1) must fit too: a zero extent makes the element count 0
// but not the strides small.
int64_t dense_bytes(DType dtype, const Shape& shape) {
  int64_t n = 1, span = 1, bytes;
  for (int64_t e : shape)
    if (e < 0 || !checked_mul(n, e, &n) || !checked_mul(span, std::max<int64_t>(e, 1), &span))
      throw Error(ErrorKind::invalid, "[tensor] shape has a negative extent or its size overflows int64");
  if (!checked_mul(n, dtype_size(dtype), &bytes))
    throw Error(ErrorKind::invalid, "[tensor] byte count overflows int64");
  return bytes;
}

Tensor Tensor::empty(DType dtype, const Shape& shape) {
  std::shared_ptr<void> storage = allocate_host(dense_bytes(dtype, shape));
  TensorView view(storage.get(), dtype, shape);
  return from_storage(std::move(storage), std::move(view));
}

Tensor Tensor::from_storage(std::shared_ptr<void> storage, TensorView view) {
  Tensor t;
  t.storage_ = std::move(storage);
  t.view_ = std::move(view);
  return t;
}

Tensor Tensor::zeros(DType dtype, const Shape& shape) {
  Tensor t = empty(dtype, shape);
  std::memset(t.data(), 0, size_t(t.nbytes()));
  return t;
}

namespace {

// Copies between a dense buffer and a strided view, element i of the dense buffer being the
// view's i-th element in row-major order (to_dense: dense[i] = view[i]; else view[i] =
// dense[i], in that order, so a broadcast axis keeps the last write as before). The innermost
// dimension is one typed loop (a memcpy when it is unit-stride): a framework's tensor in its
// own layout (a weight (O, C, kh, kw) read as (O, kh, kw, C), say) costs about a nanosecond an
// element, where an element-by-element walk of the index costs several.
template <class E>
void copy_rows(E* dense, E* view, const TensorView& v, bool to_dense) {
  const int nd = v.ndim();
  const int64_t inner = v.shape[size_t(nd - 1)], step = v.strides[size_t(nd - 1)];
  const int64_t rows = inner == 0 ? 0 : v.numel() / inner;
  std::vector<int64_t> idx(size_t(std::max(nd - 1, 0)), 0);
  int64_t off = 0;
  for (int64_t r = 0; r < rows; ++r) {
    E* row = view + off;
    if (step == 1) {
      if (to_dense) std::memcpy(dense, row, size_t(inner) * sizeof(E));
      else std::memcpy(row, dense, size_t(inner) * sizeof(E));
    } else if (to_dense) {
      for (int64_t i = 0; i < inner; ++i) dense[i] = row[i * step];
    } else {
      for (int64_t i = 0; i < inner; ++i) row[i * step] = dense[i];
    }
    dense += inner;
    for (int d = nd - 2; d >= 0; --d) {  // the next row's offset
      if (++idx[size_t(d)] < v.shape[size_t(d)]) {
        off += v.strides[size_t(d)];
        break;
      }
      off -= v.strides[size_t(d)] * (v.shape[size_t(d)] - 1);
      idx[size_t(d)] = 0;
    }
  }
}

// copy_rows on the view's elements as 2-, 4- or 8-byte words (every dtype's size).
void copy_strided(void* dense, const TensorView& v, bool to_dense) {
  if (v.numel() == 0) return;
  if (v.ndim() == 0) {
    const size_t es = size_t(dtype_size(v.dtype));
    if (to_dense) std::memcpy(dense, v.data, es);
    else std::memcpy(v.data, dense, es);
    return;
  }
  switch (dtype_size(v.dtype)) {
    case 2: copy_rows(static_cast<uint16_t*>(dense), static_cast<uint16_t*>(v.data), v, to_dense); return;
    case 4: copy_rows(static_cast<uint32_t*>(dense), static_cast<uint32_t*>(v.data), v, to_dense); return;
    case 8: copy_rows(static_cast<uint64_t*>(dense), static_cast<uint64_t*>(v.data), v, to_dense); return;
  }
  throw Error(ErrorKind::invalid, "[tensor] elements of " + std::to_string(dtype_size(v.dtype)) + " bytes");
}

}  // namespace

Tensor contiguous_copy(const TensorView& src) {
  Tensor dst = Tensor::empty(src.dtype, src.shape);
  if (src.is_contiguous()) {
    std::memcpy(dst.data(), src.data, size_t(src.nbytes()));
    return dst;
  }
  copy_strided(dst.data(), src, true);
  return dst;
}

double element_as_double(const TensorView& t, const Shape& index) {
  int64_t off = 0;
  for (size_t d = 0; d < index.size(); ++d) off += index[d] * t.strides[d];
  return load_as_double(static_cast<const char*>(t.data) + off * dtype_size(t.dtype), t.dtype);
}

void copy_from_dense(const void* dense, const TensorView& dst) {
  copy_strided(const_cast<void*>(dense), dst, false);  // only read when !to_dense
}

}  // namespace convnd
