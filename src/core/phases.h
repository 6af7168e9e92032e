// Stride-phase (polyphase) decomposition. A conv_general with input dilation (every
// transposed conv lowers to one) does most of its multiply-adds on inserted zeros. Grouping
// the output positions of each axis by phase makes every group a dense conv (no input
// dilation) with a sub-kernel: only the taps that land on real input remain, and nothing is
// unfolded. Backend-independent: the CPU and CUDA algorithms share it.
//
// Per axis, output position p reads tap k at dilated position u = p·st + k·kd − lo, real when
// u ≡ 0 (mod id). Whether it is real depends on p only through p mod Pp, Pp = id/gcd(st, id).
// For phase φ (p = φ + Pp·m), the real taps are k = k0 + T·j (T = id/gcd(kd, id)), reading
// input i = m·st' + j·kd' − lo' with st' = st/gcd(st, id), kd' = kd/gcd(kd, id),
// lo' = −(φ·st + k0·kd − lo)/id.
#pragma once
#include <convnd/problem.h>

#include <vector>

namespace convnd {

struct PhaseAxis {
  int64_t first = 0;   // φ: the first output position of the phase
  int64_t step = 1;    // Pp: distance between the phase's output positions
  int64_t count = 0;   // M: its number of output positions (0 when φ >= P)
  int64_t stride = 1;  // st' over the undilated input
  int64_t dil = 1;     // kd' between the remaining taps, in input elements
  int64_t lo = 0;      // lo': input index of tap 0 at m = 0 is −lo'
  int64_t taps = 0;    // K': 0 when no tap of this phase lands on real input
  int64_t k_first = 0; // weight index (flip applied) of tap j is k_first + j·k_step
  int64_t k_step = 1;
};

struct Phase {
  PhaseAxis axis[3];
  int64_t taps() const { return axis[0].taps * axis[1].taps * axis[2].taps; }
  int64_t outputs() const { return axis[0].count * axis[1].count * axis[2].count; }
};

/// Number of phases of each axis (Pp) and in all (saturating at INT64_MAX: with huge input
/// dilations the product can exceed int64).
Dims phase_counts(const Geometry& g);
int64_t phase_count(const Geometry& g);

/// Number of (output position, tap) pairs of axis j whose tap lands on the undilated grid
/// (real input or padding, not an inserted zero). Computed without enumerating phases, so
/// it is cheap for any input dilation.
double axis_tap_pairs(const Geometry& g, int j);

/// The phases of one axis j.
std::vector<PhaseAxis> axis_phases(const Geometry& g, int j);

/// The dense sub-problem of one phase as a Geometry (idil 1, no flip, k = taps, out = counts,
/// lo = lo', hi chosen so that the extents agree). Only meaningful when phase.taps() > 0 and
/// phase.outputs() > 0.
Geometry phase_geometry(const Geometry& g, const Phase& ph);

}  // namespace convnd
