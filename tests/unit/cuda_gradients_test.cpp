// The CUDA gradients through the planner: the input gradient as the dual forward conv
// (data_grad__cuda) on random problems of every kind and dtype and at tile boundaries, the
// weight gradient (weight_grad__cuda, a transposed conv's through its dual, a pointwise conv's
// on cuBLAS) against the oracle, bitwise the same across budgets and runs; host and strided tensors staged. Skipped
// without a device.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>

#include "cuda_test_util.h"
#include "grad_test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

Problem with_dir(Problem p, Direction d) {
  p.dir = d;
  return p;
}

// The CUDA tensor-core paths round f32 inputs to TF32 only on request; f16/bf16 accumulate in
// f32 like the CPU: the same tolerance, a little wider for reordered sums.
void check_draws(const std::string& algo, Direction d, DrawLimits lim, int draws, int min_accepted) {
  Rng rng = test_rng();
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    const GradCase gc = make_grad_case(with_dir(random_problem(rng, lim), d), rng);
    Tensor out;
    if (!run_grad(gc, cuda_options(algo), &out)) continue;
    ++accepted;
    ASSERT_TRUE(matches_oracle(out, grad_oracle(gc), 4.0)) << algo << " on " << to_string(gc.c.problem);
  }
  EXPECT_GE(accepted, min_accepted) << algo << " accepted too few random problems";
}

}  // namespace

TEST(CudaGradients, DataGradRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.max_channels_per_group = 5;
  check_draws("data_grad__cuda", Direction::bwd_d, lim, 100, 100);
}

TEST(CudaGradients, DataGradNamed) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=9x9 c=3 o=17 k=3x3 pad=1", "n=4 in=14x14 c=64 o=96 k=3x3 stride=2 pad=1",
                        "n=2 in=15x16 c=64 o=47", "in=23x23 c=32 o=32 k=3x3 pad=1 g=32",
                        "op=convT in=13 c=8 o=5 k=4 stride=3 pad=1 outpad=2", "op=convT in=97 c=1 o=1 k=64 stride=16",
                        "op=convT in=5 c=1 o=1 k=3 stride=2 pad=3", "in=37 c=5 o=7 k=3 idil=2 stride=3 pad=2:-1"})
    for (DType t : kAllDtypes) {
      Problem p = with_dir(parse_problem(s), Direction::bwd_d);
      p.dtype = t;
      const GradCase gc = make_grad_case(p, rng);
      Tensor out;
      ASSERT_TRUE(run_grad(gc, cuda_options(), &out)) << s;
      ASSERT_TRUE(matches_oracle(out, grad_oracle(gc), 4.0)) << to_string(p);
    }
}

TEST(CudaGradients, WeightGradRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.max_channels_per_group = 6;
  Rng rng = test_rng();
  for (int i = 0; i < 80; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    const GradCase gc = make_grad_case(with_dir(random_problem(rng, lim), Direction::bwd_w), rng);
    Tensor out;
    ASSERT_TRUE(run_grad(gc, cuda_options(), &out)) << to_string(gc.c.problem);
    ASSERT_TRUE(matches_oracle(out, grad_oracle(gc), 4.0)) << to_string(gc.c.problem);
  }
}

// The weight gradient of pointwise convs as cuBLAS GEMMs over the pixels (pointwise_gemm__cuda,
// which the planner takes for them): every dtype, groups, prime and tile-edge extents, 1-D to
// 3-D; a 16-bit reduction that would not fit one call is declined with the reason.
TEST(CudaGradients, PointwiseWeightGradOnCublas) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (const char* s : {"n=1 in=1 c=1 o=1", "n=3 in=7x5 c=13 o=31", "in=97 c=17 o=64", "n=2 in=15x16 c=64 o=47",
                        "in=29 c=12 o=18 g=3", "in=2x3x5 c=31 o=65", "n=4 in=257 c=128 o=129", "n=2 in=9x9 c=8 o=8 g=8"})
    for (DType t : kAllDtypes) {
      Problem p = with_dir(parse_problem(s), Direction::bwd_w);
      p.dtype = t;
      const GradCase gc = make_grad_case(p, rng);
      Tensor out;
      ASSERT_TRUE(run_grad(gc, cuda_options("pointwise_gemm__cuda"), &out)) << to_string(p);
      ASSERT_TRUE(matches_oracle(out, grad_oracle(gc), 4.0)) << to_string(p);
    }
  EXPECT_EQ(make_plan(parse_problem("n=8 in=56x56 c=256 o=64 dtype=bf16 dir=bwd_w"), cuda_options()).algorithm,
            "pointwise_gemm__cuda");
  try {
    make_plan(parse_problem("n=1 in=2097153 c=1024 o=1024 dtype=bf16 dir=bwd_w"), cuda_options("pointwise_gemm__cuda"));
    ADD_FAILURE() << "a 16-bit reduction beyond one cuBLAS call was planned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit one cuBLAS call"), std::string::npos) << e.what();
  }
}

