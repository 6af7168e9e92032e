// The GEMM driver: path selection, blocking, workspace carving, the threaded block loop and the
// dense sources. The arithmetic lives in the micro-kernels (src/cpu/isa/gemm_kernels__*.cpp).
#include "cpu/gemm.h"

#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cpu/isa/gemm_bf16_kernels.h"
#include "cpu/isa/gemm_microkernel.h"
#include "cpu/thread_pool.h"

namespace convnd {
namespace {

constexpr int64_t kAlign = 64;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

#if defined(__linux__) && defined(__x86_64__)
// Whether the OS saves the AMX tile state (XCR0 bits 17 and 18) and grants it to this process:
// Linux 5.16+ hands it out on request (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA), and a
// tile instruction without the grant kills the process. Asked once, for the whole process.
bool amx_granted() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return false;
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#endif

GemmIsa cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C from CPUID directly: clang 14's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    // AVX512-BF16: CPUID.(7, 1).EAX[5]; AMX-BF16 and AMX-TILE: CPUID.(7, 0).EDX[22] and [24].
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0, a0 = 0, b0 = 0, c0 = 0, d0 = 0;
    const bool bf16 = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5));
    if (!bf16) return GemmIsa::avx512;
#if defined(__linux__) && defined(__x86_64__)
    const bool amx = __get_cpuid_count(7, 0, &a0, &b0, &c0, &d0) && (d0 & (1u << 22)) && (d0 & (1u << 24));
    if (amx && amx_granted()) return GemmIsa::amx;
#else
    (void)a0, (void)b0, (void)c0, (void)d0;
#endif
    return GemmIsa::avx512_bf16;
  }
  if (avx2) return GemmIsa::avx2;
#endif
  return GemmIsa::generic;
}

GemmIsa cached_cpu_isa() {
  static const GemmIsa isa = cpu_isa();
  return isa;
}

// Bytes of L2 one task's B block and C tile may fill: half of the core's L2.
int64_t l2_budget() {
  static const int64_t bytes = [] {
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? int64_t(l2) / 2 : int64_t(512) << 10;
  }();
  return bytes;
}

// Bytes of a packed element: f64, else f32 (B of bf16 compute too: it is converted in place);
// gemm_a_elem_bytes gives A's.
int64_t elem_bytes(DType compute) { return compute == DType::f64 ? 8 : 4; }

// Panels per M block, at most ppb_max, for which the tasks (M blocks × n_blocks) finish soonest
// when `threads` threads take them in order as the pool hands them out. A task costs its
// panels plus one for fetching its B slice again; ties go to bigger blocks. Allocates nothing:
// gemm() calls it for every M it is given.
int64_t balanced_panels(int64_t panels, int64_t ppb_max, int64_t n_blocks, int threads) {
  constexpr int kMaxSimulated = 64;
  int64_t best = ppb_max, best_time = -1;
  for (int64_t ppb = ppb_max; ppb >= 1; --ppb) {
    const int64_t m_blocks = ceil_div(panels, ppb), tasks = m_blocks * n_blocks;
    // Blocks this small only add overhead; and with that many tasks already at the largest
    // block, that block is the answer (simulating 2^50 tasks of a huge problem would hang).
    if (tasks > 4096) return ppb < ppb_max ? best : ppb_max;
    int64_t time = 0;
    if (threads <= kMaxSimulated) {
      int64_t busy[kMaxSimulated] = {};
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t ib = t % m_blocks;
        int first = 0;
        for (int i = 1; i < threads; ++i)
          if (busy[i] < busy[first]) first = i;
        busy[first] += std::min(ppb, panels - ib * ppb) + 1;
      }
      for (int i = 0; i < threads; ++i) time = std::max(time, busy[i]);
    } else {  // the list-scheduling bound
      time = ceil_div(panels * n_blocks + tasks, threads) + ppb + 1;
    }
    if (best_time < 0 || time < best_time) best = ppb, best_time = time;
  }
  return best;
}

void zero_c(const GemmArgs& g) {
  const int64_t row_bytes = g.N * dtype_size(g.c_dtype);
  for (int64_t m = 0; m < g.M; ++m)
    std::memset(static_cast<char*>(g.c) + m * g.ldc * dtype_size(g.c_dtype), 0, size_t(row_bytes));
}

// Per-thread scratch inside the caller's workspace: one A panel (mr × kc, or mr × K when A
// panels span all of K) and, for f16/bf16 C, an f32 accumulation block (mr × nc rows at a
// time when A panels span all of K, else the task's mc × nc).
struct Workspace {
  int64_t a_bytes = 0, groups_bytes = 0, c_bytes = 0, per_thread = 0, total = 0;
};

