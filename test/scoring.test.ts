// Teacher-forced scoring: the tokenisation rule, hand-computed log-probabilities on a fake bigram
// model, and batched == one-by-one on a random GPT-2 with the real GPT-2 tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM, gpt2Config, writeRandomCheckpoint, type ForwardOptions, type ModelConfig } from '../src/models/index.js';
import { Tensor } from '../src/tensor/index.js';
import { AmendTokenizer } from '../src/tokenizer/index.js';
import { encodePair, joinPromptTarget, scoreEncoded, targetLogProbs, type EncodedPair, type ScoringModel, type TargetScore } from '../src/eval/scoring.js';
import { heldoutPerplexity } from '../src/eval/heldout.js';
import { perplexity } from '../src/eval/metrics-ppl.js';
import { repoRoot, sharedDir } from './helpers.js';

// ---------------------------------------------------------------- a word-level fake

const WORDS = ['<s>', '</s>', 'The', ' capital', ' is', ' Paris', ' London', ' New', ' York', 'Answer:', ' ', ' the', ' answer'];
const ID = new Map(WORDS.map((w, i) => [w, i]));

/** Words with their leading whitespace are tokens; a trailing run of whitespace is a token of its own. */
function fakeTokenizer(o: { bos?: boolean; eos?: boolean; bosIsEos?: boolean } = {}) {
  const bos = o.bosIsEos ? 1 : 0;
  return {
    bosId: o.bos ? bos : null,
    eosId: 1,
    encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
      const ids = (text.match(/\s*\S+|\s+$/g) ?? []).map((w) => {
        const id = ID.get(w);
        if (id === undefined) throw new Error(`fake tokenizer: unknown word "${w}"`);
        return id;
      });
      const add = opts.addSpecialTokens ?? true;
      return [...(add && o.bos ? [bos] : []), ...ids, ...(add && o.eos ? [1] : [])];
    },
    decode: (ids: number[]) => ids.map((i) => WORDS[i]).join(''),
  };
}

const WORLD_DIR = path.join(repoRoot(), 'world');
const worldSkip = fs.existsSync(path.join(WORLD_DIR, 'tokenizer.json')) ? false : 'no world/ model (amend world build)';
const TINY_GPT2_DIR = sharedDir('models') && path.join(sharedDir('models')!, 'tiny-random-gpt2');
const tinyGpt2Skip = TINY_GPT2_DIR && fs.existsSync(path.join(TINY_GPT2_DIR, 'tokenizer.json')) ? false : '../shared/models/tiny-random-gpt2 is absent';

const V = WORDS.length;
const LN = Math.log;

/** Bigram model: the logits at a position depend only on the token there (log-probabilities as logits). */
function bigramModel(next: Record<string, Record<string, number>>, tok = fakeTokenizer()): ScoringModel & { calls: number } {
  const table = new Float32Array(V * V).fill(-1e9);
  for (let v = 0; v < V; v++) {
    const dist = next[WORDS[v]!] ?? { ' the': 1 };
    for (const [w, p] of Object.entries(dist)) table[v * V + ID.get(w)!] = LN(p);
  }
  const m = {
    calls: 0,
    config: { vocabSize: V, maxPositions: 32 } as ModelConfig,
    tok: () => tok as unknown as AmendTokenizer,
    forward(ids: Int32Array, _B: number, _T: number, opts: ForwardOptions = {}) {
      m.calls++;
      const rows = opts.logitsAt as number[];
      assert.ok(Array.isArray(rows), 'scoring asks for logits at chosen rows only');
      const out = new Float32Array(rows.length * V);
      rows.forEach((r, k) => {
        assert.equal(opts.attentionMask![r], 1, 'logits are only read at real (unpadded) positions');
        out.set(table.subarray(ids[r]! * V, (ids[r]! + 1) * V), k * V);
      });
      return { logits: new Tensor(out, [rows.length, V]), hidden: new Tensor(new Float32Array(1), [1]) };
    },
  };
  return m;
}

/** log-sum-exp (in float64) and the first index of the maximum of one logits row: the reference. */
function rowStats(row: ArrayLike<number>): { lse: number; best: number } {
  let best = 0;
  let mx = row[0]!;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > mx) {
      mx = row[i]!;
      best = i;
    }
  }
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - mx);
  return { lse: mx + Math.log(s), best };
}

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('prompt and target are joined by one space unless whitespace is already there', () => {
  assert.equal(joinPromptTarget('The capital is', 'Paris'), 'The capital is Paris');
  assert.equal(joinPromptTarget('The capital is', ' Paris'), 'The capital is Paris');
  assert.equal(joinPromptTarget('Answer: ', 'Paris'), 'Answer: Paris');
  assert.equal(joinPromptTarget('The capital is', '.'), 'The capital is .'); // as both references do
});

