/**
 * Every metric of one case (or many), each tagged with its protocol, from one batched
 * teacher-forced pass over all the case's prompts (plus generation when asked for).
 *
 * Use: before editing, `localityBaseline(model, c)` (or `localityBaselines` for many cases) records
 * the unedited model's argmax tokens on the locality answers; after editing,
 * `scoreCase(model, c, { baseline })` returns the metrics. Without a baseline, KnowEdit locality is
 * left out (it is defined against the unedited model).
 *
 * Metrics (names as in the reports; per case, a mean over the case's prompts):
 * - token-accuracy (KnowEdit / EasyEdit `test_prediction_acc`, teacher forcing on `prompt + " " +
 *   target`, see scoring.ts): rewrite_acc (Edit Succ.; the mean over a multi-edit case's edits),
 *   rephrase_acc (Generalisation), locality.<key>_acc and locality_acc (agreement of the argmax
 *   with the unedited model's on the locality answer tokens; the mean over sub-keys),
 *   portability.<key>_acc and portability_acc (token accuracy of the portability answers; the mean
 *   over sub-keys), locality_answer_acc (token accuracy of the locality answers themselves, the
 *   measure of ROME's zsRE neighbourhood accuracy, on the locality prompt as the loader gives it:
 *   for zsRE EasyEdit's loc, where ROME asks loc + "?").
 * - probability-comparison (ROME CounterFact, needs a targetTrue other than targetNew, see
 *   counterfactExclusion): efficacy_score / _magnitude on the rewrite prompt(s), paraphrase_score /
 *   _magnitude on the rephrase prompts, neighborhood_score / _magnitude on the neighbourhood
 *   prompts (see metrics.ts for the definitions).
 * - sentiment-likelihood (KnowEdit ConvSent cases, which carry a sentiment probe; see
 *   metrics-sentiment.ts): es_sent with its parts z_sent and z_topic (z_topic needs the baseline's
 *   unedited mean), and dd (the KL from the unedited model on the next topic's sentences, when
 *   `unedited` gives scoring access to the unedited weights).
 * - generation-qa (opt-in `qa`): greedy decoding of len(answer tokens) + extraTokens tokens, exact
 *   match and token F1 after SQuAD normalisation against the answer and its aliases, each alias
 *   against the continuation cut at its own length (the best alias counts):
 *   qa.rewrite_em/_f1, qa.rephrase_em/_f1, qa.portability[.<key>]_em/_f1, qa.locality[.<key>]_agree (the
 *   greedy answer equals the unedited model's, when the baseline has them; per sub-key, then the
 *   mean over sub-keys), qa.multi_hop_any_em
 *   (multi-edit cases: any multi-hop question answered exactly, MQuAKE's rule).
 * - sampled-generation (opt-in `fluency`): ngram_entropy of top-k samples (ROME generate_fast:
 *   top_k 5, 100 tokens in all including the prompt) from the generation prompts (CounterFact) or
 *   the rewrite prompt(s); reference_score (TF-IDF consistency with the attribute snippets of the
 *   new object) when `consistency` resources are given and the case has relationId / targetNewId.
 * - perplexity: essence_ppl (ROME's essence score) with the consistency resources, when snippets
 *   about the subject exist.
 */
import { AmendError, describeValue, optionKeys, requireCount, requireSeed } from '../errors.js';
import type { EditCase, PromptAnswer } from '../editors/types.js';
import { generate, type ModelWeights } from '../models/index.js';
import { fillTemplate } from '../tokenizer/index.js';
import { caseRequests } from '../data/load.js';
import {
  agreement,
  exactMatch,
  groupedMean,
  mean,
  newBeatsTrue,
  newMinusTrue,
  tokenF1,
  trueBeatsNew,
  trueMinusNew,
  type NewVsTrue,
} from './metrics.js';
import { nGramEntropy, tfidfSimilarity, type ConsistencyResources } from './metrics-text.js';
import { metric, type Metric, type Protocol } from './protocols.js';
import { scoreSentiment, sentimentBaselines, type SentimentBaseline, type UneditedScope } from './metrics-sentiment.js';
import { encodePair, scoreEncoded, targetLogProbs, type ScoreItem, type ScoringModel, type ScoringOptions, type TargetScore } from './scoring.js';

export type { ConsistencyResources };

/** A model that can be scored and sampled (CausalLM is one). */
export type EvalModel = ScoringModel & ModelWeights;

