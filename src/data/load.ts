// loadCases: read a benchmark file, detect its format from the content, turn it into EditCases.
import { constants as bufferConstants } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, refuseDevice, refuseUnknownKeys, requireCount, requireObject, requirePath } from '../errors.js';
import type { EditCase } from '../editors/types.js';
import { RecordContext, isObject, type Json, type JsonObject } from './fields.js';
import { LineScanner, ListScanner, bomEnd, contentStart, objectMembers } from './scan.js';
import { documentNotJson, itemNotJson, jsonSyntaxError, lineNotJson } from './json-error.js';
import { amendCasesFormat, counterfactEasyEditFormat, counterfactFormat, knownsFormat, worldFormat } from './counterfact.js';
import { evEditFormat } from './evedit.js';
import {
  knowEditConvSentFormat,
  knowEditCounterfactFormat,
  knowEditRecentFormat,
  knowEditSanitationFormat,
  knowEditWikiBioFormat,
  knowEditZsreFormat,
} from './knowedit.js';
import { mquakeFormat, mquakeRemasteredFormat } from './mquake.js';
import type { ConvertedCases, FormatSpec, ItemReader, ObjectFormatSpec, RecordsFormatSpec } from './spec.js';
import { EDITED_SPLIT_LABELS, LOAD_OPTION_KEYS, type DatasetFormat, type LoadOptions, type LoadedCases, type SkippedRecord } from './types.js';
import { wiseHallucinationFormat, wiseTemporalFormat } from './wise.js';
import { wiseZsreFormat, zsreFormat } from './zsre.js';
import { BUILTIN_WORLD, builtinWorldDir } from '../models/model.js';

/** Every format, in detection order: the first whose signature a record matches wins. */
export const FORMATS: readonly FormatSpec[] = [
  knowEditSanitationFormat,
  mquakeRemasteredFormat,
  mquakeFormat,
  worldFormat,
  counterfactFormat,
  wiseZsreFormat,
  zsreFormat,
  wiseTemporalFormat,
  wiseHallucinationFormat,
  counterfactEasyEditFormat,
  knowEditZsreFormat,
  knowEditCounterfactFormat,
  knowEditRecentFormat,
  knowEditWikiBioFormat,
  knowEditConvSentFormat,
  knownsFormat,
  evEditFormat,
  amendCasesFormat,
];

export const DATASET_FORMATS: readonly { name: DatasetFormat; description: string }[] = FORMATS.map((f) => ({
  name: f.name,
  description: f.description,
}));

const knownList = () => FORMATS.map((f) => f.name).join(', ');

/**
 * How many leading records detection reads. Several, not the first alone: a first record that
 * lacks a field can look like a poorer format (a WISE zsRE record without "portability" is a MEND
 * zsRE one), and reading the whole file as that would drop the field from every record.
 */
const DETECT_RECORDS = 20;

/** The format of parsed content, or null when none matches. */
export function detectFormat(data: unknown): DatasetFormat | null {
  return detectSpec(data as Json)?.name ?? null;
}

function detectSpec(data: Json): FormatSpec | null {
  if (Array.isArray(data)) return detectHead(arrayReader(data)).spec;
  return FORMATS.find((s) => s.shape === 'object' && s.matches(data)) ?? null;
}

/** The records format one record looks like, or null (also for a record that is not an object). */
function detectRecord(rec: Json): RecordsFormatSpec | null {
  return FORMATS.find((s): s is RecordsFormatSpec => s.shape === 'records' && s.matches(rec)) ?? null;
}

type ReadItem = NonNullable<ReturnType<ItemReader['next']>>;
/** A record detection read, or the error reading it gave: thrown only if conversion gets that far. */
type HeadItem = ReadItem | { error: unknown };

/**
 * Detection: reads the first DETECT_RECORDS records and takes the format most of them look like
 * (on a tie, the one earlier in FORMATS); null when none looks like any, so that a broken first
 * record still gets its own error. The records read come back for conversion; reading stops at one
 * that is not valid JSON, whose error waits for conversion (a limit may stop before it).
 */