test('encodePair: target tokens follow the prompt tokens (BOS kept, appended EOS dropped, boundary merges scored)', () => {
  const tok = fakeTokenizer();
  assert.deepEqual(encodePair(tok, 'The capital is', 'New York'), { context: [2, 3, 4], target: [7, 8] });
  assert.deepEqual(encodePair(tok, 'The capital is', ' New York'), { context: [2, 3, 4], target: [7, 8] });
  // Llama-style BOS in front of the context
  assert.deepEqual(encodePair(fakeTokenizer({ bos: true }), 'The capital is', 'Paris'), { context: [0, 2, 3, 4], target: [5] });
  // a post-processor EOS is not part of the target
  assert.deepEqual(encodePair(fakeTokenizer({ eos: true }), 'The capital is', 'Paris'), { context: [2, 3, 4], target: [5] });
  // "Answer: " encodes as [Answer:, " "] but "Answer: Paris" as [Answer:, " Paris"]: the space moves to the target
  assert.deepEqual(encodePair(tok, 'Answer: ', 'Paris'), { context: [9], target: [5] });
  assert.throws(() => encodePair(tok, 'The capital is', '  '), /empty target/);
  assert.throws(() => encodePair(tok, '', ' Paris'), /gives no token to condition.*a model without a BOS token needs a non-empty prompt/);
  // BOS and EOS one id (GPT-2-style post-processors): an empty prompt's lone token is the BOS, kept
  const shared = fakeTokenizer({ bos: true, bosIsEos: true });
  assert.deepEqual(encodePair(shared, '', ' Paris'), { context: [1], target: [5] });
  assert.deepEqual(encodePair(shared, 'The capital is', 'Paris'), { context: [1, 2, 3, 4], target: [5] });
  // ... and with an EOS appended as well, that one is dropped
  assert.deepEqual(encodePair(fakeTokenizer({ bos: true, eos: true, bosIsEos: true }), '', ' Paris'), { context: [1], target: [5] });
});

test('an empty prompt is conditioned on the BOS of the demo world (BOS = EOS); a tiny GPT-2 without one is told so', { skip: worldSkip || tinyGpt2Skip }, () => {
  const world = AmendTokenizer.fromDir(WORLD_DIR);
  assert.equal(world.bosId, world.eosId);
  const p = encodePair(world, '', 'Paris');
  assert.deepEqual(p.context, [world.bosId]);
  assert.deepEqual(p.target, world.encode('Paris', { addSpecialTokens: false }));
  const gpt2 = AmendTokenizer.fromDir(TINY_GPT2_DIR!);
  assert.throws(() => encodePair(gpt2, '', 'Paris'), /prompt "" gives no token to condition the target on \(a model without a BOS token needs a non-empty prompt\)/);
  assert.deepEqual(encodePair(gpt2, 'Hi', 'Paris').context, gpt2.encode('Hi'));
});

test('scores on a bigram model match hand-computed log-probabilities (multi-token targets, argmax, accuracy)', () => {
  const m = bigramModel({
    ' is': { ' Paris': 0.5, ' London': 0.3, ' New': 0.2 },
    ' New': { ' York': 0.9, ' Paris': 0.1 },
    'Answer:': { ' London': 0.6, ' Paris': 0.4 },
  });
  const [ny, paris, london, dup, ans] = targetLogProbs(m, [
    { prompt: 'The capital is', target: 'New York' },
    { prompt: 'The capital is', target: 'Paris' },
    { prompt: 'The capital is', target: 'London' },
    { prompt: 'The capital is', target: ' Paris' },
    { prompt: 'Answer: ', target: 'Paris' },
  ]);
  close(ny!.logProbs[0]!, LN(0.2));
  close(ny!.logProbs[1]!, LN(0.9));
  close(ny!.sum, LN(0.2 * 0.9));
  close(ny!.mean, LN(0.2 * 0.9) / 2);
  assert.deepEqual(ny!.argmax, [ID.get(' Paris'), ID.get(' York')]);
  assert.deepEqual(ny!.correct, [false, true]);
  assert.equal(ny!.accuracy, 0.5);
  close(paris!.sum, LN(0.5));
  assert.equal(paris!.accuracy, 1);
  close(london!.mean, LN(0.3));
  assert.equal(london!.accuracy, 0);
  assert.deepEqual(dup, paris, 'identical pairs give identical results');
  close(ans!.sum, LN(0.4));
  assert.deepEqual(ans!.argmax, [ID.get(' London')]);
  assert.equal(m.calls, 1, 'one forward pass for all items');
});

