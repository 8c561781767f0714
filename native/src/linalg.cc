// Dense linear algebra for the TS layer (src/linalg), through OpenBLAS's LAPACK.
//
// Every entry point works IN PLACE on typed arrays that the TS layer allocated (it copies the
// caller's inputs first when they must survive), so no matrix is copied here beyond LAPACK's own
// workspace. All matrices are ROW-MAJOR. LAPACK is column-major, so each routine is applied to the
// transposed view of the buffer (a row-major m×n buffer IS the column-major n×m matrix Aᵀ):
//
//   potrf  row-major A symmetric, so the buffer is A in either order. Factor it as 'U' (A = UᵀU,
//          column-major): the upper triangle of the column-major view is the lower triangle of the
//          row-major view, and Uᵀ = L. Result: row-major L with A = L Lᵀ (strict upper zeroed).
//   potrs  done with row-major cblas_?trsm on L (CBLAS handles the order), B untouched otherwise.
//   getrf  factors the column-major view M = Aᵀ = P L U. Row-major, the buffer then holds Uᵀ (lower,
//          non-unit) and Lᵀ (strict upper, unit), and A = Uᵀ Lᵀ Pᵀ, so A X = B is solved by two
//          row-major trsm calls and the row interchanges of P applied to X in reverse order.
//   syevd  symmetric again; called with 'U' so that, like potrf, it reads the row-major LOWER
//          triangle. LAPACK returns eigenvectors as columns of a column-major matrix, i.e. rows
//          of the row-major buffer, so one in-place transpose gives "column j = vector j".
//   gesdd  the column-major view is Aᵀ (n×m) = U' S V'ᵀ, hence A = V' S U'ᵀ: LAPACK's VT output
//          (column-major r×m) read row-major is V' = U (m×r), and its U output (column-major n×r)
//          read row-major is U'ᵀ = Vt (r×n). No transposes at all.
//
// Built only with -DAMEND_OPENBLAS; without it InitLinalg registers nothing and the TS layer uses
// its pure-TS reference implementation.
#include "linalg.h"

#ifdef AMEND_OPENBLAS

#include <cblas.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

// Fortran LAPACK prototypes (no lapack.h on the build machines). gfortran passes the length of
// each CHARACTER argument as a trailing hidden size_t; we pass them (harmless for routines that
// OpenBLAS implements in C, which ignore extra arguments under the x86-64/aarch64 C ABI).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t);
void dgetrf_(const int* m, const int* n, double* a, const int* lda, int* ipiv, int* info);
void sgetrf_(const int* m, const int* n, float* a, const int* lda, int* ipiv, int* info);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t, size_t);
void ssyevd_(const char* jobz, const char* uplo, const int* n, float* a, const int* lda, float* w,
             float* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t, size_t);
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s,
             double* u, const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork,
             int* iwork, int* info, size_t);
void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s,
             float* u, const int* ldu, float* vt, const int* ldvt, float* work, const int* lwork,
             int* iwork, int* info, size_t);
}

namespace {

// ---- type-generic wrappers -----------------------------------------------------------------

inline void potrf(const char* uplo, int n, double* a, int* info) { dpotrf_(uplo, &n, a, &n, info, 1); }
inline void potrf(const char* uplo, int n, float* a, int* info) { spotrf_(uplo, &n, a, &n, info, 1); }
inline void potri(const char* uplo, int n, double* a, int* info) { dpotri_(uplo, &n, a, &n, info, 1); }
inline void potri(const char* uplo, int n, float* a, int* info) { spotri_(uplo, &n, a, &n, info, 1); }
inline void getrf(int n, double* a, int* ipiv, int* info) { dgetrf_(&n, &n, a, &n, ipiv, info); }
inline void getrf(int n, float* a, int* ipiv, int* info) { sgetrf_(&n, &n, a, &n, ipiv, info); }

inline void trsm(CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, CBLAS_DIAG diag, int n, int nrhs, const double* a,
                 double* b) {
  cblas_dtrsm(CblasRowMajor, CblasLeft, uplo, trans, diag, n, nrhs, 1.0, a, n, b, nrhs);
}
inline void trsm(CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, CBLAS_DIAG diag, int n, int nrhs, const float* a,
                 float* b) {
  cblas_strsm(CblasRowMajor, CblasLeft, uplo, trans, diag, n, nrhs, 1.0f, a, n, b, nrhs);
}

inline void syevd(int n, double* a, double* w, double* work, int lwork, int* iwork, int liwork, int* info) {
  dsyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, info, 1, 1);
}
inline void syevd(int n, float* a, float* w, float* work, int lwork, int* iwork, int liwork, int* info) {
  ssyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, info, 1, 1);
}

