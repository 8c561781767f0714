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
import { exportModel, exportPatched } from '../src/patch/export.js';
import { editSession } from '../src/patch/session.js';
import { generate } from '../src/models/generate.js';
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
    [() => runEval(model, anyOf(cases), { method: 'rome', mode: { sequential: 1 }, heldout: anyOf({ text: 'some text', line: true }) }), /runEval: heldout: unknown option "line" \(did you mean "lines"\?\)/],
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

test('an options key an entry point does not know is refused, with the nearest spelling and the options it takes; nothing is changed or written', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const base = weightsHash(model);
  const req = { prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' };
  const cases = loadCases('world', { limit: 2 }).cases;
  const ids = model.tok().encode('Lily was born in');
  const patch = EditPatch.create(model, [], { method: 'rome', hparams: {}, requests: [req] });
  const out = path.join(os.tmpdir(), `amend-guard-keys-${process.pid}`);
  const unknown = (what: string, key: string, hint: string | null, first: string) =>
    new RegExp(`^${what}: unknown option "${key}"${hint === null ? '' : ` \\(${hint}\\)`}; options: ${first}(, |$)`);
  const mean = (key: string) => `did you mean "${key}"\\?`;
  const refusals: [() => unknown, RegExp][] = [
    [() => edit(model, [req], anyOf({ method: 'rome', hparam: { v_num_grad_steps: 2 } })), unknown('edit', 'hparam', mean('hparams'), 'method')],
    [() => edit(model, [req], anyOf({ method: 'rome', nSteps: 2 })), unknown('edit', 'nSteps', null, 'method')],
    [() => edit(model, [req], anyOf({ method: 'rome', onprogress: () => {} })), unknown('edit', 'onprogress', mean('onProgress'), 'method')],
    [() => edit(model, [req], anyOf({ method: 'rome', allowUnchange: true })), unknown('edit', 'allowUnchange', mean('allowUnchanged'), 'method')],
    [() => edit(model, [req], { method: 'rome', statsOptions: anyOf({ cachedir: out }) }), unknown('edit: statsOptions', 'cachedir', mean('cacheDir'), 'corpus')],
    // an hparam beside the options (EasyEdit's hparams objects hold both) is named as one
    [() => edit(model, [req], anyOf({ method: 'rome', v_num_grad_steps: 2 })), /^edit: unknown option "v_num_grad_steps"; it is an hparam: pass it in hparams/],
    [() => generate(model, [ids], anyOf({ maxNewTokens: 3, greedy: false, topk: 5 })), unknown('generate', 'topk', mean('topK'), 'maxNewTokens')],
    [() => runEval(model, cases, anyOf({ method: 'rome', n: 1 })), unknown('runEval', 'n', 'that is amend eval --n; runEval evaluates every case it is given: pass cases\\.slice\\(0, n\\), or loadCases\\(file, \\{ limit: n \\}\\)\\.cases', 'method')],
    [() => runEval(model, cases, anyOf({ method: 'rome', mode: { sequential: 2 }, protocl: 'final' })), unknown('runEval', 'protocl', mean('protocol'), 'method')],
    [() => runEval(model, cases, { method: 'rome', statsOptions: anyOf({ samples: 10, nocache: true }) }), unknown('runEval: statsOptions', 'nocache', mean('noCache'), 'corpus')],
    [() => runEval(model, cases, { method: 'rome', qa: anyOf({ batchsize: 2 }) }), unknown('runEval: qa', 'batchsize', mean('batchSize'), 'extraTokens')],
    [() => runEval(model, cases, { method: 'rome', fluency: anyOf({ max_length: 20 }) }), unknown('runEval: fluency', 'max_length', mean('maxLength'), 'maxLength')],
    [() => CausalLM.load('world', anyOf({ notokenizer: true })), unknown('CausalLM.load', 'notokenizer', mean('noTokenizer'), 'cacheDir')],
    [() => CausalLM.loadDir(path.join(repoRoot(), 'world'), anyOf({ download: false })), unknown('CausalLM.loadDir', 'download', null, 'noTokenizer')],
    [() => exportModel(model, out, anyOf({ Force: true })), unknown('export', 'Force', mean('force'), 'dtype')],
    [() => exportPatched(model, [patch], out, anyOf({ ignorefingerprint: true })), unknown('exportPatched', 'ignorefingerprint', mean('ignoreFingerprint'), 'dtype')],
    [() => patch.save(`${out}.safetensors`, anyOf({ noclobber: true })), unknown('EditPatch.save', 'noclobber', mean('noClobber'), 'noClobber')],
  ];
  for (const [call, re] of refusals) {
    await assert.rejects(async () => call(), (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  }
  assert.equal(weightsHash(model), base, 'the model is unchanged');
  assert.equal(editSession(model).applied().length, 0);
  assert.ok(!fs.existsSync(out) && !fs.existsSync(`${out}.safetensors`), 'nothing written');
});

test('what failed as a TypeError inside (stats, resolved, generate without options or with unnested ids, exportPatched given one patch or no model, a case without targetNew) or was misread (hparamsFiles as a string, allowUnchanged as a string) is one AmendError', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const base = weightsHash(model);
  const req = { prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' };
  const ids = model.tok().encode('Lily was born in');
  const patch = EditPatch.create(model, [], { method: 'rome', hparams: {}, requests: [req] });
  const out = path.join(os.tmpdir(), `amend-guard-types-${process.pid}`);
  const resolved = resolveHparams('rome', model);
  const { v_lr: _, ...lacking } = resolved.hparams;
  const refusals: [() => unknown, RegExp][] = [
    [() => editSession(anyOf(null)), /^editSession takes a loaded model \(CausalLM\.load\(dir\)\), not null$/],
    [() => editSession(anyOf('world')), /^editSession takes a loaded model .*, not (a )?string$/],
    [() => edit(model, [req], { method: 'rome', stats: anyOf(5) }), /^edit: stats must be a Map from layer to SecondMoment, an array of SecondMoments or a function of the layer, not number$/],
    [() => edit(model, [req], { method: 'rome', resolved: anyOf({ method: 'rome' }) }), /^edit: resolved\.hparams must be an object of names and values, not undefined; pass what resolveHparams returns/],
    [() => edit(model, [req], { method: 'rome', resolved: { ...resolved, hparams: anyOf(lacking) } }), /^edit: resolved\.hparams lacks v_lr; pass what resolveHparams returns/],
    [() => edit(model, [req], { method: 'memit', resolved }), /^edit: resolved hparams are for rome, not memit$/],
    // read as a list of one-letter files ("/"), as truthy ("no"), as no options at all
    [() => edit(model, [req], { method: 'rome', hparamsFiles: anyOf('/tmp/x.yaml') }), /^edit: hparamsFiles must be an array of file paths, not the string "\/tmp\/x\.yaml" \(put it in \[ \]\)$/],
    [() => edit(model, [req], { method: 'rome', allowUnchanged: anyOf('no') }), /^edit: allowUnchanged must be true or false, not "no"$/],
    [() => edit(model, [req], { method: 'rome', statsOptions: anyOf('x') }), /^edit: statsOptions must be an object of options for src\/stats, not string$/],
    [() => runEval(model, [{ ...req, id: 'x' }], { method: 'rome', resolved: anyOf({ method: 'rome', hparams: 5 }) }), /^runEval: resolved\.hparams must be an object of names and values, not number/],
    [() => generate(model, [ids], anyOf(undefined)), /^generate needs options with the number of new tokens \(\{ maxNewTokens: 20 \}\), not undefined$/],
    [() => generate(model, [ids], anyOf(null)), /^generate needs options .*, not null$/],
    [() => generate(model, anyOf(ids), { maxNewTokens: 2 }), /^generate: prompt 0 is a number, not an array of token ids; one prompt goes in \[ \]: generate\(model, \[ids\], options\)$/],
    [() => generate(model, anyOf(['hello']), { maxNewTokens: 2 }), /^generate: prompt 0 is a string, not an array of token ids; encode text first: \[model\.tok\(\)\.encode\(text\)\]$/],
    [() => generate(model, anyOf('hello'), { maxNewTokens: 2 }), /^generate takes an array of prompts, each an array of token ids .*, not string$/],
    [() => exportPatched(model, anyOf(patch), out), /^exportPatched takes an array of patches \(EditPatch objects or patch files\), not one EditPatch \(put it in \[ \]\)$/],
    [() => exportPatched(anyOf(null), [patch], out), /^exportPatched takes a loaded model \(CausalLM\.load\(dir\)\) or a model folder \/ Hugging Face id, not null$/],
    // refused as the editor refuses it, case by case (the run measures nothing, so it says so)
    [() => runEval(model, [{ prompt: '{} was born in', subject: 'Lily' } as never], { method: 'rome' }),
      /^the editor \(rome\) refused all 1 case\(s\), so nothing was measured \(first: targetNew is missing, for "\{\} was born in"; it must be a string/],
  ];
  for (const [call, re] of refusals) {
    await assert.rejects(async () => call(), (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  }
  assert.equal(weightsHash(model), base, 'the model is unchanged');
  assert.ok(!fs.existsSync(out), 'nothing written');
});

test('a request field of another type is named with its type, a target too long for the model as the target, runEval\'s mode in the command line\'s spelling with the library\'s, and a string where a number goes in quotes', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const base = weightsHash(model);
  const req = { prompt: '{} was born in', subject: 'Lily', targetNew: 'Paris' };
  const cases = loadCases('world', { limit: 2 }).cases;
  const refusals: [() => unknown, RegExp][] = [
    [() => edit(model, [{ ...req, targetNew: anyOf(42) }], { method: 'rome' }), /^targetNew is a number \(42\), for "\{\} was born in"; it must be a string, the new object \(" Paris"\)$/],
    [() => edit(model, [{ ...req, targetNew: anyOf({ str: 'Paris' }) }], { method: 'rome' }), /^targetNew is an object \(keys "str"\), .*it must be a string, the new object \(" Paris"\) \(CounterFact's shape: give its str, "Paris"\)$/],
    [() => edit(model, [req, { ...req, targetNew: anyOf(null) }], { method: 'rome' }), /^request 2: targetNew is null, for/],
    [() => edit(model, [{ prompt: req.prompt, subject: req.subject, target_new: 'Paris' } as never], { method: 'rome' }), /^targetNew is missing, .*\(the request has target_new, EasyEdit's name: Amend's is targetNew\)$/],
    [() => edit(model, [{ ...req, prompt: anyOf(5) }], { method: 'rome' }), /^the prompt is a number \(5\); it must be a string, with "\{\}" where the subject goes$/],
    // a misspelt request field that would be silently absent (targetTrue is optional); a case's other fields pass
    [() => edit(model, [{ ...req, tragetTrue: 'London' } as never], { method: 'rome' }), /^"tragetTrue" is not a request field \(did you mean "targetTrue"\?\); a request has prompt, subject, targetNew, targetTrue$/],
    [() => edit(model, [req, { prompt: req.prompt, subjcet: 'Lily', targetNew: 'Paris' } as never], { method: 'rome' }), /^request 2: "subjcet" is not a request field \(did you mean "subject"\?\)/],
    [() => edit(model, [{ ...req, subject: anyOf(['Lily']) }], { method: 'rome' }), /^the subject is an array; it must be a string/],
    // empty strings keep their own words
    [() => edit(model, [{ ...req, targetNew: ' ' }], { method: 'rome' }), /^empty target for/],
    [() => edit(model, [{ ...req, prompt: '' }], { method: 'rome' }), /^empty prompt/],
    // the world model has 128 positions: here the prompt fits and the target does not
    [() => edit(model, [{ ...req, targetNew: ' Paris'.repeat(200) }], { method: 'rome' }), /more than the model's 128 positions; shorten the target \(\d+ tokens; at most \d+ fit after this prompt\)$/],
    [() => edit(model, [{ ...req, prompt: 'and '.repeat(200) + req.prompt }], { method: 'rome' }), /more than the model's 128 positions; shorten the prompt$/],
    [() => runEval(model, cases, { method: 'rome', mode: anyOf('batch:2') }), /^runEval: mode "batch:2" is the command line's spelling; runEval takes \{ batch: 2 \} \(parseMode\("batch:2"\) gives it\)$/],
    [() => runEval(model, cases, { method: 'rome', mode: anyOf('sequential:2/2') }), /runEval takes \{ sequential: 2, step: 2 \}/],
    [() => runEval(model, cases, { method: 'rome', mode: anyOf({ batches: 2 }) }), /^runEval: unknown mode \{"batches":2\}; modes: 'single', \{ batch: 2 \}/],
    // a string where a number goes is quoted: "2", not 2, which would hide why it is refused
    [() => runEval(model, cases, { method: 'rome', mode: { batch: anyOf('2') } }), /^batch:K needs positive integers, got "2"$/],
    [() => runEval(model, cases, { method: 'rome', checkpointEvery: anyOf('5') }), /^checkpointEvery must be a positive integer, got "5"$/],
  ];
  for (const [call, re] of refusals) {
    await assert.rejects(async () => call(), (e: unknown) => e instanceof AmendError && re.test(e.message), String(re));
  }
  assert.equal(weightsHash(model), base, 'the model is unchanged');
});
