// Teacher-forced scoring of targets after prompts, batched: what the editors need to refuse a
// request the model already satisfies, to print before/after probabilities, and what their tests
// use for CounterFact-style scores (ROME experiments/py/eval_utils_counterfact.test_batch_prediction:
// prompt tokens, then the tokens of " " + target; the score is the mean NLL per target token).
import type { CausalLM } from '../../models/model.js';
import { noGrad, logSoftmax } from '../../tensor/index.js';
import { padBatch, planBatches } from './activations.js';

export interface ScoreItem {
  /** Prompt token ids. */
  prompt: readonly number[];
  /** Target token ids (the continuation). */
  target: readonly number[];
}

export interface TargetScore {
  /** Mean over target tokens of −log p(token | prompt, earlier target tokens). */
  meanNll: number;
  /** Σ log p over target tokens. */
  logProb: number;
  /** True when every target token is the argmax at its position. */
  argmaxMatch: boolean;
}

/** Scores every item in batches of at most `maxTokens` padded tokens. */
export function scoreTargets(model: CausalLM, items: readonly ScoreItem[], maxTokens = 8192): TargetScore[] {
  const out: TargetScore[] = new Array(items.length);
  const seqs = items.map((it) => [...it.prompt, ...it.target.slice(0, -1)]);
  for (const idx of planBatches(seqs.map((s) => s.length), maxTokens)) {
    const batch = padBatch(idx.map((i) => seqs[i]));
    const rows: number[] = [];
    idx.forEach((i, b) => items[i].target.forEach((_, j) => rows.push(b * batch.T + items[i].prompt.length - 1 + j)));
    const lp = noGrad(() => logSoftmax(model.forward(batch.ids, batch.B, batch.T, { attentionMask: batch.mask, logitsAt: rows }).logits!));
    const V = model.config.vocabSize;
    let r = 0;
    for (const i of idx) {
      let sum = 0, match = true;
      for (const tokId of items[i].target) {
        const row = lp.data.subarray(r * V, (r + 1) * V);
        sum += row[tokId];
        let best = 0;
        for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
        if (best !== tokId) match = false;
        r++;
      }
      out[i] = { meanNll: -sum / items[i].target.length, logProb: sum, argmaxMatch: match };
    }
  }
  return out;
}

/** CounterFact-style comparison of two targets after each prompt (strings; " " + target, as ROME). */
export function compareTargets(model: CausalLM, prompts: readonly string[], targetNew: string, targetTrue: string): { newNll: number; trueNll: number }[] {
  const tok = model.tok();
  const a = tok.encode(` ${targetNew.trim()}`, { addSpecialTokens: false });
  const b = tok.encode(` ${targetTrue.trim()}`, { addSpecialTokens: false });
  const items: ScoreItem[] = [];
  for (const p of prompts) {
    const ids = tok.encode(p);
    items.push({ prompt: ids, target: a }, { prompt: ids, target: b });
  }
  const s = scoreTargets(model, items);
  return prompts.map((_, i) => ({ newNll: s[2 * i].meanNll, trueNll: s[2 * i + 1].meanNll }));
}

/** CounterFact-style outcomes of one case (ROME experiments/summarize.py). */
export interface CounterFactOutcome {
  /** P(new) > P(true) on the rewrite prompt. */
  efficacy: boolean;
  /** Per paraphrase prompt: P(new) > P(true). */
  paraphrase: boolean[];
  /** Per neighbourhood prompt: P(true) > P(new). */
  neighborhood: boolean[];
}

/**
 * Efficacy, paraphrase and neighbourhood successes of a CounterFact case on the model as it is:
 * "P(new) > P(true)" means a lower mean NLL per token of " " + target_new than of " " + target_true
 * (test_batch_prediction, summarize.py).
 */
export function counterFactOutcome(model: CausalLM, c: { prompt: string; subject: string; targetNew: string; targetTrue?: string; rephrase?: string[]; neighborhood?: string[] }): CounterFactOutcome {
  if (!c.targetTrue) throw new Error('counterFactOutcome needs targetTrue');
  const at = c.prompt.indexOf('{}');
  const rewrite = at >= 0 ? c.prompt.slice(0, at) + c.subject + c.prompt.slice(at + 2) : c.prompt;
  const para = c.rephrase ?? [], neigh = c.neighborhood ?? [];
  const s = compareTargets(model, [rewrite, ...para, ...neigh], c.targetNew, c.targetTrue);
  const better = (x: { newNll: number; trueNll: number }): boolean => x.newNll < x.trueNll;
  return {
    efficacy: better(s[0]),
    paraphrase: s.slice(1, 1 + para.length).map(better),
    neighborhood: s.slice(1 + para.length).map((x) => x.trueNll < x.newNll),
  };
}

/** Efficacy / paraphrase / neighbourhood scores in %: per case the mean over its prompts, then the mean over cases (summarize.py). */
export function counterFactSummary(outcomes: readonly CounterFactOutcome[]): { efficacy: number; paraphrase: number; neighborhood: number; cases: number } {
  const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
  const frac = (bs: boolean[]): number[] => (bs.length === 0 ? [] : [bs.filter(Boolean).length / bs.length]);
  return {
    efficacy: 100 * mean(outcomes.map((o) => (o.efficacy ? 1 : 0))),
    paraphrase: 100 * mean(outcomes.flatMap((o) => frac(o.paraphrase))),
    neighborhood: 100 * mean(outcomes.flatMap((o) => frac(o.neighborhood))),
    cases: outcomes.length,
  };
}
