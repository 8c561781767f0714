// Optimisers for the demo world's trainer: AdamW with decoupled weight decay and bias correction,
// global-norm gradient clipping, and a warmup-cosine learning-rate schedule. (The v*/z optimisation
// of ROME and MEMIT keeps its own per-request Adam, editors/common/vstar.ts.)
//
// Parameters are leaf tensors (`parameter(t)`) whose `.grad` the tape fills. Every update runs in
// plain JavaScript over the Float32Arrays, element by element in a fixed order with float64
// intermediates, so a step is deterministic and identical on every backend and thread count.
import { AmendError } from '../errors.js';
import type { Tensor } from './tensor.js';

// ---------------------------------------------------------------------------------------------
// Parameter groups

/** A set of parameters sharing hyperparameters; unset fields take the optimiser's defaults. */
export interface ParamGroup {
  params: Tensor[];
  /** Decoupled weight decay coefficient for this group (0: none). */
  weightDecay?: number;
  /** Multiplies the learning rate for this group (default 1). */
  lrScale?: number;
  /** A label for logs (e.g. "decay", "no-decay"). */
  name?: string;
}

/**
 * Splits named parameters into a group that decays and one that does not. By default matrices
 * decay and everything of rank < 2 (biases, norm gains) does not; `noDecay` adds names that must
 * not decay either (embeddings, as is common for small models). A tensor that appears under two
 * names (tied embeddings) is listed once: in the no-decay group if any of its names asks for it.
 */
export function decayGroups(
  named: Iterable<[string, Tensor]>,
  weightDecay: number,
  noDecay: (name: string, t: Tensor) => boolean = () => false,
): ParamGroup[] {
  const entries = [...named];
  const exempt = new Set<Tensor>();
  for (const [name, t] of entries) if (t.rank < 2 || noDecay(name, t)) exempt.add(t);
  const decay: Tensor[] = [], plain: Tensor[] = [];
  const seen = new Set<Tensor>();
  for (const [, t] of entries) {
    if (seen.has(t)) continue;
    seen.add(t);
    (exempt.has(t) ? plain : decay).push(t);
  }
  return [
    { name: 'decay', params: decay, weightDecay },
    { name: 'no-decay', params: plain, weightDecay: 0 },
  ];
}

// ---------------------------------------------------------------------------------------------
// Gradient norm and clipping

/** The global L2 norm of the gradients of `params` (missing gradients count as zero). */
export function gradNorm(params: Iterable<Tensor>): number {
  let sq = 0;
  for (const p of uniq(params)) {
    const g = p.grad?.data;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  }
  return Math.sqrt(sq);
}

/**
 * Scales all gradients together so that their global L2 norm is at most `maxNorm`, as
 * torch.nn.utils.clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), applied only when below 1.
 * Returns the norm before clipping (to log it). A non-finite norm throws unless `allowNonFinite`.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: { allowNonFinite?: boolean } = {}): number {
  if (!(maxNorm > 0)) throw new AmendError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const list = uniq(params);
  const norm = gradNorm(list);
  if (!Number.isFinite(norm)) {
    if (opts.allowNonFinite) return norm;
    throw new AmendError(`gradient norm is ${norm}: the loss diverged (lower the learning rate)`);
  }
  const coef = clipCoefficient(norm, maxNorm);
  if (coef < 1) {
    for (const p of list) {
      const g = p.grad?.data;
      if (!g) continue;
      for (let i = 0; i < g.length; i++) g[i] = g[i] * coef;
    }
  }
  return norm;
}

/**
 * The factor clipGradNorm would scale gradients by (1 when the norm is within the limit). Pass it
 * to AdamW.step(lr, coef) to clip without a separate pass over the gradients.
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!Number.isFinite(norm)) throw new AmendError(`gradient norm is ${norm}: the loss diverged (lower the learning rate)`);
  return Math.min(1, maxNorm / (norm + 1e-6));
}

function uniq(params: Iterable<Tensor>): Tensor[] {
  return [...new Set(params)];
}

// ---------------------------------------------------------------------------------------------
// AdamW

export interface AdamWOptions {
  /** Base learning rate (a schedule may override it per step, see step()). Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to √v̂ in the denominator. Default 1e-8. */
  eps?: number;
  /** Default decoupled weight decay for groups that do not set their own. Default 0.01 (as torch). */
  weightDecay?: number;
}

/** A group after defaults are filled in. */
export interface ResolvedGroup {
  name?: string;
  params: Tensor[];
  weightDecay: number;
  lrScale: number;
}

interface ParamState {
  m: Float32Array;
  v: Float32Array;
  /** Updates this parameter received (bias correction counts these). */
  t: number;
}

/**
 * AdamW (Loshchilov & Hutter), as torch.optim.AdamW computes it:
 *   p ← p − lr·λ·p
 *   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
 *   p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
 * A parameter whose gradient is null in a step is left alone (no decay, moments unchanged, its
 * own step count t not advanced), as torch skips parameters without a gradient.
 * Moments are stored in float32 (as torch); each update is computed in float64 and rounded once.
 */
