// Validation and lowering of a Problem to the 3-D conv_general Geometry. Every rule of
// ../shared/spec/semantics.md is checked here, once, with checked 64-bit math.
#include <convnd/problem.h>

#include <algorithm>

#include "core/checked.h"
#include "core/phases.h"

namespace convnd {

std::string_view direction_name(Direction d) {
  switch (d) {
    case Direction::fwd: return "fwd";
    case Direction::bwd_d: return "bwd_d";
    case Direction::bwd_w: return "bwd_w";
  }
  return "?";
}

bool parse_direction(std::string_view s, Direction* out) {
  for (Direction d : {Direction::fwd, Direction::bwd_d, Direction::bwd_w})
    if (s == direction_name(d)) {
      *out = d;
      return true;
    }
  return false;
}

std::string_view default_api_name(const Problem& p) {
  static const char* convt_names[] = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"};
  if (p.op == Op::conv) return "conv_general";
  return (p.rank >= 1 && p.rank <= 3) ? convt_names[p.rank - 1] : "conv_transpose";
}

namespace {

struct Checker {
  const Problem& p;
  std::string_view api;
  Status fail(const std::string& what) const {
    std::string msg = "[" + std::string(api) + "] " + what + "; problem: " + to_string(p);
    return Status(ErrorKind::invalid, msg);
  }
};

std::string axis_label(const Problem& p, int i) {
  return p.rank == 1 ? std::string() : " on axis " + std::to_string(i);
}

}  // namespace

Status validate(const Problem& p, Geometry* out, std::string_view api) {
  if (api.empty()) api = default_api_name(p);
  Checker ck{p, api};
  if (p.rank < 1 || p.rank > 3)
    return ck.fail("spatial rank (" + std::to_string(p.rank) + ") must be 1, 2 or 3");
  if (p.n < 1) return ck.fail("batch size n (" + std::to_string(p.n) + ") must be >= 1");
  if (p.c < 1) return ck.fail("input channels c (" + std::to_string(p.c) + ") must be >= 1");
  if (p.o < 1) return ck.fail("output channels o (" + std::to_string(p.o) + ") must be >= 1");
  if (p.groups < 1) return ck.fail("groups g (" + std::to_string(p.groups) + ") must be >= 1");
  if (p.c % p.groups)
    return ck.fail("input channels (" + std::to_string(p.c) + ") must be divisible by groups (" +
                   std::to_string(p.groups) + ")");
  if (p.o % p.groups)
    return ck.fail("output channels (" + std::to_string(p.o) + ") must be divisible by groups (" +
                   std::to_string(p.groups) + ")");

  struct Field {
    const char* name;
    const Dims& v;
    int64_t min;
    int64_t unused;  // value required on axes beyond the rank
  };
  const Field fields[] = {
      {"input extent in", p.in, 1, 1},   {"kernel extent k", p.k, 1, 1},
      {"stride", p.stride, 1, 1},        {"kernel dilation dil", p.dil, 1, 1},
      {"input dilation idil", p.idil, 1, 1}, {"output padding outpad", p.outpad, 0, 0},
      {"padding pad", p.pad_lo, INT64_MIN, 0}, {"padding pad", p.pad_hi, INT64_MIN, 0},
  };
  for (const Field& f : fields)
    for (int i = 0; i < 3; ++i) {
      if (i < p.rank && f.v[i] < f.min)
        return ck.fail(std::string(f.name) + " (" + std::to_string(f.v[i]) + ") must be >= " +
                       std::to_string(f.min) + axis_label(p, i));
      if (i >= p.rank && f.v[i] != f.unused)
        return ck.fail(std::string(f.name) + " has a value on axis " + std::to_string(i) +
                       " beyond the rank (" + std::to_string(p.rank) + ")");
    }

  Geometry g{};
  g.n = p.n;
  g.c = p.c;
  g.o = p.o;
  g.groups = p.groups;
  g.dtype = p.dtype;
  g.dir = p.dir;
  // 1-D and 2-D problems become 3-D with leading unit axes: same memory layout.
  const int shift = 3 - p.rank;
  for (int j = 0; j < 3; ++j) {
    g.in[j] = 1;
    g.k[j] = 1;
    g.stride[j] = 1;
    g.kdil[j] = 1;
    g.idil[j] = 1;
    g.lo[j] = g.hi[j] = 0;
  }

  if (p.op == Op::conv) {
    for (int i = 0; i < p.rank; ++i)
      if (p.outpad[i] != 0)
        return ck.fail("output padding outpad applies to op=convT only");
    g.flip = p.flip;
    for (int i = 0; i < p.rank; ++i) {
      int j = i + shift;
      g.in[j] = p.in[i];
      g.k[j] = p.k[i];
      g.stride[j] = p.stride[i];
      g.kdil[j] = p.dil[i];
      g.idil[j] = p.idil[i];
      g.lo[j] = p.pad_lo[i];
      g.hi[j] = p.pad_hi[i];
    }
  } else {
    if (p.flip) return ck.fail("flip applies to op=conv only (a transposed conv flips by definition)");
    for (int i = 0; i < p.rank; ++i) {
      if (p.idil[i] != 1) return ck.fail("input dilation idil applies to op=conv only");
      if (p.pad_lo[i] != p.pad_hi[i])
        return ck.fail("a transposed conv takes one symmetric padding per axis, got " +
                       std::to_string(p.pad_lo[i]) + ":" + std::to_string(p.pad_hi[i]) +
                       axis_label(p, i));
      if (p.pad_lo[i] < 0)
        return ck.fail("padding pad (" + std::to_string(p.pad_lo[i]) + ") must be >= 0" +
                       axis_label(p, i));
      int64_t limit = std::max(p.stride[i], p.dil[i]);
      if (p.outpad[i] >= limit)
        return ck.fail("output padding outpad (" + std::to_string(p.outpad[i]) +
                       ") must be smaller than max(stride, dilation) (" + std::to_string(limit) +
                       ")" + axis_label(p, i));
    }
    // conv_transpose == conv_general(stride 1, lo = d(K-1) - p, hi = lo + output_padding,
    // kernel dilation d, input dilation s, flip) under dilate-then-pad.
    g.flip = true;
    for (int i = 0; i < p.rank; ++i) {
      int j = i + shift;
      int64_t span;
      if (!checked_mul(p.dil[i], p.k[i] - 1, &span))
        return ck.fail("kernel span dil*(k-1) overflows int64" + axis_label(p, i));
      g.in[j] = p.in[i];
      g.k[j] = p.k[i];
      g.stride[j] = 1;
      g.kdil[j] = p.dil[i];
      g.idil[j] = p.stride[i];
      g.lo[j] = span - p.pad_lo[i];  // span >= 0 and pad >= 0: no overflow
      if (!checked_add(g.lo[j], p.outpad[i], &g.hi[j]))
        return ck.fail("padding dil*(k-1) - pad + outpad overflows int64" + axis_label(p, i));
    }
  }

  // Output extents: dilate, pad (negative crops), then slide the dilated kernel.
  for (int j = 0; j < 3; ++j) {
    int i = j - shift;
    int64_t dilated, padded, extent;
    if (!checked_mul(g.idil[j], g.in[j] - 1, &dilated) || !checked_add(dilated, 1, &dilated) ||
        !checked_add(dilated, g.lo[j], &padded) || !checked_add(padded, g.hi[j], &padded))
      return ck.fail("padded input extent overflows int64" + axis_label(p, i));
    if (!checked_mul(g.kdil[j], g.k[j] - 1, &extent) || !checked_add(extent, 1, &extent))
      return ck.fail("dilated kernel extent overflows int64" + axis_label(p, i));
    if (padded < extent) {
      if (p.op == Op::conv_transpose)
        return ck.fail("output extent (I-1)*stride - 2*padding + dil*(k-1) + outpad + 1 = " +
                       std::to_string(padded - extent + 1) + " must be >= 1" + axis_label(p, i));
      return ck.fail("dilated kernel extent (" + std::to_string(extent) +
                     ") exceeds the dilated, padded input extent (" + std::to_string(padded) +
                     ")" + axis_label(p, i));
    }
    g.out[j] = (padded - extent) / g.stride[j] + 1;
  }

  // Every algorithm computes positions in the dilated, padded input as p·stride + k·kdil − lo
  // (and the padded extent with |lo| + |hi|). Those intermediates must fit in int64 too, or a
  // kernel's index math overflows (undefined behaviour) on problems whose output extent alone
  // looks fine, such as pad=-2^63:2^63-1.
  for (int j = 0; j < 3; ++j) {
    int i = j - shift;
    int64_t reach, tap_span, dilated, room;
    const bool fits = g.lo[j] != INT64_MIN && g.hi[j] != INT64_MIN &&
                      checked_mul(g.out[j] - 1, g.stride[j], &reach) &&
                      checked_mul(g.k[j] - 1, g.kdil[j], &tap_span) && checked_add(reach, tap_span, &reach) &&
                      checked_add(reach, -g.lo[j], &reach) && checked_add(reach, g.lo[j] < 0 ? -g.lo[j] : g.lo[j], &room) &&
                      checked_mul(g.idil[j], g.in[j] - 1, &dilated) &&
                      checked_add(dilated, g.lo[j] < 0 ? -g.lo[j] : g.lo[j], &dilated) &&
                      checked_add(dilated, g.hi[j] < 0 ? -g.hi[j] : g.hi[j], &dilated);
    if (!fits)
      return ck.fail("index arithmetic (output position x stride + kernel span - padding) overflows int64" +
                     axis_label(p, i));
  }

  // Element and byte counts of the three tensors must fit in int64.
  const int64_t esize = dtype_size(p.dtype);
  auto count = [&](std::initializer_list<int64_t> f, const char* what, Status* st) {
    int64_t r;
    if (!checked_product(f.begin(), f.end(), &r) || !checked_mul(r, esize, &r)) {
      *st = ck.fail(std::string(what) + " size in bytes overflows int64");
      return false;
    }
    return true;
  };
  Status st;
  if (!count({g.n, g.in[0], g.in[1], g.in[2], g.c}, "input", &st)) return st;
  if (!count({g.o, g.k[0], g.k[1], g.k[2], g.c / g.groups}, "weight", &st)) return st;
  if (!count({g.n, g.out[0], g.out[1], g.out[2], g.o}, "output", &st)) return st;

  if (out) *out = g;
  return Status::Ok();
}

double Geometry::macs() const {
  double pairs = 1;
  for (int j = 0; j < 3; ++j) pairs *= axis_tap_pairs(*this, j);
  return double(n) * double(o) * double(cg()) * pairs;
}

Geometry lower(const Problem& p, std::string_view api) {
  Geometry g;
  throw_if_error(validate(p, &g, api));
  return g;
}

TensorShapes tensor_shapes(const Problem& p, const Geometry& g) {
  TensorShapes s;
  s.ndim = p.rank + 2;
  const int shift = 3 - p.rank;
  s.x[0] = g.n;
  s.w[0] = g.o;
  s.y[0] = g.n;
  for (int i = 0; i < p.rank; ++i) {
    s.x[1 + i] = g.in[i + shift];
    s.w[1 + i] = g.k[i + shift];
    s.y[1 + i] = g.out[i + shift];
  }
  s.x[p.rank + 1] = g.c;
  s.w[p.rank + 1] = g.c / g.groups;
  s.y[p.rank + 1] = g.o;
  return s;
}

}  // namespace convnd
