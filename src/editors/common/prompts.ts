// Requests → token sequences: the leading-space rule for targets, the subject template of a prompt,
// the fact lookup token (fact_token), and the rewriting / KL sequences of the v* and z optimisation.
import { AmendError, closest, isObject, optionKeys, typeName } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { locateSubject, type AmendTokenizer } from '../../tokenizer/index.js';
import type { EditCase, EditRequest } from '../types.js';
import type { EditHparams, FactToken } from '../hparams.js';

export interface PreparedRequest {
  index: number;
  request: EditRequest;
  subject: string;
  /** The prompt with "{}" where the subject goes. */
  template: string;
  /** The prompt with the subject filled in. */
  text: string;
  /** targetNew after the leading-space rule. */
  target: string;
  /** Token ids of the target as the continuation of the prompt. */
  targetIds: number[];
}

/**
 * The prompt as a template with one "{}" for the subject. A prompt without "{}" must contain the
 * subject; its first occurrence becomes the placeholder (as EasyEdit does).
 */
export function subjectTemplate(prompt: string, subject: string): string {
  if (typeof prompt !== 'string') throw new AmendError(`the prompt is ${notAString(prompt)}; it must be a string, with "{}" where the subject goes`);
  if (prompt.trim() === '') throw new AmendError('empty prompt: every edit request needs the prompt it rewrites');
  const { charStart, charEnd } = locateSubject(prompt, subject); // throws "subject ... is not in the prompt"
  if (prompt.includes('{}')) return prompt;
  return prompt.slice(0, charStart) + '{}' + prompt.slice(charEnd);
}

/** The fields of an EditCase (and a loaded case's split), which a request may carry as it is. */
const CASE_FIELDS: readonly string[] = [...optionKeys<EditCase>()([
  'prompt', 'subject', 'targetNew', 'targetTrue', 'id', 'rephrase', 'locality', 'portability', 'neighborhood', 'attributePrompts',
  'generationPrompts', 'portabilityGroups', 'localityGroups', 'edits', 'relationId', 'targetNewId', 'targetTrueId', 'sentiment',
]), 'split'];
const REQUEST_FIELDS = ['prompt', 'subject', 'targetNew', 'targetTrue'];

/**
 * A key that is no case field but a misspelling of a request field the request lacks ("tragetTrue"):
 * refused, since the field would be silently absent (an optional targetTrue, say). Other keys
 * (a program's own bookkeeping) are left alone.
 */
function refuseMisspeltField(r: object, where: string): void {
  for (const key of Object.keys(r)) {
    // EasyEdit's target_new has a message of its own (prepareRequests).
    if (CASE_FIELDS.includes(key) || key === 'target_new') continue;
    const near = closest(key, REQUEST_FIELDS);
    if (near !== undefined && !(near in r)) throw new AmendError(`${where}"${key}" is not a request field (did you mean "${near}"?); a request has ${REQUEST_FIELDS.join(', ')}`);
  }
}

/**
 * A request field that is not a string, as an error names it: a number, null, an object with the
 * keys it has (CounterFact's { str } shape, say, which wants its str taken out).
 */
function notAString(v: unknown): string {
  if (v === undefined) return 'missing';
  if (isObject(v)) return `an object (keys ${Object.keys(v).slice(0, 5).map((k) => JSON.stringify(k)).join(', ') || 'none'})`;
  return `${typeName(v) === 'array' ? 'an array' : typeName(v) === 'null' ? 'null' : `a ${typeName(v)}`}${typeof v === 'number' || typeof v === 'boolean' ? ` (${String(v)})` : ''}`;
}

/** Fills a template's single "{}" with `value` (literally: no other braces are interpreted). */
export function fill(template: string, value: string): string {
  const at = template.indexOf('{}');
  if (at < 0) return template;
  return template.slice(0, at) + value + template.slice(at + 2);
}

/**
 * The leading-space rule. Original ROME/MEMIT (rome_main.execute_rome, memit_main.execute_memit):
 * prepend " " when the target does not start with one. EasyEdit's ROME tests `target != " "`, so it
 * prepends a space even when one is there ('always'). 'never' leaves the target as given.
 */
