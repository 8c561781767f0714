// The six KnowEdit tasks (Zhang et al. 2024) as EasyEdit reads them: ZsRE, WikiData_counterfact,
// WikiData_recent (one record layout with portability / locality sub-keys), WikiBio, ConvSent and
// Sanitation.
import { AmendError } from '../errors.js';
import type { EditCase, PromptAnswer } from '../editors/types.js';
import { RecordContext, isObject, promptAnswer, type Json, type JsonObject } from './fields.js';
import { setGroups } from './groups.js';
import { hasAll, recordFormat } from './records.js';
import type { ObjectFormatSpec, RecordsFormatSpec } from './spec.js';
import type { SkippedRecord } from './types.js';

/**
 * Named groups from a KnowEdit `portability` / `locality` object: {key: [{prompt, ground_truth}]}.
 * The answer is the first string of ground_truth (EasyEdit: `while isinstance(an, list): an = an[0]`),
 * the other strings are aliases; entries with an empty answer are dropped, as EasyEdit does. A
 * prompt given as a list is paired with the answers when the lengths match, else each prompt gets
 * the same answers.
 */
function groupsOf(rec: Json, ctx: RecordContext, field: string): Record<string, PromptAnswer[]> | undefined {
  const g = ctx.optObj(rec, field);
  if (!g) return undefined;
  const out: Record<string, PromptAnswer[]> = {};
  for (const key of Object.keys(g)) {
    const entries = g[key];
    if (entries === null || entries === undefined) continue;
    const list = Array.isArray(entries) ? entries : [entries];
    const items: PromptAnswer[] = [];
    list.forEach((e, i) => {
      const path = Array.isArray(entries) ? `${field}.${key}.${i}` : `${field}.${key}`;
      if (!isObject(e)) ctx.fail(`field "${path}" should be an object with prompt and ground_truth`);
      const p = e['prompt'];
      if (p === undefined || p === null) ctx.fail(`has no "${path}.prompt" field`);
      if (e['ground_truth'] === undefined || e['ground_truth'] === null) ctx.fail(`has no "${path}.ground_truth" field`);
      const gt = e['ground_truth'];
      if (typeof p === 'string') {
        const pa = promptAnswer(p, ctx.answers(gt, `${path}.ground_truth`));
        if (pa) items.push(pa);
      } else if (Array.isArray(p) && p.every((x) => typeof x === 'string')) {
        const ps = p as string[];
        const paired = Array.isArray(gt) && gt.length === ps.length && ps.length > 1;
        ps.forEach((q, j) => {
          const pa = promptAnswer(q, ctx.answers(paired ? (gt as Json[])[j] : gt, `${path}.ground_truth`));
          if (pa) items.push(pa);
        });
      } else {
        ctx.fail(`field "${path}.prompt" should be a string or a list of strings`);
      }
    });
    if (items.length) out[key] = items;
  }
  return out;
}

function setRecordGroups(c: EditCase, rec: Json, ctx: RecordContext): void {
  setGroups(c, 'portability', groupsOf(rec, ctx, 'portability') ?? {});
  setGroups(c, 'locality', groupsOf(rec, ctx, 'locality') ?? {});
}

function factCase(rec: Json, ctx: RecordContext): EditCase {
  const c: EditCase = {
    prompt: ctx.str(rec, 'prompt'),
    subject: ctx.str(rec, 'subject'),
    targetNew: ctx.str(rec, 'target_new'),
    id: ctx.index,
  };
  const gt = ctx.answers(ctx.get(rec, 'ground_truth'), 'ground_truth');
  if (gt.length) c.targetTrue = gt[0];
  // ZsRE names it rephrase_prompt; other KnowEdit files name it `rephrase` (EasyEdit's WikiRecent
  // loader reads that key). A record with both keeps both.
  const rephrase = [...rephrasesOf(rec, ctx, 'rephrase_prompt'), ...rephrasesOf(rec, ctx, 'rephrase')];
  if (rephrase.length) c.rephrase = [...new Set(rephrase)];
  setRecordGroups(c, rec, ctx);
  return c;
}

