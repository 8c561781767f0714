// Layer statistics on a random tiny GPT-2: the second moment against an explicit float64 sum over
// captured activations (padding excluded), the corpus kinds, sampling, the cache and its keys, the
// one-pass multi-layer computation, model samples, and imports of ROME / EasyEdit .npz files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM, capture, gpt2Config, hookPoint, writeRandomCheckpoint } from '../src/models/index.js';
import { noGrad } from '../src/tensor/index.js';
import {
  chooseSubset, importEasyEditStats, importStatsToCache, layerSecondMoment, layerSecondMoments, loadStatsFile,
  packBatches, parseRomeStatsName, readStatsFile, type SecondMoment,
} from '../src/stats/index.js';
import { EditPatch, editSession } from '../src/patch/index.js';
import { secondMoments, withRidge } from '../src/editors/common/stats.js';
import type { EditHparams } from '../src/editors/hparams.js';
import { type CliResult, collectGarbage, repoRoot, runCli, sharedDir, warningsOf } from './helpers.js';
import { romeNpz } from './npz-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-stats-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args, path.join(tmp, 'cli-cache'));

const gpt2Tok = sharedDir('models/gpt2-tokenizer');
const NO_TOK = gpt2Tok ? false : '../shared/models/gpt2-tokenizer is absent';

/** A random 3-layer GPT-2 (d_ff 128) with the GPT-2 tokenizer when available. */
function tinyModel(name: string, seed: number, withTokenizer = true): string {
  const dir = writeRandomCheckpoint(path.join(tmp, name), gpt2Config({ vocab: 50257, layers: 3, hidden: 32, heads: 4, positions: 64 }), seed);
  if (withTokenizer && gpt2Tok) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      if (fs.existsSync(path.join(gpt2Tok, f))) fs.copyFileSync(path.join(gpt2Tok, f), path.join(dir, f));
    }
  }
  return dir;
}

const DOCS = [
  'The Eiffel Tower is in Paris.',
  'Danielle Darrieux was a French actress whose mother tongue was French, and she starred in many films over a career of eighty years.',
  'Hi.',
  'Toko Yasuda plays the guitar.',
  'The capital of Italy is Rome, and the river that runs through it is the Tiber; the city was founded, legend says, in 753 BC.',
  'Apple A5 was created by Apple.',
  'Autonomous University of Madrid is located in Spain.',
  'In the beginning the universe was created. This has made a lot of people very angry and been widely regarded as a bad move.',
  'x',
  'Kotaro Tsunoda is a citizen of Japan.',
  'The mother tongue of Thomas Joannes Stieltjes is Dutch.',
  'Billy Roche was born in Wexford, Ireland, and wrote plays for the Abbey Theatre as well as novels.',
];

/** Explicit float64 Σ k kᵀ / count, one unpadded forward per document. */
function reference(model: CausalLM, layer: number, docs: number[][]): { mom2: Float64Array; count: number } {
  const d = model.config.ffn;
  const sum = new Float64Array(d * d);
  let count = 0;
  for (const ids of docs) {
    const keys = capture(hookPoint.mlpKeys(layer));
    noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [keys.hook] }));
    const k = keys.value().data;
    for (let t = 0; t < ids.length; t++) {
      for (let i = 0; i < d; i++) {
        const ki = k[t * d + i];
        for (let j = 0; j < d; j++) sum[i * d + j] += ki * k[t * d + j];
      }
    }
    count += ids.length;
  }
  return { mom2: sum.map((v) => v / count), count };
}

function relErr(a: Float64Array, b: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

function assertSymmetric(sm: SecondMoment): void {
  const d = sm.dim;
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) assert.equal(sm.mom2[i * d + j], sm.mom2[j * d + i]);
}

test('packBatches follows ROME\'s length_collation (longest first, rows × width ≤ batchTokens)', () => {
  const seq = (n: number) => ({ ids: new Array<number>(n).fill(1), skip: 0 });
  const batches = packBatches([seq(3), seq(10), seq(0), seq(7), seq(10), seq(2)], 20);
  assert.deepEqual(batches.map((b) => b.map((s) => s.ids.length)), [[10, 10], [7, 3], [2]]);
  // a single sequence wider than the budget still gets its own batch
  assert.deepEqual(packBatches([seq(30), seq(5)], 20).map((b) => b.map((s) => s.ids.length)), [[30], [5]]);
});

test('mom2 equals an explicit float64 Σ k kᵀ / count over captured activations, padding excluded', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('ref', 1));
  const tok = model.tok();
  const maxLength = 16;
  // a long document takes the prefix-tokenization shortcut; it must cut exactly where the full text would
  const texts = [...DOCS, DOCS.join(' ').repeat(8)];
  const docs = texts.map((t) => tok.encode(t).slice(0, maxLength));
  // small batches: several per group, each right-padded to its longest document
  const sms = await layerSecondMoments(model, [0, 2], { corpus: { kind: 'texts', texts }, maxLength, batchTokens: 40, noCache: true });
  for (const sm of sms) {
    const ref = reference(model, sm.layer, docs);
    assert.equal(sm.count, ref.count, 'every real token, no padding');
    assert.equal(sm.samples, texts.length);
    assert.equal(sm.dim, model.config.ffn);
    const err = relErr(sm.mom2, ref.mom2);
    assert.ok(err < 1e-5, `layer ${sm.layer}: relative error ${err}`);
    assertSymmetric(sm);
  }
});

