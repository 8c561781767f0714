// Context templates: short texts the model itself generates, each followed by ". {}", in which the
// edited prompt is placed so that k* and v* do not depend on one exact phrasing.
//
// Original ROME (rome_main.get_context_templates): ["{}"] + 10 samples of length 5 and 10 of
// length 10 (context_template_length_params [[5, 10], [10, 10]]), top-k 5 sampling from
// "<|endoftext|>", one flat list. MEMIT (memit_main.get_context_templates): [["{}"], 5 samples of
// length 10, one from each of "The", "Therefore", "Because", "I", "You"], averaged per group.
// Lengths count the prompt token (generate_fast stops when the sequence reaches max_out_len); the
// text is the decoded sequence without special tokens, NFKD-normalised, "\n\n" → " ", braces
// replaced by spaces (MEMIT's rule, applied to both, since "{}" marks the slot). Sampling is seeded
// here (the references are not), and the result is cached per model object and settings, so the
// templates of the first edit serve every later one, as the references' module-level caches do.
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { KVCache } from '../../models/kvcache.js';
import { mulberry32, noGrad } from '../../tensor/index.js';
import type { EditHparams } from '../hparams.js';

const END_OF_TEXT = '<|endoftext|>';

/** Per model object, the template groups made for each settings (JSON) key. */
const templatesByModel = new WeakMap<CausalLM, Map<string, string[][]>>();

export interface TemplateSettings {
  prompts: readonly string[];
  lengthParams: readonly (readonly [number, number])[];
  topK: number;
  seed: number;
}

export function templateSettings(hp: EditHparams): TemplateSettings {
  return {
    prompts: hp.context_template_prompts, lengthParams: hp.context_template_length_params,
    topK: hp.context_template_top_k, seed: hp.context_template_seed,
  };
}

/** Token ids a generation prompt stands for: "<|endoftext|>" is the model's own start token. */
function promptIds(model: CausalLM, prompt: string): number[] {
  const tok = model.tok();
  if (prompt === END_OF_TEXT) {
    const id = tok.tokenToId(END_OF_TEXT) ?? tok.bosId ?? model.config.bosId ?? tok.eosId ?? model.config.eosId;
    if (id === null || id === undefined) throw new AmendError('context templates: the tokenizer has neither <|endoftext|> nor a BOS/EOS token to start generation from');
    return [id];
  }
  const ids = tok.encode(prompt);
  if (ids.length === 0) throw new AmendError(`context templates: prompt "${prompt}" encodes to no tokens`);
  return ids;
}

/** Cleans one generated text as the references do and makes it a template. */
function toTemplate(text: string): string {
  const clean = text.normalize('NFKD').split('\n\n').join(' ').split(END_OF_TEXT).join('').replace(/[{}]/g, ' ');
  return `${clean}. {}`;
}

/**
 * Groups of templates: group 0 is ["{}"]; then one group per (length, count) pair. For a single
 * generation prompt each pair gives `count` samples (ROME); for several prompts, count / #prompts
 * samples from each (MEMIT, EasyEdit).
 */
export function contextTemplates(model: CausalLM, s: TemplateSettings): string[][] {
  const key = JSON.stringify(s);
  let perModel = templatesByModel.get(model);
  if (!perModel) templatesByModel.set(model, (perModel = new Map()));
  const hit = perModel.get(key);
  if (hit) return hit;
  const tok = model.tok();
  const groups: string[][] = [['{}']];
  let seed = s.seed;
  for (const [length, count] of s.lengthParams) {
    const group: string[] = [];
    const perPrompt = Math.floor(count / s.prompts.length);
    for (const p of s.prompts) {
      if (perPrompt <= 0) continue;
      const ids = promptIds(model, p);
      const maxNew = Math.max(0, Math.min(length, model.config.maxPositions) - ids.length);
      const outs = sampleTopK(model, ids, perPrompt, maxNew, s.topK, seed++);
      for (let i = 0; i < perPrompt; i++) group.push(toTemplate(tok.decode([...ids, ...outs[i]], { skipSpecialTokens: true })));
    }
    groups.push(group);
  }
  perModel.set(key, groups);
  return groups;
}

/**
 * `rows` continuations of one prompt, `maxNew` tokens each, sampled from the top-k tokens with
 * their renormalised probabilities (util/generate.generate_fast: no end-of-text stop), with a KV
 * cache. Only the k best logits of a row are looked at, so a 50k vocabulary costs O(V·k), not a sort.
 */
function sampleTopK(model: CausalLM, prompt: readonly number[], rows: number, maxNew: number, k: number, seed: number): number[][] {
  const outs: number[][] = Array.from({ length: rows }, () => []);
  if (rows === 0 || maxNew === 0) return outs;
  const rand = mulberry32(seed);
  const V = model.config.vocabSize;
  // It ends up holding the prompt and every sampled token but the last (never fed back): all of
  // it from the start, rather than doubling up to it and copying what it holds at each step.
  const held = prompt.length + maxNew - 1;
  const cache = new KVCache(model.config, rows, held, { reserve: held });
  let ids = new Int32Array(rows * prompt.length);
  for (let r = 0; r < rows; r++) ids.set(prompt, r * prompt.length);
  let T = prompt.length;
  noGrad(() => {
    for (let step = 0; step < maxNew; step++) {
      const last = Array.from({ length: rows }, (_, r) => r * T + T - 1);
      const logits = model.forward(ids, rows, T, { logitsAt: last, cache }).logits!.data;
      const next = new Int32Array(rows);
      const topIdx = new Int32Array(k), topVal = new Float64Array(k);
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        let n = 0;
        for (let v = 0; v < V; v++) {
          const x = row[v];
          // Insertion into the sorted top list: into a free slot while it is not full, else over
          // the smallest, which only a larger value displaces.
          if (n < k || x > topVal[k - 1]) {
            let j = n < k ? n++ : k - 1;
            while (j > 0 && topVal[j - 1] < x) { topVal[j] = topVal[j - 1]; topIdx[j] = topIdx[j - 1]; j--; }
            topVal[j] = x; topIdx[j] = v;
          }
        }
        let z = 0;
        const pr = new Float64Array(n);
        for (let j = 0; j < n; j++) z += (pr[j] = Math.exp(topVal[j] - topVal[0]));
        let u = rand() * z, pick = topIdx[n - 1];
        for (let j = 0; j < n; j++) { u -= pr[j]; if (u <= 0) { pick = topIdx[j]; break; } }
        next[r] = pick;
        outs[r].push(pick);
      }
      ids = next;
      T = 1;
    }
  });
  return outs;
}