TEST(CudaGradients, WeightGradBitwiseAcrossBudgetsAndRuns) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (const char* s : {"n=4 in=40x40 c=32 o=48 k=3x3 pad=1", "in=5000 c=8 o=8 k=5 g=8 pad=2",
                        "op=convT in=3000 c=1 o=1 k=64 stride=16", "n=2 in=30x20 c=12 o=9 k=3x3 g=3 stride=2"})
    for (DType t : {DType::f32, DType::bf16, DType::f64}) {
      Problem p = with_dir(parse_problem(s), Direction::bwd_w);
      p.dtype = t;
      const GradCase gc = make_grad_case(p, rng);
      Tensor ref;
      ASSERT_TRUE(run_grad(gc, cuda_options(), &ref)) << s;
      ASSERT_TRUE(matches_oracle(ref, grad_oracle(gc), 4.0)) << to_string(p);
      for (int64_t budget : {int64_t(-1), int64_t(1) << 20, int64_t(256) << 10}) {
        Tensor out;
        try {
          ASSERT_TRUE(run_grad(gc, cuda_options({}, budget), &out));
        } catch (const Error& e) {
          ASSERT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
          continue;
        }
        ASSERT_TRUE(bit_equal(out, ref)) << "budget " << budget << " on " << to_string(p);
      }
    }
}

#ifdef CONVND_WITH_CUDA
// A direction's case (x, w and dy of make_grad_case) copied to device memory, as device
// views; `out` is the index of the tensor the direction writes (x: bwd_d, w: bwd_w, y: fwd).
struct OnDevice {
  OnDevice(const Problem& p, Rng& rng) : gc(make_grad_case(p, rng)) {
    const TensorView* host[3] = {&gc.c.x.view(), &gc.c.w.view(), &gc.dy.view()};
    out = p.dir == Direction::fwd ? 2 : p.dir == Direction::bwd_d ? 0 : 1;
    for (int r = 0; r < 3; ++r) {
      mem[r] = std::make_unique<DeviceMemory>(host[r]->nbytes());
      uploaded = uploaded && mem[r]->get() && mem[r]->upload(host[r]->data, host[r]->nbytes());
      view[r] = TensorView(mem[r]->get(), host[r]->dtype, host[r]->shape);
      view[r].device = 0;
    }
  }
  bool ok() const { return uploaded; }
  void run(const Plan& plan, const ExecOptions& opt) const { execute(plan, view[0], view[1], view[2], opt); }
  // Fills the output's device memory with NaN-like bytes (every element must be written).
  bool poison_out() const { return cudaMemset(mem[out]->get(), 0xff, size_t(view[out].nbytes())) == 0; }
  Tensor download_out() const {
    Tensor t = Tensor::empty(view[out].dtype, view[out].shape);
    EXPECT_TRUE(mem[out]->download(t.data(), t.nbytes()));
    return t;
  }
  GradCase gc;
  int out = 2;
  std::unique_ptr<DeviceMemory> mem[3];
  TensorView view[3];
  bool uploaded = true;
};

// Records call() on `stream` (global capture mode, as torch.cuda.graph uses) into a CUDA graph
// (*graph) and instantiates it (*exec). An Error thrown under capture ends the capture and is
// the failure.
::testing::AssertionResult capture_graph(void* stream, const std::function<void()>& call, void** graph, void** exec) {
  if (int e = cudaStreamBeginCapture(stream, 0); e != 0)
    return ::testing::AssertionFailure() << "cudaStreamBeginCapture: " << e;
  try {
    call();
  } catch (const Error& e) {
    cudaStreamEndCapture(stream, graph);
    return ::testing::AssertionFailure() << "execute() under capture: " << e.what();
  }
  if (int e = cudaStreamEndCapture(stream, graph); e != 0)
    return ::testing::AssertionFailure() << "cudaStreamEndCapture: " << e;
  if (int e = cudaGraphInstantiateWithFlags(exec, *graph, 0); e != 0)
    return ::testing::AssertionFailure() << "cudaGraphInstantiateWithFlags: " << e;
  return ::testing::AssertionSuccess();
}

