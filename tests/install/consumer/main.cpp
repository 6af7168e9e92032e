// conv_transpose1d(x=[1,2,3,4,5], w=[1,10,100], stride=2, padding=3) = [20, 203, 30, 304, 40]
#include <convnd/convnd.h>

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> x = {1, 2, 3, 4, 5}, w = {1, 10, 100};
  convnd::ConvTransposeOptions opt;
  opt.stride = {2};
  opt.padding = {3};
  convnd::Tensor y = convnd::conv_transpose1d(convnd::TensorView(x.data(), convnd::DType::f32, {1, 5, 1}),
                                              convnd::TensorView(w.data(), convnd::DType::f32, {1, 3, 1}), opt);
  const float want[] = {20, 203, 30, 304, 40};
  for (int i = 0; i < 5; ++i)
    if (y.ptr<float>()[i] != want[i]) {
      std::printf("element %d: %g, want %g\n", i, y.ptr<float>()[i], want[i]);
      return 1;
    }
  std::printf("consumer: ok\n");
  return 0;
}
