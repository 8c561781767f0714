// The forward pass shared by every family: embeddings, blocks, final norm, LM head. What differs
// between GPT-2, GPT-NeoX, GPT-J and Llama (norm type, fused or separate qkv, rotary, parallel
// residual, gated MLP) is data in the spec and config, so one reading covers all of them:
//
//   x = wte[ids] (+ wpe[pos], learned positions only)               [B, T, d], d = config.hidden
//   per block l:  sequential  x = x + attn(ln1 x);  x = x + mlp(ln2 x)
//                 parallel    x = x + (attn(ln1 x) + mlp(ln2 x))     (GPT-J: ln2 is ln1)
//   hidden = lnf x;  logits = hidden @ lm_head                       [B, T, V]
//   attn(h) = o(softmax(scale · q kᵀ, causal and padding masked) v), q and k rotated when rotary
//   mlp(h)  = down(act(up h)), or down(act(gate h) * up h) when gated (Llama)
//
// The backward pass is not written here: each op in tensor/ops.ts records its own gradient rule
// on the tape when one is running (withGrad), so this one function serves inference, editing and
// training.
//
// Below, T is the tensor module; the sequence length is `len` (the T of the shape comments).
import { AmendError } from '../errors.js';
import { assertNotHeld } from './hold.js';
import { kernels } from '../backend/index.js';
import * as T from '../tensor/index.js';
import { Tensor } from '../tensor/index.js';
import type { ModelConfig } from './config.js';
import type { LayerSpec, LinearSpec, ModelSpec, NormSpec } from './arch.js';
import type { Hook } from './hooks.js';
import { checkHookPoint, hookPoint } from './hooks.js';
import type { KVCache } from './kvcache.js';
import { ropeFrequencies, type RopeFrequencies } from './rope.js';

/** What the forward pass needs from a model: its config, spec and weights by checkpoint name. */
export interface ModelWeights {
  config: ModelConfig;
  spec: ModelSpec;
  weight(name: string): Tensor;
}

export interface ForwardOptions {
  /** [B*T], 1 for real tokens, 0 for padding (right padding to score, left to generate). */
  attentionMask?: Uint8Array | null;
  /**
   * Where to compute logits: 'all' → [B, T, V]; a list of flat rows b*T + t → [rows, V];
   * 'none' → no LM head (hidden states and hooks only).
   */
  logitsAt?: 'all' | 'none' | readonly number[];
  hooks?: readonly Hook[];
  /** Generation: the cache holding earlier positions; ids are the new tokens only. */
  cache?: KVCache;
  /**
   * Start at block `layer` from a residual stream recorded earlier ([B, T, d], the output of block
   * layer − 1 for these ids and mask): the embeddings and the blocks below are skipped, and of
   * their hook points only `blocks.{layer-1}.resid_post` runs (on `resid`). Optimisations that
   * change activations at layer ≥ `layer` only (ROME's v*, MEMIT's z) need the lower blocks once.
   */
  start?: { layer: number; resid: Tensor };
  /**
   * Earlier positions whose keys and values are constants: each row's ids continue its own prefix
   * (positions and attention over it), as if the prefix tokens stood before them. Unlike a KV
   * cache it is only read, so it may be used inside withGrad (no gradient reaches it); the v* and z
   * optimisation runs only the tokens from the lookup token on, whose values depend on δ.
   */
  prefix?: AttentionPrefix;
}

/**
 * Keys (after rotary) and values of the positions before a batch, for every block the forward
 * runs: k[i] and v[i] belong to block start.layer + i (block i without start), each
 * [B, slots, kvHeads, headDim]. Row b's prefix fills its first lengths[b] slots; the rest is
 * padding (masked), so rows with prefixes of different lengths share one batch.
 */
export interface AttentionPrefix {
  k: Tensor[];
  v: Tensor[];
  lengths: Int32Array;
}

