// zsRE as prepared by MEND (src, alt, answers, rephrase, loc, loc_ans), and the same layout with
// WISE's `portability` field.
import type { EditCase } from '../editors/types.js';
import { isObject, type Json, type RecordContext } from './fields.js';
import { hasAll, recordFormat } from './records.js';

/**
 * As EasyEdit's ZsreDataset: the edit is src → alt, ground truth answers[0], generalisation the
 * rephrase, locality the NQ question (kept verbatim, "nq question: ..."), with its answer.
 * Records with an empty `alt` are skipped, as EasyEdit does. (ROME's MENDQADataset instead edits
 * to answers[0] and asks the locality question as loc + "?"; Amend follows MEND / EasyEdit / WISE,
 * whose `alt` is the counterfactual target and whose locality prompt is loc as it is.)
 */
function zsreCase(rec: Json, ctx: RecordContext): EditCase | { skip: string } {
  const alt = ctx.str(rec, 'alt', { allowEmpty: true });
  if (alt.trim() === '') return { skip: 'empty "alt" (no edit target), skipped as EasyEdit does' };
  const c: EditCase = { prompt: ctx.str(rec, 'src'), subject: ctx.str(rec, 'subject'), targetNew: alt, id: ctx.index };
  const answers = ctx.get(rec, 'answers');
  if (answers !== undefined && answers !== null) {
    const list = ctx.strList(rec, 'answers').filter((a) => a.trim() !== '');
    if (list.length) c.targetTrue = list[0];
  }
  const reph = ctx.optStr(rec, 'rephrase');
  if (reph !== undefined && reph.trim() !== '') c.rephrase = [reph];
  const loc = ctx.optStr(rec, 'loc');
  if (loc !== undefined && loc.trim() !== '') {
    const ans = ctx.str(rec, 'loc_ans');
    c.locality = [{ prompt: loc, answer: ans }];
  }
  return c;
}

export const zsreFormat = recordFormat(
  'zsre-mend',
  'zsRE as prepared by MEND (subject, src, pred, rephrase, alt, answers, loc, loc_ans, cond)',
  (r) => hasAll(r, 'src', 'alt') && (hasAll(r, 'loc') || hasAll(r, 'answers')),
  zsreCase,
);

export const wiseZsreFormat = recordFormat(
  'wise-zsre-portability',
  "zsRE in EasyEdit's WISE layout with a `portability` field (New Question / New Answer)",
  (r) => hasAll(r, 'src', 'alt') && isObject(r['portability']),
  (rec, ctx) => {
    const c = zsreCase(rec, ctx);
    if ('skip' in c) return c;
    const q = ctx.str(rec, 'portability.New Question');
    const a = ctx.str(rec, 'portability.New Answer');
    c.portability = [{ prompt: q, answer: a }];
    return c;
  },
);
