// Export ("commit") a model, edited or not, as a complete Hugging Face checkpoint.
//
// The output mirrors the checkpoint the model was loaded from: every tensor under its original
// name, shape and storage dtype (edited F16/BF16 tensors are rounded back to that dtype; `dtype`
// can convert all floating tensors to F32/F16/BF16 instead), the same weight files with the same
// tensors in each (model.safetensors, or the same shards and model.safetensors.index.json), each
// file keeping its own header metadata, plus config.json, generation_config.json, the tokenizer
// files and every other small file of the model directory, copied verbatim. Weight files in other
// formats (pytorch_model*.bin, *.pt, *.h5, *.msgpack, *.gguf, *.onnx...) are NOT copied — they
// would hold the unedited weights — and neither are sub-directories or files over 64 MiB. A model
// whose tokenizer was made in memory gets that tokenizer's files written.
//
// Weights are written from the model's float32 values in memory: for a tensor no patch touched
// that is exactly the original value, so its bytes are identical to the source file's (F32, F16
// and BF16 round-trip bit-exactly; integer tensors are exact up to 2^24).
//
// An edited model's weight files also carry, in their safetensors metadata, "amend_base_fingerprint"
// and "amend_patches" (JSON: id, method, number of requests, createdAt of each applied patch, in
// order), so an edited checkpoint never passes for the original, and "amend_fingerprint", the
// fingerprint of the weights as written (computed from the sampled values rounded to their storage
// dtypes, before writing: milliseconds, no second pass), so that the record is not trusted for
// weights changed after the export (see session.ts). An export of an export carries the source's
// record on, unless the source's weights no longer match it: then it is dropped, and the record
// written (if any patch is applied) starts at the source as it is.
//
// Atomic: everything is written into a temporary directory beside the output, which then replaces
// it by rename; an existing non-empty output directory is refused unless `force`.
import * as fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import * as path from 'node:path';
import { AmendError, optionKeys, refuseUnknownKeys, requireObject, typeName } from '../errors.js';
import { CausalLM } from '../models/model.js';
import { INDEX_FILE, SINGLE_WEIGHTS, indexJson, shardContents, writeCheckpoint } from '../io/checkpoint.js';
import { LOSSY_IN_F32, readRawTensor, readSafetensorsHeader, storageBytes, writeSafetensorsTo, type SafetensorsHeader, type TensorToWrite } from '../io/safetensors.js';
import type { FileDType } from '../io/dtype.js';
import { EditPatch } from './patch.js';
import { assertNotHeld, editSession, sessionOf, trustedExportRecord, type ApplyOptions } from './session.js';
import { exportProvenance, RECORD_KEYS } from './provenance.js';
import { storedFingerprint } from '../models/fingerprint.js';
import { checkCanBeFolder, checkCanWriteAt, refuseReplacingWholeFolder, removeDeadTemps, replaceFolder, restoreReplacedFolders, tempDirBeside } from '../io/dirs.js';

export { exportProvenance, type ExportProvenance } from './provenance.js';

export type ExportDType = 'keep' | 'F32' | 'F16' | 'BF16';

export interface ExportOptions {
  /** Storage dtype of floating tensors: 'keep' (default: each tensor's original dtype) or one for all. */
  dtype?: ExportDType | 'f32' | 'f16' | 'bf16';
  /** Replace an existing non-empty output directory. */
  force?: boolean;
  /** Shard size when the model has no source directory to copy the sharding from (default 5 GB). */
  maxShardBytes?: number;
  /** Bytes of weights written so far / in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

const EXPORT_OPTION_KEYS = optionKeys<ExportOptions>()(['dtype', 'force', 'maxShardBytes', 'onProgress']);

export interface ExportResult {
  dir: string;
  /** Weight files written and the tensors in each (file order of the index / source). */
  shards: { file: string; names: string[] }[];
  /** Other files copied (or rewritten: config.json after a dtype change). */
  files: string[];
  /** Files of the source directory left out, with the reason. */
  skipped: { file: string; reason: string }[];
  /** Bytes of tensor data. */
  totalSize: number;
  /** Ids of the applied patches the export carries, in order. */
  patches: string[];
  baseFingerprint: string | null;
  /** Fingerprint of the written weights, as their record names it; null when no record is written. */
  weightsFingerprint: string | null;
}

