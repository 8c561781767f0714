// Dense linear algebra for the editors: Cholesky, SPD and general solves, symmetric
// eigendecomposition, thin SVD, SPD inverse.
//
// Conventions: matrices are dense ROW-MAJOR typed arrays with explicit sizes. Every function takes
// a Float64Array (computed in double) or a Float32Array (computed in single by LAPACK; the TS
// reference computes in double and rounds its results), returns NEW arrays of the same type, and
// never modifies its inputs, unless `overwriteA: true` allows it to use `a` as workspace (saves one
// n×n copy, 2 GiB for a 16384² float64 matrix). Symmetric inputs are read from their LOWER
// triangle only (as LAPACK is called), so an upper triangle that is garbage or slightly
// asymmetric does not matter.
//
// Backends: 'lapack' (OpenBLAS LAPACK through the native addon: dpotrf/dpotri/dgetrf/dsyevd/
// dgesdd, dtrsm, and their s- twins) when the addon was built with OpenBLAS, else 'js' (the pure
// TypeScript reference in ./js.ts). AMEND_BACKEND=js, setLinalgBackend('js') or a per-call
// `{ backend: 'js' }` force the reference.
import { AmendError } from '../errors.js';
import {
  choleskyInPlace, choleskySolveInPlace, luSolveInPlace, norm1Estimate, svdJacobi, symEigInPlace, triSolveInPlace,
} from './js.js';
import { lapack, type FloatArray, type LapackAddon } from './lapack.js';

export type { FloatArray } from './lapack.js';
export type LinalgBackend = 'lapack' | 'js';

export interface LinalgOptions {
  /** Backend for this call (default: linalgBackend()). 'lapack' throws when it is unavailable. */
  backend?: LinalgBackend;
  /**
   * Allow the function to destroy `a` (use it as workspace, and for cholesky/inverseSPD return it
   * as the result) instead of copying it first. Only the LAPACK backend saves memory with this.
   */
  overwriteA?: boolean;
}

export interface SymEigResult<T extends FloatArray> {
  /** Eigenvalues, ascending (length n). */
  values: T;
  /** n×n row-major; column j is the unit eigenvector of values[j]. */
  vectors: T;
}

export interface SvdResult<T extends FloatArray> {
  /** m×r row-major, orthonormal columns (r = min(m, n)). */
  U: T;
  /** r singular values, descending, ≥ 0. */
  S: T;
  /** r×n row-major, orthonormal rows. */
  Vt: T;
}

// ---- backend selection --------------------------------------------------------------------------

let forced: LinalgBackend | null = null;

/** True when the native addon provides LAPACK. */
export function lapackAvailable(): boolean {
  return lapack() !== null;
}

/** The backend used by calls that do not name one. */
export function linalgBackend(): LinalgBackend {
  if (forced) return forced;
  if (process.env.AMEND_BACKEND === 'js') return 'js';
  return lapackAvailable() ? 'lapack' : 'js';
}

/** Choose the default backend ('auto': LAPACK when available unless AMEND_BACKEND=js). */
export function setLinalgBackend(name: LinalgBackend | 'auto'): void {
  if (name === 'auto') { forced = null; return; }
  if (name === 'lapack' && !lapackAvailable()) {
    throw new AmendError('linalg: LAPACK backend requested but the native addon was not built with OpenBLAS');
  }
  if (name !== 'lapack' && name !== 'js') throw new AmendError(`linalg: unknown backend "${String(name)}"`);
  forced = name;
}

function pick(fn: string, opts: LinalgOptions | undefined): LapackAddon | null {
  const want = opts?.backend ?? linalgBackend();
  if (want === 'js') return null;
  if (want !== 'lapack') throw new AmendError(`${fn}: unknown backend "${String(want)}"`);
  const lib = lapack();
  if (!lib) throw new AmendError(`${fn}: LAPACK backend requested but the native addon was not built with OpenBLAS`);
  return lib;
}

// ---- argument checks and array helpers ----------------------------------------------------------

function isFloatArray(x: unknown): x is FloatArray {
  return x instanceof Float64Array || x instanceof Float32Array;
}

function checkDim(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw new AmendError(`${fn}: ${name} must be a non-negative integer, got ${String(v)}`);
  }
}

