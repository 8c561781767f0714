// Pure-TypeScript dense linear algebra: the portable reference behind src/linalg.
//
// Every routine works on row-major Float64Array buffers that it owns (the caller copies its inputs
// into them), in double precision, and either returns results or reports failure through a
// return value so the public layer can phrase the error. Loops are arranged so the innermost one
// walks contiguous memory (rows), which matters more than anything else for speed in V8.
//
// Costs (n×n unless stated; flops counted as multiply-adds):
//   choleskyInPlace   n³/6               left-looking Cholesky blocked by columns (dot products
//                                        of row pieces, 2×2 register blocks)
//   choleskySolveInPlace  n²·nrhs        forward then backward substitution, row axpys
//   luSolveInPlace    n³/3 + n²·nrhs     right-looking LU with partial pivoting, blocked by panels
//   symEigInPlace     ≈ 2n³ + ≈ 3n³      Householder tridiagonalisation (full symmetric updates),
//                                         explicit Q accumulation (2n³/3), then implicit QL with
//                                         Wilkinson shifts applying each rotation to the vectors.
//                                         n = 1024: about 3.5 s on the 2-core dev machine.
//   svdJacobi         O(sweeps·r²·q)     one-sided (Hestenes) Jacobi on the r = min(m,n) rows of
//                                         Aᵀ (tall) or A (wide), q = max(m,n); typically 6–10 sweeps.
//                                         300×200: well under a second; 1024²: about 20 s.
// Jacobi SVD is chosen over eig(AᵀA) because it keeps full relative accuracy in the singular
// vectors and small singular values.

const EPS = 2.220446049250313e-16;

// ---- Cholesky ----------------------------------------------------------------------------------

/**
 * Overwrites the lower triangle of `a` (row-major n×n, symmetric; only the lower triangle is read)
 * with L such that A = L Lᵀ and zeroes the strict upper triangle. Returns -1 on success, or the
 * index k of the first pivot that is not positive (A's leading k+1 minor is not positive definite),
 * with `pivot[0]` set to the offending value.
 *
 * Left-looking and blocked by columns: for each block column J = [j0, j1), first subtract the
 * contribution of all finished columns (k < j0) from A[j0:, J] — the bulk of the n³/6 work, done
 * as dot products of row pieces in 2×2 register blocks over cache-sized k chunks — then finish
 * the block column with the unblocked row-oriented (Crout) recurrence over k ∈ [j0, j).
 */
