/**
 * The metric definitions, as pure functions over numbers and strings (so each is testable with
 * hand-made values). Sources:
 * - KnowEdit / EasyEdit: easyeditor/evaluate/evaluate_utils.py `test_prediction_acc` (token
 *   accuracy), editors/editor.py `finalize_locality_metrics` (locality = mean(pre == post) over
 *   the answer tokens), examples/run_knowedit_llama2.py `eval` (per case: mean over prompts of a
 *   sub-key, then mean over sub-keys).
 * - CounterFact / ROME: experiments/py/eval_utils_counterfact.py `test_batch_prediction` (mean NLL
 *   per target token of target_new and target_true), experiments/summarize.py (success =
 *   NLL_true > NLL_new, magnitude = exp(-NLL_new) - exp(-NLL_true); neighbourhood the other way
 *   round; score = harmonic mean of the mean ES, PS, NS, as kmeng01/rome's and kmeng01/memit's
 *   summarize.py compute it, used by summary.ts; rome's took PS and NS only before August 2022).
 * - KnowEdit ConvSent / SERAC sentiment editing (Mitchell et al. 2022, ES = z_sent · z_topic):
 *   EasyEdit easyeditor/evaluate/evaluate_utils.py `es`, `kl_loc_loss`, `masked_mean` (see
 *   metrics-sentiment.ts for what Amend scores differently).
 * - QA: SQuAD's exact match and token F1 after its normalize_answer. EasyEdit's exact match
 *   (evaluate_utils.py `exact_match_score`) normalises the same way, but its generations stop at
 *   ".", a line break or EOS; its F1 (`F1`) is scikit-learn's macro F1 over token ids, another
 *   number than this one.
 */
import { AmendError } from '../errors.js';

// ---------------------------------------------------------------- KnowEdit (token accuracy)

/**
 * Locality of one prompt: the fraction of answer positions where the edited model's argmax equals
 * the unedited model's (teacher-forced on the same answer tokens).
 */
export function agreement(before: readonly number[], after: readonly number[]): number {
  if (before.length !== after.length) {
    throw new AmendError(`locality: the baseline has ${before.length} answer tokens but the edited model was scored on ${after.length} — was the baseline computed for another case or tokenizer?`);
  }
  if (before.length === 0) throw new AmendError('locality of an empty answer');
  let same = 0;
  for (let i = 0; i < before.length; i++) if (before[i] === after[i]) same++;
  return same / before.length;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/**
 * KnowEdit's per-case aggregation of a portability / locality section: the mean over the prompts
 * of each sub-key, then the mean over sub-keys (run_knowedit_llama2.py `eval`). Empty keys are
 * left out.
 */
export function groupedMean(groups: Readonly<Record<string, readonly number[]>>): { perKey: Record<string, number>; mean: number } {
  const perKey: Record<string, number> = {};
  for (const [k, v] of Object.entries(groups)) if (v.length > 0) perKey[k] = mean(v);
  return { perKey, mean: mean(Object.values(perKey)) };
}

// ---------------------------------------------------------------- CounterFact (probabilities)

/**
 * One prompt of a CounterFact comparison: the mean log-probability per target token of the new
 * and of the true object (ROME stores their negatives, mean NLLs).
 */
export interface NewVsTrue {
  newMean: number;
  trueMean: number;
}

/**
 * Efficacy / paraphrase score: fraction of prompts where the new object is more likely than the
 * true one, comparing mean per-token log-probabilities (summarize.py: target_true NLL > target_new NLL).
 */
export function newBeatsTrue(pairs: readonly NewVsTrue[]): number {
  return mean(pairs.map((p) => (p.newMean > p.trueMean ? 1 : 0)));
}

/** Efficacy / paraphrase magnitude: mean of exp(mean log P(new)) − exp(mean log P(true)). */
export function newMinusTrue(pairs: readonly NewVsTrue[]): number {
  return mean(pairs.map((p) => Math.exp(p.newMean) - Math.exp(p.trueMean)));
}

/** Neighbourhood score: fraction of prompts where the true object stays more likely than the new one. */
export function trueBeatsNew(pairs: readonly NewVsTrue[]): number {
  return mean(pairs.map((p) => (p.trueMean > p.newMean ? 1 : 0)));
}

/** Neighbourhood magnitude: mean of exp(mean log P(true)) − exp(mean log P(new)). */
export function trueMinusNew(pairs: readonly NewVsTrue[]): number {
  return mean(pairs.map((p) => Math.exp(p.trueMean) - Math.exp(p.newMean)));
}

/** Harmonic mean (ROME's overall score of ES, PS, NS); 0 when any value is 0. */
export function harmonicMean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let s = 0;
  for (const v of values) {
    if (!(v >= 0)) throw new AmendError(`harmonic mean of a negative or missing value (${v})`);
    if (v === 0) return 0;
    s += 1 / v;
  }
  return values.length / s;
}

