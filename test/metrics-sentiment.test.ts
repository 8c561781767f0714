// ConvSent's sentiment metrics (es_sent, z_sent, z_topic, dd) by hand on a fake bigram model whose
// "edit" changes one next-token distribution; the separator rule; the unedited scope of a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { EditPatch, editSession, lowRankDelta } from '../src/patch/index.js';
import { mulberry32, randn } from '../src/tensor/index.js';
import { uneditedScope } from '../src/eval/unedited.js';
import { bigramModel, type Dist } from './fake-bigram.js';
import { sharedDir, weightsHash } from './helpers.js';
import { loadCases } from '../src/data/index.js';
import type { EditCase } from '../src/editors/types.js';
import { localityBaselines, scoreCases } from '../src/eval/metrics-case.js';
import { scoreSentiment, sentimentBaselines, sentimentPair, sentimentSeparator } from '../src/eval/metrics-sentiment.js';
import type { Metric } from '../src/eval/protocols.js';
import { encodeContinued } from '../src/eval/scoring.js';

const WORDS = ['<s>', '</s>', 'Q', 'R', 'good', 'bad', 'meh', ' food', ' the', ' good', ' bad'];
const ID = new Map(WORDS.map((w, i) => [w, i]));
const ln = Math.log;

/** Words with their leading whitespace are tokens; "</s>" is the EOS token wherever it stands. */
function fakeTok(o: { eosText?: boolean } = {}) {
  return {
    bosId: null,
    eosId: 1,
    idToToken: o.eosText === false ? undefined : (id: number) => WORDS[id] ?? null,
    encode: (text: string) =>
      text.split(/(<\/s>)/).filter((p) => p !== '').flatMap((part) =>
        part === '</s>' ? [1] : (part.match(/\s*\S+|\s+$/g) ?? []).map((w) => {
          const id = ID.get(w);
          if (id === undefined) throw new Error(`fake tokenizer: unknown word "${w}"`);
          return id;
        }),
      ),
    decode: (ids: number[]) => ids.map((i) => WORDS[i]).join(''),
  };
}

const bigram = (dist: Dist, tok = fakeTok()) => bigramModel(WORDS, dist, tok);

// After the question's EOS the model says good / bad / meh; the "edit" moves mass from bad to good.
const BEFORE: Dist = {
  '</s>': { good: 0.2, bad: 0.5, meh: 0.3 },
  good: { ' food': 0.5, ' the': 0.5 },
  bad: { ' food': 0.25, ' the': 0.75 },
  meh: { ' food': 0.4, ' the': 0.6 },
};
const AFTER: Dist = { ...BEFORE, '</s>': { good: 0.6, bad: 0.1, meh: 0.3 } };

const outer = { topic: 'R', question: 'R', sentences: ['meh food', 'good'] };
const POSITIVE: EditCase = {
  id: 1, prompt: '{}', subject: 'Q', targetNew: 'good food',
  sentiment: { question: 'Q', same: ['good food', 'good'], other: ['bad food'], outer },
};
const NEGATIVE: EditCase = {
  id: 2, prompt: '{}', subject: 'Q', targetNew: 'bad food',
  sentiment: { question: 'Q', same: ['bad food'], other: ['good food', 'good'], outer },
};

const get = (ms: Metric[], name: string) => {
  const m = ms.find((x) => x.name === name);
  assert.ok(m, `no metric ${name} in ${ms.map((x) => x.name).join(', ')}`);
  return m;
};
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The edited model (AFTER) and a scope that shows the unedited one (BEFORE), counting its calls. */
function editedWithScope() {
  const model = bigram(AFTER);
  const scope = {
    calls: 0,
    run: <T>(fn: () => T): T => {
      scope.calls++;
      model.set(BEFORE);
      try {
        return fn();
      } finally {
        model.set(AFTER);
      }
    },
  };
  return { model, scope };
}

