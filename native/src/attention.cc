// Rotary embeddings and fused causal attention (forward and backward).
//
// Attention works on one (batch, head, block of query rows) at a time: scores = Q·Kᵀ into a
// block-sized buffer (the caller's probs when it wants them, a per-thread scratch otherwise),
// masked softmax in place, then out = P·V, both products through the serial GEMM, P·V over only
// the keys each query may see. Nothing of size T×S is allocated, and the keys a block of queries
// cannot see (causality) are never touched.
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
          int64_t rot_dim, double theta, bool interleaved, bool inverse) {
  int64_t half = rot_dim / 2, rows = B * T;
  if (rows == 0) return;
  // inv_freq in float32, as Hugging Face stores it; angles and rotations in double from there.
  std::vector<double> inv_freq(size_t(half > 0 ? half : 0));
  for (int64_t i = 0; i < half; i++)
    inv_freq[i] = double(float(1.0 / std::pow(theta, double(float(double(2 * i) / double(rot_dim))))));
  // cos/sin per position. The rows of a batch usually share positions (0..T-1 in every
  // sequence), so a table over the range of positions saves most of the sincos calls.
  int64_t lo = pos[0], hi = pos[0];
  for (int64_t r = 1; r < rows; r++) lo = std::min<int64_t>(lo, pos[r]), hi = std::max<int64_t>(hi, pos[r]);
  bool table = hi - lo + 1 < rows;
  auto angles = [&](int64_t p, double* cs) {
    for (int64_t i = 0; i < half; i++) {
      double s, c;
      sincos(double(p) * inv_freq[i], &s, &c);
      cs[2 * i] = c;
      cs[2 * i + 1] = inverse ? -s : s;
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

static float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

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
    for (int64_t s = 0; s < end; s += kVL) vstore(p + s, vload(p + s) * inv);
  } else {  // a NaN score: the row is NaN, but its masked keys keep probability 0, not 0·NaN
    for (int64_t s = 0; s < end; s += kVL) {
      vf e = vload(p + s);
      vstore(p + s, vselect(e != 0.f, e * inv, vf{}));
    }
  }
  if (end < n) std::memset(p + end, 0, sizeof(float) * size_t(n - end));
}

// 1 + the index of the last nonzero of x[0, n), or 0 when there is none (NaN counts as
// nonzero). Whole vectors first, from the end: past the causal limit a row is all zeros, and
// one element at a time that scan took a quarter of the backward's non-GEMM time.
static int64_t nonzero_end(const float* x, int64_t n) {
  int64_t s = n;
  while (s - kVL >= 0 && !vany(vload(x + s - kVL) != 0.f)) s -= kVL;
  while (s > 0 && x[s - 1] == 0.f) s--;
  return s;
}

// The keys each row of a block of queries uses: row i those below end[i] (its causal limit, or
// its last key of nonzero weight) that lie in one of the `runs` ([start, stop) pairs, ascending),
// the ranges of keys that the block uses at all: padding keys fall in none.
struct UsedKeys {
  std::vector<int64_t> end, runs;
  std::vector<int32_t> any;

  template <class Flag>
  void runs_of(const Flag* used, int64_t n) {
    runs.clear();
    for (int64_t s = 0; s < n;) {
      while (s < n && !used[s]) s++;
      int64_t start = s;
      while (s < n && used[s]) s++;
      if (start < s) runs.push_back(start), runs.push_back(s);
    }
  }

  // From the forward's masks: row i may see the keys below first_lim + i (at most n) whose mask
  // byte (when there is a mask) is set.
  void from_mask(int64_t rows, int64_t first_lim, int64_t n, const uint8_t* mask) {
    if (mask)
      runs_of(mask, n);
    else
      runs.assign({0, n});
    end.resize(size_t(rows));
    for (int64_t i = 0; i < rows; i++) {
      int64_t lim = std::min(n, std::max<int64_t>(0, first_lim + i)), e = 0;
      for (size_t j = 0; j < runs.size() && runs[j] < lim; j += 2) e = std::min(lim, runs[j + 1]);
      end[i] = e;  // a query whose keys are all padding uses none
    }
  }

  // From the backward's probabilities (w: rows × n, row stride ld): the keys of nonzero weight.
  // Returns the largest end.
  int64_t from_weights(const float* w, int64_t ld, int64_t rows, int64_t n) {
    end.resize(size_t(rows));
    int64_t most = 0;
    for (int64_t i = 0; i < rows; i++) most = std::max(most, end[i] = nonzero_end(w + i * ld, n));
    any.assign(size_t(most), 0);
    for (int64_t i = 0; i < rows; i++) {
      const float* wr = w + i * ld;
      int32_t* a = any.data();
      int64_t s = 0;
      for (; s + kVL <= end[i]; s += kVL) {
        vi m;
        std::memcpy(&m, a + s, sizeof m);
        m |= vload(wr + s) != 0.f;
        std::memcpy(a + s, &m, sizeof m);
      }
      for (; s < end[i]; s++) a[s] |= wr[s] != 0.f;
    }
    runs_of(any.data(), most);
    return most;
  }
};

// c[r][0, n) += Σ_{s0 ≤ s < s1} w[r][s]·x[s·ldx + (0, n)] for R rows at once: the rows share
// the loads of x, and their R·U sums, in registers across the keys, are enough independent
// chains of FMAs to keep the FMA units busy.
template <int R>
static void weighted_rows(const float* const* w, const float* x, int64_t ldx, int64_t s0, int64_t s1, int64_t n,
                          float* const* c) {
  constexpr int U = kVL >= 16 ? 4 : 2;  // R·U sums, U loads and a broadcast fit in the registers
  int64_t j = 0;
  for (; j + U * kVL <= n; j += U * kVL) {
    vf acc[R][U];
    for (int r = 0; r < R; r++)
      for (int u = 0; u < U; u++) acc[r][u] = vload(c[r] + j + u * kVL);
    for (int64_t s = s0; s < s1; s++) {
      vf xv[U];
      for (int u = 0; u < U; u++) xv[u] = vload(x + s * ldx + j + u * kVL);
      for (int r = 0; r < R; r++) {
        vf ws = vsplat(w[r][s]);
        for (int u = 0; u < U; u++) acc[r][u] += ws * xv[u];
      }
    }
    for (int r = 0; r < R; r++)
      for (int u = 0; u < U; u++) vstore(c[r] + j + u * kVL, acc[r][u]);
  }
  for (; j + kVL <= n; j += kVL) {
    vf acc[R];
    for (int r = 0; r < R; r++) acc[r] = vload(c[r] + j);
    for (int64_t s = s0; s < s1; s++) {
      vf xv = vload(x + s * ldx + j);
      for (int r = 0; r < R; r++) acc[r] += vsplat(w[r][s]) * xv;
    }
    for (int r = 0; r < R; r++) vstore(c[r] + j, acc[r]);
  }
  for (; j < n; j++)
    for (int r = 0; r < R; r++) {
      float acc = c[r][j];
      for (int64_t s = s0; s < s1; s++) acc += w[r][s] * x[s * ldx + j];
      c[r][j] = acc;
    }
}

// c[i, :] = Σ_s w[i, s]·x[s, :] (w: rows × keys, row stride ldw; x: keys × n, row stride ldx) over
// the keys that row i uses. A key it does not use is left out rather than multiplied by its zero
// weight: the K or V row of a masked key may hold NaN or Inf, and 0·NaN is NaN. The keys all rows
// use (below the smallest end) go through one GEMM, the staircase beyond them (causality) through
// weighted_rows. Leading rows that use no key (left padding) stay out of the GEMM.
static void product_over_used(const UsedKeys& u, int64_t rows, const float* w, int64_t ldw, const float* x,
                              int64_t ldx, int64_t n, float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; i++) std::memset(c + i * ldc, 0, sizeof(float) * size_t(n));
  int64_t r0 = 0;
  while (r0 < rows && u.end[r0] == 0) r0++;
  if (r0 == rows) return;
  auto used_in = [&](int64_t a, int64_t b, auto&& f) {  // f(s0, s1) on each used range in [a, b)
    for (size_t j = 0; j < u.runs.size(); j += 2) {
      int64_t s0 = std::max(a, u.runs[j]), s1 = std::min(b, u.runs[j + 1]);
      if (s0 < s1) f(s0, s1);
    }
  };
  // A GEMM over a few keys costs more in packing than it saves.
  int64_t lo = *std::min_element(u.end.begin() + r0, u.end.begin() + rows);
  if (lo < 16) lo = 0;
  used_in(0, lo, [&](int64_t s0, int64_t s1) {
    gemm_serial(rows - r0, n, s1 - s0, {w + r0 * ldw + s0, ldw, 1}, {x + s0 * ldx, ldx, 1}, c + r0 * ldc, ldc,
                true);
  });
  int64_t hi = *std::max_element(u.end.begin() + r0, u.end.begin() + rows);
  if (hi <= lo) return;
  // The staircase reads each row of x once per group of rows of c: a contiguous copy stays in L1.
  thread_local std::vector<float> xbuf;
  float* xc = scratch(xbuf, size_t((hi - lo) * n));  // key s at row s - lo, as w[.] + lo below
  for (int64_t s = lo; s < hi; s++) std::memcpy(xc + (s - lo) * n, x + s * ldx, sizeof(float) * size_t(n));
  constexpr int R = 4;
  for (int64_t i = r0; i < rows; i += R) {
    int64_t g = std::min<int64_t>(R, rows - i);
    const float* wr[R];
    float* cr[R];
    for (int r = 0; r < g; r++) wr[r] = w + (i + r) * ldw + lo, cr[r] = c + (i + r) * ldc;
    int64_t common = lo;
    if (g == R) {
      common = std::max(lo, *std::min_element(u.end.begin() + i, u.end.begin() + i + R));
      used_in(lo, common, [&](int64_t s0, int64_t s1) { weighted_rows<R>(wr, xc, n, s0 - lo, s1 - lo, n, cr); });
    }
    for (int r = 0; r < g; r++)
      used_in(common, u.end[i + r],
              [&](int64_t s0, int64_t s1) { weighted_rows<1>(wr + r, xc, n, s0 - lo, s1 - lo, n, cr + r); });
  }
}

