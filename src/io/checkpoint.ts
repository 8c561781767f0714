// Hugging Face checkpoints: a single `model.safetensors`, or shards
// `model-00001-of-0000N.safetensors` listed by `model.safetensors.index.json`
// ({"metadata": {"total_size": ...}, "weight_map": {tensor name: shard file}}).
//
// Writing mirrors transformers' save_pretrained: shards filled in tensor order up to a byte limit
// (a tensor larger than the limit gets a shard of its own), every file carrying the metadata
// {"format": "pt"} that transformers checks for, the index written with sorted keys. All files are
// written under temporary names first and renamed only once every one of them is complete; weight
// files of a previous checkpoint in the same directory that the new one does not use are removed
// (transformers prefers model.safetensors over an index, so a stale one would shadow the new shards).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError, isObject } from '../errors.js';
import {
  readSafetensorsSteps,
  readSafetensorsHeader,
  storageBytes,
  writeSafetensorsTo,
  type FileDType,
  type TensorRecord,
  type TensorToWrite,
} from './safetensors.js';
import { makeDirs, tempPathFor } from './dirs.js';
import { isFileDType } from './dtype.js';
import { readModelJson } from './json.js';
import { runSteps, runStepsAsync, type Steps } from './steps.js';

export const SINGLE_WEIGHTS = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;
/** transformers' default max_shard_size ("5GB", decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface CheckpointShard {
  file: string;
  names: string[];
}

export interface Checkpoint {
  tensors: Map<string, TensorRecord>;
  /** `__metadata__` of the weight file (of the first shard for a sharded checkpoint). */
  metadata: Record<string, string>;
  shards: CheckpointShard[];
}

