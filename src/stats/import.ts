// Statistics computed by ROME / MEMIT / EasyEdit, reused as they are.
//
// Those tools save util/runningstats.CombinedStat(mom2=SecondMoment()) with numpy.savez to
//   {stats_dir}/{model_name}/{ds_name}_stats/{layer_name}_{precision}_{stats}{size_suffix}.npz
// e.g. gpt2-xl/wikipedia_stats/transformer.h.17.mlp.c_proj_float32_mom2_100000.npz, where stats is
// the sorted "-"-joined list of collected statistics ("mom2"), size_suffix is "_{sample_size}"
// (preceded by the literal text "_t{batch_tokens}" when batch_tokens < n_positions — a missing f
// in their f-string), and layer_name is the down projection (c_proj, fc_out, down_proj,
// dense_4h_to_h), whose INPUT they measure. The arrays:
//   mom2.mom2         [d, d], the running SUM Σ k kᵀ (not divided), in `precision`
//   mom2.count        int64 scalar, the number of tokens
//   mom2.constructor  the Python class, as a unicode string
//   sample_size       the number of texts asked for (a NaN-boxed null when "all")
// A bare SecondMoment().save() has the same arrays without the "mom2." prefix.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError, requirePath } from '../errors.js';
import { npyScalar, npyToFloat64, readNpz } from '../io/npz.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { modelFingerprint } from '../models/fingerprint.js';
import type { CausalLM } from '../models/model.js';
import { modelStatsDir, readStatsFile, removeDeadStatsTemps, statsCachePath, writeStatsFile } from './cache.js';
import { importedCorpusId, resolveCorpus } from './corpus.js';
import { onBaseWeights } from './compute.js';
import { describeFit, FIT_MIN_UNIT_CORRELATION, FIT_RATIO_RANGE, fitsModel, measureStatsFit, misfitReasons, type FitOptions, type StatsFit } from './fit.js';
import { DEFAULT_SAMPLES, type SecondMoment } from './types.js';

/** What a ROME / EasyEdit statistics file name says. */
export interface RomeStatsName {
  modelName?: string;
  dataset?: string;
  layerName?: string;
  layer?: number;
  precision?: string;
  stats?: string[];
  samples?: number;
}

