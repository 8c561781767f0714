// WISE's Temporal and Hallucination edit files (Wang et al. 2024), in the flat layout EasyEdit's
// run_wise_editing.py reads: prompt, subject, target_new, locality_prompt, locality_ground_truth,
// and for Temporal `ood_rephrase`. (WISE's ZsRE file is zsRE's MEND layout: see zsre.ts.)
import type { EditCase } from '../editors/types.js';
import type { Json, JsonObject, RecordContext } from './fields.js';
import { hasAll, recordFormat } from './records.js';

/**
 * The edit, its locality pair (another text with its own continuation, which must not change) and
 * its rephrase prompts: an in-distribution `rephrase_prompt` where a file has one, then Temporal's
 * out-of-distribution `ood_rephrase`, which WISE asks as the generalisation prompt (its ood_ppl
 * metric scores the new target after it, as after the prompt itself).
 */
function wiseCase(rec: Json, ctx: RecordContext): EditCase {
  const c: EditCase = { prompt: ctx.str(rec, 'prompt'), subject: ctx.str(rec, 'subject'), targetNew: ctx.str(rec, 'target_new'), id: ctx.index };
  const gt = ctx.optStr(rec, 'ground_truth');
  if (gt !== undefined && gt.trim() !== '') c.targetTrue = gt;
  const rephrase: string[] = [];
  for (const field of ['rephrase_prompt', 'ood_rephrase']) {
    const r = ctx.optStr(rec, field);
    if (r !== undefined && r.trim() !== '') rephrase.push(r);
  }
  if (rephrase.length) c.rephrase = rephrase;
  c.locality = [{ prompt: ctx.str(rec, 'locality_prompt'), answer: ctx.str(rec, 'locality_ground_truth') }];
  return c;
}

const flatWise = (r: JsonObject) => hasAll(r, 'prompt', 'subject', 'target_new', 'locality_prompt', 'locality_ground_truth');

export const wiseTemporalFormat = recordFormat(
  'wise-temporal',
  "WISE's Temporal edits (prompt, subject, target_new, ood_rephrase, locality_prompt, locality_ground_truth): the out-of-distribution `ood_rephrase` is the rephrase prompt",
  (r) => flatWise(r) && hasAll(r, 'ood_rephrase'),
  wiseCase,
);

/** Told from EasyEdit's flat CounterFact, which has the same fields plus ground_truth and rephrase_prompt. */
export const wiseHallucinationFormat = recordFormat(
  'wise-hallucination',
  "WISE's Hallucination edits (prompt, subject, target_new, locality_prompt, locality_ground_truth; no ground truth, no rephrase): the edit replaces a hallucinated continuation",
  (r) => flatWise(r) && !('ground_truth' in r) && !('rephrase_prompt' in r) && !('ood_rephrase' in r),
  wiseCase,
);
