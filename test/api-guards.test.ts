// The library called from JavaScript, where no type checker stops a null or a string: the entry
// points answer with one AmendError naming what they take, and leave the model as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/model.js';
import { edit, resolveHparams } from '../src/editors/index.js';
import { greedyAnswers, perplexity, runEval, sampleTexts } from '../src/eval/index.js';
import { loadCases, parseCases } from '../src/data/index.js';
import { exportModel } from '../src/patch/export.js';
import { EditPatch } from '../src/patch/patch.js';
import { randomStats, repoRoot, weightsHash } from './helpers.js';

const anyOf = (v: unknown) => v as never;

test('edit, runEval and exportModel refuse arguments of the wrong kind with one AmendError', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const before = Buffer.from(model.weights.get('transformer.h.0.mlp.c_proj.weight')!.data.buffer.slice(0));
  const req = { prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' };
  const cases = [{ id: 'x', prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' }];
  const refusals: [() => Promise<unknown>, RegExp][] = [
    [() => edit(model, [req], anyOf(undefined)), /edit needs options \(\{ method/],
    [() => edit(anyOf(null), [req], { method: 'rome' }), /edit takes a loaded model .*, not null/],
    [() => edit(model, anyOf('x'), { method: 'rome' }), /edit takes an array of requests/],
    [() => edit(model, [req], { method: 'rome', preset: anyOf(5) }), /preset must be a preset name, not number/],
    [() => edit(model, [req], { method: 'rome', onProgress: anyOf('x') }), /onProgress must be a function, not string/],
    [() => runEval(model, anyOf(cases), anyOf(undefined)), /runEval needs options/],
    [() => runEval(model, anyOf([null]), { method: 'rome' }), /runEval takes an array of EditCase objects/],
    [() => runEval(model, anyOf(cases), { method: 'rome', out: anyOf(5) }), /out must be a folder path/],
    [() => runEval(model, anyOf(cases), { method: 'rome', mode: { sequential: 1 }, heldout: anyOf('some text') }), /heldout must be \{ text \}/],
    [async () => exportModel(model, anyOf(null)), /export needs the output folder as a path/],
    [async () => exportModel(model, path.join(os.tmpdir(), 'amend-guard-none'), { dtype: anyOf(5) }), /dtype must be keep, F32, F16 or BF16, not number/],
  ];
  for (const [call, re] of refusals) {
    await assert.rejects(call, (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  }
  assert.ok(Buffer.from(model.weights.get('transformer.h.0.mlp.c_proj.weight')!.data.buffer.slice(0)).equals(before), 'the model is unchanged');
});

test('EditPatch.save/load, CausalLM.loadDir and the tokenizer refuse arguments of the wrong kind with one AmendError', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const tok = model.tok();
  const patch = await edit(model, [{ prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' }], { method: 'rome' });
  const refusals: [() => unknown, RegExp][] = [
    [() => patch.save(anyOf(5)), /^EditPatch\.save needs the file to write as a path \(a non-empty string\), not number$/],
    [() => patch.save(''), /EditPatch\.save needs the file to write as a path .*, not an empty string/],
    [() => EditPatch.load(anyOf(5)), /^EditPatch\.load needs the patch file as a path \(a non-empty string\), not number$/],
    [() => CausalLM.loadDir(anyOf(5)), /^CausalLM\.loadDir needs the model folder as a path \(a non-empty string\), not number$/],
    [() => CausalLM.loadDir(anyOf(null)), /CausalLM\.loadDir needs the model folder as a path .*, not null/],
    [() => tok.encode(anyOf(null)), /^encode takes the text as a string, not null$/],
    [() => tok.encode(anyOf(5)), /encode takes the text as a string, not number/],
    [() => tok.decode(anyOf(null)), /^decode takes an array of token ids, not null$/],
    [() => tok.decode(anyOf('12')), /decode takes an array of token ids, not string/],
    [() => tok.decode(anyOf(Int32Array.of(1, 2))), /decode takes an array of token ids, not Int32Array \(Array\.from\(ids\) makes one\)/],
    [() => tok.decodeContinuation([1], anyOf(null)), /decodeContinuation takes two arrays of token ids, not null/],
    [() => tok.subjectRange(anyOf(null), 'Lily'), /the prompt must be a string .*, not null/],
  ];
  for (const [call, re] of refusals) assert.throws(call, (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  await assert.rejects(CausalLM.load(anyOf(5)), (e: unknown) => e instanceof AmendError && /^CausalLM\.load needs the model folder or Hugging Face id as a path \(a non-empty string\), not number$/.test(e.message));
  // What the guards let through still works: null options, as elsewhere in the API.
  const ids = tok.encode('Lily was born in', anyOf(null));
  assert.equal(tok.decode(ids, anyOf(null)), 'Lily was born in');
  const file = path.join(os.tmpdir(), `amend-guard-${process.pid}.safetensors`);
  try {
    patch.save(file, anyOf(null));
    assert.equal(EditPatch.load(file).id, patch.id);
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('edit holds the model from its first read to its patch: a patch applied while it awaits its statistics is refused', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const base = weightsHash(model);
  const req = { prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' };
  const sms = await randomStats(model, resolveHparams('memit', model).hparams.layers);
  const alone = await edit(model, [req], { method: 'memit', stats: sms });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const gated = async (layer: number) => { await gate; return sms.find((s) => s.layer === layer)!; };
  const running = edit(model, [req], { method: 'memit', stats: gated });
  await new Promise((r) => setImmediate(r)); // the edit now waits for its statistics
  assert.throws(() => alone.apply(model), (e: unknown) => e instanceof AmendError && /^applying a patch: the model is in use by an edit \(edit\/editWithReport\).*await it first/.test(e.message));
  await assert.rejects(edit(model, [req], { method: 'memit', stats: sms }), /the model is in use by an edit/);
  release();
  const patch = await running;
  assert.equal(weightsHash(model), base, 'the refused patch left the weights alone');
  assert.equal(patch.metadata.appliedOn, undefined, 'computed on the bare model');
  assert.deepEqual(patch.deltas, alone.deltas, 'the same edit as one computed with nothing in between');
  // The edit's progress callback is the caller's, not the edit's: a patch it applies is refused too.
  const refused: string[] = [];
  const watched = await edit(model, [req], { method: 'memit', stats: sms, onProgress: () => {
    try {
      alone.apply(model);
    } catch (e) {
      refused.push((e as Error).message);
    }
  } });
  assert.ok(refused.length > 0 && refused.every((m) => /^applying a patch: the model is in use by an edit/.test(m)), refused.join('\n'));
  assert.equal(weightsHash(model), base);
  assert.deepEqual(watched.deltas, alone.deltas);
  // Released at the end, and when the edit fails half-way.
  const failing = edit(model, [req], { method: 'memit', stats: async () => { throw new AmendError('no statistics here'); } });
  await assert.rejects(failing, /no statistics here/);
  alone.apply(model);
  assert.notEqual(weightsHash(model), base);
  alone.revert(model);
  assert.equal(weightsHash(model), base);
});

test('loadCases takes a path, and counts (limit, heldoutTokens, stopAfter, maxTokens, qa and fluency sizes) are integers in range', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const base = weightsHash(model);
  const { cases } = loadCases('world', { limit: 2 });
  assert.equal(cases.length, 2);
  assert.equal(loadCases('world', { limit: 0 }).cases.length, 0);
  const count = (what: string, min: number, got: string) => new RegExp(`^${what} must be an integer ≥ ${min}, got ${got}$`);
  const refusals: [() => unknown, RegExp][] = [
    // 0 would be file descriptor 0 to fs: loadCases would wait on standard input.
    [() => loadCases(anyOf(0)), /^loadCases needs the benchmark file as a path \(a non-empty string\), not number$/],
    [() => loadCases(anyOf(null)), /loadCases needs the benchmark file as a path .*, not null/],
    [() => loadCases('world', { limit: 2.5 }), count('limit \\(the number of cases to keep\\)', 0, '2\\.5')],
    [() => loadCases('world', { limit: -1 }), count('limit \\(the number of cases to keep\\)', 0, '-1')],
    [() => loadCases('world', { limit: NaN }), count('limit \\(the number of cases to keep\\)', 0, 'NaN')],
    [() => loadCases('world', { limit: anyOf('3') }), count('limit \\(the number of cases to keep\\)', 0, '"3"')],
    [() => parseCases([{ prompt: '{} was born in', subject: 'Lily', target_new: { str: 'Paris' } }], { limit: 1.5 }), /limit .* must be an integer ≥ 0, got 1\.5/],
    [() => runEval(model, cases, { method: 'rome', mode: { sequential: 2 }, heldout: { text: 'x' }, heldoutTokens: 2.5 }), count('runEval: heldoutTokens', 2, '2\\.5')],
    [() => runEval(model, cases, { method: 'rome', stopAfter: 0 }), count('runEval: stopAfter', 1, '0')],
    [() => perplexity(model, 'Lily was born in Paris', { maxTokens: 3.5 }), count('perplexity: maxTokens', 2, '3\\.5')],
    [() => greedyAnswers(model, [{ prompt: 'Lily was born in', answers: ['Paris'] }], { extraTokens: 0.5 }), count('qa: extraTokens', 0, '0\\.5')],
    [() => greedyAnswers(model, [{ prompt: 'Lily was born in', answers: ['Paris'] }], { batchSize: 0 }), count('qa: batchSize', 1, '0')],
    [() => sampleTexts(model, ['Lily was born in'], { maxLength: -5 }), count('fluency: maxLength', 1, '-5')],
    [() => sampleTexts(model, ['Lily was born in'], { batchSize: 2.5 }), count('fluency: batchSize', 1, '2\\.5')],
  ];
  for (const [call, re] of refusals) {
    await assert.rejects(async () => call(), (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  }
  assert.equal(weightsHash(model), base, 'the model is unchanged');
});
