// Checkpoints as Hugging Face variants write them: rope settings under rope_parameters
// (transformers 5), bodies saved without their prefix, GPT-NeoX without attention biases,
// quantized weights, several eos ids, sliding windows. Tiny random checkpoints in a temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { CausalLM, KVCache, generate, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { parseConfig } from '../src/models/config.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-variants-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const LLAMA = {
  model_type: 'llama', num_hidden_layers: 2, hidden_size: 32, intermediate_size: 48, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 90, max_position_embeddings: 64, bos_token_id: 1, eos_token_id: 2,
};
const NEOX = {
  model_type: 'gpt_neox', num_hidden_layers: 2, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4,
  vocab_size: 90, max_position_embeddings: 64, rotary_pct: 0.5,
};
const GPTJ = { model_type: 'gptj', n_layer: 2, n_embd: 32, n_head: 4, rotary_dim: 4, vocab_size: 90, n_positions: 64 };

let n = 0;
function checkpoint(raw: Record<string, unknown>, seed = 5): string {
  return writeRandomCheckpoint(path.join(tmp, `m${n++}`), raw, seed, 0.3);
}
const load = (dir: string) => CausalLM.loadDir(dir, { noTokenizer: true });

/** A copy of `dir` whose config.json is `raw` (the weights are shared). */
function withConfig(dir: string, raw: Record<string, unknown>): string {
  const out = path.join(tmp, `m${n++}`);
  fs.mkdirSync(out);
  fs.copyFileSync(path.join(dir, 'model.safetensors'), path.join(out, 'model.safetensors'));
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(raw));
  return out;
}

/** Rewrites a checkpoint's tensors (names, dtypes) in place. */
function rewrite(dir: string, f: (name: string) => { name: string; dtype?: 'F32' | 'F64' | 'I8' } | null): void {
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  const out = [];
  for (const t of tensors.values()) {
    const to = f(t.name);
    if (to) out.push({ name: to.name, shape: t.shape, dtype: to.dtype, data: to.dtype === 'I8' ? t.data.map((v) => Math.round(v * 10)) : t.data });
  }
  writeSafetensors(file, out, { format: 'pt' });
}

const IDS = Int32Array.from([5, 17, 42, 8, 33, 3, 11]);
const logits = (m: CausalLM, ids = IDS) => m.forward(ids, 1, ids.length).logits!.data;

function assertSame(a: Float32Array, b: Float32Array): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.fail(`logit ${i}: ${a[i]} vs ${b[i]}`);
}

function throwsAmend(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof AmendError && pattern.test(e.message) && !e.message.includes('\n'));
}