test('batch limits split the work without changing results', () => {
  const m = bigramModel({ ' is': { ' Paris': 0.5, ' New': 0.5 }, ' New': { ' York': 1 } });
  // No item's input is a prefix of another's, so each needs a row of its own.
  const items = [
    { prompt: 'The capital is', target: 'New York' },
    { prompt: 'Answer: ', target: 'Paris' },
    { prompt: ' New', target: 'York' },
  ];
  const all = targetLogProbs(m, items);
  const calls = m.calls;
  const split = targetLogProbs(m, items, { maxBatchRows: 1 });
  assert.equal(m.calls - calls, 3);
  assert.deepEqual(split, all);
  assert.deepEqual(targetLogProbs(m, items, { maxLogitRows: 1 }), all); // an item longer than the limit still runs alone
  assert.deepEqual(targetLogProbs(m, items, { maxBatchTokens: 1 }), all);
});

test('items whose input is a prefix of another item\'s share its row and its logits', () => {
  const m = bigramModel({ The: { ' capital': 0.5, ' New': 0.5 }, ' capital': { ' is': 1 }, ' is': { ' Paris': 0.5, ' London': 0.3, ' New': 0.2 }, ' New': { ' York': 1 } });
  const seen: { B: number; T: number; logits: number }[] = [];
  const forward = m.forward;
  m.forward = (ids, B, T, opts) => {
    seen.push({ B, T, logits: (opts!.logitsAt as number[]).length });
    return forward(ids, B, T, opts);
  };
  // The inputs are The|capital|is|New, The|capital|is (twice), The (with the target "capital is Paris"
  // read at positions 0..2) and Answer:, which shares nothing.
  const items = [
    { prompt: 'The capital is', target: 'New York' },
    { prompt: 'The capital is', target: 'Paris' },
    { prompt: 'The capital is', target: 'London' },
    { prompt: 'The', target: 'capital is Paris' },
    { prompt: 'Answer: ', target: 'Paris' },
  ];
  const shared = targetLogProbs(m, items);
  assert.deepEqual(seen, [{ B: 2, T: 4, logits: 5 }], 'two rows; positions 0..3 of the first and 0 of the second');
  items.forEach((it, i) => assert.deepEqual(shared[i], targetLogProbs(m, [it])[0], `item ${i} alone`));
  close(shared[3]!.sum, LN(0.5 * 1 * 0.5));
  close(shared[0]!.sum, LN(0.2 * 1));
});

test('each text is encoded once per tokenizer, however often it is scored', () => {
  const tok = fakeTokenizer();
  const texts: string[] = [];
  const encode = tok.encode;
  tok.encode = (text, opts) => {
    texts.push(text);
    return encode(text, opts);
  };
  const m = bigramModel({ ' is': { ' Paris': 0.5, ' London': 0.5 } }, tok);
  const items = [{ prompt: 'The capital is', target: 'Paris' }, { prompt: 'The capital is', target: 'London' }];
  const first = targetLogProbs(m, items);
  assert.deepEqual(targetLogProbs(m, items), first);
  assert.deepEqual(texts, ['The capital is', 'The capital is Paris', 'The capital is London']);
  // the pairs handed out are copies: changing one does not change the next call's
  first[0]!.context.push(99);
  assert.deepEqual(encodePair(tok, 'The capital is', 'Paris'), { context: [2, 3, 4], target: [5] });
});

// ---------------------------------------------------------------- real tokenizers and a random GPT-2

const MODELS = sharedDir('models');
const GPT2_TOK = MODELS && path.join(MODELS, 'gpt2-tokenizer');
const gpt2Skip = GPT2_TOK && fs.existsSync(path.join(GPT2_TOK, 'tokenizer.json')) ? false : '../shared/models/gpt2-tokenizer is absent';