export interface QaOptions {
  /**
   * Which part of the greedy continuation is the model's answer. 'length' (default): the
   * continuation cut at each alias's own token count (+ extraTokens), as EasyEdit's vanilla
   * generation, so an answer that goes on ("musician who plays the banjo") still matches
   * "musician". 'line': the whole first line, up to lineTokens tokens, compared with every alias
   * as MQuAKE compares its generated answer (and close to EasyEdit's exact match, which also stops
   * at "."), so an answer must end where the gold one does.
   */
  cut?: 'length' | 'line';
  /** 'line': at most this many tokens are generated (default 32); a longer line is cut there. */
  lineTokens?: number;
  /** Tokens generated beyond the longest answer's token count (default 0, as EasyEdit's vanilla generation). */
  extraTokens?: number;
  /** Prompts per generate() call (default 16). */
  batchSize?: number;
  /**
   * Text around every question: "{}" marks where the prompt goes (without it the text is put
   * before the prompt). For in-context examples, e.g. MQuAKE's few-shot multi-hop prompts
   * followed by "Q: {}\nA:"; the answer is the continuation's first line.
   */
  template?: string;
}

export const QA_OPTION_KEYS = optionKeys<QaOptions>()(['extraTokens', 'batchSize', 'template', 'cut', 'lineTokens']);

/** A QA prompt inside its template (see QaOptions.template). */
export function qaPromptText(prompt: string, template?: string): string {
  if (template === undefined) return prompt;
  const parts = template.split('{}');
  if (parts.length > 2) throw new AmendError(`qa: the template has ${parts.length - 1} "{}" placeholders; use one for the prompt, or none to put the text before it`);
  return parts.length === 2 ? `${parts[0]}${prompt}${parts[1]}` : `${template}${prompt}`;
}

export interface FluencyOptions {
  /** Total length of prompt plus continuation in tokens (ROME max_out_len, default 100). */
  maxLength?: number;
  /** Top-k sampling (default 5). */
  topK?: number;
  seed?: number;
  /** Prompts per generate() call (default 16). */
  batchSize?: number;
}

export const FLUENCY_OPTION_KEYS = optionKeys<FluencyOptions>()(['maxLength', 'topK', 'seed', 'batchSize']);

/** What the unedited model did on a case's locality prompts (JSON-serialisable). */
export interface LocalityBaseline {
  /** The locality prompts per group, to check the baseline belongs to the case. */
  prompts: Record<string, string[]>;
  /** Argmax tokens at each answer position, per group and prompt. */
  argmax: Record<string, number[][]>;
  /** Greedy answers, per group and prompt (when computed with `qa`). */
  qa?: Record<string, string[]>;
  /** Cases with a sentiment probe (ConvSent): the unedited model's mean on the target-sentiment sentences. */
  sentiment?: SentimentBaseline;
}

export interface ScoreCaseOptions extends ScoringOptions {
  /** The unedited model's locality outputs (localityBaseline before the edit). */
  baseline?: LocalityBaseline;
  /** KnowEdit token-accuracy metrics (default true). */
  tokenAccuracy?: boolean;
  /** CounterFact probability comparisons when the case has targetTrue (default true). */
  counterfact?: boolean;
  /** Greedy-generation QA metrics (default off). */
  qa?: boolean | QaOptions;
  /** Sampled-generation fluency (default off). */
  fluency?: boolean | FluencyOptions;
  /** ROME's TF-IDF statistics and attribute snippets: adds reference_score (implies fluency's sampling). */
  consistency?: ConsistencyResources;
  /** Sentiment metrics of cases with a sentiment probe (default true). */
  sentiment?: boolean;
  /**
   * Runs a function on the unedited model and puts the edited one back exactly (the runner's
   * uneditedScope); the sentiment metrics' dd needs it, and is left out without it.
   */
  unedited?: UneditedScope;
}

export type ItemRole = 'rewrite' | 'rephrase' | 'neighborhood' | 'locality' | 'portability';

/** One teacher-forced (prompt, target) of a case, for the per-case JSONL. */
export interface ItemDetail {
  role: ItemRole;
  /** Sub-key (KnowEdit) of locality / portability items. */
  group?: string;
  /** Which edit of a multi-edit case (rewrite / rephrase items). */
  edit?: number;
  prompt: string;
  /** 'new' / 'true': the case's target_new / target_true; 'answer': the item's own answer. */
  kind: 'new' | 'true' | 'answer';
  target: string;
  tokens: number;
  accuracy: number;
  meanLogProb: number;
  /** Locality items with a baseline: agreement with the unedited model. */
  agreement?: number;
  /** The prompt and target did not fit the model's positions: scored on the prompt's last tokens. */
  truncated?: true;
}

