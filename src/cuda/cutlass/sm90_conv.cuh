// The CUTLASS 4 sm90 conv kernels behind sm90_conv.h: one template, instantiated per
// (operator, element, rank, tile) by the .cu files of this folder.
//
// CUTLASS's Hopper conv kernel (ConvUniversal over GemmUniversal, KernelTmaWarpSpecialized) is
// non-persistent with one consumer warpgroup; A and B come through TMA (im2col mode for the
// activation side), accumulation is float. E = float runs the products as TF32 (CUTLASS's
// builder maps float operands to tfloat32_t MMAs); wgmma takes TF32 operands K-major only, which
// only fprop's are (dgrad's filter and both wgrad operands are MN-major), so float is fprop
// only. What it cannot do it says in can_implement(), which runs on the host without touching
// the device; the planner calls it before choosing.
#pragma once
// A device-side assert() makes ptxas serialise the wgmma instructions (warning C7510).
#ifndef NDEBUG
#define NDEBUG
#endif

// clang-format off: CUTLASS's headers must come in this order.
#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cute/atom/mma_atom.hpp"
#include "cutlass/numeric_types.h"
#include "cutlass/conv/device/conv_universal_adapter.hpp"
#include "cutlass/conv/kernel/conv_universal.hpp"
#include "cutlass/conv/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
// clang-format on

#include <atomic>
#include <cstdint>

#include "cuda/cutlass/sm90_conv.h"
#include "cuda/kernels/smem_opt_in.h"

namespace convnd::cuda::sm90 {

template <Op kOp>
constexpr cutlass::conv::Operator cutlass_op() {
  return kOp == Op::fprop ? cutlass::conv::Operator::kFprop
         : kOp == Op::dgrad ? cutlass::conv::Operator::kDgrad
                            : cutlass::conv::Operator::kWgrad;
}

template <Op kOp, class E, int kRank, int kTileM, int kTileN, int kClusterM, int kClusterN = 1>
struct Impl {
  static constexpr cutlass::conv::Operator CutOp = cutlass_op<kOp>();
  using Act = cute::conditional_t<kRank == 2, cutlass::layout::TensorNHWC, cutlass::layout::TensorNDHWC>;
  using FltOut = cute::conditional_t<kRank == 2, cutlass::layout::TensorKCSR, cutlass::layout::TensorKCSRT>;
  // The weight gradient is written as float: its partial sums over sample chunks are added
  // afterwards (sum_partials), in a fixed order.
  using ElementOut = cute::conditional_t<kOp == Op::wgrad, float, E>;
  using OutLayout = cute::conditional_t<kOp == Op::wgrad, FltOut, Act>;
  static constexpr int kOutAlign = 128 / cutlass::sizeof_bits<ElementOut>::value;
  // The GEMM's K (and wgrad's N) are multi-modal in conv terms ((C, S, R...) and the like):
  // CUTLASS's conv builders take those tile extents as nested shapes.
  using TileN = cute::conditional_t<kOp == Op::wgrad, cute::Shape<cute::Int<kTileN>>, cute::Int<kTileN>>;
  // A K step of 128 bytes a row: 64 elements of 16 bits, 32 of float (TF32), as CUTLASS's own
  // Hopper configurations take them (one 128-byte swizzle atom a row).
  static constexpr int kTileK = 1024 / cutlass::sizeof_bits<E>::value;
  // TMA moves 16-byte rows: the channel counts are multiples of this many elements.
  static constexpr int kInAlign = 128 / cutlass::sizeof_bits<E>::value;
  using TileShape = cute::Shape<cute::Int<kTileM>, TileN, cute::Shape<cute::Int<kTileK>>>;
  // A cluster along M multicasts B's tile (fprop's filter) to its CTAs; along N, A's (wgrad's dy).
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::Int<kClusterN>, cute::_1>;
  using EpilogueSchedule = cute::conditional_t<kOp == Op::wgrad, cutlass::epilogue::NoSmemWarpSpecialized,
                                               cutlass::epilogue::TmaWarpSpecialized>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, ElementOut, OutLayout, kOutAlign, ElementOut,
      OutLayout, kOutAlign, EpilogueSchedule>::CollectiveOp;

  using Mainloop = typename cutlass::conv::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, CutOp, E, Act, kInAlign, E, Act, kInAlign, float, TileShape,
      ClusterShape,
      cutlass::conv::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::conv::KernelImplicitTmaWarpSpecializedSm90>::CollectiveOp;