function detectHead(reader: ItemReader): { head: HeadItem[]; spec: RecordsFormatSpec | null } {
  const head: HeadItem[] = [];
  const votes = new Map<RecordsFormatSpec, number>();
  while (head.length < DETECT_RECORDS) {
    let item: ReadItem | undefined;
    try {
      item = reader.next();
    } catch (error) {
      if (head.length === 0 || !(error instanceof UnparsableItem)) throw error;
      head.push({ error });
      break;
    }
    if (!item) break;
    head.push(item);
    const spec = detectRecord(item.value);
    if (spec) votes.set(spec, (votes.get(spec) ?? 0) + 1);
  }
  let spec: RecordsFormatSpec | null = null;
  for (const f of FORMATS) if (f.shape === 'records' && (votes.get(f) ?? 0) > (spec ? votes.get(spec)! : 0)) spec = f;
  return { head, spec };
}

/**
 * Records read as the file's format that look like another one, whose converter differs (its
 * fields would be left unread): said once, with the first of them, after the load.
 */
class OtherLooking {
  private count = 0;
  private first = '';

  constructor(private readonly spec: RecordsFormatSpec, private readonly source: string) {}

  check(rec: Json, ctx: RecordContext): void {
    const own = detectRecord(rec);
    if (!own || own.reads === this.spec.reads) return;
    if (this.count++ === 0) this.first = `${ctx.where()} looks like ${own.name}`;
  }

  warn(): void {
    if (this.count === 0) return;
    process.emitWarning(`${this.source}: ${this.count} record(s) have the fields of another format than ${this.spec.name}, the format of most of the first records (${this.first}); they were read as ${this.spec.name}, whose fields they may lack or have more of; give every record the same fields`);
  }
}

function keysPreview(data: Json): string {
  const rec = Array.isArray(data) ? data.find(isObject) : data;
  if (!isObject(rec)) return Array.isArray(data) ? 'its records are not objects' : 'it is not a list of records';
  const keys = Object.keys(rec);
  const shown = keys.slice(0, 12).join(', ');
  return `${Array.isArray(data) ? 'first record has' : 'top-level object has'} keys: ${shown || '(none)'}${keys.length > 12 ? ', ...' : ''}`;
}

/**
 * Parse JSON. For loadCases, this is the file that no reader took: one JSON value, or a broken
 * one, named here by the line and column where it breaks (JSON Lines whose first record parses
 * are read a line at a time, with their lines, by linesReader; those whose first line is broken
 * are named by that line).
 */
function parseBenchmarkText(text: string, source: string): Json {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') throw new AmendError(`${source}: empty file — expected a JSON list of benchmark records (formats: ${knownList()})`);
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    throw new AmendError(firstLineNotJson(text, source) ?? documentNotJson(source, text, err));
  }
}

/**
 * The first lines of `text` that are not blank (without their "\r"), with their line numbers,
 * up to `count`; the text is not split whole, only these lines are cut out of it.
 */
function firstLines(text: string, count: number): { no: number; line: string; end: number }[] {
  const out: { no: number; line: string; end: number }[] = [];
  for (let start = 0, no = 1; start <= text.length && out.length < count; no++) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(start, text[end - 1] === '\r' ? end - 1 : end);
    if (line.trim() !== '') out.push({ no, line, end });
    start = end + 1;
  }
  return out;
}

/**
 * JSON Lines whose first line is broken (those whose first line parses are read by linesReader):
 * the error for that line when the file breaks on it and it starts an object, and it ends with
 * "}" or a whole record follows it. Null otherwise; the file is then one JSON value that breaks
 * later (a pretty-printed object has whole records on lines of their own too), or records written
 * over several lines, which documentNotJson names.
 */
function firstLineNotJson(text: string, source: string): string | null {
  const [first, ...next] = firstLines(text, 6);
  if (!first || next.length === 0 || !first.line.trim().startsWith('{')) return null;
  const wholeRecord = (l: string) => { try { return isObject(JSON.parse(l)); } catch { return false; } };
  if (!first.line.trim().endsWith('}') && !next.some((l) => wholeRecord(l.line))) return null;
  const breaks = jsonSyntaxError(text);
  if (!breaks || breaks.at > first.end) return null;
  try {
    JSON.parse(first.line);
    return null;
  } catch (e) {
    return lineNotJson(source, first.no, first.line, e, next[0]!.line);
  }
}

