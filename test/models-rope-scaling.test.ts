// Scaled rotary embeddings (rope types "linear", "dynamic", "llama3", "yarn" in rope_scaling or
// rope_parameters): how configs are read, the frequencies against values computed outside
// Amend, and tiny one-layer Llama checkpoints against an independent float64 forward pass, on
// each backend, with gradients and a KV cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nativeStatus, useBackend, type BackendName } from '../src/backend/index.js';
import { AmendError } from '../src/errors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { CausalLM, KVCache, writeRandomCheckpoint } from '../src/models/index.js';
import { parseConfig } from '../src/models/config.js';
import { canonicalArchitecture } from '../src/models/fingerprint.js';
import { defaultInvFreq, dynamicBase, ropeFrequencies, type RopeScaling } from '../src/models/rope.js';
import * as T from '../src/tensor/index.js';
import { Tensor, mulberry32, randn } from '../src/tensor/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-rope-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const backends: BackendName[] = ['js'];
if (nativeStatus().ok) backends.push('native');
process.on('exit', () => useBackend(backends.at(-1)!));

// One layer, 4 query heads over 2 kv heads of 16 features: 8 rotary frequencies, spread from
// wavelength 2π to ~2π·10⁴·(14/16), so llama3's three bands and YaRN's ramp all have members.
const LLAMA = {
  model_type: 'llama', num_hidden_layers: 1, hidden_size: 64, intermediate_size: 96, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 50, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000,
};
const NEOX = {
  model_type: 'gpt_neox', num_hidden_layers: 2, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4,
  vocab_size: 50, max_position_embeddings: 16, rotary_pct: 1,
};

function throwsAmend(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof AmendError && pattern.test(e.message), String(pattern));
}

// ---- config ----------------------------------------------------------------------------------

test('rope_scaling and rope_parameters name the same scalings; unknown or incomplete ones are refused', () => {
  const l31 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
  const want: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
  const big = { ...LLAMA, max_position_embeddings: 131072, rope_theta: 500000 };
  assert.deepEqual(parseConfig({ ...big, rope_scaling: l31 }).ropeScaling, want);
  const { rope_theta: _, ...noTheta } = big;
  const v5 = parseConfig({ ...noTheta, rope_parameters: { ...l31, rope_theta: 500000 } });
  assert.deepEqual(v5.ropeScaling, want);
  assert.equal(v5.ropeTheta, 500000);
  // both places, saying the same: fine; saying different things: refused
  assert.deepEqual(parseConfig({ ...big, rope_scaling: l31, rope_parameters: { ...l31, rope_theta: 500000 } }).ropeScaling, want);
  throwsAmend(() => parseConfig({ ...big, rope_scaling: l31, rope_parameters: { ...l31, factor: 32 } }), /name different rotary scalings/);
  // the legacy "type" key, every family that carries rope settings
  assert.deepEqual(parseConfig({ ...NEOX, rope_scaling: { type: 'linear', factor: 2.0 } }).ropeScaling, { type: 'linear', factor: 2 });
  assert.deepEqual(parseConfig({ ...LLAMA, model_type: 'qwen2', rope_scaling: { type: 'dynamic', factor: 2.0 } }).ropeScaling,
    { type: 'dynamic', factor: 2, maxPositions: 64 });
  assert.equal(parseConfig({ ...LLAMA, model_type: 'mistral', rope_scaling: { rope_type: 'linear', factor: 4 } }).ropeScaling?.type, 'linear');
  // transformers' GPT-J has no rope settings: it rotates unscaled with base 10000 whatever the config says
  const gptj = { model_type: 'gptj', n_layer: 1, n_embd: 32, n_head: 4, rotary_dim: 4, vocab_size: 50, n_positions: 64 };
  assert.equal(parseConfig({ ...gptj, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling, null);
  // "default" is no scaling, from either place
  assert.equal(parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'default' } }).ropeScaling, null);
  assert.equal(parseConfig({ ...LLAMA, rope_parameters: { rope_theta: 10000 } }).ropeScaling, null);

  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } }),
    /rope_scaling type "longrope" is not supported \(supported rope types: default, linear, dynamic, llama3, yarn\)/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { factor: 2 } }), /no rope_type/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'linear' } }), /missing factor/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'dynamic', factor: -1 } }), /factor is -1; it must be a number > 0/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_parameters: { rope_type: 'llama3', factor: 8, high_freq_factor: 4 } }), /missing low_freq_factor/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { ...l31, low_freq_factor: 4 } }), /high_freq_factor 4 must be greater than low_freq_factor 4/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'yarn', factor: 4, truncate: 'no' } }), /truncate/);
  throwsAmend(() => parseConfig({ ...LLAMA, head_dim: 2, rope_scaling: { rope_type: 'dynamic', factor: 2 } }), /rotary dimension above 2/);
});

