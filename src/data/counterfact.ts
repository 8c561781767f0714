// CounterFact in its two public layouts (ROME's original, EasyEdit/MEND's flat one), the demo
// world benchmark (original layout plus portability and locality), ROME's known_1000 facts, and
// Amend's own EditCase records.
import type { EditCase, PromptAnswer } from '../editors/types.js';
import { isObject, type Json, type RecordContext } from './fields.js';
import { setGroups } from './groups.js';
import { hasAll, recordFormat } from './records.js';

/** The fields shared by original CounterFact and the demo world benchmark. */
function romeCase(rec: Json, ctx: RecordContext): EditCase {
  ctx.obj(rec, 'requested_rewrite');
  const subject = ctx.str(rec, 'requested_rewrite.subject');
  const prompt = ctx.str(rec, 'requested_rewrite.prompt');
  const targetNew = ctx.str(rec, 'requested_rewrite.target_new.str');
  const targetTrue = ctx.str(rec, 'requested_rewrite.target_true.str');
  const c: EditCase = { prompt, subject, targetNew, targetTrue };
  c.id = ctx.caseId(rec, 'case_id');
  const rel = ctx.optStr(rec, 'requested_rewrite.relation_id');
  if (rel !== undefined) c.relationId = rel;
  const newId = ctx.get(rec, 'requested_rewrite.target_new.id');
  if (typeof newId === 'string') c.targetNewId = newId;
  const trueId = ctx.get(rec, 'requested_rewrite.target_true.id');
  if (typeof trueId === 'string') c.targetTrueId = trueId;
  c.rephrase = ctx.promptList(rec, 'paraphrase_prompts');
  c.neighborhood = ctx.promptList(rec, 'neighborhood_prompts');
  const attr = ctx.optPromptList(rec, 'attribute_prompts');
  if (attr) c.attributePrompts = attr;
  const gen = ctx.optPromptList(rec, 'generation_prompts');
  if (gen) c.generationPrompts = gen;
  // EasyEdit's flat CounterFact uses a neighbourhood prompt with the true object as its locality
  // pair; every neighbourhood prompt is one here.
  c.locality = c.neighborhood.map((p) => ({ prompt: p, answer: targetTrue }));
  return c;
}

export const counterfactFormat = recordFormat(
  'counterfact',
  'CounterFact, original ROME layout (case_id, requested_rewrite{prompt,subject,target_new,target_true}, paraphrase/neighborhood/attribute/generation prompts; EasyEdit\'s counterfact_portability_gpt4.json adds portability{New Question, New Answer})',
  (r) => isObject(r['requested_rewrite']),
  (rec, ctx) => {
    const c = romeCase(rec, ctx);
    // EasyEdit's one-hop portability file: these records with the question its run scripts ask.
    if (ctx.optObj(rec, 'portability')) {
      c.portability = [{ prompt: ctx.str(rec, 'portability.New Question'), answer: ctx.str(rec, 'portability.New Answer') }];
    }
    return c;
  },
);

export const worldFormat = recordFormat(
  'amend-world',
  "Amend's demo-world benchmark: original CounterFact layout plus multi-hop `portability` and `locality` questions",
  (r) => isObject(r['requested_rewrite']) && (Array.isArray(r['portability']) || Array.isArray(r['locality'])),
  (rec, ctx) => {
    const c = romeCase(rec, ctx);
    const forward: PromptAnswer[] = [];
    const ripple: PromptAnswer[] = [];
    const port = ctx.get(rec, 'portability');
    if (port !== undefined && port !== null) {
      ctx.list(rec, 'portability').forEach((_, i) => {
        const prompt = ctx.str(rec, `portability.${i}.prompt`);
        const answer = ctx.str(rec, `portability.${i}.answer`);
        const hop = ctx.get(rec, `portability.${i}.edit_hop`);
        (typeof hop === 'number' && hop > 0 ? ripple : forward).push({ prompt, answer });
      });
    }
    const facts: PromptAnswer[] = [];
    const loc = ctx.get(rec, 'locality');
    if (loc !== undefined && loc !== null) {
      ctx.list(rec, 'locality').forEach((_, i) => {
        facts.push({ prompt: ctx.str(rec, `locality.${i}.prompt`), answer: ctx.str(rec, `locality.${i}.answer`) });
      });
    }
    setGroups(c, 'portability', { multi_hop: forward, ripple });
    setGroups(c, 'locality', { neighborhood: c.locality ?? [], other_facts: facts });
    return c;
  },
);

export const counterfactEasyEditFormat = recordFormat(
  'counterfact-easyedit',
  'CounterFact in the EasyEdit / MEND layout (prompt, subject, target_new, ground_truth, rephrase_prompt, locality_prompt, locality_ground_truth)',
  (r) => hasAll(r, 'prompt', 'target_new', 'locality_prompt'),
  (rec, ctx) => {
    const c: EditCase = {
      prompt: ctx.str(rec, 'prompt'),
      subject: ctx.str(rec, 'subject'),
      targetNew: ctx.str(rec, 'target_new'),
    };
    c.id = ctx.caseId(rec, 'case_id');
    const gt = ctx.optStr(rec, 'ground_truth');
    if (gt !== undefined && gt.trim() !== '') c.targetTrue = gt;
    const reph = ctx.optStr(rec, 'rephrase_prompt');
    if (reph !== undefined && reph.trim() !== '') c.rephrase = [reph];
    const lp = ctx.str(rec, 'locality_prompt');
    const la = ctx.str(rec, 'locality_ground_truth');
    c.locality = [{ prompt: lp, answer: la }];
    // Its locality prompt is another subject with the edit's true object (EasyEdit's CounterFact
    // files set locality_ground_truth = ground_truth): a neighbourhood prompt, scored as such.
    if (c.targetTrue !== undefined && la.trim() === c.targetTrue.trim()) c.neighborhood = [lp];
    return c;
  },
);