export interface ForwardOutput {
  logits: Tensor | null;
  /** Final normed hidden states [B, T, d]. */
  hidden: Tensor;
}

/** Frequencies that do not depend on the pass, once per config (recomputed if its rotary settings change). */
const fixedFrequencies = new WeakMap<ModelConfig, { rotDim: number; theta: number; scaling: ModelConfig['ropeScaling']; f: RopeFrequencies }>();

/**
 * The rotary frequencies of one forward pass. Only "dynamic" scaling depends on the pass: like
 * transformers, it takes the length max(pos) + 1 (with a KV cache, the positions of the new
 * tokens, so the whole length so far). transformers also keeps grown frequencies for a later,
 * shorter call while that call still runs past max_position_embeddings (its rotary module has
 * state); Amend computes every call from its own length, which is the same for one forward and
 * for generation, whose length only grows. As in transformers, keys already in the cache keep
 * the rotation they were computed with.
 */
function rotaryFrequencies(c: ModelConfig, pos: Int32Array): RopeFrequencies {
  if (c.ropeScaling?.type === 'dynamic') {
    let top = 0;
    for (const p of pos) if (p > top) top = p;
    return ropeFrequencies(c.rotaryDim, c.ropeTheta, c.ropeScaling, top + 1);
  }
  const known = fixedFrequencies.get(c);
  if (known && known.rotDim === c.rotaryDim && known.theta === c.ropeTheta && known.scaling === c.ropeScaling) return known.f;
  const f = ropeFrequencies(c.rotaryDim, c.ropeTheta, c.ropeScaling, 0);
  fixedFrequencies.set(c, { rotDim: c.rotaryDim, theta: c.ropeTheta, scaling: c.ropeScaling, f });
  return f;
}

/**
 * Position ids from the padding mask: the running count of real tokens (pads get 0), so a
 * left-padded row's first real token is at position 0, as without padding. `start` [B]: the real
 * tokens each row has already seen (a KV cache's count); none: 0.
 */
export function positionsFromMask(mask: Uint8Array | null, B: number, len: number, start?: Int32Array): Int32Array {
  const pos = new Int32Array(B * len);
  for (let b = 0; b < B; b++) {
    let seen = start ? start[b] : 0;
    for (let t = 0; t < len; t++) {
      const real = !mask || mask[b * len + t] !== 0;
      pos[b * len + t] = real ? seen++ : 0;
    }
  }
  return pos;
}

/**
 * The model on B rows of `len` token ids each (ids row-major [B, len]). Inside withGrad every op
 * records on the tape, so a loss on the outputs backpropagates into any tensor that requires
 * grad and took part (a hook's delta, a weight made a parameter).
 */
export function forward(m: ModelWeights, ids: Int32Array, B: number, len: number, opts: ForwardOptions = {}): ForwardOutput {
  // A run that holds the model (an evaluation, an edit's statistics on the base weights) has
  // weights that are its own until it ends: a pass from outside it would read them half-way.
  assertNotHeld(m, 'a forward pass (forward, generate, scoring)');
  const c = m.config;
  const mask = opts.attentionMask ?? null, cache = opts.cache, prefix = opts.prefix, start = opts.start;
  const first = start?.layer ?? 0;
  checkBatch(c, ids, B, len, mask, cache);
  const hooks = hookRunner(opts.hooks ?? [], c.layers);
  if (prefix) checkPrefix(prefix, c, B, c.layers - first, cache !== undefined);
  // The cache takes its positions only once they pass the checks below, so a refused call leaves it as it was.
  const pos = cache ? cache.nextPositions(len, mask) : positionsFromMask(mask, B, len, prefix?.lengths);
  if (start) checkStart(start, c, B, len, cache !== undefined);
  checkPositions(m, pos, start !== undefined);
  const past = cache?.length ?? 0;
  cache?.advance(len, mask);

  // Inference (no tape) takes the fast path: activations that never leave the forward pass live
  // in reused scratch arrays, and the residual stream, while no hook has seen it, is updated in
  // place. The arithmetic is the same, bit for bit; only where results are written changes.
  // With the tape on, every op allocates its output, as the backward pass needs its inputs intact.
  const fast = !T.isGradEnabled();
  const p: Pass = {
    m, B, len, pos, past, cache, prefix, first, hooks, fast, scratch: new Scratch(fast),
    freqs: c.positions === 'rotary' ? rotaryFrequencies(c, pos) : null,
    // With a cache, every position so far (its own mask); else this batch's mask, dropped when
    // nothing is padding so the kernel skips the per-key check.
    keyMask: cache ? cache.mask : prefix ? prefixKeyMask(prefix, mask, B, len) : mask && mask.some((v) => v === 0) ? mask : null,
  };
  let r: Residual = start ? startResidual(p, start) : { x: embed(p, ids), owned: fast };
  for (let l = first; l < c.layers; l++) r = block(p, l, r);
  const hidden = hooks.run(hookPoint.finalNorm, norm(m, m.spec.lnf, r.x));
  return { logits: lmHead(m, hidden, opts.logitsAt ?? 'all', B, len), hidden };
}

