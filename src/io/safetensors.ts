// safetensors read / write (https://github.com/huggingface/safetensors, format described in its README):
//   8 bytes   little-endian u64 N
//   N bytes   UTF-8 JSON header {"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [b, e]}, ...}
//   rest      the tensors' bytes, offsets relative to the start of this region, contiguous from 0
//
// Reading never holds the whole file: each tensor is read straight into its own new Float32Array
// (F32 directly into the array's bytes; other dtypes through a small reused chunk buffer), so peak
// memory is about the float32 bytes of the tensors asked for.
// Writing goes to a temporary name in the same directory, is fsynced and then renamed, so a crash
// or a full disk never leaves a half-written file under the final name.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { endianness } from 'node:os';
import { AmendError, isObject } from '../errors.js';
import { sizeOf } from '../tensor/tensor.js';
import {
  decodeInto,
  dtypeRank,
  dtypeSize,
  encodeInto,
  FILE_DTYPES,
  isFileDType,
  isKnownDType,
  unsupportedDTypeHint,
  type FileDType,
  type StorageDType,
} from './dtype.js';
import { makeDirs, publishExclusive, tempPathFor } from './dirs.js';
import { runSteps, type Steps } from './steps.js';
import { readInto, writeAll } from './fd.js';

export type { FileDType, StorageDType } from './dtype.js';
export { f32BitsToBf16Bits, f32BitsToF16Bits, dtypeSize, isFileDType } from './dtype.js';

/** One tensor in memory. Compute is always float32; `dtype` is the storage dtype in the file. */
export interface TensorRecord {
  name: string;
  dtype: string;
  shape: number[];
  data: Float32Array;
}

/** A tensor's entry in a safetensors header; begin/end are relative to `dataStart`. */
export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Sorted by `begin` (file order). */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data region (8 + header length). */
  dataStart: number;
  fileSize: number;
}

export interface ReadSafetensorsOptions {
  /** Read only the tensors for which this returns true (the header is still fully validated). */
  filter?: (name: string) => boolean;
  /** Called after each tensor with bytes read so far and the total bytes to read. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** A tensor to write. `dtype` is the storage dtype in the file (default F32). */
export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: FileDType | StorageDType;
  /**
   * The tensor's bytes as stored, written instead of encoding `data`: for dtypes that float32
   * cannot hold exactly (F64, 64- and 32-bit integers), copied from the source file.
   */
  raw?: Uint8Array;
}

/** Dtypes whose values float32 does not always hold exactly (F64 precision, integers above 2²⁴). */
export const LOSSY_IN_F32: ReadonlySet<string> = new Set(['F64', 'I64', 'U64', 'I32', 'U32']);

/** The stored bytes of one tensor of a safetensors file (for copying it verbatim). */
export function readRawTensor(file: string, header: SafetensorsHeader, name: string): Uint8Array {
  const e = header.entries.find((x) => x.name === name);
  if (!e) throw new AmendError(`${file}: has no tensor "${name}"`);
  const out = new Uint8Array(e.end - e.begin);
  const fd = fs.openSync(file, 'r');
  try {
    readFully(fd, file, out, header.dataStart + e.begin);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

const MAX_HEADER_BYTES = 100_000_000; // the reference implementation's limit
const CHUNK_BYTES = 8 << 20; // conversion chunk for non-F32 reads/writes
const LITTLE_ENDIAN = endianness() === 'LE';

/** Where `file` links to when it is a symbolic link whose target is missing, else null. */
function danglingLink(file: string): string | null {
  try {
    if (!fs.lstatSync(file).isSymbolicLink()) return null;
    return path.resolve(path.dirname(file), fs.readlinkSync(file));
  } catch {
    return null;
  }
}

function ioError(file: string, what: string, err: unknown): AmendError {
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') {
    const dangling = danglingLink(file);
    if (dangling !== null && (what === 'read it' || what === 'open it' || what === 'stat it')) {
      // A Hugging Face cache snapshot links each file to a blob; a deleted blob leaves the link.
      return new AmendError(`${file}: a link to ${dangling}, which does not exist${/[\\/]blobs[\\/]/.test(dangling) ? ' (the Hugging Face cache blob was deleted)' : ''} — re-download the model`);
    }
    return what === 'read it' || what === 'open it' || what === 'stat it'
      ? new AmendError(`${file}: no such file — check the path`)
      : new AmendError(`${file}: cannot ${what} (its folder does not exist or does not accept new files) — choose a writable place`);
  }
  if (e && e.code === 'EISDIR') return new AmendError(`${file}: is a directory, not a safetensors file`);
  if (e && (e.code === 'EACCES' || e.code === 'EPERM')) {
    return new AmendError(`${file}: permission denied while trying to ${what} — check the file's permissions`);
  }
  if (e && e.code === 'ENOSPC') return new AmendError(`${file}: no space left on the device while trying to ${what} — free some disk space`);
  const msg = e && typeof e.message === 'string' ? e.message : String(err);
  return new AmendError(`${file}: cannot ${what}: ${msg}`);
}

function readFully(fd: number, file: string, dst: Uint8Array, position: number): void {
  let got: number;
  try {
    got = readInto(fd, dst, position);
  } catch (err) {
    throw ioError(file, 'read it', err);
  }
  if (got < dst.length) {
    throw new AmendError(
      `${file}: the file ended at byte ${position + got} while reading; it is truncated or was changed while being read — re-download or re-create it`,
    );
  }
}

/** Parse and fully validate a safetensors header from an open fd. */
function parseHeader(fd: number, file: string, fileSize: number): SafetensorsHeader {
  const name = path.basename(file);
  const { json, dataStart } = readHeaderJson(fd, file, fileSize);
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key === '__metadata__') Object.assign(metadata, parseMetadata(name, value));
    else entries.push(parseEntry(`${name}: tensor "${key}"`, key, value, dataSize, fileSize));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkContiguous(name, entries, dataSize);
  return { entries, metadata, dataStart, fileSize };
}

