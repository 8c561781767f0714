/**
 * The state of a run that is not finished yet, kept in OUT/.amend-eval-partial so the final report
 * names in OUT are only ever complete files: the case lines written so far, the patches of a
 * sequential run (one file per edit, so a resume re-applies exactly the same deltas in the same
 * order and gets bit-identical weights), and checkpoint.json, which says how much of that is valid.
 * Anything written after the last checkpoint (lines, patches) is ignored on resume and overwritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, isObject } from '../errors.js';
import type { CaseCost, DriftPoint, EvalConfig } from './run-types.js';
import { makeDirs, writeJsonAtomic } from '../io/dirs.js';

export const PARTIAL_DIR = '.amend-eval-partial';
/** OUT/.amend-eval-lock: the process id of the run writing into OUT. */
export const LOCK_FILE = '.amend-eval-lock';
// 2: a short last batch is recorded in its batch-K run (callSize), no longer as batch-N of its own.
export const CHECKPOINT_VERSION = 2;

/** A case edited under 'final' but not scored yet: what the edit cost, or why it was refused. */
export interface PendingCase {
  index: number;
  edit: number;
  cost?: CaseCost;
  error?: string;
}

export interface Checkpoint {
  version: number;
  config: EvalConfig;
  /** Units (cases, batches, edits) finished. */
  done: number;
  total: number;
  /** Valid lines of cases.jsonl and their length in bytes. */
  lines: number;
  bytes: number;
  /** Patch files of the stacked edits so far (sequential), in the order applied. */
  patches: string[];
  pending: PendingCase[];
  drift: DriftPoint[];
  /** Wall seconds spent so far. */
  seconds: number;
}

export class PartialRun {
  readonly dir: string;
  readonly casesFile: string;
  readonly checkpointFile: string;
  bytes = 0;
  lines = 0;

  constructor(readonly out: string) {
    this.dir = path.join(out, PARTIAL_DIR);
    this.casesFile = path.join(this.dir, 'cases.jsonl');
    this.checkpointFile = path.join(this.dir, 'checkpoint.json');
  }

  exists(): boolean {
    return fs.existsSync(this.checkpointFile);
  }

  read(): Checkpoint {
    let cp: Checkpoint;
    try {
      cp = JSON.parse(fs.readFileSync(this.checkpointFile, 'utf8')) as Checkpoint;
    } catch (e) {
      throw new AmendError(`${this.checkpointFile}: unreadable checkpoint (${(e as Error).message.split('\n')[0]}); start over with --force (force: true)`);
    }
    const problem = checkpointProblem(cp);
    if (problem) throw new AmendError(`${this.checkpointFile}: a damaged checkpoint (${problem}); start over with --force (force: true)`);
    if (cp.version !== CHECKPOINT_VERSION) throw new AmendError(`${this.checkpointFile}: checkpoint version ${cp.version}, this Amend writes ${CHECKPOINT_VERSION}; start over with --force (force: true)`);
    return cp;
  }

  /** Starts empty (a fresh run). */
  reset(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    makeDirs(path.join(this.dir, 'patches'));
    fs.writeFileSync(this.casesFile, '');
    this.bytes = 0;
    this.lines = 0;
  }

