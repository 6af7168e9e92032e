// Shared helpers for the C++ tests: seeded random numbers and tensors, the float64 oracle on
// any problem with the error scale of every output element, one table of tolerances per
// dtype, comparisons that name the first mismatches, random draws of valid problems, strided
// copies of tensors, error checks, and problem-list files.
//
// Random inputs are fresh on every run; the seed is printed once and CONVND_TEST_SEED=<n>
// repeats a run.
#pragma once
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace convnd::test {

// ---------------------------------------------------------------------------------------------
// Random numbers

/// The run's seed: CONVND_TEST_SEED if set, else fresh. Printed once per process.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    uint64_t s;
    if (const char* env = std::getenv("CONVND_TEST_SEED")) {
      s = std::strtoull(env, nullptr, 0);
    } else {
      std::random_device rd;
      s = (uint64_t(rd()) << 32) ^ rd();
    }
    std::fprintf(stderr, "[convnd test] random seed %llu (CONVND_TEST_SEED=%llu repeats this run)\n",
                 (unsigned long long)s, (unsigned long long)s);
    return s;
  }();
  return seed;
}

/// A seeded generator. Tests derive one per test from the run seed and a salt (the test's
/// name), so a test repeats on its own with the same CONVND_TEST_SEED.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  explicit Rng(std::string_view salt = {}) : gen_(test_seed() ^ std::hash<std::string_view>{}(salt)) {}

  /// Uniform integer in [lo, hi].
  int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); }
  /// Uniform real in [lo, hi).
  double uniform(double lo = -1.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[size_t(integer(0, int64_t(v.size()) - 1))]; }
  uint64_t bits() { return gen_(); }

 private:
  std::mt19937_64 gen_;
};

/// A per-test Rng salted with the running test's full name.
inline Rng test_rng() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "";
  return Rng(name);
}

// ---------------------------------------------------------------------------------------------
// Elements and tensors

