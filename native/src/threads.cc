// The thread pool behind parallel_for.
//
// Workers wait for a new generation number. After finishing a chunk a worker keeps polling for
// the next job for a short while (kernels come back to back in a forward pass, and a futex
// wake-up costs tens of microseconds), then sleeps on a condition variable so that an idle
// process burns no CPU and leaves the cores to OpenBLAS's own threads. The caller waits for the
// workers the same way: polling first, then asleep. AMEND_SPIN_US sets the polling time (100).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace amend {

namespace {

thread_local bool in_parallel = false;  // nested parallel_for calls run serially

struct Pool {
  std::vector<std::thread> workers;
  // Threads including the caller. Written only under `busy` (set_num_threads); atomic because
  // num_threads() reads it from any JS thread without the lock, as a hint for cutting work.
  std::atomic<int> size{1};

  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::mutex busy;  // held by the thread dispatching a job
  std::atomic<bool> caller_sleeps{false};
  std::mutex done_mu;
  std::condition_variable done_cv;  // the last worker of a job wakes a sleeping caller

  // The current job (written before generation is bumped, read after it is seen).
  void (*fn)(void*, int64_t, int64_t) = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  int parts = 0;

  std::chrono::microseconds spin{100};

  void worker(int id, uint64_t seen) {
    in_parallel = true;
    for (;;) {
      uint64_t g = wait_for_change(seen);
      if (stop.load(std::memory_order_acquire)) return;
      seen = g;
      // Every worker acknowledges every job, even one it has no chunk of: the caller may only
      // publish the next job once nobody can still be reading this one's fields.
      if (id < parts) fn(ctx, n * id / parts, n * (id + 1) / parts);
      if (pending.fetch_sub(1) == 1 && caller_sleeps.load()) {
        { std::lock_guard<std::mutex> lk(done_mu); }
        done_cv.notify_one();
      }
    }
  }

  uint64_t wait_for_change(uint64_t seen) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0;; i++) {
      uint64_t g = generation.load(std::memory_order_acquire);
      if (g != seen) return g;
      cpu_relax();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > spin) break;
    }
    sleepers.fetch_add(1);
    std::unique_lock<std::mutex> lk(mu);
    uint64_t g;
    while ((g = generation.load()) == seen) cv.wait(lk);
    sleepers.fetch_sub(1);
    return g;
  }

  void start(int threads) {
    shutdown();
    int count = threads < 1 ? 1 : threads;
    size.store(count);
    stop.store(false);
    // New workers start from the current generation: the last job (and shutdown's wake-up) is
    // not theirs to run.
    uint64_t g = generation.load();
    for (int i = 1; i < count; i++) workers.emplace_back([this, i, g] { worker(i, g); });
  }

  void shutdown() {
    if (workers.empty()) return;
    stop.store(true);
    generation.fetch_add(1);
    {
      std::lock_guard<std::mutex> lk(mu);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  void run(void (*f)(void*, int64_t, int64_t), void* c, int64_t count, int p) {
    fn = f, ctx = c, n = count, parts = p;
    pending.store(size.load() - 1, std::memory_order_relaxed);
    generation.fetch_add(1);  // seq_cst: pairs with the sleepers increment in wait_for_change
    if (sleepers.load() > 0) {
      { std::lock_guard<std::mutex> lk(mu); }
      cv.notify_all();
    }
    f(c, 0, count / p);
    // Workers normally finish within microseconds of the caller. On an oversubscribed machine a
    // worker may not even be running; then wait asleep rather than burn the core it needs.
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; pending.load(std::memory_order_acquire) > 0; i++) {
      cpu_relax();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > spin) {
        std::unique_lock<std::mutex> lk(done_mu);
        caller_sleeps.store(true);  // seq_cst: pairs with the last worker's decrement
        done_cv.wait(lk, [this] { return pending.load() == 0; });
        caller_sleeps.store(false);
        break;
      }
    }
  }
};

// Never destroyed: worker threads may still be waiting on its members while the process exits.
Pool* pool() {
  static Pool* p = [] {
    Pool* q = new Pool();
    if (const char* s = std::getenv("AMEND_SPIN_US")) q->spin = std::chrono::microseconds(std::atol(s));
    unsigned hc = std::thread::hardware_concurrency();
    int n = hc ? int(hc) : 1;
    if (const char* s = std::getenv("AMEND_THREADS")) n = std::atoi(s);
    q->start(n);
    return q;
  }();
  return p;
}

}  // namespace

int num_threads() { return in_parallel ? 1 : pool()->size.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  Pool* p = pool();
  std::lock_guard<std::mutex> lk(p->busy);
  if (n < 1) n = 1;
  if (n != p->size.load()) p->start(n);
}

void run_parallel(void (*fn)(void*, int64_t, int64_t), void* ctx, int64_t n, int parts) {
  Pool* p = pool();
  if (parts <= 1 || in_parallel || !p->busy.try_lock()) {
    fn(ctx, 0, n);
    return;
  }
  // Clamp only now that `busy` is held: another JS thread's set_num_threads may have shrunk the
  // pool since the caller chose `parts`, and a chunk numbered past the workers would never run.
  int size = p->size.load();
  if (parts > size) parts = size;
  if (parts <= 1) {
    p->busy.unlock();
    fn(ctx, 0, n);
    return;
  }
  in_parallel = true;
  p->run(fn, ctx, n, parts);
  in_parallel = false;
  p->busy.unlock();
}

}  // namespace amend
