// The op set. Each op computes its output with one or two kernels and, beside it, the rule that
// turns the output gradient into input gradients, so forward and backward read together.
import { AmendError } from '../errors.js';
import { BinaryOp, UnaryOp } from '../backend/kernels.js';
import { kernels } from '../backend/index.js';
import { Tensor, isGradEnabled, record, sizeOf, stridesOf } from './tensor.js';

const i32 = (xs: readonly number[]): Int32Array => Int32Array.from(xs);

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Where an op writes its output. Ops that take an `out` buffer write into it instead of a new
 * array when the tape is not recording them (inference), so a caller that owns the buffer (a
 * forward pass reusing scratch memory, or updating a tensor in place) allocates nothing; while
 * the tape records the op, `out` is ignored and a new array is used, since the backward pass
 * needs the inputs intact.
 */
function outBuffer(n: number, out: Float32Array | undefined, inputs: readonly (Tensor | null)[]): Float32Array {
  if (!out || (isGradEnabled() && inputs.some((t) => t?.requiresGrad))) return new Float32Array(n);
  if (out.length !== n) throw new AmendError(`output buffer holds ${out.length} values, the op writes ${n}`);
  return out;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new AmendError(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** x viewed as [rows, cols] over its last axis (rows from the shape, so a zero-size axis is no 0/0). */
function rowsCols(x: Tensor): [number, number] {
  if (x.rank === 0) throw new AmendError('an op over the last axis needs a tensor of rank ≥ 1');
  return [sizeOf(x.shape.slice(0, -1)), x.shape[x.rank - 1]!];
}

/** A per-column vector (norm weight, bias) must have exactly `cols` entries. */
function checkVector(what: string, v: Tensor | null, cols: number): void {
  if (v && v.size !== cols) throw new AmendError(`${what} has ${v.size} entries [${v.shape}]; it needs ${cols}`);
}

// ---------------------------------------------------------------------------------------------
// Shape ops

/** Same data, new shape (one -1 allowed). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.some((d) => !(Number.isInteger(d) && d >= -1)) || shape.filter((d) => d === -1).length > 1) {
    throw new AmendError(`cannot reshape [${x.shape}] into [${shape}]: sizes are integers ≥ 0, with at most one -1`);
  }
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const n = x.size; // not x in the arrow below: it would share the backward's scope (see record)
  const resolved = shape.map((d) => (d === -1 ? n / known : d));
  if (resolved.some((d) => !Number.isInteger(d)) || sizeOf(resolved) !== x.size) {
    throw new AmendError(`cannot reshape [${x.shape}] into [${shape}]`);
  }
  return record('reshape', x.data, resolved, [x], (g) => [g]);
}

/** Copies x with its axes reordered: out axis i is x axis perm[i]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new AmendError(`permute: [${perm}] is not an order of the ${x.rank} axes of [${x.shape}]`);
  }
  const xShape = x.shape, xs = stridesOf(xShape);
  const shape = perm.map((p) => xShape[p]);
  const out = new Float32Array(x.size);
  kernels().copyStrided(x.data, 0, i32(perm.map((p) => xs[p])), out, 0, i32(stridesOf(shape)), i32(shape), false);
  return record('permute', out, shape, [x], (g) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => { inv[p] = i; });
    const gs = stridesOf(shape);
    const gx = new Float32Array(g.length);
    kernels().copyStrided(g, 0, i32(inv.map((i) => gs[i])), gx, 0, i32(xs), i32(xShape), false);
    return [gx];
  });
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const ia = normAxis(a, x.rank), ib = normAxis(b, x.rank);
  [perm[ia], perm[ib]] = [perm[ib], perm[ia]];
  return permute(x, perm);
}

/** x[..., start:end, ...] along `axis` (into `out` when given, see outBuffer). */
export function slice(x: Tensor, axis: number, start: number, end: number, out?: Float32Array): Tensor {
  const ax = normAxis(axis, x.rank);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > x.shape[ax] || start > end) {
    throw new AmendError(`slice [${start}, ${end}) out of range for axis ${ax} of size ${x.shape[ax]}`);
  }
  const shape = x.shape.slice();
  shape[ax] = end - start;
  const xs = stridesOf(x.shape);
  const dst = outBuffer(sizeOf(shape), out, [x]);
  kernels().copyStrided(x.data, start * xs[ax], i32(xs), dst, 0, i32(stridesOf(shape)), i32(shape), false);
  const n = x.size;
  return record('slice', dst, shape, [x], (g) => {
    const gx = new Float32Array(n);
    kernels().copyStrided(g, 0, i32(stridesOf(shape)), gx, start * xs[ax], i32(xs), i32(shape), false);
    return [gx];
  });
}

/** Joins tensors along `axis` (all other sizes equal). */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new AmendError('concat of nothing');
  const ax = normAxis(axis, xs[0].rank);
  const shape = xs[0].shape.slice();
  shape[ax] = xs.reduce((s, t) => s + t.shape[ax], 0);
  const os = stridesOf(shape);
  const out = new Float32Array(sizeOf(shape));
  const offsets: number[] = [];
  let at = 0;
  for (const t of xs) {
    if (t.rank !== shape.length || t.shape.some((d, i) => i !== ax && d !== shape[i])) {
      throw new AmendError(`concat: shape [${t.shape}] does not fit [${shape}] along axis ${ax}`);
    }
    offsets.push(at);
    kernels().copyStrided(t.data, 0, i32(stridesOf(t.shape)), out, at * os[ax], i32(os), i32(t.shape), false);
    at += t.shape[ax];
  }
  const parts = xs.map((t) => (t.requiresGrad ? t.shape : null));
  return record('concat', out, shape, xs, (g) => parts.map((ts, i) => {
    if (!ts) return null;
    const gt = new Float32Array(sizeOf(ts));
    kernels().copyStrided(g, offsets[i] * os[ax], i32(os), gt, 0, i32(stridesOf(ts)), i32(ts), false);
    return gt;
  }));
}