// Replays exec on `stream` twice, each time into poisoned output memory: each replay must
// give want's bits.
::testing::AssertionResult replays_match(const OnDevice& on, void* exec, void* stream, const Tensor& want) {
  for (int rep = 0; rep < 2; ++rep) {
    if (!on.poison_out()) return ::testing::AssertionFailure() << "cudaMemset, replay " << rep;
    if (int e = cudaGraphLaunch(exec, stream); e != 0)
      return ::testing::AssertionFailure() << "cudaGraphLaunch: " << e << ", replay " << rep;
    if (int e = cudaStreamSynchronize(stream); e != 0)
      return ::testing::AssertionFailure() << "cudaStreamSynchronize: " << e << ", replay " << rep;
    if (!bit_equal(on.download_out(), want)) return ::testing::AssertionFailure() << "other bits, replay " << rep;
  }
  return ::testing::AssertionSuccess();
}

// On a caller's stream with device tensors, execute() only enqueues: after the caller waits
// for its stream, each direction's result is the same bits as the synchronous call's; calls
// alternating between the legacy stream and two streams reuse workspace blocks safely.
TEST(CudaGradients, CallersStreamSameBits) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  void* streams[2] = {nullptr, nullptr};
  ASSERT_EQ(cudaStreamCreate(&streams[0]), 0);
  ASSERT_EQ(cudaStreamCreate(&streams[1]), 0);
  for (const char* s : {"n=4 in=20x20 c=32 o=48 k=3x3 pad=1 stride=2 dtype=bf16", "in=3000 c=16 o=16 k=7 g=16 pad=3",
                        "op=convT in=500 c=8 o=4 k=16 stride=8"})
    for (Direction d : {Direction::fwd, Direction::bwd_d, Direction::bwd_w}) {
      Problem p = parse_problem(s);
      p.dir = d;
      const OnDevice on(p, rng);
      ASSERT_TRUE(on.ok());
      ExecOptions sync = cuda_options();
      const Plan plan = make_plan(p, sync);
      on.run(plan, sync);
      const Tensor want = on.download_out();
      for (int rep = 0; rep < 4; ++rep) {
        ExecOptions opt = cuda_options();
        opt.cuda_stream = streams[rep % 2];
        ASSERT_TRUE(on.poison_out());
        on.run(plan, opt);
        ASSERT_EQ(cudaStreamSynchronize(opt.cuda_stream), 0);
        const Tensor got = on.download_out();
        ASSERT_TRUE(bit_equal(got, want)) << to_string(p) << " on stream " << rep % 2;
      }
    }
  cudaStreamDestroy(streams[0]);
  cudaStreamDestroy(streams[1]);
}

// Every direction captured into a CUDA graph on a caller's stream (global capture mode, as
// torch.cuda.graph uses) after warm-up calls on another stream have left workspace blocks in the
// pool: the capture must neither allocate with cudaMalloc nor wait for uncaptured work, and
// the graph's replays give the synchronous call's bits. The bf16 weight gradient with many
// samples runs CUTLASS's sample chunks on side streams (a fork and join inside the capture).
TEST(CudaGradients, CapturedInAGraphSameBits) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  void* streams[2] = {nullptr, nullptr};
  ASSERT_EQ(cudaStreamCreate(&streams[0]), 0);
  ASSERT_EQ(cudaStreamCreate(&streams[1]), 0);
  for (const char* s : {"n=4 in=20x20 c=32 o=48 k=3x3 pad=1 dtype=bf16", "n=3 in=17x9 c=8 o=12 k=3x3 pad=1 stride=2",
                        "n=32 in=48x47 c=64 o=64 k=3x3 pad=1 dtype=bf16"})
    for (Direction d : {Direction::fwd, Direction::bwd_d, Direction::bwd_w}) {
      Problem p = parse_problem(s);
      p.dir = d;
      const OnDevice on(p, rng);
      ASSERT_TRUE(on.ok());
      const Plan plan = make_plan(p, cuda_options());
      on.run(plan, cuda_options());
      const Tensor want = on.download_out();
      ExecOptions warm = cuda_options(), opt = cuda_options();
      warm.cuda_stream = streams[0];
      opt.cuda_stream = streams[1];
      for (int i = 0; i < 2; ++i) on.run(plan, warm);  // blocks last used on stream 0
      ASSERT_EQ(cudaStreamSynchronize(streams[0]), 0);
      void* graph = nullptr;
      void* exec = nullptr;
      ASSERT_TRUE(capture_graph(streams[1], [&] { on.run(plan, opt); }, &graph, &exec))
          << plan.algorithm << " on " << to_string(p);
      ASSERT_TRUE(replays_match(on, exec, streams[1], want)) << to_string(p) << " (" << plan.algorithm << ")";
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
    }
  cudaStreamDestroy(streams[0]);
  cudaStreamDestroy(streams[1]);
}

