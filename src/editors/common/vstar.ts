// The v* (ROME, compute_v) / z (MEMIT, compute_z) optimisation: a vector δ added to one hook point
// (ROME: the MLP output of the edited layer; MEMIT: the output of the last edited block) at the
// fact lookup token of every rewriting and KL prompt, found by Adam on
//
//   loss(δ) = mean over rewriting prompts of −(1/m) Σ_j log p(target_j | prompt, target_<j)   (m: that prompt's target length)
//           + kl_factor · KL(p_δ ‖ p_0) on the KL prompts' lookup token (kl_div(init, cur, batchmean))
//           + v_weight_decay · ‖δ‖ / ‖v₀‖²
//
// with ‖δ‖ clamped to clamp_norm_factor · ‖v₀‖ after every step, and the loop ending when the loss
// drops below early_stop_loss or after v_num_grad_steps iterations (the last one only evaluates).
// v₀ is the hook point's value at the lookup token of the first rewriting prompt before any change;
// the result is v₀ + δ. Several requests are optimised together in one batch (each has its own δ;
// their losses are independent, so the summed loss gives each δ its own gradient); a request that
// stops early leaves the batch.
//
// δ changes nothing below the block it enters at, nor, by causality, at any position before the
// lookup token. So the first evaluation records, per sequence, the stream entering that block and
// the keys and values of the earlier positions at every block from there up; each evaluation then
// runs only the tokens from the lookup token on, through those blocks (attention reads the
// recorded keys and values as a constant prefix). Most tokens of the prompts precede the lookup.
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import type { AttentionPrefix } from '../../models/transformer.js';
import { KVCache } from '../../models/kvcache.js';
import { addAt, capture, hookPoint, type Hook } from '../../models/hooks.js';
import * as T from '../../tensor/index.js';
import { Tensor } from '../../tensor/index.js';
import { norm2 } from '../../patch/delta.js';
import { padBatch, planBatches } from './activations.js';
import type { OptJob } from './prompts.js';
import type { EditHparams } from '../hparams.js';

export interface VStarSettings {
  /** Hook point δ is added to, e.g. blocks.5.mlp.out (ROME) or blocks.8.resid_post (MEMIT). */
  point: string;
  /** Layer whose output the NLL reads (the last layer = the model's logits; earlier = logit lens). */
  lossLayer: number;
  steps: number;
  lr: number;
  weightDecay: number;
  clampFactor: number;
  klFactor: number;
  earlyStop: number;
  /**
   * Record each sequence's keys and values before its lookup token (at the blocks from the start
   * block up) and the residual stream entering the start block on the first evaluation, and run
   * later evaluations from the lookup token on, from the start block up only (default true): by
   * causality δ changes nothing before the lookup token, nor anything below its block, and most
   * tokens sit there (74 % of CounterFact's rewriting and KL prompts). Off, every evaluation runs
   * whole sequences through the whole model (the same values up to rounding; the reference the
   * tests compare with).
   */
  reusePrefix?: boolean;
}

/** The settings of the hparams for δ at `point`, the NLL read at `lossLayer`. */
export function vstarSettings(hp: EditHparams, point: string, lossLayer: number): VStarSettings {
  return {
    point, lossLayer, steps: hp.v_num_grad_steps, lr: hp.v_lr,
    weightDecay: hp.v_weight_decay, clampFactor: hp.clamp_norm_factor, klFactor: hp.kl_factor, earlyStop: hp.early_stop_loss,
  };
}

export interface VStarResult {
  /** v₀ + δ. */
  target: Float32Array;
  init: Float32Array;
  delta: Float32Array;
  /** Iterations run (forward passes). */
  iterations: number;
  /** Loss parts at the last evaluation. */
  loss: number;
  nll: number;
  kl: number;
  weightDecay: number;
  /** Mean over rewriting prompts of exp(−NLL per token) at the last evaluation. */
  targetProb: number;
}

