// Broken or hostile files and values, each found by feeding Amend damaged inputs: every one must
// end in one AmendError line (or, on the command line, exit 1 with one line on stderr), never a
// TypeError / RangeError, a hang, a huge allocation or a value silently taken for another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { crc32, readNpz } from '../src/io/npz.js';
import { readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { parseConfig } from '../src/models/config.js';
import { CausalLM } from '../src/models/model.js';
import { checkHparams, parseSets, readHparamsFile } from '../src/editors/hparams.js';
import { importEasyEditStats } from '../src/stats/import.js';
import { readNpyVector } from '../src/eval/metrics-text.js';
import { CHECKPOINT_VERSION, PartialRun, type Checkpoint } from '../src/eval/checkpoint.js';
import { PARTIAL_DIR, runEval, type EvalOptions } from '../src/eval/index.js';
import { loadCases } from '../src/data/index.js';
import { AmendTokenizer } from '../src/tokenizer/index.js';
import { assertOneLineError, type CliResult, repoRoot, runCli, sharedDir, warningsOf } from './helpers.js';
import { writeNpz } from './npz-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-malformed-'));
process.env.AMEND_CACHE = path.join(tmp, 'cache');
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array | string): string {
  const f = path.join(tmp, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, bytes);
  return f;
}

