// A minimal reader for NumPy's .npz and .npy files, enough to import statistics that Python tools
// (ROME, MEMIT, EasyEdit) saved with numpy.savez / numpy.savez_compressed.
//
// .npz is a zip archive with one "<name>.npy" member per array, stored (savez) or deflated
// (savez_compressed); numpy writes every member with zip64 extra fields. Sizes and offsets are
// taken from the central directory (zip64 records where present), members are read one at a time
// straight from the file, inflated with node:zlib, and checked against their CRC-32.
//
// .npy (format versions 1.0, 2.0 and 3.0): the magic "\x93NUMPY", a version, a header length
// (u16, or u32 from version 2.0) and a Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3072, 3072), }
// followed by the raw elements. Supported element types: floats (f2, f4, f8), signed and
// unsigned integers (1, 2, 4, 8 bytes), bool (b1) and unicode strings (U<n>, as numpy stores a
// str), in either byte order. Object arrays (pickles) are refused: reading them would mean
// running Python. Arrays always come back in C (row-major) order; a Fortran-order file is
// transposed on reading.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { AmendError, refuseDevice } from '../errors.js';
import { sizeOf } from '../tensor/tensor.js';
import { readInto } from './fd.js';

export type NpyData =
  | Float32Array | Float64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array
  | string[];

export interface NpyArray {
  /** numpy's type string as written in the file, e.g. "<f4", "|b1", "<U12". */
  descr: string;
  /** Element kind and size: "f4", "f8", "i8", "u1", "b1", "U12"... (f2 is decoded to Float32Array). */
  kind: string;
  shape: number[];
  /** True when the file stored the array in Fortran order (data below is C order regardless). */
  fortranOrder: boolean;
  /** The elements in C (row-major) order, in native byte order. */
  data: NpyData;
}