/** What the editors report of one optimisation (v* of ROME, z of MEMIT): VStarResult without its vectors. */
export type VStarSummary = Omit<VStarResult, 'target' | 'init' | 'delta'> & { initNorm: number; deltaNorm: number };

export function summariseVStar(r: VStarResult): VStarSummary {
  return {
    iterations: r.iterations, loss: r.loss, nll: r.nll, kl: r.kl, weightDecay: r.weightDecay, targetProb: r.targetProb,
    initNorm: norm2(r.init), deltaNorm: norm2(r.delta),
  };
}

/** Per-job state of the optimisation. */
export interface JobState {
  job: OptJob;
  init: Float32Array | null;
  initNorm: number;
  /** log p at each KL prompt's lookup token before any change, [nKL, V]. */
  klInit: Float32Array | null;
  delta: Float32Array;
  /** Per sequence (rewriting prompts, then KL prompts), with reusePrefix: what the runs from its cut on read. */
  prefix?: (PrefixRecord | undefined)[];
}

/**
 * One sequence's constants for evaluations that run only its positions ≥ `cut`: the keys (after
 * rotary) and values of positions < cut at every block from the start block up, each
 * [blocks, cut, kvHeads·headDim], and the residual stream entering the start block at positions
 * ≥ cut, [len − cut, d].
 */
export interface PrefixRecord {
  k: Float32Array;
  v: Float32Array;
  resid: Float32Array;
}

export interface Evaluation {
  loss: number;
  nll: number;
  kl: number;
  weightDecay: number;
  targetProb: number;
}

/** One sequence of the batch and what it contributes. */
interface SeqRef {
  job: number;
  ids: number[];
  lookup: number;
  /** Rewriting prompt: scored positions and targets; KL prompt: none. */
  scorePositions: number[];
  scoreTargets: number[];
  /** Weight of each scored token's log-prob in the loss: −1 / (m · #rewriting prompts). */
  weight: number;
  /** Index among the job's KL prompts, or -1 for a rewriting prompt. */
  klIndex: number;
  /** The job's first rewriting prompt: where v₀ is read. */
  first: boolean;
  /** Index among the job's sequences (rewriting prompts, then KL prompts). */
  slot: number;
  /** First position an evaluation runs: 0, or with reusePrefix the first whose output is read or moved by δ. */
  cut: number;
}

/**
 * The first block whose computation depends on δ at `point`: block l for points inside it, l + 1
 * for its output; never above the logit-lens layer, whose output is read through a hook.
 */
function startLayerOf(point: string, lossLayer: number): number {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(point);
  if (!m) return 0;
  const l = Number(m[1]);
  return Math.min(m[2] === 'resid_post' ? l + 1 : l, lossLayer + 1);
}

/** What every batch of one evaluation shares. */
interface EvalContext {
  model: CausalLM;
  states: readonly JobState[];
  s: VStarSettings;
  grad: boolean;
  /** Every job's δ, [jobs, d], the leaf the gradients reach. */
  param: Tensor;
  /** Per job: kl_factor / #KL prompts, the weight of each KL prompt's term. */
  klWeight: readonly number[];
  /** With reusePrefix, the block the runs start at (startLayerOf); else 0. */
  startLayer: number;
}

/** Per job, the loss parts the batches add up. */
interface LossTotals {
  nll: Float64Array;
  probSum: Float64Array;
  klLoss: Float64Array;
}

/**
 * One forward (and, with `grad`, backward) evaluation of the jobs' losses with their current δ,
 * over length-sorted batches of at most `maxTokens` padded tokens (each batch's graph is
 * backpropagated on its own; the gradients add up in δ). Records v₀ and the initial KL
 * distributions of jobs that have none yet (their δ must be zero then; the KL term and its
 * gradient vanish there). Returns each job's loss parts and, with `grad`, dloss/dδ per job
 * (weight decay included).
 */
