// Whole reads and writes on a file descriptor. One readSync or writeSync call moves at most
// 2 GiB, and may move less than asked; a statistics file or a tensor can be larger than that.
import * as fs from 'node:fs';

const MAX_CALL_BYTES = 1 << 30;

/** Fills `dst` from byte `position` on; returns the bytes read, fewer than dst.length only where the file ends. */
export function readInto(fd: number, dst: Uint8Array, position: number): number {
  let done = 0;
  while (done < dst.length) {
    const got = fs.readSync(fd, dst, done, Math.min(MAX_CALL_BYTES, dst.length - done), position + done);
    if (got === 0) break;
    done += got;
  }
  return done;
}

/** Writes all of `bytes` at the descriptor's current position. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, Math.min(MAX_CALL_BYTES, bytes.length - done));
}