/** What the blocks of one forward pass share. */
interface Pass {
  m: ModelWeights;
  B: number;
  len: number;
  /** Position ids [B*T]. */
  pos: Int32Array;
  freqs: RopeFrequencies | null;
  /** The keys attention may read (null: all of them, causally). */
  keyMask: Uint8Array | null;
  cache: KVCache | undefined;
  /** Positions the cache held before this pass. */
  past: number;
  prefix: AttentionPrefix | undefined;
  /** The first block this pass runs (opts.start). */
  first: number;
  hooks: HookRunner;
  /** No tape: scratch arrays and in-place updates. */
  fast: boolean;
  scratch: Scratch;
}

/** The residual stream x [B, T, d], and whether it may be updated in place: this pass's own array that no hook has seen. */
interface Residual {
  x: Tensor;
  owned: boolean;
}

/** The ids make a [B, len] batch of the vocabulary's tokens; the mask and the cache fit it. */
function checkBatch(c: ModelConfig, ids: Int32Array, B: number, len: number, mask: Uint8Array | null, cache: KVCache | undefined): void {
  if (ids.length !== B * len || len === 0) throw new AmendError(`forward: ${ids.length} ids do not make a [${B}, ${len}] batch`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new AmendError(`token id ${id} is out of the vocabulary (size ${c.vocabSize})`);
    }
  }
  if (mask && mask.length !== B * len) throw new AmendError(`attention mask has ${mask.length} entries for a [${B}, ${len}] batch`);
  if (cache && T.isGradEnabled()) throw new AmendError('a KV cache is for generation only (not inside withGrad)');
  if (cache && cache.batch !== B) throw new AmendError(`KV cache holds ${cache.batch} rows, batch has ${B}`);
}

function checkStart(start: NonNullable<ForwardOptions['start']>, c: ModelConfig, B: number, len: number, cached: boolean): void {
  const first = start.layer, r = start.resid;
  if (!Number.isInteger(first) || first < 0 || first > c.layers) throw new AmendError(`forward: start layer ${first} is outside 0..${c.layers}`);
  if (r.size !== B * len * c.hidden) throw new AmendError(`forward: start residual has shape [${r.shape}] for a [${B}, ${len}, ${c.hidden}] stream`);
  if (cached) throw new AmendError('forward: a start residual cannot be combined with a KV cache');
}

/**
 * Learned positions end at the table; a sliding window (maxPositions below the config's own
 * length) ends where this attention, which has no window, would compute something else.
 */
