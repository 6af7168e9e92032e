// Shared pieces of the convnd command-line program: options, exit codes, formatting.
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>
#include <convnd/status.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace convnd::cli {

/// Exit codes (tools/README.md).
enum Exit : int {
  kExitOk = 0,
  kExitMismatch = 1,     // check found a wrong result
  kExitInvalid = 2,      // invalid problem, bad usage, unreadable or malformed file
  kExitUnsupported = 3,  // valid, but no algorithm of the backend implements it
  kExitOutOfMemory = 4,  // over the memory budget or the machine's memory
  kExitBackend = 5,      // a backend (CUDA, ...) failed
  kExitInterrupted = 130,
};

int exit_code_for(ErrorKind k);

/// Bad command-line usage (exit 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Everything the subcommands accept; each command allows a subset (see main.cpp).
struct Options {
  std::string command;
  std::vector<std::string> positionals;  // joined with spaces into the problem string
  std::string input, weight, output, file, algorithm;
  std::string dy;  // run: the cotangent dy (.npy) of a dir=bwd_d / dir=bwd_w problem
  uint64_t seed = 0;
  bool seed_given = false;
  bool json = false;
  bool full = false;
  int64_t samples = -1;  // -1: the default
  int64_t whole_batch = 0;  // check: a batch entry compared in full (negative: from the end)
  bool whole_batch_given = false;
  int64_t budget = -1;   // -1: the library's default (CONVND_WORKSPACE_BYTES or 256 MiB)
  int threads = 0;       // 0: the library's default
  Backend backend = Backend::cpu;
  Isa isa = Isa::automatic;  // --isa: a CPU path (the library checks this CPU has it)
  bool allow_tf32 = false;   // --precision tf32: float32 on a GPU may use TF32 tensor cores
  int reps = 5;

  ExecOptions exec() const;
  /// The problem string from the positional arguments; UsageError when there is none.
  std::string problem_text() const;
};

/// Commands (main.cpp dispatches to these). Each returns the process exit code and lets
/// convnd::Error and UsageError escape for main() to report.
int run_command(const Options& o);
int check_command(const Options& o);
int bench_command(const Options& o);
int plan_command(const Options& o);

/// The problem being worked on, for errors that do not come with one (std::bad_alloc).
void set_current_problem(const Problem& p);
/// "; problem: <canonical>" for the current problem, or "" when there is none.
std::string current_problem_suffix();
/// The message, ending with the current problem unless it names a problem already.
std::string with_current_problem(const std::string& message);

/// One line: control characters (a problem string may contain newlines) become spaces.
std::string one_line(std::string s);
/// Prints "convnd: <message>" on stderr as one line.
void print_error(const std::string& message);
/// Appends "; problem: <canonical>" unless the message already names the problem.
std::string with_problem(const std::string& message, const Problem& p);

std::string json_string(const std::string& s);  // quoted and escaped
std::string json_number(double v);              // null for NaN or infinity
std::string json_shape(const Shape& s);         // [1, 8, 8, 3]
/// "12.3ms", "1.23s", "45.6us": three significant digits, no space (one field of a line).
std::string format_seconds(double s);
/// "1.5 GiB", "12 KiB", "100 B".
std::string format_bytes(int64_t b);

/// The tensor shapes of a validated problem as Shape vectors.
struct Shapes {
  Shape x, w, y;
};
Shapes shapes_of(const Problem& p, const Geometry& g);

/// "[N, H, W, C]"-style layout names for messages.
std::string x_layout(int rank);
std::string w_layout(int rank);
std::string y_layout(int rank);  // [N, PH, PW, O]: y, and the cotangent dy of the gradients

/// The roles of the three tensors in a direction (semantics.md, "Gradients"): execute() takes
/// x, w, y in every direction and writes one of them, y (fwd), dx in x's place (bwd_d) or dw in
/// w's place (bwd_w); the other two are read (for the gradients y holds the cotangent dy).
enum Role : int { kRoleX = 0, kRoleW = 1, kRoleY = 2 };
/// The tensor a direction writes.
inline int output_role(Direction d) { return d == Direction::fwd ? kRoleY : d == Direction::bwd_d ? kRoleX : kRoleW; }
/// Whether a direction reads a tensor (the two it does not write).
inline bool reads(Direction d, int role) { return role != output_role(d); }
/// The tensor's name in a direction: "x", "w", "y" for fwd; "dx", "w", "dy" for bwd_d;
/// "x", "dw", "dy" for bwd_w.
const char* role_name(Direction d, int role);
/// The name with its layout, for messages: "cotangent dy [N, PH, PW, O]".
std::string role_description(Direction d, int role, int rank);

/// Fills the tensors a direction reads with seeded random numbers (random_fill.h: x from stream
/// kStreamX, w from kStreamW, dy from kStreamDy); the output is left as it is.
void fill_inputs(Direction d, const TensorView& x, const TensorView& w, const TensorView& y, uint64_t seed,
                 int threads);

}  // namespace convnd::cli
