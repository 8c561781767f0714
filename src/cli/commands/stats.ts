// amend stats: compute (and cache) the second moment E[k kᵀ] of the MLP keys at some layers,
// import ROME / EasyEdit statistics, or list what the cache holds for a model.
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { modelFingerprint, shortFingerprint } from '../../models/fingerprint.js';
import {
  cacheRoot, cachedStatsFiles, describeFit, fitsModel, importStatsToCache, layerSecondMoments, readStatsFile, resolveStatsOptions, statsDir,
  type SecondMoment, type StatsOptions,
} from '../../stats/index.js';
import { intOption, strOption as str, type CommandSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';
import { checkCanBeFolder } from '../../io/dirs.js';
import { Progress } from '../progress.js';
import { exitOnSignal } from '../interrupt.js';

export const spec: CommandSpec = {
  name: 'stats',
  summary: 'compute and cache layer statistics E[k kᵀ] of MLP keys (ROME / MEMIT), or import them',
  usage: 'amend stats --model M --layers L[,L...] [--corpus PATH|NAME] [--samples N] [--max-length T] [--json]'
    + '  |  amend stats --model M --import FILE.npz [--layer L] [--force]  |  amend stats --model M --list',
  options: {
    model: { type: 'string', short: 'm', help: 'M  model directory, Hugging Face id, or "world"' },
    layers: { type: 'string', short: 'l', help: 'L,L,...  layers (e.g. 3,4,5 or 3-7); all of them in one pass over the corpus' },
    layer: { type: 'string', help: 'L  one layer (also the layer of an --import; default: from its file name)' },
    corpus: { type: 'string', short: 'c', help: 'PATH  a text file (one document per line), a folder, a .jsonl file ({"text": ...}), or the name of imported stats (default: corpus-train.txt in the model folder, else the model\'s own samples); with --import, the text the fit check reads keys from (default: corpus-train.txt, else built-in English)' },
    samples: { type: 'string', short: 'n', help: 'N  documents to use, a fixed random subset (ROME\'s mom2_n_samples; default 100000, 1000 for model samples)' },
    'max-length': { type: 'string', help: 'T  tokens per document (default: the model\'s positions, at most 4096; 128 for model samples)' },
    'batch-tokens': { type: 'string', help: 'N  tokens per forward batch (default max(T, 2048))' },
    'cache-dir': { type: 'string', help: 'DIR  cache root (default $AMEND_CACHE or ~/.cache/amend; stats go in DIR/stats)' },
    'no-cache': { type: 'boolean', help: 'neither read nor write the cache' },
    refresh: { type: 'boolean', help: 'recompute even when cached, and overwrite (with --import: replace statistics imported from another file)' },
    import: { type: 'string', help: 'FILE  import a ROME / EasyEdit {layer}_float32_mom2_{n}.npz into the cache' },
    dataset: { type: 'string', help: 'NAME  --import: the dataset name to file it under (default: from its {ds}_stats folder)' },
    force: { type: 'boolean', help: '--import: file the statistics even when the fit check finds they do not fit this model (another layer\'s or model\'s, or scaled)' },
    list: { type: 'boolean', help: 'list the statistics cached for this model' },
  },
  examples: [
    'amend stats --model world --layers 0,1',
    'amend stats --model gpt2 --layers 3-8 --corpus wiki.jsonl --samples 20000 --max-length 256',
    'amend stats --model gpt2-xl --import data/stats/gpt2-xl/wikipedia_stats/transformer.h.17.mlp.c_proj_float32_mom2_100000.npz',
    'amend stats --model gpt2-xl --layers 17 --corpus wikipedia --samples 100000 --json   # uses the import',
    'amend stats --model gpt2-xl --import FILE.npz --corpus wiki-sample.txt   # the fit check reads keys from this text',
    'amend stats --model world --list',
  ],
};

/** "3,4,5", "3-7", "2,5-6" → sorted unique layers. */
function parseLayers(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new AmendError(`--layers: "${part}" is not a layer number or a range like 3-7`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new AmendError(`--layers: the range ${part} runs backwards`);
    // No model has a million layers; checked here so a huge number cannot hang the loop below.
    if (b > 1e6) throw new AmendError(`--layers: ${part} is beyond any model's layers`);
    for (let l = a; l <= b; l++) out.add(l);
  }
  if (out.size === 0) throw new AmendError('--layers: give at least one layer, e.g. --layers 3,4,5');
  return [...out].sort((x, y) => x - y);
}

function summary(sm: SecondMoment): Record<string, unknown> {
  let trace = 0;
  for (let i = 0; i < sm.dim; i++) trace += sm.mom2[i * sm.dim + i];
  return {
    layer: sm.layer, dim: sm.dim, count: sm.count, samples: sm.samples, requestedSamples: sm.requestedSamples,
    maxLength: sm.maxLength, corpus: sm.corpus, source: sm.source, file: sm.file ?? null, trace,
  };
}

/** The option checks, in order: which mode, and no option the mode would ignore. Returns --cache-dir. */
function checkArgs(args: Parsed): string | undefined {
  const v = args.values;
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}" (see amend stats --help)`);
  const cacheDir = str(v['cache-dir']);
  if (cacheDir === '') throw new AmendError('--cache-dir is empty: give a folder (or leave it out for $AMEND_CACHE or ~/.cache/amend)');
  if (v.import !== undefined && v['no-cache'] === true) throw new AmendError('--import files the statistics into the cache; --no-cache would leave nothing done');
  if (v.layers !== undefined && v.layer !== undefined) throw new AmendError('give --layers or --layer, not both');
  if (v.force === true && v.import === undefined) throw new AmendError('--force only applies to --import (it files statistics that the fit check refuses)');
  // Imported statistics are used by their name as a corpus; --dataset only names them when filed.
  if (v.dataset !== undefined && v.import === undefined) throw new AmendError('--dataset only applies to --import (the name to file the statistics under); to use imported statistics, give their name with --corpus NAME');
  const modes = [v.import !== undefined, v.list === true, v.layers !== undefined || (v.layer !== undefined && v.import === undefined)];
  const given = modes.filter(Boolean).length;
  if (given > 1) throw new AmendError('give only one of --layers, --import and --list (see amend stats --help)');
  if (given === 0) throw new AmendError('say what to do: --layers L,... to compute, --import FILE.npz to import, or --list (see amend stats --help)');
  // An option the chosen mode does not read is refused rather than ignored.
  const computing = ['samples', 'max-length', 'batch-tokens', 'no-cache'];
  const unread = v.list === true ? [...computing, 'corpus', 'refresh'] : v.import !== undefined ? computing : [];
  const stray = unread.find((k) => v[k] !== undefined);
  if (stray) throw new AmendError(`--${stray} does nothing with ${v.list === true ? '--list' : '--import'}; it applies when computing (--layers)`);
  if (v['no-cache'] !== true) checkCacheFolder(cacheDir);
  return cacheDir;
}

