// The fit check of imported statistics (src/stats/fit.ts): the mean kᵀ C⁻¹ k / d of a model's own
// keys against statistics that are its own (other texts), another layer's, another model's of the
// same shape, or scaled; and the check's cost at GPT-2 small's width (d = 3072). Results in
// bench/RESULTS.md, "Imported statistics: the fit check".
//
//   node dist/bench/stats-fit.js [--part world|tiny|stories|gpt2small|cost|all]
//
// world: the demo world model (d 768) and a random model of its shape with its tokenizer;
// tiny: ../shared/models/tiny-random-gpt2 (d 128) and a random model of its shape (another seed);
// stories: ../shared/models/stories260K (a real model, d 172), own statistics from its samples and
// from unrelated English (this repository's README); gpt2small: a GPT-2-small-shaped random model;
// cost: the check's time at d = 3072 beside the import's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM, builtinWorldDir } from '../src/models/model.js';
import { writeRandomCheckpoint } from '../src/models/random.js';
import { GramAccumulator, importStatsToCache, layerSecondMoments, type SecondMoment, type StatsOptions } from '../src/stats/index.js';
import { measureStatsFit, type FitOptions } from '../src/stats/fit.js';
import { importEasyEditStats } from '../src/stats/import.js';
import { mulberry32 } from '../src/tensor/index.js';
import { romeNpz } from '../test/npz-writer.js';
import { GPT2_SMALL, choiceFlag, ensureGpt2Checkpoint, machineInfo, parseFlags, repoRoot, runBench } from './common.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-fit-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const shared = path.join(repoRoot(), '..', 'shared', 'models');

function copyTokenizer(from: string, to: string): void {
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (fs.existsSync(path.join(from, f))) fs.copyFileSync(path.join(from, f), path.join(to, f));
  }
}

const stats = (model: CausalLM, layers: number[], o: StatsOptions): Promise<SecondMoment[]> =>
  layerSecondMoments(model, layers, { noCache: true, ...o });

const scaled = (sm: SecondMoment, s: number): SecondMoment => ({ ...sm, mom2: sm.mom2.map((v) => v * s) });

async function row(what: string, model: CausalLM, sm: SecondMoment, layer: number, opts: FitOptions = {}): Promise<void> {
  const fit = await measureStatsFit(model, { ...sm, layer }, opts);
  const r = fit.ratio === null ? `skipped: ${fit.skipped}` : fit.ratio.toPrecision(3);
  const c = fit.unitCorrelation === null ? '' : fit.unitCorrelation.toFixed(3);
  console.log(`| ${what} | ${layer} | ${sm.count} | ${fit.tokens} | ${r} | ${c} | ${fit.seconds.toFixed(2)} |`);
}

const HEAD = '| statistics | layer checked | keys in C | check keys | mean kᵀC⁻¹k / d | unit correlation | s |\n| --- | --- | --- | --- | --- | --- | --- |';

async function world(): Promise<void> {
  const dir = builtinWorldDir();
  const model = await CausalLM.load(dir);
  const L = model.config.layers, layers = [...Array(L).keys()];
  const train = path.join(dir, 'corpus-train.txt'), held = path.join(dir, 'corpus-heldout.txt');
  console.log(`\nworld (d ${model.config.ffn}), check text: ${train} (default)\n${HEAD}`);
  const onHeld = await stats(model, layers, { corpus: held });
  const onTrain = await stats(model, layers, { corpus: train, samples: 4000 });
  const onSamples = await stats(model, layers, { corpus: 'model-samples', samples: 300, maxLength: 64 });
  const rdir = writeRandomCheckpoint(path.join(tmp, 'world-random'), JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), 5);
  copyTokenizer(dir, rdir);
  const random = await CausalLM.load(rdir);
  const onRandom = await stats(random, layers, { corpus: train, samples: 4000 });
  for (const l of layers) {
    await row('own, held-out phrasings', model, onHeld[l]!, l);
    await row('own, 4000 training lines', model, onTrain[l]!, l);
    await row('own, 300 model samples', model, onSamples[l]!, l);
    await row('own, held-out phrasings; check on model samples', model, onHeld[l]!, l, { corpus: 'model-samples' });
    await row('own, held-out phrasings; check on README.md', model, onHeld[l]!, l, { corpus: path.join(repoRoot(), 'README.md') });
  }
  for (const l of layers) for (const j of layers) if (j !== l) await row(`layer ${j}'s (held-out phrasings)`, model, onHeld[j]!, l);
  for (const l of layers) {
    await row('random model of the same shape', model, onRandom[l]!, l);
    await row('world\'s, checked on the random model', random, onHeld[l]!, l, { corpus: train });
    await row('own × 100', model, scaled(onHeld[l]!, 100), l);
    await row('own / 100', model, scaled(onHeld[l]!, 0.01), l);
  }
  // fewer keys: how the out-of-sample mean grows as C is estimated from fewer of them
  for (const n of [300, 100, 60]) {
    const [few] = await stats(model, [1], { corpus: held, samples: n });
    await row(`own, ${n} held-out lines`, model, few!, 1);
  }
}