function checkPositions(m: ModelWeights, pos: Int32Array, fromStart: boolean): void {
  const c = m.config;
  if (!(m.spec.wpe && !fromStart) && c.maxPositions >= c.configPositions) return;
  for (const p of pos) {
    if (p >= c.maxPositions) {
      throw new AmendError(c.maxPositions < c.configPositions
        ? `sequence longer than the model's sliding window of ${c.maxPositions} positions (attention past the window is not supported)`
        : `sequence longer than the model's ${c.maxPositions} positions`);
    }
  }
}

/** The hooks of one pass by point: has(point), is any there; run(point, x), x through each in turn. */
interface HookRunner {
  has(point: string): boolean;
  run(point: string, x: Tensor): Tensor;
}

function hookRunner(list: readonly Hook[], layers: number): HookRunner {
  const byPoint = new Map<string, Hook[]>();
  for (const h of list) {
    checkHookPoint(h.point, layers);
    byPoint.set(h.point, [...(byPoint.get(h.point) ?? []), h]);
  }
  return {
    has: (point) => byPoint.has(point),
    run: (point, x) => {
      for (const h of byPoint.get(point) ?? []) x = runHook(h, x);
      return x;
    },
  };
}

/** One hook on x: its replacement (checked, and reshaped back from [B*T, width]), or x when it returns nothing. */
function runHook(h: Hook, x: Tensor): Tensor {
  const point = h.point, rows = x.size / x.dim(-1); // B*T
  let y: Tensor | void | null | undefined;
  try {
    y = h.fn(x);
  } catch (e) {
    // addAt's "delta [33] fits neither [32] nor [1, 32]" says nothing of where: name the hook.
    if (e instanceof AmendError && !e.message.startsWith('hook at ')) throw new AmendError(`hook at ${point}: ${e.message}`);
    throw e;
  }
  if (y === undefined || y === null) return x;
  if (!(y instanceof Tensor)) throw new AmendError(`hook at ${point} returned ${typeof y}; return a Tensor shaped like its input, or nothing`);
  // The input's own shape, or its rows flattened ([B*T, width]); any other shape of the same
  // size would mix up batch and positions downstream.
  const flat = y.rank === 2 && y.shape[0] === rows && y.shape[1] === x.dim(-1);
  if (!flat && y.shape.join() !== x.shape.join()) {
    throw new AmendError(`hook at ${point} returned shape [${y.shape}] for [${x.shape}]; return the input's shape or [${rows}, ${x.dim(-1)}]`);
  }
  return flat ? T.reshape(y, x.shape) : y;
}

/** x = wte[ids] (+ wpe[pos], learned positions only): the residual stream's start, [B, T, d]. */
function embed(p: Pass, ids: Int32Array): Tensor {
  const { m, B, len } = p, s = m.spec, d = m.config.hidden;
  const x = T.reshape(T.gatherRows(m.weight(s.wte), ids), [B, len, d]);
  if (!s.wpe) return x;
  return T.add(x, T.reshape(T.gatherRows(m.weight(s.wpe), p.pos), [B, len, d]), p.fast ? x.data : undefined);
}

/** The residual stream recorded earlier, after the one hook point of the blocks it stands for. */
function startResidual(p: Pass, start: NonNullable<ForwardOptions['start']>): Residual {
  const x = T.reshape(start.resid, [p.B, p.len, p.m.config.hidden]);
  const below = start.layer - 1;
  // The caller's array: never written in place.
  return { x: below >= 0 ? p.hooks.run(hookPoint.residPost(below), x) : x, owned: false };
}

/**
 * Block l: sequential  x = x + attn(ln1 x);  x = x + mlp(ln2 x)
 *          parallel    x = x + (attn(ln1 x) + mlp(ln2 x))     (GPT-J: ln2 is ln1)
 * The projections write into scratch and are then added onto x (in place while x is the pass's
 * own): the same arithmetic, bit for bit, as with a hook in between that changes nothing.
 */
