// Shared test helpers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { CausalLM } from '../src/models/model.js';
import { mulberry32 } from '../src/tensor/index.js';
import { layerSecondMoments, type SecondMoment } from '../src/stats/index.js';

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

/** sha256 over every weight (names and float32 bits, in name order): equal hashes = bit-identical weights. */
export function weightsHash(model: CausalLM): string {
  const h = createHash('sha256');
  for (const name of [...model.weights.keys()].sort()) {
    const d = model.weights.get(name)!.data;
    h.update(name);
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

/** Key statistics over seeded random token sequences: editors' tests need no corpus. */
export async function randomStats(model: CausalLM, layers: number[], seed = 1): Promise<SecondMoment[]> {
  const rand = mulberry32(seed);
  const V = Math.min(model.config.vocabSize, 5000);
  const ids = Array.from({ length: 48 }, () => Array.from({ length: 32 }, () => Math.floor(rand() * V)));
  return layerSecondMoments(model, layers, { corpus: { kind: 'ids', ids }, noCache: true });
}

/** ‖a − b‖₂ / ‖b‖₂. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/src/cli/main.js) in a child process; `cache` is its AMEND_CACHE folder. */
export function runCli(args: readonly string[], cache?: string): CliResult {
  const env = cache ? { ...process.env, AMEND_CACHE: cache } : process.env;
  const r = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], { encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Bad input: exit 1, one line on stderr ("amend: ...") naming the problem, no stack trace. */
export function assertOneLineError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^amend: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

/**
 * The warnings `fn` emits (process.emitWarning delivers them on a later tick), captured instead of
 * printed; `fn` may be async.
 */
export async function warningsOf(fn: () => unknown): Promise<string[]> {
  const got: string[] = [];
  const on = (e: Error) => got.push(e.message);
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', on);
  try {
    await fn();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('warning', on);
    for (const l of listeners) process.on('warning', l);
  }
  return got;
}

/** V8's full collection as a function, for a test that must collect synchronously. */
export function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * Runs the garbage collector until weakly held objects are gone: objects freed by finalisers or
 * weak maps, and weak references, are cleared only after the turn that made them and by more
 * than one collection.
 */
export async function collectGarbage(): Promise<void> {
  const collect = gcFunction();
  for (let k = 0; k < 3; k++) {
    collect();
    await new Promise((r) => setImmediate(r));
  }
}
