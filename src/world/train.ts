/**
 * Training the demo model: a GPT-2-architecture causal LM trained from a seeded initialisation on
 * the demo world's corpus with Amend's own engine (full backward pass, AdamW, warmup + cosine
 * learning rate, global-norm gradient clipping).
 *
 * Determinism: everything random (initialisation, line order, phrasing noise, evaluation sample)
 * comes from the seed, and the optimiser runs in plain JavaScript. The forward and backward
 * kernels run on the backend in use: the js backend gives the same bits everywhere; the native
 * backend gives the same bits for a given GEMM / BLAS and SIMD level (and CPU, under an external
 * BLAS), whatever the thread count (its threads split outputs, never a reduction: 1 and 2 threads
 * give identical weights, checked on the full configuration). Another BLAS or SIMD level rounds
 * differently and yields different, equally good weights. `backendSignature()` names what the
 * result depends on.
 */
import os from 'node:os';
import { kernels } from '../backend/index.js';
import { AmendError } from '../errors.js';
import { CausalLM } from '../models/model.js';
import { hookPoint, type Hook } from '../models/hooks.js';
import { buildSpec, expectedShapes } from '../models/arch.js';
import { parseConfig } from '../models/config.js';
import * as T from '../tensor/index.js';
import { Tensor } from '../tensor/index.js';
import { AdamW, clipCoefficient, decayGroups, gradNorm, warmupCosine, type LrSchedule } from '../tensor/optim.js';
import { AmendTokenizer } from '../tokenizer/index.js';
import type { Corpus } from './corpus.js';
import { fillTemplate } from './phrasings.js';
import { WorldIndex, factPrompts, renderLine } from './query.js';
import { Rng, deriveSeed } from './rng.js';
import type { Fact, PhrasingSplit, World } from './types.js';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface WorldModelShape {
  layers: number;
  hidden: number;
  heads: number;
  /** Learned positions (n_positions); training lines are far shorter, the rest serves editing prompts. */
  positions: number;
  /** MLP width (GPT-2's n_inner); absent: 4 × hidden. */
  inner?: number;
}

export interface WorldTrainConfig {
  model: WorldModelShape;
  epochs: number;
  /** Lines per batch. */
  batchSize: number;
  /** Peak learning rate (after warmup). */
  lr: number;
  /** Warmup steps (linear from lr / warmup to lr). */
  warmupSteps: number;
  /** Final learning rate as a fraction of the peak (cosine decay over all steps). */
  minLrRatio: number;
  weightDecay: number;
  betas: [number, number];
  /** Global gradient-norm limit. */
  clipNorm: number;
  /** Loss weight of the object tokens of every fact in a line (other tokens weigh 1). */
  answerWeight: number;
  /** Std of the N(0, std²) initialisation (residual projections get std / √(2 · layers), as GPT-2). */
  initStd: number;
  /** Facts whose every phrasing is scored after each epoch (train / held-out accuracy in the log). */
  evalFacts: number;
  /** Biographies per subject in the corpus (see CorpusOptions.bios). */
  bios: number;
  /**
   * Residual dropout: the probability of zeroing each output of every attention and MLP block
   * during training (GPT-2's resid_pdrop; applied through hooks, masks drawn from the seed).
   * 0.3 in the committed model (GPT-2 used 0.1): a subject's early key then depends less on the
   * words around it, so ROME's and MEMIT's edits reach more of their paraphrases for the same
   * neighbourhood (bench/RESULTS.md, "residual dropout" and "more dropout"). At 0.3 the model
   * needs 28 epochs instead of 20 to learn its facts.
   */
  dropout: number;
  /**
   * Block drop (stochastic depth, LayerDrop): the probability that one line of a batch skips the
   * output of one attention or MLP block, drawn per line and block, kept outputs scaled by
   * 1 / (1 − p). A model trained so cannot leave a fact to one MLP; 0 in the committed model.
   */
  layerDrop: number;
  /**
   * Question forms of the training statements: every fact also appears as "Q: <statement>? A:
   * <object>" for each of its relation's training statements ("Q: Kupo Sterier was born in? A:
   * Maburg"), so that inside a question the relation is read from its content words as in a
   * statement, not from the frame of the one training question. Built from training phrasings
   * only; held-out phrasings stay unseen.
   */
  statementQuestions: boolean;
  /**
   * Phrasing noise: the probability of replacing each word of a phrasing in the input (never a
   * subject or object token) by a random token, so that the model reads the relation from
   * whichever cue words it knows and is not thrown by words it has never seen.
   */
  phraseNoise: number;
  /**
   * Sequence packing: 0 trains each line in its own row (starting at position 0); N > 0 packs the
   * lines of a batch, in order, into rows of at most N tokens, each line after the previous one's
   * <|endoftext|>, as language-model pretraining packs documents. Subjects then occur at every
   * position and after unrelated text, so their representation cannot lean on where a line starts.
   * Off in the committed model: ROME edits a packed model worse (bench/RESULTS.md).
   */
  packTokens: number;
  /**
   * Learned absolute positions (GPT-2's wpe). false keeps wpe at zero and out of training: the
   * checkpoint is still an ordinary GPT-2 one, and the model finds order from causal attention
   * alone, so a subject's early representation does not depend on where the sentence starts.
   * On in the committed model: without positions ROME edits it worse (bench/RESULTS.md).
   */
  positionEmbeddings: boolean;
  /**
   * A start token: every line begins with <|endoftext|>, and the tokenizer puts it in front of
   * every text it encodes (tokenizer.json's post-processor, which Hugging Face tools apply too), so
   * attention heads have somewhere to look that carries no content. A subject's early key then
   * depends less on the words before it, so ROME edits reach their paraphrases (bench/RESULTS.md).
   * On in the committed model.
   */
  bos: boolean;
}

