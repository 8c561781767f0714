// Tests for src/linalg: both backends (the TS reference always; LAPACK when the native addon was
// built with OpenBLAS), both precisions, factor reconstructions, orthonormality, residuals, known
// small answers, agreement between backends, and the errors users can trigger.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AmendError } from '../src/errors.js';
import { mulberry32 } from '../src/tensor/random.js';
import {
  cholesky, choleskySolve, inverseSPD, lapackAvailable, linalgBackend, setLinalgBackend, solve,
  solveSPD, svd, symEig, type FloatArray, type LinalgBackend,
} from '../src/linalg/index.js';

// ---- helpers --------------------------------------------------------------------------------------

/** Deterministic uniform(-1, 1) numbers. */
function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}


function randMat(m: number, n: number, seed: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(m * n);
  for (let i = 0; i < a.length; i++) a[i] = r();
  return a;
}

/** C = op(A) op(B) in double; A is m×k (or k×m when ta), B is k×n (or n×k when tb). */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number, ta = false, tb = false): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = ta ? a[p * m + i] : a[i * k + p];
      if (aip === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aip * (tb ? b[j * k + p] : b[p * n + j]);
    }
  }
  return c;
}

/** A random symmetric positive definite matrix B Bᵀ / n + I. */
function spd(n: number, seed: number): Float64Array {
  const b = randMat(n, n, seed);
  const a = matmul(b, b, n, n, n, false, true);
  for (let i = 0; i < n * n; i++) a[i] /= n;
  for (let i = 0; i < n; i++) a[i * n + i] += 1;
  return a;
}

function symmetric(n: number, seed: number): Float64Array {
  const b = randMat(n, n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = b[i * n + j] + b[j * n + i];
  return a;
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  assert.equal(x.length, y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return d;
}

function maxAbs(x: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]));
  return d;
}

function identity(n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = 1;
  return a;
}

/** max |QᵀQ - I| for the k columns of the row-major m×k matrix q. */
function colOrthoErr(q: ArrayLike<number>, m: number, k: number): number {
  return maxAbsDiff(matmul(q, q, k, m, k, true, false), identity(k));
}

/** max |Q Qᵀ - I| for the k rows of the row-major k×n matrix q. */
function rowOrthoErr(q: ArrayLike<number>, k: number, n: number): number {
  return maxAbsDiff(matmul(q, q, k, n, k, false, true), identity(k));
}

type Ctor = Float64ArrayConstructor | Float32ArrayConstructor;
const DTYPES: { name: string; ctor: Ctor; tol: number }[] = [
  { name: 'f64', ctor: Float64Array, tol: 1e-10 },
  { name: 'f32', ctor: Float32Array, tol: 1e-4 },
];

const BACKENDS: LinalgBackend[] = lapackAvailable() ? ['js', 'lapack'] : ['js'];
const NO_LAPACK = lapackAvailable() ? false : 'native addon with LAPACK (OpenBLAS) is not available';
if (NO_LAPACK) console.log(`# linalg: skipping LAPACK comparisons: ${NO_LAPACK}`);

function throwsAmend(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof AmendError && re.test(e.message));
}

// ---- known small answers ----------------------------------------------------------------------------

