// Making folders and files safely: mkdir -p that cannot hang, checks of an output place before any
// work, a lock file for one writer, temporary names and atomic writes, and the removal of what a
// killed process left behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../errors.js';

/**
 * mkdir -p that cannot hang. Node 20's `mkdirSync(dir, { recursive: true })` loops forever when a
 * parent that exists answers ENOENT to every mkdir in it (as /proc does), so a mistyped cache or
 * output folder froze the command. Creating the missing ancestors one by one fails instead, with
 * the system's own error, which callers already turn into their one-line messages.
 */
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
 * Refuses a folder that a command replacing its output folder whole (export, world build) must
 * never take, even with force: a file system's root, the home folder, a folder that holds the
 * current one (the user's work, and likely the command's own inputs), and the current folder
 * itself (replaced, it would leave the shell in the folder it replaced, showing nothing).
 */
export function refuseReplacingWholeFolder(dir: string, what: string): void {
  const want = path.resolve(dir);
  const real = fs.existsSync(want) ? fs.realpathSync(want) : want;
  const cwd = fs.realpathSync(process.cwd());
  const why = real === path.parse(real).root ? 'the root of the file system'
    : real === os.homedir() ? 'the home folder'
      : cwd.startsWith(real.endsWith(path.sep) ? real : real + path.sep) ? 'a folder that holds the current one'
        : cwd === real ? 'the current folder' : null;
  if (why) throw new AmendError(`${dir} is ${why}, and ${what} replaces its output folder whole; give another folder (a new one inside it, say)`);
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
 * Finds out, before any work, whether a file or folder can be made at `target`: a probe folder
 * is made and removed in the nearest folder that exists on the way (so nothing is left behind,
 * not even the parents a later write would make).
 */
export function checkCanWriteAt(target: string): void {
  let d = path.dirname(path.resolve(target));
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  const probe = path.join(d, `.amend-probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  removeDeadTemps(d, /^\.amend-probe-(\d+)-[a-z0-9]+$/); // a probe whose process was killed between its two calls
  try {
    fs.mkdirSync(probe);
    fs.rmdirSync(probe);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw writeError(target, err) ?? new AmendError(`${target}: cannot write there (${e.code ?? e.message} in ${d}); choose a writable place`);
  }
}

/**
 * Removes the temporary files and folders in `parent` that a killed process left: names matching
 * `pattern`, whose first group is the pid of the process that wrote them, when that process is
 * gone. Only this user's, and with `minAgeMs` only those untouched for that long: a process of
 * another PID namespace (another container sharing the folder) looks gone from here while it
 * writes. Best-effort: cleaning up never stands in the way of the work that called it.
 */
export function removeDeadTemps(parent: string, pattern: RegExp, minAgeMs = 0): void {
  const uid = process.getuid?.();
  for (const m of leftBehind(parent, pattern, 1)) {
    const dir = path.join(parent, m.input);
    try {
      const st = fs.statSync(dir);
      // (mtime has sub-millisecond precision and can read a little ahead of Date.now())
      if ((uid !== undefined && st.uid !== uid) || (minAgeMs > 0 && Date.now() - st.mtimeMs < minAgeMs)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* left for its owner */
    }
  }
}

/** The names in `parent` that `pattern` matches and whose writer, the pid in group `pidGroup`, is gone (none if it cannot be read). */
function leftBehind(parent: string, pattern: RegExp, pidGroup: number): RegExpExecArray[] {
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return [];
  }
  return names.map((f) => pattern.exec(f)).filter((m): m is RegExpExecArray => m !== null && !processAlive(Number(m[pidGroup])));
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
 * Takes `file` as a lock for one writer, or refuses with `busy(pid, host)` while another holds it.
 * The lock holds "pid host" and appears whole (written beside it, then moved into place). A lock
 * of this host whose process is gone (or is this process, which does not hold it: a killed run's
 * pid reused, as PID 1 in a container) is taken over; another host's is respected, since its
 * processes cannot be seen from here. Returns the release function, which removes the lock only
 * while it is still this one.
 */
export function takeLock(file: string, busy: (pid: number, host: string) => string): () => void {
  const key = path.resolve(file);
  const host = os.hostname();
  if (heldLocks.has(key)) throw new AmendError(busy(process.pid, host));
  const mine = `${process.pid} ${host}\n`;
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  fs.writeFileSync(tmp, mine);
  let last = { pid: 0, owner: host };
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        publishExclusive(tmp, file);
        heldLocks.add(key);
        return () => {
          heldLocks.delete(key);
          try {
            if (fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true });
          } catch {
            /* already gone */
          }
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
        throw e;
      }
      const [pidText, owner = host] = text.trim().split(/\s+/);
      const pid = Number(pidText);
      const gone = !(Number.isInteger(pid) && pid > 0) || (owner === host && (pid === process.pid || !processAlive(pid)));
      if (!gone) throw new AmendError(busy(pid, owner));
      last = { pid, owner };
      fs.rmSync(file, { force: true });
      // said once, so that a folder an interrupted run left does not change hands unnoticed
      if (attempt === 0) process.emitWarning(`${file}: ${Number.isInteger(pid) && pid > 0 ? `a lock left by process ${pid}, which no longer holds it (an interrupted run),` : 'an unreadable lock'} is taken over`);
    }
    throw new AmendError(busy(last.pid, last.owner)); // others keep taking it over: leave it to them
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Moves the complete file `tmp` to `file` unless a file is there, which fails with EEXIST (where
 * rename would replace it). A hard link does that atomically; on a file system without hard links
 * it is a check, then a rename: a short window, not none.
 */
export function publishExclusive(tmp: string, file: string): void {
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || !(code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP')) throw e;
    if (fs.existsSync(file)) throw Object.assign(new Error(`${file} exists`), { code: 'EEXIST' });
    fs.renameSync(tmp, file);
    return;
  }
  fs.rmSync(tmp, { force: true });
}

/**
 * How long a temporary file of tempPathFor whose writer looks gone must lie untouched before it is
 * removed: a live writer touches its copy all along, so ten idle minutes are enough.
 */
export const STALE_TEMP_MS = 10 * 60_000;

/** A temporary name next to `file` (same directory, so the final rename is atomic). */
export function tempPathFor(file: string): string {
  const dir = path.dirname(file), base = path.basename(file);
  // A write of the same file killed before its rename left its temporary copy, full-size and no
  // one else's to remove.
  removeDeadTemps(dir, new RegExp(`^\\.${escapeRegExp(base)}\\.(\\d+)\\.[a-z0-9]+\\.tmp$`), STALE_TEMP_MS);
  const rnd = Math.random().toString(36).slice(2, 10);
  return path.join(dir, `.${base}.${process.pid}.${rnd}.tmp`);
}

/**
 * Writes `data` to `file` so that a reader (or a crash) never sees half of it: to a temporary name
 * beside it, then renamed over it, which is atomic on one file system.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(file);
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

/**
 * A new empty folder beside `out` to write into, hidden and named for its writer:
 * `.NAME.TAG-PID-x`, so that a later run finds it by name when this process is killed.
 */
export function tempDirBeside(out: string, tag: string): string {
  const parent = path.dirname(out);
  makeDirs(parent);
  const rnd = Math.random().toString(36).slice(2, 10);
  const dir = path.join(parent, `.${path.basename(out)}.${tag}-${process.pid}-${rnd}`);
  fs.mkdirSync(dir);
  return dir;
}

/**
 * Puts the finished folder `tmp` at `out`, replacing whatever folder is there. The old one moves
 * aside to `.NAME.amend-old-PID-x` first and is deleted only after the swap, so that a process
 * killed between the two renames leaves it for restoreReplacedFolders to put back. Throws when
 * `out` cannot be replaced (the old folder is back in place then).
 */
export function replaceFolder(tmp: string, out: string): void {
  if (!fs.existsSync(out)) {
    fs.renameSync(tmp, out);
    return;
  }
  const old = tempDirBeside(out, 'amend-old');
  fs.rmdirSync(old);
  fs.renameSync(out, old);
  try {
    fs.renameSync(tmp, out);
  } catch (err) {
    fs.renameSync(old, out);
    throw err;
  }
  // The new folder is in place by now: an old file that cannot be deleted (a read-only subfolder)
  // is a leftover to name, not a failure.
  try {
    fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    process.emitWarning(`${out} is in place, but the files it replaced could not all be deleted (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); what is left of them is in ${old}`);
  }
}

/**
 * What replaceFolder left in `parent` when its process was killed: `.NAME.amend-old-PID-x` goes
 * back to NAME when NAME is missing (the kill came between the two renames), else it is removed.
 */
export function restoreReplacedFolders(parent: string): void {
  for (const m of leftBehind(parent, /^\.(.+)\.amend-old-(\d+)-[a-z0-9]+$/, 2)) {
    const name = path.join(parent, m[1]!);
    try {
      if (!fs.existsSync(name)) fs.renameSync(path.join(parent, m.input), name);
    } catch {
      /* left as it is */
    }
  }
  removeDeadTemps(parent, /^\..+\.amend-old-(\d+)-[a-z0-9]+$/);
}

/** `text` as a literal inside a regular expression. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
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
