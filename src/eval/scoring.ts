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
export type Encoder = Pick<AmendTokenizer, 'encode' | 'eosId'>;

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
  /** Hooks installed for every forward pass (adapter-style edits). */
  hooks?: ForwardOptions['hooks'];
}

/** The text that is scored: prompt and target joined by one space unless whitespace is already there. */
export function joinPromptTarget(prompt: string, target: string): string {
  if (prompt === '' || /^\s/.test(target) || /\s$/.test(prompt)) return prompt + target;
  return `${prompt} ${target}`;
}

function encodeWithSpecials(tok: Encoder, text: string): number[] {
  const ids = tok.encode(text);
  const eos = tok.eosId;
  if (eos !== null && ids.length > 0 && ids[ids.length - 1] === eos) {
    const raw = tok.encode(text, { addSpecialTokens: false });
    if (raw.length === 0 || raw[raw.length - 1] !== eos) ids.pop();
  }
  return ids;
}

/** Context and target tokens for one (prompt, target) pair, by the rule at the top of this file. */
export function encodePair(tok: Encoder, prompt: string, target: string): EncodedPair {
  if (typeof target !== 'string' || target.trim() === '') {
    throw new AmendError(`empty target for prompt "${prompt}": there is nothing to score`);
  }
  const p = encodeWithSpecials(tok, prompt);
  const full = encodeWithSpecials(tok, joinPromptTarget(prompt, target));
  let at = commonPrefix(p, full);
  if (at === full.length) at = Math.max(0, full.length - 1);
  const context = full.slice(0, at);
  const tgt = full.slice(at);
  if (context.length === 0) {
    throw new AmendError(`prompt "${prompt}" gives no token to condition the target on (a model without a BOS token needs a non-empty prompt)`);
  }
  return { context, target: tgt };
}

const keyOf = (p: EncodedPair) => `${p.context.join(',')}|${p.target.join(',')}`;

/** Scores already-tokenised pairs (the core of targetLogProbs). */
export function scoreEncoded(model: Pick<ScoringModel, 'config' | 'forward'>, pairs: readonly EncodedPair[], opts: ScoringOptions = {}): TargetScore[] {
  const maxTokens = opts.maxBatchTokens ?? 4096;
  const maxRows = opts.maxBatchRows ?? 64;
  if (!(maxTokens >= 1) || !(maxRows >= 1)) throw new AmendError('scoring: maxBatchTokens and maxBatchRows must be ≥ 1');
  const V = model.config.vocabSize;
  const maxLogitRows = opts.maxLogitRows ?? Math.max(1, Math.floor(2 ** 26 / V));
  if (!(maxLogitRows >= 1)) throw new AmendError('scoring: maxLogitRows must be ≥ 1');
  const maxPos = model.config.maxPositions > 0 ? model.config.maxPositions : Number.POSITIVE_INFINITY;

  // Unique pairs, each as the input sequence context ++ target[:-1] (the last target token is
  // predicted, never read).
  interface Job { ctx: number[]; tgt: number[]; seq: number[]; truncated: boolean; result?: TargetScore }
  const jobs = new Map<string, Job>();
  const order: Job[] = pairs.map((p) => {
    if (p.target.length === 0) throw new AmendError('scoring: a target has no tokens');
    if (p.context.length === 0) throw new AmendError('scoring: a context has no tokens');
    const k = keyOf(p);
    let job = jobs.get(k);
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
      jobs.set(k, job);
    }
    return job;
  });

  const todo = [...jobs.values()].sort((a, b) => b.seq.length - a.seq.length);
  noGrad(() => {
    for (let start = 0; start < todo.length; ) {
      const T = todo[start]!.seq.length; // longest first: the first row sets the padded length
      let B = 1;
      let logitRows = todo[start]!.tgt.length;
      while (
        start + B < todo.length &&
        B < maxRows &&
        (B + 1) * T <= maxTokens &&
        logitRows + todo[start + B]!.tgt.length <= maxLogitRows
      ) {
        logitRows += todo[start + B]!.tgt.length;
        B++;
      }
      const batch = todo.slice(start, start + B);
      start += B;
      const ids = new Int32Array(B * T);
      const mask = new Uint8Array(B * T);
      const rows: number[] = [];
      batch.forEach((job, b) => {
        job.seq.forEach((id, t) => {
          ids[b * T + t] = id;
          mask[b * T + t] = 1;
        });
        for (let j = 0; j < job.tgt.length; j++) rows.push(b * T + job.ctx.length - 1 + j);
      });
      const out = model.forward(ids, B, T, { attentionMask: mask, logitsAt: rows, hooks: opts.hooks });
      const logits = out.logits as Tensor | null;
      if (!logits || logits.size !== rows.length * V) throw new AmendError('scoring: the forward pass returned no logits for the requested rows');
      // The backend's (native, threaded) kernels: several times faster than a JS loop over V.
      const lp = logSoftmax(logits).data;
      const best = argmaxRows(logits);
      let r = 0;
      for (const job of batch) {
        const logProbs: number[] = [];
        const argmax: number[] = [];
        const correct: boolean[] = [];
        for (let j = 0; j < job.tgt.length; j++, r++) {
          logProbs.push(lp[r * V + job.tgt[j]!]!);
          argmax.push(best[r]!);
          correct.push(best[r] === job.tgt[j]);
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
    }
  });
  return order.map((job) => job.result!);
}

/** log-sum-exp (in float64) and the first index of the maximum of one logits row (a reference for tests). */
export function rowStats(row: ArrayLike<number>): { lse: number; best: number } {
  let best = 0;
  let mx = row[0]!;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > mx) {
      mx = row[i]!;
      best = i;
    }
  }
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - mx);
  return { lse: mx + Math.log(s), best };
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