export function choleskyInPlace(a: Float64Array, n: number, pivot?: Float64Array): number {
  const NB = 48, KC = 384;
  for (let j0 = 0; j0 < n; j0 += NB) {
    const j1 = Math.min(n, j0 + NB);
    // 1. A[i, j] -= Σ_{k<j0} L[i,k] L[j,k] for i ≥ j0, j ∈ J, j ≤ i (a few entries above the
    //    diagonal get written too; the upper triangle is never read and is zeroed at the end).
    for (let k0 = 0; k0 < j0; k0 += KC) {
      const k1 = Math.min(j0, k0 + KC);
      let i = j0;
      for (; i + 1 < n; i += 2) {
        const ri = i * n, ri2 = ri + n;
        const jEnd = Math.min(j1, i + 2);
        let j = j0;
        for (; j + 1 < jEnd; j += 2) {
          const rj = j * n, rj2 = rj + n;
          let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
          for (let k = k0; k < k1; k++) {
            const x0 = a[ri + k], x1 = a[ri2 + k], y0 = a[rj + k], y1 = a[rj2 + k];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s10 += x1 * y0;
            s11 += x1 * y1;
          }
          a[ri + j] -= s00;
          a[ri + j + 1] -= s01;
          a[ri2 + j] -= s10;
          a[ri2 + j + 1] -= s11;
        }
        if (j < jEnd) {
          const rj = j * n;
          let s0 = 0, s1 = 0;
          for (let k = k0; k < k1; k++) {
            const y = a[rj + k];
            s0 += a[ri + k] * y;
            s1 += a[ri2 + k] * y;
          }
          a[ri + j] -= s0;
          a[ri2 + j] -= s1;
        }
      }
      if (i < n) { // last row when n - j0 is odd
        const ri = i * n;
        for (let j = j0; j < j1; j++) a[ri + j] -= dot(a, ri + k0, a, j * n + k0, k1 - k0);
      }
    }
    // 2. Finish the block column with the columns j0..j-1 of the block itself.
    for (let i = j0; i < n; i++) {
      const ri = i * n;
      const jEnd = Math.min(j1, i + 1);
      for (let j = j0; j < jEnd; j++) {
        const rj = j * n;
        let s = a[ri + j];
        for (let k = j0; k < j; k++) s -= a[ri + k] * a[rj + k];
        if (j < i) {
          a[ri + j] = s / a[rj + j];
        } else {
          if (!(s > 0)) {
            if (pivot) pivot[0] = s;
            return i;
          }
          a[ri + i] = Math.sqrt(s);
        }
      }
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, i * n + n);
  return -1;
}

/** b (n×nrhs) ← (L Lᵀ)⁻¹ b, with L lower triangular as left by choleskyInPlace. */
export function choleskySolveInPlace(l: Float64Array, b: Float64Array, n: number, nrhs: number): void {
  // L Y = B: row i of Y from rows 0..i-1.
  for (let i = 0; i < n; i++) {
    const ri = i * n, bi = i * nrhs;
    for (let k = 0; k < i; k++) {
      const lik = l[ri + k];
      if (lik === 0) continue;
      const bk = k * nrhs;
      for (let c = 0; c < nrhs; c++) b[bi + c] -= lik * b[bk + c];
    }
    const d = l[ri + i];
    for (let c = 0; c < nrhs; c++) b[bi + c] /= d;
  }
  // Lᵀ X = Y, column-oriented: once row i of X is final, remove its contribution from rows < i
  // using row i of L (contiguous).
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * n, bi = i * nrhs;
    const d = l[ri + i];
    for (let c = 0; c < nrhs; c++) b[bi + c] /= d;
    for (let k = 0; k < i; k++) {
      const lik = l[ri + k];
      if (lik === 0) continue;
      const bk = k * nrhs;
      for (let c = 0; c < nrhs; c++) b[bk + c] -= lik * b[bi + c];
    }
  }
}

// ---- LU -----------------------------------------------------------------------------------------

/**
 * Solves A X = B in place by LU with partial pivoting: `a` (n×n) is destroyed, `b` (n×nrhs)
 * becomes X. The absolute pivots |u_kk| are written to `pivots` (length n). Returns -1 on
 * success or the first k with u_kk exactly zero (b is then left as it was).
 *
 * Right-looking and blocked: each panel of NB columns is factored unblocked (pivot search,
 * whole-row swaps, updates confined to the panel), then the rows of U to its right are solved
 * for, and the trailing matrix gets one rank-NB update (row axpys, four panel columns at a time),
 * so each trailing row is streamed once per panel instead of once per column.
 */