const MAX_COPY_BYTES = 64 * 1024 * 1024;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const OTHER_WEIGHTS_RE = /(\.safetensors|\.bin|\.pt|\.pth|\.ckpt|\.h5|\.msgpack|\.gguf|\.onnx|\.onnx_data|\.tflite|\.ot|\.npz|\.safetensors\.index\.json|\.bin\.index\.json)$/i;
const TORCH_DTYPE: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** 'keep' | 'f32' | 'f16' | 'bf16' (any case) → ExportDType, or a clear error. */
export function parseExportDType(v: string | undefined): ExportDType {
  if (v === undefined) return 'keep';
  const u = v.toUpperCase();
  if (u === 'KEEP') return 'keep';
  if (u === 'F32' || u === 'FLOAT32') return 'F32';
  if (u === 'F16' || u === 'FLOAT16' || u === 'FP16') return 'F16';
  if (u === 'BF16' || u === 'BFLOAT16') return 'BF16';
  throw new AmendError(`--dtype must be keep, f32, f16 or bf16, not "${v}"`);
}

interface SourceLayout {
  shards: { file: string; names: string[]; metadata: Record<string, string> }[];
  /** The parsed index JSON of a sharded source (rewritten with the new total_size). */
  index: Record<string, unknown> | null;
}

/** The weight files of the source directory as CausalLM.loadDir read them (model.safetensors wins). */
function sourceLayout(dir: string): SourceLayout {
  if (fs.existsSync(path.join(dir, SINGLE_WEIGHTS))) {
    const h = readSafetensorsHeader(path.join(dir, SINGLE_WEIGHTS));
    return { shards: [{ file: SINGLE_WEIGHTS, names: h.entries.map((e) => e.name), metadata: h.metadata }], index: null };
  }
  const indexFile = path.join(dir, INDEX_FILE);
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (err) {
    throw new AmendError(`${indexFile}: cannot read the index of the source checkpoint: ${(err as Error).message}`);
  }
  const wm = index.weight_map as Record<string, string> | undefined;
  if (!wm || typeof wm !== 'object') throw new AmendError(`${indexFile}: has no weight_map; cannot reproduce the sharding`);
  const weightMap = new Map(Object.entries(wm));
  const headers = new Map([...new Set(weightMap.values())].map((file) => [file, readSafetensorsHeader(path.join(dir, file))]));
  // The tensors the loader took, shard by shard (those the index forgot included, as transformers loads them).
  const { names } = shardContents(dir, weightMap, headers);
  const shards = [...headers.keys()].sort().map((file) => ({ file, names: names.get(file)!, metadata: headers.get(file)!.metadata }));
  return { shards, index };
}

function isDirEmpty(dir: string): boolean {
  return fs.readdirSync(dir).length === 0;
}

function sameDir(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Checks an output directory before any work (so a command fails before loading a model): it must
 * be absent, empty, or non-empty with `force`, and not the source model's directory.
 */
export function checkExportDir(out: string, source: string | null, force: boolean): void {
  refuseReplacingWholeFolder(out, 'an export');
  // A killed export's leftovers first: one may put a replaced output back at `out`.
  if (fs.statSync(path.dirname(out), { throwIfNoEntry: false })?.isDirectory()) removeStaleExports(path.dirname(out));
  if (source && sameDir(out, source)) {
    throw new AmendError(`${out}: is the directory the model was loaded from; export into a new directory`);
  }
  // An export replaces the whole folder: one that holds the model it reads would take the model with it.
  if (source && fs.existsSync(out) && fs.existsSync(source)) {
    const rel = path.relative(fs.realpathSync(out), fs.realpathSync(source));
    if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) {
      throw new AmendError(`${out}: holds the model being read (${source}), which replacing the folder would delete; export into a new directory`);
    }
  }
  checkCanBeFolder(out);
  checkCanWriteAt(out);
  if (!fs.existsSync(out)) return; // absent: fine
  if (!isDirEmpty(out) && !force) {
    throw new AmendError(`${out}: exists and is not empty; pass --force (force: true) to replace it (its files are deleted), or choose another folder`);
  }
}