export function evaluateJobs(model: CausalLM, states: readonly JobState[], s: VStarSettings, grad: boolean, maxTokens = 2048): { evals: Evaluation[]; grads: Float32Array[] | null } {
  const d = model.config.hidden, V = model.config.vocabSize;
  const usePrefix = s.reusePrefix !== false;
  const cutOf = (lookup: number, scored: readonly number[]): number => (usePrefix ? Math.min(lookup, ...scored) : 0);
  const refs: SeqRef[] = [];
  states.forEach((st, j) => {
    const P = st.job.rewriting.length;
    st.job.rewriting.forEach((q, i) => refs.push({ job: j, ids: q.ids, lookup: q.lookup, scorePositions: q.scorePositions, scoreTargets: q.scoreTargets, weight: -1 / (q.scoreTargets.length * P), klIndex: -1, first: i === 0, slot: i, cut: cutOf(q.lookup, q.scorePositions) }));
    st.job.kl.forEach((q, i) => refs.push({ job: j, ids: q.ids, lookup: q.lookup, scorePositions: [], scoreTargets: [], weight: 0, klIndex: i, first: false, slot: P + i, cut: cutOf(q.lookup, []) }));
  });
  for (const st of states) {
    if (st.init === null && norm2(st.delta) !== 0) throw new Error('v* optimisation: initial values must be recorded with δ = 0');
    if (st.klInit === null) st.klInit = new Float32Array(st.job.kl.length * V).fill(NaN);
  }
  const startLayer = usePrefix ? startLayerOf(s.point, s.lossLayer) : 0;
  if (usePrefix) {
    const missing = refs.filter((r) => states[r.job].prefix?.[r.slot] === undefined);
    if (missing.length > 0) recordPrefixes(model, states, missing, startLayer, maxTokens);
  }
  const ctx: EvalContext = {
    model, states, s, grad, startLayer,
    param: T.parameter(new Tensor(Float32Array.from(states.flatMap((st) => Array.from(st.delta))), [states.length, d])),
    klWeight: states.map((st) => s.klFactor / Math.max(1, st.job.kl.length)),
  };
  const totals: LossTotals = { nll: new Float64Array(states.length), probSum: new Float64Array(states.length), klLoss: new Float64Array(states.length) };
  // Batches are planned on whole lengths even when only the tokens from the cut on run: a batch's
  // prefix keys and values (and their copies on the tape) take memory per prefix slot, so packing
  // rows by their run length alone (4 tokens of 15) grew MEMIT's peak by 0.6 GiB at 100 requests.
  for (const batchIdx of planBatches(refs.map((r) => r.ids.length), maxTokens)) evaluateBatch(ctx, batchIdx.map((i) => refs[i]), totals);

  const evals: Evaluation[] = states.map((st, j) => {
    const wd = s.weightDecay * norm2(st.delta) / (st.initNorm * st.initNorm);
    const { nll, probSum, klLoss } = totals;
    return { loss: nll[j] + klLoss[j] + wd, nll: nll[j], kl: klLoss[j], weightDecay: wd, targetProb: probSum[j] };
  });
  let grads: Float32Array[] | null = null;
  if (grad) {
    const g = ctx.param.grad?.data ?? new Float32Array(states.length * d);
    grads = states.map((st, j) => {
      const gj = g.slice(j * d, (j + 1) * d);
      addWeightDecayGradient(gj, st, s.weightDecay);
      return gj;
    });
  }
  return { evals, grads };
}

/**
 * d/dδ of weightDecay · ‖δ‖ / ‖v₀‖², added to `g`: weightDecay · δ / (‖δ‖ ‖v₀‖²); none at δ = 0,
 * where the norm has no gradient (torch's is 0 there too).
 */