/**
 * The cache folder can be a folder: refused before the model loads, not found out after hours of
 * computing statistics that could not be kept (or a --list of a folder that cannot exist).
 */
function checkCacheFolder(cacheDir: string | undefined): void {
  const from = cacheDir !== undefined ? '--cache-dir' : process.env.AMEND_CACHE ? '$AMEND_CACHE' : 'the default cache';
  try {
    checkCanBeFolder(statsDir(cacheDir));
  } catch (e) {
    if (!(e instanceof AmendError)) throw e;
    throw new AmendError(`${from} ${cacheRoot(cacheDir)} cannot hold the statistics (${e.message}); give a folder`);
  }
}

/** --list: the cached statistics of the model, by layer, corpus and samples. */
function listCached(model: CausalLM, cacheDir: string | undefined, json: boolean): void {
  const files = cachedStatsFiles(model, cacheDir);
  // One unreadable file (truncated, from an interrupted copy) is named; the others are listed.
  const rows = files.flatMap((f) => {
    try {
      const { sm, metadata } = readStatsFile(f);
      return [{ sm, row: { ...summary(sm), corpusLabel: metadata.corpus_label ?? sm.corpus, created: metadata.created, ...(metadata.fit ? { fit: metadata.fit } : {}) } }];
    } catch (e) {
      if (!(e instanceof AmendError)) throw e;
      process.emitWarning(`${f}: unreadable, recomputed when next needed (${e.message})`);
      return [];
    }
  });
  rows.sort((a, b) => a.sm.layer - b.sm.layer || a.row.corpusLabel.localeCompare(b.row.corpusLabel) || a.sm.samples - b.sm.samples);
  if (json) console.log(JSON.stringify({ fingerprint: modelFingerprint(model), stats: rows.map((r) => r.row) }));
  else if (rows.length === 0) console.log('no statistics cached for this model');
  else {
    for (const { sm, row } of rows) {
      // imported files record no text length, and their label says where they came from
      const texts = sm.maxLength ? `${sm.samples} samples × ${sm.maxLength} tokens` : `${sm.samples} samples`;
      const source = row.corpusLabel.startsWith('imported ') ? row.corpusLabel : `of ${row.corpusLabel}`;
      // an import that did not fit the model and was forced in says so
      const forced = row.fit?.startsWith('does not fit') ? '  (does not fit this model: imported with --force)' : '';
      console.log(`layer ${sm.layer}: ${sm.count} tokens, ${texts} ${source}${forced}  ${sm.file}`);
    }
  }
}

