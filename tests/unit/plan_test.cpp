// The planner as a whole: directions, the registry's traits, printing, and the plan cache.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "plan/registry.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

TEST(Direction, ParsesPrintsAndDefaultsToForward) {
  EXPECT_EQ(parse_problem("n=2 in=8 c=3 o=4 k=3").dir, Direction::fwd);
  EXPECT_EQ(parse_problem("dir=fwd in=8 c=3 o=4").dir, Direction::fwd);
  EXPECT_EQ(parse_problem("dir=bwd_d in=8 c=3 o=4").dir, Direction::bwd_d);
  EXPECT_EQ(parse_problem("in=8 c=3 o=4 dir=bwd_w").dir, Direction::bwd_w);
  // The canonical form prints dir last (the table order of problem-strings.md), fwd never.
  EXPECT_EQ(to_string(parse_problem("dir=bwd_w n=8 in=56x56 c=64 o=64 k=3x3 pad=1")),
            "n=8 in=56x56 c=64 o=64 k=3x3 pad=1 dir=bwd_w");
  EXPECT_EQ(to_string(parse_problem("dir=fwd in=8 c=3 o=4")), "in=8 c=3 o=4");
  Problem p;
  Status st = parse_problem("in=8 c=3 o=4 dir=bwd", &p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("field 'dir': 'bwd' is not fwd, bwd_d or bwd_w"), std::string::npos)
      << st.message();
  st = parse_problem("in=8 c=3 o=4 dir=bwd_d dir=bwd_w", &p);
  EXPECT_NE(st.message().find("'dir' is repeated"), std::string::npos) << st.message();
}

TEST(Direction, ValidationErrorsNameTheDirection) {
  Problem p = parse_problem("dir=bwd_d in=8 c=3 o=4 g=2");
  Status st = validate(p, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("problem: in=8 c=3 o=4 g=2 dir=bwd_d"), std::string::npos) << st.message();
}

TEST(Direction, BackwardProblemsArePlannedByAnAlgorithmOfTheirDirection) {
  for (const char* text : {"dir=bwd_w n=8 in=56x56 c=64 o=64 k=3x3 pad=1",
                           "dir=bwd_d op=convT n=4 in=1000 c=8 o=4 k=16 stride=8"}) {
    SCOPED_TRACE(text);
    const Problem p = parse_problem(text);
    const Plan plan = make_plan(p);
    EXPECT_EQ(plan.problem.dir, p.dir);
    EXPECT_EQ(plan.geometry.dir, p.dir);
    const Algorithm* a = find_algorithm(plan.algorithm);
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE(a->traits().directions.has(p.dir)) << plan.algorithm;
    EXPECT_NE(plan.to_json().find("\"direction\": \"" + std::string(direction_name(p.dir)) + "\""), std::string::npos);
  }
}

