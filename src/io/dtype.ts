// Element types of safetensors files and the exact conversions between them and float32.
//
// Compute in Amend is always float32; files may store F32, F16 or BF16 (and, read-only in
// practice, the integer / F64 types that some checkpoints carry for buffers). Conversions are
// bit-exact where the format allows it: f16 -> f32 -> f16 and bf16 -> f32 -> bf16 return the
// original bits, NaN payloads included, because every path goes through Uint32 views and never
// through a JS number.

/** The storage types Amend writes for weights. */
export type StorageDType = 'F32' | 'F16' | 'BF16';

/** Every element type Amend can read (converted to float32) and write (converted from float32). */
export type FileDType =
  | StorageDType
  | 'F64'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

/**
 * Byte size of every dtype the safetensors format defines, in the order of the reference
 * implementation's `Dtype` enum (which is also the order its writer sorts by: larger index first).
 * Sub-byte types (F4, F6_*) have no whole-byte size and are listed separately.
 */
const SAFETENSORS_DTYPES: ReadonlyArray<readonly [string, number]> = [
  ['BOOL', 1],
  ['U8', 1],
  ['I8', 1],
  ['F8_E5M2', 1],
  ['F8_E4M3', 1],
  ['F8_E8M0', 1],
  ['I16', 2],
  ['U16', 2],
  ['F16', 2],
  ['BF16', 2],
  ['I32', 4],
  ['U32', 4],
  ['F32', 4],
  ['C64', 8],
  ['F64', 8],
  ['I64', 8],
  ['U64', 8],
];
const SUB_BYTE_DTYPES = new Set(['F4', 'F6_E2M3', 'F6_E3M2']);

const DTYPE_SIZE = new Map<string, number>(SAFETENSORS_DTYPES);
const DTYPE_RANK = new Map<string, number>(SAFETENSORS_DTYPES.map(([d], i) => [d, i]));

const READABLE = new Set<string>(['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL']);

/** Byte size of one element, or undefined for a dtype the safetensors format does not define. */
export function dtypeSize(dtype: string): number | undefined {
  return DTYPE_SIZE.get(dtype);
}

/** True for a dtype name the safetensors format defines (whether or not Amend converts it). */
export function isKnownDType(dtype: string): boolean {
  return DTYPE_SIZE.has(dtype) || SUB_BYTE_DTYPES.has(dtype);
}

/** True for the dtypes Amend converts to and from float32. */
export function isFileDType(dtype: string): dtype is FileDType {
  return READABLE.has(dtype);
}

export const FILE_DTYPES: readonly FileDType[] = [...READABLE] as FileDType[];

/** Sort key of the reference writer: position in its dtype enum (larger = written first). */
export function dtypeRank(dtype: string): number {
  return DTYPE_RANK.get(dtype) ?? -1;
}

