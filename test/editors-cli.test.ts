// amend edit: one fact or a requests file → a patch and/or a checkpoint, before/after completions;
// one clear line and exit 1 on bad input, with nothing written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EditPatch } from '../src/patch/patch.js';
import { assertOneLineError, type CliResult, runCli, sharedDir } from './helpers.js';

const models = sharedDir('models');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-edit-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args, path.join(tmp, 'cache'));

const skip = models ? false : 'no ../shared/models';
// stories260K has no corpus file: give ROME no C⁻¹ here (the statistics are tested elsewhere).
const FAST = ['--set', 'mom2_adjustment=false', '--set', 'v_num_grad_steps=8'];

test('amend edit --method rome: one fact → a patch file, before/after completions', { skip }, () => {
  const out = path.join(tmp, 'lily.safetensors');
  const r = amend('edit', '--model', `${models}/stories260K`, '--method', 'rome', '--prompt', '{} went to the', '--subject', 'Lily',
    '--target', 'moon', '--target-true', 'park', '--out', out, '-n', '6', ...FAST);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ROME on .*stories260K: 1 request\(s\); hparams: rule for models without a preset \(llama, 5 layers\) \+ overrides/);
  assert.match(r.stdout, /before: ".*"  P\(new\) \S+  P\(true\) \S+/);
  assert.match(r.stdout, /after: {2}".*"  P\(new\) \S+  P\(true\) \S+/);
  const patch = EditPatch.load(out);
  assert.match(r.stdout, new RegExp(`^patch written: \\S*lily\\.safetensors \\(rome patch ${patch.id.slice(0, 12)}\\)$`, 'm'));
  assert.equal(patch.metadata.method, 'rome');
  assert.equal(patch.metadata.requests[0].subject, 'Lily');
  assert.equal(patch.metadata.hparams.v_num_grad_steps, 8);
  // --json
  const j = amend('edit', '--model', `${models}/stories260K`, '--prompt', 'Lily went to the', '--subject', 'Lily', '--target', 'moon', '--json', ...FAST);
  assert.equal(j.code, 0, j.stderr);
  const o = JSON.parse(j.stdout);
  assert.equal(o.method, 'rome');
  assert.equal(o.requests.length, 1);
  assert.ok(o.requests[0].after.pNew > o.requests[0].before.pNew);
  assert.equal(o.patch.file, null);
  // An edit that runs and moves nothing is called out on stderr (ROME held back by a tiny clamp).
  const held = amend('edit', '--model', `${models}/stories260K`, '--prompt', 'Lily went to the', '--subject', 'Lily', '--target', 'moon', ...FAST, '--set', 'clamp_norm_factor=0.0001');
  assert.equal(held.code, 0, held.stderr);
  assert.match(held.stderr, /^amend: warning: the edit barely moved P\(new\) on the requests shown/m);
  const r2 = amend('edit', '--model', `${models}/stories260K`, '--prompt', 'Lily went to the', '--subject', 'Lily', '--target', 'moon', ...FAST);
  assert.doesNotMatch(r2.stderr, /barely moved/);
});

test('amend edit --method memit --requests FILE (a JSON list of requests) with --export', { skip }, () => {
  const file = path.join(tmp, 'reqs.json');
  fs.writeFileSync(file, JSON.stringify([
    { prompt: '{} went to the', subject: 'Lily', targetNew: 'moon' },
    { prompt: '{} liked to eat', subject: 'Tom', targetNew: 'rocks' },
  ]));
  const exp = path.join(tmp, 'exported');
  const r = amend('edit', '--model', `${models}/stories260K`, '--method', 'memit', '--requests', file, '--export', exp,
    '--set', 'v_num_grad_steps=5', '--set', 'mom2_dataset=model-samples', '--set', 'mom2_n_samples=40');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /MEMIT on .*: 2 request\(s\)/);
  assert.match(r.stdout, /exported /);
  assert.ok(fs.existsSync(path.join(exp, 'config.json')));
  // --json: one JSON object on stdout, export included
  const exp2 = path.join(tmp, 'exported-json');
  const j = amend('edit', '--model', `${models}/stories260K`, '--method', 'memit', '--requests', file, '--export', exp2, '--json',
    '--set', 'v_num_grad_steps=5', '--set', 'mom2_dataset=model-samples', '--set', 'mom2_n_samples=40');
  assert.equal(j.code, 0, j.stderr);
  const o = JSON.parse(j.stdout);
  assert.equal(o.method, 'memit');
  assert.equal(o.requests.length, 2);
  assert.ok(o.export && fs.existsSync(path.join(exp2, 'config.json')));
});