/** Rows of a table: out[i] = table[ids[i]] (embedding lookup); table is [n, ...rest]. */
export function gatherRows(table: Tensor, ids: Int32Array | readonly number[]): Tensor {
  const n = table.shape[0];
  for (const id of ids) {
    if (id < 0 || id >= n || !Number.isInteger(id)) throw new AmendError(`index ${id} out of range [0, ${n})`);
  }
  const idx = ids instanceof Int32Array ? ids : Int32Array.from(ids);
  const rest = table.shape.slice(1);
  const dim = sizeOf(rest);
  const out = new Float32Array(idx.length * dim);
  kernels().gatherRows(table.data, idx, out, dim);
  return record('gatherRows', out, [idx.length, ...rest], [table], (g) => {
    const gt = new Float32Array(n * dim);
    kernels().scatterAddRows(g, idx, gt, dim);
    return [gt];
  });
}

/** out[r] = x[r, idx[r]] for x viewed as [rows, cols] (picking target log-probs). */
export function pick(x: Tensor, idx: Int32Array | readonly number[]): Tensor {
  const [rows, cols] = rowsCols(x);
  if (idx.length !== rows) throw new AmendError(`pick: ${idx.length} indices for ${rows} rows`);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    if (!Number.isInteger(idx[r]) || idx[r] < 0 || idx[r] >= cols) throw new AmendError(`pick: index ${idx[r]} out of range [0, ${cols})`);
    out[r] = x.data[r * cols + idx[r]];
  }
  const n = x.size;
  return record('pick', out, x.shape.slice(0, -1), [x], (g) => {
    const gx = new Float32Array(n);
    for (let r = 0; r < rows; r++) gx[r * cols + idx[r]] = g[r];
    return [gx];
  });
}

// ---------------------------------------------------------------------------------------------
// Elementwise

