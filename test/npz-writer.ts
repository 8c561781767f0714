// numpy.save / numpy.savez files written from TypeScript, for the tests of what Amend reads of ROME
// / MEMIT / EasyEdit: their layer statistics archives and ROME's idf.npy.
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from '../src/io/npz.js';
import type { SecondMoment } from '../src/stats/index.js';

/** numpy.savez's layout: stored zip members "<name>.npy" (version 1.0 headers). */
export function writeNpz(file: string, arrays: Record<string, { descr: string; shape: number[]; bytes: Uint8Array }>): void {
  const parts: Buffer[] = [], central: Buffer[] = [];
  let off = 0, count = 0;
  for (const [key, a] of Object.entries(arrays)) {
    const dict = `{'descr': '${a.descr}', 'fortran_order': False, 'shape': (${a.shape.join(', ')}${a.shape.length === 1 ? ',' : ''}), }`;
    let len = dict.length + 1;
    len += (64 - ((10 + len) % 64)) % 64;
    const head = Buffer.alloc(10 + len, 0x20);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
    head.writeUInt16LE(len, 8);
    head.write(dict, 10, 'latin1');
    head[10 + len - 1] = 0x0a;
    const data = Buffer.concat([head, a.bytes]);
    const name = Buffer.from(`${key}.npy`);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18); local.writeUInt32LE(data.length, 22); local.writeUInt16LE(name.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(20, 6); c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(data.length, 20); c.writeUInt32LE(data.length, 24); c.writeUInt16LE(name.length, 28); c.writeUInt32LE(off, 42);
    parts.push(local, name, data);
    central.push(c, name);
    off += 30 + name.length + data.length;
    count++;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(count, 8); end.writeUInt16LE(count, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(off, 16);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([...parts, cd, end]));
}

/** A ROME-style stats file: mom2.mom2 = Σ k kᵀ (float32), mom2.count, sample_size. */
export function romeNpz(file: string, sm: SecondMoment, sampleSize: number): void {
  const d = sm.dim;
  const sum = new Float32Array(d * d);
  for (let i = 0; i < d * d; i++) sum[i] = sm.mom2[i] * sm.count;
  const u32 = (s: string) => new Uint8Array(new Uint32Array([...s].map((ch) => ch.codePointAt(0)!)).buffer);
  writeNpz(file, {
    'mom2.constructor': { descr: '<U32', shape: [], bytes: u32('util.runningstats.SecondMoment()') },
    'mom2.count': { descr: '<i8', shape: [], bytes: new Uint8Array(new BigInt64Array([BigInt(sm.count)]).buffer) },
    'mom2.mom2': { descr: '<f4', shape: [d, d], bytes: new Uint8Array(sum.buffer) },
    sample_size: { descr: '<i8', shape: [], bytes: new Uint8Array(new BigInt64Array([BigInt(sampleSize)]).buffer) },
  });
}

/** A 1-D numpy.save file (version 1.0 header). */
export function writeNpy(file: string, values: number[], dtype: '<f8' | '<f4'): void {
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${values.length},), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const pre = Buffer.alloc(10);
  Buffer.from([0x93]).copy(pre, 0);
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const size = dtype === '<f8' ? 8 : 4;
  const data = Buffer.alloc(values.length * size);
  values.forEach((v, i) => (size === 8 ? data.writeDoubleLE(v, i * 8) : data.writeFloatLE(v, i * 4)));
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}
