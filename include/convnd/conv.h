// The conv_general family of MLX, with options structs instead of long positional lists
// (MLX's two conv_general overloads let a `{2}` meant as input dilation bind to `groups`).
// Layouts are channels-last: x [N, spatial..., C], w [O, kernel..., C/groups],
// y [N, out..., O]. Per-axis option vectors may be empty (default), hold one value (applies
// to every axis) or one value per spatial axis.
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>
#include <convnd/tensor.h>

#include <cstdint>
#include <vector>

namespace convnd {

/// conv_general parameters. Defaults: stride 1, padding 0, dilations 1, groups 1, no flip.
struct ConvGeneralOptions {
  std::vector<int64_t> stride;           // >= 1
  std::vector<int64_t> padding_lo;       // may be negative (crops the dilated input)
  std::vector<int64_t> padding_hi;       // empty: same as padding_lo
  std::vector<int64_t> kernel_dilation;  // >= 1
  std::vector<int64_t> input_dilation;   // >= 1
  int64_t groups = 1;
  bool flip = false;  // true: convolution; false: cross-correlation
};

/// conv1d/2d/3d parameters: symmetric padding, no input dilation, no flip.
struct ConvOptions {
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  int64_t groups = 1;
};

/// conv_transpose1d/2d/3d parameters; the adjoint of the forward conv with the same
/// stride, padding, dilation and groups. 0 <= output_padding < max(stride, dilation).
struct ConvTransposeOptions {
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;  // >= 0
  std::vector<int64_t> dilation;
  std::vector<int64_t> output_padding;
  int64_t groups = 1;
};

Tensor conv_general(const TensorView& x, const TensorView& w, const ConvGeneralOptions& opt = {},
                    const ExecOptions& exec = {});
Tensor conv1d(const TensorView& x, const TensorView& w, const ConvOptions& opt = {},
              const ExecOptions& exec = {});
Tensor conv2d(const TensorView& x, const TensorView& w, const ConvOptions& opt = {},
              const ExecOptions& exec = {});
Tensor conv3d(const TensorView& x, const TensorView& w, const ConvOptions& opt = {},
              const ExecOptions& exec = {});
Tensor conv_transpose1d(const TensorView& x, const TensorView& w,
                        const ConvTransposeOptions& opt = {}, const ExecOptions& exec = {});
Tensor conv_transpose2d(const TensorView& x, const TensorView& w,
                        const ConvTransposeOptions& opt = {}, const ExecOptions& exec = {});
Tensor conv_transpose3d(const TensorView& x, const TensorView& w,
                        const ConvTransposeOptions& opt = {}, const ExecOptions& exec = {});

// ---- gradients (semantics.md, "Gradients") ------------------------------------------------
// For the forward call with the same options, and a cotangent dy of its output's shape:
// *_input returns dx = d<y, dy>/dx (shape x_shape), *_weight returns dw = d<y, dy>/dw (shape
// w_shape). The shape argument stands for the tensor being differentiated; the problem is the
// forward one, checked like it (Error(invalid) naming the problem string when dy's shape or
// dtype disagrees). dw is bitwise the same for any thread count, budget or run.

Tensor conv_general_input(const Shape& x_shape, const TensorView& w, const TensorView& dy,
                          const ConvGeneralOptions& opt = {}, const ExecOptions& exec = {});
Tensor conv_general_weight(const TensorView& x, const Shape& w_shape, const TensorView& dy,
                           const ConvGeneralOptions& opt = {}, const ExecOptions& exec = {});
/// rank 1, 2 or 3: the gradients of conv1d/2d/3d.
Tensor conv_input(int rank, const Shape& x_shape, const TensorView& w, const TensorView& dy,
                  const ConvOptions& opt = {}, const ExecOptions& exec = {});
Tensor conv_weight(int rank, const TensorView& x, const Shape& w_shape, const TensorView& dy,
                   const ConvOptions& opt = {}, const ExecOptions& exec = {});
/// rank 1, 2 or 3: the gradients of conv_transpose1d/2d/3d.
Tensor conv_transpose_input(int rank, const Shape& x_shape, const TensorView& w, const TensorView& dy,
                            const ConvTransposeOptions& opt = {}, const ExecOptions& exec = {});
Tensor conv_transpose_weight(int rank, const TensorView& x, const Shape& w_shape, const TensorView& dy,
                             const ConvTransposeOptions& opt = {}, const ExecOptions& exec = {});

/// The Problem a call describes (tensor shapes plus options), validated against the spec and
/// the tensors; throws Error(invalid) naming `api`. Exposed for the CLI and the bindings.
Problem problem_for_conv_general(const TensorView& x, const TensorView& w,
                                 const ConvGeneralOptions& opt, std::string_view api = "conv_general");
Problem problem_for_conv(int rank, const TensorView& x, const TensorView& w, const ConvOptions& opt);
Problem problem_for_conv_transpose(int rank, const TensorView& x, const TensorView& w,
                                   const ConvTransposeOptions& opt);

}  // namespace convnd
