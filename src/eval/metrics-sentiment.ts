/**
 * KnowEdit ConvSent's own metrics (SERAC's sentiment editing, Mitchell et al. 2022), protocol
 * 'sentiment-likelihood', for cases that carry a SentimentProbe (src/data/knowedit.ts):
 * - es_sent = z_sent · z_topic (KnowEdit's "Edit Succ."), from the pooled mean log-probability of
 *   the answer tokens of the topic's sentences with the target sentiment (same) and with the other
 *   (other), each sentence scored after the question about the topic: z_sent =
 *   σ(same_edited − other_edited), z_topic = min(1, exp(same_edited − same_unedited)); see
 *   metrics.ts `sentimentEditSuccess`. same_unedited is one number per case, measured before any
 *   edit (the case's baseline).
 * - dd (KnowEdit's "Locality", lower is better): KL(unedited ‖ edited) of the next-token
 *   distribution over the whole vocabulary at every position that predicts an answer token of the
 *   outer topic's sentences, averaged over all those positions pooled (nats per token).
 * Fluency is the sampled-generation ngram_entropy of the question about the topic (the loader
 * makes it the case's generation prompt; `fluency` option of scoreCases).
 *
 * The text scored is "question<sep>sentence": sep is the model's EOS token (GPT-2's
 * <|endoftext|>, Llama's </s>), with no space on either side (the special token separates by
 * itself; a space before it is a token of its own in both tokenizers, one after it in Llama's, as
 * its "▁" before "▁I"); a tokenizer without an EOS
 * token that it reads back from text gets the question and the sentence joined by one space, as
 * every teacher-forced metric is (scoring.ts). Each answer token is scored given everything
 * before it. A sentence longer than the model's positions is cut after the tokens that fit
 * (EasyEdit cuts at 128 tokens).
 *
 * dd needs the unedited model's full distributions, vocabSize floats per position (measured on
 * the test file: ~370 outer answer positions per case with GPT-2's tokenizer, 70 MiB per case at
 * its vocabulary, 55 GiB for the 800 cases), too many to keep for a run.
 * So they are computed when the edited model is scored: `unedited(fn)` runs fn on the unedited
 * weights and puts the edited ones back (the runner's uneditedScope: exact, bit for bit), for
 * outer sentences in chunks of at most maxKlRows positions held at a time. Without `unedited` dd
 * is left out.
 *
 * What EasyEdit (easyeditor/evaluate/personality_evaluate.py `compute_sent_metric`,
 * evaluate_utils.py `es`, `kl_loc_loss`) does differently, and Amend does not reproduce:
 * - it gathers each label at the position of the logits that read it (no shift by one), so its
 *   "log-probability" of a token is that of the same token following itself;
 * - its answer mask starts at the "</s>" separator (so the separator's own position counts, and
 *   for dd the position after the last answer token does), does not leave out padding, and is one
 *   Python list shared by every row of the batch, so all rows are cut at the longest question;
 * - it runs for Llama models only and writes "question </s> sentence" (a space either side);
 * - it draws a question template per sentence (Amend: one per topic, by a fixed hash);
 * - in the version read, the "unedited" model it passes is self.model, which an in-place editor
 *   has already changed, so its z_topic is 1 and its dd 0 for such editors.
 */
import { AmendError } from '../errors.js';
import type { EditCase, SentimentProbe } from '../editors/types.js';
import { klDivergence, pooledMean, sentimentEditSuccess } from './metrics.js';
import { metric, type Metric } from './protocols.js';
import { encodeContinued, encodePair, scoreEncoded, type EncodedPair, type Encoder, type ScoringModel, type ScoringOptions } from './scoring.js';

/** Runs fn on the unedited model and gives the model back as it was (see uneditedScope in unedited.ts). */
export type UneditedScope = <T>(fn: () => T) => T;

/** What the unedited model gave on a case's target-sentiment sentences (JSON, in the case's baseline). */
export interface SentimentBaseline {
  /** The question and number of sentences scored, to check the baseline belongs to the case. */
  question: string;
  sentences: number;
  /** Pooled mean log-probability per answer token (nats), and how many tokens it pools. */
  sameMean: number;
  tokens: number;
}

export interface SentimentOptions extends ScoringOptions {
  unedited?: UneditedScope;
  /** Most unedited-model rows (each vocabSize floats) held at a time for dd; default 2^26 floats (256 MB) / vocabSize. */
  maxKlRows?: number;
}

