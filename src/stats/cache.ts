// Statistics files: safetensors with one tensor "mom2" (F64, dim×dim, = Σ k kᵀ / count) and the
// metadata that says what it is (model fingerprint, layer, corpus, samples, tokens per sample,
// count, Amend version). The cache keeps them under
//   <root>/stats/<fingerprint hash>/<corpus label>-<corpus hash>/layer<L>.mom2.n<samples>.t<maxLength>.safetensors
// where <root> is $AMEND_CACHE, else ~/.cache/amend. Writes are atomic (temporary name, fsync,
// rename). The metadata is checked again on every load, so a stale or foreign file is a miss
// (in the cache) or a clear error (a file given explicitly). The metadata also holds the sha256 of
// the matrix's bytes (mom2_sha256), checked on every read: a file whose data was damaged after it
// was written (flipped bits, a bad copy) is refused, never used. Files written before the checksum
// existed are checked for what any of them is: finite, exactly symmetric, diagonal ≥ 0.
//
// The io layer's safetensors writer takes float32 data; the statistics are float64 (they feed
// float64 solves), so this file writes and reads its single F64 tensor itself, in the same format.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AmendError } from '../errors.js';
import { amendVersion } from '../version.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import type { SecondMoment } from './types.js';
import { makeDirs, removeDeadTemps, STALE_TEMP_MS, tempPathFor } from '../io/dirs.js';
import { readInto, writeAll } from '../io/fd.js';

export const STATS_FORMAT = 'amend.stats.mom2';

/** The Amend cache root: the option, else $AMEND_CACHE, else ~/.cache/amend. */
export function cacheRoot(cacheDir?: string): string {
  return path.resolve(cacheDir ?? (process.env.AMEND_CACHE || path.join(os.homedir(), '.cache', 'amend')));
}

/** The folder holding all statistics: <cache root>/stats. */
export function statsDir(cacheDir?: string): string {
  return path.join(cacheRoot(cacheDir), 'stats');
}

const hash = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n);

/** The folder of one model's statistics. */
export function modelStatsDir(cacheDir: string | undefined, fingerprint: string): string {
  return path.join(statsDir(cacheDir), hash(fingerprint, 16));
}

export interface StatsKey {
  fingerprint: string;
  layer: number;
  corpusId: string;
  corpusSlug: string;
  /** The requested sample count. */
  samples: number;
  /** Tokens per document (0 for imported statistics). */
  maxLength: number;
}

/** Where the cache keeps the statistics of `key`. */
export function statsCachePath(cacheDir: string | undefined, key: StatsKey): string {
  return path.join(modelStatsDir(cacheDir, key.fingerprint), `${key.corpusSlug}-${hash(key.corpusId, 10)}`,
    `layer${key.layer}.mom2.n${key.samples}.t${key.maxLength}.safetensors`);
}

/**
 * Removes the temporary copies that killed writers left in the cache folder of `file` (any layer's,
 * ".layer0.mom2.n20.t32.safetensors.<pid>.<random>.tmp", once their process is gone and they have
 * lain idle for STALE_TEMP_MS). A write only cleans up after earlier writes of its own file, and a
 * layer whose statistics got cached by a later run is never written again: without this, what a
 * killed `amend stats` left would stay in the cache for good. Called on every cache lookup.
 */
export function removeDeadStatsTemps(file: string): void {
  removeDeadTemps(path.dirname(file), /^\.layer\d+\.mom2\.n\d+\.t\d+\.safetensors\.(\d+)\.[a-z0-9]+\.tmp$/, STALE_TEMP_MS);
}