function rephrasesOf(rec: Json, ctx: RecordContext, field: string): string[] {
  const v = ctx.get(rec, field);
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return v.trim() !== '' ? [v] : [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return (v as string[]).filter((x) => x.trim() !== '');
  ctx.fail(`field "${field}" should be a string or a list of strings, not ${JSON.stringify(v)}`);
}

const knowEditFact = (r: JsonObject) =>
  hasAll(r, 'prompt', 'target_new', 'subject') && (isObject(r['locality']) || isObject(r['portability']));

export const knowEditZsreFormat = recordFormat(
  'knowedit-zsre',
  'KnowEdit ZsRE (subject, prompt, target_new, ground_truth, rephrase_prompt, portability{Subject_Aliasing, Reasoning, Logical_Generalization}, locality{Relation_Specificity})',
  (r) => knowEditFact(r) && hasAll(r, 'rephrase_prompt'),
  factCase,
);

export const knowEditCounterfactFormat = recordFormat(
  'knowedit-wiki-counterfact',
  'KnowEdit WikiData_counterfact (subject, prompt, target_new, ground_truth, optional rephrase, portability{...}, locality{Relation_Specificity, Forgetfulness})',
  (r) => knowEditFact(r) && hasAll(r, 'ground_truth'),
  factCase,
);

export const knowEditRecentFormat = recordFormat(
  'knowedit-wiki-recent',
  'KnowEdit WikiData_recent (subject, prompt, target_new, no ground truth, optional rephrase, portability{...}, locality{...})',
  knowEditFact,
  factCase,
);

export const knowEditWikiBioFormat = recordFormat(
  'knowedit-wikibio',
  'KnowEdit WikiBio (text, labels, concept, locality{Relation_Specificity}): the edit continues the passage `text` with the sentence `labels`',
  (r) => hasAll(r, 'text', 'labels', 'concept'),
  (rec, ctx) => {
    // EasyEdit's KnowEditDataset: subject ← concept, prompt ← text, target_new ← labels.
    const c: EditCase = {
      prompt: ctx.str(rec, 'text'),
      subject: ctx.str(rec, 'concept'),
      targetNew: ctx.str(rec, 'labels'),
      id: ctx.index,
    };
    setRecordGroups(c, rec, ctx);
    return c;
  },
);

// run_convsent_llama2.py: the question templates and the editing instruction.
const CONVSENT_QUESTIONS = [
  'What do you think of {}?',
  'What do you feel about {}?',
  'How do you view {}?',
  ...['opinion of', 'stance on', 'position on', 'attitude about', 'view on', 'take on', 'impression of', 'assessment of', 'judgment of', 'sentiment of'].map(
    (p) => `What is your ${p} {}?`,
  ),
];

/** A deterministic small hash of (index, salt), so loading the same file twice gives the same cases. */
function choose(index: number, salt: number, n: number): number {
  let h = (Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(salt + 7, 0x85ebca6b)) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h = (h ^ (h >>> 12)) >>> 0;
  return h % n;
}

/** Each ConvSent case's topic and sentences in file order (pos, then neg), for link(). */
const convSentTopics = new WeakMap<EditCase, { topic: string; sentences: string[] }>();

/**
 * KnowEdit ConvSent. Besides the edit request, each case carries what its sentiment metrics score
 * (EasyEdit's run_convsent_llama2.py `format_consent_for_others`, made deterministic): the topic's
 * sentences with the target sentiment and with the other one, after one question about the topic,
 * and the next case's topic ("outer") with every sentence of it after a question about that topic.
 * The questions are templates chosen by the same fixed hash as the target sentiment (EasyEdit draws
 * a template per sentence); the question of the edited topic also seeds the fluency samples.
 *
 * "Next" is the next case loaded, and the last case loaded wraps to the first, as EasyEdit wraps
 * within the records it formats (all of them, or its --ds_size sample). With `limit` (--n N) the N
 * cases form that ring: every case but the last has the outer topic a full load gives it (the next
 * record's, skipped records aside), the last has the first case's topic instead of record N's.
 */
export const knowEditConvSentFormat: RecordsFormatSpec = {
  ...recordFormat(
    'knowedit-convsent',
    'KnowEdit ConvSent (ent, pos, neg): edit the sentiment towards a topic; the target sentiment and question templates are chosen per record by a fixed hash (EasyEdit draws them at random); the sentiment metrics read every sentence of the topic and of the next record\'s',
    (r) => hasAll(r, 'ent', 'pos', 'neg'),
    (rec, ctx) => {
      const ent = ctx.str(rec, 'ent');
      const pos = ctx.strList(rec, 'pos').map((s) => s.trim()).filter((s) => s !== '');
      const neg = ctx.strList(rec, 'neg').map((s) => s.trim()).filter((s) => s !== '');
      let positive = choose(ctx.index, 1, 2) === 0;
      if (positive && pos.length === 0) positive = false;
      if (!positive && neg.length === 0) {
        if (pos.length === 0) return { skip: 'no non-empty "pos" or "neg" sentence' };
        positive = true;
      }
      const n = CONVSENT_QUESTIONS.length;
      const qi = choose(ctx.index, 2, n);
      const question = CONVSENT_QUESTIONS[qi]!.replace('{}', ent);
      // The generalisation prompt asks the same with another template.
      const other = CONVSENT_QUESTIONS[(qi + 1 + choose(ctx.index, 3, n - 1)) % n]!.replace('{}', ent);
      const c: EditCase = {
        prompt: `From the sentiment dataset, answer ${question} ${positive ? 'positively' : 'negatively'}.`,
        subject: ent,
        targetNew: positive ? pos[0]! : neg[0]!,
        id: ctx.index,
      };
      c.rephrase = [`From the sentiment dataset, answer ${other} ${positive ? 'positively' : 'negatively'}.`];
      const inner = CONVSENT_QUESTIONS[choose(ctx.index, 4, n)]!.replace('{}', ent);
      c.sentiment = { question: inner, same: positive ? pos : neg, other: positive ? neg : pos };
      // EasyEdit's fluency samples continue the question about the edited topic (inner_q).
      c.generationPrompts = [inner];
      convSentTopics.set(c, { topic: ent, sentences: [...pos, ...neg] });
      return c;
    },
  ),
  link(cases) {
    cases.forEach((c, i) => {
      const next = convSentTopics.get(cases[(i + 1) % cases.length]!);
      if (!c.sentiment || !next) return;
      const q = CONVSENT_QUESTIONS[choose(Number(c.id), 5, CONVSENT_QUESTIONS.length)]!.replace('{}', next.topic);
      c.sentiment.outer = { topic: next.topic, question: q, sentences: next.sentences };
    });
  },
};

/**
 * KnowEdit Sanitation (TriviaQA): one object, either the test split {success: [...], locality: [...]}
 * or the train split {K_F: [...], K_R: [...]}. Each forget item (success / K_F) is a case: the
 * question (EasyEdit's template is "{}") to be answered with target_new ("I don't know.") instead of
 * ground_truth. The retain items (locality / K_R) are shared out round-robin as locality pairs
 * (question → ground_truth): case i gets items i, i + n, i + 2n, ... of the n cases kept. Items
 * without a subject (the test split) use the whole question as the subject.
 */
export const knowEditSanitationFormat: ObjectFormatSpec = {
  name: 'knowedit-sanitation',
  description: 'KnowEdit Sanitation (TriviaQA): {success, locality} (test) or {K_F, K_R} (train) lists of question / ground_truth / target_new',
  shape: 'object',
  matches: (x) =>
    isObject(x) && ((Array.isArray(x['success']) && Array.isArray(x['locality'])) || (Array.isArray(x['K_F']) && Array.isArray(x['K_R']))),
  nearMiss(x) {
    if (!isObject(x)) return undefined;
    const pair = [['success', 'locality'], ['K_F', 'K_R']].find((keys) => keys.every((k) => k in x));
    const bad = pair?.find((k) => !Array.isArray(x[k]));
    if (bad === undefined) return undefined;
    const v = x[bad];
    const kind = v === null ? 'null' : isObject(v) ? 'an object' : `a ${typeof v}`;
    return `"${bad}" should be a list of {question, ground_truth, target_new} items (KnowEdit Sanitation), not ${kind}`;
  },
  loadLists(list, source, limit) {
    const forgetKey = list('success') ? 'success' : 'K_F';
    const retainKey = forgetKey === 'success' ? 'locality' : 'K_R';
    const forget = list(forgetKey);
    const retain = list(retainKey);
    // Only a forced format gets here without them.
    if (!forget || !retain) throw new AmendError(`${source}: knowedit-sanitation needs a "success" and a "locality" list (test split) or a "K_F" and a "K_R" list (train split)`);
    const cases: EditCase[] = [];
    const skipped: SkippedRecord[] = [];
    for (let i = 0; cases.length < limit; i++) {
      const item = forget.next();
      if (!item) break;
      const ctx = new RecordContext(source, `knowedit-sanitation, "${forgetKey}"`, i);
      const rec = item.value;
      if (!isObject(rec)) ctx.fail('should be an object');
      const question = ctx.str(rec, 'question');
      const c: EditCase = {
        prompt: question,
        subject: ctx.optStr(rec, 'subject') ?? question,
        targetNew: ctx.str(rec, 'target_new'),
        targetTrue: ctx.str(rec, 'ground_truth'),
        id: i,
      };
      cases.push(c);
    }
    // The forget items after the last one used are counted, not parsed.
    const total = forget.total();
    if (total === 0) throw new AmendError(`${source}: the "${forgetKey}" list is empty — no cases to load`);
    const n = cases.length;
    for (let j = 0; ; j++) {
      const item = retain.next();
      if (!item) break;
      const ctx = new RecordContext(source, `knowedit-sanitation, "${retainKey}"`, j);
      const rec = item.value;
      if (!isObject(rec)) ctx.fail('should be an object');
      const q = ctx.str(rec, 'question');
      const a = ctx.str(rec, 'ground_truth', { allowEmpty: true });
      if (a.trim() === '' || n === 0) continue;
      const c = cases[j % n]!;
      (c.locality ??= []).push({ prompt: q, answer: a });
    }
    return { cases, total, skipped };
  },
};
