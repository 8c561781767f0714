// The command line: machine output, and one clear line with a non-zero exit on bad input.
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { makeDirs } from '../src/io/dirs.js';
import { assertOneLineError, type CliResult, repoRoot, runCli, sharedDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args);

const good = writeRandomCheckpoint(path.join(tmp, 'good'), gpt2Config());

function brokenCopy(name: string, mutate: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  fs.cpSync(good, dir, { recursive: true });
  mutate(dir);
  return dir;
}

test('amend logits --json prints top tokens and logsumexp per position', () => {
  const r = amend('logits', '--model', good, '--ids', '5,17,42', '--top', '3', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.positions.length, 3);
  for (const p of out.positions) {
    assert.equal(p.top.length, 3);
    assert.ok(Number.isFinite(p.logsumexp));
    // log-probabilities, best first
    assert.ok(p.top[0][1] <= 0 && p.top[0][1] >= p.top[1][1] && p.top[1][1] >= p.top[2][1]);
  }
});

const tiny = sharedDir('models');
test('amend logits matches the reference of tiny-random-gpt2', { skip: tiny ? false : '../shared/models is absent' }, () => {
  const dir = path.join(tiny!, 'tiny-random-gpt2');
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')).cases[0];
  const r = amend('logits', '--model', dir, '--ids', ref.input_ids.join(','), '--top', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  out.positions.forEach((p: { top: number[][]; logsumexp: number }, t: number) => {
    assert.equal(p.top[0][0], ref.argmax[t]);
    assert.ok(Math.abs(p.logsumexp - ref.logsumexp[t]) < 1e-3);
  });
});

test('amend doctor reports the backend', () => {
  const r = amend('doctor', '--json');
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.ok(['js', 'native'].includes(info.backend));
  assert.ok(info.threads >= 1);
  assert.equal(typeof info.blas, 'string');
  // With the js backend a working addon is reported as unused, not as what computes.
  const js = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'doctor', '--json'],
    { encoding: 'utf8', env: { ...process.env, AMEND_BACKEND: 'js' } });
  assert.equal(js.status, 0, js.stderr);
  const jsInfo = JSON.parse(js.stdout);
  assert.equal(jsInfo.backend, 'js');
  if (info.native.startsWith('built')) assert.match(jsInfo.native, /not used \(backend js\)/);
});

test('--help shows usage and an example for every command', () => {
  for (const cmd of ['doctor', 'generate', 'logits']) {
    const r = amend(cmd, '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /usage: amend/);
    assert.match(r.stdout, /examples:\n {2}amend /);
  }
});

test('amend world info: the committed weights are the built ones; changed weights are called out', () => {
  const built = amend('world', 'info', '--json');
  assert.equal(built.code, 0);
  assert.equal(JSON.parse(built.stdout).weightsAsBuilt, true);
  const copy = path.join(tmp, 'world-copy');
  fs.cpSync(path.join(repoRoot(), 'world'), copy, { recursive: true });
  const f = path.join(copy, 'model.safetensors');
  const b = fs.readFileSync(f);
  b[b.length - 1] ^= 1; // one bit of the last weight
  fs.writeFileSync(f, b);
  const text = amend('world', 'info', '--model', copy);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /weights {4}model\.safetensors is not the built file \(sha256 [0-9a-f]{64}\)/);
  assert.equal(JSON.parse(amend('world', 'info', '--model', copy, '--json').stdout).weightsAsBuilt, false);
});

test('amend world info: damaged weights (cut short, empty) are called damaged, with exit 1, not edited', () => {
  const copy = path.join(tmp, 'world-damaged');
  fs.cpSync(path.join(repoRoot(), 'world'), copy, { recursive: true });
  const f = path.join(copy, 'model.safetensors');
  for (const [what, size, why] of [['cut short', 4_000_000, /truncated or corrupt — re-download it/], ['empty', 0, /only 0 bytes/]] as const) {
    fs.truncateSync(f, size);
    for (const json of [[], ['--json']]) {
      const r = amend('world', 'info', '--model', copy, ...json);
      assert.equal(r.code, 1, what);
      // with --json the error is the one JSON object on stdout
      const message: string = json.length ? JSON.parse(r.stdout).error.message : r.stderr;
      if (!json.length) assert.equal(r.stdout, '', what);
      assert.match(message, why, what);
      assert.ok(message.startsWith(`amend: ${copy}: model.safetensors: `) || message.startsWith(`${copy}: model.safetensors: `), message);
      assert.doesNotMatch(message, /edited or exported/, what);
      assert.equal(message.trim().split('\n').length, 1, message);
    }
  }
});