export interface ReadCheckpointOptions {
  filter?: (name: string) => boolean;
  /** Bytes read so far / total bytes to read, across all shards. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new AmendError(`${dir}: no such directory — check the model path`);
    if (e.code === 'ENOTDIR') throw new AmendError(`${dir}: is a file, not a model directory`);
    throw new AmendError(`${dir}: cannot list the directory: ${e.message}`);
  }
}

function noWeightsError(dir: string, files: string[]): AmendError {
  const torch = files.filter((f) => /^pytorch_model.*\.bin(\.index\.json)?$/.test(f));
  if (torch.length > 0) {
    return new AmendError(
      `${dir}: has only PyTorch weights (${torch.slice(0, 3).join(', ')}${torch.length > 3 ? ', …' : ''}); pytorch_model.bin is not supported (it is a pickle) — convert it to model.safetensors (e.g. with transformers: model.save_pretrained(dir, safe_serialization=True)) or use a revision that has safetensors`,
    );
  }
  const other = files.filter((f) => /\.(h5|msgpack|gguf|ckpt|pt|pth|onnx)$/.test(f));
  if (other.length > 0) {
    return new AmendError(
      `${dir}: no model.safetensors or ${INDEX_FILE}, only ${other.slice(0, 3).join(', ')}; Amend reads safetensors weights only — convert the model to safetensors`,
    );
  }
  const st = files.filter((f) => f.endsWith('.safetensors'));
  if (st.length > 0) {
    return new AmendError(
      `${dir}: no model.safetensors or ${INDEX_FILE} (found ${st.slice(0, 3).join(', ')}); a Hugging Face checkpoint names its weights model.safetensors — rename the file or add an index`,
    );
  }
  return new AmendError(`${dir}: no weights found (expected ${SINGLE_WEIGHTS} or ${INDEX_FILE}) — is this a model directory?`);
}

function readIndex(dir: string): Map<string, string> {
  const file = path.join(dir, INDEX_FILE);
  const json = readModelJson(file);
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (!isObject(wm)) {
    throw new AmendError(`${file}: has no "weight_map" object; it is not a safetensors index — re-download it`);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new AmendError(`${file}: weight_map["${name}"] is ${JSON.stringify(shard)}, not a file name — re-download the index`);
    }
    if (shard.includes('..') || path.isAbsolute(shard)) {
      throw new AmendError(`${file}: weight_map["${name}"] points outside the model directory (${shard}); refusing to read it`);
    }
    map.set(name, shard);
  }
  if (map.size === 0) throw new AmendError(`${file}: weight_map is empty; the index lists no tensors — re-download it`);
  return map;
}

/**
 * Read the weights of a Hugging Face model directory: `model.safetensors` if present (as
 * transformers prefers it), else the shards of `model.safetensors.index.json`.
 */
export function readCheckpoint(dir: string, opts: ReadCheckpointOptions = {}): Checkpoint {
  return runSteps(readCheckpointSteps(dir, opts));
}

/** readCheckpoint without blocking the event loop for the whole read (a yield after each tensor). */
export function readCheckpointAsync(dir: string, opts: ReadCheckpointOptions = {}): Promise<Checkpoint> {
  return runStepsAsync(readCheckpointSteps(dir, opts));
}

function* readCheckpointSteps(dir: string, opts: ReadCheckpointOptions): Steps<Checkpoint> {
  const files = listDir(dir);
  if (files.includes(SINGLE_WEIGHTS)) {
    const { tensors, metadata } = yield* readSafetensorsSteps(path.join(dir, SINGLE_WEIGHTS), opts);
    const names = readSafetensorsHeader(path.join(dir, SINGLE_WEIGHTS)).entries.map((e) => e.name);
    return { tensors, metadata, shards: [{ file: SINGLE_WEIGHTS, names }] };
  }
  if (!files.includes(INDEX_FILE)) throw noWeightsError(dir, files);

  const weightMap = readIndex(dir);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of weightMap) {
    let list = byShard.get(shard);
    if (!list) byShard.set(shard, (list = []));
    list.push(name);
  }
  // Validate every shard before reading any tensor data.
  const headers = new Map<string, ReturnType<typeof readSafetensorsHeader>>();
  for (const [shard, names] of byShard) {
    const file = path.join(dir, shard);
    if (!fs.existsSync(file)) {
      throw new AmendError(
        `${dir}: shard ${shard} listed in ${INDEX_FILE} (for ${names.length} tensors, e.g. "${names[0]}") is missing — the download is incomplete; download it again`,
      );
    }
    const header = readSafetensorsHeader(file);
    const present = new Set(header.entries.map((e) => e.name));
    for (const name of names) {
      if (!present.has(name)) {
        throw new AmendError(`${dir}: tensor "${name}" is listed in ${INDEX_FILE} under ${shard} but that shard does not contain it — the index and shards do not match; re-download the model`);
      }
    }
    headers.set(shard, header);
  }
  const { names: shardTensors, unlisted } = shardContents(dir, weightMap, headers);
  if (unlisted.length > 0) {
    process.emitWarning(`${dir}: ${unlisted.length} tensor${unlisted.length > 1 ? 's' : ''} in the shards ${unlisted.length > 1 ? 'are' : 'is'} not listed in ${INDEX_FILE} `
      + `(e.g. "${unlisted[0]!.name}" in ${unlisted[0]!.shard}); loaded from ${unlisted.length > 1 ? 'their shards' : 'its shard'}, as transformers does — the index is out of date`);
  }

  const keep = (name: string): boolean => !opts.filter || opts.filter(name);
  let total = 0;
  for (const [shard, header] of headers) {
    const mine = new Set(shardTensors.get(shard));
    for (const e of header.entries) if (mine.has(e.name) && keep(e.name)) total += e.end - e.begin;
  }
  const tensors = new Map<string, TensorRecord>();
  const shards: CheckpointShard[] = [];
  let metadata: Record<string, string> | null = null;
  let done = 0;
  const shardNames = [...byShard.keys()].sort();
  for (const shard of shardNames) {
    const header = headers.get(shard)!;
    const names = shardTensors.get(shard)!;
    shards.push({ file: shard, names });
    const want = names.filter(keep);
    if (want.length === 0) {
      metadata ??= header.metadata;
      continue;
    }
    const wantSet = new Set(want);
    const before = done;
    const res = yield* readSafetensorsSteps(path.join(dir, shard), {
      filter: (n) => wantSet.has(n),
      onProgress: opts.onProgress ? (d) => opts.onProgress!(before + d, total) : undefined,
    });
    for (const [n, t] of res.tensors) {
      done += storageBytes(t.data.length, t.dtype);
      tensors.set(n, t);
    }
    metadata ??= res.metadata;
  }
  return { tensors, metadata: metadata ?? {}, shards };
}

