// Dense convolution (no input dilation, no flip) as an implicit GEMM per group, on the GEMM
// engine of gemm.h. Shared by the pointwise, implicit-im2col and polyphase algorithms.
//
// Mapping (CUTLASS convolution.h style), per group q:
//   M = N·M0·M1·M2  output pixels of the dense problem
//   N = O/g         output channels of the group (cut into n-tiles when B must be small)
//   K = K0·K1·K2·C/g taps × channels, ordered like the weight [O, K0, K1, K2, C/g]
// A is gathered from x while packing (nothing unfolded in memory), B is packed from the
// weights (or from a strided selection of their taps, for a phase), C is written in place.
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cpu/gemm.h"
#include "engine/algorithm.h"

namespace convnd {

class ThreadPool;

/// Where the dense problem's output lands in y: output position m of axis j is written at
/// y position first[j] + step[j]·m. A plain conv has first 0, step 1.
/// Where its taps come from in w: tap j of axis a is weight index k_first[a] + j·k_step[a].
struct DenseConv {
  Geometry sub;                    // dense problem: idil 1, no flip; sub.out = counts
  Dims first{0, 0, 0}, step{1, 1, 1};
  Dims k_first{0, 0, 0}, k_step{1, 1, 1};
  Dims w_k{1, 1, 1};               // the full weight's kernel extents
  Dims y_out{1, 1, 1};             // the full output's spatial extents
  bool pointwise_a = false;        // A is x itself viewed as [pixels, C] (1x1, stride 1, no pad)
  // The weight is stored with its two channel axes swapped per group, [g, C/g, w_k..., O/g]
  // rather than [O, w_k..., C/g]: the primal weight of an input gradient, read by the dual
  // forward conv in place of a permuted copy (w_swapped_supported() says which dtypes).
  bool w_swapped = false;
};

/// Whether run_conv_gemm reads a swapped weight (DenseConv::w_swapped) of this dtype: f32, f64
/// and bf16 rows of B are then plain copies (bf16 widened by a shift); f16 needs the ISA's
/// conversion, which only the packers of the standard layout have, so it keeps the copy.
inline bool w_swapped_supported(DType t) { return t != DType::f16; }

/// Tiles chosen for a DenseConv under a budget (plain data, part of the Plan). The GEMM's ISA
/// is the plan's (Plan::isa, checked at run time) and its compute type follows the dtype, so
/// neither is listed among the parameters.
struct ConvGemmTiles {
  GemmPlan gemm;          // the ISA, micro-tile and blocks; kc = gemm_kc(isa, compute, K)
  int64_t n_tile = 0;     // output channels per packed B
  int64_t m_tile = 0;     // pixels per GEMM call (dense output) — progress granularity
  int64_t padded = 0;     // bytes of one sample's input copied with its padding (0: no copy)
  // Outputs spread out in y (a stride phase) on short lines: GEMMs of this many rows write a
  // buffer of buffer_rows × n_tile elements, copied row by row to their places in y, instead of
  // one GEMM per output line (0).
  int64_t buffer_rows = 0;
  int64_t workspace = 0;  // bytes the tiles may use: packed B, gemm()'s own, the row buffer, then the padded copy
};

/// Chooses tiles for the GEMM path `isa`; returns "" or why not. On a budget too small,
/// *min_workspace is the smallest workspace that would do.
std::string plan_conv_gemm(const Geometry& sub, bool dense_output, int64_t budget, int threads, GemmIsa isa,
                           ConvGemmTiles* tiles, int64_t* min_workspace);

/// The tiles as named numbers, each name prefixed (for Plan::parameters()).
void append_tile_parameters(const ConvGemmTiles& t, const std::string& prefix,
                            std::vector<std::pair<std::string, int64_t>>* out);

/// The configuration of the algorithms that run one implicit GEMM per group over the whole
/// problem (pointwise_gemm, im2col_gemm).
struct ConvGemmConfig final : PlanConfig {
  ConvGemmTiles tiles;
  bool w_swapped = false;  // the weight is [g, C/g, K, O/g] (DenseConv::w_swapped); set by data_grad
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    std::vector<std::pair<std::string, int64_t>> out;
    append_tile_parameters(tiles, "", &out);
    out.emplace_back("w_swapped", w_swapped);
    return out;
  }
  /// Settable: n_tile (1 .. the planned n_tile: fewer output channels per packed B, within the
  /// planned workspace) and m_tile (>= 1: pixels per GEMM call). Neither changes how K is
  /// blocked, so neither changes a bit of the result.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override;
};

