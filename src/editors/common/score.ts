// Teacher-forced scores of targets after prompts, in the editors' terms: what they need to refuse a
// request the model already satisfies and to print before/after probabilities (named apart from
// src/eval/scoring.ts's ScoreItem / TargetScore, which hold other things). The scoring itself
// is the evaluation module's (src/eval/scoring.ts), so an edit's check, the CLI's before/after
// numbers and a benchmark's scores of the same tokens are the same bits, whatever batch each
// prompt shares.
import type { CausalLM } from '../../models/model.js';
import { scoreEncoded } from '../../eval/scoring.js';

export interface EncodedTarget {
  /** Prompt token ids. */
  prompt: readonly number[];
  /** Target token ids (the continuation). */
  target: readonly number[];
}

export interface TargetLikelihood {
  /** Mean over target tokens of −log p(token | prompt, earlier target tokens). */
  meanNll: number;
  /** Σ log p over target tokens. */
  logProb: number;
  /** True when every target token is the argmax at its position. */
  argmaxMatch: boolean;
}

/** Scores every item (padded batches of at most `maxTokens` tokens). */
export function scoreTargets(model: CausalLM, items: readonly EncodedTarget[], maxTokens = 8192): TargetLikelihood[] {
  const pairs = items.map((it) => ({ context: [...it.prompt], target: [...it.target] }));
  return scoreEncoded(model, pairs, { maxBatchTokens: maxTokens }).map((s) => ({
    meanNll: -s.mean,
    logProb: s.sum,
    argmaxMatch: s.correct.every(Boolean),
  }));
}