test('float32 GEMM chunks summed in float64 vs a float64 reference: accuracy', { skip: NO_TOK }, async (t) => {
  const model = CausalLM.loadDir(tinyModel('acc', 2));
  const tok = model.tok();
  const many = Array.from({ length: 40 }, (_, i) => DOCS[i % DOCS.length] + ' ' + DOCS[(i * 7) % DOCS.length]);
  const sm = await layerSecondMoment(model, 1, { corpus: { kind: 'texts', texts: many }, maxLength: 64, noCache: true });
  const ref = reference(model, 1, many.map((s) => tok.encode(s).slice(0, 64)));
  const err = relErr(sm.mom2, ref.mom2);
  t.diagnostic(`${sm.count} tokens, d=${sm.dim}: max |Δ| / max |C| = ${err.toExponential(2)}`);
  assert.ok(err < 1e-5, `relative error ${err}`);
});

test('file, JSONL, folder and in-memory corpora of the same documents give identical statistics', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('kinds', 3));
  const dir = path.join(tmp, 'corpus-dir');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.txt'), DOCS.slice(0, 6).join('\n') + '\n\n');
  fs.writeFileSync(path.join(dir, 'sub', 'b.jsonl'), DOCS.slice(6).map((text) => JSON.stringify({ text, id: 1 })).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, '.hidden.txt'), 'never read\n');
  fs.writeFileSync(path.join(dir, 'notes.csv'), 'never,read\n');
  const file = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(file, DOCS.join('\r\n') + '\r\n');
  const jsonl = path.join(tmp, 'corpus.jsonl');
  fs.writeFileSync(jsonl, DOCS.map((text) => JSON.stringify({ text })).join('\n'));
  const o = { maxLength: 24, batchTokens: 64, noCache: true };
  const mem = await layerSecondMoment(model, 1, { ...o, corpus: { kind: 'texts', texts: DOCS } });
  for (const corpus of [file, jsonl, dir]) {
    const sm = await layerSecondMoment(model, 1, { ...o, corpus });
    assert.equal(sm.count, mem.count, corpus);
    assert.equal(sm.samples, DOCS.length, corpus);
    assert.deepEqual(sm.mom2, mem.mom2, corpus);
  }
  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, '{"text": "fine"}\n{"body": "no text"}\n');
  await assert.rejects(layerSecondMoment(model, 1, { corpus: bad, noCache: true }), /bad\.jsonl:2: no string field "text"/);
  await assert.rejects(layerSecondMoment(model, 1, { corpus: path.join(tmp, 'nowhere.txt') }), /no such file or folder/);
  // A pipe (`--corpus <(...)`) or a device cannot be read twice (hash, then texts): refused up front.
  if (fs.existsSync('/dev/null')) {
    await assert.rejects(layerSecondMoment(model, 1, { corpus: '/dev/null', noCache: true }), /corpus \/dev\/null: not a regular file \(a pipe or a device\?\)/);
  }
});

test('a folder corpus follows symbolic links, once per real folder, and names a dangling one', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('links', 3));
  const o = { maxLength: 24, batchTokens: 64, noCache: true };
  const store = path.join(tmp, 'link-store');
  fs.mkdirSync(path.join(store, 'more'), { recursive: true });
  fs.writeFileSync(path.join(store, 'a.txt'), DOCS.slice(0, 6).join('\n') + '\n');
  fs.writeFileSync(path.join(store, 'more', 'b.txt'), DOCS.slice(6).join('\n') + '\n');
  const linked = path.join(tmp, 'corpus-links');
  fs.mkdirSync(linked);
  fs.symlinkSync(path.join(store, 'a.txt'), path.join(linked, 'a.txt'));
  fs.symlinkSync(path.join(store, 'more'), path.join(linked, 'more'));
  fs.symlinkSync(linked, path.join(store, 'more', 'loop'));
  const mem = await layerSecondMoment(model, 1, { ...o, corpus: { kind: 'texts', texts: DOCS } });
  const sm = await layerSecondMoment(model, 1, { ...o, corpus: linked });
  assert.equal(sm.samples, DOCS.length);
  assert.deepEqual(sm.mom2, mem.mom2);
  fs.symlinkSync(path.join(store, 'gone.txt'), path.join(linked, 'gone.txt'));
  await assert.rejects(layerSecondMoment(model, 1, { ...o, corpus: linked }), /gone\.txt: a link to nothing/);
});

test('samples: a fixed random subset of documents, the whole corpus when it is smaller', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('subset', 4));
  const tok = model.tok();
  const o = { corpus: { kind: 'texts' as const, texts: DOCS }, maxLength: 20, noCache: true };
  const sm = await layerSecondMoment(model, 0, { ...o, samples: 5 });
  const chosen = chooseSubset(DOCS.length, 5, 1)!;
  const docs = DOCS.filter((_, i) => chosen[i] === 1).map((s) => tok.encode(s).slice(0, 20));
  assert.equal(docs.length, 5);
  const ref = reference(model, 0, docs);
  assert.equal(sm.samples, 5);
  assert.equal(sm.requestedSamples, 5);
  assert.equal(sm.count, ref.count);
  assert.ok(relErr(sm.mom2, ref.mom2) < 1e-5);
  const again = await layerSecondMoment(model, 0, { ...o, samples: 5 });
  assert.deepEqual(again.mom2, sm.mom2, 'the subset is fixed');
  const all = await layerSecondMoment(model, 0, { ...o, samples: 1000 });
  assert.equal(all.samples, DOCS.length);
});