test('with the GPT-2 tokenizer the rule equals ROME\'s separate tokenisation of " " + target', { skip: gpt2Skip }, () => {
  const tok = AmendTokenizer.fromDir(GPT2_TOK!);
  const cases: [string, string][] = [
    ['Ferrari F40, developed by', 'Microsoft'],
    ['The mother tongue of Danielle Darrieux is', 'English'],
    ['When was the inception of IAAF Combined Events Challenge?', '2006'],
    ['Which family does Epaspidoceras belong to?', 'Noctuidae'],
    ['The name of the country which Goursez Vreizh is associated with is', 'Franche-Comté'],
  ];
  for (const [p, t] of cases) {
    const pair = encodePair(tok, p, t);
    assert.deepEqual(pair.context, tok.encode(p), p);
    assert.deepEqual(pair.target, tok.encode(` ${t}`), p);
  }
  // a prompt ending in a space: the space is scored as part of the target's first token
  const pair = encodePair(tok, 'Answer: ', 'Paris');
  assert.deepEqual(pair.context, tok.encode('Answer:'));
  assert.deepEqual(pair.target, tok.encode(' Paris'));
});

const LLAMA = MODELS && path.join(MODELS, 'tiny-random-llama');
const llamaSkip = LLAMA && fs.existsSync(path.join(LLAMA, 'tokenizer.json')) ? false : '../shared/models/tiny-random-llama is absent';

test('with a Llama tokenizer the context starts with BOS and the target is the rest of the joint encoding', { skip: llamaSkip }, () => {
  const model = CausalLM.loadDir(LLAMA!);
  const tok = model.tok();
  const p = 'Once upon a time there was a';
  const pair = encodePair(tok, p, 'little girl');
  const full = tok.encode(`${p} little girl`);
  assert.equal(pair.context[0], tok.bosId);
  assert.deepEqual(pair.context, tok.encode(p));
  assert.deepEqual([...pair.context, ...pair.target], full);
  assert.ok(pair.target.length >= 2);
  const [s] = targetLogProbs(model, [{ prompt: p, target: 'little girl' }]);
  assert.equal(s!.logProbs.length, pair.target.length);
});

/** Reference: one unpadded forward per pair, full logits, log-softmax in float64. */
function reference(model: ScoringModel, pair: EncodedPair): { logProbs: number[]; argmax: number[] } {
  const seq = [...pair.context, ...pair.target.slice(0, -1)];
  const { logits } = model.forward(Int32Array.from(seq), 1, seq.length, { logitsAt: 'all' });
  const Vv = model.config.vocabSize;
  const logProbs: number[] = [];
  const argmax: number[] = [];
  pair.target.forEach((id, j) => {
    const t = pair.context.length - 1 + j;
    const row = logits!.data.subarray(t * Vv, (t + 1) * Vv);
    const { lse, best } = rowStats(row);
    logProbs.push(row[id]! - lse);
    argmax.push(best);
  });
  return { logProbs, argmax };
}

function assertSame(a: TargetScore, b: { logProbs: number[]; argmax: number[] }, what: string) {
  assert.equal(a.logProbs.length, b.logProbs.length, what);
  a.logProbs.forEach((v, j) => close(v, b.logProbs[j]!, 2e-4));
  assert.deepEqual(a.argmax, b.argmax, what);
}

