// Device-resident timing of convnd's CUDA backend, for bench/gpu.sh: x, w and y live in device
// memory (filled on the device with uniform values in [-1, 1)), so the time is the library's
// own, without the host<->device staging that `convnd bench --backend cuda` on host tensors
// pays. Times execute() (which synchronizes) with CUDA events: one warm-up, then --reps runs,
// median and fastest. One JSON object per line on stdout. Also measures the device copy
// bandwidth (--copy), counting bytes read plus bytes written, like the suite's ceiling.
//
// --tails R checks, after the timing, the first and the last R elements of every batch entry
// of y (and the elements around linear index 2^31 and 2^32) against reference_point, with the
// tolerance of `convnd check` (tools/tolerance.h): the outputs past 2^31 elements of one
// sample, or of the whole tensor, are where 32-bit indexing would fail.
//
// --tf32 lets float32 problems run on TF32 tensor cores (ExecOptions::allow_tf32) for the
// problems after it.
//
// --tile NAME=VALUE (repeatable) replaces one parameter of the plan's configuration
// (with_parameter), to time the alternatives the planner's rule chooses between; the JSON's
// "config" names the configuration as run, and "plan_ms" the planning time.
//
// Build (bench/gpu.sh does): nvcc -O2 -std=c++20 -arch=sm_90 -Iinclude bench/gpu_bench.cu
//   build/libconvnd.a -lcublas -o build/gpu_bench
#include <convnd/convnd.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define CHECK(call)                                                                                        \
  do {                                                                                                     \
    cudaError_t e_ = (call);                                                                               \
    if (e_ != cudaSuccess) {                                                                               \
      std::fprintf(stderr, "gpu_bench: %s failed: %s at %s:%d\n", #call, cudaGetErrorString(e_), __FILE__, \
                   __LINE__);                                                                              \
      std::exit(5);                                                                                        \
    }                                                                                                      \
  } while (0)

__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <class T>
__device__ T convert(float f);
template <>
__device__ float convert<float>(float f) {
  return f;
}
template <>
__device__ double convert<double>(float f) {
  return f;
}
template <>
__device__ __half convert<__half>(float f) {
  return __float2half_rn(f);
}
template <>
__device__ __nv_bfloat16 convert<__nv_bfloat16>(float f) {
  return __float2bfloat16_rn(f);
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, uint64_t key) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t bits = mix64(key + uint64_t(i + 1) * 0x9E3779B97F4A7C15ull);
    p[i] = convert<T>(float(double(bits >> 11) * 0x1p-52 - 1.0) * 0.999f);
  }
}

void fill(void* p, convnd::DType t, int64_t n, uint64_t key) {
  const int grid = 132 * 16, block = 256;
  switch (t) {
    case convnd::DType::f32:
      fill_kernel<<<grid, block>>>(static_cast<float*>(p), n, key);
      break;
    case convnd::DType::f64:
      fill_kernel<<<grid, block>>>(static_cast<double*>(p), n, key);
      break;
    case convnd::DType::f16:
      fill_kernel<<<grid, block>>>(static_cast<__half*>(p), n, key);
      break;
    case convnd::DType::bf16:
      fill_kernel<<<grid, block>>>(static_cast<__nv_bfloat16*>(p), n, key);
      break;
  }
  CHECK(cudaGetLastError());
}

// tools/tolerance.h's rule: |got - exact| <= abssum_rel·abssum + value_rel·|exact| + floor.
double error_ratio(convnd::DType t, double got, const convnd::PointValue& v) {
  double abssum_rel = 1e-5, value_rel = 0x1p-24, floor = 0x1p-149;
  if (t == convnd::DType::f64) abssum_rel = 1e-12, value_rel = 0x1p-53, floor = 0x1p-1074;
  if (t == convnd::DType::f16) value_rel = 0x1p-11, floor = 0x1p-24;
  if (t == convnd::DType::bf16) value_rel = 0x1p-8, floor = 0x1p-133;
  if (std::isnan(got)) return INFINITY;
  return std::fabs(got - v.value) / (abssum_rel * v.abssum + value_rel * std::fabs(v.value) + floor);
}

double element(const void* p, convnd::DType t, int64_t i) {
  switch (t) {
    case convnd::DType::f32:
      return static_cast<const float*>(p)[i];
    case convnd::DType::f64:
      return static_cast<const double*>(p)[i];
    case convnd::DType::f16:
      return convnd::half_to_float(static_cast<const uint16_t*>(p)[i]);
    case convnd::DType::bf16:
      return convnd::bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  }
  return 0;
}

