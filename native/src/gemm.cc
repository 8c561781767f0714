// Single-precision GEMM.
//
// The own GEMM follows the Goto/BLIS structure: op(B) is packed into KC×NC panels of NR-wide
// slivers, op(A) into MC×KC blocks of MR-tall slivers, and a register-blocked microkernel
// multiplies one A sliver by one B sliver into an MR×NR tile of C held in registers. Packing
// takes care of the transposes, so the microkernel only ever sees one layout, and zero-pads the
// edges, so it always computes full tiles. Threads split C into independent sub-problems (each
// with its own packing buffers), which keeps the threads from ever waiting on each other.
#include "gemm.h"

// GCC 12 warns about _mm512_undefined_ps() inside its own AVX-512 headers (GCC bug 105593);
// the state at the header's first inclusion is what counts, hence before any include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#ifdef AMEND_OPENBLAS
#include <cblas.h>
extern "C" char* openblas_get_corename(void);
#endif

namespace amend {

// Register tile: MR rows × NR = NV vectors of VL floats. The accumulators (MR·NV vectors) plus
// NV B vectors and one broadcast A value must fit in the register file: 12×2 + 2 + 1 = 27 of 32
// zmm registers with AVX-512, 6×2 + 2 + 1 = 15 of 16 ymm registers with AVX2.
#if defined(__AVX512F__)
constexpr int VL = 16, MR = 12, NV = 2;
static const char* kIsa = "avx512f";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int VL = 8, MR = 6, NV = 2;
static const char* kIsa = "avx2+fma";
#else
constexpr int VL = 4, MR = 4, NV = 2;
static const char* kIsa = "generic";
#endif
constexpr int NR = VL * NV;

// Cache blocking, tuned on Zen 5 (48 KiB L1, 1 MiB L2 per core): a KC×NC panel of op(B) is
// packed once and swept by MC-row blocks of op(A). KC = 384 makes the B sliver (48 KiB with
// AVX-512) spill from L1 into L2, which Zen's L2 bandwidth absorbs, and saves a third of the
// C read-modify-writes compared with KC = 256 at k = 768 (GPT-2's width): ~5 % faster on the
// large-C shapes (MLP up, LM head), the same elsewhere; AVX2 builds measured the same either way.
#ifndef AMEND_KC
#define AMEND_KC 384
#define AMEND_MC (96 / MR * MR)
#define AMEND_NC 1536
#endif
constexpr int64_t KC = AMEND_KC;
constexpr int64_t MC = AMEND_MC;
constexpr int64_t NC = AMEND_NC;

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));

const char* gemm_own_isa() { return kIsa; }

// *x in every lane, as a broadcast load. Written as vf{} + *x, GCC adds 0 in a scalar register
// (x + 0 is not x when x is -0) and broadcasts from that register: two more uops per row of the
// tile, and on Intel's AVX-512 cores the register broadcast takes port 5, the second FMA unit's
// port, which halved the microkernel's speed there (75 against ~140 GFLOP/s per core).
static inline vf splat(const float* x) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(*x);
#elif defined(__AVX2__) && defined(__FMA__)
  return (vf)_mm256_set1_ps(*x);
#else
  return vf{*x, *x, *x, *x};
#endif
}

using View = MatView;

// ---- packing ---------------------------------------------------------------------------------
//
// Packing op(A) from a row-major A, or op(B) from a transposed B, is a transpose: the source runs
// along k, the packed sliver across it. Done one element at a time that costs 15-20 % of a large
// GEMM (and more of the small ones in attention), so it goes through VL×VL register transposes.

#if defined(__AVX512F__)
#define AMEND_TRANSPOSE 1
// r[i] := column i of the 16×16 block whose rows were r[0..16).
static inline void transpose_vl(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4q + j] holds columns j, j+4, j+8, j+12 (one per 128-bit lane) of rows 4q..4q+3.
  for (int q = 0; q < 4; q++) {
    __m512d t0 = _mm512_castps_pd(t[4 * q]), t1 = _mm512_castps_pd(t[4 * q + 1]);
    __m512d t2 = _mm512_castps_pd(t[4 * q + 2]), t3 = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int j = 0; j < 4; j++) {
    __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
    __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    r[j + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}
typedef __m512 vreg;
static inline vreg vreg_load(const float* p) { return _mm512_loadu_ps(p); }
static inline vreg vreg_zero() { return _mm512_setzero_ps(); }
static inline void vreg_store(float* p, vreg v, int n) {
  if (n == 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define AMEND_TRANSPOSE 1
static inline void transpose_vl(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4q + j] holds columns j and j+4 (one per 128-bit lane) of rows 4q..4q+3.
  for (int q = 0; q < 2; q++) {
    u[4 * q + 0] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xee);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xee);
  }
  for (int j = 0; j < 4; j++) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}