inline void gesdd(int m, int n, double* a, double* s, double* u, int ldu, double* vt, int ldvt, double* work,
                  int lwork, int* iwork, int* info) {
  dgesdd_("S", &m, &n, a, &m, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, info, 1);
}
inline void gesdd(int m, int n, float* a, float* s, float* u, int ldu, float* vt, int ldvt, float* work,
                  int lwork, int* iwork, int* info) {
  sgesdd_("S", &m, &n, a, &m, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, info, 1);
}

// LAPACK returns optimal workspace sizes as floating-point numbers, which for single precision
// can round DOWN below the true size (e.g. 2n² + 6n + 1 for n = 4096 is not a float). Round up
// with a margin, never go below the documented minimum, and report -1 when it exceeds int range.
template <typename T>
int WorkSize(T w, double minimum) {
  double d = std::ceil(static_cast<double>(w) * (1.0 + 1e-6)) + 1.0;
  if (!(d >= minimum)) d = minimum;
  if (d < 1.0) d = 1.0;
  if (d > 2147483647.0) return -1;
  return static_cast<int>(d);
}

// ---- argument checking ---------------------------------------------------------------------

// Throws a JS TypeError/RangeError and returns false when the check fails. Works with and
// without C++ exceptions enabled in node-addon-api.
bool Fail(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, "linalg: " + msg).ThrowAsJavaScriptException();
  return false;
}

enum class Kind { F64, F32, Bad };

Kind KindOf(const Napi::Value& v) {
  if (!v.IsTypedArray()) return Kind::Bad;
  napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
  if (t == napi_float64_array) return Kind::F64;
  if (t == napi_float32_array) return Kind::F32;
  return Kind::Bad;
}

template <typename T>
T* DataOf(const Napi::Value& v) {
  return v.As<Napi::TypedArrayOf<T>>().Data();
}

size_t LengthOf(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }

// Reads argument i as a non-negative int that fits LAPACK's 32-bit integers.
bool IntArg(const Napi::CallbackInfo& info, size_t i, const char* name, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return Fail(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || d != std::floor(d)) {
    return Fail(info.Env(), std::string(name) + " must be a non-negative 32-bit integer");
  }
  *out = static_cast<int>(d);
  return true;
}

// Checks that arguments `idx` are all typed arrays of the same float kind, each at least `need`
// elements long; returns that kind (Bad after throwing otherwise).
Kind SameKind(const Napi::CallbackInfo& info, std::initializer_list<std::pair<size_t, size_t>> args) {
  Kind k = Kind::Bad;
  for (auto [i, need] : args) {
    if (info.Length() <= i) {
      Fail(info.Env(), "missing argument " + std::to_string(i));
      return Kind::Bad;
    }
    Kind ki = KindOf(info[i]);
    if (ki == Kind::Bad) {
      Fail(info.Env(), "argument " + std::to_string(i) + " must be a Float64Array or Float32Array");
      return Kind::Bad;
    }
    if (k != Kind::Bad && ki != k) {
      Fail(info.Env(), "all arrays must have the same element type");
      return Kind::Bad;
    }
    k = ki;
    if (LengthOf(info[i]) < need) {
      Fail(info.Env(), "argument " + std::to_string(i) + " has " + std::to_string(LengthOf(info[i])) +
                           " elements, needs " + std::to_string(need));
      return Kind::Bad;
    }
  }
  return k;
}