export interface QaDetail {
  role: ItemRole;
  group?: string;
  prompt: string;
  answers: string[];
  /** The greedy continuation at the longest answer's length (em and f1 cut it per answer). */
  generated: string;
  em: number;
  f1: number;
  /** Locality items: 1 when the greedy answer is the unedited model's, else 0. */
  agreement?: number;
}

export interface CaseScore {
  id?: string | number;
  metrics: Metric[];
  items: ItemDetail[];
  qa?: QaDetail[];
  /** The sampled texts fluency and consistency were computed from. */
  generations?: string[];
}

// ---------------------------------------------------------------- case structure

const nonEmpty = <T>(r: Record<string, T[]> | undefined) => (r ? Object.values(r).some((v) => v.length > 0) : false);

/** Locality prompts by group: the case's sub-keys, or one group "locality" for a flat list. */
export function localityGroupsOf(c: EditCase): Record<string, PromptAnswer[]> {
  if (nonEmpty(c.localityGroups)) return c.localityGroups!;
  return c.locality && c.locality.length ? { locality: c.locality } : {};
}

/** Portability prompts by group: the case's sub-keys, or one group "portability" for a flat list. */
export function portabilityGroupsOf(c: EditCase): Record<string, PromptAnswer[]> {
  if (nonEmpty(c.portabilityGroups)) return c.portabilityGroups!;
  return c.portability && c.portability.length ? { portability: c.portability } : {};
}

const grouped = (c: EditCase, which: 'locality' | 'portability') =>
  which === 'locality' ? nonEmpty(c.localityGroups) : nonEmpty(c.portabilityGroups);

const rewritePrompt = (r: EditCase) => fillTemplate(r.prompt, r.subject);

interface Job {
  caseIndex: number;
  role: ItemRole;
  group?: string;
  edit?: number;
  /** Index of the prompt within its group (locality). */
  index?: number;
  prompt: string;
  kind: 'new' | 'true' | 'answer';
  target: string;
}

/** Why a case has no probability comparisons (see counterfactExclusion). */
export type CounterfactExclusion = 'no-true-target' | 'same-targets';

/**
 * Why the CounterFact probability comparisons leave a case out, or undefined when they score it.
 * P(new) > P(true) needs a true target; and where an edit's true target is its new target (after
 * trimming: KnowEdit and WISE zsRE have such cases, the answer already right), the two
 * probabilities are one number and the comparison could never hold, so the case would count as a
 * failure whatever the edit did. A multi-edit case is left out when any of its edits is.
 */
export function counterfactExclusion(c: EditCase): CounterfactExclusion | undefined {
  const reqs = caseRequests(c);
  if (!reqs.every((r) => typeof r.targetTrue === 'string' && r.targetTrue.trim() !== '')) return 'no-true-target';
  if (reqs.some((r) => r.targetTrue!.trim() === r.targetNew.trim())) return 'same-targets';
  return undefined;
}

function teacherForcedJobs(c: EditCase, caseIndex: number, o: { tokenAccuracy: boolean; counterfact: boolean }): Job[] {
  const jobs: Job[] = [];
  const reqs = caseRequests(c);
  const cf = o.counterfact && counterfactExclusion(c) === undefined;
  reqs.forEach((r, e) => {
    const edit = reqs.length > 1 ? e : undefined;
    const p = rewritePrompt(r);
    jobs.push({ caseIndex, role: 'rewrite', edit, prompt: p, kind: 'new', target: r.targetNew });
    if (cf) jobs.push({ caseIndex, role: 'rewrite', edit, prompt: p, kind: 'true', target: r.targetTrue! });
    for (const q of r.rephrase ?? []) {
      jobs.push({ caseIndex, role: 'rephrase', edit, prompt: q, kind: 'new', target: r.targetNew });
      if (cf) jobs.push({ caseIndex, role: 'rephrase', edit, prompt: q, kind: 'true', target: r.targetTrue! });
    }
  });
  if (cf && c.targetTrue) {
    for (const q of c.neighborhood ?? []) {
      jobs.push({ caseIndex, role: 'neighborhood', prompt: q, kind: 'new', target: c.targetNew });
      jobs.push({ caseIndex, role: 'neighborhood', prompt: q, kind: 'true', target: c.targetTrue });
    }
  }
  if (o.tokenAccuracy) {
    for (const [group, list] of Object.entries(localityGroupsOf(c))) {
      list.forEach((pa, index) => jobs.push({ caseIndex, role: 'locality', group, index, prompt: pa.prompt, kind: 'answer', target: pa.answer }));
    }
    for (const [group, list] of Object.entries(portabilityGroupsOf(c))) {
      list.forEach((pa, index) => jobs.push({ caseIndex, role: 'portability', group, index, prompt: pa.prompt, kind: 'answer', target: pa.answer }));
    }
  }
  return jobs;
}

