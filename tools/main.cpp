// convnd: run, check, plan and benchmark convolution problems given as problem strings
// (../shared/spec/problem-strings.md). Usage and exit codes: tools/README.md.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include "cli.h"
#include "progress.h"

using namespace convnd;
using namespace convnd::cli;

namespace {

constexpr const char* kUsage =
    "usage: convnd <command> [options]\n"
    "\n"
    "commands:\n"
    "  run   '<problem>'   run one problem on random or .npy inputs; print shape, time, algorithm\n"
    "  check '<problem>'   run one problem through the planner and compare with the oracle\n"
    "  check --file LIST   check every problem of a list (one a line; '#' comments)\n"
    "  plan  '<problem>'   print the plan the planner makes\n"
    "  bench '<problem>'   time a problem (median of --reps runs); or bench --file LIST\n"
    "\n"
    "A problem string is one line such as 'n=8 in=56x56 c=64 o=64 k=3x3 pad=1'\n"
    "(fields: op n in c o k stride pad dil idil outpad g flip dtype dir). dir=bwd_d and dir=bwd_w\n"
    "ask for the gradients of the input and of the weight (dx from w and dy; dw from x and dy).\n"
    "Exit codes: 0 ok, 1 wrong result, 2 invalid problem/usage/file, 3 unsupported,\n"
    "4 out of memory, 5 backend error, 130 interrupted.\n"
    "'convnd <command> --help' describes a command's options.\n";

constexpr const char* kCommonHelp =
    "  --backend cpu|cuda  backend (default cpu)\n"
    "  --budget BYTES      workspace budget, e.g. 64MiB (default: CONVND_WORKSPACE_BYTES, else\n"
    "                      256 MiB or 1/16 of memory)\n"
    "  --threads T         exactly T worker threads, 1 to 4096 (default: CONVND_THREADS, else all\n"
    "                      hardware threads, fewer for a problem too small to share)\n"
    "  --algorithm NAME    force one algorithm (default: the planner chooses)\n"
    "  --isa ISA           CPU instruction set: auto (default: the best this CPU runs up to avx512,\n"
    "                      and amx for bfloat16 on a CPU with AMX; lowered by CONVND_ISA), generic,\n"
    "                      avx2, avx512, avx512_bf16 or amx (the last two add bfloat16 kernels;\n"
    "                      unsupported if the CPU lacks it)\n"
    "  --precision P       exact (default: float32 products are exact) or tf32 (float32 problems\n"
    "                      on a GPU may use TF32 tensor cores: about 10 bits of mantissa in the\n"
    "                      products, float32 accumulation; ignored for other dtypes and on the CPU)\n";

constexpr const char* kRunHelp =
    "usage: convnd run '<problem>' [--input x.npy] [--weight w.npy] [--output y.npy] [--seed S]\n"
    "                  [--json] [--budget BYTES] [--threads T] [--backend cpu|cuda] [--algorithm NAME]\n"
    "                  [--isa ISA] [--precision exact|tf32]\n"
    "       convnd run 'dir=bwd_d <problem>' [--weight w.npy] [--dy dy.npy] [--output dx.npy] ...\n"
    "       convnd run 'dir=bwd_w <problem>' [--input x.npy] [--dy dy.npy] [--output dw.npy] ...\n"
    "\n"
    "Runs one problem. Inputs not given as .npy files are seeded random numbers, uniform in\n"
    "[-1, 1) and rounded to the dtype. .npy files must be little-endian, C order, with the\n"
    "problem's dtype and exactly its shapes: x [N, spatial..., C], w [O, kernel..., C/g],\n"
    "dy [N, out..., O] (the forward output's shape). bfloat16 is read from '<V2' or '<u2' and\n"
    "written as '<V2' (ml_dtypes' encoding). The gradients (dir=bwd_d: dx from w and dy;\n"
    "dir=bwd_w: dw from x and dy) write their result with --output; the flag of the tensor a\n"
    "direction computes (--input for bwd_d, --weight for bwd_w) and --dy for fwd are refused.\n"
    "\n"
    "  --input FILE        input x (.npy; a regular file): fwd and bwd_w\n"
    "  --weight FILE       weight w (.npy; a regular file): fwd and bwd_d\n"
    "  --dy FILE           cotangent dy, the gradient of y (.npy; a regular file): bwd_d and bwd_w\n"
    "  --output FILE       write the result (.npy): y, dx (bwd_d) or dw (bwd_w). A regular file\n"
    "                      (or a link to one) is replaced atomically: a failed or interrupted\n"
    "                      run leaves it as it was. '-' or /dev/stdout writes to standard\n"
    "                      output (the summary then goes to stderr); a character device or a\n"
    "                      FIFO is written in place; anything else is refused\n"
    "  --seed S            seed of the random inputs (default 0)\n"
    "  --json              one JSON object instead of the text summary\n";

constexpr const char* kCheckHelp =
    "usage: convnd check '<problem>' [--full | --samples K] [--seed S] [--json] [options]\n"
    "       convnd check --file LIST [--full | --samples K] [--seed S] [--json] [options]\n"
    "\n"
    "Runs the problem through the planner on random inputs and compares the result with the\n"
    "reference oracle: every output element when the oracle's work (about N*P*O*K*C/g\n"
    "multiply-adds) is under 5e7, or with --full; else a sample: the first row and the last\n"
    "rows of the first and last batch entries, every border of every spatial axis, the last\n"
    "element, and K random elements. For dir=bwd_d the result compared is dx [N, in..., C]\n"
    "(from random w and dy), for dir=bwd_w it is dw [O, kernel..., C/g] (from random x and\n"
    "dy; its 'batch entries' are the output channels), against the gradient oracles.\n"
    "Prints one line per problem: PASS/FAIL, the canonical problem, the algorithm, the time,\n"
    "and the largest error relative to the tolerance.\n"
    "With --file, the last line is 'N passed, N failed' (plus ', N skipped' for problems the\n"
    "backend does not support). Exit 1 when any result is wrong.\n"
    "\n"
    "  --full              compare every element of the result\n"
    "  --samples K         compare a sample with K random elements (default 4096 or fewer)\n"
    "  --whole-batch B     in sampled mode, also compare every element of batch entry B\n"
    "                      (negative counts from the end: -1 is the last entry; for dir=bwd_w,\n"
    "                      output channel B of dw)\n"
    "  --seed S            seed of the inputs and the sample (default: a fresh one, printed)\n"
    "  --json              one JSON object per problem\n";

constexpr const char* kPlanHelp =
    "usage: convnd plan '<problem>' [--json] [--budget BYTES] [--threads T] [--backend cpu|cuda]\n"
    "                   [--algorithm NAME] [--isa ISA] [--precision exact|tf32]\n"
    "\n"
    "Prints the plan: the direction, the algorithm chosen, the instruction set, every field of\n"
    "its configuration (tiles, thread split), the workspace, and why every other algorithm said\n"
    "no. What it prints is what run, check and bench execute. A plan that multiplies float32\n"
    "as TF32 (--precision tf32, on a GPU, where the chosen algorithm has TF32 kernels) says\n"
    "'precision:  tf32' (\"precision\": \"tf32\" in JSON) and tf32=1 in its configuration.\n"
    "\n"
    "  --json              the plan as JSON\n";

constexpr const char* kBenchHelp =
    "usage: convnd bench '<problem>' [--reps R] [--json] [options]\n"
    "       convnd bench --file LIST [--reps R] [--json] [options]\n"
    "\n"
    "Times execute() on random inputs: one warm-up run, then R timed runs (default 5). Prints\n"
    "the median and fastest time, GFLOP/s (2*N*P*O*K*C/g per run), GB/s ((x + w + y bytes) per\n"
    "run), the plan's workspace bytes and the process's peak resident memory so far. The\n"
    "gradients (dir=bwd_d, dir=bwd_w) are timed the same way: the same multiply-adds and the same\n"
    "three tensors (dx or dw in the place of x or w, dy in the place of y).\n"
    "\n"
    "  --reps R            timed runs (default 5)\n"
    "  --file LIST         benchmark every problem of a list\n"
    "  --seed S            seed of the random inputs (default 0)\n"
    "  --json              one JSON object per problem\n";

enum Cmd : unsigned { kRun = 1, kCheck = 2, kPlan = 4, kBench = 8, kAll = 15 };

struct OptionSpec {
  const char* name;
  bool takes_value;
  unsigned commands;
};

constexpr OptionSpec kOptions[] = {
    {"input", true, kRun},           {"weight", true, kRun},          {"output", true, kRun},
    {"dy", true, kRun},
    {"seed", true, kRun | kCheck | kBench},
    {"json", false, kAll},           {"full", false, kCheck},         {"samples", true, kCheck},
    {"whole-batch", true, kCheck},
    {"file", true, kCheck | kBench}, {"reps", true, kBench},          {"budget", true, kAll},
    {"threads", true, kAll},         {"backend", true, kAll},         {"algorithm", true, kAll},
    {"isa", true, kAll},             {"precision", true, kAll},
};

int64_t parse_count(std::string_view name, std::string_view v, int64_t min, int64_t max) {
  int64_t r = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), r);
  if (ec != std::errc() || p != v.data() + v.size() || r < min || r > max)
    throw UsageError("--" + std::string(name) + " '" + std::string(v) + "' is not a whole number from " +
                     std::to_string(min) + " to " + std::to_string(max));
  return r;
}