export function luSolveInPlace(a: Float64Array, b: Float64Array, n: number, nrhs: number, pivots: Float64Array): number {
  const NB = 32;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  let bad = -1;
  for (let k0 = 0; k0 < n; k0 += NB) {
    const k1 = Math.min(n, k0 + NB);
    // 1. Panel columns k0..k1-1, all rows ≥ k0.
    for (let k = k0; k < k1; k++) {
      let p = k, best = Math.abs(a[k * n + k]);
      for (let i = k + 1; i < n; i++) {
        const v = Math.abs(a[i * n + k]);
        if (v > best) { best = v; p = i; }
      }
      pivots[k] = best;
      if (p !== k) {
        const rk = k * n, rp = p * n;
        for (let j = 0; j < n; j++) { const t = a[rk + j]; a[rk + j] = a[rp + j]; a[rp + j] = t; }
        const t = perm[k]; perm[k] = perm[p]; perm[p] = t;
      }
      if (!(best > 0)) { // zero (or NaN) column below the diagonal: singular
        if (bad < 0) bad = k;
        continue;
      }
      const rk = k * n, akk = a[rk + k];
      for (let i = k + 1; i < n; i++) {
        const ri = i * n;
        const f = a[ri + k] / akk;
        a[ri + k] = f;
        if (f === 0) continue;
        for (let j = k + 1; j < k1; j++) a[ri + j] -= f * a[rk + j];
      }
    }
    if (k1 === n) break;
    // 2. U12: rows k0..k1-1, columns k1..n-1 ← L11⁻¹ A12 (unit lower forward substitution).
    for (let k = k0 + 1; k < k1; k++) {
      const rk = k * n;
      for (let r = k0; r < k; r++) {
        const f = a[rk + r];
        if (f === 0) continue;
        const rr = r * n;
        for (let j = k1; j < n; j++) a[rk + j] -= f * a[rr + j];
      }
    }
    // 3. A22 -= L21 U12, row by row, four panel columns per pass.
    for (let i = k1; i < n; i++) {
      const ri = i * n;
      let r = k0;
      for (; r + 3 < k1; r += 4) {
        const f0 = a[ri + r], f1 = a[ri + r + 1], f2 = a[ri + r + 2], f3 = a[ri + r + 3];
        if (f0 === 0 && f1 === 0 && f2 === 0 && f3 === 0) continue;
        const u0 = r * n, u1 = u0 + n, u2 = u1 + n, u3 = u2 + n;
        for (let j = k1; j < n; j++) {
          a[ri + j] -= f0 * a[u0 + j] + f1 * a[u1 + j] + f2 * a[u2 + j] + f3 * a[u3 + j];
        }
      }
      for (; r < k1; r++) {
        const f = a[ri + r];
        if (f === 0) continue;
        const ur = r * n;
        for (let j = k1; j < n; j++) a[ri + j] -= f * a[ur + j];
      }
    }
  }
  if (bad >= 0) return bad;
  // Permute B (rows): PB.
  const x = new Float64Array(n * nrhs);
  for (let i = 0; i < n; i++) x.set(b.subarray(perm[i] * nrhs, perm[i] * nrhs + nrhs), i * nrhs);
  // L Y = PB (unit lower), then U X = Y.
  for (let i = 0; i < n; i++) {
    const ri = i * n, xi = i * nrhs;
    for (let k = 0; k < i; k++) {
      const f = a[ri + k];
      if (f === 0) continue;
      const xk = k * nrhs;
      for (let c = 0; c < nrhs; c++) x[xi + c] -= f * x[xk + c];
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * n, xi = i * nrhs;
    for (let k = i + 1; k < n; k++) {
      const f = a[ri + k];
      if (f === 0) continue;
      const xk = k * nrhs;
      for (let c = 0; c < nrhs; c++) x[xi + c] -= f * x[xk + c];
    }
    const d = a[ri + i];
    for (let c = 0; c < nrhs; c++) x[xi + c] /= d;
  }
  b.set(x);
  return -1;
}

// ---- condition estimate ---------------------------------------------------------------------------

/**
 * x ← op(T)⁻¹ x for the lower (`upper` false) or upper triangle T of the row-major n×n `a`, op(T)
 * = T or Tᵀ, with a unit diagonal assumed when `unit`. Reads whole rows of `a` either way, so a
 * factor stored in either precision and either orientation (LAPACK's or the reference's) serves.
 */
export function triSolveInPlace(a: ArrayLike<number>, n: number, x: Float64Array, upper: boolean, trans: boolean, unit: boolean): void {
  if (!trans) {
    if (!upper) {
      for (let i = 0; i < n; i++) {
        const ri = i * n;
        let s = x[i];
        for (let j = 0; j < i; j++) s -= a[ri + j] * x[j];
        x[i] = unit ? s : s / a[ri + i];
      }
    } else {
      for (let i = n - 1; i >= 0; i--) {
        const ri = i * n;
        let s = x[i];
        for (let j = i + 1; j < n; j++) s -= a[ri + j] * x[j];
        x[i] = unit ? s : s / a[ri + i];
      }
    }
  } else if (!upper) { // Tᵀ is upper: row i of a is column i of Tᵀ
    for (let i = n - 1; i >= 0; i--) {
      const ri = i * n;
      if (!unit) x[i] /= a[ri + i];
      const xi = x[i];
      for (let j = 0; j < i; j++) x[j] -= a[ri + j] * xi;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const ri = i * n;
      if (!unit) x[i] /= a[ri + i];
      const xi = x[i];
      for (let j = i + 1; j < n; j++) x[j] -= a[ri + j] * xi;
    }
  }
}

/**
 * An estimate (a lower bound, usually within a factor of 3) of ‖M‖₁ for an n×n M known only
 * through x ← M x (`apply`) and x ← Mᵀ x (`applyT`): Hager's method with Higham's refinements
 * (at most 5 iterations, then an alternating-sign test vector), as LAPACK's ?lacn2 estimates
 * ‖A⁻¹‖₁ from a factorisation for ?pocon / ?gecon. Costs 3 to 11 applications.
 */
export function norm1Estimate(n: number, apply: (x: Float64Array) => void, applyT: (x: Float64Array) => void): number {
  if (n === 0) return 0;
  const l1 = (v: Float64Array): number => { let s = 0; for (let i = 0; i < n; i++) s += Math.abs(v[i]); return s; };
  let x = new Float64Array(n).fill(1 / n);
  let est = 0, last = -1;
  for (let iter = 0; iter < 5; iter++) {
    apply(x);
    const e = l1(x);
    if (iter > 0 && !(e > est)) break; // no progress (or NaN, which is caught by the caller)
    est = e;
    for (let i = 0; i < n; i++) x[i] = x[i] >= 0 ? 1 : -1;
    const xs = x.slice();
    applyT(x);
    let j = 0, zx = 0;
    for (let i = 0; i < n; i++) {
      if (Math.abs(x[i]) > Math.abs(x[j])) j = i;
      zx += x[i] * xs[i];
    }
    if (!Number.isFinite(zx)) return Infinity;
    if (iter > 0 && (j === last || Math.abs(x[j]) <= zx)) break;
    last = j;
    x = new Float64Array(n);
    x[j] = 1;
  }
  // Higham's extra vector catches matrices on which the iteration stalls at a poor estimate.
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) b[i] = (i % 2 ? -1 : 1) * (1 + (n > 1 ? i / (n - 1) : 0));
  apply(b);
  const alt = (2 * l1(b)) / (3 * n);
  return alt > est || Number.isNaN(alt) ? alt : est;
}