export const knownsFormat = recordFormat(
  'rome-knowns',
  "ROME's known_1000 facts for causal tracing (known_id, subject, attribute, template, prompt): the known answer is both targetNew and targetTrue, there are no evaluation prompts",
  (r) => hasAll(r, 'known_id', 'subject', 'attribute') || hasAll(r, 'subject', 'attribute', 'template', 'prediction'),
  (rec, ctx) => {
    const attribute = ctx.str(rec, 'attribute');
    const c: EditCase = {
      prompt: ctx.str(rec, 'prompt'),
      subject: ctx.str(rec, 'subject'),
      targetNew: attribute,
      targetTrue: attribute,
    };
    c.id = ctx.caseId(rec, 'known_id');
    const rel = ctx.optStr(rec, 'relation_id');
    if (rel !== undefined) c.relationId = rel;
    return c;
  },
);

function promptAnswers(rec: Json, ctx: RecordContext, field: string): PromptAnswer[] | undefined {
  const v = ctx.get(rec, field);
  if (v === undefined || v === null) return undefined;
  return ctx.list(rec, field).map((_, i) => {
    const pa: PromptAnswer = { prompt: ctx.str(rec, `${field}.${i}.prompt`), answer: ctx.str(rec, `${field}.${i}.answer`) };
    const al = ctx.optStrList(rec, `${field}.${i}.aliases`);
    if (al) pa.aliases = al;
    return pa;
  });
}

function groups(rec: Json, ctx: RecordContext, field: string): Record<string, PromptAnswer[]> | undefined {
  const g = ctx.optObj(rec, field);
  if (!g) return undefined;
  const out: Record<string, PromptAnswer[]> = {};
  for (const key of Object.keys(g)) out[key] = promptAnswers(rec, ctx, `${field}.${key}`) ?? [];
  return out;
}

/**
 * One EditCase from the fields under `at` ("" for the record itself, "edits.0." for its first
 * edit), every field of src/editors/types.ts, so that cases written as JSON load back the same.
 */
function amendCase(rec: Json, ctx: RecordContext, at = '', defaultId?: number): EditCase {
  const f = (name: string) => `${at}${name}`;
  const c: EditCase = { prompt: ctx.str(rec, f('prompt')), subject: ctx.str(rec, f('subject')), targetNew: ctx.str(rec, f('targetNew')) };
  const id = ctx.optCaseId(rec, f('id')) ?? defaultId;
  if (id !== undefined) c.id = id;
  const tt = ctx.optStr(rec, f('targetTrue'));
  if (tt !== undefined) c.targetTrue = tt;
  for (const k of ['rephrase', 'neighborhood', 'attributePrompts', 'generationPrompts'] as const) {
    const v = ctx.optPromptList(rec, f(k));
    if (v) c[k] = v;
  }
  for (const k of ['locality', 'portability'] as const) {
    const v = promptAnswers(rec, ctx, f(k));
    if (v) c[k] = v;
  }
  for (const k of ['localityGroups', 'portabilityGroups'] as const) {
    const v = groups(rec, ctx, f(k));
    if (v) c[k] = v;
  }
  for (const k of ['relationId', 'targetNewId', 'targetTrueId'] as const) {
    const v = ctx.optStr(rec, f(k));
    if (v !== undefined) c[k] = v;
  }
  const edits = ctx.get(rec, f('edits'));
  if (edits !== undefined && edits !== null) c.edits = ctx.list(rec, f('edits')).map((_, i) => amendCase(rec, ctx, f(`edits.${i}.`)));
  const s = ctx.get(rec, f('sentiment'));
  if (s !== undefined && s !== null) {
    c.sentiment = { question: ctx.str(rec, f('sentiment.question')), same: ctx.strList(rec, f('sentiment.same')), other: ctx.optStrList(rec, f('sentiment.other')) ?? [] };
    if (ctx.get(rec, f('sentiment.outer')) !== undefined) {
      c.sentiment.outer = {
        topic: ctx.str(rec, f('sentiment.outer.topic')),
        question: ctx.str(rec, f('sentiment.outer.question')),
        sentences: ctx.strList(rec, f('sentiment.outer.sentences')),
      };
    }
  }
  return c;
}

/** Amend's own records: EditCase objects as JSON (camelCase fields, as src/editors/types.ts). */
export const amendCasesFormat = recordFormat(
  'amend-cases',
  "Amend's EditCase records (prompt, subject, targetNew, optional targetTrue, rephrase, locality, portability, edits, sentiment, ...)",
  (r) => hasAll(r, 'prompt', 'subject', 'targetNew'),
  (rec, ctx) => amendCase(rec, ctx, '', ctx.index),
);