Workspace carve(const GemmPlan& p, int64_t N, int64_t K, DType c_dtype, bool b_prepacked) {
  Workspace w;
  const int64_t b_bytes = b_prepacked ? 0 : gemm_packed_b_bytes(p, N, K);
  const int64_t a_len = std::max<int64_t>(p.a_whole_k ? K : p.kc, 1);
  w.a_bytes = round_up(gemm_a_panel_elems(p, a_len) * gemm_a_elem_bytes(p), kAlign);
  w.groups_bytes = round_up(ceil_div(a_len, p.kg) * int64_t(sizeof(int64_t)), kAlign);
  // The sums are kept in C itself when C is of the sums' type (f64, or f32 from f32 or bf16
  // compute).
  const DType sums = p.compute == DType::f64 ? DType::f64 : DType::f32;
  w.c_bytes = c_dtype == sums ? 0 : round_up((p.a_whole_k ? p.mr : p.mc) * p.nc * 4, kAlign);
  w.per_thread = w.a_bytes + w.groups_bytes + w.c_bytes;
  w.total = b_bytes + std::max(p.threads, 1) * w.per_thread;
  return w;
}

// Hands fn to the pool through a closure of one reference, which std::function keeps without
// allocating.
template <class Fn>
void run_tasks(ThreadPool* pool, int64_t tasks, const Fn& fn) {
  if (pool)
    pool->parallel_for(tasks, [&fn](int64_t t, int thread) { fn(t, thread); });
  else
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
}

template <class T>
void run_blocks(const GemmPlan& p, const GemmArgs& g, const T* packed_b, char* thread_space,
                const Workspace& w, ThreadPool* pool) {
  const GemmKernels& kt = gemm_kernels(p.isa);
  void (*kernel)(int64_t, const T*, const int64_t*, const T*, T*, int64_t, int64_t, int64_t, bool, GemmPrefetch*);
  if constexpr (sizeof(T) == 8)
    kernel = kt.f64_gemm;
  else
    kernel = kt.f32_gemm;
  const int64_t M = g.M, N = g.N, K = g.K, mr = p.mr, nr = p.nr, kc = p.kc;
  // A K block starting at k0 (a multiple of kg, see gemm_kc) is the panel's groups from k0 / kg.
  const int64_t m_blocks = ceil_div(M, p.mc), n_blocks = ceil_div(N, p.nc);
  const bool scratch = g.c_dtype != p.compute;
  const int64_t es = dtype_size(g.c_dtype);

  // Task t owns C[m block, n block] whole, so no two threads touch one element.
  auto task = [&](int64_t t, int thread) {
    const int64_t m0 = (t % m_blocks) * p.mc, n0 = (t / m_blocks) * p.nc;
    const int64_t mlen = std::min(p.mc, M - m0), nlen = std::min(p.nc, N - n0);
    char* space = thread_space + thread * w.per_thread;
    T* a_panel = reinterpret_cast<T*>(space);  // [kc or K, mr]
    // Where each group of the panel starts: the standard layout, or the source's own.
    int64_t* groups = reinterpret_cast<int64_t*>(space + w.a_bytes);
    // Where the kernels accumulate: C itself, or the f32 scratch of a 16-bit C ([.., nc]).
    T* c_block = scratch ? reinterpret_cast<T*>(space + w.a_bytes + w.groups_bytes)
                         : static_cast<T*>(g.c) + m0 * g.ldc + n0;
    const int64_t ldc = scratch ? p.nc : g.ldc;
    char* c_out = static_cast<char*>(g.c) + (m0 * g.ldc + n0) * es;  // the task's block of C

    // What the kernels fetch while they work: the memory of the next A panel to pack, so that
    // packing it does not wait on DRAM (the hardware prefetchers do not run that far ahead).
    GemmPrefetch pf;
    // A read in place by the kernels (no packing) where the path has such a kernel and the
    // source allows it: full panels only, the last partial one is packed. Each N tile reads
    // the rows again (from cache), so only for tasks of at most 8 tiles: measured 15% faster at
    // N = 64 and 5% at N = 256 (8 tiles); at 16 and 22 tiles no different from packing.
    constexpr int64_t kInPlaceMaxTiles = 8;
    int64_t a_ld = 0;
    const T* a_direct = nullptr;
    if constexpr (sizeof(T) == 4)
      if (kt.f32_gemm_rows && ceil_div(nlen, nr) <= kInPlaceMaxTiles)
        a_direct = static_cast<const T*>(g.a->direct(p, &a_ld));
    // The panel's rows when gathered in place (row r's group j at rows[r] + groups[j]).
    const void* gather_rows[64];
    const bool can_gather = sizeof(T) == 4 && kt.f32_gemm_gather && mr <= 64;
    int64_t pair_ld = 0;  // > 0: the gathered rows come in pairs this far apart
    // How a panel's A is read: packed, in place from a dense A, or gathered in place.
    enum class Read { packed, dense, gathered };
    // Gets rows [m, m + mi), columns [k0, k0 + klen) of A ready: packed into a_panel with
    // groups filled, or located where they are.
    auto prepare = [&](int64_t m, int64_t mi, int64_t k0, int64_t klen) {
      if (a_direct && mi == mr) return Read::dense;
      if (can_gather && mi == mr && g.a->gather(p, m, mi, k0, klen, gather_rows, groups)) {
        // Rows in pairs a fixed distance apart (each pair in one output line) take the kernel
        // that keeps half the pointers.
        pair_ld = 0;
        if (kt.f32_gemm_pairs && mr % 2 == 0) {
          const T* r0 = static_cast<const T*>(gather_rows[0]);
          const int64_t d = static_cast<const T*>(gather_rows[1]) - r0;
          bool pairs = d > 0;
          for (int64_t q = 1; pairs && 2 * q < mr; ++q)
            pairs = static_cast<const T*>(gather_rows[2 * q + 1]) - static_cast<const T*>(gather_rows[2 * q]) == d;
          if (pairs) pair_ld = d;
        }
        return Read::gathered;
      }
      if (!g.a->pack_indexed(p, m, mi, k0, klen, a_panel, groups)) {
        g.a->pack(p, m, mi, k0, klen, a_panel);
        for (int64_t j = 0; j * p.kg < klen; ++j) groups[j] = j * mr * p.kg;
      }
      return Read::packed;
    };
    // C rows [m0 + i, + mi) (row 0 of c_rows) += A · B[k0 : k0+klen, all the task's columns],
    // with A as prepare() left it (groups from k0_panel).
    auto multiply = [&](Read read, int64_t i, T* c_rows, int64_t mi, int64_t k0, int64_t k0_panel,
                        int64_t klen) {
      const bool accumulate = k0 > 0 || (g.accumulate && !scratch);
      for (int64_t j = 0; j < nlen; j += nr) {
        const T* b_panel = packed_b + (n0 + j) / nr * K * nr + k0 * nr;  // [klen, nr]
        const int64_t nj = std::min(nr, nlen - j);
        if constexpr (sizeof(T) == 4) {
          if (read == Read::dense) {
            kt.f32_gemm_rows(klen, a_direct + (m0 + i) * a_ld + k0, a_ld, b_panel, c_rows + j, ldc, mi, nj,
                             accumulate, &pf);
            continue;
          }
          if (read == Read::gathered) {
            const float* const* rows = reinterpret_cast<const float* const*>(gather_rows);
            if (pair_ld > 0)
              kt.f32_gemm_pairs(klen, rows, pair_ld, groups + k0_panel / p.kg, b_panel, c_rows + j, ldc, mi, nj,
                                accumulate);
            else
              kt.f32_gemm_gather(klen, rows, groups + k0_panel / p.kg, b_panel, c_rows + j, ldc, mi, nj, accumulate);
            continue;
          }
        }
        kernel(klen, a_panel, groups + k0_panel / p.kg, b_panel, c_rows + j, ldc, mi, nj, accumulate, &pf);
      }
    };
    if (p.a_whole_k) {
      // One A panel over all of K serves every K block: A is read row by row, once, and a
      // 16-bit C row strip is finished (and stored) before the next.
      for (int64_t i = 0; i < mlen; i += mr) {
        const int64_t mi = std::min(mr, mlen - i);
        const Read read = prepare(m0 + i, mi, 0, K);
        pf = i + mr < mlen ? g.a->prefetch(p, m0 + i + mr, std::min(mr, mlen - i - mr), 0, K) : GemmPrefetch{};
        T* c_rows = scratch ? c_block : c_block + i * ldc;
        for (int64_t k0 = 0; k0 < K; k0 += kc) multiply(read, i, c_rows, mi, k0, k0, std::min(kc, K - k0));
        if (scratch)
          kt.f32_store(reinterpret_cast<const float*>(c_block), ldc, mi, nlen, g.c_dtype,
                       c_out + i * g.ldc * es, g.ldc, g.accumulate);
      }
      return;
    }
    // B's K block for the task stays in L2 while the A panels pass.
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t klen = std::min(kc, K - k0);
      for (int64_t i = 0; i < mlen; i += mr) {
        const int64_t mi = std::min(mr, mlen - i);
        const Read read = prepare(m0 + i, mi, k0, klen);
        pf = i + mr < mlen ? g.a->prefetch(p, m0 + i + mr, std::min(mr, mlen - i - mr), k0, klen) : GemmPrefetch{};
        multiply(read, i, c_block + i * ldc, mi, k0, 0, klen);
      }
    }
    if (scratch)
      kt.f32_store(reinterpret_cast<const float*>(c_block), ldc, mlen, nlen, g.c_dtype, c_out,
                   g.ldc, g.accumulate);
  };
  run_tasks(pool, m_blocks * n_blocks, task);
}