export class AdamW {
  readonly groups: ResolvedGroup[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Number of step() calls so far. */
  stepCount = 0;
  private readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    for (const [name, v, lo, hi] of [['lr', this.lr, 0, Infinity], ['beta1', this.beta1, 0, 1], ['beta2', this.beta2, 0, 1],
      ['eps', this.eps, 0, Infinity], ['weightDecay', wd, 0, Infinity]] as const) {
      if (!(v >= lo && (v < hi || hi === Infinity)) || !Number.isFinite(v)) {
        throw new AmendError(`AdamW: ${name} must be in [${lo}, ${hi}), got ${v}`);
      }
    }
    const raw: ParamGroup[] = params.length > 0 && isTensorList(params) ? [{ params }] : (params as ParamGroup[]);
    const seen = new Set<Tensor>();
    this.groups = raw.map((g) => {
      for (const p of g.params) {
        if (!p.requiresGrad) throw new AmendError('AdamW: every parameter must require grad (make it with parameter(t))');
        if (seen.has(p)) throw new AmendError('AdamW: a parameter appears twice (in one group or in two)');
        seen.add(p);
      }
      return { name: g.name, params: g.params.slice(), weightDecay: g.weightDecay ?? wd, lrScale: g.lrScale ?? 1 };
    });
  }

  /** All parameters, in group order. */
  params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Clears every parameter's gradient (set to null, so the next backward allocates it fresh). */
  zeroGrad(): void {
    for (const p of this.params()) p.grad = null;
  }

  /**
   * One update from the current gradients; `lr` (e.g. from a schedule) replaces this.lr for this
   * step and after. `gradScale` multiplies every gradient first (clipping: see clipCoefficient).
   */
  step(lr?: number, gradScale = 1): void {
    if (!(gradScale >= 0) || !Number.isFinite(gradScale)) throw new AmendError(`AdamW.step: gradScale must be a finite number ≥ 0, got ${gradScale}`);
    if (lr !== undefined) {
      if (!(lr >= 0) || !Number.isFinite(lr)) throw new AmendError(`AdamW.step: learning rate must be ≥ 0, got ${lr}`);
      this.lr = lr;
    }
    this.stepCount++;
    const b1 = this.beta1, b2 = this.beta2, eps = this.eps;
    for (const g of this.groups) {
      const lrG = this.lr * g.lrScale;
      const decay = 1 - lrG * g.weightDecay;
      for (const p of g.params) {
        const grad = p.grad?.data;
        if (!grad) continue;
        if (grad.length !== p.data.length) throw new AmendError(`AdamW: gradient of size ${grad.length} for a parameter of size ${p.data.length}`);
        let st = this.state.get(p);
        if (!st) this.state.set(p, (st = { m: new Float32Array(p.size), v: new Float32Array(p.size), t: 0 }));
        st.t++;
        const bc1 = 1 - Math.pow(b1, st.t), bc2 = 1 - Math.pow(b2, st.t);
        const stepSize = lrG / bc1, rbc2 = 1 / Math.sqrt(bc2);
        const w = p.data, m = st.m, v = st.v;
        for (let i = 0; i < w.length; i++) {
          const gi = grad[i] * gradScale;
          const mi = (m[i] = b1 * m[i] + (1 - b1) * gi);
          const vi = (v[i] = b2 * v[i] + (1 - b2) * gi * gi);
          w[i] = w[i] * decay - stepSize * mi / (Math.sqrt(vi) * rbc2 + eps);
        }
      }
    }
  }

  /** Moments of one parameter (for tests and checkpoints of training state). */
  stateOf(p: Tensor): Readonly<ParamState> | undefined {
    return this.state.get(p);
  }
}

function isTensorList(x: Tensor[] | ParamGroup[]): x is Tensor[] {
  return !('params' in (x[0] as object));
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedule: step (0-based, the step about to be taken) → learning rate

export type LrSchedule = (step: number) => number;

export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  peak: number;
  /** Steps of linear warmup from `peak / warmupSteps` (step 0) up to `peak` (default 0). */
  warmupSteps?: number;
  /** Total steps; after warmup the rate follows a half cosine from `peak` down to `min` at this step. */
  totalSteps: number;
  /** Final learning rate (default 0); `minRatio` is the same as a fraction of peak. */
  min?: number;
  minRatio?: number;
}

/** Linear warmup, then cosine decay to `min` (held there after totalSteps). */
export function warmupCosine(o: WarmupCosineOptions): LrSchedule {
  const { warmup, total, min, peak } = checkSchedule(o);
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    if (step >= total) return min;
    const progress = (step - warmup) / Math.max(1, total - warmup);
    return min + 0.5 * (peak - min) * (1 + Math.cos(Math.PI * progress));
  };
}

function checkSchedule(o: WarmupCosineOptions): { warmup: number; total: number; min: number; peak: number } {
  const warmup = o.warmupSteps ?? 0;
  if (!(o.peak >= 0) || !Number.isFinite(o.peak)) throw new AmendError(`schedule: peak must be ≥ 0, got ${o.peak}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new AmendError(`schedule: warmupSteps must be an integer ≥ 0, got ${warmup}`);
  if (!Number.isInteger(o.totalSteps) || o.totalSteps < warmup) {
    throw new AmendError(`schedule: totalSteps must be an integer ≥ warmupSteps (${warmup}), got ${o.totalSteps}`);
  }
  const min = o.min ?? (o.minRatio ?? 0) * o.peak;
  if (!(min >= 0 && min <= o.peak)) throw new AmendError(`schedule: min must be in [0, peak], got ${min}`);
  return { warmup, total: o.totalSteps, min, peak: o.peak };
}
