// EditPatch: what an editor returns — per touched tensor low-rank factors or a dense delta, plus
// metadata (method, hparams, requests, base-model fingerprint, timings) — and its file format.
//
// File format (one safetensors file, format version 1), all tensors F32:
//   <name>.U      [rows, rank]   low-rank factor U of tensor <name>  (ΔW = U Vᵀ, stored orientation)
//   <name>.V      [cols, rank]   low-rank factor V
//   <name>.delta  <shape>        dense ΔW
//   __metadata__ (string map):
//     format               "amend-patch"
//     amend_patch_version  "1"
//     patch                JSON of PatchMetadata (method, hparams, requests, modelFingerprint, ...)
//     deltas               JSON list, in order, of {name, kind, rows, cols, rank} | {name, kind, shape}
//     amend_patch_id       the content id (EditPatch.id), checked on load (absent in older files)
// The header's metadata can be read with any safetensors reader (e.g. safe_open(...).metadata()).
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { AmendError, requirePath, isObject, optionKeys, refuseUnknownKeys, requireObject } from '../errors.js';
import { amendVersion } from '../version.js';
import type { CausalLM } from '../models/model.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, type SafetensorsHeader, type TensorToWrite } from '../io/safetensors.js';
import type { EditRequest } from '../editors/types.js';
import { deltaNorm, deltaShape, norm2, shapeMismatch, storedValues, validateDelta } from './delta.js';
import { editSession, sessionOf, type ApplyOptions } from './session.js';
import type { PatchMetadata, PatchOrigin, TensorDelta } from './types.js';

export const PATCH_FORMAT = 'amend-patch';
export const PATCH_VERSION = 1;

export { amendVersion };

/** What an editor knows; EditPatch.create fills in the rest of the metadata from the model. */
export interface PatchInit {
  method: string;
  hparams?: Record<string, unknown>;
  requests?: EditRequest[];
  /** Seconds per phase. */
  timings?: Record<string, number>;
}

export interface DeltaDescription {
  name: string;
  kind: 'low_rank' | 'dense';
  /** null for a dense delta. */
  rank: number | null;
  /** Shape of ΔW (= the tensor's stored shape). */
  shape: number[];
  /** Values stored in the patch for this tensor. */
  storedValues: number;
  /** ‖ΔW‖_F. */
  norm: number;
  /** ‖W‖_F of the base tensor (when a model was given and has it). */
  weightNorm?: number;
  /** ‖ΔW‖_F / ‖W‖_F. */
  relative?: number;
  /** Why it would not apply to the given model. */
  problem?: string;
}

export interface PatchDescription {
  id: string;
  file: string | null;
  format: { name: string; version: number };
  method: string;
  /** The model the patch was made for. */
  model: { modelType: string; source: string | null; fingerprint: string };
  createdAt: string;
  amendVersion: string;
  appliedOn: string[];
  /** When it was made on a model loaded from an export: that export's first base and patches. */
  origin: PatchOrigin | null;
  hparams: Record<string, unknown>;
  requests: EditRequest[];
  timings: Record<string, number>;
  tensors: DeltaDescription[];
  totals: { tensors: number; storedValues: number; bytes: number; norm: number };
  /**
   * When a model was given: its base fingerprint and whether the patch matches it (its fingerprint,
   * or its origin's base after the origin's patches), and if not why (the refusal apply would give).
   */
  target?: { source: string | null; modelType: string; fingerprint: string; fingerprintMatches: boolean; fingerprintProblem?: string; applicable: boolean };
}

function jsonMeta(meta: PatchMetadata): string {
  try {
    return JSON.stringify(meta);
  } catch (err) {
    throw new AmendError(`patch metadata cannot be written as JSON: ${(err as Error).message}`);
  }
}