void apply(Options& o, std::string_view name, std::string_view v) {
  if (name == "input") o.input = v;
  else if (name == "weight") o.weight = v;
  else if (name == "dy") o.dy = v;
  else if (name == "output") o.output = v;
  else if (name == "file") o.file = v;
  else if (name == "algorithm") o.algorithm = v;
  else if (name == "json") o.json = true;
  else if (name == "full") o.full = true;
  else if (name == "seed") {
    uint64_t s = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty())
      throw UsageError("--seed '" + std::string(v) + "' is not a whole number from 0 to 2^64-1");
    o.seed = s;
    o.seed_given = true;
  } else if (name == "samples") o.samples = parse_count(name, v, 0, int64_t(1) << 40);
  else if (name == "whole-batch") {
    const bool neg = !v.empty() && v[0] == '-';
    const int64_t b = parse_count(name, neg ? v.substr(1) : v, neg ? 1 : 0, int64_t(1) << 62);
    o.whole_batch = neg ? -b : b;
    o.whole_batch_given = true;
  }
  else if (name == "reps") o.reps = int(parse_count(name, v, 1, 1000000));
  else if (name == "threads") o.threads = int(parse_count(name, v, 1, kMaxThreads));
  else if (name == "budget") {
    if (!parse_byte_size(v, &o.budget))
      throw UsageError("--budget '" + std::string(v) + "' is not a byte count such as 268435456 or 64MiB");
  } else if (name == "backend") {
    if (!parse_backend(v, &o.backend)) throw UsageError("--backend '" + std::string(v) + "' is not cpu or cuda");
  } else if (name == "isa") {
    if (!parse_isa(v, &o.isa) || o.isa == Isa::sm_90)
      throw UsageError("--isa '" + std::string(v) + "' is not auto, generic, avx2, avx512, avx512_bf16 or amx");
  } else if (name == "precision") {
    if (v == "exact") o.allow_tf32 = false;
    else if (v == "tf32") o.allow_tf32 = true;
    else throw UsageError("--precision '" + std::string(v) + "' is not exact or tf32");
  }
}

