// Hook points: every name fires once per forward on every architecture, and the refusals
// (names that would never fire, replacements of the wrong shape or kind) are one clear line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { CausalLM, addAt, capture, hookPoint, KVCache, type Hook } from '../src/models/index.js';
import * as T from '../src/tensor/index.js';
import { sharedDir } from './helpers.js';

const MODELS = sharedDir('models');
const TINY = ['tiny-random-gpt2', 'tiny-random-gpt_neox', 'tiny-random-gptj', 'tiny-random-llama', 'tiny-random-qwen2'];
const skip = MODELS ? false : 'shared models not present';
const load = (name: string) => CausalLM.loadDir(path.join(MODELS!, name), { noTokenizer: true });
const B = 2, LEN = 3;
const IDS = Int32Array.from([5, 9, 2, 7, 1, 4]);

function allPoints(layers: number): string[] {
  const out = [hookPoint.finalNorm as string];
  for (let l = 0; l < layers; l++) {
    out.push(hookPoint.residPre(l), hookPoint.attnOut(l), hookPoint.mlpIn(l), hookPoint.mlpKeys(l), hookPoint.mlpOut(l), hookPoint.residPost(l));
  }
  return out;
}

test('every hook point fires once per forward with [B, T, width] on every architecture', { skip }, () => {
  for (const name of TINY) {
    const m = load(name);
    const fired = new Map<string, number[][]>();
    const hooks: Hook[] = allPoints(m.config.layers).map((point) => ({
      point, fn: (x) => void fired.set(point, [...(fired.get(point) ?? []), [...x.shape]]),
    }));
    m.forward(IDS, B, LEN, { hooks, attentionMask: Uint8Array.from([0, 1, 1, 1, 1, 1]) });
    for (const point of allPoints(m.config.layers)) {
      const width = point.endsWith('mlp.keys') ? m.config.ffn : m.config.hidden;
      assert.deepEqual(fired.get(point), [[B, LEN, width]], `${name} ${point}`);
    }
  }
});

test('addAt with a KV cache matches the same addition in one full forward', { skip }, () => {
  const m = load('tiny-random-llama');
  const d = m.config.hidden, V = m.config.vocabSize;
  const delta = T.tensor(Array.from({ length: d }, (_, i) => Math.sin(i + 1)), [d]);
  const mask = Uint8Array.from([0, 1, 1, 1, 1, 1]);
  const full = m.forward(IDS, B, LEN, { attentionMask: mask, hooks: [addAt(hookPoint.mlpOut(1), [2, 5], delta)] }).logits!;
  const plain = m.forward(IDS, B, LEN, { attentionMask: mask }).logits!;
  const cache = new KVCache(m.config, B, LEN);
  m.forward(Int32Array.from([5, 9, 7, 1]), B, 2, { attentionMask: Uint8Array.from([0, 1, 1, 1]), cache });
  const last = m.forward(Int32Array.from([2, 4]), B, 1, { attentionMask: Uint8Array.from([1, 1]), cache, hooks: [addAt(hookPoint.mlpOut(1), [0, 1], delta)] }).logits!;
  let diff = 0, effect = 0;
  for (const b of [0, 1]) {
    for (let v = 0; v < V; v++) {
      const f = full.data[(b * LEN + 2) * V + v];
      diff = Math.max(diff, Math.abs(last.data[b * V + v] - f));
      effect = Math.max(effect, Math.abs(plain.data[(b * LEN + 2) * V + v] - f));
    }
  }
  assert.ok(effect > 1e-2, `the addition changes the logits (${effect})`);
  assert.ok(diff < 1e-5, `cache vs full ${diff}`);
});

test('a layer written with a leading zero is refused instead of never firing', { skip }, () => {
  const m = load('tiny-random-gpt2');
  assert.throws(() => m.forward(IDS, B, LEN, { hooks: [{ point: 'blocks.01.mlp.out', fn: () => {} }] }), /unknown hook point "blocks\.01\.mlp\.out"/);
  const c = capture('blocks.0.mlp.out');
  m.forward(IDS, B, LEN, { hooks: [c.hook] });
  assert.deepEqual(c.value().shape, [B, LEN, m.config.hidden]);
});

test('a hook returning a same-size tensor of another shape, or a non-tensor, is refused by name', { skip }, () => {
  const m = load('tiny-random-gpt2');
  const d = m.config.hidden;
  const run = (fn: Hook['fn']) => () => m.forward(IDS, B, LEN, { hooks: [{ point: 'blocks.0.resid_pre', fn }] });
  assert.throws(run(() => T.zeros([LEN, B, d])), /^AmendError: hook at blocks\.0\.resid_pre returned shape \[3,2,32\] for \[2,3,32\]; return the input's shape or \[6, 32\]$/m);
  assert.throws(run(() => T.zeros([1, B * LEN, d])), /hook at blocks\.0\.resid_pre returned shape \[1,6,32\]/);
  assert.throws(run((x) => x.data as unknown as T.Tensor), /hook at blocks\.0\.resid_pre returned object; return a Tensor/);
  // a library hook's own refusal (a delta of the wrong width, a row out of range) names the hook
  assert.throws(() => m.forward(IDS, B, LEN, { hooks: [addAt('blocks.1.mlp.out', [0], T.zeros([d + 1]))] }), /^AmendError: hook at blocks\.1\.mlp\.out: .*\[33\]/m);
  assert.throws(() => m.forward(IDS, B, LEN, { hooks: [capture('blocks.0.mlp.keys', [B * LEN]).hook] }), /^AmendError: hook at blocks\.0\.mlp\.keys: /m);
  // the input's shape and its flattened rows are both taken, and give the same logits
  const same = m.forward(IDS, B, LEN, { hooks: [{ point: 'blocks.0.resid_pre', fn: (x) => T.mul(x, T.full(x.shape, 2)) }] }).logits!;
  const flat = m.forward(IDS, B, LEN, { hooks: [{ point: 'blocks.0.resid_pre', fn: (x) => T.reshape(T.mul(x, T.full(x.shape, 2)), [B * LEN, d]) }] }).logits!;
  assert.deepEqual(flat.shape, same.shape);
  assert.ok(flat.data.every((v, i) => v === same.data[i]));
});