// ---- symmetric eigendecomposition ---------------------------------------------------------------

/**
 * Eigendecomposition of the symmetric n×n matrix in `a` (row-major; only the lower triangle is
 * read, as LAPACK's routine is called here; destroyed).
 * Returns eigenvalues ascending and the eigenvectors as a row-major n×n matrix whose column j
 * belongs to values[j]. Throws a plain Error if QL fails to converge (not expected in practice).
 */
export function symEigInPlace(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const d = new Float64Array(n); // diagonal of T
  const e = new Float64Array(n); // e[i] = T[i, i+1]; e[n-1] = 0
  const tau = new Float64Array(n);
  // Householder vectors are kept in the strict upper part of row k of `a` (entries k+1..n-1),
  // which by symmetry is no longer needed once step k is done.
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = a[j * n + i];
  const scale = pow2Scale(a, n * n);
  if (scale !== 1) for (let i = 0; i < n * n; i++) a[i] /= scale;

  // 1. Tridiagonalise: A = Q T Qᵀ with Q = H_0 H_1 ... H_{n-3}, H_k = I - tau_k v_k v_kᵀ.
  for (let k = 0; k + 2 < n; k++) {
    const rk = k * n;
    const m0 = k + 1; // the reflector acts on indices m0..n-1
    // x = A[k, m0..n-1] (row k == column k by symmetry)
    let colMax = 0; // the column's own scale (the matrix's, `scale`, is applied at the end)
    for (let j = m0; j < n; j++) colMax = Math.max(colMax, Math.abs(a[rk + j]));
    if (colMax === 0) { tau[k] = 0; e[k] = 0; continue; }
    let tail = 0; // ||x[1:]||² (scaled)
    for (let j = m0 + 1; j < n; j++) { const v = a[rk + j] / colMax; tail += v * v; }
    const x0 = a[rk + m0];
    if (tail === 0) { tau[k] = 0; e[k] = x0; continue; } // already tridiagonal in this column
    const norm = colMax * Math.sqrt((x0 / colMax) * (x0 / colMax) + tail);
    const alpha = x0 >= 0 ? -norm : norm;
    // v = x - alpha e1, stored in place of x; tau = 2 / (vᵀv)
    a[rk + m0] = x0 - alpha;
    let vv = 0;
    for (let j = m0; j < n; j++) vv += a[rk + j] * a[rk + j];
    const t = 2 / vv;
    tau[k] = t;
    e[k] = alpha;
    // p = t · A_sub v   (A_sub = A[m0.., m0..])
    let pv = 0;
    for (let i = m0; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let j = m0; j < n; j++) s += a[ri + j] * a[rk + j];
      p[i] = t * s;
      pv += p[i] * a[rk + i];
    }
    // w = p - (t/2)(pᵀv) v ; A_sub ← A_sub - v wᵀ - w vᵀ
    const kk = 0.5 * t * pv;
    for (let i = m0; i < n; i++) p[i] -= kk * a[rk + i];
    for (let i = m0; i < n; i++) {
      const ri = i * n, vi = a[rk + i], wi = p[i];
      for (let j = m0; j < n; j++) a[ri + j] -= vi * p[j] + wi * a[rk + j];
    }
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i];
  if (n >= 2) e[n - 2] = a[(n - 2) * n + (n - 1)];
  e[n - 1] = 0;

  // 2. Accumulate Q = H_0 (H_1 (... (H_{n-3} I))) into `q` (row-major), right to left so each
  // step only touches the trailing block where the partial product differs from I.
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = n - 3; k >= 0; k--) {
    const t = tau[k];
    if (t === 0) continue;
    const rk = k * n, m0 = k + 1;
    // q_sub ← q_sub - t v (vᵀ q_sub)
    p.fill(0, m0, n);
    for (let r = m0; r < n; r++) {
      const vr = a[rk + r];
      if (vr === 0) continue;
      const rr = r * n;
      for (let j = m0; j < n; j++) p[j] += vr * q[rr + j];
    }
    for (let r = m0; r < n; r++) {
      const f = t * a[rk + r];
      if (f === 0) continue;
      const rr = r * n;
      for (let j = m0; j < n; j++) q[rr + j] -= f * p[j];
    }
  }
  // Work with Qᵀ so that the rotations below act on contiguous rows: row j of `z` will end up
  // as eigenvector j.
  const z = q;
  transposeSquareInPlace(z, n);

  // 3. Implicit QL with Wilkinson shifts on (d, e); every rotation of T's coordinates i, i+1 is
  // also applied to rows i, i+1 of z.
  const maxIter = 30 * Math.max(n, 1);
  let iter = 0;
  for (let l = 0; l < n; l++) {
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= EPS * dd) break;
      }
      if (m === l) break;
      if (++iter > maxIter) throw new Error('symEig: QL iteration did not converge');
      // Wilkinson-type shift from the leading 2×2 block at l.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1, c = 1, pp = 0;
      let i = m - 1;
      let deflated = false;
      for (; i >= l; i--) {
        const f = s * e[i], b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) { // underflow: split the problem here
          d[i + 1] -= pp;
          e[m] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - pp;
        r = (d[i] - g) * s + 2 * c * b;
        pp = s * r;
        d[i + 1] = g + pp;
        g = c * r - b;
        const zi = i * n, zj = zi + n;
        for (let k = 0; k < n; k++) {
          const h = z[zj + k];
          z[zj + k] = s * z[zi + k] + c * h;
          z[zi + k] = c * z[zi + k] - s * h;
        }
      }
      if (deflated) continue;
      d[l] -= pp;
      e[l] = g;
      e[m] = 0;
    }
  }

  // 4. Sort ascending; column j of the result is row order[j] of z.
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j] * n;
    values[j] = d[order[j]] * scale;
    for (let k = 0; k < n; k++) vectors[k * n + j] = z[src + k];
  }
  return { values, vectors };
}

