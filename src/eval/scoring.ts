/**
 * Teacher-forced scoring: log-probabilities and argmax-correctness of target tokens given a prompt,
 * for many (prompt, target) pairs at once in right-padded batches, with logits computed only at the
 * rows that predict a target token.
 *
 * Tokenisation (one rule for every teacher-forced metric, KnowEdit and CounterFact alike):
 * - the text scored is `prompt + " " + target`; the space is left out when the target already
 *   starts with whitespace (Amend's " football") or the prompt ends with it (a completion prompt
 *   "... is the "). EasyEdit's test_prediction_acc and ROME's test_batch_prediction both join
 *   with one space (`f"{prefix} {suffix}"`); CounterFact / KnowEdit targets carry no leading space.
 * - the prompt is encoded with the model's special tokens (Llama's BOS; none for GPT-2), as
 *   transformers' `tok(prompt)` in both references; the joined text is encoded the same way and the
 *   target tokens are the joined encoding after the prompt's tokens (EasyEdit: labels =
 *   input_ids[len(tok(prompt)):]). With byte-level BPE and a space joiner this equals ROME's
 *   separate `tok(" " + target)`. When the prompt's tokens are not a prefix of the joined encoding
 *   (a merge across the boundary, e.g. a prompt ending in a space), the context is the longest
 *   common prefix and every token after it is scored as target: the boundary token is never lost
 *   or misaligned (EasyEdit would shift its labels by one there).
 * - a trailing EOS that a tokenizer's post-processor appends (add_eos_token) is removed from both.
 * - a context longer than the model's positions is cut from the left (the target is kept whole);
 *   such results have `truncated: true`.
 */
import { AmendError } from '../errors.js';
import type { ForwardOptions, ForwardOutput, ModelConfig } from '../models/index.js';
import { argmax as argmaxRows, logSoftmax, noGrad, type Tensor } from '../tensor/index.js';
import { commonPrefix, type AmendTokenizer } from '../tokenizer/index.js';

/** What scoring needs from a model (CausalLM satisfies it). */
export interface ScoringModel {
  readonly config: ModelConfig;
  forward(ids: Int32Array, batch: number, seqLen: number, opts?: ForwardOptions): ForwardOutput;
  tok(): AmendTokenizer;
}

/** The encoding side only (for tests and for callers that tokenise themselves). */
export type Encoder = Pick<AmendTokenizer, 'encode' | 'bosId' | 'eosId'>;

export interface ScoreItem {
  prompt: string;
  target: string;
}

export interface EncodedPair {
  /** Tokens the target is conditioned on (with BOS where the model uses one). */
  context: number[];
  /** Target tokens, each predicted from everything before it. */
  target: number[];
}

export interface TargetScore extends EncodedPair {
  /** log P(target[j] | context, target[<j]) for every target token (natural log). */
  logProbs: number[];
  sum: number;
  /** sum / target.length: ROME's per-token mean log-probability (the negative of its mean NLL). */
  mean: number;
  /** The highest-scoring token at each target position (first index on ties, as torch.argmax). */
  argmax: number[];
  /** argmax[j] === target[j]. */
  correct: boolean[];
  /** Fraction of correct target tokens (EasyEdit's teacher-forced token accuracy). */
  accuracy: number;
  /** The context was cut from the left to fit the model's positions. */
  truncated: boolean;
}

export interface ScoringOptions {
  /** Most tokens (rows × padded length) in one forward pass (default 4096). */
  maxBatchTokens?: number;
  /** Most sequences in one forward pass (default 64). */
  maxBatchRows?: number;
  /**
   * Most logits rows (target tokens) in one forward pass: each costs vocabSize floats. Default:
   * 2^26 floats (256 MB) / vocabSize. A single item longer than that still runs alone.
   */
  maxLogitRows?: number;
  /**
   * Hooks installed for every forward pass (adapter-style edits). They must treat each position by
   * the tokens up to it: a row of the batch may carry several items, one item's tokens extended by
   * another's, and rows are padded on the right.
   */
  hooks?: ForwardOptions['hooks'];
}