  using Shape = cutlass::conv::ConvProblemShape<Mainloop::DispatchPolicy::ConvOp,
                                                Mainloop::DispatchPolicy::NumSpatialDimensions>;
  using ConvKernel = cutlass::conv::kernel::ConvUniversal<Shape, Mainloop, Epilogue>;
  using Device = cutlass::conv::device::ConvUniversalAdapter<ConvKernel>;
  using Arguments = typename Device::Arguments;
  using Params = typename ConvKernel::Params;
  static constexpr int kRankT = Shape::RankT;

  static Shape shape_of(const Conv& p) {
    typename Shape::TensorExtent act{}, flt{};
    typename Shape::ShapePadding lo{}, hi{};
    typename Shape::TraversalStride stride{};
    typename Shape::ShapeDilation dil{};
    act[0] = p.n;
    flt[0] = p.k;
    for (int i = 0; i < kRank; ++i) {
      const int j = 3 - kRank + i;  // Conv's axes are [D, H, W]; rank 2 uses H and W
      act[1 + i] = p.in[j];
      flt[1 + i] = p.flt[j];
      lo[i] = p.lo[j];
      hi[i] = p.hi[j];
      stride[i] = p.stride[j];
      dil[i] = p.dil[j];
    }
    act[kRankT - 1] = p.c;
    flt[kRankT - 1] = p.c;
    return Shape(cutlass::conv::Mode::kCrossCorrelation, act, flt, lo, hi, stride, dil, 1);
  }

  static Arguments arguments_of(const Conv& p) {
    const Shape shape = shape_of(p);
    using StrideC = typename ConvKernel::StrideC;
    StrideC stride_c{};
    if constexpr (kOp == Op::wgrad) {
      // (K, (C, S, R[, T])): K's stride, then C (1) and the filter axes innermost first.
      cute::get<0>(stride_c) = shape.stride_C[0];
      cute::for_each(cute::make_seq<kRank>{}, [&](auto i) {
        cute::get<1, i + 1>(stride_c) = shape.stride_C[kRankT - 2 - i];
      });
    } else {
      // ((W, H[, D], N), C): the pixel axes innermost first.
      cute::for_each(cute::make_seq<cute::rank<0>(StrideC{})>{}, [&](auto i) {
        cute::get<0, i>(stride_c) = shape.stride_C[kRankT - 2 - i];
      });
    }
    const void* a = kOp == Op::fprop ? p.act : p.out;
    const void* b = kOp == Op::wgrad ? p.act : p.flt_ptr;
    void* d = const_cast<void*>(kOp == Op::fprop ? p.out : kOp == Op::dgrad ? p.act : p.flt_ptr);
    cutlass::KernelHardwareInfo hw{};
    typename ConvKernel::TileScheduler::Arguments sched{};
    Arguments args{shape,
                   {static_cast<const E*>(a), static_cast<const E*>(b)},
                   {{}, static_cast<ElementOut*>(d), stride_c, static_cast<ElementOut*>(d), stride_c},
                   hw,
                   sched};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    return args;
  }

  static bool can_implement(const Conv& p) {
    return Device::can_implement(arguments_of(p)) == cutlass::Status::kSuccess;
  }

  static size_t workspace(const Conv& p) { return Device::get_workspace_size(arguments_of(p)); }

  static cudaError_t run(const Conv& p, void* ws, cudaStream_t stream) {
    // The shared-memory opt-in once per device, not per call (the adapter's initialize() would
    // set it on every call).
    constexpr int smem = ConvKernel::SharedStorageSize;
    static std::atomic<uint64_t> opted_in{0};
    cudaError_t e = cudaSuccess;
    if constexpr (smem >= (48 << 10))
      e = opt_in_shared_memory(reinterpret_cast<const void*>(&cutlass::device_kernel<ConvKernel>), smem, &opted_in);
    if (e != cudaSuccess) return e;
    const Arguments args = arguments_of(p);
    if (ConvKernel::initialize_workspace(args, ws, stream) != cutlass::Status::kSuccess)
      return cudaErrorInvalidValue;
    Params params = ConvKernel::to_underlying_arguments(args, ws);
    if (Device::run(params, stream) != cutlass::Status::kSuccess) {
      e = cudaGetLastError();
      return e == cudaSuccess ? cudaErrorLaunchFailure : e;
    }
    return cudaSuccess;
  }

  static const Kernel* kernel(const char* name) {
    static const Kernel k{name, &can_implement, &workspace, &run};
    return &k;
  }
};

}  // namespace convnd::cuda::sm90
