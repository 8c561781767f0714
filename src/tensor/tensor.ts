// Tensor and the reverse-mode autograd tape.
//
// A Tensor is a shape plus a dense row-major Float32Array (compute is always float32; f16/bf16
// exist only as storage in files). Ops record a node on the tape only while grad mode is on and
// some input requires grad, so inference pays nothing for autograd.
import { AmendError } from '../errors.js';
import { BinaryOp } from '../backend/kernels.js';
import { kernels } from '../backend/index.js';

/** How an op turns the gradient of its output into gradients of its inputs (null: no grad). */
export type BackwardFn = (gradOut: Float32Array) => (Float32Array | null)[];

/** Where a gradient goes: the node that made a tensor, or a leaf tensor itself. */
type GradTarget = TapeNode | Tensor;

/**
 * A recorded op. The graph links nodes, not tensors, so it holds no activation itself: the arrays
 * a backward reads are what its closure captured, and each node lets go of them once it has run.
 */
interface TapeNode {
  op: string;
  /** Per input: where its gradient goes; null for an input that needs none. */
  inputs: (GradTarget | null)[];
  /** null once run (released), unless the pass retained the graph. */
  backward: BackwardFn | null;
}

export interface BackwardOptions {
  /** Keep the graph for another backward() through it (by default each node is released as the pass reaches it). */
  retainGraph?: boolean;
}

let gradEnabled = false;

/** Runs fn with the tape recording (synchronous code only). */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try { return fn(); } finally { gradEnabled = prev; }
}

/** Runs fn with the tape off, even inside withGrad. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = prev; }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]; }
  return s;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it was recorded on the tape. */
  node: TapeNode | null = null;

  constructor(data: Float32Array, shape: readonly number[], requiresGrad = false) {
    if (data.length !== sizeOf(shape)) {
      throw new Error(`Tensor: ${data.length} values do not fill shape [${shape.join(', ')}]`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
  }

  get size(): number { return this.data.length; }
  get rank(): number { return this.shape.length; }

  /** Size of axis `axis` (negative counts from the end). */
  dim(axis: number): number {
    return this.shape[axis < 0 ? this.shape.length + axis : axis];
  }

  /** A tensor sharing this data, cut off from the tape. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape);
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item() needs one element, tensor has shape [${this.shape}]`);
    return this.data[0];
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /**
   * Backpropagates from this tensor (a scalar unless `gradOut` is given) into leaf `.grad`s,
   * releasing the graph as it goes unless `retainGraph` is set.
   */
  backward(gradOut?: Float32Array | null, opts: BackwardOptions = {}): void {
    backward(this, gradOut ?? undefined, opts.retainGraph ?? false);
  }
}

export function tensor(values: ArrayLike<number>, shape?: readonly number[]): Tensor {
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  return new Tensor(data, shape ?? [data.length]);
}

export function zeros(shape: readonly number[]): Tensor {
  return new Tensor(new Float32Array(sizeOf(shape)), shape);
}

export function full(shape: readonly number[], value: number): Tensor {
  return new Tensor(new Float32Array(sizeOf(shape)).fill(value), shape);
}

/** A leaf that gradients flow into (an editor's delta vector, an adapter's weights...). */
export function parameter(t: Tensor): Tensor {
  return new Tensor(t.data, t.shape, true);
}

/**
 * Builds an op's output and, when recording, its tape node. Ops call this with the output data
 * and a backward closure that maps the output gradient to one gradient per input. What the
 * closure captures stays alive until its backward has run, so it captures the arrays the needed
 * gradients read, never a Tensor; and since V8 gives every closure of a function one shared
 * scope, no other closure in the op may mention a Tensor either (an arrow in a .map would do).
 */
export function record(op: string, data: Float32Array, shape: readonly number[], inputs: Tensor[],
  backwardFn: BackwardFn): Tensor {
  const out = new Tensor(data, shape);
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs: inputs.map((t) => (t.requiresGrad ? t.node ?? t : null)), backward: backwardFn };
  }
  return out;
}

/** dst += src, elementwise over equal lengths. */
export function accumulateInto(dst: Float32Array, src: Float32Array): void {
  const n = Int32Array.of(dst.length), one = Int32Array.of(1);
  kernels().binary(BinaryOp.Add, dst, one, src, one, dst, n);
}

function backward(root: Tensor, gradOut: Float32Array | undefined, retainGraph: boolean): void {
  if (!root.requiresGrad) {
    throw new AmendError('backward() on a tensor that does not require grad (was it computed inside withGrad?)');
  }
  if (!gradOut && root.size !== 1) {
    throw new AmendError(`backward() without a gradient needs a scalar, got shape [${root.shape}]`);
  }
  if (gradOut && gradOut.length !== root.size) {
    throw new AmendError(`backward(): the gradient has ${gradOut.length} entries for a tensor of shape [${root.shape}]`);
  }
  // Topological order by iterative DFS (graphs of long training steps are deep). A released node
  // is refused here, before any gradient is written.
  const start = root.node ?? root;
  const order: GradTarget[] = [];
  const seen = new Set<GradTarget>([start]);
  const stack: [GradTarget, number][] = [[start, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const at = top[0];
    if (!(at instanceof Tensor) && !at.backward) {
      throw new AmendError(`backward() through a graph an earlier backward() released (at ${at.op}); pass { retainGraph: true } to that one`);
    }
    const inputs = at instanceof Tensor ? [] : at.inputs;
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next && !seen.has(next)) { seen.add(next); stack.push([next, 0]); }
    } else {
      order.push(at);
      stack.pop();
    }
  }
  // An op may hand the same array to several inputs (add passes its gradient through), so an
  // entry is copied before the first in-place accumulation unless this loop allocated it.
  const grads = new Map<GradTarget, { data: Float32Array; owned: boolean }>();
  const add = (t: GradTarget, g: Float32Array): void => {
    const prev = grads.get(t);
    if (!prev) { grads.set(t, { data: g, owned: false }); return; }
    if (!prev.owned) { prev.data = prev.data.slice(); prev.owned = true; }
    accumulateInto(prev.data, g);
  };
  add(start, gradOut ?? Float32Array.of(1));
  // Popped from the end (reverse topological order): once a node has run and let go of its
  // closure, nothing here holds what it captured, so the activations of the upper layers can be
  // collected while the lower layers' gradients are allocated.
  while (order.length > 0) {
    const t = order.pop()!;
    const entry = grads.get(t);
    grads.delete(t); // frees activations' gradients as soon as they are consumed
    if (t instanceof Tensor) {
      if (!entry) continue;
      if (t.grad) accumulateInto(t.grad.data, entry.data);
      else t.grad = new Tensor(entry.owned ? entry.data : entry.data.slice(), t.shape);
      continue;
    }
    const { inputs, backward: fn } = t;
    if (!retainGraph) { t.inputs = []; t.backward = null; }
    if (!entry) continue;
    const inputGrads = fn!(entry.data);
    inputs.forEach((input, k) => {
      const gi = inputGrads[k];
      if (gi && input) add(input, gi);
    });
  }
}
