// The GEMM engine under the CPU convolution algorithms: C[M, N] (+)= A[M, K] · B[K, N].
//
// Conv-to-GEMM mapping (channels-last, per group g):
//   M = N·PD·PH·PW   output pixels; row m of A is the input patch of pixel m (implicit im2col)
//   N = O/g          output channels of the group
//   K = KD·KH·KW·C/g reduction, ordered like the weight [O, KD, KH, KW, C/g]
//   A[m, k]  = x[pixel m shifted by tap k / (C/g), channel k % (C/g)] (zero where padded)
//   B[k, n]  = w[n, k], i.e. the weight is Bt [N, K] row-major (K contiguous)
//   C[m, n]  = y[pixel m, channel n]: row stride ldc = O for a grouped output
//
// A and B reach the kernels through sources that pack blocks into micro-panels. Packed
// layouts (element type T = plan.compute: float for f32/f16/bf16 data, double for f64):
//   A block (m0, mc, k0, kc): ceil(mc/mr) panels one after another, each
//     gemm_a_panel_elems(plan, kc) = round_up(kc, kg)·mr elements. Within a panel k goes in
//     groups of kg = plan.kg (the path's vector length, or 1): element [k][r] =
//     A[m0 + p·mr + r, k0 + k] lies at (k/kg)·mr·kg + r·kg + k%kg, so each row's kg values
//     are contiguous and packing is a copy, not a transpose (with kg = 1 this is k·mr + r).
//     Rows past m0 + mc are zero; the padding of a last partial group is never read.
//   B block (n0, nc, k0, kc): ceil(nc/nr) panels one after another, each kc·nr elements;
//     panel p, element [k][c] at dst[p·kc·nr + k·nr + c] = B[k0 + k, n0 + p·nr + c],
//     columns past n0 + nc are zero.
//   Packed B (gemm_pack_b): panel j (columns j·nr ...) holds all K rows at
//     packed[j·K·nr + k·nr + c], so the block of any K range is a slice of each panel.
// gemm_pack_a_rows() and gemm_pack_rows() write these layouts fast from row pointers; conv
// sources use them per contiguous run of channels.
//
// Determinism: every C element is reduced over k = 0..K-1 in fixed blocks [0, kc),
// [kc, 2kc), ... with kc = gemm_kc(isa, compute, K), each block summed in order by the same
// micro-kernel whatever the tile position. So the bits depend on (isa, compute, K) only,
// never on M, N, where a row sits in M, how the caller splits M, or the thread count.
// With s_b the sum of block b: f32/f64 C = (((C_old +) s_0) + s_1) + ...; f16/bf16
// C = round((((s_0 + s_1) + ...) (+ C_old)) in f32.
//
// Paths and tiles (mr × nr; f32 compute, f64 compute): avx512 14×32, 14×16; avx2 6×16, 6×8;
// generic 4×8, 4×4. Use gemm_tile(), not these numbers.
//
// bf16 compute (the avx512_bf16 and amx paths, for bf16 A and B): A panels hold bf16 values
// (2-byte elements, gemm_a_elem_bytes) in the layout above with kg = 2 (avx512_bf16: a row's k
// pair is one 32-bit broadcast) or 32 (amx: a group is a 16-row A tile pair with 64-byte rows),
// so the sources pack them as they pack f32 ones, shared tap rows included; the driver zeroes
// the lanes of a last partial group, which these kernels read. B is packed as f32 (4-byte
// elements, gemm_b_elem_bytes) and rewritten once in place as pairs: element [k][c] of a panel
// at (k/2)·nr·2 + c·2 + k%2, zero past K. The kernels add products of bf16 pairs into f32 sums
// (VDPBF16PS with a 14×32 tile; TDPBF16PS tiles with 32×32). Each K block's products are
// added onto the running f32 sum of the blocks before it (C_old first when accumulating into
// an f32 C); the bits depend on (isa, K) only, as above.
#pragma once
#include <convnd/dtype.h>
#include <convnd/plan.h>
#include <convnd/status.h>

