#include "core/gradient.h"

namespace convnd {

Geometry dual_forward(const Geometry& g) {
  Geometry d = g;
  d.c = g.o;
  d.o = g.c;
  d.in = g.out;
  d.out = g.in;
  d.stride = g.idil;
  d.idil = g.stride;
  d.flip = !g.flip;
  d.dir = Direction::fwd;
  for (int j = 0; j < 3; ++j) {
    // Positions in the dilated dy: m = i·idil + k''·d - lo' with k'' the toggled tap (see the
    // header); the padded extent then holds exactly (in-1)·idil + d(K-1) + 1 positions, so
    // the dual's output extent is g.in.
    d.lo[j] = g.kdil[j] * (g.k[j] - 1) - g.lo[j];
    d.hi[j] = (g.in[j] - 1) * g.idil[j] - (g.out[j] - 1) * g.stride[j] + g.lo[j];
  }
  return d;
}

WeightDual weight_dual(const Geometry& g) {
  const int64_t og = g.og(), cg = g.cg(), k = g.kernel_volume();
  WeightDual w{};
  w.shape[0] = g.groups;
  w.shape[1] = og;
  w.shape[2] = k;
  w.shape[3] = cg;
  w.strides[0] = cg * k * og;  // group
  w.strides[1] = 1;            // o: innermost in w'
  w.strides[2] = og;           // tap
  w.strides[3] = k * og;       // c: outermost within the group in w'
  return w;
}

}  // namespace convnd
