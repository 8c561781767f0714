// The N-API surface of the addon: one function per kernel of src/backend/kernels.ts, with the
// same name and argument order, so the TS side can hand these functions out unwrapped.
//
// Typed arrays are used in place (zero copy). Every size is checked against the arrays' lengths
// before a kernel runs: a wrong size from the TS layer must raise a RangeError, never read or
// write outside an array.
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

#include "gemm.h"
#include "kernels.h"
#include "linalg.h"
#include "parallel.h"

#ifdef AMEND_OPENBLAS
#include <cblas.h>
extern "C" char* openblas_get_corename(void);
#endif

namespace amend {
namespace {

// ---- argument unwrapping ---------------------------------------------------------------------

// Reads arguments of one call; the first problem throws a JS error and turns every later read
// into a no-op, so a binding reads all its arguments and then checks ok() once.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()) {}

  bool ok() const { return ok_; }
  napi_env env() const { return env_; }

  template <class T>
  T* array(size_t i, napi_typedarray_type want, const char* what, bool nullable, size_t* len) {
    *len = 0;
    if (!ok_) return nullptr;
    if (i >= info_.Length()) return fail<T>("missing argument", what);
    napi_value v = info_[i];
    napi_typedarray_type type;
    void* data = nullptr;
    if (napi_get_typedarray_info(env_, v, &type, len, &data, nullptr, nullptr) == napi_ok) {
      if (type != want) return fail<T>("wrong typed array type for", what);
      // A zero-length array may have no storage at all; hand out a valid dummy pointer.
      return data ? static_cast<T*>(data) : reinterpret_cast<T*>(&dummy_);
    }
    napi_valuetype vt;
    if (nullable && napi_typeof(env_, v, &vt) == napi_ok && (vt == napi_null || vt == napi_undefined))
      return nullptr;
    return fail<T>("expected a typed array for", what);
  }
  float* f32(size_t i, const char* what, size_t* len, bool nullable = false) {
    return array<float>(i, napi_float32_array, what, nullable, len);
  }
  int32_t* i32(size_t i, const char* what, size_t* len, bool nullable = false) {
    return array<int32_t>(i, napi_int32_array, what, nullable, len);
  }
  uint8_t* u8(size_t i, const char* what, size_t* len, bool nullable = false) {
    return array<uint8_t>(i, napi_uint8_array, what, nullable, len);
  }

  double number(size_t i, const char* what) {
    double d = 0;
    if (!ok_) return 0;
    if (i >= info_.Length() || napi_get_value_double(env_, info_[i], &d) != napi_ok) {
      fail<void>("expected a number for", what);
      return 0;
    }
    return d;
  }
  // A non-negative integer that fits the index arithmetic.
  int64_t size(size_t i, const char* what) {
    double d = number(i, what);
    if (ok_ && !(d >= 0 && d <= 9.0e15 && d == std::floor(d))) fail<void>("expected a non-negative integer for", what);
    return ok_ ? int64_t(d) : 0;
  }
  int64_t integer(size_t i, const char* what) {
    double d = number(i, what);
    if (ok_ && !(std::fabs(d) <= 9.0e15 && d == std::floor(d))) fail<void>("expected an integer for", what);
    return ok_ ? int64_t(d) : 0;
  }
  bool boolean(size_t i, const char* what) {
    bool b = false;
    if (!ok_) return false;
    if (i >= info_.Length() || napi_get_value_bool(env_, info_[i], &b) != napi_ok) fail<void>("expected a boolean for", what);
    return b;
  }

  // Throws a RangeError unless `len` holds `need` elements.
  void need(size_t len, int64_t need, const char* what) {
    if (ok_ && need > 0 && int64_t(len) < need) {
      std::string msg = std::string(what) + ": needs " + std::to_string(need) + " elements, has " + std::to_string(len);
      range_error(msg);
    }
  }
  void check(bool cond, const char* msg) {
    if (ok_ && !cond) range_error(msg);
  }
  void range_error(const std::string& msg) {
    ok_ = false;
    Napi::RangeError::New(env_, "amend native: " + msg).ThrowAsJavaScriptException();
  }

