// Layer statistics: the non-centred second moment C = E[k kᵀ] of the keys (the input of the MLP
// down projection, hook point blocks.{l}.mlp.keys) over a corpus, as ROME's layer_stats computes
// it (rome/layer_stats.py with util/runningstats.SecondMoment):
//   - `samples` documents: a fixed pseudo-random subset (seed 1) of the corpus, the whole corpus
//     when it is smaller;
//   - each tokenized with the special tokens the model's tokenizer adds, and cut to maxLength
//     tokens (HF truncation: the added special tokens are kept);
//   - documents taken in groups, sorted by length (longest first) and packed into right-padded
//     batches of at most batchTokens tokens (rows × the group's longest width), as ROME's
//     length_collation;
//   - every real token of every document adds its key (padding never counts), and
//     C = Σ k kᵀ / count.
// Several layers come out of one pass: the forward pass carries a hook at each requested layer
// and stops right after the deepest one (no later blocks, no LM head).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError, refuseUnknownKeys, requireObject } from '../errors.js';
import { generate } from '../models/generate.js';
import { hookPoint, type Hook } from '../models/hooks.js';
import type { CausalLM } from '../models/model.js';
import { modelFingerprint } from '../models/fingerprint.js';
import { holdModel, outsideHold, sessionOf } from '../patch/session.js';
import { noGrad } from '../tensor/index.js';
import { GramAccumulator } from './accumulate.js';
import { readStatsFile, removeDeadStatsTemps, statsCachePath, writeStatsFile, type StatsKey } from './cache.js';
import { chooseSubset, contentSha, corpusDocs, corpusSpecOf, countDocs, resolveCorpus, type Doc, type ResolvedCorpus } from './corpus.js';
import { findImported } from './import.js';
import {
  DEFAULT_MODEL_SAMPLE_LENGTH, DEFAULT_MODEL_SAMPLES, DEFAULT_SAMPLES, MAX_DEFAULT_LENGTH, STATS_OPTION_KEYS,
  type CorpusSpec, type SecondMoment, type StatsOptions,
} from './types.js';

/** Documents sorted and packed together (ROME: 100 per loader batch; more packs tighter). */
const GROUP_DOCS = 512;
/** Sequences generated at once for model samples (fixed, so the samples never depend on batching). */
const GEN_BATCH = 32;

/** Thrown by the deepest hook to end the forward pass early (as ROME's Trace(stop=True)). */
class StopForward {}
const STOP = new StopForward();

/** One tokenized document: ids, and how many leading ids are context only (not counted). */
interface Seq {
  ids: number[];
  skip: number;
}

export interface ResolvedStatsOptions {
  corpus: ResolvedCorpus;
  samples: number;
  maxLength: number;
  batchTokens: number;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new AmendError(`${what} must be a positive integer, got ${v}`);
  return v;
}

/** The defaults spelled out: corpus, samples, tokens per sample, tokens per batch. */
export function resolveStatsOptions(model: CausalLM, opts: StatsOptions = {}): ResolvedStatsOptions {
  const spec: CorpusSpec = corpusSpecOf(opts.corpus, model);
  const corpus = resolveCorpus(spec);
  const own = spec.kind === 'model-samples';
  const maxPos = model.config.maxPositions;
  const samples = positiveInt(opts.samples ?? (own ? DEFAULT_MODEL_SAMPLES : DEFAULT_SAMPLES), 'samples');
  let maxLength: number;
  if (spec.kind === 'imported') {
    maxLength = 0; // not known for imported statistics (ROME used the model's n_positions)
  } else {
    maxLength = positiveInt(opts.maxLength ?? Math.min(maxPos, own ? DEFAULT_MODEL_SAMPLE_LENGTH : MAX_DEFAULT_LENGTH), 'maxLength');
    if (maxLength > maxPos) throw new AmendError(`max length ${maxLength} (--max-length, maxLength) is longer than the model's ${maxPos} positions; give at most ${maxPos}`);
  }
  const batchTokens = positiveInt(opts.batchTokens ?? Math.max(maxLength, 2048), 'batchTokens');
  return { corpus, samples, maxLength, batchTokens };
}

/** The second moment of the keys at one layer (cached). */
export async function layerSecondMoment(model: CausalLM, layer: number, opts: StatsOptions = {}): Promise<SecondMoment> {
  const [sm] = await layerSecondMoments(model, [layer], opts);
  return sm;
}