/**
 * A power of two close to max|x| (1 when x is all zero or not finite), so that dividing by it is
 * exact and brings the entries near 1: keeps squares and products away from overflow/underflow.
 */
function pow2Scale(x: Float64Array, len: number): number {
  let mx = 0;
  for (let i = 0; i < len; i++) { const v = Math.abs(x[i]); if (v > mx) mx = v; }
  if (!(mx > 0) || !Number.isFinite(mx)) return 1;
  return Math.pow(2, Math.round(Math.log2(mx)));
}

/** In-place transpose of a square row-major matrix. */
function transposeSquareInPlace(a: Float64Array | Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const t = a[i * n + j];
      a[i * n + j] = a[j * n + i];
      a[j * n + i] = t;
    }
  }
}

// ---- SVD ------------------------------------------------------------------------------------------

/**
 * Thin SVD of the row-major m×n matrix `a` (not modified): A = U diag(S) Vt with U m×r, S
 * descending (length r), Vt r×n, r = min(m, n). One-sided Jacobi on the rows of W, where
 * W = Aᵀ (r = n rows of length m) when m ≥ n and W = A (r = m rows of length n) otherwise.
 * Rotations J with W ← Jᵀ W (accumulated in Y, r×r) make W's rows mutually orthogonal; then
 * W = Yᵀ Σ Q with Q's rows orthonormal, so A = Qᵀ Σ Y (tall) or A = Yᵀ Σ Q (wide).
 * Rows whose singular value is zero (or at roundoff level) get orthonormal completions, so U and
 * Vt always have orthonormal columns / rows.
 */
