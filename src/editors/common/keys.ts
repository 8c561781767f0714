// Keys k* (inputs of the down projection) averaged over context templates, and the activations at
// the plain prompt that ROME's rank-one solve and MEMIT's residuals need.
import type { CausalLM } from '../../models/model.js';
import { hookPoint } from '../../models/hooks.js';
import { activationsAt } from './activations.js';
import { encodePrompt, fill, lookupIndex, type PreparedRequest } from './prompts.js';
import type { EditHparams } from '../hparams.js';

/**
 * k* for each request at `layer`, float64 [n, d_ff]: the down projection's input at the lookup
 * token of every template filled with the request's prompt (no target), averaged over all
 * templates ('flat', rome/compute_u) or within each group and then over groups ('grouped',
 * memit/compute_ks).
 */
export function templateKeys(model: CausalLM, reqs: readonly PreparedRequest[], groups: readonly (readonly string[])[], layer: number, hp: EditHparams): Float64Array {
  const tok = model.tok();
  const f = model.config.ffn;
  const seqs: number[][] = [], pos: number[] = [];
  for (const r of reqs) {
    for (const g of groups) {
      for (const ctx of g) {
        const t = fill(ctx, r.template);
        seqs.push(encodePrompt(tok, t, r.subject));
        pos.push(lookupIndex(tok, t, r.subject, hp.fact_token));
      }
    }
  }
  const point = hookPoint.mlpKeys(layer);
  const acts = activationsAt(model, seqs, pos, [point]).get(point)!;
  const out = new Float64Array(reqs.length * f);
  const perReq = groups.reduce((a, g) => a + g.length, 0);
  reqs.forEach((_, i) => {
    const dst = out.subarray(i * f, (i + 1) * f);
    let row = i * perReq;
    if (hp.template_key_average === 'flat') {
      for (let k = 0; k < perReq; k++, row++) for (let j = 0; j < f; j++) dst[j] += acts[row * f + j] / perReq;
    } else {
      const nonEmpty = groups.filter((g) => g.length > 0).length;
      for (const g of groups) {
        for (let k = 0; k < g.length; k++, row++) for (let j = 0; j < f; j++) dst[j] += acts[row * f + j] / (g.length * nonEmpty);
      }
    }
  });
  return out;
}

/** Activations at the plain prompt's lookup token for each request, [n, width] per point. */
export function promptActivations(model: CausalLM, reqs: readonly PreparedRequest[], points: readonly string[], hp: EditHparams): Map<string, Float32Array> {
  const tok = model.tok();
  const seqs = reqs.map((r) => encodePrompt(tok, r.template, r.subject));
  const pos = reqs.map((r) => lookupIndex(tok, r.template, r.subject, hp.fact_token));
  return activationsAt(model, seqs, pos, points);
}