function addWeightDecayGradient(g: Float32Array, st: JobState, weightDecay: number): void {
  const dn = norm2(st.delta);
  if (!(dn > 0 && weightDecay > 0)) return;
  const c = weightDecay / (dn * st.initNorm * st.initNorm);
  for (let i = 0; i < g.length; i++) g[i] += c * st.delta[i];
}

/**
 * One batch of an evaluation: its forward (and backward) pass, then its loss parts added to
 * `totals`, and v₀ and the initial KL distributions recorded in the states where missing.
 *
 * A function of its own, and only values (no tensors) leave it: a tensor from inside withGrad holds
 * the batch's whole autograd graph (every activation of its forward pass) through its tape node.
 * Written as a loop body, the last batch's graph stayed reachable while the next batch ran, even
 * across a full collection, so two graphs were resident at the peak (2.9 GiB instead of 2.0 on
 * the GPT-2-small-shaped bench).
 */
function evaluateBatch(ctx: EvalContext, seqs: readonly SeqRef[], totals: LossTotals): void {
  const { model, states, s, startLayer } = ctx;
  const d = model.config.hidden, V = model.config.vocabSize;
  // Positions are those of the tokens run (from each sequence's cut on): row b, position p → b·Tn + p − cut.
  const batch = padBatch(seqs.map((r) => r.ids.slice(r.cut)));
  const Tn = batch.T;
  const deltaRows = seqs.map((r, b) => b * Tn + r.lookup - r.cut);
  const owner = seqs.map((r) => r.job);
  // Scored rows (rewriting targets), then KL lookups; one pick over all of them.
  const rows: number[] = [], tokIdx: number[] = [], w: number[] = [];
  const scoreSeq: number[] = [];
  seqs.forEach((r, b) => r.scorePositions.forEach((p, k) => { rows.push(b * Tn + p - r.cut); tokIdx.push(r.scoreTargets[k]); w.push(r.weight); scoreSeq.push(b); }));
  const nScore = rows.length;
  const klSeqs: number[] = [];
  seqs.forEach((r, b) => { if (r.klIndex >= 0) { rows.push(b * Tn + r.lookup - r.cut); tokIdx.push(0); w.push(0); klSeqs.push(b); } });
  const firsts = seqs.map((r, b) => (r.first && states[r.job].init === null ? b : -1)).filter((b) => b >= 0);
  const klInitOf = (r: SeqRef): Float32Array => states[r.job].klInit!.subarray(r.klIndex * V, (r.klIndex + 1) * V);

  // With reusePrefix the forward starts after each sequence's recorded prefix, at the start block.
  let start: { layer: number; resid: Tensor } | undefined;
  let prefix: AttentionPrefix | undefined;
  if (s.reusePrefix !== false) ({ start, prefix } = prefixBatch(model, seqs.map((r) => states[r.job].prefix![r.slot]!), seqs.map((r) => r.cut), Tn, startLayer));
  const run = (): { lp: Float32Array; v0: Float32Array | null } => {
    const hooks: Hook[] = [];
    let initCap: (() => Tensor) | null = null;
    if (firsts.length > 0) {
      const c = capture(s.point, firsts.map((b) => deltaRows[b]));
      hooks.push(c.hook);
      initCap = c.value;
    }
    hooks.push(addAt(s.point, deltaRows, T.gatherRows(ctx.param, owner)));
    const lp = batchLogProbs(model, s, { ids: batch.ids, B: batch.B, T: Tn, mask: batch.mask }, rows, nScore, hooks, start, prefix);
    // Initial KL distributions first (at δ = 0 they equal the current ones: KL and its gradient are 0).
    klSeqs.forEach((b, k) => {
      const dst = klInitOf(seqs[b]);
      if (Number.isNaN(dst[0])) dst.set(lp.data.subarray((nScore + k) * V, (nScore + k + 1) * V));
    });
    if (ctx.grad) {
      const klTerms = s.klFactor > 0 ? klSeqs.map((b) => ({ init: klInitOf(seqs[b]), weight: ctx.klWeight[seqs[b].job] })) : [];
      batchLoss(lp, nScore, tokIdx, w, klTerms).backward();
    }
    return { lp: lp.data, v0: initCap?.().data ?? null };
  };
  const { lp: lpd, v0 } = ctx.grad ? T.withGrad(run) : T.noGrad(run);

  if (v0) {
    firsts.forEach((b, k) => {
      const st = states[seqs[b].job];
      st.init = v0.slice(k * d, (k + 1) * d);
      st.initNorm = norm2(st.init);
      if (!(st.initNorm > 0)) throw new AmendError('v* optimisation: the edited activation is zero at the lookup token; choose another layer');
    });
  }
  // Loss parts from the values.
  const nllEach = new Float64Array(seqs.length);
  for (let i = 0; i < nScore; i++) nllEach[scoreSeq[i]] -= lpd[i * V + tokIdx[i]];
  seqs.forEach((r, b) => {
    if (r.klIndex >= 0) return;
    const m = r.scoreTargets.length, P = states[r.job].job.rewriting.length;
    totals.nll[r.job] += nllEach[b] / m / P;
    totals.probSum[r.job] += Math.exp(-nllEach[b] / m) / P;
  });
  klSeqs.forEach((b, k) => {
    const r = seqs[b];
    const cur = lpd.subarray((nScore + k) * V, (nScore + k + 1) * V);
    const init = klInitOf(r);
    let x = 0;
    for (let v = 0; v < V; v++) x += Math.exp(cur[v]) * (cur[v] - init[v]);
    totals.klLoss[r.job] += ctx.klWeight[r.job] * x;
  });
}

