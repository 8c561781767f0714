// A list-of-records format from a record signature and a per-record converter.
import { isObject, type JsonObject } from './fields.js';
import type { RecordConverter, RecordsFormatSpec } from './spec.js';
import type { DatasetFormat } from './types.js';

export function recordFormat(
  name: DatasetFormat,
  description: string,
  signature: (rec: JsonObject) => boolean,
  convert: RecordConverter,
): RecordsFormatSpec {
  return {
    name,
    description,
    shape: 'records',
    matches: (x) => isObject(x) && signature(x),
    reads: convert as RecordConverter,
    convert: (rec, ctx) => {
      if (!isObject(rec)) ctx.fail(`should be an object, not ${rec === null ? 'null' : Array.isArray(rec) ? 'a list' : `a ${typeof rec}`}`);
      return convert(rec, ctx);
    },
  };
}

/** True when every key is present (and not null) in the record. */
export function hasAll(rec: JsonObject, ...keys: string[]): boolean {
  return keys.every((k) => rec[k] !== undefined && rec[k] !== null);
}