void attention(const float* q, const float* k, const float* v, float* out, float* probs, int64_t B, int64_t T,
               int64_t S, int64_t H, int64_t KVH, int64_t D, float scale, const uint8_t* key_mask,
               int64_t q_offset) {
  int64_t group = H / KVH, nqb = (T + kQueryBlock - 1) / kQueryBlock;
  parallel_for(B * H * nqb, B * H * T * S * D / 4, [&](int64_t u0, int64_t u1) {
    thread_local std::vector<float> buf;
    thread_local std::vector<uint8_t> mbuf;
    thread_local UsedKeys used;
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
      // out = P·V (a row of zeros for a query that sees no key).
      used.from_mask(rows, q_offset + t0 + 1, smax, mask);
      product_over_used(used, rows, p, ldp, vb, KVH * D, D, ob, H * D);
    }
  });
}

// Σ a[s]·b[s] in double (the products are exact) over the s where a[s] is not 0: there b may
// be NaN (dP of a masked key whose V row is NaN). In two register-wide double accumulators:
// one sequential sum is a 4-cycle add per element, and GCC keeps a vd (two registers) on the
// stack.
static double dot_double(const float* a, const float* b, int64_t n) {
  constexpr int H = kVL / 2;
  typedef float vfh __attribute__((vector_size(H * 4)));
  typedef double vdh __attribute__((vector_size(H * 8)));
  auto wide = [](const float* p) {
    vfh v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, vdh);
  };
  auto term = [&](int64_t s) {
    vdh x = wide(a + s);
    return x * (x != 0 ? wide(b + s) : vdh{});
  };
  vdh acc0 = vdh{}, acc1 = vdh{};
  int64_t s = 0;
  for (; s + kVL <= n; s += kVL) {
    acc0 += term(s);
    acc1 += term(s + H);
  }
  acc0 += acc1;
  double dot = 0;
  for (int l = 0; l < H; l++) dot += acc0[l];
  for (; s < n; s++) dot += a[s] != 0.f ? double(a[s]) * double(b[s]) : 0.0;
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
    thread_local UsedKeys used;
    for (int64_t u = u0; u < u1; u++) {
      int64_t b = u / KVH, kvh = u % KVH;
      int64_t kvoff = (b * S * KVH + kvh) * D, ld = KVH * D;
      for (int64_t s = 0; s < S; s++) {
        std::memset(gk + kvoff + s * ld, 0, sizeof(float) * size_t(D));
        std::memset(gv + kvoff + s * ld, 0, sizeof(float) * size_t(D));
      }
      for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int64_t t0 = 0; t0 < T; t0 += kQueryBlock) {
          int64_t rows = std::min(kQueryBlock, T - t0);
          const float* p = probs + ((b * H + h) * T + t0) * S;
          int64_t qoff = ((b * T + t0) * H + h) * D;
          // Keys no query of the block attended to (zero probability) contribute nothing.
          int64_t smax = used.from_weights(p, S, rows, S);
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
            float fdot = float(dot_double(pr, dr, smax));
            // A local copy of scale: read through the lambda's reference, which dr might alias,
            // it is reloaded for every element and the loop stays scalar.
            const float sc = scale;
            for (int64_t s = 0; s < smax; s++) dr[s] = pr[s] == 0.f ? 0.f : pr[s] * (dr[s] - fdot) * sc;
          }
          // gq = dS·K ; gk += dSᵀ·Q ; gv += Pᵀ·dOut
          product_over_used(used, rows, ds, smax, k + kvoff, ld, D, gq + qoff, H * D);
          gemm_serial(smax, D, rows, {ds, 1, smax}, {q + qoff, H * D, 1}, gk + kvoff, ld, true);
          gemm_serial(smax, D, rows, {p, 1, S}, {gout + qoff, H * D, 1}, gv + kvoff, ld, true);
        }
      }
    }
  });
}

}  // namespace amend
