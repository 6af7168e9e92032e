// The problem model: one convolution described as plain data, its validation, its one-line
// string form (../shared/spec/problem-strings.md), and its lowering to the single general
// problem that every algorithm and the reference compute.
#pragma once
#include <convnd/dtype.h>
#include <convnd/status.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace convnd {

enum class Op : uint8_t {
  conv,            // conv_general (problem string op=conv)
  conv_transpose,  // conv_transpose1d/2d/3d (problem string op=convT)
};

/// Which derivative of the convolution a problem asks for (benchdnn's --dir names). The other
/// fields always describe the forward problem y = conv(x, w); a gradient has the shape of the
/// tensor it differentiates (see semantics.md, "Gradients").
enum class Direction : uint8_t {
  fwd,    // y = conv(x, w)                     (problem string dir=fwd, the default)
  bwd_d,  // dx = d<y, dy>/dx from dy and w      (dir=bwd_d)
  bwd_w,  // dw = d<y, dy>/dw from x and dy      (dir=bwd_w)
};

/// "fwd", "bwd_d", "bwd_w".
std::string_view direction_name(Direction d);
/// Parses a direction name; returns false for anything else.
bool parse_direction(std::string_view s, Direction* out);

/// Per-axis values. Only the first `rank` entries mean anything; the rest keep their
/// defaults (1 for extents, strides and dilations, 0 for paddings), so that lowering to 3-D
/// needs no special cases.
using Dims = std::array<int64_t, 3>;

/// A convolution problem exactly as a user states it (shapes of x and w, every parameter).
/// For Op::conv_transpose, pad_lo == pad_hi is the transposed conv's symmetric `padding`
/// and outpad is its `output_padding`; idil and flip must keep their defaults.
struct Problem {
  Op op = Op::conv;
  int rank = 1;         // spatial rank: 1, 2 or 3
  int64_t n = 1;        // batch
  int64_t c = 1;        // input channels
  int64_t o = 1;        // output channels
  int64_t groups = 1;
  Dims in{1, 1, 1};     // input spatial extents
  Dims k{1, 1, 1};      // kernel extents
  Dims stride{1, 1, 1};
  Dims pad_lo{0, 0, 0}; // may be negative for op=conv (crop after dilation)
  Dims pad_hi{0, 0, 0};
  Dims dil{1, 1, 1};    // kernel dilation
  Dims idil{1, 1, 1};   // input dilation (op=conv only)
  Dims outpad{0, 0, 0}; // output padding (op=convT only)
  bool flip = false;    // op=conv only
  DType dtype = DType::f32;
  Direction dir = Direction::fwd;

  bool operator==(const Problem&) const = default;
};

/// The 3-D conv_general every problem lowers to. 1-D and 2-D problems get leading unit axes,
/// which leaves the channels-last memory layout unchanged: x [N, D, H, W, C],
/// w [O, KD, KH, KW, C/g], y [N, PD, PH, PW, O].
struct Geometry {
  int64_t n, c, o, groups;
  Dims in, k, out;          // input, kernel and output extents
  Dims stride, lo, hi;      // stride; padding of the dilated input (negative crops)
  Dims kdil, idil;          // kernel and input dilation
  bool flip;
  DType dtype;
  Direction dir;            // the derivative asked for; the fields above are the forward conv

  int64_t cg() const { return c / groups; }  // input channels per group
  int64_t og() const { return o / groups; }  // output channels per group
  int64_t kernel_volume() const { return k[0] * k[1] * k[2]; }
  int64_t out_volume() const { return out[0] * out[1] * out[2]; }
  int64_t in_volume() const { return in[0] * in[1] * in[2]; }
  int64_t x_elems() const { return n * in_volume() * c; }
  int64_t w_elems() const { return o * kernel_volume() * cg(); }
  int64_t y_elems() const { return n * out_volume() * o; }
  /// Multiply-adds that touch real input or padding: N·O·C/g times, per axis, the number of
  /// (output, tap) pairs whose tap does not land on a zero inserted by input dilation. For a
  /// conv without input dilation that is N·P·O·K·C/g; for a transposed conv it is the work
  /// of its scatter form. GFLOP/s figures are 2·macs()/time.
  double macs() const;
};

/// Checks every rule of the spec and computes the geometry with checked 64-bit math. `api`
/// names the operation in messages ("conv_general", "conv2d", "conv_transpose1d", ...).
/// On failure returns an invalid status whose message ends with "; problem: <string>".
Status validate(const Problem& p, Geometry* out, std::string_view api = {});

/// validate() that throws Error.
Geometry lower(const Problem& p, std::string_view api = {});

/// Shapes of the three tensors (x, w, y), rank+2 entries each. Requires a valid problem.
struct TensorShapes {
  std::array<int64_t, 5> x{}, w{}, y{};
  int ndim = 0;
};
TensorShapes tensor_shapes(const Problem& p, const Geometry& g);

/// Parses a problem string. The problem is syntactically checked here (unknown, repeated or
/// malformed fields, ranks that disagree); semantic rules are validate()'s.
Status parse_problem(std::string_view text, Problem* out);
Problem parse_problem(std::string_view text);  // throws Error(invalid)

/// The canonical string: fields in the table order of problem-strings.md, defaults left out,
/// per-axis values that are all equal written once.
std::string to_string(const Problem& p);

/// Name used in messages for a problem's operation when the caller gave none.
std::string_view default_api_name(const Problem& p);

}  // namespace convnd