 private:
  template <class T>
  T* fail(const char* msg, const char* what) {
    ok_ = false;
    Napi::TypeError::New(env_, std::string("amend native: ") + msg + " " + what).ThrowAsJavaScriptException();
    return nullptr;
  }

  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  bool ok_ = true;
  double dummy_ = 0;
};

// Largest and smallest offset reachable over `shape` with `strides` (rank entries each).
static void offset_range(const int32_t* shape, const int32_t* strides, int rank, int64_t* lo, int64_t* hi) {
  *lo = *hi = 0;
  for (int d = 0; d < rank; d++) {
    int64_t span = int64_t(strides[d]) * (shape[d] - 1);
    if (span > 0) *hi += span;
    else *lo += span;
  }
}

// ---- gemm ------------------------------------------------------------------------------------

enum class GemmImpl { Dispatch, Own, Blas };

Napi::Value GemmCall(const Napi::CallbackInfo& info, GemmImpl impl) {
  Args a(info);
  bool ta = a.boolean(0, "transA"), tb = a.boolean(1, "transB");
  int64_t batch = a.size(2, "batch"), m = a.size(3, "m"), n = a.size(4, "n"), k = a.size(5, "k");
  size_t la, lb, lc;
  float* A = a.f32(6, "a", &la);
  int64_t sA = a.size(7, "strideA");
  float* B = a.f32(8, "b", &lb);
  int64_t sB = a.size(9, "strideB");
  float* C = a.f32(10, "c", &lc);
  double beta = a.number(11, "beta");
  if (!a.ok()) return Napi::Value();
  if (batch > 0) {
    a.need(la, (batch - 1) * sA + m * k, "gemm a");
    a.need(lb, (batch - 1) * sB + k * n, "gemm b");
    a.need(lc, batch * m * n, "gemm c");
  }
  if (!a.ok() || batch == 0 || m == 0 || n == 0) return Napi::Value();
  float fb = float(beta);
  if (fb != 0.f && fb != 1.f) {  // general beta: scale C first, then accumulate
    for (int64_t i = 0; i < batch * m * n; i++) C[i] *= fb;
    fb = 1.f;
  }
  switch (impl) {
    case GemmImpl::Own: gemm_own(ta, tb, batch, m, n, k, A, sA, B, sB, C, fb); break;
    case GemmImpl::Dispatch: gemm(ta, tb, batch, m, n, k, A, sA, B, sB, C, fb); break;
    case GemmImpl::Blas:
#ifdef AMEND_OPENBLAS
      gemm_blas(ta, tb, batch, m, n, k, A, sA, B, sB, C, fb);
#endif
      break;
  }
  return Napi::Value();
}

Napi::Value Gemm(const Napi::CallbackInfo& info) { return GemmCall(info, GemmImpl::Dispatch); }
Napi::Value GemmOwn(const Napi::CallbackInfo& info) { return GemmCall(info, GemmImpl::Own); }
#ifdef AMEND_OPENBLAS
Napi::Value GemmBlas(const Napi::CallbackInfo& info) { return GemmCall(info, GemmImpl::Blas); }
#endif

// ---- elementwise -----------------------------------------------------------------------------

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t op = a.size(0, "op");
  size_t la, lsa, lb, lsb, lo, lsh;
  float* A = a.f32(1, "a", &la);
  int32_t* sa = a.i32(2, "stridesA", &lsa);
  float* B = a.f32(3, "b", &lb);
  int32_t* sb = a.i32(4, "stridesB", &lsb);
  float* out = a.f32(5, "out", &lo);
  int32_t* shape = a.i32(6, "shape", &lsh);
  if (!a.ok()) return Napi::Value();
  int rank = int(lsh);
  a.check(op <= kPow, "binary: unknown op");
  a.check(rank <= kMaxRank, "binary: rank above 8");
  a.check(lsa >= lsh && lsb >= lsh, "binary: fewer strides than dimensions");
  int64_t total = 1;
  for (int d = 0; d < rank && a.ok(); d++) {
    a.check(shape[d] >= 0, "binary: negative dimension");
    total *= shape[d];
  }
  if (!a.ok() || total == 0) return Napi::Value();
  int64_t lo_a, hi_a, lo_b, hi_b;
  offset_range(shape, sa, rank, &lo_a, &hi_a);
  offset_range(shape, sb, rank, &lo_b, &hi_b);
  a.check(lo_a >= 0 && lo_b >= 0, "binary: negative strides");
  a.need(la, hi_a + 1, "binary a");
  a.need(lb, hi_b + 1, "binary b");
  a.need(lo, total, "binary out");
  if (a.ok()) binary(int(op), A, sa, B, sb, out, shape, rank);
  return Napi::Value();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t op = a.size(0, "op");
  size_t lx, lo;
  float* x = a.f32(1, "x", &lx);
  float* out = a.f32(2, "out", &lo);
  int64_t n = a.size(3, "n");
  a.check(op <= kRecip, "unary: unknown op");
  a.need(lx, n, "unary x");
  a.need(lo, n, "unary out");
  if (a.ok()) unary(int(op), x, out, n);
  return Napi::Value();
}

Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t op = a.size(0, "op");
  size_t lx, ly, lgy, lgx;
  float* x = a.f32(1, "x", &lx);
  float* y = a.f32(2, "y", &ly);
  float* gy = a.f32(3, "gy", &lgy);
  float* gx = a.f32(4, "gx", &lgx);
  int64_t n = a.size(5, "n");
  a.check(op <= kRecip, "unaryBackward: unknown op");
  a.need(lx, n, "unaryBackward x");
  a.need(ly, n, "unaryBackward y");
  a.need(lgy, n, "unaryBackward gy");
  a.need(lgx, n, "unaryBackward gx");
  if (a.ok()) unary_backward(int(op), x, y, gy, gx, n);
  return Napi::Value();
}