function checkMetadata(m: unknown, where: string): PatchMetadata {
  if (!isObject(m)) throw new AmendError(`${where}: the patch metadata is not an object`);
  const need = (k: string, ok: (v: unknown) => boolean, what: string): void => {
    if (!ok(m[k])) throw new AmendError(`${where}: the patch metadata's "${k}" is ${JSON.stringify(m[k]) ?? 'missing'}, expected ${what}`);
  };
  need('method', (v) => typeof v === 'string' && v.length > 0, 'a method name');
  need('modelFingerprint', (v) => typeof v === 'string' && v.length > 0, 'a model fingerprint');
  need('hparams', isObject, 'an object');
  const isRequest = (r: unknown): boolean => isObject(r) && ['prompt', 'subject', 'targetNew'].every((k) => typeof r[k] === 'string');
  need('requests', (v) => Array.isArray(v) && v.every(isRequest), 'a list of requests {prompt, subject, targetNew}');
  need('createdAt', (v) => typeof v === 'string', 'a date');
  need('amendVersion', (v) => typeof v === 'string', 'the version that wrote it');
  need('timings', isObject, 'an object of seconds');
  need('model', (v) => isObject(v) && typeof v.modelType === 'string', '{modelType, source}');
  if (m.appliedOn !== undefined) need('appliedOn', (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'a list of patch ids');
  if (m.origin !== undefined) {
    need('origin', (v) => isObject(v) && typeof v.baseFingerprint === 'string' && v.baseFingerprint.length > 0 &&
      Array.isArray(v.patches) && v.patches.every((x) => typeof x === 'string'), '{baseFingerprint, patches: a list of patch ids}');
  }
  return m as unknown as PatchMetadata;
}

export interface SavePatchOptions {
  /** Refuse to replace an existing file, even one that appears while the patch is written. */
  noClobber?: boolean;
}

const SAVE_PATCH_OPTION_KEYS = optionKeys<SavePatchOptions>()(['noClobber']);

export class EditPatch {
  readonly deltas: readonly TensorDelta[];
  readonly metadata: PatchMetadata;
  /** The file it was loaded from or last saved to. */
  file: string | null = null;
  private cachedId: string | null = null;

  /** Checks every delta (structure, finite values, one delta per tensor) and the metadata. */
  constructor(deltas: readonly TensorDelta[], metadata: PatchMetadata) {
    if (!Array.isArray(deltas)) throw new AmendError('EditPatch: deltas must be an array');
    const seen = new Set<string>();
    for (const d of deltas) {
      validateDelta(d);
      if (seen.has(d.name)) throw new AmendError(`EditPatch: tensor "${d.name}" has two deltas; merge them into one`);
      seen.add(d.name);
    }
    this.deltas = Object.freeze([...deltas]);
    this.metadata = checkMetadata(metadata, 'EditPatch');
  }

  /**
   * A patch computed on `model`: the metadata's fingerprint is the model's *base* fingerprint (its
   * edit session's, so patches computed on an already edited model still stack on the same base),
   * appliedOn lists the patches applied at that moment, and origin the first base and patches of
   * the export the model was loaded from, if it was.
   */
  static create(model: CausalLM, deltas: readonly TensorDelta[], init: PatchInit): EditPatch {
    const session = editSession(model);
    const metadata: PatchMetadata = {
      method: init.method,
      hparams: init.hparams ?? {},
      requests: init.requests ?? [],
      modelFingerprint: session.baseFingerprint,
      model: { modelType: model.config.modelType, source: model.dir },
      createdAt: new Date().toISOString(),
      timings: init.timings ?? {},
      amendVersion: amendVersion(),
    };
    const applied = session.applied();
    if (applied.length > 0) metadata.appliedOn = applied.map((p) => p.id);
    const origin = session.exportOrigin();
    if (origin) metadata.origin = origin;
    return new EditPatch(deltas, metadata);
  }

  /**
   * Content id: sha256 (hex) over the metadata JSON and every delta's name, kind, shape and
   * float32 bytes. Equal for a patch and its saved-and-loaded copy.
   */
  get id(): string {
    if (this.cachedId) return this.cachedId;
    const h = createHash('sha256');
    h.update(jsonMeta(this.metadata));
    for (const d of this.deltas) {
      h.update(`\0${d.name}\0${d.kind}\0${deltaShape(d).join(',')}\0${d.kind === 'low_rank' ? d.rank : ''}\0`);
      const arrays = d.kind === 'low_rank' ? [d.U, d.V] : [d.delta];
      for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    return (this.cachedId = h.digest('hex'));
  }

  /** For messages: `rome patch 1a2b3c4d5e6f (edits.safetensors)`. */
  get label(): string {
    return `${this.metadata.method} patch ${this.id.slice(0, 12)}${this.file ? ` (${path.basename(this.file)})` : ''}`;
  }

  /** Names of the tensors it changes, in order. */
  touched(): string[] {
    return this.deltas.map((d) => d.name);
  }

  /**
   * Writes the patch as one safetensors file (atomically: temporary name, then rename). With
   * `noClobber`, an existing file is never replaced, even one that appeared during the write.
   */
  save(file: string, opts: SavePatchOptions | null = {}): void {
    requirePath(file, 'EditPatch.save needs the file to write');
    opts ??= {};
    requireObject(opts, 'EditPatch.save takes options as an object ({ noClobber: true })');
    refuseUnknownKeys(opts, SAVE_PATCH_OPTION_KEYS, 'EditPatch.save');
    const tensors: TensorToWrite[] = [];
    const index: Record<string, unknown>[] = [];
    for (const d of this.deltas) {
      if (d.kind === 'low_rank') {
        tensors.push({ name: `${d.name}.U`, shape: [d.rows, d.rank], data: d.U, dtype: 'F32' });
        tensors.push({ name: `${d.name}.V`, shape: [d.cols, d.rank], data: d.V, dtype: 'F32' });
        index.push({ name: d.name, kind: d.kind, rows: d.rows, cols: d.cols, rank: d.rank });
      } else {
        tensors.push({ name: `${d.name}.delta`, shape: [...d.shape], data: d.delta, dtype: 'F32' });
        index.push({ name: d.name, kind: d.kind, shape: [...d.shape] });
      }
    }
    writeSafetensors(file, tensors, {
      format: PATCH_FORMAT,
      amend_patch_version: String(PATCH_VERSION),
      patch: jsonMeta(this.metadata),
      deltas: JSON.stringify(index),
      // checked on load: a flipped bit or a renamed tensor would otherwise apply silently
      amend_patch_id: this.id,
    }, opts);
    this.file = file;
  }

  /** Reads a patch file; one clear line when it is not a patch, is corrupt or is too new. */
  static load(file: string): EditPatch {
    requirePath(file, 'EditPatch.load needs the patch file');
    const where = file;
    const { header, metadata, index } = readPatchHeader(file);
    const expected = expectedTensors(index, where);
    const entries = new Map(header.entries.map((e) => [e.name, e]));
    for (const [tname, shape] of expected) {
      const e = entries.get(tname);
      if (!e) throw new AmendError(`${where}: tensor "${tname}" listed in the header's deltas is missing from the file; the file is corrupt`);
      if (e.dtype !== 'F32') throw new AmendError(`${where}: tensor "${tname}" is ${e.dtype}; patch tensors are F32 — the file is corrupt`);
      if (e.shape.length !== shape.length || e.shape.some((x, i) => x !== shape[i])) {
        throw new AmendError(`${where}: tensor "${tname}" has shape [${e.shape.join(', ')}] but the header's deltas say [${shape.join(', ')}]; the file is corrupt`);
      }
    }
    for (const name of entries.keys()) {
      if (!expected.has(name)) throw new AmendError(`${where}: tensor "${name}" is not in the header's list of deltas; the file is corrupt`);
    }
    const { tensors } = readSafetensors(file);
    const deltas: TensorDelta[] = index.map((item) => {
      const name = item.name as string;
      if (item.kind === 'low_rank') {
        const { rows, cols, rank } = item as { rows: number; cols: number; rank: number };
        return { kind: 'low_rank', name, rows, cols, rank, U: tensors.get(`${name}.U`)!.data, V: tensors.get(`${name}.V`)!.data };
      }
      return { kind: 'dense', name, shape: [...(item.shape as number[])], delta: tensors.get(`${name}.delta`)!.data };
    });
    let patch: EditPatch;
    try {
      patch = new EditPatch(deltas, metadata as PatchMetadata);
    } catch (err) {
      // The constructor's messages (the deltas', the metadata's) named with the file instead.
      if (err instanceof AmendError) throw new AmendError(`${where}: ${err.message.replace(/^EditPatch: /, '')}`);
      throw err;
    }
    // Files written before the id was recorded have none, and load as they are.
    const recordedId = header.metadata.amend_patch_id;
    if (recordedId !== undefined && recordedId !== patch.id) {
      throw new AmendError(`${where}: the patch's contents do not match the id recorded when it was written (${recordedId.slice(0, 12)}, now ${patch.id.slice(0, 12)}); the file was changed or damaged since — make the patch again`);
    }
    patch.file = file;
    return patch;
  }

  /** Applies the patch to the model through its edit session (see session.ts). */
  apply(model: CausalLM, opts: ApplyOptions = {}): void {
    editSession(model).apply(this, opts);
  }

  /** Reverts this patch (wherever it sits in the model's stack), exactly. */
  revert(model: CausalLM): void {
    const s = sessionOf(model);
    if (!s || !s.applied().some((p) => p.id === this.id)) throw new AmendError(`${this.label} is not applied to this model; nothing to revert`);
    s.revert(this);
  }

  /** Everything `amend patch show` prints; with a model, also ‖ΔW‖/‖W‖ and whether it applies. */
  describe(model?: CausalLM): PatchDescription {
    const m = this.metadata;
    const session = model ? editSession(model) : undefined;
    const tensors: DeltaDescription[] = this.deltas.map((d) => {
      const out: DeltaDescription = {
        name: d.name,
        kind: d.kind,
        rank: d.kind === 'low_rank' ? d.rank : null,
        shape: deltaShape(d),
        storedValues: storedValues(d),
        norm: deltaNorm(d),
      };
      if (model) {
        const t = model.weights.get(d.name);
        if (!t) out.problem = 'the model has no such tensor';
        // The short form of shapeMismatch's reason: the row already names the tensor and its shape.
        else if (shapeMismatch(d, t.shape) !== null) out.problem = `the model's tensor is [${t.shape.join(', ')}]`;
        else {
          const base = session!.original(d.name) ?? t.data;
          out.weightNorm = norm2(base);
          out.relative = out.weightNorm > 0 ? out.norm / out.weightNorm : Infinity;
        }
      }
      return out;
    });
    const stored = tensors.reduce((s, t) => s + t.storedValues, 0);
    const desc: PatchDescription = {
      id: this.id,
      file: this.file,
      format: { name: PATCH_FORMAT, version: PATCH_VERSION },
      method: m.method,
      model: { modelType: m.model?.modelType ?? 'unknown', source: m.model?.source ?? null, fingerprint: m.modelFingerprint },
      createdAt: m.createdAt,
      amendVersion: m.amendVersion,
      appliedOn: m.appliedOn ?? [],
      origin: m.origin ?? null,
      hparams: m.hparams,
      requests: m.requests,
      timings: m.timings,
      tensors,
      totals: {
        tensors: tensors.length,
        storedValues: stored,
        bytes: stored * 4,
        norm: Math.sqrt(tensors.reduce((s, t) => s + t.norm * t.norm, 0)),
      },
    };
    if (model && session) {
      const place = session.placement(this);
      desc.target = {
        source: model.dir,
        modelType: model.config.modelType,
        fingerprint: session.baseFingerprint,
        fingerprintMatches: 'after' in place,
        ...('problem' in place ? { fingerprintProblem: `${this.label} ${place.problem}` } : {}),
        applicable: tensors.every((t) => !t.problem),
      };
    }
    return desc;
  }
}

/**
 * A patch file's header: that it is an Amend patch of a version this Amend reads, its metadata
 * (parsed, checked by the EditPatch constructor) and its list of deltas (a list; each entry is
 * checked by expectedTensors).
 */
function readPatchHeader(file: string): { header: SafetensorsHeader; metadata: unknown; index: Record<string, unknown>[] } {
  const where = file;
  let header: SafetensorsHeader;
  try {
    header = readSafetensorsHeader(file);
  } catch (err) {
    if (err instanceof AmendError && !/no such file|is a directory|not a regular file|permission denied/.test(err.message)) {
      // The reader's message starts with the file's base name; say it once.
      const detail = err.message.startsWith(`${path.basename(file)}: `) ? err.message.slice(path.basename(file).length + 2) : err.message;
      throw new AmendError(`${where}: not a readable patch file: ${detail}`);
    }
    throw err;
  }
  const meta = header.metadata;
  if (meta.format !== PATCH_FORMAT) {
    const looksLikeWeights = header.entries.length > 0 && (meta.format === 'pt' || meta.format === undefined);
    throw new AmendError(
      `${where}: not an Amend patch (its safetensors metadata has format ${JSON.stringify(meta.format ?? null)}, not "${PATCH_FORMAT}")` +
        (looksLikeWeights ? `; it looks like model weights (${header.entries.length} tensors) — pass it as --model, not as a patch` : ''),
    );
  }
  // Decimal digits only: Number() also reads "0x1", "1e0", " 1" and "1.0" as 1.
  const version = /^[1-9]\d*$/.test(meta.amend_patch_version ?? '') ? Number(meta.amend_patch_version) : NaN;
  if (!Number.isSafeInteger(version)) {
    throw new AmendError(`${where}: the patch has format version ${JSON.stringify(meta.amend_patch_version ?? null)}, not a positive integer; the file is corrupt`);
  }
  if (version > PATCH_VERSION) {
    throw new AmendError(`${where}: the patch was written in format version ${version} by a newer Amend; this one (${amendVersion()}) reads version ${PATCH_VERSION} — upgrade amend`);
  }
  let metadata: unknown;
  let index: unknown;
  try {
    metadata = JSON.parse(meta.patch ?? '');
  } catch {
    throw new AmendError(`${where}: the patch metadata ("patch" in the header) is missing or not valid JSON; the file is corrupt`);
  }
  try {
    index = JSON.parse(meta.deltas ?? '');
  } catch {
    throw new AmendError(`${where}: the list of deltas ("deltas" in the header) is missing or not valid JSON; the file is corrupt`);
  }
  if (!Array.isArray(index)) throw new AmendError(`${where}: the list of deltas in the header is not a list; the file is corrupt`);
  return { header, metadata, index: index as Record<string, unknown>[] };
}

/** The tensors the header's list of deltas says the file holds, and their shapes; one error per malformed entry. */
function expectedTensors(index: readonly Record<string, unknown>[], where: string): Map<string, number[]> {
  const expected = new Map<string, number[]>();
  for (const item of index) {
    const name = item?.name;
    if (typeof name !== 'string' || name.length === 0) throw new AmendError(`${where}: a delta in the header has no tensor name; the file is corrupt`);
    if (item.kind === 'low_rank') {
      const { rows, cols, rank } = item as { rows: number; cols: number; rank: number };
      for (const [k, x] of Object.entries({ rows, cols, rank })) {
        if (!Number.isSafeInteger(x) || x < 1) throw new AmendError(`${where}: low-rank delta "${name}" has ${k} ${JSON.stringify(x)} in the header, not a positive integer; the file is corrupt`);
      }
      expected.set(`${name}.U`, [rows, rank]);
      expected.set(`${name}.V`, [cols, rank]);
    } else if (item.kind === 'dense') {
      if (!Array.isArray(item.shape)) throw new AmendError(`${where}: dense delta "${name}" has no shape in the header; the file is corrupt`);
      expected.set(`${name}.delta`, item.shape as number[]);
    } else {
      throw new AmendError(`${where}: delta "${name}" has kind ${JSON.stringify(item.kind)} (this Amend knows low_rank and dense); the file is corrupt or newer`);
    }
  }
  return expected;
}

/** Whether `file` is a safetensors file written as an Amend patch (its header alone is read). */
export function isPatchFile(file: string): boolean {
  try {
    return readSafetensorsHeader(file).metadata.format === PATCH_FORMAT;
  } catch {
    return false;
  }
}
