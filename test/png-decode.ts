// Reads back what src/eval/png.ts's encodePng writes, for the tests of charts and reports (not a
// general PNG decoder: 8-bit RGB, filters None, Sub and Up).
import zlib from 'node:zlib';
import { crc32 } from '../src/io/npz.js';

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
