// Key statistics for the editors: C = E[k kᵀ] at a layer, from src/stats (cached on disk) or given
// by the caller, checked to belong to this model, and the Cholesky factor of C cached per matrix
// (ROME's get_inv_cov caches C⁻¹ per model and layer).
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, typeName } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { modelFingerprint, shortFingerprint } from '../../models/fingerprint.js';
import { baseFingerprint } from '../../patch/session.js';
import { cholesky, choleskySolve } from '../../linalg/index.js';
import { layerSecondMoments, type SecondMoment, type StatsOptions } from '../../stats/index.js';
import type { EditHparams } from '../hparams.js';
import { existingCorpusPath, hasCorpusExtension } from './corpus.js';
import type { ProgressEvent } from './run.js';

/** Statistics given by the caller: per layer, or a function of the layer. */
export type StatsSource = ReadonlyMap<number, SecondMoment> | readonly SecondMoment[] | ((layer: number) => SecondMoment | Promise<SecondMoment>);

/**
 * Refuses what is no StatsSource before anything is computed: a number or a plain object would
 * otherwise fail as a TypeError at the first layer looked up. null counts as none given, as it does there.
 */
export function checkStatsSource(given: unknown, what: string): void {
  if (given === undefined || given === null || typeof given === 'function' || Array.isArray(given) || given instanceof Map) return;
  throw new AmendError(`${what}: stats must be a Map from layer to SecondMoment, an array of SecondMoments or a function of the layer, not ${typeName(given)}`);
}

export interface StatsRequest {
  /** Statistics to use instead of computing / loading them. */
  given?: StatsSource;
  /** Options passed to src/stats (cache folder, progress...). */
  options?: StatsOptions;
}

/** Whether an edit uses key statistics: MEMIT always, ROME with its C⁻¹ adjustment (mom2_adjustment). */
export const usesStatistics = (method: string, hp: EditHparams): boolean => method === 'memit' || hp.mom2_adjustment === true;

/**
 * The statistics options with a progress callback: the caller's own, else one reporting to an
 * edit's progress as its 'stats' phase.
 */
export function statsOptionsWithProgress(options: StatsOptions | undefined, onProgress: ((e: ProgressEvent) => void) | undefined): StatsOptions {
  return { ...options, onProgress: options?.onProgress ?? (onProgress ? (done, total) => onProgress({ phase: 'stats', done, total }) : undefined) };
}

/** The corpus of mom2_dataset: an existing path, a path inside the model folder, or a name (imported statistics). */
function corpusOf(hp: EditHparams, model: CausalLM): string | undefined {
  const ds = hp.mom2_dataset;
  if (!ds) return undefined;
  const found = existingCorpusPath(ds, model.dir);
  if (found !== null) return found;
  // A corpus file named by a preset (the demo world's corpus-train.txt) that this copy of the model
  // lacks: the stats module's default corpus, with a warning (a name without an extension is the
  // name of imported statistics and goes through as it is).
  if (hasCorpusExtension(ds) && !path.isAbsolute(ds)) {
    if (!warned.has(ds)) {
      warned.add(ds);
      process.emitWarning(`mom2_dataset ${ds} is not in ${model.dir ?? 'the model folder'} nor in the current folder; using the default corpus for the key statistics`);
    }
    return undefined;
  }
  return ds;
}

const warned = new Set<string>();

/**
 * stats_dir once named Amend's cache root; it now names EasyEdit's folder of .npz files. A folder
 * that looks like an Amend cache (its stats/ subfolder) is named in a warning, once.
 */
function warnIfAmendCache(dir: string | undefined): void {
  if (!dir || warned.has(`stats_dir:${dir}`) || !fs.existsSync(path.join(dir, 'stats'))) return;
  warned.add(`stats_dir:${dir}`);
  process.emitWarning(`stats_dir ${dir} looks like an Amend statistics cache; stats_dir names a folder of ROME / EasyEdit .npz files now, and the cache is $AMEND_CACHE (set AMEND_CACHE=${dir} to use that one)`);
}

