// Elementwise maps, reductions, strided copies and row gathers.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "rows.h"
#include "simd.h"

namespace amend {

// ---- strided index spaces --------------------------------------------------------------------

// A shape with up to three stride vectors, simplified so that the innermost dimension is as long
// as possible: size-1 dimensions dropped, and a dimension merged into the next inner one when
// every operand is contiguous across the pair. Most broadcasts end up rank 1 or 2.
struct Layout {
  int rank = 0;
  int64_t shape[kMaxRank];
  int64_t st[3][kMaxRank];
  int64_t total = 1;
};

static Layout simplify(const int32_t* shape, int rank, const int32_t* const* strides, int nops) {
  Layout l;
  for (int d = 0; d < rank; d++) l.total *= shape[d];
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    int r = l.rank;
    l.shape[r] = shape[d];
    for (int o = 0; o < nops; o++) l.st[o][r] = strides[o][d];
    l.rank++;
  }
  // Merge from the inside out: dim r-1 absorbs dim r when st[r-1] == st[r]·shape[r] for all operands.
  int w = 0;
  for (int r = 0; r < l.rank; r++) {
    bool merge = w > 0;
    for (int o = 0; o < nops && merge; o++) merge = l.st[o][w - 1] == l.st[o][r] * l.shape[r];
    if (merge) {
      l.shape[w - 1] *= l.shape[r];
      for (int o = 0; o < nops; o++) l.st[o][w - 1] = l.st[o][r];
    } else {
      l.shape[w] = l.shape[r];
      for (int o = 0; o < nops; o++) l.st[o][w] = l.st[o][r];
      w++;
    }
  }
  l.rank = w;
  if (l.rank == 0 && l.total > 0) {  // a single element
    l.rank = 1;
    l.shape[0] = 1;
    for (int o = 0; o < nops; o++) l.st[o][0] = 0;
  }
  return l;
}

// Offsets of operand o at the start of outer row `row` (all dims but the innermost).
static inline int64_t row_offset(const Layout& l, int o, int64_t row) {
  int64_t off = 0;
  for (int d = l.rank - 2; d >= 0; d--) {
    int64_t i = row % l.shape[d];
    row /= l.shape[d];
    off += i * l.st[o][d];
  }
  return off;
}

// Runs f(row, j0, j1) over the outer rows × blocks of the innermost dimension, in parallel.
// Long inner dimensions are cut into blocks so that a rank-1 problem still uses every thread.
template <class F>
static void for_each_row_block(const Layout& l, F&& f) {
  int64_t inner = l.shape[l.rank - 1], rows = l.total / inner;
  int64_t block = inner;
  int T = num_threads();
  if (rows < 2 * T && inner > 8192) block = std::max<int64_t>(4096, (inner + 2 * T - 1) / (2 * T));
  int64_t nb = (inner + block - 1) / block;
  parallel_for(rows * nb, l.total, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      int64_t row = u / nb, j0 = (u % nb) * block;
      f(row, j0, std::min(inner, j0 + block));
    }
  });
}

// ---- binary ----------------------------------------------------------------------------------

// Math.pow, which differs from C's pow in two corners: 1^NaN and (±1)^±∞ are NaN in JS.
static inline float js_pow(float a, float b) {
  if (b != b || (std::fabs(a) == 1.f && std::isinf(b))) return NAN;
  return float(std::pow(double(a), double(b)));
}

template <int OP>
static inline float binop(float a, float b) {
  if (OP == kAdd) return a + b;
  if (OP == kSub) return a - b;
  if (OP == kMul) return a * b;
  if (OP == kDiv) return a / b;
  if (OP == kMax) return a > b || a != a ? a : b;  // NaN on either side propagates
  if (OP == kMin) return a < b || a != a ? a : b;
  return js_pow(a, b);
}