export function svdJacobi(a: Float64Array, m: number, n: number): { U: Float64Array; S: Float64Array; Vt: Float64Array } {
  const tall = m >= n;
  const r = Math.min(m, n), q = Math.max(m, n);
  const w = new Float64Array(r * q);
  if (tall) {
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * q + i] = a[i * n + j];
  } else {
    w.set(a.subarray(0, m * n));
  }
  const scale = pow2Scale(w, r * q);
  if (scale !== 1) for (let i = 0; i < r * q; i++) w[i] /= scale;
  const y = new Float64Array(r * r);
  for (let i = 0; i < r; i++) y[i * r + i] = 1;

  const tol = EPS * Math.max(1, Math.sqrt(q));
  const norms = new Float64Array(r);
  const maxSweeps = 80;
  let sweep = 0;
  for (; sweep < maxSweeps; sweep++) {
    let largest = 0;
    for (let i = 0; i < r; i++) largest = Math.max(largest, (norms[i] = dot(w, i * q, w, i * q, q)));
    // A row at roundoff level of the largest (a rank-deficient A) is noise: rotating it against
    // another row cannot make the pair orthogonal to relative precision, so the sweeps would never
    // end. It is left alone and completed below like a zero row (same threshold as \`tiny\`).
    const negligible = largest * (q * EPS) ** 2;
    let rotated = false;
    for (let i = 0; i < r - 1; i++) {
      const wi = i * q;
      for (let j = i + 1; j < r; j++) {
        const alpha = norms[i], beta = norms[j];
        if (alpha <= negligible || beta <= negligible) continue;
        const wj = j * q;
        const gamma = dot(w, wi, w, wj, q);
        if (Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let k = 0; k < q; k++) {
          const x = w[wi + k], z = w[wj + k];
          w[wi + k] = c * x - s * z;
          w[wj + k] = s * x + c * z;
        }
        const yi = i * r, yj = j * r;
        for (let k = 0; k < r; k++) {
          const x = y[yi + k], z = y[yj + k];
          y[yi + k] = c * x - s * z;
          y[yj + k] = s * x + c * z;
        }
        // Cheap norm updates; recompute when the update cancels (a row collapsing towards zero).
        const ni = alpha - t * gamma, nj = beta + t * gamma;
        norms[i] = ni < 0.25 * alpha ? dot(w, wi, w, wi, q) : ni;
        norms[j] = nj < 0.25 * beta ? dot(w, wj, w, wj, q) : nj;
      }
    }
    if (!rotated) break;
  }
  if (sweep === maxSweeps) throw new Error('svd: one-sided Jacobi did not converge');

  // Singular values, sorted descending.
  const sig = new Float64Array(r);
  for (let i = 0; i < r; i++) sig[i] = Math.sqrt(dot(w, i * q, w, i * q, q));
  const order = Array.from({ length: r }, (_, i) => i).sort((x, y2) => sig[y2] - sig[x]);
  const S = new Float64Array(r);
  const qn = new Float64Array(r * q); // normalised rows of W, in sorted order
  const yv = new Float64Array(r * r); // rows of Y, in sorted order
  for (let k = 0; k < r; k++) S[k] = sig[order[k]] * scale;
  const smax = r > 0 ? sig[order[0]] : 0;
  const tiny = smax * q * EPS;
  for (let k = 0; k < r; k++) {
    const src = order[k];
    const sv = sig[src];
    yv.set(y.subarray(src * r, src * r + r), k * r);
    if (sv > tiny && sv > 0) {
      for (let t = 0; t < q; t++) qn[k * q + t] = w[src * q + t] / sv;
    } else {
      // Roundoff-level or zero: keep the value, but complete Q with an orthonormal row.
      completeRow(qn, k, q, sv > 0 ? w.subarray(src * q, src * q + q) : null);
    }
  }
  let U: Float64Array, Vt: Float64Array;
  if (tall) { // U = Qᵀ (m×r), Vt = Y (r×n, r = n)
    U = new Float64Array(m * r);
    for (let k = 0; k < r; k++) for (let i = 0; i < m; i++) U[i * r + k] = qn[k * q + i];
    Vt = yv;
  } else { // U = Yᵀ (m×m), Vt = Q (r×n)
    U = new Float64Array(m * r);
    for (let k = 0; k < r; k++) for (let i = 0; i < m; i++) U[i * r + k] = yv[k * r + i];
    Vt = qn;
  }
  return { U, S, Vt };
}

