// The emitted .d.ts names Buffer, so it brings @types/node itself (preserve: TypeScript ≥ 5.5 drops it otherwise).
/// <reference types="node" preserve="true" />
/**
 * A minimal PNG encoder (8-bit RGB, no interlace) on node's zlib, so reports need no native
 * image library. Each row is stored with filter "Up" against the previous one: charts are mostly
 * flat colour and vertical runs, which that filter turns into zeros that deflate well.
 */
import zlib from 'node:zlib';
import { crc32 } from '../io/npz.js';

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** PNG bytes of an RGB image (`rgb` is width × height × 3, row-major). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`encodePng: ${rgb.length} bytes for ${width}×${height} RGB`);
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    raw[o] = y === 0 ? 0 : 2;
    for (let x = 0; x < stride; x++) {
      const v = rgb[y * stride + x]!;
      raw[o + 1 + x] = y === 0 ? v : (v - rgb[(y - 1) * stride + x]!) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Reads back what encodePng writes (tests; not a general PNG decoder). */
export function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  let p = 8, width = 0, height = 0;
  const idat: Buffer[] = [];
  while (p < png.length) {
    const len = png.readUInt32BE(p);
    const type = png.toString('ascii', p + 4, p + 8);
    const data = png.subarray(p + 8, p + 8 + len);
    const crc = png.readUInt32BE(p + 8 + len);
    if (crc32(png.subarray(p + 4, p + 8 + len)) !== crc) throw new Error(`bad CRC in ${type}`);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[9] !== 2) throw new Error('only 8-bit RGB');
    } else if (type === 'IDAT') idat.push(data);
    p += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const up = y > 0 ? rgb[(y - 1) * stride + x]! : 0;
      const left = x >= 3 ? rgb[y * stride + x - 3]! : 0;
      rgb[y * stride + x] = f === 0 ? v : f === 1 ? (v + left) & 0xff : f === 2 ? (v + up) & 0xff : Number.NaN;
      if (f > 2) throw new Error(`filter ${f} not supported`);
    }
  }
  return { width, height, rgb };
}