#include <cstdint>
#include <string>

namespace convnd {

class ThreadPool;

/// Kernel families: the CPU values of the public Isa (generic < avx2 < avx512 < avx512_bf16 <
/// amx). A path runs only where the CPU has its instructions. The path is part of every plan:
/// nothing below chooses one at run time.
using GemmIsa = Isa;
/// The f32/f64 kernel family of a level: the bf16 levels add bf16 GEMM kernels to avx512's.
constexpr Isa vector_isa(Isa isa) { return isa == Isa::avx512_bf16 || isa == Isa::amx ? Isa::avx512 : isa; }

const char* gemm_isa_name(GemmIsa isa);
/// Whether this CPU (and OS) can run the path (false for anything but the CPU levels). amx
/// also needs Linux to grant the process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM),
/// which the first call asks for.
bool gemm_isa_supported(GemmIsa isa);
/// The best supported path, lowered by the environment variable
/// CONVND_ISA=amx|avx512_bf16|avx512|avx2|generic (read once; an unknown name, or a path above
/// what the CPU has, is ignored). The CPU backend's default ISA for a plan.
GemmIsa gemm_isa();

/// The micro-tile of a path: the kernel computes mr × nr elements of C per call.
struct GemmTile {
  int64_t mr = 0, nr = 0;
  int64_t kc_max = 0;  // longest K block
  int64_t kg = 1;      // k per group of the packed A panel (kc_max is a multiple of it)
};
/// compute: DType::f32 (f32, f16 and bf16 data), DType::f64, or DType::bf16 (bf16 data on a
/// path with bf16 kernels, gemm_has_bf16: the tile of its bf16 A panels).
GemmTile gemm_tile(GemmIsa isa, DType compute);
/// Whether the path has bf16 kernels (avx512_bf16, amx).
bool gemm_has_bf16(GemmIsa isa);
/// The K block length for a reduction of K: K is cut into ceil(K / kc_max) nearly equal
/// blocks, each but the last a multiple of kg. A function of (isa, compute, K) only, which is
/// what makes results deterministic.
int64_t gemm_kc(GemmIsa isa, DType compute, int64_t K);

/// How a GEMM runs: plain data. Only isa, compute and kc affect the result bits.
struct GemmPlan {
  GemmIsa isa = GemmIsa::generic;
  DType compute = DType::f32;  // f32 for f32/f16/bf16 operands, f64 for f64; bf16 for bf16
                               // operands on a path with bf16 kernels (panels still f32)
  int64_t mr = 0, nr = 0;      // micro-tile (elements)
  int64_t kg = 1;              // k per group of a packed A panel (the tile's)
  int64_t kc = 0;              // K block (elements), = gemm_kc(isa, compute, K)
  int64_t mc = 0, nc = 0;      // a task computes an mc × nc block of C; multiples of mr, nr
                               // (gemm() may use smaller M blocks to balance its threads)
  bool a_whole_k = false;      // pack each A panel once over all of K (B's K × nc slice fits
                               // in L2), rather than once per K block
  int threads = 1;             // at most this many threads run it (workspace is sized for it)
};

/// Chooses the blocks for C[M, N] = A[M, K]·B[K, N] on `threads` threads. A plan made for some
/// M also serves any other M with the same N and K (e.g. the pieces of a tiled conv).
/// compute bf16 falls back to f32 on a path without bf16 kernels.
GemmPlan gemm_plan(int64_t M, int64_t N, int64_t K, DType compute, int threads, GemmIsa isa);
/// Whether `plan` can run a reduction of K here: unsupported when this CPU lacks its path,
/// invalid when its tile is not its path's, kc is not gemm_kc of K, or its blocks are not
/// positive multiples of the tile. gemm() checks this first; so do callers that size
/// workspaces from a plan they were handed.
Status gemm_check_plan(const GemmPlan& plan, int64_t K);
std::string gemm_plan_string(const GemmPlan& plan);

/// Memory the micro-kernels touch with prefetch instructions while they multiply, one 64-byte
/// line per k step: up to kMaxRuns runs of consecutive lines. A hint that hides the memory
/// latency of the next A panel behind this one's work; it changes no result.
struct GemmPrefetch {
  static constexpr int kMaxRuns = 32;
  struct Run {
    const char* p;  // first line (any address in it)
    int64_t lines;
  };
  Run runs[kMaxRuns];
  int count = 0;     // runs given
  int next = 0;      // the run being fetched
  int64_t line = 0;  // the next line of that run
  /// Appends a run of the bytes [p, p + bytes); ignored once kMaxRuns are given.
  void add(const char* p, int64_t bytes) {
    if (count == kMaxRuns || bytes <= 0) return;
    const int64_t skew = int64_t(reinterpret_cast<uintptr_t>(p) & 63);
    runs[count++] = {p - skew, (skew + bytes + 63) / 64};
  }
};

/// Produces packed blocks of A [M, K]. Implementations are called concurrently from several
/// threads, so pack() must not modify shared state.
class GemmASource {
 public:
  virtual ~GemmASource() = default;
  /// Writes A[m0 : m0+mc, k0 : k0+kc] as ceil(mc / plan.mr) packed A panels (layout above)
  /// of type plan.compute at dst (64-byte aligned), zero-filling rows past m0 + mc. m0 is a
  /// multiple of plan.mr relative to the GEMM's own M; m0 + mc <= M. The engine asks for one
  /// panel at a time, over one K block or (plan.a_whole_k) over all of K.
  virtual void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                    void* dst) const = 0;
  // How the engine gets a panel, in this order: read in place from direct() (full panels, f32,
  // when the path has the kernel), gather() (the same), pack_indexed(), then pack().