test('bare amend: the usage goes to stderr with exit 1; --help puts it on stdout with exit 0', () => {
  const bare = amend();
  assert.equal(bare.code, 1);
  assert.equal(bare.stdout, '');
  assert.match(bare.stderr, /usage: amend <command>/);
  const help = amend('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: amend <command>/);
});

// /proc refuses new folders with ENOENT, which made Node's recursive mkdir loop forever.
test('a cache folder that cannot be created: statistics computed, one warning line, no hang', { skip: fs.existsSync('/proc/self') ? false : 'no /proc here' }, () => {
  const corpus = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(corpus, 'one short document\nanother short document\n');
  const r = runCli(['stats', '--model', 'world', '--layers', '0', '--corpus', corpus], '/proc/amend-no-such-folder');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /layer 0: .*\(computed\)/);
  const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, /^amend: warning: statistics for layer 0 were computed but not cached: .*ENOENT/);
  assert.doesNotMatch(r.stderr, /\(node:\d+\)|trace-warnings/);
  // makeDirs fails where recursive mkdir did: a file by that name.
  assert.throws(() => makeDirs(corpus), /EEXIST/);
  assert.throws(() => makeDirs(path.join(corpus, 'below')), /ENOTDIR|EEXIST/);
});

test('amend --version prints the package version', () => {
  const r = amend('--version');
  assert.equal(r.code, 0);
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  assert.equal(r.stdout.trim(), `amend ${pkg.version}`);
  // --json may come first as well: every command takes it.
  for (const argv of [['--version', '--json'], ['--json', '--version'], ['--json', 'version']]) {
    const j = amend(...argv);
    assert.equal(j.code, 0, `${argv.join(' ')}: ${j.stderr}`);
    assert.deepEqual(JSON.parse(j.stdout), { version: pkg.version });
  }
});

test('--help --json is the help as one JSON document', () => {
  const top = amend('--help', '--json');
  assert.equal(top.code, 0);
  const names = JSON.parse(top.stdout).commands.map((c: { name: string }) => c.name);
  assert.ok(names.includes('edit') && names.includes('eval'), top.stdout);
  for (const argv of [['help', '--json'], ['--json', '--help']]) {
    const r = amend(...argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(top.stdout));
  }
  for (const argv of [['edit', '--help', '--json'], ['help', 'edit', '--json'], ['help', '--json', 'edit'], ['--json', 'help', 'edit'], ['--json', 'edit', '--help']]) {
    const r = amend(...argv);
    assert.equal(r.code, 0, r.stderr);
    const h = JSON.parse(r.stdout);
    assert.equal(h.command, 'edit');
    const method = h.options.find((o: { name: string }) => o.name === 'method');
    assert.equal(method.type, 'string');
    assert.ok(h.options.some((o: { name: string }) => o.name === 'json'));
    assert.ok(h.examples.length > 0);
  }
});