/** Throws an AmendError matching `pattern` (not a TypeError or RangeError). */
function assertAmendError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof AmendError, `an AmendError, got ${e.name}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

// ---- .npy / .npz

/** A version 1.0 .npy file of float32 values. */
function npy(shape: string, values: Float32Array, descr = '<f4'): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const len = Math.ceil((10 + dict.length + 1) / 64) * 64 - 10;
  const header = Buffer.alloc(len, 0x20);
  header.write(dict, 'latin1');
  header[len - 1] = 0x0a;
  const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  head.writeUInt16LE(len, 8);
  return Buffer.concat([head, header, Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

/**
 * A zip of stored members. `zip64Size` writes the first member's central sizes as 0xFFFFFFFF with
 * that value in a zip64 extra field; `extraLen` overrides the first entry's extra-field length.
 */
function zip(members: { name: string; data: Buffer }[], opts: { zip64Size?: bigint; extraLen?: number } = {}): Buffer {
  const parts: Buffer[] = [], central: Buffer[] = [];
  let off = 0;
  members.forEach((m, k) => {
    const name = Buffer.from(m.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(m.data), 14); local.writeUInt32LE(m.data.length, 18); local.writeUInt32LE(m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, m.data);
    const big = k === 0 && opts.zip64Size !== undefined;
    const extra = Buffer.alloc(big ? 20 : 0);
    if (big) {
      extra.writeUInt16LE(1, 0); extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(opts.zip64Size!, 4); extra.writeBigUInt64LE(opts.zip64Size!, 12);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(45, 4); c.writeUInt16LE(20, 6); c.writeUInt32LE(crc32(m.data), 16);
    c.writeUInt32LE(big ? 0xffffffff : m.data.length, 20); c.writeUInt32LE(big ? 0xffffffff : m.data.length, 24);
    c.writeUInt16LE(name.length, 28); c.writeUInt16LE(k === 0 && opts.extraLen !== undefined ? opts.extraLen : extra.length, 30);
    c.writeUInt32LE(off, 42);
    central.push(c, name, extra);
    off += 30 + name.length + m.data.length;
  });
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(members.length, 8); end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cd, end]);
}

const eye2 = npy('(2, 2)', new Float32Array([1, 0, 0, 1]));
const count = npy('()', new Float32Array([10]));
const statsMembers = (mom2 = eye2, cnt = count) => [{ name: 'mom2.mom2.npy', data: mom2 }, { name: 'mom2.count.npy', data: cnt }];

test('a zip entry whose name, extra field or comment runs past the central directory is named as corrupt', () => {
  assert.equal(readNpz(write('ok.npz', zip(statsMembers()))).size, 2, 'the hand-built archive itself reads');
  assertAmendError(() => readNpz(write('extra.npz', zip(statsMembers(), { extraLen: 0xffff }))), /central directory entry 0 is corrupt/);
});

test('a zip64 size larger than the file is refused before anything that size is allocated', () => {
  for (const size of [2n ** 33n, 2n ** 52n]) {
    assertAmendError(() => readNpz(write(`z64-${size}.npz`, zip(statsMembers(), { zip64Size: size }))), new RegExp(`its ${size} bytes at offset \\d+ run past the end of the file`));
  }
});

test('a .npy shape that numpy would not write (7.68e2, 0x300) is refused', () => {
  for (const shape of ['(2.0e0, 2)', '(0x2, 2)']) {
    assertAmendError(() => readNpz(write('shape.npz', zip(statsMembers(npy(shape, new Float32Array([1, 0, 0, 1])))))), /is not a tuple of non-negative integers/);
  }
});

test('boolean statistics (mom2 or count) are not imported as numbers', () => {
  const bools = npy('(2, 2)', new Float32Array([0]), '|b1');
  // |b1 takes one byte per element: 4 bytes of 0/1 after the header.
  const mom2 = Buffer.concat([bools.subarray(0, bools.length - 4), Buffer.from([1, 0, 0, 1])]);
  assertAmendError(() => importEasyEditStats(write('b/mom2.npz', zip(statsMembers(mom2))), { layer: 0 }), /mom2\.mom2 holds booleans/);
  const one = npy('()', new Float32Array([0]), '|b1');
  const cnt = Buffer.concat([one.subarray(0, one.length - 4), Buffer.from([1])]);
  assertAmendError(() => importEasyEditStats(write('b/count.npz', zip(statsMembers(eye2, cnt))), { layer: 0 }), /mom2\.count holds booleans/);
  assert.equal(importEasyEditStats(write('b/ok.npz', zip(statsMembers())), { layer: 0 }).count, 10, 'the same archive with numbers imports');
});

test('readNpyVector (ROME\'s idf.npy) refuses a huge shape and a short header instead of throwing a RangeError', () => {
  assert.deepEqual([...readNpyVector(write('idf.npy', npy('(3,)', new Float32Array([1, 2, 3]))))], [1, 2, 3]);
  assertAmendError(() => readNpyVector(write('idf-huge.npy', npy('(1000000000000,)', new Float32Array([1])))), /needs \d+ bytes but only 4 follow the header/);
  assertAmendError(() => readNpyVector(write('idf-short.npy', Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0, 0x10, 0, 0]))), /truncated/);
  assertAmendError(() => readNpyVector(write('idf-2d.npy', eye2)), /expected a 1-D array/);
});

// ---- safetensors, config.json, tokenizer files

function safetensors(header: Record<string, unknown>, data: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

test('a safetensors entry without shape or data_offsets says so, not "undefined"', () => {
  const noShape = write('noshape.safetensors', safetensors({ a: { dtype: 'F32', data_offsets: [0, 4] } }, Buffer.alloc(4)));
  assertAmendError(() => readSafetensorsHeader(noShape), /tensor "a" has no shape, not a list/);
  const noOffsets = write('nooffsets.safetensors', safetensors({ a: { dtype: 'F32', shape: [1] } }, Buffer.alloc(4)));
  assertAmendError(() => readSafetensorsHeader(noOffsets), /tensor "a" has no data_offsets, not \[begin, end\]/);
  for (const f of [noShape, noOffsets]) assert.throws(() => readSafetensorsHeader(f), (e: Error) => !/undefined/.test(e.message));
});

const worldConfig = (): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(repoRoot(), 'world', 'config.json'), 'utf8'));

test('config.json: a size given as a string or boolean is named, not called missing or replaced by its default', () => {
  assert.equal(parseConfig(worldConfig()).hidden, 192);
  assertAmendError(() => parseConfig({ ...worldConfig(), n_embd: '192' }), /n_embd is "192", not a number/);
  assertAmendError(() => parseConfig({ ...worldConfig(), n_head: true }), /n_head is true, not a number/);
  // Optional fields had a default that silently took the place of a mistyped value.
  assertAmendError(() => parseConfig({ ...worldConfig(), n_inner: '1000' }), /n_inner is "1000", not a number/);
  assertAmendError(() => parseConfig({ ...worldConfig(), layer_norm_epsilon: 'x' }), /layer_norm_epsilon is "x", not a number/);
  assert.equal(parseConfig({ ...worldConfig(), n_inner: null }).ffn, 768, 'null still means "the default"');
});

test('tokenizer_config.json that is valid JSON but not an object is not called invalid JSON', () => {
  const dir = path.join(tmp, 'tokcfg');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(repoRoot(), 'world', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '[1]');
  assertAmendError(() => AmendTokenizer.fromDir(dir), /tokenizer_config\.json is not a JSON object \(it holds array\)/);
});

test('a tokenizer with more ids than the model\'s vocabulary is named when the model loads, and on the command line before the error it explains', async () => {
  const gpt2 = sharedDir('models/gpt2-tokenizer');
  const dir = path.join(tmp, 'world-gpt2-tokenizer');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(repoRoot(), 'world', f), path.join(dir, f));
  // A tokenizer of the same kind with one extra id far beyond the model's 1536.
  const tj = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'world', 'tokenizer.json'), 'utf8'));
  tj.model.vocab['zzzextra'] = 5000;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  const warnings = await warningsOf(() => CausalLM.load(dir));
  assert.ok(warnings.some((w) => /tokenizer\.json has 5001 token ids but the model's vocabulary only 1536/.test(w)), warnings.join('\n'));
  if (!gpt2) return; // the command-line half needs a tokenizer whose ids reach past the model's
  fs.copyFileSync(path.join(gpt2, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const r = runCli(['generate', '--model', dir, 'The birthplace of', '-n', '1', '--greedy']);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0]!, /^amend: warning: .*tokenizer\.json has 50257 token ids/);
  assert.match(lines.at(-1)!, /^amend: generate: token id \d+ is not an integer in 0\.\.1535/);
});

// ---- hparams, --set, requests

test('hparams keys that are Object.prototype\'s (constructor, toString, __proto__) are unknown keys, not accepted unchecked', () => {
  for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    assertAmendError(() => checkHparams('rome', parseSets([`${key}=1`]), '--set'), new RegExp(`unknown ROME hparam "${key}"`));
  }
  assertAmendError(() => checkHparams('rome', readHparamsFile(write('proto.json', '{"__proto__": {"layers": [1]}}')), 'f'), /unknown ROME hparam "__proto__"/);
});

test('--set with nothing to set is an error, not a silent no-op', () => {
  assertAmendError(() => parseSets(['']), /--set is empty/);
  assertAmendError(() => parseSets(['  ']), /--set is empty/);
});

test('a YAML tag the parser does not know is one error line, not a multi-line Node warning', async () => {
  const file = write('tag.yaml', 'v_lr: !!js/function "function(){}"\n');
  const warnings = await warningsOf(() => assertAmendError(() => readHparamsFile(file), /not valid YAML \(Unresolved tag/));
  assert.deepEqual(warnings, []);
  // In --set the value stays the raw text, which the schema then names.
  const sets = await warningsOf(() => assertAmendError(() => checkHparams('rome', parseSets(['v_lr=!!js/function x']), '--set'), /v_lr must be a number/));
  assert.deepEqual(sets, []);
});

test('a device given as a file (/dev/zero) is refused at once instead of being read until memory runs out', { skip: fs.existsSync('/dev/zero') ? false : 'no /dev/zero' }, () => {
  // In a child with a time limit first: read in this process, /dev/zero would block the test run.
  const cli = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [cli, 'edit', '--model', 'world', '--method', 'memit', '--requests', '/dev/zero'], { encoding: 'utf8', timeout: 30_000 });
  assertOneLineError({ code: r.status, stdout: r.stdout, stderr: r.stderr }, /\/dev\/zero: is a device, not a file; give a benchmark JSON file/);
  assertAmendError(() => loadCases('/dev/zero'), /\/dev\/zero: is a device, not a file; give a benchmark JSON file/);
  assertAmendError(() => readHparamsFile('/dev/zero'), /is a device, not a file/);
  assertAmendError(() => readNpyVector('/dev/zero'), /is a device, not a file/);
});

const BASH = spawnSync('bash', ['-c', 'cat <(true)']).status === 0;

test('a pipe given as a safetensors or .npz file (<(cat f)) is refused as not a regular file, not called empty or not a zip', { skip: BASH ? false : 'no bash with process substitution' }, () => {
  // Both formats are read by position from a size taken from stat, which a pipe does not have.
  const st = path.join(tmp, 'pipe.safetensors');
  writeSafetensors(st, [{ name: 'x', shape: [2], data: new Float32Array([1, 2]) }]);
  const npz = path.join(tmp, 'pipe.npz');
  writeNpz(npz, { mom2: { descr: '<f4', shape: [1, 1], bytes: new Uint8Array(new Float32Array([1]).buffer) } });
  assert.equal(readSafetensorsHeader(st).entries.length, 1); // as files, both are readable
  assert.equal(readNpz(npz).size, 1);
  const cli = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  const viaPipe = (file: string, args: string): CliResult => {
    const r = spawnSync('bash', ['-c', `"$0" "$1" ${args}`, process.execPath, cli, file], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  assertOneLineError(viaPipe(st, 'patch show <(cat "$2")'), /\/dev\/fd\/\d+: not a regular file \(a pipe or a device\?\); safetensors are read by position, so write it to a file first$/);
  assertOneLineError(viaPipe(npz, 'stats --model world --import <(cat "$2") --layer 0'), /\/dev\/fd\/\d+: not a regular file \(a pipe or a device\?\); a \.npz is read by position, so write it to a file first$/);
  if (fs.existsSync('/dev/null')) {
    assertAmendError(() => readSafetensorsHeader('/dev/null'), /not a regular file/);
    assertAmendError(() => readNpz('/dev/null'), /not a regular file/);
  }
});

test('world build --config: a nested key that is Object.prototype\'s is an unknown setting', () => {
  const r = runCli(['world', 'build', '--config', '{"model": {"toString": 1}}', '--small', '--out', path.join(tmp, 'wb')]);
  assertOneLineError(r, /unknown setting "model\.toString"/);
  assert.ok(!fs.existsSync(path.join(tmp, 'wb')));
});

test('the command line names an unknown command even when it is a key of every object', () => {
  assertOneLineError(runCli(['constructor']), /unknown command "constructor"/);
  assertOneLineError(runCli(['help', '__proto__']), /no command "__proto__"/);
});

test('exported readers given a non-path or non-object (from JavaScript) say so, not a TypeError or a file descriptor read', () => {
  const js = (f: unknown) => f as never;
  assertAmendError(() => parseConfig(js(null)), /parseConfig takes the parsed config\.json object, not null/);
  assertAmendError(() => checkHparams('rome', js(null), 'x'), /hparams must be an object/);
  assertAmendError(() => parseSets(js('v_lr=1')), /parseSets takes a list of "key=value" strings/);
  assertAmendError(() => parseSets(js(null)), /parseSets takes a list/);
  assertAmendError(() => readHparamsFile(js(0)), /readHparamsFile needs the hparams file as a path/);
  assertAmendError(() => importEasyEditStats(js(5)), /importEasyEditStats needs the \.npz file as a path/);
});

// ---- an interrupted evaluation's checkpoint

test('a damaged checkpoint.json or cases.jsonl of an interrupted run is named, never a TypeError in the resumed run', () => {
  const out = path.join(tmp, 'partial');
  const run = new PartialRun(out);
  run.reset();
  const good = { version: CHECKPOINT_VERSION, config: {} as Checkpoint['config'], done: 1, total: 3, patches: ['000001.safetensors'], pending: [], drift: [], seconds: 1, lines: 1, bytes: 0 };
  const put = (cp: unknown) => fs.writeFileSync(run.checkpointFile, JSON.stringify(cp));
  put(good);
  assert.deepEqual(run.read(), good);
  const damaged: [unknown, RegExp][] = [
    [null, /not a JSON object/],
    [[], /not a JSON object/],
    [{ ...good, version: undefined }, /no version/],
    [{ ...good, patches: undefined }, /patches is not a list/],
    [{ ...good, patches: ['../../../etc/passwd'] }, /patches is not a list of patch file names/],
    [{ ...good, bytes: 'x' }, /bytes is "x"/],
    [{ ...good, done: 4 }, /done 4 is more than total 3/],
    [{ ...good, pending: 5 }, /pending is not a list/],
    [{ ...good, drift: [{ edits: 1 }] }, /drift is not a list/],
  ];
  for (const [cp, pattern] of damaged) {
    put(cp);
    assertAmendError(() => run.read(), new RegExp(`a damaged checkpoint \\(${pattern.source}`));
  }
  const line = '{"index": 0}\n';
  fs.writeFileSync(run.casesFile, line);
  fs.writeFileSync(run.patchPath('000001.safetensors'), '');
  assert.deepEqual(run.restore({ ...good, bytes: line.length }), ['{"index": 0}']);
  fs.writeFileSync(run.casesFile, '{"index"# 0}\n');
  assertAmendError(() => run.restore({ ...good, bytes: line.length }), /line 1 is not a case record/);
  // Killed while the finished report moved into place: cases.jsonl is in the report folder. A
  // checkpoint that cannot be resumed leaves it there; one that can takes it back.
  const reported = path.join(out, 'cases.jsonl');
  fs.rmSync(run.casesFile);
  fs.writeFileSync(reported, line);
  fs.rmSync(run.patchPath('000001.safetensors'));
  assertAmendError(() => run.restore({ ...good, bytes: line.length }), /000001\.safetensors is missing/);
  assert.equal(fs.readFileSync(reported, 'utf8'), line);
  assertAmendError(() => run.restore({ ...good, patches: [], bytes: line.length, lines: 2 }), /has 1 lines where the checkpoint says 2/);
  assert.equal(fs.readFileSync(reported, 'utf8'), line);
  assert.deepEqual(run.restore({ ...good, patches: [], bytes: line.length }), ['{"index": 0}']);
  assert.equal(fs.existsSync(reported), false);
  assert.equal(fs.readFileSync(run.casesFile, 'utf8'), line);
});

const MODELS = sharedDir('models');
const DATA = sharedDir('data');

test('a resumed run whose checkpoint points at cases that do not exist is refused before any edit', { skip: MODELS && DATA ? false : '../shared/models or ../shared/data is absent' }, async () => {
  const m = await CausalLM.load(path.join(MODELS!, 'stories260K'));
  const { cases } = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 3 });
  const opts: EvalOptions = { method: 'rome', hparams: { v_num_grad_steps: 2, mom2_adjustment: false }, mode: { sequential: 3 }, protocol: 'final', checkpointEvery: 1 };
  const out = path.join(tmp, 'resume-damaged');
  await assert.rejects(runEval(m, cases, { ...opts, out, onProgress: (p) => { if (p.stage === 'edit' && p.done === 2) throw new Error('crash'); } }), /crash/);
  const file = path.join(out, PARTIAL_DIR, 'checkpoint.json');
  const cp = JSON.parse(fs.readFileSync(file, 'utf8'));
  cp.pending = [{ index: 999, edit: 1 }];
  fs.writeFileSync(file, JSON.stringify(cp));
  await assert.rejects(runEval(m, cases, { ...opts, out, resume: true }), (e: Error) => e instanceof AmendError && /a damaged checkpoint \(its counts do not fit this run's 3 units of 3 cases\)/.test(e.message));
});