typedef __m256 vreg;
static inline vreg vreg_load(const float* p) { return _mm256_loadu_ps(p); }
static inline vreg vreg_zero() { return _mm256_setzero_ps(); }
static inline void vreg_store(float* p, vreg v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(p, v);
  } else {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int i = 0; i < n; i++) p[i] = tmp[i];
  }
}
#endif

#ifdef AMEND_TRANSPOSE
// For p in [0, kc) step VL: the VL×VL block rows[i][p..p+VL) (rows past nrows read as zeros) is
// transposed and its row j (the values at k = p + j) stored as `width` floats at dst + (p+j)·ld.
// Returns how far it got (a multiple of VL); the caller finishes the tail.
static int64_t pack_transposed(const float* const* rows, int nrows, int64_t kc, float* dst, int64_t ld, int width) {
  int64_t p = 0;
  for (; p + VL <= kc; p += VL) {
    vreg r[VL];
    for (int i = 0; i < VL; i++) r[i] = i < nrows ? vreg_load(rows[i] + p) : vreg_zero();
    transpose_vl(r);
    for (int j = 0; j < VL; j++) vreg_store(dst + (p + j) * ld, r[j], width);
  }
  return p;
}
#endif

// Packs rows [0, mc) × cols [0, kc) of a into MR-tall slivers: dst[s][p][r] = a(s*MR + r, p).
static void pack_a(View a, int64_t mc, int64_t kc, float* dst) {
  for (int64_t s = 0; s < mc; s += MR) {
    int64_t rows = std::min<int64_t>(MR, mc - s);
    const float* src = a.p + s * a.rs;
    if (a.rs == 1) {
      // op(A) columns are contiguous (transA): each k step copies MR consecutive floats.
#if defined(__AVX512F__)
      if (MR <= 16) {
        __mmask16 in = __mmask16((1u << rows) - 1), out = __mmask16((1u << MR) - 1);
        for (int64_t p = 0; p < kc; p++)
          _mm512_mask_storeu_ps(dst + p * MR, out, _mm512_maskz_loadu_ps(in, src + p * a.cs));
        dst += MR * kc;
        continue;
      }
#endif
      for (int64_t p = 0; p < kc; p++) {
        const float* col = src + p * a.cs;
        int64_t r = 0;
        for (; r < rows; r++) dst[p * MR + r] = col[r];
        for (; r < MR; r++) dst[p * MR + r] = 0.f;
      }
    } else {
      int64_t p0 = 0;
#ifdef AMEND_TRANSPOSE
      if (a.cs == 1 && MR <= VL) {
        const float* ptr[VL];
        for (int64_t r = 0; r < rows; r++) ptr[r] = src + r * a.rs;
        p0 = pack_transposed(ptr, int(rows), kc, dst, MR, MR);
      }
#endif
      for (int64_t r = 0; r < rows; r++) {
        const float* row = src + r * a.rs;
        for (int64_t p = p0; p < kc; p++) dst[p * MR + r] = row[p * a.cs];
      }
      for (int64_t r = rows; r < MR; r++)
        for (int64_t p = p0; p < kc; p++) dst[p * MR + r] = 0.f;
    }
    dst += MR * kc;
  }
}

