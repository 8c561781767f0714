// amend eval --out DIR interrupted by Ctrl-C (SIGINT) or SIGTERM: the process ends at once with
// that signal, as before, but leaves no lock behind; a folder the run made and had not written
// to yet goes too, and a checkpoint stays for --resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nativeAddon } from '../src/backend/native.js';
import { LOCK_FILE } from '../src/eval/checkpoint.js';
import { assertOneLineError, repoRoot, runCli } from './helpers.js';

const skip = nativeAddon() ? false : 'the native addon is not built (the js backend leaves the lock to the next run, which takes it over)';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-interrupt-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const cache = path.join(tmp, 'cache');
const args = (out: string, samples = 200) => ['eval', '--model', 'world', '--method', 'rome', '--data', 'world', '--n', '20', '--set', `mom2_n_samples=${samples}`, '--checkpoint-every', '2', '--out', out];

/** Starts the run, sends `signal` once `ready()` holds, and resolves with how the process ended. */
function interrupt(out: string, signal: NodeJS.Signals, ready: () => boolean, samples?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args(out, samples)], { env: { ...process.env, AMEND_CACHE: cache } });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const poll = setInterval(() => { if (ready()) { clearInterval(poll); child.kill(signal); } }, 10);
  return new Promise((resolve) => child.on('exit', (code, sig) => { clearInterval(poll); resolve({ code, signal: sig, stderr }); }));
}

test('Ctrl-C while the run computes its statistics: the lock and the folder it made are gone', { skip }, async () => {
  // Statistics not cached yet: the run holds its folder for a few seconds before it writes to it.
  const out = path.join(tmp, 'early');
  const r = await interrupt(out, 'SIGINT', () => fs.existsSync(path.join(out, LOCK_FILE)), 2000);
  assert.equal(r.signal, 'SIGINT', `ended by the signal, as without the cleanup (${r.code}: ${r.stderr})`);
  assert.equal(fs.existsSync(out), false, `no folder left with only a lock in it (it holds ${fs.existsSync(out) ? fs.readdirSync(out).join(', ') : ''})`);
});

test('SIGTERM after a checkpoint: the lock is gone, the checkpoint stays, and the next run names it', { skip }, async () => {
  const out = path.join(tmp, 'late');
  const r = await interrupt(out, 'SIGTERM', () => fs.existsSync(path.join(out, '.amend-eval-partial', 'checkpoint.json')));
  assert.equal(r.signal, 'SIGTERM', `${r.code}: ${r.stderr}`);
  assert.equal(fs.existsSync(path.join(out, LOCK_FILE)), false, 'lock released');
  assert.ok(fs.existsSync(path.join(out, '.amend-eval-partial')));
  assertOneLineError(runCli(args(out), cache), /holds an interrupted run \(\d+ of 20 done\); pass --resume to continue it or --force to start over/);
  const resumed = runCli([...args(out), '--resume'], cache);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(fs.existsSync(path.join(out, 'summary.json')));
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('.')), [], 'no lock or checkpoint after the finished run');
});