/**
 * An export killed mid-write (Ctrl-C, a crash) leaves its temporary folder beside `out`; the next
 * export into the same parent folder removes this user's whose process is gone, whatever their name,
 * and puts back a folder it was replacing when the kill came between the two renames.
 */
function removeStaleExports(parent: string): void {
  removeDeadTemps(parent, /^\..+\.amend-export-(\d+)-[a-z0-9]+$/);
  restoreReplacedFolders(parent);
}

/**
 * Moves the finished temp dir to `out`, replacing an existing one. The check at the start does not
 * hold for the whole export: without force, a folder that gained files meanwhile (another export
 * into it, say) is refused here.
 */
function moveIntoPlace(tmp: string, out: string, force: boolean): void {
  const appeared = () => new AmendError(`${out}: files appeared in it while the export ran; pass --force (force: true) to replace it, or choose another folder; nothing was written`);
  if (!force && fs.existsSync(out) && !isDirEmpty(out)) throw appeared();
  try {
    replaceFolder(tmp, out);
  } catch (err) {
    // Made and filled between the check and the rename: rename refuses a non-empty folder.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw appeared();
    throw err;
  }
}

/** Where a float32 value rounds to infinity in a 16-bit float: F16's max is 65504, BF16's ~3.39e38. */
const OVERFLOW_AT: Partial<Record<FileDType, number>> = {
  F16: 65520, // halfway from 65504 to 2^16, and rounding to even goes up
  BF16: new Float32Array(new Uint32Array([0x7f7f8000]).buffer)[0]!, // the same halfway point
};

/**
 * Warns when finite weights become ±inf in a 16-bit storage dtype (torch's .half() does so
 * silently, and the checkpoint then gives NaN logits).
 */
function warnOverflow(model: CausalLM, storage: (name: string) => FileDType, out: string): void {
  let count = 0;
  const names: string[] = [];
  let first = 0;
  for (const [name, t] of model.weights) {
    const dt = storage(name), limit = OVERFLOW_AT[dt];
    if (limit === undefined) continue;
    let here = 0;
    for (let i = 0; i < t.data.length; i++) {
      const x = t.data[i]!;
      if ((x >= limit || x <= -limit) && Number.isFinite(x)) {
        if (count + here === 0) first = x;
        here++;
      }
    }
    if (here > 0) names.push(`${name} (${here}, ${dt})`);
    count += here;
  }
  if (count === 0) return;
  const list = names.slice(0, 3).join(', ') + (names.length > 3 ? `, and ${names.length - 3} more` : '');
  process.emitWarning(`${out}: ${count} finite value(s) are too large for their 16-bit dtype and are stored as ±inf (first ${first}; in ${list}); export in float32 to keep them (--dtype f32)`);
}

/**
 * config.json naming another dtype: the value of its "torch_dtype" (or, in newer files, "dtype")
 * replaced in the text, so that everything else stays as written (10000.0 is not reprinted as
 * 10000); re-serialised only when the text cannot be edited in place to the same object.
 */