test('the question and its answer: the EOS text between them when the tokenizer reads it back, else a space', () => {
  assert.equal(sentimentSeparator(fakeTok()), '</s>');
  // "Q</s>good food": no space after the separator
  assert.deepEqual(sentimentPair(fakeTok(), 32, 'Q', 'good food'), { context: [ID.get('Q'), 1], target: [ID.get('good'), ID.get(' food')] });
  // a tokenizer that cannot name its EOS: question, space, answer
  assert.equal(sentimentSeparator(fakeTok({ eosText: false })), '');
  assert.deepEqual(sentimentPair(fakeTok({ eosText: false }), 32, 'Q', 'good food'), { context: [ID.get('Q')], target: [ID.get(' good'), ID.get(' food')] });
  // an EOS whose text encodes to something else is no separator either
  assert.equal(sentimentSeparator({ ...fakeTok(), idToToken: () => 'Q' }), '');
  assert.throws(() => encodeContinued(fakeTok(), 'Q', 'R good'), /"R good" does not continue "Q" with a target/);
  // an answer longer than the positions is cut after those that fit (context 2 + 1 read = 3 positions)
  assert.deepEqual(sentimentPair(fakeTok(), 3, 'Q', 'good the food').target, [ID.get('good'), ID.get(' the')]);
});

test('es_sent, z_sent, z_topic and dd by hand: pooled over answer tokens, multi-token answers', () => {
  const pre = bigram(BEFORE);
  const baselines = localityBaselines(pre, [POSITIVE, NEGATIVE]);
  // unedited, target-sentiment tokens pooled: positive "good food", "good" → (ln .2 + ln .5 + ln .2) / 3
  close(baselines[0]!.sentiment!.sameMean, (ln(0.2) + ln(0.5) + ln(0.2)) / 3);
  assert.deepEqual([baselines[0]!.sentiment!.tokens, baselines[1]!.sentiment!.tokens], [3, 2]);
  close(baselines[1]!.sentiment!.sameMean, (ln(0.5) + ln(0.25)) / 2);
  assert.deepEqual(JSON.parse(JSON.stringify(baselines)), baselines, 'the baseline is plain JSON');

  const { model, scope } = editedWithScope();
  const [pos, neg] = scoreCases(model, [POSITIVE, NEGATIVE], { baselines, unedited: scope.run });
  // positive target: same (ln .6 + ln .5 + ln .6)/3, other (ln .1 + ln .25)/2
  const samePos = (ln(0.6) + ln(0.5) + ln(0.6)) / 3;
  const otherPos = (ln(0.1) + ln(0.25)) / 2;
  const p = pos!.metrics;
  close(get(p, 'z_sent').value, sigmoid(samePos - otherPos));
  assert.equal(get(p, 'z_topic').value, 1); // the edit made the target sentiment likelier
  close(get(p, 'es_sent').value, sigmoid(samePos - otherPos));
  assert.equal(get(p, 'es_sent').protocol, 'sentiment-likelihood');
  assert.equal(get(p, 'es_sent').n, 3);
  // negative target: the edit made "bad" less likely: z_topic = exp(same_edited − same_pre) = exp((ln .1 − ln .5)/2) = √.2
  const n = neg!.metrics;
  close(get(n, 'z_topic').value, Math.sqrt(0.2));
  close(get(n, 'z_sent').value, sigmoid(otherPos - samePos));
  close(get(n, 'es_sent').value, Math.sqrt(0.2) * sigmoid(otherPos - samePos));
  // dd: outer "R</s>meh food" reads the distributions after </s> (moved) and after "meh" (not);
  // "R</s>good" after </s>: KL pooled over the 3 positions
  const kl = 0.2 * ln(0.2 / 0.6) + 0.5 * ln(0.5 / 0.1);
  for (const m of [p, n]) {
    close(get(m, 'dd').value, (2 * kl) / 3);
    assert.deepEqual([get(m, 'dd').unit, get(m, 'dd').n, get(m, 'dd').protocol], ['nats', 2, 'sentiment-likelihood']);
  }
  // the token-accuracy metrics are still there, under their own protocol
  assert.equal(get(p, 'rewrite_acc').protocol, 'token-accuracy');
});

