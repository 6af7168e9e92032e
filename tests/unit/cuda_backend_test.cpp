// The CUDA backend's plumbing: unsupported without a device (runs everywhere), staging of
// host tensors (dense and strided), device tensors used in place (dense and strided), the
// device memory check before any allocation (device tensors not counted twice), and
// cancelling between launches.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cuda_test_util.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

TEST(CudaBackend, UnsupportedWithoutDeviceNamesTheReason) {
  if (cuda_unavailable().empty()) GTEST_SKIP() << "a CUDA device is present";
  for (const char* p : {"n=1 in=8x8 c=3 o=4 k=3x3", "op=convT in=5 c=1 o=1 k=4 stride=2"}) {
    EXPECT_TRUE(throws_error([&] { make_plan(parse_problem(p), cuda_options()); }, ErrorKind::unsupported,
                             {"cuda backend is unavailable", "; problem: "}))
        << p;
  }
}

TEST(CudaBackend, StagesStridedHostViews) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (const char* s :
       {"n=2 in=9x8 c=5 o=6 k=3x3 pad=1", "in=40 c=8 o=16", "op=convT in=30 c=1 o=1 k=64 stride=16"}) {
    for (DType t : {DType::f32, DType::bf16}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      StridedCopy xs = strided_copy(c.x), ws = strided_copy(c.w);
      Tensor yd = Tensor::empty(t, y_shape(c.shapes));
      StridedCopy ys = strided_copy(yd);
      const ExecOptions opt = cuda_options();
      execute(make_plan(p, opt), xs.view, ws.view, ys.view, opt);
      ASSERT_TRUE(matches_oracle(ys.view, oracle(c))) << to_string(p);
      // The gaps between the strided elements are untouched (still NaN).
      int64_t touched = 0;
      for_each_index(ys.storage.shape(), [&](const Shape& idx, int64_t) {
        bool gap = false;
        for (size_t d = 0; d < idx.size(); ++d) gap = gap || idx[d] >= ys.view.shape[d];
        if (gap && !std::isnan(element_as_double(ys.storage.view(), idx))) ++touched;
      });
      EXPECT_EQ(touched, 0) << to_string(p);
    }
  }
}

#ifdef CONVND_WITH_CUDA
TEST(CudaBackend, DeviceTensorsRunInPlace) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=9x8 c=5 o=6 k=3x3 pad=1", "n=3 in=40 c=32 o=16 dtype=f16",
                        "op=convT in=30 c=1 o=1 k=64 stride=16 dtype=f64"}) {
    Problem p = parse_problem(s);
    Case c = make_case(p, rng);
    Tensor y = Tensor::empty(p.dtype, y_shape(c.shapes));
    DeviceMemory dx(c.x.nbytes()), dw(c.w.nbytes()), dy(y.nbytes());
    ASSERT_TRUE(dx.get() && dw.get() && dy.get());
    ASSERT_TRUE(dx.upload(c.x.data(), c.x.nbytes()) && dw.upload(c.w.data(), c.w.nbytes()));
    TensorView xv(dx.get(), p.dtype, c.x.shape()), wv(dw.get(), p.dtype, c.w.shape()),
        yv(dy.get(), p.dtype, y.shape());
    xv.device = wv.device = yv.device = 0;
    const ExecOptions opt = cuda_options();
    execute(make_plan(p, opt), xv, wv, yv, opt);
    ASSERT_TRUE(dy.download(y.data(), y.nbytes()));
    ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
  }
}

TEST(CudaBackend, StridedDeviceViews) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  Problem p = parse_problem("n=2 in=7x6 c=4 o=5 k=3x2 pad=1");
  Case c = make_case(p, rng);
  StridedCopy xs = strided_copy(c.x), ws = strided_copy(c.w);
  Tensor y = Tensor::empty(p.dtype, y_shape(c.shapes));
  StridedCopy ys = strided_copy(y);
  DeviceMemory dx(xs.storage.nbytes()), dw(ws.storage.nbytes()), dy(ys.storage.nbytes());
  ASSERT_TRUE(dx.upload(xs.storage.data(), xs.storage.nbytes()) &&
              dw.upload(ws.storage.data(), ws.storage.nbytes()));
  ASSERT_TRUE(dy.upload(ys.storage.data(), ys.storage.nbytes()));
  TensorView xv(dx.get(), p.dtype, xs.view.shape, xs.view.strides),
      wv(dw.get(), p.dtype, ws.view.shape, ws.view.strides),
      yv(dy.get(), p.dtype, ys.view.shape, ys.view.strides);
  xv.device = wv.device = yv.device = 0;
  const ExecOptions opt = cuda_options();
  execute(make_plan(p, opt), xv, wv, yv, opt);
  ASSERT_TRUE(dy.download(ys.storage.data(), ys.storage.nbytes()));
  ASSERT_TRUE(matches_oracle(ys.view, oracle(c)));
}
#endif