/** The configuration of the committed demo model (world/). */
export const WORLD_TRAIN_CONFIG: Readonly<WorldTrainConfig> = Object.freeze({
  model: { layers: 4, hidden: 192, heads: 6, positions: 128 },
  epochs: 28,
  batchSize: 64,
  lr: 3e-3,
  warmupSteps: 100,
  minLrRatio: 0.05,
  weightDecay: 0.1,
  betas: [0.9, 0.98] as [number, number],
  clipNorm: 1,
  answerWeight: 4,
  initStd: 0.02,
  evalFacts: 256,
  bios: 4,
  dropout: 0.3,
  layerDrop: 0,
  statementQuestions: true,
  phraseNoise: 0.1,
  packTokens: 0,
  positionEmbeddings: true,
  bos: true,
});

/**
 * A tiny configuration on a tiny world, for the reproducibility test: the same code path, seconds
 * on any backend; the optimiser settings and dropout are the committed model's.
 */
export const SMALL_TRAIN_CONFIG: Readonly<WorldTrainConfig> = Object.freeze({
  ...WORLD_TRAIN_CONFIG,
  model: { layers: 2, hidden: 32, heads: 4, positions: 128 },
  epochs: 3,
  batchSize: 16,
  warmupSteps: 10,
  evalFacts: 16,
  bios: 1,
});

/** World sizes of the small configuration. */
export const SMALL_WORLD_SIZES = Object.freeze({
  people: 24, cities: 8, countries: 4, organisations: 6, languages: 2, professions: 4, instruments: 4,
  founders: 2, headquarterCities: 2,
});
export const SMALL_VOCAB_SIZE = 512;

/** The Hugging Face GPT-2 config.json of a demo model. */
function worldModelConfig(shape: WorldModelShape, vocabSize: number, eosId: number): Record<string, unknown> {
  if (shape.hidden % shape.heads !== 0) throw new AmendError(`hidden size ${shape.hidden} is not divisible by ${shape.heads} heads`);
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: vocabSize,
    n_positions: shape.positions,
    n_ctx: shape.positions,
    n_embd: shape.hidden,
    n_layer: shape.layers,
    n_head: shape.heads,
    n_inner: shape.inner ?? null,
    activation_function: 'gelu_new',
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    scale_attn_weights: true,
    use_cache: true,
    tie_word_embeddings: true,
    bos_token_id: eosId,
    eos_token_id: eosId,
    torch_dtype: 'float32',
  };
}

/**
 * What the numbers of a build depend on: backend, BLAS (and its SIMD kernel) and platform, and
 * the CPU only under an external BLAS, which picks its kernels by CPU. Amend's own GEMM and
 * kernels run the code of the SIMD level named in the BLAS string on any CPU that has it (the
 * small build gave the same bytes on AMD Zen 5 and Intel Emerald Rapids). The thread count is not
 * part of it: the native kernels split their outputs between threads, never a reduction, so 1, 2
 * and 4 threads give the same bits (checked with the small configuration).
 */
export function backendSignature(): string {
  const info = kernels().info();
  const base = `${info.name} | ${info.blas} | ${process.platform}-${process.arch}`;
  return info.name === 'js' || info.blas.startsWith('own ') ? base : `${base} | ${cpuModel()}`;
}

export function cpuModel(): string {
  return os.cpus()[0]?.model?.trim() ?? 'unknown cpu';
}

// ---------------------------------------------------------------------------------------------
// Initialisation

/**
 * Seeded GPT-2 initialisation of every tensor the config needs: N(0, std²) matrices and
 * embeddings, residual output projections N(0, (std / √(2L))²), norm gains 1, biases 0. Each tensor
 * has its own stream (seed, name), so adding a tensor never shifts the others. Returns parameters.
 */