/// Calls fn(index, linear) for every index of `shape` in row-major order.
template <class Fn>
void for_each_index(const Shape& shape, Fn&& fn) {
  int64_t total = 1;
  for (int64_t e : shape) total *= e;
  if (total == 0) return;
  Shape idx(shape.size(), 0);
  for (int64_t lin = 0; lin < total; ++lin) {
    fn(static_cast<const Shape&>(idx), lin);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

inline int64_t offset_of(const TensorView& t, const Shape& idx) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides[d];
  return off;
}

/// v rounded to dtype (round to nearest even), as a double.
inline double round_to(DType t, double v) {
  switch (t) {
    case DType::f64: return v;
    case DType::f32: return double(float(v));
    case DType::f16: return double(half_to_float(float_to_half(float(v))));
    case DType::bf16: return double(bf16_to_float(float_to_bf16(float(v))));
  }
  return v;
}

/// Writes v (rounded to the view's dtype) at a logical index, honouring strides.
inline void set_element(const TensorView& t, const Shape& idx, double v) {
  char* p = static_cast<char*>(t.data) + offset_of(t, idx) * dtype_size(t.dtype);
  switch (t.dtype) {
    case DType::f32: { float f = float(v); std::memcpy(p, &f, 4); break; }
    case DType::f64: std::memcpy(p, &v, 8); break;
    case DType::f16: { uint16_t h = float_to_half(float(v)); std::memcpy(p, &h, 2); break; }
    case DType::bf16: { uint16_t h = float_to_bf16(float(v)); std::memcpy(p, &h, 2); break; }
  }
}

/// Sets every element of the view (honouring strides) to v.
inline void fill(const TensorView& t, double v) {
  for_each_index(t.shape, [&](const Shape& idx, int64_t) { set_element(t, idx, v); });
}

/// All elements in row-major logical order, as doubles.
inline std::vector<double> to_doubles(const TensorView& t) {
  std::vector<double> r(size_t(t.numel()));
  for_each_index(t.shape, [&](const Shape& idx, int64_t lin) { r[size_t(lin)] = element_as_double(t, idx); });
  return r;
}

/// A dense tensor of the given dtype holding `values` (row-major), each rounded to the dtype.
inline Tensor from_doubles(DType t, const Shape& shape, const std::vector<double>& values) {
  Tensor r = Tensor::empty(t, shape);
  for_each_index(shape, [&](const Shape& idx, int64_t lin) { set_element(r.view(), idx, values[size_t(lin)]); });
  return r;
}

/// A dense copy converted to another dtype (rounded to nearest even).
inline Tensor cast(const TensorView& src, DType t) { return from_doubles(t, src.shape, to_doubles(src)); }

enum class Fill {
  uniform,    // reals in [-1, 1), rounded to the dtype
  small_int,  // integers in [-range, range]: every sum below 2^11 is exact in every dtype
};

/// A dense tensor of random values.
inline Tensor random_tensor(DType t, const Shape& shape, Rng& rng, Fill fill = Fill::uniform, int64_t range = 3) {
  Tensor r = Tensor::empty(t, shape);
  for_each_index(shape, [&](const Shape& idx, int64_t) {
    set_element(r.view(), idx, fill == Fill::uniform ? rng.uniform() : double(rng.integer(-range, range)));
  });
  return r;
}

/// A non-contiguous view holding the same values as `src`: each dimension gets `gap` unused
/// elements after it in its parent's stride, so no two logical neighbours are adjacent in
/// memory. Unused memory is filled with NaN so that a read through a wrong stride shows.
struct StridedCopy {
  Tensor storage;
  TensorView view;
};
inline StridedCopy strided_copy(const TensorView& src, int64_t gap = 1) {
  const int nd = src.ndim();
  Shape padded(src.shape);
  for (int d = 0; d < nd; ++d) padded[d] += gap;
  StridedCopy r;
  r.storage = Tensor::empty(src.dtype, padded);
  fill(r.storage.view(), std::nan(""));
  r.view = TensorView(r.storage.data(), src.dtype, src.shape, contiguous_strides(padded));
  for_each_index(src.shape, [&](const Shape& idx, int64_t) { set_element(r.view, idx, element_as_double(src, idx)); });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Problems, tensors and the oracle

inline Shape x_shape(const TensorShapes& s) { return Shape(s.x.begin(), s.x.begin() + s.ndim); }
inline Shape w_shape(const TensorShapes& s) { return Shape(s.w.begin(), s.w.begin() + s.ndim); }
inline Shape y_shape(const TensorShapes& s) { return Shape(s.y.begin(), s.y.begin() + s.ndim); }

/// A valid problem with random inputs of its dtype.
struct Case {
  Problem problem;
  Geometry geometry;
  TensorShapes shapes;
  Tensor x, w;
};
inline Case make_case(const Problem& p, Rng& rng, Fill fill = Fill::uniform, int64_t range = 3) {
  Case c;
  c.problem = p;
  c.geometry = lower(p);
  c.shapes = tensor_shapes(p, c.geometry);
  c.x = random_tensor(p.dtype, x_shape(c.shapes), rng, fill, range);
  c.w = random_tensor(p.dtype, w_shape(c.shapes), rng, fill, range);
  return c;
}
inline Case make_case(std::string_view problem, Rng& rng, Fill fill = Fill::uniform, int64_t range = 3) {
  return make_case(parse_problem(problem), rng, fill, range);
}

/// The public API's options for a problem: conv_general's for op=conv, conv_transpose's for
/// op=convT (one value per axis).
inline ConvGeneralOptions conv_general_options(const Problem& p) {
  ConvGeneralOptions o;
  o.stride.assign(p.stride.begin(), p.stride.begin() + p.rank);
  o.padding_lo.assign(p.pad_lo.begin(), p.pad_lo.begin() + p.rank);
  o.padding_hi.assign(p.pad_hi.begin(), p.pad_hi.begin() + p.rank);
  o.kernel_dilation.assign(p.dil.begin(), p.dil.begin() + p.rank);
  o.input_dilation.assign(p.idil.begin(), p.idil.begin() + p.rank);
  o.groups = p.groups;
  o.flip = p.flip;
  return o;
}
inline ConvTransposeOptions conv_transpose_options(const Problem& p) {
  ConvTransposeOptions o;
  o.stride.assign(p.stride.begin(), p.stride.begin() + p.rank);
  o.padding.assign(p.pad_lo.begin(), p.pad_lo.begin() + p.rank);
  o.dilation.assign(p.dil.begin(), p.dil.begin() + p.rank);
  o.output_padding.assign(p.outpad.begin(), p.outpad.begin() + p.rank);
  o.groups = p.groups;
  return o;
}

/// Computes a problem through the public conv functions (conv_general, or
/// conv_transpose1d/2d/3d), as a user would call them.
inline Tensor call_api(const Problem& p, const TensorView& x, const TensorView& w, const ExecOptions& exec = {}) {
  if (p.op == Op::conv) return conv_general(x, w, conv_general_options(p), exec);
  switch (p.rank) {
    case 1: return conv_transpose1d(x, w, conv_transpose_options(p), exec);
    case 2: return conv_transpose2d(x, w, conv_transpose_options(p), exec);
    default: return conv_transpose3d(x, w, conv_transpose_options(p), exec);
  }
}

/// The float64 oracle on a problem of any dtype: the exact-as-float64 value of every output
/// element and its error scale (the sum of |x·w| over its terms), row-major over y's shape.
struct Oracle {
  std::vector<double> value;
  std::vector<double> abssum;
};
inline Oracle oracle(const Geometry& g, const TensorShapes& s, const TensorView& x, const TensorView& w) {
  Geometry g64 = g;
  g64.dtype = DType::f64;
  Tensor x64 = cast(x, DType::f64), w64 = cast(w, DType::f64);
  Tensor y64 = Tensor::empty(DType::f64, y_shape(s));
  reference_conv(g64, x64, w64, y64);
  Oracle r;
  r.value = to_doubles(y64);
  for (Tensor* t : {&x64, &w64})
    for (int64_t i = 0; i < t->numel(); ++i) t->ptr<double>()[i] = std::fabs(t->ptr<double>()[i]);
  reference_conv(g64, x64, w64, y64);
  r.abssum = to_doubles(y64);
  return r;
}
inline Oracle oracle(const Case& c) { return oracle(c.geometry, c.shapes, c.x, c.w); }

/// The oracle's answer in the problem's own dtype (reference_conv on the case's tensors).
inline Tensor reference_output(const Case& c) {
  Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  reference_conv(c.geometry, c.x, c.w, y);
  return y;
}

// ---------------------------------------------------------------------------------------------
// Tolerances and comparisons

/// How far a computed output element may be from the exact value e, whose terms' absolute
/// values sum to a: |y - e| <= out_rel·|e| + acc_rel·a + min_abs. out_rel is the output dtype's
/// unit roundoff (the final rounding), acc_rel covers accumulation in the compute type
/// (float32 for f32/f16/bf16, float64 for f64) in any order, and min_abs is half the output
/// dtype's smallest subnormal.
struct Tolerance {
  double out_rel;
  double acc_rel;
  double min_abs;
};
inline Tolerance tolerance(DType t) {
  const double u32 = std::ldexp(1.0, -24), u64 = std::ldexp(1.0, -53);
  switch (t) {
    case DType::f64: return {u64, 64 * u64, std::ldexp(1.0, -1075)};
    case DType::f32: return {u32, 64 * u32, std::ldexp(1.0, -150)};
    case DType::f16: return {std::ldexp(1.0, -11), 64 * u32, std::ldexp(1.0, -25)};
    case DType::bf16: return {std::ldexp(1.0, -8), 64 * u32, std::ldexp(1.0, -134)};
  }
  return {0, 0, 0};
}

/// Every element of y (any dtype, any strides) within tolerance(y.dtype) of the oracle.
/// `acc_scale` widens the accumulation term for algorithms that sum in a worse order.
inline ::testing::AssertionResult matches_oracle(const TensorView& y, const Oracle& ref, double acc_scale = 1.0) {
  const Tolerance tol = tolerance(y.dtype);
  std::vector<double> got = to_doubles(y);
  if (got.size() != ref.value.size())
    return ::testing::AssertionFailure() << "y has " << got.size() << " elements, the oracle " << ref.value.size();
  int64_t bad = 0;
  std::ostringstream os;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = ref.value[i];
    const double bound = tol.out_rel * std::fabs(e) + acc_scale * tol.acc_rel * ref.abssum[i] + tol.min_abs;
    if (!(std::fabs(got[i] - e) <= bound)) {
      if (bad < 5) os << "\n  element " << i << ": got " << got[i] << ", want " << e << " (bound " << bound << ")";
      ++bad;
    }
  }
  if (bad) return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements off" << os.str();
  return ::testing::AssertionSuccess();
}

/// Same shape, same dtype and bit-identical elements (logical order; strides may differ).
// Runs a plan on a case's inputs into a fresh output filled with NaN (every element must be
// written).
inline Tensor run_plan(const Plan& plan, const Case& c) {
  Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  fill(y.view(), std::nan(""));
  execute(plan, c.x, c.w, y);
  return y;
}

inline ::testing::AssertionResult bit_equal(const TensorView& a, const TensorView& b) {
  if (a.dtype != b.dtype) return ::testing::AssertionFailure() << "dtypes differ";
  if (a.shape != b.shape) return ::testing::AssertionFailure() << "shapes differ";
  const int64_t es = dtype_size(a.dtype);
  int64_t bad = 0;
  std::ostringstream os;
  for_each_index(a.shape, [&](const Shape& idx, int64_t lin) {
    const char* pa = static_cast<const char*>(a.data) + offset_of(a, idx) * es;
    const char* pb = static_cast<const char*>(b.data) + offset_of(b, idx) * es;
    if (std::memcmp(pa, pb, size_t(es)) != 0) {
      if (bad < 5) os << "\n  element " << lin << ": " << element_as_double(a, idx) << " vs " << element_as_double(b, idx);
      ++bad;
    }
  });
  if (bad) return ::testing::AssertionFailure() << bad << " of " << a.numel() << " elements differ" << os.str();
  return ::testing::AssertionSuccess();
}

/// |a - b| <= rel·max(|a|, |b|, scale) elementwise.
inline ::testing::AssertionResult all_close(const std::vector<double>& a, const std::vector<double>& b, double rel,
                                            double scale = 0.0) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " and " << b.size();
  int64_t bad = 0;
  std::ostringstream os;
  for (size_t i = 0; i < a.size(); ++i) {
    double bound = rel * std::max({std::fabs(a[i]), std::fabs(b[i]), scale});
    if (!(std::fabs(a[i] - b[i]) <= bound)) {
      if (bad < 5) os << "\n  element " << i << ": " << a[i] << " vs " << b[i];
      ++bad;
    }
  }
  if (bad) return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements differ" << os.str();
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Random problems

/// Bounds for random_problem(). Every drawn problem is valid and at most max_macs big.
struct DrawLimits {
  int min_rank = 1, max_rank = 3;
  bool conv = true, conv_transpose = true;
  int64_t max_batch = 2;
  int64_t max_extent = 8;      // input extent per axis
  int64_t max_kernel = 4;
  int64_t max_stride = 3;
  int64_t max_dilation = 3;    // kernel dilation
  int64_t max_input_dilation = 3;
  int64_t max_pad = 3;         // |padding|; convT padding may exceed d·(K-1)
  bool negative_padding = true;
  bool flip = true;
  int64_t max_groups = 3;
  int64_t max_channels_per_group = 3;
  double max_macs = 2e5;
  std::vector<DType> dtypes = {DType::f64};
};

inline Problem random_problem(Rng& rng, const DrawLimits& lim = {}) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    Problem p;
    p.op = (lim.conv && lim.conv_transpose) ? (rng.chance(0.5) ? Op::conv : Op::conv_transpose)
                                            : (lim.conv ? Op::conv : Op::conv_transpose);
    p.rank = int(rng.integer(lim.min_rank, lim.max_rank));
    p.n = rng.integer(1, lim.max_batch);
    p.groups = rng.integer(1, lim.max_groups);
    p.c = p.groups * rng.integer(1, lim.max_channels_per_group);
    p.o = p.groups * rng.integer(1, lim.max_channels_per_group);
    p.dtype = rng.pick(lim.dtypes);
    for (int i = 0; i < p.rank; ++i) {
      p.in[i] = rng.integer(1, lim.max_extent);
      p.k[i] = rng.integer(1, lim.max_kernel);
      p.stride[i] = rng.integer(1, lim.max_stride);
      p.dil[i] = rng.integer(1, lim.max_dilation);
      if (p.op == Op::conv) {
        p.idil[i] = rng.integer(1, lim.max_input_dilation);
        int64_t lo_min = lim.negative_padding ? -lim.max_pad : 0;
        p.pad_lo[i] = rng.integer(lo_min, lim.max_pad);
        p.pad_hi[i] = rng.chance(0.5) ? p.pad_lo[i] : rng.integer(lo_min, lim.max_pad);
      } else {
        p.pad_lo[i] = p.pad_hi[i] = rng.integer(0, lim.max_pad);
        p.outpad[i] = rng.integer(0, std::max(p.stride[i], p.dil[i]) - 1);
      }
    }
    if (p.op == Op::conv && lim.flip) p.flip = rng.chance(0.5);
    Geometry g;
    if (validate(p, &g).ok() && g.macs() <= lim.max_macs) return p;
  }
  ADD_FAILURE() << "random_problem: no valid problem within the limits";
  return parse_problem("in=1 c=1 o=1");
}