// ---------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses the header dict of a .npy file (a Python literal; only the three keys numpy writes). */
function parseNpyHeader(text: string, where: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (/['"]descr['"]\s*:\s*\[/.test(text)) {
    throw new AmendError(`${where}: structured (record) arrays are not supported; only plain numeric arrays can be read`);
  }
  if (!descr || !fortran || !shape) {
    throw new AmendError(`${where}: the .npy header ${JSON.stringify(text.trim().slice(0, 120))} lacks descr, fortran_order or shape; the file is corrupt or not written by numpy`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  const parsed = dims.map((s) => Number(s.replace(/L$/, '')));
  // Plain decimal digits, as numpy writes them (Number() would also take "7.68e2" or "0x300").
  if (!dims.every((s) => /^\d+L?$/.test(s)) || !parsed.every((d) => Number.isSafeInteger(d))) {
    throw new AmendError(`${where}: the .npy shape (${shape[1]}) is not a tuple of non-negative integers`);
  }
  return { descr: descr[1], fortranOrder: fortran[1] === 'True', shape: parsed };
}

/** Element kind, size and byte order from a descr like "<f4", ">i8", "|u1", "<U5". */
function parseDescr(descr: string, where: string): { kind: string; code: string; size: number; little: boolean } {
  if (/^[<>|=]?O\d*$/.test(descr)) {
    throw new AmendError(`${where}: unsupported .npy element type "${descr}" (object arrays are Python pickles, which Amend does not execute)`);
  }
  const m = /^([<>|=]?)([a-zA-Z])(\d+)$/.exec(descr);
  if (!m) {
    throw new AmendError(`${where}: unsupported .npy element type "${descr}" (supported: float, int, uint, bool and unicode string arrays)`);
  }
  const [, order, code, n] = m;
  const count = Number(n);
  const size = code === 'U' ? 4 * count : count;
  // '=' is native order; numpy writes '<' or '>' (or '|' for single bytes), never '=' in files.
  const little = order !== '>';
  const ok = (code === 'f' && [2, 4, 8].includes(count)) || ((code === 'i' || code === 'u') && [1, 2, 4, 8].includes(count))
    || (code === 'b' && count === 1) || (code === 'U' && count >= 0);
  if (!ok) {
    const why = code === 'c' ? 'complex arrays are not supported' : 'supported: f2, f4, f8, i1-i8, u1-u8, b1, U<n>';
    throw new AmendError(`${where}: unsupported .npy element type "${descr}" (${why})`);
  }
  return { kind: `${code}${count}`, code, size, little };
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes `n` elements of one kind from bytes (copied, so alignment never matters). */
function decodeElements(bytes: Uint8Array, n: number, code: string, size: number, little: boolean): NpyData {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (code === 'U') {
    const chars = size / 4;
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      let s = '';
      for (let c = 0; c < chars; c++) {
        const cp = view.getUint32(i * size + c * 4, little);
        if (cp === 0) break;
        s += String.fromCodePoint(cp);
      }
      out[i] = s;
    }
    return out;
  }
  if (code === 'f' && size === 2) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, little));
    return out;
  }
  const make = (): NpyData => {
    switch (`${code}${size}`) {
      case 'f4': return new Float32Array(n);
      case 'f8': return new Float64Array(n);
      case 'i1': return new Int8Array(n);
      case 'i2': return new Int16Array(n);
      case 'i4': return new Int32Array(n);
      case 'i8': return new BigInt64Array(n);
      case 'u1': case 'b1': return new Uint8Array(n);
      case 'u2': return new Uint16Array(n);
      case 'u4': return new Uint32Array(n);
      case 'u8': return new BigUint64Array(n);
      default: throw new Error(`unreachable npy kind ${code}${size}`);
    }
  };
  const out = make() as Exclude<NpyData, string[]>;
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  outBytes.set(bytes.subarray(0, n * size));
  if (size > 1 && little !== HOST_LITTLE) {
    for (let i = 0; i < outBytes.length; i += size) outBytes.subarray(i, i + size).reverse();
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Reorders elements stored in Fortran order (first index fastest) into C order. */
function fortranToC<T extends NpyData>(data: T, shape: readonly number[]): T {
  const rank = shape.length;
  if (rank < 2) return data;
  const n = sizeOf(shape);
  const out = (Array.isArray(data) ? new Array<string>(n) : new (data.constructor as new (n: number) => Exclude<NpyData, string[]>)(n)) as T;
  const src = data as unknown as ArrayLike<unknown> & { [i: number]: unknown };
  const dst = out as unknown as { [i: number]: unknown };
  if (rank === 2) {
    const [r, c] = shape;
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[i * c + j] = src[j * r + i];
    return out;
  }
  // General rank: walk C order with an index vector, tracking the Fortran offset.
  const fStride = new Array<number>(rank);
  let acc = 1;
  for (let d = 0; d < rank; d++) { fStride[d] = acc; acc *= shape[d]; }
  const idx = new Array<number>(rank).fill(0);
  let f = 0;
  for (let i = 0; i < n; i++) {
    dst[i] = src[f];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      f += fStride[d];
      if (idx[d] < shape[d]) break;
      f -= fStride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Parses the bytes of one .npy file. `where` names it in error messages. */
export function parseNpy(bytes: Uint8Array, where = 'array.npy'): NpyArray {
  if (bytes.length < 10 || !NPY_MAGIC.every((b, i) => bytes[i] === b)) {
    throw new AmendError(`${where}: not a .npy array (no \\x93NUMPY magic at the start)`);
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new AmendError(`${where}: the .npy header is truncated`);
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new AmendError(`${where}: .npy format version ${major}.${bytes[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  if (headerStart + headerLen > bytes.length) throw new AmendError(`${where}: the .npy header runs past the end of the data; the file is truncated`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const { descr, fortranOrder, shape } = parseNpyHeader(text, where);
  const { kind, code, size, little } = parseDescr(descr, where);
  const n = sizeOf(shape);
  const dataStart = headerStart + headerLen;
  const need = n * size;
  if (bytes.length - dataStart < need) {
    throw new AmendError(`${where}: shape (${shape.join(', ')}) of ${descr} needs ${need} bytes but only ${bytes.length - dataStart} follow the header; the file is truncated`);
  }
  let data = decodeElements(bytes.subarray(dataStart, dataStart + need), n, code, size, little);
  if (fortranOrder) data = fortranToC(data, shape);
  return { descr, kind: code === 'f' && size === 2 ? 'f2' : kind, shape, fortranOrder, data };
}

/** Reads one .npy file. */
export function readNpy(file: string): NpyArray {
  refuseDevice(file, 'a .npy file');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw fileError(file, e);
  }
  return parseNpy(bytes, file);
}

/** The elements of a numeric array as float64, C order (bool as 0/1). Strings are refused. */
export function npyToFloat64(a: NpyArray, where = 'array'): Float64Array {
  if (Array.isArray(a.data)) throw new AmendError(`${where}: holds strings (${a.descr}), not numbers`);
  if (a.data instanceof Float64Array) return a.data;
  const out = new Float64Array(a.data.length);
  const src = a.data;
  if (src instanceof BigInt64Array || src instanceof BigUint64Array) {
    for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
  } else {
    out.set(src);
  }
  return out;
}

/** The single number of a 0-d (or one-element) numeric array. */
export function npyScalar(a: NpyArray, where = 'array'): number {
  if (a.data.length !== 1) throw new AmendError(`${where}: expected a single number, found shape (${a.shape.join(', ')})`);
  if (Array.isArray(a.data)) throw new AmendError(`${where}: holds a string (${a.descr}), not a number`);
  const v = a.data[0];
  return typeof v === 'bigint' ? Number(v) : v;
}

// ---------------------------------------------------------------------------------------------
// zip container

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_EOCD = 0x06054b50, SIG_EOCD64 = 0x06064b50, SIG_LOC64 = 0x07064b50;
const SIG_CENTRAL = 0x02014b50, SIG_LOCAL = 0x04034b50;

function fileError(file: string, e: unknown): AmendError {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') return new AmendError(`${file}: no such file — check the path`);
  if (err?.code === 'EISDIR') return new AmendError(`${file}: is a directory, not a .npz/.npy file`);
  if (err?.code === 'EACCES' || err?.code === 'EPERM') return new AmendError(`${file}: permission denied`);
  return new AmendError(`${file}: cannot read it: ${err?.message ?? String(e)}`);
}

function readAt(fd: number, file: string, dst: Uint8Array, position: number): void {
  const got = readInto(fd, dst, position);
  if (got < dst.length) throw new AmendError(`${file}: the file ends at byte ${position + got} inside a zip member; it is truncated — re-download or re-create it`);
}

function u64(view: DataView, at: number): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new AmendError('zip: a 64-bit size or offset is too large');
  return Number(v);
}

/** The central directory of a zip file. */
function readCentralDirectory(fd: number, file: string, fileSize: number): ZipEntry[] {
  const notZip = `${file}: not a .npz file (no zip end-of-central-directory record); it is truncated or another format`;
  if (fileSize < 22) throw new AmendError(notZip);
  const tailLen = Math.min(fileSize, 22 + 0xffff + 20);
  const tail = new Uint8Array(tailLen);
  readAt(fd, file, tail, fileSize - tailLen);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) { eocd = i; break; }
  }
  if (eocd < 0) throw new AmendError(notZip);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) && eocd >= 20
    && tv.getUint32(eocd - 20, true) === SIG_LOC64) {
    const rec = new Uint8Array(56);
    readAt(fd, file, rec, u64(tv, eocd - 20 + 8));
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== SIG_EOCD64) throw new AmendError(`${file}: broken zip64 end-of-central-directory record; the file is corrupt`);
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  }
  if (cdOffset + cdSize > fileSize) throw new AmendError(`${file}: the zip central directory runs past the end of the file; it is truncated`);
  const cd = new Uint8Array(cdSize);
  readAt(fd, file, cd, cdOffset);
  const v = new DataView(cd.buffer);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) throw new AmendError(`${file}: zip central directory entry ${k} is corrupt`);
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true), commentLen = v.getUint16(p + 32, true);
    let localOffset = v.getUint32(p + 42, true);
    // The name, extra field and comment lengths are the file's word: checked, a DataView read past
    // the directory would throw a RangeError instead of naming the damage.
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw new AmendError(`${file}: zip central directory entry ${k} is corrupt`);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    const name = new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(nameBytes);
    // zip64 extended information: the fields whose 32-bit value is 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) throw new AmendError(`${file}: zip central directory entry ${k} is corrupt`);
      if (id === 0x0001) {
        const need = 8 * [size, compressedSize, localOffset].filter((x) => x === 0xffffffff).length;
        if (len < need) throw new AmendError(`${file}: zip central directory entry ${k} is corrupt (its zip64 sizes are missing)`);
        let q = e + 4;
        if (size === 0xffffffff) { size = u64(v, q); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(v, q); q += 8; }
        if (localOffset === 0xffffffff) { localOffset = u64(v, q); q += 8; }
      }
      e += 4 + len;
    }
    entries.push({ name, method, flags, crc, compressedSize, size, localOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

let crcTable: Int32Array | null = null;

/** CRC-32 (IEEE 802.3), as zip and PNG use. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** The uncompressed bytes of one zip member. */
function readEntry(fd: number, file: string, fileSize: number, e: ZipEntry): Uint8Array {
  const where = `${file}: member "${e.name}"`;
  if (e.flags & 1) throw new AmendError(`${where} is encrypted; Amend cannot read encrypted archives`);
  const head = new Uint8Array(30);
  readAt(fd, file, head, e.localOffset);
  const hv = new DataView(head.buffer);
  if (hv.getUint32(0, true) !== SIG_LOCAL) throw new AmendError(`${where}: no local file header at offset ${e.localOffset}; the archive is corrupt`);
  const dataStart = e.localOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
  // Checked before allocating: a damaged (zip64) size can claim terabytes.
  if (dataStart + e.compressedSize > fileSize) {
    throw new AmendError(`${where}: its ${e.compressedSize} bytes at offset ${dataStart} run past the end of the file (${fileSize} bytes); the archive is truncated or corrupt — re-download or re-create it`);
  }
  const raw = new Uint8Array(e.compressedSize);
  readAt(fd, file, raw, dataStart);
  let out: Uint8Array;
  if (e.method === 0) {
    out = raw;
  } else if (e.method === 8) {
    try {
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      throw new AmendError(`${where}: cannot inflate it (${(err as Error).message}); the archive is corrupt`);
    }
  } else {
    throw new AmendError(`${where} uses zip compression method ${e.method}; only stored (0) and deflate (8) are supported`);
  }
  if (out.length !== e.size) throw new AmendError(`${where}: ${out.length} bytes after decompression, the directory says ${e.size}; the archive is corrupt`);
  if (crc32(out) !== e.crc) throw new AmendError(`${where}: CRC-32 mismatch; the archive is corrupt — re-download or re-create it`);
  return out;
}

function withFile<T>(file: string, fn: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw fileError(file, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new AmendError(`${file}: is a directory, not a .npz file`);
    // A zip is read from its end (the central directory) by position: a pipe has no end to seek to.
    if (!st.isFile()) throw new AmendError(`${file}: not a regular file (a pipe or a device?); a .npz is read by position, so write it to a file first`);
    return fn(fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
}

const arrayName = (member: string): string => (member.endsWith('.npy') ? member.slice(0, -4) : member);

/**
 * Reads the arrays of a .npz file by name (without ".npy"). `only` selects arrays by name;
 * nothing is read or inflated for the others.
 */
export function readNpz(file: string, opts: { only?: (name: string) => boolean } = {}): Map<string, NpyArray> {
  return withFile(file, (fd, size) => {
    const out = new Map<string, NpyArray>();
    for (const e of readCentralDirectory(fd, file, size)) {
      if (e.name.endsWith('/')) continue;
      const name = arrayName(e.name);
      if (opts.only && !opts.only(name)) continue;
      out.set(name, parseNpy(readEntry(fd, file, size, e), `${file}: ${e.name}`));
    }
    return out;
  });
}