test('YaRN settings resolve as transformers 5 resolves them', () => {
  const yarn = (s: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const r = parseConfig({ ...LLAMA, max_position_embeddings: 256, ...extra, rope_scaling: { rope_type: 'yarn', ...s } }).ropeScaling;
    assert.ok(r && r.type === 'yarn');
    return r;
  };
  // attention factor 0.1·ln(factor) + 1; original length defaults to max_position_embeddings
  assert.deepEqual(yarn({ factor: 4 }), {
    type: 'yarn', factor: 4, originalMaxPositions: 256, attentionFactor: 0.1 * Math.log(4) + 1, betaFast: 32, betaSlow: 1, truncate: true,
  });
  // an explicit factor is used as it is (not replaced by the ratio of the lengths)
  assert.equal(yarn({ factor: 4, original_max_position_embeddings: 128 }).factor, 4);
  // without one, the ratio
  assert.equal(yarn({ original_max_position_embeddings: 64 }).factor, 4);
  // DeepSeek's mscale / mscale_all_dim; an explicit attention_factor wins over both
  assert.equal(yarn({ factor: 40, mscale: 1, mscale_all_dim: 1 }).attentionFactor, 1);
  assert.equal(yarn({ factor: 40, mscale: 0.707, mscale_all_dim: 1 }).attentionFactor, (0.1 * 0.707 * Math.log(40) + 1) / (0.1 * Math.log(40) + 1));
  assert.equal(yarn({ factor: 40, mscale: 1, attention_factor: 1.5 }).attentionFactor, 1.5);
  assert.deepEqual([yarn({ factor: 2, beta_fast: 16, beta_slow: 2, truncate: false })].map((r) => [r.betaFast, r.betaSlow, r.truncate]), [[16, 2, false]]);
  // a top-level original_max_position_embeddings (Phi-3 style) comes first
  assert.equal(yarn({ factor: 2, original_max_position_embeddings: 128 }, { original_max_position_embeddings: 32 }).originalMaxPositions, 32);
});

test('a scaled rope names itself in the fingerprint; unscaled models keep theirs', () => {
  const plain = canonicalArchitecture(parseConfig(LLAMA));
  assert.ok(!('rope_scaling' in plain));
  const scaled = canonicalArchitecture(parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'linear', factor: 2 } }));
  assert.deepEqual(scaled.rope_scaling, { factor: 2, type: 'linear' });
  const { rope_scaling: _, ...rest } = scaled;
  assert.deepEqual(rest, plain);
});

// ---- frequencies -----------------------------------------------------------------------------

/**
 * Inverse frequencies computed by a separate numpy script (a re-statement of transformers'
 * modeling_rope_utils in float32 numpy arithmetic, written for this test; not run by it).
 * Amend's unscaled frequencies round 1/theta^x once in float64, numpy rounds theta^x and then
 * 1/·, in float32: the two differ by up to an ulp, and the scaled ones inherit that.
 */