test('rope_parameters (transformers 5) sets the rotary base and fraction, and its rope types are checked', () => {
  const legacy = checkpoint({ ...LLAMA, rope_theta: 1e6 });
  const nested = withConfig(legacy, { ...LLAMA, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
  const plain = withConfig(legacy, { ...LLAMA });
  assertSame(logits(load(nested)), logits(load(legacy)));
  assert.notDeepEqual(Array.from(logits(load(plain))), Array.from(logits(load(legacy))), 'the base changes the output');
  assert.equal(parseConfig({ ...LLAMA, rope_parameters: { rope_theta: 500, partial_rotary_factor: 0.5 } }).rotaryDim, 4);
  const { rotary_pct: _, ...neox5 } = NEOX;
  assert.equal(parseConfig({ ...neox5, rope_parameters: { rope_theta: 500, partial_rotary_factor: 1 } }).ropeTheta, 500);
  assert.equal(parseConfig({ ...neox5, rope_parameters: { rope_theta: 500, partial_rotary_factor: 1 } }).rotaryDim, 8);
  // Scaled rotary embeddings are read from either place, for every family that has rope settings
  // (models-rope-scaling.test.ts checks what they compute); rope types Amend lacks are refused.
  assert.equal(parseConfig({ ...LLAMA, rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }).ropeScaling?.type, 'llama3');
  assert.equal(parseConfig({ ...LLAMA, model_type: 'qwen2', rope_scaling: { type: 'yarn', factor: 4 } }).ropeScaling?.type, 'yarn');
  assert.equal(parseConfig({ ...NEOX, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling?.type, 'linear');
  throwsAmend(() => parseConfig({ ...LLAMA, rope_parameters: { rope_type: 'longrope', rope_theta: 5e5, short_factor: [1], long_factor: [1] } }), /rope_parameters type "longrope" is not supported/);
  throwsAmend(() => parseConfig({ ...NEOX, rope_scaling: { type: 'su', factor: 2 } }), /rope_scaling type "su" is not supported/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_theta: 1e4, rope_parameters: { rope_theta: 1e6 } }), /disagree/);
  throwsAmend(() => parseConfig({ ...LLAMA, rope_parameters: { full_attention: { rope_theta: 1e6 } } }), /per layer type/);
  assert.equal(parseConfig({ ...LLAMA, rope_scaling: { rope_type: 'default' } }).ropeTheta, 10000);
});

test('a sliding window refuses longer sequences in forward itself, not only in generate', () => {
  const dir = checkpoint({ ...LLAMA, model_type: 'mistral', sliding_window: 4 });
  const m = load(dir);
  assert.equal(logits(m, IDS.subarray(0, 4)).length, 4 * 90);
  throwsAmend(() => logits(m), /sliding window of 4 positions/);
  // Left padding does not count: four real tokens in a row of six fit the window.
  const mask = Uint8Array.from([0, 0, 1, 1, 1, 1]);
  assert.ok(m.forward(Int32Array.from([0, 0, 5, 6, 7, 8]), 1, 6, { attentionMask: mask }).logits);
  // transformers 5 marks Qwen2's windowed layers in layer_types.
  assert.equal(parseConfig({ ...LLAMA, model_type: 'qwen2', sliding_window: 4, layer_types: ['full_attention', 'sliding_attention'] }).maxPositions, 4);
  // Without a window, rotary models keep their behaviour past max_position_embeddings.
  const plain = load(checkpoint({ ...LLAMA, max_position_embeddings: 4 }));
  assert.equal(logits(plain).length, IDS.length * 90);
});

test('checkpoints saved from the base model (no "model." / "gpt_neox." / "transformer." prefix) load', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ ...LLAMA, tie_word_embeddings: true }, 'model.'],
    [{ ...LLAMA, model_type: 'qwen2', tie_word_embeddings: true }, 'model.'],
    [{ ...NEOX, tie_word_embeddings: true }, 'gpt_neox.'],
    [{ ...GPTJ, tie_word_embeddings: true }, 'transformer.'],
    [{ ...LLAMA }, 'model.'], // untied: lm_head.weight stays as it is
  ];
  for (const [raw, prefix] of cases) {
    const dir = checkpoint(raw);
    const want = logits(load(dir));
    const bare = withConfig(dir, raw);
    rewrite(bare, (name) => ({ name: name.startsWith(prefix) ? name.slice(prefix.length) : name }));
    const m = load(bare);
    assert.ok(!m.spec.wte.startsWith(prefix), `${String(raw.model_type)}: ${m.spec.wte}`);
    assertSame(logits(m), want);
  }
});

test('GPT-NeoX with attention_bias false has no query_key_value / dense biases', () => {
  const withBias = checkpoint(NEOX, 9); // biases are zero in random checkpoints
  const without = checkpoint({ ...NEOX, attention_bias: false }, 9);
  const m = load(without);
  assert.ok(!m.weights.has('gpt_neox.layers.0.attention.query_key_value.bias'));
  assertSame(logits(m), logits(load(withBias)));
});

test('attention_bias and mlp_bias switch biases on Llama only: Qwen2 keeps q/k/v ones, Mistral has none', () => {
  const flags = { attention_bias: true, mlp_bias: true };
  const biases = (raw: Record<string, unknown>) =>
    [...load(checkpoint(raw)).weights.keys()].filter((k) => k.startsWith('model.layers.0.') && k.endsWith('.bias'))
      .map((k) => k.slice('model.layers.0.'.length, -'.bias'.length)).sort();
  const qkv = ['self_attn.k_proj', 'self_attn.q_proj', 'self_attn.v_proj'];
  const mlp = ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj'];
  assert.deepEqual(biases({ ...LLAMA, ...flags }), [...mlp, ...qkv, 'self_attn.o_proj'].sort());
  assert.deepEqual(biases({ ...LLAMA, model_type: 'qwen2' }), qkv);
  assert.deepEqual(biases({ ...LLAMA, model_type: 'qwen2', ...flags }), qkv);
  assert.deepEqual(biases({ ...LLAMA, model_type: 'mistral', ...flags }), []);
});

