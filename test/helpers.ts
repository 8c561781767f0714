// Shared test helpers.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test, sources live in test/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the tests');
    dir = up;
  }
  return dir;
}

/** ../shared/<sub> beside the repository, or null when absent (tests then skip with a message). */
export function sharedDir(sub: string): string | null {
  const dir = path.join(repoRoot(), '..', 'shared', sub);
  return fs.existsSync(dir) ? dir : null;
}