function configWithDtype(text: string, cfg: Record<string, unknown>, name: string): string {
  const keys = ['torch_dtype', 'dtype'].filter((k) => typeof cfg[k] === 'string');
  const want: Record<string, unknown> = { ...cfg };
  for (const k of keys.length > 0 ? keys : ['torch_dtype']) want[k] = name;
  let out = text;
  for (const k of keys) out = out.replace(new RegExp(`("${k}"\\s*:\\s*)"[^"\\\\]*"`), `$1"${name}"`);
  try {
    if (keys.length > 0 && isDeepStrictEqual(JSON.parse(out), want)) return out;
  } catch {
    // fall through
  }
  return JSON.stringify(want, null, 2) + '\n';
}

/**
 * config.json from the model's parsed config, for a model without one on disk: a dtype change
 * goes where the config names its dtype ("dtype" included, which newer transformers read first).
 */
function configOfModel(model: CausalLM, dtype: ExportDType): string {
  const text = JSON.stringify(model.config.raw, null, 2) + '\n';
  return dtype === 'keep' ? text : configWithDtype(text, model.config.raw, TORCH_DTYPE[dtype]);
}

/** The source's index with the new sizes (total_parameters only where the source had it). */
function indexText(index: Record<string, unknown>, totalSize: number, totalParameters: number, weightMap: Map<string, string>): string {
  const meta = { ...((index.metadata as Record<string, unknown> | undefined) ?? {}) };
  meta.total_size = totalSize;
  if ('total_parameters' in meta) meta.total_parameters = totalParameters;
  return indexJson(meta, weightMap, index);
}

/**
 * Writes `model` (with whatever patches its edit session has applied) as a complete Hugging Face
 * checkpoint in `outDir` — the "commit" of an edit session (see the file comment).
 */