Napi::Value Affine(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lo;
  float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int64_t n = a.size(2, "n");
  double scale = a.number(3, "scale"), shift = a.number(4, "shift");
  a.need(lx, n, "affine x");
  a.need(lo, n, "affine out");
  if (a.ok()) affine(x, out, n, float(scale), float(shift));
  return Napi::Value();
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t kind = a.size(0, "kind");
  size_t lx, lo, lam;
  float* x = a.f32(1, "x", &lx);
  float* out = a.f32(2, "out", &lo);
  int64_t outer = a.size(3, "outer"), dim = a.size(4, "dim"), inner = a.size(5, "inner");
  int32_t* am = a.i32(6, "argmax", &lam, true);
  a.check(kind <= 1, "reduce: kind must be 0 (sum) or 1 (max)");
  a.need(lx, outer * dim * inner, "reduce x");
  a.need(lo, outer * inner, "reduce out");
  if (am) a.need(lam, outer * inner, "reduce argmax");
  if (a.ok()) reduce(int(kind), x, out, outer, dim, inner, kind == 1 ? am : nullptr);
  return Napi::Value();
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t ls, lss, ld, lds, lsh;
  float* src = a.f32(0, "src", &ls);
  int64_t soff = a.size(1, "srcOffset");
  int32_t* ss = a.i32(2, "srcStrides", &lss);
  float* dst = a.f32(3, "dst", &ld);
  int64_t doff = a.size(4, "dstOffset");
  int32_t* dstr = a.i32(5, "dstStrides", &lds);
  int32_t* shape = a.i32(6, "shape", &lsh);
  bool acc = a.boolean(7, "accumulate");
  if (!a.ok()) return Napi::Value();
  int rank = int(lsh);
  a.check(rank <= kMaxRank, "copyStrided: rank above 8");
  a.check(lss >= lsh && lds >= lsh, "copyStrided: fewer strides than dimensions");
  int64_t total = 1;
  for (int d = 0; d < rank && a.ok(); d++) {
    a.check(shape[d] >= 0, "copyStrided: negative dimension");
    total *= shape[d];
  }
  if (!a.ok() || total == 0) return Napi::Value();
  int64_t slo, shi, dlo, dhi;
  offset_range(shape, ss, rank, &slo, &shi);
  offset_range(shape, dstr, rank, &dlo, &dhi);
  a.check(soff + slo >= 0 && doff + dlo >= 0, "copyStrided: offsets reach below 0");
  a.need(ls, soff + shi + 1, "copyStrided src");
  a.need(ld, doff + dhi + 1, "copyStrided dst");
  if (a.ok()) copy_strided(src + soff, ss, dst + doff, dstr, shape, rank, acc);
  return Napi::Value();
}