// ---------------------------------------------------------------- baseline

/** The unedited model's locality outputs (and sentiment means) for many cases, in one batched pass. */
export function localityBaselines(model: EvalModel, cases: readonly EditCase[], opts: ScoringOptions & { qa?: boolean | QaOptions } = {}): LocalityBaseline[] {
  const jobs: Job[] = [];
  cases.forEach((c, i) => {
    for (const [group, list] of Object.entries(localityGroupsOf(c))) {
      list.forEach((pa, index) => jobs.push({ caseIndex: i, role: 'locality', group, index, prompt: pa.prompt, kind: 'answer', target: pa.answer }));
    }
  });
  const scores = targetLogProbs(model, jobs.map((j) => ({ prompt: j.prompt, target: j.target })), opts);
  const out: LocalityBaseline[] = cases.map(() => ({ prompts: {}, argmax: {} }));
  jobs.forEach((j, k) => {
    const b = out[j.caseIndex]!;
    (b.prompts[j.group!] ??= []).push(j.prompt);
    (b.argmax[j.group!] ??= []).push(scores[k]!.argmax);
  });
  sentimentBaselines(model, cases, opts).forEach((s, i) => {
    if (s) out[i]!.sentiment = s;
  });
  if (opts.qa) {
    const qo = typeof opts.qa === 'object' ? opts.qa : {};
    const answers = greedyAnswers(model, jobs.map((j) => ({ prompt: j.prompt, answers: [j.target] })), qo);
    jobs.forEach((j, k) => {
      const b = out[j.caseIndex]!;
      (b.qa ??= {});
      (b.qa[j.group!] ??= []).push(answers[k]!);
    });
  }
  return out;
}

/** The unedited model's locality outputs for one case (call before editing). */
export function localityBaseline(model: EvalModel, c: EditCase, opts: ScoringOptions & { qa?: boolean | QaOptions } = {}): LocalityBaseline {
  return localityBaselines(model, [c], opts)[0]!;
}

function checkBaseline(c: EditCase, b: LocalityBaseline): void {
  const groups = localityGroupsOf(c);
  for (const [g, list] of Object.entries(groups)) {
    const prompts = b.prompts?.[g];
    if (!prompts || prompts.length !== list.length || prompts.some((p, i) => p !== list[i]!.prompt)) {
      throw new AmendError(`locality baseline does not match case ${c.id ?? ''} (group "${g}"): compute it with localityBaseline on the same case before editing`);
    }
  }
}

// ---------------------------------------------------------------- generation

/** Greedy continuation of each prompt, long enough for its longest answer (+ extraTokens). */
export function greedyAnswers(model: EvalModel, items: readonly { prompt: string; answers: readonly string[] }[], o: QaOptions = {}): string[] {
  return greedyAnswerCuts(model, items, o).map((g) => g.longest);
}

/**
 * One greedy continuation per prompt, cut once per answer at that answer's own token count
 * (+ extraTokens). EasyEdit generates len(target) tokens for its one target; with aliases of
 * different lengths each alias is compared with a continuation of its own length, so that a long
 * alias does not turn a correct short answer into a miss. (Greedy decoding's first n tokens do not
 * depend on how many more follow, so one generation serves every cut.)
 */