// In-place transpose of a square row-major n×n matrix, blocked for the cache. O(n²) and
// memory-bound: under a second for n = 16384, noise next to the O(n³) eigensolver before it.
template <typename T>
void TransposeSquare(T* a, size_t n) {
  const size_t B = 64;
  for (size_t i0 = 0; i0 < n; i0 += B) {
    size_t i1 = i0 + B < n ? i0 + B : n;
    for (size_t j0 = i0; j0 < n; j0 += B) {
      size_t j1 = j0 + B < n ? j0 + B : n;
      for (size_t i = i0; i < i1; ++i) {
        for (size_t j = (j0 == i0 ? i + 1 : j0); j < j1; ++j) {
          T t = a[i * n + j];
          a[i * n + j] = a[j * n + i];
          a[j * n + i] = t;
        }
      }
    }
  }
}

// ---- the routines (templated on element type) ------------------------------------------------

// potrf(a, n): a (row-major, symmetric) becomes L (lower, strict upper zeroed).
// Returns LAPACK's info: 0, or k > 0 when the leading minor of order k is not positive definite.
template <typename T>
int Potrf(T* a, int n) {
  int info = 0;
  if (n == 0) return 0;
  potrf("U", n, a, &info);
  if (info == 0) {
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      std::memset(a + i * n + i + 1, 0, sizeof(T) * (n - i - 1));
    }
  }
  return info;
}

// potrs(L, b, n, nrhs): b (n×nrhs row-major) becomes (L Lᵀ)⁻¹ b.
template <typename T>
void Potrs(const T* l, T* b, int n, int nrhs) {
  if (n == 0 || nrhs == 0) return;
  trsm(CblasLower, CblasNoTrans, CblasNonUnit, n, nrhs, l, b);
  trsm(CblasLower, CblasTrans, CblasNonUnit, n, nrhs, l, b);
}

// potri(L, n): L (as left by Potrf) becomes (L Lᵀ)⁻¹, full symmetric. Returns info.
template <typename T>
int Potri(T* a, int n) {
  int info = 0;
  if (n == 0) return 0;
  potri("U", n, a, &info);  // column-major upper == row-major lower
  if (info == 0) {
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      for (size_t j = i + 1; j < static_cast<size_t>(n); ++j) a[i * n + j] = a[j * n + i];
    }
  }
  return info;
}

// gesv(a, b, n, nrhs, diag): a is destroyed (LU factors), b becomes A⁻¹ b. `diag` (length n)
// receives the pivots u_kk (in elimination order) so the caller can judge conditioning.
// Returns info (>0: u_kk exactly zero, b untouched). -1: out of memory.
template <typename T>
int Gesv(T* a, T* b, int n, int nrhs, T* diag) {
  if (n == 0) return 0;
  int* ipiv = static_cast<int*>(std::malloc(sizeof(int) * n));
  if (!ipiv) return -1;
  int info = 0;
  getrf(n, a, ipiv, &info);
  for (size_t k = 0; k < static_cast<size_t>(n); ++k) diag[k] = a[k * n + k];
  if (info == 0 && nrhs > 0) {
    trsm(CblasLower, CblasNoTrans, CblasNonUnit, n, nrhs, a, b);  // Uᵀ
    trsm(CblasUpper, CblasNoTrans, CblasUnit, n, nrhs, a, b);     // Lᵀ
    // X = P Z with P = S_1 S_2 ... S_n: apply the swaps last-to-first.
    for (int k = n - 1; k >= 0; --k) {
      int p = ipiv[k] - 1;
      if (p != k) {
        T* rk = b + static_cast<size_t>(k) * nrhs;
        T* rp = b + static_cast<size_t>(p) * nrhs;
        for (int j = 0; j < nrhs; ++j) {
          T t = rk[j];
          rk[j] = rp[j];
          rp[j] = t;
        }
      }
    }
  }
  std::free(ipiv);
  return info;
}