const NUMPY: [string, number, RopeScaling | null, number, number[]][] = [
  ['llama3, Llama 3.1 settings, head_dim 64, theta 5e5', 64, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 }, 500000, [
    1.0, 0.6636012196540833, 0.44036662578582764, 0.2922278046607971, 0.193922758102417, 0.12868738174438477,
    0.08539710193872452, 0.05666961893439293, 0.03760603070259094, 0.02495540864765644, 0.016560440883040428,
    0.010989529080688953, 0.00729266507551074, 0.00483942124992609, 0.0032114461064338684, 0.0013718936825171113,
    0.0005248460220173001, 0.0001785077911335975, 7.784655463183299e-05, 5.1659073506016284e-05, 3.428102354519069e-05,
    2.274892722198274e-05, 1.5096217794052791e-05, 1.0017867680289783e-05, 6.647870577580761e-06, 4.411534519022098e-06,
    2.927499735960737e-06, 1.9426925064180978e-06, 1.289173155782919e-06, 8.554969213037111e-07, 5.677088097399974e-07,
    3.767322880321444e-07]],
  ['llama3, original length 64, head_dim 16', 16, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 }, 10000, [
    1.0, 0.24438458681106567, 0.013042256236076355, 0.0039528473280370235, 0.0012499999720603228, 0.00039528473280370235,
    0.0001250000059371814, 3.9528473280370235e-05]],
  ['yarn, factor 4, original length 128, head_dim 32', 32, { type: 'yarn', factor: 4, originalMaxPositions: 128, attentionFactor: 1, betaFast: 32, betaSlow: 1, truncate: true }, 10000, [
    1.0, 0.4920486509799957, 0.23717081546783447, 0.11114246398210526, 0.04999999701976776, 0.021087799221277237,
    0.007905694656074047, 0.004445698577910662, 0.0024999999441206455, 0.0014058533124625683, 0.0007905694656074047,
    0.00044456985779106617, 0.0002500000118743628, 0.00014058532542549074, 7.905694656074047e-05, 4.4456985051510856e-05]],
  ['yarn, no truncation, head_dim 16', 16, { type: 'yarn', factor: 4, originalMaxPositions: 64, attentionFactor: 1, betaFast: 32, betaSlow: 1, truncate: false }, 10000, [
    1.0, 0.19858352839946747, 0.025595249608159065, 0.007905694656074047, 0.0024999999441206455, 0.0007905694656074047,
    0.0002500000118743628, 7.905694656074047e-05]],
  ['linear, factor 2', 16, { type: 'linear', factor: 2 }, 10000, [
    0.5, 0.15811388194561005, 0.05000000074505806, 0.015811389312148094, 0.004999999888241291, 0.0015811389312148094,
    0.0005000000237487257, 0.00015811389312148094]],
  // dynamic at L = 12 past max_position_embeddings 8: base 22081.7890625 (float32, as in transformers' forward)
  ['dynamic, factor 2, L 12 > 8', 16, { type: 'dynamic', factor: 2, maxPositions: 8 }, 10000, [
    1.0, 0.2864149510860443, 0.08203352987766266, 0.023495633155107498, 0.006729501765221357, 0.001927429810166359,
    0.000552044773939997, 0.00015811389312148094]],
];

test('scaled inverse frequencies match a float32 numpy re-statement of transformers to 2 ulp', () => {
  for (const [what, dim, scaling, theta, want] of NUMPY) {
    const { invFreq, scale } = ropeFrequencies(dim, theta, scaling, 12);
    assert.equal(scale, 1);
    assert.equal(invFreq.length, want.length, what);
    invFreq.forEach((v, i) => {
      const ulp = 2 ** (Math.floor(Math.log2(want[i]!)) - 23);
      assert.ok(Math.abs(v - want[i]!) <= 2 * ulp, `${what}: inv_freq[${i}] ${v} vs ${want[i]} (${Math.abs(v - want[i]!) / ulp} ulp)`);
    });
  }
  assert.equal(dynamicBase(16, 10000, 2, 8, 12), 22081.7890625);
  // dynamic within the original length is the unscaled embedding, bit for bit
  const within = ropeFrequencies(16, 10000, { type: 'dynamic', factor: 2, maxPositions: 8 }, 8).invFreq;
  assert.deepEqual(within, defaultInvFreq(16, 10000));
  // YaRN's cos/sin scale is its attention factor, in float32 as transformers multiplies it
  const y = ropeFrequencies(16, 10000, { type: 'yarn', factor: 4, originalMaxPositions: 64, attentionFactor: 0.1 * Math.log(4) + 1, betaFast: 32, betaSlow: 1, truncate: true }, 0);
  assert.equal(y.scale, Math.fround(0.1 * Math.log(4) + 1));
});

// ---- float64 reference -----------------------------------------------------------------------