test('amend edit: bad input is one line, exit 1, nothing written', { skip }, () => {
  const m = `${models}/stories260K`;
  const out = path.join(tmp, 'never.safetensors');
  assertOneLineError(amend('edit', '--model', m, '--prompt', 'Tom went home', '--subject', 'Lily', '--target', 'moon', '--out', out), /subject "Lily" is not in the prompt/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', '', '--out', out), /--target is empty/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--set', 'layers=[9]', '--out', out), /layer 9 is out of range/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--set', 'v_lrr=1', '--out', out), /unknown ROME hparam "v_lrr"/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} upon a', '--subject', 'Once', '--target', 'time', '--out', out, ...FAST), /already predicts "time"/);
  assertOneLineError(amend('edit', '--model', m, '--method', 'grace', '--prompt', '{} went', '--subject', 'Lily', '--target', 'x'), /--method must be one of rome, memit/);
  assertOneLineError(amend('edit', '--model', m, '--requests', path.join(tmp, 'none.json')), /^amend: --requests \S*none\.json: no such file; give a JSON list of requests/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home'), /--subject is required/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--limit', '3'), /--limit applies to --requests FILE/);
  assertOneLineError(amend('edit', '--model', m, '--requests', ''), /--requests is empty/);
  assertOneLineError(amend('edit', '--model', m, '--requests', path.join(tmp, 'none.json'), '--target-true', 'x'), /--target-true goes with --prompt/);
  // Every request is checked, and named, before the first ones are shown.
  const twoPlaceholders = path.join(tmp, 'two-placeholders.json');
  fs.writeFileSync(twoPlaceholders, JSON.stringify([{ prompt: '{} went home', subject: 'Lily', targetNew: 'moon' }, { prompt: '{} met {}', subject: 'Tom', targetNew: 'Sue', id: 'b' }]));
  assertOneLineError(amend('edit', '--model', m, '--requests', twoPlaceholders, ...FAST), /^amend: request 2 \(id b\): .*2 "\{\}"/);
  const long = path.join(tmp, 'long.json');
  fs.writeFileSync(long, JSON.stringify([{ prompt: '{} went home', subject: 'Lily', targetNew: 'moon' }, { prompt: `${'and then '.repeat(300)}{} went home`, subject: 'Tom', targetNew: 'moon' }]));
  assertOneLineError(amend('edit', '--model', m, '--requests', long, ...FAST), /^amend: request 2 \(id 1\): the prompt and target take \d+ tokens( with a context template)?, more than the model's 512 positions/);
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--dtype', 'f16', '--out', out), /--dtype is the storage dtype of --export/);
  // --out and --export on one path, or --out naming a folder: refused before anything is written.
  const both = path.join(tmp, 'both');
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', both, '--export', both, ...FAST), /is the same path as --export/);
  assert.ok(!fs.existsSync(both));
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', both, '--export', path.join(both, 'ckpt'), ...FAST), /--export \S*ckpt is inside --out \S*both, the patch file; write the checkpoint somewhere else/);
  assert.ok(!fs.existsSync(both), 'no checkpoint left behind');
  // An --export where nothing can be written (a path under /proc) is found before the edit and the patch.
  if (fs.existsSync('/proc/self')) {
    assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', out, '--export', '/proc/amend-none/x', ...FAST), /\/proc\/amend-none\/x: cannot write there/);
    // and so is an --out there (the edit used to run first, then fail to write the patch)
    const r = amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', '/proc/amend-none.safetensors', ...FAST);
    assertOneLineError(r, /\/proc\/amend-none\.safetensors: cannot write there/);
    assert.equal(r.stdout, '', 'no completions: nothing was edited');
    assert.ok(!fs.existsSync(out));
  }
  // A source whose record of earlier patches cannot be read stops --export before the edit.
  const badRecord = path.join(tmp, 'bad-record');
  fs.cpSync(m, badRecord, { recursive: true });
  const weights = path.join(badRecord, 'model.safetensors');
  const bytes = fs.readFileSync(weights);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
  header.__metadata__ = { ...(header.__metadata__ ?? {}), amend_patches: '{oops' };
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  fs.writeFileSync(weights, Buffer.concat([len, Buffer.from(text), bytes.subarray(8 + headerLen)]));
  const rec = amend('edit', '--model', badRecord, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--export', path.join(tmp, 'never-exported'), ...FAST);
  assertOneLineError(rec, /model\.safetensors: its "amend_patches" metadata is not valid JSON/);
  assert.equal(rec.stdout, '', 'no completions: nothing was edited');
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', tmp, '--force', ...FAST), /is a folder; give the patch file/);
  const aFile = path.join(tmp, 'a-file');
  fs.writeFileSync(aFile, 'x');
  assertOneLineError(amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', path.join(aFile, 'p.safetensors'), ...FAST), /a-file: exists and is not a folder/);
  // A batch with a request the model already predicts: refused with the way past it, which works.
  const reqs = path.join(tmp, 'one-known.json');
  fs.writeFileSync(reqs, JSON.stringify([{ prompt: '{} went home', subject: 'Lily', targetNew: 'moon' }, { prompt: '{} upon a', subject: 'Once', targetNew: 'time' }]));
  assertOneLineError(amend('edit', '--model', m, '--requests', reqs, '--out', out, ...FAST), /request 2 \(id 1\): the model already predicts "time".*--allow-unchanged/);
  assert.ok(!fs.existsSync(out));
  const allowed = amend('edit', '--model', m, '--requests', reqs, '--allow-unchanged', '--out', out, ...FAST);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(EditPatch.load(out).metadata.requests.length, 2);
  // --force replaces an earlier patch, but never a file that is not one, such as the model's weights.
  const again = amend('edit', '--model', m, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--allow-unchanged', '--out', out, '--force', ...FAST);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(EditPatch.load(out).metadata.requests.length, 1);
  const own = path.join(tmp, 'own');
  fs.cpSync(m, own, { recursive: true });
  const ownWeights = fs.readFileSync(path.join(own, 'model.safetensors'));
  for (const f of ['model.safetensors', 'config.json']) {
    const r = amend('edit', '--model', own, '--prompt', '{} went home', '--subject', 'Lily', '--target', 'moon', '--out', path.join(own, f), '--force', ...FAST);
    assertOneLineError(r, new RegExp(`${f.replace('.', '\\.')} exists and is not an Amend patch \\(--force replaces only an earlier patch\\)`));
    assert.equal(r.stdout, '', 'refused before the edit');
  }
  assert.deepEqual(fs.readFileSync(path.join(own, 'model.safetensors')), ownWeights);
});

test('amend edit --list-presets and --hparams-help', () => {
  const r = amend('edit', '--method', 'memit', '--list-presets');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /gpt2-xl\s+layers \[13,14,15,16,17\]\s+kmeng01\/memit hparams\/MEMIT\/gpt2-xl\.json/);
  const h = amend('edit', '--method', 'rome', '--hparams-help');
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /clamp_norm_factor/);
  assert.match(h.stdout, /target_space/);
});