/** The header's JSON object and where the data begins, after the length prefix and the text are checked. */
function readHeaderJson(fd: number, file: string, fileSize: number): { json: Record<string, unknown>; dataStart: number } {
  const name = path.basename(file);
  if (fileSize < 8) {
    throw new AmendError(`${name}: the file is only ${fileSize} bytes, too short to be safetensors — re-download or re-create it`);
  }
  const lenBuf = new Uint8Array(8);
  readFully(fd, file, lenBuf, 0);
  const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  // A real header length is far below 2^32, so its high bytes are zero; eight printable bytes are
  // the start of a text file (a JSON request list given as a patch, say), which is worth naming.
  if (n64 > BigInt(MAX_HEADER_BYTES) && lenBuf.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d)) {
    const head = new Uint8Array(Math.min(24, fileSize));
    readFully(fd, file, head, 0);
    const start = JSON.stringify(new TextDecoder().decode(head).replace(/\s+/g, ' ').trim());
    throw new AmendError(`${name}: not safetensors: it starts with the text ${start}, like a ${lenBuf[0] === 0x7b || lenBuf[0] === 0x5b ? 'JSON' : 'text'} file; check it is the file meant`);
  }
  if (n64 > BigInt(fileSize - 8)) {
    throw new AmendError(
      `${name}: header length ${n64} runs past the end of the file (${fileSize} bytes); the file is truncated or not safetensors; check it is the file meant, else re-download or re-create it`,
    );
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) {
    throw new AmendError(`${name}: header length ${n} is over the 100 MB limit of the format; the file is not safetensors or is corrupt`);
  }
  if (n < 2) {
    throw new AmendError(`${name}: header length ${n} is too short to hold a JSON object; the file is corrupt — re-create it`);
  }
  const headerBytes = new Uint8Array(n);
  readFully(fd, file, headerBytes, 8);
  // TextDecoder would drop a byte order mark without a word; the reference reader refuses the
  // header (it must start with "{"), so a file with one would load here and nowhere else.
  if (headerBytes[0] === 0xef && headerBytes[1] === 0xbb && headerBytes[2] === 0xbf) {
    throw new AmendError(`${name}: the header starts with a UTF-8 byte order mark, which safetensors readers refuse (a header is JSON starting with "{"); re-create the file without it`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new AmendError(`${name}: the header is not valid UTF-8; the file is corrupt or not safetensors; check it is the file meant, else re-download or re-create it`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new AmendError(`${name}: the header is not valid JSON (${why}); the file is corrupt or not safetensors; check it is the file meant, else re-download or re-create it`);
  }
  if (!isObject(json)) {
    throw new AmendError(`${name}: the header is JSON but not an object; the file is not safetensors`);
  }
  return { json, dataStart: 8 + n };
}

function parseMetadata(name: string, value: unknown): Record<string, string> {
  if (!isObject(value)) {
    throw new AmendError(`${name}: "__metadata__" in the header must be an object of strings; the file is corrupt`);
  }
  const metadata: Record<string, string> = {};
  for (const [mk, mv] of Object.entries(value)) {
    if (typeof mv !== 'string') {
      throw new AmendError(`${name}: metadata "${mk}" is ${JSON.stringify(mv)?.slice(0, 40)}, not a string; safetensors metadata values must be strings`);
    }
    metadata[mk] = mv;
  }
  return metadata;
}

/** One tensor's header entry, checked on its own: a known dtype, a shape and offsets that agree and fit the data. */
function parseEntry(where: string, key: string, value: unknown, dataSize: number, fileSize: number): SafetensorsEntry {
  if (!isObject(value)) {
    throw new AmendError(`${where} has no {dtype, shape, data_offsets} entry in the header; the file is corrupt`);
  }
  const dtype = value['dtype'];
  if (typeof dtype !== 'string') throw new AmendError(`${where} has no dtype in the header; the file is corrupt`);
  if (!isKnownDType(dtype)) {
    throw new AmendError(`${where} has unknown dtype "${dtype}"; safetensors defines ${FILE_DTYPES.join(', ')}, F8_*, C64 — the file is corrupt or from an unsupported writer`);
  }
  const shape = value['shape'];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new AmendError(`${where} has ${shape === undefined ? 'no shape' : `shape ${JSON.stringify(shape)}`}, not a list of non-negative integers; the file is corrupt`);
  }
  const offs = value['data_offsets'];
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
    throw new AmendError(`${where} has ${offs === undefined ? 'no data_offsets' : `data_offsets ${JSON.stringify(offs)}`}, not [begin, end]; the file is corrupt`);
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) {
    throw new AmendError(`${where} has data_offsets [${begin}, ${end}] with end before begin; the file is corrupt`);
  }
  const size = dtypeSize(dtype);
  if (size !== undefined) {
    const numel = sizeOf(shape as number[]);
    if (numel * size !== end - begin) {
      throw new AmendError(
        `${where} has shape [${shape.join(', ')}] × ${dtype} = ${numel * size} bytes but its data_offsets [${begin}, ${end}] span ${end - begin} bytes; the file is corrupt`,
      );
    }
  }
  if (end > dataSize) {
    throw new AmendError(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes after the header; file is ${fileSize} bytes); the file is truncated or corrupt — re-download it`,
    );
  }
  return { name: key, dtype, shape: (shape as number[]).slice(), begin, end };
}

/** The tensors, sorted by offset, must tile the data exactly: no overlap, no gap, nothing after. */
function checkContiguous(name: string, entries: readonly SafetensorsEntry[], dataSize: number): void {
  let pos = 0;
  let prev: SafetensorsEntry | null = null;
  for (const e of entries) {
    if (e.begin < pos) {
      throw new AmendError(
        `${name}: tensor "${e.name}" [${e.begin}, ${e.end}] overlaps tensor "${prev!.name}" [${prev!.begin}, ${prev!.end}]; the file is corrupt`,
      );
    }
    if (e.begin > pos) {
      throw new AmendError(
        `${name}: ${e.begin - pos} unused bytes before tensor "${e.name}" (offset ${pos}); tensors must be contiguous — the file is corrupt`,
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataSize) {
    throw new AmendError(
      `${name}: ${dataSize - pos} bytes after the last tensor (data ends at ${pos}, file has ${dataSize} data bytes); the file is corrupt or was appended to`,
    );
  }
}

function openForRead(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw ioError(file, 'open it', err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new AmendError(`${file}: is a directory, not a safetensors file`);
    // The reads go by position and trust the size: a pipe (`<(cat p.safetensors)`) has neither.
    if (!st.isFile()) throw new AmendError(`${file}: not a regular file (a pipe or a device?); safetensors are read by position, so write it to a file first`);
    return { fd, size: st.size };
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof AmendError ? err : ioError(file, 'stat it', err);
  }
}

/** Read and fully validate the header of a safetensors file (reads only the header bytes). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const { fd, size } = openForRead(file);
  try {
    return parseHeader(fd, file, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Read one tensor's bytes from an open file into a new Float32Array. */
function readTensor(fd: number, file: string, header: SafetensorsHeader, e: SafetensorsEntry, chunk: () => Uint8Array): Float32Array {
  const dtype = e.dtype as FileDType; // the caller refused every other dtype before reading any tensor
  const numel = sizeOf(e.shape);
  const out = new Float32Array(numel);
  const position = header.dataStart + e.begin;
  if (dtype === 'F32') {
    readFully(fd, file, new Uint8Array(out.buffer, 0, numel * 4), position);
    return out;
  }
  const size = dtypeSize(dtype)!;
  const buf = chunk();
  const perChunk = Math.floor(buf.length / size);
  for (let i = 0; i < numel; i += perChunk) {
    const n = Math.min(perChunk, numel - i);
    const part = buf.subarray(0, n * size);
    readFully(fd, file, part, position + i * size);
    decodeInto(dtype, part, n, out, i);
  }
  return out;
}

/**
 * Read tensors of a safetensors file into float32 arrays.
 * The header is validated in full first; nothing is allocated for tensors the filter excludes.
 */
export function readSafetensors(
  file: string,
  opts: ReadSafetensorsOptions = {},
): { tensors: Map<string, TensorRecord>; metadata: Record<string, string> } {
  return runSteps(readSafetensorsSteps(file, opts));
}

/** readSafetensors, yielding after each tensor (see io/steps.ts). */
export function* readSafetensorsSteps(
  file: string,
  opts: ReadSafetensorsOptions = {},
): Steps<{ tensors: Map<string, TensorRecord>; metadata: Record<string, string> }> {
  if (!LITTLE_ENDIAN) throw new AmendError('safetensors: this machine is big-endian; Amend reads safetensors only on little-endian machines');
  const { fd, size } = openForRead(file);
  try {
    const header = parseHeader(fd, file, size);
    const wanted = opts.filter ? header.entries.filter((e) => opts.filter!(e.name)) : header.entries;
    for (const e of wanted) {
      if (!isFileDType(e.dtype)) {
        throw new AmendError(`${path.basename(file)}: tensor "${e.name}" is ${e.dtype}, which Amend cannot convert to float32 (${unsupportedDTypeHint(e.dtype)})`);
      }
    }
    const total = wanted.reduce((s, e) => s + (e.end - e.begin), 0);
    let chunkBuf: Uint8Array | null = null;
    const chunk = (): Uint8Array => (chunkBuf ??= new Uint8Array(CHUNK_BYTES));
    const tensors = new Map<string, TensorRecord>();
    let done = 0;
    for (const e of wanted) {
      const data = readTensor(fd, file, header, e, chunk);
      tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape.slice(), data });
      done += e.end - e.begin;
      opts.onProgress?.(done, total);
      yield;
    }
    return { tensors, metadata: header.metadata };
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// writing

interface PreparedTensor {
  name: string;
  dtype: FileDType;
  shape: number[];
  data: Float32Array;
  raw?: Uint8Array;
  begin: number;
  end: number;
}

/** Byte-wise UTF-8 comparison, as the reference writer orders names (Rust String ordering). */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function validateToWrite(file: string, tensors: readonly TensorToWrite[]): PreparedTensor[] {
  const seen = new Set<string>();
  const out: PreparedTensor[] = [];
  for (const t of tensors) {
    const name = t.name;
    if (typeof name !== 'string' || name.length === 0) {
      throw new AmendError(`${path.basename(file)}: cannot write a tensor with an empty name`);
    }
    if (name === '__metadata__') throw new AmendError(`${path.basename(file)}: "__metadata__" is reserved by the format and cannot name a tensor`);
    if (seen.has(name)) throw new AmendError(`${path.basename(file)}: tensor "${name}" is given twice; names must be unique`);
    seen.add(name);
    const dtype = t.dtype ?? 'F32';
    if (!isFileDType(dtype)) {
      throw new AmendError(`${path.basename(file)}: tensor "${name}" asks for dtype "${dtype}", which Amend cannot write (${FILE_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new AmendError(`${path.basename(file)}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, not a list of non-negative integers`);
    }
    if (!(t.data instanceof Float32Array)) {
      throw new AmendError(`${path.basename(file)}: tensor "${name}" data must be a Float32Array`);
    }
    const numel = sizeOf(t.shape);
    if (numel !== t.data.length) {
      throw new AmendError(`${path.basename(file)}: tensor "${name}" has shape [${t.shape.join(', ')}] (${numel} values) but ${t.data.length} values of data`);
    }
    if (t.raw && t.raw.length !== numel * dtypeSize(dtype)!) {
      throw new AmendError(`${path.basename(file)}: tensor "${name}" has ${t.raw.length} raw bytes, not the ${numel * dtypeSize(dtype)!} of ${numel} ${dtype} values`);
    }
    out.push({ name, dtype, shape: t.shape.slice(), data: t.data, raw: t.raw, begin: 0, end: 0 });
  }
  // The reference writer: descending dtype (its enum order ≈ alignment), then name.
  out.sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || compareUtf8(a.name, b.name));
  let offset = 0;
  for (const t of out) {
    t.begin = offset;
    offset += t.data.length * dtypeSize(t.dtype)!;
    t.end = offset;
  }
  return out;
}

