// The kernels of src/backend/kernels.ts as plain C++ on raw pointers. The doc comments there are
// the specification; addon.cc checks sizes and unwraps the typed arrays before calling these.
#pragma once
#include <cstdint>

namespace amend {

enum BinaryOp { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow };
enum UnaryOp {
  kNeg = 0, kExp, kLog, kSqrt, kRsqrt, kTanh, kSigmoid, kRelu,
  kGeluTanh, kGeluErf, kSilu, kAbs, kSquare, kRecip,
};
constexpr int kMaxRank = 8;

void binary(int op, const float* a, const int32_t* sa, const float* b, const int32_t* sb, float* out,
            const int32_t* shape, int rank);
void unary(int op, const float* x, float* out, int64_t n);
void unary_backward(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n);
void affine(const float* x, float* out, int64_t n, float scale, float shift);
void reduce(int kind, const float* x, float* out, int64_t outer, int64_t dim, int64_t inner, int32_t* argmax);
void copy_strided(const float* src, const int32_t* ss, float* dst, const int32_t* ds, const int32_t* shape,
                  int rank, bool accumulate);

void softmax(const float* x, float* out, int64_t rows, int64_t cols);
void softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols);
void log_softmax(const float* x, float* out, int64_t rows, int64_t cols);
void log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols);
void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps);
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* gy,
                         float* gx, float* gw, float* gb, int64_t rows, int64_t cols);
void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps);
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* gy, float* gx, float* gw,
                       int64_t rows, int64_t cols);

void gather_rows(const float* table, const int32_t* ids, int64_t nids, float* out, int64_t dim);
void scatter_add_rows(const float* g, const int32_t* ids, int64_t nids, float* gtable, int64_t dim);

void rope(const float* x, float* out, const int32_t* pos, int64_t B, int64_t T, int64_t H, int64_t D,
          int64_t rot_dim, const float* inv_freq, double scale, bool interleaved, bool inverse);
void attention(const float* q, const float* k, const float* v, float* out, float* probs, int64_t B, int64_t T,
               int64_t S, int64_t H, int64_t KVH, int64_t D, float scale, const uint8_t* key_mask,
               int64_t q_offset);
void attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* gout,
                        float* gq, float* gk, float* gv, int64_t B, int64_t T, int64_t S, int64_t H, int64_t KVH,
                        int64_t D, float scale);

}  // namespace amend