test('several layers in one pass equal single-layer passes', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('multi', 5));
  const o = { corpus: { kind: 'texts' as const, texts: DOCS }, maxLength: 32, batchTokens: 50, noCache: true };
  const multi = await layerSecondMoments(model, [2, 0, 1], o);
  assert.deepEqual(multi.map((s) => s.layer), [2, 0, 1], 'in the order asked');
  for (const sm of multi) {
    const single = await layerSecondMoment(model, sm.layer, o);
    assert.equal(single.count, sm.count);
    assert.deepEqual(single.mom2, sm.mom2, `layer ${sm.layer}`);
  }
  await assert.rejects(layerSecondMoments(model, [3], o), /layer 3 is out of range/);
  // A misspelt option (JavaScript has no type check) is refused, not left to its default.
  await assert.rejects(layerSecondMoments(model, [0], { ...o, sample: 5 } as never), /^AmendError: layerSecondMoments: unknown option "sample" \(did you mean "samples"\?\)/);
  await assert.rejects(layerSecondMoment(model, 0, { ...o, cachedir: '/tmp/x' } as never), /unknown option "cachedir" \(did you mean "cacheDir"\?\)/);
});

test('cache: a hit returns identical data; another layer, sample count, length or corpus is a miss', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('cache', 6));
  const cacheDir = path.join(tmp, 'cache');
  const corpus = path.join(tmp, 'cache-corpus.txt');
  fs.writeFileSync(corpus, DOCS.join('\n'));
  const o = { corpus, samples: 8, maxLength: 16, cacheDir };
  const first = await layerSecondMoment(model, 1, o);
  assert.equal(first.source, 'computed');
  assert.ok(first.file && fs.existsSync(first.file) && first.file.startsWith(path.join(cacheDir, 'stats')));
  const hit = await layerSecondMoment(model, 1, o);
  assert.equal(hit.source, 'cache');
  assert.equal(hit.file, first.file);
  assert.deepEqual(hit.mom2, first.mom2);
  assert.equal(hit.count, first.count);
  assert.equal(hit.fingerprint, first.fingerprint);
  const { metadata } = readStatsFile(first.file!);
  assert.equal(metadata.layer, '1');
  assert.equal(metadata.requested_samples, '8');
  assert.equal(metadata.max_length, '16');
  assert.equal(metadata.seed, '1', 'the subset draw of a text corpus');
  assert.equal(metadata.count, String(first.count));
  assert.match(metadata.amend_version, /^\d+\.\d+\.\d+/);
  for (const [what, opts, layer] of [
    ['layer', o, 2], ['samples', { ...o, samples: 9 }, 1], ['maxLength', { ...o, maxLength: 15 }, 1],
    ['corpus', { ...o, corpus: { kind: 'texts' as const, texts: DOCS } }, 1],
  ] as const) {
    const sm = await layerSecondMoment(model, layer, opts);
    assert.equal(sm.source, 'computed', what);
    assert.notEqual(sm.file, first.file, what);
  }
  // a changed corpus file (size / mtime) is a miss
  fs.appendFileSync(corpus, '\nOne more line.');
  assert.equal((await layerSecondMoment(model, 1, o)).source, 'computed');
  assert.equal((await layerSecondMoment(model, 1, o)).source, 'cache');
  // another model is a miss, and its file loaded explicitly is refused in one line
  const other = CausalLM.loadDir(tinyModel('cache-other', 7));
  assert.equal((await layerSecondMoment(other, 1, o)).source, 'computed');
  assert.throws(() => loadStatsFile(first.file!, { model: other }), (e: unknown) => e instanceof AmendError && /computed for another model/.test(e.message) && !e.message.includes('\n'));
  assert.equal(loadStatsFile(first.file!, { model, layer: 1 }).count, first.count);
  assert.throws(() => loadStatsFile(first.file!, { model, layer: 2 }), /for layer 1, not layer 2/);
  // refresh recomputes; noCache neither reads nor writes
  assert.equal((await layerSecondMoment(model, 1, { ...o, refresh: true })).source, 'computed');
  const before = fs.readdirSync(path.dirname(first.file!)).length;
  const nc = await layerSecondMoment(model, 0, { ...o, noCache: true });
  assert.equal(nc.source, 'computed');
  assert.equal(nc.file, undefined);
  assert.equal(fs.readdirSync(path.dirname(first.file!)).length, before);
  // a corrupt cache file is recomputed and replaced
  const current = (await layerSecondMoment(model, 1, o)).file!;
  fs.writeFileSync(current, 'garbage');
  const fixed = await layerSecondMoment(model, 1, o);
  assert.equal(fixed.source, 'computed');
  assert.equal((await layerSecondMoment(model, 1, o)).source, 'cache');
});