function greedyAnswerCuts(model: EvalModel, items: readonly { prompt: string; answers: readonly string[] }[], o: QaOptions): { answers: string[]; cuts: string[]; longest: string }[] {
  const tok = model.tok();
  requireCount(o.extraTokens, 'qa: extraTokens');
  requireCount(o.batchSize, 'qa: batchSize', 1);
  requireCount(o.lineTokens, 'qa: lineTokens', 1);
  if (o.cut !== undefined && o.cut !== 'length' && o.cut !== 'line') throw new AmendError(`qa: cut must be "length" or "line", got ${describeValue(o.cut)}`);
  const byLine = o.cut === 'line';
  if (!byLine && o.lineTokens !== undefined) throw new AmendError('qa: lineTokens applies to cut "line"; pass cut: "line" with it');
  const extra = o.extraTokens ?? 0;
  const batchSize = o.batchSize ?? 16;
  const maxPos = model.config.maxPositions;
  const prepared = items.map((it) => {
    const answers = it.answers.filter((a) => a.trim() !== '');
    if (answers.length === 0) throw new AmendError(`qa: prompt "${it.prompt}" has no answer`);
    // At most 64 tokens (+ extraTokens) per answer: QA answers are short phrases, and the longest
    // answer of a batch sets how long all its prompts generate. An answer longer than that (a
    // paragraph) is then never matched exactly; its F1 still counts the words generated.
    let lens = answers.map((a) => Math.min(encodePair(tok, it.prompt, a).target.length, 64) + extra);
    let ids = tok.encode(qaPromptText(it.prompt, o.template));
    if (ids.length === 0) throw new AmendError(`qa: prompt "${it.prompt}" has no tokens`);
    // A line gets lineTokens, or what the positions leave after the question, but never fewer
    // tokens than the longest answer has (then the question keeps its end, as below).
    if (byLine) lens = lens.map(() => Math.max(Math.min(o.lineTokens ?? 32, maxPos - ids.length), ...lens));
    const n = Math.max(...lens);
    // A question longer than the model's positions keeps its end, as the teacher-forced scores
    // keep the end of a long context (scoring.ts).
    if (ids.length + n > maxPos) {
      if (maxPos - n < 1) throw new AmendError(`qa: an answer of ${n} tokens does not fit the model's ${maxPos} positions`);
      ids = ids.slice(ids.length - (maxPos - n));
    }
    return { ids, answers, lens, n };
  });
  const order = prepared.map((_, i) => i).sort((a, b) => prepared[a]!.n - prepared[b]!.n);
  const out: { answers: string[]; cuts: string[]; longest: string }[] = new Array(items.length);
  // Stop at the first line break once something was said (EasyEdit's generate-text stops at "\n").
  const firstLine = (text: string) => {
    const nl = text.search(/\n/);
    return nl > 0 && text.slice(0, nl).trim() !== '' ? text.slice(0, nl) : text;
  };
  // 'line': the first line with something on it (a continuation may open with a line break).
  const answerLine = (text: string) => text.split('\n').find((l) => l.trim() !== '') ?? '';
  for (let s = 0; s < order.length; s += batchSize) {
    const chunk = order.slice(s, s + batchSize);
    const maxNew = Math.max(...chunk.map((i) => prepared[i]!.n));
    const gen = generate(model, chunk.map((i) => prepared[i]!.ids), { maxNewTokens: maxNew, greedy: true });
    chunk.forEach((i, k) => {
      const p = prepared[i]!;
      const cut = byLine ? (n: number) => answerLine(tok.decode(gen[k]!.slice(0, n))) : (n: number) => firstLine(tok.decode(gen[k]!.slice(0, n)));
      out[i] = { answers: p.answers, cuts: p.lens.map(cut), longest: cut(p.n) };
    });
  }
  return out;
}

/**
 * ROME's generate_fast as used for fluency: top-k sampling until the sequence (prompt included)
 * has maxLength tokens, not stopping at EOS; the text is the decoded sequence including the prompt,
 * special tokens dropped, NFKD-normalised, with "\n\n" replaced by " ".
 */
export function sampleTexts(model: EvalModel, prompts: readonly string[], o: FluencyOptions = {}): string[] {
  const tok = model.tok();
  requireCount(o.maxLength, 'fluency: maxLength', 1);
  requireCount(o.batchSize, 'fluency: batchSize', 1);
  requireSeed(o.seed, 'fluency: seed');
  const maxLength = o.maxLength ?? 100;
  const batchSize = o.batchSize ?? 16;
  const out: string[] = [];
  for (let s = 0; s < prompts.length; s += batchSize) {
    const chunk = prompts.slice(s, s + batchSize).map((p) => tok.encode(p));
    if (chunk.some((ids) => ids.length === 0)) throw new AmendError('fluency: a generation prompt has no tokens');
    const budget = chunk.map((ids) => Math.max(0, maxLength - ids.length));
    const maxNew = Math.max(...budget);
    const gen = maxNew > 0
      ? generate(model, chunk, { maxNewTokens: maxNew, greedy: false, topK: o.topK ?? 5, seed: ((o.seed ?? 0) + s) >>> 0, eosId: null })
      : chunk.map(() => []);
    chunk.forEach((ids, k) => {
      const text = tok.decode([...ids, ...gen[k]!.slice(0, budget[k])]);
      out.push(text.normalize('NFKD').split('\n\n').join(' '));
    });
  }
  return out;
}

/** ROME's perplexity() of a text truncated to 100 tokens: exp(−Σ log p / number of input tokens). */
function essencePerplexity(model: EvalModel, text: string, opts: ScoringOptions): number | null {
  const ids = model.tok().encode(text).slice(0, 100);
  if (ids.length < 2) return null;
  const [s] = scoreEncoded(model, [{ context: ids.slice(0, 1), target: ids.slice(1) }], opts);
  return Math.exp(-s!.sum / ids.length);
}