// ---- row kernels -----------------------------------------------------------------------------

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lo;
  float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int64_t rows = a.size(2, "rows"), cols = a.size(3, "cols");
  a.need(lx, rows * cols, "softmax x");
  a.need(lo, rows * cols, "softmax out");
  if (a.ok()) softmax(x, out, rows, cols);
  return Napi::Value();
}

// (y, gy, gx, rows, cols): the two backward passes of softmax and log-softmax.
template <void (*F)(const float*, const float*, float*, int64_t, int64_t)>
Napi::Value RowBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t ly, lgy, lgx;
  float* y = a.f32(0, "y", &ly);
  float* gy = a.f32(1, "gy", &lgy);
  float* gx = a.f32(2, "gx", &lgx);
  int64_t rows = a.size(3, "rows"), cols = a.size(4, "cols");
  a.need(ly, rows * cols, "y");
  a.need(lgy, rows * cols, "gy");
  a.need(lgx, rows * cols, "gx");
  if (a.ok()) F(y, gy, gx, rows, cols);
  return Napi::Value();
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lo;
  float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int64_t rows = a.size(2, "rows"), cols = a.size(3, "cols");
  a.need(lx, rows * cols, "logSoftmax x");
  a.need(lo, rows * cols, "logSoftmax out");
  if (a.ok()) log_softmax(x, out, rows, cols);
  return Napi::Value();
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lw, lb, lo, lm, lr;
  float* x = a.f32(0, "x", &lx);
  float* w = a.f32(1, "w", &lw, true);
  float* b = a.f32(2, "b", &lb, true);
  float* out = a.f32(3, "out", &lo);
  float* mean = a.f32(4, "mean", &lm);
  float* rstd = a.f32(5, "rstd", &lr);
  int64_t rows = a.size(6, "rows"), cols = a.size(7, "cols");
  double eps = a.number(8, "eps");
  a.need(lx, rows * cols, "layerNorm x");
  if (w) a.need(lw, cols, "layerNorm w");
  if (b) a.need(lb, cols, "layerNorm b");
  a.need(lo, rows * cols, "layerNorm out");
  a.need(lm, rows, "layerNorm mean");
  a.need(lr, rows, "layerNorm rstd");
  if (a.ok()) layer_norm(x, w, b, out, mean, rstd, rows, cols, float(eps));
  return Napi::Value();
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lw, lm, lr, lgy, lgx, lgw, lgb;
  float* x = a.f32(0, "x", &lx);
  float* w = a.f32(1, "w", &lw, true);
  float* mean = a.f32(2, "mean", &lm);
  float* rstd = a.f32(3, "rstd", &lr);
  float* gy = a.f32(4, "gy", &lgy);
  float* gx = a.f32(5, "gx", &lgx);
  float* gw = a.f32(6, "gw", &lgw, true);
  float* gb = a.f32(7, "gb", &lgb, true);
  int64_t rows = a.size(8, "rows"), cols = a.size(9, "cols");
  a.need(lx, rows * cols, "layerNormBackward x");
  if (w) a.need(lw, cols, "layerNormBackward w");
  a.need(lm, rows, "layerNormBackward mean");
  a.need(lr, rows, "layerNormBackward rstd");
  a.need(lgy, rows * cols, "layerNormBackward gy");
  a.need(lgx, rows * cols, "layerNormBackward gx");
  if (gw) a.need(lgw, cols, "layerNormBackward gw");
  if (gb) a.need(lgb, cols, "layerNormBackward gb");
  if (a.ok()) layer_norm_backward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
  return Napi::Value();
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lw, lo, lr;
  float* x = a.f32(0, "x", &lx);
  float* w = a.f32(1, "w", &lw, true);
  float* out = a.f32(2, "out", &lo);
  float* rstd = a.f32(3, "rstd", &lr);
  int64_t rows = a.size(4, "rows"), cols = a.size(5, "cols");
  double eps = a.number(6, "eps");
  a.need(lx, rows * cols, "rmsNorm x");
  if (w) a.need(lw, cols, "rmsNorm w");
  a.need(lo, rows * cols, "rmsNorm out");
  a.need(lr, rows, "rmsNorm rstd");
  if (a.ok()) rms_norm(x, w, out, rstd, rows, cols, float(eps));
  return Napi::Value();
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lw, lr, lgy, lgx, lgw;
  float* x = a.f32(0, "x", &lx);
  float* w = a.f32(1, "w", &lw, true);
  float* rstd = a.f32(2, "rstd", &lr);
  float* gy = a.f32(3, "gy", &lgy);
  float* gx = a.f32(4, "gx", &lgx);
  float* gw = a.f32(5, "gw", &lgw, true);
  int64_t rows = a.size(6, "rows"), cols = a.size(7, "cols");
  a.need(lx, rows * cols, "rmsNormBackward x");
  if (w) a.need(lw, cols, "rmsNormBackward w");
  a.need(lr, rows, "rmsNormBackward rstd");
  a.need(lgy, rows * cols, "rmsNormBackward gy");
  a.need(lgx, rows * cols, "rmsNormBackward gx");
  if (gw) a.need(lgw, cols, "rmsNormBackward gw");
  if (a.ok()) rms_norm_backward(x, w, rstd, gy, gx, gw, rows, cols);
  return Napi::Value();
}