function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1, db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new AmendError(`shapes [${a}] and [${b}] do not broadcast`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides that read a tensor of shape `from` as if it had the broadcast shape `to`. */
function broadcastStrides(from: readonly number[], to: readonly number[]): Int32Array {
  const s = stridesOf(from);
  const out = new Int32Array(to.length);
  for (let i = 0; i < to.length; i++) {
    const j = from.length - to.length + i;
    out[i] = j < 0 || from[j] === 1 ? 0 : s[j];
  }
  return out;
}

/** Sums a gradient of the broadcast shape back down to `shape`. */
export function sumTo(g: Float32Array, gShape: readonly number[], shape: readonly number[]): Float32Array {
  if (sameShape(gShape, shape)) return g;
  let cur = g;
  let curShape = gShape.slice();
  // Leading axes that `shape` lacks, then axes where it has 1, are summed one at a time.
  while (curShape.length > shape.length) {
    const next = new Float32Array(cur.length / curShape[0]);
    kernels().reduce(0, cur, next, 1, curShape[0], next.length, null);
    cur = next;
    curShape = curShape.slice(1);
  }
  for (let ax = 0; ax < shape.length; ax++) {
    if (shape[ax] === 1 && curShape[ax] !== 1) {
      const outer = sizeOf(curShape.slice(0, ax)), inner = sizeOf(curShape.slice(ax + 1));
      const next = new Float32Array(outer * inner);
      kernels().reduce(0, cur, next, outer, curShape[ax], inner, null);
      cur = next;
      curShape[ax] = 1;
    }
  }
  return cur;
}

function binaryRaw(op: BinaryOp, a: Float32Array, aShape: readonly number[], b: Float32Array,
  bShape: readonly number[], shape: readonly number[]): Float32Array {
  const out = new Float32Array(sizeOf(shape));
  kernels().binary(op, a, broadcastStrides(aShape, shape), b, broadcastStrides(bShape, shape), out, i32(shape));
  return out;
}

type BinaryGrads = (g: Float32Array, shape: number[]) => [Float32Array | null, Float32Array | null];

/**
 * An elementwise op with broadcasting. `rule(out)` returns its gradient rule, whose captures are
 * what the tape keeps: the output only where the rule reads it, the operands only through arrays
 * taken out of a and b beforehand (see record).
 */
function binary(name: string, op: BinaryOp, a: Tensor, b: Tensor, rule: (out: Float32Array) => BinaryGrads,
  dst?: Float32Array): Tensor {
  const shape = broadcastShape(a.shape, b.shape);
  const out = outBuffer(sizeOf(shape), dst, [a, b]);
  kernels().binary(op, a.data, broadcastStrides(a.shape, shape), b.data, broadcastStrides(b.shape, shape), out, i32(shape));
  const grads = rule(out);
  const aShape = a.shape, bShape = b.shape, needA = a.requiresGrad, needB = b.requiresGrad;
  return record(name, out, shape, [a, b], (g) => {
    const [ga, gb] = grads(g, shape);
    return [ga && needA ? sumTo(ga, shape, aShape) : null, gb && needB ? sumTo(gb, shape, bShape) : null];
  });
}

/**
 * a + b (broadcasting). `out` (see outBuffer) may be a's or b's own data when that operand has
 * the output's shape: an in-place update for a caller that owns it.
 */
export function add(a: Tensor, b: Tensor, out?: Float32Array): Tensor {
  return binary('add', BinaryOp.Add, a, b, () => (g) => [g, g], out);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', BinaryOp.Sub, a, b, () => (g) => [g, scaleRaw(g, -1)]);
}

/** a * b (broadcasting); `out` as for add. */
export function mul(a: Tensor, b: Tensor, out?: Float32Array): Tensor {
  // Each operand's gradient reads the other's values, kept only when that gradient is needed.
  const ad = b.requiresGrad ? a.data : null, bd = a.requiresGrad ? b.data : null;
  const aShape = a.shape, bShape = b.shape;
  return binary('mul', BinaryOp.Mul, a, b, () => (g, shape) => [
    bd && binaryRaw(BinaryOp.Mul, g, shape, bd, bShape, shape),
    ad && binaryRaw(BinaryOp.Mul, g, shape, ad, aShape, shape),
  ], out);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const bd = b.data, bShape = b.shape, needB = b.requiresGrad;
  return binary('div', BinaryOp.Div, a, b, (out) => (g, shape) => {
    const ga = binaryRaw(BinaryOp.Div, g, shape, bd, bShape, shape);
    // d(a/b)/db = -(a/b)/b
    const gb = needB ? scaleRaw(binaryRaw(BinaryOp.Mul, ga, shape, out, shape, shape), -1) : null;
    return [ga, gb];
  });
}

/**
 * The gradients of maximum / minimum: each entry's goes to the operand the kernel took it from.
 * `aWins` repeats the kernel's choice on the operands: a tie goes to b, a NaN to the side it came
 * from (a when both are NaN). The output alone cannot tell: a NaN output, or a tie at ±Infinity,
 * matches either side.
 */
function winnerGrads(a: Tensor, b: Tensor, aWins: (x: number, y: number) => boolean): () => BinaryGrads {
  const ad = a.data, aShape = a.shape, bd = b.data, bShape = b.shape;
  return () => (g, shape) => {
    const av = expandRaw(ad, aShape, shape), bv = expandRaw(bd, bShape, shape);
    const ga = new Float32Array(g.length), gb = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) (aWins(av[i], bv[i]) ? ga : gb)[i] = g[i];
    return [ga, gb];
  };
}

/** x broadcast to `shape` (as x + 0: only the sign of a zero may change). */
function expandRaw(x: Float32Array, xShape: readonly number[], shape: readonly number[]): Float32Array {
  return sameShape(xShape, shape) ? x : binaryRaw(BinaryOp.Add, x, xShape, ZERO, [1], shape);
}
const ZERO = new Float32Array(1);

export function maximum(a: Tensor, b: Tensor): Tensor {
  return binary('maximum', BinaryOp.Max, a, b, winnerGrads(a, b, (x, y) => x > y || x !== x));
}

export function minimum(a: Tensor, b: Tensor): Tensor {
  return binary('minimum', BinaryOp.Min, a, b, winnerGrads(a, b, (x, y) => x < y || x !== x));
}

