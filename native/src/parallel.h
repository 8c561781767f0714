// Threading for the kernels: one knob (num_threads) and one primitive (parallel_for).
//
// The addon runs its own small thread pool rather than OpenMP. On a machine with as many cores
// as threads, an idle pool that spins steals a core from whoever runs next; libgomp's workers
// spin for milliseconds after each parallel region (long enough to halve the speed of an
// OpenBLAS call that follows), while this pool spins only ~100 µs (see threads.cc).
#pragma once
#include <cstdint>
#include <type_traits>

namespace amend {

int num_threads();
void set_num_threads(int n);

// Runs fn(ctx, begin, end) for `parts` equal chunks of [0, n): chunk 0 on the calling thread,
// the others on the pool. Falls back to one serial call when the pool is busy (nested call, or
// a second JS thread) so it never blocks or deadlocks.
void run_parallel(void (*fn)(void*, int64_t, int64_t), void* ctx, int64_t n, int parts);

// Below this much work (roughly: floats touched, or flops/8) a kernel runs on the calling thread:
// waking a worker and joining it costs about a microsecond, as much as ~30k floats of streaming.
constexpr int64_t kParallelMinWork = 32768;

// Calls f(begin, end) on disjoint chunks covering [0, n), in parallel when `work` is large enough.
template <class F>
inline void parallel_for(int64_t n, int64_t work, F&& f) {
  if (n <= 0) return;
  int nt = num_threads();
  if (nt <= 1 || n == 1 || work < kParallelMinWork) {
    f(int64_t(0), n);
    return;
  }
  if (nt > n) nt = int(n);
  using Fn = typename std::remove_reference<F>::type;
  run_parallel([](void* c, int64_t b, int64_t e) { (*static_cast<Fn*>(c))(b, e); },
               const_cast<void*>(static_cast<const void*>(&f)), n, nt);
}

}  // namespace amend