/** A padded batch of token ids as forward() takes it. */
interface BatchIds { ids: Int32Array; B: number; T: number; mask: Uint8Array }

/**
 * Log-probabilities [rows, V] at the batch's scored rows (through the logit lens when the loss
 * layer is below the last) and then its KL rows. Only these leave this function: the logits
 * (as large, and read by no backward) become collectable when it returns, rather than staying
 * reachable from the caller's frame while the batch's graph is backpropagated.
 */
function batchLogProbs(model: CausalLM, s: VStarSettings, batch: BatchIds, rows: readonly number[], nScore: number, hooks: readonly Hook[],
  start: { layer: number; resid: Tensor } | undefined, prefix: AttentionPrefix | undefined): Tensor {
  const fwd = { attentionMask: batch.mask, start, prefix };
  if (s.lossLayer >= model.config.layers - 1) {
    return T.logSoftmax(model.forward(batch.ids, batch.B, batch.T, { ...fwd, logitsAt: rows, hooks }).logits!);
  }
  // Logit lens (memit/compute_z with v_loss_layer below the last layer): the targets' NLL through
  // ln_f and the head on that layer's output; the KL, as there, on the model's own logits (the
  // forward runs every block either way).
  const klRows = rows.slice(nScore);
  const lens = nScore > 0 ? capture(hookPoint.residPost(s.lossLayer), rows.slice(0, nScore)) : null;
  const out = model.forward(batch.ids, batch.B, batch.T, { ...fwd, logitsAt: klRows.length > 0 ? klRows : 'none', hooks: lens ? [...hooks, lens.hook] : hooks });
  const parts = [...(lens ? [lensLogits(model, lens.value())] : []), ...(klRows.length > 0 ? [out.logits!] : [])];
  return T.logSoftmax(parts.length === 1 ? parts[0]! : T.concat(parts, 0));
}

/**
 * A batch's loss from its log-probabilities lp (scored rows, then one per KL prompt): Σ w · log p
 * of the targets, plus per KL row weight · KL(p_δ ‖ p_0) against `init`, its distribution before
 * any change (none when the KL term is off). A function of its own for the same reason as
 * batchLogProbs: the KL's temporaries ([KL rows, V] each) are needed only through the graph.
 */