/**
 * The tensors of each shard, in file order: those the index assigns to it, and those it holds that
 * the index does not list at all. transformers loads every tensor of the shard files the index
 * names, listed or not, so a stale index loses nothing there; a name the index assigns to another
 * shard stays with that one. `unlisted` names the tensors found only in a shard.
 */
export function shardContents(
  dir: string,
  weightMap: ReadonlyMap<string, string>,
  headers: ReadonlyMap<string, { entries: readonly { name: string }[] }>,
): { names: Map<string, string[]>; unlisted: { name: string; shard: string }[] } {
  const names = new Map<string, string[]>();
  const unlisted: { name: string; shard: string }[] = [];
  const foundIn = new Map<string, string>();
  for (const shard of [...headers.keys()].sort()) {
    const list: string[] = [];
    for (const { name } of headers.get(shard)!.entries) {
      const listed = weightMap.get(name);
      if (listed === shard) list.push(name);
      else if (listed === undefined) {
        const other = foundIn.get(name);
        if (other !== undefined) {
          throw new AmendError(`${dir}: tensor "${name}" is in both ${other} and ${shard}, and ${INDEX_FILE} lists neither — cannot tell which to load; re-download the model`);
        }
        foundIn.set(name, shard);
        unlisted.push({ name, shard });
        list.push(name);
      }
    }
    names.set(shard, list);
  }
  return { names, unlisted };
}

export type DTypeChoice =
  | FileDType
  | Record<string, FileDType>
  | ((name: string, record: TensorRecord) => FileDType | undefined);

export interface WriteCheckpointOptions {
  /** Storage dtype: one for all, per name, or a function; default (and fallback) the record's own dtype. */
  dtype?: DTypeChoice;
  /** Largest shard in bytes (default 5 GB, as transformers); over it the checkpoint is sharded. */
  maxShardBytes?: number;
  /** Extra `__metadata__` for every weight file (always includes format: "pt"). */
  metadata?: Record<string, string>;
}

export interface WrittenCheckpoint {
  shards: CheckpointShard[];
  /** Bytes of tensor data (the index's metadata.total_size). */
  totalSize: number;
}

function chooseDType(rec: TensorRecord, choice: DTypeChoice | undefined): FileDType {
  let d: string | undefined;
  if (typeof choice === 'string') d = choice;
  else if (typeof choice === 'function') d = choice(rec.name, rec);
  else if (choice && typeof choice === 'object') d = choice[rec.name];
  d ??= rec.dtype || 'F32';
  if (!isFileDType(d)) {
    throw new AmendError(`tensor "${rec.name}": cannot store it as "${d}"; choose F32, F16 or BF16`);
  }
  return d;
}

function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/**
 * Index JSON as transformers writes it: indent 2, weight_map sorted by name, trailing newline.
 * `base` holds the other keys of an index being rewritten (export keeps them).
 */
export function indexJson(metadata: Record<string, unknown>, weightMap: Map<string, string>, base: Record<string, unknown> = {}): string {
  const wm: Record<string, string> = {};
  for (const name of [...weightMap.keys()].sort()) wm[name] = weightMap.get(name)!;
  return JSON.stringify({ ...base, metadata, weight_map: wm }, null, 2) + '\n';
}

/**
 * Write a checkpoint into `dir` (created if needed): `model.safetensors`, or shards plus
 * `model.safetensors.index.json` when the tensors exceed maxShardBytes. Other files in `dir`
 * (config.json, tokenizer files) are left alone.
 */
