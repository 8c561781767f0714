/**
 * Perplexity of held-out text, the model-collapse early warning: token-weighted exp(mean NLL) over
 * sliding windows (the Hugging Face "perplexity of fixed-length models" recipe). Windows of
 * `maxLength` tokens start every `stride` tokens; each window scores only the tokens the previous
 * window did not, with everything before them in the window as context; the first token of the
 * text is never scored (nothing predicts it) unless the tokenizer puts a BOS in front (Llama).
 * With stride = maxLength (no overlap) the first token of every window goes unscored too, as in
 * the recipe; the default stride, maxLength / 2, scores each token with at least that much context.
 */
import fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { AmendError, refuseBinary, refuseDevice, refuseOversize, requireCount } from '../errors.js';
import { scoreEncoded, type EncodedPair, type ScoringModel, type ScoringOptions } from './scoring.js';

export interface PerplexityOptions extends ScoringOptions {
  /** Window length in tokens (default: the model's positions, at most 1024). */
  maxLength?: number;
  /** Tokens between window starts (default maxLength / 2). */
  stride?: number;
  /** Score only the first maxTokens tokens of the text (default: all of it). */
  maxTokens?: number;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per scored token (nats). */
  meanNll: number;
  /** Tokens scored. */
  tokens: number;
  windows: number;
  maxLength: number;
  stride: number;
}

/** The sliding windows over a token sequence, as (context, target) pairs. */
export function perplexityWindows(ids: readonly number[], maxLength: number, stride: number): EncodedPair[] {
  if (!(Number.isInteger(maxLength) && maxLength >= 2)) throw new AmendError(`perplexity: maxLength must be an integer ≥ 2, got ${maxLength}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= maxLength)) {
    throw new AmendError(`perplexity: stride must be an integer in 1..maxLength (${maxLength}), got ${stride}`);
  }
  const out: EncodedPair[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < ids.length; begin += stride) {
    const end = Math.min(begin + maxLength, ids.length);
    const len = end - begin;
    const first = Math.max(1, len - (end - prevEnd));
    if (first < len) out.push({ context: ids.slice(begin, begin + first), target: ids.slice(begin + first, end) });
    prevEnd = end;
    if (end === ids.length) break;
  }
  return out;
}

/** Perplexity of `text` under the model. */
export function perplexity(model: ScoringModel, text: string, opts: PerplexityOptions = {}): PerplexityResult {
  const maxLength = opts.maxLength ?? Math.min(model.config.maxPositions, 1024);
  if (maxLength > model.config.maxPositions) {
    throw new AmendError(`perplexity: maxLength ${maxLength} is longer than the model's ${model.config.maxPositions} positions`);
  }
  const stride = opts.stride ?? Math.max(1, Math.floor(maxLength / 2));
  const tok = model.tok();
  let source = text;
  if (opts.maxTokens !== undefined) {
    requireCount(opts.maxTokens, 'perplexity: maxTokens', 2);
    source = text.slice(0, opts.maxTokens * 16); // no token is longer than 16 characters on average
  }
  let ids = tok.encode(source);
  if (opts.maxTokens !== undefined) ids = ids.slice(0, opts.maxTokens);
  if (ids.length < 2) throw new AmendError('perplexity: the text has fewer than 2 tokens');
  const windows = perplexityWindows(ids, maxLength, stride);
  const scores = scoreEncoded(model, windows, opts);
  let nll = 0, n = 0;
  for (const s of scores) {
    nll -= s.sum;
    n += s.target.length;
  }
  const meanNll = nll / n;
  return { perplexity: Math.exp(meanNll), meanNll, tokens: n, windows: windows.length, maxLength, stride };
}

/** Read a held-out text file (e.g. ../shared/data/wikitext/wikitext-2-raw-test.txt). */
export function readHeldOutText(file: string, opts: { maxChars?: number } = {}): string {
  refuseDevice(file, 'a text file');
  // one string holds the text, and a string holds at most this many UTF-16 units (512 MiB of ASCII)
  refuseOversize(file, bufferConstants.MAX_STRING_LENGTH, 'a held-out text');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new AmendError(e.code === 'ENOENT' ? `${file}: no such file` : `${file}: cannot read (${e.message.split('\n')[0]})`);
  }
  refuseBinary(text, `${file}:`, 'give a text file');
  if (opts.maxChars !== undefined) text = text.slice(0, opts.maxChars);
  if (text.trim() === '') throw new AmendError(`${file}: empty file — perplexity needs held-out text`);
  return text;
}