// ---------------------------------------------------------------------------------------------
// One algorithm against the oracle (shared by the CPU and CUDA algorithm tests)

/// Runs a case with one algorithm forced into a fresh y; false when the algorithm declines.
using AlgorithmRunner = bool (*)(const Case& c, const std::string& algo, Tensor* y);

inline const DType kAllDtypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64};

/// Random problems within `lim`, cycling through the dtypes: every one the algorithm accepts
/// must match the oracle, and it must accept at least `min_accepted` of them.
inline void check_algorithm_on_draws(AlgorithmRunner run, const std::string& algo, DrawLimits lim, int draws,
                                     int min_accepted) {
  Rng rng = test_rng();
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng);
    Tensor y;
    if (!run(c, algo, &y)) continue;
    ++accepted;
    ASSERT_TRUE(matches_oracle(y, oracle(c))) << algo << " on " << to_string(p);
  }
  EXPECT_GE(accepted, min_accepted) << algo << " accepted too few random problems";
}

/// Named problems in every dtype: within tolerance on random reals, and bit-exact on small
/// integers (every partial sum is exact, so the result must equal the oracle's bits).
inline void check_algorithm_on_list(AlgorithmRunner run, const std::string& algo,
                                    std::initializer_list<const char*> problems) {
  Rng rng = test_rng();
  for (const char* s : problems)
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      Tensor y;
      ASSERT_TRUE(run(c, algo, &y)) << algo << " declined " << to_string(p);
      ASSERT_TRUE(matches_oracle(y, oracle(c))) << algo << " on " << to_string(p);
      Case ci = make_case(p, rng, Fill::small_int, 2);
      ASSERT_TRUE(run(ci, algo, &y));
      ASSERT_TRUE(bit_equal(y, reference_output(ci))) << algo << " (small integers) on " << to_string(p);
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The status has `kind` and its message contains every one of `parts`.
inline ::testing::AssertionResult status_is(const Status& s, ErrorKind kind,
                                            std::initializer_list<std::string_view> parts = {}) {
  if (s.kind() != kind)
    return ::testing::AssertionFailure() << "kind " << error_kind_name(s.kind()) << ", want " << error_kind_name(kind)
                                         << "; message: " << s.message();
  for (std::string_view part : parts)
    if (s.message().find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << part << "': " << s.message();
  return ::testing::AssertionSuccess();
}

/// fn() throws convnd::Error of `kind` whose message contains every one of `parts`.
template <class Fn>
::testing::AssertionResult throws_error(Fn&& fn, ErrorKind kind, std::initializer_list<std::string_view> parts = {}) {
  try {
    fn();
  } catch (const Error& e) {
    return status_is(Status(e.kind(), e.what()), kind, parts);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-convnd exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ---------------------------------------------------------------------------------------------
// Files

/// The source tree's root: CONVND_SOURCE_DIR (set by CTest), else found from this file's path.
inline std::filesystem::path source_dir() {
  if (const char* env = std::getenv("CONVND_SOURCE_DIR"); env && *env) return env;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

/// One entry of a problem list: the problem text (comment and surrounding blanks removed),
/// its comment (after '#', trimmed) and its 1-based line number.
struct ListEntry {
  std::string problem;
  std::string comment;
  int line = 0;
};

inline std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

/// The problems of a list file; lines that are blank or only a comment are skipped.
inline std::vector<ListEntry> read_problem_list(const std::filesystem::path& path) {
  std::vector<ListEntry> out;
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return out;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    size_t hash = line.find('#');
    ListEntry e;
    e.problem = trim(std::string_view(line).substr(0, hash));
    e.comment = hash == std::string::npos ? "" : trim(std::string_view(line).substr(hash + 1));
    e.line = n;
    if (!e.problem.empty()) out.push_back(std::move(e));
  }
  return out;
}

/// A plan's configuration parameter by name: the last one called `name` or ending in
/// ".name" (a polyphase plan lists one set of tiles per reduction length, the largest last).
/// Fails the test and returns -1 when the plan has none.
inline int64_t plan_parameter(const Plan& plan, const std::string& name) {
  int64_t value = -1;
  bool found = false;
  for (const auto& [k, v] : plan.parameters())
    if (k == name || (k.size() > name.size() && k.compare(k.size() - name.size() - 1, std::string::npos, "." + name) == 0)) {
      value = v;
      found = true;
    }
  if (!found) ADD_FAILURE() << plan.algorithm << " has no parameter " << name;
  return value;
}

}  // namespace convnd::test
