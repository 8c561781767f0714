/**
 * Perplexity of held-out text for drift measurements. Text that is one stream (wikitext) is
 * scored with the sliding windows of metrics-ppl.ts; a corpus of one document per line (the demo
 * world's corpus-heldout.txt, trained as lines each ended by EOS, never seeing "\n") is scored
 * line by line, since scoring it as one stream would measure mostly how badly the model predicts
 * the newlines it never saw.
 */
import { AmendError, requireCount } from '../errors.js';
import { perplexity, type PerplexityResult } from './metrics-ppl.js';
import { scoreEncoded, type ScoringModel } from './scoring.js';

export interface HeldoutOptions {
  /** Tokens scored at most (default 2048). */
  maxTokens?: number;
  /** One document per line (default false: one stream). */
  lines?: boolean;
}

export function heldoutPerplexity(model: ScoringModel, text: string, o: HeldoutOptions = {}): Pick<PerplexityResult, 'perplexity' | 'tokens'> {
  requireCount(o.maxTokens, 'held-out perplexity: maxTokens', 2);
  const maxTokens = o.maxTokens ?? 2048;
  const window = Math.min(model.config.maxPositions, 1024);
  if (!o.lines) return perplexity(model, text, { maxTokens, maxLength: window });
  const tok = model.tok();
  const pairs = [];
  let budget = maxTokens;
  // Lines are cut out one at a time up to the token budget: a split of the whole text would copy a
  // large file's every line at each checkpoint (and V8 keeps a regular expression's split results).
  for (let at = 0; at < text.length && budget > 0;) {
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(at, end > at && text[end - 1] === '\r' ? end - 1 : end);
    at = end + 1;
    if (line.trim() === '') continue;
    const ids = tok.encode(line).slice(0, Math.min(window, budget + 1));
    // The first token of a document has nothing to predict it from.
    if (ids.length < 2) continue;
    pairs.push({ context: ids.slice(0, 1), target: ids.slice(1) });
    budget -= ids.length - 1;
  }
  if (pairs.length === 0) throw new AmendError('held-out text: no line has 2 or more tokens');
  let nll = 0, n = 0;
  for (const s of scoreEncoded(model, pairs)) {
    nll -= s.sum;
    n += s.target.length;
  }
  return { perplexity: Math.exp(nll / n), tokens: n };
}