  /**
   * Keeps the case lines a checkpoint vouches for and drops the rest; returns them. Everything is
   * checked before anything moves, so a checkpoint that cannot be resumed leaves the folder as it was.
   */
  restore(cp: Checkpoint): string[] {
    for (const p of cp.patches) if (!fs.existsSync(this.patchPath(p))) throw new AmendError(`${this.patchPath(p)} is missing: the checkpoint cannot be resumed; start over with --force (force: true)`);
    // Killed while the finished report was being moved into place: its cases are in the folder.
    const moved = path.join(this.out, 'cases.jsonl');
    const source = !fs.existsSync(this.casesFile) && fs.existsSync(moved) ? moved : this.casesFile;
    let buf: Buffer;
    try {
      buf = fs.readFileSync(source);
    } catch {
      throw new AmendError(`${this.casesFile} is missing: the checkpoint cannot be resumed; start over with --force (force: true)`);
    }
    if (buf.length < cp.bytes) throw new AmendError(`${source} is shorter than its checkpoint says; start over with --force (force: true)`);
    const lines = buf.subarray(0, cp.bytes).toString('utf8').split('\n').filter((l) => l !== '');
    if (lines.length !== cp.lines) throw new AmendError(`${source} has ${lines.length} lines where the checkpoint says ${cp.lines}; start over with --force (force: true)`);
    const bad = lines.findIndex((l) => !isCaseLine(l));
    if (bad >= 0) throw new AmendError(`${source}: line ${bad + 1} is not a case record (damaged); start over with --force (force: true)`);
    if (source !== this.casesFile) fs.renameSync(source, this.casesFile);
    fs.truncateSync(this.casesFile, cp.bytes);
    this.bytes = cp.bytes;
    this.lines = cp.lines;
    return lines;
  }

  appendLines(lines: readonly string[]): void {
    if (!lines.length) return;
    const text = lines.map((l) => `${l}\n`).join('');
    fs.appendFileSync(this.casesFile, text);
    this.bytes += Buffer.byteLength(text);
    this.lines += lines.length;
  }

  patchName(edit: number): string {
    return `${String(edit).padStart(6, '0')}.safetensors`;
  }

  patchPath(name: string): string {
    return path.join(this.dir, 'patches', name);
  }

  write(cp: Omit<Checkpoint, 'version' | 'lines' | 'bytes'>): void {
    writeJsonAtomic(this.checkpointFile, { version: CHECKPOINT_VERSION, ...cp, lines: this.lines, bytes: this.bytes });
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * What is wrong with a checkpoint read back from disk, or null. The runner indexes cases and
 * patches with these values, so a hand-edited or damaged file must stop here, not as a TypeError
 * in the middle of a resumed run.
 */
function checkpointProblem(cp: unknown): string | null {
  if (!isObject(cp)) return 'not a JSON object';
  if (typeof cp.version !== 'number') return 'no version';
  if (cp.version !== CHECKPOINT_VERSION) return null; // named by its own message
  if (!isObject(cp.config)) return 'no config';
  for (const k of ['done', 'total', 'lines', 'bytes'] as const) if (!isCount(cp[k])) return `${k} is ${JSON.stringify(cp[k]) ?? 'missing'}`;
  if ((cp.done as number) > (cp.total as number)) return `done ${cp.done} is more than total ${cp.total}`;
  if (typeof cp.seconds !== 'number' || !(cp.seconds >= 0)) return 'no seconds';
  if (!Array.isArray(cp.patches) || !cp.patches.every((p) => typeof p === 'string' && /^\d{6,}\.safetensors$/.test(p))) return 'patches is not a list of patch file names';
  if (!Array.isArray(cp.pending) || !cp.pending.every((p) => isObject(p) && isCount(p.index) && isCount(p.edit))) return 'pending is not a list of {index, edit}';
  if (!Array.isArray(cp.drift) || !cp.drift.every((d) => isObject(d) && ['edits', 'perplexity', 'ratio', 'tokens'].every((k) => typeof d[k] === 'number'))) return 'drift is not a list of perplexity points';
  return null;
}

/** A line of cases.jsonl as the runner wrote it: a JSON object with the case's index. */
function isCaseLine(line: string): boolean {
  try {
    const rec = JSON.parse(line) as unknown;
    return isObject(rec) && isCount(rec.index);
  } catch {
    return false;
  }
}

/** The first setting in which two run configurations differ, or null. */
export function configDifference(a: unknown, b: unknown, where = ''): string | null {
  if (a === b) return null;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
    const shown = (x: unknown) => (x === undefined ? '(not set)' : JSON.stringify(x));
    return `${where || 'config'}: ${shown(a)} then, ${shown(b)} now`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = configDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], where ? `${where}.${k}` : k);
    if (d) return d;
  }
  return null;
}