// ---------------------------------------------------------------- scoring

/**
 * KnowEdit's per-case aggregation of a sub-keyed section as metric rows (run_knowedit_llama2.py
 * `eval`): for each value (named by its suffix, e.g. "_acc"), the mean over each sub-key's prompts
 * as `<prefix>.<key><suffix>` when the case has sub-keys, then the mean over the sub-keys as
 * `<prefix><suffix>`, so that a key with many prompts weighs as much as one with few; n counts
 * prompts.
 */
function groupedMetrics<D extends { group?: string }>(
  ds: readonly D[],
  o: { prefix: string; protocol: Protocol; perKey: boolean },
  values: Readonly<Record<string, (d: D) => number>>,
): Metric[] {
  if (!ds.length) return [];
  const series = Object.entries(values).map(([suffix, value]) => {
    const byGroup: Record<string, number[]> = {};
    for (const d of ds) (byGroup[d.group!] ??= []).push(value(d));
    return { suffix, byGroup, means: groupedMean(byGroup) };
  });
  const out: Metric[] = [];
  if (o.perKey) {
    for (const k of Object.keys(series[0]!.means.perKey)) {
      for (const { suffix, byGroup, means } of series) out.push(metric(`${o.prefix}.${k}${suffix}`, o.protocol, means.perKey[k]!, { n: byGroup[k]!.length }));
    }
  }
  for (const { suffix, means } of series) out.push(metric(`${o.prefix}${suffix}`, o.protocol, means.mean, { n: ds.length }));
  return out;
}

/** The per-item details of one case's teacher-forced scores (agreement where there is a baseline). */
function itemDetails(rows: readonly { job: Job; score: TargetScore }[], baseline: LocalityBaseline | undefined): ItemDetail[] {
  return rows.map(({ job, score }) => {
    const d: ItemDetail = {
      role: job.role,
      prompt: job.prompt,
      kind: job.kind,
      target: job.target,
      tokens: score.target.length,
      accuracy: score.accuracy,
      meanLogProb: score.mean,
    };
    if (job.group !== undefined) d.group = job.group;
    if (job.edit !== undefined) d.edit = job.edit;
    if (score.truncated) d.truncated = true;
    if (job.role === 'locality' && baseline) d.agreement = agreement(baseline.argmax[job.group!]![job.index!]!, score.argmax);
    return d;
  });
}

const pick = (details: readonly ItemDetail[], role: ItemRole, kind: ItemDetail['kind']) => details.filter((d) => d.role === role && d.kind === kind);

/** One case's teacher-forced metrics: token accuracies (when asked for), then the probability comparisons. */
function teacherForcedMetrics(c: EditCase, details: readonly ItemDetail[], baseline: LocalityBaseline | undefined, tokenAccuracy: boolean): Metric[] {
  return [...(tokenAccuracy ? tokenAccuracyMetrics(c, details, baseline) : []), ...comparisonMetrics(details)];
}

function tokenAccuracyMetrics(c: EditCase, details: readonly ItemDetail[], baseline: LocalityBaseline | undefined): Metric[] {
  const metrics: Metric[] = [];
  for (const [name, role] of [['rewrite_acc', 'rewrite'], ['rephrase_acc', 'rephrase']] as const) {
    const ds = pick(details, role, 'new');
    if (ds.length) metrics.push(metric(name, 'token-accuracy', mean(ds.map((d) => d.accuracy)), { n: ds.length }));
  }
  const port = pick(details, 'portability', 'answer');
  const loc = pick(details, 'locality', 'answer');
  // Locality is agreement with the unedited model: without its outputs only the locality answers'
  // own accuracy can be given.
  if (loc.length && baseline) metrics.push(...groupedMetrics(loc, { prefix: 'locality', protocol: 'token-accuracy', perKey: grouped(c, 'locality') }, { _acc: (d) => d.agreement! }));
  metrics.push(...groupedMetrics(loc, { prefix: 'locality_answer', protocol: 'token-accuracy', perKey: false }, { _acc: (d) => d.accuracy }));
  metrics.push(...groupedMetrics(port, { prefix: 'portability', protocol: 'token-accuracy', perKey: grouped(c, 'portability') }, { _acc: (d) => d.accuracy }));
  return metrics;
}

/** CounterFact's comparisons: the prompts' role, the metrics' name, and which way the edit should push. */
const COMPARISONS = [
  { role: 'rewrite', name: 'efficacy', score: newBeatsTrue, magnitude: newMinusTrue },
  { role: 'rephrase', name: 'paraphrase', score: newBeatsTrue, magnitude: newMinusTrue },
  { role: 'neighborhood', name: 'neighborhood', score: trueBeatsNew, magnitude: trueMinusNew },
] as const;

