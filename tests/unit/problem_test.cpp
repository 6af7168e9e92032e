// Problem strings (../shared/spec/problem-strings.md): the canonical form, round trips, every
// example of the spec, every class of malformed string, and the problem lists under
// tests/lists/ (each line parses and validates, or for invalid.txt is rejected).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

std::string canonical(std::string_view text) { return to_string(parse_problem(text)); }

// The parse error for `text`, checked to be an invalid status naming the field.
::testing::AssertionResult rejected_naming(std::string_view text, std::string_view field,
                                           std::initializer_list<std::string_view> more = {}) {
  Problem p;
  Status s = parse_problem(text, &p);
  if (s.ok()) return ::testing::AssertionFailure() << "'" << text << "' parsed as " << to_string(p);
  std::string quoted = "'" + std::string(field) + "'";
  if (auto r = status_is(s, ErrorKind::invalid, {quoted}); !r) return r;
  for (std::string_view part : more)
    if (s.message().find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << part << "': " << s.message();
  // The message ends with the text as given, so it can be pasted back.
  if (!ends_with(s.message(), "; problem: " + std::string(text)))
    return ::testing::AssertionFailure() << "message does not end with the problem: " << s.message();
  return ::testing::AssertionSuccess();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Canonical form

TEST(ProblemString, ParsesEveryField) {
  Problem p = parse_problem(
      "op=conv n=3 in=9x7x5 c=6 o=4 k=3x2x1 stride=2x1x3 pad=0:2x1x-1:0 dil=1x2x1 idil=2x1x1 g=2 flip=1 dtype=f64");
  EXPECT_EQ(p.op, Op::conv);
  EXPECT_EQ(p.rank, 3);
  EXPECT_EQ(p.n, 3);
  EXPECT_EQ(p.in, (Dims{9, 7, 5}));
  EXPECT_EQ(p.c, 6);
  EXPECT_EQ(p.o, 4);
  EXPECT_EQ(p.k, (Dims{3, 2, 1}));
  EXPECT_EQ(p.stride, (Dims{2, 1, 3}));
  EXPECT_EQ(p.pad_lo, (Dims{0, 1, -1}));
  EXPECT_EQ(p.pad_hi, (Dims{2, 1, 0}));
  EXPECT_EQ(p.dil, (Dims{1, 2, 1}));
  EXPECT_EQ(p.idil, (Dims{2, 1, 1}));
  EXPECT_EQ(p.outpad, (Dims{0, 0, 0}));
  EXPECT_EQ(p.groups, 2);
  EXPECT_TRUE(p.flip);
  EXPECT_EQ(p.dtype, DType::f64);

  Problem t = parse_problem("op=convT in=5 c=2 o=3 k=4 stride=3 pad=1 outpad=2 dtype=bf16");
  EXPECT_EQ(t.op, Op::conv_transpose);
  EXPECT_EQ(t.rank, 1);
  EXPECT_EQ(t.pad_lo[0], 1);
  EXPECT_EQ(t.pad_hi[0], 1);
  EXPECT_EQ(t.outpad[0], 2);
  EXPECT_EQ(t.dtype, DType::bf16);
}

TEST(ProblemString, DefaultsOfOmittedFields) {
  Problem p = parse_problem("in=8x6 c=3 o=5");
  Problem want;
  want.rank = 2;
  want.in = {8, 6, 1};
  want.c = 3;
  want.o = 5;
  EXPECT_EQ(p, want);
  EXPECT_EQ(p.op, Op::conv);
  EXPECT_EQ(p.n, 1);
  EXPECT_EQ(p.k, (Dims{1, 1, 1}));
  EXPECT_EQ(p.groups, 1);
  EXPECT_EQ(p.dtype, DType::f32);
  EXPECT_FALSE(p.flip);
}

TEST(ProblemString, OneValueAppliesToEveryAxis) {
  Problem p = parse_problem("in=8x8x8 c=1 o=1 k=3x3x3 stride=2 pad=1 dil=2 idil=3");
  EXPECT_EQ(p.stride, (Dims{2, 2, 2}));
  EXPECT_EQ(p.pad_lo, (Dims{1, 1, 1}));
  EXPECT_EQ(p.pad_hi, (Dims{1, 1, 1}));
  EXPECT_EQ(p.dil, (Dims{2, 2, 2}));
  EXPECT_EQ(p.idil, (Dims{3, 3, 3}));
  Problem q = parse_problem("in=8x8 c=1 o=1 pad=-1:2");
  EXPECT_EQ(q.pad_lo, (Dims{-1, -1, 0}));
  EXPECT_EQ(q.pad_hi, (Dims{2, 2, 0}));
  Problem t = parse_problem("op=convT in=8x8 c=1 o=1 k=3x3 stride=2 outpad=1");
  EXPECT_EQ(t.outpad, (Dims{1, 1, 0}));
}

TEST(ProblemString, CanonicalForm) {
  struct Case { const char* in; const char* want; };
  const Case cases[] = {
      // Table order, whatever the order given.
      {"dtype=f16 flip=1 g=2 idil=2 dil=3 pad=1 stride=2 k=3 o=4 c=2 in=9 n=2",
       "n=2 in=9 c=2 o=4 k=3 stride=2 pad=1 dil=3 idil=2 g=2 flip=1 dtype=f16"},
      {"outpad=1 stride=2 c=1 o=1 in=4 op=convT", "op=convT in=4 c=1 o=1 stride=2 outpad=1"},
      // Defaults left out.
      {"op=conv n=1 in=5 c=1 o=1 k=1 stride=1 pad=0 dil=1 idil=1 g=1 flip=0 dtype=f32", "in=5 c=1 o=1"},
      {"op=convT in=5 c=1 o=1 outpad=0", "op=convT in=5 c=1 o=1"},
      // Equal per-axis values collapse; in and k never do.
      {"in=8x8 c=1 o=1 k=3x3 stride=2x2 pad=1x1 dil=2x2 idil=3x3", "in=8x8 c=1 o=1 k=3x3 stride=2 pad=1 dil=2 idil=3"},
      {"in=8x8x8 c=1 o=1 k=3x3x3", "in=8x8x8 c=1 o=1 k=3x3x3"},
      {"in=8x9 c=1 o=1 stride=2x1 pad=1x2 dil=1x3 idil=2x1", "in=8x9 c=1 o=1 stride=2x1 pad=1x2 dil=1x3 idil=2x1"},
      {"in=8x8 c=1 o=1 pad=1:1x1:1", "in=8x8 c=1 o=1 pad=1"},
      {"in=8x8 c=1 o=1 pad=0:1x0:1", "in=8x8 c=1 o=1 pad=0:1"},
      {"in=8x8 c=1 o=1 pad=0:1x1", "in=8x8 c=1 o=1 pad=0:1x1"},
      {"in=8x8 c=1 o=1 pad=-1:0x-1:0", "in=8x8 c=1 o=1 pad=-1:0"},
      {"in=8 c=1 o=1 pad=2:2", "in=8 c=1 o=1 pad=2"},
      {"in=8 c=1 o=1 pad=-0", "in=8 c=1 o=1"},
      {"op=convT in=8x8 c=1 o=1 k=3x3 stride=3x3 outpad=2x2", "op=convT in=8x8 c=1 o=1 k=3x3 stride=3 outpad=2"},
      {"op=convT in=8x8 c=1 o=1 k=3x3 stride=3x3 outpad=0x2", "op=convT in=8x8 c=1 o=1 k=3x3 stride=3 outpad=0x2"},
      // Blanks and a trailing comment.
      {"  in=7   c=2\to=3  # a comment", "in=7 c=2 o=3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(canonical(c.in), c.want);
    EXPECT_EQ(canonical(c.want), c.want);
  }
}

TEST(ProblemString, EveryExampleOfTheSpecParsesAndValidates) {
  // The examples of problem-strings.md, verbatim (comments included), and their canonical form.
  struct Case { const char* text; const char* canonical; };
  const Case examples[] = {
      {"n=8 in=56x56 c=64 o=64 k=3x3 pad=1                     # a ResNet 3x3 layer",
       "n=8 in=56x56 c=64 o=64 k=3x3 pad=1"},
      {"n=1025 in=2048x1 c=512 o=1024                          # 1x1, 2^31 + 2,097,152 output elements",
       "n=1025 in=2048x1 c=512 o=1024"},
      {"op=convT in=5160 c=1 o=1 k=4096 stride=1024            # long-kernel transposed conv (audio)",
       "op=convT in=5160 c=1 o=1 k=4096 stride=1024"},
      {"op=convT n=4 in=100000 c=512 o=256 k=16 stride=8 pad=4 # vocoder upsampling layer",
       "op=convT n=4 in=100000 c=512 o=256 k=16 stride=8 pad=4"},
      {"n=2 in=16x16x16 c=32 o=64 k=3x3x3 pad=1 g=4 dtype=bf16", "n=2 in=16x16x16 c=32 o=64 k=3x3x3 pad=1 g=4 dtype=bf16"},
      {"n=1 in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1 dtype=f64",
       "in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1 dtype=f64"},
      // The example of semantics.md's Errors section is a problem too (an invalid one).
  };
  for (const Case& c : examples) {
    SCOPED_TRACE(c.text);
    Problem p;
    ASSERT_TRUE(parse_problem(c.text, &p).ok());
    EXPECT_EQ(to_string(p), c.canonical);
    Geometry g;
    Status s = validate(p, &g);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  // Output sizes the spec states.
  Geometry g = lower(parse_problem("n=1025 in=2048x1 c=512 o=1024"));
  EXPECT_EQ(g.y_elems(), (int64_t(1) << 31) + 2097152);
  g = lower(parse_problem("n=1 in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1 dtype=f64"));
  // axis 0: dilated 2·8+1 = 17, padded 19, kernel 3 -> (19-3)/2+1 = 9; axis 1: 7+1 = 8, kernel 3 -> 6
  EXPECT_EQ(g.out, (Dims{1, 9, 6}));
  g = lower(parse_problem("op=convT in=5160 c=1 o=1 k=4096 stride=1024"));
  EXPECT_EQ(g.out[2], 5159 * 1024 + 4095 + 1);

  Problem bad = parse_problem("n=1 in=8x8 c=30 o=8 k=3x3 g=4");
  EXPECT_EQ(to_string(bad), "in=8x8 c=30 o=8 k=3x3 g=4");
  EXPECT_FALSE(validate(bad, nullptr).ok());
}

TEST(ProblemString, RandomProblemsRoundTrip) {
  // Any parseable Problem (valid or not): parse(to_string(p)) == p and the canonical form is a
  // fixed point.
  Rng rng = test_rng();
  for (int i = 0; i < 2000; ++i) {
    Problem p;
    p.op = rng.chance(0.5) ? Op::conv : Op::conv_transpose;
    p.rank = int(rng.integer(1, 3));
    auto value = [&](int64_t lo, int64_t hi) {
      // Mostly small, sometimes huge, sometimes the default.
      switch (rng.integer(0, 3)) {
        case 0: return lo;
        case 1: return rng.integer(lo, hi);
        case 2: return rng.integer(lo, 20);
        default: return rng.integer(std::max<int64_t>(lo, 0), INT64_MAX);
      }
    };
    p.n = value(1, INT64_MAX);
    p.c = value(1, INT64_MAX);
    p.o = value(1, INT64_MAX);
    p.groups = value(1, INT64_MAX);
    for (int a = 0; a < p.rank; ++a) {
      p.in[a] = value(1, INT64_MAX);
      p.k[a] = value(1, INT64_MAX);
      p.stride[a] = value(1, INT64_MAX);
      p.dil[a] = value(1, INT64_MAX);
      p.pad_lo[a] = rng.chance(0.5) ? 0 : rng.integer(INT64_MIN, INT64_MAX) / (rng.chance(0.5) ? 1 : INT64_MAX / 8);
      p.pad_hi[a] = rng.chance(0.5) ? p.pad_lo[a] : rng.integer(-10, 10);
      if (p.op == Op::conv) p.idil[a] = value(1, INT64_MAX);
      else p.outpad[a] = value(0, INT64_MAX);
    }
    // All-equal per-axis values, to exercise collapsing.
    if (rng.chance(0.3))
      for (int a = 1; a < p.rank; ++a) {
        p.stride[a] = p.stride[0];
        p.pad_lo[a] = p.pad_lo[0];
        p.pad_hi[a] = p.pad_hi[0];
        p.in[a] = p.in[0];
      }
    if (p.op == Op::conv) p.flip = rng.chance(0.5);
    p.dtype = rng.pick(std::vector<DType>{DType::f32, DType::f16, DType::bf16, DType::f64});
    p.dir = rng.pick(std::vector<Direction>{Direction::fwd, Direction::bwd_d, Direction::bwd_w});

    const std::string s = to_string(p);
    SCOPED_TRACE(s);
    Problem q;
    Status st = parse_problem(s, &q);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(q, p);
    EXPECT_EQ(to_string(q), s);
  }
}

TEST(ProblemString, ValidRandomProblemsRoundTripAndKeepTheirGeometry) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.dtypes = {DType::f32, DType::f16, DType::bf16, DType::f64};
  for (int i = 0; i < 500; ++i) {
    Problem p = random_problem(rng, lim);
    Problem q = parse_problem(to_string(p));
    EXPECT_EQ(q, p) << to_string(p);
    Geometry a = lower(p), b = lower(q);
    EXPECT_EQ(a.out, b.out) << to_string(p);
  }
}

TEST(ProblemString, ThrowingParseThrowsInvalid) {
  EXPECT_TRUE(throws_error([] { parse_problem("in=8 c=1"); }, ErrorKind::invalid, {"'o'", "required"}));
  EXPECT_NO_THROW(parse_problem("in=8 c=1 o=1"));
}

// ---------------------------------------------------------------------------------------------
// Malformed strings: each an invalid error naming the field

TEST(ProblemString, RejectsUnknownRepeatedAndBareFields) {
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 kernel=3", "kernel", {"unknown"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 K=3", "K", {"unknown"}));  // keys are case-sensitive
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 groups=2", "groups", {"unknown"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 =3", "", {"unknown"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 c=2", "c", {"repeated"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=1 pad=1", "pad", {"repeated"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 flip", "flip", {"key=value"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 3x3", "3x3", {"key=value"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 k =3", "k", {"key=value"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=", "o", {"no value"}));
  EXPECT_TRUE(rejected_naming("in= c=1 o=1", "in", {"no value"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1", "o", {"required"}));
  EXPECT_TRUE(rejected_naming("c=1 o=1", "in", {"required"}));
  EXPECT_TRUE(rejected_naming("in=8 o=1", "c", {"required"}));
  Problem p;
  EXPECT_TRUE(status_is(parse_problem("", &p), ErrorKind::invalid, {"empty"}));
  EXPECT_TRUE(status_is(parse_problem("   # only a comment", &p), ErrorKind::invalid, {"empty"}));
}

TEST(ProblemString, RejectsMalformedNumbers) {
  // Every integer field, with every malformed form.
  const char* bad_numbers[] = {"3x", "x3", "+1", "1.5", "0x10", "1e3", "9223372036854775808",
                               "99999999999999999999", "a", "1_000", "--1", "3-", "3:"};
  for (const char* v : bad_numbers) {
    const std::string num = v;
    SCOPED_TRACE(num);
    struct F { const char* key; std::string text; };
    // 'x'-containing forms are axis lists for per-axis fields; they stay malformed there too
    // because one part is empty or the count disagrees.
    const F fields[] = {
        {"n", "n=" + num + " in=8 c=1 o=1"},
        {"c", "in=8 c=" + num + " o=1"},
        {"o", "in=8 c=1 o=" + num},
        {"g", "in=8 c=1 o=1 g=" + num},
        {"in", "in=" + num + " c=1 o=1"},
        {"k", "in=8 c=1 o=1 k=" + num},
        {"stride", "in=8 c=1 o=1 stride=" + num},
        {"pad", "in=8 c=1 o=1 pad=" + num},
        {"dil", "in=8 c=1 o=1 dil=" + num},
        {"idil", "in=8 c=1 o=1 idil=" + num},
        {"outpad", "op=convT in=8 c=1 o=1 outpad=" + num},
    };
    for (const F& f : fields) {
      if (num == "0x10" && std::string(f.key) == "in") continue;  // a 2-D extent 0 by 10
      EXPECT_TRUE(rejected_naming(f.text, f.key)) << f.text;
    }
  }
  // Overflow just past int64, in every number position of pad.
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=9223372036854775808", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=-9223372036854775809", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=1:9223372036854775808", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=--1", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=1:", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=:1", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=1:2:3", "pad"));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=+1:1", "pad"));
  // int64's extremes themselves are numbers (the problem is then invalid, not malformed).
  Problem p;
  EXPECT_TRUE(parse_problem("in=8 c=1 o=1 pad=-9223372036854775808:9223372036854775807", &p).ok());
  EXPECT_EQ(p.pad_lo[0], INT64_MIN);
  EXPECT_EQ(p.pad_hi[0], INT64_MAX);
  EXPECT_TRUE(parse_problem("n=9223372036854775807 in=8 c=1 o=1", &p).ok());
  EXPECT_EQ(p.n, INT64_MAX);
  // Only pad may be negative.
  EXPECT_TRUE(rejected_naming("n=-1 in=8 c=1 o=1", "n", {"-1"}));
  EXPECT_TRUE(rejected_naming("in=8 c=-1 o=1", "c", {"-1"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=-1", "o", {"-1"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 g=-1", "g", {"-1"}));
  for (const char* key : {"k", "stride", "dil", "idil"})
    EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 " + std::string(key) + "=-1", key, {"-1"})) << key;
  EXPECT_TRUE(rejected_naming("in=-8 c=1 o=1", "in", {"-8"}));
  // `0x10` is no hexadecimal number: as `in` it is two axes, 0 and 10 (validate rejects the 0).
  ASSERT_TRUE(parse_problem("in=0x10 c=1 o=1", &p).ok());
  EXPECT_EQ(p.rank, 2);
  EXPECT_EQ(p.in, (Dims{0, 10, 1}));
  EXPECT_TRUE(rejected_naming("op=convT in=8 c=1 o=1 outpad=-1", "outpad", {"-1"}));
}

TEST(ProblemString, RejectsRanksThatDisagree) {
  EXPECT_TRUE(rejected_naming("in=8x8 c=1 o=1 k=3", "k", {"1 axes", "in has 2"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 k=3x3", "k", {"2 axes", "in has 1"}));
  EXPECT_TRUE(rejected_naming("in=8x8x8 c=1 o=1 k=3x3", "k"));
  EXPECT_TRUE(rejected_naming("in=8x8 c=1 o=1 stride=1x2x1", "stride", {"3 values"}));
  EXPECT_TRUE(rejected_naming("in=8x8x8 c=1 o=1 stride=1x2", "stride", {"2 values"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 dil=1x2", "dil"));
  EXPECT_TRUE(rejected_naming("in=8x8x8 c=1 o=1 idil=1x2", "idil"));
  EXPECT_TRUE(rejected_naming("in=8x8x8 c=1 o=1 pad=1x2", "pad", {"2 entries"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 pad=0:1x1:0", "pad"));
  EXPECT_TRUE(rejected_naming("op=convT in=8x8 c=1 o=1 stride=2 outpad=1x1x1", "outpad"));
  // Rank above 3, in `in` or in `k`.
  EXPECT_TRUE(rejected_naming("in=2x2x2x2 c=1 o=1", "in", {"4 axes"}));
  EXPECT_TRUE(rejected_naming("in=2x2x2 c=1 o=1 k=1x1x1x1", "k", {"4 axes"}));
  EXPECT_TRUE(rejected_naming("in=2x2x2x2x2x2 c=1 o=1 k=1x1x1x1x1x1", "in"));
}

TEST(ProblemString, RejectsFieldsOfTheOtherOp) {
  EXPECT_TRUE(rejected_naming("op=convT in=8 c=1 o=1 idil=2", "idil", {"op=conv"}));
  EXPECT_TRUE(rejected_naming("op=convT in=8 c=1 o=1 idil=1", "idil", {"op=conv"}));
  EXPECT_TRUE(rejected_naming("op=convT in=8 c=1 o=1 flip=1", "flip", {"op=conv"}));
  EXPECT_TRUE(rejected_naming("op=convT in=8 c=1 o=1 flip=0", "flip", {"op=conv"}));
  EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 outpad=1", "outpad", {"op=convT"}));
  EXPECT_TRUE(rejected_naming("op=conv in=8 c=1 o=1 outpad=0", "outpad", {"op=convT"}));
}

TEST(ProblemString, RejectsBadOpDtypeAndFlip) {
  EXPECT_TRUE(rejected_naming("op=deconv in=8 c=1 o=1", "op", {"deconv"}));
  EXPECT_TRUE(rejected_naming("op=convt in=8 c=1 o=1", "op", {"convt"}));
  EXPECT_TRUE(rejected_naming("op=CONV in=8 c=1 o=1", "op"));
  for (const char* d : {"float32", "F32", "fp16", "f8", "bfloat16", "i32", "f32x"})
    EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 dtype=" + std::string(d), "dtype", {d})) << d;
  for (const char* f : {"2", "true", "yes", "-1", "01", "1x1"})
    EXPECT_TRUE(rejected_naming("in=8 c=1 o=1 flip=" + std::string(f), "flip", {f})) << f;
}

// ---------------------------------------------------------------------------------------------
// Problem lists (tests/lists/)

namespace {

std::filesystem::path list_path(const char* name) { return source_dir() / "tests" / "lists" / name; }

}  // namespace

TEST(Conformance, ListParsesAndValidates) {
  std::vector<ListEntry> list = read_problem_list(list_path("conformance.txt"));
  EXPECT_GE(list.size(), 250u);
  // Coverage the list promises: both ops in every rank, every dtype, every parameter.
  bool seen_op_rank[2][4] = {}, seen_dtype[4] = {};
  bool groups = false, depthwise = false, stride = false, asym = false, negative = false, dil = false,
       idil = false, flip = false, outpad = false;
  std::set<std::string> distinct;
  for (const ListEntry& e : list) {
    SCOPED_TRACE("conformance.txt:" + std::to_string(e.line) + ": " + e.problem);
    Problem p;
    Status s = parse_problem(e.problem, &p);
    ASSERT_TRUE(s.ok()) << s.message();
    Geometry g;
    s = validate(p, &g);
    ASSERT_TRUE(s.ok()) << s.message();
    // Small enough that the float64 oracle checks it in full quickly.
    EXPECT_LE(g.macs(), 2.0e6);  // make_conformance.py MAX_MACS
    EXPECT_TRUE(distinct.insert(to_string(p)).second) << "duplicate problem";
    seen_op_rank[int(p.op)][p.rank] = true;
    seen_dtype[int(p.dtype)] = true;
    groups |= p.groups > 1;
    depthwise |= p.groups > 1 && p.groups == p.c;
    for (int i = 0; i < p.rank; ++i) {
      stride |= p.stride[i] > 1;
      asym |= p.pad_lo[i] != p.pad_hi[i];
      negative |= p.pad_lo[i] < 0 || p.pad_hi[i] < 0;
      dil |= p.dil[i] > 1;
      idil |= p.idil[i] > 1;
      outpad |= p.outpad[i] > 0;
    }
    flip |= p.flip;
  }
  for (int op = 0; op < 2; ++op)
    for (int r = 1; r <= 3; ++r) EXPECT_TRUE(seen_op_rank[op][r]) << "op " << op << " rank " << r;
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(seen_dtype[t]) << dtype_name(DType(t));
  EXPECT_TRUE(groups && depthwise && stride && asym && negative && dil && idil && flip && outpad);
}

TEST(Conformance, SmokeListParsesAndValidates) {
  std::vector<ListEntry> list = read_problem_list(list_path("smoke.txt"));
  EXPECT_GE(list.size(), 15u);
  for (const ListEntry& e : list) {
    SCOPED_TRACE("smoke.txt:" + std::to_string(e.line) + ": " + e.problem);
    Problem p;
    Status s = parse_problem(e.problem, &p);
    ASSERT_TRUE(s.ok()) << s.message();
    Geometry g;
    s = validate(p, &g);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_LE(g.macs(), 2.0e6);
  }
}

TEST(Conformance, InvalidListIsRejected) {
  std::vector<ListEntry> list = read_problem_list(list_path("invalid.txt"));
  EXPECT_GE(list.size(), 30u);
  for (const ListEntry& e : list) {
    SCOPED_TRACE("invalid.txt:" + std::to_string(e.line) + ": " + e.problem);
    EXPECT_FALSE(e.comment.empty()) << "every invalid problem says why in a comment";
    Problem p;
    Status s = parse_problem(e.problem, &p);
    if (s.ok()) s = validate(p, nullptr);
    EXPECT_EQ(s.kind(), ErrorKind::invalid) << "accepted";
    // The message carries the problem, so the failure can be pasted back.
    EXPECT_NE(s.message().find("; problem: "), std::string::npos) << s.message();
  }
}