test('quantized checkpoints are refused, not read as numbers; the message names every float type taken', () => {
  const dir = checkpoint(LLAMA);
  const floatOnly = /Amend runs float weights only \(F32, F16, BF16, F64\) — use an unquantized copy/;
  throwsAmend(() => load(withConfig(dir, { ...LLAMA, quantization_config: { quant_method: 'bitsandbytes', load_in_8bit: true } })),
    new RegExp(`quantized .*bitsandbytes.*${floatOnly.source}`));
  const int8 = withConfig(dir, LLAMA);
  rewrite(int8, (name) => ({ name, dtype: name.endsWith('q_proj.weight') ? 'I8' : 'F32' }));
  throwsAmend(() => load(int8), new RegExp(`q_proj.weight" is stored as I8, an integer type.*${floatOnly.source}`));
  // F64 is one of them: it loads, as the message says.
  const f64 = withConfig(dir, LLAMA);
  rewrite(f64, (name) => ({ name, dtype: name.endsWith('q_proj.weight') ? 'F64' : 'F32' }));
  assertSame(logits(load(f64)), logits(load(dir)));
});

/**
 * A Llama checkpoint without an eos id and its free-running continuation of `prompt`: `stop` is
 * the token generated at step `at`, `other` a token it never generates (an eos id that never fires).
 */
function freeRun(prompt: number[], at: number) {
  const dir = checkpoint({ ...LLAMA, eos_token_id: null });
  const free = generate(load(dir), [prompt], { maxNewTokens: 12, eosId: null })[0]!;
  const other = Array.from({ length: 90 }, (_, i) => i).find((i) => !free.includes(i))!;
  return { dir, prompt, free, stop: free[at]!, other };
}

test('generation stops at any id of a list eos_token_id', () => {
  const { dir, prompt, free, stop, other } = freeRun([5, 17, 42], 3);
  const m = load(withConfig(dir, { ...LLAMA, eos_token_id: [other, stop] }));
  assert.deepEqual(m.config.eosIds, [other, stop]);
  const want = free.slice(0, free.indexOf(stop) + 1);
  assert.deepEqual(generate(m, [prompt], { maxNewTokens: 12 })[0], want);
  assert.deepEqual(generate(m, [prompt], { maxNewTokens: 12, useCache: false })[0], want);
  assert.deepEqual(generate(m, [prompt], { maxNewTokens: 12, eosId: null })[0], free);
});

test('a config without model_type says so', () => {
  throwsAmend(() => parseConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 32 }), /has no model_type \(architectures: LlamaForCausalLM\).*supported: gpt2/);
});

test('generation_config.json\'s eos ids are the ones generation stops at', () => {
  const { dir, prompt, free, stop, other } = freeRun([9, 4, 61], 2);
  const withGen = withConfig(dir, { ...LLAMA, eos_token_id: other });
  fs.writeFileSync(path.join(withGen, 'generation_config.json'), JSON.stringify({ eos_token_id: [other, stop] }));
  const m = load(withGen);
  assert.deepEqual(m.config.eosIds, [other, stop]);
  assert.deepEqual(generate(m, [prompt], { maxNewTokens: 12 })[0], free.slice(0, free.indexOf(stop) + 1));
  fs.writeFileSync(path.join(withGen, 'generation_config.json'), JSON.stringify({ do_sample: false }));
  assert.deepEqual(load(withGen).config.eosIds, [other]);
});

