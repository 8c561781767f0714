// Portable SIMD through GCC/Clang vector extensions: the widest float vector the build target
// has (16 lanes with AVX-512, 8 with AVX2, 4 otherwise), plus the few transcendental functions
// the kernels need, so that GELU or softmax run at vector speed instead of calling libm per lane.
//
// Accuracy: exp within ~2 ulp, tanh / sigmoid / erfc within a few ulp relative. Infinities and
// NaN propagate the way libm's do (exp(-inf) = 0, exp(+inf) = inf, NaN in NaN out).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace amend {

#if defined(__AVX512F__)
constexpr int kVL = 16;
#elif defined(__AVX__)
constexpr int kVL = 8;
#else
constexpr int kVL = 4;
#endif

typedef float vf __attribute__((vector_size(kVL * 4)));
typedef int32_t vi __attribute__((vector_size(kVL * 4)));
typedef double vd __attribute__((vector_size(kVL * 8)));

static inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// Loads n < kVL floats, the other lanes set to `fill`.
static inline vf vload_part(const float* p, int64_t n, float fill) {
  vf v = vf{} + fill;
  for (int64_t i = 0; i < n; i++) v[i] = p[i];
  return v;
}
static inline void vstore_part(float* p, vf v, int64_t n) {
  for (int64_t i = 0; i < n; i++) p[i] = v[i];
}
// Half a register of floats widened to doubles, for sums exact to double rounding: two of these
// accumulators keep the adds pipelined where one sequential double sum would not.
constexpr int kVLH = kVL / 2;
typedef float vfh __attribute__((vector_size(kVLH * 4)));
typedef double vdh __attribute__((vector_size(kVLH * 8)));
static inline vdh vwiden_half(const float* p) {
  vfh v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, vdh);
}
static inline vf vsplat(float x) { return vf{} + x; }
static inline vf vselect(vi mask, vf a, vf b) { return mask ? a : b; }
static inline vf vabs(vf x) {
  vi b = (vi)x & 0x7fffffff;
  return (vf)b;
}
static inline float hsum(vf v) {
  float s = 0.f;
  for (int i = 0; i < kVL; i++) s += v[i];
  return s;
}
// Whether any lane of a comparison result is set (one mask test rather than a chain of ORs).
static inline bool vany(vi m) {
#if defined(__AVX512F__)
  return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(__AVX__)
  return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#else
  return (m[0] | m[1] | m[2] | m[3]) != 0;
#endif
}
// Lane-wise max that lets NaN through from either side.
static inline vf vmax(vf a, vf b) { return vselect(a > b || a != a, a, b); }

// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r^7 (truncation < 1e-8
// relative), 2^n assembled in the exponent bits in two halves so that both ends of the range
// (2^128 before rounding, subnormal results) come out right.
static inline vf vexp(vf x) {
  const vf hi = vsplat(88.72283935546875f), lo = vsplat(-103.97208f);
  vf xc = vselect(x > hi, hi, vselect(x < lo, lo, x));
  vi ni = __builtin_convertvector(xc * 1.44269504088896341f + vselect(xc < 0, vsplat(-0.5f), vsplat(0.5f)), vi);
  vf n = __builtin_convertvector(ni, vf);
  vf r = xc - n * 0.693359375f;  // ln2 split in two so that n·ln2_hi is exact
  r = r - n * -2.12194440e-4f;
  vf p = vsplat(1.f / 5040);
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  vi n1 = ni >> 1, n2 = ni - n1;
  vf y = p * (vf)((n1 + 127) << 23) * (vf)((n2 + 127) << 23);
  y = vselect(x > hi, vsplat(INFINITY), y);
  y = vselect(x < lo, vf{}, y);
  return vselect(x != x, x, y);
}

// 1 / (1 + e^-x): no cancellation anywhere, saturates cleanly to 0 and 1.
static inline vf vsigmoid(vf x) { return 1.f / (1.f + vexp(-x)); }

// tanh: odd Taylor polynomial near 0 (where 1 - 2/(e^2x + 1) would cancel), that formula elsewhere.
static inline vf vtanh(vf x) {
  vf ax = vabs(x);
  vf z = x * x;
  vf p = vsplat(21844.f / 6081075);
  p = p * z - 1382.f / 155925;
  p = p * z + 62.f / 2835;
  p = p * z - 17.f / 315;
  p = p * z + 2.f / 15;
  p = p * z - 1.f / 3;
  vf small = x + x * z * p;
  vf big = 1.f - 2.f / (vexp(2.f * ax) + 1.f);
  vi neg = (vi)x & (int32_t)0x80000000;
  big = (vf)((vi)big | neg);
  return vselect(ax < 0.3f, small, big);
}

// a·b - c with one rounding (the exact low part of a product, for error-free transforms).
static inline vf vfms(vf a, vf b, vf c) {
#if defined(__AVX512F__)
  return (vf)_mm512_fmsub_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
  return (vf)_mm256_fmsub_ps((__m256)a, (__m256)b, (__m256)c);
#else
  vf r;
  for (int i = 0; i < kVL; i++) r[i] = std::fma(a[i], b[i], -c[i]);
  return r;
#endif
}

// erfc(z) for z ≥ 0 as t·exp(P(t) - z²), t = 1/(1 + z/2), with the Chebyshev-fitted P of
// Numerical Recipes (relative error < 1.2e-7 for all z ≥ 0). z² is passed in as an exact float
// pair (z2 + z2lo) and the exponent is carried as a pair too: rounding either to one float would
// cost up to 1e-5 relative in the tail (the exponent is ~ -80 there and its ulp is 8e-6).
static inline vf verfc_pos(vf z, vf z2, vf z2lo) {
  vf t = 1.f / (1.f + 0.5f * z);
  vf p = vsplat(0.17087277f);
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  vf a = p - z2, bb = a - p;  // TwoSum(p, -z2): a + alo = p - z2 exactly
  vf alo = (p - (a - bb)) + (-z2 - bb) - z2lo;
  vf r = t * vexp(a) * (1.f + alo);
  return vselect(z > 10.5f, vf{}, r);  // erfc(10.5) < 2^-149; also keeps inf·0 out
}

static inline vf verfc_pos(vf z) {
  vf z2 = z * z;
  return verfc_pos(z, z2, vfms(z, z, z2));
}

// Φ(x) = P(N(0,1) ≤ x) = erfc(|x|/√2)/2 or 1 minus that, accurate in the lower tail (no 1 + erf
// cancellation). z² = x²/2 is formed from x directly, so the rounding of x/√2 does not enter it.
static inline vf vnormcdf(vf x) {
  vf ax = vabs(x);
  vf x2 = x * x;
  vf e = 0.5f * verfc_pos(ax * 0.70710678118654752f, 0.5f * x2, 0.5f * vfms(x, x, x2));
  return vselect(x < 0, e, 1.f - e);
}

}  // namespace amend