// run_blocks for bf16 compute: the same tasks and blocks, A panels packed in bf16 (never read
// in place: the kernels need whole groups), the bf16 kernels summing into f32 C (the scratch
// block for a 16-bit C). B (packed_b) holds converted panels, each in the place of its f32
// panel (K·nr·4 bytes).
void run_blocks_bf16(const GemmPlan& p, const GemmArgs& g, const char* packed_b, char* thread_space,
                     const Workspace& w, ThreadPool* pool, const GemmKernels& kt) {
  const int64_t M = g.M, N = g.N, K = g.K, mr = p.mr, nr = p.nr, kc = p.kc, kg = p.kg;
  const int64_t m_blocks = ceil_div(M, p.mc), n_blocks = ceil_div(N, p.nc);
  const bool scratch = g.c_dtype != DType::f32;
  const int64_t es = dtype_size(g.c_dtype);
  auto task = [&](int64_t t, int thread) {
    const int64_t m0 = (t % m_blocks) * p.mc, n0 = (t / m_blocks) * p.nc;
    const int64_t mlen = std::min(p.mc, M - m0), nlen = std::min(p.nc, N - n0);
    char* space = thread_space + thread * w.per_thread;
    uint16_t* a_panel = reinterpret_cast<uint16_t*>(space);
    int64_t* groups = reinterpret_cast<int64_t*>(space + w.a_bytes);
    float* c_block = scratch ? reinterpret_cast<float*>(space + w.a_bytes + w.groups_bytes)
                             : static_cast<float*>(g.c) + m0 * g.ldc + n0;
    const int64_t ldc = scratch ? p.nc : g.ldc;
    char* c_out = static_cast<char*>(g.c) + (m0 * g.ldc + n0) * es;
    // Rows [m, m + mi), columns [k0, k0 + klen) of A packed, the lanes of a last partial group
    // zeroed (the packers leave them; these kernels read every lane).
    auto prepare = [&](int64_t m, int64_t mi, int64_t k0, int64_t klen) {
      if (!g.a->pack_indexed(p, m, mi, k0, klen, a_panel, groups)) {
        g.a->pack(p, m, mi, k0, klen, a_panel);
        for (int64_t j = 0; j * kg < klen; ++j) groups[j] = j * mr * kg;
      }
      if (const int64_t used = klen % kg; used != 0)
        for (int64_t r = 0; r < mr; ++r)
          std::memset(a_panel + groups[klen / kg] + r * kg + used, 0, size_t(kg - used) * 2);
    };
    // C rows (c_rows) += A (groups from group index j0) · B[k0 : k0 + klen, the task's columns].
    auto multiply = [&](float* c_rows, int64_t mi, int64_t k0, int64_t j0, int64_t klen) {
      const bool accumulate = k0 > 0 || (g.accumulate && !scratch);
      for (int64_t j = 0; j < nlen; j += nr) {
        const uint16_t* b_panel = reinterpret_cast<const uint16_t*>(packed_b + (n0 + j) / nr * K * nr * 4) + k0 * nr;
        kt.bf16->gemm(klen, a_panel, groups + j0, b_panel, c_rows + j, ldc, mi, std::min(nr, nlen - j), accumulate);
      }
    };
    if (kt.bf16->begin) kt.bf16->begin();
    if (p.a_whole_k) {
      for (int64_t i = 0; i < mlen; i += mr) {
        const int64_t mi = std::min(mr, mlen - i);
        prepare(m0 + i, mi, 0, K);
        float* c_rows = scratch ? c_block : c_block + i * ldc;
        for (int64_t k0 = 0; k0 < K; k0 += kc) multiply(c_rows, mi, k0, k0 / kg, std::min(kc, K - k0));
        if (scratch) kt.f32_store(c_block, ldc, mi, nlen, g.c_dtype, c_out + i * g.ldc * es, g.ldc, g.accumulate);
      }
    } else {
      for (int64_t k0 = 0; k0 < K; k0 += kc) {
        const int64_t klen = std::min(kc, K - k0);
        for (int64_t i = 0; i < mlen; i += mr) {
          const int64_t mi = std::min(mr, mlen - i);
          prepare(m0 + i, mi, k0, klen);
          multiply(c_block + i * ldc, mi, k0, 0, klen);
        }
      }
      if (scratch) kt.f32_store(c_block, ldc, mlen, nlen, g.c_dtype, c_out, g.ldc, g.accumulate);
    }
    if (kt.bf16->end) kt.bf16->end();
  };
  run_tasks(pool, m_blocks * n_blocks, task);
}