/** The sha256 (hex) of a matrix's bytes as stored (little-endian float64 or float32). */
function dataSha(values: Float64Array | Float32Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

/** The metadata written with a SecondMoment. */
function statsMetadata(sm: SecondMoment, extra: Record<string, string> = {}): Record<string, string> {
  return {
    mom2_sha256: dataSha(sm.mom2),
    format: STATS_FORMAT,
    format_version: '1',
    fingerprint: sm.fingerprint,
    layer: String(sm.layer),
    point: `blocks.${sm.layer}.mlp.keys`,
    dim: String(sm.dim),
    count: String(sm.count),
    samples: String(sm.samples),
    requested_samples: String(sm.requestedSamples ?? sm.samples),
    max_length: String(sm.maxLength ?? 0),
    corpus: sm.corpus,
    amend_version: amendVersion(),
    created: new Date().toISOString(),
    ...extra,
  };
}

/** Writes a statistics file atomically (F64 "mom2" [dim, dim] plus metadata). */
export function writeStatsFile(file: string, sm: SecondMoment, extraMeta: Record<string, string> = {}): void {
  if (sm.mom2.length !== sm.dim * sm.dim) throw new AmendError(`stats: mom2 has ${sm.mom2.length} values, not ${sm.dim}×${sm.dim}`);
  const meta = statsMetadata(sm, extraMeta);
  const bytes = sm.mom2.length * 8;
  const json = JSON.stringify({ __metadata__: meta, mom2: { dtype: 'F64', shape: [sm.dim, sm.dim], data_offsets: [0, bytes] } });
  const jb = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(Math.ceil(jb.length / 8) * 8, 0x20);
  jb.copy(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  try {
    makeDirs(path.dirname(path.resolve(file)));
  } catch (e) {
    throw new AmendError(`${path.dirname(file)}: cannot create the folder (${(e as Error).message})`);
  }
  const tmp = tempPathFor(file);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    writeAll(fd, len);
    writeAll(fd, header);
    writeAll(fd, new Uint8Array(sm.mom2.buffer, sm.mom2.byteOffset, bytes));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC') throw new AmendError(`${file}: no space left on the device — free some disk space`);
    if (err.code === 'EACCES' || err.code === 'EPERM') throw new AmendError(`${file}: permission denied — check the cache folder's permissions (or set AMEND_CACHE)`);
    throw e instanceof AmendError ? e : new AmendError(`${file}: cannot write it: ${err.message}`);
  }
}

/** Reads a statistics file written by writeStatsFile (no check against a model: see loadStatsFile). */
export function readStatsFile(file: string): { sm: SecondMoment; metadata: Record<string, string> } {
  const header = readSafetensorsHeader(file);
  const meta = header.metadata;
  if (meta.format !== STATS_FORMAT) {
    throw new AmendError(`${file}: not an Amend statistics file (safetensors without format "${STATS_FORMAT}" in its metadata)`);
  }
  const e = header.entries.find((t) => t.name === 'mom2');
  if (!e || e.shape.length !== 2 || e.shape[0] !== e.shape[1] || (e.dtype !== 'F64' && e.dtype !== 'F32')) {
    throw new AmendError(`${file}: no square F64/F32 tensor "mom2"; the file is corrupt`);
  }
  const dim = e.shape[0];
  const mom2 = new Float64Array(dim * dim);
  let stored: Float64Array | Float32Array = mom2;
  const fd = fs.openSync(file, 'r');
  try {
    const at = header.dataStart + e.begin;
    if (e.dtype === 'F64') {
      const dst = new Uint8Array(mom2.buffer);
      if (readInto(fd, dst, at) < dst.length) throw new AmendError(`${file}: truncated`);
    } else {
      const f32 = new Float32Array(dim * dim);
      const dst = new Uint8Array(f32.buffer);
      if (readInto(fd, dst, at) < dst.length) throw new AmendError(`${file}: truncated`);
      mom2.set(f32);
      stored = f32;
    }
  } finally {
    fs.closeSync(fd);
  }
  checkIntegrity(file, meta.mom2_sha256, stored, mom2, dim);
  const int = (k: string): number => {
    const v = Number(meta[k]);
    if (!Number.isSafeInteger(v)) throw new AmendError(`${file}: metadata "${k}" is ${JSON.stringify(meta[k])}, not an integer; the file is corrupt`);
    return v;
  };
  const sm: SecondMoment = {
    layer: int('layer'), dim, count: int('count'), mom2, corpus: meta.corpus ?? '', samples: int('samples'),
    fingerprint: meta.fingerprint ?? '', requestedSamples: int('requested_samples'), maxLength: int('max_length'),
    source: 'file', file,
  };
  if (int('dim') !== dim) throw new AmendError(`${file}: metadata dim ${meta.dim} does not match mom2 [${dim}, ${dim}]; the file is corrupt`);
  return { sm, metadata: meta };
}

/**
 * Refuses a damaged matrix: against its recorded sha256 when the file has one, else (files written
 * before the checksum) against what every statistics file holds — finite values, an exactly
 * symmetric matrix (the writer mirrors the upper triangle) and a diagonal ≥ 0.
 */
function checkIntegrity(file: string, sha: string | undefined, stored: Float64Array | Float32Array, mom2: Float64Array, dim: number): void {
  const corrupt = (why: string): AmendError => new AmendError(`${file}: the statistics are damaged (${why}); delete the file, or recompute it (amend stats --refresh)`);
  if (sha !== undefined) {
    if (dataSha(stored) !== sha) throw corrupt('the data does not match the sha256 recorded in the file');
    return;
  }
  for (let i = 0; i < dim; i++) {
    const d = mom2[i * dim + i];
    if (!(d >= 0) || d === Infinity) throw corrupt(`mom2[${i}][${i}] is ${d}`);
    for (let j = i + 1; j < dim; j++) {
      const a = mom2[i * dim + j], b = mom2[j * dim + i];
      if (!Number.isFinite(a) || a !== b) throw corrupt(`mom2[${i}][${j}] is ${a} but mom2[${j}][${i}] is ${b}`);
    }
  }
}