/** a ** b (gradient wrt b needs a > 0). */
export function pow(a: Tensor, b: Tensor): Tensor {
  const ad = a.data, aShape = a.shape, bd = b.data, bShape = b.shape, needB = b.requiresGrad;
  return binary('pow', BinaryOp.Pow, a, b, (out) => (g, shape) => {
    // d/da = b * a^(b-1), formed as such (out / a is 0/0 at a = 0); d/db = out * ln(a)
    const bMinus1 = new Float32Array(bd.length);
    kernels().affine(bd, bMinus1, bd.length, 1, -1);
    const aPow = binaryRaw(BinaryOp.Pow, ad, aShape, bMinus1, bShape, shape);
    const ga = binaryRaw(BinaryOp.Mul, binaryRaw(BinaryOp.Mul, g, shape, bd, bShape, shape), shape, aPow, shape, shape);
    let gb: Float32Array | null = null;
    if (needB) {
      const lnA = new Float32Array(ad.length);
      kernels().unary(UnaryOp.Log, ad, lnA, ad.length);
      gb = binaryRaw(BinaryOp.Mul, binaryRaw(BinaryOp.Mul, g, shape, out, shape, shape), shape, lnA, aShape, shape);
    }
    return [ga, gb];
  });
}

function scaleRaw(x: Float32Array, s: number): Float32Array {
  const out = new Float32Array(x.length);
  kernels().affine(x, out, x.length, s, 0);
  return out;
}

/** x * scale + shift with scalar constants. */
export function affine(x: Tensor, scale: number, shift = 0): Tensor {
  const out = new Float32Array(x.size);
  kernels().affine(x.data, out, x.size, scale, shift);
  return record('affine', out, x.shape, [x], (g) => [scaleRaw(g, scale)]);
}

export const scale = (x: Tensor, s: number): Tensor => affine(x, s, 0);

// The derivatives (unaryDf in backend/js.ts, unop_grad in native/src/elementwise.cc) that read
// only the output y, or only the input x: the tape keeps just the array read. Any op in neither
// set keeps both.
const DF_IGNORES_X = new Set([UnaryOp.Neg, UnaryOp.Exp, UnaryOp.Sqrt, UnaryOp.Rsqrt, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.Recip]);
const DF_IGNORES_Y = new Set([UnaryOp.Neg, UnaryOp.Log, UnaryOp.Relu, UnaryOp.GeluTanh, UnaryOp.GeluErf, UnaryOp.Silu,
  UnaryOp.Abs, UnaryOp.Square]);

function unary(name: string, op: UnaryOp, x: Tensor, dst?: Float32Array): Tensor {
  const out = outBuffer(x.size, dst, [x]);
  kernels().unary(op, x.data, out, x.size);
  const xd = DF_IGNORES_X.has(op) ? null : x.data, yd = DF_IGNORES_Y.has(op) ? null : out;
  return record(name, out, x.shape, [x], (g) => {
    const gx = new Float32Array(g.length);
    // The kernel takes both arrays; the gradient (same length) stands in for one the derivative ignores.
    kernels().unaryBackward(op, xd ?? g, yd ?? g, g, gx, g.length);
    return [gx];
  });
}