function checkArray(fn: string, name: string, x: unknown, len: number, like?: FloatArray): void {
  if (!isFloatArray(x)) throw new AmendError(`${fn}: ${name} must be a Float64Array or Float32Array`);
  if (like && x.constructor !== like.constructor) {
    throw new AmendError(`${fn}: ${name} is a ${x.constructor.name} but the matrix is a ${like.constructor.name}`);
  }
  if (x.length !== len) throw new AmendError(`${fn}: ${name} has ${x.length} elements, expected ${len}`);
}

function alloc<T extends FloatArray>(like: T, len: number): T {
  return (like instanceof Float64Array ? new Float64Array(len) : new Float32Array(len)) as T;
}

function copy<T extends FloatArray>(x: T): T {
  return x.slice() as T;
}

/** A double-precision working copy (the TS reference always computes in double). */
function toF64(x: FloatArray): Float64Array {
  return x instanceof Float64Array ? x.slice() : Float64Array.from(x);
}

/** Result in the caller's precision; reuses `x` when that is already double. */
function fromF64<T extends FloatArray>(x: Float64Array, like: T): T {
  return (like instanceof Float64Array ? x : Float32Array.from(x)) as T;
}

function epsOf(x: FloatArray): number {
  return x instanceof Float64Array ? 2.220446049250313e-16 : 1.1920928955078125e-7;
}

function lapackFailure(fn: string, routine: string, info: number): never {
  if (info === -1) throw new AmendError(`${fn}: out of memory allocating LAPACK workspace`);
  if (info === -2) throw new AmendError(`${fn}: matrix too large for 32-bit LAPACK workspace`);
  if (info < 0) throw new Error(`${fn}: ${routine} rejected argument ${-info} (bug in Amend)`);
  throw new AmendError(`${fn}: ${routine} failed to converge (info ${info})`);
}

const RIDGE_HINT = 'if it is only positive semidefinite, add a ridge (a small multiple of the identity) to its diagonal';

function notPD(fn: string, pivot: number, n: number, value?: number): never {
  const v = value === undefined ? '' : ` (value ${value.toPrecision(6)})`;
  throw new AmendError(
    `${fn}: matrix is not positive definite (singular or indefinite): Cholesky pivot ${pivot} of ${n} is not positive${v}` +
    ` (the leading ${pivot + 1}×${pivot + 1} minor is not positive definite); ${RIDGE_HINT}`,
  );
}

/**
 * Cholesky's own test, a pivot that is not positive, often passes a singular matrix: its zero
 * pivot comes out of the rounding as ±(a few ε)·A_kk, and a positive one goes on to a solution of
 * 1e15 or so. A pivot at most n·ε·A_kk is within the bound on the error of A_kk - Σ L_kj² (a sum
 * that is about A_kk there), so it says nothing about the matrix and is refused too. Relative to
 * its own diagonal entry, not the largest: diag(1, 1e-24) is ill-conditioned but exactly
 * solvable, and a variance that is merely small is no reason to refuse a covariance. That catches
 * most singular matrices, not all (rounding amplified by an ill-conditioned leading block can
 * leave the pivot above the bound: 10–15% of random rank-deficient Gram matrices), so a finished
 * factor is also held to a condition estimate (checkCondSPD).
 *
 * Both tests judge S = D⁻¹ A D⁻¹, D = diag(√A_kk), the matrix with its diagonal scaled to 1:
 * Cholesky computes the same factor for A and S up to that scaling (and pivots L_kk²/A_kk are S's
 * pivots), so S's condition, not A's, bounds the error of the solution (van der Sluis).
 * Returns what they need, computed before the factorisation overwrites A: the pivot bounds, D,
 * and ‖S‖₁; after refusing a NaN or infinity in the lower triangle, which LAPACK would factor into
 * NaN without a word.
 */
interface SpdPrep { bound: Float64Array; d: Float64Array; normS: number }

