// EvEdit (Liu et al. 2024): question / answer pairs about the consequences of an event.
import type { EditCase, PromptAnswer } from '../editors/types.js';
import { type JsonObject } from './fields.js';
import { recordFormat } from './records.js';

const qaKeys = (r: JsonObject) =>
  Object.keys(r)
    .filter((k) => /^QA\d+$/.test(k))
    .sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));

/**
 * EvEdit's QA.json and Completion.json hold, per event id, pairs [question, answer] (QA1..QA5); the
 * event texts themselves (events.json) are not part of these files. Each record becomes a case whose
 * request is its first pair and whose portability is every pair; the subject is empty, so editors
 * that locate the subject refuse these cases with a clear error, while the pairs remain usable to
 * score a model edited by other means. Completion prompts end with a space that belongs to the
 * answer (" violin."): it is moved there (the prompt is trimmed at the end). The few pairs that
 * have only one element in the upstream files (24 in Completion.json) are left out.
 */
export const evEditFormat = recordFormat(
  'evedit',
  'EvEdit (id, QA1..QA5 = [question or completion prompt, answer]); the events are not in the file, so cases have no subject',
  (r) => {
    const keys = qaKeys(r);
    return keys.length > 0 && Array.isArray(r[keys[0]!]);
  },
  (rec, ctx) => {
    const keys = qaKeys(rec as JsonObject);
    const pairs: PromptAnswer[] = [];
    for (const k of keys) {
      const pair = ctx.strList(rec, k);
      if (pair.length < 2) continue; // upstream has a few one-element "pairs" (a sentence without answer)
      const raw = pair[0]!;
      const prompt = raw.trimEnd();
      let answer = pair[1]!;
      if (raw.length > prompt.length && !/^\s/.test(answer)) answer = ' ' + answer;
      if (prompt === '' || answer.trim() === '') continue;
      pairs.push({ prompt, answer });
    }
    if (pairs.length === 0) return { skip: 'no non-empty question / answer pair' };
    const c: EditCase = {
      prompt: pairs[0]!.prompt,
      subject: '',
      targetNew: pairs[0]!.answer,
      id: ctx.caseId(rec, 'id'),
      portability: pairs,
    };
    return c;
  },
);
