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
  choleskyInPlace, choleskySolveInPlace, luSolveInPlace, svdJacobi, symEigInPlace,
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
 * solvable, and a variance that is merely small is no reason to refuse a covariance. This catches
 * most singular matrices, not all: rounding amplified by an ill-conditioned leading block can
 * leave the pivot above the bound, and only an estimate of the condition number would tell.
 * Returns the bounds, computed before the factorisation overwrites the diagonal, after refusing a
 * NaN or infinity in the lower triangle, which LAPACK would factor into NaN without a word.
 */
function pivotBounds(fn: string, a: FloatArray, n: number): Float64Array {
  const bound = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new AmendError(`${fn}: the matrix has a non-finite entry at [${i}, ${j}] (${v})`);
    }
    bound[i] = n * epsOf(a) * a[i * n + i];
  }
  return bound;
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
 * Cholesky factor: lower-triangular L (n×n, strict upper zero) with A = L Lᵀ. Reads A's lower
 * triangle. Not positive definite → AmendError naming the failing pivot (0-based).
 */
export function cholesky<T extends FloatArray>(a: T, n: number, opts?: LinalgOptions): T {
  checkDim('cholesky', 'n', n);
  checkArray('cholesky', 'a', a, n * n);
  const lib = pick('cholesky', opts);
  const bound = pivotBounds('cholesky', a, n);
  if (lib) {
    const l = opts?.overwriteA ? a : copy(a);
    const info = lib.linalgPotrf(l, n);
    if (info < 0) lapackFailure('cholesky', 'potrf', info);
    checkPivots('cholesky', l, n, info - 1, bound);
    if (info > 0) notPD('cholesky', info - 1, n);
    return l;
  }
  const w = toF64(a);
  const piv = new Float64Array(1);
  const bad = choleskyInPlace(w, n, piv);
  checkPivots('cholesky', w, n, bad, bound);
  if (bad >= 0) notPD('cholesky', bad, n, piv[0]);
  if (opts?.overwriteA) { a.set(w); return a; }
  return fromF64(w, a);
}

/** X (n×nrhs) with (L Lᵀ) X = B, given the Cholesky factor L from cholesky(). */
export function choleskySolve<T extends FloatArray>(L: T, b: T, n: number, nrhs: number, opts?: LinalgOptions): T {
  checkDim('choleskySolve', 'n', n);
  checkDim('choleskySolve', 'nrhs', nrhs);
  checkArray('choleskySolve', 'L', L, n * n);
  checkArray('choleskySolve', 'b', b, n * nrhs, L);
  const lib = pick('choleskySolve', opts);
  if (lib) {
    const x = copy(b);
    lib.linalgPotrs(L, x, n, nrhs);
    return x;
  }
  const l = L instanceof Float64Array ? L : Float64Array.from(L);
  const x = toF64(b);
  choleskySolveInPlace(l, x, n, nrhs);
  return fromF64(x, b);
}

/** X (n×nrhs) with A X = B for symmetric positive definite A (lower triangle read), by Cholesky. */
export function solveSPD<T extends FloatArray>(a: T, b: T, n: number, nrhs: number, opts?: LinalgOptions): T {
  checkDim('solveSPD', 'n', n);
  checkDim('solveSPD', 'nrhs', nrhs);
  checkArray('solveSPD', 'a', a, n * n);
  checkArray('solveSPD', 'b', b, n * nrhs, a);
  const lib = pick('solveSPD', opts);
  const bound = pivotBounds('solveSPD', a, n);
  if (lib) {
    const l = opts?.overwriteA ? a : copy(a);
    const info = lib.linalgPotrf(l, n);
    if (info < 0) lapackFailure('solveSPD', 'potrf', info);
    checkPivots('solveSPD', l, n, info - 1, bound);
    if (info > 0) notPD('solveSPD', info - 1, n);
    const x = copy(b);
    lib.linalgPotrs(l, x, n, nrhs);
    return x;
  }
  const w = toF64(a);
  const piv = new Float64Array(1);
  const bad = choleskyInPlace(w, n, piv);
  checkPivots('solveSPD', w, n, bad, bound);
  if (bad >= 0) notPD('solveSPD', bad, n, piv[0]);
  const x = toF64(b);
  choleskySolveInPlace(w, x, n, nrhs);
  return fromF64(x, b);
}