test('cache: a lookup removes the temporary copies killed writers left (any layer\'s), not a live writer\'s nor a fresh one', async () => {
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'temps'), gpt2Config({ layers: 2 }), 10));
  const o = { corpus: { kind: 'ids' as const, ids: [[5, 6, 7, 8], [9, 10, 11]] }, cacheDir: path.join(tmp, 'temps-cache') };
  const file = (await layerSecondMoment(model, 0, o)).file!;
  const dir = path.dirname(file);
  // a pid that is surely gone: a child that has exited
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const old = new Date(Date.now() - 20 * 60_000);
  const plant = (name: string, when: Date | null): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, 'partial');
    if (when) fs.utimesSync(f, when, when);
    return f;
  };
  const killed = plant(`.layer0.mom2.n10000.t0.safetensors.${dead}.abc123.tmp`, old);
  const killedOther = plant(`.layer1.mom2.n20.t32.safetensors.${dead}.def456.tmp`, old);
  const live = plant(`.layer1.mom2.n20.t32.safetensors.${process.pid}.ghi789.tmp`, old);
  const fresh = plant(`.layer0.mom2.n10000.t0.safetensors.${dead}.jkl012.tmp`, null);
  const foreign = plant(`.notes.${dead}.mno345.tmp`, old);
  // a cache hit (nothing is written) still cleans up
  assert.equal((await layerSecondMoment(model, 0, o)).source, 'cache');
  assert.equal(fs.existsSync(killed), false);
  assert.equal(fs.existsSync(killedOther), false);
  assert.ok(fs.existsSync(live), 'a live process\'s temporary file is kept');
  assert.ok(fs.existsSync(fresh), 'a recently touched one is kept (another container\'s writer looks gone from here)');
  assert.ok(fs.existsSync(foreign), 'files the cache did not write are kept');
});

test('statistics that could not be cached are computed once per process, not at every request', { skip: NO_TOK }, async () => {
  const model = CausalLM.loadDir(tinyModel('uncached', 7));
  const file = path.join(tmp, 'a-file-not-a-folder');
  fs.writeFileSync(file, 'x');
  const corpus = path.join(tmp, 'uncached-corpus.txt');
  fs.writeFileSync(corpus, DOCS.join('\n'));
  let progress = 0;
  const o = { corpus, samples: 8, maxLength: 16, cacheDir: path.join(file, 'cache'), onProgress: () => { progress++; } };
  const warnings = await warningsOf(async () => {
    const first = await layerSecondMoment(model, 1, o);
    const seen = progress;
    assert.ok(seen > 0, 'the first request computes');
    const again = await layerSecondMoment(model, 1, o);
    assert.equal(progress, seen, 'the second request does not compute again');
    assert.equal(again, first);
  });
  assert.equal(warnings.length, 1, 'one "not cached" warning, from the one computation');
});

test('statistics that could not be cached go with their model, not stay for the life of the process', { skip: NO_TOK }, async () => {
  const file = path.join(tmp, 'another-file-not-a-folder');
  fs.writeFileSync(file, 'x');
  const corpus = path.join(tmp, 'uncached-corpus-2.txt');
  fs.writeFileSync(corpus, DOCS.join('\n'));
  const o = { corpus, samples: 8, maxLength: 16, cacheDir: path.join(file, 'cache') };
  // The model and its statistics live only inside this function.
  const computeAndDrop = async () => {
    const model = CausalLM.loadDir(tinyModel('uncached-dropped', 11));
    const sm = await layerSecondMoment(model, 1, o);
    assert.equal(await layerSecondMoment(model, 1, o), sm, 'kept for the model while it lives');
    return { model: new WeakRef(model), mom2: new WeakRef(sm.mom2) };
  };
  let refs: { model: WeakRef<object>; mom2: WeakRef<object> } | undefined;
  await warningsOf(async () => { refs = await computeAndDrop(); });
  await collectGarbage();
  assert.equal(refs!.model.deref(), undefined, 'the model itself is collected');
  assert.equal(refs!.mom2.deref(), undefined, 'its uncached second moment is collected with it');
});

test('default corpus: corpus-train.txt in the model folder (the demo world)', { skip: NO_TOK }, async () => {
  const dir = tinyModel('worldlike', 8);
  fs.writeFileSync(path.join(dir, 'corpus-train.txt'), DOCS.join('\n') + '\n');
  const model = CausalLM.loadDir(dir);
  const sm = await layerSecondMoment(model, 0, { cacheDir: path.join(tmp, 'cache-w'), maxLength: 16 });
  // A small corpus file is known by its content: a copy elsewhere (another install) hits the cache.
  assert.match(sm.corpus, /^file:sha256:[0-9a-f]{64}$/);
  assert.equal(sm.samples, DOCS.length);
  assert.equal(sm.requestedSamples, 100000);
  const copy = path.join(tmp, 'worldlike-copy');
  fs.cpSync(dir, copy, { recursive: true });
  const again = await layerSecondMoment(CausalLM.loadDir(copy), 0, { cacheDir: path.join(tmp, 'cache-w'), maxLength: 16 });
  assert.equal(again.source, 'cache');
  assert.deepEqual(again.mom2, sm.mom2);
});

