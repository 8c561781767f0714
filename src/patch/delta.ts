// Weight deltas: construction, validation, application in float32, and norms.
//
// A delta is always expressed in the tensor's stored orientation and under its checkpoint name
// (types.ts). Application adds ΔW to the tensor's float32 data in place: a low-rank ΔW = U Vᵀ is
// one GEMM that accumulates into W (never materialising ΔW), a dense one an elementwise add. Both
// are deterministic for the same inputs, which is what makes revert-by-replay exact (session.ts).
import { AmendError } from '../errors.js';
import { kernels } from '../backend/index.js';
import { sizeOf } from '../tensor/tensor.js';
import type { DenseDelta, LowRankDelta, TensorDelta } from './types.js';

/** A low-rank delta ΔW = U Vᵀ for a [rows, cols] tensor; U is [rows, rank], V is [cols, rank], row-major. */
export function lowRankDelta(name: string, U: Float32Array, V: Float32Array, rows: number, cols: number): LowRankDelta {
  if (!(rows > 0) || U.length % rows !== 0) {
    throw new AmendError(`delta "${name}": U has ${U.length} values, not a multiple of ${rows} rows`);
  }
  const rank = U.length / rows;
  const d: LowRankDelta = { kind: 'low_rank', name, rows, cols, rank, U, V };
  validateDelta(d);
  return d;
}

/** A dense delta of the tensor's full shape. */
export function denseDelta(name: string, shape: readonly number[], delta: Float32Array): DenseDelta {
  const d: DenseDelta = { kind: 'dense', name, shape: [...shape], delta };
  validateDelta(d);
  return d;
}

function isPosInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

/** Index of the first NaN or ±Inf in a, or -1. */
function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN
  }
  return -1;
}

/** Structural checks of one delta (its own consistency, not against a model), and finite values. */
export function validateDelta(d: TensorDelta): void {
  if (d === null || typeof d !== 'object') throw new AmendError('a patch delta must be an object');
  const name = (d as { name?: unknown }).name;
  if (typeof name !== 'string' || name.length === 0) throw new AmendError('a patch delta has no tensor name');
  const where = `delta "${name}"`;
  if (d.kind === 'low_rank') {
    if (!isPosInt(d.rows) || !isPosInt(d.cols) || !isPosInt(d.rank)) {
      throw new AmendError(`${where}: rows, cols and rank must be positive integers (got ${d.rows}, ${d.cols}, ${d.rank})`);
    }
    if (!(d.U instanceof Float32Array) || !(d.V instanceof Float32Array)) {
      throw new AmendError(`${where}: U and V must be Float32Arrays`);
    }
    if (d.U.length !== d.rows * d.rank) {
      throw new AmendError(`${where}: U has ${d.U.length} values but [rows ${d.rows}, rank ${d.rank}] needs ${d.rows * d.rank}`);
    }
    if (d.V.length !== d.cols * d.rank) {
      throw new AmendError(`${where}: V has ${d.V.length} values but [cols ${d.cols}, rank ${d.rank}] needs ${d.cols * d.rank}`);
    }
    for (const [which, a] of [['U', d.U], ['V', d.V]] as const) {
      const bad = firstNonFinite(a);
      if (bad >= 0) throw new AmendError(`${where}: ${which}[${bad}] is ${a[bad]}; a patch must hold finite values`);
    }
  } else if (d.kind === 'dense') {
    if (!Array.isArray(d.shape) || d.shape.length === 0 || !d.shape.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new AmendError(`${where}: shape ${JSON.stringify(d.shape)} is not a list of non-negative integers`);
    }
    if (!(d.delta instanceof Float32Array)) throw new AmendError(`${where}: delta must be a Float32Array`);
    if (d.delta.length !== sizeOf(d.shape)) {
      throw new AmendError(`${where}: ${d.delta.length} values do not fill shape [${d.shape.join(', ')}]`);
    }
    const bad = firstNonFinite(d.delta);
    if (bad >= 0) throw new AmendError(`${where}: delta[${bad}] is ${d.delta[bad]}; a patch must hold finite values`);
  } else {
    throw new AmendError(`${where}: unknown kind "${String((d as { kind?: unknown }).kind)}" (expected low_rank or dense)`);
  }
}