function batchLoss(lp: Tensor, nScore: number, tokIdx: readonly number[], w: readonly number[], klTerms: readonly { init: Float32Array; weight: number }[]): Tensor {
  const V = lp.dim(-1);
  let loss = T.sum(T.mul(T.pick(lp, tokIdx), new Tensor(Float32Array.from(w), [w.length])));
  if (klTerms.length > 0) {
    const cur = T.gatherRows(lp, klTerms.map((_, k) => nScore + k));
    const init = new Float32Array(klTerms.length * V);
    klTerms.forEach((r, k) => init.set(r.init, k * V));
    const perRow = T.sum(T.mul(T.exp(cur), T.sub(cur, new Tensor(init, [klTerms.length, V]))), 1);
    loss = T.add(loss, T.sum(T.mul(perRow, new Tensor(Float32Array.from(klTerms, (r) => r.weight), [klTerms.length]))));
  }
  return loss;
}

/**
 * Runs the sequences once, whole and without δ (their values before `cut` never change), and
 * keeps of each its PrefixRecord: a generation KV cache holds every block's keys (after rotary)
 * and values, and a hook the stream entering the start block.
 */
function recordPrefixes(model: CausalLM, states: readonly JobState[], seqs: readonly SeqRef[], startLayer: number, maxTokens: number): void {
  const c = model.config, d = c.hidden, row = c.kvHeads * c.headDim, blocks = c.layers - startLayer;
  for (const batchIdx of planBatches(seqs.map((r) => r.ids.length), maxTokens)) {
    const part = batchIdx.map((i) => seqs[i]);
    const batch = padBatch(part.map((r) => r.ids));
    const Tn = batch.T;
    const cache = new KVCache(c, batch.B, Tn, { reserve: Tn });
    // resid_post of the block below, or the embeddings when the start block is the first.
    const entering = capture(startLayer > 0 ? hookPoint.residPost(startLayer - 1) : hookPoint.residPre(0));
    T.noGrad(() => model.forward(batch.ids, batch.B, Tn, { attentionMask: batch.mask, logitsAt: 'none', hooks: [entering.hook], cache }));
    const resid = entering.value().data;
    part.forEach((r, b) => {
      const k = new Float32Array(blocks * r.cut * row), v = new Float32Array(blocks * r.cut * row);
      for (let i = 0; i < blocks; i++) {
        const from = b * cache.capacity * row; // the cache is [B, capacity (= Tn), kvHeads, headDim] per block
        k.set(cache.k[startLayer + i].subarray(from, from + r.cut * row), i * r.cut * row);
        v.set(cache.v[startLayer + i].subarray(from, from + r.cut * row), i * r.cut * row);
      }
      const st = states[r.job];
      st.prefix ??= [];
      st.prefix[r.slot] = { k, v, resid: resid.slice((b * Tn + r.cut) * d, (b * Tn + r.ids.length) * d) };
    });
  }
}

/**
 * A batch's start residual [B, Tn, d] and constant prefix from its sequences' records: each row's
 * prefix is padded to the longest (the forward masks the padding slots), and its run positions,
 * padded to Tn, stay 0 past its end (nothing real attends to them).
 */