async function tiny(): Promise<void> {
  const dir = path.join(shared, 'tiny-random-gpt2');
  if (!fs.existsSync(dir)) { console.log('tiny: ../shared/models/tiny-random-gpt2 is absent'); return; }
  const model = await CausalLM.load(dir);
  const L = model.config.layers, layers = [...Array(L).keys()];
  console.log(`\ntiny-random-gpt2 (d ${model.config.ffn}), check text: the built-in text (default)\n${HEAD}`);
  const own = await stats(model, layers, { corpus: 'model-samples', samples: 100, maxLength: 64 });
  const readme = await stats(model, layers, { corpus: path.join(repoRoot(), 'README.md') });
  const other = path.join(tmp, 'tiny-other');
  writeRandomCheckpoint(other, JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), 99);
  copyTokenizer(dir, other);
  const otherModel = await CausalLM.load(other);
  const otherStats = await stats(otherModel, layers, { corpus: 'model-samples', samples: 100, maxLength: 64 });
  for (const l of layers) {
    await row('own, 100 model samples (seed 1)', model, own[l]!, l);
    await row('own, README.md lines', model, readme[l]!, l);
    for (const j of layers) if (j !== l) await row(`layer ${j}'s`, model, own[j]!, l);
    await row('random model of the same config, seed 99', model, otherStats[l]!, l);
    await row('own × 100', model, scaled(own[l]!, 100), l);
    await row('own / 100', model, scaled(own[l]!, 0.01), l);
  }
}

async function stories(): Promise<void> {
  const dir = path.join(shared, 'stories260K');
  if (!fs.existsSync(dir)) { console.log('stories: ../shared/models/stories260K is absent'); return; }
  const model = await CausalLM.load(dir);
  const L = model.config.layers, layers = [...Array(L).keys()];
  console.log(`\nstories260K (d ${model.config.ffn}), check text: the built-in text (default)\n${HEAD}`);
  const own = await stats(model, layers, { corpus: 'model-samples', samples: 200, maxLength: 128 });
  const readme = await stats(model, layers, { corpus: path.join(repoRoot(), 'README.md') });
  for (const l of layers) {
    await row('own, 200 model samples (seed 1)', model, own[l]!, l);
    await row('own, README.md (technical English)', model, readme[l]!, l);
    await row('own, 200 model samples (seed 1); check on model samples (seed 7)', model, own[l]!, l, { corpus: 'model-samples' });
    for (const j of layers) if (j !== l) await row(`layer ${j}'s`, model, own[j]!, l);
    await row('own × 100', model, scaled(own[l]!, 100), l);
    await row('own / 100', model, scaled(own[l]!, 0.01), l);
  }
}