/** Reports join results by case id; a repeated id is legal input but makes that join ambiguous. */
function warnRepeatedIds(cases: readonly EditCase[], source: string): void {
  const seen = new Set<string | number>();
  const repeated = new Set<string | number>();
  for (const c of cases) {
    if (c.id === undefined) continue;
    if (seen.has(c.id)) repeated.add(c.id);
    seen.add(c.id);
  }
  if (repeated.size > 0) {
    const first = [...repeated].slice(0, 3).map((id) => JSON.stringify(id)).join(', ');
    process.emitWarning(`${source}: ${repeated.size} case id(s) repeat (${first}${repeated.size > 3 ? ', ...' : ''}); reports also give each case's index in the file`);
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/**
 * The format forced by `format`, checked against the content's shape; `data` may be the first
 * records only. A records format also takes one object: one record on its own, as detection
 * takes it (a JSON Lines file of one line, or an object that is one record).
 */
function forcedSpec(format: DatasetFormat, json: Json, source: string): FormatSpec {
  const spec = FORMATS.find((f) => f.name === format);
  if (!spec) throw new AmendError(`unknown benchmark format "${format}"; known formats: ${knownList()}`);
  const shapeOk = spec.shape === 'records' ? Array.isArray(json) || isObject(json) : isObject(json);
  if (!shapeOk) {
    throw new AmendError(`${source}: format ${spec.name} expects ${spec.shape === 'records' ? 'a list of records' : 'one JSON object'}, but ${keysPreview(json)}`);
  }
  return spec;
}

function unknownFormat(json: Json, source: string): AmendError {
  // An object with a format's keys but a value of the wrong kind: that, not "unknown".
  for (const f of FORMATS) {
    const miss = f.shape === 'object' ? f.nearMiss?.(json) : undefined;
    if (miss) return new AmendError(`${source}: ${miss}`);
  }
  return new AmendError(`${source}: unknown benchmark format (${keysPreview(json)})${requestHint(json)}; known formats: ${knownList()}`);
}

/**
 * A request list written by hand that misses Amend's own record format by a field (the format a
 * user is most likely to write): which field it needs, and the near miss it has instead.
 */
function requestHint(data: Json): string {
  const rec = Array.isArray(data) ? data.find(isObject) : data;
  if (!isObject(rec) || !('prompt' in rec) || !('subject' in rec) || 'targetNew' in rec) return '';
  const near = Object.keys(rec).find((k) => /^target(_?new)?$|^new_?target$/i.test(k));
  return ` — a request record needs prompt, subject and targetNew${near ? ` (it has "${near}")` : ''}`;
}

/** A split name given (LoadOptions.split), checked before any record is read. */
function checkSplitName(split: unknown): asserts split is string {
  if (typeof split !== 'string' || split.trim() === '') {
    throw new AmendError(`split must name one of the records' run splits, e.g. "100" (MQuAKE-Remastered), got ${JSON.stringify(split)}`);
  }
}

/**
 * The cases one run split edits (LoadOptions.split): those whose labels for it include an edited
 * label (EDITED_SPLIT_LABELS), in file order, then the first `limit`. The cases a run only asks
 * (unedited) are left out: scoring them needs the other cases' edits applied and their original
 * answers expected, which no mode here does.
 */
function selectSplit(loaded: LoadedCases, name: string, limit: number | undefined, source: string): LoadedCases {
  const labelled = loaded.cases.filter((c) => c.split !== undefined);
  if (labelled.length === 0) {
    throw new AmendError(`${source}: split "${name}" selects cases by MQuAKE-Remastered's "split" labels, but these records (${loaded.format}) have no "split" field; leave the split out`);
  }
  const keys = [...new Set(labelled.flatMap((c) => Object.keys(c.split!)))];
  if (!keys.includes(name)) throw new AmendError(`${source}: no split "${name}"; the records' splits are ${keys.map((k) => JSON.stringify(k)).join(', ')}`);
  const lacking = loaded.cases.find((c) => c.split?.[name] === undefined);
  if (lacking !== undefined) {
    const has = Object.keys(lacking.split ?? {});
    throw new AmendError(`${source}: case ${JSON.stringify(lacking.id)} has no labels for split "${name}" (${has.length ? `its splits: ${has.join(', ')}` : 'no "split" field'}); every record needs them to tell edited from unedited cases`);
  }
  const edited = loaded.cases.filter((c) => c.split![name]!.some((l) => EDITED_SPLIT_LABELS.includes(l)));
  if (edited.length === 0) {
    const seen = [...new Set(loaded.cases.flatMap((c) => c.split![name]!))];
    throw new AmendError(`${source}: split "${name}" edits no case (its labels: ${seen.length ? seen.join(', ') : 'none'}; a run edits the cases labelled ${EDITED_SPLIT_LABELS.join(' / ')})`);
  }
  return { ...loaded, cases: edited.slice(0, limit ?? edited.length), split: { name, edited: edited.length } };
}

/**
 * An empty benchmark. The one a `world build --small` writes is empty by design (its tiny model
 * knows no fact in every phrasing, and only known facts make cases): said so, from the BUILD.json
 * beside it, so that the demo or an eval on such a build is not left at "an empty list".
 */
function noRecords(source: string): AmendError {
  let why = '';
  try {
    const build = JSON.parse(fs.readFileSync(path.join(path.dirname(source), 'BUILD.json'), 'utf8')) as { format?: unknown; small?: unknown; accuracy?: { knownFacts?: unknown } };
    if (build?.format === 'amend-world-build' && build.small === true) {
      const known = typeof build.accuracy?.knownFacts === 'number' ? ` (${build.accuracy.knownFacts} in every phrasing)` : '';
      why = ` — a --small world build's model knows too few facts${known} to have benchmark cases; build without --small for a benchmark, or give other cases with --data`;
    }
  } catch {
    /* no build record beside it: an empty list is all there is to say */
  }
  return new AmendError(`${source}: no records (an empty list)${why}`);
}

/** Turn parsed content (e.g. buildBenchmark's records) into cases; `source` names it in errors. */
export function parseCases(data: unknown, opts: LoadOptions & { source?: string } | null = {}): LoadedCases {
  opts ??= {};
  requireObject(opts, 'parseCases takes options as an object ({ limit: 10 }, say)');
  refuseUnknownKeys(opts, [...LOAD_OPTION_KEYS, 'source'], 'parseCases', { n: 'did you mean "limit"?' });
  const source = opts.source ?? 'benchmark data';
  requireCount(opts.limit, 'limit (the number of cases to keep)');
  if (opts.split !== undefined) {
    checkSplitName(opts.split);
    return selectSplit(parseCases(data, { ...opts, split: undefined, limit: undefined }), opts.split, opts.limit, source);
  }
  const json = data as Json;
  if (Array.isArray(json)) return loadRecords(arrayReader(json), source, opts);
  if (opts.format === undefined && !isObject(json)) {
    throw new AmendError(`${source}: expected a JSON list of benchmark records, got ${json === null ? 'null' : typeof json}; known formats: ${knownList()}`);
  }
  const spec = opts.format !== undefined ? forcedSpec(opts.format, json, source) : detectSpec(json);
  if (spec?.shape === 'object') {
    const obj = json as JsonObject;
    return loadLists(spec, (key) => (Array.isArray(obj[key]) ? arrayReader(obj[key]) : undefined), source, opts);
  }
  // One record on its own (a JSON Lines file of one line, or an object that is one record).
  if (spec || detectRecord(json)) return loadRecords(arrayReader([json]), source, opts);
  throw unknownFormat(json, source);
}

/** An ItemReader over a list already parsed. */
function arrayReader(items: Json[]): ItemReader {
  let i = 0;
  return { next: () => (i < items.length ? { value: items[i++]! } : undefined), total: () => items.length };
}

/** What a load gives: the cases with their format named, after a warning for ids that repeat. */
function loaded(spec: FormatSpec, { cases, total, skipped }: ConvertedCases, source: string): LoadedCases {
  warnRepeatedIds(cases, source);
  return { format: spec.name, description: spec.description, cases, total, skipped };
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
/** For text an error message only looks at: a byte that is not UTF-8 is no error of its own there. */
const lenientUtf8 = new TextDecoder('utf-8');

/**
 * A record (or a line) that is not valid JSON where the file's structure around it is sound:
 * reading can go on past it, which detection does (see detectHead).
 */
class UnparsableItem extends AmendError {}

/**
 * Decodes and parses the bytes `at` of a file; `name` names them when they are not valid JSON.
 * `line`: they are the line of a JSON Lines file that `name` names.
 */
function parseSlice(bytes: Buffer, at: [number, number], file: string, name: () => string, line?: number): Json {
  let text: string;
  try {
    text = decodeUtf8(bytes.subarray(at[0], at[1]), file, at[0], name);
  } catch (err) {
    throw err instanceof AmendError ? new UnparsableItem(err.message) : err;
  }
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    throw new UnparsableItem(line === undefined
      ? itemNotJson(file, name(), bytes, at[0], text, err)
      : lineNotJson(file, line, text, err, nextLine(bytes, at[1])));
  }
}

/** The first line after byte `from` that is not blank, or undefined at the end of the file. */
function nextLine(bytes: Buffer, from: number): string | undefined {
  const at = new LineScanner(bytes, from).next();
  return at ? lenientUtf8.decode(bytes.subarray(at[0], at[1])) : undefined;
}

/** How many items a scanner finds, those after the last one read scanned over, not parsed. */
function countAll(scanner: { next(): unknown; count: number }): number {
  while (scanner.next());
  return scanner.count;
}

/** The elements of the JSON list at `start`, parsed one at a time (see scan.ts). */
function listReader(bytes: Buffer, start: number, file: string, item?: string): ItemReader {
  const scanner = new ListScanner(bytes, start, file, item ?? 'record', item !== undefined);
  const what = (i: number) => () => `${item ?? 'record'} ${i + 1} (index ${i})`;
  return {
    next() {
      const at = scanner.next();
      return at ? { value: parseSlice(bytes, at, file, what(scanner.count - 1)) } : undefined;
    },
    total: () => countAll(scanner),
  };
}

/**
 * The records of a JSON Lines file, a line at a time; blank lines are skipped. `first`: the first
 * record, when detection has parsed it already.
 */
function linesReader(bytes: Buffer, start: number, file: string, first?: Json): ItemReader {
  const scanner = new LineScanner(bytes, start);
  return {
    next() {
      const at = scanner.next();
      if (!at) return undefined;
      if (first !== undefined) {
        const value = first;
        first = undefined;
        return { value, line: at[2] };
      }
      const value = parseSlice(bytes, [at[0], at[1]], file, () => `line ${at[2]}`, at[2]);
      return { value, line: at[2] };
    },
    total: () => countAll(scanner),
  };
}

/**
 * A JSON Lines file's reader, when the content from `start` (after a byte order mark) is one: its
 * first line that is not blank is a whole JSON object, and another line follows. Otherwise (one
 * object over several lines, one record alone, a broken first line) the file is parsed whole,
 * which names the problem.
 */
function jsonLines(bytes: Buffer, start: number, file: string): ItemReader | null {
  const scanner = new LineScanner(bytes, start);
  const first = scanner.next();
  if (!first || !scanner.next()) return null;
  let record: Json;
  try {
    record = JSON.parse(utf8Decoder.decode(bytes.subarray(first[0], first[1]))) as Json;
  } catch {
    return null;
  }
  return isObject(record) ? linesReader(bytes, start, file, record) : null;
}

/** The reader's first item, as a list of none or one. */
function firstItem(reader: ItemReader): HeadItem[] {
  const item = reader.next();
  return item ? [item] : [];
}

/**
 * Records (a JSON list, JSON Lines, a list in memory), a record at a time: the first records name
 * the format, then records are parsed and converted until `limit` cases are kept; the rest are
 * counted. `source` names them in errors.
 */
function loadRecords(reader: ItemReader, source: string, opts: LoadOptions): LoadedCases {
  // A forced format is checked against the first record; detection reads up to the one that names it.
  const { head, spec: detected } = opts.format === undefined ? detectHead(reader) : { head: firstItem(reader), spec: null };
  if (head.length === 0) throw noRecords(source);
  const values = head.flatMap((h) => ('error' in h ? [] : [h.value]));
  const spec = opts.format !== undefined ? forcedSpec(opts.format, values, source) : detected;
  // No format named: a record that is not JSON is the first thing to fix.
  if (!spec) throw head.find((h): h is { error: unknown } => 'error' in h)?.error ?? unknownFormat(values, source);
  if (spec.shape !== 'records') throw new Error('unreachable: forcedSpec refuses an object format for a list');
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const cases: EditCase[] = [];
  const skipped: SkippedRecord[] = [];
  const others = opts.format === undefined ? new OtherLooking(spec, source) : null;
  for (let i = 0; cases.length < limit; i++) {
    const item = i < head.length ? head[i] : reader.next();
    if (!item) break;
    if ('error' in item) throw item.error;
    const ctx = new RecordContext(source, spec.name, i, item.line);
    const out = spec.convert(item.value, ctx);
    others?.check(item.value, ctx);
    if ('skip' in out) skipped.push({ index: i, reason: out.skip });
    else cases.push(out);
  }
  others?.warn();
  spec.link?.(cases);
  // The records after the last one used are counted, not parsed.
  return loaded(spec, { cases, total: reader.total(), skipped }, source);
}

/** An object of lists (KnowEdit Sanitation), each list read an item at a time through `list`. */
function loadLists(spec: ObjectFormatSpec, list: (key: string) => ItemReader | undefined, source: string, opts: LoadOptions): LoadedCases {
  return loaded(spec, spec.loadLists(list, source, opts.limit ?? Number.POSITIVE_INFINITY), source);
}

/**
 * A file that is one object whose format reads its member lists an item at a time (KnowEdit
 * Sanitation): the object's members are found without parsing their values, then each list is
 * read as far as the format needs. Null when the object's shape names no such format, or is not
 * a well-formed object (the file is then parsed whole, which names the problem).
 */
function loadObjectLists(bytes: Buffer, start: number, file: string, opts: LoadOptions): LoadedCases | null {
  let members: Map<string, [number, number]>;
  try {
    members = objectMembers(bytes, start, file, (at) => parseSlice(bytes, at, file, () => 'a key') as string);
  } catch {
    return null;
  }
  // Its shape, for detection: lists stand as empty lists, other values as null.
  const shape: JsonObject = {};
  for (const [key, at] of members) shape[key] = bytes[at[0]] === 0x5b ? [] : null;
  const spec = opts.format !== undefined ? forcedSpec(opts.format, shape, file) : detectSpec(shape);
  // A records format forced on one object: the object is one record, parsed whole.
  if (spec?.shape !== 'object') return null;
  const list = (key: string) => {
    const at = members.get(key);
    return at && bytes[at[0]] === 0x5b ? listReader(bytes, at[0], file, `${JSON.stringify(key)} item`) : undefined;
  };
  return loadLists(spec, list, file, opts);
}

/**
 * Read a benchmark file (JSON list, JSON Lines, or KnowEdit Sanitation's object) and convert every
 * record, or the first ones up to `limit` cases (the records of a JSON list or a JSON Lines file,
 * and the forget items of a Sanitation file, after those are counted, not parsed). The format is
 * detected from the records' fields (see FORMATS), never from the file name. "world" names the
 * demo world's benchmark.
 */
export function loadCases(file: string, opts: LoadOptions | null = {}): LoadedCases {
  requirePath(file, 'loadCases needs the benchmark file');
  opts ??= {};
  requireObject(opts, 'loadCases takes options as an object ({ limit: 10 }, say)');
  refuseUnknownKeys(opts, LOAD_OPTION_KEYS, 'loadCases', { n: 'did you mean "limit"?' });
  // Before the file is read: a bad limit should not wait for a large file to be parsed.
  requireCount(opts.limit, 'limit (the number of cases to keep)');
  if (opts.split !== undefined) {
    checkSplitName(opts.split);
    // Which records the split keeps is known only once each is read: all are, then the limit applies.
    return selectSplit(loadCases(file, { ...opts, split: undefined, limit: undefined }), opts.split, opts.limit, file);
  }
  // "world": the demo world's benchmark, wherever amend is (a checkout or an installed package).
  if (file === BUILTIN_WORLD) file = path.join(builtinWorldDir(), 'benchmark.json');
  refuseDevice(file, 'a benchmark JSON file');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new AmendError(`${file}: no such file`);
    if (e.code === 'EISDIR') throw new AmendError(`${file}: is a directory, expected a benchmark JSON file`);
    throw new AmendError(`${file}: cannot read (${oneLine(e.message)})`);
  }
  checkNotUtf16(bytes, file);
  const start = contentStart(bytes);
  if (bytes[start] === 0x5b) return loadRecords(listReader(bytes, start, file), file, opts);
  if (bytes[start] === 0x7b) {
    // Lines are counted from the file's first, blank ones included.
    const lines = jsonLines(bytes, bomEnd(bytes), file);
    if (lines) return loadRecords(lines, file, opts);
    const loaded = loadObjectLists(bytes, start, file, opts);
    if (loaded) return loaded;
  }
  return parseCases(parseBenchmarkText(decodeUtf8(bytes, file), file), { ...opts, source: file });
}

/** The longest text a string holds (2^29 − 24 UTF-16 units in V8: 512 MiB of ASCII). */
const TEXT_LIMIT = `the ${Math.round(bufferConstants.MAX_STRING_LENGTH / 2 ** 20)} MiB one text can hold (a JavaScript string's limit)`;

/**
 * Text decoded as UTF-8, refusing other encodings by name: read as UTF-8 anyway, UTF-16 gives a
 * garbled parse error and Latin-1 accents silently become U+FFFD in prompts and targets. `offset`
 * is where `bytes` start in the file; `name` names them (a record, a line) where that is not the
 * whole file. Bytes over the string limit are named as such (the decoder's failure there looked
 * like bad UTF-8).
 */
function decodeUtf8(bytes: Buffer, file: string, offset = 0, name?: () => string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_STRING_TOO_LONG') {
      const size = `${(bytes.length / 2 ** 20).toFixed(1)} MiB`;
      throw new AmendError(name
        ? `${file}: ${name()} is ${size}, over ${TEXT_LIMIT}; is it the file meant?`
        : `${file}: is ${size} of one JSON document, over ${TEXT_LIMIT}; give the records as a JSON list or JSON Lines, which are read a record at a time`);
    }
    throw notUtf8(file, bytes, offset);
  }
}

