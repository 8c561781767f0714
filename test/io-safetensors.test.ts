import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AmendError } from '../src/errors.js';
import {
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  type TensorToWrite,
} from '../src/io/safetensors.js';
import { countNonFinite } from '../src/io/dtype.js';
import { repoRoot } from './helpers.js';
import { readInto, writeAll } from '../src/io/fd.js';

const SHARED_MODELS = path.resolve(repoRoot(), '..', 'shared', 'models');

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-st-'));
  dirs.push(d);
  return d;
}

function bits32(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Deterministic pseudo-random floats over many magnitudes (incl. subnormals, signs). */
function randomFloats(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const mant = (s >>> 8) / (1 << 24);
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const e = (s % 60) - 40;
    out[i] = (s & 1 ? -1 : 1) * mant * 2 ** e;
  }
  return out;
}

/** Write a raw safetensors file from a header object (or string) and data bytes. */
function rawFile(file: string, header: unknown, data: Uint8Array, lengthOverride?: bigint): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

function expectAmendError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmendError, `expected AmendError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'error message must be one line');
    return true;
  });
}

test('f32 round trip is bit-identical, NaN payloads and -0 included', () => {
  const dir = tmpDir();
  const data = randomFloats(1000);
  const b = bits32(data);
  b[0] = 0x7fc00001; // NaN with payload
  b[1] = 0x80000000; // -0
  b[2] = 0x00000001; // smallest subnormal
  b[3] = 0xff800000; // -inf
  const file = path.join(dir, 'a.safetensors');
  writeSafetensors(file, [{ name: 'w', shape: [10, 100], data }]);
  const back = readSafetensors(file).tensors.get('w')!;
  assert.equal(back.dtype, 'F32');
  assert.deepEqual(back.shape, [10, 100]);
  assert.deepEqual(bits32(back.data), bits32(data));
});

test('f16: every one of the 65536 values survives f16 -> f32 -> f16 bit-identically', () => {
  const dir = tmpDir();
  const h = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) h[i] = i;
  const file = path.join(dir, 'h.safetensors');
  rawFile(file, { h: { dtype: 'F16', shape: [65536], data_offsets: [0, 131072] } }, new Uint8Array(h.buffer));
  const f = readSafetensors(file).tensors.get('h')!;
  assert.equal(f.dtype, 'F16');
  const fb = bits32(f.data);
  for (let i = 0; i < 65536; i++) assert.equal(f32BitsToF16Bits(fb[i]!), i, `f16 0x${i.toString(16)}`);
  // And through the writer: F16 file bytes equal the original bytes.
  const out = path.join(dir, 'h2.safetensors');
  writeSafetensors(out, [{ name: 'h', shape: [65536], data: f.data, dtype: 'F16' }]);
  const hdr = readSafetensorsHeader(out);
  const bytes = fs.readFileSync(out).subarray(hdr.dataStart);
  assert.ok(Buffer.from(h.buffer).equals(bytes));
});

test('f16 special values decode exactly', () => {
  const dir = tmpDir();
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504], // largest finite
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  const h = new Uint16Array(cases.length + 1);
  cases.forEach(([b], i) => (h[i] = b));
  h[cases.length] = 0x7e00; // NaN
  const file = path.join(dir, 's.safetensors');
  rawFile(file, { s: { dtype: 'F16', shape: [h.length], data_offsets: [0, h.byteLength] } }, new Uint8Array(h.buffer));
  const f = readSafetensors(file).tensors.get('s')!.data;
  cases.forEach(([b, v], i) => assert.ok(Object.is(f[i], v), `0x${b.toString(16)} -> ${f[i]} expected ${v}`));
  assert.ok(Number.isNaN(f[cases.length]));
});

test('f32 -> f16 rounds to nearest even, overflows to inf, underflows to zero', () => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const enc = (x: number): number => {
    f[0] = x;
    return f32BitsToF16Bits(u[0]!);
  };
  assert.equal(enc(1 + 2 ** -11), 0x3c00); // halfway between 1 and next: tie -> even (1)
  assert.equal(enc(1 + 3 * 2 ** -11), 0x3c02); // halfway, odd below -> rounds up to even
  assert.equal(enc(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above halfway -> up
  assert.equal(enc(65504), 0x7bff);
  assert.equal(enc(65519), 0x7bff); // below the rounding boundary
  assert.equal(enc(65520), 0x7c00); // exactly halfway to 2^16 -> inf
  assert.equal(enc(1e10), 0x7c00);
  assert.equal(enc(-1e10), 0xfc00);
  assert.equal(enc(2 ** -25), 0x0000); // halfway to smallest subnormal: tie -> even (0)
  assert.equal(enc(2 ** -25 * 1.0001), 0x0001);
  assert.equal(enc(3 * 2 ** -25), 0x0002); // 1.5 subnormal units: tie -> even (2)
  assert.equal(enc(2 ** -14 - 2 ** -25), 0x0400); // rounds up into the smallest normal
  assert.equal(enc(1e-30), 0x0000);
  assert.equal(enc(-1e-30), 0x8000);
  assert.equal(enc(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(enc(NaN) & 0x3ff, 0);
});

test('f32 -> bf16 rounds to nearest even and keeps NaN a NaN', () => {
  assert.equal(f32BitsToBf16Bits(0x3f808000), 0x3f80); // tie, even below
  assert.equal(f32BitsToBf16Bits(0x3f818000), 0x3f82); // tie, odd below -> up
  assert.equal(f32BitsToBf16Bits(0x3f808001), 0x3f81);
  assert.equal(f32BitsToBf16Bits(0x7f7fffff), 0x7f80); // max float rounds to inf
  assert.equal(f32BitsToBf16Bits(0x7f800001) & 0x7f80, 0x7f80);
  assert.notEqual(f32BitsToBf16Bits(0x7f800001) & 0x7f, 0);
});

test('bf16 and f16 round trips through files are bit-identical', () => {
  const dir = tmpDir();
  const data = randomFloats(5000, 7);
  for (const dtype of ['F16', 'BF16'] as const) {
    const f1 = path.join(dir, `1-${dtype}.safetensors`);
    writeSafetensors(f1, [{ name: 't', shape: [50, 100], data, dtype }]);
    const r1 = readSafetensors(f1).tensors.get('t')!;
    assert.equal(r1.dtype, dtype);
    const f2 = path.join(dir, `2-${dtype}.safetensors`);
    writeSafetensors(f2, [{ name: 't', shape: [50, 100], data: r1.data, dtype }]);
    assert.ok(fs.readFileSync(f1).equals(fs.readFileSync(f2)), `${dtype} file bytes differ after a round trip`);
    const r2 = readSafetensors(f2).tensors.get('t')!;
    assert.deepEqual(bits32(r2.data), bits32(r1.data));
    // The conversion error is within half an ulp of the storage format.
    const tol = dtype === 'F16' ? 2 ** -11 : 2 ** -8;
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      if (Math.abs(x) > 1e-4 && Math.abs(x) < 6e4) assert.ok(Math.abs(r1.data[i]! - x) <= Math.abs(x) * tol, `${dtype} ${x} -> ${r1.data[i]}`);
    }
  }
});

test('integer and f64 tensors are read as float32 with their dtype recorded, and written back identically', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'i.safetensors');
  const i64 = new BigInt64Array([0n, -5n, 1n << 40n]);
  const i32 = new Int32Array([-7, 8, 2147483647]);
  const u8 = new Uint8Array([0, 200, 255, 0]); // padded below
  const f64 = new Float64Array([0.5, -1e300]);
  const bool = new Uint8Array([1, 0, 1, 1]);
  const parts = [i64, f64, i32, u8, bool].map((a) => new Uint8Array(a.buffer));
  let off = 0;
  const spans = parts.map((p) => [off, (off += p.length)]);
  rawFile(
    file,
    {
      a: { dtype: 'I64', shape: [3], data_offsets: spans[0] },
      b: { dtype: 'F64', shape: [2], data_offsets: spans[1] },
      c: { dtype: 'I32', shape: [3], data_offsets: spans[2] },
      d: { dtype: 'U8', shape: [4], data_offsets: spans[3] },
      e: { dtype: 'BOOL', shape: [2, 2], data_offsets: spans[4] },
    },
    Buffer.concat(parts),
  );
  const { tensors } = readSafetensors(file);
  assert.deepEqual([...tensors.get('a')!.data], [0, -5, 2 ** 40]);
  assert.equal(tensors.get('a')!.dtype, 'I64');
  assert.deepEqual([...tensors.get('b')!.data], [0.5, -Infinity]);
  assert.deepEqual([...tensors.get('c')!.data], [-7, 8, 2147483648]); // float32 rounding of 2^31-1
  assert.deepEqual([...tensors.get('d')!.data], [0, 200, 255, 0]);
  assert.deepEqual([...tensors.get('e')!.data], [1, 0, 1, 1]);
  const out = path.join(dir, 'o.safetensors');
  const recs = [...tensors.values()].filter((t) => t.name !== 'c');
  writeSafetensors(out, recs.map((t) => ({ ...t, dtype: t.dtype as TensorToWrite['dtype'] })));
  const back = readSafetensors(out).tensors;
  for (const t of recs) {
    assert.equal(back.get(t.name)!.dtype, t.dtype);
    assert.deepEqual(bits32(back.get(t.name)!.data), bits32(t.data));
  }
  expectAmendError(
    () => writeSafetensors(path.join(dir, 'bad.safetensors'), [{ name: 'x', shape: [1], data: new Float32Array([1.5]), dtype: 'I32' }]),
    /"x" value 1\.5 .* cannot be stored exactly as I32/,
  );
  assert.deepEqual(fs.readdirSync(dir).sort(), ['i.safetensors', 'o.safetensors'], 'a failed write leaves no file behind');
});

test('writer output matches the reference implementation byte for byte', () => {
  const dir = tmpDir();
  // From the safetensors crate's own tests (test_serialization and test_empty).
  const file = path.join(dir, 'ref.safetensors');
  writeSafetensors(file, [{ name: 'attn.0', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]);
  const expected = [
    64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44,
    34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58,
    91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  ];
  assert.deepEqual([...fs.readFileSync(file)], expected);
  const empty = path.join(dir, 'empty.safetensors');
  writeSafetensors(empty, [], { framework: 'pt' });
  assert.equal(fs.readFileSync(empty).toString('latin1', 8), '{"__metadata__":{"framework":"pt"}}     ');
  assert.equal(fs.readFileSync(empty).readBigUInt64LE(0), 40n);
  // Sorting: larger dtypes first, then by name; header padded with spaces to 8 bytes.
  const mixed = path.join(dir, 'mixed.safetensors');
  writeSafetensors(mixed, [
    { name: 'b', shape: [1], data: new Float32Array([1]), dtype: 'F16' },
    { name: 'a', shape: [1], data: new Float32Array([1]), dtype: 'F16' },
    { name: 'z', shape: [1], data: new Float32Array([1]), dtype: 'F32' },
    { name: 'c', shape: [1], data: new Float32Array([1]), dtype: 'BF16' },
  ]);
  const hdr = readSafetensorsHeader(mixed);
  assert.deepEqual(
    hdr.entries.map((e) => e.name),
    ['z', 'c', 'a', 'b'],
  );
  assert.equal((hdr.dataStart - 8) % 8, 0);
  assert.equal(fs.readFileSync(mixed).toString('utf8', 8, hdr.dataStart).trimEnd().endsWith('}'), true);
});

test('an HF-written checkpoint is rewritten byte-identically', (t) => {
  const file = path.join(SHARED_MODELS, 'tiny-random-gpt2', 'model.safetensors');
  if (!fs.existsSync(file)) {
    t.skip(`${file} is absent (shared test models not installed)`);
    return;
  }
  const { tensors, metadata } = readSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt' });
  const out = path.join(tmpDir(), 'model.safetensors');
  writeSafetensors(out, [...tensors.values()].map((r) => ({ ...r, dtype: 'F32' as const })), metadata);
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(out)));
});

test('filter reads only the chosen tensors; metadata round trips', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'm.safetensors');
  writeSafetensors(
    file,
    [
      { name: 'keep', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'skip', shape: [2], data: new Float32Array([3, 4]), dtype: 'BF16' },
    ],
    { method: 'rome', 'ünï': 'cödé "quoted"' },
  );
  const r = readSafetensors(file, { filter: (n) => n === 'keep' });
  assert.deepEqual([...r.tensors.keys()], ['keep']);
  assert.deepEqual(r.metadata, { method: 'rome', 'ünï': 'cödé "quoted"' });
  const hdr = readSafetensorsHeader(file);
  assert.deepEqual(
    hdr.entries.map((e) => [e.name, e.dtype, e.begin, e.end]),
    [
      ['keep', 'F32', 0, 8],
      ['skip', 'BF16', 8, 12],
    ],
  );
  assert.equal(hdr.fileSize, fs.statSync(file).size);
});

test('corrupt files give one-line AmendErrors naming the file and the problem', () => {
  const dir = tmpDir();
  const f = (name: string): string => path.join(dir, name);
  const good = f('good.safetensors');
  writeSafetensors(good, [
    { name: 'a', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    { name: 'b', shape: [2], data: new Float32Array([5, 6]) },
  ]);
  const bytes = fs.readFileSync(good);

  // truncated data
  fs.writeFileSync(f('trunc.safetensors'), bytes.subarray(0, bytes.length - 3));
  expectAmendError(() => readSafetensors(f('trunc.safetensors')), /trunc\.safetensors: tensor "b": data_offsets \[16, 24\] run past the end .*truncated/);
  // too short to hold the length
  fs.writeFileSync(f('tiny.safetensors'), bytes.subarray(0, 5));
  expectAmendError(() => readSafetensorsHeader(f('tiny.safetensors')), /tiny\.safetensors: the file is only 5 bytes/);
  // header length past the end
  rawFile(f('hlen.safetensors'), '{}', new Uint8Array(0), 9999999n);
  expectAmendError(() => readSafetensors(f('hlen.safetensors')), /hlen\.safetensors: header length 9999999 runs past the end of the file \(10 bytes\)/);
  // a huge u64 (e.g. a pickle or random bytes)
  rawFile(f('huge.safetensors'), '{}', new Uint8Array(0), 0xffffffffffffffffn);
  expectAmendError(() => readSafetensors(f('huge.safetensors')), /header length 18446744073709551615 runs past the end/);
  // bad JSON
  rawFile(f('json.safetensors'), '{"a": {"dtype": "F32",', new Uint8Array(0));
  expectAmendError(() => readSafetensors(f('json.safetensors')), /json\.safetensors: the header is not valid JSON/);
  // JSON that is not an object
  rawFile(f('arr.safetensors'), '[1,2]', new Uint8Array(0));
  expectAmendError(() => readSafetensors(f('arr.safetensors')), /not an object/);
  // shape x dtype != bytes
  rawFile(f('shape.safetensors'), { a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16));
  expectAmendError(() => readSafetensors(f('shape.safetensors')), /tensor "a" has shape \[3\] × F32 = 12 bytes but its data_offsets \[0, 16\] span 16 bytes/);
  // offsets out of range
  rawFile(f('range.safetensors'), { a: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, new Uint8Array(16));
  expectAmendError(() => readSafetensors(f('range.safetensors')), /tensor "a": data_offsets \[8, 24\] run past the end of the data \(16 bytes/);
  // overlapping tensors
  rawFile(
    f('overlap.safetensors'),
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    new Uint8Array(12),
  );
  expectAmendError(() => readSafetensors(f('overlap.safetensors')), /tensor "b" \[4, 12\] overlaps tensor "a" \[0, 8\]/);
  // a gap
  rawFile(f('gap.safetensors'), { a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12));
  expectAmendError(() => readSafetensors(f('gap.safetensors')), /4 unused bytes before tensor "a"/);
  // trailing garbage
  rawFile(f('tail.safetensors'), { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(11));
  expectAmendError(() => readSafetensors(f('tail.safetensors')), /3 bytes after the last tensor/);
  // end before begin
  rawFile(f('rev.safetensors'), { a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8));
  expectAmendError(() => readSafetensors(f('rev.safetensors')), /end before begin/);
  // unknown dtype
  rawFile(f('dtype.safetensors'), { a: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
  expectAmendError(() => readSafetensors(f('dtype.safetensors')), /tensor "a" has unknown dtype "Q4_K"/);
  // known but unconvertible dtype: refused when read, fine when filtered out
  rawFile(
    f('fp8.safetensors'),
    { a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } },
    new Uint8Array(4),
  );
  expectAmendError(() => readSafetensors(f('fp8.safetensors')), /tensor "a" is F8_E4M3, which Amend cannot convert/);
  assert.deepEqual([...readSafetensors(f('fp8.safetensors'), { filter: (n) => n === 'b' }).tensors.keys()], ['b']);
  // bad shape and offsets entries
  rawFile(f('badshape.safetensors'), { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0));
  expectAmendError(() => readSafetensors(f('badshape.safetensors')), /shape \[-1\], not a list of non-negative integers/);
  rawFile(f('badoffs.safetensors'), { a: { dtype: 'F32', shape: [1], data_offsets: 'x' } }, new Uint8Array(4));
  expectAmendError(() => readSafetensors(f('badoffs.safetensors')), /data_offsets "x", not \[begin, end\]/);
  // non-string metadata
  rawFile(f('meta.safetensors'), { __metadata__: { n: 3 } }, new Uint8Array(0));
  expectAmendError(() => readSafetensors(f('meta.safetensors')), /metadata "n" is 3, not a string/);
  // missing file, directory
  expectAmendError(() => readSafetensors(f('nope.safetensors')), /nope\.safetensors: no such file/);
  expectAmendError(() => readSafetensors(dir), /is a directory/);
});

test('writer refuses bad input with AmendErrors and leaves no temporary files', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'w.safetensors');
  expectAmendError(() => writeSafetensors(file, [{ name: 'a', shape: [3], data: new Float32Array(2) }]), /"a" has shape \[3\] \(3 values\) but 2 values/);
  expectAmendError(
    () =>
      writeSafetensors(file, [
        { name: 'a', shape: [1], data: new Float32Array(1) },
        { name: 'a', shape: [1], data: new Float32Array(1) },
      ]),
    /"a" is given twice/,
  );
  expectAmendError(() => writeSafetensors(file, [{ name: 'a', shape: [1], data: new Float32Array(1), dtype: 'F8' as never }]), /dtype "F8"/);
  assert.deepEqual(fs.readdirSync(dir), []);
  // An existing file is replaced only by a complete new one.
  writeSafetensors(file, [{ name: 'a', shape: [1], data: new Float32Array([1]) }]);
  expectAmendError(() => writeSafetensors(file, [{ name: 'a', shape: [2], data: new Float32Array([1]) }]), /shape/);
  assert.deepEqual([...readSafetensors(file).tensors.get('a')!.data], [1]);
  assert.deepEqual(fs.readdirSync(dir), ['w.safetensors']);
});

test('readInto / writeAll: the whole buffer, or what is there up to the end of the file', () => {
  const file = path.join(tmpDir(), 'bytes.bin');
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 255);
  const w = fs.openSync(file, 'w');
  writeAll(w, bytes.subarray(0, 600));
  writeAll(w, bytes.subarray(600));
  fs.closeSync(w);
  assert.deepEqual(new Uint8Array(fs.readFileSync(file)), bytes);
  const fd = fs.openSync(file, 'r');
  try {
    const mid = new Uint8Array(100);
    assert.equal(readInto(fd, mid, 450), 100);
    assert.deepEqual(mid, bytes.subarray(450, 550));
    const tail = new Uint8Array(100);
    assert.equal(readInto(fd, tail, 950), 50, 'a short count where the file ends');
    assert.deepEqual(tail.subarray(0, 50), bytes.subarray(950));
    assert.equal(readInto(fd, tail, 2000), 0);
  } finally {
    fs.closeSync(fd);
  }
});

test('countNonFinite counts NaN (any payload, either sign) and ±Inf, and nothing finite, at every position', () => {
  // Set as bits: a NaN that passes through a JS number may lose its payload.
  const bad = [0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7f800000, 0xff800000];
  // Finite values next to the exponent's edges: the largest finite, the smallest normal and subnormal, ±0.
  const good = [3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38, 1e-45, -0, 0, 1, -2.5];
  for (let n = 0; n <= 9; n++) {
    for (let at = 0; at < n; at++) {
      for (const v of bad) {
        const a = Float32Array.from({ length: n }, (_, i) => good[i % good.length]!);
        assert.equal(countNonFinite(a), 0);
        const bits = new Uint32Array(a.buffer);
        bits[at] = v;
        bits[n - 1 - at] = v;
        assert.equal(countNonFinite(a), at === n - 1 - at ? 1 : 2, `n=${n} at=${at} ${v.toString(16)}`);
        // A view that starts one value in (the weights of a shared buffer).
        assert.equal(countNonFinite(a.subarray(1)), a.subarray(1).filter((x) => !Number.isFinite(x)).length);
      }
    }
  }
});