function prefixBatch(model: CausalLM, recs: readonly PrefixRecord[], cuts: readonly number[], Tn: number, startLayer: number): { start: { layer: number; resid: Tensor }; prefix: AttentionPrefix | undefined } {
  const c = model.config, d = c.hidden, row = c.kvHeads * c.headDim, blocks = c.layers - startLayer, B = recs.length;
  const lengths = Int32Array.from(cuts);
  const slots = Math.max(0, ...lengths);
  const resid = new Float32Array(B * Tn * d);
  recs.forEach((r, b) => resid.set(r.resid, b * Tn * d));
  const k: Tensor[] = [], v: Tensor[] = [];
  for (let i = 0; i < blocks; i++) {
    const kb = new Float32Array(B * slots * row), vb = new Float32Array(B * slots * row);
    recs.forEach((r, b) => {
      const n = lengths[b] * row;
      kb.set(r.k.subarray(i * n, (i + 1) * n), b * slots * row);
      vb.set(r.v.subarray(i * n, (i + 1) * n), b * slots * row);
    });
    k.push(new Tensor(kb, [B, slots, c.kvHeads, c.headDim]));
    v.push(new Tensor(vb, [B, slots, c.kvHeads, c.headDim]));
  }
  // δ at the last block's output: no block runs, so nothing reads a prefix.
  return { start: { layer: startLayer, resid: new Tensor(resid, [B, Tn, d]) }, prefix: blocks > 0 ? { k, v, lengths } : undefined };
}

/** ln_f and the LM head applied to residual-stream rows h [n, d] (a logit lens). */
function lensLogits(model: CausalLM, h: Tensor): Tensor {
  const c = model.config, s = model.spec;
  const w = model.weight(s.lnf.w);
  const normed = c.norm === 'rmsnorm' ? T.rmsNorm(h, w, c.normEps) : T.layerNorm(h, w, s.lnf.b ? model.weight(s.lnf.b) : null, c.normEps);
  const head = s.lmHead;
  return T.linear(normed, model.weight(head.w), head.b ? model.weight(head.b) : null, head.layout);
}

export interface OptimiseOptions {
  /** Called after every iteration with the number of jobs still running. */
  onStep?: (iteration: number, active: number) => void;
}

/** Runs the optimisation for every job (together, as one batch); see the file comment. */
export function optimiseTargets(model: CausalLM, jobs: readonly OptJob[], s: VStarSettings, opts: OptimiseOptions = {}): VStarResult[] {
  const d = model.config.hidden;
  const states: JobState[] = jobs.map((job) => ({ job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) }));
  const adamM = jobs.map(() => new Float64Array(d)), adamV = jobs.map(() => new Float64Array(d));
  const results: (VStarResult | null)[] = jobs.map(() => null);
  const b1 = 0.9, b2 = 0.999, eps = 1e-8; // torch.optim.Adam defaults
  let active = jobs.map((_, j) => j);
  for (let it = 0; it < s.steps && active.length > 0; it++) {
    const { evals, grads } = evaluateJobs(model, active.map((j) => states[j]), s, true);
    const next: number[] = [];
    active.forEach((j, a) => {
      const st = states[j], e = evals[a];
      if (!Number.isFinite(e.loss)) throw new AmendError(`v* optimisation diverged (loss ${e.loss}); lower v_lr`);
      if (e.loss < s.earlyStop || it === s.steps - 1) {
        results[j] = finish(st, e, it + 1);
        return;
      }
      // Adam step (bias-corrected, as torch.optim.Adam), then the L2-ball projection.
      const g = grads![a], m = adamM[j], v = adamV[j], t = it + 1;
      const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
      for (let i = 0; i < d; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        st.delta[i] -= (s.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
      }
      const maxNorm = s.clampFactor * st.initNorm, dn = norm2(st.delta);
      if (dn > maxNorm) {
        const f = maxNorm / dn;
        for (let i = 0; i < d; i++) st.delta[i] *= f;
      }
      next.push(j);
    });
    active = next;
    opts.onStep?.(it + 1, active.length);
  }
  return results.map((r) => r!);
}

function finish(st: JobState, e: Evaluation, iterations: number): VStarResult {
  const target = new Float32Array(st.delta.length);
  for (let i = 0; i < target.length; i++) target[i] = st.init![i] + st.delta[i];
  return {
    target, init: st.init!, delta: st.delta.slice(), iterations,
    loss: e.loss, nll: e.nll, kl: e.kl, weightDecay: e.weightDecay, targetProb: e.targetProb,
  };
}