for (const backend of BACKENDS) {
  const o = { backend };

  test(`[${backend}] known small matrices`, () => {
    const L = cholesky(new Float64Array([4, 12, -16, 12, 37, -43, -16, -43, 98]), 3, o);
    assert.ok(maxAbsDiff(L, [2, 0, 0, 6, 1, 0, -8, 5, 3]) < 1e-14);
    const L2 = cholesky(new Float64Array([4, 2, 2, 3]), 2, o);
    assert.ok(maxAbsDiff(L2, [2, 0, 1, Math.SQRT2]) < 1e-15);

    // (L Lᵀ)x = b with A = [[4,2],[2,3]]: x = A⁻¹ b = [3 -2; -2 4]/8 · b
    const x = choleskySolve(L2, new Float64Array([1, 2]), 2, 1, o);
    assert.ok(maxAbsDiff(x, [-1 / 8, 6 / 8]) < 1e-15);

    const X = solve(new Float64Array([1, 2, 3, 4]), new Float64Array([5, 6, 7, 8]), 2, 2, o);
    assert.ok(maxAbsDiff(X, [-3, -4, 4, 5]) < 1e-14);
    // a permutation matrix needs pivoting
    const P = solve(new Float64Array([0, 1, 1, 0]), new Float64Array([2, 3]), 2, 1, o);
    assert.ok(maxAbsDiff(P, [3, 2]) < 1e-15);

    const inv = inverseSPD(new Float64Array([4, 2, 2, 3]), 2, o);
    assert.ok(maxAbsDiff(inv, [3 / 8, -2 / 8, -2 / 8, 4 / 8]) < 1e-15);

    const e = symEig(new Float64Array([2, 1, 1, 2]), 2, o);
    assert.ok(maxAbsDiff(e.values, [1, 3]) < 1e-15);
    const s = Math.SQRT1_2;
    // column 0 ∝ (1, -1), column 1 ∝ (1, 1), up to sign
    assert.ok(Math.abs(Math.abs(e.vectors[0]) - s) < 1e-15 && Math.abs(e.vectors[0] + e.vectors[2]) < 1e-15);
    assert.ok(Math.abs(Math.abs(e.vectors[1]) - s) < 1e-15 && Math.abs(e.vectors[1] - e.vectors[3]) < 1e-15);
    const d = symEig(new Float64Array([3, 0, 0, 0, -1, 0, 0, 0, 2]), 3, o);
    assert.ok(maxAbsDiff(d.values, [-1, 2, 3]) < 1e-15);

    // [[3,0],[4,5]]: AᵀA = [[25,20],[20,25]] → σ² = 45, 5; v1 = (1,1)/√2
    const v = svd(new Float64Array([3, 0, 4, 5]), 2, 2, o);
    assert.ok(maxAbsDiff(v.S, [Math.sqrt(45), Math.sqrt(5)]) < 1e-14);
    assert.ok(Math.abs(Math.abs(v.Vt[0]) - s) < 1e-14 && Math.abs(v.Vt[0] - v.Vt[1]) < 1e-14);
    // diag(3, -2) in a 3×2 frame
    const w = svd(new Float64Array([3, 0, 0, -2, 0, 0]), 3, 2, o);
    assert.ok(maxAbsDiff(w.S, [3, 2]) < 1e-15);
  });

  // ---- reconstructions and residuals, both precisions -----------------------------------------------

  for (const { name, ctor, tol } of DTYPES) {
    const cast = (x: Float64Array): FloatArray => ctor.from(x);
    const tag = `[${backend} ${name}]`;

    test(`${tag} cholesky: L Lᵀ = A, lower triangular, same type, input untouched`, () => {
      for (const n of [1, 2, 7, 40, 130]) {
        const a64 = spd(n, 10 + n);
        const a = cast(a64);
        const before = a.slice();
        const L = cholesky(a, n, o);
        assert.equal(L.constructor, ctor);
        assert.deepEqual(a, before);
        for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(L[i * n + j], 0);
        const rec = matmul(L, L, n, n, n, false, true);
        assert.ok(maxAbsDiff(rec, a) <= tol * maxAbs(a), `n=${n}: ${maxAbsDiff(rec, a)}`);
      }
    });

    test(`${tag} solveSPD / choleskySolve / inverseSPD residuals`, () => {
      for (const [n, nrhs] of [[1, 1], [9, 1], [33, 4], [120, 17]] as const) {
        const a = cast(spd(n, 100 + n));
        const b = cast(randMat(n, nrhs, 200 + n));
        const bb = b.slice();
        const x = solveSPD(a, b, n, nrhs, o);
        assert.equal(x.constructor, ctor);
        assert.deepEqual(b, bb);
        const res = maxAbsDiff(matmul(a, x, n, n, nrhs), b);
        assert.ok(res <= tol * 10, `solveSPD n=${n}: residual ${res}`);
        const x2 = choleskySolve(cholesky(a, n, o), b, n, nrhs, o);
        assert.ok(maxAbsDiff(x, x2) <= tol * 10);
        const inv = inverseSPD(a, n, o);
        assert.ok(maxAbsDiff(matmul(a, inv, n, n, n), identity(n)) <= tol * 10);
        for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(inv[i * n + j], inv[j * n + i]);
      }
    });

    test(`${tag} solve (LU): residuals, input untouched`, () => {
      for (const [n, nrhs] of [[1, 1], [5, 3], [64, 1], [150, 8]] as const) {
        const a64 = randMat(n, n, 300 + n);
        for (let i = 0; i < n; i++) a64[i * n + i] += 2; // keep it comfortably non-singular
        const a = cast(a64), b = cast(randMat(n, nrhs, 400 + n));
        const aa = a.slice(), bb = b.slice();
        const x = solve(a, b, n, nrhs, o);
        assert.deepEqual(a, aa);
        assert.deepEqual(b, bb);
        assert.equal(x.constructor, ctor);
        const res = maxAbsDiff(matmul(a, x, n, n, nrhs), b);
        assert.ok(res <= tol * 10, `solve n=${n}: residual ${res}`);
      }
    });

    test(`${tag} symEig: V diag(λ) Vᵀ = A, V orthogonal, λ ascending`, () => {
      for (const n of [1, 2, 3, 10, 60, 150]) {
        const a = cast(symmetric(n, 500 + n));
        const before = a.slice();
        const { values, vectors } = symEig(a, n, o);
        assert.deepEqual(a, before);
        assert.equal(values.constructor, ctor);
        assert.equal(vectors.constructor, ctor);
        for (let j = 1; j < n; j++) assert.ok(values[j - 1] <= values[j]);
        const vd = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vd[i * n + j] = vectors[i * n + j] * values[j];
        const rec = matmul(vd, vectors, n, n, n, false, true);
        const scale = Math.max(1, maxAbs(a));
        assert.ok(maxAbsDiff(rec, a) <= tol * scale * 10, `n=${n}: ${maxAbsDiff(rec, a)}`);
        assert.ok(colOrthoErr(vectors, n, n) <= tol * 10, `n=${n}: orthonormality`);
      }
    });

    test(`${tag} symEig: repeated eigenvalues and only the lower triangle is read`, () => {
      // Q diag(1,1,1,5,5,-2) Qᵀ with a random orthogonal Q (from symEig itself, cross-checked below)
      const n = 6;
      const q = symEig(symmetric(n, 77), n, { backend: 'js' }).vectors;
      const lam = [1, 1, 1, 5, 5, -2];
      const a64 = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += q[i * n + k] * lam[k] * q[j * n + k];
        a64[i * n + j] = s;
      }
      const a = cast(a64);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 1e6; // garbage upper
      const { values, vectors } = symEig(a, n, o);
      assert.ok(maxAbsDiff(values, [-2, 1, 1, 1, 5, 5]) <= tol * 10);
      assert.ok(colOrthoErr(vectors, n, n) <= tol * 10);
      const vd = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vd[i * n + j] = vectors[i * n + j] * values[j];
      assert.ok(maxAbsDiff(matmul(vd, vectors, n, n, n, false, true), a64) <= tol * 50);
    });

    test(`${tag} svd: tall, wide, square: U S Vt = A, orthonormal factors`, () => {
      for (const [m, n] of [[1, 1], [1, 5], [5, 1], [7, 4], [4, 7], [30, 30], [90, 25], [25, 90]] as const) {
        const a = cast(randMat(m, n, 600 + 7 * m + n));
        const before = a.slice();
        const { U, S, Vt } = svd(a, m, n, o);
        assert.deepEqual(a, before);
        const r = Math.min(m, n);
        assert.equal(U.length, m * r);
        assert.equal(S.length, r);
        assert.equal(Vt.length, r * n);
        assert.equal(U.constructor, ctor);
        for (let k = 0; k < r; k++) assert.ok(S[k] >= 0 && (k === 0 || S[k - 1] >= S[k]));
        const us = new Float64Array(m * r);
        for (let i = 0; i < m; i++) for (let k = 0; k < r; k++) us[i * r + k] = U[i * r + k] * S[k];
        const rec = matmul(us, Vt, m, r, n);
        assert.ok(maxAbsDiff(rec, a) <= tol * 10, `${m}×${n}: ${maxAbsDiff(rec, a)}`);
        assert.ok(colOrthoErr(U, m, r) <= tol * 10, `${m}×${n}: U`);
        assert.ok(rowOrthoErr(Vt, r, n) <= tol * 10, `${m}×${n}: Vt`);
      }
    });

    test(`${tag} svd: rank-deficient and zero matrices`, () => {
      for (const [m, n, rank] of [[12, 8, 3], [8, 12, 2], [10, 10, 1], [6, 4, 0]] as const) {
        const a64 = matmul(randMat(m, rank, 700 + m), randMat(rank, n, 800 + n), m, rank, n);
        const a = cast(a64);
        const { U, S, Vt } = svd(a, m, n, o);
        const r = Math.min(m, n);
        for (let k = rank; k < r; k++) assert.ok(S[k] <= tol * Math.max(1, S[0]), `σ${k} = ${S[k]}`);
        for (let k = 0; k < rank; k++) assert.ok(S[k] > 0.01);
        const us = new Float64Array(m * r);
        for (let i = 0; i < m; i++) for (let k = 0; k < r; k++) us[i * r + k] = U[i * r + k] * S[k];
        assert.ok(maxAbsDiff(matmul(us, Vt, m, r, n), a) <= tol * 10);
        assert.ok(colOrthoErr(U, m, r) <= tol * 10, `${m}×${n} rank ${rank}: U`);
        assert.ok(rowOrthoErr(Vt, r, n) <= tol * 10, `${m}×${n} rank ${rank}: Vt`);
      }
    });
  }

  // ---- errors ----------------------------------------------------------------------------------------

  test(`[${backend}] not positive definite → AmendError naming the pivot`, () => {
    // leading 2×2 minor [[1,2],[2,1]] has determinant -3: pivot 1 fails
    const a = new Float64Array([1, 2, 0, 2, 1, 0, 0, 0, 1]);
    throwsAmend(() => cholesky(a, 3, o), /not positive definite.*pivot 1 /);
    throwsAmend(() => solveSPD(a, new Float64Array(3), 3, 1, o), /pivot 1 /);
    throwsAmend(() => inverseSPD(Float32Array.from(a), 3, o), /pivot 1 /);
    throwsAmend(() => cholesky(new Float64Array([-1]), 1, o), /pivot 0 /);
    throwsAmend(() => cholesky(new Float64Array([1, 0, 0, 0]), 2, o), /pivot 1 /); // semidefinite
    // failing pivot deep inside a larger (blocked) factorisation
    const n = 130;
    const big = spd(n, 5);
    big[97 * n + 97] = -50;
    throwsAmend(() => cholesky(big, n, o), /pivot 97 of 130/);
    throwsAmend(() => cholesky(Float32Array.from(big), n, o), /pivot 97 of 130/);
  });

  test(`[${backend}] singular to working precision, or non-finite → AmendError from the SPD solvers too`, () => {
    // [[1, 1], [1, 1 + ε]]: the last pivot is (1 + ε) − 1 = ε exactly in any order of operations,
    // positive yet within the rounding bound n·ε·A[1, 1]. Alone and as the last block of a
    // blocked factorisation (n = 130), so the bound check itself is what must refuse it.
    for (const [ctor, eps] of [[Float64Array, 2 ** -52], [Float32Array, 2 ** -23]] as const) {
      for (const n of [2, 130]) {
        const a = new Float64Array(n * n);
        const m = n - 2, s = m > 0 ? spd(m, 3) : new Float64Array(0);
        for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) a[i * n + j] = s[i * m + j];
        a[m * n + m] = 1; a[m * n + m + 1] = 1; a[(m + 1) * n + m] = 1; a[(m + 1) * n + m + 1] = 1 + eps;
        const re = new RegExp(`not positive definite to working precision \\(singular or nearly so\\): Cholesky pivot ${n - 1} of ${n} .*add a ridge`);
        const tag = `n=${n} ${ctor.name}`;
        assert.throws(() => solveSPD(ctor.from(a), new ctor(n).fill(1), n, 1, o), (e: unknown) => e instanceof AmendError && re.test(e.message), tag);
        throwsAmend(() => cholesky(ctor.from(a), n, o), re);
        throwsAmend(() => inverseSPD(ctor.from(a), n, o), re);
      }
    }
    // G Gᵀ of a random n×(n-1) G: singular; the last pivot comes out of the rounding slightly
    // positive or not, depending on the CPU's BLAS kernels (one of these cases flips between an
    // Intel Xeon and an AMD EPYC): either way a clear refusal, never an x of size 1e15.
    for (const [n, seed] of [[6, 20], [6, 25], [20, 27], [40, 10]]) {
      const g = randMat(n, n - 1, seed);
      const a = matmul(g, g, n, n - 1, n, false, true);
      for (const ctor of [Float64Array, Float32Array]) {
        const tag = `n=${n} seed=${seed} ${ctor.name}`;
        const re = /not positive definite (to working precision \(singular or nearly so\)|\(singular or indefinite\)): Cholesky pivot \d+ of \d+ .*add a ridge|singular to working precision: its condition number/;
        assert.throws(() => solveSPD(ctor.from(a), new ctor(n).fill(1), n, 1, o), (e: unknown) => e instanceof AmendError && re.test(e.message), tag);
        throwsAmend(() => cholesky(ctor.from(a), n, o), re);
        throwsAmend(() => inverseSPD(ctor.from(a), n, o), re);
      }
    }
    // LAPACK factored a NaN into a NaN solution without a word
    throwsAmend(() => solveSPD(new Float64Array([1, NaN, NaN, 1]), new Float64Array(2), 2, 1, o), /non-finite entry at \[1, 0\] \(NaN\)/);
    throwsAmend(() => cholesky(new Float32Array([Infinity, 0, 0, 1]), 2, o), /non-finite entry at \[0, 0\] \(Infinity\)/);
  });

  test(`[${backend}] ill-conditioned but positive definite matrices still solve`, () => {
    const hilbert = (n: number) => Float64Array.from({ length: n * n }, (_, i) => 1 / (Math.floor(i / n) + (i % n) + 1));
    // cond 1.5e10 in double and 1.6e4 in single; a diagonal spanning 24 orders of magnitude
    const diag = new Float64Array(9);
    for (let i = 0; i < 3; i++) diag[i * 4] = 10 ** (-12 * i);
    for (const [a, n, ctor, tol] of [[hilbert(8), 8, Float64Array, 1e-5], [hilbert(4), 4, Float32Array, 1e-3], [diag, 3, Float64Array, 1e-15]] as const) {
      const x = solveSPD(ctor.from(a), ctor.from(a.subarray(0, n)), n, 1, o); // first column: x = e₀
      const want = new Float64Array(n);
      want[0] = 1;
      assert.ok(maxAbsDiff(x, want) <= tol, `${ctor.name} n=${n}: ${Array.from(x)}`);
    }
  });

  test(`[${backend}] singular matrices that pass the pivot tests are refused by the condition estimate`, () => {
    // Rank n-1 products: about one in eight of these Gram matrices passed the Cholesky pivot test
    // on both backends, and one in ten of the general ones the LU pivot-ratio test, with solutions
    // of 1e14 and more. (Every refusal says "singular": not positive definite (singular or
    // indefinite), within rounding of 0, or singular to working precision.)
    const re = /singular/;
    for (const n of [8, 12, 30]) {
      for (let seed = 1; seed <= 40; seed++) {
        const g = randMat(n, n - 1, seed);
        const a = matmul(g, g, n, n - 1, n, false, true);
        const ones = new Float64Array(n).fill(1);
        for (const ctor of [Float64Array, Float32Array]) {
          const tag = `n=${n} seed=${seed} ${ctor.name}`;
          assert.throws(() => solveSPD(ctor.from(a), ctor.from(ones), n, 1, o), (e: unknown) => e instanceof AmendError && re.test(e.message), tag);
          assert.throws(() => cholesky(ctor.from(a), n, o), (e: unknown) => e instanceof AmendError && re.test(e.message), tag);
        }
        const lu = matmul(g, randMat(n - 1, n, seed + 1000), n, n - 1, n);
        assert.throws(() => solve(lu, ones, n, 1, o), (e: unknown) => e instanceof AmendError && re.test(e.message), `solve ${n} ${seed}`);
      }
    }
  });

  test(`[${backend}] the condition threshold 1/ε: [[1, 1-δ], [1-δ, 1]] passes the pivot test at δ = 3 ulp, and only its condition refuses it`, () => {
    for (const [ctor, ulp, eps] of [[Float64Array, 2 ** -53, 2 ** -52], [Float32Array, 2 ** -24, 2 ** -23]] as const) {
      const pair = (delta: number, scale: number): FloatArray => ctor.from([1, (1 - delta) * scale, (1 - delta) * scale, scale * scale]);
      for (const scale of [1, 1e-10]) { // the diagonal's scale does not matter
        // pivot 2δ > n·ε = 4 ulp; condition ≈ 2/δ: 2/(9 ulp) = 2e15 < 1/ε in double, 2/(3 ulp) = 6e15 beyond it
        const x = solveSPD(pair(9 * ulp, scale), ctor.from([1, 0]), 2, 1, o);
        assert.ok(Number.isFinite(x[0]) && Math.abs(x[0] * 9 * ulp * 2 - 1) < 0.2, `${ctor.name} scale ${scale}: x = ${Array.from(x)}`);
        throwsAmend(() => solveSPD(pair(3 * ulp, scale), ctor.from([1, 0]), 2, 1, o),
          new RegExp(`^solveSPD: matrix is singular to working precision: its condition number \\(diagonal scaled to 1\\) is about [0-9.e+]+, beyond 1/ε = ${(1 / eps).toPrecision(2).replace('+', '\\+')}; .*add a ridge`));
        throwsAmend(() => cholesky(pair(3 * ulp, scale), 2, o), /^cholesky: matrix is singular to working precision/);
        throwsAmend(() => inverseSPD(pair(3 * ulp, scale), 2, o), /^inverseSPD: matrix is singular to working precision/);
      }
    }
  });

  test(`[${backend}] condition 1e12 (1e3 in single) with a diagonal spanning 8 orders still solves`, () => {
    const n = 30;
    const q = symEig(symmetric(n, 91), n, { backend: 'js' }).vectors;
    const withSpectrum = (lo: number): Float64Array => {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += q[i * n + k] * lo ** (k / (n - 1)) * q[j * n + k];
        a[i * n + j] = s;
      }
      const d = Float64Array.from({ length: n }, (_, i) => 1e-4 ** (i / (n - 1)));
      return a.map((v, i) => v * d[Math.floor(i / n)] * d[i % n]);
    };
    for (const [ctor, cond, eps] of [[Float64Array, 1e12, 2 ** -52], [Float32Array, 1e3, 2 ** -23]] as const) {
      const a = ctor.from(withSpectrum(1 / cond));
      const x = solveSPD(a, ctor.from(a.subarray(0, n)), n, 1, o); // first column: x = e₀
      const want = new Float64Array(n);
      want[0] = 1;
      assert.ok(maxAbsDiff(x, want) <= 10 * n * eps * cond, `${ctor.name}: ${maxAbsDiff(x, want)}`);
      assert.doesNotThrow(() => inverseSPD(a, n, o));
    }
  });

  test(`[${backend}] NaN or infinity in a right-hand side, an overflowing result, a malformed factor → AmendError`, () => {
    const a = new Float64Array([2, 0, 0, 2]);
    const L = cholesky(a, 2, o);
    for (const bad of [NaN, Infinity]) {
      const b = new Float64Array([1, bad]);
      throwsAmend(() => solveSPD(a, b, 2, 1, o), new RegExp(`right-hand side has a non-finite entry at \\[1, 0\\] \\(${bad}\\)`));
      throwsAmend(() => solve(a, b, 2, 1, o), /right-hand side has a non-finite entry at \[1, 0\]/);
      throwsAmend(() => choleskySolve(L, b, 2, 1, o), /right-hand side has a non-finite entry/);
    }
    // [[1e-320]] is positive definite, but its inverse is beyond the double range
    throwsAmend(() => solveSPD(new Float64Array([1e-320]), new Float64Array([1]), 1, 1, o), /result overflows Float64Array/);
    throwsAmend(() => inverseSPD(new Float64Array([1e-320]), 1, o), /result overflows Float64Array/);
    throwsAmend(() => solveSPD(new Float32Array([1e-30]), new Float32Array([1e10]), 1, 1, o), /result overflows Float32Array/);
    throwsAmend(() => inverseSPD(new Float32Array([1e-39]), 1, { ...o, overwriteA: true }), /result overflows Float32Array/);
    // a factor with a zero on its diagonal is not one cholesky() returns
    throwsAmend(() => choleskySolve(new Float64Array([1, 0, 3, 0]), new Float64Array([1, 1]), 2, 1, o), /L\[1, 1\] is 0, but a Cholesky factor has a positive diagonal/);
  });

  test(`[${backend}] symEig and svd refuse NaN and infinity; svd of matrices with repeated rows`, () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const a = new Float64Array([2, 0, 0, 0, 2, 0, 0, bad, 2]);
      throwsAmend(() => symEig(a, 3, o), new RegExp(`symEig: the matrix has a non-finite entry at \\[2, 1\\] \\(${bad}\\)`));
      throwsAmend(() => svd(Float32Array.from(a), 3, 3, o), new RegExp(`svd: the matrix has a non-finite entry at \\[2, 1\\]`));
    }
    // The reference's Jacobi sweeps never ended on these: a column at rounding level kept rotating.
    for (const [m, n, rows] of [[3, 3, [1, 2, 3, 4, 5, 6, 1, 2, 3]], [5, 5, null], [30, 30, null]] as const) {
      let a: Float64Array;
      if (rows) a = Float64Array.from(rows);
      else { // a Gram matrix with two equal rows
        const g = randMat(m, m, 50 + m);
        g.copyWithin(3 * m, 1 * m, 2 * m);
        a = matmul(g, g, m, m, m, false, true);
      }
      const { U, S, Vt } = svd(a, m, n, o);
      const us = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let k = 0; k < n; k++) us[i * n + k] = U[i * n + k] * S[k];
      assert.ok(maxAbsDiff(matmul(us, Vt, m, n, n), a) <= 1e-12 * maxAbs(a), `${m}×${n}`);
      assert.ok(S[n - 1] <= 1e-14 * S[0], `${m}×${n}: smallest σ ${S[n - 1]}`);
      assert.ok(colOrthoErr(U, m, n) <= 1e-12 && rowOrthoErr(Vt, n, n) <= 1e-12);
    }
  });

  test(`[${backend}] singular → AmendError`, () => {
    throwsAmend(() => solve(new Float64Array([1, 2, 2, 4]), new Float64Array([1, 1]), 2, 1, o), /singular/);
    throwsAmend(() => solve(new Float32Array([0, 0, 0, 0]), new Float32Array([1, 1]), 2, 1, o), /singular/);
    // rank 10 of 20, not exactly singular in floating point
    const n = 20;
    const a = matmul(randMat(n, 10, 1), randMat(10, n, 2), n, 10, n);
    throwsAmend(() => solve(a, new Float64Array(n), n, 1, o), /singular/);
    throwsAmend(() => solve(Float32Array.from(a), new Float32Array(n), n, 1, o), /singular/);
    // a NaN is named as such, not as a zero pivot
    throwsAmend(() => solve(new Float64Array([3, 0, NaN, 1]), new Float64Array([1, 1]), 2, 1, o), /non-finite entry at \[1, 0\] \(NaN\)/);
  });

  test(`[${backend}] bad arguments → AmendError`, () => {
    throwsAmend(() => cholesky(new Float64Array(5), 2, o), /expected 4/);
    throwsAmend(() => cholesky(new Float64Array(4), 2.5, o), /non-negative integer/);
    throwsAmend(() => solve(new Float64Array(4), new Float32Array(2) as unknown as Float64Array, 2, 1, o), /Float32Array/);
    throwsAmend(() => svd(new Int32Array(4) as unknown as Float64Array, 2, 2, o), /Float64Array or Float32Array/);
  });

  test(`[${backend}] empty matrices`, () => {
    assert.equal(cholesky(new Float64Array(0), 0, o).length, 0);
    assert.equal(solve(new Float64Array(0), new Float64Array(0), 0, 3, o).length, 0);
    const e = symEig(new Float32Array(0), 0, o);
    assert.equal(e.values.length, 0);
    const s = svd(new Float64Array(0), 0, 4, o);
    assert.equal(s.S.length, 0);
    assert.equal(s.Vt.length, 0);
  });
}