function initWeights(rawConfig: Record<string, unknown>, seed: number, std: number): Map<string, Tensor> {
  const config = parseConfig(rawConfig);
  const spec = buildSpec(config, () => false);
  const norms = new Set<string>([spec.lnf.w, ...spec.layers.flatMap((l) => [l.ln1.w, ...(l.ln2 ? [l.ln2.w] : [])])]);
  const residual = new Set<string>(spec.layers.flatMap((l) => [l.o.w, l.down.w]));
  const out = new Map<string, Tensor>();
  for (const [name, shape] of expectedShapes(config, spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (norms.has(name)) data = new Float32Array(n).fill(1);
    else if (name.endsWith('.bias')) data = new Float32Array(n);
    else {
      const s = residual.has(name) ? std / Math.sqrt(2 * config.layers) : std;
      data = T.randn(n, T.mulberry32(deriveSeed(seed, `init/${name}`)), s);
    }
    out.set(name, T.parameter(new Tensor(data, shape)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training data: token ids of every corpus line and the loss weight of every predicted token

export interface TrainDoc {
  /** Line tokens followed by <|endoftext|>. */
  ids: Int32Array;
  /** weights[t] weighs the prediction of ids[t + 1] (length ids.length - 1). */
  weights: Float32Array;
  /** answer[t] = 1 where ids[t + 1] is an object token. */
  answer: Uint8Array;
  /** phrase[t] = 1 where ids[t] is a word of the phrasing (neither subject, object nor <|endoftext|>). */
  phrase: Uint8Array;
}

interface Sentence {
  prompt: string;
  object: string;
  /** Character span of the subject in the prompt. */
  subject: [number, number];
}

/**
 * Tokenises the training lines and marks the object tokens of every fact they state. A line is a
 * single fact (statement or question) or a biography (statements joined by spaces). Object tokens
 * are found by tokenising the text up to the object's start and end: both must be prefixes of the
 * whole line's tokens (true for the GPT-2 split rules, checked here).
 */
export function prepareDocs(world: World, lines: readonly string[], tok: AmendTokenizer, answerWeight: number, bos = false): TrainDoc[] {
  const index = new WorldIndex(world);
  const eos = tok.eosId;
  if (eos === null) throw new AmendError('the world tokenizer has no <|endoftext|> token');
  const sentences = new Map<string, Sentence>();
  for (const f of world.facts) {
    const rel = index.relation(f.relation);
    const subject = index.name(f.subject), object = index.name(f.object);
    for (const p of rel.phrasings) {
      if (p.split !== 'train') continue;
      const prompt = fillTemplate(p.template, subject);
      const at = p.template.indexOf('{}');
      sentences.set(renderLine(prompt, object, p.kind), { prompt, object, subject: [at, at + subject.length] });
      if (p.kind === 'statement') {
        const q = statementQuestionPrompt(prompt);
        const qa = q.indexOf(prompt) + at;
        sentences.set(renderLine(q, object, 'question'), { prompt: q, object, subject: [qa, qa + subject.length] });
      }
    }
  }
  const docs: TrainDoc[] = [];
  for (const line of lines) {
    // Character spans of the objects and subjects in the line (a fact, or a biography "S1. S2. S3.").
    const spans: [number, number][] = [], subjects: [number, number][] = [];
    let at = 0;
    for (const piece of sentences.has(line) ? [line] : line.split(/(?<=\.) /)) {
      const s = sentences.get(piece);
      if (!s) throw new AmendError(`training line is neither a fact nor a biography of facts: ${JSON.stringify(line)}`);
      spans.push([at + s.prompt.length + 1, at + s.prompt.length + 1 + s.object.length]);
      subjects.push([at + s.subject[0], at + s.subject[1]]);
      at += piece.length + 1;
    }
    const lineIds = tok.encode(line, { addSpecialTokens: false });
    // With a start token, every index into lineIds moves one place to the right in ids.
    const lead = bos ? 1 : 0;
    const ids = Int32Array.from([...(bos ? [eos] : []), ...lineIds, eos]);
    const weights = new Float32Array(ids.length - 1).fill(1);
    const answer = new Uint8Array(ids.length - 1);
    const phrase = new Uint8Array(ids.length).fill(1, lead, lead + lineIds.length);
    for (const [c0, c1] of spans) {
      const a = prefixTokens(tok, line, c0 - 1, lineIds) + lead, b = prefixTokens(tok, line, c1, lineIds) + lead;
      for (let k = a; k < b; k++) {
        weights[k - 1] = answerWeight;
        answer[k - 1] = 1;
        phrase[k] = 0;
      }
    }
    for (const [c0, c1] of subjects) {
      // The space before the subject belongs to its first token.
      const a = prefixTokens(tok, line, c0 > 0 && line[c0 - 1] === ' ' ? c0 - 1 : c0, lineIds) + lead, b = prefixTokens(tok, line, c1, lineIds) + lead;
      phrase.fill(0, a, b);
    }
    docs.push({ ids, weights, answer, phrase });
  }
  return docs;
}

/** Wraps a training statement's prompt as a question: "Q: {} was born in? A:". */
function statementQuestionPrompt(statementPrompt: string): string {
  return `Q: ${statementPrompt}? A:`;
}

/** "Q: <statement>? A: <object>" for every fact and every training statement of its relation. */
function statementQuestionLines(world: World): string[] {
  const index = new WorldIndex(world);
  const out: string[] = [];
  for (const f of world.facts) {
    const rel = index.relation(f.relation);
    for (const p of rel.phrasings) {
      if (p.split !== 'train' || p.kind !== 'statement') continue;
      out.push(renderLine(statementQuestionPrompt(fillTemplate(p.template, index.name(f.subject))), index.name(f.object), 'question'));
    }
  }
  return out;
}

/** Number of tokens of line[0:chars], checked to be a prefix of the whole line's tokens. */
function prefixTokens(tok: AmendTokenizer, line: string, chars: number, lineIds: readonly number[]): number {
  const ids = tok.encode(line.slice(0, chars), { addSpecialTokens: false });
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== lineIds[i]) throw new AmendError(`tokens of ${JSON.stringify(line.slice(0, chars))} are not a prefix of the line's tokens`);
  }
  return ids.length;
}

/**
 * The batches of one epoch: lines shuffled, then sorted by length within windows of 16 batches
 * (little padding), then the batches shuffled. Deterministic in (rng state).
 */
function epochBatches(docs: readonly TrainDoc[], batchSize: number, rng: Rng): number[][] {
  const order = rng.shuffle(docs.map((_, i) => i));
  const window = batchSize * 16;
  const batches: number[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((x, y) => docs[x]!.ids.length - docs[y]!.ids.length || x - y);
    for (let b = 0; b < chunk.length; b += batchSize) batches.push(chunk.slice(b, b + batchSize));
  }
  return rng.shuffle(batches);
}

/** Phrasing noise: replace phrasing tokens with probability p by a random id below vocab. */
interface PhraseNoise {
  p: number;
  vocab: number;
  rand: () => number;
}

interface Batch {
  ids: Int32Array;
  mask: Uint8Array;
  B: number;
  L: number;
  rows: number[];
  targets: Int32Array;
  weights: Float32Array;
  answer: Uint8Array;
  weightSum: number;
}

/**
 * The rows of a batch: each line alone, or (packTokens > 0) the lines in order, packed greedily
 * into rows of at most packTokens tokens.
 */
export function packRows(docs: readonly TrainDoc[], which: readonly number[], packTokens: number): number[][] {
  if (packTokens <= 0) return which.map((i) => [i]);
  const rows: number[][] = [];
  let row: number[] = [], len = 0;
  for (const i of which) {
    const n = docs[i]!.ids.length;
    if (row.length > 0 && len + n > packTokens) {
      rows.push(row);
      row = [];
      len = 0;
    }
    row.push(i);
    len += n;
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

/**
 * A padded batch of rows of lines (see packRows). Inside a row, each line's <|endoftext|> predicts
 * the next line's first token (weight 1). With `noise`, each phrasing word of the input (never a
 * subject or object token) is replaced with probability noise.p by a random token id below
 * noise.vocab (targets unchanged).
 */
function makeBatch(docs: readonly TrainDoc[], rowsOfDocs: readonly (readonly number[])[], padId: number, noise?: PhraseNoise): Batch {
  const B = rowsOfDocs.length;
  const L = Math.max(...rowsOfDocs.map((r) => r.reduce((n, i) => n + docs[i]!.ids.length, 0)));
  const ids = new Int32Array(B * L).fill(padId), mask = new Uint8Array(B * L);
  const rows: number[] = [], targets: number[] = [], weights: number[] = [], answer: number[] = [];
  let weightSum = 0;
  rowsOfDocs.forEach((row, b) => {
    let at = b * L;
    row.forEach((di, k) => {
      const d = docs[di]!;
      ids.set(d.ids, at);
      mask.fill(1, at, at + d.ids.length);
      if (noise) {
        for (let t = 0; t < d.ids.length; t++) {
          if (d.phrase[t] && noise.rand() < noise.p) ids[at + t] = Math.floor(noise.rand() * noise.vocab);
        }
      }
      for (let t = 0; t + 1 < d.ids.length; t++) {
        rows.push(at + t);
        targets.push(d.ids[t + 1]!);
        weights.push(d.weights[t]!);
        answer.push(d.answer[t]!);
        weightSum += d.weights[t]!;
      }
      at += d.ids.length;
      const next = row[k + 1];
      if (next !== undefined) {
        rows.push(at - 1);
        targets.push(docs[next]!.ids[0]!);
        weights.push(1);
        answer.push(0);
        weightSum += 1;
      }
    });
  });
  return { ids, mask, B, L, rows, targets: Int32Array.from(targets), weights: Float32Array.from(weights), answer: Uint8Array.from(answer), weightSum };
}

/**
 * An inverted-dropout mask: each run of `unit` consecutive elements is 0 (probability p) or
 * 1 / (1 − p), one draw from `rand` per run, in order. unit 1 drops single elements (residual
 * dropout); the size of one line of a [B, T, width] activation drops whole lines (block drop).
 */
export function dropMask(shape: readonly number[], p: number, rand: () => number, unit = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const keep = 1 / (1 - p);
  const data = new Float32Array(n);
  for (let s = 0; s < n; s += unit) {
    if (rand() < p) continue;
    if (unit === 1) data[s] = keep; // the common case, per element on every training step
    else data.fill(keep, s, s + unit);
  }
  return new Tensor(data, shape);
}

// ---------------------------------------------------------------------------------------------
// Scoring: does the model produce the object after the prompt?

export interface ScoreItem {
  prompt: string;
  /** Without the leading space (CounterFact convention); " " + target is scored. */
  target: string;
}

/**
 * Teacher-forced top-1 check of each target after its prompt: true when every target token is the
 * argmax given the prompt and the target tokens before it (what greedy decoding produces).
 * Prompts are encoded as the tokenizer encodes them for any command (no BOS for GPT-2).
 */
function scoreTop1(model: CausalLM, items: readonly ScoreItem[], batchSize = 64): boolean[] {
  const tok = model.tok();
  const pad = tok.eosId ?? 0;
  const enc = items.map((it) => {
    const p = tok.encode(it.prompt), o = tok.encode(' ' + it.target, { addSpecialTokens: false });
    if (p.length === 0 || o.length === 0) throw new AmendError(`cannot score an empty prompt or target: ${JSON.stringify(it)}`);
    return { p, o };
  });
  const out = new Array<boolean>(items.length).fill(false);
  // Similar lengths together: sort indices by length.
  const order = enc.map((_, i) => i).sort((a, b) => enc[a]!.p.length + enc[a]!.o.length - (enc[b]!.p.length + enc[b]!.o.length) || a - b);
  return T.noGrad(() => {
    for (let s = 0; s < order.length; s += batchSize) {
      const which = order.slice(s, s + batchSize);
      const L = Math.max(...which.map((i) => enc[i]!.p.length + enc[i]!.o.length - 1));
      const B = which.length;
      const ids = new Int32Array(B * L).fill(pad), mask = new Uint8Array(B * L);
      const rows: number[] = [], want: number[] = [], owner: number[] = [];
      which.forEach((i, b) => {
        const { p, o } = enc[i]!;
        const seq = [...p, ...o].slice(0, -1);
        ids.set(seq, b * L);
        mask.fill(1, b * L, b * L + seq.length);
        o.forEach((id, j) => { rows.push(b * L + p.length - 1 + j); want.push(id); owner.push(i); });
      });
      const { logits } = model.forward(ids, B, L, { attentionMask: mask, logitsAt: rows });
      const arg = T.argmax(logits!);
      const ok = new Map<number, boolean>();
      owner.forEach((i, r) => ok.set(i, (ok.get(i) ?? true) && arg[r] === want[r]));
      for (const [i, v] of ok) out[i] = v;
    }
    return out;
  });
}

export interface FactScore {
  fact: Fact;
  /** One entry per phrasing of the relation, in its order. */
  phrasings: { template: string; split: PhrasingSplit; correct: boolean }[];
}

/** Scores every phrasing (train and held-out) of each fact. */
export function scoreFacts(model: CausalLM, world: World | WorldIndex, facts: readonly Fact[], batchSize = 64): FactScore[] {
  const index = world instanceof WorldIndex ? world : new WorldIndex(world);
  const prompts = facts.map((f) => factPrompts(index, f));
  const flat = prompts.flat();
  const ok = scoreTop1(model, flat, batchSize);
  let k = 0;
  return facts.map((fact, i) => ({
    fact,
    phrasings: prompts[i]!.map((p) => ({ template: p.template, split: p.split, correct: ok[k++]! })),
  }));
}

/** Phrasings (relation id + template) answered below `threshold`, as "P19 \"{}'s birthplace is\" 42 %". */
function weakPhrasings(scores: readonly FactScore[], threshold: number): string[] {
  const acc = new Map<string, [number, number]>();
  for (const s of scores) {
    for (const p of s.phrasings) {
      const key = `${s.fact.relation} ${JSON.stringify(p.template)}`;
      const a = acc.get(key) ?? [0, 0];
      a[0] += p.correct ? 1 : 0;
      a[1]++;
      acc.set(key, a);
    }
  }
  return [...acc].filter(([, [ok, n]]) => ok / n < threshold).map(([k, [ok, n]]) => `${k} ${Math.round((100 * ok) / n)} %`);
}

export interface AccuracySummary {
  /** Fraction of (fact, phrasing) pairs answered correctly, over train / held-out / all phrasings. */
  train: number;
  heldOut: number;
  all: number;
  /** Fraction of facts answered correctly in every phrasing. */
  factsAllPhrasings: number;
  prompts: { train: number; heldOut: number };
}

export function summarise(scores: readonly FactScore[]): AccuracySummary {
  let tr = 0, trN = 0, ho = 0, hoN = 0, full = 0;
  for (const s of scores) {
    let all = true;
    for (const p of s.phrasings) {
      if (p.split === 'train') { trN++; if (p.correct) tr++; } else { hoN++; if (p.correct) ho++; }
      all &&= p.correct;
    }
    if (all) full++;
  }
  return {
    train: trN ? tr / trN : 0,
    heldOut: hoN ? ho / hoN : 0,
    all: trN + hoN ? (tr + ho) / (trN + hoN) : 0,
    factsAllPhrasings: scores.length ? full / scores.length : 0,
    prompts: { train: trN, heldOut: hoN },
  };
}

// ---------------------------------------------------------------------------------------------
// The training loop

export interface EpochLog {
  epoch: number;
  steps: number;
  lr: number;
  /** Weighted training loss (mean over the epoch's batches). */
  loss: number;
  /** Mean NLL of object tokens over the epoch. */
  answerLoss: number;
  /** Mean gradient norm before clipping. */
  gradNorm: number;
  /** Accuracy on the evaluation sample (train / held-out phrasings). */
  trainAcc: number;
  heldOutAcc: number;
  seconds: number;
  tokensPerSecond: number;
}

export interface TrainOptions {
  seed: number;
  config: WorldTrainConfig;
  /** A line of the build log (loss curve). */
  log?: (line: string) => void;
  /** Per epoch, for progress display and machine-readable logs. */
  onEpoch?: (e: EpochLog) => void;
  /** Per step, for a progress bar. */
  onStep?: (step: number, totalSteps: number) => void;
}

export interface TrainResult {
  model: CausalLM;
  /** The training lines, as given to the model (corpus lines, then any statement questions). */
  lines: string[];
  rawConfig: Record<string, unknown>;
  epochs: EpochLog[];
  trainTokens: number;
  seconds: number;
  parameters: number;
}

/** The lines the model trains on: the corpus lines, then (if configured) the statement questions in seeded order. */
export function trainingLines(world: World, corpus: Corpus, c: WorldTrainConfig, seed: number): string[] {
  const lines = corpus.train.slice();
  if (c.statementQuestions) {
    const extra = statementQuestionLines(world);
    Rng.stream(seed, 'train/statement-questions').shuffle(extra);
    lines.push(...extra);
  }
  return lines;
}

/** Trains a fresh model on `corpus.train` of `world` (tokenizer: the world's own). */
export function trainWorldModel(world: World, corpus: Corpus, tokenizer: AmendTokenizer, opts: TrainOptions): TrainResult {
  const c = opts.config;
  const log = opts.log ?? (() => {});
  const { model, weights, rawConfig, eos } = freshModel(tokenizer, c, opts.seed);

  const lines = trainingLines(world, corpus, c, opts.seed);
  const docs = prepareDocs(world, lines, tokenizer, c.answerWeight, c.bos);
  const maxLen = Math.max(...docs.map((d) => d.ids.length));
  if (c.packTokens > c.model.positions) throw new AmendError(`packTokens ${c.packTokens} is more than the model's ${c.model.positions} positions`);
  if (maxLen > c.model.positions) throw new AmendError(`a training line has ${maxLen} tokens, more than the model's ${c.model.positions} positions`);
  const trainTokens = docs.reduce((s, d) => s + d.ids.length, 0);
  const orderRng = Rng.stream(opts.seed, 'train/order');
  const run = startRun(model, weights, docs, eos, opts);

  const index = new WorldIndex(world);
  const evalFacts = Rng.stream(opts.seed, 'train/eval-sample').sample(world.facts, c.evalFacts);
  const started = Date.now();
  log(`# model: gpt2 ${c.model.layers} layers × ${c.model.hidden} hidden, ${c.model.heads} heads, ${model.parameterCount()} parameters`);
  log(`# data: ${docs.length} lines, ${trainTokens} tokens per epoch (max ${maxLen}); ${world.facts.length} facts`);
  log(`# train: ${c.epochs} epochs, ${run.totalSteps} steps, batch ${c.batchSize}, AdamW lr ${c.lr} (warmup ${c.warmupSteps}, cosine to ${c.minLrRatio}×), wd ${c.weightDecay}, clip ${c.clipNorm}, answer weight ${c.answerWeight}, dropout ${c.dropout}, layer drop ${c.layerDrop}, statement questions ${c.statementQuestions}, phrase noise ${c.phraseNoise}, bios ${c.bios}, packing ${c.packTokens > 0 ? `${c.packTokens} tokens` : 'off'}, learned positions ${c.positionEmbeddings}, start token ${c.bos}`);
  log(`# backend: ${backendSignature()} | threads=${kernels().info().threads}`);
  log('epoch  step    lr        loss    ans_loss  gnorm   acc_train  acc_heldout  seconds  tok/s');
  const epochs: EpochLog[] = [];
  for (let e = 0; e < c.epochs; e++) {
    const t0 = Date.now();
    const batches = epochBatches(docs, c.batchSize, orderRng);
    const sums = trainEpoch(run, batches);
    const seconds = (Date.now() - t0) / 1000;
    const sampleScores = scoreFacts(model, index, evalFacts);
    const acc = summarise(sampleScores);
    const entry: EpochLog = {
      epoch: e + 1, steps: run.step, lr: sums.lr, loss: sums.loss / batches.length, answerLoss: sums.answerTokens ? sums.answerNll / sums.answerTokens : 0,
      gradNorm: sums.gradNorm / batches.length, trainAcc: acc.train, heldOutAcc: acc.heldOut,
      seconds: (Date.now() - started) / 1000, tokensPerSecond: sums.tokens / seconds,
    };
    epochs.push(entry);
    log(epochLine(entry));
    const weak = weakPhrasingsNote(world, sampleScores);
    if (weak) log(weak);
    opts.onEpoch?.(entry);
  }
  // The weights leave training as plain tensors (no grad, no optimiser state).
  const plain = new Map<string, Tensor>();
  for (const [name, t] of weights) plain.set(name, new Tensor(t.data, t.shape));
  const trained = new CausalLM(rawConfig, plain, { tokenizer });
  return { model: trained, lines, rawConfig, epochs, trainTokens, seconds: (Date.now() - started) / 1000, parameters: trained.parameterCount() };
}

/** A seeded, untrained model for the world's tokenizer. */
function freshModel(tokenizer: AmendTokenizer, c: WorldTrainConfig, seed: number): { model: CausalLM; weights: Map<string, Tensor>; rawConfig: Record<string, unknown>; eos: number } {
  const eos = tokenizer.eosId;
  if (eos === null) throw new AmendError('the world tokenizer has no <|endoftext|> token');
  const rawConfig = worldModelConfig(c.model, tokenizer.vocabSize, eos);
  const weights = initWeights(rawConfig, seed, c.initStd);
  const model = new CausalLM(rawConfig, weights, { tokenizer });
  if (!c.positionEmbeddings) {
    const wpe = model.spec.wpe ? weights.get(model.spec.wpe) : undefined;
    if (!wpe) throw new AmendError('positionEmbeddings: false needs a model with learned positions');
    wpe.data.fill(0);
    wpe.requiresGrad = false; // a constant: no gradient, and left out of the optimiser (startRun)
  }
  return { model, weights, rawConfig, eos };
}

/** What every training step reads (model, data, optimiser, schedule, regularisers), and the step it is at. */
interface TrainRun {
  c: WorldTrainConfig;
  model: CausalLM;
  docs: readonly TrainDoc[];
  eos: number;
  opt: AdamW;
  params: Tensor[];
  schedule: LrSchedule;
  hooks: Hook[];
  noise: PhraseNoise | undefined;
  step: number;
  totalSteps: number;
  onStep: TrainOptions['onStep'];
}

function startRun(model: CausalLM, weights: Map<string, Tensor>, docs: readonly TrainDoc[], eos: number, opts: TrainOptions): TrainRun {
  const c = opts.config;
  // Count the exact number of steps with a throwaway copy of the order stream.
  let totalSteps = 0;
  {
    const probe = Rng.stream(opts.seed, 'train/order');
    for (let e = 0; e < c.epochs; e++) totalSteps += epochBatches(docs, c.batchSize, probe).length;
  }
  const schedule = warmupCosine({ peak: c.lr, warmupSteps: Math.min(c.warmupSteps, totalSteps), totalSteps, minRatio: c.minLrRatio });
  const spec = model.spec;
  const noDecay = new Set([spec.wte, ...(spec.wpe ? [spec.wpe] : [])]);
  const learnable = [...weights].filter(([, t]) => t.requiresGrad);
  const opt = new AdamW(decayGroups(learnable, c.weightDecay, (name) => noDecay.has(name)), { betas: c.betas, eps: 1e-8 });
  // Random replacement ids exclude <|endoftext|> (the last id).
  const noise = c.phraseNoise > 0 ? { p: c.phraseNoise, vocab: eos, rand: T.mulberry32(deriveSeed(opts.seed, 'train/phrase-noise')) } : undefined;
  return {
    c, model, docs, eos, opt, params: opt.params(), schedule, hooks: dropHooks(c, opts.seed), noise,
    step: 0, totalSteps, onStep: opts.onStep,
  };
}

/** Residual dropout and block drop on the outputs of every attention and MLP block, each from its own stream. */
function dropHooks(c: WorldTrainConfig, seed: number): Hook[] {
  const dropRng = T.mulberry32(deriveSeed(seed, 'train/dropout'));
  const layerRng = T.mulberry32(deriveSeed(seed, 'train/layer-drop'));
  const blockOutputs = Array.from({ length: c.model.layers }, (_, l) => [hookPoint.attnOut(l), hookPoint.mlpOut(l)]).flat();
  return [
    ...(c.dropout > 0 ? blockOutputs.map((point) => ({ point, fn: (x: Tensor) => T.mul(x, dropMask(x.shape, c.dropout, dropRng)) })) : []),
    ...(c.layerDrop > 0 ? blockOutputs.map((point) => ({ point, fn: (x: Tensor) => T.mul(x, dropMask(x.shape, c.layerDrop, layerRng, x.size / x.shape[0]!)) })) : []),
  ];
}

/** An epoch's running sums, in the order the steps add to them (the log's means divide these). */
interface EpochSums {
  loss: number;
  gradNorm: number;
  answerNll: number;
  answerTokens: number;
  tokens: number;
  /** The learning rate of the last step. */
  lr: number;
}

function trainEpoch(run: TrainRun, batches: readonly number[][]): EpochSums {
  const sums: EpochSums = { loss: 0, gradNorm: 0, answerNll: 0, answerTokens: 0, tokens: 0, lr: 0 };
  for (const which of batches) trainStep(run, which, sums);
  return sums;
}

/** One optimiser step on the lines `which`. */
function trainStep(run: TrainRun, which: readonly number[], sums: EpochSums): void {
  const c = run.c;
  const b = makeBatch(run.docs, packRows(run.docs, which, c.packTokens), run.eos, run.noise);
  const lr = run.schedule(run.step);
  sums.lr = lr;
  run.opt.zeroGrad();
  const loss = T.withGrad(() => {
    const { logits } = run.model.forward(b.ids, b.B, b.L, { attentionMask: b.mask, logitsAt: b.rows, hooks: run.hooks });
    const picked = T.pick(T.logSoftmax(logits!), b.targets);
    for (let r = 0; r < b.answer.length; r++) if (b.answer[r]) { sums.answerNll -= picked.data[r]!; sums.answerTokens++; }
    const l = T.scale(T.sum(T.mul(picked, T.tensor(b.weights))), -1 / b.weightSum);
    l.backward();
    return l.item();
  });
  if (!Number.isFinite(loss)) throw new AmendError(`training diverged at step ${run.step} (loss ${loss}); lower the learning rate`);
  const gn = gradNorm(run.params);
  sums.gradNorm += gn;
  run.opt.step(lr, clipCoefficient(gn, c.clipNorm)); // clipping fused into the update
  sums.loss += loss;
  sums.tokens += b.rows.length + b.B;
  run.step++;
  const { onStep } = run; // called unbound: the callback must not see the run's optimiser and state as `this`
  onStep?.(run.step, run.totalSteps);
}

/** The build log's note on the phrasings the evaluation sample still misses, if any. */
function weakPhrasingsNote(world: World, sampleScores: readonly FactScore[]): string | undefined {
  const weak = weakPhrasings(sampleScores, 0.9);
  const phrasings = world.relations.reduce((n, r) => n + r.phrasings.length, 0);
  if (weak.length > 8) return `#        ${weak.length} of ${phrasings} phrasings below 90 % on the evaluation sample`;
  if (weak.length > 0) return `#        below 90 % on the evaluation sample: ${weak.join(', ')}`;
  return undefined;
}

/** An epoch's row of the loss curve in the build log. */
function epochLine(entry: EpochLog): string {
  return [
    String(entry.epoch).padStart(5), String(entry.steps).padStart(6), entry.lr.toExponential(2).padStart(9),
    entry.loss.toFixed(4).padStart(8), entry.answerLoss.toFixed(4).padStart(9), entry.gradNorm.toFixed(3).padStart(7),
    (100 * entry.trainAcc).toFixed(1).padStart(9) + '%', (100 * entry.heldOutAcc).toFixed(1).padStart(11) + '%',
    entry.seconds.toFixed(1).padStart(8), Math.round(entry.tokensPerSecond).toString().padStart(6),
  ].join('  ');
}