/** The text that is scored: prompt and target joined by one space unless whitespace is already there. */
export function joinPromptTarget(prompt: string, target: string): string {
  if (prompt === '' || /^\s/.test(target) || /\s$/.test(prompt)) return prompt + target;
  return `${prompt} ${target}`;
}

/**
 * Encodings by text, per tokenizer: an evaluation encodes the same texts over and over (a prompt
 * for its new and its true target, a locality prompt before the edits and after each, neighbourhood
 * prompts that cases share), and encoding costs as much as scoring on a small model. Cleared when
 * full rather than kept in order of use: a run's texts repeat in bursts (one case, one batch).
 */
const encodings = new WeakMap<Encoder, Map<string, readonly number[]>>();
const MAX_CACHED_ENCODINGS = 1 << 16;

/** encodeWithSpecials through the cache (the array is shared: never change it). */
function encodeCached(tok: Encoder, text: string): readonly number[] {
  let cache = encodings.get(tok);
  if (!cache) encodings.set(tok, (cache = new Map()));
  let ids = cache.get(text);
  if (!ids) {
    if (cache.size >= MAX_CACHED_ENCODINGS) cache.clear();
    ids = encodeWithSpecials(tok, text);
    cache.set(text, ids);
  }
  return ids;
}

/** The encoding with the model's special tokens, less an EOS that the post-processor appends. */
function encodeWithSpecials(tok: Encoder, text: string): number[] {
  const ids = tok.encode(text);
  const eos = tok.eosId;
  if (eos === null || ids.length === 0 || ids[ids.length - 1] !== eos) return ids;
  const raw = tok.encode(text, { addSpecialTokens: false });
  if (raw.length > 0 && raw[raw.length - 1] === eos) return ids; // the text's own EOS
  // An empty text's one special token, where BOS and EOS are one id (GPT-2-style post-processors,
  // the demo world), is the BOS: a post-processor that adds a BOS puts it first. Dropping it
  // would leave an empty prompt with nothing to condition on.
  if (raw.length === 0 && ids.length === 1 && tok.bosId === eos) return ids;
  ids.pop();
  return ids;
}

/** Context and target tokens for one (prompt, target) pair, by the rule at the top of this file. */
export function encodePair(tok: Encoder, prompt: string, target: string): EncodedPair {
  if (typeof target !== 'string' || target.trim() === '') {
    throw new AmendError(`empty target for prompt "${prompt}": there is nothing to score`);
  }
  return encodeContinued(tok, prompt, joinPromptTarget(prompt, target));
}

/**
 * Context and target tokens of `full`, a text that starts with `prompt` and goes on with the
 * target as written (encodePair's rule without the joining space: for a prompt that ends in a
 * special token, which separates by itself).
 */
export function encodeContinued(tok: Encoder, prompt: string, full: string): EncodedPair {
  if (!full.startsWith(prompt) || full.slice(prompt.length).trim() === '') {
    throw new AmendError(`"${full}" does not continue "${prompt}" with a target: there is nothing to score`);
  }
  const p = encodeCached(tok, prompt);
  const ids = encodeCached(tok, full);
  let at = commonPrefix(p, ids);
  if (at === ids.length) at = Math.max(0, ids.length - 1);
  const context = ids.slice(0, at);
  const tgt = ids.slice(at);
  if (context.length === 0) {
    throw new AmendError(`prompt "${prompt}" gives no token to condition the target on (a model without a BOS token needs a non-empty prompt)`);
  }
  return { context, target: tgt };
}

const keyOf = (p: EncodedPair) => `${p.context.join(',')}|${p.target.join(',')}`;

/**
 * Sees the whole log-softmax row (vocabSize values, natural log) of target token j of pair `pair`:
 * the distribution that predicts it. The array is reused after the call returns: copy what is kept.
 */
export type RowVisitor = (pair: number, j: number, logProbs: Float32Array) => void;