export function exportModel(model: CausalLM, outDir: string, opts: ExportOptions | null = {}): ExportResult {
  requireObject(model, 'export takes a loaded model (CausalLM.load(dir))');
  if (typeof outDir !== 'string' || outDir === '') throw new AmendError('export needs the output folder as a path (a non-empty string)');
  opts ??= {};
  requireObject(opts, 'export takes options as an object ({ dtype: "f16" }, say)');
  refuseUnknownKeys(opts, EXPORT_OPTION_KEYS, 'export');
  if (opts.dtype !== undefined && typeof opts.dtype !== 'string') throw new AmendError(`export: dtype must be keep, F32, F16 or BF16, not ${typeof opts.dtype}`);
  const out = path.resolve(outDir);
  const dtype = parseExportDType(opts.dtype);
  assertNotHeld(model, 'export'); // a run's temporary edit would be written as if it were the model's
  checkExportDir(out, model.dir, opts.force === true);
  const storage = (name: string): FileDType => {
    const orig = (model.dtypes.get(name) ?? 'F32') as FileDType;
    return dtype !== 'keep' && FLOAT_DTYPES.has(orig) ? dtype : orig;
  };
  const record = exportRecordMeta(model, storage);
  warnOverflow(model, storage, out);
  const source = model.dir;
  const layout = source ? sourceLayout(source) : null;
  if (source && layout) checkLayoutMatches(model, layout, source);

  let tmp: string;
  try {
    tmp = tempDirBeside(out, 'amend-export');
  } catch (err) {
    throw new AmendError(`${out}: cannot create a folder beside it to write into (${(err as Error).message}); choose a writable place`);
  }
  const result: ExportResult = {
    dir: out, shards: [], files: [], skipped: [], totalSize: 0,
    patches: record.patches, baseFingerprint: record.baseFingerprint, weightsFingerprint: record.meta.amend_fingerprint ?? null,
  };
  try {
    if (!source || !layout) {
      // No source directory: transformers' own sharding, config.json from the parsed config.
      const records = [...model.weights].map(([name, t]) => ({ name, shape: [...t.shape], data: t.data, dtype: storage(name) }));
      const written = writeCheckpoint(tmp, records, { maxShardBytes: opts.maxShardBytes, metadata: record.meta });
      result.shards = written.shards;
      result.totalSize = written.totalSize;
      fs.writeFileSync(path.join(tmp, 'config.json'), configOfModel(model, dtype));
      result.files.push('config.json');
    } else {
      writeShards(model, source, layout, { tmp, out, storage, meta: record.meta, onProgress: opts.onProgress }, result);
      copySourceFiles(source, layout, tmp, dtype, result);
      if (!fs.existsSync(path.join(tmp, 'config.json'))) {
        fs.writeFileSync(path.join(tmp, 'config.json'), configOfModel(model, dtype));
        result.files.push('config.json');
      }
    }
    // A tokenizer made in memory (a trained world model's) has no files to copy: written from what
    // it was built of, so that the export loads with it.
    if (model.tokenizer && !fs.existsSync(path.join(tmp, 'tokenizer.json'))) {
      for (const [f, text] of model.tokenizer.files()) {
        if (fs.existsSync(path.join(tmp, f))) continue;
        fs.writeFileSync(path.join(tmp, f), text);
        result.files.push(f);
      }
    }
    moveIntoPlace(tmp, out, opts.force === true);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (err instanceof AmendError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ENOSPC') throw new AmendError(`${out}: no space left on the device while exporting; nothing was written`);
    throw new AmendError(`${out}: export failed (${e?.message ?? String(err)}); nothing was written`);
  }
  return result;
}

/**
 * The record the export's weight files carry (see the file comment) as their metadata, empty for a
 * model that carries no patch, and what ExportResult reports of it: the patches (those the source
 * carried, then this session's) and the first base's fingerprint.
 */
function exportRecordMeta(model: CausalLM, storage: (name: string) => FileDType): { meta: Record<string, string>; patches: string[]; baseFingerprint: string | null } {
  // A model loaded from an earlier export already carries patches: the record goes on from them,
  // back to the first base, instead of starting again at the export's own weights — as long as
  // the weights are still those that export wrote.
  const prior = trustedExportRecord(model);
  const session = sessionOf(model);
  const applied = session?.applied() ?? [];
  const entries = [...(prior?.patches ?? []), ...applied.map((p) => ({
    id: p.id, method: p.metadata.method, requests: p.metadata.requests.length, createdAt: p.metadata.createdAt,
  }))];
  const baseFingerprint = (prior?.baseFingerprint || session?.baseFingerprint) ?? null;
  const meta: Record<string, string> = {};
  if (applied.length > 0 || prior) {
    meta.amend_base_fingerprint = baseFingerprint!; // a session exists: patches are applied, or asking to trust the record made it
    meta.amend_patches = JSON.stringify(entries);
    meta.amend_fingerprint = storedFingerprint(model, storage);
  }
  return { meta, patches: entries.map((p) => p.id), baseFingerprint };
}

/** The model holds exactly the tensors of its source checkpoint's files, or the layout cannot be reproduced. */
function checkLayoutMatches(model: CausalLM, layout: SourceLayout, source: string): void {
  const inLayout = new Set(layout.shards.flatMap((s) => s.names));
  for (const name of model.weights.keys()) {
    if (!inLayout.has(name)) throw new AmendError(`model has tensor "${name}" that its source checkpoint ${source} does not; cannot reproduce the file layout`);
  }
  for (const name of inLayout) {
    if (!model.weights.has(name)) throw new AmendError(`the source checkpoint ${source} has tensor "${name}" that the model does not hold; cannot export a complete checkpoint`);
  }
}

/** Where and how writeShards writes. */
interface ShardTarget {
  /** The temporary folder written into, and the output folder it becomes (for messages). */
  tmp: string;
  out: string;
  storage: (name: string) => FileDType;
  /** The export record (exportRecordMeta), added to each file's own metadata. */
  meta: Record<string, string>;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * The source's weight files again, the same tensors in each, from the model's values (and its
 * index with the new sizes); adds what it wrote to `result`.
 */
function writeShards(model: CausalLM, source: string, layout: SourceLayout, to: ShardTarget, result: ExportResult): void {
  const { storage } = to;
  const total = layout.shards.reduce((s, sh) => s + sh.names.reduce((a, n) => a + storageBytes(model.weights.get(n)!.size, storage(n)), 0), 0);
  let done = 0;
  let totalParameters = 0;
  const weightMap = new Map<string, string>();
  const touched = new Set(sessionOf(model)?.touched() ?? []);
  for (const shard of layout.shards) {
    // Float32 in memory cannot hold every F64 or 64/32-bit integer value: an untouched tensor
    // of such a dtype is copied from the source file byte for byte instead.
    const shardFile = path.join(source, shard.file);
    let header: SafetensorsHeader | null = null;
    const tensors: TensorToWrite[] = shard.names.map((name) => {
      const t = model.weights.get(name)!;
      totalParameters += t.size;
      weightMap.set(name, shard.file);
      const dt = storage(name);
      const raw = LOSSY_IN_F32.has(dt) && dt === model.dtypes.get(name) && !touched.has(name)
        ? readRawTensor(shardFile, (header ??= readSafetensorsHeader(shardFile)), name)
        : undefined;
      return { name, shape: [...t.shape], data: t.data, dtype: dt, raw };
    });
    // The source's own record goes only where the new one carries it on (not when it was not trusted).
    const metadata = { ...shard.metadata, ...to.meta };
    for (const k of RECORD_KEYS) if (!(k in to.meta)) delete metadata[k];
    metadata.format ??= 'pt';
    writeSafetensorsTo(path.join(to.tmp, shard.file), path.join(to.out, shard.file), tensors, metadata);
    const shardBytes = tensors.reduce((s, t) => s + storageBytes(t.data.length, t.dtype!), 0);
    done += shardBytes;
    result.totalSize += shardBytes;
    result.shards.push({ file: shard.file, names: [...shard.names] });
    to.onProgress?.(done, total);
  }
  if (layout.index) {
    fs.writeFileSync(path.join(to.tmp, INDEX_FILE), indexText(layout.index, result.totalSize, totalParameters, weightMap));
    result.files.push(INDEX_FILE);
  }
}

/**
 * Every other small file of the source folder into `tmp`, verbatim (config.json rewritten when
 * the dtype it names changes); what is left out, and why, goes to result.skipped.
 */
function copySourceFiles(source: string, layout: SourceLayout, tmp: string, dtype: ExportDType, result: ExportResult): void {
  const weightFiles = new Set(layout.shards.map((s) => s.file));
  for (const f of fs.readdirSync(source).sort()) {
    if (weightFiles.has(f) || f === INDEX_FILE) continue;
    const from = path.join(source, f);
    if (from === tmp) continue; // an export into a sub-folder of the model's writes beside it, here
    if (f.startsWith('.')) {
      result.skipped.push({ file: f, reason: 'hidden file' });
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(from);
    } catch {
      result.skipped.push({ file: f, reason: 'unreadable (broken link?)' });
      continue;
    }
    if (st.isDirectory()) {
      result.skipped.push({ file: f, reason: 'directory' });
      continue;
    }
    if (!st.isFile()) continue;
    if (OTHER_WEIGHTS_RE.test(f)) {
      result.skipped.push({ file: f, reason: 'weights in another file (would hold the unedited values)' });
      continue;
    }
    if (st.size > MAX_COPY_BYTES) {
      result.skipped.push({ file: f, reason: `larger than ${MAX_COPY_BYTES >> 20} MiB` });
      continue;
    }
    const cfgText = f === 'config.json' && dtype !== 'keep' ? fs.readFileSync(from, 'utf8') : null;
    const cfg = cfgText === null ? null : JSON.parse(cfgText) as Record<string, unknown>;
    // Rewritten only when the dtype it names changes; otherwise copied verbatim like the rest.
    if (cfg && (cfg.torch_dtype !== TORCH_DTYPE[dtype] || ('dtype' in cfg && cfg.dtype !== TORCH_DTYPE[dtype]))) {
      fs.writeFileSync(path.join(tmp, f), configWithDtype(cfgText!, cfg, TORCH_DTYPE[dtype]));
    } else {
      fs.copyFileSync(from, path.join(tmp, f));
    }
    result.files.push(f);
  }
}

export interface ExportPatchedOptions extends ExportOptions {
  /** Apply patches whose fingerprint does not match the model (`--ignore-fingerprint`). */
  ignoreFingerprint?: boolean;
}

const EXPORT_PATCHED_OPTION_KEYS = optionKeys<ExportPatchedOptions>()([...EXPORT_OPTION_KEYS, 'ignoreFingerprint']);

/**
 * Loads a model, applies the patches in order (each checked against the model's fingerprint) and
 * exports the result. Patches are files or EditPatch objects. Given a loaded model, it is left
 * with the patches applied when the export succeeds (revert them with its edit session), and as
 * it was when anything fails.
 */
export async function exportPatched(
  modelIdOrDir: string | CausalLM,
  patches: readonly (string | EditPatch)[],
  outDir: string,
  opts: ExportPatchedOptions | null = {},
): Promise<ExportResult> {
  if (typeof modelIdOrDir !== 'string') requireObject(modelIdOrDir, 'exportPatched takes a loaded model (CausalLM.load(dir)) or a model folder / Hugging Face id');
  if (!Array.isArray(patches)) {
    throw new AmendError(`exportPatched takes an array of patches (EditPatch objects or patch files), not ${patches instanceof EditPatch ? 'one EditPatch (put it in [ ])' : typeName(patches)}`);
  }
  if (typeof outDir !== 'string' || outDir === '') throw new AmendError('exportPatched needs the output folder as a path (a non-empty string)');
  opts ??= {};
  requireObject(opts, 'exportPatched takes options as an object ({ ignoreFingerprint: true }, say)');
  refuseUnknownKeys(opts, EXPORT_PATCHED_OPTION_KEYS, 'exportPatched');
  const { ignoreFingerprint, ...exportOpts } = opts;
  checkExportDir(path.resolve(outDir), null, opts.force === true);
  const loaded = patches.map((p) => (typeof p === 'string' ? EditPatch.load(p) : p));
  const model = typeof modelIdOrDir === 'string' ? await CausalLM.load(modelIdOrDir, { noTokenizer: true }) : modelIdOrDir;
  // Here force replaces the output folder; the fingerprint's override is ignoreFingerprint.
  applyPatchesInOrder(model, loaded, { force: ignoreFingerprint === true, forceName: 'ignoreFingerprint' });
  try {
    return exportModel(model, outDir, exportOpts);
  } catch (err) {
    const session = editSession(model);
    for (let i = loaded.length - 1; i >= 0; i--) session.revert(loaded[i]!);
    throw err;
  }
}

/**
 * Applies patches in order to the model's edit session. One that the checkpoint already carries
 * (its export recorded it) is refused, whatever the fingerprint check says: applied again, its
 * change would count twice. If any fails, those applied before it are reverted: the model is as
 * it was.
 */
export function applyPatchesInOrder(model: CausalLM, patches: readonly EditPatch[], opts: ApplyOptions = {}): void {
  const carried = new Set(model.dir ? exportProvenance(model.dir)?.patches.map((c) => c.id) ?? [] : []);
  const session = editSession(model);
  const applied: EditPatch[] = [];
  try {
    for (const p of patches) {
      if (carried.has(p.id)) throw new AmendError(`${p.label} is already in ${model.dir} (its export recorded it); applying it again would add its change twice`);
      session.apply(p, opts);
      applied.push(p);
    }
  } catch (err) {
    for (let i = applied.length - 1; i >= 0; i--) session.revert(applied[i]!);
    throw err;
  }
}