/** The header bytes, padded with spaces to a multiple of 8 as the reference writer does. */
function buildHeader(tensors: PreparedTensor[], metadata: Record<string, string> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new AmendError(`safetensors metadata "${k}" must be a string, got ${typeof v}`);
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(padded);
  out.set(json);
  out.fill(0x20, json.length);
  return out;
}

function writeFully(fd: number, file: string, bytes: Uint8Array): void {
  try {
    writeAll(fd, bytes);
  } catch (err) {
    throw ioError(file, 'write it', err);
  }
}

/**
 * Write tensors to `tmpFile` (no rename). Used by writeSafetensors, and by the checkpoint writer
 * and export, which rename several files only once all of them are complete.
 */
export function writeSafetensorsTo(
  tmpFile: string,
  finalName: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): { bytes: number } {
  if (!LITTLE_ENDIAN) throw new AmendError('safetensors: this machine is big-endian; Amend writes safetensors only on little-endian machines');
  const prepared = validateToWrite(finalName, tensors);
  const header = buildHeader(prepared, metadata);
  let fd: number;
  try {
    fd = fs.openSync(tmpFile, 'wx');
  } catch (err) {
    throw ioError(finalName, 'create it', err);
  }
  let total = 0;
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
    writeFully(fd, finalName, len);
    writeFully(fd, finalName, header);
    total = 8 + header.length;
    let chunkBuf: Uint8Array | null = null;
    for (const t of prepared) {
      if (t.raw) {
        writeFully(fd, finalName, t.raw);
      } else if (t.dtype === 'F32') {
        writeFully(fd, finalName, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      } else {
        const size = dtypeSize(t.dtype)!;
        chunkBuf ??= new Uint8Array(CHUNK_BYTES);
        const perChunk = Math.floor(chunkBuf.length / size);
        for (let i = 0; i < t.data.length; i += perChunk) {
          const n = Math.min(perChunk, t.data.length - i);
          const bad = encodeInto(t.dtype, t.data, i, n, chunkBuf);
          if (bad >= 0) {
            throw new AmendError(
              `${finalName}: tensor "${t.name}" value ${t.data[i + bad]} at index ${i + bad} cannot be stored exactly as ${t.dtype}; store it as F32 instead`,
            );
          }
          writeFully(fd, finalName, chunkBuf.subarray(0, n * size));
        }
      }
      total += t.end - t.begin;
    }
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      throw ioError(finalName, 'flush it to disk', err);
    }
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already failing */
    }
    fs.rmSync(tmpFile, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  return { bytes: total };
}

