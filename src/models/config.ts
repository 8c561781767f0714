// Hugging Face config.json → one normalised description of the transformer, whatever the family.
import { AmendError, requireObject, isObject } from '../errors.js';
import { parseRopeScaling, type RopeScaling } from './rope.js';

export type Family = 'gpt2' | 'gpt_neox' | 'gptj' | 'llama';
export type Activation = 'gelu_tanh' | 'gelu_erf' | 'silu' | 'relu';

export interface ModelConfig {
  family: Family;
  /** config.json's model_type as written (qwen2 and mistral run as the llama family). */
  modelType: string;
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  /** Positions the model can use: the config's, capped at a sliding window (see familyConfig). */
  maxPositions: number;
  /** The config's own position count (max_position_embeddings, n_positions), as it names the model. */
  configPositions: number;
  norm: 'layernorm' | 'rmsnorm';
  normEps: number;
  act: Activation;
  /** Learned absolute positions (GPT-2) or rotary. */
  positions: 'learned' | 'rotary';
  rotaryDim: number;
  ropeTheta: number;
  /** A scaled rotary embedding (rope_scaling / rope_parameters with a rope type other than "default"); null: unscaled. */
  ropeScaling: RopeScaling | null;
  /** GPT-J rotates pairs (2i, 2i+1); NeoX and Llama rotate halves. */
  ropeInterleaved: boolean;
  /** x + attn(ln1 x) + mlp(ln2 x) in one step (NeoX default, GPT-J with one shared norm). */
  parallelResidual: boolean;
  tiedEmbeddings: boolean;
  /**
   * The attention logits' scale is 1/√headDim (false: 1, GPT-2's scale_attn_weights) times
   * 1/(layer + 1) when attnScaleInverseLayer (GPT-2's scale_attn_by_inverse_layer_idx).
   */
  attnScaleHeadDim: boolean;
  attnScaleInverseLayer: boolean;
  bosId: number | null;
  /**
   * The first of config.json's eos_token_id (which may be a list). Kept when generation_config.json
   * replaces eosIds, as transformers keeps model.config.eos_token_id beside generation_config's.
   */
  eosId: number | null;
  /**
   * Every id of config.json's eos_token_id (replaced by generation_config.json's when a loaded
   * model's folder has one): generation stops at any of them, as transformers' does.
   */
  eosIds: number[];
  /** The raw config.json, kept so export writes it back unchanged. */
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, keys: string[], fallback?: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    // Present but not a number ("192", true): named, not read as missing or as the default.
    if (v !== undefined && v !== null) throw new AmendError(`config.json: ${k} is ${JSON.stringify(v)}, not a number; fix it in config.json`);
  }
  if (fallback !== undefined) return fallback;
  throw new AmendError(`config.json: missing ${keys.join(' / ')}; is this a causal language model config?`);
}

function idOf(raw: Record<string, unknown>, key: string): number | null {
  const v = raw[key];
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return null;
}