// bf16 A panels (compute bf16) of `width` rows, groups of kg: element [k][r] at
// (k/kg)·width·kg + r·kg + k%kg; a row's run within a group is one copy. Rows past nrows, and
// null rows, are zeros; lanes past a segment's end are left for the next segment (or the
// driver's zeroing of a last partial group).
void pack_a_bf16(const GemmKernels& kt, DType src, const GemmASegment* segs, int64_t nseg, int64_t nrows,
                 int64_t width, int64_t kg, uint16_t* panel) {
  for (int64_t i = 0; i < nseg; ++i) {
    const GemmASegment& s = segs[i];
    if (src == DType::bf16 && kg == 2 && s.k_off % 2 == 0 && s.kn % 2 == 0 && nrows <= 64) {
      // Pairs: the layout is the B-panel layout of 32-bit elements (pair p of row r at
      // p·width + r), which the path's row packer writes with in-register transposes; it only
      // moves bits, so bf16 pairs pass through it as f32 lanes.
      const void* rows[64];
      for (int64_t r = 0; r < nrows; ++r) rows[r] = s.rows[r];
      kt.f32_pack_rows(DType::f32, rows, nrows, s.kn / 2, width,
                       reinterpret_cast<float*>(panel) + s.k_off / 2 * width);
      continue;
    }
    for (int64_t r = 0; r < width; ++r) {
      const void* row = r < nrows ? s.rows[r] : nullptr;
      if (row && src == DType::bf16 && kg == 2) {  // pairs: one store each, no copy calls
        const uint16_t* sp = static_cast<const uint16_t*>(row) - s.k_off;
        for (int64_t k = s.k_off; k < s.k_off + s.kn; ++k) panel[(k >> 1) * width * 2 + r * 2 + (k & 1)] = sp[k];
        continue;
      }
      for (int64_t k = s.k_off; k < s.k_off + s.kn;) {
        const int64_t grp = k / kg, run = std::min(s.k_off + s.kn, (grp + 1) * kg) - k;
        uint16_t* d = panel + grp * width * kg + r * kg + k % kg;
        if (row && src == DType::bf16 && run == 32) {  // a whole AMX group row: a fixed-size copy
          std::memcpy(d, static_cast<const uint16_t*>(row) + (k - s.k_off), 64);
        } else if (!row) {
          std::memset(d, 0, size_t(run) * 2);
        } else if (src == DType::bf16) {
          std::memcpy(d, static_cast<const uint16_t*>(row) + (k - s.k_off), size_t(run) * 2);
        } else {  // not what the planner asks for (bf16 compute is for bf16 data), but exact where it can be
          for (int64_t q = 0; q < run; ++q) {
            const char* e = static_cast<const char*>(row) + (k - s.k_off + q) * dtype_size(src);
            float v;
            switch (src) {
              case DType::f32: std::memcpy(&v, e, 4); break;
              case DType::f64: { double dv; std::memcpy(&dv, e, 8); v = float(dv); break; }
              case DType::f16: { uint16_t h; std::memcpy(&h, e, 2); v = half_to_float(h); break; }
              default: { uint16_t h; std::memcpy(&h, e, 2); v = bf16_to_float(h); break; }
            }
            d[q] = float_to_bf16(v);
          }
        }
        k += run;
      }
    }
  }
}