test('model samples and token-id corpora work without a tokenizer; text needs one', async () => {
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'notok'), gpt2Config({ layers: 2 }), 9));
  const ids = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14, 15, 16, 17]];
  const sm = await layerSecondMoment(model, 1, { corpus: { kind: 'ids', ids }, noCache: true, batchTokens: 8 });
  const ref = reference(model, 1, ids);
  assert.equal(sm.count, 13);
  assert.ok(relErr(sm.mom2, ref.mom2) < 1e-5);
  await assert.rejects(layerSecondMoment(model, 1, { corpus: { kind: 'texts', texts: ['hello'] }, noCache: true }), /no tokenizer\.json/);
  let calls = 0;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const a = await layerSecondMoment(model, 0, { samples: 20, maxLength: 12, noCache: true, onProgress: () => { calls++; } });
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  process.off('warning', onWarning);
  // The default corpus, when it is the model's own text, is named: it is slow and nobody chose it.
  assert.equal(warnings.filter((w) => /no corpus given .*layer 0 come from 20 texts the model writes itself, 12 tokens each \(240 tokens to generate, minutes on a large vocabulary; cached afterwards\)/.test(w)).length, 1, warnings.join('\n'));
  assert.equal(a.corpus, 'model-samples:v2:seed=1:temperature=1');
  assert.equal(a.samples, 20);
  assert.ok(a.count > 0 && a.count <= 20 * 11, `start token not counted: ${a.count}`);
  assert.ok(calls >= 2);
  const b = await layerSecondMoment(model, 0, { samples: 20, maxLength: 12, noCache: true });
  assert.deepEqual(b.mom2, a.mom2, 'model samples are seeded');
  const c = await layerSecondMoment(model, 0, { samples: 20, maxLength: 12, noCache: true, corpus: { kind: 'model-samples', seed: 2 } });
  assert.notDeepEqual(c.mom2, a.mom2);
  // The cached file's header names the seed the samples were drawn with, not the subset draw's 1.
  const cached = await layerSecondMoment(model, 0, { samples: 4, maxLength: 6, cacheDir: path.join(tmp, 'seeded-cache'), corpus: { kind: 'model-samples', seed: 7 } });
  assert.equal(readStatsFile(cached.file!).metadata.seed, '7');
});

test('an edited model gets the statistics of its unedited base (cached or computed on the base weights), weights untouched', async () => {
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'edited'), gpt2Config({ layers: 2 }), 11));
  const ids = [[5, 6, 7, 8], [9, 10, 3, 4, 2], [11, 12, 13, 14, 15, 16, 17]];
  const corpus = { kind: 'ids' as const, ids };
  const base = await layerSecondMoment(model, 1, { corpus, noCache: true });
  const name = [...model.weights.keys()].find((n) => /h\.0\.mlp\.c_fc\.weight$/.test(n))!;
  const w = model.weights.get(name)!;
  const delta = new Float32Array(w.data.length).map((_, i) => 0.05 * Math.sin(i));
  const patch = EditPatch.create(model, [{ kind: 'dense', name, shape: [...w.shape], delta }], { method: 'test' });
  const session = editSession(model);
  session.apply(patch);
  const edited = w.data.slice();
  const onEdited = reference(model, 1, ids);
  assert.ok(relErr(onEdited.mom2, base.mom2) > 1e-3, 'the patch changes the layer-1 keys');
  const got = await layerSecondMoment(model, 1, { corpus, noCache: true });
  assert.ok(relErr(got.mom2, base.mom2) < 1e-6, 'computed on the base weights');
  assert.equal(got.fingerprint, base.fingerprint);
  assert.deepEqual(model.weights.get(name)!.data, edited, 'the patch is back in place, bit for bit');
  // With a cache: what the base model wrote is what the edited model reads.
  const cacheDir = path.join(tmp, 'edited-cache');
  session.revert(patch);
  const first = await layerSecondMoment(model, 1, { corpus, cacheDir });
  session.apply(patch);
  const hit = await layerSecondMoment(model, 1, { corpus, cacheDir });
  assert.equal(hit.source, 'cache');
  assert.deepEqual(hit.mom2, first.mom2);
  session.revert(patch);
});

test('mom2_ridge: C + r·tr(C)/d·I, the same object for r = 0, cached per ridge', () => {
  const d = 3;
  const mom2 = Float64Array.from([4, 1, 0, 1, 2, 0, 0, 0, 1e-10]);
  const sm: SecondMoment = { layer: 0, dim: d, count: 10, mom2, corpus: 'x', samples: 1, fingerprint: '', requestedSamples: 1, maxLength: 8, source: 'computed' } as SecondMoment;
  assert.equal(withRidge(sm, 0), sm);
  const r = withRidge(sm, 0.3);
  const add = 0.3 * (4 + 2 + 1e-10) / 3;
  assert.deepEqual(Array.from(r.mom2), [4 + add, 1, 0, 1, 2 + add, 0, 0, 0, 1e-10 + add]);
  assert.deepEqual(Array.from(sm.mom2), [4, 1, 0, 1, 2, 0, 0, 0, 1e-10], 'the statistics themselves are untouched');
  assert.equal(withRidge(sm, 0.3), r);
});

// ------------------------------------------------------------------------------------------------
// imports of ROME / EasyEdit statistics

test('ROME / EasyEdit file names are understood', () => {
  const p = parseRomeStatsName('data/stats/gpt2-xl/wikipedia_stats/transformer.h.17.mlp.c_proj_float32_mom2_100000.npz');
  assert.deepEqual(p, { layerName: 'transformer.h.17.mlp.c_proj', precision: 'float32', stats: ['mom2'], samples: 100000, layer: 17, dataset: 'wikipedia', modelName: 'gpt2-xl' });
  assert.equal(parseRomeStatsName('x/llama-7b/wikitext_stats/model.layers.5.mlp.down_proj_float64_mean-mom2_t{batch_tokens}_2000.npz').layer, 5);
  assert.equal(parseRomeStatsName('gpt_neox.layers.3.mlp.dense_4h_to_h_float32_mom2.npz').samples, undefined);
});