function spdPrep(fn: string, a: FloatArray, n: number): SpdPrep {
  const bound = new Float64Array(n), d = new Float64Array(n), col = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const aii = a[i * n + i];
    bound[i] = n * epsOf(a) * aii;
    d[i] = aii > 0 && Number.isFinite(aii) ? Math.sqrt(aii) : 1; // A_ii ≤ 0 fails the factorisation first
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new AmendError(`${fn}: the matrix has a non-finite entry at [${i}, ${j}] (${v})`);
      const s = Math.abs(v) / (d[i] * d[j]);
      col[j] += s;
      if (j !== i) col[i] += s;
    }
  }
  let normS = 0;
  for (let j = 0; j < n; j++) normS = Math.max(normS, col[j]);
  return { bound, d, normS };
}

/**
 * Refuses a factored matrix whose scaled condition number ‖S‖₁‖S⁻¹‖₁ (‖S⁻¹‖₁ estimated from
 * the factor L) is beyond 1/ε: the criterion of LAPACK's ?posvx for "singular to working
 * precision" (ε of the input's type, as for the pivots), where the error bound ε·cond reaches 1 and no digit of the solution is reliable.
 * Random singular Gram matrices that pass the pivot test come out at 2e16 or more in double;
 * positive definite ones of condition 1e14 at 1e15 or less, and solve to about 4 digits.
 * O(n²) per estimate step against the n³/3 of the factorisation.
 */
function checkCondSPD(fn: string, L: FloatArray, n: number, prep: SpdPrep, lib: LapackAddon | null, eps: number): void {
  if (n === 0) return;
  const { d, normS } = prep;
  // S⁻¹ x = D A⁻¹ D x = D L⁻ᵀ L⁻¹ D x; symmetric, so it is its own transpose.
  const w = L instanceof Float64Array ? null : new Float32Array(n);
  const apply = (x: Float64Array): void => {
    for (let i = 0; i < n; i++) x[i] *= d[i];
    if (lib && w) { w.set(x); lib.linalgPotrs(L, w, n, 1); x.set(w); }
    else if (lib) lib.linalgPotrs(L, x, n, 1);
    else { triSolveInPlace(L, n, x, false, false, false); triSolveInPlace(L, n, x, false, true, false); }
    for (let i = 0; i < n; i++) x[i] *= d[i];
  };
  const cond = normS * norm1Estimate(n, apply, apply);
  if (!(cond * eps < 1)) {
    throw new AmendError(
      `${fn}: matrix is singular to working precision: its condition number (diagonal scaled to 1) is about ` +
      `${cond.toPrecision(2)}, beyond 1/ε = ${(1 / eps).toPrecision(2)}; ${RIDGE_HINT}`,
    );
  }
}

/** Refuses a right-hand side with NaN or infinity: it would come back as NaN in the solution. */
function checkRhs(fn: string, b: FloatArray, nrhs: number): void {
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(b[i])) {
      throw new AmendError(`${fn}: the right-hand side has a non-finite entry at [${Math.floor(i / nrhs)}, ${i % nrhs}] (${b[i]})`);
    }
  }
}

/**
 * Refuses a result that overflowed (finite inputs, a solution beyond the type's range, e.g. the
 * inverse of [[1e-320]]): infinities in it would be silent garbage.
 */
function checkResult<T extends FloatArray>(fn: string, x: T, cols: number): T {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new AmendError(
        `${fn}: the result overflows ${x.constructor.name} (entry [${Math.floor(i / cols)}, ${i % cols}] is ${x[i]}); ` +
        'the matrix is too small in scale for this right-hand side: rescale the problem',
      );
    }
  }
  return x;
}

/**
 * Refuses the factor L (row-major, lower) of a Cholesky that stopped at pivot `failed` (-1: it
 * finished) when one of its pivots L_kk² before that is within the rounding bound[k] of 0.
 */
function checkPivots(fn: string, L: FloatArray, n: number, failed: number, bound: Float64Array): void {
  const done = failed >= 0 ? failed : n;
  for (let k = 0; k < done; k++) {
    const d = L[k * n + k] * L[k * n + k];
    if (d <= bound[k]) {
      throw new AmendError(
        `${fn}: matrix is not positive definite to working precision (singular or nearly so): Cholesky pivot ${k} of ${n}` +
        ` is ${d.toPrecision(3)}, within rounding (n·ε·A[${k}, ${k}] = ${bound[k].toPrecision(3)}) of 0; ${RIDGE_HINT}`,
      );
    }
  }
}

// ---- Cholesky -----------------------------------------------------------------------------------