// ---- gather / scatter ------------------------------------------------------------------------

// Every id must name a row of a table of `rows` rows.
static void check_ids(Args& a, const int32_t* ids, size_t n, int64_t rows, const char* what) {
  for (size_t i = 0; i < n && a.ok(); i++)
    if (ids[i] < 0 || ids[i] >= rows)
      a.range_error(std::string(what) + ": id " + std::to_string(ids[i]) + " outside [0, " + std::to_string(rows) + ")");
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lt, li, lo;
  float* table = a.f32(0, "table", &lt);
  int32_t* ids = a.i32(1, "ids", &li);
  float* out = a.f32(2, "out", &lo);
  int64_t dim = a.size(3, "dim");
  if (!a.ok() || dim == 0) return Napi::Value();
  check_ids(a, ids, li, int64_t(lt) / dim, "gatherRows");
  a.need(lo, int64_t(li) * dim, "gatherRows out");
  if (a.ok()) gather_rows(table, ids, int64_t(li), out, dim);
  return Napi::Value();
}

Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lg, li, lt;
  float* g = a.f32(0, "g", &lg);
  int32_t* ids = a.i32(1, "ids", &li);
  float* gtable = a.f32(2, "gtable", &lt);
  int64_t dim = a.size(3, "dim");
  if (!a.ok() || dim == 0) return Napi::Value();
  check_ids(a, ids, li, int64_t(lt) / dim, "scatterAddRows");
  a.need(lg, int64_t(li) * dim, "scatterAddRows g");
  if (a.ok()) scatter_add_rows(g, ids, int64_t(li), gtable, dim);
  return Napi::Value();
}

