// Every architecture against the float64 reference forward of its checkpoint, plus the
// invariances the engine promises: padding, KV cache, hooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CausalLM, generate, capture, addAt, hookPoint } from '../src/models/index.js';
import * as T from '../src/tensor/index.js';
import { sharedDir } from './helpers.js';

const MODELS = sharedDir('models');
const TINY = ['tiny-random-gpt2', 'tiny-random-gpt_neox', 'tiny-random-gptj', 'tiny-random-llama', 'tiny-random-qwen2'];

interface RefCase { input_ids: number[]; argmax: number[]; logsumexp: number[]; logits_first16: number[][]; greedy8: number[] }

function logsumexp(row: Float32Array): number {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  return mx + Math.log(s);
}

for (const name of TINY) {
  const dir = MODELS && path.join(MODELS, name);
  const skip = !dir || !fs.existsSync(dir) ? `../shared/models/${name} is absent` : false;
  test(`${name} matches its float64 reference`, { skip }, () => {
    const model = CausalLM.loadDir(dir!);
    const ref: { cases: RefCase[] } = JSON.parse(fs.readFileSync(path.join(dir!, 'reference.json'), 'utf8'));
    for (const c of ref.cases) {
      const ids = Int32Array.from(c.input_ids);
      const { logits } = model.forward(ids, 1, ids.length);
      const V = model.config.vocabSize;
      const argmax = Array.from(T.argmax(logits!));
      assert.deepEqual(argmax, c.argmax, 'argmax per position');
      for (let t = 0; t < ids.length; t++) {
        const row = logits!.data.subarray(t * V, (t + 1) * V);
        const lse = logsumexp(row);
        assert.ok(Math.abs(lse - c.logsumexp[t]) <= 1e-4 * Math.max(1, Math.abs(c.logsumexp[t])), `logsumexp at ${t}: ${lse} vs ${c.logsumexp[t]}`);
        c.logits_first16[t].forEach((want, j) => {
          assert.ok(Math.abs(row[j] - want) <= 1e-4 * Math.max(1, Math.abs(want)), `logit [${t}, ${j}]: ${row[j]} vs ${want}`);
        });
      }
      const greedy = generate(model, [c.input_ids], { maxNewTokens: 8, eosId: null });
      assert.deepEqual(greedy[0], c.greedy8, 'greedy continuation');
    }
  });
}

const stories = MODELS && path.join(MODELS, 'stories260K');
const storiesSkip = !stories || !fs.existsSync(stories) ? '../shared/models/stories260K is absent' : false;

test('stories260K greedy-decodes the text of its REFERENCE.md', { skip: storiesSkip }, () => {
  const md = fs.readFileSync(path.join(stories!, 'REFERENCE.md'), 'utf8');
  const idsIn: number[] = JSON.parse(/ids in:\s*(\[[^\]]*\])/.exec(md)![1]);
  const idsOut: number[] = JSON.parse(/ids out[^:]*:\s*(\[[^\]]*\])/.exec(md)![1]);
  const text = /text: `([^`]*)`/.exec(md)![1];
  const model = CausalLM.loadDir(stories!);
  const prompt = model.tok().encode('Once upon a time');
  assert.deepEqual(prompt, idsIn);
  const out = generate(model, [prompt], { maxNewTokens: idsOut.length - idsIn.length, eosId: null });
  assert.deepEqual([...prompt, ...out[0]], idsOut);
  assert.equal(model.tok().decode([...prompt, ...out[0]], { skipSpecialTokens: true }), text);
});

for (const name of [...TINY, 'stories260K']) {
  const dir = MODELS && path.join(MODELS, name);
  const skip = !dir || !fs.existsSync(dir) ? `../shared/models/${name} is absent` : false;

  test(`${name}: a padded batch gives each sequence's own logits`, { skip }, () => {
    const model = CausalLM.loadDir(dir!);
    const V = model.config.vocabSize;
    const seqs = [[5, 17, 42, 99, 7, 3], [11, 12], [200, 3, 4, 9]];
    const alone = seqs.map((s) => model.forward(Int32Array.from(s), 1, s.length).logits!);
    for (const side of ['right', 'left'] as const) {
      const L = 6, B = seqs.length;
      const ids = new Int32Array(B * L), mask = new Uint8Array(B * L);
      seqs.forEach((s, b) => s.forEach((id, t) => {
        const at = b * L + (side === 'right' ? t : L - s.length + t);
        ids[at] = id;
        mask[at] = 1;
      }));
      const batched = model.forward(ids, B, L, { attentionMask: mask }).logits!;
      seqs.forEach((s, b) => {
        for (let t = 0; t < s.length; t++) {
          const row = b * L + (side === 'right' ? t : L - s.length + t);
          for (let j = 0; j < V; j++) {
            const want = alone[b].data[t * V + j], got = batched.data[row * V + j];
            if (Math.abs(got - want) > 1e-4 * Math.max(1, Math.abs(want))) {
              assert.fail(`${side} padding: seq ${b} pos ${t} logit ${j}: ${got} vs ${want}`);
            }
          }
        }
      });
    }
  });

  test(`${name}: KV-cache generation equals full recomputation`, { skip }, () => {
    const model = CausalLM.loadDir(dir!);
    const prompts = [[5, 17, 42, 99], [11], [200, 3, 4]];
    const cached = generate(model, prompts, { maxNewTokens: 10, eosId: null });
    const full = generate(model, prompts, { maxNewTokens: 10, eosId: null, useCache: false });
    assert.deepEqual(cached, full);
    const sampledA = generate(model, prompts, { maxNewTokens: 10, eosId: null, greedy: false, seed: 3, topK: 50 });
    const sampledB = generate(model, prompts, { maxNewTokens: 10, eosId: null, greedy: false, seed: 3, topK: 50, useCache: false });
    assert.deepEqual(sampledA, sampledB);
    // batched generation equals generating each prompt alone
    prompts.forEach((p, i) => assert.deepEqual(generate(model, [p], { maxNewTokens: 10, eosId: null })[0], cached[i]));
  });
}