export const neg = (x: Tensor): Tensor => unary('neg', UnaryOp.Neg, x);
export const exp = (x: Tensor): Tensor => unary('exp', UnaryOp.Exp, x);
export const log = (x: Tensor): Tensor => unary('log', UnaryOp.Log, x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', UnaryOp.Sqrt, x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', UnaryOp.Rsqrt, x);
export const tanh = (x: Tensor): Tensor => unary('tanh', UnaryOp.Tanh, x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', UnaryOp.Sigmoid, x);
// The activations take an optional `out` (see outBuffer), which may be x's own data (in place).
export const relu = (x: Tensor, out?: Float32Array): Tensor => unary('relu', UnaryOp.Relu, x, out);
/** GELU, tanh approximation (GPT-2's "gelu_new"). */
export const geluTanh = (x: Tensor, out?: Float32Array): Tensor => unary('geluTanh', UnaryOp.GeluTanh, x, out);
/** GELU, exact erf form. */
export const geluErf = (x: Tensor, out?: Float32Array): Tensor => unary('geluErf', UnaryOp.GeluErf, x, out);
export const silu = (x: Tensor, out?: Float32Array): Tensor => unary('silu', UnaryOp.Silu, x, out);
export const abs = (x: Tensor): Tensor => unary('abs', UnaryOp.Abs, x);
export const square = (x: Tensor): Tensor => unary('square', UnaryOp.Square, x);
export const recip = (x: Tensor): Tensor => unary('recip', UnaryOp.Recip, x);

// ---------------------------------------------------------------------------------------------
// Reductions

/** Sum over one axis (or everything when axis is undefined). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = x.size, xShape = x.shape;
  if (axis === undefined) {
    const out = new Float32Array(1);
    kernels().reduce(0, x.data, out, 1, n, 1, null);
    return record('sum', out, keepDim ? xShape.map(() => 1) : [], [x], (g) => [new Float32Array(n).fill(g[0])]);
  }
  const ax = normAxis(axis, x.rank);
  const outer = sizeOf(x.shape.slice(0, ax)), dim = x.shape[ax], inner = sizeOf(x.shape.slice(ax + 1));
  const out = new Float32Array(outer * inner);
  kernels().reduce(0, x.data, out, outer, dim, inner, null);
  const kept = x.shape.map((d, i) => (i === ax ? 1 : d));
  const shape = keepDim ? kept : x.shape.filter((_, i) => i !== ax);
  return record('sum', out, shape, [x], (g) => [binaryRaw(BinaryOp.Add, new Float32Array(n), xShape, g, kept, xShape)]);
}

export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis(axis, x.rank)];
  return scale(sum(x, axis, keepDim), 1 / n);
}

/** Max over one axis; the gradient flows to the first maximal element. */
export function max(x: Tensor, axis: number, keepDim = false): Tensor {
  const ax = normAxis(axis, x.rank);
  const outer = sizeOf(x.shape.slice(0, ax)), dim = x.shape[ax], inner = sizeOf(x.shape.slice(ax + 1));
  const out = new Float32Array(outer * inner);
  const arg = new Int32Array(outer * inner);
  kernels().reduce(1, x.data, out, outer, dim, inner, arg);
  const shape = keepDim ? x.shape.map((d, i) => (i === ax ? 1 : d)) : x.shape.filter((_, i) => i !== ax);
  const n = x.size;
  return record('max', out, shape, [x], (g) => {
    const gx = new Float32Array(n);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) gx[(o * dim + arg[o * inner + i]) * inner + i] = g[o * inner + i];
    }
    return [gx];
  });
}

/** Index of the maximum along the last axis (no gradient). */
export function argmax(x: Tensor): Int32Array {
  const [rows, cols] = rowsCols(x);
  const out = new Float32Array(rows), arg = new Int32Array(rows);
  kernels().reduce(1, x.data, out, rows, cols, 1, arg);
  return arg;
}

// ---------------------------------------------------------------------------------------------
// Softmax and losses (always over the last axis)

export function softmax(x: Tensor): Tensor {
  const [rows, cols] = rowsCols(x);
  const out = new Float32Array(x.size);
  kernels().softmax(x.data, out, rows, cols);
  return record('softmax', out, x.shape, [x], (g) => {
    const gx = new Float32Array(g.length);
    kernels().softmaxBackward(out, g, gx, rows, cols);
    return [gx];
  });
}

export function logSoftmax(x: Tensor): Tensor {
  const [rows, cols] = rowsCols(x);
  const out = new Float32Array(x.size);
  kernels().logSoftmax(x.data, out, rows, cols);
  return record('logSoftmax', out, x.shape, [x], (g) => {
    const gx = new Float32Array(g.length);
    kernels().logSoftmaxBackward(out, g, gx, rows, cols);
    return [gx];
  });
}

/** The target that leaves a row out of crossEntropy's mean (Hugging Face's ignore_index). */
const IGNORE_INDEX = -100;

/**
 * Mean negative log-likelihood of `targets` under logits [rows, vocab]. Rows whose target is
 * IGNORE_INDEX (-100) are left out of the mean; any other target must be a class in [0, vocab).
 */
export function crossEntropy(logits: Tensor, targets: Int32Array | readonly number[]): Tensor {
  const [rows, cols] = rowsCols(logits);
  if (targets.length !== rows) throw new AmendError(`crossEntropy: ${targets.length} targets for ${rows} rows of logits`);
  const keep: number[] = [];
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === IGNORE_INDEX) continue;
    if (!Number.isInteger(t) || t < 0 || t >= cols) {
      throw new AmendError(`crossEntropy: target ${t} (index ${r}) is not a class of the ${cols} logits; use a class in [0, ${cols}), or ${IGNORE_INDEX} to leave the row out`);
    }
    keep.push(r);
  }
  if (keep.length === 0) throw new AmendError('crossEntropy: every target is ignored');
  const flat = reshape(logits, [rows, cols]);
  const lp = logSoftmax(keep.length === rows ? flat : gatherRows(flat, keep));
  const picked = pick(lp, keep.map((r) => targets[r]));
  return scale(sum(picked), -1 / keep.length);
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** LayerNorm over the last axis (into `out` when given, see outBuffer; not x's own data). */
export function layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, eps: number, out?: Float32Array): Tensor {
  const [rows, cols] = rowsCols(x);
  checkVector('layerNorm: the weight', w, cols);
  checkVector('layerNorm: the bias', b, cols);
  const dst = outBuffer(x.size, out, [x, w, b]);
  const mu = new Float32Array(rows), rs = new Float32Array(rows);
  kernels().layerNorm(x.data, w?.data ?? null, b?.data ?? null, dst, mu, rs, rows, cols, eps);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  const xd = x.data, wd = w?.data ?? null, needW = w?.requiresGrad ?? false, needB = b?.requiresGrad ?? false;
  const hasW = w !== null, hasB = b !== null;
  return record('layerNorm', dst, x.shape, inputs, (g) => {
    const gx = new Float32Array(g.length);
    const gw = needW ? new Float32Array(cols) : null;
    const gb = needB ? new Float32Array(cols) : null;
    kernels().layerNormBackward(xd, wd, mu, rs, g, gx, gw, gb, rows, cols);
    return [gx, ...(hasW ? [gw] : []), ...(hasB ? [gb] : [])];
  });
}