// ---- backends agree ------------------------------------------------------------------------------------

test('js and LAPACK agree', { skip: NO_LAPACK }, () => {
  const n = 80;
  const a = spd(n, 901);
  const b = randMat(n, 3, 902);
  const js = { backend: 'js' as const }, la = { backend: 'lapack' as const };
  assert.ok(maxAbsDiff(cholesky(a, n, js), cholesky(a, n, la)) < 1e-12);
  assert.ok(maxAbsDiff(solveSPD(a, b, n, 3, js), solveSPD(a, b, n, 3, la)) < 1e-11);
  assert.ok(maxAbsDiff(inverseSPD(a, n, js), inverseSPD(a, n, la)) < 1e-11);
  const g = randMat(n, n, 903);
  assert.ok(maxAbsDiff(solve(g, b, n, 3, js), solve(g, b, n, 3, la)) < 1e-9);

  const s = symmetric(n, 904);
  const e1 = symEig(s, n, js), e2 = symEig(s, n, la);
  assert.ok(maxAbsDiff(e1.values, e2.values) < 1e-12);
  for (let j = 0; j < n; j++) { // vectors agree up to sign (eigenvalues are distinct here)
    let d = 0;
    for (let i = 0; i < n; i++) d += e1.vectors[i * n + j] * e2.vectors[i * n + j];
    assert.ok(Math.abs(Math.abs(d) - 1) < 1e-9, `eigenvector ${j}: |cos| = ${Math.abs(d)}`);
  }

  for (const [m, k] of [[60, 35], [35, 60]] as const) {
    const x = randMat(m, k, 905 + m);
    const s1 = svd(x, m, k, js), s2 = svd(x, m, k, la);
    assert.ok(maxAbsDiff(s1.S, s2.S) < 1e-12);
    const r = Math.min(m, k);
    for (let c = 0; c < r; c++) {
      let du = 0, dv = 0;
      for (let i = 0; i < m; i++) du += s1.U[i * r + c] * s2.U[i * r + c];
      for (let i = 0; i < k; i++) dv += s1.Vt[c * k + i] * s2.Vt[c * k + i];
      assert.ok(Math.abs(Math.abs(du) - 1) < 1e-9 && Math.abs(du - dv) < 1e-9, `singular pair ${c}`);
    }
  }

  // single precision: same answers to f32 accuracy
  const a32 = Float32Array.from(a);
  assert.ok(maxAbsDiff(solveSPD(a32, Float32Array.from(b), n, 3, js), solveSPD(a32, Float32Array.from(b), n, 3, la)) < 1e-4);
  const s32 = Float32Array.from(s);
  assert.ok(maxAbsDiff(symEig(s32, n, js).values, symEig(s32, n, la).values) < 1e-4 * maxAbs(e1.values));
});