  /// Optional: where A's rows can be read as they are, in the compute type (row m, column k at
  /// result + m·(*lda) + k), or null. The kernels may then skip packing.
  virtual const void* direct(const GemmPlan& plan, int64_t* lda) const {
    (void)plan, (void)lda;
    return nullptr;
  }
  /// Optional, for a full panel (mc == plan.mr) of an f32 plan: where the kernels can read it in
  /// place: row r's group j (kg contiguous values of the compute type) at rows[r] + groups[j],
  /// for r < mr and j < ceil(kc / kg). Returns false (the default) to have it packed.
  virtual bool gather(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                      const void** rows, int64_t* groups) const {
    (void)plan, (void)m0, (void)mc, (void)k0, (void)kc, (void)rows, (void)groups;
    return false;
  }
  /// Optional, instead of pack() for one panel (mc <= plan.mr): writes the panel in a layout of
  /// the source's choosing within the same gemm_a_panel_elems(plan, kc) elements at dst, and
  /// sets groups[j], for each group j < ceil(kc / plan.kg) of the block's k, to where that
  /// group's mr rows of kg values start (elements from dst; rows kg apart, a row's values
  /// contiguous, as in the standard layout). Groups may overlap, which is what lets a source
  /// share rows between taps. Returns false (the default) to have pack() used instead.
  virtual bool pack_indexed(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                            void* dst, int64_t* groups) const {
    (void)plan, (void)m0, (void)mc, (void)k0, (void)kc, (void)dst, (void)groups;
    return false;
  }
  /// The memory that pack() of this block will read, for the kernels to prefetch while the
  /// panel before it is multiplied; empty (the default) when there is nothing worth fetching.
  virtual GemmPrefetch prefetch(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0,
                                int64_t kc) const {
    (void)plan, (void)m0, (void)mc, (void)k0, (void)kc;
    return {};
  }
};

/// Produces packed blocks of B [K, N]; same contract as GemmASource with nr and columns.
class GemmBSource {
 public:
  virtual ~GemmBSource() = default;
  virtual void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
                    void* dst) const = 0;
};

