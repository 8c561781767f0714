// amend logits: top tokens and logsumexp at every position of a token sequence — the interface
// outside checks use to compare Amend's forward pass with reference implementations.
import { AmendError } from '../../errors.js';
import { topK } from '../../models/index.js';
import type { AmendTokenizer } from '../../tokenizer/index.js';
import { intOption, type CommandSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';

export const spec: CommandSpec = {
  name: 'logits',
  summary: 'print the top next tokens (log-probabilities) and logsumexp at every position',
  usage: 'amend logits --model M (--ids 5,17,42 | --text "...") [--top K] [--json]',
  options: {
    model: { type: 'string', short: 'm', help: 'M  model directory or Hugging Face id (local cache)' },
    ids: { type: 'string', help: 'comma-separated token ids' },
    text: { type: 'string', help: 'text to tokenize instead of --ids' },
    top: { type: 'string', help: 'K  tokens to list per position (default 5)' },
  },
  examples: [
    'amend logits --model world --ids 5,17,42 --top 5 --json',
    'amend logits --model ../shared/models/stories260K --text "Once upon a time"',
  ],
};

export async function run(args: Parsed): Promise<void> {
  const v = args.values;
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}"; the text goes in --text (see amend logits --help)`);
  if ((v.ids === undefined) === (v.text === undefined)) throw new AmendError('give either --ids or --text (see amend logits --help)');
  let ids: number[] | null = null;
  if (typeof v.ids === 'string') {
    if (v.ids.trim() === '') throw new AmendError('--ids is empty; give at least one token id');
    ids = v.ids.split(',').map((s) => s.trim()).map((s) => {
      if (!/^\d+$/.test(s)) throw new AmendError(`--ids: "${s}" is not a token id (digits only, comma-separated, e.g. 5,17,42)`);
      const n = Number(s);
      if (!Number.isSafeInteger(n)) throw new AmendError(`--ids: ${s} is far past any vocabulary`);
      return n;
    });
  }
  const top = intOption(v.top, 'top', 5, 1);
  const model = await loadModel(v.model, v.json === true);
  if (!ids) {
    if (typeof v.text !== 'string' || v.text === '') throw new AmendError('--text is empty; give the text to score, or token ids with --ids');
    ids = model.tok().encode(v.text);
    if (ids.length === 0) throw new AmendError('--text encodes to no tokens; give more text, or token ids with --ids');
  }
  // Learned positions (and a sliding window) end: said with the count, before the forward pass.
  const c = model.config;
  if ((model.spec.wpe !== null || c.maxPositions < c.configPositions) && ids.length > c.maxPositions) {
    throw new AmendError(`${v.text === undefined ? '--ids gives' : '--text encodes to'} ${ids.length} tokens, more than the model's ${c.maxPositions} positions; give at most ${c.maxPositions}`);
  }
  const V = model.config.vocabSize;
  const bad = ids.find((id) => id >= V);
  if (bad !== undefined) throw new AmendError(`token id ${bad} is out of the vocabulary (size ${V})`);
  const { logits } = model.forward(Int32Array.from(ids), 1, ids.length);
  const positions = ids.map((_, t) => {
    const row = logits!.data.subarray(t * V, (t + 1) * V);
    let mx = -Infinity;
    for (const x of row) if (x > mx) mx = x;
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    const lse = mx + Math.log(s);
    const best = topK(row, Math.min(top, V));
    return { top: best.map((i) => [i, row[i] - lse]), logsumexp: lse };
  });
  if (v.json) {
    console.log(JSON.stringify({ ids, positions }));
    return;
  }
  const tok = model.tokenizer;
  positions.forEach((p, t) => {
    // Each candidate as it would continue the text so far (a lone "▁a" decodes without its space);
    // the last few tokens are context enough, and keep a long text from costing T² decodes.
    const context = ids!.slice(Math.max(0, t - 7), t + 1);
    const shown = p.top.map(([i, lp]) => `${tok ? JSON.stringify(shownToken(tok, context, i)) : i}:${lp.toFixed(3)}`).join('  ');
    console.log(`${String(t).padStart(4)} ${String(ids![t]).padStart(6)}  lse ${p.logsumexp.toFixed(4)}  ${shown}`);
  });
}

/** A candidate's text after its context; a padded vocabulary's ids beyond the tokenizer's show as #id. */
function shownToken(tok: AmendTokenizer, context: number[], id: number): string {
  const known = (x: number) => x < tok.vocabSize;
  if (!known(id)) return `#${id}`;
  return tok.decodeContinuation(context.filter(known), [id], { skipSpecialTokens: false });
}