type SentimentEncoder = Encoder & { idToToken?(id: number): string | null };

/** Separators found per tokenizer: every sentence of a run asks, and the answer needs an encode. */
const separators = new WeakMap<SentimentEncoder, string>();

/** The text between a question and its answer: the EOS token's text when the tokenizer reads it back as EOS, else ''. */
export function sentimentSeparator(tok: SentimentEncoder): string {
  const known = separators.get(tok);
  if (known !== undefined) return known;
  const eos = tok.eosId;
  const text = eos === null ? null : tok.idToToken?.(eos) ?? null;
  const ids = text ? tok.encode(text, { addSpecialTokens: false }) : [];
  const sep = text && ids.length === 1 && ids[0] === eos ? text : '';
  separators.set(tok, sep);
  return sep;
}

/** Context and answer tokens of one sentence after its question, the answer cut to the model's positions. */
export function sentimentPair(tok: SentimentEncoder, maxPositions: number, question: string, sentence: string): EncodedPair {
  const sep = sentimentSeparator(tok);
  // After the EOS token the sentence follows directly (see the file comment).
  const p = sep ? encodeContinued(tok, question + sep, question + sep + sentence) : encodePair(tok, question, sentence);
  // scoreEncoded reads context + target − 1 tokens; a context too long on its own is cut from the left there.
  const room = Math.max(1, maxPositions + 1 - p.context.length);
  return p.target.length > room ? { context: p.context, target: p.target.slice(0, room) } : p;
}

function checkProbe(c: EditCase): SentimentProbe {
  const s = c.sentiment!;
  if (!s.question || !Array.isArray(s.same) || s.same.length === 0) {
    throw new AmendError(`case ${c.id ?? ''}: its sentiment probe needs a question and at least one sentence with the target sentiment`);
  }
  return s;
}

/** The unedited model's pooled mean on each case's target-sentiment sentences (undefined for cases without a probe). */
export function sentimentBaselines(model: ScoringModel, cases: readonly EditCase[], opts: ScoringOptions = {}): (SentimentBaseline | undefined)[] {
  const tok = model.tok();
  const maxPos = model.config.maxPositions;
  const pairs: EncodedPair[] = [];
  const owner: number[] = [];
  cases.forEach((c, i) => {
    if (!c.sentiment) return;
    const s = checkProbe(c);
    for (const x of s.same) {
      pairs.push(sentimentPair(tok, maxPos, s.question, x));
      owner.push(i);
    }
  });
  const scores = pairs.length ? scoreEncoded(model, pairs, opts) : [];
  const per: number[][][] = cases.map(() => []);
  scores.forEach((sc, k) => per[owner[k]!]!.push(sc.logProbs));
  return cases.map((c, i) => {
    if (!c.sentiment) return undefined;
    const lps = per[i]!;
    return { question: c.sentiment.question, sentences: lps.length, sameMean: pooledMean(lps), tokens: lps.reduce((a, l) => a + l.length, 0) };
  });
}

/** Throws when a baseline was computed for another probe. */
export function checkSentimentBaseline(c: EditCase, b: SentimentBaseline): void {
  if (!c.sentiment || b.question !== c.sentiment.question || b.sentences !== c.sentiment.same.length) {
    throw new AmendError(`sentiment baseline does not match case ${c.id ?? ''}: compute it with localityBaselines on the same case before editing`);
  }
}

/**
 * The sentiment metrics of each case (empty for cases without a probe); see the file comment.
 * z_topic and es_sent need the case's baseline, dd needs `unedited`; what cannot be computed is left out.
 */
export function scoreSentiment(
  model: ScoringModel,
  cases: readonly EditCase[],
  baselines: readonly (SentimentBaseline | undefined)[],
  opts: SentimentOptions = {},
): Metric[][] {
  const { unedited, maxKlRows, ...scoring } = opts;
  const es = editSuccessMetrics(model, cases, baselines, scoring);
  if (!unedited) return es;
  const dd = outerTopicDrift(model, cases, unedited, maxKlRows, scoring);
  return es.map((ms, i) => (dd[i] ? [...ms, dd[i]!] : ms));
}