export function applyTargetSpace(target: string, rule: EditHparams['target_space']): string {
  switch (rule) {
    case 'if_missing': return target.startsWith(' ') ? target : ` ${target}`;
    case 'always': return ` ${target}`;
    case 'never': return target;
  }
}

/**
 * Token ids of `target` as the continuation of `text`: the tokens of text+target beyond those of
 * text (both without special tokens), or the target's own tokens when the two tokenizations do not
 * share the prompt's prefix. With a byte-level BPE and a target that starts with a space this is
 * exactly ROME's tok(target) (compute_v); with SentencePiece it avoids a stray "▁" token.
 */
export function continuationIds(tok: AmendTokenizer, text: string, target: string): number[] {
  const base = tok.encode(text, { addSpecialTokens: false });
  const full = tok.encode(text + target, { addSpecialTokens: false });
  let ok = full.length > base.length;
  for (let i = 0; ok && i < base.length; i++) ok = full[i] === base[i];
  return ok ? full.slice(base.length) : tok.encode(target, { addSpecialTokens: false });
}

/**
 * The prefix naming request `index` of `count` in an error ("request 2 (id 7): "), empty for a lone
 * request. `request` may be anything the caller passed: its id is read only from an object.
 */
export function requestPrefix(count: number, index: number, request: unknown): string {
  if (count <= 1) return '';
  const id = request !== null && typeof request === 'object' ? (request as { id?: unknown }).id : undefined;
  return `request ${index + 1}${id !== undefined ? ` (id ${String(id)})` : ''}: `;
}

/** Validates and prepares requests (no model computation beyond tokenization). */
export function prepareRequests(model: CausalLM, requests: readonly EditRequest[], hp: EditHparams): PreparedRequest[] {
  if (!Array.isArray(requests) || requests.length === 0) throw new AmendError('no edit requests given');
  const tok = model.tok();
  return requests.map((r, index) => {
    const where = requestPrefix(requests.length, index, r);
    if (!r || typeof r !== 'object') throw new AmendError(`${where}not an edit request object`);
    refuseMisspeltField(r, where);
    if (typeof r.subject !== 'string') throw new AmendError(`${where}the subject is ${notAString(r.subject)}; it must be a string, the subject the request is about`);
    if (r.subject.trim() === '') throw new AmendError(`${where}empty subject: every edit request needs the subject it is about`);
    if (typeof r.targetNew !== 'string') {
      // The two shapes that datasets give (loadCases converts them): CounterFact's { str }, EasyEdit's target_new.
      const v: unknown = r.targetNew;
      const hint = isObject(v) && typeof v.str === 'string' ? ` (CounterFact's shape: give its str, ${JSON.stringify(v.str)})`
        : v === undefined && 'target_new' in r ? ' (the request has target_new, EasyEdit\'s name: Amend\'s is targetNew)' : '';
      throw new AmendError(`${where}targetNew is ${notAString(v)}, for "${String(r.prompt)}"; it must be a string, the new object (" Paris")${hint}`);
    }
    if (r.targetNew.trim() === '') throw new AmendError(`${where}empty target for "${r.prompt}": give the new object (targetNew / --target)`);
    let template: string;
    try {
      template = subjectTemplate(r.prompt, r.subject);
    } catch (e) {
      if (e instanceof AmendError) throw new AmendError(`${where}${e.message}`);
      throw e;
    }
    const text = fill(template, r.subject);
    const target = applyTargetSpace(r.targetNew, hp.target_space);
    const targetIds = continuationIds(tok, text, target);
    if (targetIds.length === 0) throw new AmendError(`${where}the target "${r.targetNew}" encodes to no tokens`);
    // The longest sequence fed: a context template's prefix (about its length in tokens), the
    // prompt and the target but its last token (which is predicted, never fed).
    const maxPos = model.config.maxPositions;
    const prefix = Math.max(0, ...(hp.context_template_length_params ?? []).map(([length]) => length));
    const promptLen = prefix + tok.encode(text).length;
    const len = promptLen + targetIds.length - 1;
    if (maxPos > 0 && len > maxPos) {
      // The prompt alone leaves room for a target of one token at least: then it is the target that does not fit.
      const fix = promptLen <= maxPos ? `shorten the target (${targetIds.length} tokens; at most ${maxPos - promptLen + 1} fit after this prompt)` : 'shorten the prompt';
      throw new AmendError(`${where}the prompt and target take ${len} tokens${prefix ? ` with a context template` : ''}, more than the model's ${maxPos} positions; ${fix}`);
    }
    if (typeof r.targetTrue === 'string' && r.targetTrue.trim() === r.targetNew.trim()) {
      throw new AmendError(`${where}the new target "${r.targetNew}" equals the true one; nothing to edit`);
    }
    return { index, request: r, subject: r.subject, template, text, target, targetIds };
  });
}

