// Signals on the command line: amend eval stopped by SIGINT / SIGTERM once a checkpoint is on
// disk exits 130 / 143 with one line naming the command that resumes it, which then ends with the
// uninterrupted run's summary; a --force run stopped that way leaves the report it was to replace
// as it was. The signal handlers of src/cli/interrupt.ts on a stand-in for the process, and the
// helper process that removes what a killed command was writing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertOneLineError, repoRoot, runCli, sharedDir, type CliResult } from './helpers.js';
import { stopOnSignal, tempFilesOf, tempFoldersBeside, type SignalTarget } from '../src/cli/interrupt.js';
import { resumeCommand } from '../src/cli/commands/eval.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-interrupt-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const cache = path.join(tmp, 'cache');
const amend = (...args: string[]): CliResult => runCli(args, cache);
const CLI = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
const models = sharedDir('models');

/** Runs the CLI and sends `signal` once `file` exists (the child writes it when it gets there); resolves with how the child ended. */
const signalWhenFileAppears = (args: string[], file: string, signal: NodeJS.Signals) => signalWhen(args, () => fs.existsSync(file), signal);

/**
 * Runs the CLI and sends `signal` once `ready(stderr so far)` holds (polled: however long the child
 * takes to get there); resolves with how the child ended.
 */
function signalWhen(args: string[], ready: (stderr: string) => boolean, signal: NodeJS.Signals): Promise<CliResult & { killedBy: NodeJS.Signals | null; sent: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, AMEND_CACHE: cache } });
    let stdout = '', stderr = '', sent = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const poll = setInterval(() => {
      if (!sent && ready(stderr)) {
        sent = true;
        child.kill(signal);
      }
    }, 5);
    child.on('close', (code, killedBy) => {
      clearInterval(poll);
      resolve({ code, stdout, stderr, killedBy, sent });
    });
  });
}

// Ten single ROME edits on the demo model, a checkpoint after each: the signal comes after the
// first, with nine to go.
const ARGS = ['eval', '--model', 'world', '--method', 'rome', '--n', '10', '--checkpoint-every', '1'];
const checkpointOf = (out: string) => path.join(out, '.amend-eval-partial', 'checkpoint.json');
const comparable = (out: string) => {
  const s = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  return { rows: s.rows.filter((r: { protocol: string }) => r.protocol !== 'cost'), cases: s.cases, failed: s.failed, config: s.config };
};
const filesOf = (dir: string) => Object.fromEntries(fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));

