// The metric definitions on hand-computed numbers and strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import {
  agreement,
  exactMatch,
  groupedMean,
  harmonicMean,
  klDivergence,
  newBeatsTrue,
  newMinusTrue,
  normalizeAnswer,
  pooledMean,
  sentimentEditSuccess,
  tokenF1,
  trueBeatsNew,
  trueMinusNew,
} from '../src/eval/metrics.js';
import {
  computeNGramEntropy,
  loadAttributeSnippets,
  loadTfidf,
  nGramEntropy,
  nGramEntropyOf,
  readNpyVector,
  splitSentences,
  tfidfSimilarity,
  tfidfTokens,
  treebankTokenize,
  wordTokenize,
} from '../src/eval/metrics-text.js';
import { perplexityWindows } from '../src/eval/metrics-ppl.js';
import { writeNpy } from './npz-writer.js';
import { costMetrics, measureAsync, type Cost } from '../src/eval/metrics-cost.js';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('locality agreement: fraction of answer positions where the argmax did not move', () => {
  close(agreement([5, 6, 7], [5, 9, 7]), 2 / 3);
  assert.equal(agreement([1], [1]), 1);
  assert.throws(() => agreement([1, 2], [1]), /baseline has 2 answer tokens/);
});

test('KnowEdit aggregation: mean over the prompts of each sub-key, then over sub-keys', () => {
  const g = groupedMean({ Reasoning: [1, 0], Subject_Aliasing: [1], Empty: [] });
  assert.deepEqual(g.perKey, { Reasoning: 0.5, Subject_Aliasing: 1 });
  assert.equal(g.mean, 0.75); // not the prompt-weighted 2/3
});

test('CounterFact scores compare mean per-token log-probabilities; magnitudes are differences of exp(mean)', () => {
  const ln = Math.log;
  const pairs = [
    { newMean: ln(0.5), trueMean: ln(0.2) },
    { newMean: ln(0.1), trueMean: ln(0.3) },
  ];
  assert.equal(newBeatsTrue(pairs), 0.5);
  close(newMinusTrue(pairs), ((0.5 - 0.2) + (0.1 - 0.3)) / 2);
  assert.equal(trueBeatsNew(pairs), 0.5);
  close(trueMinusNew(pairs), -(((0.5 - 0.2) + (0.1 - 0.3)) / 2));
  // A two-token new object with token probabilities 0.5 and 0.8 (sequence probability 0.4) beats a
  // one-token true object of probability 0.6: ROME compares per-token means, sqrt(0.4) ≈ 0.632 > 0.6.
  const multi = { newMean: (ln(0.5) + ln(0.8)) / 2, trueMean: ln(0.6) };
  assert.equal(newBeatsTrue([multi]), 1);
  close(newMinusTrue([multi]), Math.sqrt(0.4) - 0.6, 1e-12);
  // ties count for neither side (strict comparisons, as summarize.py)
  assert.equal(newBeatsTrue([{ newMean: -1, trueMean: -1 }]), 0);
  assert.equal(trueBeatsNew([{ newMean: -1, trueMean: -1 }]), 0);
});