function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, len: number): number {
  let s0 = 0, s1 = 0, k = 0;
  for (; k + 1 < len; k += 2) {
    s0 += x[xo + k] * y[yo + k];
    s1 += x[xo + k + 1] * y[yo + k + 1];
  }
  if (k < len) s0 += x[xo + k] * y[yo + k];
  return s0 + s1;
}

/**
 * Sets row k of `rows` (rows × len, rows 0..k-1 orthonormal) to a unit vector orthogonal to the
 * previous rows: the given direction if it survives orthogonalisation, else the best unit vector
 * e_t. Two passes of Gram–Schmidt keep it orthogonal to working precision. Needs k < len.
 */
function completeRow(rows: Float64Array, k: number, len: number, hint: Float64Array | null): void {
  const v = new Float64Array(len);
  const project = (): number => {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < k; i++) {
        const c = dot(rows, i * len, v, 0, len);
        if (c === 0) continue;
        for (let t = 0; t < len; t++) v[t] -= c * rows[i * len + t];
      }
    }
    return Math.sqrt(dot(v, 0, v, 0, len));
  };
  if (hint) {
    const hn = Math.sqrt(dot(hint, 0, hint, 0, len));
    for (let t = 0; t < len; t++) v[t] = hint[t] / hn;
    const nv = project();
    if (nv > 0.5) {
      for (let t = 0; t < len; t++) rows[k * len + t] = v[t] / nv;
      return;
    }
  }
  // Fallback: the unit vector e_t with the largest component outside the span of the previous
  // rows (its squared residual is 1 - Σ_i rows[i,t]², and the best one is ≥ (len-k)/len).
  let best = 0, bestRes = -1;
  for (let t = 0; t < len; t++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += rows[i * len + t] * rows[i * len + t];
    if (1 - s > bestRes) { bestRes = 1 - s; best = t; }
  }
  v.fill(0);
  v[best] = 1;
  const nv = project();
  for (let t = 0; t < len; t++) rows[k * len + t] = v[t] / nv;
}
