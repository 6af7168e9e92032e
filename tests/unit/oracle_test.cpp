// The oracle against hand-computed cases.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <vector>

using namespace convnd;

TEST(Oracle, TransposedConv1dHandComputed) {
  // conv_transpose1d(x=[1,2,3,4,5], w=[1,10,100], stride=2, padding=3) = [20, 203, 30, 304, 40]
  std::vector<float> x = {1, 2, 3, 4, 5}, w = {1, 10, 100};
  TensorView xv(x.data(), DType::f32, {1, 5, 1}), wv(w.data(), DType::f32, {1, 3, 1});
  ConvTransposeOptions opt;
  opt.stride = {2};
  opt.padding = {3};
  Tensor y = conv_transpose1d(xv, wv, opt);
  ASSERT_EQ(y.shape(), (Shape{1, 5, 1}));
  std::vector<float> want = {20, 203, 30, 304, 40};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(y.ptr<float>()[i], want[i]) << i;
}

TEST(Oracle, Conv1dHandComputed) {
  // cross-correlation with padding 1: y[p] = sum_k xpad[p+k] w[k]
  std::vector<double> x = {1, 2, 3}, w = {1, 10, 100};
  TensorView xv(x.data(), DType::f64, {1, 3, 1}), wv(w.data(), DType::f64, {1, 3, 1});
  ConvOptions opt;
  opt.padding = {1};
  Tensor y = conv1d(xv, wv, opt);
  ASSERT_EQ(y.shape(), (Shape{1, 3, 1}));
  // p=0: 0*1 + 1*10 + 2*100 = 210; p=1: 1 + 20 + 300 = 321; p=2: 2 + 30 + 0 = 32
  EXPECT_EQ(y.ptr<double>()[0], 210);
  EXPECT_EQ(y.ptr<double>()[1], 321);
  EXPECT_EQ(y.ptr<double>()[2], 32);
}