// Packs rows [0, kc) × cols [0, nc) of b into NR-wide slivers: dst[s][p][c] = b(p, s*NR + c).
static void pack_b(View b, int64_t kc, int64_t nc, float* dst) {
  for (int64_t s = 0; s < nc; s += NR) {
    int64_t cols = std::min<int64_t>(NR, nc - s);
    const float* src = b.p + s * b.cs;
    if (b.cs == 1 && cols == NR) {
      for (int64_t p = 0; p < kc; p++) {
        const float* row = src + p * b.rs;
        for (int v = 0; v < NV; v++) *(vf*)(dst + p * NR + v * VL) = *(const vfu*)(row + v * VL);
      }
    } else if (b.cs == 1) {
      for (int64_t p = 0; p < kc; p++) {
        const float* row = src + p * b.rs;
        int64_t c = 0;
        for (; c < cols; c++) dst[p * NR + c] = row[c];
        for (; c < NR; c++) dst[p * NR + c] = 0.f;
      }
    } else {
      // op(B) rows are strided (transB): each source row runs along k.
      int64_t p0 = 0;
#ifdef AMEND_TRANSPOSE
      if (b.rs == 1) {
        for (int v = 0; v < NV; v++) {
          const float* ptr[VL];
          int n = int(std::max<int64_t>(0, std::min<int64_t>(VL, cols - v * VL)));
          for (int i = 0; i < n; i++) ptr[i] = src + (v * VL + i) * b.cs;
          p0 = pack_transposed(ptr, n, kc, dst + v * VL, NR, VL);
        }
      }
#endif
      for (int64_t c = 0; c < cols; c++) {
        const float* col = src + c * b.cs;
        for (int64_t p = p0; p < kc; p++) dst[p * NR + c] = col[p * b.rs];
      }
      for (int64_t c = cols; c < NR; c++)
        for (int64_t p = p0; p < kc; p++) dst[p * NR + c] = 0.f;
    }
    dst += NR * kc;
  }
}

// acc[MR][NR] = Σ_p a[p][:] ⊗ b[p][:], then C = acc (+ C when accumulate) on the valid
// mr×nr corner. a and b are packed slivers, b 64-byte aligned. Not inlined: inside gemm_block's
// loop nest GCC 12 keeps one of the B vectors on the stack and reloads it for every FMA.
__attribute__((noinline)) static void microkernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                               float* __restrict c, int64_t ldc, bool accumulate, int mr, int nr) {
  // C is usually far from the cache (a 1024×50257 logits matrix is 200 MB): start fetching the
  // tile now so that the loads and stores at the end do not stall on memory.
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);
  }
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = vf{};

  for (int64_t p = 0; p < kc; p++) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = *(const vf*)(b + v * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      vf av = splat(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];
    }
    a += MR;
    b += NR;
  }

  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        vfu* dst = (vfu*)(c + i * ldc + v * VL);
        *dst = accumulate ? *dst + acc[i][v] : acc[i][v];
      }
    return;
  }
  alignas(64) float tile[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) *(vf*)&tile[i][v * VL] = acc[i][v];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i][j] : tile[i][j];
}

// A product with very few rows (a decoding step, a single vector) is a sequence of matrix-vector
// products: packing op(B) would cost as much as using it, so read it in place instead.
static void gemm_skinny(View a, View b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                        bool accumulate) {
  thread_local std::vector<float> rowbuf;
  float* arow = scratch(rowbuf, size_t(k));
  for (int64_t i = 0; i < m; i++) {
    for (int64_t p = 0; p < k; p++) arow[p] = a.p[i * a.rs + p * a.cs];
    float* crow = c + i * ldc;
    if (b.cs == 1) {
      // crow += Σ_p a[p]·B[p, :], a cache-sized block of the row at a time.
      constexpr int64_t JB = 2048;
      for (int64_t j0 = 0; j0 < n; j0 += JB) {
        int64_t len = std::min(JB, n - j0);
        float* __restrict acc = crow + j0;
        if (!accumulate) std::memset(acc, 0, sizeof(float) * size_t(len));
        for (int64_t p = 0; p < k; p++) {
          const float* __restrict brow = b.p + p * b.rs + j0;
          float s = arow[p];
          for (int64_t j = 0; j < len; j++) acc[j] += s * brow[j];
        }
      }
    } else {
      // Columns of op(B) strided by b.cs, each (when b.rs == 1) contiguous: dot products.
      for (int64_t j = 0; j < n; j++) {
        const float* bcol = b.p + j * b.cs;
        vf acc = vf{};
        int64_t p = 0;
        if (b.rs == 1)
          for (; p + VL <= k; p += VL) acc += *(const vfu*)(arow + p) * *(const vfu*)(bcol + p);
        float s = 0.f;
        for (int v = 0; v < VL; v++) s += acc[v];
        for (; p < k; p++) s += arow[p] * bcol[p * b.rs];
        crow[j] = accumulate ? crow[j] + s : s;
      }
    }
  }
}

