// The fit check of imported statistics (src/stats/fit.ts) on the demo world model: its own
// statistics (measured on its held-out phrasings, checked on its training corpus) are imported;
// another layer's, a random model's of the same shape and a scaled copy are refused with one line
// and nothing written, unless forced; a C from fewer keys than dimensions is imported with the
// check skipped, and said so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM, builtinWorldDir, writeRandomCheckpoint } from '../src/models/index.js';
import {
  FIT_MIN_UNIT_CORRELATION, FIT_RATIO_RANGE, importStatsToCache, layerSecondMoments, measureStatsFit, readStatsFile,
  statsDir, type SecondMoment,
} from '../src/stats/index.js';
import { assertOneLineError, runCli, warningsOf } from './helpers.js';
import { romeNpz } from './npz-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-stats-fit-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const worldDir = builtinWorldDir();
const heldout = path.join(worldDir, 'corpus-heldout.txt');
const world = await CausalLM.load(worldDir);
// The world's own statistics of layers 0 and 1, over other text than the check reads (its training corpus).
const [own0, own1] = await layerSecondMoments(world, [0, 1], { corpus: heldout, noCache: true }) as [SecondMoment, SecondMoment];

/** A ROME-named .npz of `sm` for layer `layer` of a GPT-2 (the name decides the layer it imports as). */
function npzFor(name: string, sm: SecondMoment, layer: number): string {
  const file = path.join(tmp, name, 'world', 'wikipedia_stats', `transformer.h.${layer}.mlp.c_proj_float32_mom2_1000.npz`);
  romeNpz(file, sm, 1000);
  return file;
}

const scaled = (sm: SecondMoment, s: number): SecondMoment => ({ ...sm, mom2: sm.mom2.map((v) => v * s) });

/** Every file under a cache root's stats folder. */
function cachedFiles(cacheDir: string): string[] {
  const dir = statsDir(cacheDir);
  return fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name) : [];
}

async function refused(file: string, opts: { model?: CausalLM; fitCorpus?: string } = {}): Promise<string> {
  const cacheDir = fs.mkdtempSync(path.join(tmp, 'cache-'));
  let message = '';
  await assert.rejects(importStatsToCache(file, { model: opts.model ?? world, cacheDir, fitCorpus: opts.fitCorpus }), (e: unknown) => {
    assert.ok(e instanceof AmendError, String(e));
    message = e.message;
    return true;
  });
  assert.ok(!message.includes('\n'), 'one line');
  assert.ok(message.startsWith(`${file}: these statistics do not fit layer `), message);
  const model = (opts.model ?? world).dir!;
  assert.ok(message.includes(`Recompute them with amend stats --model ${model} --layers `), message);
  assert.ok(message.endsWith(`import them anyway: amend stats --model ${model} --import ${file} --force (force: true)`), message);
  assert.deepEqual(cachedFiles(cacheDir), [], 'a refused import writes nothing to the cache');
  return message;
}

test('fit: the model\'s own statistics, measured on other text, are imported, and the fit is recorded', async () => {
  const cacheDir = path.join(tmp, 'cache-own');
  const sm = await importStatsToCache(npzFor('own', own0, 0), { model: world, cacheDir });
  const { ratio, unitCorrelation } = sm.fit;
  assert.ok(ratio !== null && ratio >= FIT_RATIO_RANGE[0] && ratio <= FIT_RATIO_RANGE[1], `ratio ${ratio}`);
  assert.ok(unitCorrelation !== null && unitCorrelation >= FIT_MIN_UNIT_CORRELATION, `unit correlation ${unitCorrelation}`);
  assert.equal(sm.fit.tokens, 1024);
  assert.match(sm.fit.corpus, /corpus-train\.txt$/, 'the check reads the world\'s training corpus, not the statistics\' held-out phrasings');
  assert.match(readStatsFile(sm.file!).metadata.fit!, /^fits: mean kᵀC⁻¹k\/d [\d.]+ .*unit correlation [\d.]+/);
});