/** Token ids of a filled template as the model sees it (with BOS where the tokenizer adds one). */
export function encodePrompt(tok: AmendTokenizer, template: string, subject: string): number[] {
  return tok.encode(fill(template, subject));
}

/**
 * The index of the token where the fact is looked up, in encode(fill(template, subject)):
 * subject_last / subject_first: the last / first subject token; subject_first_after_last: the token
 * after the subject (the last subject token when nothing follows within `seqLen` tokens), as
 * rome/repr_tools.get_words_idxs_in_templates; last: the last token of the filled prompt (as
 * EasyEdit's find_fact_lookup_idx; the original's -1 indexes a right-padded batch, see README).
 */
export function lookupIndex(tok: AmendTokenizer, template: string, subject: string, mode: FactToken, seqLen?: number): number {
  const ids = encodePrompt(tok, template, subject);
  if (mode === 'last') return ids.length - 1;
  const span = tok.subjectRange(template, subject);
  switch (mode) {
    case 'subject_last': return span.end - 1;
    case 'subject_first': return span.start;
    case 'subject_first_after_last': return span.end < (seqLen ?? ids.length) ? span.end : span.end - 1;
  }
}

/**
 * What a request's key depends on: its plain prompt's tokens up to the lookup token. Requests with
 * the same identity read the same key at every layer (and under every context template).
 */
export function keyIdentity(tok: AmendTokenizer, req: PreparedRequest, mode: FactToken): string {
  const ids = encodePrompt(tok, req.template, req.subject);
  return ids.slice(0, lookupIndex(tok, req.template, req.subject, mode) + 1).join(',');
}

/** One sequence of the v* and z optimisation and where δ goes in it. */
export interface OptSequence {
  ids: number[];
  /** Where δ is added (the fact lookup token). */
  lookup: number;
  /** Positions whose next-token distribution is scored, and the target token at each. */
  scorePositions: number[];
  scoreTargets: number[];
}

/** What the v* and z optimisation needs for one request (or, with MEMIT's joint z, several sharing a key). */
export interface OptJob {
  rewriting: OptSequence[];
  kl: OptSequence[];
}

/**
 * The rewriting sequences (every context template filled with the prompt, then the target tokens
 * but the last) and the KL sequences ("{} is a"), as compute_v / compute_z build them. Sequences
 * are concatenated at the token level: prompt tokens, then target tokens.
 */
export function buildJob(tok: AmendTokenizer, req: PreparedRequest, contexts: readonly string[], hp: EditHparams): OptJob {
  const m = req.targetIds.length;
  const rewriting = contexts.map((ctx) => {
    const template = fill(ctx, req.template);
    const prompt = encodePrompt(tok, template, req.subject);
    const ids = [...prompt, ...req.targetIds.slice(0, m - 1)];
    const lookup = lookupIndex(tok, template, req.subject, hp.fact_token, ids.length);
    const scorePositions = req.targetIds.map((_, j) => prompt.length - 1 + j);
    return { ids, lookup, scorePositions, scoreTargets: req.targetIds.slice() };
  });
  const kl = hp.kl_prompts.map((template) => {
    const ids = encodePrompt(tok, template, req.subject);
    return { ids, lookup: lookupIndex(tok, template, req.subject, hp.fact_token), scorePositions: [], scoreTargets: [] };
  });
  return { rewriting, kl };
}