/** Second moments at `layers`, in that order; one clear error for statistics of another model. */
export async function secondMoments(model: CausalLM, layers: readonly number[], hp: EditHparams, req: StatsRequest = {}): Promise<SecondMoment[]> {
  let got: SecondMoment[];
  const given = req.given;
  if (given) {
    got = await Promise.all(layers.map(async (l) => {
      let sm: SecondMoment | undefined;
      if (typeof given === 'function') sm = await given(l);
      else if (Array.isArray(given)) sm = (given as readonly SecondMoment[]).find((x) => x.layer === l);
      else sm = (given as ReadonlyMap<number, SecondMoment>).get(l);
      if (!sm) throw new AmendError(`no key statistics given for layer ${l}`);
      return sm;
    }));
  } else {
    warnIfAmendCache(hp.stats_dir);
    got = await layerSecondMoments(model, layers, {
      corpus: corpusOf(hp, model),
      samples: hp.mom2_n_samples,
      npzDir: hp.stats_dir,
      ...req.options,
    });
  }
  const d = model.config.ffn;
  let fps: Set<string> | null = null;
  got.forEach((sm, i) => {
    const l = layers[i];
    if (sm.dim !== d || sm.mom2.length !== d * d) {
      throw new AmendError(`key statistics for layer ${l} are ${sm.dim}×${sm.dim}, but this model's MLP keys have ${d} dimensions: they are for another model`);
    }
    if (sm.layer !== l) throw new AmendError(`key statistics for layer ${sm.layer} were given for layer ${l}`);
    if (sm.fingerprint) {
      fps ??= new Set([modelFingerprint(model), baseFingerprint(model)]);
      if (!fps.has(sm.fingerprint)) {
        throw new AmendError(
          `the key statistics for layer ${l}${sm.file ? ` (${sm.file})` : ''} were computed on another model (fingerprint ${shortFingerprint(sm.fingerprint)}, ` +
            `this model is ${shortFingerprint(baseFingerprint(model))}); recompute them with amend stats`,
        );
      }
    }
    if (!(sm.count > 0)) throw new AmendError(`key statistics for layer ${l} hold no samples`);
  });
  return got;
}

const ridged = new WeakMap<SecondMoment, Map<number, SecondMoment>>();

/**
 * C + ridge·(tr C / d)·I (cached per matrix and ridge). A tiny model can have MLP units that never
 * fire on the corpus: their eigenvalues in C are ~1e-10, and C⁻¹k* then points almost entirely
 * along them, so the rank-one update is huge and specific to nothing. ridge = 0 returns `sm`.
 */
export function withRidge(sm: SecondMoment, ridge: number): SecondMoment {
  if (!(ridge > 0)) return sm;
  let byRidge = ridged.get(sm);
  if (!byRidge) ridged.set(sm, (byRidge = new Map()));
  const hit = byRidge.get(ridge);
  if (hit) return hit;
  const d = sm.dim, mom2 = Float64Array.from(sm.mom2);
  let trace = 0;
  for (let i = 0; i < d; i++) trace += mom2[i * d + i];
  const add = (ridge * trace) / d;
  for (let i = 0; i < d; i++) mom2[i * d + i] += add;
  const out: SecondMoment = { ...sm, mom2 };
  byRidge.set(ridge, out);
  return out;
}

const factors = new WeakMap<Float64Array, Float64Array>();

/** The Cholesky factor of C (cached per matrix); a clear error when C is not positive definite. */
function covFactor(sm: SecondMoment): Float64Array {
  let L = factors.get(sm.mom2);
  if (L) return L;
  try {
    L = cholesky(sm.mom2, sm.dim);
  } catch (e) {
    if (e instanceof AmendError) {
      throw new AmendError(
        `the second moment of the keys at layer ${sm.layer} is singular (${sm.count} keys for ${sm.dim} dimensions, corpus ${sm.corpus}); ` +
          'collect statistics over more text (mom2_n_samples / mom2_dataset), or set mom2_adjustment=false',
      );
    }
    throw e;
  }
  factors.set(sm.mom2, L);
  return L;
}

/** C⁻¹ k in float64. */
export function solveCov(sm: SecondMoment, k: ArrayLike<number>): Float64Array {
  return choleskySolve(covFactor(sm), Float64Array.from(k), sm.dim, 1);
}