template <int OP>
static void binary_t(const float* a, const float* b, float* out, const Layout& l) {
  int64_t inner = l.shape[l.rank - 1], ia = l.st[0][l.rank - 1], ib = l.st[1][l.rank - 1];
  for_each_row_block(l, [&](int64_t row, int64_t j0, int64_t j1) {
    const float* pa = a + row_offset(l, 0, row) + j0 * ia;
    const float* pb = b + row_offset(l, 1, row) + j0 * ib;
    float* __restrict po = out + row * inner + j0;
    int64_t n = j1 - j0;
    // The common layouts get loops the compiler can vectorise.
    if (ia == 1 && ib == 1) {
      for (int64_t j = 0; j < n; j++) po[j] = binop<OP>(pa[j], pb[j]);
    } else if (ia == 1 && ib == 0) {
      float s = *pb;
      for (int64_t j = 0; j < n; j++) po[j] = binop<OP>(pa[j], s);
    } else if (ia == 0 && ib == 1) {
      float s = *pa;
      for (int64_t j = 0; j < n; j++) po[j] = binop<OP>(s, pb[j]);
    } else {
      for (int64_t j = 0; j < n; j++) po[j] = binop<OP>(pa[j * ia], pb[j * ib]);
    }
  });
}

void binary(int op, const float* a, const int32_t* sa, const float* b, const int32_t* sb, float* out,
            const int32_t* shape, int rank) {
  // The output is contiguous: its strides join the simplification as a third operand.
  int32_t so[kMaxRank];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) so[d] = int32_t(s), s *= shape[d];
  const int32_t* strides[3] = {sa, sb, so};
  Layout l = simplify(shape, rank, strides, 3);
  if (l.total == 0) return;
  switch (op) {
    case kAdd: return binary_t<kAdd>(a, b, out, l);
    case kSub: return binary_t<kSub>(a, b, out, l);
    case kMul: return binary_t<kMul>(a, b, out, l);
    case kDiv: return binary_t<kDiv>(a, b, out, l);
    case kMax: return binary_t<kMax>(a, b, out, l);
    case kMin: return binary_t<kMin>(a, b, out, l);
    case kPow: return binary_t<kPow>(a, b, out, l);
  }
}

// ---- unary -----------------------------------------------------------------------------------

