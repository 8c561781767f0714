// mkdir -p that cannot hang. Node 20's `mkdirSync(dir, { recursive: true })` loops forever when a
// parent that exists answers ENOENT to every mkdir in it (as /proc does), so a mistyped cache or
// output folder froze the command. Creating the missing ancestors one by one fails instead, with
// the system's own error, which callers already turn into their one-line messages.
import fs from 'node:fs';
import path from 'node:path';

export function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      // Another process may have made it between the check and here.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