/** Parses {model}/{ds}_stats/{layer_name}_{precision}_{stats}[_t…][_{n}].npz (any part may be missing). */
export function parseRomeStatsName(file: string): RomeStatsName {
  const base = path.basename(file);
  const out: RomeStatsName = {};
  const m = /^(.+)_(float16|float32|float64|bfloat16)_([a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*(?:-[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*)*)(?:_t(?:\{batch_tokens\}|\d+))?(?:_(\d+))?\.npz$/.exec(base);
  if (m) {
    out.layerName = m[1];
    out.precision = m[2];
    out.stats = m[3].split('-');
    if (m[4] !== undefined) out.samples = Number(m[4]);
    const l = /(?:^|\.)(?:h|layers|layer|blocks|block)\.(\d+)(?:\.|$)/.exec(m[1]);
    if (l) out.layer = Number(l[1]);
  }
  const dir = path.basename(path.dirname(path.resolve(file)));
  const ds = /^(.+)_stats$/.exec(dir);
  if (ds) {
    out.dataset = ds[1];
    out.modelName = path.basename(path.dirname(path.dirname(path.resolve(file))));
  }
  return out;
}

export interface ImportOptions {
  /** The layer (default: read from the file name, e.g. transformer.h.17.mlp.c_proj → 17). */
  layer?: number;
  /** Checks the width against the model's d_ff and stamps the result with its fingerprint. */
  model?: CausalLM;
  /** The dataset name (default: from the "{ds}_stats" folder, else "imported"). */
  dataset?: string;
}

/** Reads a ROME / MEMIT / EasyEdit statistics file (.npz) as a SecondMoment. */
export function importEasyEditStats(npzPath: string, opts: ImportOptions = {}): SecondMoment {
  requirePath(npzPath, 'importEasyEditStats needs the .npz file');
  const name = parseRomeStatsName(npzPath);
  const arrays = readNpz(npzPath, { only: (k) => ['mom2.mom2', 'mom2.count', 'mom2', 'count', 'sample_size'].includes(k) });
  const prefixed = arrays.has('mom2.mom2');
  const mom = arrays.get(prefixed ? 'mom2.mom2' : 'mom2');
  const cnt = arrays.get(prefixed ? 'mom2.count' : 'count');
  if (!mom || !cnt) {
    throw new AmendError(`${npzPath}: no second-moment statistics in it (expected arrays "mom2.mom2" and "mom2.count", as ROME / EasyEdit's layer_stats saves them)`);
  }
  if (mom.shape.length !== 2 || mom.shape[0] !== mom.shape[1]) {
    throw new AmendError(`${npzPath}: mom2.mom2 has shape (${mom.shape.join(', ')}), not a square matrix`);
  }
  // Booleans read as 0/1 would pass every check below, and are no one's statistics.
  if (mom.kind === 'b1' || cnt.kind === 'b1') throw new AmendError(`${npzPath}: ${mom.kind === 'b1' ? 'mom2.mom2' : 'mom2.count'} holds booleans, not numbers — not a statistics file`);
  const dim = mom.shape[0];
  const count = npyScalar(cnt, `${npzPath}: mom2.count`);
  if (!Number.isSafeInteger(count) || count <= 0) throw new AmendError(`${npzPath}: mom2.count is ${count}, not a positive number of tokens`);
  const layer = layerOfFile(npzPath, name, opts.layer);
  if (opts.model) checkFitsModel(npzPath, opts.model, layer, dim, name.layerName);
  let samples = name.samples;
  const ss = arrays.get('sample_size');
  if (ss && !Array.isArray(ss.data) && ss.data.length === 1) {
    const v = npyScalar(ss);
    if (Number.isSafeInteger(v) && v > 0) samples = v; // NaN: None ("all"), keep what the name says
  }
  // Scaled in place: npyToFloat64 gives a fresh array, or the file's own float64 data, which no one else holds.
  const out = secondMomentOfSums(npzPath, npyToFloat64(mom, `${npzPath}: mom2.mom2`), dim, count);
  const dataset = opts.dataset ?? name.dataset ?? 'imported';
  // The name --corpus NAME finds it by: a bare name, not a path or a reserved corpus.
  if (!/^[A-Za-z0-9][\w.-]*$/.test(dataset) || /\.(txt|md|text|jsonl|ndjson|json)$/i.test(dataset) || dataset === 'model-samples') {
    throw new AmendError(`${npzPath}: "${dataset}" cannot name imported statistics (--corpus ${dataset} would mean something else); give --dataset NAME, letters, digits, '.', '_' or '-', e.g. wikipedia`);
  }
  return {
    layer, dim, count, mom2: out, corpus: importedCorpusId(dataset), samples: samples ?? 0,
    fingerprint: opts.model ? modelFingerprint(opts.model) : '', requestedSamples: samples ?? 0, maxLength: 0,
    source: 'import', file: npzPath,
  };
}

/** The layer asked for, else the one the file name gives; the two must agree when both are there. */
function layerOfFile(npzPath: string, name: ReturnType<typeof parseRomeStatsName>, asked: number | undefined): number {
  let layer = asked;
  if (layer === undefined) {
    if (name.layer === undefined) {
      throw new AmendError(`${npzPath}: the layer is not in the file name (like transformer.h.17.mlp.c_proj_float32_mom2_100000.npz); give it (--layer L)`);
    }
    layer = name.layer;
  } else if (name.layer !== undefined && name.layer !== layer) {
    throw new AmendError(`${npzPath}: the file name says layer ${name.layer}, but layer ${layer} was asked for; leave --layer out to import it as layer ${name.layer}, or rename the file if it holds layer ${layer}`);
  }
  if (!Number.isInteger(layer) || layer < 0) throw new AmendError(`layer must be a non-negative integer, got ${layer}`);
  return layer;
}

function checkFitsModel(npzPath: string, model: CausalLM, layer: number, dim: number, layerName: string | undefined): void {
  const c = model.config;
  if (layer >= c.layers) throw new AmendError(`${npzPath}: layer ${layer} is out of range (the model has layers 0..${c.layers - 1})`);
  if (dim !== c.ffn) {
    throw new AmendError(`${npzPath}: the statistics are ${dim}-wide, but this model's MLP keys are ${c.ffn}-wide — they belong to another model`);
  }
  if (layerName && !namesModelModule(model, layer, layerName)) {
    throw new AmendError(`${npzPath}: the file name says ${layerName}, but this model's MLP down projection at layer ${layer} is ${downModuleName(model, layer)} — the statistics are for another architecture (rename the file if they are this model's)`);
  }
}

/**
 * Σ k kᵀ / count, symmetrised ((C + Cᵀ)/2: a float32 GEMM need not be bit-symmetric), in place in
 * `out`, after checking that the sums can be a second moment at all.
 */
function secondMomentOfSums(npzPath: string, out: Float64Array, dim: number, count: number): Float64Array {
  const bad = out.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new AmendError(`${npzPath}: mom2.mom2 holds ${out[bad]} at [${Math.floor(bad / dim)}, ${bad % dim}]; the statistics are broken — recompute them`);
  // Rounding leaves float32 sums asymmetric by around 1e-7 of sqrt(C_ii C_jj), the bound on |C_ij|
  // for a second moment (1e-6 after many batches); 1e-3 of it is not rounding but another matrix.
  for (let i = 0; i < dim; i++) {
    for (let j = i + 1; j < dim; j++) {
      const gap = Math.abs(out[i * dim + j]! - out[j * dim + i]!);
      if (gap > 1e-3 * Math.sqrt(Math.abs(out[i * dim + i]! * out[j * dim + j]!))) {
        throw new AmendError(`${npzPath}: mom2.mom2 is not symmetric ([${i}, ${j}] is ${out[i * dim + j]}, [${j}, ${i}] is ${out[j * dim + i]}), as a second moment E[k kᵀ] is — not a statistics file`);
      }
    }
  }
  for (let i = 0; i < dim; i++) {
    out[i * dim + i] /= count;
    for (let j = i + 1; j < dim; j++) {
      const v = (out[i * dim + j] + out[j * dim + i]) / 2 / count;
      out[i * dim + j] = v;
      out[j * dim + i] = v;
    }
  }
  for (let i = 0; i < dim; i++) {
    if (!(out[i * dim + i]! >= 0)) throw new AmendError(`${npzPath}: mom2[${i}][${i}] is ${out[i * dim + i]! * count}; a second moment E[k kᵀ] has no negative diagonal entry — not a statistics file`);
  }
  return out;
}

/** What importStatsToCache takes beyond ImportOptions. */
export interface CacheImportOptions extends ImportOptions {
  model: CausalLM;
  cacheDir?: string;
  /** File the statistics under this fingerprint instead of the model's current one (a session's base model). */
  fingerprint?: string;
  /** File them under this sample count instead of the file's own. */
  samples?: number;
  /** Replace statistics imported from another file under the same key. */
  replace?: boolean;
  /**
   * Import even when the fit check finds that the statistics do not fit the model (another
   * layer's or model's, or scaled): for a user who knows better. The measured fit is still
   * recorded in the cached file.
   */
  force?: boolean;
  /** The fit check's text (FitOptions.corpus; default: the model's corpus-train.txt, else built-in English). */
  fitCorpus?: FitOptions['corpus'];
}

/**
 * Imports a ROME / EasyEdit .npz into the cache, for this model, so that
 * layerSecondMoment(model, layer, { corpus: dataset, samples }) finds it. Returns it (with .file
 * and .fit). The model's own keys at the layer are checked against the statistics first
 * (src/stats/fit.ts); statistics that do not fit are refused, with nothing written, unless `force`.
 */
export async function importStatsToCache(npzPath: string, opts: CacheImportOptions): Promise<SecondMoment & { fit: StatsFit }> {
  const sm = importEasyEditStats(npzPath, opts);
  if (opts.fingerprint) sm.fingerprint = opts.fingerprint;
  const name = sm.corpus.slice('imported:'.length);
  const corpus = resolveCorpus({ kind: 'imported', name });
  const samples = opts.samples ?? (sm.requestedSamples || DEFAULT_SAMPLES);
  const parsed = parseRomeStatsName(npzPath);
  const file = statsCachePath(opts.cacheDir, {
    fingerprint: sm.fingerprint, layer: sm.layer, corpusId: corpus.id, corpusSlug: corpus.slug, samples, maxLength: 0,
  });
  // Another file's statistics under the same key are not replaced without a word.
  const before = fs.existsSync(file) ? importedFrom(file) : null;
  if (before !== null && before !== path.resolve(npzPath) && !opts.replace) {
    throw new AmendError(`layer ${sm.layer} of "${name}" with ${samples} samples is already imported, from ${before || 'an unknown file'}; pass --refresh (replace: true) to replace it, or --dataset NAME to keep both`);
  }
  // Statistics describe the unedited model, so its keys are read with any session's edits taken off.
  const fit = await onBaseWeights(opts.model, () => measureStatsFit(opts.model, sm, { corpus: opts.fitCorpus }));
  if (!fitsModel(fit) && !opts.force) throw new AmendError(misfitMessage(npzPath, sm, fit, opts.model.dir));
  if (fit.skipped) process.emitWarning(`${npzPath}: the fit of layer ${sm.layer}'s statistics to this model was not checked: ${fit.skipped}`);
  sm.requestedSamples = samples;
  if (!sm.samples) sm.samples = samples;
  writeStatsFile(file, sm, {
    corpus_label: `imported from ${path.resolve(npzPath)}`,
    imported_from: path.resolve(npzPath),
    ...(parsed.modelName ? { imported_model: parsed.modelName } : {}),
    ...(parsed.precision ? { imported_precision: parsed.precision } : {}),
    fit: fit.ratio === null ? `not checked: ${fit.skipped}` : `${fitsModel(fit) ? 'fits' : 'does not fit (imported with force)'}: ${describeFit(fit)}`,
  });
  return { ...sm, file, fit };
}

/** The one line that refuses statistics which do not fit the model. */
/**
 * What a misfit message adds to the reasons, which name the measures out of range with their values:
 * the measure in range, if one is, and what both were measured on.
 */
function fitContext(fit: StatsFit): string {
  const within: string[] = [];
  if (fit.ratio !== null && fit.ratio >= FIT_RATIO_RANGE[0] && fit.ratio <= FIT_RATIO_RANGE[1]) within.push(`the mean kᵀC⁻¹k/d ${fit.ratio.toPrecision(3)} is within ${FIT_RATIO_RANGE[0]}–${FIT_RATIO_RANGE[1]}`);
  if (fit.unitCorrelation !== null && fit.unitCorrelation >= FIT_MIN_UNIT_CORRELATION) within.push(`the unit correlation ${fit.unitCorrelation.toFixed(2)} is at least ${FIT_MIN_UNIT_CORRELATION}`);
  return `${within.length ? `${within.join(', ')}; ` : ''}measured on ${fit.tokens} keys of ${fit.corpus}`;
}

function misfitMessage(npzPath: string, sm: SecondMoment, fit: StatsFit, modelDir: string | null): string {
  // With few keys C is poorly estimated, and its small directions inflate the ratio.
  const few = sm.count < 10 * sm.dim ? ` (or C comes from too few keys: ${sm.count} for ${sm.dim} dimensions)` : '';
  const model = modelDir ?? 'M';
  return `${npzPath}: these statistics do not fit layer ${sm.layer} of this model — ${misfitReasons(fit)} (${fitContext(fit)}); `
    + `they are another layer's or another model's${few}, or scaled. Recompute them with amend stats --model ${model} --layers ${sm.layer}, `
    + `or, if you know they belong to this model, import them anyway: amend stats --model ${model} --import ${npzPath} --force (force: true)`;
}

/** The .npz a cached import came from ('' when its header does not say or cannot be read). */
function importedFrom(file: string): string {
  try {
    return readSafetensorsHeader(file).metadata.imported_from ?? '';
  } catch {
    return '';
  }
}

/**
 * Imported statistics from the cache; failing that, from a ROME / EasyEdit folder of .npz files
 * (`npzDir`, imported into the cache on the way); else a clear error saying what is there and how
 * to import.
 */
export async function findImported(model: CausalLM, layer: number, dataset: string, samples: number | undefined,
  cacheDir: string | undefined, fingerprint = modelFingerprint(model), npzDir?: string): Promise<SecondMoment> {
  const corpus = resolveCorpus({ kind: 'imported', name: dataset });
  const n = samples ?? DEFAULT_SAMPLES;
  const file = statsCachePath(cacheDir, { fingerprint, layer, corpusId: corpus.id, corpusSlug: corpus.slug, samples: n, maxLength: 0 });
  removeDeadStatsTemps(file);
  if (fs.existsSync(file)) {
    const { sm } = readStatsFile(file);
    if (sm.fingerprint !== fingerprint || sm.layer !== layer) throw new AmendError(`${file}: the cached file does not match its key; delete it and import again`);
    sm.source = 'cache';
    return sm;
  }
  const npz = npzDir ? findNpz(model, npzDir, dataset, layer, n) : null;
  if (npz) return importStatsToCache(npz, { model, layer, dataset, cacheDir, fingerprint, samples: n });
  const dir = path.dirname(file);
  const have = fs.existsSync(dir)
    ? fs.readdirSync(dir).map((f) => /^layer(\d+)\.mom2\.n(\d+)\.t0\.safetensors$/.exec(f)).filter((m) => m !== null)
      .map((m) => `layer ${m![1]} × ${m![2]} samples`)
    : [];
  const down = downModuleName(model, layer);
  throw new AmendError(`no imported "${dataset}" statistics for layer ${layer} with ${n} samples for this model`
    + (have.length ? ` (imported: ${have.join(', ')})` : '')
    + (npzDir ? ` (nor ${path.join(npzDir, '*', `${dataset}_stats`, `${down}_float32_mom2_${n}.npz`)})` : '')
    + `; import ROME / EasyEdit stats with: amend stats --model M --import FILE.npz --layer ${layer}, or give a corpus file`);
}

/** The model's MLP down projection at `layer` as ROME / EasyEdit name it in their file names. */
function downModuleName(model: CausalLM, layer: number): string {
  return model.spec.layers[layer]!.down.w.replace(/\.weight$/, '');
}

/** Whether a file's layer name is this model's down projection (checkpoints may add or drop a prefix). */
function namesModelModule(model: CausalLM, layer: number, layerName: string): boolean {
  const want = downModuleName(model, layer);
  return layerName === want || want.endsWith(`.${layerName}`) || layerName.endsWith(`.${want}`);
}

/**
 * {npzDir}/{model_name}/{dataset}_stats/{layer_name}_{precision}_mom2…_{n}.npz for this model's
 * layer: the model_name folder is whatever EasyEdit named it, so every folder is looked in, and
 * one named like the model's own folder wins when several hold a match.
 */
function findNpz(model: CausalLM, npzDir: string, dataset: string, layer: number, n: number): string | null {
  if (!fs.existsSync(npzDir) || !fs.statSync(npzDir).isDirectory()) return null;
  const found: string[] = [];
  for (const sub of fs.readdirSync(npzDir, { withFileTypes: true })) {
    const dir = path.join(npzDir, sub.name, `${dataset}_stats`);
    if (!sub.isDirectory() || !fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
      const name = parseRomeStatsName(f);
      if (name.layer === layer && name.samples === n && name.stats?.includes('mom2') && name.layerName && namesModelModule(model, layer, name.layerName)) {
        found.push(path.join(dir, f));
      }
    }
  }
  if (found.length <= 1) return found[0] ?? null;
  const own = model.dir ? path.basename(model.dir) : '';
  const mine = found.filter((f) => path.basename(path.dirname(path.dirname(f))) === own);
  if (mine.length === 1) return mine[0]!;
  throw new AmendError(`several statistics files in ${npzDir} fit layer ${layer} of this model (${found.join(', ')}); import one with amend stats --import FILE.npz`);
}

/**
 * Loads a statistics file given explicitly: an Amend .safetensors statistics file or a
 * ROME / EasyEdit .npz. With a model, a file computed for another model (fingerprint), of another
 * width, or for another layer than `layer` is one clear error.
 */
export function loadStatsFile(file: string, opts: { model?: CausalLM; layer?: number } = {}): SecondMoment {
  if (file.toLowerCase().endsWith('.npz')) return importEasyEditStats(file, opts);
  const { sm } = readStatsFile(file);
  if (opts.layer !== undefined && sm.layer !== opts.layer) {
    throw new AmendError(`${file}: these statistics are for layer ${sm.layer}, not layer ${opts.layer}`);
  }
  if (opts.model) {
    const fp = modelFingerprint(opts.model);
    if (sm.fingerprint && sm.fingerprint !== fp) {
      throw new AmendError(`${file}: these statistics were computed for another model (fingerprint ${short(sm.fingerprint)}, this model is ${short(fp)}); compute them for this one with amend stats`);
    }
    if (sm.dim !== opts.model.config.ffn) {
      throw new AmendError(`${file}: the statistics are ${sm.dim}-wide, but this model's MLP keys are ${opts.model.config.ffn}-wide`);
    }
  }
  return sm;
}

const short = (fp: string): string => (fp.length > 16 ? `${fp.slice(0, 16)}…` : fp);

/** Every statistics file in the cache for a model (for listings). */
export function cachedStatsFiles(model: CausalLM, cacheDir?: string): string[] {
  const root = modelStatsDir(cacheDir, modelFingerprint(model));
  if (!fs.existsSync(root)) return [];
  const out: string[] = [];
  for (const sub of fs.readdirSync(root).sort()) {
    const d = path.join(root, sub);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d).sort()) if (f.endsWith('.safetensors')) out.push(path.join(d, f));
  }
  return out;
}