test('random GPT-2: padded batches give the one-by-one results (multi-token targets, padding, truncation)', { skip: gpt2Skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-scoring-'));
  try {
    writeRandomCheckpoint(dir, gpt2Config({ vocab: 50257, positions: 48, layers: 2, hidden: 32, heads: 4 }), 11, 0.2);
    fs.copyFileSync(path.join(GPT2_TOK!, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const model = CausalLM.loadDir(dir);
    const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
    const items = [
      { prompt: 'The capital of France is', target: 'Paris' },
      { prompt: 'Ferrari F40, developed by', target: 'Microsoft Corporation of America' },
      { prompt: 'Hi', target: ' there, my old friend' },
      { prompt: 'Answer: ', target: 'Paris' },
      { prompt: 'The capital of France is', target: 'Paris' },
      { prompt: long, target: 'and the end' },
      // rows shared with the first item: another target of its prompt, and its prompt's beginning
      { prompt: 'The capital of France is', target: 'Lyon and Marseille' },
      { prompt: 'The capital of France', target: 'is Paris' },
    ];
    const batched = targetLogProbs(model, items);
    const single = items.map((it) => targetLogProbs(model, [it], { maxBatchRows: 1 })[0]!);
    const tight = targetLogProbs(model, items, { maxBatchTokens: 70, maxLogitRows: 4 });
    assert.ok(batched[1]!.target.length >= 4 && batched[2]!.target.length >= 4, 'multi-token targets');
    assert.ok(batched[5]!.truncated && !batched[0]!.truncated);
    assert.equal(batched[5]!.context.length + batched[5]!.target.length - 1, 48, 'cut to the model positions');
    const whole = encodePair(model.tok(), long, 'and the end');
    assert.deepEqual(batched[5]!.context, whole.context.slice(whole.context.length - batched[5]!.context.length), 'the context keeps its end');
    batched.forEach((b, i) => {
      const ref = reference(model, { context: b.context, target: b.target });
      assertSame(b, ref, `item ${i} against an unpadded forward`);
      assertSame(single[i]!, ref, `item ${i} one by one`);
      assertSame(tight[i]!, ref, `item ${i} in small batches`);
      // Bit for bit, whatever the batch (scoring keeps every product of a pass at 4 rows or more).
      assert.deepEqual(single[i]!.logProbs, b.logProbs, `item ${i}: the same bits alone as in the batch`);
      close(b.sum, b.logProbs.reduce((x, y) => x + y, 0), 1e-9);
      assert.equal(b.accuracy, b.correct.filter(Boolean).length / b.correct.length);
      assert.deepEqual(b.correct, b.argmax.map((a, j) => a === b.target[j]));
    });
    // the random model's argmax is often the target when we take the argmax itself as target
    const greedy = batched[0]!.argmax[0]!;
    const [s] = scoreEncoded(model, [{ context: batched[0]!.context, target: [greedy] }]);
    assert.equal(s!.accuracy, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('held-out perplexity by lines: each line a document, CRLF and blank lines, stopped at the token budget', () => {
  // "The capital is Paris": P(capital|The) 1/2, P(is|capital) 1, P(Paris|is) 1/4; "The capital": 1/2.
  const m = bigramModel({ The: { ' capital': 0.5, ' New': 0.5 }, ' capital': { ' is': 1 }, ' is': { ' Paris': 0.25, ' London': 0.75 } });
  const text = 'The capital is Paris\r\n\n  \r\nThe capital\r\nThe capital is London';
  const all = heldoutPerplexity(m, text, { lines: true });
  assert.equal(all.tokens, 3 + 1 + 3);
  close(Math.log(all.perplexity), -(LN(0.5) + LN(0.25) + LN(0.5) + LN(0.5) + LN(0.75)) / 7);
  // a budget of 4 tokens takes the first line and then the second one
  const some = heldoutPerplexity(m, text, { lines: true, maxTokens: 4 });
  assert.equal(some.tokens, 4);
  close(Math.log(some.perplexity), -(LN(0.5) + LN(0.25) + LN(0.5)) / 4);
  // the whole text as one document (no lines): every token but the first scored once, in windows
  // of 2 (one token of context) as in one window
  const one = 'The capital is Paris';
  for (const maxLength of [2, 4]) {
    const r = perplexity(m, one, { maxLength, stride: 1 });
    assert.deepEqual([r.tokens, r.maxLength], [3, maxLength]);
    close(r.meanNll, -(LN(0.5) + LN(1) + LN(0.25)) / 3);
    close(r.perplexity, Math.exp(r.meanNll));
  }
  close(heldoutPerplexity(m, one).perplexity, Math.exp(-(LN(0.5) + LN(0.25)) / 3));
});

test('an item scores the same bits alone as in any batch, on js and native, for inputs of 1 to 3 tokens and past an attention block by 1 to 3', async () => {
  const { nativeStatus, useBackend } = await import('../src/backend/index.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-scoring-bits-'));
  try {
    writeRandomCheckpoint(dir, gpt2Config({ vocab: 1000, positions: 160, layers: 2, hidden: 64, heads: 4 }), 11, 0.2);
    const model = CausalLM.loadDir(dir, { noTokenizer: true });
    // Distinct tokens per item, so that no input row is a prefix of another's (rows are shared then).
    const ids = (n: number, item: number): number[] => Array.from({ length: n }, (_, i) => (item * 37 + i * 11) % 1000);
    const pair = (ctx: number, tgt: number, item: number): EncodedPair => {
      const all = ids(ctx + tgt, item);
      return { context: all.slice(0, ctx), target: all.slice(ctx) };
    };
    // Input lengths (context + target − 1): 1, 2, 2, 3, 3, 3, then 65, 66, 67 and 129 (attention
    // takes 64 queries at a time), with one- and multi-token targets.
    const short = [pair(1, 1, 1), pair(2, 1, 2), pair(1, 2, 3), pair(3, 1, 4), pair(1, 3, 5), pair(2, 2, 6)];
    const long = [pair(65, 1, 7), pair(64, 3, 8), pair(66, 2, 9), pair(129, 1, 10)];
    let passes = 0;
    const forward = model.forward.bind(model);
    model.forward = (...a) => { passes++; return forward(...a); };
    const backends = ['js', ...(nativeStatus().ok ? ['native'] as const : [])] as const;
    for (const backend of backends) {
      useBackend(backend);
      for (const p of [...short, ...long]) {
        const n = p.context.length + p.target.length - 1;
        const alone = scoreEncoded(model, [p])[0]!.logProbs;
        passes = 0;
        const withLonger = scoreEncoded(model, [p, pair(n + 4, 2, 11)])[0]!.logProbs; // a few tokens longer: one pass
        assert.equal(passes, 1, `${backend}: the ${n}-token input and the longer one in one pass`);
        const inAll = scoreEncoded(model, [...short, ...long])[[...short, ...long].indexOf(p)]!.logProbs;
        assert.deepEqual(withLonger, alone, `${backend}: a ${n}-token input with a longer one`);
        assert.deepEqual(inAll, alone, `${backend}: a ${n}-token input in one call with all the others`);
      }
    }
  } finally {
    const { useBackend, nativeStatus } = await import('../src/backend/index.js');
    useBackend(nativeStatus().ok ? 'native' : 'js');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the padding for bit-identity works at the model\'s last positions (padded tokens take no position of their own)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-scoring-maxpos-'));
  try {
    // 66 positions: a 65-token input is padded to 68 (past an attention block by 1); the mask gives
    // the padding no positions of its own, so the pass runs and scores as an unpadded forward does.
    writeRandomCheckpoint(dir, gpt2Config({ vocab: 200, positions: 66, layers: 1, hidden: 16, heads: 2 }), 5, 0.2);
    const model = CausalLM.loadDir(dir, { noTokenizer: true });
    for (const n of [65, 66]) {
      const all = Array.from({ length: n + 1 }, (_, i) => (i * 7 + 3) % 200);
      const p: EncodedPair = { context: all.slice(0, n), target: all.slice(n) };
      const [got] = scoreEncoded(model, [p]);
      assert.equal(got!.truncated, n + 1 - 1 > 66);
      const ref = reference(model, { context: got!.context, target: got!.target });
      got!.logProbs.forEach((v, j) => close(v, ref.logProbs[j]!, 2e-4));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the editors' target scores are the evaluation's bits, whatever batch an item shares", async () => {
  const { scoreTargets } = await import('../src/editors/common/score.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-scoring-editors-'));
  try {
    writeRandomCheckpoint(dir, gpt2Config({ vocab: 300, positions: 96, layers: 2, hidden: 32, heads: 2 }), 3, 0.3);
    const model = CausalLM.loadDir(dir, { noTokenizer: true });
    const ids = (n: number, item: number): number[] => Array.from({ length: n }, (_, i) => (item * 29 + i * 7) % 300);
    // A 1-token prompt (a 1-row pass alone), a 3-token target, and a prompt past an attention block.
    const items = [
      { prompt: ids(1, 1), target: ids(1, 2) },
      { prompt: ids(2, 3), target: ids(3, 4) },
      { prompt: ids(66, 5), target: ids(2, 6) },
    ];
    const together = scoreTargets(model, items);
    items.forEach((it, i) => {
      const ev = scoreEncoded(model, [{ context: [...it.prompt], target: [...it.target] }])[0]!;
      assert.deepEqual(scoreTargets(model, [it])[0], together[i], `item ${i} alone and in the batch`);
      assert.equal(together[i]!.logProb, ev.sum);
      assert.equal(together[i]!.meanNll, -ev.mean);
      assert.equal(together[i]!.argmaxMatch, ev.correct.every(Boolean));
    });
    // The argmax check: a target made of the model's own greedy tokens matches, a changed one does not.
    const greedy = scoreEncoded(model, [{ context: ids(4, 7), target: [0] }])[0]!.argmax;
    assert.equal(scoreTargets(model, [{ prompt: ids(4, 7), target: greedy }])[0]!.argmaxMatch, true);
    assert.equal(scoreTargets(model, [{ prompt: ids(4, 7), target: [(greedy[0]! + 1) % 300] }])[0]!.argmaxMatch, false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
