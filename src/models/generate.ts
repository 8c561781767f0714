// Text generation: left-padded batch, greedy or sampled, with a KV cache (or full recomputation,
// which tests use to check the cache).
import { kernels } from '../backend/index.js';
import { AmendError, describeValue, optionKeys, refuseUnknownKeys, requireObject, requireSeed, typeName } from '../errors.js';
import { Tensor, mulberry32, noGrad } from '../tensor/index.js';
import { KVCache } from './kvcache.js';
import type { ModelWeights } from './transformer.js';
import { forward } from './transformer.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /**
   * Argmax decoding (default; ties go to the lowest id); false samples with temperature / topK /
   * topP, which are an error with greedy decoding.
   */
  greedy?: boolean;
  /** Divides the logits before top-k / top-p (default 1; must be > 0). */
  temperature?: number;
  /** Keeps the k most likely tokens and any tied with the k-th, as transformers (0 or ≥ V: no cut). */
  topK?: number;
  /** Then keeps the smallest most-likely-first set whose probability reaches p, in (0, 1] (1: no cut). */
  topP?: number;
  /**
   * Seed of the one random stream the whole batch draws from, row after row at every step: the
   * same prompts with the same seed give the same tokens, but a row's samples depend on the rows
   * before it in the batch (as with one torch generator in transformers).
   */
  seed?: number;
  /** Stop a row at this token, which ends the row's new tokens (default: any of the model's eos ids; null never stops early). */
  eosId?: number | null;
  /** false recomputes the whole sequence at every step (slow; a reference for the cache). */
  useCache?: boolean;
}

const GENERATE_OPTION_KEYS = optionKeys<GenerateOptions>()(['maxNewTokens', 'greedy', 'temperature', 'topK', 'topP', 'seed', 'eosId', 'useCache']);

/**
 * The most new tokens a prompt of `promptLen` tokens can get within the model's positions: the
 * last one is predicted and never fed back, so it needs no position of its own.
 */
export function generationRoom(config: { maxPositions: number }, promptLen: number): number {
  return Math.max(0, config.maxPositions - promptLen + 1);
}

/**
 * Greedy or sampled continuation of each prompt (token ids); returns only the new tokens. A row
 * stops at maxNewTokens, at eos, or where the model's positions end (generationRoom).
 */