/**
 * Statistics this process computed but could not write to the cache (an unwritable folder), by
 * model and the cache file they were meant for: the demo's ROME and MEMIT share a layer, and a
 * run's edits ask again and again, so one failed write should not mean computing them each time.
 * Kept per model object, so they go with it: a process that loads model after model would
 * otherwise hold every one's matrices (ffn² doubles a layer) for good.
 */
const uncached = new WeakMap<CausalLM, Map<string, SecondMoment>>();

/**
 * The second moments at several layers, computed in ONE pass over the corpus for every layer that
 * is not cached yet. Results come in the order of `layers`.
 */
export async function layerSecondMoments(model: CausalLM, layers: readonly number[], opts: StatsOptions | null = {}): Promise<SecondMoment[]> {
  opts ??= {};
  requireObject(opts, 'layerSecondMoments takes options as an object ({ corpus, samples, ... })');
  refuseUnknownKeys(opts, STATS_OPTION_KEYS, 'layerSecondMoments');
  if (layers.length === 0) return [];
  const L = model.config.layers;
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new AmendError(`layer ${l} is out of range (the model has layers 0..${L - 1})`);
  }
  const wanted = [...new Set(layers)].sort((a, b) => a - b);
  const o = resolveStatsOptions(model, opts);
  // Statistics always describe the unedited model (the references compute C once per model and
  // layer): in a sequential run, later edits reuse the first edit's C instead of recomputing it on
  // weights the earlier edits changed.
  const session = sessionOf(model);
  const fingerprint = session ? session.baseFingerprint : modelFingerprint(model);
  const dim = model.config.ffn;
  const keyOf = (layer: number): StatsKey => ({
    fingerprint, layer, corpusId: o.corpus.id, corpusSlug: o.corpus.slug, samples: o.samples, maxLength: o.maxLength,
  });
  const done = new Map<number, SecondMoment>();
  const tokenizer = o.corpus.spec.kind === 'ids' ? 'unused' : tokenizerId(model); // token ids need none

  if (o.corpus.spec.kind === 'imported') {
    // Imported statistics have no corpus here to compute them from again.
    if (opts.refresh) throw new AmendError(`"${o.corpus.spec.name}" names imported statistics, which cannot be recomputed here; import the file again (amend stats --import FILE.npz --refresh) to replace them`);
    for (const l of wanted) done.set(l, await findImported(model, l, o.corpus.spec.name!, opts.samples, opts.cacheDir, fingerprint, opts.npzDir));
    return layers.map((l) => done.get(l)!);
  }

  if (!opts.noCache && !opts.refresh) {
    for (const l of wanted) {
      const file = statsCachePath(opts.cacheDir, keyOf(l));
      const hit = tryCache(file, keyOf(l), dim, tokenizer) ?? uncached.get(model)?.get(file);
      if (hit) done.set(l, hit);
    }
  }
  const missing = wanted.filter((l) => !done.has(l));
  if (missing.length > 0) {
    if (o.corpus.spec.kind === 'model-samples' && opts.corpus === undefined) {
      // The slow case (minutes on a large vocabulary) and the one a user did not choose: say so.
      process.emitWarning(`no corpus given (and no corpus-train.txt beside the model): the statistics of layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} `
        + `come from ${o.samples} texts the model writes itself, ${o.maxLength} tokens each (${(o.samples * o.maxLength).toLocaleString('en-US')} tokens to generate, minutes on a large vocabulary; cached afterwards); pass a real corpus with --corpus FILE to amend stats, --set mom2_dataset=FILE to amend edit and eval`);
    }
    const computed = await onBaseWeights(model, () => computeMoments(model, missing, o, outsideHold(opts.onProgress)));
    for (const [l, { acc, docs }] of computed) {
      const sm: SecondMoment = {
        layer: l, dim, count: acc.count, mom2: acc.finish(), corpus: o.corpus.id, samples: docs, fingerprint,
        requestedSamples: o.samples, maxLength: o.maxLength, source: 'computed',
      };
      if (!opts.noCache) {
        const file = statsCachePath(opts.cacheDir, keyOf(l));
        try {
          writeStatsFile(file, sm, {
            corpus_label: o.corpus.label, seed: String(drawSeed(o.corpus.spec)), batch_tokens: String(o.batchTokens), accumulate: 'float32 GEMM per batch, float64 across batches',
            tokenizer,
          });
          sm.file = file;
        } catch (e) {
          process.emitWarning(`statistics for layer ${l} were computed but not cached: ${(e as Error).message}`);
          // this process at least need not compute them again
          let mine = uncached.get(model);
          if (!mine) uncached.set(model, (mine = new Map()));
          mine.set(file, sm);
        }
      }
      done.set(l, sm);
    }
  }
  if (opts.samples !== undefined) warnFewerTexts(o, Math.min(...wanted.map((l) => done.get(l)!.samples)));
  return layers.map((l) => done.get(l)!);
}

