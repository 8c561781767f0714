// mkdir -p that cannot hang. Node 20's `mkdirSync(dir, { recursive: true })` loops forever when a
// parent that exists answers ENOENT to every mkdir in it (as /proc does), so a mistyped cache or
// output folder froze the command. Creating the missing ancestors one by one fails instead, with
// the system's own error, which callers already turn into their one-line messages.
import fs from 'node:fs';
import path from 'node:path';
import { AmendError } from '../errors.js';

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
  // A file (or a dangling link) by that name: mkdir's own EEXIST, as recursive mkdir gave.
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) fs.mkdirSync(dir);
}

/**
 * Refuses, before any work, an output folder that cannot be one: a file by that name, or a file
 * where one of its parent folders should be (mkdir would fail with EEXIST or ENOTDIR much later).
 */
export function checkCanBeFolder(dir: string): void {
  const want = path.resolve(dir);
  for (let d = want; ; d = path.dirname(d)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      if (path.dirname(d) === d) return;
      continue;
    }
    if (st.isDirectory()) return;
    throw new AmendError(d === want ? `${dir}: exists and is not a folder; choose another folder` : `${dir}: cannot be created, ${d} is a file`);
  }
}

/**
 * Removes the temporary files and folders in `parent` that a killed process left: names matching
 * `pattern`, whose first group is the pid of the process that wrote them, when that process is
 * gone. Only this user's (another's may be a live write in another process namespace), and
 * best-effort: cleaning up never stands in the way of the work that called it.
 */
export function removeDeadTemps(parent: string, pattern: RegExp): void {
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const f of names) {
    const m = pattern.exec(f);
    if (!m || processAlive(Number(m[1]))) continue;
    const dir = path.join(parent, f);
    try {
      if (uid !== undefined && fs.statSync(dir).uid !== uid) continue;
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* left for its owner */
    }
  }
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const heldLocks = new Set<string>();

/**
 * Takes `file` as a lock for one writer (its pid inside, created exclusively), or refuses with
 * `busy(pid)` while a live process holds it. A lock whose process is gone is taken over. Returns
 * the release function.
 */
export function takeLock(file: string, busy: (pid: number) => string): () => void {
  const key = path.resolve(file);
  for (let attempt = 0; ; attempt++) {
    if (heldLocks.has(key)) throw new AmendError(busy(process.pid));
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      heldLocks.add(key);
      return () => {
        heldLocks.delete(key);
        fs.rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) throw new AmendError(busy(pid));
      fs.rmSync(file, { force: true }); // its process is gone: take it over (once)
    }
  }
}

/** One line for a failed write (disk full, read-only, no permission), naming the place. */
export function writeError(place: string, err: unknown): AmendError | null {
  const e = err as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOSPC: 'no space left on the device', EDQUOT: 'the disk quota is used up', EROFS: 'the file system is read-only',
    EACCES: 'permission denied', EPERM: 'permission denied', EFBIG: 'the file is larger than allowed', EIO: 'an input/output error',
  };
  return e && typeof e.code === 'string' && why[e.code] ? new AmendError(`${place}: ${why[e.code]} (${e.code}${e.path ? ` at ${e.path}` : ''})`) : null;
}
