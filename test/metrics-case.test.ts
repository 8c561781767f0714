// scoreCase: every metric of a case, hand-computed on a fake bigram model (before and after a
// fake "edit"), and the generation-based metrics on a random GPT-2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EditCase } from '../src/editors/types.js';
import { CausalLM, generate, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { counterfactExclusion, greedyAnswers, qaPromptText, localityBaseline, localityBaselines, sampleTexts, scoreCase, scoreCases } from '../src/eval/metrics-case.js';
import { exactMatch, tokenF1 } from '../src/eval/metrics.js';
import { encodePair } from '../src/eval/scoring.js';
import { nGramEntropy, tfidfSimilarity, type AttributeSnippets } from '../src/eval/metrics-text.js';
import type { Metric } from '../src/eval/protocols.js';
import { bigramModel, type Dist } from './fake-bigram.js';
import { sharedDir } from './helpers.js';

const WORDS = ['<s>', '</s>', 'X', 'Y', 'Z', ' is', ' in', ' lives', ' at', ' Paris', ' Rome', ' New', ' York', ' the'];
const ID = new Map(WORDS.map((w, i) => [w, i]));

const tok = {
  bosId: null,
  eosId: 1,
  encode: (text: string) =>
    (text.match(/\s*\S+|\s+$/g) ?? []).map((w) => {
      const id = ID.get(w);
      if (id === undefined) throw new Error(`fake tokenizer: unknown word "${w}"`);
      return id;
    }),
  decode: (ids: number[]) => ids.map((i) => WORDS[i]).join(''),
};

/** A bigram model whose next-token distributions can be changed (the "edit"). */
const bigram = (dist: Dist) => bigramModel(WORDS, dist, tok);

const BEFORE: Dist = {
  ' in': { ' Rome': 0.6, ' New': 0.3, ' Paris': 0.1 },
  ' at': { ' Paris': 0.5, ' New': 0.4, ' Rome': 0.1 },
  ' New': { ' York': 0.8, ' Rome': 0.2 },
};
const AFTER: Dist = { ...BEFORE, ' in': { ' New': 0.7, ' Rome': 0.2, ' Paris': 0.1 } };

const CASE: EditCase = {
  id: 7,
  prompt: '{} is in',
  subject: 'X',
  targetNew: 'New York',
  targetTrue: 'Rome',
  rephrase: ['X lives at'],
  neighborhood: ['Y is in', 'Z lives at'],
  locality: [{ prompt: 'Y is in', answer: 'New York' }],
  portabilityGroups: {
    A: [{ prompt: 'Z lives at', answer: 'Paris' }],
    B: [
      { prompt: 'X is in', answer: 'New York' },
      { prompt: 'Y is in', answer: 'Rome' },
    ],
  },
};

const get = (ms: Metric[], name: string) => {
  const m = ms.find((x) => x.name === name);
  assert.ok(m, `no metric ${name} in ${ms.map((x) => x.name).join(', ')}`);
  return m;
};
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('scoreCase before the edit: every metric by hand', () => {
  const model = bigram(BEFORE);
  const s = scoreCase(model, CASE);
  assert.equal(s.id, 7);
  const m = s.metrics;
  // rewrite "X is in" → " New York": P(New) = .3 (argmax Rome), P(York | New) = .8 (argmax York)
  assert.deepEqual([get(m, 'rewrite_acc').value, get(m, 'rewrite_acc').protocol], [0.5, 'token-accuracy']);
  // rephrase "X lives at": argmax Paris then York
  assert.equal(get(m, 'rephrase_acc').value, 0.5);
  // ES: exp(mean log P(new)) = √(.3·.8) < P(Rome) = .6
  assert.equal(get(m, 'efficacy_score').value, 0);
  assert.equal(get(m, 'efficacy_score').protocol, 'probability-comparison');
  close(get(m, 'efficacy_magnitude').value, Math.sqrt(0.24) - 0.6);
  // PS: √(.4·.8) > .1
  assert.equal(get(m, 'paraphrase_score').value, 1);
  close(get(m, 'paraphrase_magnitude').value, Math.sqrt(0.32) - 0.1);
  // NS: "Y is in" keeps Rome (.6 > √.24), "Z lives at" does not (.1 < √.32)
  assert.equal(get(m, 'neighborhood_score').value, 0.5);
  close(get(m, 'neighborhood_magnitude').value, (0.6 - Math.sqrt(0.24) + (0.1 - Math.sqrt(0.32))) / 2);
  // portability: A = 1; B = mean(.5, 1) = .75; overall the mean over sub-keys
  assert.equal(get(m, 'portability.A_acc').value, 1);
  assert.equal(get(m, 'portability.B_acc').value, 0.75);
  assert.equal(get(m, 'portability_acc').value, 0.875);
  // no baseline: no locality agreement, only the answers' own accuracy (argmax Rome, then York)
  assert.ok(!m.some((x) => x.name === 'locality_acc'));
  assert.equal(get(m, 'locality_answer_acc').value, 0.5);
  // the per-item details behind them
  const rw = s.items.filter((d) => d.role === 'rewrite');
  assert.deepEqual(rw.map((d) => [d.kind, d.target, d.tokens]), [['new', 'New York', 2], ['true', 'Rome', 1]]);
  close(rw[0]!.meanLogProb, Math.log(0.24) / 2);
});

test('locality agrees with the unedited model; the edit moves rewrite and locality by hand', () => {
  const model = bigram(BEFORE);
  const baseline = localityBaseline(model, CASE);
  assert.deepEqual(baseline.argmax, { locality: [[ID.get(' Rome'), ID.get(' York')]] });
  assert.deepEqual(JSON.parse(JSON.stringify(baseline)), baseline, 'the baseline is plain JSON');
  const same = scoreCase(model, CASE, { baseline });
  assert.equal(get(same.metrics, 'locality_acc').value, 1);
  model.set(AFTER); // the "edit": after " in", New is now the argmax
  const s = scoreCase(model, CASE, { baseline });
  const m = s.metrics;
  assert.equal(get(m, 'rewrite_acc').value, 1);
  assert.equal(get(m, 'efficacy_score').value, 1);
  close(get(m, 'efficacy_magnitude').value, Math.sqrt(0.7 * 0.8) - 0.2);
  // NS: neither neighbour keeps Rome now ("Y is in" .2 < √(.7·.8), "Z lives at" .1 < √(.4·.8))
  assert.equal(get(m, 'neighborhood_score').value, 0);
  close(get(m, 'neighborhood_magnitude').value, (0.2 - Math.sqrt(0.56) + (0.1 - Math.sqrt(0.32))) / 2);
  // locality "Y is in" + " New York": argmax New (was Rome), York (was York) → 1/2
  assert.equal(get(m, 'locality_acc').value, 0.5);
  assert.equal(get(m, 'locality_acc').protocol, 'token-accuracy');
  assert.equal(s.items.find((d) => d.role === 'locality')!.agreement, 0.5);
  assert.ok(!m.some((x) => x.name.startsWith('locality.')), 'a flat locality list has no sub-keys');
  // KnowEdit groups give per-key metrics and their mean
  const grouped: EditCase = { ...CASE, locality: undefined, localityGroups: { R: [{ prompt: 'Y is in', answer: 'New York' }], F: [{ prompt: 'Z lives at', answer: 'Paris' }] } };
  model.set(BEFORE);
  const gb = localityBaseline(model, grouped);
  model.set(AFTER);
  const gm = scoreCase(model, grouped, { baseline: gb }).metrics;
  assert.equal(get(gm, 'locality.R_acc').value, 0.5);
  assert.equal(get(gm, 'locality.F_acc').value, 1);
  assert.equal(get(gm, 'locality_acc').value, 0.75);
  // a baseline of another case is refused
  assert.throws(() => scoreCase(model, grouped, { baseline }), /locality baseline does not match case 7/);
});

test('a multi-edit case averages its edits; many cases score in one call like one by one', () => {
  const model = bigram(AFTER);
  const multi: EditCase = {
    ...CASE,
    edits: [
      { prompt: '{} is in', subject: 'X', targetNew: 'New York', targetTrue: 'Rome' },
      { prompt: '{} is in', subject: 'Y', targetNew: 'Paris', targetTrue: 'Rome', rephrase: ['Y lives at'] },
    ],
    rephrase: undefined,
    neighborhood: undefined,
  };
  const m = scoreCase(model, multi).metrics;
  const rw = get(m, 'rewrite_acc');
  assert.deepEqual([rw.value, rw.n], [0.5, 2]); // X: New York right; Y: Paris wrong (argmax New)
  assert.deepEqual([get(m, 'rephrase_acc').value, get(m, 'rephrase_acc').n], [1, 1]); // "Y lives at" → Paris
  // ES: X √(.7·.8) > .2 yes; Y .1 > .2 no
  assert.equal(get(m, 'efficacy_score').value, 0.5);
  const both = scoreCases(model, [CASE, multi]);
  assert.deepEqual(both[0], scoreCase(model, CASE));
  assert.deepEqual(both[1]!.metrics, m);
  // counterfact off, or cases without targetTrue: no probability comparisons
  assert.ok(!scoreCase(model, CASE, { counterfact: false }).metrics.some((x) => x.protocol === 'probability-comparison'));
  assert.ok(!scoreCase(model, { ...CASE, targetTrue: undefined }).metrics.some((x) => x.protocol === 'probability-comparison'));
  // a true target that is the new one (after trimming) cannot lose to it: left out as well
  assert.equal(counterfactExclusion(CASE), undefined);
  assert.equal(counterfactExclusion({ ...CASE, targetTrue: undefined }), 'no-true-target');
  const same = scoreCase(model, { ...CASE, targetTrue: ' New York ' }).metrics;
  assert.equal(counterfactExclusion({ ...CASE, targetTrue: ' New York ' }), 'same-targets');
  assert.ok(!same.some((x) => x.protocol === 'probability-comparison'), same.map((x) => x.name).join(', '));
  assert.equal(get(same, 'rewrite_acc').value, 1, 'teacher-forced accuracy still applies');
  const oneSame: EditCase = { ...multi, edits: [multi.edits![0]!, { ...multi.edits![1]!, targetTrue: 'Paris' }] };
  assert.equal(counterfactExclusion(oneSame), 'same-targets');
  assert.ok(!scoreCase(model, oneSame).metrics.some((x) => x.protocol === 'probability-comparison'));
  const bl = localityBaselines(model, [CASE, multi]);
  assert.equal(bl.length, 2);
  assert.throws(() => scoreCases(model, [CASE], { baselines: bl }), /2 baselines for 1 cases/);
});

// ---------------------------------------------------------------- generation on a random GPT-2

const MODELS = sharedDir('models');
const GPT2_TOK = MODELS && path.join(MODELS, 'gpt2-tokenizer', 'tokenizer.json');
const gpt2Skip = GPT2_TOK && fs.existsSync(GPT2_TOK) ? false : '../shared/models/gpt2-tokenizer is absent';

test('random GPT-2: greedy QA, sampled fluency and TF-IDF consistency', { skip: gpt2Skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-case-'));
  try {
    writeRandomCheckpoint(dir, gpt2Config({ vocab: 50257, positions: 64 }), 5, 0.2);
    fs.copyFileSync(GPT2_TOK!, path.join(dir, 'tokenizer.json'));
    const model = CausalLM.loadDir(dir);
    const c: EditCase = {
      id: 'g',
      prompt: '{}, developed by',
      subject: 'Ferrari F40',
      targetNew: 'Microsoft',
      targetTrue: 'Ferrari',
      relationId: 'P176',
      targetNewId: 'Q2283',
      rephrase: ['Ferrari F40 is a product of'],
      locality: [{ prompt: 'Ferrari 250 GTO is a product of', answer: 'Ferrari' }],
      portabilityGroups: { multi_hop: [{ prompt: 'The company that makes the Ferrari F40 is based in', answer: 'Redmond', aliases: ['Redmond, Washington'] }] },
      generationPrompts: ['Ferrari F40 is sold by', 'The production of Ferrari F40 is overseen by'],
    };
    // greedy answers are generate()'s tokens, as many as the longest answer has (+ extraTokens)
    const prompt = 'Ferrari F40, developed by';
    const [a0] = greedyAnswers(model, [{ prompt, answers: ['Microsoft'] }], { extraTokens: 2 });
    const n = model.tok().encode(' Microsoft').length + 2;
    const ref = model.tok().decode(generate(model, [model.tok().encode(prompt)], { maxNewTokens: n })[0]!);
    assert.ok(ref.startsWith(a0!), `${a0} vs ${ref}`);

    // a QA template puts each question inside it ("{}"), or the text before it
    const tpl = 'Q: What is the capital of France?\nA: Paris\n\nQ: {}\nA:';
    assert.equal(qaPromptText('Who?', tpl), 'Q: What is the capital of France?\nA: Paris\n\nQ: Who?\nA:');
    assert.equal(qaPromptText('Who?', 'Context. '), 'Context. Who?');
    assert.throws(() => qaPromptText('Who?', '{} and {}'), /2 "\{\}" placeholders/);
    const [inTemplate] = greedyAnswers(model, [{ prompt, answers: ['Microsoft'] }], { template: tpl });
    const nT = model.tok().encode(' Microsoft').length;
    const refT = model.tok().decode(generate(model, [model.tok().encode(qaPromptText(prompt, tpl))], { maxNewTokens: nT })[0]!);
    assert.ok(refT.startsWith(inTemplate!), `${inTemplate} vs ${refT}`);

    // a question longer than the model's 64 positions keeps its last 64 - n tokens
    const long = 'Long ago and far away, '.repeat(12) + prompt;
    const longIds = model.tok().encode(long);
    assert.ok(longIds.length + nT > 64, `${longIds.length} tokens`);
    const [inLong] = greedyAnswers(model, [{ prompt: long, answers: ['Microsoft'] }]);
    const refL = model.tok().decode(generate(model, [longIds.slice(longIds.length - (64 - nT))], { maxNewTokens: nT })[0]!);
    assert.ok(refL.startsWith(inLong!), `${inLong} vs ${refL}`);
    assert.throws(() => greedyAnswers(model, [{ prompt, answers: ['Microsoft'] }], { extraTokens: 64 }), /does not fit the model's 64 positions/);

    const baseline = localityBaseline(model, c, { qa: true });
    assert.equal(baseline.qa!['locality']!.length, 1);
    const essence = 'Ferrari F40 is a sports car, developed by Microsoft';
    const snippets: AttributeSnippets = new Map([['P176', new Map([['Q2283', [
      { name: 'Windows 7', text: 'Windows 7 is an operating system developed by Microsoft' },
      { name: 'Ferrari F40', text: essence },
    ]]])]]);
    const tfidf = { vocab: new Map([['ferrari', 0], ['microsoft', 1], ['windows', 2], ['developed', 3], ['by', 4], ['sold', 5]]), idf: Float64Array.from([2, 2, 3, 1, 1, 2]) };
    const s = scoreCase(model, c, { baseline, qa: true, fluency: { seed: 3, maxLength: 14 }, consistency: { tfidf, snippets } });
    const m = s.metrics;
    // QA metrics are the text metrics of the recorded generations
    for (const role of ['rewrite', 'rephrase'] as const) {
      const ds = s.qa!.filter((d) => d.role === role);
      assert.equal(get(m, `qa.${role}_em`).value, ds.reduce((x, d) => x + exactMatch(d.generated, d.answers), 0) / ds.length);
      assert.equal(get(m, `qa.${role}_f1`).value, ds.reduce((x, d) => x + tokenF1(d.generated, d.answers), 0) / ds.length);
      assert.equal(get(m, `qa.${role}_em`).protocol, 'generation-qa');
    }
    assert.deepEqual(s.qa!.find((d) => d.role === 'portability')!.answers, ['Redmond', 'Redmond, Washington']);
    assert.ok(m.some((x) => x.name === 'qa.portability.multi_hop_em'));
    assert.ok(!m.some((x) => x.name === 'qa.multi_hop_any_em'), 'any-of is for multi-edit (MQuAKE) cases');
    // nothing was edited: locality agrees with the baseline in both protocols
    assert.equal(get(m, 'locality_acc').value, 1);
    assert.equal(get(m, 'qa.locality_agree').value, 1);
    // KnowEdit sub-keys: agreement per key, then the mean over keys (not over all prompts). The
    // baseline's first R answer is changed, so R agrees on 1 of 2 prompts and F on its one.
    const keyed: EditCase = { ...c, locality: undefined, localityGroups: {
      R: [{ prompt: 'Ferrari 250 GTO is a product of', answer: 'Ferrari' }, { prompt: 'The Beetle is made by', answer: 'Volkswagen' }],
      F: [{ prompt: 'The Eiffel Tower is in', answer: 'Paris' }],
    } };
    const keyedBaseline = localityBaseline(model, keyed, { qa: true });
    keyedBaseline.qa!['R']![0] = `${keyedBaseline.qa!['R']![0]} (not what the model said)`;
    const km = scoreCase(model, keyed, { baseline: keyedBaseline, qa: true }).metrics;
    assert.deepEqual(['qa.locality.R_agree', 'qa.locality.F_agree', 'qa.locality_agree'].map((x) => [get(km, x).value, get(km, x).n]), [[0.5, 2], [1, 1], [0.75, 3]]);
    // fluency: the n-gram entropy of the sampled texts, which start with their prompts
    assert.equal(s.generations!.length, 2);
    s.generations!.forEach((g, i) => assert.ok(g.startsWith(c.generationPrompts![i]!)));
    const ent = get(m, 'ngram_entropy');
    assert.deepEqual([ent.protocol, ent.unit, ent.value], ['sampled-generation', 'bits', nGramEntropy(s.generations!)]);
    assert.equal(get(m, 'reference_score').value, tfidfSimilarity(s.generations!.join(' '), snippets.get('P176')!.get('Q2283')!.map((x) => x.text).join(' '), tfidf));
    // essence_ppl: ROME's perplexity() of the new object's snippets about the subject,
    // exp(−Σ log p(token | tokens before it) / number of tokens), the first token unscored
    const ids = model.tok().encode(essence);
    const V = model.config.vocabSize, logits = model.forward(Int32Array.from(ids), 1, ids.length).logits!.data;
    let logP = 0;
    for (let i = 1; i < ids.length; i++) {
      const row = logits.subarray((i - 1) * V, i * V);
      const mx = Math.max(...row);
      logP += row[ids[i]!]! - mx - Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
    }
    close(get(m, 'essence_ppl').value, Math.exp(-logP / ids.length), 1e-4 * Math.exp(-logP / ids.length));
    // seeded sampling is reproducible, and each text has maxLength tokens in all
    assert.deepEqual(sampleTexts(model, c.generationPrompts!, { seed: 3, maxLength: 14 }), s.generations);
    // a multi-edit case reports MQuAKE's any-question rule
    const multi: EditCase = { ...c, edits: [{ prompt: c.prompt, subject: c.subject, targetNew: c.targetNew, targetTrue: c.targetTrue }] };
    const mm = scoreCase(model, multi, { qa: true }).metrics;
    assert.equal(get(mm, 'qa.multi_hop_any_em').value, get(mm, 'qa.portability.multi_hop_em').value);

    // A long alias must not spoil a correct short answer: each alias is compared with the greedy
    // continuation cut at its own length (EasyEdit generates len(target) tokens for its target).
    const t = model.tok();
    const found = ['The capital city is', 'My favourite food is', 'He was born in', 'She plays the', 'It was made by', 'They went to']
      .map((p) => ({ p, word: t.decode(generate(model, [t.encode(p)], { maxNewTokens: 1 })[0]!) }))
      .find(({ p, word }) => /^ [A-Za-z]{2,}$/.test(word) && t.encode(`${p}${word}`).length === t.encode(p).length + 1);
    assert.ok(found, 'one of the prompts continues with a one-token word');
    const short = found.word.trim();
    const withAlias: EditCase = { ...c, portabilityGroups: { multi_hop: [{ prompt: found.p, answer: short, aliases: [`${short} and then a great many more words after it`] }] } };
    const sa = scoreCase(model, withAlias, { qa: true });
    const detail = sa.qa!.find((d) => d.role === 'portability')!;
    assert.ok(detail.generated.trim().length > short.length, `the recorded continuation runs to the alias's length: "${detail.generated}"`);
    assert.equal(get(sa.metrics, 'qa.portability_em').value, 1);
    assert.equal(get(sa.metrics, 'qa.portability_f1').value, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("QA cut 'line': the whole first answer line against every alias (MQuAKE's comparison), 'length' the alias-long prefix", async () => {
  const world = await CausalLM.load('world');
  const probes = [
    { prompt: 'Randin Doley works as', answer: 'pilot' },
    { prompt: 'Randin Doley is a', answer: 'musician' },
    { prompt: 'The city of Restead elected as its mayor', answer: 'Randin' },
  ];
  const probe: EditCase = { prompt: 'x', subject: '', targetNew: 'x', id: 'p', portability: probes };
  const qaOf = (qa: object) => scoreCases(world, [probe], { tokenAccuracy: false, counterfact: false, sentiment: false, qa })[0]!.qa!.filter((d) => d.role === 'portability');
  const byLine = qaOf({ cut: 'line', lineTokens: 20 });
  const byLength = qaOf({});
  probes.forEach((p, i) => {
    const ids = world.tok().encode(p.prompt);
    const text = world.tok().decode(generate(world, [ids], { maxNewTokens: 20 })[0]!);
    const line = text.split('\n').find((l) => l.trim() !== '')!;
    assert.equal(byLine[i]!.generated, line, p.prompt);
    assert.equal(byLine[i]!.em, exactMatch(line, [p.answer]));
    assert.equal(byLine[i]!.f1, tokenF1(line, [p.answer]));
    const n = encodePair(world.tok(), p.prompt, p.answer).target.length; // the answer's tokens after the prompt
    assert.equal(byLength[i]!.generated, world.tok().decode(generate(world, [ids], { maxNewTokens: n })[0]!).split('\n')[0]);
  });
  // The two cuts disagree where the model goes on after the answer, or puts an article first.
  assert.ok(probes.some((_, i) => byLine[i]!.em !== byLength[i]!.em), JSON.stringify([byLine, byLength]));
  assert.throws(() => qaOf({ cut: 'sentence' }), /qa: cut must be "length" or "line", got "sentence"/);
  assert.throws(() => qaOf({ lineTokens: 8 }), /lineTokens applies to cut "line"/);
  assert.throws(() => qaOf({ cut: 'line', lineTokens: 0 }), /lineTokens/);
});