const warnedFewer = new Set<string>();

/**
 * A corpus smaller than the samples asked for is used whole (as ROME's sampler does); the numbers
 * then describe fewer texts than the user asked for, which they should hear once, not per layer.
 */
function warnFewerTexts(o: ResolvedStatsOptions, used: number): void {
  const key = `${o.corpus.id}\n${o.samples}`;
  if (used >= o.samples || warnedFewer.has(key)) return;
  warnedFewer.add(key);
  process.emitWarning(`corpus ${o.corpus.label} has ${used} texts, fewer than the ${o.samples} samples asked for (--samples, mom2_n_samples); the statistics use all ${used}, and record that number`);
}

/**
 * The identity of the model's tokenizer: the sha256 of its files (tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json) in the model folder, each read once per process
 * as corpus files are; "none" without a tokenizer, "unknown" for one not read from a folder.
 */
function tokenizerId(model: CausalLM): string {
  if (!model.tokenizer) return 'none';
  if (!model.dir) return 'unknown';
  const parts = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((name) => {
    const file = path.join(model.dir!, name);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    return `${name}:${st ? contentSha(file, st) : 'absent'}`;
  });
  return `sha256:${createHash('sha256').update(parts.join('\n')).digest('hex')}`;
}

/** Runs `fn` with every patch of the model's edit session taken off, then puts them back in order (exact). */
export async function onBaseWeights<T>(model: CausalLM, fn: () => Promise<T>): Promise<T> {
  const session = sessionOf(model);
  const applied = session?.applied() ?? [];
  if (applied.length === 0) return fn();
  return holdModel(model, 'key statistics computed on its unedited weights', async () => {
    for (let i = applied.length - 1; i >= 0; i--) session!.revert(applied[i]);
    try {
      return await fn();
    } finally {
      for (const p of applied) session!.apply(p, { force: true, quiet: true });
    }
  });
}

/**
 * A cached file for `key`, or null (absent, unreadable, damaged, or for other settings: then
 * recomputed and overwritten). A file that is there but cannot be used is named in a warning.
 */
function tryCache(file: string, key: StatsKey, dim: number, tokenizer: string): SecondMoment | null {
  removeDeadStatsTemps(file);
  if (!fs.existsSync(file)) return null;
  let got: ReturnType<typeof readStatsFile>;
  try {
    got = readStatsFile(file);
  } catch (e) {
    process.emitWarning(`cached statistics ${file} cannot be used, so they are computed again: ${(e as Error).message}`);
    return null;
  }
  const { sm, metadata: m } = got;
  // The tokenizer decides which tokens a text is (a tokenizer_config that now adds a BOS, a fixed
  // tokenizer.json) while the weights, and so the fingerprint, stay the same. Files from before
  // it was recorded have no tokenizer entry and are taken as they are.
  const sameTokenizer = m.tokenizer === undefined || m.tokenizer === tokenizer;
  const same = m.fingerprint === key.fingerprint && sm.layer === key.layer && m.corpus === key.corpusId
    && sm.requestedSamples === key.samples && sm.maxLength === key.maxLength && sm.dim === dim && sameTokenizer;
  if (!same) return null;
  sm.source = 'cache';
  return sm;
}

// ---------------------------------------------------------------------------------------------
// the pass over the corpus

