// The forward pass shared by every family: embeddings, blocks, final norm, LM head. What differs
// between GPT-2, GPT-NeoX, GPT-J and Llama (norm type, fused or separate qkv, rotary, parallel
// residual, gated MLP) is data in the spec and config, so one reading covers all of them.
import { AmendError } from '../errors.js';
import { kernels } from '../backend/index.js';
import * as T from '../tensor/index.js';
import { Tensor } from '../tensor/index.js';
import type { ModelConfig } from './config.js';
import type { LayerSpec, LinearSpec, ModelSpec, NormSpec } from './arch.js';
import type { Hook, HookContext } from './hooks.js';
import { checkHookPoint } from './hooks.js';
import type { KVCache } from './kvcache.js';

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
}

export interface ForwardOutput {
  logits: Tensor | null;
  /** Final normed hidden states [B, T, d]. */
  hidden: Tensor;
}

/** Position ids from the padding mask: the running count of real tokens (pads get 0). */
export function positionsFromMask(mask: Uint8Array | null, B: number, len: number): Int32Array {
  const pos = new Int32Array(B * len);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let t = 0; t < len; t++) {
      const real = !mask || mask[b * len + t] !== 0;
      pos[b * len + t] = real ? seen++ : 0;
    }
  }
  return pos;
}

export function forward(m: ModelWeights, ids: Int32Array, B: number, len: number, opts: ForwardOptions = {}): ForwardOutput {
  const c = m.config, s = m.spec;
  if (ids.length !== B * len || len === 0) throw new AmendError(`forward: ${ids.length} ids do not make a [${B}, ${len}] batch`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new AmendError(`token id ${id} is out of the vocabulary (size ${c.vocabSize})`);
    }
  }
  const mask = opts.attentionMask ?? null;
  if (mask && mask.length !== B * len) throw new AmendError(`attention mask has ${mask.length} entries for a [${B}, ${len}] batch`);
  const cache = opts.cache;
  if (cache && T.isGradEnabled()) throw new AmendError('a KV cache is for generation only (not inside withGrad)');
  if (cache && cache.batch !== B) throw new AmendError(`KV cache holds ${cache.batch} rows, batch has ${B}`);

  const hooks = new Map<string, Hook[]>();
  for (const h of opts.hooks ?? []) {
    checkHookPoint(h.point, c.layers);
    hooks.set(h.point, [...(hooks.get(h.point) ?? []), h]);
  }
  const hook = (point: string, layer: number | null, x: Tensor): Tensor => {
    const list = hooks.get(point);
    if (!list) return x;
    const ctx: HookContext = { point, layer, batch: B, seqLen: len };
    for (const h of list) {
      const y = h.fn(x, ctx);
      if (y) {
        if (y.size !== x.size) throw new AmendError(`hook at ${point} returned shape [${y.shape}] for [${x.shape}]`);
        x = y.rank === x.rank ? y : T.reshape(y, x.shape);
      }
    }
    return x;
  };

  const past = cache?.length ?? 0;
  const pos = cache ? cache.advance(len, mask) : positionsFromMask(mask, B, len);
  let x = T.reshape(T.gatherRows(m.weight(s.wte), ids), [B, len, c.hidden]);
  if (s.wpe) {
    for (const p of pos) {
      if (p >= c.maxPositions) throw new AmendError(`sequence longer than the model's ${c.maxPositions} positions`);
    }
    x = T.add(x, T.reshape(T.gatherRows(m.weight(s.wpe), pos), [B, len, c.hidden]));
  }
  const attnMask = cache ? cache.mask : mask && mask.some((v) => v === 0) ? mask : null;

  for (let l = 0; l < c.layers; l++) {
    const ls = s.layers[l];
    x = hook(`blocks.${l}.resid_pre`, l, x);
    const h1 = norm(m, ls.ln1, x);
    const a = hook(`blocks.${l}.attn.out`, l, selfAttention(m, l, ls, h1, B, len, pos, attnMask, past, cache));
    if (c.parallelResidual) {
      const mlpOut = mlp(m, l, ls, ls.ln2 ? norm(m, ls.ln2, x) : h1, hook);
      x = T.add(x, T.add(a, mlpOut));
    } else {
      x = T.add(x, a);
      x = T.add(x, mlp(m, l, ls, norm(m, ls.ln2!, x), hook));
    }
    x = hook(`blocks.${l}.resid_post`, l, x);
  }
  const hidden = hook('final.norm', null, norm(m, s.lnf, x));

  let logits: Tensor | null = null;
  const at = opts.logitsAt ?? 'all';
  if (at === 'all') {
    logits = T.reshape(applyLinear(m, s.lmHead, hidden), [B, len, c.vocabSize]);
  } else if (at !== 'none') {
    logits = applyLinear(m, s.lmHead, T.gatherRows(T.reshape(hidden, [B * len, c.hidden]), at));
  }
  return { logits, hidden };
}