/** RMSNorm over the last axis (into `out` when given, see outBuffer; not x's own data). */
export function rmsNorm(x: Tensor, w: Tensor | null, eps: number, out?: Float32Array): Tensor {
  const [rows, cols] = rowsCols(x);
  checkVector('rmsNorm: the weight', w, cols);
  const dst = outBuffer(x.size, out, [x, w]);
  const rs = new Float32Array(rows);
  kernels().rmsNorm(x.data, w?.data ?? null, dst, rs, rows, cols, eps);
  const xd = x.data, wd = w?.data ?? null, needW = w?.requiresGrad ?? false;
  return record('rmsNorm', dst, x.shape, w ? [x, w] : [x], (g) => {
    const gx = new Float32Array(g.length);
    const gw = needW ? new Float32Array(cols) : null;
    kernels().rmsNormBackward(xd, wd, rs, g, gx, gw, rows, cols);
    return wd ? [gx, gw] : [gx];
  });
}

// ---------------------------------------------------------------------------------------------
// Matrix products

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/**
 * Batched op(a) @ op(b): a is [...batch, m, k] (or [..., k, m] with transA), b the same batch
 * dims or a single matrix shared by every batch item.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const tA = opts.transA ?? false, tB = opts.transB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new AmendError('matmul needs matrices (rank ≥ 2)');
  const batchShape = a.shape.slice(0, -2);
  const batch = sizeOf(batchShape);
  const [m, k] = tA ? [a.dim(-1), a.dim(-2)] : [a.dim(-2), a.dim(-1)];
  const [kb, n] = tB ? [b.dim(-1), b.dim(-2)] : [b.dim(-2), b.dim(-1)];
  const shared = b.rank === 2; // one matrix for every batch item (stride 0)
  if (k !== kb || (!shared && !sameShape(b.shape.slice(0, -2), batchShape))) {
    throw new AmendError(`matmul: shapes [${a.shape}] and [${b.shape}] do not multiply`);
  }
  const strideB = shared ? 0 : k * n;
  const out = new Float32Array(batch * m * n);
  kernels().gemm(tA, tB, batch, m, n, k, a.data, m * k, b.data, strideB, out, 0);
  // a's gradient reads b, b's reads a: each is kept only for the other's gradient.
  const ad = b.requiresGrad ? a.data : null, bd = a.requiresGrad ? b.data : null;
  const aSize = a.size, bSize = b.size;
  return record('matmul', out, [...batchShape, m, n], [a, b], (g) => {
    let ga: Float32Array | null = null, gb: Float32Array | null = null;
    if (bd) {
      ga = new Float32Array(aSize);
      if (!tA) kernels().gemm(false, !tB, batch, m, k, n, g, m * n, bd, strideB, ga, 0);
      else kernels().gemm(tB, true, batch, k, m, n, bd, strideB, g, m * n, ga, 0);
    }
    if (ad) {
      gb = new Float32Array(bSize);
      if (shared) {
        // b is shared across the batch: its gradient sums the batch, which is one gemm over
        // the stacked rows when a is not transposed, else one accumulating gemm per item.
        if (!tA) {
          if (!tB) kernels().gemm(true, false, 1, k, n, batch * m, ad, 0, g, 0, gb, 0);
          else kernels().gemm(true, false, 1, n, k, batch * m, g, 0, ad, 0, gb, 0);
        } else {
          for (let i = 0; i < batch; i++) {
            const ai = ad.subarray(i * m * k, (i + 1) * m * k), gi = g.subarray(i * m * n, (i + 1) * m * n);
            if (!tB) kernels().gemm(false, false, 1, k, n, m, ai, 0, gi, 0, gb, 1);
            else kernels().gemm(true, true, 1, n, k, m, gi, 0, ai, 0, gb, 1);
          }
        }
      } else if (!tB) kernels().gemm(!tA, false, batch, k, n, m, ad, m * k, g, m * n, gb, 0);
      else kernels().gemm(true, tA, batch, n, k, m, g, m * n, ad, m * k, gb, 0);
    }
    return [ga, gb];
  });
}

export interface LinearOptions {
  /** Destination (see outBuffer; not x's own data). */
  out?: Float32Array;
}

