// What the loaders hand to evaluation.
import type { EditCase } from '../editors/types.js';
import type { Json, RecordContext } from './fields.js';

/** Every format loadCases understands (detected from the content, never from the file name). */
export type DatasetFormat =
  | 'counterfact'
  | 'counterfact-easyedit'
  | 'amend-world'
  | 'zsre-mend'
  | 'wise-zsre-portability'
  | 'wise-temporal'
  | 'wise-hallucination'
  | 'knowedit-zsre'
  | 'knowedit-wiki-counterfact'
  | 'knowedit-wiki-recent'
  | 'knowedit-wikibio'
  | 'knowedit-convsent'
  | 'knowedit-sanitation'
  | 'mquake'
  | 'mquake-remastered'
  | 'rome-knowns'
  | 'evedit'
  | 'amend-cases';

export interface SkippedRecord {
  index: number;
  reason: string;
}

export interface LoadedCases {
  format: DatasetFormat;
  /** One line: what the format is and where it comes from. */
  description: string;
  cases: EditCase[];
  /** Records in the file (before `limit`). */
  total: number;
  /** Records left out on purpose, as the reference loaders do (e.g. zsRE records with an empty `alt`). */
  skipped: SkippedRecord[];
}

export interface LoadOptions {
  /** Keep the first `limit` cases (after skipped records). */
  limit?: number;
  /** Force a format instead of detecting it (the records are still validated). */
  format?: DatasetFormat;
}

/** The items of a list, one at a time: a file's records, or a list inside a file's object. */
export interface ItemReader {
  /** The next item, parsed (with its line in a JSON Lines file), or undefined after the last. */
  next(): { value: Json; line?: number } | undefined;
  /** How many items the list has; those not read yet are counted, not parsed. */
  total(): number;
}

/** A converter for one record of a list-of-records format. */
export type RecordConverter = (rec: Json, ctx: RecordContext) => EditCase | { skip: string };

export interface FormatSpec {
  name: DatasetFormat;
  description: string;
  /** 'records': the file is a list of records; 'object': the file is one object (KnowEdit Sanitation). */
  shape: 'records' | 'object';
  /** Whether one record ('records') or the whole file ('object') looks like this format. */
  matches(x: Json): boolean;
  /** Converts a file of this format; `source` names it in errors. */
  load(data: Json, source: string, limit: number): { cases: EditCase[]; total: number; skipped: SkippedRecord[] };
  /** 'records' formats: converts one record (what load does to each), for files read a record at a time. */
  convert?: RecordConverter;
  /**
   * 'object' formats whose members are lists: what load does, reading each list through `list`
   * (undefined for a member that is not a list), for files read an item at a time.
   */
  loadLists?(list: (key: string) => ItemReader | undefined, source: string, limit: number): { cases: EditCase[]; total: number; skipped: SkippedRecord[] };
}