// syevd(a, w, n): a becomes the eigenvectors (row-major, column j ↔ w[j]); w ascending.
// Returns info; -1: out of memory, -2: workspace too large for 32-bit LAPACK.
template <typename T>
int Syevd(T* a, T* w, int n) {
  if (n == 0) return 0;
  int info = 0, lwork = -1, liwork = -1, iq = 0;
  T wq = 0;
  syevd(n, a, w, &wq, lwork, &iq, liwork, &info);
  if (info != 0) return info;
  const double dn = n;
  lwork = WorkSize(wq, 1.0 + 6.0 * dn + 2.0 * dn * dn);
  liwork = iq > 3 + 5 * n ? iq : 3 + 5 * n;
  if (lwork < 0) return -2;
  T* work = static_cast<T*>(std::malloc(sizeof(T) * static_cast<size_t>(lwork)));
  int* iwork = static_cast<int*>(std::malloc(sizeof(int) * static_cast<size_t>(liwork)));
  if (!work || !iwork) {
    std::free(work);
    std::free(iwork);
    return -1;
  }
  syevd(n, a, w, work, lwork, iwork, liwork, &info);
  std::free(work);
  std::free(iwork);
  if (info == 0) TransposeSquare(a, static_cast<size_t>(n));
  return info;
}

// gesdd(a, m, n, u, s, vt): thin SVD of row-major m×n a (destroyed); u m×r, s r, vt r×n.
template <typename T>
int Gesdd(T* a, int m, int n, T* u, T* s, T* vt) {
  if (m == 0 || n == 0) return 0;
  const int r = m < n ? m : n;
  // Column-major problem: Aᵀ is n×m (lda n). Its U' (n×r, ldu n) is our Vt; its VT' (r×m, ldvt r)
  // is our U.
  int info = 0, lwork = -1;
  T wq = 0;
  int* iwork = static_cast<int*>(std::malloc(sizeof(int) * 8 * static_cast<size_t>(r)));
  if (!iwork) return -1;
  gesdd(n, m, a, s, vt, n, u, r, &wq, lwork, iwork, &info);
  if (info != 0) {
    std::free(iwork);
    return info;
  }
  const double mn = r, mx = m > n ? m : n;
  lwork = WorkSize(wq, 4.0 * mn * mn + 7.0 * mn + mx);
  if (lwork < 0) {
    std::free(iwork);
    return -2;
  }
  T* work = static_cast<T*>(std::malloc(sizeof(T) * static_cast<size_t>(lwork)));
  if (!work) {
    std::free(iwork);
    return -1;
  }
  gesdd(n, m, a, s, vt, n, u, r, work, lwork, iwork, &info);
  std::free(work);
  std::free(iwork);
  return info;
}

// ---- N-API glue ------------------------------------------------------------------------------

size_t Sq(int n) { return static_cast<size_t>(n) * static_cast<size_t>(n); }

// linalgPotrf(a, n) -> info
Napi::Value JsPotrf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n;
  if (!IntArg(info, 1, "n", &n)) return env.Undefined();
  Kind k = SameKind(info, {{0, Sq(n)}});
  if (k == Kind::Bad) return env.Undefined();
  int r = k == Kind::F64 ? Potrf(DataOf<double>(info[0]), n) : Potrf(DataOf<float>(info[0]), n);
  return Napi::Number::New(env, r);
}

// linalgPotrs(L, b, n, nrhs)
Napi::Value JsPotrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n, nrhs;
  if (!IntArg(info, 2, "n", &n) || !IntArg(info, 3, "nrhs", &nrhs)) return env.Undefined();
  Kind k = SameKind(info, {{0, Sq(n)}, {1, static_cast<size_t>(n) * nrhs}});
  if (k == Kind::Bad) return env.Undefined();
  if (k == Kind::F64) {
    Potrs(DataOf<double>(info[0]), DataOf<double>(info[1]), n, nrhs);
  } else {
    Potrs(DataOf<float>(info[0]), DataOf<float>(info[1]), n, nrhs);
  }
  return env.Undefined();
}