/** Tokenizes a document and cuts it to maxLength, keeping the special tokens the tokenizer adds. */
function makeTokenizer(model: CausalLM, maxLength: number, label: string): (doc: Doc) => Seq {
  let encode: ((text: string) => number[]) | null = null;
  let lead = 0, trail = 0;
  const init = (): ((text: string) => number[]) => {
    if (!model.tokenizer) {
      throw new AmendError(`corpus ${label} is text, but the model${model.dir ? ` at ${model.dir}` : ''} has no tokenizer.json; give token ids (corpus kind "ids") or add the tokenizer`);
    }
    const tok = model.tokenizer;
    // What the tokenizer adds around any text (e.g. Llama's BOS): kept when a document is cut.
    const withSpecial = tok.encode('a'), plain = tok.encode('a', { addSpecialTokens: false });
    const at = plain.length > 0 ? withSpecial.findIndex((_, i) => plain.every((id, k) => withSpecial[i + k] === id)) : -1;
    if (at >= 0) {
      lead = at;
      trail = withSpecial.length - at - plain.length;
    }
    return (text) => tok.encode(text);
  };
  return (doc) => {
    if ('ids' in doc) return { ids: doc.ids.slice(0, maxLength), skip: doc.skip ?? 0 };
    encode ??= init();
    // A long document is tokenized from a prefix first (a token rarely spans 16 characters); the
    // prefix is trusted only when it yields a clear margin of tokens beyond the cut.
    const margin = 16;
    const prefixChars = (maxLength + margin) * 16;
    let ids: number[] | null = null;
    if (doc.text.length > prefixChars * 2) {
      const part = encode(doc.text.slice(0, prefixChars));
      if (part.length - lead - trail >= maxLength + margin) ids = part;
    }
    ids ??= encode(doc.text);
    if (ids.length <= maxLength) return { ids, skip: 0 };
    if (lead + trail >= maxLength) return { ids: ids.slice(0, maxLength), skip: 0 };
    const head = ids.slice(0, maxLength - trail);
    return { ids: trail > 0 ? head.concat(ids.slice(ids.length - trail)) : head, skip: 0 };
  };
}

/**
 * The seed of the corpus's random draw: the subset of a text corpus (always 1, so every run picks
 * the same documents), or the model's own samples (the corpus's seed, which its id carries).
 */
const drawSeed = (spec: ResolvedCorpus['spec']): number => (spec.kind === 'model-samples' ? spec.seed ?? 1 : 1);

/** The documents to use, tokenized, in groups, with the total count for progress. */
async function documentStream(model: CausalLM, o: ResolvedStatsOptions, groupDocs = GROUP_DOCS): Promise<{ total: number; groups: AsyncGenerator<Seq[]> }> {
  const spec = o.corpus.spec;
  if (spec.kind === 'model-samples') return { total: o.samples, groups: modelSamples(model, o.samples, o.maxLength, drawSeed(spec)) };
  const all = await countDocs(spec);
  if (all === 0) throw new AmendError(`corpus ${o.corpus.label} holds no documents`);
  const chosen = chooseSubset(all, o.samples, drawSeed(spec));
  const total = Math.min(all, o.samples);
  const tokenize = makeTokenizer(model, o.maxLength, o.corpus.label);
  async function* groups(): AsyncGenerator<Seq[]> {
    let group: Seq[] = [];
    let i = 0;
    for await (const doc of corpusDocs(spec)) {
      const use = !chosen || chosen[i] === 1;
      i++;
      if (!use) continue;
      group.push(tokenize(doc));
      if (group.length === groupDocs) {
        yield group;
        group = [];
      }
    }
    if (group.length) yield group;
  }
  return { total, groups: groups() };
}

/** Samples written by the model from its start token, GEN_BATCH at a time. */
async function* modelSamples(model: CausalLM, samples: number, maxLength: number, seed: number): AsyncGenerator<Seq[]> {
  const tok = model.tokenizer;
  const start = model.config.bosId ?? model.config.eosId ?? tok?.bosId ?? tok?.eosId ?? null;
  if (start === null) {
    throw new AmendError('model samples need a start token, but the model declares no bos_token_id or eos_token_id; give a corpus instead');
  }
  // Counted only where the tokenizer puts the same token before every text (Llama's BOS).
  const countStart = tok !== null && tok.encode('a')[0] === start;
  for (let b = 0, made = 0; made < samples; b++) {
    const n = Math.min(GEN_BATCH, samples - made);
    const prompts = Array.from({ length: n }, () => [start]);
    const outs = maxLength > 1
      ? generate(model, prompts, { maxNewTokens: maxLength - 1, greedy: false, temperature: 1, seed: (seed * 1000003 + b) >>> 0 })
      : prompts.map(() => []);
    yield outs.map((out) => ({ ids: [start, ...out], skip: countStart ? 0 : 1 }));
    made += n;
    await new Promise((r) => setImmediate(r));
  }
}