/**
 * A dense layer on the last axis of x: x @ W + bias. `layout` is how W is stored:
 * 'in_out' = [in, out] (GPT-2's Conv1D), 'out_in' = [out, in] (torch Linear).
 */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null, layout: 'in_out' | 'out_in', opts: LinearOptions = {}): Tensor {
  const inF = x.dim(-1);
  const [wIn, outF] = layout === 'in_out' ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
  if (w.rank !== 2 || wIn !== inF) {
    throw new AmendError(`linear: input [${x.shape}] does not match weight [${w.shape}] (${layout})`);
  }
  checkVector('linear: the bias', bias, outF);
  const rows = sizeOf(x.shape.slice(0, -1));
  const tB = layout === 'out_in';
  const out = outBuffer(rows * outF, opts.out, [x, w, bias]);
  if (bias) {
    for (let r = 0; r < rows; r++) out.set(bias.data, r * outF);
  }
  kernels().gemm(false, tB, 1, rows, outF, inF, x.data, 0, w.data, 0, out, bias ? 1 : 0);
  const shape = [...x.shape.slice(0, -1), outF];
  const inputs = bias ? [x, w, bias] : [x, w];
  // x's gradient reads W, W's reads x: an editor's constant weights never keep x alive.
  const xd = w.requiresGrad ? x.data : null, wd = x.requiresGrad ? w.data : null;
  const hasBias = bias !== null, needBias = bias?.requiresGrad ?? false;
  return record('linear', out, shape, inputs, (g) => {
    let gx: Float32Array | null = null, gw: Float32Array | null = null, gb: Float32Array | null = null;
    if (wd) {
      gx = new Float32Array(rows * inF);
      kernels().gemm(false, !tB, 1, rows, inF, outF, g, 0, wd, 0, gx, 0);
    }
    if (xd) {
      gw = new Float32Array(inF * outF);
      if (!tB) kernels().gemm(true, false, 1, inF, outF, rows, xd, 0, g, 0, gw, 0);
      else kernels().gemm(true, false, 1, outF, inF, rows, g, 0, xd, 0, gw, 0);
    }
    if (needBias) {
      gb = new Float32Array(outF);
      kernels().reduce(0, g, gb, 1, rows, outF, null);
    }
    return hasBias ? [gx, gw, gb] : [gx, gw];
  });
}

// ---------------------------------------------------------------------------------------------
// Attention pieces

/**
 * Rotary settings: the first rotDim features of each head are rotated by pos · invFreq[i]
 * (invFreq [rotDim/2]: the model's inverse frequencies, see models/rope.ts), cos and sin
 * multiplied by scale (default 1); interleaved: GPT-J's pairs (2i, 2i+1), else halves.
 */
export interface RopeOptions { rotDim: number; invFreq: Float32Array; scale?: number; interleaved: boolean }

/** Rotary embedding of x [B, T, H, D] at positions pos [B*T] (into `out`, which may be x's data; see outBuffer). */
export function rope(x: Tensor, pos: Int32Array, o: RopeOptions, out?: Float32Array): Tensor {
  const [B, T, H, D] = x.shape;
  if (x.rank !== 4 || pos.length !== B * T || !Number.isInteger(o.rotDim) || o.rotDim < 0 || o.rotDim > D || o.rotDim % 2 !== 0
    || o.invFreq.length !== o.rotDim / 2) {
    throw new AmendError(`rope: bad shapes x [${x.shape}], ${pos.length} positions, rotDim ${o.rotDim}, ${o.invFreq.length} inverse frequencies`);
  }
  const scale = o.scale ?? 1;
  if (!Number.isFinite(scale)) throw new AmendError(`rope: scale ${scale} is not finite`);
  const dst = outBuffer(x.size, out, [x]);
  kernels().rope(x.data, dst, pos, B, T, H, D, o.rotDim, o.invFreq, scale, o.interleaved, false);
  return record('rope', dst, x.shape, [x], (g) => {
    const gx = new Float32Array(g.length);
    kernels().rope(g, gx, pos, B, T, H, D, o.rotDim, o.invFreq, scale, o.interleaved, true);
    return [gx];
  });
}

