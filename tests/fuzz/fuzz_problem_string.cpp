// Fuzzes the problem-string parser: parse, validate, print and re-parse. Any input may be
// rejected, but only with an `invalid` status that names the problem; a parsed problem must
// print to a one-line string that parses back to the same Problem (and, when it is valid, to
// the same geometry).
#include <convnd/problem.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/phases.h"

using namespace convnd;

namespace {

[[noreturn]] void die(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "fuzz_problem_string: %s\ninput: [%.*s]\ndetail: %s\n", what, int(input.size()),
               input.data(), detail.c_str());
  std::abort();
}

void check_error(const Status& s, std::string_view input) {
  if (s.kind() != ErrorKind::invalid) die("an error that is not 'invalid'", input, s.message());
  if (s.message().find("; problem: ") == std::string::npos) die("an error without the problem string", input, s.message());
}

bool same_geometry(const Geometry& a, const Geometry& b) {
  return a.n == b.n && a.c == b.c && a.o == b.o && a.groups == b.groups && a.in == b.in && a.k == b.k &&
         a.out == b.out && a.stride == b.stride && a.lo == b.lo && a.hi == b.hi && a.kdil == b.kdil &&
         a.idil == b.idil && a.flip == b.flip && a.dtype == b.dtype;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Problem p;
  Status s = parse_problem(input, &p);
  if (!s.ok()) {
    check_error(s, input);
    return 0;
  }
  Geometry g{};
  Status v = validate(p, &g);
  if (!v.ok()) check_error(v, input);

  const std::string text = to_string(p);
  if (text.find_first_of("\n\r#") != std::string::npos) die("to_string gave more than one line", input, text);
  Problem q;
  Status s2 = parse_problem(text, &q);
  if (!s2.ok()) die("the canonical string does not parse", input, text + " -> " + s2.message());
  if (!(q == p)) die("the canonical string parses to another problem", input, text + " -> " + to_string(q));
  if (to_string(q) != text) die("to_string is not stable", input, text + " -> " + to_string(q));

  if (v.ok()) {
    Geometry g2{};
    Status v2 = validate(q, &g2);
    if (!v2.ok()) die("the canonical string of a valid problem is invalid", input, text + " -> " + v2.message());
    if (!same_geometry(g, g2)) die("the canonical string gives another geometry", input, text);
    for (int j = 0; j < 3; ++j)
      if (g.out[j] < 1) die("a valid problem with an empty output", input, text);
    TensorShapes ts = tensor_shapes(p, g);
    if (ts.ndim != p.rank + 2) die("tensor_shapes has the wrong rank", input, text);
    // macs() takes time linear in the kernel extent under input dilation; only call it for
    // weights that could be allocated (the planner refuses larger ones before anything runs).
    if (g.w_elems() <= (int64_t(1) << 28) && !(g.macs() >= 0)) die("macs() is negative or NaN", input, text);
    (void)phase_count(g);
  }
  return 0;
}