test('fit: another layer\'s statistics are refused, and nothing is written', async () => {
  const message = await refused(npzFor('layer1-as-0', own1, 0));
  // Each measure once: those out of range as the reasons, one in range in the parenthesis.
  assert.match(message, /do not fit layer 0 of this model — (the mean kᵀC⁻¹k\/d [\d.e+]+ is outside 0\.25–25 and the unit correlation -?[\d.]+ is below 0\.3 \(|the unit correlation -?[\d.]+ is below 0\.3 \(the mean kᵀC⁻¹k\/d [\d.e+]+ is within 0\.25–25; )measured on 1024 keys of \S+corpus-train\.txt\)/);
  assert.equal(message.split('kᵀC⁻¹k/d').length, 2, message);
  await refused(npzFor('layer0-as-1', own0, 1));
});

test('fit: another model\'s statistics of the same shape are refused, both ways', async () => {
  const randomDir = writeRandomCheckpoint(path.join(tmp, 'random-world'), JSON.parse(fs.readFileSync(path.join(worldDir, 'config.json'), 'utf8')), 5);
  fs.copyFileSync(path.join(worldDir, 'tokenizer.json'), path.join(randomDir, 'tokenizer.json'));
  const random = await CausalLM.load(randomDir);
  const [theirs] = await layerSecondMoments(random, [0], { corpus: heldout, noCache: true });
  await refused(npzFor('random-into-world', theirs!, 0));
  // The world's layer 0 checked on the random model: the keys' overall size is about what C
  // predicts (the ratio alone would pass it), but the units are other units.
  const fit = await measureStatsFit(random, own0, { corpus: path.join(worldDir, 'corpus-train.txt') });
  assert.ok(fit.ratio! >= FIT_RATIO_RANGE[0] && fit.ratio! <= FIT_RATIO_RANGE[1], `ratio ${fit.ratio}`);
  const message = await refused(npzFor('world-into-random', own0, 0), { model: random, fitCorpus: path.join(worldDir, 'corpus-train.txt') });
  assert.match(message, /the unit correlation -?0\.[0-2]\d* is below 0\.3 \(the mean kᵀC⁻¹k\/d [\d.]+ is within 0\.25–25; measured on 1024 keys/);
  // A model without a corpus of its own beside it is checked on the built-in page, named so.
  assert.equal((await measureStatsFit(random, own0)).corpus, "Amend's built-in English page (16 texts)");
});

test('fit: a scaled C is refused; force imports it, recording that it does not fit', async () => {
  const message = await refused(npzFor('times100', scaled(own0, 100), 0));
  assert.match(message, /this model — the mean kᵀC⁻¹k\/d 0\.0\d+ is outside 0\.25–25 \(the unit correlation [\d.]+ is at least 0\.3; measured on/, 'only the ratio is out: a scaled C keeps its units\' ranks');
  await refused(npzFor('over100', scaled(own0, 0.01), 0));
  const cacheDir = path.join(tmp, 'cache-forced');
  const forced = await importStatsToCache(npzFor('times100-forced', scaled(own0, 100), 0), { model: world, cacheDir, force: true });
  assert.ok(forced.fit.ratio! < FIT_RATIO_RANGE[0]);
  assert.equal(cachedFiles(cacheDir).length, 1);
  assert.match(readStatsFile(forced.file!).metadata.fit!, /^does not fit \(imported with force\): mean kᵀC⁻¹k\/d 0\.0/);
});

test('fit: a C from fewer keys than dimensions is imported with the check skipped, and a warning says why', async () => {
  const [few] = await layerSecondMoments(world, [0], { corpus: heldout, samples: 20, noCache: true });
  assert.ok(few!.count < few!.dim);
  const cacheDir = path.join(tmp, 'cache-few');
  let sm: Awaited<ReturnType<typeof importStatsToCache>> | null = null;
  const warnings = await warningsOf(async () => { sm = await importStatsToCache(npzFor('few', few!, 0), { model: world, cacheDir }); });
  assert.equal(sm!.fit.ratio, null);
  assert.match(sm!.fit.skipped!, new RegExp(`the statistics hold ${few!.count} keys for 768 dimensions, so C is singular`));
  assert.ok(warnings.some((w) => /was not checked: the statistics hold \d+ keys for 768 dimensions/.test(w)), warnings.join('\n'));
  assert.match(readStatsFile(sm!.file!).metadata.fit!, /^not checked: /);
});

test('amend stats --import: a misfit is one line and exit 1 with nothing cached; --force imports it with a warning', () => {
  const cache = path.join(tmp, 'cli-cache');
  const file = npzFor('cli-layer1-as-0', own1, 0);
  const r = runCli(['stats', '--model', 'world', '--import', file], cache);
  assertOneLineError(r, /these statistics do not fit layer 0 of this model .* if you know they belong to this model, import them anyway: amend stats --model \S+world --import \S+ --force$/);
  assert.deepEqual(cachedFiles(cache), []);
  const forced = runCli(['stats', '--model', 'world', '--import', file, '--force', '--json'], cache);
  assert.equal(forced.code, 0, forced.stderr);
  const out = JSON.parse(forced.stdout).imported;
  assert.equal(out.fit.fits, false);
  assert.ok(out.fit.ratio > 0 && out.fit.tokens === 1024);
  assert.match(forced.stderr, /imported with --force although it does not fit layer 0/);
  assert.equal(cachedFiles(cache).length, 1);
  const ok = runCli(['stats', '--model', 'world', '--import', npzFor('cli-own', own1, 1)], cache);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^fit to this model: mean kᵀC⁻¹k\/d [\d.]+ \(accepted 0\.25–25\), unit correlation 0\.\d+/m);
  // --list: by layer, the forced import marked
  const list = runCli(['stats', '--model', 'world', '--list'], cache);
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => /^layer (\d+):/.exec(l)?.[1]), ['0', '1'], list.stdout);
  assert.match(lines[0]!, /\(does not fit this model: imported with --force\)/);
  assert.ok(!lines[1]!.includes('does not fit'), lines[1]);
  assert.match(JSON.parse(runCli(['stats', '--model', 'world', '--list', '--json'], cache).stdout).stats[0].fit, /^does not fit \(imported with force\)/);
  assertOneLineError(runCli(['stats', '--model', 'world', '--layers', '0', '--force'], cache), /--force only applies to --import/);
  // --dataset names an import; with --layers or --list it was silently ignored
  assertOneLineError(runCli(['stats', '--model', 'world', '--layers', '0', '--dataset', 'foo'], cache), /--dataset only applies to --import .*give their name with --corpus NAME/);
  assertOneLineError(runCli(['stats', '--model', 'world', '--list', '--dataset', 'foo'], cache), /--dataset only applies to --import/);
  // options of the computation are refused by the modes that do not compute
  assertOneLineError(runCli(['stats', '--model', 'world', '--list', '--corpus', 'nowhere.txt'], cache), /--corpus does nothing with --list; it applies when computing \(--layers\)/);
  assertOneLineError(runCli(['stats', '--model', 'world', '--list', '--refresh'], cache), /--refresh does nothing with --list/);
  assertOneLineError(runCli(['stats', '--model', 'world', '--import', 'x.npz', '--samples', '7'], cache), /--samples does nothing with --import/);
});