/**
 * A's Cholesky factor, checked (pivots, positive definiteness, conditioning) for `fn`'s messages:
 * with LAPACK in A's own precision (A itself when overwriteA), in the TS reference a float64 copy.
 */
function factorSPD<T extends FloatArray>(fn: string, a: T, n: number, prep: SpdPrep, lib: LapackAddon | null, opts?: LinalgOptions): T | Float64Array {
  if (lib) {
    const l = opts?.overwriteA ? a : copy(a);
    const info = lib.linalgPotrf(l, n);
    if (info < 0) lapackFailure(fn, 'potrf', info);
    checkPivots(fn, l, n, info - 1, prep.bound);
    if (info > 0) notPD(fn, info - 1, n);
    checkCondSPD(fn, l, n, prep, lib, epsOf(a));
    return l;
  }
  const w = toF64(a);
  const piv = new Float64Array(1);
  const bad = choleskyInPlace(w, n, piv);
  checkPivots(fn, w, n, bad, prep.bound);
  if (bad >= 0) notPD(fn, bad, n, piv[0]);
  checkCondSPD(fn, w, n, prep, null, epsOf(a));
  return w;
}

/**
 * Cholesky factor: lower-triangular L (n×n, strict upper zero) with A = L Lᵀ. Reads A's lower
 * triangle. Not positive definite → AmendError naming the failing pivot (0-based).
 */
export function cholesky<T extends FloatArray>(a: T, n: number, opts?: LinalgOptions): T {
  checkDim('cholesky', 'n', n);
  checkArray('cholesky', 'a', a, n * n);
  const lib = pick('cholesky', opts);
  const l = factorSPD('cholesky', a, n, spdPrep('cholesky', a, n), lib, opts);
  if (lib) return l as T;
  if (opts?.overwriteA) { a.set(l); return a; }
  return fromF64(l as Float64Array, a);
}

/** X (n×nrhs) with (L Lᵀ) X = B, given the Cholesky factor L from cholesky(). */
export function choleskySolve<T extends FloatArray>(L: T, b: T, n: number, nrhs: number, opts?: LinalgOptions): T {
  checkDim('choleskySolve', 'n', n);
  checkDim('choleskySolve', 'nrhs', nrhs);
  checkArray('choleskySolve', 'L', L, n * n);
  checkArray('choleskySolve', 'b', b, n * nrhs, L);
  for (let k = 0; k < n; k++) {
    const v = L[k * n + k];
    if (!(v > 0 && v < Infinity)) {
      throw new AmendError(`choleskySolve: L[${k}, ${k}] is ${v}, but a Cholesky factor has a positive diagonal; pass the result of cholesky()`);
    }
  }
  checkRhs('choleskySolve', b, nrhs);
  const lib = pick('choleskySolve', opts);
  if (lib) {
    const x = copy(b);
    lib.linalgPotrs(L, x, n, nrhs);
    return checkResult('choleskySolve', x, nrhs);
  }
  const l = L instanceof Float64Array ? L : Float64Array.from(L);
  const x = toF64(b);
  choleskySolveInPlace(l, x, n, nrhs);
  return checkResult('choleskySolve', fromF64(x, b), nrhs);
}

/** X (n×nrhs) with A X = B for symmetric positive definite A (lower triangle read), by Cholesky. */
export function solveSPD<T extends FloatArray>(a: T, b: T, n: number, nrhs: number, opts?: LinalgOptions): T {
  checkDim('solveSPD', 'n', n);
  checkDim('solveSPD', 'nrhs', nrhs);
  checkArray('solveSPD', 'a', a, n * n);
  checkArray('solveSPD', 'b', b, n * nrhs, a);
  const lib = pick('solveSPD', opts);
  const prep = spdPrep('solveSPD', a, n);
  checkRhs('solveSPD', b, nrhs);
  const l = factorSPD('solveSPD', a, n, prep, lib, opts);
  if (lib) {
    const x = copy(b);
    lib.linalgPotrs(l, x, n, nrhs);
    return checkResult('solveSPD', x, nrhs);
  }
  const x = toF64(b);
  choleskySolveInPlace(l as Float64Array, x, n, nrhs);
  return checkResult('solveSPD', fromF64(x, b), nrhs);
}

