"""numpy's side of bench/linalg.ts: the same matrices, timed in the same run.

usage: linalg_numpy.py FILE N REPS
FILE holds an n×n float64 matrix (row-major) followed by an n-vector, as bench/linalg.ts writes
them. Times np.linalg.cholesky, solve, eigh and svd (thin) on copies, one warm-up call each, and
prints one JSON object {op: {"runs", "median", "best"}} in seconds.
"""
import json
import statistics
import sys
import time

if len(sys.argv) != 4 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help") else 2)

import numpy as np

n, reps = int(sys.argv[2]), int(sys.argv[3])
data = np.fromfile(sys.argv[1], dtype="<f8")
a, b = data[: n * n].reshape(n, n), data[n * n : n * n + n].reshape(n, 1)
ops = {
    "cholesky": lambda a, b: np.linalg.cholesky(a),
    "solve": lambda a, b: np.linalg.solve(a, b),
    "symEig": lambda a, b: np.linalg.eigh(a),
    "svd": lambda a, b: np.linalg.svd(a, full_matrices=False),
}
out = {}
for name, f in ops.items():
    f(a.copy(), b.copy())
    runs = []
    for _ in range(reps):
        ac, bc = a.copy(), b.copy()
        t0 = time.perf_counter()
        f(ac, bc)
        runs.append(time.perf_counter() - t0)
    out[name] = {"runs": runs, "median": statistics.median(runs), "best": min(runs)}
print(json.dumps(out))