async function gpt2small(): Promise<void> {
  const dir = ensureGpt2Checkpoint(GPT2_SMALL, undefined, (m) => console.error(m));
  const tok = path.join(shared, 'gpt2-tokenizer');
  if (fs.existsSync(tok)) copyTokenizer(tok, dir);
  const model = await CausalLM.load(dir);
  const layer = 5, d = model.config.ffn;
  console.log(`\nGPT-2-small-shaped random model (d ${d}), layer ${layer}\n${HEAD}`);
  // the statistics: seeded random token sequences, 12 × d keys
  const rand = mulberry32(3);
  const ids = Array.from({ length: 36 }, () => Array.from({ length: 1024 }, () => Math.floor(rand() * 50257)));
  let t0 = performance.now();
  const [own] = await stats(model, [layer], { corpus: { kind: 'ids', ids } });
  console.error(`statistics over ${own!.count} keys: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // the import it would be checked after: a ROME .npz of that C (float32 Σ k kᵀ)
  const npz = path.join(tmp, 'gpt2', 'wikipedia_stats', `transformer.h.${layer}.mlp.c_proj_float32_mom2_100000.npz`);
  romeNpz(npz, own!, 100000);
  t0 = performance.now();
  importEasyEditStats(npz, { model });
  console.error(`reading and checking the .npz (${(fs.statSync(npz).size / 2 ** 20).toFixed(0)} MiB): ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  await row('own (random token ids); check on the built-in text (default)', model, own!, layer);
  await row('own (random token ids); check on model samples', model, own!, layer, { corpus: 'model-samples' });
  const [other] = await stats(model, [layer + 1], { corpus: { kind: 'ids', ids: ids.slice(0, 12) } });
  await row(`layer ${layer + 1}'s`, model, other!, layer);
  await row('own × 100', model, scaled(own!, 100), layer);
}

/** The check's cost at GPT-2 small's width against the import around it (a synthetic C: the cost does not depend on its values). */
async function cost(): Promise<void> {
  const dir = ensureGpt2Checkpoint(GPT2_SMALL, undefined, (m) => console.error(m));
  const tok = path.join(shared, 'gpt2-tokenizer');
  if (fs.existsSync(tok)) copyTokenizer(tok, dir);
  const model = await CausalLM.load(dir);
  const d = model.config.ffn, N = 2 * d, layer = 5;
  const acc = new GramAccumulator(d);
  const rand = mulberry32(5);
  acc.add(Float32Array.from({ length: N * d }, () => rand() - 0.3), Int32Array.from({ length: N }, (_, i) => i));
  const sm: SecondMoment = { layer, dim: d, count: N, mom2: acc.finish(), corpus: 'synthetic', samples: 1, fingerprint: '' };
  const npz = path.join(tmp, 'cost', 'wikipedia_stats', `transformer.h.${layer}.mlp.c_proj_float32_mom2_100000.npz`);
  romeNpz(npz, sm, 100000);
  const secs = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(2);
  console.log(`\ncost at d ${d} (layer ${layer} of a GPT-2-small-shaped model), load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (let rep = 0; rep < 3; rep++) {
    let t0 = performance.now();
    importEasyEditStats(npz, { model });
    const read = secs(t0);
    t0 = performance.now();
    const fit = await measureStatsFit(model, sm);
    const check = secs(t0);
    t0 = performance.now();
    await importStatsToCache(npz, { model, cacheDir: path.join(tmp, `cost-cache-${rep}`), force: true });
    console.log(`read and checks of the .npz ${read} s; fit check ${check} s (${fit.tokens} keys of ${fit.corpus.slice(0, 20)}); whole importStatsToCache ${secs(t0)} s`);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [], ['part']);
  const part = choiceFlag(flags, 'part', ['world', 'tiny', 'stories', 'gpt2small', 'cost', 'all'] as const, 'all');
  const m = machineInfo();
  console.log(`${m.cpu}, ${m.cores} cores; ${new Date().toISOString()}`);
  if (part === 'world' || part === 'all') await world();
  if (part === 'tiny' || part === 'all') await tiny();
  if (part === 'stories' || part === 'all') await stories();
  if (part === 'gpt2small' || part === 'all') await gpt2small();
  if (part === 'cost' || part === 'all') await cost();
}

runBench(main);
