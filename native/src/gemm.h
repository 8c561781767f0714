#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace amend {

// n floats of a per-thread buffer (GEMM packing panels, attention's score blocks), 64-byte
// aligned, reused across calls (grown, never shrunk).
static inline float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n + 16) buf.resize(n + 16);
  uintptr_t p = (uintptr_t)buf.data();
  return (float*)((p + 63) & ~uintptr_t(63));
}

// C[b] = op(A[b]) · op(B[b]) + beta·C[b] for b < batch (semantics of Kernels.gemm in kernels.ts).
// beta is 0 (C is overwritten, never read) or 1.
using GemmFn = void (*)(bool transA, bool transB, int64_t batch, int64_t m, int64_t n, int64_t k,
                        const float* A, int64_t strideA, const float* B, int64_t strideB, float* C,
                        float beta);

// The cache-blocked, vectorised GEMM of this addon (always built).
void gemm_own(bool transA, bool transB, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A,
              int64_t strideA, const float* B, int64_t strideB, float* C, float beta);

// The GEMM behind Kernels.gemm: OpenBLAS or the own GEMM, whichever gemm_uses_blas() says.
void gemm(bool transA, bool transB, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A,
          int64_t strideA, const float* B, int64_t strideB, float* C, float beta);

// A strided matrix: element (i, j) at p[i*rs + j*cs]. A transpose is a swap of rs and cs.
struct MatView {
  const float* p;
  int64_t rs, cs;
};

// C (m×n, row stride ldc) = a·b, or C += a·b when accumulate; a is m×k, b is k×n. Runs on the
// calling thread; for kernels (attention) that parallelise over something else.
void gemm_serial(int64_t m, int64_t n, int64_t k, MatView a, MatView b, float* c, int64_t ldc, bool accumulate);

#ifdef AMEND_OPENBLAS
// cblas_sgemm per batch entry (a shared weight folded into one product).
void gemm_blas(bool transA, bool transB, int64_t batch, int64_t m, int64_t n, int64_t k, const float* A,
               int64_t strideA, const float* B, int64_t strideB, float* C, float beta);
#endif

// Whether gemm() hands large products to OpenBLAS, and why (for info()).
bool gemm_uses_blas();
const char* gemm_choice_reason();

// "avx512f", "avx2+fma" or "generic": the instruction set the own microkernel was built for.
const char* gemm_own_isa();

}  // namespace amend