/** Why a known dtype cannot be converted (for error messages). */
export function unsupportedDTypeHint(dtype: string): string {
  if (dtype.startsWith('F8') || dtype === 'F4' || dtype.startsWith('F6')) {
    return 'FP8/FP4/FP6 checkpoints usually carry separate block scales that a plain conversion would ignore; use a F32/F16/BF16 copy of the model';
  }
  if (dtype === 'C64') return 'complex tensors are not model weights Amend can use';
  return `supported: ${FILE_DTYPES.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// float16 <-> float32

let f16Table: Int32Array | null = null;

/** float32 bit patterns of all 65536 float16 values (exact: every f16 is representable in f32). */
function halfToFloatTable(): Int32Array {
  if (f16Table) return f16Table;
  // Int32 (not Uint32) views keep every value a small integer for V8: no heap numbers in the loop.
  const table = new Int32Array(65536);
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let bits: number;
    if (exp === 0x1f) {
      // Inf or NaN: keep the payload in the top mantissa bits so f32 -> f16 gives it back.
      bits = 0x7f800000 | (mant << 13);
    } else if (exp !== 0) {
      bits = ((exp - 15 + 127) << 23) | (mant << 13);
    } else {
      // zero or subnormal: mant * 2^-24 is exact in float32.
      scratch[0] = mant * 2 ** -24;
      bits = scratchBits[0]!;
    }
    table[h] = sign | bits;
  }
  f16Table = table;
  return table;
}

/** float32 bit pattern -> float16 bit pattern, round to nearest even (overflow -> inf). */
export function f32BitsToF16Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    const m = mant >>> 13;
    // A NaN whose payload lies only in the low bits must stay a NaN.
    return sign | 0x7c00 | (m === 0 ? 0x200 : m);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry into bit 10 correctly yields the smallest normal
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // carry may give inf: correct
  return half;
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest even. */
export function f32BitsToBf16Bits(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) {
    const top = u >>> 16;
    return (top & 0x7f) === 0 ? top | 0x40 : top; // keep it a NaN
  }
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Convert `n` elements of `src` (raw little-endian bytes of dtype) into out32[outOffset...]. */
export function decodeInto(
  dtype: FileDType,
  src: Uint8Array,
  n: number,
  out: Float32Array,
  outOffset: number,
): void {
  // src is always a freshly allocated chunk buffer (offset 0), so typed views are aligned.
  const buf = src.buffer;
  const off = src.byteOffset;
  switch (dtype) {
    case 'F32': {
      new Uint8Array(out.buffer, out.byteOffset + outOffset * 4, n * 4).set(src.subarray(0, n * 4));
      return;
    }
    case 'F16': {
      const table = halfToFloatTable();
      const h = new Uint16Array(buf, off, n);
      const o = new Int32Array(out.buffer, out.byteOffset + outOffset * 4, n);
      for (let i = 0; i < n; i++) o[i] = table[h[i]!]!;
      return;
    }
    case 'BF16': {
      const h = new Uint16Array(buf, off, n);
      const o = new Int32Array(out.buffer, out.byteOffset + outOffset * 4, n);
      for (let i = 0; i < n; i++) o[i] = h[i]! << 16;
      return;
    }
    case 'F64': {
      const s = new Float64Array(buf, off, n);
      for (let i = 0; i < n; i++) out[outOffset + i] = s[i]!;
      return;
    }
    case 'I64': {
      const s = new BigInt64Array(buf, off, n);
      for (let i = 0; i < n; i++) out[outOffset + i] = Number(s[i]!);
      return;
    }
    case 'U64': {
      const s = new BigUint64Array(buf, off, n);
      for (let i = 0; i < n; i++) out[outOffset + i] = Number(s[i]!);
      return;
    }
    case 'I32':
      out.set(new Int32Array(buf, off, n), outOffset);
      return;
    case 'U32':
      out.set(new Uint32Array(buf, off, n), outOffset);
      return;
    case 'I16':
      out.set(new Int16Array(buf, off, n), outOffset);
      return;
    case 'U16':
      out.set(new Uint16Array(buf, off, n), outOffset);
      return;
    case 'I8':
      out.set(new Int8Array(buf, off, n), outOffset);
      return;
    case 'U8':
      out.set(new Uint8Array(buf, off, n), outOffset);
      return;
    case 'BOOL': {
      const s = new Uint8Array(buf, off, n);
      for (let i = 0; i < n; i++) out[outOffset + i] = s[i] ? 1 : 0;
      return;
    }
  }
}

const INT_RANGE: Partial<Record<FileDType, readonly [number, number]>> = {
  I8: [-128, 127],
  U8: [0, 255],
  I16: [-32768, 32767],
  U16: [0, 65535],
  I32: [-2147483648, 2147483647],
  U32: [0, 4294967295],
  I64: [-(2 ** 63), 2 ** 63 - 1],
  U64: [0, 2 ** 64 - 1],
  BOOL: [0, 1],
};

/**
 * Convert `n` float32 values from data[start...] into raw little-endian bytes of dtype in dst
 * (a fresh buffer, offset 0). Returns the index (relative to start) of the first value an integer
 * dtype cannot hold exactly, or -1.
 */
export function encodeInto(dtype: FileDType, data: Float32Array, start: number, n: number, dst: Uint8Array): number {
  const buf = dst.buffer;
  const off = dst.byteOffset;
  const src32 = new Uint32Array(data.buffer, data.byteOffset + start * 4, n);
  switch (dtype) {
    case 'F32':
      new Uint32Array(buf, off, n).set(src32);
      return -1;
    case 'F16': {
      const o = new Uint16Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = f32BitsToF16Bits(src32[i]!);
      return -1;
    }
    case 'BF16': {
      const o = new Uint16Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = f32BitsToBf16Bits(src32[i]!);
      return -1;
    }
    case 'F64': {
      const o = new Float64Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = data[start + i]!;
      return -1;
    }
    default: {
      const [lo, hi] = INT_RANGE[dtype]!;
      for (let i = 0; i < n; i++) {
        const v = data[start + i]!;
        if (!Number.isInteger(v) || v < lo || v > hi) return i;
      }
      switch (dtype) {
        case 'I64': {
          const o = new BigInt64Array(buf, off, n);
          for (let i = 0; i < n; i++) o[i] = BigInt(data[start + i]!);
          break;
        }
        case 'U64': {
          const o = new BigUint64Array(buf, off, n);
          for (let i = 0; i < n; i++) o[i] = BigInt(data[start + i]!);
          break;
        }
        case 'I32':
          new Int32Array(buf, off, n).set(data.subarray(start, start + n));
          break;
        case 'U32':
          new Uint32Array(buf, off, n).set(data.subarray(start, start + n));
          break;
        case 'I16':
          new Int16Array(buf, off, n).set(data.subarray(start, start + n));
          break;
        case 'U16':
          new Uint16Array(buf, off, n).set(data.subarray(start, start + n));
          break;
        case 'I8':
          new Int8Array(buf, off, n).set(data.subarray(start, start + n));
          break;
        case 'U8':
        case 'BOOL':
          new Uint8Array(buf, off, n).set(data.subarray(start, start + n));
          break;
      }
      return -1;
    }
  }
}

/**
 * How many values of `data` are NaN or ±Inf. A whole-array pass, so it is written for speed: the
 * exponent field plus one low exponent bit carries into the sign bit only when the exponent is all
 * ones, so OR-ing that over four lanes at a time finds whether any value is non-finite without a
 * branch per value; only then are they counted.
 */
export function countNonFinite(data: Float32Array): number {
  const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
  const n = bits.length, n4 = n & ~3;
  let any = 0, i = 0;
  for (; i < n4; i += 4) {
    any |= ((bits[i]! & 0x7f800000) + 0x00800000) | ((bits[i + 1]! & 0x7f800000) + 0x00800000)
      | ((bits[i + 2]! & 0x7f800000) + 0x00800000) | ((bits[i + 3]! & 0x7f800000) + 0x00800000);
  }
  for (; i < n; i++) any |= (bits[i]! & 0x7f800000) + 0x00800000;
  if (any >= 0) return 0;
  let count = 0;
  for (let j = 0; j < n; j++) if ((bits[j]! & 0x7f800000) === 0x7f800000) count++;
  return count;
}
