// Rotary embeddings and fused causal attention (forward and backward).
//
// Attention works on one (batch, head, block of query rows) at a time: scores = Q·Kᵀ into a
// block-sized buffer (the caller's probs when it wants them, a per-thread scratch otherwise),
// masked softmax in place, then out = P·V, both products through the serial GEMM. Nothing of
// size T×S is allocated, and the keys a block of queries cannot see (causality) are never touched.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "kernels.h"
#include "parallel.h"
#include "simd.h"

namespace amend {

// ---- rope ------------------------------------------------------------------------------------

void rope(const float* x, float* out, const int32_t* pos, int64_t B, int64_t T, int64_t H, int64_t D,
          int64_t rot_dim, const float* inv_freq_f32, double scale, bool interleaved, bool inverse) {
  int64_t half = rot_dim / 2, rows = B * T;
  if (rows == 0) return;
  // inv_freq in float32, as Hugging Face stores it (the model computes it, scaled or not);
  // angles and rotations in double from there.
  std::vector<double> inv_freq(size_t(half > 0 ? half : 0));
  for (int64_t i = 0; i < half; i++) inv_freq[i] = double(inv_freq_f32[i]);
  // cos/sin per position. The rows of a batch usually share positions (0..T-1 in every
  // sequence), so a table over the range of positions saves most of the sincos calls.
  int64_t lo = pos[0], hi = pos[0];
  for (int64_t r = 1; r < rows; r++) lo = std::min<int64_t>(lo, pos[r]), hi = std::max<int64_t>(hi, pos[r]);
  bool table = hi - lo + 1 < rows;
  auto angles = [&](int64_t p, double* cs) {
    for (int64_t i = 0; i < half; i++) {
      double s, c;
      sincos(double(p) * inv_freq[i], &s, &c);
      cs[2 * i] = c * scale;
      cs[2 * i + 1] = (inverse ? -s : s) * scale;
    }
  };
  std::vector<double> tab(table ? size_t((hi - lo + 1) * 2 * half) : 0);
  if (table)
    parallel_for(hi - lo + 1, (hi - lo + 1) * half * 16, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; p++) angles(lo + p, tab.data() + p * 2 * half);
    });
  parallel_for(rows, rows * H * D * 4, [&](int64_t r0, int64_t r1) {
    std::vector<double> own(table ? 0 : size_t(2 * half));
    for (int64_t bt = r0; bt < r1; bt++) {
      const double* cs = table ? tab.data() + (pos[bt] - lo) * 2 * half : own.data();
      if (!table) angles(pos[bt], own.data());
      for (int64_t h = 0; h < H; h++) {
        const float* xi = x + (bt * H + h) * D;
        float* o = out + (bt * H + h) * D;
        if (o != xi)
          for (int64_t d = rot_dim; d < D; d++) o[d] = xi[d];
        for (int64_t i = 0; i < half; i++) {
          int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
          double a = xi[i1], b = xi[i2], c = cs[2 * i], s = cs[2 * i + 1];
          o[i1] = float(a * c - b * s);
          o[i2] = float(b * c + a * s);
        }
      }
    }
  });
}

// ---- attention -------------------------------------------------------------------------------

constexpr int64_t kQueryBlock = 64;

