// Whether imported statistics fit the model they are imported for.
//
// A file's shape and names say little: statistics of another layer of the same model, or of a
// re-initialised or fine-tuned copy, have the same shape. The model's own keys at that layer, read
// from a little text, do tell. Two numbers, each blind to what the other sees:
//
// - ratio = mean of kᵀ C⁻¹ k / d. For keys from the distribution C = E[k kᵀ] was measured on,
//   E[kᵀ C⁻¹ k] = tr(C⁻¹ E[k kᵀ]) = d, so it is near 1 for the model's own statistics (above 1
//   where the check's text differs from the statistics' corpus, or C comes from few keys). It is
//   the mean, over C's eigendirections, of the check keys' variance over C's: a C scaled by s gives
//   1/s, and one measured elsewhere is far off in its small directions.
// - unit correlation = the rank correlation, over the d MLP units, of each unit's mean square in C
//   (its diagonal) and in the check's keys. A layer's units have activity levels of their own,
//   which its keys show on any text; unit i of another layer or model is another unit, so the
//   correlation is near 0 there. It does not see scale, which the ratio does.
//
// bench/RESULTS.md ("Imported statistics: the fit check") has the measurements behind the ranges.
import { AmendError } from '../errors.js';
import { cholesky, choleskySolve } from '../linalg/index.js';
import type { CausalLM } from '../models/model.js';
import { forEachKeys, resolveStatsOptions } from './compute.js';
import { corpusSpecOf, defaultCorpus } from './corpus.js';
import { FIT_TEXT } from './fit-text.js';
import type { CorpusSpec, SecondMoment } from './types.js';

/** Accepted range of the mean kᵀ C⁻¹ k / d. */
export const FIT_RATIO_RANGE: readonly [number, number] = [0.25, 25];
/** Lowest accepted rank correlation of the units' mean squares. */
export const FIT_MIN_UNIT_CORRELATION = 0.3;
/** Keys the check reads by default: enough for a stable mean, cheap next to the import itself. */
export const FIT_TOKENS = 1024;
/** Model samples for the check are drawn with a seed of their own, not the statistics' default 1. */
const FIT_SAMPLE_SEED = 7;
/** Tokens per document for the check (longer documents are cut). */
const FIT_MAX_LENGTH = 128;
/** Documents the check may read at most (a random subset of the corpus, read only until it has its keys). */
const FIT_MAX_DOCS = 4096;
/** Documents read at a time. */
const FIT_GROUP_DOCS = 16;

export interface FitOptions {
  /**
   * The text whose keys the check reads (as StatsOptions.corpus). Default: corpus-train.txt beside
   * the model (the demo world), else a built-in page of encyclopedic English (FIT_TEXT).
   */
  corpus?: string | CorpusSpec;
  /** How many keys (default FIT_TOKENS). */
  tokens?: number;
}

export interface StatsFit {
  /** Mean kᵀ C⁻¹ k / d over the check's keys; null when the check was skipped. */
  ratio: number | null;
  /** Rank correlation of the units' mean squares (C's diagonal vs the check's keys); null when skipped. */
  unitCorrelation: number | null;
  /** Keys read. */
  tokens: number;
  /** What text they came from. */
  corpus: string;
  /** Why nothing could be measured (a singular C, no text). */
  skipped?: string;
  /** Wall time of the check. */
  seconds: number;
}

/** The check's text when none is given. */
function fitCorpus(model: CausalLM): CorpusSpec {
  const own = defaultCorpus(model);
  return own.kind === 'model-samples' ? { kind: 'texts', texts: [...FIT_TEXT], name: "Amend's built-in English page" } : own;
}

/** Measures how well `sm` (statistics for `sm.layer`) fits the model's own keys at that layer. */
export async function measureStatsFit(model: CausalLM, sm: SecondMoment, opts: FitOptions = {}): Promise<StatsFit> {
  const started = performance.now();
  const d = sm.dim;
  if (d !== model.config.ffn) throw new AmendError(`statistics ${d}-wide cannot fit this model's ${model.config.ffn}-wide MLP keys`);
  let spec = opts.corpus === undefined ? fitCorpus(model) : corpusSpecOf(opts.corpus, model);
  if (spec.kind === 'imported') throw new AmendError(`the fit check reads the model's keys from text, and "${spec.name}" names imported statistics; give a text file, folder or .jsonl`);
  if (spec.kind === 'model-samples') spec = { ...spec, seed: spec.seed ?? FIT_SAMPLE_SEED };
  const want = opts.tokens ?? FIT_TOKENS;
  const maxLength = Math.min(model.config.maxPositions, FIT_MAX_LENGTH);
  // Documents are read in small groups until `want` keys are in, from a fixed random subset of
  // the corpus (as the statistics choose theirs); model samples are written only as needed.
  const o = resolveStatsOptions(model, { corpus: spec, maxLength, samples: FIT_MAX_DOCS, batchTokens: Math.max(maxLength, 1024) });
  const done = (ratio: number | null, unitCorrelation: number | null, tokens: number, skipped?: string): StatsFit => ({
    ratio, unitCorrelation, tokens, corpus: o.corpus.label, ...(skipped ? { skipped } : {}), seconds: (performance.now() - started) / 1000,
  });
  // Fewer keys than dimensions: C is singular, and any key off the span of those it was summed
  // from would give an arbitrarily large ratio. A ridge would make the number depend on the ridge.
  if (sm.count < d) return done(null, null, 0, `the statistics hold ${sm.count} keys for ${d} dimensions, so C is singular`);
  let L: Float64Array;
  try {
    L = cholesky(sm.mom2, d);
  } catch (e) {
    if (!(e instanceof AmendError)) throw e;
    return done(null, null, 0, `C is singular to working precision (${e.message.replace(/^cholesky: /, '').replace(/;.*$/, '')})`);
  }
  // The check's keys: every counted token of the groups read, then `want` of them evenly spaced,
  // so that every document and position is represented as in the statistics.
  const chunks: Float32Array[] = [];
  const { tokens: read } = await forEachKeys(model, [sm.layer], o, (_l, x, rows) => {
    const part = new Float32Array(rows.length * d);
    for (let r = 0; r < rows.length; r++) part.set(x.subarray(rows[r]! * d, rows[r]! * d + d), r * d);
    chunks.push(part);
  }, { maxTokens: want, groupDocs: FIT_GROUP_DOCS });
  const n = Math.min(want, read);
  if (n === 0) return done(null, null, 0, `${o.corpus.label} yielded no tokens to read keys from`);
  const all = concat(chunks, read * d);
  const K = new Float32Array(n * d);
  for (let t = 0; t < n; t++) {
    const src = Math.floor((t * read) / n);
    K.set(all.subarray(src * d, src * d + d), t * d);
  }
  return done(whitenedRatio(L, K, n, d), unitCorrelation(sm.mom2, K, n, d), n);
}