function idsOf(raw: Record<string, unknown>, key: string): number[] {
  const v = raw[key];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/**
 * The rotary settings, from the legacy keys (rope_theta / rotary_emb_base, rope_scaling,
 * partial_rotary_factor / rotary_pct at the top level) or from rope_parameters, where
 * transformers 5 writes them ({"rope_type", "rope_theta", "partial_rotary_factor", ...}). The
 * rope types "default", "linear", "dynamic", "llama3" and "yarn" are computed (see rope.ts); any
 * other is refused, from either place. `maxPositions` is the config's max_position_embeddings.
 */
function ropeSettings(raw: Record<string, unknown>, thetaKeys: string[], fractionKeys: string[], fraction: number, maxPositions: number): { theta: number; fraction: number; scaling: RopeScaling | null } {
  const params = raw.rope_parameters;
  if (params !== undefined && params !== null && !isObject(params)) {
    throw new AmendError(`config.json: rope_parameters must be an object, got ${JSON.stringify(params)}`);
  }
  if (isObject(params) && params.rope_theta === undefined && Object.values(params).some(isObject)) {
    throw new AmendError(`config.json: rope_parameters per layer type (${Object.keys(params).join(', ')}) are not supported; Amend runs one rotary setting for all layers`);
  }
  const scalings: [string, RopeScaling][] = [];
  for (const [key, value] of [['rope_scaling', raw.rope_scaling], ['rope_parameters', params]] as const) {
    if (value === undefined || value === null) continue;
    if (!isObject(value)) throw new AmendError(`config.json: ${key} must be an object or null, got ${JSON.stringify(value)}`);
    const scaling = parseRopeScaling(key, value, maxPositions, raw.original_max_position_embeddings);
    if (scaling) scalings.push([key, scaling]);
  }
  if (scalings.length === 2 && JSON.stringify(scalings[0]![1]) !== JSON.stringify(scalings[1]![1])) {
    throw new AmendError('config.json: rope_scaling and rope_parameters name different rotary scalings; remove one of them');
  }
  const top = thetaKeys.map((k) => raw[k]).find((v) => typeof v === 'number' && Number.isFinite(v)) as number | undefined;
  const nested = isObject(params) && typeof params.rope_theta === 'number' ? params.rope_theta : undefined;
  if (top !== undefined && nested !== undefined && top !== nested) {
    throw new AmendError(`config.json: ${thetaKeys.find((k) => raw[k] === top)} ${top} and rope_parameters.rope_theta ${nested} disagree; remove one of them`);
  }
  const nestedFraction = isObject(params) && typeof params.partial_rotary_factor === 'number' ? params.partial_rotary_factor : undefined;
  return {
    theta: nested ?? top ?? 10000,
    fraction: num(raw, fractionKeys, nestedFraction ?? fraction),
    scaling: scalings[0]?.[1] ?? null,
  };
}

function activation(name: unknown, where: string): Activation {
  switch (name) {
    case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_fast': return 'gelu_tanh';
    case 'gelu': return 'gelu_erf';
    case 'silu': case 'swish': return 'silu';
    case 'relu': return 'relu';
    default: throw new AmendError(`config.json: unsupported ${where} "${String(name)}" (supported: gelu, gelu_new, silu, relu)`);
  }
}

export const SUPPORTED_MODEL_TYPES = ['gpt2', 'gpt_neox', 'gptj', 'llama', 'qwen2', 'mistral'];

export function parseConfig(raw: Record<string, unknown>): ModelConfig {
  requireObject(raw, 'parseConfig takes the parsed config.json object');
  return checkConfig(familyConfig(raw));
}

/**
 * GPT-J's rotary_dim as transformers reads it. Absent is GPTJConfig's default, 64. null sizes the
 * sin/cos tables by the whole hidden size rather than a head and rotates every dimension, which
 * fits only a model with one head; with more heads transformers fails on the shapes. 0 fails there
 * too (the tables are hidden-sized then as well, the rotated slice empty). Those are refused.
 */
function gptjRotaryDim(raw: Record<string, unknown>, hidden: number, heads: number): number {
  if (raw.rotary_dim === undefined) {
    if (64 > hidden / heads) throw new AmendError(`config.json: has no rotary_dim, so transformers' GPT-J rotates 64 dimensions of each head (its default), more than the head has (${hidden / heads}); set rotary_dim`);
    return 64;
  }
  const dim = num(raw, ['rotary_dim'], 0);
  if (raw.rotary_dim === null && heads === 1) return hidden;
  if (raw.rotary_dim === null || dim === 0) {
    throw new AmendError(`config.json: rotary_dim is ${JSON.stringify(raw.rotary_dim)}, which transformers' GPT-J cannot run with ${heads} attention head${heads === 1 ? '' : 's'}; set rotary_dim to the number of dimensions of each head to rotate (an even number from 2 to ${hidden / heads})`);
  }
  return dim;
}

/** A model that uses every position its config names. */
const positionsOf = (n: number) => ({ maxPositions: n, configPositions: n });

function familyConfig(raw: Record<string, unknown>): ModelConfig {
  const modelType = String(raw.model_type ?? '');
  const base = {
    modelType, raw, bosId: idOf(raw, 'bos_token_id'), eosId: idOf(raw, 'eos_token_id'), eosIds: idsOf(raw, 'eos_token_id'),
    attnScaleHeadDim: true, attnScaleInverseLayer: false,
  };
  switch (modelType) {
    case 'gpt2': {
      const hidden = num(raw, ['n_embd']), heads = num(raw, ['n_head']);
      return {
        ...base, family: 'gpt2', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['n_layer']),
        heads, kvHeads: heads, headDim: hidden / heads, ffn: num(raw, ['n_inner'], 4 * hidden),
        ...positionsOf(num(raw, ['n_positions', 'n_ctx'])), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_epsilon'], 1e-5), act: activation(raw.activation_function ?? 'gelu_new', 'activation_function'),
        positions: 'learned', rotaryDim: 0, ropeTheta: 0, ropeScaling: null, ropeInterleaved: false, parallelResidual: false,
        tiedEmbeddings: raw.tie_word_embeddings !== false,
        attnScaleHeadDim: raw.scale_attn_weights !== false, attnScaleInverseLayer: raw.scale_attn_by_inverse_layer_idx === true,
      };
    }
    case 'gpt_neox': {
      const hidden = num(raw, ['hidden_size']), heads = num(raw, ['num_attention_heads']);
      const headDim = hidden / heads;
      const positions = num(raw, ['max_position_embeddings']);
      const rope = ropeSettings(raw, ['rotary_emb_base', 'rope_theta'], ['rotary_pct', 'partial_rotary_factor'], 0.25, positions); // GPTNeoXConfig's default
      return {
        ...base, family: 'gpt_neox', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['num_hidden_layers']),
        heads, kvHeads: heads, headDim, ffn: num(raw, ['intermediate_size']),
        ...positionsOf(positions), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_eps'], 1e-5), act: activation(raw.hidden_act ?? 'gelu', 'hidden_act'),
        positions: 'rotary', rotaryDim: Math.floor(headDim * rope.fraction), ropeTheta: rope.theta, ropeScaling: rope.scaling, ropeInterleaved: false,
        parallelResidual: raw.use_parallel_residual !== false,
        tiedEmbeddings: raw.tie_word_embeddings === true,
      };
    }
    case 'gptj': {
      const hidden = num(raw, ['n_embd']), heads = num(raw, ['n_head']);
      const headDim = hidden / heads;
      return {
        ...base, family: 'gptj', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['n_layer']),
        heads, kvHeads: heads, headDim, ffn: num(raw, ['n_inner'], 4 * hidden),
        ...positionsOf(num(raw, ['n_positions'])), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_epsilon'], 1e-5), act: activation(raw.activation_function ?? 'gelu_new', 'activation_function'),
        // transformers' GPT-J has no rope settings: base 10000, unscaled, whatever config.json says.
        positions: 'rotary', rotaryDim: gptjRotaryDim(raw, hidden, heads), ropeTheta: 10000, ropeScaling: null, ropeInterleaved: true,
        parallelResidual: true, tiedEmbeddings: raw.tie_word_embeddings === true,
      };
    }
    case 'llama': case 'qwen2': case 'mistral': {
      const hidden = num(raw, ['hidden_size']), heads = num(raw, ['num_attention_heads']);
      const headDim = num(raw, ['head_dim'], hidden / heads);
      const configPositions = num(raw, ['max_position_embeddings']);
      const rope = ropeSettings(raw, ['rope_theta'], ['partial_rotary_factor'], 1, configPositions);
      // Amend's attention has no sliding window (Mistral's sliding_window, Qwen2's with
      // use_sliding_window): within the window the two are the same, so the model is given the
      // window as its length, and longer sequences are refused rather than computed otherwise.
      // (transformers 5 names the layers that use it in layer_types).
      const windowed = modelType === 'mistral' || raw.use_sliding_window === true
        || (Array.isArray(raw.layer_types) && raw.layer_types.includes('sliding_attention'));
      const window = windowed ? raw.sliding_window : null;
      return {
        ...base, family: 'llama', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['num_hidden_layers']),
        heads, kvHeads: num(raw, ['num_key_value_heads'], heads), headDim, ffn: num(raw, ['intermediate_size']),
        configPositions, maxPositions: typeof window === 'number' && window >= 1 ? Math.min(configPositions, window) : configPositions, norm: 'rmsnorm',
        normEps: num(raw, ['rms_norm_eps'], 1e-6), act: activation(raw.hidden_act ?? 'silu', 'hidden_act'),
        positions: 'rotary', rotaryDim: Math.floor(headDim * rope.fraction),
        ropeTheta: rope.theta, ropeScaling: rope.scaling, ropeInterleaved: false, parallelResidual: false,
        tiedEmbeddings: raw.tie_word_embeddings === true,
      };
    }
    case '':
      throw new AmendError(`config.json: has no model_type${Array.isArray(raw.architectures) ? ` (architectures: ${raw.architectures.join(', ')})` : ''}; add the model_type of the architecture (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
    default:
      throw new AmendError(`config.json: model_type "${modelType}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
}

