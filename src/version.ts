// This package's folder and version, found from the compiled module (src/ or dist/src/ of a checkout
// or an installed package). Patches, statistics files and `amend --version` record the version; the
// demo model, the presets and the package's other data files are found from the folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The amend package's folder: the nearest one above this module that holds a package.json, or null. */
export function packageRoot(): string | null {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return null;
  }
}

let cachedVersion: string | null = null;

/** The version of the amend package, or "unknown". */
export function amendVersion(): string {
  if (cachedVersion) return cachedVersion;
  cachedVersion = 'unknown';
  const root = packageRoot();
  if (root !== null) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string };
      if (typeof pkg.version === 'string') cachedVersion = pkg.version;
    } catch {
      /* keep "unknown" */
    }
  }
  return cachedVersion;
}