/** Packs a group into batches as ROME's length_collation: longest first, rows × width ≤ batchTokens. */
export function packBatches(group: readonly Seq[], batchTokens: number): Seq[][] {
  const items = group.filter((s) => s.ids.length > 0).sort((a, b) => b.ids.length - a.ids.length);
  const batches: Seq[][] = [];
  let batch: Seq[] = [];
  let width = 0;
  for (const it of items) {
    if (batch.length > 0 && width * (batch.length + 1) > batchTokens) {
      batches.push(batch);
      batch = [];
    }
    if (batch.length === 0) width = it.ids.length;
    batch.push(it);
  }
  if (batch.length) batches.push(batch);
  return batches;
}

async function computeMoments(model: CausalLM, layers: number[], o: ResolvedStatsOptions,
  onProgress?: (done: number, total: number) => void): Promise<Map<number, { acc: GramAccumulator; docs: number }>> {
  const dim = model.config.ffn;
  const accs = new Map(layers.map((l) => [l, new GramAccumulator(dim)]));
  const { docs } = await forEachKeys(model, layers, o, (l, x, rows) => accs.get(l)!.add(x, rows), { onProgress });
  const count = accs.get(layers[layers.length - 1])!.count;
  if (count === 0) throw new AmendError(`corpus ${o.corpus.label} yielded no tokens to measure`);
  return new Map(layers.map((l) => [l, { acc: accs.get(l)!, docs }]));
}

/**
 * One pass over the corpus as the statistics read it (the documents chosen, tokenized, cut and
 * packed as above), handing every batch's keys at each of `layers` (ascending) to `onKeys`: `x`
 * is the batch's activation viewed as [rows, ffn], `rows` the rows of real, counted tokens.
 * `maxTokens` ends the pass after the first group of documents (`groupDocs` of them; model
 * samples come in groups of their own) that reaches that many counted tokens: a group is read
 * whole, since its batches are sorted by length and a part of it would favour long documents.
 * Returns the documents read and the tokens counted.
 */
export async function forEachKeys(model: CausalLM, layers: readonly number[], o: ResolvedStatsOptions,
  onKeys: (layer: number, x: Float32Array, rows: Int32Array) => void,
  opts: { onProgress?: (done: number, total: number) => void; maxTokens?: number; groupDocs?: number } = {}): Promise<{ docs: number; tokens: number }> {
  const dim = model.config.ffn;
  const deepest = layers[layers.length - 1];
  let rows = new Int32Array(0);
  const hooks: Hook[] = layers.map((l) => ({
    point: hookPoint.mlpKeys(l),
    fn: (x) => {
      if (x.dim(-1) !== dim) throw new AmendError(`blocks.${l}.mlp.keys has width ${x.dim(-1)}, the config says ${dim}`);
      onKeys(l, x.data as Float32Array, rows);
      if (l === deepest) throw STOP;
    },
  }));
  const { total, groups } = await documentStream(model, o, opts.groupDocs);
  const { onProgress, maxTokens = Infinity } = opts;
  let docs = 0, tokens = 0;
  onProgress?.(0, total);
  for await (const group of groups) {
    docs += group.length - group.filter((s) => s.ids.length > 0).length; // empty documents: nothing to add
    for (const batch of packBatches(group, o.batchTokens)) {
      const B = batch.length, T = batch[0].ids.length;
      const ids = new Int32Array(B * T), mask = new Uint8Array(B * T);
      const counted: number[] = [];
      for (let b = 0; b < B; b++) {
        const s = batch[b];
        for (let t = 0; t < s.ids.length; t++) {
          ids[b * T + t] = s.ids[t];
          mask[b * T + t] = 1;
          if (t >= s.skip) counted.push(b * T + t);
        }
      }
      rows = Int32Array.from(counted);
      try {
        noGrad(() => model.forward(ids, B, T, { attentionMask: mask, logitsAt: 'none', hooks }));
      } catch (e) {
        if (e !== STOP) throw e;
      }
      docs += B;
      tokens += rows.length;
      onProgress?.(docs, total);
      await new Promise((r) => setImmediate(r)); // let timers (progress bars, signals) run
    }
    if (tokens >= maxTokens) break;
  }
  return { docs, tokens };
}