// One serial GEMM on an m×n block of C (row stride ldc): C = op(A)·op(B) (+ C when accumulate).
static void gemm_block(View a, View b, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                       bool accumulate) {
  if (m < 4) {
    gemm_skinny(a, b, c, ldc, m, n, k, accumulate);
    return;
  }
  thread_local std::vector<float> abuf, bbuf;
  float* ap = scratch(abuf, size_t(MC) * KC);
  float* bp = scratch(bbuf, size_t(KC) * ((std::min(NC, n) + NR - 1) / NR * NR));
  for (int64_t jc = 0; jc < n; jc += NC) {
    int64_t nc = std::min(NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += KC) {
      int64_t kc = std::min(KC, k - pc);
      bool acc = accumulate || pc > 0;
      pack_b({b.p + pc * b.rs + jc * b.cs, b.rs, b.cs}, kc, nc, bp);
      for (int64_t ic = 0; ic < m; ic += MC) {
        int64_t mc = std::min(MC, m - ic);
        pack_a({a.p + ic * a.rs + pc * a.cs, a.rs, a.cs}, mc, kc, ap);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int nr = int(std::min<int64_t>(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int mr = int(std::min<int64_t>(MR, mc - ir));
            microkernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, acc, mr, nr);
          }
        }
      }
    }
  }
}

void gemm_serial(int64_t m, int64_t n, int64_t k, MatView a, MatView b, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; i++) std::memset(c + i * ldc, 0, sizeof(float) * size_t(n));
    return;
  }
  gemm_block(a, b, c, ldc, m, n, k, accumulate);
}

// Flush-to-zero and denormals-are-zero in this thread's MXCSR for the guard's lifetime. A float
// below 1.2e-38 as an input, or as a product, costs the FMA a microcode assist on Intel cores: a
// 512³ product ran 240 times slower with every A entry denormal, 12 times with one in ten, and
// 110 times when the products underflow (A, B ~1e-20), on an AVX-512 Xeon. Flushing them changes a result only where a term or a sum is below
// that (by less than 1.2e-38 each); products of normal numbers come out bit for bit as before.
// Set inside each chunk, on the pool's threads and the caller alike, and restored at its end:
// JavaScript's arithmetic on the calling thread must keep its denormals.
struct FlushDenormals {
#if defined(__x86_64__)
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

void gemm_own(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A,
              int64_t sA, const float* B, int64_t sB, float* C, float beta) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == 0.f) std::memset(C, 0, sizeof(float) * size_t(batch * m * n));
    return;
  }
  // A weight shared by the whole batch (x[b]·W): one GEMM with batch·m rows packs W only once.
  if (batch > 1 && sB == 0 && !ta && sA == m * k) {
    m *= batch;
    batch = 1;
  }
  bool accumulate = beta != 0.f;
  int64_t rsA = ta ? 1 : k, csA = ta ? m : 1;
  int64_t rsB = tb ? 1 : n, csB = tb ? k : 1;

  // Work units: each GEMM of the batch cut into gm×gn blocks of C. Cutting along n makes every
  // thread pack all of op(A) and cutting along m all of op(B), so cut the dimension that costs less.
  int T = num_threads();
  int64_t tm = (m + MR - 1) / MR, tn = (n + NR - 1) / NR;
  int64_t gm = 1, gn = 1;
  double flops = 2.0 * double(m) * double(n) * double(k);
  if (T > 1 && batch < 2 * T && batch % T != 0 && flops > 2e6) {
    int64_t want = T;  // blocks per GEMM: batch·T units share out evenly
    double best = 1e300;
    for (int64_t g = 1; g <= want; g++) {
      if (want % g || g > tm || want / g > tn) continue;
      double cost = double(m) * double(want / g) + double(n) * double(g);
      if (cost < best) best = cost, gm = g, gn = want / g;
    }
  }
  int64_t units = batch * gm * gn;
  parallel_for(units, int64_t(flops * double(batch) / 8), [&](int64_t u0, int64_t u1) {
    FlushDenormals ftz;
    for (int64_t u = u0; u < u1; u++) {
      int64_t bi = u / (gm * gn), g = u % (gm * gn), gi = g / gn, gj = g % gn;
      // Block edges on multiples of MR/NR so no block gets a ragged tile in its interior.
      int64_t i0 = std::min(m, tm * gi / gm * MR), i1 = std::min(m, tm * (gi + 1) / gm * MR);
      int64_t j0 = std::min(n, tn * gj / gn * NR), j1 = std::min(n, tn * (gj + 1) / gn * NR);
      if (i0 >= i1 || j0 >= j1) continue;
      View a{A + bi * sA + i0 * rsA, rsA, csA};
      View b{B + bi * sB + j0 * csB, rsB, csB};
      gemm_block(a, b, C + bi * m * n + i0 * n + j0, n, i1 - i0, j1 - j0, k, accumulate);
    }
  });
}