Status invalid(std::string message) { return Status(ErrorKind::invalid, "gemm: " + message); }

}  // namespace

namespace {
// The tile of a table for a compute type (bf16 on a table without bf16 kernels: f32's).
GemmTile tile_of(const GemmKernels& k, DType compute) {
  if (compute == DType::bf16 && k.bf16) return k.bf16->tile;
  return compute == DType::f64 ? k.f64 : k.f32;
}

int64_t kc_of(const GemmKernels& k, DType compute, int64_t K) {
  if (K <= 0) return 0;
  const GemmTile t = tile_of(k, compute);
  if (K <= t.kc_max) return K;
  const int64_t blocks = ceil_div(K, t.kc_max);
  // Equal blocks (rounded to 8, and to whole A-panel groups so that a block starts on a group;
  // to 32 for bf16 compute, whose converted panels go in groups of 32) rather than kc_max and a
  // short tail.
  const int64_t unit = compute == DType::bf16 && k.bf16 ? 32 : std::max<int64_t>(8, t.kg);
  return std::min(t.kc_max, round_up(ceil_div(K, blocks), unit));
}

// The plan against the kernels that will run it (the path's, or a test's emulated table).
Status check_plan(const GemmPlan& p, int64_t K, const GemmKernels& kt, bool check_cpu) {
  if (p.compute != DType::f32 && p.compute != DType::f64 && p.compute != DType::bf16)
    return invalid("compute type must be f32, f64 or bf16");
  if (p.compute == DType::bf16 && !kt.bf16)
    return invalid(std::string("the ") + gemm_isa_name(p.isa) + " path has no bf16 kernels");
  if (check_cpu && !gemm_isa_supported(p.isa))
    return Status(ErrorKind::unsupported,
                  std::string("gemm: this CPU cannot run the ") + gemm_isa_name(p.isa) + " path");
  const GemmTile t = tile_of(kt, p.compute);
  if (p.mr != t.mr || p.nr != t.nr || p.kg != t.kg) return invalid("plan tile does not match its path");
  if (p.kc != kc_of(kt, p.compute, K))
    return invalid("plan.kc " + std::to_string(p.kc) + " is not gemm_kc of K = " + std::to_string(K));
  if (p.mc <= 0 || p.nc <= 0 || p.mc % p.mr || p.nc % p.nr || p.threads < 1)
    return invalid("plan blocks must be positive multiples of the tile");
  return Status::Ok();
}
}  // namespace

Status gemm_check_plan(const GemmPlan& p, int64_t K) {
  // Not a CPU path (sm_90, say): unsupported, before its table (the generic one) is consulted.
  if (!gemm_isa_supported(p.isa))
    return Status(ErrorKind::unsupported, std::string("gemm: this CPU cannot run the ") + gemm_isa_name(p.isa) + " path");
  return check_plan(p, K, gemm_kernels(p.isa), true);
}

const char* gemm_isa_name(GemmIsa isa) {
  return isa_name(isa).data();  // names are string literals
}

namespace {
// gemm_emulate_bf16_level's state: the level, and its table (the best real path's kernels with
// the given bf16 ones).
struct Bf16Emulation {
  GemmIsa isa = GemmIsa::generic;
  bool on = false;
  GemmKernels table{};
};
Bf16Emulation& bf16_emulation() {
  static Bf16Emulation e;
  return e;
}
}  // namespace