/** Inverse frequencies in plain float64, straight from the formulas (no float32 steps). */
function refInvFreq(dim: number, theta: number, s: RopeScaling | null, seqLen: number): { inv: Float64Array; scale: number } {
  const base = (b: number) => Float64Array.from({ length: dim / 2 }, (_, i) => 1 / b ** ((2 * i) / dim));
  if (!s) return { inv: base(theta), scale: 1 };
  if (s.type === 'linear') return { inv: base(theta).map((v) => v / s.factor), scale: 1 };
  if (s.type === 'dynamic') {
    const L = Math.max(seqLen, s.maxPositions);
    return { inv: base(theta * ((s.factor * L) / s.maxPositions - (s.factor - 1)) ** (dim / (dim - 2))), scale: 1 };
  }
  if (s.type === 'llama3') {
    const inv = base(theta).map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < s.originalMaxPositions / s.highFreqFactor) return f;
      if (wavelen > s.originalMaxPositions / s.lowFreqFactor) return f / s.factor;
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * f / s.factor + smooth * f;
    });
    return { inv, scale: 1 };
  }
  // yarn
  const dimOf = (rot: number) => (dim * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = dimOf(s.betaFast), hi = dimOf(s.betaSlow);
  if (s.truncate) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
  [lo, hi] = [Math.max(lo, 0), Math.min(hi, dim - 1)];
  if (lo === hi) hi += 0.001;
  const inv = base(theta).map((f, i) => {
    const keep = 1 - Math.min(1, Math.max(0, (i - lo) / (hi - lo))); // 1: extrapolate (unscaled), 0: interpolate
    return (f / s.factor) * (1 - keep) + f * keep;
  });
  return { inv, scale: s.attentionFactor };
}

interface RefModel { w: Map<string, { data: Float32Array; shape: number[] }>; raw: typeof LLAMA & Record<string, unknown>; rotDim: number }

const matvec = (W: Float32Array, rows: number, cols: number, x: Float64Array) => {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) { let s = 0; for (let c = 0; c < cols; c++) s += W[r * cols + c]! * x[c]!; y[r] = s; }
  return y;
};
const rms = (x: Float64Array, w: Float32Array, eps: number) => {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * w[i]!);
};

/**
 * A one-layer Llama forward in float64, one sequence, written out directly: RMSNorm, q/k/v,
 * rotate_half rotary with cos/sin times `scale`, causal grouped-query attention, o_proj, SiLU-gated
 * MLP, final norm, LM head. `freqsAt(t)` gives the frequencies that rotate token t's q and k.
 */
function refLogits(m: RefModel, ids: number[], freqsAt: (t: number) => { inv: Float64Array; scale: number }): Float64Array[] {
  const c = m.raw, d = c.hidden_size, H = c.num_attention_heads, KVH = c.num_key_value_heads, D = d / H, F = c.intermediate_size;
  const W = (n: string) => m.w.get(n)!.data;
  const eps = c.rms_norm_eps;
  const rotate = (v: Float64Array, heads: number, t: number) => {
    const { inv, scale } = freqsAt(t), half = m.rotDim / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = v[h * D + i]!, b = v[h * D + i + half]!, ang = t * inv[i]!;
        v[h * D + i] = (a * Math.cos(ang) - b * Math.sin(ang)) * scale;
        v[h * D + i + half] = (b * Math.cos(ang) + a * Math.sin(ang)) * scale;
      }
    }
  };
  const xs = ids.map((id) => Float64Array.from(W('model.embed_tokens.weight').subarray(id * d, (id + 1) * d)));
  const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
  xs.forEach((x, t) => {
    const h = rms(x, W('model.layers.0.input_layernorm.weight'), eps);
    const q = matvec(W('model.layers.0.self_attn.q_proj.weight'), H * D, d, h);
    const k = matvec(W('model.layers.0.self_attn.k_proj.weight'), KVH * D, d, h);
    rotate(q, H, t);
    rotate(k, KVH, t);
    qs.push(q); ks.push(k); vs.push(matvec(W('model.layers.0.self_attn.v_proj.weight'), KVH * D, d, h));
  });
  return xs.map((x, t) => {
    const ctx = new Float64Array(H * D);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KVH));
      const s = Array.from({ length: t + 1 }, (_, u) => {
        let dot = 0;
        for (let j = 0; j < D; j++) dot += qs[t]![h * D + j]! * ks[u]![kh * D + j]!;
        return dot / Math.sqrt(D);
      });
      const mx = Math.max(...s), e = s.map((v) => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
      for (let u = 0; u <= t; u++) for (let j = 0; j < D; j++) ctx[h * D + j] += (e[u]! / z) * vs[u]![kh * D + j]!;
    }
    const a = matvec(W('model.layers.0.self_attn.o_proj.weight'), d, H * D, ctx);
    const x1 = x.map((v, i) => v + a[i]!);
    const h2 = rms(x1, W('model.layers.0.post_attention_layernorm.weight'), eps);
    const g = matvec(W('model.layers.0.mlp.gate_proj.weight'), F, d, h2), u = matvec(W('model.layers.0.mlp.up_proj.weight'), F, d, h2);
    const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
    const mlp = matvec(W('model.layers.0.mlp.down_proj.weight'), d, F, act);
    const x2 = x1.map((v, i) => v + mlp[i]!);
    return matvec(W('lm_head.weight'), c.vocab_size, d, rms(x2, W('model.norm.weight'), eps));
  });
}