// linalgPotri(L, n) -> info
Napi::Value JsPotri(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n;
  if (!IntArg(info, 1, "n", &n)) return env.Undefined();
  Kind k = SameKind(info, {{0, Sq(n)}});
  if (k == Kind::Bad) return env.Undefined();
  int r = k == Kind::F64 ? Potri(DataOf<double>(info[0]), n) : Potri(DataOf<float>(info[0]), n);
  return Napi::Number::New(env, r);
}

// linalgGesv(a, b, n, nrhs, diag) -> info
Napi::Value JsGesv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n, nrhs;
  if (!IntArg(info, 2, "n", &n) || !IntArg(info, 3, "nrhs", &nrhs)) return env.Undefined();
  Kind k = SameKind(info, {{0, Sq(n)}, {1, static_cast<size_t>(n) * nrhs}, {4, static_cast<size_t>(n)}});
  if (k == Kind::Bad) return env.Undefined();
  int r = k == Kind::F64
              ? Gesv(DataOf<double>(info[0]), DataOf<double>(info[1]), n, nrhs, DataOf<double>(info[4]))
              : Gesv(DataOf<float>(info[0]), DataOf<float>(info[1]), n, nrhs, DataOf<float>(info[4]));
  return Napi::Number::New(env, r);
}

// linalgSyevd(a, w, n) -> info
Napi::Value JsSyevd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n;
  if (!IntArg(info, 2, "n", &n)) return env.Undefined();
  Kind k = SameKind(info, {{0, Sq(n)}, {1, static_cast<size_t>(n)}});
  if (k == Kind::Bad) return env.Undefined();
  int r = k == Kind::F64 ? Syevd(DataOf<double>(info[0]), DataOf<double>(info[1]), n)
                         : Syevd(DataOf<float>(info[0]), DataOf<float>(info[1]), n);
  return Napi::Number::New(env, r);
}

// linalgGesdd(a, m, n, u, s, vt) -> info
Napi::Value JsGesdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int m, n;
  if (!IntArg(info, 1, "m", &m) || !IntArg(info, 2, "n", &n)) return env.Undefined();
  size_t r = static_cast<size_t>(m < n ? m : n);
  Kind k = SameKind(info, {{0, static_cast<size_t>(m) * n}, {3, m * r}, {4, r}, {5, r * n}});
  if (k == Kind::Bad) return env.Undefined();
  int res = k == Kind::F64 ? Gesdd(DataOf<double>(info[0]), m, n, DataOf<double>(info[3]),
                                   DataOf<double>(info[4]), DataOf<double>(info[5]))
                           : Gesdd(DataOf<float>(info[0]), m, n, DataOf<float>(info[3]), DataOf<float>(info[4]),
                                   DataOf<float>(info[5]));
  return Napi::Number::New(env, res);
}

}  // namespace

void InitLinalg(Napi::Env env, Napi::Object exports) {
  exports.Set("linalgPotrf", Napi::Function::New(env, JsPotrf, "linalgPotrf"));
  exports.Set("linalgPotrs", Napi::Function::New(env, JsPotrs, "linalgPotrs"));
  exports.Set("linalgPotri", Napi::Function::New(env, JsPotri, "linalgPotri"));
  exports.Set("linalgGesv", Napi::Function::New(env, JsGesv, "linalgGesv"));
  exports.Set("linalgSyevd", Napi::Function::New(env, JsSyevd, "linalgSyevd"));
  exports.Set("linalgGesdd", Napi::Function::New(env, JsGesdd, "linalgGesdd"));
  exports.Set("linalgLapack", Napi::String::New(env, "OpenBLAS LAPACK"));
}

#else  // !AMEND_OPENBLAS

void InitLinalg(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

#endif