// Masked, scaled softmax of one score row in place. The row is padded to a multiple of kVL
// (n), so every step is a full vector: keys s ≥ lim, keys whose mask byte is 0 and the padding
// get probability 0 (even in a row that a NaN score makes NaN); a row with nothing left becomes
// all zeros.
static void masked_softmax_row(float* p, int64_t n, int64_t lim, const uint8_t* mask, float scale) {
  typedef uint8_t vu8 __attribute__((vector_size(kVL)));
  const vf ninf = vsplat(-INFINITY);
  vi lane;
  for (int l = 0; l < kVL; l++) lane[l] = l;
  int64_t end = (lim + kVL - 1) / kVL * kVL;  // vectors past this one are all masked
  vf vmx = ninf;
  for (int64_t s = 0; s < end; s += kVL) {
    vi valid = lane + int32_t(s) < int32_t(lim);
    if (mask) {
      vu8 m;
      std::memcpy(&m, mask + s, sizeof m);
      valid &= __builtin_convertvector(m, vi) != 0;
    }
    vf v = vselect(valid, vload(p + s) * scale, ninf);
    vstore(p + s, v);
    vmx = vselect(v > vmx, v, vmx);  // a NaN score is skipped here and poisons the sum below
  }
  float mx = -INFINITY;
  for (int l = 0; l < kVL; l++) mx = std::max(mx, vmx[l]);
  if (mx == -INFINITY) {
    std::memset(p, 0, sizeof(float) * size_t(n));
    return;
  }
  vf vsum = vf{};
  for (int64_t s = 0; s < end; s += kVL) {
    vf e = vexp(vload(p + s) - mx);
    vstore(p + s, e);
    vsum += e;
  }
  float inv = float(1.0 / double(hsum(vsum)));
  if (!std::isnan(inv)) {
    for (int64_t s = 0; s < end; s += kVL) vstore(p + s, vload(p + s) * vsplat(inv));
  } else {  // a NaN score: the row is NaN, but its masked keys keep probability 0, not 0·NaN
    for (int64_t s = 0; s < end; s += kVL) {
      vf e = vload(p + s);
      vstore(p + s, vselect(e != 0.f, e * inv, vf{}));
    }
  }
  if (end < n) std::memset(p + end, 0, sizeof(float) * size_t(n - end));
}

// Whether the rows s < n of x (n × d, row stride ld) for which pick(s) holds are all finite.
template <class Pick>
static bool rows_finite(const float* x, int64_t ld, int64_t d, int64_t n, Pick&& pick) {
  for (int64_t s = 0; s < n; s++) {
    if (!pick(s)) continue;
    // x·0 is 0 for a finite x, NaN for NaN and ±Inf; in vector lanes, so that the sums are not
    // one chain of dependent adds (a first version with one chain cost the forward a fifth)
    const float* row = x + s * ld;
    vf z = vf{};
    int64_t j = 0;
    for (; j + kVL <= d; j += kVL) z += vload(row + j) * 0.f;
    if (j < d) z += vload_part(row + j, d - j, 0.f) * 0.f;
    if (vany(z != 0.f)) return false;
  }
  return true;
}

// c[i, :] = Σ over the s with w[i, s] ≠ 0 of w[i, s]·x[s, :]: P·V (or dS·K) without the keys of
// zero weight, whose rows may hold NaN or Inf. Only for such inputs; the GEMM does the rest.
static void product_skipping_zeros(int64_t rows, int64_t n, int64_t keys, const float* w, int64_t ldw, const float* x,
                                   int64_t ldx, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; i++) {
    float* ci = c + i * ldc;
    std::memset(ci, 0, sizeof(float) * size_t(n));
    for (int64_t s = 0; s < keys; s++) {
      float ws = w[i * ldw + s];
      if (ws == 0.f) continue;
      for (int64_t j = 0; j < n; j++) ci[j] += ws * x[s * ldx + j];
    }
  }
}

// c[s, :] += Σ over the i with p[i, s] ≠ 0 of w[i, s]·x[i, :]: dSᵀ·Q or Pᵀ·dOut without the
// queries that gave key s no weight, whose Q or dOut rows may hold NaN or Inf (a query that sees
// no key at all, say). Only for such inputs; the GEMM does the rest.
static void product_t_over_attended(int64_t keys, int64_t n, int64_t rows, const float* w, int64_t ldw,
                                    const float* p, int64_t ldp, const float* x, int64_t ldx, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; i++) {
    const float* xi = x + i * ldx;
    for (int64_t s = 0; s < keys; s++) {
      if (p[i * ldp + s] == 0.f) continue;
      float ws = w[i * ldw + s];
      float* cs = c + s * ldc;
      for (int64_t j = 0; j < n; j++) cs[j] += ws * xi[j];
    }
  }
}