function block(p: Pass, l: number, r: Residual): Residual {
  const { m, hooks, scratch, fast } = p, c = m.config, ls = m.spec.layers[l];
  let { x, owned } = r;
  if (hooks.has(hookPoint.residPre(l))) {
    x = hooks.run(hookPoint.residPre(l), x);
    owned = false;
  }
  const h1 = norm(m, ls.ln1, x, scratch.take(x.size));
  const heads = selfAttention(p, l, ls, h1);
  const sharedNorm = c.parallelResidual && !ls.ln2; // GPT-J: the MLP reads h1 too
  if (!sharedNorm) scratch.give(h1);
  const attnHooked = hooks.has(hookPoint.attnOut(l)), mlpHooked = hooks.has(hookPoint.mlpOut(l));
  let a = applyLinear(m, ls.o, heads, { out: scratch.take(x.size) });
  scratch.give(heads);
  const aOwned = fast && !attnHooked;
  if (attnHooked) a = hooks.run(hookPoint.attnOut(l), a);
  if (c.parallelResidual) {
    const h2 = ls.ln2 ? norm(m, ls.ln2, x, scratch.take(x.size)) : h1;
    const mo = mlp(p, l, ls, h2);
    const sum = T.add(a, mo, aOwned ? a.data : undefined);
    if (!mlpHooked) scratch.give(mo);
    x = T.add(x, sum, owned ? x.data : undefined);
    if (aOwned) scratch.give(a);
  } else {
    x = T.add(x, a, owned ? x.data : undefined);
    if (aOwned) scratch.give(a);
    const h2 = norm(m, ls.ln2!, x, scratch.take(x.size));
    const mo = mlp(p, l, ls, h2);
    x = T.add(x, mo, fast ? x.data : undefined); // x is now the pass's own (the add above made it)
    if (!mlpHooked) scratch.give(mo);
  }
  if (hooks.has(hookPoint.residPost(l))) return { x: hooks.run(hookPoint.residPost(l), x), owned: false };
  return { x, owned: fast };
}

/**
 * mlp(h) = down(act(up h)), or down(act(gate h) * up h) when gated, with its mlp.in, mlp.keys
 * and mlp.out hooks. h and the arrays only this function saw go back to scratch (h unless the
 * mlp.in hook has seen it).
 */
function mlp(p: Pass, l: number, ls: LayerSpec, h: Tensor): Tensor {
  const { m, hooks, scratch } = p;
  const inHooked = hooks.has(hookPoint.mlpIn(l)), keysHooked = hooks.has(hookPoint.mlpKeys(l));
  const x = hooks.run(hookPoint.mlpIn(l), h);
  const n = (x.size / x.dim(-1)) * ls.up.outF;
  const up = applyLinear(m, ls.up, x, { out: scratch.take(n) });
  let keys: Tensor;
  if (ls.gate) {
    const gate = applyLinear(m, ls.gate, x, { out: scratch.take(n) });
    const act = activate(m, gate, scratch.inPlace(gate));
    keys = T.mul(act, up, scratch.inPlace(up));
    if (keys.data !== act.data) scratch.give(act);
  } else {
    keys = activate(m, up, scratch.inPlace(up));
  }
  const out = applyLinear(m, ls.down, hooks.run(hookPoint.mlpKeys(l), keys), { out: scratch.take(h.size) });
  if (!inHooked) scratch.give(h);
  if (!keysHooked) scratch.give(keys);
  if (keys.data !== up.data) scratch.give(up);
  return hooks.run(hookPoint.mlpOut(l), out);
}

/** logits = hidden @ lm_head where asked: 'all' → [B, T, V], flat rows → [rows, V], 'none' → null. */
function lmHead(m: ModelWeights, hidden: Tensor, at: NonNullable<ForwardOptions['logitsAt']>, B: number, len: number): Tensor | null {
  const c = m.config, head = m.spec.lmHead;
  if (at === 'none') return null;
  if (at === 'all') return T.reshape(applyLinear(m, head, hidden), [B, len, c.vocabSize]);
  return applyLinear(m, head, T.gatherRows(T.reshape(hidden, [B * len, c.hidden]), at));
}

