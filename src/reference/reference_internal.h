#pragma once
#include <convnd/problem.h>
#include <convnd/tensor.h>

namespace convnd {

/// The oracle on output rows [row_begin, row_end), a row being one (n, p0, p1) of the 3-D
/// geometry. Views as for reference_conv.
void reference_conv_rows(const Geometry& g, const TensorView& x, const TensorView& w, const TensorView& y,
                         int64_t row_begin, int64_t row_end);

}  // namespace convnd