/** --import: file a ROME / EasyEdit .npz in the cache, after checking that it fits the model. */
async function importStats(model: CausalLM, v: Parsed['values'], cacheDir: string | undefined, json: boolean): Promise<void> {
  const file = str(v.import);
  if (!file) throw new AmendError('--import needs a .npz file');
  const layer = v.layer === undefined ? undefined : intOption(v.layer, 'layer', 0, 0);
  const sm = await importStatsToCache(file, {
    model, layer, dataset: str(v.dataset), cacheDir, replace: v.refresh === true, force: v.force === true, fitCorpus: str(v.corpus),
  });
  const name = sm.corpus.replace(/^imported:/, '');
  const fits = fitsModel(sm.fit);
  if (!fits) process.emitWarning(`${file}: imported with --force although it does not fit layer ${sm.layer} of this model (${describeFit(sm.fit)})`);
  const { ratio, unitCorrelation, tokens, corpus, skipped } = sm.fit;
  if (json) console.log(JSON.stringify({ imported: { ...summary(sm), fit: { ratio, unitCorrelation, tokens, corpus, fits, ...(skipped ? { skipped } : {}) } } }));
  else {
    console.log(`imported layer ${sm.layer} (${sm.dim}×${sm.dim}, ${sm.count} tokens, ${sm.samples} samples of ${name}) → ${sm.file}`);
    console.log(`fit to this model: ${describeFit(sm.fit)}`);
    console.log(`use it with: amend stats --corpus ${name} --samples ${sm.requestedSamples}; amend edit / eval --set mom2_dataset=${name} --set mom2_n_samples=${sm.requestedSamples}`);
  }
}

/** --layers: compute the layers' statistics in one pass over the corpus (or take them from the cache). */
async function computeStats(model: CausalLM, v: Parsed['values'], cacheDir: string | undefined, json: boolean): Promise<void> {
  const layers = parseLayers(str(v.layers) ?? str(v.layer) ?? '');
  const bad = layers.find((l) => l >= model.config.layers);
  if (bad !== undefined) throw new AmendError(`layer ${bad} is out of range (the model has layers 0..${model.config.layers - 1})`);
  const opts: StatsOptions = {
    corpus: str(v.corpus),
    samples: v.samples === undefined ? undefined : intOption(v.samples, 'samples', 0, 1),
    maxLength: v['max-length'] === undefined ? undefined : intOption(v['max-length'], 'max-length', 0, 1),
    batchTokens: v['batch-tokens'] === undefined ? undefined : intOption(v['batch-tokens'], 'batch-tokens', 0, 1),
    cacheDir, noCache: v['no-cache'] === true, refresh: v.refresh === true,
  };
  const resolved = resolveStatsOptions(model, opts);
  let bar: Progress | null = null;
  opts.onProgress = (done, total) => {
    bar ??= new Progress(`stats L${layers.join(',')}`, total, !json && process.stderr.isTTY === true);
    bar.update(done);
  };
  const started = Date.now();
  // The pass over the corpus turns the event loop between batches, so a signal ends it there, with
  // a line. The files are written only after the last batch, and by then the handler is gone.
  const stopHandling = exitOnSignal('the statistics were not computed to the end, and nothing was cached');
  const sms = await layerSecondMoments(model, layers, opts).finally(stopHandling);
  (bar as Progress | null)?.done();
  const seconds = (Date.now() - started) / 1000;
  if (json) {
    console.log(JSON.stringify({
      fingerprint: modelFingerprint(model), corpus: resolved.corpus.id, corpusLabel: resolved.corpus.label,
      samples: resolved.samples, maxLength: resolved.maxLength, batchTokens: resolved.batchTokens,
      seconds, layers: sms.map(summary),
    }));
    return;
  }
  console.log(`model ${shortFingerprint(modelFingerprint(model))}, corpus ${resolved.corpus.label}`);
  for (const sm of sms) {
    const how = sm.source === 'cache' ? 'cached' : sm.source === 'computed' ? 'computed' : sm.source;
    console.log(`layer ${sm.layer}: ${sm.dim}×${sm.dim}, ${sm.count} tokens from ${sm.samples} samples (${how})${sm.file ? `  ${sm.file}` : ''}`);
  }
  process.stderr.write(`(${seconds.toFixed(1)} s)\n`);
}

export async function run(args: Parsed): Promise<void> {
  const v = args.values;
  const cacheDir = checkArgs(args);
  const json = v.json === true;
  const model = await loadModel(v.model, json);
  if (v.list) listCached(model, cacheDir, json);
  else if (v.import !== undefined) await importStats(model, v, cacheDir, json);
  else await computeStats(model, v, cacheDir, json);
}
