// The ordered list of algorithms: the planner takes the first that says yes. Most specialised
// first; the reference last, so every valid problem has a plan. Adding an algorithm: its own
// file defining `const Algorithm& NAME_algorithm()`, plus one line in each list below.
#include "plan/algorithm.h"

namespace convnd {

const Algorithm& reference_algorithm();

const std::vector<const Algorithm*>& algorithm_registry() {
  static const std::vector<const Algorithm*> list = {
      &reference_algorithm(),
  };
  return list;
}

const Algorithm* find_algorithm(std::string_view name) {
  for (const Algorithm* a : algorithm_registry())
    if (a->name() == name) return a;
  return nullptr;
}

}  // namespace convnd