function norm(m: ModelWeights, n: NormSpec, x: Tensor): Tensor {
  const w = m.weight(n.w);
  return m.config.norm === 'rmsnorm'
    ? T.rmsNorm(x, w, m.config.normEps)
    : T.layerNorm(x, w, n.b ? m.weight(n.b) : null, m.config.normEps);
}

function applyLinear(m: ModelWeights, l: LinearSpec, x: Tensor): Tensor {
  return T.linear(x, m.weight(l.w), l.b ? m.weight(l.b) : null, l.layout);
}

function activate(m: ModelWeights, x: Tensor): Tensor {
  switch (m.config.act) {
    case 'gelu_tanh': return T.geluTanh(x);
    case 'gelu_erf': return T.geluErf(x);
    case 'silu': return T.silu(x);
    case 'relu': return T.relu(x);
  }
}

function mlp(m: ModelWeights, l: number, ls: LayerSpec, h: Tensor,
  hook: (point: string, layer: number, x: Tensor) => Tensor): Tensor {
  const x = hook(`blocks.${l}.mlp.in`, l, h);
  const up = applyLinear(m, ls.up, x);
  const keys = ls.gate ? T.mul(activate(m, applyLinear(m, ls.gate, x)), up) : activate(m, up);
  return hook(`blocks.${l}.mlp.out`, l, applyLinear(m, ls.down, hook(`blocks.${l}.mlp.keys`, l, keys)));
}

function selfAttention(m: ModelWeights, l: number, ls: LayerSpec, h: Tensor, B: number, len: number,
  pos: Int32Array, mask: Uint8Array | null, past: number, cache: KVCache | undefined): Tensor {
  const c = m.config;
  const H = c.heads, KVH = c.kvHeads, D = c.headDim;
  let q: Tensor, k: Tensor, v: Tensor;
  const qkv = ls.qkv;
  if (qkv.kind === 'separate') {
    q = T.reshape(applyLinear(m, qkv.q, h), [B, len, H, D]);
    k = T.reshape(applyLinear(m, qkv.k, h), [B, len, KVH, D]);
    v = T.reshape(applyLinear(m, qkv.v, h), [B, len, KVH, D]);
  } else if (qkv.kind === 'fused') {
    // [B, T, 3, H, D]: all query heads, then all key heads, then all value heads
    const f = T.reshape(applyLinear(m, qkv.lin, h), [B, len, 3, H * D]);
    [q, k, v] = [0, 1, 2].map((i) => T.reshape(T.slice(f, 2, i, i + 1), [B, len, H, D]));
  } else {
    // [B, T, H, 3, D]: query, key, value interleaved per head
    const f = T.reshape(applyLinear(m, qkv.lin, h), [B, len, H, 3, D]);
    [q, k, v] = [0, 1, 2].map((i) => T.reshape(T.slice(f, 3, i, i + 1), [B, len, H, D]));
  }
  if (c.positions === 'rotary') {
    const r = { rotDim: c.rotaryDim, theta: c.ropeTheta, interleaved: c.ropeInterleaved };
    q = T.rope(q, pos, r);
    k = T.rope(k, pos, r);
  }
  let out: Tensor;
  if (cache) {
    const row = KVH * D, cap = cache.capacity;
    const dstStrides = Int32Array.of(cap * row, row, 1), shape = Int32Array.of(B, len, row);
    const srcStrides = Int32Array.of(len * row, row, 1);
    const kern = kernels();
    kern.copyStrided(k.data, 0, srcStrides, cache.k[l], past * row, dstStrides, shape, false);
    kern.copyStrided(v.data, 0, srcStrides, cache.v[l], past * row, dstStrides, shape, false);
    const K = new Tensor(cache.k[l], [B, cap, KVH, D]), V = new Tensor(cache.v[l], [B, cap, KVH, D]);
    out = T.attention(q, K, V, { keyMask: mask, qOffset: past });
  } else {
    out = T.attention(q, k, v, { keyMask: mask });
  }
  return applyLinear(m, ls.o, T.reshape(out, [B, len, H * D]));
}