/**
 * Arrays for the activations a forward pass keeps to itself (normed inputs, q/k/v, attention
 * context, MLP hidden units when unhooked): given back after their last use and taken again by
 * the next layer, so a forward touches the same warm memory instead of allocating (and page
 * faulting) tens of MB per layer. Off (take returns undefined: ops allocate) while the tape records.
 */
class Scratch {
  private readonly free = new Map<number, Float32Array[]>();
  constructor(private readonly on: boolean) {}

  take(n: number): Float32Array | undefined {
    if (!this.on) return undefined;
    return this.free.get(n)?.pop() ?? new Float32Array(n);
  }

  /** t's own data as an in-place destination while scratch is on (t must be this pass's own). */
  inPlace(t: Tensor): Float32Array | undefined {
    return this.on ? t.data : undefined;
  }

  /** Hands an array back; the caller must not use it (or any tensor over it) afterwards. */
  give(t: Tensor | null): void {
    if (!this.on || !t) return;
    let list = this.free.get(t.size);
    if (!list) this.free.set(t.size, (list = []));
    // Given twice (two tensors over one array), it must still be taken only once.
    if (!list.includes(t.data)) list.push(t.data);
  }
}

function norm(m: ModelWeights, n: NormSpec, x: Tensor, out?: Float32Array): Tensor {
  const w = m.weight(n.w);
  return m.config.norm === 'rmsnorm'
    ? T.rmsNorm(x, w, m.config.normEps, out)
    : T.layerNorm(x, w, n.b ? m.weight(n.b) : null, m.config.normEps, out);
}

function applyLinear(m: ModelWeights, l: LinearSpec, x: Tensor, opts?: T.LinearOptions): Tensor {
  return T.linear(x, m.weight(l.w), l.b ? m.weight(l.b) : null, l.layout, opts);
}

function activate(m: ModelWeights, x: Tensor, out?: Float32Array): Tensor {
  switch (m.config.act) {
    case 'gelu_tanh': return T.geluTanh(x, out);
    case 'gelu_erf': return T.geluErf(x, out);
    case 'silu': return T.silu(x, out);
    case 'relu': return T.relu(x, out);
  }
}

function checkPrefix(p: AttentionPrefix, c: ModelConfig, B: number, blocks: number, cached: boolean): void {
  if (cached) throw new AmendError('forward: a constant prefix cannot be combined with a KV cache');
  if (p.k.length !== blocks || p.v.length !== blocks) throw new AmendError(`forward: the prefix has keys for ${p.k.length} and values for ${p.v.length} blocks; the pass runs ${blocks}`);
  const slots = p.k[0]?.dim(1) ?? 0;
  for (const t of [...p.k, ...p.v]) {
    if (t.shape.join() !== [B, slots, c.kvHeads, c.headDim].join()) throw new AmendError(`forward: prefix keys/values of shape [${t.shape}] for [${B}, ${slots}, ${c.kvHeads}, ${c.headDim}]`);
  }
  if (p.lengths.length !== B || p.lengths.some((n) => n < 0 || n > slots)) throw new AmendError(`forward: prefix lengths [${p.lengths}] do not fit ${B} rows of ${slots} slots`);
}

/** [B, slots + len]: each row's real prefix slots, then its own tokens (mask, or all real). */
function prefixKeyMask(p: AttentionPrefix, mask: Uint8Array | null, B: number, len: number): Uint8Array {
  const slots = p.k[0]?.dim(1) ?? 0, S = slots + len;
  const out = new Uint8Array(B * S);
  for (let b = 0; b < B; b++) {
    out.fill(1, b * S, b * S + p.lengths[b]);
    if (mask) out.set(mask.subarray(b * len, (b + 1) * len), b * S + slots);
    else out.fill(1, b * S + slots, (b + 1) * S);
  }
  return out;
}