test('bad input: one clear line and a non-zero exit', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['missing directory', ['logits', '--model', path.join(tmp, 'nope'), '--ids', '1'], /nope/],
    ['a typo of the demo model\'s name', ['logits', '--model', 'wrld', '--ids', '1'], /model "wrld" not found.*\(did you mean --model world, the demo model\?\)$/],
    ['no weights file', ['logits', '--model', brokenCopy('noweights', (d) => fs.rmSync(path.join(d, 'model.safetensors'))), '--ids', '1'], /safetensors/],
    ['corrupted header', ['logits', '--model', brokenCopy('corrupt', (d) => {
      const f = path.join(d, 'model.safetensors');
      const b = fs.readFileSync(f);
      b.write('{garbage', 8);
      fs.writeFileSync(f, b);
    }), '--ids', '1'], /model\.safetensors/],
    ['header length past the end', ['logits', '--model', brokenCopy('hugeheader', (d) => {
      const f = path.join(d, 'model.safetensors');
      const b = fs.readFileSync(f);
      b.writeBigUInt64LE(BigInt(b.length + 100), 0);
      fs.writeFileSync(f, b);
    }), '--ids', '1'], /model\.safetensors/],
    ['truncated file', ['logits', '--model', brokenCopy('truncated', (d) => {
      const f = path.join(d, 'model.safetensors');
      fs.truncateSync(f, fs.statSync(f).size - 100);
    }), '--ids', '1'], /model\.safetensors/],
    ['shape × dtype ≠ bytes', ['logits', '--model', brokenCopy('badshape', (d) => {
      const f = path.join(d, 'model.safetensors');
      const b = fs.readFileSync(f);
      const n = Number(b.readBigUInt64LE(0));
      const header = b.subarray(8, 8 + n).toString('utf8');
      // claim a different shape for ln_f (same text length keeps the data offsets valid)
      const changed = header.replace('"transformer.ln_f.bias":{"dtype":"F32","shape":[32]', '"transformer.ln_f.bias":{"dtype":"F32","shape":[33]');
      assert.notEqual(changed, header, 'test setup: header layout changed');
      b.write(changed, 8);
      fs.writeFileSync(f, b);
    }), '--ids', '1'], /ln_f\.bias/],
    ['unknown model_type', ['logits', '--model', brokenCopy('unknowntype', (d) => {
      const f = path.join(d, 'config.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), model_type: 'mamba' }));
    }), '--ids', '1'], /model_type "mamba"/],
    ['config/weight shape mismatch', ['logits', '--model', brokenCopy('mismatch', (d) => {
      const f = path.join(d, 'config.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), vocab_size: 120 }));
    }), '--ids', '1'], /shape/],
    ['id out of vocabulary', ['logits', '--model', good, '--ids', '5,100'], /out of the vocabulary/],
    ['not an id', ['logits', '--model', good, '--ids', '5,x'], /not a token id/],
    ['an empty id in the list', ['logits', '--model', good, '--ids', '1,,2'], /--ids: "" is not a token id/],
    ['a trailing comma', ['logits', '--model', good, '--ids', '1,2,'], /--ids: "" is not a token id/],
    ['an id in exponent notation', ['logits', '--model', good, '--ids', '1e2'], /--ids: "1e2" is not a token id/],
    ['a hexadecimal id', ['logits', '--model', good, '--ids', '0x10'], /--ids: "0x10" is not a token id/],
    ['an id past 2^53', ['logits', '--model', good, '--ids', '99999999999999999999'], /--ids: 99999999999999999999 is far past any vocabulary/],
    ['more threads than the pool takes', ['doctor', '--threads', '5000'], /--threads must be an integer from 1 to 1024, got "5000"/],
    ['config.json holding null', ['logits', '--model', brokenCopy('nullconfig', (d) => fs.writeFileSync(path.join(d, 'config.json'), 'null')), '--ids', '1'], /config\.json: must be a JSON object of model settings, got null/],
    ['config.json that is not JSON (the parser quotes it, newline and all)', ['logits', '--model', brokenCopy('zzzconfig', (d) => fs.writeFileSync(path.join(d, 'config.json'), 'zzz\nmore')), '--ids', '1'], /config\.json: not valid JSON/],
    ['a negative layer count', ['logits', '--model', brokenCopy('layers', (d) => {
      const f = path.join(d, 'config.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), n_layer: -1 }));
    }), '--ids', '1'], /the number of layers is -1/],
    ['empty prompt', ['generate', '--model', good, ''], /empty/],
    ['unknown option', ['generate', '--model', good, '--bogus', 'x'], /^amend: unknown option --bogus \(see amend generate --help\)/],
    ['negative number as a value (reaches the option check)', ['generate', '--model', good, '--temperature', '-1', 'x'], /--temperature must be > 0/],
    ['--greedy with a sampling option', ['generate', '--model', good, '--greedy', '--temperature', '0.5', 'x'], /--greedy takes the most likely token/],
    ['negative integer after a short flag', ['generate', '--model', good, '-n', '-2', 'x'], /--max-new-tokens must be an integer ≥ 0, got "-2"/],
    ['a blank integer (Number("") is 0)', ['generate', '--model', good, '-n', '', 'x'], /--max-new-tokens must be an integer ≥ 0, got ""/],
    ['a seed past 32 bits (it would repeat a smaller one)', ['generate', '--model', good, '--seed', '4294967296', 'x'], /--seed must be an integer from 0 to 4294967295/],
    ['a stray argument to logits', ['logits', '--model', good, '--ids', '1,2', 'extra'], /unexpected argument "extra"/],
    ['a stray argument to doctor', ['doctor', 'foo'], /unexpected argument "foo"/],
    ['world info of a missing folder', ['world', 'info', '--model', path.join(tmp, 'nope')], /no such folder/],
    ['world info of a file', ['world', 'info', '--model', path.join(repoRoot(), 'world', 'model.safetensors')], /world\/model\.safetensors: is a file; give the folder amend world build wrote \(the one holding BUILD\.json\)$/],
    ['unknown command', ['frobnicate'], /unknown command/],
  ];
  for (const [name, args, pattern] of cases) {
    await t.test(name, () => assertOneLineError(amend(...args), pattern));
  }
});