// The weight gradient's bits must not depend on the budget, so the planner never trades the
// algorithm a problem's shape selects for another one because of the budget: too small a
// budget for it is an out-of-memory error, not a different summation order.
TEST(Direction, WeightGradientAlgorithmDoesNotDependOnTheBudget) {
  for (const char* text : {"dir=bwd_w op=convT n=2 in=2000 c=4 o=4 k=8 stride=4 pad=5 outpad=3",
                           "dir=bwd_w n=2 in=64x64 c=16 o=16 k=3x3 pad=1 g=16",
                           "dir=bwd_w n=2 in=64x64 c=16 o=24 k=3x3 pad=1"}) {
    SCOPED_TRACE(text);
    const Problem p = parse_problem(text);
    const std::string algo = make_plan(p).algorithm;
    for (int64_t budget = int64_t(64) << 20; budget >= 64; budget /= 2) {
      ExecOptions opt;
      opt.budget = budget;
      try {
        EXPECT_EQ(make_plan(p, opt).algorithm, algo) << "budget " << budget;
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
        EXPECT_NE(std::string(e.what()).find("budget"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Registry, EveryEntryDeclaresWhatItServes) {
  std::set<std::string_view> names;
  for (const Algorithm* a : algorithm_registry()) {
    const AlgorithmTraits& t = a->traits();
    SCOPED_TRACE(std::string(t.name));
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate name";
    EXPECT_NE(t.directions.bits, 0u);
    EXPECT_NE(t.dtypes.bits, 0u);
    EXPECT_NE(t.isas.bits, 0u);
    EXPECT_FALSE(t.workspace.empty());
    EXPECT_EQ(find_algorithm(t.name), a);
  }
  // The CPU's forward algorithms end with exactly one fallback (the reference); no other
  // entry is one.
  const auto& cpu = backend_impl(Backend::cpu).algorithms();
  std::vector<const Algorithm*> fwd;
  for (const Algorithm* a : cpu)
    if (a->traits().directions.has(Direction::fwd)) fwd.push_back(a);
  ASSERT_FALSE(fwd.empty());
  EXPECT_TRUE(fwd.back()->traits().fallback);
  for (const Algorithm* a : cpu)
    if (a != fwd.back()) EXPECT_FALSE(a->traits().fallback) << a->name();
}

TEST(Plan, PrintsDirectionIsaAndTheWholeConfiguration) {
  const Plan plan = make_plan(parse_problem("n=2 in=12x12 c=16 o=16 k=3x3 pad=1"));
  ASSERT_TRUE(plan.config);
  EXPECT_NE(plan.isa, Isa::automatic);
  const std::string text = plan.to_text(), json = plan.to_json();
  EXPECT_NE(text.find("direction:  fwd"), std::string::npos) << text;
  EXPECT_NE(text.find("isa:        " + std::string(isa_name(plan.isa))), std::string::npos) << text;
  const auto params = plan.parameters();
  ASSERT_FALSE(params.empty());
  for (const auto& [k, v] : params) {
    EXPECT_NE(text.find(" " + k + "=" + std::to_string(v)), std::string::npos) << k;
    EXPECT_NE(json.find("\"" + k + "\": " + std::to_string(v)), std::string::npos) << k;
  }
  EXPECT_NE(json.find("\"isa\": \"" + std::string(isa_name(plan.isa)) + "\""), std::string::npos) << json;
}

TEST(Plan, IsaOptionIsHonouredOrRefused) {
  const Problem p = parse_problem("n=2 in=12x12 c=16 o=16 k=3x3 pad=1");
  ExecOptions opt;
  opt.isa = Isa::generic;
  EXPECT_EQ(make_plan(p, opt).isa, Isa::generic);
  opt.isa = Isa::sm_90;  // not a CPU instruction set
  EXPECT_TRUE(throws_error([&] { make_plan(p, opt); }, ErrorKind::unsupported, {"sm_90"}));
}

TEST(PlanCache, RepeatedCallsReuseThePlanAndKeysKeepPlansApart) {
  clear_plan_cache();
  const Problem p = parse_problem("n=1 in=8x8 c=8 o=8 k=3x3 pad=1");
  ExecOptions opt;
  opt.threads = 2;
  opt.exact_threads = true;
  const PlanCacheStats s0 = plan_cache_stats();
  const Plan a = make_plan(p, opt);
  const Plan b = make_plan(p, opt);
  const PlanCacheStats s1 = plan_cache_stats();
  EXPECT_EQ(s1.misses - s0.misses, 1);
  EXPECT_EQ(s1.hits - s0.hits, 1);
  EXPECT_EQ(a.config, b.config);  // the same configuration object: one plan
  EXPECT_EQ(a.to_json(), b.to_json());
  // Every field of the key makes a different plan.
  ExecOptions other = opt;
  other.threads = 1;
  EXPECT_EQ(make_plan(p, other).threads, 1);
  other = opt;
  other.budget = int64_t(1) << 20;
  EXPECT_EQ(make_plan(p, other).budget_bytes, int64_t(1) << 20);
  other = opt;
  other.exact_threads = false;  // this problem is too small for two threads
  EXPECT_EQ(make_plan(p, other).threads, 1);
  other = opt;
  other.isa = Isa::generic;
  EXPECT_EQ(make_plan(p, other).isa, Isa::generic);
  other = opt;
  other.algorithm = "reference";
  EXPECT_EQ(make_plan(p, other).algorithm, "reference");
  Problem q = p;
  q.dtype = DType::f64;
  EXPECT_EQ(make_plan(q, opt).problem.dtype, DType::f64);
  EXPECT_EQ(plan_cache_stats().misses - s1.misses, 6);
  // A cached plan gives the same result as a fresh one.
  Rng rng = test_rng();
  Case c = make_case(p, rng);
  Tensor y1 = run(p, c.x, c.w, opt);
  clear_plan_cache();
  Tensor y2 = run(p, c.x, c.w, opt);
  ASSERT_EQ(y1.nbytes(), y2.nbytes());
  EXPECT_EQ(std::memcmp(y1.data(), y2.data(), size_t(y1.nbytes())), 0);
}

TEST(PlanCache, IsBoundedAndThreadSafe) {
  clear_plan_cache();
  const int64_t cap = plan_cache_stats().capacity;
  ASSERT_GT(cap, 0);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int64_t i = 0; i < cap; ++i) {
        // Four threads plan overlapping problems: half shared, half their own.
        Problem p = parse_problem("in=16 c=2 o=2 k=3");
        p.in[0] = 16 + (i % 2 ? i : i + t * cap);
        try {
          if (make_plan(p).problem != p) ++failures;
        } catch (...) {
          ++failures;
        }
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(plan_cache_stats().entries, cap);
}

TEST(Plan, HandMadePlanWithoutConfigurationIsRefused) {
  const Problem p = parse_problem("n=1 in=8x8 c=8 o=8 k=3x3 pad=1");
  Plan plan = make_plan(p);
  plan.config.reset();
  Rng rng = test_rng();
  Case c = make_case(p, rng);
  Tensor y = Tensor::empty(p.dtype, {1, 8, 8, 8});
  EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y); }, ErrorKind::invalid, {"no configuration"}));
  plan = make_plan(p);
  plan.algorithm = "no_such_algorithm";
  EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y); }, ErrorKind::invalid, {"no_such_algorithm"}));
}