/** One distinct (context, target) to score: the input sequence is context ++ target[:-1]. */
interface Job { ctx: number[]; tgt: number[]; seq: number[]; truncated: boolean; result?: TargetScore }

/**
 * The distinct pairs as jobs (`jobs`) and the job of each pair in order (`order`), the context cut
 * from the left where context and target do not fit the model's positions. The last target token
 * is predicted, never read, so it is not part of the input.
 */
function uniqueJobs(pairs: readonly EncodedPair[], config: Pick<ModelConfig, 'vocabSize' | 'maxPositions'>): { jobs: Job[]; order: Job[] } {
  const V = config.vocabSize;
  const maxPos = config.maxPositions;
  const byKey = new Map<string, Job>();
  const order = pairs.map((p) => {
    if (p.target.length === 0) throw new AmendError('scoring: a target has no tokens');
    if (p.context.length === 0) throw new AmendError('scoring: a context has no tokens');
    const k = keyOf(p);
    let job = byKey.get(k);
    if (!job) {
      let ctx = p.context;
      let truncated = false;
      const need = ctx.length + p.target.length - 1;
      if (need > maxPos) {
        const keep = maxPos - (p.target.length - 1);
        if (keep < 1) throw new AmendError(`a target of ${p.target.length} tokens does not fit the model's ${maxPos} positions`);
        ctx = ctx.slice(ctx.length - keep);
        truncated = true;
      }
      for (const id of [...ctx, ...p.target]) {
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new AmendError(`token id ${id} is out of the vocabulary (size ${V})`);
      }
      job = { ctx, tgt: p.target, seq: [...ctx, ...p.target.slice(0, -1)], truncated };
      byKey.set(k, job);
    }
    return job;
  });
  return { jobs: [...byKey.values()], order };
}

/** Scores already-tokenised pairs (the core of targetLogProbs); `onRow` sees each target position's full distribution. */
export function scoreEncoded(model: Pick<ScoringModel, 'config' | 'forward'>, pairs: readonly EncodedPair[], opts: ScoringOptions = {}, onRow?: RowVisitor): TargetScore[] {
  const maxTokens = opts.maxBatchTokens ?? 4096;
  const maxRows = opts.maxBatchRows ?? 64;
  if (!(maxTokens >= 1) || !(maxRows >= 1)) throw new AmendError('scoring: maxBatchTokens and maxBatchRows must be ≥ 1');
  const V = model.config.vocabSize;
  const maxLogitRows = opts.maxLogitRows ?? Math.max(1, Math.floor(2 ** 26 / V));
  if (!(maxLogitRows >= 1)) throw new AmendError('scoring: maxLogitRows must be ≥ 1');
  const { jobs, order } = uniqueJobs(pairs, model.config);
  const pairsOf = new Map<object, number[]>();
  if (onRow) order.forEach((job, i) => (pairsOf.get(job) ?? pairsOf.set(job, []).get(job)!).push(i));

  // One input row per distinct sequence: a job whose sequence is another's prefix (the true and
  // the new target of one prompt; a target whose first tokens are another's) reads its logits from
  // that row. Logits at a position depend only on the tokens up to it, so nothing changes but the work.
  const rows = sharedRows(jobs.sort((a, b) => b.seq.length - a.seq.length), V);
  noGrad(() => {
    for (const [start, end] of batchBounds(rows, { maxTokens, maxRows, maxLogitRows })) {
      const batch = rows.slice(start, end);
      const B = batch.length;
      const T = passLength(batch[0]!.seq.length); // longest first: the first row sets the padded length
      const ids = new Int32Array(B * T);
      const mask = new Uint8Array(B * T);
      const logitRows: number[] = [];
      batch.forEach((row, b) => {
        ids.set(row.seq, b * T);
        mask.fill(1, b * T, b * T + row.seq.length);
        for (const t of row.positions) logitRows.push(b * T + t);
      });
      const asked = logitRows.length;
      while (logitRows.length < MIN_ROWS) logitRows.push(logitRows[asked - 1]!);
      const out = model.forward(ids, B, T, { attentionMask: mask, logitsAt: logitRows, hooks: opts.hooks });
      const logits = out.logits as Tensor | null;
      if (!logits || logits.size !== logitRows.length * V) throw new AmendError('scoring: the forward pass returned no logits for the requested rows');
      // The backend's (native, threaded) kernels: several times faster than a JS loop over V.
      const lp = logSoftmax(logits).data;
      const best = argmaxRows(logits);
      let first = 0; // the batch's logits row of the current row's first position
      for (const row of batch) {
        const at = new Int32Array(row.seq.length); // position -> logits row
        row.positions.forEach((t, k) => (at[t] = first + k));
        for (const job of row.jobs) {
          const logProbs: number[] = [];
          const argmax: number[] = [];
          const correct: boolean[] = [];
          for (let j = 0; j < job.tgt.length; j++) {
            const r = at[job.ctx.length - 1 + j]!;
            logProbs.push(lp[r * V + job.tgt[j]!]!);
            argmax.push(best[r]!);
            correct.push(best[r] === job.tgt[j]);
            if (onRow) for (const i of pairsOf.get(job)!) onRow(i, j, lp.subarray(r * V, (r + 1) * V));
          }
          const sum = logProbs.reduce((a, b) => a + b, 0);
          job.result = {
            context: job.ctx,
            target: job.tgt,
            logProbs,
            sum,
            mean: sum / logProbs.length,
            argmax,
            correct,
            accuracy: correct.filter(Boolean).length / correct.length,
            truncated: job.truncated,
          };
        }
        first += row.positions.length;
      }
    }
  });
  return order.map((job) => job.result!);
}