// ---- rope and attention ----------------------------------------------------------------------

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lx, lo, lp, lf;
  float* x = a.f32(0, "x", &lx);
  float* out = a.f32(1, "out", &lo);
  int32_t* pos = a.i32(2, "pos", &lp);
  int64_t B = a.size(3, "B"), T = a.size(4, "T"), H = a.size(5, "H"), D = a.size(6, "D");
  int64_t rot = a.size(7, "rotDim");
  float* inv_freq = a.f32(8, "invFreq", &lf);
  double scale = a.number(9, "scale");
  bool interleaved = a.boolean(10, "interleaved"), inverse = a.boolean(11, "inverse");
  a.check(rot % 2 == 0 && rot <= D, "rope: rotDim must be even and at most D");
  a.check(int64_t(lf) == rot / 2, "rope: invFreq must hold rotDim / 2 values");
  a.need(lx, B * T * H * D, "rope x");
  a.need(lo, B * T * H * D, "rope out");
  a.need(lp, B * T, "rope pos");
  if (a.ok()) rope(x, out, pos, B, T, H, D, rot, inv_freq, scale, interleaved, inverse);
  return Napi::Value();
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lq, lk, lv, lo, lp, lm;
  float* q = a.f32(0, "q", &lq);
  float* k = a.f32(1, "k", &lk);
  float* v = a.f32(2, "v", &lv);
  float* out = a.f32(3, "out", &lo);
  float* probs = a.f32(4, "probs", &lp, true);
  int64_t B = a.size(5, "B"), T = a.size(6, "T"), S = a.size(7, "S"), H = a.size(8, "H");
  int64_t KVH = a.size(9, "KVH"), D = a.size(10, "D");
  double scale = a.number(11, "scale");
  uint8_t* mask = a.u8(12, "keyMask", &lm, true);
  int64_t q_offset = a.integer(13, "qOffset");
  a.check(KVH > 0 && H % KVH == 0, "attention: H must be a multiple of KVH");
  a.need(lq, B * T * H * D, "attention q");
  a.need(lk, B * S * KVH * D, "attention k");
  a.need(lv, B * S * KVH * D, "attention v");
  a.need(lo, B * T * H * D, "attention out");
  if (probs) a.need(lp, B * H * T * S, "attention probs");
  if (mask) a.need(lm, B * S, "attention keyMask");
  if (a.ok()) attention(q, k, v, out, probs, B, T, S, H, KVH, D, float(scale), mask, q_offset);
  return Napi::Value();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t lq, lk, lv, lp, lgo, lgq, lgk, lgv;
  float* q = a.f32(0, "q", &lq);
  float* k = a.f32(1, "k", &lk);
  float* v = a.f32(2, "v", &lv);
  float* probs = a.f32(3, "probs", &lp);
  float* gout = a.f32(4, "gout", &lgo);
  float* gq = a.f32(5, "gq", &lgq);
  float* gk = a.f32(6, "gk", &lgk);
  float* gv = a.f32(7, "gv", &lgv);
  int64_t B = a.size(8, "B"), T = a.size(9, "T"), S = a.size(10, "S"), H = a.size(11, "H");
  int64_t KVH = a.size(12, "KVH"), D = a.size(13, "D");
  double scale = a.number(14, "scale");
  a.check(KVH > 0 && H % KVH == 0, "attentionBackward: H must be a multiple of KVH");
  a.need(lq, B * T * H * D, "attentionBackward q");
  a.need(lk, B * S * KVH * D, "attentionBackward k");
  a.need(lv, B * S * KVH * D, "attentionBackward v");
  a.need(lp, B * H * T * S, "attentionBackward probs");
  a.need(lgo, B * T * H * D, "attentionBackward gout");
  a.need(lgq, B * T * H * D, "attentionBackward gq");
  a.need(lgk, B * S * KVH * D, "attentionBackward gk");
  a.need(lgv, B * S * KVH * D, "attentionBackward gv");
  if (a.ok()) attention_backward(q, k, v, probs, gout, gq, gk, gv, B, T, S, H, KVH, D, float(scale));
  return Napi::Value();
}