test('import: a ROME .npz yields the same matrix, and serves --corpus NAME from the cache', async () => {
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'imp'), gpt2Config({ layers: 3 }), 10));
  const ids = Array.from({ length: 12 }, (_, i) => Array.from({ length: 5 + i }, (_, t) => (i * 13 + t * 7) % 100));
  const sm = await layerSecondMoment(model, 2, { corpus: { kind: 'ids', ids }, noCache: true });
  const file = path.join(tmp, 'stats', 'tiny', 'wikipedia_stats', 'transformer.h.2.mlp.c_proj_float32_mom2_12.npz');
  romeNpz(file, sm, 12);
  const imp = importEasyEditStats(file, { model });
  assert.equal(imp.layer, 2);
  assert.equal(imp.count, sm.count);
  assert.equal(imp.samples, 12);
  assert.equal(imp.corpus, 'imported:wikipedia');
  assert.equal(imp.fingerprint, sm.fingerprint);
  assert.ok(relErr(imp.mom2, sm.mom2) < 1e-6, 'float32 round trip of the sum');
  assertSymmetric(imp);
  assert.throws(() => importEasyEditStats(file, { model, layer: 1 }), /^[^\n]*file name says layer 2, but layer 1 was asked for; leave --layer out to import it as layer 2, or rename the file if it holds layer 1$/);
  const wide = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'imp-wide'), gpt2Config({ layers: 3, hidden: 64 }), 10));
  assert.throws(() => importEasyEditStats(file, { model: wide }), /128-wide, but this model's MLP keys are 256-wide/);
  assert.deepEqual(loadStatsFile(file, { model }).mom2, imp.mom2, 'loadStatsFile reads .npz too');
  // A NaN in the matrix is refused at import, not left for the edit to trip over.
  const nanFile = path.join(tmp, 'stats', 'tiny', 'broken_stats', 'transformer.h.2.mlp.c_proj_float32_mom2_12.npz');
  const broken = { ...sm, mom2: sm.mom2.slice() };
  broken.mom2[3 * sm.dim + 5] = Number.NaN;
  romeNpz(nanFile, broken, 12);
  assert.throws(() => importEasyEditStats(nanFile, { model }), /mom2\.mom2 holds NaN at \[3, 5\]; the statistics are broken/);
  // A negative diagonal cannot be a second moment; a dataset name --corpus would read as a path is refused.
  const negFile = path.join(tmp, 'stats', 'tiny', 'neg_stats', 'transformer.h.2.mlp.c_proj_float32_mom2_12.npz');
  const neg = { ...sm, mom2: sm.mom2.slice() };
  neg.mom2[4 * sm.dim + 4] = -1;
  romeNpz(negFile, neg, 12);
  assert.throws(() => importEasyEditStats(negFile, { model }), /mom2\[4\]\[4\] is -\d+.*not a statistics file/);
  // Nor can a matrix whose two halves disagree beyond rounding (it was averaged away before).
  const asymFile = path.join(tmp, 'stats', 'tiny', 'asym_stats', 'transformer.h.2.mlp.c_proj_float32_mom2_12.npz');
  const asym = { ...sm, mom2: sm.mom2.slice() };
  asym.mom2[2 * sm.dim + 7] += 0.01 * Math.sqrt(sm.mom2[2 * sm.dim + 2]! * sm.mom2[7 * sm.dim + 7]!);
  romeNpz(asymFile, asym, 12);
  assert.throws(() => importEasyEditStats(asymFile, { model }), /mom2\.mom2 is not symmetric \(\[2, 7\] is .*, \[7, 2\] is .*\).*not a statistics file/);
  assert.throws(() => importEasyEditStats(file, { model, dataset: 'wiki.json' }), /"wiki\.json" cannot name imported statistics.*--dataset NAME/);
  assert.throws(() => importEasyEditStats(file, { model, dataset: 'model-samples' }), /cannot name imported statistics/);

  const cacheDir = path.join(tmp, 'cache-imp');
  const cached = await importStatsToCache(file, { model, cacheDir });
  assert.ok(cached.file && fs.existsSync(cached.file));
  const back = await layerSecondMoment(model, 2, { corpus: 'wikipedia', samples: 12, cacheDir });
  assert.equal(back.source, 'cache');
  assert.deepEqual(back.mom2, imp.mom2);
  await assert.rejects(layerSecondMoment(model, 2, { corpus: 'wikipedia', samples: 99, cacheDir }), /no imported "wikipedia" statistics for layer 2 with 99 samples.*imported: layer 2 × 12 samples/);
  await assert.rejects(layerSecondMoment(model, 1, { corpus: 'wikipedia', samples: 12, cacheDir }), /amend stats --model M --import/);
  await assert.rejects(layerSecondMoment(model, 2, { corpus: 'wikipedia', samples: 12, cacheDir, refresh: true }), /"wikipedia" names imported statistics, which cannot be recomputed here; import the file again/);
  // Importing the same file again is fine; another file under the same key replaces it only when asked.
  await assert.doesNotReject(importStatsToCache(file, { model, cacheDir }));
  const other = path.join(tmp, 'stats', 'tiny2', 'wikipedia_stats', path.basename(file));
  fs.mkdirSync(path.dirname(other), { recursive: true });
  fs.copyFileSync(file, other);
  await assert.rejects(importStatsToCache(other, { model, cacheDir }), /layer 2 of "wikipedia" with 12 samples is already imported, from .*tiny[/\\]wikipedia_stats.*; pass --refresh \(replace: true\)/);
  assert.equal((await importStatsToCache(other, { model, cacheDir, replace: true })).layer, 2);

  // A file named for another architecture's module is refused at import.
  const llamaNamed = path.join(tmp, 'stats', 'tiny', 'other_stats', 'model.layers.2.mlp.down_proj_float32_mom2_12.npz');
  romeNpz(llamaNamed, sm, 12);
  assert.throws(() => importEasyEditStats(llamaNamed, { model }), /file name says model\.layers\.2\.mlp\.down_proj, but this model's MLP down projection at layer 2 is transformer\.h\.2\.mlp\.c_proj/);
});