/** One input sequence of a forward pass and the jobs scored from it. */
interface SharedRow<J> {
  seq: number[];
  jobs: J[];
  /** Positions whose logits are read, ascending. */
  positions: number[];
}

/**
 * Jobs (longest sequence first) grouped into rows: each job joins the first row its sequence is a
 * prefix of, found through a trie of the rows' tokens (a node is keyed by its parent and token).
 */
function sharedRows<J extends { ctx: number[]; tgt: number[]; seq: number[] }>(jobs: readonly J[], vocabSize: number): SharedRow<J>[] {
  const rows: SharedRow<J>[] = [];
  const child = new Map<number, number>(); // parent node * vocabSize + token -> node
  const rowOf: SharedRow<J>[] = []; // node -> the row that made it
  for (const job of jobs) {
    let node = 0;
    let i = 0;
    for (; i < job.seq.length; i++) {
      const next = child.get(node * vocabSize + job.seq[i]!);
      if (next === undefined) break;
      node = next;
    }
    let row: SharedRow<J>;
    if (i === job.seq.length) {
      row = rowOf[node]!;
    } else {
      row = { seq: job.seq, jobs: [], positions: [] };
      rows.push(row);
      for (; i < job.seq.length; i++) {
        const made = rowOf.length + 1;
        child.set(node * vocabSize + job.seq[i]!, made);
        rowOf[made] = row;
        node = made;
      }
    }
    row.jobs.push(job);
    for (let j = 0; j < job.tgt.length; j++) row.positions.push(job.ctx.length - 1 + j);
  }
  for (const row of rows) row.positions = [...new Set(row.positions)].sort((a, b) => a - b);
  return rows;
}