/** es_sent, z_sent and z_topic of each case: the topic's sentences on the edited model. */
function editSuccessMetrics(model: ScoringModel, cases: readonly EditCase[], baselines: readonly (SentimentBaseline | undefined)[], scoring: ScoringOptions): Metric[][] {
  const tok = model.tok();
  const maxPos = model.config.maxPositions;
  const out: Metric[][] = cases.map(() => []);
  const inner: { caseIndex: number; same: boolean }[] = [];
  const innerPairs: EncodedPair[] = [];
  cases.forEach((c, i) => {
    if (!c.sentiment) return;
    const s = checkProbe(c);
    const b = baselines[i];
    if (b) checkSentimentBaseline(c, b);
    for (const [list, same] of [[s.same, true], [s.other ?? [], false]] as const) {
      for (const x of list) {
        inner.push({ caseIndex: i, same });
        innerPairs.push(sentimentPair(tok, maxPos, s.question, x));
      }
    }
  });
  const innerScores = innerPairs.length ? scoreEncoded(model, innerPairs, scoring) : [];
  const same: number[][][] = cases.map(() => []);
  const other: number[][][] = cases.map(() => []);
  innerScores.forEach((sc, k) => (inner[k]!.same ? same : other)[inner[k]!.caseIndex]!.push(sc.logProbs));
  cases.forEach((c, i) => {
    if (!c.sentiment) return;
    const sameEdited = pooledMean(same[i]!);
    const otherEdited = other[i]!.length ? pooledMean(other[i]!) : undefined;
    const nSame = same[i]!.length, nAll = nSame + other[i]!.length;
    const r = sentimentEditSuccess({ sameEdited, otherEdited, samePre: baselines[i]?.sameMean });
    if (r.es !== undefined) out[i]!.push(metric('es_sent', 'sentiment-likelihood', r.es, { n: nAll }));
    if (r.zSent !== undefined) out[i]!.push(metric('z_sent', 'sentiment-likelihood', r.zSent, { n: nAll }));
    if (r.zTopic !== undefined) out[i]!.push(metric('z_topic', 'sentiment-likelihood', r.zTopic, { n: nSame }));
  });
  return out;
}

/**
 * dd of each case with an outer topic (undefined for the others): KL(unedited ‖ edited) on the
 * outer topic's answer positions, the unedited distributions computed through `unedited` in
 * chunks of at most `maxKlRows` vocabulary-sized rows.
 */
function outerTopicDrift(model: ScoringModel, cases: readonly EditCase[], unedited: UneditedScope, maxKlRows: number | undefined, scoring: ScoringOptions): (Metric | undefined)[] {
  const tok = model.tok();
  const maxPos = model.config.maxPositions;
  const V = model.config.vocabSize;
  const budget = maxKlRows ?? Math.max(1, Math.floor(2 ** 26 / V));
  if (!(Number.isInteger(budget) && budget >= 1)) throw new AmendError('sentiment: maxKlRows must be a positive integer');
  const outer: { caseIndex: number; pair: EncodedPair }[] = [];
  cases.forEach((c, i) => {
    const o = c.sentiment?.outer;
    if (!o) return;
    for (const x of o.sentences) outer.push({ caseIndex: i, pair: sentimentPair(tok, maxPos, o.question, x) });
  });
  const klSum = new Float64Array(cases.length);
  const positions = new Float64Array(cases.length);
  // Chunks of whole sentences holding at most `budget` rows (a longer sentence alone).
  for (let start = 0; start < outer.length; ) {
    let end = start, rows = 0;
    while (end < outer.length && (end === start || rows + outer[end]!.pair.target.length <= budget)) rows += outer[end++]!.pair.target.length;
    const chunk = outer.slice(start, end);
    const offset: number[] = [];
    let at = 0;
    for (const x of chunk) {
      offset.push(at);
      at += x.pair.target.length;
    }
    const pre = new Float32Array(rows * V);
    const pairs = chunk.map((x) => x.pair);
    // The unedited model is the weights alone: the scoring hooks (adapter edits) are the edit.
    unedited(() => scoreEncoded(model, pairs, { ...scoring, hooks: undefined }, (k, j, row) => pre.set(row, (offset[k]! + j) * V)));
    scoreEncoded(model, pairs, scoring, (k, j, row) => {
      const r = offset[k]! + j;
      const ci = chunk[k]!.caseIndex;
      klSum[ci] += klDivergence(pre.subarray(r * V, (r + 1) * V), row);
      positions[ci]++;
    });
    start = end;
  }
  return cases.map((c, i) => (positions[i]! > 0 ? metric('dd', 'sentiment-likelihood', klSum[i]! / positions[i]!, { n: c.sentiment!.outer!.sentences.length, unit: 'nats' }) : undefined));
}
