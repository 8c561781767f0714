/**
 * Writing report files so that a reader (or a crash) never sees half of one: every file goes to a
 * temporary name in the same folder and is renamed over the final name, which is atomic on one
 * file system.
 */
import fs from 'node:fs';
import path from 'node:path';

let counter = 0;

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = tempName(file);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(file: string, value: unknown, pretty = true): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`);
}
