// MQuAKE (Zhong et al. 2023): several edits per case, then multi-hop questions whose answer changes.
import type { EditCase, PromptAnswer } from '../editors/types.js';
import { isObject, type Json, type JsonObject, type RecordContext } from './fields.js';
import { hasAll, recordFormat } from './records.js';
import type { LoadedCase, SplitLabels } from './types.js';

/**
 * One case per record. `edits` holds every requested rewrite (CounterFact style: "{}" prompt,
 * subject, target_new.str, target_true.str), each with its single-hop `question` as its rephrase;
 * the case's own request fields are those of the first edit. The three multi-hop `questions` are
 * the portability group "multi_hop", answered by new_answer (aliases: new_answer_alias). MQuAKE
 * counts a case as solved when any one of the three questions is answered. `flat`: the rewrites
 * as MQuAKE-Remastered's Hugging Face copy stores them, target_new_str / target_new_id /
 * target_true_str / target_true_id in place of target_new{str,id} / target_true{str,id}.
 */
function mquakeCase(rec: Json, ctx: RecordContext, flat: boolean): LoadedCase {
  const rr = ctx.list(rec, 'requested_rewrite');
  if (rr.length === 0) ctx.fail('has an empty "requested_rewrite" list');
  const target = (p: string, which: 'new' | 'true', part: 'str' | 'id') => (flat ? `${p}.target_${which}_${part}` : `${p}.target_${which}.${part}`);
  const edits: EditCase[] = rr.map((_, i) => {
    const p = `requested_rewrite.${i}`;
    if (!isObject(rr[i])) ctx.fail(`field "${p}" should be an object`);
    const e: EditCase = {
      prompt: ctx.str(rec, `${p}.prompt`),
      subject: ctx.str(rec, `${p}.subject`),
      targetNew: ctx.str(rec, target(p, 'new', 'str')),
      targetTrue: ctx.str(rec, target(p, 'true', 'str')),
    };
    const rel = ctx.optStr(rec, `${p}.relation_id`);
    if (rel !== undefined) e.relationId = rel;
    const nid = ctx.get(rec, target(p, 'new', 'id'));
    if (typeof nid === 'string') e.targetNewId = nid;
    const tid = ctx.get(rec, target(p, 'true', 'id'));
    if (typeof tid === 'string') e.targetTrueId = tid;
    const q = ctx.optStr(rec, `${p}.question`);
    if (q !== undefined && q.trim() !== '') e.rephrase = [q];
    return e;
  });
  const answer = ctx.str(rec, 'new_answer');
  const aliases = (ctx.optStrList(rec, 'new_answer_alias') ?? []).filter((a) => a.trim() !== '' && a !== answer);
  const questions = ctx.promptList(rec, 'questions');
  // A case without them would be scored without its multi-hop questions, the point of MQuAKE.
  if (questions.length === 0) ctx.fail('field "questions" is empty');
  const multiHop: PromptAnswer[] = questions.map((q) => {
    const pa: PromptAnswer = { prompt: q, answer };
    if (aliases.length) pa.aliases = aliases;
    return pa;
  });
  const c: LoadedCase = {
    ...edits[0]!,
    id: ctx.caseId(rec, 'case_id'),
    edits,
    portability: multiHop,
    portabilityGroups: { multi_hop: multiHop },
  };
  const split = splitLabels(rec, ctx);
  if (split) c.split = split;
  return c;
}

/**
 * The record's `split` (see SplitLabels), when it has one. A key whose value is null (a run size
 * a table-shaped copy lists for every record) counts as absent.
 */
function splitLabels(rec: Json, ctx: RecordContext): SplitLabels | undefined {
  const v = ctx.get(rec, 'split');
  if (v === undefined || v === null) return undefined;
  const shape = 'an object of label lists, e.g. {"100": ["edited"], "1000": []}';
  if (!isObject(v)) ctx.fail(`field "split" should be ${shape}`);
  const out: SplitLabels = {};
  for (const [key, labels] of Object.entries(v)) {
    if (labels === null) continue;
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string')) ctx.fail(`field "split.${key}" should be a list of labels (strings), as in ${shape}`);
    out[key] = labels as string[];
  }
  return out;
}

const firstRewrite = (r: JsonObject) => {
  const rr = r['requested_rewrite'];
  return Array.isArray(rr) && isObject(rr[0]) ? rr[0] : undefined;
};

/**
 * MQuAKE-Remastered (Zhong et al., ICLR 2025: MQuAKE-CF-3k/9k and -T with their errors corrected),
 * as its Hugging Face copy lays the records out. Every record is a case with its edits applied, as in
 * mquakeFormat; its `split` labels (which cases a run of N edits edits) stay on the case, and
 * loadCases' `split` option keeps the cases one run edits.
 */
export const mquakeRemasteredFormat = recordFormat(
  'mquake-remastered',
  'MQuAKE-Remastered, flat layout (case_id, requested_rewrite[] of {prompt, subject, target_new_str, target_true_str, ...}, questions, new_answer, new_answer_alias, orig_triples, new_triples, split{run size: labels}, ...); split selects a run\'s edited cases',
  (r) => hasAll(r, 'questions') && firstRewrite(r) !== undefined && 'target_new_str' in firstRewrite(r)!,
  (rec, ctx) => mquakeCase(rec, ctx, true),
);

export const mquakeFormat = recordFormat(
  'mquake',
  'MQuAKE (case_id, requested_rewrite[] of CounterFact-style edits, questions, answer, new_answer, new_answer_alias, single_hops, ...)',
  (r) => Array.isArray(r['requested_rewrite']) && hasAll(r, 'questions'),
  (rec, ctx) => mquakeCase(rec, ctx, false),
);