/** (A)⁻¹ for symmetric positive definite A (lower triangle read); the result is exactly symmetric. */
export function inverseSPD<T extends FloatArray>(a: T, n: number, opts?: LinalgOptions): T {
  checkDim('inverseSPD', 'n', n);
  checkArray('inverseSPD', 'a', a, n * n);
  const lib = pick('inverseSPD', opts);
  const w = factorSPD('inverseSPD', a, n, spdPrep('inverseSPD', a, n), lib, opts);
  if (lib) {
    const info2 = lib.linalgPotri(w, n);
    if (info2 !== 0) lapackFailure('inverseSPD', 'potri', info2);
    return checkResult('inverseSPD', w as T, n);
  }
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + i] = 1;
  choleskySolveInPlace(w as Float64Array, x, n, n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (x[i * n + j] + x[j * n + i]);
      x[i * n + j] = v;
      x[j * n + i] = v;
    }
  }
  checkResult('inverseSPD', x, n);
  if (opts?.overwriteA) { a.set(x); return checkResult('inverseSPD', a, n); }
  return checkResult('inverseSPD', fromF64(x, a), n);
}

// ---- general solve --------------------------------------------------------------------------------

/**
 * X (n×nrhs) with A X = B for a general square A, by LU with partial pivoting. A is declared
 * singular (AmendError) when a pivot is zero or non-finite, or when its condition number
 * ‖A‖₁‖A⁻¹‖₁ (‖A⁻¹‖₁ estimated from the LU factors) is beyond 1/ε, ε being the precision of the
 * input type: LAPACK's ?gesvx criterion; no digit of X would be reliable. (A test on the ratio of
 * the smallest to the largest pivot, used before, let a third of random rank-deficient matrices
 * through with solutions of 1e14 and more.) No scaling: diag(1, 1e-20) counts as singular here.
 */
export function solve<T extends FloatArray>(a: T, b: T, n: number, nrhs: number, opts?: LinalgOptions): T {
  checkDim('solve', 'n', n);
  checkDim('solve', 'nrhs', nrhs);
  checkArray('solve', 'a', a, n * n);
  checkArray('solve', 'b', b, n * nrhs, a);
  // A NaN or Inf would otherwise surface as a zero or non-finite pivot, named as singularity.
  for (let i = 0; i < n * n; i++) {
    if (!Number.isFinite(a[i])) throw new AmendError(`solve: the matrix has a non-finite entry at [${Math.floor(i / n)}, ${i % n}] (${a[i]})`);
  }
  checkRhs('solve', b, nrhs);
  const col = new Float64Array(n);
  for (let i = 0; i < n * n; i++) col[i % n] += Math.abs(a[i]);
  let normA = 0;
  for (let j = 0; j < n; j++) normA = Math.max(normA, col[j]);
  const lib = pick('solve', opts);
  let x: T;
  let pivots: FloatArray;
  let zero = -1;
  let w: FloatArray;
  if (lib) {
    w = opts?.overwriteA ? a : copy(a);
    x = copy(b);
    pivots = alloc(a, n);
    const info = lib.linalgGesv(w, x, n, nrhs, pivots);
    if (info < 0) lapackFailure('solve', 'getrf', info);
    if (info > 0) zero = info - 1;
  } else {
    w = toF64(a);
    const xd = toF64(b);
    const piv = new Float64Array(n);
    const bad = luSolveInPlace(w, xd, n, nrhs, piv);
    if (bad >= 0) zero = bad;
    pivots = piv;
    x = fromF64(xd, b);
  }
  if (zero >= 0) throw new AmendError(`solve: matrix is singular (LU pivot ${zero} of ${n} is exactly zero)`);
  for (let k = 0; k < n; k++) {
    if (!Number.isFinite(pivots[k])) throw new AmendError(`solve: matrix has non-finite entries (LU pivot ${k} is ${pivots[k]})`);
  }
  // ‖A⁻¹‖₁ from the factors, without the row permutation (it does not change the 1-norm).
  // LAPACK's buffer holds Uᵀ (lower) and Lᵀ (strict upper, unit) with A = Uᵀ Lᵀ Pᵀ, so
  // A⁻¹ = P (Lᵀ)⁻¹ (Uᵀ)⁻¹; the reference's holds L (strict lower, unit) and U with A = Pᵀ L U.
  const f = w;
  const [apply, applyT] = lib
    ? [(v: Float64Array) => { triSolveInPlace(f, n, v, false, false, false); triSolveInPlace(f, n, v, true, false, true); },
      (v: Float64Array) => { triSolveInPlace(f, n, v, true, true, true); triSolveInPlace(f, n, v, false, true, false); }]
    : [(v: Float64Array) => { triSolveInPlace(f, n, v, false, false, true); triSolveInPlace(f, n, v, true, false, false); },
      (v: Float64Array) => { triSolveInPlace(f, n, v, true, true, false); triSolveInPlace(f, n, v, false, true, true); }];
  const cond = normA * norm1Estimate(n, apply, applyT);
  const eps = epsOf(a);
  if (n > 0 && !(cond * eps < 1)) {
    throw new AmendError(
      `solve: matrix is singular to working precision: its condition number is about ${cond.toPrecision(2)}, ` +
      `beyond 1/ε = ${(1 / eps).toPrecision(2)}`,
    );
  }
  return checkResult('solve', x, nrhs);
}