/// The configuration of polyphase_gemm: one dense implicit GEMM per stride phase, whose
/// reduction lengths K = taps·C/g differ between phases. Per axis the phases keep floor or ceil
/// of K/T taps, so there are at most 8 distinct K; each has its own tiles (kc = gemm_kc of that
/// K is what the bits depend on), planned together and looked up exactly at run time.
struct PolyphaseGemmConfig final : PlanConfig {
  int64_t phases = 0;               // stride phases of the problem (phase_count)
  bool w_swapped = false;           // as in ConvGemmConfig
  std::vector<int64_t> k;           // the distinct K values, increasing
  std::vector<ConvGemmTiles> by_k;  // by_k[i] serves the phases whose K is k[i]
  /// The tiles of reduction length K, or null when the plan has none.
  const ConvGemmTiles* tiles_for(int64_t K) const {
    for (size_t i = 0; i < k.size(); ++i)
      if (k[i] == K) return &by_k[i];
    return nullptr;
  }
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    std::vector<std::pair<std::string, int64_t>> out{
        {"phases", phases}, {"distinct_k", int64_t(k.size())}, {"w_swapped", w_swapped}};
    for (size_t i = 0; i < k.size(); ++i) {
      const std::string prefix = "k" + std::to_string(i) + ".";
      out.emplace_back(prefix + "K", k[i]);
      append_tile_parameters(by_k[i], prefix, &out);
    }
    return out;
  }
};

/// Algorithm::with_swapped_weight for a GEMM family whose configuration is `Config` (with a
/// w_swapped flag): the same configuration reading the swapped weight, or null for another
/// configuration type or a dtype whose packer needs the permuted copy.
template <class Config>
std::shared_ptr<const PlanConfig> with_swapped_weight_of(const PlanConfig& config, DType dtype) {
  const auto* c = dynamic_cast<const Config*>(&config);
  if (!c || !w_swapped_supported(dtype)) return nullptr;
  auto swapped = std::make_shared<Config>(*c);
  swapped->w_swapped = true;
  return swapped;
}

/// Whether `tiles` (from plan's configuration) can run `dc`: Status invalid (or unsupported)
/// for tiles of another ISA than the plan's, a GemmPlan gemm() would refuse for this K, tiles
/// that are not positive, a padded copy of a non-f32 input or one too small, or more workspace
/// than the plan allocates. A plan from the planner always passes; run_conv_gemm checks first.
Status check_conv_gemm_tiles(const ConvGemmTiles& tiles, const DenseConv& dc, const Plan& plan);

/// Runs one DenseConv with tiles from ctx.plan's configuration. ctx.x: [N, I0, I1, I2, C]
/// dense; ctx.w: [O, w_k..., C/g] dense; ctx.y: the full output [N, y_out..., O] dense.
/// progress(done_outputs) is called between GEMM calls and may return false to stop (then
/// Status interrupted). Tiles check_conv_gemm_tiles refuses are refused before any work.
Status run_conv_gemm(const ConvGemmTiles& tiles, const DenseConv& dc, const RunContext& ctx,
                     const std::function<bool(int64_t)>& progress);


// ---- Shared by the GEMM-based algorithms (pointwise_gemm, im2col_gemm, polyphase_gemm) ----

inline bool all_ones(const Dims& d) { return d == Dims{1, 1, 1}; }
inline bool all_zeros(const Dims& d) { return d == Dims{0, 0, 0}; }

inline std::function<bool(int64_t)> progress_of(const RunContext& ctx, int64_t total, int64_t offset = 0) {
  return [&ctx, total, offset](int64_t done) { return ctx.report(double(offset + done) / double(std::max<int64_t>(total, 1))); };
}


}  // namespace convnd