/** The shape ΔW has (that of the tensor it applies to). */
export function deltaShape(d: TensorDelta): number[] {
  return d.kind === 'low_rank' ? [d.rows, d.cols] : [...d.shape];
}

/** Values the delta stores (U and V, or the dense array). */
export function storedValues(d: TensorDelta): number {
  return d.kind === 'low_rank' ? d.U.length + d.V.length : d.delta.length;
}

/** Why `d` cannot apply to a tensor of this shape, or null when it can. */
export function shapeMismatch(d: TensorDelta, shape: readonly number[]): string | null {
  const want = deltaShape(d);
  if (shape.length !== want.length || shape.some((x, i) => x !== want[i])) {
    return `the patch changes a [${want.join(', ')}] tensor but the model's "${d.name}" is [${shape.join(', ')}]`;
  }
  return null;
}

/** W += ΔW in float32, in place. `w` holds the tensor's values, row-major in its stored shape. */
export function addDeltaInPlace(w: Float32Array, d: TensorDelta): void {
  if (d.kind === 'low_rank') {
    if (w.length !== d.rows * d.cols) throw new Error(`addDeltaInPlace: ${d.name}: ${w.length} values, expected ${d.rows}×${d.cols}`);
    // C[rows, cols] = U[rows, rank] · V[cols, rank]ᵀ + 1 · C
    kernels().gemm(false, true, 1, d.rows, d.cols, d.rank, d.U, 0, d.V, 0, w, 1);
  } else {
    const a = d.delta;
    if (w.length !== a.length) throw new Error(`addDeltaInPlace: ${d.name}: ${w.length} values, expected ${a.length}`);
    for (let i = 0; i < a.length; i++) w[i] += a[i]!;
  }
}

/** ΔW as a dense row-major array (for tests and small tensors; big ones should not be materialised). */
export function materialize(d: TensorDelta): Float32Array {
  if (d.kind === 'dense') return d.delta.slice();
  const out = new Float32Array(d.rows * d.cols);
  kernels().gemm(false, true, 1, d.rows, d.cols, d.rank, d.U, 0, d.V, 0, out, 0);
  return out;
}

/** ‖a‖₂ accumulated in float64. */
export function norm2(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

/** Gram matrix XᵀX (r×r, float64) of X [n, r] row-major. */
function gram(x: Float32Array, n: number, r: number): Float64Array {
  const g = new Float64Array(r * r);
  for (let i = 0; i < n; i++) {
    const row = i * r;
    for (let a = 0; a < r; a++) {
      const xa = x[row + a]!;
      if (xa === 0) continue;
      for (let b = a; b < r; b++) g[a * r + b] += xa * x[row + b]!;
    }
  }
  for (let a = 0; a < r; a++) for (let b = 0; b < a; b++) g[a * r + b] = g[b * r + a]!;
  return g;
}

/**
 * ‖ΔW‖_F. Low-rank without forming ΔW: ‖U Vᵀ‖²_F = Σ_ab (UᵀU)_ab (VᵀV)_ab — Gram matrices in
 * float64 for small ranks, through the GEMM kernel (float32 accumulation) for large ones.
 */
export function deltaNorm(d: TensorDelta): number {
  if (d.kind === 'dense') return norm2(d.delta);
  const r = d.rank;
  let gu: Float64Array | Float32Array, gv: Float64Array | Float32Array;
  if (r <= 32) {
    gu = gram(d.U, d.rows, r);
    gv = gram(d.V, d.cols, r);
  } else {
    gu = new Float32Array(r * r);
    gv = new Float32Array(r * r);
    kernels().gemm(true, false, 1, r, r, d.rows, d.U, 0, d.U, 0, gu, 0);
    kernels().gemm(true, false, 1, r, r, d.cols, d.V, 0, d.V, 0, gv, 0);
  }
  let s = 0;
  for (let i = 0; i < r * r; i++) s += gu[i]! * gv[i]!;
  return Math.sqrt(Math.max(0, s));
}