// Hand-made plans: a configuration changed by hand runs as given and gives the planner's bits;
// one the family cannot run, or another family's configuration, is refused.
TEST(Plan, HandMadePlansRunAsGiven) {
  Rng rng = test_rng();
  struct Case1 {
    const char* problem;
    const char* algorithm;
    const char* parameter;
    int64_t value;
  };
  for (const Case1& k : {Case1{"n=2 in=9x11 c=24 o=24 k=3x3 pad=1 g=24", "depthwise_direct", "rows_per_task", 5},
                         Case1{"op=convT n=2 in=300 c=1 o=2 k=64 stride=16", "transposed_scatter", "positions_per_task", 7},
                         Case1{"n=1 in=7x5 c=3 o=4 k=3x2 pad=1", "reference", "rows_per_task", 3}}) {
    SCOPED_TRACE(k.problem);
    const Problem p = parse_problem(k.problem);
    Case c = make_case(p, rng);
    ExecOptions opt;
    opt.algorithm = k.algorithm;
    const Plan planned = make_plan(p, opt);
    const Plan hand = with_parameter(planned, k.parameter, k.value);
    EXPECT_EQ(plan_parameter(hand, k.parameter), k.value);
    EXPECT_NE(plan_parameter(planned, k.parameter), k.value);
    Tensor y1 = Tensor::empty(p.dtype, y_shape(c.shapes)), y2 = Tensor::empty(p.dtype, y_shape(c.shapes));
    execute(planned, c.x, c.w, y1, opt);
    execute(hand, c.x, c.w, y2, opt);
    EXPECT_TRUE(bit_equal(y1, y2));
    EXPECT_TRUE(matches_oracle(y2, oracle(c)));
    EXPECT_TRUE(throws_error([&] { with_parameter(planned, "no_such_parameter", 1); }, ErrorKind::invalid,
                             {"no_such_parameter"}));
    EXPECT_TRUE(throws_error([&] { with_parameter(planned, k.parameter, 0); }, ErrorKind::invalid));
  }
  // Another family's configuration under this plan's algorithm name.
  const Problem p = parse_problem("n=2 in=9x11 c=24 o=24 k=3x3 pad=1 g=24");
  Case c = make_case(p, rng);
  ExecOptions dw, gemm;
  dw.algorithm = "depthwise_direct";
  gemm.algorithm = "im2col_gemm";
  Plan mixed = make_plan(p, gemm);
  mixed.config = make_plan(p, dw).config;
  Tensor y = Tensor::empty(p.dtype, y_shape(c.shapes));
  EXPECT_TRUE(throws_error([&] { execute(mixed, c.x, c.w, y); }, ErrorKind::invalid, {"configuration"}));
}

TEST(Plan, ThreadCountsAreBounded) {
  const Problem p = parse_problem("in=8 c=1 o=1");
  ExecOptions opt;
  opt.threads = kMaxThreads;
  opt.exact_threads = true;
  EXPECT_EQ(make_plan(p, opt).threads, kMaxThreads);
  opt.threads = kMaxThreads + 1;
  EXPECT_TRUE(throws_error([&] { make_plan(p, opt); }, ErrorKind::invalid, {"threads=4097", "4096"}));
}

// A CPU plan gives each thread at least kMinWorkPerThread (multiply-adds plus the elements of
// x, w and y): a tiny layer runs on one thread whatever the caller allows, a large one on all
// it allows, one in between on as many as its work fills; exact_threads keeps the count asked.
TEST(Plan, SmallProblemsRunOnFewerThreads) {
  ExecOptions opt;
  opt.threads = 16;
  const Problem tiny = parse_problem("n=1 in=8x8 c=8 o=8 k=3x3 pad=1");  // 37k multiply-adds
  EXPECT_EQ(make_plan(tiny, opt).threads, 1);
  const Problem large = parse_problem("n=8 in=56x56 c=64 o=64 k=3x3 pad=1");  // 925M
  EXPECT_EQ(make_plan(large, opt).threads, 16);
  const Problem mid = parse_problem("n=1 in=32x32 c=32 o=32");  // 1M multiply-adds, 67k elements: 4 threads
  const Geometry g = lower(mid);
  const double work = g.macs() + double(g.x_elems() + g.w_elems() + g.y_elems());
  const int threads = make_plan(mid, opt).threads;
  EXPECT_EQ(threads, int(work / double(kMinWorkPerThread)));
  EXPECT_GT(threads, 1);
  EXPECT_LT(threads, 16);
  opt.exact_threads = true;
  EXPECT_EQ(make_plan(tiny, opt).threads, 16);
}
