// The .npz / .npy reader: hand-built archives with known bytes (stored, deflated, zip64), and,
// where Python with numpy is installed, files written by numpy itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { crc32, npyScalar, npyToFloat64, parseNpy, readNpy, readNpz } from '../src/io/npz.js';
import { AmendError } from '../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-npz-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A .npy file: magic, version, padded header dict, data. */
function npy(descr: string, shape: number[], fortran: boolean, body: Uint8Array, major = 1): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = major === 1 ? 10 : 12;
  let len = dict.length + 1;
  len += (64 - ((pre + len) % 64)) % 64;
  const header = Buffer.alloc(len, 0x20);
  header.write(dict, 'latin1');
  header[len - 1] = 0x0a;
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]).copy(head);
  if (major === 1) head.writeUInt16LE(len, 8);
  else head.writeUInt32LE(len, 8);
  return Buffer.concat([head, header, body]);
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

interface Member { name: string; data: Uint8Array; deflate?: boolean }

/** A zip archive; zip64 puts every size and offset in zip64 extra fields and adds zip64 end records. */
function zip(members: Member[], zip64 = false): Uint8Array {
  const parts: Buffer[] = [], central: Buffer[] = [];
  let off = 0;
  for (const m of members) {
    const name = Buffer.from(m.name, 'utf8');
    const comp = m.deflate ? zlib.deflateRawSync(m.data) : Buffer.from(m.data);
    const crc = crc32(m.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(zip64 ? 45 : 20, 4);
    local.writeUInt16LE(m.deflate ? 8 : 0, 8); local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(comp.length, 18); local.writeUInt32LE(m.data.length, 22);
    local.writeUInt16LE(name.length, 26); local.writeUInt16LE(0, 28);
    parts.push(local, name, comp);
    const extra = zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (zip64) {
      extra.writeUInt16LE(1, 0); extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(m.data.length), 4); extra.writeBigUInt64LE(BigInt(comp.length), 12);
      extra.writeBigUInt64LE(BigInt(off), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(45, 4); c.writeUInt16LE(zip64 ? 45 : 20, 6);
    c.writeUInt16LE(m.deflate ? 8 : 0, 10); c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(zip64 ? 0xffffffff : comp.length, 20); c.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 24);
    c.writeUInt16LE(name.length, 28); c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(zip64 ? 0xffffffff : off, 42);
    central.push(c, name, extra);
    off += 30 + name.length + comp.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0); rec.writeBigUInt64LE(44n, 4); rec.writeUInt16LE(45, 12); rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(members.length), 24); rec.writeBigUInt64LE(BigInt(members.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40); rec.writeBigUInt64LE(BigInt(off), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0); loc.writeBigUInt64LE(BigInt(off + cd.length), 8); loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(zip64 ? 0xffff : members.length, 8); end.writeUInt16LE(zip64 ? 0xffff : members.length, 10);
  end.writeUInt32LE(zip64 ? 0xffffffff : cd.length, 12); end.writeUInt32LE(zip64 ? 0xffffffff : off, 16);
  return Buffer.concat([...parts, cd, ...tail, end]);
}

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

// A 2×3 matrix in C order (f4), the same in Fortran order (f8), an int64 scalar, a unicode string.
const C23 = new Float32Array([1, 2, 3, 4, 5, 6]);
const F23 = new Float64Array([1, 4, 2, 5, 3, 6]); // columns of [[1,2,3],[4,5,6]]
const members = (deflate: boolean): Member[] => [
  { name: 'mom2.mom2.npy', data: npy('<f4', [2, 3], false, bytesOf(C23)), deflate },
  { name: 'fort.npy', data: npy('<f8', [2, 3], true, bytesOf(F23)), deflate },
  { name: 'mom2.count.npy', data: npy('<i8', [], false, bytesOf(new BigInt64Array([123456789012n]))), deflate },
  { name: 'mom2.constructor.npy', data: npy('<U9', [], false, bytesOf(new Uint32Array([...'runstats!'].map((c) => c.codePointAt(0)!)))), deflate },
];

function checkArchive(file: string): void {
  const a = readNpz(file);
  assert.deepEqual([...a.keys()], ['mom2.mom2', 'fort', 'mom2.count', 'mom2.constructor']);
  const m = a.get('mom2.mom2')!;
  assert.equal(m.kind, 'f4');
  assert.deepEqual(m.shape, [2, 3]);
  assert.deepEqual([...(m.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  const f = a.get('fort')!;
  assert.equal(f.fortranOrder, true);
  assert.deepEqual([...npyToFloat64(f)], [1, 2, 3, 4, 5, 6], 'Fortran order comes back in C order');
  assert.equal(npyScalar(a.get('mom2.count')!), 123456789012);
  assert.deepEqual(a.get('mom2.constructor')!.data, ['runstats!']);
  const only = readNpz(file, { only: (n) => n === 'fort' });
  assert.deepEqual([...only.keys()], ['fort']);
}

test('npz: stored members', () => checkArchive(write('stored.npz', zip(members(false)))));
test('npz: deflated members (savez_compressed)', () => checkArchive(write('deflated.npz', zip(members(true)))));
test('npz: zip64 sizes, offsets and end records', () => checkArchive(write('zip64.npz', zip(members(true), true))));
test('npz: a mix of stored and deflated', () => {
  const mixed = members(false).map((m, i) => ({ ...m, deflate: i % 2 === 1 }));
  checkArchive(write('mixed.npz', zip(mixed)));
});

test('npy: version 2 header, big-endian, float16, bool, 3-d Fortran order', () => {
  const be = Buffer.alloc(16);
  be.writeDoubleBE(1.5, 0); be.writeDoubleBE(-2.25, 8);
  assert.deepEqual([...(parseNpy(npy('>f8', [2], false, be, 2)).data as Float64Array)], [1.5, -2.25]);
  const half = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7c00]); // 1, -2, 0.333..., inf
  const h = parseNpy(npy('<f2', [4], false, bytesOf(half)));
  assert.equal(h.kind, 'f2');
  assert.deepEqual([...(h.data as Float32Array)].slice(0, 2), [1, -2]);
  assert.ok(Math.abs((h.data as Float32Array)[2] - 1 / 3) < 1e-3);
  assert.equal((h.data as Float32Array)[3], Infinity);
  assert.deepEqual([...(parseNpy(npy('|b1', [3], false, new Uint8Array([1, 0, 1]))).data as Uint8Array)], [1, 0, 1]);
  // shape (2, 3, 4) in Fortran order: element (i, j, k) at i + 2j + 6k holds 100i + 10j + k
  const f = new Float32Array(24);
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) f[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
  const a = parseNpy(npy('<f4', [2, 3, 4], true, bytesOf(f)));
  const d = a.data as Float32Array;
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) assert.equal(d[i * 12 + j * 4 + k], 100 * i + 10 * j + k);
});

test('npz: corrupt and foreign files give one clear error', () => {
  const good = zip(members(false));
  const badCrc = Buffer.from(good);
  badCrc[80] ^= 0xff; // inside the first member's header text
  assert.throws(() => readNpz(write('badcrc.npz', badCrc)), (e: unknown) => e instanceof AmendError && /CRC-32 mismatch/.test(e.message));
  assert.throws(() => readNpz(write('short.npz', good.subarray(0, good.length - 30))), AmendError);
  assert.throws(() => readNpz(write('text.npz', Buffer.from('hello, not a zip at all'))), /not a \.npz file/);
  assert.throws(() => readNpz(path.join(tmp, 'missing.npz')), /no such file/);
  assert.throws(() => parseNpy(npy('|O', [1], false, new Uint8Array(8))), /object arrays/);
  assert.throws(() => parseNpy(npy('<f4', [10], false, new Uint8Array(8))), /truncated/);
  assert.throws(() => parseNpy(new Uint8Array(20)), /not a \.npy/);
});

// ------------------------------------------------------------------------------------------------
// files written by numpy itself

const PY = '/usr/bin/python3';
const hasNumpy = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('npz written by numpy.savez and numpy.savez_compressed', { skip: hasNumpy ? false : 'python3 with numpy is not installed' }, () => {
  const script = `
import numpy as np, json, sys
out = sys.argv[1]
rng = np.random.RandomState(0)
arrays = dict(
  c32=rng.standard_normal((5, 7)).astype(np.float32),
  f64=np.asfortranarray(rng.standard_normal((6, 4))),
  f32_3d=np.asfortranarray(rng.standard_normal((2, 3, 4)).astype(np.float32)),
  be=rng.standard_normal(5).astype('>f8'),
  half=np.array([0.5, -1.25, 65504.0], dtype=np.float16),
  count=np.array(987654321987),
  flag=np.array([True, False, True]),
  name=np.array('util.runningstats.SecondMoment()'),
)
np.savez(out + '/plain.npz', **arrays)
np.savez_compressed(out + '/compressed.npz', **arrays)
np.save(out + '/single.npy', arrays['f64'])
json.dump({k: (v.tolist() if v.dtype.kind != 'U' else str(v)) for k, v in arrays.items()}, open(out + '/expected.json', 'w'))
`;
  const dir = fs.mkdtempSync(path.join(tmp, 'py-'));
  const r = spawnSync(PY, ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Record<string, unknown>;
  const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [Number(v)]);
  for (const file of ['plain.npz', 'compressed.npz']) {
    const a = readNpz(path.join(dir, file));
    for (const key of ['c32', 'f64', 'f32_3d', 'be', 'half', 'flag']) {
      const got = [...npyToFloat64(a.get(key)!)];
      const want = flat(expected[key]);
      assert.equal(got.length, want.length, `${file} ${key}`);
      for (let i = 0; i < want.length; i++) assert.equal(got[i], want[i], `${file} ${key}[${i}]`);
    }
    assert.deepEqual(a.get('f32_3d')!.shape, [2, 3, 4]);
    assert.equal(a.get('f64')!.fortranOrder, true);
    assert.equal(npyScalar(a.get('count')!), 987654321987);
    assert.deepEqual(a.get('name')!.data, ['util.runningstats.SecondMoment()']);
  }
  assert.deepEqual([...npyToFloat64(readNpy(path.join(dir, 'single.npy')))], flat(expected.f64));
});