unsigned command_bit(std::string_view c) {
  if (c == "run") return kRun;
  if (c == "check") return kCheck;
  if (c == "plan") return kPlan;
  if (c == "bench") return kBench;
  return 0;
}

const char* help_for(unsigned cmd) {
  switch (cmd) {
    case kRun: return kRunHelp;
    case kCheck: return kCheckHelp;
    case kPlan: return kPlanHelp;
    case kBench: return kBenchHelp;
  }
  return kUsage;
}

// Returns true when --help was asked for.
bool parse_args(int argc, char** argv, unsigned cmd, Options* o) {
  bool options_done = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!options_done && (a == "--help" || a == "-h")) return true;
    if (!options_done && a == "--") {
      options_done = true;
      continue;
    }
    if (options_done || a.size() < 2 || a.substr(0, 2) != "--") {
      if (!options_done && a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9'))
        throw UsageError("unknown option '" + std::string(a) + "'");
      o->positionals.emplace_back(a);
      continue;
    }
    std::string_view body = a.substr(2), name = body, value;
    bool has_inline = false;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_inline = true;
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : kOptions)
      if (name == s.name) spec = &s;
    if (!spec) throw UsageError("unknown option '--" + std::string(name) + "'");
    if (!(spec->commands & cmd))
      throw UsageError("option '--" + std::string(name) + "' does not apply to '" + o->command + "'");
    if (spec->takes_value && !has_inline) {
      if (i + 1 >= argc) throw UsageError("option '--" + std::string(name) + "' needs a value");
      value = argv[++i];
    } else if (!spec->takes_value && has_inline) {
      throw UsageError("option '--" + std::string(name) + "' takes no value");
    }
    apply(*o, name, value);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_error("no command given; commands: run, check, plan, bench (see convnd --help)");
    return kExitInvalid;
  }
  std::string_view first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  const unsigned cmd = command_bit(first);
  if (!cmd) {
    print_error("unknown command '" + std::string(first) + "'; commands: run, check, plan, bench (see convnd --help)");
    return kExitInvalid;
  }
  Options o;
  o.command = std::string(first);
  try {
    if (parse_args(argc, argv, cmd, &o)) {
      std::fputs(help_for(cmd), stdout);
      std::fputs("\ncommon options:\n", stdout);
      std::fputs(kCommonHelp, stdout);
      return kExitOk;
    }
    if (o.full && o.samples >= 0) throw UsageError("--full and --samples exclude each other");
    if (!o.file.empty() && !o.positionals.empty())
      throw UsageError("give either a problem string or --file, not both");
    install_signal_handlers();
    switch (cmd) {
      case kRun: return run_command(o);
      case kCheck: return check_command(o);
      case kPlan: return plan_command(o);
      case kBench: return bench_command(o);
    }
  } catch (const UsageError& e) {
    print_error(o.command + ": " + e.what() + " (see convnd " + o.command + " --help)");
    return kExitInvalid;
  } catch (const Error& e) {
    print_error(with_current_problem(e.what()));
    return exit_code_for(e.kind());
  } catch (const std::bad_alloc&) {
    print_error("[" + o.command + "] out of memory" + current_problem_suffix());
    return kExitOutOfMemory;
  } catch (const std::exception& e) {
    print_error("[" + o.command + "] " + e.what() + current_problem_suffix());
    return kExitBackend;
  }
  return kExitInvalid;
}
