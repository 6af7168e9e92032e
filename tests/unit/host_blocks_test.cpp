// The host block cache (src/core/host_blocks.cpp): released blocks serve later requests of up
// to their size, the cache stays within its bounds, and reused memory holds whatever it held
// (tensors are uninitialised) while a fresh tensor's bytes are the caller's alone.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/memory.h"

using namespace convnd;

namespace {
constexpr int64_t MiB = int64_t(1) << 20;
}

TEST(HostBlocks, ReleasedBlockServesTheNextRequestOfItsSize) {
  release_idle_host_memory();
  void* first;
  {
    Tensor t = Tensor::empty(DType::f32, {int64_t(3) * MiB / 4});  // 3 MiB
    first = t.data();
    std::memset(t.data(), 1, size_t(t.nbytes()));
  }
  EXPECT_GE(idle_host_bytes(), 3 * MiB);
  Tensor again = Tensor::empty(DType::f32, {int64_t(3) * MiB / 4});
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(idle_host_bytes(), 0);
}

TEST(HostBlocks, ABlockServesNoRequestUnderHalfItsSize) {
  release_idle_host_memory();
  { Tensor big = Tensor::empty(DType::f32, {int64_t(4) * MiB / 4}); }
  const int64_t idle = idle_host_bytes();
  ASSERT_GE(idle, 4 * MiB);
  Tensor small = Tensor::empty(DType::f32, {MiB / 4});  // 1 MiB: a fresh block
  EXPECT_EQ(idle_host_bytes(), idle);
  Tensor half = Tensor::empty(DType::f32, {int64_t(2) * MiB / 4});  // 2 MiB: the 4 MiB block
  EXPECT_EQ(idle_host_bytes(), 0);
}

TEST(HostBlocks, IdleBlocksStayWithinTheBounds) {
  release_idle_host_memory();
  std::vector<Tensor> many;
  for (int i = 0; i < 20; ++i) many.push_back(Tensor::empty(DType::f32, {int64_t(i + 1) * MiB / 4}));
  for (Tensor& t : many) t = Tensor();  // released in order: 1 MiB first, 20 MiB last
  // At most 8 blocks, the newest kept: 13 + 14 + ... + 20 MiB.
  EXPECT_EQ(idle_host_bytes(), 132 * MiB);
  // A block over the byte bound (at most 512 MiB idle) is never kept; untouched, it costs no
  // physical memory here.
  { Tensor huge = Tensor::empty(DType::f32, {int64_t(600) * MiB / 4}); }
  EXPECT_EQ(idle_host_bytes(), 132 * MiB);
  release_idle_host_memory();
  EXPECT_EQ(idle_host_bytes(), 0);
}

// Blocks under 128 KiB have a cache of their own (at most 16 blocks, 1 MiB): a tiny conv's
// output and its dense weight copy come back without an aligned malloc each.
TEST(HostBlocks, SmallBlocksAreKeptInTheirOwnBounds) {
  release_idle_host_memory();
  void* first;
  {
    Tensor t = Tensor::empty(DType::f32, {512});  // 2 KiB
    first = t.data();
  }
  EXPECT_EQ(idle_host_bytes(), 2048);
  {
    Tensor again = Tensor::empty(DType::f32, {500});
    EXPECT_EQ(again.data(), first);
    EXPECT_EQ(idle_host_bytes(), 0);
  }
  std::vector<Tensor> many;
  for (int i = 0; i < 40; ++i) many.push_back(Tensor::empty(DType::f32, {16 * 1024}));  // 64 KiB each
  many.clear();
  EXPECT_EQ(idle_host_bytes(), 16 * 64 * 1024);  // 16 blocks: the count bound
  { Tensor big = Tensor::empty(DType::f32, {int64_t(3) * MiB / 4}); }  // the large cache's
  EXPECT_EQ(idle_host_bytes(), 16 * 64 * 1024 + 3 * MiB);
  release_idle_host_memory();
  EXPECT_EQ(idle_host_bytes(), 0);
}