/** Counts must be positive integers within reason; a config that breaks this describes no model Amend can run. */
function checkConfig(c: ModelConfig): ModelConfig {
  const counts: [string, number, number][] = [
    ['vocabulary size', c.vocabSize, 2 ** 24], ['hidden size', c.hidden, 2 ** 20], ['number of layers', c.layers, 4096],
    ['number of attention heads', c.heads, 2 ** 16], ['number of key/value heads', c.kvHeads, 2 ** 16],
    ['head dimension', c.headDim, 2 ** 16], ['MLP width', c.ffn, 2 ** 22], ['number of positions', c.maxPositions, 2 ** 31 - 1],
  ];
  for (const [what, v, max] of counts) {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new AmendError(`config.json: the ${what} is ${v}; it must be an integer from 1 to ${max}`);
  }
  if (c.heads % c.kvHeads !== 0) throw new AmendError(`config.json: ${c.heads} attention heads do not split into ${c.kvHeads} key/value groups`);
  if (c.positions === 'rotary' && (!Number.isInteger(c.rotaryDim) || c.rotaryDim < 0 || c.rotaryDim > c.headDim || c.rotaryDim % 2 !== 0)) {
    throw new AmendError(`config.json: the rotary dimension is ${c.rotaryDim}; it must be an even integer from 0 to the head dimension ${c.headDim}`);
  }
  if (c.ropeScaling?.type === 'dynamic' && c.rotaryDim <= 2) {
    throw new AmendError(`config.json: dynamic rope scaling needs a rotary dimension above 2 (its base grows with the power d/(d-2)); this model rotates ${c.rotaryDim}`);
  }
  if (!(c.normEps > 0)) throw new AmendError(`config.json: the norm epsilon is ${c.normEps}; it must be > 0`);
  return c;
}
