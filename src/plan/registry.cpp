// The registry: the backends' ordered algorithm lists joined. Each backend keeps its own list
// (src/cpu/backend.cpp, src/cuda/backend.cpp); adding an algorithm adds one line there.
#include "plan/registry.h"

namespace convnd {

const BackendImpl& backend_impl(Backend b) {
  return b == Backend::cuda ? cuda_backend() : cpu_backend();
}

const std::vector<const Algorithm*>& algorithm_registry() {
  static const std::vector<const Algorithm*> list = [] {
    std::vector<const Algorithm*> l = cpu_backend().algorithms();
    for (const Algorithm* a : cuda_backend().algorithms()) l.push_back(a);
    return l;
  }();
  return list;
}

const Algorithm* find_algorithm(std::string_view name) {
  for (const Algorithm* a : algorithm_registry())
    if (a->name() == name) return a;
  return nullptr;
}

}  // namespace convnd