// Compiles to one vsqrtps with -fno-math-errno (binding.gyp).
static inline vf vsqrt(vf x) {
  for (int i = 0; i < kVL; i++) x[i] = __builtin_sqrtf(x[i]);
  return x;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

template <int OP>
static inline vf unop(vf x) {
  switch (OP) {
    case kNeg: return -x;
    case kExp: return vexp(x);
    case kLog: {
      for (int i = 0; i < kVL; i++) x[i] = std::log(x[i]);
      return x;
    }
    case kSqrt: return vsqrt(x);
    case kRsqrt: return 1.f / vsqrt(x);
    case kTanh: return vtanh(x);
    case kSigmoid: return vsigmoid(x);
    case kRelu: return vselect(x > 0.f, x, vf{});
    // 0.5·x·(1 + tanh(u)) = x·sigmoid(2u): the same function without the cancellation of 1 + tanh.
    case kGeluTanh: return x * vsigmoid(2.f * kSqrt2OverPi * (x + kGeluC * x * x * x));
    case kGeluErf: return x * vnormcdf(x);
    case kSilu: return x * vsigmoid(x);
    case kAbs: return vabs(x);
    case kSquare: return x * x;
    default: return 1.f / x;  // kRecip
  }
}

// d op / dx from the input x and output y.
template <int OP>
static inline vf unop_grad(vf x, vf y) {
  switch (OP) {
    case kNeg: return vsplat(-1.f);
    case kExp: return y;
    case kLog: return 1.f / x;
    case kSqrt: return 0.5f / y;
    case kRsqrt: return -0.5f * y * y * y;
    case kTanh: return (1.f - y) * (1.f + y);  // 1 - y is exact near |y| = 1, where 1 - y·y cancels
    case kSigmoid: return y * (1.f - y);
    case kRelu: return vselect(x > 0.f, vsplat(1.f), vf{});
    case kGeluTanh: {
      // d/dx [x·s] = s + 2x·s(1-s)·du/dx with s = sigmoid(2u). 1 - s is formed as 1/(1 + 1/e)
      // rather than by subtraction: exact where s ≈ 1, and 0 (not inf·0) where e overflows.
      vf u = kSqrt2OverPi * (x + kGeluC * x * x * x);
      vf e = vexp(-2.f * u);
      vf s = 1.f / (1.f + e), sm = 1.f / (1.f + 1.f / e);
      vf du = kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
      // Saturated (|x| beyond ~10, ±inf included): s·(1 - s) is 0 and the derivative is s, 0 or
      // 1; du is infinite from |x| ~ 1.8e19 on (x² overflows), and 0·inf would give NaN.
      vf ssm = s * sm;
      return vselect(ssm == 0.f, s, s + 2.f * x * ssm * du);
    }
    case kGeluErf: {
      // pdf 0 (|x| beyond ~13, ±inf included): the derivative is the cdf, 0 or 1; x·pdf is inf·0 at ±inf
      vf pdf = vexp(-0.5f * x * x), cdf = vnormcdf(x);
      return vselect(pdf == 0.f, cdf, cdf + x * kInvSqrt2Pi * pdf);
    }
    case kSilu: {
      vf e = vexp(-x);
      vf s = 1.f / (1.f + e), sm = 1.f / (1.f + 1.f / e);  // sm = 1 - s, as for GeluTanh
      // Saturated (s·sm 0, ±inf included): the derivative is s, 0 or 1, where x·sm would be inf·0.
      vf ssm = s * sm;
      return vselect(ssm == 0.f, s, s * (1.f + x * sm));
    }
    case kAbs: return vselect(x > 0.f, vsplat(1.f), vselect(x < 0.f, vsplat(-1.f), vf{}));
    case kSquare: return 2.f * x;
    default: return -y * y;  // kRecip
  }
}

template <int OP>
static void unary_t(const float* x, float* out, int64_t n) {
  parallel_for((n + kVL - 1) / kVL, n * 8, [&](int64_t v0, int64_t v1) {
    int64_t i0 = v0 * kVL, i1 = std::min(n, v1 * kVL), i = i0;
    for (; i + kVL <= i1; i += kVL) vstore(out + i, unop<OP>(vload(x + i)));
    if (i < i1) vstore_part(out + i, unop<OP>(vload_part(x + i, i1 - i, 0.f)), i1 - i);
  });
}

template <int OP>
static void unary_backward_t(const float* x, const float* y, const float* gy, float* gx, int64_t n) {
  parallel_for((n + kVL - 1) / kVL, n * 8, [&](int64_t v0, int64_t v1) {
    int64_t i0 = v0 * kVL, i1 = std::min(n, v1 * kVL), i = i0;
    for (; i + kVL <= i1; i += kVL) vstore(gx + i, vload(gy + i) * unop_grad<OP>(vload(x + i), vload(y + i)));
    if (i < i1) {
      int64_t r = i1 - i;
      vf g = vload_part(gy + i, r, 0.f) * unop_grad<OP>(vload_part(x + i, r, 1.f), vload_part(y + i, r, 1.f));
      vstore_part(gx + i, g, r);
    }
  });
}

#define AMEND_UNARY_CASES(F, ...)                \
  switch (op) {                                  \
    case kNeg: return F<kNeg>(__VA_ARGS__);      \
    case kExp: return F<kExp>(__VA_ARGS__);      \
    case kLog: return F<kLog>(__VA_ARGS__);      \
    case kSqrt: return F<kSqrt>(__VA_ARGS__);    \
    case kRsqrt: return F<kRsqrt>(__VA_ARGS__);  \
    case kTanh: return F<kTanh>(__VA_ARGS__);    \
    case kSigmoid: return F<kSigmoid>(__VA_ARGS__); \
    case kRelu: return F<kRelu>(__VA_ARGS__);    \
    case kGeluTanh: return F<kGeluTanh>(__VA_ARGS__); \
    case kGeluErf: return F<kGeluErf>(__VA_ARGS__); \
    case kSilu: return F<kSilu>(__VA_ARGS__);    \
    case kAbs: return F<kAbs>(__VA_ARGS__);      \
    case kSquare: return F<kSquare>(__VA_ARGS__); \
    case kRecip: return F<kRecip>(__VA_ARGS__);  \
  }

void unary(int op, const float* x, float* out, int64_t n) { AMEND_UNARY_CASES(unary_t, x, out, n) }

void unary_backward(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n) {
  AMEND_UNARY_CASES(unary_backward_t, x, y, gy, gx, n)
}

void affine(const float* x, float* out, int64_t n, float scale, float shift) {
  parallel_for(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) out[i] = x[i] * scale + shift;
  });
}