// ---- symmetric eigendecomposition ----------------------------------------------------------------

/**
 * Eigendecomposition of symmetric A (lower triangle read): A = V diag(values) Vᵀ, values
 * ascending, V orthogonal (column j ↔ values[j]). LAPACK: dsyevd/ssyevd (divide and conquer;
 * workspace 2n² + 6n elements besides the n×n result). TS reference: O(n³), fine to a few hundred.
 */
export function symEig<T extends FloatArray>(a: T, n: number, opts?: LinalgOptions): SymEigResult<T> {
  checkDim('symEig', 'n', n);
  checkArray('symEig', 'a', a, n * n);
  // LAPACK returns NaN eigenpairs for a NaN without a word (and the reference fails to converge).
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new AmendError(`symEig: the matrix has a non-finite entry at [${i}, ${j}] (${v})`);
    }
  }
  const lib = pick('symEig', opts);
  if (lib) {
    const vectors = opts?.overwriteA ? a : copy(a);
    const values = alloc(a, n);
    const info = lib.linalgSyevd(vectors, values, n);
    if (info !== 0) lapackFailure('symEig', 'syevd', info);
    return { values, vectors };
  }
  let res: { values: Float64Array; vectors: Float64Array };
  try {
    res = symEigInPlace(toF64(a), n);
  } catch (e) {
    throw new AmendError((e as Error).message);
  }
  return { values: fromF64(res.values, a), vectors: fromF64(res.vectors, a) };
}

// ---- SVD ----------------------------------------------------------------------------------------

/**
 * Thin SVD of the m×n matrix A: A = U diag(S) Vt with r = min(m, n), U m×r, S descending, Vt r×n.
 * Rank-deficient A still gets orthonormal U columns and Vt rows. LAPACK: dgesdd/sgesdd. TS
 * reference: one-sided Jacobi, O(sweeps · r² · max(m, n)).
 */
export function svd<T extends FloatArray>(a: T, m: number, n: number, opts?: LinalgOptions): SvdResult<T> {
  checkDim('svd', 'm', m);
  checkDim('svd', 'n', n);
  checkArray('svd', 'a', a, m * n);
  const r = Math.min(m, n);
  // LAPACK's gesdd answers a NaN with "illegal argument 4", an infinity with NaN factors.
  for (let i = 0; i < m * n; i++) {
    if (!Number.isFinite(a[i])) throw new AmendError(`svd: the matrix has a non-finite entry at [${Math.floor(i / n)}, ${i % n}] (${a[i]})`);
  }
  const lib = pick('svd', opts);
  if (lib) {
    const w = opts?.overwriteA ? a : copy(a);
    const U = alloc(a, m * r), S = alloc(a, r), Vt = alloc(a, r * n);
    const info = lib.linalgGesdd(w, m, n, U, S, Vt);
    if (info !== 0) lapackFailure('svd', 'gesdd', info);
    return { U, S, Vt };
  }
  const res = svdJacobi(a instanceof Float64Array ? a : Float64Array.from(a), m, n);
  return { U: fromF64(res.U, a), S: fromF64(res.S, a), Vt: fromF64(res.Vt, a) };
}
