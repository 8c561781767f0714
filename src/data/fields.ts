// Typed field access for benchmark records: every failure is one AmendError line naming the file,
// the record (counted from 1, as an editor shows a file, with its 0-based index beside it, as the
// record's default id), the format and the field path.
import { AmendError, isObject } from '../errors.js';
import type { PromptAnswer } from '../editors/types.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export { isObject };

/** How deep answer lists may nest (RecordContext.answers). */
const MAX_ANSWER_NESTING = 16;

/** Where a record came from, for error messages. */
export class RecordContext {
  constructor(
    readonly source: string,
    readonly format: string,
    readonly index: number,
    /** Its line in a JSON Lines file. */
    readonly line?: number,
  ) {}

  /**
   * The record's own case id at `path` when it has one (a number or a string), else its index:
   * reports join results by id, and a file without ids still gives each case one.
   */
  caseId(rec: unknown, path: string): string | number {
    return this.optCaseId(rec, path) ?? this.index;
  }

  /**
   * The case id at `path`, or undefined when the field is absent or null. Any other value that is
   * not a number or a non-blank string is refused, as other malformed optional fields are: given
   * the record's index instead, the case would be reported under an id its file does not hold.
   */
  optCaseId(rec: unknown, path: string): string | number | undefined {
    const v = this.get(rec, path);
    if (v === undefined || v === null) return undefined;
    // JSON.parse gives Infinity for 1e999, which a report would write as null.
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && v.trim() !== '') return v;
    const what = typeof v === 'string' ? 'a blank string' : typeof v === 'number' ? `${v}` : this.describe(v);
    this.fail(`field "${path}" should be a case id (a number or a string), not ${what}; fix it, or leave the field out for the record's index`);
  }

  /** "record 3 (index 2, line 3)": the record as errors and warnings name it. */
  where(): string {
    return `record ${this.index + 1} (index ${this.index}${this.line !== undefined ? `, line ${this.line}` : ''})`;
  }

  fail(message: string): never {
    const line = this.line !== undefined ? `, line ${this.line}` : '';
    throw new AmendError(`${this.source}: record ${this.index + 1} (index ${this.index}${line}, ${this.format}) ${message}`);
  }

  private missing(path: string): never {
    this.fail(`has no "${path}" field`);
  }

  private describe(v: unknown): string {
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'a list';
    return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
  }

  /** The value at a dotted path ("requested_rewrite.target_new.str", "questions.0"), or undefined. */
  get(rec: unknown, path: string): unknown {
    let v: unknown = rec;
    for (const key of path.split('.')) {
      if (Array.isArray(v) && /^\d+$/.test(key)) v = v[Number(key)];
      else if (isObject(v)) v = v[key];
      else return undefined;
    }
    return v;
  }

  str(rec: unknown, path: string, opts: { allowEmpty?: boolean } = {}): string {
    const v = this.get(rec, path);
    if (v === undefined || v === null) this.missing(path);
    if (typeof v !== 'string') this.fail(`field "${path}" should be a string, not ${this.describe(v)}`);
    if (!opts.allowEmpty && v.trim() === '') this.fail(`field "${path}" is empty`);
    return v;
  }

  optStr(rec: unknown, path: string): string | undefined {
    const v = this.get(rec, path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(`field "${path}" should be a string, not ${this.describe(v)}`);
    return v;
  }

  obj(rec: unknown, path: string): JsonObject {
    const v = this.get(rec, path);
    if (v === undefined || v === null) this.missing(path);
    if (!isObject(v)) this.fail(`field "${path}" should be an object, not ${this.describe(v)}`);
    return v as JsonObject; // parsed JSON: its values are Json
  }

  optObj(rec: unknown, path: string): JsonObject | undefined {
    const v = this.get(rec, path);
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) this.fail(`field "${path}" should be an object, not ${this.describe(v)}`);
    return v as JsonObject; // parsed JSON: its values are Json
  }

  list(rec: unknown, path: string): Json[] {
    const v = this.get(rec, path);
    if (v === undefined || v === null) this.missing(path);
    if (!Array.isArray(v)) this.fail(`field "${path}" should be a list, not ${this.describe(v)}`);
    return v as Json[];
  }

  strList(rec: unknown, path: string): string[] {
    const v = this.list(rec, path);
    v.forEach((x, i) => {
      if (typeof x !== 'string') this.fail(`field "${path}[${i}]" should be a string, not ${this.describe(x)}`);
    });
    return v as string[];
  }

  /**
   * Answer strings of a value found at `path` (answerStrings), refusing what is not a string, a
   * number or a (nested) list of them: an object or a boolean there would lose the answer silently.
   */
  answers(v: unknown, path: string): string[] {
    // KnowEdit nests two deep (a list of alias lists); the limit keeps the walk off the call stack's end.
    const check = (x: unknown, depth: number): void => {
      if (Array.isArray(x)) {
        if (depth >= MAX_ANSWER_NESTING) this.fail(`field "${path}" nests lists more than ${MAX_ANSWER_NESTING} deep; answers are a string, a list of strings or a list of alias lists`);
        x.forEach((y) => check(y, depth + 1));
      } else if (x !== null && x !== undefined && typeof x !== 'string' && typeof x !== 'number') {
        this.fail(`field "${path}" should be a string or a list of strings, not ${JSON.stringify(x)}`);
      }
    };
    check(v, 0);
    return answerStrings(v);
  }

  optStrList(rec: unknown, path: string): string[] | undefined {
    const v = this.get(rec, path);
    if (v === undefined || v === null) return undefined;
    return this.strList(rec, path);
  }

  /**
   * A list of prompts scored as they are (paraphrases, neighbours, questions): each a sentence
   * with its subject written out. An empty one has no token to condition on, and a "{}" in one
   * would be scored as the two characters, not the subject.
   */
  promptList(rec: unknown, path: string): string[] {
    const v = this.strList(rec, path);
    v.forEach((p, i) => {
      if (p.trim() === '') this.fail(`field "${path}[${i}]" is empty`);
      if (p.includes('{}')) this.fail(`field "${path}[${i}]" holds a "{}" placeholder (${JSON.stringify(p)}), but these prompts are used as they are; write the subject out`);
    });
    return v;
  }

  optPromptList(rec: unknown, path: string): string[] | undefined {
    const v = this.get(rec, path);
    if (v === undefined || v === null) return undefined;
    return this.promptList(rec, path);
  }
}

/**
 * All answer strings of a KnowEdit ground_truth, which is a string, a list of strings, or a list
 * of alias lists ([["Soviet Union", "USSR", ...]]). The first is the answer EasyEdit scores
 * (`while isinstance(an, list): an = an[0]`); the rest are aliases. Numbers count as their
 * decimal text; empty strings are dropped.
 */
export function answerStrings(v: unknown): string[] {
  const out: string[] = [];
  const walk = (x: unknown) => {
    if (typeof x === 'number' && Number.isFinite(x)) x = String(x); // a year or a count, written as a number
    if (typeof x === 'string') {
      if (x.trim() !== '' && !out.includes(x)) out.push(x);
    } else if (Array.isArray(x)) {
      for (const y of x) walk(y);
    }
  };
  walk(v);
  return out;
}

/** A PromptAnswer from an answer list (first = answer, others = aliases), or null when there is no answer. */
export function promptAnswer(prompt: string, answers: string[]): PromptAnswer | null {
  if (answers.length === 0 || prompt.trim() === '') return null;
  const pa: PromptAnswer = { prompt, answer: answers[0]! };
  if (answers.length > 1) pa.aliases = answers.slice(1);
  return pa;
}