/** attn(h) before its output projection: the heads' outputs side by side, [B, T, H*D]. */
function selfAttention(p: Pass, l: number, ls: LayerSpec, h: Tensor): Tensor {
  const { m, B, len, pos, freqs, keyMask, past, cache, scratch } = p;
  const prefix = p.prefix ? { k: p.prefix.k[l - p.first], v: p.prefix.v[l - p.first] } : null;
  const c = m.config;
  const H = c.heads, KVH = c.kvHeads, D = c.headDim;
  const rows = B * len;
  let q: Tensor, k: Tensor, v: Tensor;
  const qkv = ls.qkv;
  if (qkv.kind === 'separate') {
    q = T.reshape(applyLinear(m, qkv.q, h, { out: scratch.take(rows * H * D) }), [B, len, H, D]);
    k = T.reshape(applyLinear(m, qkv.k, h, { out: scratch.take(rows * KVH * D) }), [B, len, KVH, D]);
    v = T.reshape(applyLinear(m, qkv.v, h, { out: scratch.take(rows * KVH * D) }), [B, len, KVH, D]);
  } else {
    // fused: [B, T, 3, H, D] (all query heads, then all key heads, then all value heads);
    // fused_per_head: [B, T, H, 3, D] (query, key, value interleaved per head)
    const f = applyLinear(m, qkv.lin, h, { out: scratch.take(rows * 3 * H * D) });
    const [shape, axis] = qkv.kind === 'fused' ? [[B, len, 3, H * D], 2] : [[B, len, H, 3, D], 3];
    const g = T.reshape(f, shape);
    [q, k, v] = [0, 1, 2].map((i) => T.reshape(T.slice(g, axis, i, i + 1, scratch.take(rows * H * D)), [B, len, H, D]));
    scratch.give(f);
  }
  if (freqs) {
    const r = { rotDim: c.rotaryDim, invFreq: freqs.invFreq, scale: freqs.scale, interleaved: c.ropeInterleaved };
    // in place while scratch is on (q and k are this function's own arrays)
    q = T.rope(q, pos, r, scratch.inPlace(q));
    k = T.rope(k, pos, r, scratch.inPlace(k));
  }
  const scale = (c.attnScaleHeadDim ? 1 / Math.sqrt(D) : 1) / (c.attnScaleInverseLayer ? l + 1 : 1);
  let out: Tensor;
  if (cache) {
    const row = KVH * D, cap = cache.capacity;
    const dstStrides = Int32Array.of(cap * row, row, 1), shape = Int32Array.of(B, len, row);
    const srcStrides = Int32Array.of(len * row, row, 1);
    const kern = kernels();
    kern.copyStrided(k.data, 0, srcStrides, cache.k[l], past * row, dstStrides, shape, false);
    kern.copyStrided(v.data, 0, srcStrides, cache.v[l], past * row, dstStrides, shape, false);
    const K = new Tensor(cache.k[l], [B, cap, KVH, D]), V = new Tensor(cache.v[l], [B, cap, KVH, D]);
    out = T.attention(q, K, V, { keyMask, qOffset: past, scale, out: scratch.take(q.size) });
  } else if (prefix) {
    // The prefix's slots come first, so query t sits at slot slots + t; concat keeps k and v on
    // the tape (the prefix, a constant, gets no gradient).
    const K = T.concat([prefix.k, k], 1), V = T.concat([prefix.v, v], 1);
    out = T.attention(q, K, V, { keyMask, qOffset: prefix.k.dim(1), scale, out: scratch.take(q.size) });
  } else {
    out = T.attention(q, k, v, { keyMask, scale, out: scratch.take(q.size) });
  }
  scratch.give(q);
  scratch.give(k);
  scratch.give(v);
  return T.reshape(out, [B, len, H * D]);
}