// ---------------------------------------------------------------- ConvSent (sentiment likelihood)

/**
 * The mean of every token log-probability of several sentences pooled together (EasyEdit's
 * masked_mean over a batch: a long sentence weighs by its token count, not as one sentence).
 */
export function pooledMean(perSentence: readonly (readonly number[])[]): number {
  let sum = 0;
  let n = 0;
  for (const lps of perSentence) {
    for (const v of lps) sum += v;
    n += lps.length;
  }
  if (n === 0) throw new AmendError('sentiment: a pooled mean over no tokens');
  return sum / n;
}

/** ConvSent's edit success from three pooled mean log-probabilities (nats per token). */
export interface SentimentMeans {
  /** The edited model on the topic's sentences with the target sentiment. */
  sameEdited: number;
  /** The edited model on the topic's sentences with the other sentiment (absent: none exist). */
  otherEdited?: number;
  /** The unedited model on the target-sentiment sentences (absent: not measured). */
  samePre?: number;
}

/**
 * SERAC's sentiment edit success (EasyEdit `es`): z_sent = σ(same_edited − other_edited), how much
 * likelier the edited model finds the target sentiment than the other; z_topic =
 * min(1, exp(same_edited − same_pre)), a penalty when the edit made the topic's target-sentiment
 * sentences less likely than before; es = z_sent · z_topic. A part whose inputs are missing is
 * left out, and es with it.
 */
export function sentimentEditSuccess(m: SentimentMeans): { zSent?: number; zTopic?: number; es?: number } {
  const out: { zSent?: number; zTopic?: number; es?: number } = {};
  if (m.otherEdited !== undefined) out.zSent = 1 / (1 + Math.exp(-(m.sameEdited - m.otherEdited)));
  if (m.samePre !== undefined) out.zTopic = Math.min(1, Math.exp(m.sameEdited - m.samePre));
  if (out.zSent !== undefined && out.zTopic !== undefined) out.es = out.zSent * out.zTopic;
  return out;
}

/**
 * KL(pre ‖ post) of one next-token distribution, from the two log-softmax rows (natural log, over
 * the whole vocabulary), summed in float64: Σ_v p_pre(v) · (log p_pre(v) − log p_post(v)).
 */
export function klDivergence(preLogProbs: ArrayLike<number>, postLogProbs: ArrayLike<number>): number {
  if (preLogProbs.length !== postLogProbs.length || preLogProbs.length === 0) {
    throw new AmendError(`KL of distributions over ${preLogProbs.length} and ${postLogProbs.length} tokens`);
  }
  let kl = 0;
  for (let v = 0; v < preLogProbs.length; v++) {
    const lp = preLogProbs[v]!;
    // p log p → 0 as p → 0 (a token the unedited model never predicts adds nothing).
    if (lp === Number.NEGATIVE_INFINITY) continue;
    kl += Math.exp(lp) * (lp - postLogProbs[v]!);
  }
  return kl;
}

// ---------------------------------------------------------------- generation QA

// Python's string.punctuation.
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * SQuAD normalisation: lower-case, drop ASCII punctuation, drop the articles a / an / the (as whole
 * words), collapse whitespace.
 */
export function normalizeAnswer(s: string): string {
  let t = s.toLowerCase();
  t = [...t].filter((ch) => !PUNCT.has(ch)).join('');
  t = t.replace(ARTICLES, ' ');
  return t.split(/\s+/u).filter((w) => w !== '').join(' ');
}

/** 1 when the normalised prediction equals any normalised answer, else 0. */
export function exactMatch(prediction: string, answers: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return answers.some((a) => normalizeAnswer(a) === p) ? 1 : 0;
}

/**
 * SQuAD token F1 over normalised whitespace tokens (bag of tokens), the best over the answers.
 * When either side normalises to nothing, F1 is 1 if both do, else 0 (SQuAD v2's rule).
 */
export function tokenF1(prediction: string, answers: readonly string[]): number {
  const pt = normalizeAnswer(prediction).split(' ').filter((w) => w !== '');
  let best = 0;
  for (const a of answers) {
    const at = normalizeAnswer(a).split(' ').filter((w) => w !== '');
    let f1: number;
    if (pt.length === 0 || at.length === 0) f1 = pt.length === at.length ? 1 : 0;
    else {
      const counts = new Map<string, number>();
      for (const w of at) counts.set(w, (counts.get(w) ?? 0) + 1);
      let same = 0;
      for (const w of pt) {
        const c = counts.get(w) ?? 0;
        if (c > 0) {
          same++;
          counts.set(w, c - 1);
        }
      }
      if (same === 0) f1 = 0;
      else {
        const precision = same / pt.length;
        const recall = same / at.length;
        f1 = (2 * precision * recall) / (precision + recall);
      }
    }
    if (f1 > best) best = f1;
  }
  return best;
}
