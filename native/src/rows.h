// Row reductions shared by the kernels: sums in float SIMD lanes folded into doubles every 64
// vectors (long rows lose no more accuracy than a double sum would, while the inner loop stays
// in float SIMD), and the row maximum.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "simd.h"

namespace amend {

// The n ≤ kVL floats at p as a vector, the lanes past n set to `fill`.
static inline vf load_n(const float* p, int64_t n, float fill = 0.f) {
  return n == kVL ? vload(p) : vload_part(p, n, fill);
}
static inline void store_n(float* p, vf v, int64_t n) {
  if (n == kVL)
    vstore(p, v);
  else
    vstore_part(p, v, n);
}

// Max of x[0..n), -inf for n = 0; a NaN anywhere is the result.
static inline float row_max(const float* x, int64_t n) {
  vf m = vsplat(-INFINITY);
  int64_t i = 0;
  for (; i + kVL <= n; i += kVL) m = vmax(vload(x + i), m);
  float r = -INFINITY;
  for (int l = 0; l < kVL; l++) r = m[l] > r || m[l] != m[l] ? m[l] : r;
  for (; i < n; i++) r = x[i] > r || x[i] != x[i] ? x[i] : r;
  return r;
}

// Σ f(i) over vector blocks of a row of n floats, for K sums at once: f(i, len) returns K vfs
// of kVL terms each; the tail block is passed with its length so f can pad it (with zeros, or
// whatever makes its terms 0).
template <int K, class F>
static inline std::array<double, K> row_sums(int64_t n, F&& f) {
  std::array<double, K> total{};
  int64_t i = 0;
  while (i + kVL <= n) {
    std::array<vf, K> acc{};
    int64_t end = std::min(n, i + 64 * kVL);
    for (; i + kVL <= end; i += kVL) {
      std::array<vf, K> t = f(i, int64_t(kVL));
      for (int k = 0; k < K; k++) acc[k] += t[k];
    }
    for (int k = 0; k < K; k++)
      for (int l = 0; l < kVL; l++) total[k] += acc[k][l];
  }
  if (i < n) {
    std::array<vf, K> t = f(i, n - i);
    for (int k = 0; k < K; k++)
      for (int64_t l = 0; l < n - i; l++) total[k] += t[k][l];
  }
  return total;
}

// One sum: the lanes are folded into a double every 64 vectors.
template <class F>
static inline double row_sum(int64_t n, F&& f) {
  return row_sums<1>(n, [&](int64_t i, int64_t len) { return std::array<vf, 1>{f(i, len)}; })[0];
}

}  // namespace amend