/** The probability comparisons of the roles whose prompts were scored for both targets. */
function comparisonMetrics(details: readonly ItemDetail[]): Metric[] {
  const metrics: Metric[] = [];
  for (const cmp of COMPARISONS) {
    const news = pick(details, cmp.role, 'new');
    const trues = pick(details, cmp.role, 'true');
    if (!trues.length || trues.length !== news.length) continue;
    const pairs: NewVsTrue[] = news.map((d, k) => ({ newMean: d.meanLogProb, trueMean: trues[k]!.meanLogProb }));
    metrics.push(metric(`${cmp.name}_score`, 'probability-comparison', cmp.score(pairs), { n: pairs.length }));
    metrics.push(metric(`${cmp.name}_magnitude`, 'probability-comparison', cmp.magnitude(pairs), { n: pairs.length }));
  }
  return metrics;
}

/** Every metric of many cases (teacher-forced prompts of all cases in one batched pass). */
export function scoreCases(
  model: EvalModel,
  cases: readonly EditCase[],
  opts: Omit<ScoreCaseOptions, 'baseline'> & { baselines?: readonly (LocalityBaseline | undefined)[] } = {},
): CaseScore[] {
  if (opts.baselines && opts.baselines.length !== cases.length) {
    throw new AmendError(`scoreCases: ${opts.baselines.length} baselines for ${cases.length} cases`);
  }
  if (opts.hooks?.length && (opts.qa || opts.fluency || opts.consistency)) {
    throw new AmendError('generation-based metrics (qa, fluency, consistency) cannot run with forward hooks: generate() does not take hooks');
  }
  const o = { tokenAccuracy: opts.tokenAccuracy ?? true, counterfact: opts.counterfact ?? true };
  cases.forEach((c, i) => {
    const b = opts.baselines?.[i];
    if (b) checkBaseline(c, b);
  });
  const jobs = cases.flatMap((c, i) => teacherForcedJobs(c, i, o));
  const items: ScoreItem[] = jobs.map((j) => ({ prompt: j.prompt, target: j.target }));
  const scores = targetLogProbs(model, items, opts);
  const perCase: { job: Job; score: TargetScore }[][] = cases.map(() => []);
  jobs.forEach((job, k) => perCase[job.caseIndex]!.push({ job, score: scores[k]! }));

  const results: CaseScore[] = cases.map((c, i) => {
    const baseline = opts.baselines?.[i];
    const details = itemDetails(perCase[i]!, baseline);
    const r: CaseScore = { metrics: teacherForcedMetrics(c, details, baseline, o.tokenAccuracy), items: details };
    if (c.id !== undefined) r.id = c.id;
    return r;
  });

  if (opts.sentiment ?? true) {
    const sentiment = scoreSentiment(model, cases, cases.map((_, i) => opts.baselines?.[i]?.sentiment), opts);
    sentiment.forEach((ms, i) => results[i]!.metrics.push(...ms));
  }

  if (opts.qa) scoreQa(model, cases, results, opts.baselines, typeof opts.qa === 'object' ? opts.qa : {});
  if (opts.fluency || opts.consistency) {
    scoreGeneration(model, cases, results, typeof opts.fluency === 'object' ? opts.fluency : {}, opts.consistency, opts);
  }
  return results;
}

/** Every metric of one case; see the file comment. */
export function scoreCase(model: EvalModel, c: EditCase, opts: ScoreCaseOptions = {}): CaseScore {
  const { baseline, ...rest } = opts;
  return scoreCases(model, [c], { ...rest, baselines: [baseline] })[0]!;
}

