// Validation (../shared/spec/semantics.md): every rule, each with its message checked (the
// operation in brackets, the rule, the offending values, then "; problem: <canonical string>"),
// output extents against the spec's formulas, and the three error kinds (invalid, unsupported,
// out of memory) kept apart.
#include <gtest/gtest.h>

#include <string>

#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

// validate() rejects p as invalid with a message "[api] ...parts...; problem: <to_string(p)>",
// and pasting that problem string back gives the same message.
::testing::AssertionResult rejects(const Problem& p, std::initializer_list<std::string_view> parts,
                                   std::string_view api = {}) {
  Geometry g;
  Status s = validate(p, &g, api);
  if (s.ok()) return ::testing::AssertionFailure() << "accepted: " << to_string(p);
  if (auto r = status_is(s, ErrorKind::invalid, parts); !r) return r;
  const std::string name(api.empty() ? default_api_name(p) : api);
  if (s.message().rfind("[" + name + "] ", 0) != 0)
    return ::testing::AssertionFailure() << "message does not start with [" << name << "]: " << s.message();
  if (!ends_with(s.message(), "; problem: " + to_string(p)))
    return ::testing::AssertionFailure() << "message does not end with the problem string: " << s.message();
  Problem back;
  if (parse_problem(to_string(p), &back).ok()) {
    Status again = validate(back, nullptr, api);
    if (again.message() != s.message())
      return ::testing::AssertionFailure() << "the pasted-back problem gives another message: " << again.message();
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult rejects(std::string_view text, std::initializer_list<std::string_view> parts,
                                   std::string_view api = {}) {
  return rejects(parse_problem(text), parts, api);
}

Geometry accepted(std::string_view text) {
  Geometry g{};
  Status s = validate(parse_problem(text), &g);
  EXPECT_TRUE(s.ok()) << text << ": " << s.message();
  return g;
}

Problem with(std::string_view text, const std::function<void(Problem&)>& edit) {
  Problem p = parse_problem(text);
  edit(p);
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Messages

TEST(Validation, SpecExampleMessage) {
  // semantics.md's example, with the problem in canonical form (n=1 is a default).
  Status s = validate(parse_problem("n=1 in=8x8 c=30 o=8 k=3x3 g=4"), nullptr);
  EXPECT_EQ(s.kind(), ErrorKind::invalid);
  EXPECT_EQ(s.message(),
            "[conv_general] input channels (30) must be divisible by groups (4); problem: in=8x8 c=30 o=8 k=3x3 g=4");
}

TEST(Validation, MessageNamesTheCallersOperation) {
  Problem p = parse_problem("in=8x8 c=3 o=4 g=0");
  EXPECT_TRUE(rejects(p, {"groups"}, "conv2d"));
  EXPECT_TRUE(rejects(p, {"groups"}, "conv_general"));
  EXPECT_TRUE(rejects(p, {"groups"}));  // default: conv_general
  EXPECT_EQ(default_api_name(p), "conv_general");
  for (int r = 1; r <= 3; ++r) {
    Problem t = p;
    t.op = Op::conv_transpose;
    t.rank = r;
    t.in = {8, 8, 8};
    for (int i = r; i < 3; ++i) t.in[i] = 1;
    EXPECT_EQ(default_api_name(t), "conv_transpose" + std::to_string(r) + "d");
    EXPECT_TRUE(rejects(t, {"groups"}));
  }
}

// ---------------------------------------------------------------------------------------------
// Groups

TEST(Validation, GroupsZeroOrNegative) {
  EXPECT_TRUE(rejects("in=8 c=4 o=4 g=0", {"groups g (0) must be >= 1"}));
  EXPECT_TRUE(rejects("op=convT in=8 c=4 o=4 g=0", {"groups g (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8x8x8 c=4 o=4 g=0", {"groups g (0)"}));
  EXPECT_TRUE(rejects(with("in=8 c=4 o=4", [](Problem& p) { p.groups = -2; }), {"groups g (-2) must be >= 1"}));
}

TEST(Validation, GroupsMustDivideChannels) {
  EXPECT_TRUE(rejects("in=8 c=30 o=8 g=4", {"input channels (30) must be divisible by groups (4)"}));
  EXPECT_TRUE(rejects("in=8 c=8 o=6 g=4", {"output channels (6) must be divisible by groups (4)"}));
  EXPECT_TRUE(rejects("in=8 c=3 o=3 g=4", {"input channels (3)", "groups (4)"}));
  EXPECT_TRUE(rejects("op=convT in=8x8x8 c=6 o=9 g=6", {"output channels (9) must be divisible by groups (6)"}));
  // Groups work in every rank, forward and transposed (MLX refuses them in 3-D).
  accepted("in=8x8x8 c=6 o=9 k=3x3x3 g=3");
  accepted("op=convT in=4x4x4 c=6 o=9 k=3x3x3 stride=2 g=3");
  accepted("in=8 c=7 o=14 k=3 g=7");  // depthwise with multiplier 2
}

// ---------------------------------------------------------------------------------------------
// Transposed convolution's own rules

TEST(Validation, OutputPaddingRange) {
  // 0 <= output_padding < max(stride, dilation)
  EXPECT_TRUE(rejects("op=convT in=5 c=1 o=1 k=3 stride=2 outpad=2",
                      {"output padding outpad (2) must be smaller than max(stride, dilation) (2)"}));
  EXPECT_TRUE(rejects("op=convT in=5 c=1 o=1 k=3 outpad=1", {"outpad (1)", "(1)"}));
  EXPECT_TRUE(rejects("op=convT in=5 c=1 o=1 k=3 stride=2 dil=3 outpad=3", {"outpad (3)", "(3)"}));
  EXPECT_TRUE(rejects("op=convT in=5x5 c=1 o=1 k=3x3 stride=2 outpad=1x2", {"outpad (2)", "on axis 1"}));
  EXPECT_TRUE(rejects(with("op=convT in=5 c=1 o=1 k=3 stride=2", [](Problem& p) { p.outpad[0] = -1; }),
                      {"output padding outpad (-1) must be >= 0"}));
  accepted("op=convT in=5 c=1 o=1 k=3 stride=2 outpad=1");
  accepted("op=convT in=5 c=1 o=1 k=3 stride=2 dil=3 outpad=2");  // max(2, 3) = 3
  accepted("op=convT in=5 c=1 o=1 k=3 dil=4 outpad=3");           // stride 1, dilation 4
  accepted("op=convT in=5x5x5 c=1 o=1 k=3x3x3 stride=3x2x1 outpad=2x1x0");
}

TEST(Validation, TransposedPaddingIsSymmetricAndNonNegative) {
  EXPECT_TRUE(rejects("op=convT in=8 c=1 o=1 k=3 pad=-1", {"padding pad (-1) must be >= 0"}));
  EXPECT_TRUE(rejects("op=convT in=8x8 c=1 o=1 k=3x3 pad=0x-2", {"padding pad (-2) must be >= 0", "on axis 1"}));
  EXPECT_TRUE(rejects("op=convT in=8 c=1 o=1 k=3 pad=0:1", {"symmetric padding", "0:1"}));
  EXPECT_TRUE(rejects("op=convT in=8x8 c=1 o=1 k=3x3 pad=1x2:1", {"symmetric", "2:1", "on axis 1"}));
}

TEST(Validation, InputDilationAndFlipAreForwardOnly) {
  // The parser refuses the fields; a Problem built in code is refused by validate().
  EXPECT_TRUE(rejects(with("op=convT in=8 c=1 o=1 k=3", [](Problem& p) { p.idil[0] = 2; }),
                      {"input dilation idil applies to op=conv only"}));
  EXPECT_TRUE(rejects(with("op=convT in=8 c=1 o=1 k=3", [](Problem& p) { p.flip = true; }),
                      {"flip applies to op=conv only"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1 k=3", [](Problem& p) { p.outpad[0] = 1; }),
                      {"output padding outpad applies to op=convT only"}));
}

// ---------------------------------------------------------------------------------------------
// Sizes and parameters below their minimum

TEST(Validation, ValuesBelowTheirMinimum) {
  EXPECT_TRUE(rejects("n=0 in=8 c=1 o=1", {"batch size n (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8 c=0 o=1", {"input channels c (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=0", {"output channels o (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=0 c=1 o=1", {"input extent in (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8x0 c=1 o=1", {"input extent in (0) must be >= 1", "on axis 1"}));
  EXPECT_TRUE(rejects("in=8x8x0 c=1 o=1", {"input extent in (0)", "on axis 2"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 k=0", {"kernel extent k (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8x8 c=1 o=1 k=0x3", {"kernel extent k (0)", "on axis 0"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 stride=0", {"stride (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8x8 c=1 o=1 stride=1x0", {"stride (0)", "on axis 1"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 dil=0", {"kernel dilation dil (0) must be >= 1"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 idil=0", {"input dilation idil (0) must be >= 1"}));
  EXPECT_TRUE(rejects("op=convT in=8 c=1 o=1 stride=0", {"stride (0)"}));
  EXPECT_TRUE(rejects("op=convT in=8 c=1 o=1 dil=0", {"dil (0)"}));
  EXPECT_TRUE(rejects("op=convT n=0 in=8 c=1 o=1", {"batch size n (0)"}));
  // Negative values cannot be written in a problem string; in code they are rejected too.
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.n = -3; }), {"batch size n (-3)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.c = -1; }), {"input channels c (-1)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.o = INT64_MIN; }), {"output channels o ("}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.in[0] = -8; }), {"input extent in (-8)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.k[0] = -1; }), {"kernel extent k (-1)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.stride[0] = -2; }), {"stride (-2)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.dil[0] = -2; }), {"dil (-2)"}));
  EXPECT_TRUE(rejects(with("in=8 c=1 o=1", [](Problem& p) { p.idil[0] = -2; }), {"idil (-2)"}));
}

TEST(Validation, RankAndValuesBeyondIt) {
  Problem p = parse_problem("in=8 c=1 o=1");
  p.rank = 0;
  EXPECT_EQ(validate(p, nullptr).kind(), ErrorKind::invalid);
  EXPECT_NE(validate(p, nullptr).message().find("rank (0)"), std::string::npos);
  p.rank = 4;
  EXPECT_NE(validate(p, nullptr).message().find("rank (4)"), std::string::npos);
  // A value on an axis beyond the rank is a bug of the caller, not silently ignored (and not
  // representable in a problem string).
  p = parse_problem("in=8 c=1 o=1");
  p.k[1] = 3;
  EXPECT_TRUE(status_is(validate(p, nullptr), ErrorKind::invalid, {"[conv_general] kernel extent k", "beyond the rank (1)"}));
  p = parse_problem("in=8x8 c=1 o=1");
  p.pad_hi[2] = 1;
  EXPECT_TRUE(status_is(validate(p, nullptr), ErrorKind::invalid, {"padding pad", "axis 2", "beyond the rank (2)"}));
}

// ---------------------------------------------------------------------------------------------
// The kernel must fit the dilated, padded input

TEST(Validation, KernelLargerThanPaddedInput) {
  EXPECT_TRUE(rejects("in=4 c=1 o=1 k=5",
                      {"dilated kernel extent (5) exceeds the dilated, padded input extent (4)"}));
  // With stride > 1 (MLX may return size 1 here).
  EXPECT_TRUE(rejects("in=3 c=1 o=1 k=5 stride=2", {"kernel extent (5)", "input extent (3)"}));
  EXPECT_TRUE(rejects("in=3 c=1 o=1 k=4 stride=7", {"kernel extent (4)", "input extent (3)"}));
  // Through kernel dilation: 4·(3-1)+1 = 9 > 8.
  EXPECT_TRUE(rejects("in=8 c=1 o=1 k=3 dil=4", {"kernel extent (9)", "input extent (8)"}));
  // Cropping makes the input too small: 5 - 2 - 1 = 2 < 3.
  EXPECT_TRUE(rejects("in=5 c=1 o=1 k=3 pad=-2:-1", {"kernel extent (3)", "input extent (2)"}));
  // Cropping below zero positions.
  EXPECT_TRUE(rejects("in=5 c=1 o=1 pad=-3", {"kernel extent (1)", "input extent (-1)"}));
  // The axis is named.
  EXPECT_TRUE(rejects("in=8x3 c=1 o=1 k=3x5 stride=2", {"kernel extent (5)", "on axis 1"}));
  EXPECT_TRUE(rejects("in=8x8x3 c=1 o=1 k=1x1x4", {"on axis 2"}));
  // Input dilation grows the input: 2·(3-1)+1 = 5 >= 5.
  accepted("in=3 c=1 o=1 k=5 idil=2");
  EXPECT_TRUE(rejects("in=3 c=1 o=1 k=6 idil=2", {"kernel extent (6)", "input extent (5)"}));
  // Equal extents are fine: one output.
  EXPECT_EQ(accepted("in=4 c=1 o=1 k=5 pad=0:1").out[2], 1);
  EXPECT_EQ(accepted("in=4 c=1 o=1 k=5 stride=3 pad=1").out[2], 1);
  EXPECT_EQ(accepted("in=4x4x4 c=1 o=1 k=4x4x4 stride=9").out, (Dims{1, 1, 1}));
  // A transposed conv whose output would be empty, with the formula's value in the message.
  EXPECT_TRUE(rejects("op=convT in=1 c=1 o=1 k=1 pad=1", {"output extent", "= -1 must be >= 1"}));
  EXPECT_TRUE(rejects("op=convT in=2 c=1 o=1 k=2 stride=2 pad=2", {"= 0 must be >= 1"}));
  EXPECT_TRUE(rejects("op=convT in=4x2 c=1 o=1 k=1x2 stride=2 pad=0x2", {"= 0 must be >= 1", "on axis 1"}));
}

TEST(Validation, NegativePaddingCropsValidly) {
  // Crop after dilation: 8 - 1 - 1 = 6 positions, kernel 3 -> 4 outputs.
  EXPECT_EQ(accepted("in=8 c=1 o=1 k=3 pad=-1").out[2], 4);
  // idil 2: 15 positions, -2 + 1 -> 14, kernel 3 -> 12.
  EXPECT_EQ(accepted("in=8 c=1 o=1 k=3 pad=-2:1 idil=2").out[2], 12);
  EXPECT_EQ(accepted("in=8 c=1 o=1 pad=-7:0").out[2], 1);
  EXPECT_EQ(accepted("in=9x9 c=1 o=1 k=2x3 stride=2 pad=-1:2x0:-3").out, (Dims{1, 5, 2}));
  EXPECT_EQ(accepted("in=5x5x5 c=1 o=1 k=1x1x1 pad=-2").out, (Dims{1, 1, 1}));
}

// ---------------------------------------------------------------------------------------------
// 64-bit sizes: overflow is an error, never a wrap

TEST(Validation, ElementAndByteCountsOverflowingInt64) {
  // 2^32 · 2^32 · 2 elements.
  EXPECT_TRUE(rejects("in=4294967296x4294967296 c=2 o=1", {"input size", "overflows int64"}));
  // 2^31 · 2^31 = 2^62 elements fit; 2^64 bytes do not (f32), nor 2^63 (f16).
  EXPECT_TRUE(rejects("in=2147483648x2147483648 c=1 o=1", {"input size in bytes overflows int64"}));
  EXPECT_TRUE(rejects("in=2147483648x2147483648 c=1 o=1 dtype=f16", {"input size in bytes overflows int64"}));
  // Weight: 2^62 output channels of 4 bytes.
  EXPECT_TRUE(rejects("in=1 c=1 o=4611686018427387904", {"weight size in bytes overflows int64"}));
  EXPECT_TRUE(rejects("in=1 c=4611686018427387904 o=1", {"input size in bytes overflows int64"}));
  // Output: x and w are 2^31 elements, y 2^62 of 4 bytes.
  EXPECT_TRUE(rejects("in=2147483648 c=1 o=2147483648", {"output size in bytes overflows int64"}));
  EXPECT_TRUE(rejects("n=4611686018427387904 in=1 c=1 o=1 dtype=f64", {"input size in bytes overflows int64"}));
  // A transposed conv whose output extent is beyond int64: (2^62 - 1)·4 + 1.
  EXPECT_TRUE(rejects("op=convT in=4611686018427387904 c=1 o=1 stride=4", {"overflows int64"}));
  // Just below the limits: ordinary problems (64-bit shapes, no other size limit).
  Geometry g = accepted("in=2147483648x1073741824 c=1 o=1 dtype=f16 stride=2");  // 2^62 bytes
  EXPECT_EQ(g.x_elems(), int64_t(1) << 61);
  EXPECT_EQ(g.out, (Dims{1, int64_t(1) << 30, int64_t(1) << 29}));
  g = accepted("in=4611686018427387903 c=1 o=1 dtype=f16 stride=4611686018427387903");  // 2^63 - 2 bytes
  EXPECT_EQ(g.out, (Dims{1, 1, 1}));
  g = accepted("n=1025 in=2048x1 c=512 o=1024");
  EXPECT_GT(g.y_elems(), INT32_MAX);
}

TEST(Validation, PaddedAndDilatedExtentsOverflowingInt64) {
  EXPECT_TRUE(rejects("in=2 c=1 o=1 pad=9223372036854775807", {"padded input extent overflows int64"}));
  EXPECT_TRUE(rejects("in=2 c=1 o=1 pad=0:9223372036854775807", {"padded input extent overflows int64"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 pad=-9223372036854775808", {"padded input extent overflows int64"}));
  EXPECT_TRUE(rejects("in=3 c=1 o=1 idil=9223372036854775807", {"padded input extent overflows int64"}));
  EXPECT_TRUE(rejects("in=2x3 c=1 o=1 idil=1x4611686018427387904", {"padded input extent overflows", "on axis 1"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 k=3 dil=4611686018427387904", {"dilated kernel extent overflows int64"}));
  EXPECT_TRUE(rejects("in=8 c=1 o=1 k=9223372036854775807 dil=2", {"kernel extent overflows int64"}));
  EXPECT_TRUE(rejects("op=convT in=8 c=1 o=1 k=3 dil=4611686018427387904", {"overflows int64"}));
  EXPECT_TRUE(rejects("op=convT in=3 c=1 o=1 stride=9223372036854775807", {"overflows int64"}));
  // The largest padded extent that fits: a valid problem with one output.
  EXPECT_EQ(accepted("in=1 c=1 o=1 stride=9223372036854775807 pad=0:9223372036854775806").out[2], 1);
}

// Regression: the transposed conv's hi padding d·(K-1) - p + output_padding was once summed
// unchecked; with d·(K-1) - p near INT64_MAX it wrapped (signed overflow, undefined behaviour)
// and the message reported a nonsensical negative output extent instead of an overflow.
TEST(Validation, TransposedHiPaddingOverflowIsReportedAsOverflow) {
  // d·(K-1) = 2^63 - 6, p = 0, output_padding 10 (< dil): hi = 2^63 + 4.
  EXPECT_TRUE(rejects("op=convT in=1 c=1 o=1 k=2 dil=9223372036854775802 outpad=10", {"overflows int64"}));
}

// ---------------------------------------------------------------------------------------------
// Output extents against the spec's formulas

TEST(Validation, OutputExtentsMatchTheFormulas) {
  // Random parameters, valid or not: validate() accepts exactly when the formula gives >= 1
  // on every axis (and every other rule holds), and its extents are the formula's.
  Rng rng = test_rng();
  int valid = 0, convt_large_pad = 0;
  for (int it = 0; it < 5000; ++it) {
    Problem p;
    p.op = rng.chance(0.5) ? Op::conv : Op::conv_transpose;
    p.rank = int(rng.integer(1, 3));
    p.c = p.o = 2;
    bool ok = true, large_pad = false;
    Dims want{1, 1, 1};
    for (int i = 0; i < p.rank; ++i) {
      int64_t I = rng.integer(1, 12), K = rng.integer(1, 6), s = rng.integer(1, 4), d = rng.integer(1, 3);
      p.in[i] = I;
      p.k[i] = K;
      p.stride[i] = s;
      p.dil[i] = d;
      if (p.op == Op::conv) {
        int64_t id = rng.integer(1, 3), lo = rng.integer(-4, 4), hi = rng.integer(-4, 4);
        p.idil[i] = id;
        p.pad_lo[i] = lo;
        p.pad_hi[i] = hi;
        int64_t padded = id * (I - 1) + 1 + lo + hi, E = d * (K - 1) + 1;
        if (padded < E) ok = false;
        else want[i] = (padded - E) / s + 1;  // floor: padded - E >= 0
      } else {
        int64_t pad = rng.integer(0, 6), op = rng.integer(0, std::max(s, d) - 1);
        p.pad_lo[i] = p.pad_hi[i] = pad;
        p.outpad[i] = op;
        large_pad |= pad > d * (K - 1);
        int64_t P = (I - 1) * s - 2 * pad + d * (K - 1) + op + 1;
        if (P < 1) ok = false;
        else want[i] = P;
      }
    }
    Geometry g;
    Status st = validate(p, &g);
    ASSERT_EQ(st.ok(), ok) << to_string(p) << ": " << st.message();
    if (!ok) continue;
    ++valid;
    convt_large_pad += large_pad;
    TensorShapes ts = tensor_shapes(p, g);
    for (int i = 0; i < p.rank; ++i) {
      EXPECT_EQ(ts.y[1 + i], want[i]) << to_string(p) << " axis " << i;
      EXPECT_EQ(g.out[3 - p.rank + i], want[i]) << to_string(p) << " axis " << i;
    }
  }
  EXPECT_GT(valid, 1000);
  EXPECT_GT(convt_large_pad, 50);  // padding > d·(K-1) in transposed convs, which MLX gets wrong
}

TEST(Validation, TransposedOutputExtentWithPaddingBeyondTheKernelSpan) {
  // P = (I-1)·s - 2p + d·(K-1) + output_padding + 1, also when p > d·(K-1).
  EXPECT_EQ(accepted("op=convT in=5 c=1 o=1 k=3 stride=2 pad=3").out[2], 5);
  EXPECT_EQ(accepted("op=convT in=10 c=1 o=1 k=2 stride=3 pad=4 outpad=1").out[2], 22);
  EXPECT_EQ(accepted("op=convT in=7 c=1 o=1 k=1 stride=4 pad=5").out[2], 15);
  EXPECT_EQ(accepted("op=convT in=6x6 c=1 o=1 k=2x2 stride=2 dil=3 pad=4 outpad=2").out, (Dims{1, 8, 8}));
  // The lowering: stride 1, input dilation s, lo = d(K-1) - p (negative: crop), hi = lo + outpad.
  Geometry g = accepted("op=convT in=10 c=1 o=1 k=2 stride=3 pad=4 outpad=1");
  EXPECT_EQ(g.stride[2], 1);
  EXPECT_EQ(g.idil[2], 3);
  EXPECT_EQ(g.lo[2], -3);
  EXPECT_EQ(g.hi[2], -2);
  EXPECT_TRUE(g.flip);
}

TEST(Validation, GeometryLowersToThreeDimensions) {
  Geometry g = accepted("n=2 in=9 c=4 o=6 k=3 stride=2 pad=1:0 dil=2 idil=3 g=2 flip=1 dtype=bf16");
  EXPECT_EQ(g.in, (Dims{1, 1, 9}));
  EXPECT_EQ(g.k, (Dims{1, 1, 3}));
  EXPECT_EQ(g.stride, (Dims{1, 1, 2}));
  EXPECT_EQ(g.lo, (Dims{0, 0, 1}));
  EXPECT_EQ(g.hi, (Dims{0, 0, 0}));
  EXPECT_EQ(g.kdil, (Dims{1, 1, 2}));
  EXPECT_EQ(g.idil, (Dims{1, 1, 3}));
  EXPECT_EQ(g.out, (Dims{1, 1, (3 * 8 + 1 + 1 - 5) / 2 + 1}));
  EXPECT_EQ(g.cg(), 2);
  EXPECT_EQ(g.og(), 3);
  EXPECT_TRUE(g.flip);
  EXPECT_EQ(g.dtype, DType::bf16);
  g = accepted("in=5x6 c=1 o=1 k=2x3");
  EXPECT_EQ(g.in, (Dims{1, 5, 6}));
  EXPECT_EQ(g.out, (Dims{1, 4, 4}));
}

// ---------------------------------------------------------------------------------------------
// Three distinct error kinds

TEST(ErrorKinds, InvalidUnsupportedAndOutOfMemoryStayDistinct) {
  // invalid: a rule of the spec is broken; whatever the backend.
  EXPECT_TRUE(throws_error([] { make_plan(parse_problem("in=8 c=4 o=4 g=0")); }, ErrorKind::invalid,
                           {"groups", "; problem: in=8 c=4 o=4 g=0"}));
  ExecOptions cuda;
  cuda.backend = Backend::cuda;
  EXPECT_TRUE(throws_error([&] { make_plan(parse_problem("in=8 c=4 o=4 g=0"), cuda); }, ErrorKind::invalid, {"groups"}));
  // invalid beats out of memory: a huge problem that also breaks a rule.
  EXPECT_TRUE(throws_error([] { make_plan(parse_problem("in=1099511627776 c=3 o=4 g=2")); }, ErrorKind::invalid,
                           {"divisible"}));
  // out of memory: x, w and y need 4 TiB each. The plan is made (it reads only shapes); the
  // memory check before running reports it, before any allocation.
  const Problem huge = parse_problem("in=1099511627776 c=1 o=1");
  const Plan huge_plan = make_plan(huge);
  EXPECT_TRUE(throws_error([&] { check_memory(huge_plan, Allocating::all); }, ErrorKind::out_of_memory,
                           {"bytes", "; problem: in=1099511627776 c=1 o=1"}));
  // run() with views that only pretend to hold the data: it must fail before touching them.
  float dummy = 0;
  TensorView xv(&dummy, DType::f32, {1, int64_t(1) << 40, 1}), wv(&dummy, DType::f32, {1, 1, 1});
  EXPECT_TRUE(throws_error([&] { run(huge, xv, wv); }, ErrorKind::out_of_memory));
  EXPECT_TRUE(throws_error([&] { conv1d(xv, wv); }, ErrorKind::out_of_memory));
  // An invalid forced algorithm name is the caller's error.
  EXPECT_TRUE(throws_error([] { make_plan(parse_problem("in=8 c=1 o=1"), ExecOptions{.algorithm = "no_such_algorithm"}); },
                           ErrorKind::invalid, {"no_such_algorithm", "the cpu algorithms: pointwise_gemm, "}));
}

TEST(ErrorKinds, CudaOnACpuBuildIsUnsupported) {
#ifdef CONVND_WITH_CUDA
  GTEST_SKIP() << "this build has the CUDA backend";
#else
  ExecOptions cuda;
  cuda.backend = Backend::cuda;
  const Problem p = parse_problem("n=2 in=8x8 c=4 o=4 k=3x3");
  EXPECT_TRUE(throws_error([&] { make_plan(p, cuda); }, ErrorKind::unsupported,
                           {"cuda", "; problem: n=2 in=8x8 c=4 o=4 k=3x3"}));
  Rng rng = test_rng();
  Case c = make_case(p, rng);
  EXPECT_TRUE(throws_error([&] { conv2d(c.x, c.w, {}, cuda); }, ErrorKind::unsupported));
  // The same problem on the CPU runs.
  EXPECT_NO_THROW(make_plan(p));
#endif
}

// Regression: x, w and y of 2^62 bytes each: every count fits in int64 but their sum,
// 3·2^62 bytes, does not. make_plan() once summed them unchecked, the sum wrapped negative,
// the "exceeds physical memory" test passed and a plan was returned instead of out_of_memory.
TEST(ErrorKinds, TensorBytesSumOverflowIsOutOfMemory) {
  // 2^60 elements of 4 bytes each for x and y: the sum of the bytes overflows int64. A plan only
  // reads shapes, so it is made (it tells the bytes); running is out of memory, before anything
  // is allocated.
  const Problem p = parse_problem("in=1152921504606846976 c=1 o=1");
  ASSERT_TRUE(validate(p, nullptr).ok());
  const Plan plan = make_plan(p);
  EXPECT_TRUE(throws_error([&] { check_memory(plan, Allocating::all); }, ErrorKind::out_of_memory,
                           {"2^63", "; problem: "}));
  EXPECT_TRUE(throws_error([&] { check_memory(plan, Allocating::output); }, ErrorKind::out_of_memory,
                           {"; problem: "}));
  EXPECT_NO_THROW(check_memory(plan, Allocating::workspace));
}

TEST(ErrorKinds, PlansAreMadeForAnySizeAndRunningChecksAvailableMemory) {
  // 40 TB of output: planned (a plan reads only shapes), refused by run() before allocating.
  const Problem p = parse_problem("n=10 in=1000000000000 c=1 o=1");
  const Plan plan = make_plan(p);
  EXPECT_GT(plan.geometry.y_elems(), int64_t(1) << 40);
  float one = 1;
  TensorView x(&one, DType::f32, {10, 1, 1}, {0, 0, 0});  // a broadcast view: no memory behind it
  x.shape[1] = 1000000000000;
  TensorView w(&one, DType::f32, {1, 1, 1});
  EXPECT_TRUE(throws_error([&] { run(p, x, w); }, ErrorKind::out_of_memory,
                           {"available to this process", "; problem: "}));
}