void attention(const float* q, const float* k, const float* v, float* out, float* probs, int64_t B, int64_t T,
               int64_t S, int64_t H, int64_t KVH, int64_t D, float scale, const uint8_t* key_mask,
               int64_t q_offset) {
  int64_t group = H / KVH, nqb = (T + kQueryBlock - 1) / kQueryBlock;
  parallel_for(B * H * nqb, B * H * T * S * D / 4, [&](int64_t u0, int64_t u1) {
    thread_local std::vector<float> buf;
    thread_local std::vector<uint8_t> mbuf;
    for (int64_t u = u0; u < u1; u++) {
      int64_t b = u / (H * nqb), h = (u / nqb) % H, t0 = (u % nqb) * kQueryBlock;
      int64_t rows = std::min(kQueryBlock, T - t0), kvh = h / group;
      // Keys past q_offset + t0 + rows - 1 are in every row's future.
      int64_t smax = std::min(S, std::max<int64_t>(0, q_offset + t0 + rows));
      int64_t ldp = std::max<int64_t>(kVL, (smax + kVL - 1) / kVL * kVL);
      float* p = scratch(buf, size_t(rows * ldp));
      const float* qb = q + ((b * T + t0) * H + h) * D;
      float* ob = out + ((b * T + t0) * H + h) * D;
      const float* kb = k + (b * S * KVH + kvh) * D;
      const float* vb = v + (b * S * KVH + kvh) * D;
      const uint8_t* mask = nullptr;
      if (key_mask) {  // a copy padded to ldp, so that whole vectors of it can be read
        if (mbuf.size() < size_t(ldp)) mbuf.resize(size_t(ldp));
        std::memcpy(mbuf.data(), key_mask + b * S, size_t(smax));
        std::memset(mbuf.data() + smax, 0, size_t(ldp - smax));
        mask = mbuf.data();
      }

      // scores = Q·Kᵀ: op(B)[d, s] = K[s, d], at kb[s·KVH·D + d].
      gemm_serial(rows, smax, D, {qb, H * D, 1}, {kb, 1, KVH * D}, p, ldp, false);
      for (int64_t i = 0; i < rows; i++) {
        int64_t lim = std::min(smax, std::max<int64_t>(0, q_offset + t0 + i + 1));
        masked_softmax_row(p + i * ldp, ldp, lim, mask, scale);
      }
      if (probs) {
        float* prow = probs + ((b * H + h) * T + t0) * S;
        for (int64_t i = 0; i < rows; i++) {
          std::memcpy(prow + i * S, p + i * ldp, sizeof(float) * size_t(smax));
          std::memset(prow + i * S + smax, 0, sizeof(float) * size_t(S - smax));
        }
      }
      // out = P·V (a row of zeros for a query that sees no key). The GEMM multiplies a masked
      // key's V row by its zero weight, and 0·NaN is NaN: where such a row is not finite, the
      // zero-weight keys are left out instead (the GEMM's rounding is kept otherwise, since the
      // demo world's weights are reproduced bit for bit).
      if (rows_finite(vb, KVH * D, D, smax, [&](int64_t s) { return s >= q_offset + t0 + 1 || (mask && !mask[s]); }))
        gemm_serial(rows, D, smax, {p, ldp, 1}, {vb, KVH * D, 1}, ob, H * D, false);
      else
        product_skipping_zeros(rows, D, smax, p, ldp, vb, KVH * D, ob, H * D);
    }
  });
}

// 1 + the index of the last nonzero of x[lo, n), or lo when there is none (NaN counts as
// nonzero). Whole vectors first, from the end: past the causal limit a row is all zeros, and
// one element at a time that scan took a quarter of the backward's non-GEMM time.
static int64_t nonzero_end(const float* x, int64_t lo, int64_t n) {
  int64_t s = n;
  while (s - kVL >= lo && !vany(vload(x + s - kVL) != 0.f)) s -= kVL;
  while (s > lo && x[s - 1] == 0.f) s--;
  return s;
}

// Σ a[s]·b[s] in double (the products are exact). In two register-wide double accumulators:
// one sequential sum is a 4-cycle add per element, and GCC keeps a vd (two registers) on the
// stack.
static double dot_double(const float* a, const float* b, int64_t n) {
  constexpr int H = kVLH;
  vdh acc0 = vdh{}, acc1 = vdh{};
  int64_t s = 0;
  for (; s + kVL <= n; s += kVL) {
    acc0 += vwiden_half(a + s) * vwiden_half(b + s);
    acc1 += vwiden_half(a + s + H) * vwiden_half(b + s + H);
  }
  acc0 += acc1;
  double dot = 0;
  for (int l = 0; l < H; l++) dot += acc0[l];
  for (; s < n; s++) dot += double(a[s]) * double(b[s]);
  return dot;
}

// Σ a[s]·b[s] in double over the s where a[s] ≠ 0 (b may be NaN there: dP of a masked key).
static double dot_over_nonzero(const float* a, const float* b, int64_t n) {
  double dot = 0;
  for (int64_t s = 0; s < n; s++)
    if (a[s] != 0.f) dot += double(a[s]) * double(b[s]);
  return dot;
}

void attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* gout,
                        float* gq, float* gk, float* gv, int64_t B, int64_t T, int64_t S, int64_t H, int64_t KVH,
                        int64_t D, float scale) {
  int64_t group = H / KVH;
  // One unit per (batch, kv head): the heads sharing a kv head all add into the same rows of gk
  // and gv, so they stay on one thread.
  parallel_for(B * KVH, B * H * T * S * D, [&](int64_t u0, int64_t u1) {
    thread_local std::vector<float> buf;
    for (int64_t u = u0; u < u1; u++) {
      int64_t b = u / KVH, kvh = u % KVH;
      int64_t kvoff = (b * S * KVH + kvh) * D, ld = KVH * D;
      for (int64_t s = 0; s < S; s++) {
        std::memset(gk + kvoff + s * ld, 0, sizeof(float) * size_t(D));
        std::memset(gv + kvoff + s * ld, 0, sizeof(float) * size_t(D));
      }
      // K or V rows that are not finite (a masked key's, say) must not reach, through a zero
      // weight, the queries that gave them none: the slow paths below leave them out. Checked
      // once for all the heads and query blocks that share these rows.
      bool finite = rows_finite(k + kvoff, ld, D, S, [](int64_t) { return true; }) &&
                    rows_finite(v + kvoff, ld, D, S, [](int64_t) { return true; });
      for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int64_t t0 = 0; t0 < T; t0 += kQueryBlock) {
          int64_t rows = std::min(kQueryBlock, T - t0);
          const float* p = probs + ((b * H + h) * T + t0) * S;
          int64_t qoff = ((b * T + t0) * H + h) * D;
          // Keys no query of the block attended to (zero probability) contribute nothing.
          int64_t smax = 0;
          for (int64_t i = 0; i < rows; i++) smax = nonzero_end(p + i * S, smax, S);
          if (smax == 0) {
            for (int64_t i = 0; i < rows; i++) std::memset(gq + qoff + i * H * D, 0, sizeof(float) * size_t(D));
            continue;
          }
          float* ds = scratch(buf, size_t(rows * smax));
          // dP = dOut·Vᵀ, then dS = P ∘ (dP - Σ_s P·dP) · scale, in place.
          gemm_serial(rows, smax, D, {gout + qoff, H * D, 1}, {v + kvoff, 1, ld}, ds, smax, false);
          for (int64_t i = 0; i < rows; i++) {
            const float* pr = p + i * S;
            float* dr = ds + i * smax;
            float fdot = float(finite ? dot_double(pr, dr, smax) : dot_over_nonzero(pr, dr, smax));
            // A local copy of scale: read through the lambda's reference, which dr might alias,
            // it is reloaded for every element and the loop stays scalar.
            const float sc = scale;
            for (int64_t s = 0; s < smax; s++) dr[s] = pr[s] == 0.f ? 0.f : pr[s] * (dr[s] - fdot) * sc;
          }
          // gq = dS·K ; gk += dSᵀ·Q ; gv += Pᵀ·dOut
          if (finite)
            gemm_serial(rows, D, smax, {ds, smax, 1}, {k + kvoff, ld, 1}, gq + qoff, H * D, false);
          else
            product_skipping_zeros(rows, D, smax, ds, smax, k + kvoff, ld, gq + qoff, H * D);
          // Likewise a query's Q or dOut row that is not finite must not reach, through a zero
          // weight, the keys it did not attend (it may attend none: a padding query).
          auto all = [](int64_t) { return true; };
          if (rows_finite(q + qoff, H * D, D, rows, all))
            gemm_serial(smax, D, rows, {ds, 1, smax}, {q + qoff, H * D, 1}, gk + kvoff, ld, true);
          else
            product_t_over_attended(smax, D, rows, ds, smax, p, S, q + qoff, H * D, gk + kvoff, ld);
          if (rows_finite(gout + qoff, H * D, D, rows, all))
            gemm_serial(smax, D, rows, {p, 1, S}, {gout + qoff, H * D, 1}, gv + kvoff, ld, true);
          else
            product_t_over_attended(smax, D, rows, p, S, p, S, gout + qoff, H * D, gv + kvoff, ld);
        }
      }
    }
  });
}

}  // namespace amend