// Checks y's tails (see the header); returns "checked, worst ratio, worst index".
std::string check_tails(const convnd::Geometry& g, const convnd::TensorShapes& ts, const void* xd,
                        const void* wd, const void* yd, int64_t tails) {
  using namespace convnd;
  const DType t = g.dtype;
  const int64_t es = dtype_size(t);
  Tensor x = Tensor::empty(t, Shape(ts.x.begin(), ts.x.begin() + ts.ndim));
  Tensor w = Tensor::empty(t, Shape(ts.w.begin(), ts.w.begin() + ts.ndim));
  CHECK(cudaMemcpy(x.data(), xd, size_t(x.nbytes()), cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(w.data(), wd, size_t(w.nbytes()), cudaMemcpyDeviceToHost));
  TensorView x5(x.data(), t, Shape{g.n, g.in[0], g.in[1], g.in[2], g.c});
  TensorView w5(w.data(), t, Shape{g.o, g.k[0], g.k[1], g.k[2], g.cg()});
  const int64_t total = g.y_elems(), per_n = total / g.n;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end) of linear indices
  for (int64_t n = 0; n < g.n; ++n) {
    ranges.push_back({n * per_n, n * per_n + 1});
    ranges.push_back({std::max(n * per_n, (n + 1) * per_n - tails), (n + 1) * per_n});
  }
  for (int64_t edge : {int64_t(1) << 31, int64_t(1) << 32})
    if (edge < total) ranges.push_back({std::max<int64_t>(0, edge - 4), std::min(total, edge + 4)});
  int64_t checked = 0, worst_at = -1;
  double worst = 0;
  std::vector<char> buf;
  for (auto [b, e] : ranges) {
    buf.resize(size_t((e - b) * es));
    CHECK(cudaMemcpy(buf.data(), static_cast<const char*>(yd) + b * es, buf.size(), cudaMemcpyDeviceToHost));
    for (int64_t i = b; i < e; ++i) {
      int64_t r = i;
      const int64_t oc = r % g.o;
      r /= g.o;
      Dims p;
      p[2] = r % g.out[2];
      r /= g.out[2];
      p[1] = r % g.out[1];
      r /= g.out[1];
      p[0] = r % g.out[0];
      const int64_t n = r / g.out[0];
      const PointValue want = reference_point(g, x5, w5, n, p, oc);
      const double ratio = error_ratio(t, element(buf.data(), t, i - b), want);
      ++checked;
      if (worst_at < 0 || !(ratio <= worst)) {
        worst = std::isnan(ratio) ? INFINITY : ratio;
        worst_at = i;
      }
    }
  }
  char out[256];
  std::snprintf(out, sizeof out,
                ", \"tails_checked\": %lld, \"tails_worst_err_over_tol\": %.4g, \"tails_worst_index\": %lld, "
                "\"tails_pass\": %s",
                static_cast<long long>(checked), worst, static_cast<long long>(worst_at),
                worst <= 1.0 ? "true" : "false");
  return out;
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

void copy_bandwidth() {
  const size_t bytes = size_t(2) << 30;
  void *a = nullptr, *b = nullptr;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int r = 0; r < 12; ++r) {
    CHECK(cudaEventRecord(e0));
    CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (r >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  std::printf("{\"copy_GBps\": %.1f, \"copy_bytes\": %zu, \"median_ms\": %.4f}\n",
              2.0 * double(bytes) / med / 1e6, bytes, med);
  std::fflush(stdout);
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
}

// --tile NAME=VALUE replaces one parameter of the plan's configuration (with_parameter: those
// never change results; this times the alternatives that the planner's rule decides between).
using ParameterOverrides = std::vector<std::pair<std::string, int64_t>>;

int bench(const std::string& text, int reps, const std::string& algorithm, int64_t tails,
          const ParameterOverrides& overrides, bool tf32) {
  using namespace convnd;
  Problem p;
  try {
    p = parse_problem(text);
  } catch (const Error& e) {
    std::printf("{\"problem\": \"%s\", \"error\": \"%s\", \"kind\": \"invalid\"}\n",
                json_escape(text).c_str(), json_escape(e.what()).c_str());
    return 2;
  }
  ExecOptions opt;
  opt.backend = Backend::cuda;
  opt.algorithm = algorithm;
  opt.allow_tf32 = tf32;
  try {
    const auto t_plan = std::chrono::steady_clock::now();
    Plan plan = make_plan(p, opt);
    const double plan_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_plan).count();
    std::string config_json;
    for (const auto& [name, value] : overrides) {
      try {
        plan = with_parameter(plan, name, value);
      } catch (const Error& e) {
        std::printf("{\"problem\": \"%s\", \"error\": \"%s\", \"kind\": \"invalid\"}\n",
                    json_escape(text).c_str(), json_escape(e.what()).c_str());
        return 2;
      }
    }
    for (const auto& [n, v] : plan.parameters())
      config_json += (config_json.empty() ? "" : ", ") + ("\"" + n + "\": " + std::to_string(v));
    const Geometry& g = plan.geometry;
    const TensorShapes ts = tensor_shapes(p, g);
    const int64_t es = dtype_size(p.dtype);
    void *x = nullptr, *w = nullptr, *y = nullptr;
    CHECK(cudaMalloc(&x, size_t(g.x_elems() * es)));
    CHECK(cudaMalloc(&w, size_t(g.w_elems() * es)));
    CHECK(cudaMalloc(&y, size_t(g.y_elems() * es)));
    fill(x, p.dtype, g.x_elems(), 0x1234);
    fill(w, p.dtype, g.w_elems(), 0x5678);
    // The forward writes y (0xff bytes: NaNs where it would not); a gradient reads it as dy
    // and writes x or w instead.
    if (p.dir == Direction::fwd) CHECK(cudaMemset(y, 0xff, size_t(g.y_elems() * es)));
    else fill(y, p.dtype, g.y_elems(), 0x9abc);
    CHECK(cudaDeviceSynchronize());
    TensorView xv(x, p.dtype, Shape(ts.x.begin(), ts.x.begin() + ts.ndim));
    TensorView wv(w, p.dtype, Shape(ts.w.begin(), ts.w.begin() + ts.ndim));
    TensorView yv(y, p.dtype, Shape(ts.y.begin(), ts.y.begin() + ts.ndim));
    xv.device = wv.device = yv.device = 0;
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    float warm = 0;
    for (int r = 0; r <= reps; ++r) {
      CHECK(cudaEventRecord(e0));
      execute(plan, xv, wv, yv, opt);
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float t = 0;
      CHECK(cudaEventElapsedTime(&t, e0, e1));
      if (r == 0) {
        warm = t;
        // Slow runs get fewer repetitions, so that a slow path cannot eat a run's time.
        if (warm > 2000) reps = 1;
        else if (warm > 300) reps = std::min(reps, 3);
      } else {
        ms.push_back(t);
      }
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double bytes = double(g.x_elems() + g.w_elems() + g.y_elems()) * double(es);
    const std::string tail = tails > 0 ? check_tails(g, ts, x, w, y, tails) : std::string();
    std::printf(
        "{\"problem\": \"%s\", \"algorithm\": \"%s\", \"median_ms\": %.5g, \"min_ms\": %.5g, \"reps\": %d, "
        "\"warmup_ms\": %.5g, \"plan_ms\": %.4g, \"tflops\": %.4g, \"gbps\": %.4g, \"workspace_bytes\": %lld, "
        "\"index_bits\": %d, \"config\": {%s}%s}\n",
        json_escape(to_string(p)).c_str(), plan.algorithm.c_str(), med, double(ms.front()), reps, double(warm),
        plan_ms, 2.0 * g.macs() / med / 1e9, bytes / med / 1e6, static_cast<long long>(plan.workspace_bytes),
        plan.index_bits, config_json.c_str(), tail.c_str());
    std::fflush(stdout);
    CHECK(cudaFree(x));
    CHECK(cudaFree(w));
    CHECK(cudaFree(y));
    return 0;
  } catch (const Error& e) {
    std::printf("{\"problem\": \"%s\", \"error\": \"%s\", \"kind\": \"%s\"}\n",
                json_escape(to_string(p)).c_str(), json_escape(e.what()).c_str(), error_kind_name(e.kind()));
    std::fflush(stdout);
    return int(e.kind());
  }
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5, code = 0;
  int64_t tails = 0;
  std::string algorithm;
  bool tf32 = false;
  ParameterOverrides overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--algorithm" && i + 1 < argc)
      algorithm = argv[++i];
    else if (a == "--tf32")
      tf32 = true;
    else if (a == "--tails" && i + 1 < argc)
      tails = std::max(0, std::atoi(argv[++i]));
    else if (a == "--tile" && i + 1 < argc) {
      const std::string t = argv[++i];
      const size_t eq = t.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "gpu_bench: --tile wants NAME=VALUE, got %s\n", t.c_str());
        return 2;
      }
      overrides.emplace_back(t.substr(0, eq), std::atoll(t.c_str() + eq + 1));
    } else if (a == "--copy")
      copy_bandwidth();
    else
      code = std::max(code, bench(a, reps, algorithm, tails, overrides, tf32));
  }
  return code;
}
