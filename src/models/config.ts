// Hugging Face config.json → one normalised description of the transformer, whatever the family.
import { AmendError } from '../errors.js';

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
  maxPositions: number;
  norm: 'layernorm' | 'rmsnorm';
  normEps: number;
  act: Activation;
  /** Learned absolute positions (GPT-2) or rotary. */
  positions: 'learned' | 'rotary';
  rotaryDim: number;
  ropeTheta: number;
  /** GPT-J rotates pairs (2i, 2i+1); NeoX and Llama rotate halves. */
  ropeInterleaved: boolean;
  /** x + attn(ln1 x) + mlp(ln2 x) in one step (NeoX default, GPT-J with one shared norm). */
  parallelResidual: boolean;
  tiedEmbeddings: boolean;
  bosId: number | null;
  eosId: number | null;
  /** The raw config.json, kept so export writes it back unchanged. */
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, keys: string[], fallback?: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
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
  const modelType = String(raw.model_type ?? '');
  const base = { modelType, raw, bosId: idOf(raw, 'bos_token_id'), eosId: idOf(raw, 'eos_token_id') };
  switch (modelType) {
    case 'gpt2': {
      const hidden = num(raw, ['n_embd']), heads = num(raw, ['n_head']);
      return {
        ...base, family: 'gpt2', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['n_layer']),
        heads, kvHeads: heads, headDim: hidden / heads, ffn: num(raw, ['n_inner'], 4 * hidden),
        maxPositions: num(raw, ['n_positions', 'n_ctx']), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_epsilon'], 1e-5), act: activation(raw.activation_function ?? 'gelu_new', 'activation_function'),
        positions: 'learned', rotaryDim: 0, ropeTheta: 0, ropeInterleaved: false, parallelResidual: false,
        tiedEmbeddings: raw.tie_word_embeddings !== false,
      };
    }
    case 'gpt_neox': {
      const hidden = num(raw, ['hidden_size']), heads = num(raw, ['num_attention_heads']);
      const headDim = hidden / heads;
      return {
        ...base, family: 'gpt_neox', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['num_hidden_layers']),
        heads, kvHeads: heads, headDim, ffn: num(raw, ['intermediate_size']),
        maxPositions: num(raw, ['max_position_embeddings']), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_eps'], 1e-5), act: activation(raw.hidden_act ?? 'gelu', 'hidden_act'),
        positions: 'rotary', rotaryDim: Math.floor(headDim * num(raw, ['rotary_pct', 'partial_rotary_factor'], 1)),
        ropeTheta: num(raw, ['rotary_emb_base', 'rope_theta'], 10000), ropeInterleaved: false,
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
        maxPositions: num(raw, ['n_positions']), norm: 'layernorm',
        normEps: num(raw, ['layer_norm_epsilon'], 1e-5), act: activation(raw.activation_function ?? 'gelu_new', 'activation_function'),
        positions: 'rotary', rotaryDim: num(raw, ['rotary_dim'], headDim), ropeTheta: 10000, ropeInterleaved: true,
        parallelResidual: true, tiedEmbeddings: raw.tie_word_embeddings === true,
      };
    }
    case 'llama': case 'qwen2': case 'mistral': {
      const hidden = num(raw, ['hidden_size']), heads = num(raw, ['num_attention_heads']);
      const headDim = num(raw, ['head_dim'], hidden / heads);
      const scaling = raw.rope_scaling as { rope_type?: string; type?: string } | null | undefined;
      const scalingType = scaling?.rope_type ?? scaling?.type;
      if (scaling && scalingType !== 'default') {
        throw new AmendError(`config.json: rope_scaling "${scalingType}" is not supported yet (only unscaled rotary embeddings)`);
      }
      return {
        ...base, family: 'llama', vocabSize: num(raw, ['vocab_size']), hidden, layers: num(raw, ['num_hidden_layers']),
        heads, kvHeads: num(raw, ['num_key_value_heads'], heads), headDim, ffn: num(raw, ['intermediate_size']),
        maxPositions: num(raw, ['max_position_embeddings']), norm: 'rmsnorm',
        normEps: num(raw, ['rms_norm_eps'], 1e-6), act: activation(raw.hidden_act ?? 'silu', 'hidden_act'),
        positions: 'rotary', rotaryDim: Math.floor(headDim * num(raw, ['partial_rotary_factor'], 1)),
        ropeTheta: num(raw, ['rope_theta'], 10000), ropeInterleaved: false, parallelResidual: false,
        tiedEmbeddings: raw.tie_word_embeddings === true,
      };
    }
    default:
      throw new AmendError(`config.json: model_type "${modelType}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
}