// ---- reductions ------------------------------------------------------------------------------

// Index of the first element of x[0..n) that is m (n ≥ 1, m one of them; a NaN m finds the
// first NaN): with row_max, the argmax, ties and NaN as in the reference.
static int64_t first_index_of(const float* x, int64_t n, float m) {
  bool nan = m != m;
  int64_t i = 0;
  for (; i + kVL <= n; i += kVL) {
    vf v = vload(x + i);
    if (vany(nan ? v != v : v == m)) break;
  }
  for (; i < n; i++)
    if (nan ? x[i] != x[i] : x[i] == m) return i;
  return 0;  // not reached
}

void reduce(int kind, const float* x, float* out, int64_t outer, int64_t dim, int64_t inner, int32_t* argmax) {
  int64_t nout = outer * inner;
  if (nout == 0) return;
  if (dim == 0) {
    for (int64_t i = 0; i < nout; i++) {
      out[i] = kind == 0 ? 0.f : -INFINITY;
      if (kind == 1 && argmax) argmax[i] = 0;
    }
    return;
  }
  if (inner == 1) {
    parallel_for(outer, outer * dim, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        const float* row = x + o * dim;
        if (kind == 0) {
          out[o] = float(row_sum(dim, [&](int64_t i, int64_t len) { return load_n(row + i, len); }));
        } else {
          int64_t at = first_index_of(row, dim, row_max(row, dim));
          out[o] = row[at];  // the first maximal element (of ±0, the sign of that one)
          if (argmax) argmax[o] = int32_t(at);
        }
      }
    });
    return;
  }
  // Reduce the middle axis of [outer, dim, inner] a block of the inner axis at a time: each step
  // along dim is then a contiguous vector operation.
  constexpr int64_t IB = 512;
  int64_t nb = (inner + IB - 1) / IB;
  parallel_for(outer * nb, outer * dim * inner, [&](int64_t u0, int64_t u1) {
    double acc[IB];
    float best[IB];
    int32_t at[IB];
    for (int64_t u = u0; u < u1; u++) {
      int64_t o = u / nb, j0 = (u % nb) * IB, len = std::min(IB, inner - j0);
      const float* base = x + o * dim * inner + j0;
      if (kind == 0) {
        for (int64_t j = 0; j < len; j++) acc[j] = 0;
        for (int64_t d = 0; d < dim; d++) {
          const float* r = base + d * inner;
          for (int64_t j = 0; j < len; j++) acc[j] += r[j];
        }
        for (int64_t j = 0; j < len; j++) out[o * inner + j0 + j] = float(acc[j]);
      } else {
        for (int64_t j = 0; j < len; j++) best[j] = base[j], at[j] = 0;
        for (int64_t d = 1; d < dim; d++) {
          const float* r = base + d * inner;
          for (int64_t j = 0; j < len; j++) {
            // the first NaN wins: once best is NaN nothing compares greater
            bool take = r[j] > best[j] || (r[j] != r[j] && best[j] == best[j]);
            best[j] = take ? r[j] : best[j];
            at[j] = take ? int32_t(d) : at[j];
          }
        }
        for (int64_t j = 0; j < len; j++) {
          out[o * inner + j0 + j] = best[j];
          if (argmax) argmax[o * inner + j0 + j] = at[j];
        }
      }
    }
  });
}

