// The record an Amend export writes into its weight files' safetensors metadata
// ("amend_base_fingerprint", "amend_patches", "amend_fingerprint"; see export.ts), read back. Its
// own module so that the edit session can read it too (export.ts depends on the session).
//
// "amend_fingerprint" is the fingerprint of the exported weights themselves (exports before it
// have none). The record describes those weights only: a model loaded from the folder whose
// fingerprint differs was changed after the export (fine-tuned, re-quantised, edited by hand) and
// the edit session does not trust the record (session.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError } from '../errors.js';
import { INDEX_FILE, SINGLE_WEIGHTS } from '../io/checkpoint.js';
import { readSafetensorsHeader } from '../io/safetensors.js';

/** The metadata keys of the record. */
export const RECORD_KEYS = ['amend_base_fingerprint', 'amend_patches', 'amend_fingerprint'] as const;

export interface ExportProvenance {
  /** The weight file whose metadata was read. */
  file: string;
  baseFingerprint: string;
  /** Fingerprint of the exported weights as written; null in an export made before it was recorded. */
  weightsFingerprint: string | null;
  patches: { id: string; method: string; requests: number; createdAt: string }[];
}

/**
 * What an exported checkpoint says about its edits (the metadata exportModel writes), or null
 * for a checkpoint that carries none (not exported by Amend from an edited model).
 */
export function exportProvenance(dir: string): ExportProvenance | null {
  let file = path.join(dir, SINGLE_WEIGHTS);
  if (!fs.existsSync(file)) {
    const indexFile = path.join(dir, INDEX_FILE);
    if (!fs.existsSync(indexFile)) throw new AmendError(`${dir}: no ${SINGLE_WEIGHTS} or ${INDEX_FILE}; not a model directory`);
    let wm: Record<string, string>;
    try {
      wm = (JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    } catch (err) {
      throw new AmendError(`${indexFile}: cannot read it: ${(err as Error).message}`);
    }
    const first = Object.values(wm ?? {}).sort()[0];
    if (!first) throw new AmendError(`${indexFile}: the weight_map is empty`);
    file = path.join(dir, first);
  }
  const meta = readSafetensorsHeader(file).metadata;
  if (meta.amend_patches === undefined) return null;
  let patches: ExportProvenance['patches'];
  try {
    patches = JSON.parse(meta.amend_patches);
  } catch {
    throw new AmendError(`${file}: its "amend_patches" metadata is not valid JSON`);
  }
  return { file, baseFingerprint: meta.amend_base_fingerprint ?? '', weightsFingerprint: meta.amend_fingerprint || null, patches };
}