/** Whether a measured fit is within both ranges (a skipped check passes: there is nothing to judge). */
export function fitsModel(fit: StatsFit): boolean {
  if (fit.ratio === null || fit.unitCorrelation === null) return true;
  return fit.ratio >= FIT_RATIO_RANGE[0] && fit.ratio <= FIT_RATIO_RANGE[1] && fit.unitCorrelation >= FIT_MIN_UNIT_CORRELATION;
}

/** Which of the two measures fall outside their ranges, in words ('' when both are in). */
export function misfitReasons(fit: StatsFit): string {
  const out: string[] = [];
  if (fit.ratio !== null && !(fit.ratio >= FIT_RATIO_RANGE[0] && fit.ratio <= FIT_RATIO_RANGE[1])) out.push(`the mean kᵀC⁻¹k/d ${fit.ratio.toPrecision(3)} is outside ${FIT_RATIO_RANGE[0]}–${FIT_RATIO_RANGE[1]}`);
  if (fit.unitCorrelation !== null && !(fit.unitCorrelation >= FIT_MIN_UNIT_CORRELATION)) out.push(`the unit correlation ${fit.unitCorrelation.toFixed(2)} is below ${FIT_MIN_UNIT_CORRELATION}`);
  return out.join(' and ');
}

/** "mean kᵀC⁻¹k/d 1.07, unit correlation 0.95" (or why it was skipped). */
export function describeFit(fit: StatsFit): string {
  if (fit.ratio === null || fit.unitCorrelation === null) return `not checked: ${fit.skipped}`;
  return `mean kᵀC⁻¹k/d ${fit.ratio.toPrecision(3)} (accepted ${FIT_RATIO_RANGE[0]}–${FIT_RATIO_RANGE[1]}), `
    + `unit correlation ${fit.unitCorrelation.toFixed(2)} (accepted ≥ ${FIT_MIN_UNIT_CORRELATION}), on ${fit.tokens} keys of ${fit.corpus}`;
}

function concat(parts: Float32Array[], length: number): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(length);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Mean over the keys of kᵀ C⁻¹ k / d: one float64 Cholesky solve with every key as a right-hand side. */
function whitenedRatio(L: Float64Array, K: Float32Array, n: number, d: number): number {
  const B = new Float64Array(d * n); // Kᵀ, row-major [d, n]
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) B[i * n + t] = K[t * d + i]!;
  const X = choleskySolve(L, B, d, n);
  let sum = 0;
  for (let i = 0; i < B.length; i++) sum += B[i]! * X[i]!;
  return sum / (n * d);
}

/** Spearman's rank correlation of C's diagonal and the keys' per-unit mean squares. */
function unitCorrelation(C: Float64Array, K: Float32Array, n: number, d: number): number {
  const fromC = new Float64Array(d), fromKeys = new Float64Array(d);
  for (let i = 0; i < d; i++) fromC[i] = C[i * d + i]!;
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) fromKeys[i] += K[t * d + i]! ** 2;
  const a = ranks(fromC), b = ranks(fromKeys);
  const mean = (d - 1) / 2;
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < d; i++) {
    ab += (a[i]! - mean) * (b[i]! - mean);
    aa += (a[i]! - mean) ** 2;
    bb += (b[i]! - mean) ** 2;
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

/** 0-based ranks, ties sharing their mean rank (units that never fire tie at 0). */
function ranks(v: Float64Array): Float64Array {
  const order = Array.from(v.keys()).sort((x, y) => v[x]! - v[y]!);
  const out = new Float64Array(v.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && v[order[j + 1]!] === v[order[i]!]) j++;
    for (let k = i; k <= j; k++) out[order[k]!] = (i + j) / 2;
    i = j + 1;
  }
  return out;
}
