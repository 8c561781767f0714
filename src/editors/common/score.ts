// Teacher-forced scoring of targets after prompts, batched: what the editors need to refuse a
// request the model already satisfies and to print before/after probabilities (prompt tokens,
// then the target tokens; the score is the mean NLL per target token). Benchmark scores are the
// evaluation module's (src/eval).
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