void gemm_emulate_bf16_level(GemmIsa isa, const GemmBf16Kernels* kernels) {
  Bf16Emulation& e = bf16_emulation();
  e.on = kernels != nullptr;
  e.isa = isa;
  if (e.on) {
    e.table = gemm_kernels(cached_cpu_isa());
    e.table.bf16 = kernels;
  }
}

bool gemm_isa_supported(GemmIsa isa) {
  if (bf16_emulation().on && isa == bf16_emulation().isa) return true;
  return isa >= GemmIsa::generic && isa <= GemmIsa::amx && isa <= cached_cpu_isa();
}

GemmIsa gemm_isa() {
  static const GemmIsa isa = [] {
    GemmIsa best = cached_cpu_isa();
    if (const char* env = std::getenv("CONVND_ISA")) {
      for (GemmIsa want : {GemmIsa::generic, GemmIsa::avx2, GemmIsa::avx512, GemmIsa::avx512_bf16})
        if (std::string_view(env) == gemm_isa_name(want) && want < best) best = want;
    }
    return best;
  }();
  return isa;
}

namespace {
// A bf16 level's table: avx512's kernels and its bf16 ones.
GemmKernels with_bf16(const GemmBf16Kernels& bf16) {
  GemmKernels k = gemm_kernels_avx512();
  k.bf16 = &bf16;
  return k;
}
}  // namespace

const GemmKernels& gemm_kernels(GemmIsa isa) {
  if (bf16_emulation().on && isa == bf16_emulation().isa) return bf16_emulation().table;
  switch (isa) {
    case GemmIsa::amx: {
      static const GemmKernels k = with_bf16(gemm_bf16_kernels_amx());
      return k;
    }
    case GemmIsa::avx512_bf16: {
      static const GemmKernels k = with_bf16(gemm_bf16_kernels_avx512bf16());
      return k;
    }
    case GemmIsa::avx512: return gemm_kernels_avx512();
    case GemmIsa::avx2: return gemm_kernels_avx2();
    default: return gemm_kernels_generic();
  }
}

GemmTile gemm_tile(GemmIsa isa, DType compute) { return tile_of(gemm_kernels(isa), compute); }

bool gemm_has_bf16(GemmIsa isa) { return gemm_kernels(isa).bf16 != nullptr; }

int64_t gemm_kc(GemmIsa isa, DType compute, int64_t K) { return kc_of(gemm_kernels(isa), compute, K); }

GemmPlan gemm_plan(int64_t M, int64_t N, int64_t K, DType compute, int threads, GemmIsa isa) {
  GemmPlan p;
  p.isa = isa;
  p.compute = compute == DType::f64                               ? DType::f64
              : compute == DType::bf16 && gemm_has_bf16(isa) ? DType::bf16
                                                              : DType::f32;
  const GemmTile t = gemm_tile(isa, p.compute);
  p.mr = t.mr;
  p.nr = t.nr;
  p.kg = t.kg;
  p.kc = gemm_kc(isa, p.compute, K);
  p.threads = std::max(threads, 1);
  const int64_t e = elem_bytes(p.compute);
  const int64_t budget = l2_budget();

  // N block: the task's B slice of one K block (kc × nc) stays in L2 while the A panels pass.
  const int64_t kc = std::max<int64_t>(p.kc, 1);
  const int64_t nc_max = std::max(p.nr, budget / (kc * e) / p.nr * p.nr);
  const int64_t n_blocks = ceil_div(std::max<int64_t>(N, 1), nc_max);
  p.nc = round_up(ceil_div(std::max<int64_t>(N, 1), n_blocks), p.nr);
  // When all of the task's B (K × nc) fits in L2, walk A panel by panel over all of K: A rows
  // are then read whole and in order, which is what the hardware prefetchers stream best.
  p.a_whole_k = K * p.nc * e <= budget && gemm_a_panel_elems(p, K) * e <= (256 << 10);

  // M block: as many panels as keep the C block in a quarter of L2 (at most 64), then fewer
  // when that balances the threads better.
  const int64_t panels = ceil_div(std::max<int64_t>(M, 1), p.mr);
  const int64_t ppb_max =
      std::clamp<int64_t>(budget / 2 / (p.mr * p.nc * e), 1, std::min<int64_t>(64, panels));
  p.mc = balanced_panels(panels, ppb_max, n_blocks, p.threads) * p.mr;
  return p;
}

std::string gemm_plan_string(const GemmPlan& p) {
  return std::string("gemm isa=") + gemm_isa_name(p.isa) + " compute=" +
         std::string(dtype_name(p.compute)) + " tile=" + std::to_string(p.mr) + "x" +
         std::to_string(p.nr) + " kc=" + std::to_string(p.kc) + " mc=" + std::to_string(p.mc) +
         " nc=" + std::to_string(p.nc) + (p.a_whole_k ? " a=whole-k" : "") + " threads=" + std::to_string(p.threads);
}

int64_t gemm_a_panel_elems(const GemmPlan& plan, int64_t kc) { return round_up(kc, plan.kg) * plan.mr; }
int64_t gemm_a_elem_bytes(const GemmPlan& plan) { return plan.compute == DType::bf16 ? 2 : elem_bytes(plan.compute); }
int64_t gemm_b_elem_bytes(const GemmPlan& plan) { return elem_bytes(plan.compute); }

