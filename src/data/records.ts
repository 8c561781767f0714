// A list-of-records format from a record signature and a per-record converter.
import type { EditCase } from '../editors/types.js';
import { RecordContext, isObject, jsonLinesLines, type Json, type JsonObject } from './fields.js';
import type { DatasetFormat, FormatSpec, RecordConverter, SkippedRecord } from './types.js';

export function recordFormat(
  name: DatasetFormat,
  description: string,
  signature: (rec: JsonObject) => boolean,
  convert: RecordConverter,
): FormatSpec {
  const one: RecordConverter = (rec, ctx) => {
    if (!isObject(rec)) ctx.fail(`should be an object, not ${rec === null ? 'null' : Array.isArray(rec) ? 'a list' : `a ${typeof rec}`}`);
    return convert(rec, ctx);
  };
  return {
    name,
    description,
    shape: 'records',
    matches: (x) => isObject(x) && signature(x),
    convert: one,
    load(data, source, limit) {
      const records = data as Json[];
      const lines = jsonLinesLines.get(records);
      const cases: EditCase[] = [];
      const skipped: SkippedRecord[] = [];
      for (let i = 0; i < records.length && cases.length < limit; i++) {
        const out = one(records[i]!, new RecordContext(source, name, i, lines?.[i]));
        if ('skip' in out) skipped.push({ index: i, reason: out.skip });
        else cases.push(out);
      }
      this.link?.(cases);
      return { cases, total: records.length, skipped };
    },
  };
}

/** True when every key is present (and not null) in the record. */
export function hasAll(rec: JsonObject, ...keys: string[]): boolean {
  return keys.every((k) => rec[k] !== undefined && rec[k] !== null);
}