test('import: an EasyEdit hparams stats_dir is searched for its .npz files, which then go into the cache', async () => {
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'sd-model'), gpt2Config({ layers: 3 }), 12));
  const ids = Array.from({ length: 12 }, (_, i) => Array.from({ length: 5 + i }, (_, t) => (i * 11 + t * 5) % 100));
  const sm = await layerSecondMoment(model, 1, { corpus: { kind: 'ids', ids }, noCache: true });
  // EasyEdit's layout: {stats_dir}/{model_name}/{ds}_stats/{layer_name}_float32_mom2_{n}.npz
  const statsDir = path.join(tmp, 'easyedit', 'data', 'stats');
  romeNpz(path.join(statsDir, 'gpt2-xl', 'wikipedia_stats', 'transformer.h.1.mlp.c_proj_float32_mom2_12.npz'), sm, 12);
  const cacheDir = path.join(tmp, 'cache-sd');
  const hp = { mom2_dataset: 'wikipedia', mom2_n_samples: 12, stats_dir: statsDir } as EditHparams;
  const [got] = await secondMoments(model, [1], hp, { options: { cacheDir } });
  assert.equal(got!.count, sm.count);
  assert.ok(relErr(got!.mom2, sm.mom2) < 1e-6);
  // now in the cache: found there without the folder
  const again = await layerSecondMoment(model, 1, { corpus: 'wikipedia', samples: 12, cacheDir });
  assert.equal(again.source, 'cache');
  // no file for layer 0: the error names where it looked
  await assert.rejects(secondMoments(model, [0], hp, { options: { cacheDir } }),
    (e: unknown) => e instanceof AmendError && e.message.includes(path.join(statsDir, '*', 'wikipedia_stats', 'transformer.h.0.mlp.c_proj_float32_mom2_12.npz')));
});