test('dd: the unedited rows are held a chunk at a time, the same value whatever the chunk; none without the scope', () => {
  const { model, scope } = editedWithScope();
  const baselines = localityBaselines(bigram(BEFORE), [POSITIVE, NEGATIVE]).map((b) => b.sentiment);
  const whole = scoreSentiment(model, [POSITIVE, NEGATIVE], baselines, { unedited: scope.run });
  assert.equal(scope.calls, 1, 'four outer sentences fit one chunk');
  scope.calls = 0;
  const byRow = scoreSentiment(model, [POSITIVE, NEGATIVE], baselines, { unedited: scope.run, maxKlRows: 1 });
  assert.equal(scope.calls, 4, 'one chunk per sentence (a longer one still goes alone)');
  assert.deepEqual(byRow, whole);
  // the model is left edited
  close(scoreSentiment(model, [POSITIVE], [baselines[0]])[0]!.find((m) => m.name === 'z_topic')!.value, 1);
  // without the scope no dd; without a baseline no z_topic / es_sent, z_sent still
  const bare = scoreSentiment(model, [POSITIVE], [undefined])[0]!;
  assert.deepEqual(bare.map((m) => m.name), ['z_sent']);
  // a case without a probe gets nothing; a baseline of another probe is refused
  assert.deepEqual(scoreSentiment(model, [{ prompt: '{}', subject: 'Q', targetNew: 'good' }], [undefined]), [[]]);
  assert.throws(() => scoreSentiment(model, [NEGATIVE], [baselines[0]]), /sentiment baseline does not match case 2/);
  // sentimentBaselines leaves cases without a probe out
  assert.deepEqual(sentimentBaselines(model, [{ prompt: '{}', subject: 'Q', targetNew: 'good' }]), [undefined]);
});

test('a topic without sentences of the other sentiment: z_topic, no z_sent or es_sent', () => {
  const { model, scope } = editedWithScope();
  const only: EditCase = { ...POSITIVE, sentiment: { question: 'Q', same: ['good'], other: [] } };
  const b = localityBaselines(bigram(BEFORE), [only]);
  const m = scoreCases(model, [only], { baselines: b, unedited: scope.run })[0]!.metrics.filter((x) => x.protocol === 'sentiment-likelihood');
  assert.deepEqual(m.map((x) => x.name), ['z_topic']);
  assert.equal(m[0]!.value, 1);
  assert.equal(scope.calls, 0, 'no outer topic: the unedited model is not needed');
});

test('uneditedScope: the weights the run started from inside, the edited ones bit for bit after (stacked patches, a patch from before the run, a throw)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-unedited-'));
  try {
    const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'm'), gpt2Config(), 3), { noTokenizer: true });
    const rand = mulberry32(5);
    const patch = (layer: number, seed: number) => {
      const w = model.spec.layers[layer]!.down.w;
      const [rows, cols] = model.weight(w).shape as [number, number];
      return EditPatch.create(model, [lowRankDelta(w, randn(rows, rand, 0.1), randn(cols, rand, 0.1), rows, cols)], {
        method: 'test', hparams: { seed }, requests: [{ prompt: '{} is', subject: `S${seed}`, targetNew: ' x' }], timings: { total: 0 },
      });
    };
    const session = editSession(model);
    // the model comes with a patch of its own: "unedited" is the model as the run was given it
    session.apply(patch(0, 1));
    const given = weightsHash(model);
    const scope = uneditedScope(model);
    // the run's edits: one on a tensor the given patch touches, one on another (a sequential stack)
    session.apply(patch(0, 2));
    session.apply(patch(1, 3));
    const edited = weightsHash(model);
    assert.notEqual(edited, given);
    assert.equal(scope(() => weightsHash(model)), given);
    assert.equal(weightsHash(model), edited);
    assert.throws(() => scope(() => { throw new Error('inside'); }), /inside/);
    assert.equal(weightsHash(model), edited, 'restored after a throw too');
    // the session still reverts exactly: its records were never touched
    session.revert();
    session.revert();
    assert.equal(weightsHash(model), given);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

const DATA = sharedDir('data');
const MODELS = sharedDir('models');

test('ConvSent fluency: ngram_entropy of samples that continue the question about the topic (EasyEdit\'s inner_q)', { skip: DATA && MODELS ? false : '../shared/data or ../shared/models is absent' }, async () => {
  const model = await CausalLM.load(path.join(MODELS!, 'stories260K'));
  const [c] = loadCases(path.join(DATA!, 'knowedit', 'benchmark_Convsent_blender_test.json'), { limit: 1 }).cases;
  const s = scoreCases(model, [c!], { fluency: { maxLength: 40 }, sentiment: false })[0]!;
  assert.equal(s.generations!.length, 1);
  assert.ok(s.generations![0]!.startsWith(c!.sentiment!.question), s.generations![0]);
  assert.equal(get(s.metrics, 'ngram_entropy').protocol, 'sampled-generation');
});