/// Elements in one packed A panel of kc columns: round_up(kc, kg)·mr.
int64_t gemm_a_panel_elems(const GemmPlan& plan, int64_t kc);
/// Bytes of a packed A element (8 for f64 compute, 2 for bf16, else 4) and of a packed B
/// element (8 for f64, else 4: bf16 B is packed as f32 first).
int64_t gemm_a_elem_bytes(const GemmPlan& plan);
int64_t gemm_b_elem_bytes(const GemmPlan& plan);

/// One piece of a packed A panel: columns [k_off, k_off + kn), row r from rows[r] (null: zeros).
struct GemmASegment {
  int64_t k_off = 0, kn = 0;
  const void* const* rows = nullptr;
};

/// gemm_pack_a_rows for several pieces of one panel in one call (all with nrows rows), for a
/// panel of `width` rows (plan.mr, or another width for a source's own layout: group j of
/// such a panel starts at j·width·kg).
void gemm_pack_a_segments(const GemmPlan& plan, DType src_dtype, const GemmASegment* segs,
                          int64_t nseg, int64_t nrows, int64_t width, void* panel);

/// Writes columns [k_off, k_off + kn) of one packed A panel (mr rows, layout above) at panel:
/// A-column k_off + k of row r = rows[r][k] converted from src_dtype, for r < nrows (a null
/// rows[r] gives zeros), and zeros for nrows <= r < mr. nrows <= mr. f64 compute takes f64
/// rows only.
void gemm_pack_a_rows(const GemmPlan& plan, DType src_dtype, const void* const* rows,
                      int64_t nrows, int64_t k_off, int64_t kn, void* panel);

/// Writes kn × width elements of plan.compute at dst in the B-panel layout: dst[k·width + r] =
/// rows[r][k] converted from src_dtype, for r < nrows (a null rows[r] gives zeros) and zeros
/// for nrows <= r < width. width is plan.nr; nrows <= width. To fill part of a panel, pass
/// dst = panel + k_offset·width. f64 compute takes f64 rows only.
void gemm_pack_rows(const GemmPlan& plan, int64_t width, DType src_dtype, const void* const* rows,
                    int64_t nrows, int64_t kn, void* dst);

/// A dense A: A[m, k] = a[m·lda + k] (elements of dtype).
class DenseGemmA final : public GemmASource {
 public:
  DenseGemmA(DType dtype, const void* a, int64_t lda) : dtype_(dtype), a_(a), lda_(lda) {}
  void pack(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            void* dst) const override;
  GemmPrefetch prefetch(const GemmPlan& plan, int64_t m0, int64_t mc, int64_t k0,
                        int64_t kc) const override;
  const void* direct(const GemmPlan& plan, int64_t* lda) const override {
    if (plan.compute != DType::f32 || dtype_ != DType::f32) return nullptr;
    *lda = lda_;
    return a_;
  }

 private:
  DType dtype_;
  const void* a_;
  int64_t lda_;
};

/// A dense B, by default given transposed as Bt [N, K]: B[k, n] = bt[n·ldb + k] (the conv
/// weight). With k_major, B [K, N] row-major instead: B[k, n] = b[k·ldb + n].
class DenseGemmB final : public GemmBSource {
 public:
  DenseGemmB(DType dtype, const void* b, int64_t ldb, bool k_major = false)
      : dtype_(dtype), b_(b), ldb_(ldb), k_major_(k_major) {}
  void pack(const GemmPlan& plan, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
            void* dst) const override;

 private:
  DType dtype_;
  const void* b_;
  int64_t ldb_;
  bool k_major_;
};

struct GemmKernels;

/// Bytes of B [K, N] packed whole by gemm_pack_b (a multiple of 64).
int64_t gemm_packed_b_bytes(const GemmPlan& plan, int64_t N, int64_t K);
/// Packs all of B once into packed_b (gemm_packed_b_bytes bytes, 64-byte aligned), so that
/// many gemm() calls with the same plan, N and K can share it. pool may be null. kernels: the
/// path's table (null: gemm_kernels(plan.isa)); tests pass an emulated one.
Status gemm_pack_b(const GemmPlan& plan, int64_t N, int64_t K, const GemmBSource& b,
                   void* packed_b, ThreadPool* pool, const GemmKernels* kernels = nullptr);

struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const GemmASource* a = nullptr;  // [M, K]
  const GemmBSource* b = nullptr;  // [K, N]; not read when packed_b is set
  const void* packed_b = nullptr;  // from gemm_pack_b with the same plan, N and K
  void* c = nullptr;               // [M, N], row stride ldc elements
  int64_t ldc = 0;
  DType c_dtype = DType::f32;  // f32/f16/bf16 with f32 compute (converted on store), f64 with f64
  bool accumulate = false;     // C += A·B (C is read) instead of C = A·B
};

/// Workspace bytes gemm() needs: B packed (unless pre-packed), and per plan.threads one A panel
/// (gemm_a_panel_elems of kc, or of K with a_whole_k) with its table of group offsets (one
/// int64 per kg columns) and, for f16/bf16 C, an f32 accumulation block (mc × nc, or mr × nc
/// with a_whole_k). gemm() allocates nothing else.
int64_t gemm_workspace_bytes(const GemmPlan& plan, int64_t N, int64_t K, DType c_dtype,
                             bool b_prepacked);

/// Computes the GEMM on pool (null: the calling thread alone; pool->threads() <= plan.threads).
/// workspace: at least gemm_workspace_bytes bytes, 64-byte aligned for best speed.
/// Returns invalid for arguments that break the rules above (plan.kc not gemm_kc of K, dtype
/// mismatch, workspace too small, ...). M, N or K may be 0. kernels: as for gemm_pack_b (a
/// table given is trusted to run here: the CPU check is skipped).
Status gemm(const GemmPlan& plan, const GemmArgs& args, void* workspace, int64_t workspace_bytes,
            ThreadPool* pool, const GemmKernels* kernels = nullptr);

// ---------------------------------------------------------------------------------------
// Internal: the per-path kernel tables (src/cpu/isa/gemm_kernels__<isa>.cpp).
struct GemmBf16Kernels;
struct GemmKernels {
  GemmTile f32, f64;
  /// c[r·ldc + j] (+)= sum_k A[r][k]·b[k·nr + j] for r < m, j < n (m <= mr, n <= nr), with
  /// A[r][k] the packed A panel at a whose group j (of kg k) starts at a + a_groups[j],
  /// summed over k in order; accumulate adds to the C already there. Prefetches lines of pf
  /// (not null) as it goes, one per k.
  void (*f32_gemm)(int64_t kc, const float* a, const int64_t* a_groups, const float* b, float* c,
                   int64_t ldc, int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf);
  void (*f64_gemm)(int64_t kc, const double* a, const int64_t* a_groups, const double* b,
                   double* c, int64_t ldc, int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf);
  /// gemm_pack_a_segments for each compute type (groups of the tile's kg).
  void (*f32_pack_a)(DType src_dtype, const GemmASegment* segs, int64_t nseg, int64_t nrows,
                     int64_t width, float* panel);
  void (*f64_pack_a)(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width,
                     double* panel);
  /// gemm_pack_rows (the B layout) for each compute type.
  void (*f32_pack_rows)(DType src_dtype, const void* const* rows, int64_t nrows, int64_t kn,
                        int64_t width, float* dst);
  void (*f64_pack_rows)(const double* const* rows, int64_t nrows, int64_t kn, int64_t width,
                        double* dst);
  /// c[r·ldc + j] = dtype(acc[r·ld_acc + j] (+ c[r·ldc + j] when accumulate)) for f16/bf16 c.
  void (*f32_store)(const float* acc, int64_t ld_acc, int64_t m, int64_t n, DType c_dtype,
                    void* c, int64_t ldc, bool accumulate);
  /// f32_gemm reading a full panel's rows straight from f32 memory (row r at a + r·lda), no
  /// packing; null on paths without one. The same sums in the same order as f32_gemm.
  void (*f32_gemm_rows)(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                        int64_t ldc, int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) = nullptr;
  /// f32_gemm reading a full panel in place row by row: row r's group j (kg values) at
  /// rows[r] + groups[j]; null on paths without one. The same sums in the same order.
  void (*f32_gemm_gather)(int64_t kc, const float* const* rows, const int64_t* groups, const float* b,
                          float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) = nullptr;
  /// f32_gemm_gather for rows in pairs: rows[2q + 1] == rows[2q] + lda for every q (rows[2q + 1]
  /// is not read); null on paths without one.
  void (*f32_gemm_pairs)(int64_t kc, const float* const* rows, int64_t lda, const int64_t* groups,
                         const float* b, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) = nullptr;
  /// The kernels for an A given k-major by one pointer per k: A[r][k] = krows[k][off + r] for
  /// r < m (up to mr values are read: all of them when m == mr), and B's row k (nr values) at
  /// b + k·ldb; the same sums in the same order as f32_gemm / f64_gemm. Every path has them.
  void (*f32_gemm_krows)(int64_t kc, const float* const* krows, int64_t off, const float* b, int64_t ldb,
                         float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) = nullptr;
  void (*f64_gemm_krows)(int64_t kc, const double* const* krows, int64_t off, const double* b, int64_t ldb,
                         double* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) = nullptr;
  /// The same for a panel from two runs: A[r][k] = krows[k][off + r] for r < split and
  /// krows2[k][r - split] for split <= r < mr (0 < split < mr).
  void (*f32_gemm_krows2)(int64_t kc, const float* const* krows, const float* const* krows2, int64_t off,
                          int64_t split, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t m,
                          int64_t n, bool accumulate) = nullptr;
  void (*f64_gemm_krows2)(int64_t kc, const double* const* krows, const double* const* krows2, int64_t off,
                          int64_t split, const double* b, int64_t ldb, double* c, int64_t ldc, int64_t m,
                          int64_t n, bool accumulate) = nullptr;