const PY = '/usr/bin/python3';
const hasNumpy = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('import: a file written by numpy.savez as ROME\'s tally writes it', { skip: hasNumpy ? false : 'python3 with numpy is not installed' }, () => {
  const file = path.join(tmp, 'py', 'gpt2', 'wikitext_stats', 'transformer.h.1.mlp.c_proj_float32_mom2_500.npz');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // ROME: CombinedStat(mom2=SecondMoment()).state_dict() plus args {"sample_size": 500}, numpy.savez
  const script = `
import numpy as np, sys
rng = np.random.RandomState(0)
a = rng.standard_normal((300, 128)).astype(np.float32)
np.savez(sys.argv[1], **{'mom2.constructor': np.array('util.runningstats.SecondMoment()'),
  'mom2.count': np.array(300), 'mom2.mom2': a.T @ a, 'sample_size': np.array(500)})
np.save(sys.argv[1] + '.ref.npy', (a.astype(np.float64).T @ a.astype(np.float64)) / 300)
`;
  const r = spawnSync(PY, ['-c', script, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const model = CausalLM.loadDir(writeRandomCheckpoint(path.join(tmp, 'py-model'), gpt2Config({ layers: 2 }), 11));
  const sm = importEasyEditStats(file, { model });
  assert.equal(sm.layer, 1);
  assert.equal(sm.count, 300);
  assert.equal(sm.samples, 500);
  assert.equal(sm.corpus, 'imported:wikitext');
  const refBytes = fs.readFileSync(file + '.ref.npy');
  const ref = new Float64Array(refBytes.buffer.slice(refBytes.byteOffset + refBytes.length - 128 * 128 * 8, refBytes.byteOffset + refBytes.length));
  assert.ok(relErr(sm.mom2, ref) < 1e-5);
});

// ------------------------------------------------------------------------------------------------
// the command

test('amend stats computes, caches, imports and lists', { skip: NO_TOK }, () => {
  const dir = tinyModel('cli', 12);
  const corpus = path.join(tmp, 'cli-corpus.txt');
  fs.writeFileSync(corpus, DOCS.join('\n'));
  const r = amend('stats', '--model', dir, '--layers', '0-1', '--corpus', corpus, '--samples', '6', '--max-length', '16', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.layers.map((l: { layer: number }) => l.layer), [0, 1]);
  assert.ok(out.layers.every((l: { source: string; samples: number; dim: number }) => l.source === 'computed' && l.samples === 6 && l.dim === 128));
  const again = JSON.parse(amend('stats', '--model', dir, '--layers', '1', '--corpus', corpus, '--samples', '6', '--max-length', '16', '--json').stdout);
  assert.equal(again.layers[0].source, 'cache');
  assert.equal(again.layers[0].count, out.layers[1].count);
  const list = JSON.parse(amend('stats', '--model', dir, '--list', '--json').stdout);
  assert.equal(list.stats.length, 2);
  assert.match(amend('stats', '--model', dir, '--list').stdout, /^layer 0: \d+ tokens, 6 samples × 16 tokens of \S*cli-corpus\.txt/m);
  const human = amend('stats', '--model', dir, '--layers', '1', '--corpus', corpus, '--samples', '6', '--max-length', '16');
  assert.equal(human.code, 0);
  assert.match(human.stdout, /layer 1: 128×128, \d+ tokens from 6 samples \(cached\)/);
  const help = amend('stats', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /examples:\n\s+amend stats --model/);
  const none = amend('stats', '--model', dir);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^amend: say what to do/);
  const bad = amend('stats', '--model', dir, '--layers', '7');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^amend: layer 7 is out of range/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);  // Bad input that once hung, crashed or was read wrongly.
  const oneLine = (r: CliResult, re: RegExp) => {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  oneLine(amend('stats', '--model', dir, '--layers', '99999999999999999999'), /beyond any model's layers/);
  oneLine(amend('stats', '--model', dir, '--layers', '0-99999999'), /beyond any model's layers/);
  const jsonCorpus = path.join(tmp, 'corpus.json');
  fs.writeFileSync(jsonCorpus, JSON.stringify(DOCS.map((text) => ({ text })), null, 2));
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--corpus', jsonCorpus), /a \.json file is not read as text; give JSON Lines/);
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--cache-dir', ''), /--cache-dir is empty/);
  // A cache folder that cannot be one is refused before any computing, not warned about after it.
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--corpus', corpus, '--cache-dir', corpus), /^amend: --cache-dir \S*cli-corpus\.txt cannot hold the statistics \(.*cli-corpus\.txt is a file\); give a folder\n/);
  oneLine(amend('stats', '--model', dir, '--list', '--cache-dir', path.join(corpus, 'sub')), /cannot hold the statistics/);
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--corpus', corpus, '--max-length', '65'), /longer than the model's 64 positions; give at most 64/);
  const binary = path.join(tmp, 'junk.npz');
  fs.writeFileSync(binary, Buffer.from([0x50, 0x4b, 3, 4, 0, 0, 0x41]));
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--corpus', binary), /junk\.npz: holds NUL bytes, so it is not text/);
  oneLine(amend('stats', '--model', dir, '--layers', '0', '--layer', '1'), /give --layers or --layer, not both/);
  oneLine(amend('stats', '--model', dir, '--list', '--layers', '1'), /give only one of --layers, --import and --list/);
  oneLine(amend('stats', '--model', dir, '--import', path.join(tmp, 'x.npz'), '--no-cache'), /--no-cache would leave nothing done/);
  // One corrupt cached file: named on stderr, the rest listed.
  const cached = JSON.parse(amend('stats', '--model', dir, '--list', '--json').stdout).stats as { file: string }[];
  fs.truncateSync(cached[0]!.file, 100);
  const listed = amend('stats', '--model', dir, '--list', '--json');
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout).stats.length, cached.length - 1);
  assert.match(listed.stderr, /^amend: warning: .*unreadable, recomputed when next needed/);
  // A warning like the others: NODE_NO_WARNINGS silences it.
  const quiet = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'stats', '--model', dir, '--list', '--json'], {
    encoding: 'utf8', env: { ...process.env, AMEND_CACHE: path.join(tmp, 'cli-cache'), NODE_NO_WARNINGS: '1' },
  });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  assert.equal(JSON.parse(quiet.stdout).stats.length, cached.length - 1);
});

test('amend stats --import files a ROME .npz under its dataset name', { skip: NO_TOK }, async () => {
  const dir = tinyModel('cli-imp', 13);
  const model = CausalLM.loadDir(dir);
  const sm = await layerSecondMoment(model, 2, { corpus: { kind: 'texts', texts: DOCS }, noCache: true });
  const file = path.join(tmp, 'cli-npz', 'm', 'wikipedia_stats', 'transformer.h.2.mlp.c_proj_float32_mom2_100000.npz');
  romeNpz(file, sm, 100000);
  const r = amend('stats', '--model', dir, '--import', file, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).imported.layer, 2);
  const use = JSON.parse(amend('stats', '--model', dir, '--layers', '2', '--corpus', 'wikipedia', '--json').stdout);
  assert.equal(use.layers[0].source, 'cache');
  // the list says where imported statistics came from, without a text length they do not record
  assert.match(amend('stats', '--model', dir, '--list').stdout, /^layer 2: \d+ tokens, 100000 samples imported from \S+_mom2_100000\.npz  \S+\.safetensors\n$/);
  assert.equal(use.layers[0].count, sm.count);
  const other = tinyModel('cli-imp-other', 14);
  const wrong = amend('stats', '--model', other, '--layers', '2', '--corpus', 'wikipedia');
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /no imported "wikipedia" statistics/);
});