// ---- strided copy ----------------------------------------------------------------------------

// True when no two indices of the layout map to the same destination offset, so that rows can
// be written by different threads (and in any order) with the same result.
static bool injective(const Layout& l, int o) {
  int64_t st[kMaxRank], sh[kMaxRank];
  int n = l.rank;
  for (int d = 0; d < n; d++) st[d] = std::llabs(l.st[o][d]), sh[d] = l.shape[d];
  for (int i = 1; i < n; i++)  // insertion sort by stride
    for (int j = i; j > 0 && st[j] < st[j - 1]; j--) std::swap(st[j], st[j - 1]), std::swap(sh[j], sh[j - 1]);
  int64_t reach = 0;  // largest offset reachable with the smaller strides
  for (int d = 0; d < n; d++) {
    if (sh[d] > 1 && st[d] <= reach) return false;
    reach += st[d] * (sh[d] - 1);
  }
  return true;
}

void copy_strided(const float* src, const int32_t* ss, float* dst, const int32_t* ds, const int32_t* shape,
                  int rank, bool accumulate) {
  const int32_t* strides[2] = {ss, ds};
  Layout l = simplify(shape, rank, strides, 2);
  if (l.total == 0) return;
  int64_t inner = l.shape[l.rank - 1], is = l.st[0][l.rank - 1], id = l.st[1][l.rank - 1];
  auto run = [&](int64_t row, int64_t j0, int64_t j1) {
    const float* s = src + row_offset(l, 0, row) + j0 * is;
    float* d = dst + row_offset(l, 1, row) + j0 * id;
    int64_t n = j1 - j0;
    if (is == 1 && id == 1) {
      if (accumulate) {
        for (int64_t j = 0; j < n; j++) d[j] += s[j];
      } else {
        std::memmove(d, s, sizeof(float) * size_t(n));
      }
    } else if (accumulate) {
      for (int64_t j = 0; j < n; j++) d[j * id] += s[j * is];
    } else {
      for (int64_t j = 0; j < n; j++) d[j * id] = s[j * is];
    }
  };
  if (injective(l, 1)) {
    for_each_row_block(l, run);
  } else {
    // Several source elements land on one destination (a broadcast's gradient): keep the
    // reference's row-major order.
    int64_t rows = l.total / inner;
    for (int64_t r = 0; r < rows; r++) run(r, 0, inner);
  }
}

// ---- row gather / scatter --------------------------------------------------------------------

void gather_rows(const float* table, const int32_t* ids, int64_t nids, float* out, int64_t dim) {
  parallel_for(nids, nids * dim, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      std::memcpy(out + r * dim, table + int64_t(ids[r]) * dim, sizeof(float) * size_t(dim));
  });
}

void scatter_add_rows(const float* g, const int32_t* ids, int64_t nids, float* gtable, int64_t dim) {
  // Threads own column ranges, so rows with the same id never race and every element adds up
  // in row order, as in the reference.
  int64_t block = std::max<int64_t>(256, (dim + num_threads() - 1) / num_threads());
  int64_t nb = (dim + block - 1) / block;
  parallel_for(nb, nids * dim, [&](int64_t b0, int64_t b1) {
    int64_t j0 = b0 * block, j1 = std::min(dim, b1 * block);
    for (int64_t r = 0; r < nids; r++) {
      float* __restrict to = gtable + int64_t(ids[r]) * dim;
      const float* __restrict from = g + r * dim;
      for (int64_t j = j0; j < j1; j++) to[j] += from[j];
    }
  });
}

}  // namespace amend