void gemm_pack_a_segments(const GemmPlan& plan, DType src_dtype, const GemmASegment* segs,
                          int64_t nseg, int64_t nrows, int64_t width, void* panel) {
  const GemmKernels& k = gemm_kernels(plan.isa);
  if (plan.compute == DType::bf16) {
    pack_a_bf16(k, src_dtype, segs, nseg, nrows, width, plan.kg, static_cast<uint16_t*>(panel));
  } else if (plan.compute == DType::f64) {
    if (src_dtype == DType::f64) {
      k.f64_pack_a(segs, nseg, nrows, width, static_cast<double*>(panel));
    } else {
      gemm_pack_a_segments_scalar<double>(src_dtype, segs, nseg, nrows, width, plan.kg, static_cast<double*>(panel));
    }
  } else {
    k.f32_pack_a(src_dtype, segs, nseg, nrows, width, static_cast<float*>(panel));
  }
}

void gemm_pack_a_rows(const GemmPlan& plan, DType src_dtype, const void* const* rows,
                      int64_t nrows, int64_t k_off, int64_t kn, void* panel) {
  GemmASegment seg;
  seg.k_off = k_off;
  seg.kn = kn;
  seg.rows = rows;
  gemm_pack_a_segments(plan, src_dtype, &seg, 1, nrows, plan.mr, panel);
}

void gemm_pack_rows(const GemmPlan& plan, int64_t width, DType src_dtype, const void* const* rows,
                    int64_t nrows, int64_t kn, void* dst) {
  const GemmKernels& k = gemm_kernels(plan.isa);
  if (plan.compute == DType::f64) {
    if (src_dtype == DType::f64)
      k.f64_pack_rows(reinterpret_cast<const double* const*>(rows), nrows, kn, width,
                      static_cast<double*>(dst));
    else
      gemm_pack_rows_scalar<double>(src_dtype, rows, nrows, 0, kn, width, 0, width,
                                    static_cast<double*>(dst));
  } else {
    k.f32_pack_rows(src_dtype, rows, nrows, kn, width, static_cast<float*>(dst));
  }
}

void DenseGemmA::pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                      void* dst) const {
  const int64_t e = dtype_size(dtype_), pe = gemm_a_elem_bytes(plan);
  const char* base = static_cast<const char*>(a_);
  const void* rows[64];
  for (int64_t p = 0; p * plan.mr < mc; ++p) {
    const int64_t nrows = std::min(plan.mr, mc - p * plan.mr);
    for (int64_t r = 0; r < nrows; ++r) rows[r] = base + ((m0 + p * plan.mr + r) * lda_ + k0) * e;
    gemm_pack_a_rows(plan, dtype_, rows, nrows, 0, kc,
                     static_cast<char*>(dst) + p * gemm_a_panel_elems(plan, kc) * pe);
  }
}

GemmPrefetch DenseGemmA::prefetch(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0,
                                  int64_t kc) const {
  (void)plan;
  const int64_t e = dtype_size(dtype_);
  const char* base = static_cast<const char*>(a_);
  GemmPrefetch f;
  for (int64_t r = 0; r < mc; ++r) f.add(base + ((m0 + r) * lda_ + k0) * e, kc * e);
  return f;
}

namespace {
template <class T>
void pack_k_major(DType dt, const char* b, int64_t ldb, int64_t n0, int64_t nc, int64_t k0,
                  int64_t kc, int64_t nr, T* dst) {
  const int64_t e = dtype_size(dt);
  for (int64_t p = 0; p * nr < nc; ++p) {
    const int64_t cols = std::min(nr, nc - p * nr);
    T* panel = dst + p * kc * nr;  // [kc, nr]
    for (int64_t k = 0; k < kc; ++k) {
      const char* row = b + ((k0 + k) * ldb + n0 + p * nr) * e;
      T* d = panel + k * nr;
      for (int64_t c = 0; c < cols; ++c) {
        switch (dt) {
          case DType::f32: d[c] = T(reinterpret_cast<const float*>(row)[c]); break;
          case DType::f64: d[c] = T(reinterpret_cast<const double*>(row)[c]); break;
          case DType::f16: d[c] = T(half_to_float(reinterpret_cast<const uint16_t*>(row)[c])); break;
          case DType::bf16: d[c] = T(bf16_to_float(reinterpret_cast<const uint16_t*>(row)[c])); break;
        }
      }
      for (int64_t c = cols; c < nr; ++c) d[c] = T(0);
    }
  }
}
}  // namespace

void DenseGemmB::pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
                      void* dst) const {
  const int64_t e = dtype_size(dtype_), pe = gemm_b_elem_bytes(plan);
  const char* base = static_cast<const char*>(b_);
  if (k_major_) {
    if (plan.compute == DType::f64)
      pack_k_major(dtype_, base, ldb_, n0, nc, k0, kc, plan.nr, static_cast<double*>(dst));
    else
      pack_k_major(dtype_, base, ldb_, n0, nc, k0, kc, plan.nr, static_cast<float*>(dst));
    return;
  }
  const void* rows[64];
  for (int64_t p = 0; p * plan.nr < nc; ++p) {
    const int64_t nrows = std::min(plan.nr, nc - p * plan.nr);
    for (int64_t r = 0; r < nrows; ++r) rows[r] = base + ((n0 + p * plan.nr + r) * ldb_ + k0) * e;
    gemm_pack_rows(plan, plan.nr, dtype_, rows, nrows, kc,
                   static_cast<char*>(dst) + p * kc * plan.nr * pe);
  }
}