// A strided device weight (PyTorch's (O, C, kh, kw) memory seen as convnd's (O, kh, kw, C), as
// convnd.torch hands it over) on a caller's stream: the engine copies it dense with a kernel on
// that stream and returns without waiting; the result is the dense weight's bits, on the
// stream and replayed from a CUDA graph (the copy's buffer a graph allocation).
TEST(CudaGradients, StridedDeviceWeightOnAStreamAndInACapture) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  void* stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), 0);
  Problem p = parse_problem("n=2 in=12x12 c=16 o=24 k=3x3 pad=1 dtype=bf16");
  const OnDevice on(p, rng);
  ASSERT_TRUE(on.ok());
  const Plan plan = make_plan(p, cuda_options());
  on.run(plan, cuda_options());
  const Tensor want = on.download_out();
  // The weight in (O, C, kh, kw) order, uploaded, then viewed as (O, kh, kw, C).
  const TensorView& w = on.gc.c.w.view();
  const int64_t O = w.shape[0], K0 = w.shape[1], K1 = w.shape[2], C = w.shape[3], es = int64_t(dtype_size(w.dtype));
  Tensor ocw = Tensor::empty(w.dtype, {O, C, K0, K1});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t a = 0; a < K0; ++a)
      for (int64_t b = 0; b < K1; ++b)
        for (int64_t c = 0; c < C; ++c)
          std::memcpy(static_cast<char*>(ocw.data()) + (((o * C + c) * K0 + a) * K1 + b) * es,
                      static_cast<const char*>(w.data) + (((o * K0 + a) * K1 + b) * C + c) * es, size_t(es));
  DeviceMemory mem(ocw.nbytes());
  ASSERT_TRUE(mem.get() && mem.upload(ocw.data(), ocw.nbytes()));
  TensorView ws(mem.get(), w.dtype, w.shape, {C * K0 * K1, K1, 1, K0 * K1});
  ws.device = 0;
  ASSERT_FALSE(ws.is_contiguous());
  ExecOptions opt = cuda_options();
  opt.cuda_stream = stream;
  ASSERT_TRUE(on.poison_out());
  execute(plan, on.view[0], ws, on.view[2], opt);
  ASSERT_EQ(cudaStreamSynchronize(stream), 0);
  ASSERT_TRUE(bit_equal(on.download_out(), want)) << "on the stream";
  void* graph = nullptr;
  void* exec = nullptr;
  ASSERT_TRUE(capture_graph(stream, [&] { execute(plan, on.view[0], ws, on.view[2], opt); }, &graph, &exec));
  ASSERT_TRUE(replays_match(on, exec, stream, want));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// An output made inside the capture (Tensor::empty on the capturing stream, as the Python
// bindings make a call's result) keeps its address across replays: the graph replays twice into
// it, each time with the synchronous call's bits.
TEST(CudaGradients, OutputMadeInACaptureServesEveryReplay) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  void* stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), 0);
  Problem p = parse_problem("n=2 in=12x12 c=16 o=24 k=3x3 pad=1 dtype=bf16");
  const OnDevice on(p, rng);
  ASSERT_TRUE(on.ok());
  const Plan plan = make_plan(p, cuda_options());
  on.run(plan, cuda_options());
  const Tensor want = on.download_out();
  ExecOptions opt = cuda_options();
  opt.cuda_stream = stream;
  on.run(plan, opt);  // warm: the plan's first-use work done before the capture
  ASSERT_EQ(cudaStreamSynchronize(stream), 0);
  void* graph = nullptr;
  void* exec = nullptr;
  Tensor y;
  ASSERT_TRUE(capture_graph(
      stream,
      [&] {
        y = Tensor::empty(p.dtype, on.view[2].shape, 0, stream);
        execute(plan, on.view[0], on.view[1], y, opt);
      },
      &graph, &exec));
  for (int rep = 0; rep < 2; ++rep) {
    ASSERT_EQ(cudaMemset(y.data(), 0xff, size_t(y.nbytes())), 0);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), 0) << "replay " << rep;
    ASSERT_EQ(cudaStreamSynchronize(stream), 0);
    Tensor got = Tensor::empty(p.dtype, y.view().shape);
    ASSERT_EQ(cudaMemcpy(got.data(), y.data(), size_t(y.nbytes()), 2), 0);
    ASSERT_TRUE(bit_equal(got, want)) << "replay " << rep;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  y = Tensor();
  cudaStreamDestroy(stream);
}
#endif