/**
 * Write a safetensors file atomically: to a temporary name in the same directory, then renamed.
 * Tensors are laid out as the reference writer lays them out (by dtype, larger first, then name).
 */
export function writeSafetensors(
  file: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
  opts: { noClobber?: boolean } = {},
): void {
  const dir = path.dirname(path.resolve(file));
  try {
    makeDirs(dir);
  } catch (err) {
    throw ioError(dir, 'create the directory', err);
  }
  // Said before the work of writing; publishExclusive below still catches one that appears meanwhile.
  if (opts.noClobber && fs.existsSync(file)) throw new AmendError(`${file} exists; pass --force (noClobber: false) to replace it, or choose another name`);
  const tmp = tempPathFor(file);
  writeSafetensorsTo(tmp, file, tensors, metadata);
  try {
    // noClobber: never replace a file, even one that appeared since the caller checked.
    if (opts.noClobber) publishExclusive(tmp, file);
    else fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AmendError(`${file}: appeared while it was being written; pass --force (noClobber: false) to overwrite it, or choose another name`);
    throw ioError(file, 'move the finished file into place', err);
  }
}

/** Bytes one tensor takes in a file of the given dtype. */
export function storageBytes(numel: number, dtype: string): number {
  const size = dtypeSize(dtype);
  if (size === undefined) throw new AmendError(`dtype "${dtype}" has no byte size; cannot compute storage size`);
  return numel * size;
}