function checkNotUtf16(bytes: Buffer, file: string): void {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || bytes.subarray(0, 64).includes(0)) {
    throw new AmendError(`${file}: is UTF-16 (or binary), not UTF-8 text; save it as UTF-8`);
  }
}

/** The error for bytes of the file (from byte `offset` on) that are not UTF-8. */
function notUtf8(file: string, bytes: Buffer, offset: number): AmendError {
  const at = firstInvalidUtf8(bytes);
  const where = at >= 0 ? ` (byte 0x${bytes[at]!.toString(16)} at offset ${offset + at}; Latin-1?)` : '';
  return new AmendError(`${file}: is not valid UTF-8${where}; save it as UTF-8`);
}

/**
 * Offset of the first byte that does not start, or is not followed by, a well-formed UTF-8
 * sequence's bytes, or -1 (the decoder also refuses overlong forms and surrogates, not looked for).
 */
function firstInvalidUtf8(b: Buffer): number {
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0) return i;
    for (let k = 1; k < n; k++) if (i + k >= b.length || (b[i + k]! & 0xc0) !== 0x80) return i;
    i += n;
  }
  return -1;
}

/** The edits a case asks for: its `edits` (MQuAKE) or the case itself. */
export function caseRequests(c: EditCase): EditCase[] {
  return c.edits && c.edits.length > 0 ? c.edits : [c];
}
