// Where each family keeps its weights. A spec maps the roles the forward pass needs (norms,
// projections, MLP) to the checkpoint's own tensor names and orientations, so the weights stay
// exactly as Hugging Face stores them and export writes them back untouched.
import type { ModelConfig } from './config.js';

export type Layout = 'in_out' | 'out_in';

export interface LinearSpec {
  w: string;
  b: string | null;
  /** 'in_out': [in, out] (GPT-2 Conv1D); 'out_in': [out, in] (torch Linear). */
  layout: Layout;
  inF: number;
  outF: number;
}

export interface NormSpec { w: string; b: string | null }

export type QkvSpec =
  /** One [d, 3d] projection whose output is q | k | v, each heads × headDim (GPT-2). */
  | { kind: 'fused'; lin: LinearSpec }
  /** One projection whose output is per head (q, k, v) × headDim (GPT-NeoX). */
  | { kind: 'fused_per_head'; lin: LinearSpec }
  | { kind: 'separate'; q: LinearSpec; k: LinearSpec; v: LinearSpec };

export interface LayerSpec {
  ln1: NormSpec;
  /** null when attention and MLP share ln1 (GPT-J). */
  ln2: NormSpec | null;
  qkv: QkvSpec;
  /** Attention's output projection, heads × headDim → d. */
  o: LinearSpec;
  /** The MLP's first projection (c_fc, dense_h_to_4h, fc_in, up_proj). */
  up: LinearSpec;
  /** Llama's gate: keys = act(gate x) * up x. */
  gate: LinearSpec | null;
  /** The down projection whose input is `mlp.keys`: the matrix locate-then-edit methods rewrite. */
  down: LinearSpec;
}

export interface ModelSpec {
  wte: string;
  wpe: string | null;
  lnf: NormSpec;
  lmHead: LinearSpec;
  layers: LayerSpec[];
}

function lin(w: string, b: string | null, layout: Layout, inF: number, outF: number): LinearSpec {
  return { w, b, layout, inF, outF };
}

/**
 * The spec of a checkpoint. `has` tells which names the checkpoint holds: files saved from the
 * base model (GPT2Model, LlamaModel, ...) lack the prefix of the body ("transformer.", "gpt_neox.",
 * "model."), as the hub's original GPT-2 does, and transformers loads them either way; GPT-J's head
 * bias is optional. A tied head reads the embedding even when the file also stores lm_head.weight,
 * as Hugging Face does.
 */