export function generate(m: ModelWeights, prompts: readonly (readonly number[])[], o: GenerateOptions): number[][] {
  requireObject(m, 'generate takes a loaded model (CausalLM.load(dir))');
  checkPromptShape(prompts);
  checkGenerateOptions(o);
  if (prompts.length === 0) return [];
  if (prompts.some((p) => p.length === 0)) throw new AmendError('generate: empty prompt (no tokens to continue from)');
  // Checked before the ids go into an Int32Array, which would turn 1.5 into 1 and 'a' into 0.
  const V = m.config.vocabSize;
  for (const p of prompts) {
    const k = p.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (k >= 0) throw new AmendError(`generate: token id ${typeof p[k] === 'string' ? JSON.stringify(p[k]) : String(p[k])} is not an integer in 0..${V - 1} (the model's vocabulary)`);
  }
  const B = prompts.length;
  const P = Math.max(...prompts.map((p) => p.length));
  // Every id of the config's eos_token_id ends a row (Llama 3 lists several), as in transformers.
  const eos = o.eosId === undefined ? m.config.eosIds : o.eosId === null ? [] : [o.eosId];
  const greedy = o.greedy ?? true;
  if (P > m.config.maxPositions) {
    throw new AmendError(`generate: a prompt of ${P} tokens is longer than the model's ${m.config.maxPositions} positions`);
  }
  // Positions count per row (left padding is not one), so each row has its own room.
  const rooms = prompts.map((p) => Math.min(o.maxNewTokens, generationRoom(m.config, p.length)));
  const steps = Math.max(...rooms);
  const rand = mulberry32(o.seed ?? 0);

  // Left padding keeps every row's last token in the last column.
  const ids = new Int32Array(B * P), mask = new Uint8Array(B * P);
  prompts.forEach((p, b) => {
    p.forEach((id, t) => { ids[b * P + P - p.length + t] = id; mask[b * P + P - p.length + t] = 1; });
  });
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);

  return noGrad(() => {
    const useCache = o.useCache ?? true;
    const cache = useCache ? new KVCache(m.config, B, P + steps) : null;
    const probs = greedy ? undefined : new Float32Array(B * V); // sampling's buffer, shared by the steps
    let allIds = Array.from(ids), allMask = Array.from(mask), len = P;
    let stepIds = ids, stepMask = mask, stepLen = P;
    for (let step = 0; step < steps; step++) {
      const lastRows = Array.from({ length: B }, (_, b) => b * stepLen + stepLen - 1);
      const { logits } = forward(m, stepIds, B, stepLen, {
        attentionMask: stepMask, logitsAt: lastRows, cache: cache ?? undefined,
      });
      const next = pickTokens(logits!, greedy, o, rand, step, probs);
      const nextMask = new Uint8Array(B);
      for (let b = 0; b < B; b++) {
        if (!done[b]) {
          out[b].push(next[b]);
          if (eos.includes(next[b]) || out[b].length >= rooms[b]!) done[b] = true;
          // A finished row's last token goes back in as padding: at the end of the row's room
          // there is no position left for it.
          nextMask[b] = done[b] ? 0 : 1;
        }
      }
      if (done.every(Boolean) || step === steps - 1) break;
      // Finished rows keep running as masked padding so the batch stays rectangular.
      if (cache) {
        stepIds = Int32Array.from(next);
        stepMask = nextMask;
        stepLen = 1;
      } else {
        const grown: number[] = [], grownMask: number[] = [];
        for (let b = 0; b < B; b++) {
          grown.push(...allIds.slice(b * len, (b + 1) * len), next[b]);
          grownMask.push(...allMask.slice(b * len, (b + 1) * len), nextMask[b]);
        }
        allIds = grown;
        allMask = grownMask;
        len++;
        stepIds = Int32Array.from(allIds);
        stepMask = Uint8Array.from(allMask);
        stepLen = len;
      }
    }
    return out;
  });
}

/**
 * Prompts as token ids, one array per prompt: a flat array of ids (one prompt not put in [ ]) or
 * a text would otherwise fail as a TypeError inside.
 */
function checkPromptShape(prompts: unknown): void {
  if (!Array.isArray(prompts)) throw new AmendError(`generate takes an array of prompts, each an array of token ids ([model.tok().encode(text)]), not ${typeName(prompts)}`);
  const k = prompts.findIndex((p) => !Array.isArray(p) && !ArrayBuffer.isView(p));
  if (k < 0) return;
  const p: unknown = prompts[k];
  const fix = typeof p === 'number' ? 'one prompt goes in [ ]: generate(model, [ids], options)' : typeof p === 'string' ? 'encode text first: [model.tok().encode(text)]' : 'each prompt is an array of token ids';
  throw new AmendError(`generate: prompt ${k} is ${typeName(p) === 'null' ? 'null' : `a ${typeName(p)}`}, not an array of token ids; ${fix}`);
}