test('ConvSent: pooled means, es = z_sent · z_topic, KL(pre ‖ post) by hand', () => {
  const ln = Math.log;
  // pooled over tokens, not the mean of per-sentence means ((−1 − 3)/2 + −2)/2 = −2 would be)
  close(pooledMean([[-1, -3], [-2], [-6]]), -3);
  assert.throws(() => pooledMean([[], []]), /no tokens/);
  // edited: same −0.5, other −2.5 → z_sent = σ(2) = 0.880797…; the edit raised same from −1 → z_topic = 1
  const up = sentimentEditSuccess({ sameEdited: -0.5, otherEdited: -2.5, samePre: -1 });
  close(up.zSent!, 1 / (1 + Math.exp(-2)));
  assert.equal(up.zTopic, 1);
  close(up.es!, 0.8807970779778823);
  // the edit lowered same from −0.5 to −1.5: z_topic = e^−1; z_sent = σ(−1.5 + 1) = σ(−0.5)
  const down = sentimentEditSuccess({ sameEdited: -1.5, otherEdited: -1, samePre: -0.5 });
  close(down.zTopic!, Math.exp(-1));
  close(down.zSent!, 0.3775406687981454);
  close(down.es!, 0.3775406687981454 * Math.exp(-1));
  // a missing part leaves es out
  assert.deepEqual(Object.keys(sentimentEditSuccess({ sameEdited: -1, samePre: -1 })), ['zTopic']);
  assert.deepEqual(Object.keys(sentimentEditSuccess({ sameEdited: -1, otherEdited: -2 })), ['zSent']);
  // KL((.2, .5, .3) ‖ (.6, .1, .3)) = .2 ln(1/3) + .5 ln 5; a token the first never predicts adds nothing
  const p = [ln(0.2), ln(0.5), ln(0.3), Number.NEGATIVE_INFINITY];
  const q = [ln(0.6), ln(0.1), ln(0.3), ln(1e-30)];
  close(klDivergence(p, q), 0.2 * ln(1 / 3) + 0.5 * ln(5));
  close(klDivergence(q.slice(0, 3), p.slice(0, 3)), 0.6 * ln(3) + 0.1 * ln(0.2)); // not symmetric
  assert.equal(klDivergence(p, p), 0);
  assert.throws(() => klDivergence(p, q.slice(0, 3)), /KL of distributions over 4 and 3 tokens/);
});

test('harmonic mean (ROME score of ES, PS, NS)', () => {
  close(harmonicMean([1, 0.5]), 2 / 3);
  close(harmonicMean([0.9, 0.6, 0.3]), 3 / (1 / 0.9 + 1 / 0.6 + 1 / 0.3));
  assert.equal(harmonicMean([1, 0]), 0);
});

test('SQuAD normalisation, exact match, token F1, containment', () => {
  assert.equal(normalizeAnswer('The  Eiffel-Tower!'), 'eiffeltower');
  assert.equal(normalizeAnswer('An apple a day'), 'apple day');
  assert.equal(normalizeAnswer('Theatre'), 'theatre'); // articles only as whole words
  assert.equal(normalizeAnswer(' Naïve  café '), 'naïve café');
  assert.equal(exactMatch(' the Eiffeltower.', ['Eiffel-Tower']), 1);
  assert.equal(exactMatch('Paris France', ['Paris']), 0);
  assert.equal(exactMatch('USSR', ['Soviet Union', 'USSR']), 1);
  // pred [cat sat on mat], gold [cat on mat]: P = 3/4, R = 1
  close(tokenF1('the cat sat on the mat', ['a cat on a mat']), (2 * 0.75 * 1) / 1.75);
  // bags of tokens: pred x x y, gold x y y → 2 in common, P = R = 2/3
  close(tokenF1('x x y', ['x y y']), 2 / 3);
  close(tokenF1('x x y', ['z', 'x y y']), 2 / 3); // best over the answers
  assert.equal(tokenF1('', ['the']), 1);
  assert.equal(tokenF1('', ['x']), 0);
  assert.equal(tokenF1('a', ['x']), 0);
});

test('word_tokenize follows NLTK', () => {
  assert.deepEqual(wordTokenize('Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.'), [
    'Good', 'muffins', 'cost', '$', '3.88', 'in', 'New', 'York', '.', 'Please', 'buy', 'me', 'two', 'of', 'them', '.', 'Thanks', '.',
  ]);
  assert.deepEqual(wordTokenize("They'll save and invest more."), ['They', "'ll", 'save', 'and', 'invest', 'more', '.']);
  assert.deepEqual(wordTokenize("hi, my name can't hello,"), ['hi', ',', 'my', 'name', 'ca', "n't", 'hello', ',']);
  assert.deepEqual(wordTokenize('He said "hello" (twice) -- and cannot stop!'), [
    'He', 'said', '``', 'hello', "''", '(', 'twice', ')', '--', 'and', 'can', 'not', 'stop', '!',
  ]);
  // A quote is split off a one-letter word only, and not from a contraction's ('n, 's, 'T of 'Tis).
  assert.deepEqual(treebankTokenize("Rock 'n' roll isn't dead; it's 'alive'."), [
    'Rock', "'n", "'", 'roll', 'is', "n't", 'dead', ';', 'it', "'s", "'alive", "'", '.',
  ]);
  assert.deepEqual(treebankTokenize("'Tis the season."), ["'T", 'is', 'the', 'season', '.']);
  assert.deepEqual(treebankTokenize("He said 'x marks the spot' and left."), ['He', 'said', "'", 'x', 'marks', 'the', 'spot', "'", 'and', 'left', '.']);
  // Python's \b: a letter outside ASCII is part of the word, so "xücannot" is not "cannot".
  assert.deepEqual(treebankTokenize('xücannot gonnaü, cannot'), ['xücannot', 'gonnaü', ',', 'can', 'not']);
  assert.deepEqual(splitSentences('Mr. Smith went to Washington. He saw J. K. Rowling. it was fine'), [
    'Mr. Smith went to Washington.',
    'He saw J. K. Rowling. it was fine',
  ]);
});