int64_t gemm_packed_b_bytes(const GemmPlan& plan, int64_t N, int64_t K) {
  return round_up(round_up(N, plan.nr) * K * elem_bytes(plan.compute), kAlign);
}

Status gemm_pack_b(const GemmPlan& plan, int64_t N, int64_t K, const GemmBSource& b,
                   void* packed_b, ThreadPool* pool, const GemmKernels* kernels) {
  const GemmKernels& kt = kernels ? *kernels : gemm_kernels(plan.isa);
  const bool bf16 = plan.compute == DType::bf16;
  if (bf16 && !kt.bf16) return invalid("the path has no bf16 kernels");
  if (N < 0 || K < 0) return invalid("negative size");
  if (N == 0 || K == 0) return Status::Ok();
  if (!packed_b) return invalid("no packed B buffer");
  const int64_t panels = ceil_div(N, plan.nr);
  const int64_t panel_bytes = K * plan.nr * elem_bytes(plan.compute);
  // A few panels per task, enough tasks to share among the threads.
  const int64_t per_task = std::max<int64_t>(1, panels / (8 * (pool ? pool->threads() : 1)));
  auto task = [&](int64_t t, int) {
    for (int64_t j = t * per_task; j < std::min(panels, (t + 1) * per_task); ++j) {
      char* panel = static_cast<char*>(packed_b) + j * panel_bytes;
      b.pack(plan, j * plan.nr, std::min(plan.nr, N - j * plan.nr), 0, K, panel);
      if (bf16) bf16_convert_b_impl(panel, K, plan.nr);  // once per panel: portable code will do
    }
  };
  run_tasks(pool, ceil_div(panels, per_task), task);
  return Status::Ok();
}

int64_t gemm_workspace_bytes(const GemmPlan& plan, int64_t N, int64_t K, DType c_dtype,
                             bool b_prepacked) {
  return carve(plan, N, K, c_dtype, b_prepacked).total;
}

Status gemm(const GemmPlan& plan, const GemmArgs& g, void* workspace, int64_t workspace_bytes,
            ThreadPool* pool, const GemmKernels* kernels) {
  if (g.M < 0 || g.N < 0 || g.K < 0) return invalid("negative size");
  const GemmKernels& kt = kernels ? *kernels : gemm_kernels(plan.isa);
  if (Status s = kernels ? check_plan(plan, g.K, kt, false) : gemm_check_plan(plan, g.K); !s.ok()) return s;
  const bool f64 = plan.compute == DType::f64;
  if (f64 != (g.c_dtype == DType::f64))
    return invalid("C is " + std::string(dtype_name(g.c_dtype)) + " but the plan computes in " +
                   std::string(dtype_name(plan.compute)));
  if (pool && pool->threads() > plan.threads)
    return invalid("the pool has more threads than the plan's workspace allows");
  if (g.M == 0 || g.N == 0) return Status::Ok();
  if (!g.c || g.ldc < g.N) return invalid("C must be given with ldc >= N");
  if (g.K == 0) {
    if (!g.accumulate) zero_c(g);
    return Status::Ok();
  }
  if (!g.a || (!g.b && !g.packed_b)) return invalid("A and B sources must be given");
  const Workspace w = carve(plan, g.N, g.K, g.c_dtype, g.packed_b != nullptr);
  if (workspace_bytes < w.total || (w.total > 0 && !workspace))
    return invalid("workspace of " + std::to_string(workspace_bytes) + " bytes, " +
                   std::to_string(w.total) + " needed");
  char* ws = static_cast<char*>(workspace);
  const void* packed_b = g.packed_b;
  char* thread_space = ws;
  if (!packed_b) {
    if (Status s = gemm_pack_b(plan, g.N, g.K, *g.b, ws, pool, &kt); !s.ok()) return s;
    packed_b = ws;
    thread_space = ws + gemm_packed_b_bytes(plan, g.N, g.K);
  }
  // The plan may have been made for another M (a conv calls it per piece of its M): balance
  // this call's tasks over the threads, with blocks no larger than the plan's.
  GemmPlan run = plan;
  run.mc = balanced_panels(ceil_div(g.M, plan.mr), plan.mc / plan.mr, ceil_div(g.N, plan.nc),
                           pool ? pool->threads() : 1) * plan.mr;
  if (f64)
    run_blocks<double>(run, g, static_cast<const double*>(packed_b), thread_space, w, pool);
  else if (plan.compute == DType::bf16)
    run_blocks_bf16(run, g, static_cast<const char*>(packed_b), thread_space, w, pool, kt);
  else
    run_blocks<float>(run, g, static_cast<const float*>(packed_b), thread_space, w, pool);
  return Status::Ok();
}

}  // namespace convnd