let dirs = 0;
function tinyModel(extra: Record<string, unknown>, seed = 11): { model: CausalLM; ref: RefModel } {
  const raw = { ...LLAMA, ...extra };
  const dir = writeRandomCheckpoint(path.join(tmp, `m${dirs++}`), raw, seed, 0.25);
  const model = CausalLM.loadDir(dir, { noTokenizer: true });
  const w = new Map([...readSafetensors(path.join(dir, 'model.safetensors')).tensors].map(([k, t]) => [k, { data: t.data, shape: t.shape }]));
  return { model, ref: { w, raw, rotDim: model.config.rotaryDim } };
}

const IDS = Array.from({ length: 24 }, (_, i) => (i * 17 + 3) % 50);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!)); return m; };

// Each scaling where it changes something at 24 tokens: linear everywhere, dynamic past
// max_position_embeddings 16, llama3 and yarn with an original length of 16 (every band of
// frequencies in use); partial rotary for one of them.
const SCALED: [string, Record<string, unknown>][] = [
  ['linear', { rope_scaling: { rope_type: 'linear', factor: 4.0 } }],
  ['dynamic', { max_position_embeddings: 16, rope_scaling: { type: 'dynamic', factor: 3.0 } }],
  ['llama3', { rope_theta: 50000, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 16 } }],
  ['yarn', { rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4.0, original_max_position_embeddings: 16 } }],
  ['yarn (mscale, partial rotary, no truncation)', { partial_rotary_factor: 0.5, rope_scaling: { rope_type: 'yarn', factor: 8.0, original_max_position_embeddings: 16, mscale: 0.8, mscale_all_dim: 0.3, beta_fast: 8, truncate: false } }],
];

test('tiny Llama checkpoints with each rope type match a float64 forward pass, on every backend', () => {
  for (const [what, extra] of SCALED) {
    const { model, ref } = tinyModel(extra);
    const c = model.config;
    assert.ok(c.ropeScaling, what);
    const theta = c.ropeTheta;
    const freqs = refInvFreq(c.rotaryDim, theta, c.ropeScaling, IDS.length);
    const want = refLogits(ref, IDS, () => freqs);
    const plain = refLogits(ref, IDS, () => refInvFreq(c.rotaryDim, theta, null, 0));
    const effect = Math.max(...want.map((row, t) => maxAbs(row, plain[t]!)));
    assert.ok(effect > 1e-2, `${what}: the scaling changes the logits (by ${effect})`);
    const got: Float32Array[] = [];
    for (const backend of backends) {
      useBackend(backend);
      const logits = model.forward(Int32Array.from(IDS), 1, IDS.length).logits!.data;
      const err = Math.max(...want.map((row, t) => maxAbs(logits.subarray(t * c.vocabSize, (t + 1) * c.vocabSize), row)));
      assert.ok(err < 2e-5, `${what} (${backend}): max |logit − float64 reference| ${err}`);
      got.push(logits);
    }
    if (got.length === 2) assert.ok(maxAbs(got[0]!, got[1]!) < 1e-5, `${what}: js and native agree`);
  }
});