test('n-gram entropy: bits of the 2- and 3-gram distributions, weighted [2/3, 4/3] and averaged', () => {
  // bigrams ab, ba, ab → H = −(2/3 log2 2/3 + 1/3 log2 1/3); trigrams aba, bab → 1 bit
  const h2 = -((2 / 3) * Math.log2(2 / 3) + (1 / 3) * Math.log2(1 / 3));
  close(nGramEntropyOf(['a', 'b', 'a', 'b'], 2), h2);
  close(nGramEntropyOf(['a', 'b', 'a', 'b'], 3), 1);
  close(computeNGramEntropy('a b a b'), ((2 / 3) * h2 + (4 / 3) * 1) / 2);
  assert.equal(computeNGramEntropy('word'), 0); // no bigram at all
  assert.equal(computeNGramEntropy('the the the the the'), 0); // one repeated n-gram
  // four distinct tokens: 3 distinct bigrams (log2 3), 2 distinct trigrams (1 bit)
  close(computeNGramEntropy('w x y z'), ((2 / 3) * Math.log2(3) + (4 / 3) * 1) / 2);
  close(nGramEntropy(['a b a b', 'word']), ((2 / 3) * h2 + 4 / 3) / 2 / 2);
});

test('TF-IDF consistency: cosine of idf-weighted, L2-normalised term counts (ROME idf.npy + vocab)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-tfidf-'));
  try {
    writeNpy(path.join(dir, 'idf.npy'), [1, 2, 1], '<f8');
    fs.writeFileSync(path.join(dir, 'tfidf_vocab.json'), JSON.stringify({ cat: 0, dog: 1, sat: 2 }));
    const model = loadTfidf(path.join(dir, 'idf.npy'), path.join(dir, 'tfidf_vocab.json'));
    assert.deepEqual(Array.from(model.idf), [1, 2, 1]);
    // a: cat 1, sat 1 → (1, 0, 1)/√2; b: dog 1·2, sat 2·1 → (0, 2, 2)/√8; cosine = 1/2
    close(tfidfSimilarity('The cat sat', 'the DOG sat sat', model), 0.5, 1e-12);
    close(tfidfSimilarity('cat', 'Cat!', model), 1, 1e-12);
    assert.equal(tfidfSimilarity('nothing known', 'cat', model), 0);
    assert.deepEqual(tfidfTokens("A cat's 2 x-ray"), ['cat', 'ray']); // 2+ word characters
    writeNpy(path.join(dir, 'f4.npy'), [0.5, -2], '<f4');
    assert.deepEqual(Array.from(readNpyVector(path.join(dir, 'f4.npy'))), [0.5, -2]);
    fs.writeFileSync(path.join(dir, 'bad.npy'), 'hello');
    assert.throws(() => readNpyVector(path.join(dir, 'bad.npy')), /not a \.npy array/);
    fs.writeFileSync(path.join(dir, 'v2.json'), JSON.stringify({ cat: 7 }));
    assert.throws(() => loadTfidf(path.join(dir, 'idf.npy'), path.join(dir, 'v2.json')), /outside the 3 idf values/);
    fs.writeFileSync(
      path.join(dir, 'snips.json'),
      JSON.stringify([{ relation_id: 'P1', target_id: 'Q2', samples: [{ name: 'X', text: 'x text' }, { name: 'Y', text: 'y text' }] }]),
    );
    const snips = loadAttributeSnippets(path.join(dir, 'snips.json'));
    assert.deepEqual(snips.get('P1')!.get('Q2')!.map((s) => s.name), ['X', 'Y']);
    // A link to a device would be read until memory runs out.
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero.json'));
    assert.throws(() => loadAttributeSnippets(path.join(dir, 'zero.json')), /zero\.json: is a device, not a file; give the attribute snippets as a JSON file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('perplexity windows score every token but the first once, with the window before it as context', () => {
  const ids = Array.from({ length: 10 }, (_, i) => i);
  const w = perplexityWindows(ids, 4, 2);
  assert.deepEqual(w, [
    { context: [0], target: [1, 2, 3] },
    { context: [2, 3], target: [4, 5] },
    { context: [4, 5], target: [6, 7] },
    { context: [6, 7], target: [8, 9] },
  ]);
  for (const [L, s] of [[5, 4], [5, 1], [3, 2], [16, 4]] as const) {
    const scored = perplexityWindows(ids, L, s).flatMap((x) => x.target);
    assert.deepEqual(scored, ids.slice(1), `maxLength ${L}, stride ${s}`);
  }
  // Without overlap nothing predicts a window's first token (as in the Hugging Face recipe).
  assert.deepEqual(perplexityWindows(ids, 5, 5).flatMap((x) => x.target), [1, 2, 3, 4, 6, 7, 8, 9]);
  assert.throws(() => perplexityWindows(ids, 4, 5), /stride/);
});

test('cost: wall time and peak memory of a call', async () => {
  const { result, cost } = await measureAsync(() => {
    const a = new Float64Array(8_000_000); // 64 MB
    for (let i = 0; i < a.length; i += 512) a[i] = i;
    return a[512];
  });
  assert.equal(result, 512);
  assert.ok(cost.wallSeconds > 0 && cost.wallSeconds < 60);
  assert.ok(cost.peakRssBytes > 64e6, 'the peak holds the 64 MB the call touched');
  const asCase = { editSeconds: cost.wallSeconds, peakRssBytes: cost.peakRssBytes, newPeak: cost.newPeak };
  const m = costMetrics(asCase);
  assert.deepEqual(m.map((x) => [x.name, x.protocol, x.unit]), [['edit_time', 'cost', 'seconds'], ['peak_rss', 'cost', 'bytes']]);
  const r = await measureAsync(async () => {
    await new Promise((res) => setTimeout(res, 20));
    return 'done';
  });
  assert.equal(r.result, 'done');
  assert.ok(r.cost.wallSeconds >= 0.015);
  // Only a call's own peak is a metric: a peak another call reached is left out.
  assert.deepEqual(costMetrics({ ...asCase, newPeak: false }).map((x) => x.name), ['edit_time']);
});

test('cost on Linux: each call gets its own peak, not the largest one before it', { skip: fs.existsSync('/proc/self/clear_refs') ? false : 'no /proc/self/clear_refs (not Linux)' }, () => {
  // In a child with gc() at hand, so that the first call's 400 MB are given back before the second.
  const code = `
    const { measureAsync } = await import(${JSON.stringify(new URL('../src/eval/metrics-cost.js', import.meta.url).href)});
    const touch = (mb) => { const a = new Float64Array(mb * 131072); for (let i = 0; i < a.length; i += 512) a[i] = 1; return a.length; };
    const big = (await measureAsync(() => touch(400))).cost;
    gc(); gc();
    const small = (await measureAsync(() => touch(1))).cost;
    console.log(JSON.stringify({ big, small }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { big, small } = JSON.parse(r.stdout) as { big: Cost; small: Cost };
  assert.ok(big.newPeak && small.newPeak);
  assert.ok(big.peakRssBytes > small.peakRssBytes + 200 * 2 ** 20, `the 400 MB call's peak ${big.peakRssBytes} vs the 1 MB call's ${small.peakRssBytes}`);
});
