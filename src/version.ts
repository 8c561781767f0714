// This package's version, read once from the package.json above the compiled module; patches,
// statistics files and `amend --version` record it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedVersion: string | null = null;

/** The version of the amend package, or "unknown". */
export function amendVersion(): string {
  if (cachedVersion) return cachedVersion;
  cachedVersion = 'unknown';
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string };
        if (typeof pkg.version === 'string') cachedVersion = pkg.version;
      } catch {
        /* keep "unknown" */
      }
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  return cachedVersion;
}