TEST(CudaBackend, DeviceMemoryIsCheckedBeforeAllocating) {
  CONVND_SKIP_WITHOUT_CUDA();
  // 4 TB of output: no device has that much memory. Planning takes any size; the memory check
  // that run() makes before allocating (check_memory) says so.
  const Plan plan = make_plan(parse_problem("n=1000 in=1000000 c=1 o=1000"), cuda_options());
  EXPECT_TRUE(throws_error([&] { check_memory(plan, Allocating::output); }, ErrorKind::out_of_memory,
                           {"bytes on cuda device", "; problem: "}));
}

#ifdef CONVND_WITH_CUDA
// Tensors already on the device take no new memory: a call whose x and y fill most of the
// free memory plans and runs, though x + y + workspace is more than what is free after them.
TEST(CudaBackend, DeviceTensorsAreNotCountedAgainstFreeMemory) {
  CONVND_SKIP_WITHOUT_CUDA();
  size_t free_bytes = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total), 0);
  // x and y of 64 f32 channels, each a third of the free memory (over 2^31 elements on a
  // large device).
  const int64_t c = 64, row_bytes = c * 4, rows = int64_t(free_bytes) / 3 / row_bytes;
  Problem p = parse_problem("in=" + std::to_string(rows) + " c=64 o=64");
  DeviceMemory dx(rows * row_bytes), dy(rows * row_bytes), dw(c * c * 4);
  ASSERT_TRUE(dx.get() && dy.get() && dw.get());
  // x: every element 0x3f3f3f3f (0.7470...); w: row o holds o / 64 at every channel.
  ASSERT_EQ(cudaMemset(dx.get(), 0x3f, size_t(rows * row_bytes)), 0);
  std::vector<float> w(size_t(c * c));
  for (int64_t o = 0; o < c; ++o)
    for (int64_t i = 0; i < c; ++i) w[size_t(o * c + i)] = float(o) / 64;
  ASSERT_TRUE(dw.upload(w.data(), int64_t(w.size()) * 4));
  TensorView xv(dx.get(), DType::f32, {1, rows, c}), wv(dw.get(), DType::f32, {c, 1, c}),
      yv(dy.get(), DType::f32, {1, rows, c});
  xv.device = wv.device = yv.device = 0;
  const ExecOptions opt = cuda_options();
  execute(make_plan(p, opt), xv, wv, yv, opt);
  float xval;
  const uint32_t bits = 0x3f3f3f3fu;
  std::memcpy(&xval, &bits, 4);
  std::vector<float> first(static_cast<size_t>(c)), last(static_cast<size_t>(c));
  ASSERT_TRUE(cudaMemcpy(first.data(), dy.get(), size_t(row_bytes), 2) == 0);
  ASSERT_TRUE(cudaMemcpy(last.data(), static_cast<char*>(dy.get()) + (rows - 1) * row_bytes,
                         size_t(row_bytes), 2) == 0);
  for (int64_t o = 0; o < c; ++o) {
    const double want = double(xval) * double(o);  // 64 channels of x · o / 64
    EXPECT_NEAR(first[size_t(o)], want, 1e-4 * (want + 1)) << "o=" << o;
    EXPECT_NEAR(last[size_t(o)], want, 1e-4 * (want + 1)) << "o=" << o;
  }
}
#endif

TEST(CudaBackend, CancellingStopsBetweenLaunches) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  Case c = make_case("n=4 in=64x64 c=8 o=8 k=3x3 pad=1", rng);
  ExecOptions opt = cuda_options("direct__cuda");
  int calls = 0;
  opt.progress = [&](double) { return ++calls < 1; };
  Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  EXPECT_TRUE(
      throws_error([&] { execute(make_plan(c.problem, opt), c.x, c.w, y, opt); }, ErrorKind::interrupted));
  EXPECT_GE(calls, 1);
}