export function buildSpec(c: ModelConfig, has: (name: string) => boolean): ModelSpec {
  const d = c.hidden, q = c.heads * c.headDim, kv = c.kvHeads * c.headDim;
  const layers: LayerSpec[] = [];
  /** The body's prefix: `prefix` unless only the embedding's bare name is present. */
  const bodyPrefix = (prefix: string, embedding: string): string => (has(prefix + embedding) || !has(embedding) ? prefix : '');
  switch (c.family) {
    case 'gpt2': {
      const p = bodyPrefix('transformer.', 'wte.weight');
      for (let l = 0; l < c.layers; l++) {
        const h = `${p}h.${l}.`;
        layers.push({
          ln1: { w: `${h}ln_1.weight`, b: `${h}ln_1.bias` },
          ln2: { w: `${h}ln_2.weight`, b: `${h}ln_2.bias` },
          qkv: { kind: 'fused', lin: lin(`${h}attn.c_attn.weight`, `${h}attn.c_attn.bias`, 'in_out', d, 3 * d) },
          o: lin(`${h}attn.c_proj.weight`, `${h}attn.c_proj.bias`, 'in_out', d, d),
          up: lin(`${h}mlp.c_fc.weight`, `${h}mlp.c_fc.bias`, 'in_out', d, c.ffn),
          gate: null,
          down: lin(`${h}mlp.c_proj.weight`, `${h}mlp.c_proj.bias`, 'in_out', c.ffn, d),
        });
      }
      const head = c.tiedEmbeddings ? `${p}wte.weight` : 'lm_head.weight';
      return {
        wte: `${p}wte.weight`, wpe: `${p}wpe.weight`, lnf: { w: `${p}ln_f.weight`, b: `${p}ln_f.bias` },
        lmHead: lin(head, null, 'out_in', d, c.vocabSize), layers,
      };
    }
    case 'gpt_neox': {
      const p = bodyPrefix('gpt_neox.', 'embed_in.weight');
      // GPTNeoXConfig's attention_bias (default true) covers query_key_value and dense.
      const attnBias = c.raw.attention_bias !== false;
      for (let l = 0; l < c.layers; l++) {
        const h = `${p}layers.${l}.`;
        layers.push({
          ln1: { w: `${h}input_layernorm.weight`, b: `${h}input_layernorm.bias` },
          ln2: { w: `${h}post_attention_layernorm.weight`, b: `${h}post_attention_layernorm.bias` },
          qkv: { kind: 'fused_per_head', lin: lin(`${h}attention.query_key_value.weight`, attnBias ? `${h}attention.query_key_value.bias` : null, 'out_in', d, 3 * d) },
          o: lin(`${h}attention.dense.weight`, attnBias ? `${h}attention.dense.bias` : null, 'out_in', d, d),
          up: lin(`${h}mlp.dense_h_to_4h.weight`, `${h}mlp.dense_h_to_4h.bias`, 'out_in', d, c.ffn),
          gate: null,
          down: lin(`${h}mlp.dense_4h_to_h.weight`, `${h}mlp.dense_4h_to_h.bias`, 'out_in', c.ffn, d),
        });
      }
      return {
        wte: `${p}embed_in.weight`, wpe: null,
        lnf: { w: `${p}final_layer_norm.weight`, b: `${p}final_layer_norm.bias` },
        lmHead: lin(c.tiedEmbeddings ? `${p}embed_in.weight` : 'embed_out.weight', null, 'out_in', d, c.vocabSize),
        layers,
      };
    }
    case 'gptj': {
      const p = bodyPrefix('transformer.', 'wte.weight');
      for (let l = 0; l < c.layers; l++) {
        const h = `${p}h.${l}.`;
        layers.push({
          ln1: { w: `${h}ln_1.weight`, b: `${h}ln_1.bias` },
          ln2: null,
          qkv: {
            kind: 'separate',
            q: lin(`${h}attn.q_proj.weight`, null, 'out_in', d, d),
            k: lin(`${h}attn.k_proj.weight`, null, 'out_in', d, d),
            v: lin(`${h}attn.v_proj.weight`, null, 'out_in', d, d),
          },
          o: lin(`${h}attn.out_proj.weight`, null, 'out_in', d, d),
          up: lin(`${h}mlp.fc_in.weight`, `${h}mlp.fc_in.bias`, 'out_in', d, c.ffn),
          gate: null,
          down: lin(`${h}mlp.fc_out.weight`, `${h}mlp.fc_out.bias`, 'out_in', c.ffn, d),
        });
      }
      return {
        wte: `${p}wte.weight`, wpe: null, lnf: { w: `${p}ln_f.weight`, b: `${p}ln_f.bias` },
        lmHead: lin(c.tiedEmbeddings ? `${p}wte.weight` : 'lm_head.weight', has('lm_head.bias') ? 'lm_head.bias' : null, 'out_in', d, c.vocabSize),
        layers,
      };
    }
    case 'llama': {
      // As transformers builds them: Llama's attention_bias (q/k/v/o) and mlp_bias switch its
      // biases; Qwen2 always has q/k/v biases and never o/MLP ones; Mistral has none. The latter two
      // ignore both keys, so a config that carries them must not ask for tensors the model lacks.
      const llama = c.modelType === 'llama';
      const qkvBias = c.modelType === 'qwen2' || (llama && c.raw.attention_bias === true);
      const oBias = llama && c.raw.attention_bias === true;
      const mlpBias = llama && c.raw.mlp_bias === true;
      const p = bodyPrefix('model.', 'embed_tokens.weight');
      for (let l = 0; l < c.layers; l++) {
        const h = `${p}layers.${l}.`;
        const b = (name: string, on: boolean): string | null => (on ? `${h}${name}.bias` : null);
        layers.push({
          ln1: { w: `${h}input_layernorm.weight`, b: null },
          ln2: { w: `${h}post_attention_layernorm.weight`, b: null },
          qkv: {
            kind: 'separate',
            q: lin(`${h}self_attn.q_proj.weight`, b('self_attn.q_proj', qkvBias), 'out_in', d, q),
            k: lin(`${h}self_attn.k_proj.weight`, b('self_attn.k_proj', qkvBias), 'out_in', d, kv),
            v: lin(`${h}self_attn.v_proj.weight`, b('self_attn.v_proj', qkvBias), 'out_in', d, kv),
          },
          o: lin(`${h}self_attn.o_proj.weight`, b('self_attn.o_proj', oBias), 'out_in', q, d),
          up: lin(`${h}mlp.up_proj.weight`, b('mlp.up_proj', mlpBias), 'out_in', d, c.ffn),
          gate: lin(`${h}mlp.gate_proj.weight`, b('mlp.gate_proj', mlpBias), 'out_in', d, c.ffn),
          down: lin(`${h}mlp.down_proj.weight`, b('mlp.down_proj', mlpBias), 'out_in', c.ffn, d),
        });
      }
      return {
        wte: `${p}embed_tokens.weight`, wpe: null, lnf: { w: `${p}norm.weight`, b: null },
        lmHead: lin(c.tiedEmbeddings ? `${p}embed_tokens.weight` : 'lm_head.weight', null, 'out_in', d, c.vocabSize),
        layers,
      };
    }
  }
}

/** Every tensor the spec reads, with the shape the config implies. */
export function expectedShapes(c: ModelConfig, s: ModelSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const addLin = (l: LinearSpec): void => {
    m.set(l.w, l.layout === 'in_out' ? [l.inF, l.outF] : [l.outF, l.inF]);
    if (l.b) m.set(l.b, [l.outF]);
  };
  const addNorm = (n: NormSpec): void => {
    m.set(n.w, [c.hidden]);
    if (n.b) m.set(n.b, [c.hidden]);
  };
  m.set(s.wte, [c.vocabSize, c.hidden]);
  if (s.wpe) m.set(s.wpe, [c.maxPositions, c.hidden]);
  addNorm(s.lnf);
  addLin(s.lmHead);
  for (const l of s.layers) {
    addNorm(l.ln1);
    if (l.ln2) addNorm(l.ln2);
    if (l.qkv.kind === 'separate') { addLin(l.qkv.q); addLin(l.qkv.k); addLin(l.qkv.v); } else addLin(l.qkv.lin);
    addLin(l.o);
    addLin(l.up);
    if (l.gate) addLin(l.gate);
    addLin(l.down);
  }
  return m;
}