  /// The bf16 kernels of the avx512_bf16 and amx paths; null elsewhere.
  const GemmBf16Kernels* bf16 = nullptr;
};
const GemmKernels& gemm_kernels_generic();
const GemmKernels& gemm_kernels_avx2();
/// The bf16 path's kernels (layouts at the top). A table of constants in its ISA file: reading it
/// runs no instruction of that ISA, so any machine may plan for the path.
struct GemmBf16Kernels {
  GemmTile tile;  // mr, nr, kc_max, kg (2 or 32)
  /// c[r·ldc + j] (+)= sum_k A[r][k]·B[k][j] in f32 for r < m, j < n, k < kc: A a packed bf16
  /// panel whose group j starts at a + a_groups[j] (every lane of every group read: zero past
  /// kc), B a converted panel from its first k; accumulate adds to the f32 C already there.
  void (*gemm)(int64_t kc, const uint16_t* a, const int64_t* a_groups, const uint16_t* b, float* c, int64_t ldc,
               int64_t m, int64_t n, bool accumulate);
  /// Called on a thread before its first gemm of a task and after its last (AMX: load the tile
  /// configuration, release the tiles); null where there is nothing to do.
  void (*begin)();
  void (*end)();
};
const GemmBf16Kernels& gemm_bf16_kernels_avx512bf16();
const GemmBf16Kernels& gemm_bf16_kernels_amx();

const GemmKernels& gemm_kernels_avx512();
const GemmKernels& gemm_kernels(GemmIsa isa);

/// Tests only, on a CPU without the level (avx512_bf16 or amx): plan and run that level's GEMM
/// algorithms with `kernels` (plain C++ that emulates the instructions) on top of this CPU's best
/// path, as if the CPU had it; null turns it off. Not thread-safe: set it before planning, and
/// only for the GEMM algorithms (the direct ones would run their avx512 kernels). Plans made
/// meanwhile stay in the plan cache, so a process that uses it never has the real level.
void gemm_emulate_bf16_level(GemmIsa isa, const GemmBf16Kernels* kernels);

}  // namespace convnd