function scoreQa(model: EvalModel, cases: readonly EditCase[], results: CaseScore[], baselines: readonly (LocalityBaseline | undefined)[] | undefined, o: QaOptions): void {
  interface QaJob { caseIndex: number; role: ItemRole; group?: string; index?: number; prompt: string; answers: string[] }
  const jobs: QaJob[] = [];
  cases.forEach((c, i) => {
    for (const r of caseRequests(c)) {
      jobs.push({ caseIndex: i, role: 'rewrite', prompt: rewritePrompt(r), answers: [r.targetNew] });
      for (const q of r.rephrase ?? []) jobs.push({ caseIndex: i, role: 'rephrase', prompt: q, answers: [r.targetNew] });
    }
    for (const [group, list] of Object.entries(portabilityGroupsOf(c))) {
      for (const pa of list) jobs.push({ caseIndex: i, role: 'portability', group, prompt: pa.prompt, answers: [pa.answer, ...(pa.aliases ?? [])] });
    }
    if (baselines?.[i]?.qa) {
      for (const [group, list] of Object.entries(localityGroupsOf(c))) {
        list.forEach((pa, index) => jobs.push({ caseIndex: i, role: 'locality', group, index, prompt: pa.prompt, answers: [pa.answer] }));
      }
    }
  });
  const generated = greedyAnswerCuts(model, jobs, o);
  const details: QaDetail[][] = cases.map(() => []);
  jobs.forEach((j, k) => {
    const { answers, cuts, longest: g } = generated[k]!;
    const em = Math.max(...answers.map((a, x) => exactMatch(cuts[x]!, [a])));
    const f1 = Math.max(...answers.map((a, x) => tokenF1(cuts[x]!, [a])));
    const d: QaDetail = { role: j.role, prompt: j.prompt, answers: j.answers, generated: g, em, f1 };
    if (j.group !== undefined) d.group = j.group;
    if (j.role === 'locality') {
      const before = baselines![j.caseIndex]!.qa![j.group!]?.[j.index!];
      if (before === undefined) throw new AmendError('qa: the locality baseline has no greedy answers for this case');
      d.agreement = before === g ? 1 : 0;
    }
    details[j.caseIndex]!.push(d);
  });
  cases.forEach((c, i) => {
    const ds = details[i]!;
    const out = results[i]!;
    out.qa = ds;
    const push = (name: string, list: QaDetail[]) => {
      if (!list.length) return;
      out.metrics.push(metric(`qa.${name}_em`, 'generation-qa', mean(list.map((d) => d.em)), { n: list.length }));
      out.metrics.push(metric(`qa.${name}_f1`, 'generation-qa', mean(list.map((d) => d.f1)), { n: list.length }));
    };
    push('rewrite', ds.filter((d) => d.role === 'rewrite'));
    push('rephrase', ds.filter((d) => d.role === 'rephrase'));
    const port = ds.filter((d) => d.role === 'portability');
    out.metrics.push(...groupedMetrics(port, { prefix: 'qa.portability', protocol: 'generation-qa', perKey: grouped(c, 'portability') }, { _em: (d) => d.em, _f1: (d) => d.f1 }));
    const multiHop = port.filter((d) => d.group === 'multi_hop');
    if (c.edits && multiHop.length) {
      out.metrics.push(metric('qa.multi_hop_any_em', 'generation-qa', Math.max(...multiHop.map((d) => d.em)), { n: multiHop.length }));
    }
    // Per sub-key, then over the keys, as the teacher-forced locality_acc.
    const loc = ds.filter((d) => d.role === 'locality');
    out.metrics.push(...groupedMetrics(loc, { prefix: 'qa.locality', protocol: 'generation-qa', perKey: grouped(c, 'locality') }, { _agree: (d) => d.agreement! }));
  });
}

function scoreGeneration(
  model: EvalModel,
  cases: readonly EditCase[],
  results: CaseScore[],
  o: FluencyOptions,
  resources: ConsistencyResources | undefined,
  scoring: ScoringOptions,
): void {
  const promptsOf = (c: EditCase) => (c.generationPrompts && c.generationPrompts.length ? c.generationPrompts : caseRequests(c).map(rewritePrompt));
  const all = cases.flatMap((c, i) => promptsOf(c).map((p) => ({ i, p })));
  const texts = sampleTexts(model, all.map((x) => x.p), o);
  const perCase: string[][] = cases.map(() => []);
  all.forEach((x, k) => perCase[x.i]!.push(texts[k]!));
  cases.forEach((c, i) => {
    const gen = perCase[i]!;
    const out = results[i]!;
    out.generations = gen;
    out.metrics.push(metric('ngram_entropy', 'sampled-generation', nGramEntropy(gen), { n: gen.length, unit: 'bits' }));
    if (resources && c.relationId && c.targetNewId) {
      const snips = resources.snippets.get(c.relationId)?.get(c.targetNewId) ?? [];
      if (snips.length) {
        const ref = snips.map((s) => s.text).join(' ');
        out.metrics.push(metric('reference_score', 'sampled-generation', tfidfSimilarity(gen.join(' '), ref, resources.tfidf), { n: gen.length }));
        const essence = snips.filter((s) => s.name === c.subject).map((s) => s.text);
        if (essence.length) {
          const ppl = essencePerplexity(model, essence.join(' '), scoring);
          if (ppl !== null) out.metrics.push(metric('essence_ppl', 'perplexity', ppl, { n: essence.length }));
        }
      }
    }
  });
}