/** One AmendError for an option that would otherwise fail deep in a kernel or sample nonsense. */
function checkGenerateOptions(o: GenerateOptions): void {
  requireObject(o, 'generate needs options with the number of new tokens ({ maxNewTokens: 20 })');
  refuseUnknownKeys(o, GENERATE_OPTION_KEYS, 'generate');
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  if (!isInt(o.maxNewTokens) || o.maxNewTokens < 0) throw new AmendError(`generate: maxNewTokens must be an integer ≥ 0, got ${describeValue(o.maxNewTokens)}`);
  if (o.topK !== undefined && (!isInt(o.topK) || o.topK < 0)) throw new AmendError(`generate: topK must be an integer ≥ 0 (0: no cut), got ${describeValue(o.topK)}`);
  if (o.topP !== undefined && !(typeof o.topP === 'number' && o.topP > 0 && o.topP <= 1)) throw new AmendError(`generate: topP must be in (0, 1], got ${describeValue(o.topP)}`);
  if (o.temperature !== undefined && !(o.temperature > 0 && Number.isFinite(o.temperature))) {
    throw new AmendError(`generate: temperature must be a finite number > 0 (greedy decoding is temperature 0), got ${describeValue(o.temperature)}`);
  }
  for (const key of ['greedy', 'useCache'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new AmendError(`generate: ${key} must be true or false, got ${describeValue(o[key])}`);
  }
  if (o.greedy !== false && (o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined)) {
    // Greedy is the default: without this a caller's temperature / topK / topP would be ignored.
    throw new AmendError('generate: temperature, topK and topP apply to sampling; pass greedy: false to sample (greedy decoding, the default, takes the argmax)');
  }
  requireSeed(o.seed, 'generate: seed');
  if (o.eosId !== undefined && o.eosId !== null && (!isInt(o.eosId) || o.eosId < 0)) throw new AmendError(`generate: eosId must be a token id or null, got ${describeValue(o.eosId)}`);
}

/**
 * NaN or +Inf logits have no argmax and no softmax to draw from (argmax would skip NaN and return
 * a token as if nothing were wrong): a model whose weights or patch hold NaN or Inf, or whose
 * activations overflow float32. That is refused, naming the row, the step and the first such token. −Inf is a token
 * ruled out (probability 0, the usual way to ban tokens in sample()'s input), unless every token is.
 */
function requireFinite(row: Float32Array, where: string): void {
  let allowed = 0;
  for (let i = 0; i < row.length; i++) {
    const x = row[i]!;
    if (x === -Infinity) continue;
    if (!Number.isFinite(x)) {
      throw new AmendError(`${where}: the logits are not finite (${x} at token id ${i}); the model's weights or an applied patch hold NaN or Inf, or its activations overflow float32`);
    }
    allowed++;
  }
  if (allowed === 0) throw new AmendError(`${where}: every logit is -Infinity, so no token can be chosen`);
}

function pickTokens(logits: Tensor, greedy: boolean, o: GenerateOptions, rand: () => number, step: number, scratch?: Float32Array): number[] {
  const V = logits.dim(-1), rows = logits.size / V;
  for (let r = 0; r < rows; r++) requireFinite(logits.data.subarray(r * V, (r + 1) * V), `generate: prompt ${r}, new token ${step + 1}`);
  const { cut, nucleus } = restriction(o, V);
  if (!greedy && !cut && !nucleus) return sampleRows(logits.data, rows, V, o.temperature ?? 1, rand, scratch);
  const picks: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.data.subarray(r * V, (r + 1) * V);
    picks.push(greedy ? argmaxOf(row) : sample(row, o, rand));
  }
  return picks;
}

/** Whether top-k (cut) or top-p (nucleus) restrict V tokens: then the sampler needs their order. */
function restriction(o: Pick<GenerateOptions, 'topK' | 'topP'>, V: number): { cut: boolean; nucleus: boolean } {
  return { cut: o.topK !== undefined && o.topK > 0 && o.topK < V, nucleus: o.topP !== undefined && o.topP < 1 };
}

/**
 * Plain sampling of every row at once: the backend's softmax does the exponentials (one Math.exp
 * per vocabulary entry per token made the model's own samples, for layer statistics, cost minutes
 * on a 50k vocabulary), then each row is walked in index order with a float64 running sum.
 */
