// Generation's edges: plain, top-k and nucleus sampling draw from the distribution they name, and
// generation stops where the model's positions end.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate, generationRoom, sample, topK } from '../src/models/generate.js';
import { forward } from '../src/models/transformer.js';
import { CausalLM, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { mulberry32 } from '../src/tensor/index.js';
import { AmendError } from '../src/errors.js';

const logits = new Float32Array([1.5, -0.5, 0.25, 2, -3, 0.75]);

function softmax(row: Float32Array, temp: number, keep: (i: number) => boolean): number[] {
  const e = Array.from(row, (x, i) => (keep(i) ? Math.exp(x / temp) : 0));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function frequencies(o: Parameters<typeof sample>[1], draws: number): number[] {
  const rand = mulberry32(11);
  const f = new Array(logits.length).fill(0);
  for (let i = 0; i < draws; i++) f[sample(logits, o, rand)] += 1 / draws;
  return f;
}

// 40,000 draws: a frequency's standard error is at most 0.0025, so 0.012 is about five of them.
const DRAWS = 40000, TOL = 0.012;

test('plain sampling (no sort) follows softmax(logits / temperature)', () => {
  for (const temperature of [1, 0.5, 2]) {
    const want = softmax(logits, temperature, () => true);
    frequencies({ temperature }, DRAWS).forEach((f, i) => assert.ok(Math.abs(f - want[i]) < TOL, `T ${temperature}, token ${i}: ${f} vs ${want[i]}`));
  }
});

test('top-k keeps the k largest logits; top-p keeps the smallest set reaching p', () => {
  const top2 = softmax(logits, 1, (i) => i === 3 || i === 0);
  frequencies({ topK: 2 }, DRAWS).forEach((f, i) => assert.ok(Math.abs(f - top2[i]) < TOL, `top-k token ${i}: ${f} vs ${top2[i]}`));
  // P sorted: token 3 ≈ 0.45, token 0 ≈ 0.27, so p = 0.6 keeps exactly those two.
  const full = softmax(logits, 1, () => true);
  assert.ok(full[3] < 0.6 && full[3] + full[0] >= 0.6);
  frequencies({ topP: 0.6 }, DRAWS).forEach((f, i) => assert.ok(Math.abs(f - top2[i]) < TOL, `top-p token ${i}: ${f} vs ${top2[i]}`));
});

test('sampled generation draws each row of a batch from its own softmax', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-gen-'));
  try {
    const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'm'), gpt2Config({ vocab: 8 })), { noTokenizer: true });
    // Rows of different lengths, so the batch is left-padded, and a temperature that sharpens the
    // random model's nearly flat logits until the two rows' distributions tell apart.
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 1]];
    const temperature = 0.02;
    const want = prompts.map((p) => {
      const { logits } = forward(model, Int32Array.from(p), 1, p.length, { logitsAt: [p.length - 1] });
      return softmax(logits!.data, temperature, () => true);
    });
    assert.ok(want[0].some((w, i) => Math.abs(w - want[1][i]) > 5 * TOL), `the rows' distributions are too alike: ${want}`);
    const draws = 4000, tol = 0.04;  // a frequency's standard error is at most 0.008 here
    const f = prompts.map(() => new Array(8).fill(0));
    for (let s = 0; s < draws; s++) {
      const out = generate(model, prompts, { maxNewTokens: 1, greedy: false, temperature, seed: s, eosId: null });
      out.forEach((o, r) => { f[r][o[0]] += 1 / draws; });
    }
    f.forEach((row, r) => row.forEach((x, i) => assert.ok(Math.abs(x - want[r][i]) < tol, `row ${r}, token ${i}: ${x} vs ${want[r][i]}`)));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('generation stops at the model\'s last position, with and without the KV cache', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-gen-'));
  try {
    const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'm'), gpt2Config({ positions: 16 })), { noTokenizer: true });
    const prompt = [1, 2, 3, 4, 5, 6];
    // 16 positions: the prompt's 6, then 10 fed-back tokens, and an 11th predicted from position 15.
    assert.equal(generationRoom(model.config, prompt.length), 11);
    for (const useCache of [true, false]) {
      const [out] = generate(model, [prompt], { maxNewTokens: 1000, eosId: null, useCache });
      assert.equal(out.length, 11, `useCache ${useCache}`);
    }
    const [short] = generate(model, [prompt], { maxNewTokens: 4, eosId: null });
    assert.equal(short.length, 4);
    // In a batch each row has its own room (positions count per row, not over the padding), and
    // gets the tokens it gets alone.
    const long = [9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6];
    for (const useCache of [true, false]) {
      const [a, b] = generate(model, [prompt, long], { maxNewTokens: 1000, eosId: null, useCache });
      assert.deepEqual([a.length, b.length], [11, 3], `useCache ${useCache}`);
      assert.deepEqual(a, generate(model, [prompt], { maxNewTokens: 1000, eosId: null, useCache })[0]);
      assert.deepEqual(b, generate(model, [long], { maxNewTokens: 1000, eosId: null, useCache })[0]);
    }
    assert.throws(() => generate(model, [new Array(17).fill(1)], { maxNewTokens: 1 }), /17 tokens is longer than the model's 16 positions/);
    // Options that used to fail inside a kernel (a fractional count) or sample nothing sensible.
    const bad: [Parameters<typeof generate>[2], RegExp][] = [
      [{ maxNewTokens: 2.5 }, /maxNewTokens must be an integer ≥ 0, got 2.5/],
      // a string is quoted: "3", not 3, which would hide why it is refused
      [{ maxNewTokens: '3' as unknown as number }, /AmendError: generate: maxNewTokens must be an integer ≥ 0, got "3"$/],
      [{ maxNewTokens: 2, greedy: false, topP: '0.5' as unknown as number }, /AmendError: generate: topP must be in \(0, 1\], got "0\.5"$/],
      [{ maxNewTokens: 2, greedy: false, topK: 0.5 }, /topK must be an integer ≥ 0/],
      // "false" is truthy: it would decode greedily
      [{ maxNewTokens: 2, greedy: 'false' as unknown as boolean }, /generate: greedy must be true or false, got "false"$/],
      [{ maxNewTokens: 2, greedy: false, topK: -1 }, /topK must be an integer ≥ 0/],
      [{ maxNewTokens: 2, greedy: false, topP: 2 }, /topP must be in \(0, 1\]/],
      [{ maxNewTokens: 2, greedy: false, topP: 0 }, /topP must be in \(0, 1\]/],
      [{ maxNewTokens: 2, greedy: false, temperature: Infinity }, /temperature must be a finite number > 0/],
      [{ maxNewTokens: 2, greedy: false, seed: 0.5 }, /seed must be an integer/],
      [{ maxNewTokens: 2, eosId: 1.5 }, /eosId must be a token id or null/],
    ];
    for (const [o, re] of bad) assert.throws(() => generate(model, [prompt], o), re);
    // Token ids that an Int32Array would quietly turn into others
    for (const id of [1.5, 'a', -1, model.config.vocabSize, null]) {
      assert.throws(() => generate(model, [[1, id as number]], { maxNewTokens: 1 }), /generate: token id .* is not an integer in 0\.\./);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('top-k keeps every token tied with the k-th largest logit, as transformers does', () => {
  const tied = new Float32Array([1, 0, 1, 1, -1]);
  const rand = mulberry32(5), n = 30000, f = new Array(tied.length).fill(0);
  for (let i = 0; i < n; i++) f[sample(tied, { topK: 1 }, rand)] += 1;
  assert.equal(f[1] + f[4], 0, `only the three tied tokens are kept: ${f}`);
  // Chi-square with 2 degrees of freedom against 1/3 each: 30 is far past any fixed seed's value.
  const chi = [0, 2, 3].reduce((a, i) => a + (f[i] - n / 3) ** 2 / (n / 3), 0);
  assert.ok(chi < 30, `frequencies ${f}, chi-square ${chi}`);
  // Temperature, then top-k (with its tie), then top-p on the renormalised rest. Top-3 keeps ids
  // 0, 2 and the tied 3, 4: at T 0.5 ids 0 and 2 hold 1/(1 + e⁻²) ≈ 0.881 of that, under p = 0.9,
  // so top-p adds id 3 (ties: lower id first). Top-k without the tie would have stopped at 0.937.
  const row = new Float32Array([2, 0.5, 2, 1, 1, -4]);
  const want = softmax(row, 0.5, (i) => i === 0 || i === 2 || i === 3);
  const g = new Array(row.length).fill(0), r2 = mulberry32(9);
  for (let i = 0; i < n; i++) g[sample(row, { temperature: 0.5, topK: 3, topP: 0.9 }, r2)] += 1;
  assert.equal(g[1] + g[4] + g[5], 0, `${g}`);
  want.forEach((w, i) => assert.ok(Math.abs(g[i] / n - w) < 0.02, `token ${i}: ${g[i] / n} vs ${w}`));
});

test('sampling options with greedy decoding (the default) are an error, not silently ignored', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-gen-'));
  try {
    const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'm'), gpt2Config({ vocab: 8 })), { noTokenizer: true });
    for (const o of [{ temperature: 0.7 }, { topK: 3 }, { topP: 0.9 }, { greedy: true, topK: 2 }]) {
      assert.throws(() => generate(model, [[1, 2]], { maxNewTokens: 1, ...o }), /pass greedy: false to sample/);
    }
    assert.equal(generate(model, [[1, 2]], { maxNewTokens: 1, greedy: false, topK: 2, seed: 1 })[0].length, 1);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('NaN or +Infinity logits are an error in greedy decoding, sampling (plain, top-k, top-p) and sample(), not a silent pick; -Infinity bans a token', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-gen-'));
  try {
    const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'm'), gpt2Config({ vocab: 8 })), { noTokenizer: true });
    const head = model.weight(model.spec.lmHead.w).data, d = model.config.hidden;
    const good = Float32Array.from(head);
    const modes: Parameters<typeof generate>[2][] = [
      { maxNewTokens: 3, eosId: null }, { maxNewTokens: 3, eosId: null, useCache: false },
      { maxNewTokens: 3, eosId: null, greedy: false, seed: 1 }, { maxNewTokens: 3, eosId: null, greedy: false, seed: 1, topK: 3 },
      { maxNewTokens: 3, eosId: null, greedy: false, seed: 1, topP: 0.9 },
    ];
    // The tied head's row 5 (the embedding of token 5, in no prompt) NaN: logit 5 is NaN. Row 6 of
    // ±3e38 with the signs of prompt 0's last hidden state: logit 6 overflows to +Inf there.
    const { hidden } = forward(model, Int32Array.from([1, 2, 3]), 1, 3, { logitsAt: 'none' });
    const h = hidden.data.subarray(2 * d, 3 * d);
    const cases: [string, (i: number) => number, RegExp][] = [
      ['one NaN logit', (i) => (Math.floor(i / d) === 5 ? NaN : good[i]), /\(NaN at token id 5\)/],
      ['an infinite logit', (i) => (Math.floor(i / d) === 6 ? Math.sign(h[i % d]) * 3e38 : good[i]), /\(Infinity at token id 6\)/],
      ['all NaN', () => NaN, /\(NaN at token id 0\)/],
    ];
    for (const [what, value, re] of cases) {
      for (let i = 0; i < head.length; i++) head[i] = value(i);
      for (const o of modes) {
        assert.throws(() => generate(model, [[1, 2, 3], [4]], o), (e: unknown) => e instanceof AmendError && !e.message.includes('\n') &&
          /^generate: prompt 0, new token 1: the logits are not finite /.test(e.message) && re.test(e.message), `${what}, ${JSON.stringify(o)}`);
      }
      head.set(good);
    }
    assert.deepEqual(generate(model, [[1, 2, 3]], { maxNewTokens: 2, eosId: null })[0].length, 2);
    for (const o of [{}, { topK: 2 }, { topP: 0.5 }]) {
      assert.throws(() => sample(Float32Array.from([0.5, NaN, 1]), o, mulberry32(1)), /^AmendError: sample: the logits are not finite \(NaN at token id 1\)/m);
      assert.throws(() => sample(Float32Array.from([0.5, 1, Infinity]), o, mulberry32(1)), /\(Infinity at token id 2\)/);
      // −Infinity rules a token out (how callers ban tokens): never drawn, unless nothing else is left
      const banned = Float32Array.from([3, -Infinity, 1, -Infinity]);
      for (let s = 0; s < 50; s++) assert.ok([0, 2].includes(sample(banned, o, mulberry32(s))), JSON.stringify(o));
      assert.throws(() => sample(Float32Array.from([-Infinity, -Infinity]), o, mulberry32(1)), /^AmendError: sample: every logit is -Infinity, so no token can be chosen$/m);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('a temperature so small that logits / temperature overflow float32 samples the argmax (the limit of temperature → 0)', () => {
  const row = Float32Array.from([1.5, -0.5, 2, 0.25]);
  for (let s = 0; s < 20; s++) assert.equal(sample(row, { temperature: 1e-40 }, mulberry32(s)), 2);
});

test('topK: the k largest, largest first, ties by index, NaN as -Infinity, by insertion for small k and by a sort for large k alike', () => {
  const rand = mulberry32(7);
  const row = new Float32Array(500).map(() => Math.round(rand() * 40) / 4); // many ties
  row[3] = NaN;
  row[77] = Infinity;
  row[78] = -Infinity;
  const rank = (i: number) => (Number.isNaN(row[i]!) ? -Infinity : row[i]!);
  const reference = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => (rank(b) - rank(a)) || a - b);
  for (const k of [1, 2, 7, 64, 65, 200, 500]) assert.deepEqual(topK(row, k), reference.slice(0, k), `k = ${k}`);
  assert.equal(topK(row, 1)[0], 77);
  assert.deepEqual(topK(row, 500).slice(-2), [3, 78], 'NaN ranks as -Infinity: last, before it by index');
});