// ---- info and threads ------------------------------------------------------------------------

std::string blas_config() {
#ifdef AMEND_OPENBLAS
  std::string s = openblas_get_config();
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
#else
  return "";
#endif
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", "native");
  std::string own = std::string("own blocked GEMM (") + gemm_own_isa() + ")";
  std::string blas = gemm_uses_blas() ? blas_config() : own;
  o.Set("blas", blas);
  o.Set("threads", num_threads());
  Napi::Array notes = Napi::Array::New(env);
  uint32_t i = 0;
  notes.Set(i++, "gemm: " + std::string(gemm_choice_reason()));
#ifdef AMEND_OPENBLAS
  {
    // The blas line already shows the configuration when OpenBLAS does the GEMM.
    int n = openblas_get_num_threads();
    std::string core = std::string("core ") + openblas_get_corename() + ", " + std::to_string(n) + (n == 1 ? " thread" : " threads");
    notes.Set(i++, gemm_uses_blas() ? "OpenBLAS: " + core + ", used for LAPACK and GEMM"
                                    : "OpenBLAS: " + blas_config() + " (" + core + "), used for LAPACK");
  }
#else
  notes.Set(i++, "built without OpenBLAS: own GEMM only, no LAPACK");
#endif
  notes.Set(i++, std::string("simd: ") + gemm_own_isa() + ", compiler " + __VERSION__);
  o.Set("notes", notes);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info);
  int64_t n = a.size(0, "n");
  a.check(n >= 1 && n <= 1024, "setThreads: n must be in [1, 1024]");
  if (!a.ok()) return Napi::Value();
  set_num_threads(int(n));
#ifdef AMEND_OPENBLAS
  openblas_set_num_threads(int(n));
#endif
  return Napi::Value();
}

// AMEND_THREADS, else the CPUs this process may run on: its affinity mask (taskset, cpusets)
// capped by a cgroup v2 CPU quota (a container limited to 2 CPUs on a 64-core host gets 2).
int default_threads() {
  if (const char* s = std::getenv("AMEND_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1) return n;
  }
  int n = 1;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char quota[32] = {0};
    long period = 0;
    if (std::fscanf(f, "%31s %ld", quota, &period) == 2 && std::strcmp(quota, "max") != 0 && period > 0) {
      long q = std::atol(quota);
      int cap = int((q + period - 1) / period);
      if (cap >= 1 && cap < n) n = cap;
    }
    std::fclose(f);
  }
#endif
  return n < 1 ? 1 : n;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  int threads = default_threads();
  set_num_threads(threads);
#ifdef AMEND_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, f, name));
  };
  fn("gemm", Gemm);
  fn("gemmOwn", GemmOwn);
#ifdef AMEND_OPENBLAS
  fn("gemmBlas", GemmBlas);
#endif
  fn("binary", Binary);
  fn("unary", Unary);
  fn("unaryBackward", UnaryBackward);
  fn("affine", Affine);
  fn("reduce", Reduce);
  fn("copyStrided", CopyStrided);
  fn("softmax", Softmax);
  fn("softmaxBackward", RowBackward<softmax_backward>);
  fn("logSoftmax", LogSoftmax);
  fn("logSoftmaxBackward", RowBackward<log_softmax_backward>);
  fn("layerNorm", LayerNorm);
  fn("layerNormBackward", LayerNormBackward);
  fn("rmsNorm", RmsNorm);
  fn("rmsNormBackward", RmsNormBackward);
  fn("gatherRows", GatherRows);
  fn("scatterAddRows", ScatterAddRows);
  fn("rope", Rope);
  fn("attention", Attention);
  fn("attentionBackward", AttentionBackward);
  fn("info", Info);
  fn("setThreads", SetThreads);
  InitLinalg(env, exports);
  return exports;
}

}  // namespace
}  // namespace amend

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return amend::Init(env, exports); }

NODE_API_MODULE(amend, InitModule)