export function writeCheckpoint(
  dir: string,
  tensors: Map<string, TensorRecord> | Iterable<TensorRecord>,
  opts: WriteCheckpointOptions = {},
): WrittenCheckpoint {
  const records: TensorRecord[] = tensors instanceof Map ? [...tensors.values()] : [...tensors];
  if (records.length === 0) throw new AmendError(`${dir}: refusing to write a checkpoint with no tensors`);
  const maxShard = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShard > 0)) throw new AmendError(`maxShardBytes must be a positive number of bytes, got ${maxShard}`);
  const metadata = { format: 'pt', ...(opts.metadata ?? {}) };

  const items: SizedTensor[] = records.map((r) => {
    const dtype = chooseDType(r, opts.dtype);
    return { name: r.name, shape: r.shape, data: r.data, dtype, bytes: storageBytes(r.data.length, dtype) };
  });
  const groups = assignShards(items, maxShard);

  try {
    makeDirs(dir);
  } catch (err) {
    throw new AmendError(`${dir}: cannot create the directory: ${(err as Error).message}`);
  }

  const sharded = groups.length > 1;
  const finalNames = sharded ? groups.map((_, i) => shardName(i, groups.length)) : [SINGLE_WEIGHTS];
  const temps: string[] = [];
  const cleanup = (): void => {
    for (const t of temps) fs.rmSync(t, { force: true });
  };
  const totalSize = items.reduce((s, it) => s + it.bytes, 0);
  const totalParameters = items.reduce((s, it) => s + it.data.length, 0);
  const weightMap = new Map<string, string>();
  const shards: CheckpointShard[] = [];
  let indexTmp: string | null = null;
  try {
    groups.forEach((group, i) => {
      const final = path.join(dir, finalNames[i]!);
      const tmp = tempPathFor(final);
      temps.push(tmp);
      writeSafetensorsTo(tmp, final, group, metadata);
      for (const it of group) weightMap.set(it.name, finalNames[i]!);
      shards.push({ file: finalNames[i]!, names: group.map((it) => it.name) });
    });
    if (sharded) {
      const idx = path.join(dir, INDEX_FILE);
      indexTmp = tempPathFor(idx);
      temps.push(indexTmp);
      fs.writeFileSync(indexTmp, indexJson({ total_parameters: totalParameters, total_size: totalSize }, weightMap), { flag: 'wx' });
    }
  } catch (err) {
    cleanup();
    if (err instanceof AmendError) throw err;
    throw new AmendError(`${dir}: writing the checkpoint failed: ${(err as Error).message}`);
  }

  try {
    moveIntoPlace(dir, temps, finalNames, indexTmp);
  } catch (err) {
    cleanup();
    throw new AmendError(`${dir}: moving the written checkpoint into place failed: ${(err as Error).message}`);
  }
  const keep = new Set(finalNames);
  for (const f of fs.readdirSync(dir)) {
    if (SHARD_RE.test(f) && !keep.has(f)) fs.rmSync(path.join(dir, f), { force: true });
  }
  return { shards, totalSize };
}

type SizedTensor = TensorToWrite & { bytes: number };

/** Tensors to shards in order, as transformers / huggingface_hub split them: greedy, a tensor over the limit alone. */
function assignShards(items: readonly SizedTensor[], maxShard: number): SizedTensor[][] {
  const groups: SizedTensor[][] = [];
  let cur: SizedTensor[] = [];
  let curBytes = 0;
  for (const it of items) {
    if (it.bytes > maxShard) {
      groups.push([it]);
      continue;
    }
    if (cur.length > 0 && curBytes + it.bytes > maxShard) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(it);
    curBytes += it.bytes;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/**
 * Everything is complete on disk: move it into place, index last, and remove the other layout's
 * weight file (the single file once sharded, the index once single) so that no reader sees both.
 */
function moveIntoPlace(dir: string, temps: readonly string[], finalNames: readonly string[], indexTmp: string | null): void {
  for (let i = 0; i < finalNames.length; i++) fs.renameSync(temps[i]!, path.join(dir, finalNames[i]!));
  if (indexTmp !== null) {
    fs.rmSync(path.join(dir, SINGLE_WEIGHTS), { force: true });
    fs.renameSync(indexTmp, path.join(dir, INDEX_FILE));
  } else {
    fs.rmSync(path.join(dir, INDEX_FILE), { force: true });
  }
}