/** (A)⁻¹ for symmetric positive definite A (lower triangle read); the result is exactly symmetric. */
export function inverseSPD<T extends FloatArray>(a: T, n: number, opts?: LinalgOptions): T {
  checkDim('inverseSPD', 'n', n);
  checkArray('inverseSPD', 'a', a, n * n);
  const lib = pick('inverseSPD', opts);
  const bound = pivotBounds('inverseSPD', a, n);
  if (lib) {
    const w = opts?.overwriteA ? a : copy(a);
    const info = lib.linalgPotrf(w, n);
    if (info < 0) lapackFailure('inverseSPD', 'potrf', info);
    checkPivots('inverseSPD', w, n, info - 1, bound);
    if (info > 0) notPD('inverseSPD', info - 1, n);
    const info2 = lib.linalgPotri(w, n);
    if (info2 !== 0) lapackFailure('inverseSPD', 'potri', info2);
    return w;
  }
  const w = toF64(a);
  const piv = new Float64Array(1);
  const bad = choleskyInPlace(w, n, piv);
  checkPivots('inverseSPD', w, n, bad, bound);
  if (bad >= 0) notPD('inverseSPD', bad, n, piv[0]);
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + i] = 1;
  choleskySolveInPlace(w, x, n, n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (x[i * n + j] + x[j * n + i]);
      x[i * n + j] = v;
      x[j * n + i] = v;
    }
  }
  if (opts?.overwriteA) { a.set(x); return a; }
  return fromF64(x, a);
}

// ---- general solve --------------------------------------------------------------------------------

/**
 * X (n×nrhs) with A X = B for a general square A, by LU with partial pivoting. A is declared
 * singular (AmendError) when a pivot is zero or non-finite, or when the smallest pivot is below
 * sqrt(n)·ε·(largest pivot), ε being the precision of the input type (no digits of X would be
 * reliable then).
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
  const lib = pick('solve', opts);
  let x: T;
  let pivots: FloatArray;
  let zero = -1;
  if (lib) {
    const w = opts?.overwriteA ? a : copy(a);
    x = copy(b);
    pivots = alloc(a, n);
    const info = lib.linalgGesv(w, x, n, nrhs, pivots);
    if (info < 0) lapackFailure('solve', 'getrf', info);
    if (info > 0) zero = info - 1;
  } else {
    const w = toF64(a);
    const xd = toF64(b);
    const piv = new Float64Array(n);
    const bad = luSolveInPlace(w, xd, n, nrhs, piv);
    if (bad >= 0) zero = bad;
    pivots = piv;
    x = fromF64(xd, b);
  }
  if (zero >= 0) throw new AmendError(`solve: matrix is singular (LU pivot ${zero} of ${n} is exactly zero)`);
  let lo = Infinity, hi = 0, at = 0;
  for (let k = 0; k < n; k++) {
    const p = Math.abs(pivots[k]);
    if (!Number.isFinite(p)) throw new AmendError(`solve: matrix has non-finite entries (LU pivot ${k} is ${pivots[k]})`);
    if (p < lo) { lo = p; at = k; }
    if (p > hi) hi = p;
  }
  if (n > 0 && lo <= Math.sqrt(n) * epsOf(a) * hi) {
    throw new AmendError(
      `solve: matrix is singular to working precision (LU pivot ${at} of ${n}: |u| = ${lo.toPrecision(3)}, ` +
      `largest ${hi.toPrecision(3)})`,
    );
  }
  return x;
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
    throw new AmendError(`symEig: ${(e as Error).message} (does the matrix contain NaN or Infinity?)`);
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
  const lib = pick('svd', opts);
  if (lib) {
    const w = opts?.overwriteA ? a : copy(a);
    const U = alloc(a, m * r), S = alloc(a, r), Vt = alloc(a, r * n);
    const info = lib.linalgGesdd(w, m, n, U, S, Vt);
    if (info !== 0) lapackFailure('svd', 'gesdd', info);
    return { U, S, Vt };
  }
  for (let i = 0; i < m * n; i++) {
    if (!Number.isFinite(a[i])) throw new AmendError(`svd: matrix has a non-finite entry at ${i} (${a[i]})`);
  }
  const res = svdJacobi(a instanceof Float64Array ? a : Float64Array.from(a), m, n);
  return { U: fromF64(res.U, a), S: fromF64(res.S, a), Vt: fromF64(res.Vt, a) };
}