test('overwriteA lets LAPACK reuse the input', { skip: NO_LAPACK }, () => {
  const n = 30;
  const a = spd(n, 42);
  const ref = cholesky(a, n, { backend: 'lapack' });
  const w = a.slice();
  const L = cholesky(w, n, { backend: 'lapack', overwriteA: true });
  assert.equal(L, w);
  assert.deepEqual(L, ref);
});

test('backend selection: AMEND_BACKEND=js, setLinalgBackend', () => {
  const saved = process.env.AMEND_BACKEND;
  try {
    process.env.AMEND_BACKEND = 'js';
    assert.equal(linalgBackend(), 'js');
    delete process.env.AMEND_BACKEND;
    assert.equal(linalgBackend(), lapackAvailable() ? 'lapack' : 'js');
    setLinalgBackend('js');
    assert.equal(linalgBackend(), 'js');
    if (lapackAvailable()) {
      setLinalgBackend('lapack');
      assert.equal(linalgBackend(), 'lapack');
    } else {
      throwsAmend(() => setLinalgBackend('lapack'), /LAPACK backend requested/);
      throwsAmend(() => cholesky(new Float64Array([1]), 1, { backend: 'lapack' }), /LAPACK backend requested/);
    }
  } finally {
    setLinalgBackend('auto');
    if (saved === undefined) delete process.env.AMEND_BACKEND;
    else process.env.AMEND_BACKEND = saved;
  }
});

// Sizes like the MEMIT statistics' (no timing here: speed lives in bench/, never in assertions).
test('js symEig and svd handle a few hundred', () => {
  const n = 300;
  const { values, vectors } = symEig(symmetric(n, 31), n, { backend: 'js' });
  assert.equal(values.length, n);
  assert.ok(colOrthoErr(vectors, n, n) < 1e-11);
  const { S } = svd(randMat(n, 200, 32), n, 200, { backend: 'js' });
  assert.equal(S.length, 200);
  for (let i = 1; i < S.length; i++) assert.ok(S[i - 1]! >= S[i]! && S[i]! >= 0, 'singular values sorted, non-negative');
});