/**
 * Scoring gives an item the same bits whatever batch it lands in, on the native backend too
 * (the js backend's kernels treat every row alike). There a product of fewer than 4 rows takes
 * another path than a larger one: the own GEMM's gemm_skinny (native/src/gemm.cc) sums with
 * dot products over vector lanes when op(B) is transposed, and over all of k in one running sum
 * starting from C, where the packed path's microkernel sums each KC-long stretch of k from zero
 * with one FMA per step; OpenBLAS, where it is used, takes other kernels for one row too. So no
 * product of a scoring pass may have fewer than 4 rows:
 * - the LM head: at least MIN_ROWS logits rows are asked (the last one repeated);
 * - the dense layers (B·T rows) and attention, which multiplies each row's queries in blocks of
 *   ATTENTION_QUERY_BLOCK (native/src/attention.cc's kQueryBlock; the last block holds the rest):
 *   a pass is at least MIN_ROWS long, and a last block of fewer queries is padded up to MIN_ROWS.
 * The native kernels themselves are left as they are: training the demo world model multiplies
 * such short blocks, and its weights are pinned bit for bit (world/BUILD.json).
 * What this cannot cover is OpenBLAS choosing kernels by shape: with its Cooperlake kernels
 * (0.3.21), products with a transposed op(B), n 64–128 and k 32–64 (the out_in layers of a tiny
 * model) gave a row other bits among up to 12 rows than among 24. At GPT-2-small sizes from 4
 * rows on, and on the own GEMM (AMEND_GEMM=own, or where OpenBLAS's kernel is the narrower) at
 * every size tried from 4 rows on, a row's bits did not depend on the rows with it.
 */
const MIN_ROWS = 4;
const ATTENTION_QUERY_BLOCK = 64;

/**
 * The padded length of a forward pass whose longest row has `len` tokens (see MIN_ROWS): grown
 * past a last attention block of fewer than MIN_ROWS queries (or a pass shorter than MIN_ROWS).
 * The extra positions are right padding: a causal model's real positions never read them.
 */
function passLength(len: number): number {
  const tail = len % ATTENTION_QUERY_BLOCK;
  return tail > 0 && tail < MIN_ROWS ? len - tail + MIN_ROWS : len;
}

/**
 * What a forward pass costs besides its tokens, in padded tokens: its fixed work (some thirty
 * kernel calls, each waking the thread pool) is worth 20-30 tokens of the demo world model on 2
 * idle cores and several times that on busy ones. It decides when cutting a batch to save padding
 * pays for the extra pass. A constant, not a timing, so that the same inputs are always batched
 * the same way.
 */
const PASS_COST_TOKENS = 64;

/**
 * Rows (longest first) cut into consecutive batches within the limits, at the least padded tokens
 * plus PASS_COST_TOKENS per batch (dynamic programming over the cut points). A row alone is always
 * a batch, whatever the limits.
 */
function batchBounds(rows: readonly { seq: number[]; positions: number[] }[], lim: { maxTokens: number; maxRows: number; maxLogitRows: number }): [number, number][] {
  const n = rows.length;
  const cost = new Float64Array(n + 1).fill(Number.POSITIVE_INFINITY);
  const from = new Int32Array(n + 1);
  cost[0] = 0;
  for (let end = 1; end <= n; end++) {
    let logitRows = 0;
    for (let start = end - 1; start >= 0 && end - start <= lim.maxRows; start--) {
      const B = end - start;
      const T = passLength(rows[start]!.seq.length);
      logitRows += rows[start]!.positions.length;
      if (B > 1 && (B * T > lim.maxTokens || logitRows > lim.maxLogitRows)) break;
      const c = cost[start]! + PASS_COST_TOKENS + B * T;
      if (c < cost[end]!) {
        cost[end] = c;
        from[end] = start;
      }
    }
  }
  const bounds: [number, number][] = [];
  for (let end = n; end > 0; end = from[end]!) bounds.push([from[end]!, end]);
  return bounds.reverse();
}

/**
 * Per item: the log-probabilities of the target's tokens given the prompt (per token, sum, mean)
 * and whether each is the model's argmax, all items in padded batches (see the file comment for the
 * tokenisation rule). Identical items are computed once.
 */
export function targetLogProbs(model: ScoringModel, items: readonly ScoreItem[], opts: ScoringOptions = {}): TargetScore[] {
  const tok = model.tok();
  const pairs = items.map((it) => encodePair(tok, it.prompt, it.target));
  return scoreEncoded(model, pairs, opts);
}