#ifdef AMEND_OPENBLAS
void gemm_blas(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A, int64_t sA,
               const float* B, int64_t sB, float* C, float beta) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) return gemm_own(ta, tb, batch, m, n, k, A, sA, B, sB, C, beta);  // lda would be 0
  if (batch > 1 && sB == 0 && !ta && sA == m * k) {
    m *= batch;
    batch = 1;
  }
  for (int64_t bi = 0; bi < batch; bi++)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
                int(k), 1.f, A + bi * sA, ta ? int(m) : int(k), B + bi * sB, tb ? int(k) : int(n), beta,
                C + bi * m * n, std::max(1, int(n)));
}
#endif

namespace {
struct GemmChoice {
  bool blas = false;
  std::string reason;
};

// OpenBLAS unless the own microkernel has wider vectors than the OpenBLAS kernel picked for this
// CPU: OpenBLAS 0.3.21 does not know Zen 5 and runs its AVX2 "Haswell" kernel there (~210
// GFLOP/s on 2 cores) while the own AVX-512 kernel reaches ~300. AMEND_GEMM=own|blas overrides.
GemmChoice choose_gemm() {
  GemmChoice c;
#ifdef AMEND_OPENBLAS
  const char* env = std::getenv("AMEND_GEMM");
  std::string core = openblas_get_corename();
  bool blas_avx512 = core.find("kylake") != std::string::npos || core.find("ooperlake") != std::string::npos ||
                     core.find("apphire") != std::string::npos;
  if (env && std::string(env) == "own") {
    c.reason = "own GEMM (AMEND_GEMM=own)";
  } else if (env && std::string(env) == "blas") {
    c.blas = true;
    c.reason = "OpenBLAS (AMEND_GEMM=blas)";
  } else if (std::string(kIsa) == "avx512f" && !blas_avx512) {
    c.reason = "own GEMM: its avx512 kernel is wider than OpenBLAS's " + core + " kernel (AMEND_GEMM=blas to change)";
  } else {
    c.blas = true;
    c.reason = "OpenBLAS (" + core + " kernel) for large products, own GEMM for batches of small ones";
  }
#else
  c.reason = std::string("own GEMM (") + kIsa + "); built without OpenBLAS";
#endif
  return c;
}

const GemmChoice& gemm_choice() {
  static GemmChoice c = choose_gemm();
  return c;
}
}  // namespace

bool gemm_uses_blas() { return gemm_choice().blas; }
const char* gemm_choice_reason() { return gemm_choice().reason.c_str(); }

void gemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A, int64_t sA,
          const float* B, int64_t sB, float* C, float beta) {
#ifdef AMEND_OPENBLAS
  if (gemm_uses_blas() && k > 0) {
    // OpenBLAS threads each product internally; a batch of small products is better served by
    // the own GEMM, which gives whole products to the threads.
    int64_t mm = (batch > 1 && sB == 0 && !ta && sA == m * k) ? m * batch : m;
    double flops = 2.0 * double(mm) * double(n) * double(k);
    if (!(mm == m && batch >= 2 && flops < 64e6)) {
      gemm_blas(ta, tb, batch, m, n, k, A, sA, B, sB, C, beta);
      return;
    }
  }
#endif
  gemm_own(ta, tb, batch, m, n, k, A, sA, B, sB, C, beta);
}

}  // namespace amend