test('GPT-NeoX: dynamic scaling is the unscaled embedding with the grown base, linear divides the frequencies', () => {
  // At 24 tokens past max_position_embeddings 16, dynamic NTK with factor 2 rotates exactly as
  // an unscaled model with base θ·(2·24/16 − 1)^(d/(d−2)) (in float32, as transformers' forward).
  const rnd = path.join(tmp, `m${dirs++}`);
  writeRandomCheckpoint(rnd, NEOX, 3, 0.3);
  const load = (raw: Record<string, unknown>) => {
    const dir = path.join(tmp, `m${dirs++}`);
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(rnd, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
    return CausalLM.loadDir(dir, { noTokenizer: true });
  };
  const ids = Int32Array.from(IDS);
  const dynamic = load({ ...NEOX, rope_scaling: { type: 'dynamic', factor: 2.0 } });
  const D = dynamic.config.rotaryDim;
  const f32 = Math.fround, grown = f32(f32(10000) * f32(f32(f32(f32(f32(2) * f32(24)) / f32(16)) - f32(1)) ** f32(D / (D - 2))));
  for (const backend of backends) {
    useBackend(backend);
    const same = load({ ...NEOX, rotary_emb_base: grown }).forward(ids, 1, 24).logits!.data;
    assert.deepEqual(dynamic.forward(ids, 1, 24).logits!.data, same, `${backend}: dynamic past the original length`);
    // within it, dynamic is the unscaled embedding
    const short = ids.subarray(0, 16);
    assert.deepEqual(dynamic.forward(short, 1, 16).logits!.data, load(NEOX).forward(short, 1, 16).logits!.data, `${backend}: within`);
    const linear = load({ ...NEOX, rope_parameters: { rope_type: 'linear', factor: 2.0, rope_theta: 10000 } });
    assert.notDeepEqual(linear.forward(ids, 1, 24).logits!.data, load(NEOX).forward(ids, 1, 24).logits!.data);
  }
});

test('dynamic scaling with a KV cache rotates each step with the length so far, as transformers does', () => {
  const { model, ref } = tinyModel({ max_position_embeddings: 16, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } }, 21);
  const c = model.config, V = c.vocabSize, P = 20;
  const freqs = (L: number) => refInvFreq(c.rotaryDim, c.ropeTheta, c.ropeScaling, L);
  // prompt of 20 (past the original 16): its keys are rotated with the frequencies for 20;
  // then one token at position 20, rotated with those for 21, against the cached keys.
  const want = refLogits(ref, IDS.slice(0, P + 1), (t) => freqs(t < P ? P : P + 1));
  for (const backend of backends) {
    useBackend(backend);
    const cache = new KVCache(c, 1, P + 1);
    const first = model.forward(Int32Array.from(IDS.slice(0, P)), 1, P, { cache, logitsAt: [P - 1] }).logits!.data;
    const step = model.forward(Int32Array.of(IDS[P]!), 1, 1, { cache }).logits!.data;
    assert.ok(maxAbs(first, want[P - 1]!) < 2e-5, `${backend}: prompt`);
    assert.ok(maxAbs(step, want[P]!) < 2e-5, `${backend}: cached step (${maxAbs(step, want[P]!)})`);
    // without the cache the whole sequence takes the frequencies for 21: not the same numbers
    const full = model.forward(Int32Array.from(IDS.slice(0, P + 1)), 1, P + 1, { logitsAt: [P] }).logits!.data;
    assert.ok(maxAbs(full, step) > 1e-4);
    assert.equal(step.length, V);
  }
});

test('gradients through scaled rotary embeddings match finite differences', () => {
  for (const [what, extra] of [SCALED[1]!, SCALED[2]!, SCALED[4]!]) {
    const { model } = tinyModel(extra, 31);
    const c = model.config, L = IDS.length, ids = Int32Array.from(IDS);
    const resid0 = new Tensor(randn(L * c.hidden, mulberry32(5), 0.5), [1, L, c.hidden]);
    const w = new Tensor(randn(L * c.vocabSize, mulberry32(6)), [1, L, c.vocabSize]);
    const loss = (r: Tensor) => {
      const out = model.forward(ids, 1, L, { start: { layer: 0, resid: r } }).logits!;
      return T.sum(T.mul(T.reshape(out, [1, L, c.vocabSize]), w));
    };
    for (const backend of backends) {
      useBackend(backend);
      const p = T.parameter(resid0.clone());
      T.withGrad(() => loss(p).backward());
      const g = p.grad!.data;
      let scaleRef = 0;
      for (const v of g) scaleRef = Math.max(scaleRef, Math.abs(v));
      // features of early and late tokens, in the rotated part of a head
      for (const i of [3, 5 * c.hidden + 17, 20 * c.hidden + 2, 23 * c.hidden + 40, 23 * c.hidden + 63]) {
        const at = (delta: number) => { const r = resid0.clone(); r.data[i] += delta; return T.noGrad(() => loss(r).data[0]!); };
        const eps = 1e-2, numeric = (at(eps) - at(-eps)) / (2 * eps);
        assert.ok(Math.abs(numeric - g[i]!) / scaleRef < 2e-2, `${what} (${backend}): d/dx[${i}] ${g[i]} vs ${numeric}`);
      }
    }
  }
});