export interface AttentionOptions {
  /** [B*S] nonzero where a key may be attended (padding mask); null: all keys. */
  keyMask?: Uint8Array | null;
  /**
   * Position of the first query among the keys: with a KV cache, the positions cached before this
   * call (S is the cache's capacity; the unwritten slots past a query are excluded as causal).
   */
  qOffset?: number;
  scale?: number;
  /** Destination [B, T, H, D] (see outBuffer; not q's, k's or v's own data). */
  out?: Float32Array;
}

/** Causal attention: q [B, T, H, D], k and v [B, S, KVH, D] → [B, T, H, D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const [B, T, H, D] = q.shape;
  const [, S, KVH] = k.shape;
  if (q.rank !== 4 || k.rank !== 4 || !sameShape(k.shape, v.shape) || k.shape[0] !== B ||
    k.shape[3] !== D || H % KVH !== 0) {
    throw new AmendError(`attention: bad shapes q [${q.shape}], k [${k.shape}], v [${v.shape}]`);
  }
  const sc = o.scale ?? 1 / Math.sqrt(D);
  const qOffset = o.qOffset ?? 0;
  const keyMask = o.keyMask ?? null;
  if (!Number.isInteger(qOffset) || qOffset < 0) throw new AmendError(`attention: qOffset must be an integer ≥ 0, got ${qOffset}`);
  if (keyMask && keyMask.length !== B * S) throw new AmendError(`attention: the key mask has ${keyMask.length} entries for ${B} × ${S} keys`);
  const out = outBuffer(q.size, o.out, [q, k, v]);
  const needGrad = isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad);
  const probs = needGrad ? new Float32Array(B * H * T * S) : null;
  kernels().attention(q.data, k.data, v.data, out, probs, B, T, S, H, KVH, D, sc, keyMask, qOffset);
  const qd = q.data, kd = k.data, vd = v.data;
  return record('attention', out, q.shape, [q, k, v], (g) => {
    const gq = new Float32Array(qd.length), gk = new Float32Array(kd.length), gv = new Float32Array(vd.length);
    kernels().attentionBackward(qd, kd, vd, probs!, g, gq, gk, gv, B, T, S, H, KVH, D, sc);
    return [gq, gk, gv];
  });
}

// ---------------------------------------------------------------------------------------------
// Row edits (what hooks use to add to or overwrite activations at chosen batch rows / positions)

function checkRows(x: Tensor, rows: readonly number[]): number {
  const d = x.dim(-1), n = x.size / d;
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= n) throw new AmendError(`row ${r} out of range [0, ${n})`);
  }
  return d;
}

/**
 * x (viewed as [N, d]) with `delta` added to the listed rows; delta is [d] (the same vector for
 * every row) or [rows.length, d].
 */
export function addRows(x: Tensor, rows: readonly number[], delta: Tensor): Tensor {
  const d = checkRows(x, rows);
  if (delta.size !== d && delta.size !== rows.length * d) {
    throw new AmendError(`addRows: delta [${delta.shape}] fits neither [${d}] nor [${rows.length}, ${d}]`);
  }
  const shared = delta.size === d; // with one row both readings agree
  const out = x.data.slice(), dd = delta.data;
  rows.forEach((r, i) => {
    const src = shared ? 0 : i * d;
    for (let j = 0; j < d; j++) out[r * d + j] += dd[src + j];
  });
  const n = dd.length;
  return record('addRows', out, x.shape, [x, delta], (g) => {
    const gd = new Float32Array(n);
    rows.forEach((r, i) => {
      const dst = shared ? 0 : i * d;
      for (let j = 0; j < d; j++) gd[dst + j] += g[r * d + j];
    });
    return [g, gd];
  });
}

/** x (viewed as [N, d]) with the listed rows overwritten by `values` [rows.length, d] (or [d]). */
export function setRows(x: Tensor, rows: readonly number[], values: Tensor): Tensor {
  const d = checkRows(x, rows);
  if (values.size !== d && values.size !== rows.length * d) {
    throw new AmendError(`setRows: values [${values.shape}] fit neither [${d}] nor [${rows.length}, ${d}]`);
  }
  const shared = values.size === d;
  const out = x.data.slice(), vd = values.data;
  rows.forEach((r, i) => out.set(vd.subarray(shared ? 0 : i * d, shared ? d : (i + 1) * d), r * d));
  const n = vd.length;
  return record('setRows', out, x.shape, [x, values], (g) => {
    const gx = g.slice();
    const gv = new Float32Array(n);
    // A row listed twice holds its last write, so only that one receives the row's gradient.
    const last = new Map<number, number>();
    rows.forEach((r, i) => last.set(r, i));
    for (const [r, i] of last) {
      const dst = shared ? 0 : i * d;
      for (let j = 0; j < d; j++) { gv[dst + j] += g[r * d + j]; gx[r * d + j] = 0; }
    }
    return [gx, gv];
  });
}
