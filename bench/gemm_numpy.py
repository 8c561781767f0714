"""numpy's matmul on the shapes bench/gemm.ts measures, for comparison in the same run.

usage: gemm_numpy.py SHAPES_JSON MIN_SECONDS
SHAPES_JSON is a list of {"ta", "tb", "m", "n", "k"}; op(A) is m×k, op(B) is k×n, and a
transposed operand is a transposed view of a contiguous array (numpy hands it to BLAS as a
transpose flag, no copy). The caller sets OPENBLAS_NUM_THREADS, and AMEND_BENCH_CLOCK=cpu to time
by process CPU time (see bench/gemm.ts). Prints one JSON object.
"""
import json
import os
import statistics
import sys
import time

if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help") else 2)

import numpy as np


def blas_library():
    """The BLAS shared object actually mapped into this process (after a matmul has run)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in path.lower() and ".so" in path:
                    libs.add(path)
    except OSError:
        pass
    return sorted(libs)


clock = time.process_time if os.environ.get("AMEND_BENCH_CLOCK") == "cpu" else time.perf_counter


def measure(ta, tb, m, n, k, min_seconds):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    opa = a.T if ta else a
    opb = b.T if tb else b
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(opa, opb, out=c)  # warm-up (thread start, page faults)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t0 = clock()
        np.matmul(opa, opb, out=c)
        times.append(clock() - t0)
    return {"best": min(times), "median": statistics.median(times), "reps": len(times)}


def main():
    shapes = json.loads(sys.argv[1])
    min_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    results = [measure(s["ta"], s["tb"], s["m"], s["n"], s["k"], min_seconds) for s in shapes]
    print(json.dumps({"numpy": np.__version__, "python": sys.executable, "blas": blas_library(), "results": results}))


if __name__ == "__main__":
    main()
