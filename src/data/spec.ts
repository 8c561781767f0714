// What a format is to the loaders: how it is recognised and how its records become cases. Not
// public: 'amend/data' exports the loaders and the types of what they return (types.ts).
import type { EditCase } from '../editors/types.js';
import type { Json, RecordContext } from './fields.js';
import type { DatasetFormat, SkippedRecord } from './types.js';

/** The items of a list, one at a time: a file's records, or a list inside a file's object. */
export interface ItemReader {
  /** The next item, parsed (with its line in a JSON Lines file), or undefined after the last. */
  next(): { value: Json; line?: number } | undefined;
  /** How many items the list has; those not read yet are counted, not parsed. */
  total(): number;
}

/** A converter for one record of a list-of-records format. */
export type RecordConverter = (rec: Json, ctx: RecordContext) => EditCase | { skip: string };

/** The cases a format's loading kept, how many items its list has, and those it skipped. */
export interface ConvertedCases {
  cases: EditCase[];
  total: number;
  skipped: SkippedRecord[];
}

interface FormatInfo {
  name: DatasetFormat;
  description: string;
  /** Whether one record ('records') or the whole content ('object') looks like this format. */
  matches(x: Json): boolean;
}

/** A format whose content is a list of records (a JSON list, JSON Lines), each converted alone. */
export interface RecordsFormatSpec extends FormatInfo {
  shape: 'records';
  convert: RecordConverter;
  /**
   * The format's own converter, before the check that a record is an object: formats that share
   * it (KnowEdit's ZsRE, WikiData_counterfact and WikiData_recent) read a record alike, so a record
   * that looks like one of them in a file of another loses nothing.
   */
  reads: RecordConverter;
  /**
   * Formats whose cases refer to one another (KnowEdit ConvSent: a case's "outer" topic is the
   * next case's): called once with the cases kept, in order, after the last is converted.
   */
  link?(cases: EditCase[]): void;
}

/** A format whose content is one object of lists (KnowEdit Sanitation). */
export interface ObjectFormatSpec extends FormatInfo {
  shape: 'object';
  /** For an object that has this format's keys with values of the wrong kind: what is wrong; else undefined. */
  nearMiss?(x: Json): string | undefined;
  /**
   * Converts the object, reading each list through `list` (undefined for a member that is not a
   * list), an item at a time, until `limit` cases are kept; `source` names it in errors.
   */
  loadLists(list: (key: string) => ItemReader | undefined, source: string, limit: number): ConvertedCases;
}

export type FormatSpec = RecordsFormatSpec | ObjectFormatSpec;
