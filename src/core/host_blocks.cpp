// Host memory for tensors and workspaces, with the blocks of finished calls kept for the next.
//
// Why a cache: a fresh block costs a page fault per 4 KiB page (or a 2 MiB zeroing per huge
// page) on first touch, and glibc hands blocks of more than its mmap threshold (at most
// 32 MiB) back to the kernel at every free. A caller running one conv after another (a
// model's layers in a loop, a benchmark) would pay that for every output: the 8x56x56x384
// depthwise layer's 38.5 MB output cost a third of the call through Python on 2 cores, where
// the CLI, which reuses its output tensor, did not. Kept blocks are reused untouched.
//
// Bounds: at most kKeep idle blocks and min(512 MiB, physical memory / 16) idle bytes; the
// oldest idle blocks go first. Blocks under kSmallest (no page faults to save) have a cache of
// their own, of at most kKeepSmall blocks and 1 MiB: a tiny conv's output and dense weight
// copy would otherwise cost an aligned malloc and free each, about a tenth of its native call
// (valgrind --tool=callgrind on bench/torch_overhead.py's problem). A request takes the
// smallest idle block of at least its size and at most twice it (a much larger block would
// hold memory the caller did not ask for).
// When the system cannot give a fresh block, the idle ones are freed and it is asked again.
#include <algorithm>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <utility>

#include <sys/mman.h>

#include <convnd/status.h>

#include "core/memory.h"

namespace convnd {

namespace {

// Blocks under glibc's first mmap threshold come from its heap, without page faults once warm.
constexpr int64_t kSmallest = int64_t(128) << 10;
constexpr size_t kKeep = 8, kKeepSmall = 16;
constexpr int64_t kSmallCap = int64_t(1) << 20;

// A block's real size: 64-byte multiples; from 32 MiB up, 2 MiB multiples on 2 MiB
// boundaries, asked to be backed by huge pages (the first touch of a multi-GB output would
// otherwise cost one page fault per 4 KiB, more than computing it).
constexpr size_t kHuge = size_t(32) << 20, kHugePage = size_t(2) << 20;
size_t rounded(int64_t bytes) {
  size_t alloc = std::max<size_t>(64, size_t(bytes + 63) / 64 * 64);
  if (alloc >= kHuge) alloc = (alloc + kHugePage - 1) / kHugePage * kHugePage;
  return alloc;
}

void* fresh_block(size_t alloc) {
  const bool huge = alloc >= kHuge;
  void* mem = std::aligned_alloc(huge ? kHugePage : 64, alloc);
#ifdef MADV_HUGEPAGE
  if (mem && huge) madvise(mem, alloc, MADV_HUGEPAGE);
#endif
  return mem;
}

int64_t idle_cap() { return std::min<int64_t>(int64_t(512) << 20, physical_host_memory() / 16); }

class HostBlocks {
 public:
  HostBlocks(size_t keep, bool small) : keep_(keep), small_(small) {}

  // A block of at least `bytes`, from the idle ones when one fits, else fresh (nullptr when
  // the system has none, even after the idle blocks were given back).
  void* take(size_t alloc, size_t* size) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto best = idle_.end();
      for (auto it = idle_.begin(); it != idle_.end(); ++it)
        if (it->first >= alloc && it->first <= 2 * alloc && (best == idle_.end() || it->first < best->first)) best = it;
      if (best != idle_.end()) {
        void* p = best->second;
        *size = best->first;
        idle_bytes_ -= int64_t(best->first);
        idle_.erase(best);
        return p;
      }
    }
    *size = alloc;
    if (void* p = fresh_block(alloc)) return p;
    trim();
    return fresh_block(alloc);
  }

  // Keeps a finished block for the next request, within the bounds (oldest out first).
  void give(void* p, size_t size) {
    std::deque<std::pair<size_t, void*>> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (int64_t(size) > cap()) {
        out.emplace_back(size, p);
      } else {
        idle_.emplace_back(size, p);
        idle_bytes_ += int64_t(size);
        while (idle_.size() > keep_ || idle_bytes_ > cap()) {
          idle_bytes_ -= int64_t(idle_.front().first);
          out.push_back(idle_.front());
          idle_.pop_front();
        }
      }
    }
    for (auto& b : out) std::free(b.second);  // outside the lock: munmap can take a while
  }

  void trim() {
    std::deque<std::pair<size_t, void*>> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      out.swap(idle_);
      idle_bytes_ = 0;
    }
    for (auto& b : out) std::free(b.second);
  }

  int64_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_bytes_;
  }

 private:
  int64_t cap() const { return small_ ? kSmallCap : idle_cap(); }

  const size_t keep_;
  const bool small_;
  std::mutex mu_;
  std::deque<std::pair<size_t, void*>> idle_;  // oldest first
  int64_t idle_bytes_ = 0;
};

// Never destroyed: tensors may be freed at exit.
HostBlocks& host_blocks() {
  static HostBlocks* blocks = new HostBlocks(kKeep, false);
  return *blocks;
}
HostBlocks& small_blocks() {
  static HostBlocks* blocks = new HostBlocks(kKeepSmall, true);
  return *blocks;
}

}  // namespace

std::shared_ptr<void> allocate_host(int64_t bytes) {
  // Memory is left uninitialised (and so untouched until written): a 9 GB output costs
  // nothing up front.
  const size_t alloc = rounded(bytes);
  HostBlocks& blocks = int64_t(alloc) >= kSmallest ? host_blocks() : small_blocks();
  size_t size = alloc;
  void* mem = blocks.take(alloc, &size);
  if (!mem)
    throw Error(ErrorKind::out_of_memory,
                "[tensor] could not allocate " + std::to_string(bytes) + " bytes of host memory");
  return std::shared_ptr<void>(mem, [size, &blocks](void* p) { blocks.give(p, size); });
}

int64_t idle_host_bytes() { return host_blocks().idle_bytes() + small_blocks().idle_bytes(); }

void release_idle_host_memory() {
  host_blocks().trim();
  small_blocks().trim();
}

}  // namespace convnd