let wholeOut: string | null = null;
/** The uninterrupted run's report folder (made once). */
function whole(): string {
  if (wholeOut) return wholeOut;
  const out = path.join(tmp, 'whole');
  const r = amend(...ARGS, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  return (wholeOut = out);
}

test('amend eval stopped by SIGINT: exit 130, one line with the command that resumes it, and --resume ends with the uninterrupted summary', async () => {
  const reference = whole();
  const out = path.join(tmp, 'sigint');
  const r = await signalWhenFileAppears([...ARGS, '--out', out], checkpointOf(out), 'SIGINT');
  assert.ok(r.sent, `the run ended before its first checkpoint was seen: ${r.stderr}`);
  assert.equal(r.code, 130, r.stderr);
  const resume = `amend ${[...ARGS, '--out', out].join(' ')} --resume`;
  assert.match(r.stderr, new RegExp(`^amend: interrupted after (\\d+) of 10 case\\(s\\) \\(SIGINT\\); resume with: ${resume.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const done = Number(/interrupted after (\d+)/.exec(r.stderr)![1]);
  assert.ok(done >= 1 && done < 10, `${done} of 10`);
  assert.equal(JSON.parse(fs.readFileSync(checkpointOf(out), 'utf8')).done, done, 'the checkpoint is of the unit the run stopped at');
  assert.ok(!fs.existsSync(path.join(out, 'summary.json')));

  const resumed = amend(...resume.split(' ').slice(1));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(comparable(out), comparable(reference));
  assert.equal(fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n').length, 10);
});

test('amend eval --force stopped by SIGTERM: exit 143, the report it was to replace stays byte for byte until a run finishes', async () => {
  const reference = whole();
  const out = path.join(tmp, 'sigterm-force');
  fs.cpSync(reference, out, { recursive: true });
  const before = filesOf(out);
  const r = await signalWhenFileAppears([...ARGS, '--out', out, '--force', '--json'], checkpointOf(out), 'SIGTERM');
  assert.ok(r.sent, `the run ended before its first checkpoint was seen: ${r.stderr}`);
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stderr, new RegExp(`\\(SIGTERM\\); resume with: amend eval .* --json --resume \\(the report already in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} stays until the run finishes\\)$`, 'm'));
  const j = JSON.parse(r.stdout);
  assert.equal(j.interrupted.signal, 'SIGTERM');
  assert.equal(j.interrupted.resumable, true);
  assert.deepEqual(filesOf(out), before, 'the previous report is as it was');
  assertOneLineError(amend(...ARGS, '--out', out), /holds an interrupted run \(\d+ of 10 done; the report beside it is from an earlier run and stays until a run finishes\); pass --resume to continue it or --force to start over$/);
  const resumed = amend(...ARGS, '--out', out, '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(comparable(out), comparable(reference));
  assert.notDeepEqual(filesOf(out)['summary.json'], before['summary.json'], 'the finished run replaced the report');
});

test('amend stats stopped by SIGINT while computing: exit 130 and one line; nothing cached', { skip: models ? false : 'no ../shared/models' }, async () => {
  const statsCache = path.join(tmp, 'stats-cache');
  // A model without a corpus: its statistics come from a thousand texts it writes itself (a minute
  // or more), and a warning says so as they start.
  const r = await signalWhen(['stats', '--model', `${models}/tiny-random-gpt2`, '--layers', '0', '--cache-dir', statsCache], (e) => e.includes('texts the model writes itself'), 'SIGINT');
  assert.ok(r.sent, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.equal(lines[1], 'amend: interrupted (SIGINT); the statistics were not computed to the end, and nothing was cached');
  assert.deepEqual(fs.existsSync(statsCache) ? fs.readdirSync(statsCache, { recursive: true }).filter((f) => /safetensors/.test(String(f))) : [], []);
});

test('the resume command: the arguments as given, quoted for a shell, without --force and --stop-after, with --resume', () => {
  assert.equal(resumeCommand(['eval', '--model', 'world', '--out', 'my runs/a', '--force', '--stop-after', '3', '--set', "x='y'"]),
    `amend eval --model world --out 'my runs/a' --set 'x='\\''y'\\''' --resume`);
  assert.equal(resumeCommand(['--json', 'eval', '--stop-after=2', '--resume', '-o', 'o']), 'amend --json eval -o o --resume');
});

test('stopOnSignal: the first signal aborts and removes the handlers (a second one then has its default action)', () => {
  const target = new EventEmitter();
  const stop = stopOnSignal(target as unknown as SignalTarget);
  assert.equal(target.listenerCount('SIGINT'), 1);
  assert.equal(target.listenerCount('SIGTERM'), 1);
  assert.equal(stop.signal.aborted, false);
  target.emit('SIGTERM', 'SIGTERM');
  assert.equal(stop.signal.aborted, true);
  assert.equal(stop.received(), 'SIGTERM');
  assert.equal(target.listenerCount('SIGINT') + target.listenerCount('SIGTERM'), 0);
  stop.dispose();
  const other = stopOnSignal(target as unknown as SignalTarget);
  other.dispose();
  assert.equal(target.listenerCount('SIGINT') + target.listenerCount('SIGTERM'), 0);
  assert.equal(other.received(), null);
});

test('a command killed while writing: its helper removes its temporary folder and file, and puts back a folder it was replacing', async () => {
  const dir = path.join(tmp, 'killed');
  fs.mkdirSync(dir);
  const out = path.join(dir, 'export'), patch = path.join(dir, 'edit.safetensors'), replaced = path.join(dir, 'old-build');
  fs.mkdirSync(path.join(dir, '.unrelated.amend-export-1-abc')); // not this process's: stays
  // A process that starts the helper, makes what a write in progress leaves, then is killed.
  const script = `
    import fs from 'node:fs';
    import { cleanUpIfKilled, tempFoldersBeside, tempFilesOf } from ${JSON.stringify(path.join(repoRoot(), 'dist', 'src', 'cli', 'interrupt.js'))};
    // In two calls, one leftover in both (an export inside an edit): one helper takes every call.
    cleanUpIfKilled([tempFoldersBeside(${JSON.stringify(out)}, 'amend-export'), tempFoldersBeside(${JSON.stringify(replaced)}, 'amend-build')]);
    cleanUpIfKilled([tempFoldersBeside(${JSON.stringify(out)}, 'amend-export'), tempFilesOf(${JSON.stringify(patch)})]);
    fs.mkdirSync(${JSON.stringify(dir)} + '/.export.amend-export-' + process.pid + '-x1');
    fs.writeFileSync(${JSON.stringify(dir)} + '/.export.amend-export-' + process.pid + '-x1/model.safetensors', 'half');
    fs.writeFileSync(${JSON.stringify(dir)} + '/.edit.safetensors.' + process.pid + '.x2.tmp', 'half');
    fs.mkdirSync(${JSON.stringify(dir)} + '/.old-build.amend-old-' + process.pid + '-x3');
    fs.writeFileSync(${JSON.stringify(dir)} + '/.old-build.amend-old-' + process.pid + '-x3/BUILD.json', 'the old build');
    process.kill(process.pid, 'SIGINT');
    setInterval(() => {}, 1000);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGINT', r.stderr);
  // The helper works once the process is gone: wait for it (bounded), then look.
  const left = () => fs.readdirSync(dir).sort();
  for (let t = Date.now(); left().length !== 2 && Date.now() - t < 20_000;) await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(left(), ['.unrelated.amend-export-1-abc', 'old-build']);
  assert.equal(fs.readFileSync(path.join(replaced, 'BUILD.json'), 'utf8'), 'the old build');
  assert.match('.export.amend-export-12-ab1', tempFoldersBeside(out, 'amend-export', 12).pattern);
  assert.doesNotMatch('.export.amend-export-13-ab1', tempFoldersBeside(out, 'amend-export', 12).pattern);
  assert.match('.edit.safetensors.12.ab1.tmp', tempFilesOf(patch, 12).pattern);
});