function sampleRows(logits: Float32Array, rows: number, V: number, temp: number, rand: () => number, scratch?: Float32Array): number[] {
  const scaled = temp === 1 ? logits : logits.map((x) => x / temp);
  // A generation's steps share one buffer (`scratch`, rows × V or more): a fresh one per step
  // costs its page faults each time (about a fifth of sampling a small model's own texts).
  const probs = scratch && scratch.length >= rows * V ? scratch.subarray(0, rows * V) : new Float32Array(rows * V);
  kernels().softmax(scaled, probs, rows, V);
  const picks: number[] = [];
  for (let r = 0; r < rows; r++) {
    const p = probs.subarray(r * V, (r + 1) * V);
    // Finite logits always give Σp > 0, unless dividing by a tiny temperature overflowed float32:
    // then the limit of temperature → 0, the argmax.
    picks.push(drawIndex(p, rand) ?? argmaxOf(logits.subarray(r * V, (r + 1) * V)));
  }
  return picks;
}

/** An index drawn with probability p[i] / Σp, or null when Σp is not a positive number. */
function drawIndex(p: Float32Array, rand: () => number): number | null {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  if (!(total > 0) || !Number.isFinite(total)) return null;
  let u = rand() * total;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u <= 0 && p[i] > 0) return i;
  }
  // Rounding can leave u a hair above 0 after the last entry: the last possible index it is.
  for (let i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;
  return null;
}

function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Samples from softmax(row / temperature) restricted to the top-k and nucleus (top-p) sets. */
export function sample(row: Float32Array, o: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rand: () => number): number {
  const temp = o.temperature ?? 1;
  if (!(temp > 0)) throw new AmendError('temperature must be > 0 (use greedy decoding for temperature 0)');
  requireFinite(row, 'sample');
  const { cut, nucleus } = restriction(o, row.length);
  // Plain sampling needs no order: the vocabulary's own order draws from the same distribution
  // without sorting V entries per token (a 50k vocabulary made that the cost of the whole pass).
  if (!cut && !nucleus) return sampleRows(row, 1, row.length, temp, rand)[0];
  let order = cut ? topKWithTies(row, o.topK!) : Array.from(row.keys()).sort((a, b) => row[b] - row[a]);
  const mx = row[order[0]];
  let probs = order.map((i) => Math.exp((row[i] - mx) / temp));
  let total = probs.reduce((a, b) => a + b, 0);
  if (nucleus) {
    let acc = 0, keep = 0;
    while (keep < probs.length && acc < o.topP! * total) acc += probs[keep++];
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, order.length);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = rand() * total;
  for (let i = 0; i < order.length; i++) {
    u -= probs[i];
    if (u <= 0) return order[i];
  }
  return order[order.length - 1];
}

/**
 * The top-k set as transformers' TopKLogitsWarper keeps it: every token whose logit is at least
 * the k-th largest, so tokens tied with the k-th all stay in (more than k then). Largest first,
 * ties by index.
 */
function topKWithTies(row: Float32Array, k: number): number[] {
  const best = topK(row, k);
  const kth = row[best[best.length - 1]];
  const taken = new Set(best);
  for (let i = 0; i < row.length; i++) if (row[i] === kth && !taken.has(i)) best.push(i);
  return best;
}

/** Above this k a full sort (O(V log V)) beats insertion into the best k (O(V·k)). */
const INSERTION_MAX_K = 64;

/**
 * Indices of the k largest entries, largest first (ties: lower index first): insertion into the
 * best k for the small k of sampling, a sort of all indices for a large one (`amend logits --top`).
 * NaN ranks as -Infinity: after every other number, beside -Infinity by index.
 */
export function topK(row: Float32Array, k: number): number[] {
  const v = (i: number) => (Number.isNaN(row[i]!) ? -Infinity : row[i]!);
  if (k > INSERTION_MAX_K) {
    const order = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => v(b) - v(a) || a - b);
    return order.slice(0, k);
  }
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const x = v(i);
    if (best.length === k && x <= v(best[k - 1]!)) continue;
    let at = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push(i);
    while (at > 0 && v(best[at - 1]!) < x) { best[at] = best[at - 1]!; at--; }
    best[at] = i;
  }
  return best;
}