test('hooks capture, add at chosen positions, and carry gradients', { skip: storiesSkip }, () => {
  const model = CausalLM.loadDir(stories!);
  const ids = Int32Array.from([1, 403, 407, 261, 378]);
  const keys = capture(hookPoint.mlpKeys(2));
  const base = model.forward(ids, 1, 5, { hooks: [keys.hook], logitsAt: [4] }).logits!;
  assert.deepEqual(keys.value().shape, [1, 5, model.config.ffn]);
  // Adding zero changes nothing; adding a vector at position 2 changes only later positions.
  const zero = T.zeros([model.config.hidden]);
  const same = model.forward(ids, 1, 5, { hooks: [addAt(hookPoint.mlpOut(1), [2], zero)], logitsAt: [4] }).logits!;
  assert.deepEqual(Array.from(same.data), Array.from(base.data));
  const delta = T.full([model.config.hidden], 0.5);
  const all = model.forward(ids, 1, 5, { hooks: [addAt(hookPoint.mlpOut(1), [2], delta)] }).logits!;
  const plain = model.forward(ids, 1, 5).logits!;
  const V = model.config.vocabSize;
  const diff = (t: number): number => {
    let d = 0;
    for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(all.data[t * V + j] - plain.data[t * V + j]));
    return d;
  };
  assert.equal(diff(0), 0);
  assert.equal(diff(1), 0);
  assert.ok(diff(2) > 1e-3 && diff(4) > 1e-3);
  // d loss / d delta through the rest of the network, against a finite difference
  const target = 432;
  const lossAt = (dv: T.Tensor): number => T.noGrad(() => {
    const lg = model.forward(ids, 1, 5, { hooks: [addAt(hookPoint.mlpOut(1), [2], dv)], logitsAt: [4] }).logits!;
    return T.crossEntropy(lg, [target]).item();
  });
  const p = T.parameter(T.zeros([model.config.hidden]));
  T.withGrad(() => {
    const lg = model.forward(ids, 1, 5, { hooks: [addAt(hookPoint.mlpOut(1), [2], p)], logitsAt: [4] }).logits!;
    T.crossEntropy(lg, [target]).backward();
  });
  for (const j of [0, 7, 33]) {
    const e = 1e-2;
    const up = T.zeros([model.config.hidden]), down = T.zeros([model.config.hidden]);
    up.data[j] = e;
    down.data[j] = -e;
    const numeric = (lossAt(up) - lossAt(down)) / (2 * e);
    assert.ok(Math.abs(numeric - p.grad!.data[j]) < 2e-3 + 2e-2 * Math.abs(numeric), `grad[${j}] ${p.grad!.data[j]} vs ${numeric}`);
  }
});
