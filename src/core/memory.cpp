// Host memory available to this process: the kernel's MemAvailable, lowered by the process's
// cgroup limit (v2 memory.max - memory.current, or v1 limit_in_bytes - usage_in_bytes), so a
// container with 8 GiB on a 64 GiB host says 8 GiB less what it already uses.
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "core/memory.h"

namespace convnd {

namespace {

// The first number in a file, or -1 (missing, "max", unreadable).
int64_t read_number(const std::string& path) {
  std::ifstream f(path);
  int64_t v = -1;
  if (f && (f >> v) && v >= 0) return v;
  return -1;
}

// The process's cgroup path for a controller ("" for v2's unified line), or "".
std::string cgroup_path(bool v2) {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // hierarchy-ID:controller-list:path
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (v2 ? (line.compare(0, a, "0") == 0 && controllers.empty())
           : (("," + controllers + ",").find(",memory,") != std::string::npos))
      return path;
  }
  return {};
}

// Bytes the cgroup still allows (limit - usage), or -1 when there is no limit.
int64_t cgroup_room() {
  int64_t best = -1;
  auto consider = [&](int64_t limit, int64_t usage) {
    // v1 reports "no limit" as a huge page-rounded number.
    if (limit < 0 || usage < 0 || limit >= (int64_t(1) << 60)) return;
    const int64_t room = limit > usage ? limit - usage : 0;
    if (best < 0 || room < best) best = room;
  };
  const std::string v2 = cgroup_path(true);
  if (!v2.empty() || std::ifstream("/sys/fs/cgroup/memory.max")) {
    const std::string dir = "/sys/fs/cgroup" + (v2 == "/" ? std::string() : v2);
    consider(read_number(dir + "/memory.max"), read_number(dir + "/memory.current"));
  }
  const std::string v1 = cgroup_path(false);
  for (const std::string& dir : {"/sys/fs/cgroup/memory" + v1, std::string("/sys/fs/cgroup/memory")})
    consider(read_number(dir + "/memory.limit_in_bytes"), read_number(dir + "/memory.usage_in_bytes"));
  return best;
}

}  // namespace

// Read once: sysconf(_SC_PHYS_PAGES) is a sysinfo system call, and every plan (a tiny call's
// few microseconds included) asks for the default budget.
int64_t physical_host_memory() {
  static const int64_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return (pages > 0 && page > 0) ? int64_t(pages) * int64_t(page) : (int64_t(1) << 34);
  }();
  return bytes;
}

int64_t available_host_memory() {
  int64_t avail = -1;
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kib;
  std::string unit;
  while (f >> key >> kib) {
    std::getline(f, unit);
    if (key == "MemAvailable:") {
      avail = kib * 1024;
      break;
    }
  }
  const int64_t room = cgroup_room();
  if (avail < 0) avail = room >= 0 ? room : (int64_t(1) << 34);
  return room >= 0 && room < avail ? room : avail;
}

bool host_memory_fits(int64_t bytes, int64_t* avail) {
  *avail = -1;
  if (bytes < (int64_t(64) << 20)) return true;
  *avail = available_host_memory() + idle_host_bytes();
  return bytes <= *avail;
}

}  // namespace convnd