test('fit: a model with patches applied is checked on its unedited weights, and keeps its patches', async () => {
  const { EditPatch, denseDelta, editSession, fitsModel } = { ...(await import('../src/patch/index.js')), ...(await import('../src/stats/index.js')) };
  const model = await CausalLM.load(worldDir);
  // A patch that shifts half of layer 0's MLP units far up: its keys no longer look like C's.
  const b = model.spec.layers[0]!.up.b!;
  const shift = new Float32Array(model.weight(b).size).map((_, i) => (i % 2 === 0 ? 8 : 0));
  const patch = EditPatch.create(model, [denseDelta(b, model.weight(b).shape, shift)], { method: 'test', requests: [] });
  editSession(model).apply(patch);
  const onEdited = await measureStatsFit(model, own0);
  assert.ok(!fitsModel(onEdited), `test setup: the edited model's own keys do not fit (ratio ${onEdited.ratio}, unit correlation ${onEdited.unitCorrelation})`);
  const sm = await importStatsToCache(npzFor('own-patched', own0, 0), { model, cacheDir: path.join(tmp, 'cache-patched'), fingerprint: editSession(model).baseFingerprint });
  assert.ok(fitsModel(sm.fit), `checked on the unedited weights: ratio ${sm.fit.ratio}, unit correlation ${sm.fit.unitCorrelation}`);
  assert.deepEqual(editSession(model).applied().map((p) => p.id), [patch.id], 'the patch is back on');
  const again = await measureStatsFit(model, own0);
  assert.deepEqual([again.ratio, again.unitCorrelation], [onEdited.ratio, onEdited.unitCorrelation], 'the same edited weights, bit for bit');
});