test('a forward refused for its length leaves the KV cache as it was', () => {
  const model = load(writeRandomCheckpoint(path.join(tmp, `m${n++}`), gpt2Config({ positions: 8 }), 3, 0.3));
  const cache = new KVCache(model.config, 1, 16);
  model.forward(Int32Array.of(1, 2, 3, 4, 5, 6), 1, 6, { cache });
  // 6 + 3 tokens run past the 8 learned positions
  assert.throws(() => model.forward(Int32Array.of(7, 8, 9), 1, 3, { cache }), /longer than the model's 8 positions/);
  assert.equal(cache.length, 6);
  assert.equal(cache.seen[0], 6);
  assert.ok(cache.mask.subarray(6).every((x) => x === 0));
  // the cache still serves the rest of the sequence: the same logits as a forward without it
  const step = model.forward(Int32Array.of(7, 8), 1, 2, { cache }).logits!.data;
  const full = model.forward(Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8), 1, 8).logits!.data;
  const V = model.config.vocabSize;
  let err = 0;
  for (let i = 0; i < 2 * V; i++) err = Math.max(err, Math.abs(step[i]! - full[6 * V + i]!));
  assert.ok(err < 1e-5, `max |Δ| ${err}`);
});

test('the KV cache grows by doubling as tokens arrive, up to its length, with the same logits as one allocated whole', () => {
  const model = load(checkpoint(LLAMA)); // grouped keys: 2 key/value heads for 4 query heads
  const c = model.config, row = c.kvHeads * c.headDim, V = c.vocabSize;
  const grown = new KVCache(c, 2, 200), whole = new KVCache(c, 2, 200, { reserve: 200 });
  assert.equal(grown.capacity, 0);
  assert.equal(grown.k[0]!.length, 0);
  // Row 1 is left-padded, and turns to padding itself after a few steps (a finished row).
  let ids = Int32Array.of(5, 17, 42, 8, 33, 0, 0, 11, 3, 9), mask: Uint8Array | null = Uint8Array.of(1, 1, 1, 1, 1, 0, 0, 1, 1, 1);
  let T = 5;
  for (let step = 0; step < 40; step++) {
    const last = [T - 1, 2 * T - 1];
    const a: Float32Array = model.forward(ids, 2, T, { cache: grown, attentionMask: mask, logitsAt: last }).logits!.data;
    const b: Float32Array = model.forward(ids, 2, T, { cache: whole, attentionMask: mask, logitsAt: last }).logits!.data;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`step ${step}, logit ${i}: ${a[i]} vs ${b[i]}`);
    // Room for the 5 prompt positions, then 10, 20, 40, 80: never twice what is held.
    assert.equal(grown.capacity, 5 * 2 ** Math.ceil(Math.log2(grown.length / 5)), `length ${grown.length}`);
    for (const arrays of [grown.k, grown.v]) for (const k of arrays) assert.equal(k.length, 2 * grown.capacity * row);
    assert.equal(grown.mask.length, 2 * grown.capacity);
    assert.equal(whole.capacity, 200);
    const next = (r: number): number => {
      let best = 0;
      for (let j = 1; j < V; j++) if (a[r * V + j]! > a[r * V + best]!) best = j;
      return best;
    };
    ids = Int32Array.of(next(0), next(1));
    mask = step < 6 ? null : Uint8Array.of(1, 0);
    T = 1;
  }
  assert.deepEqual([...grown.seen], [...whole.seen]);
  // The last doubling stops at the cache's length, which then refuses more.
  const short = new KVCache(c, 1, 12);
  model.forward(Int32Array.of(1, 2, 3, 4, 5, 6, 7), 1, 7, { cache: short });
  model.forward(Int32Array.of(8, 9, 10, 11, 12), 1, 5, { cache: short });
  assert.equal(short.capacity, 12);
  assert.throws(() => model.forward(Int32Array.of(13), 1, 1, { cache: short }),
    (e: unknown) => e instanceof AmendError && e.message === 'KV cache full: 12 + 1 tokens exceed its maximum length of 12');
  assert.throws(() => new KVCache(c, 1, 8, { reserve: 2.5 }), (e: unknown) => e instanceof AmendError && e.message === 'KVCache: reserve must be an integer ≥ 0, got 2.5');
  assert.throws(() => new KVCache(c, 1, NaN), (e: unknown) => e instanceof AmendError && e.message === 'KVCache: the length must be an integer ≥ 1, got NaN');
});
