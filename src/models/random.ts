// Random checkpoints in exact Hugging Face layout, for tests and benchmarks that must not depend
// on downloaded weights.
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '../io/safetensors.js';
import { mulberry32, randn } from '../tensor/index.js';
import { buildSpec, expectedShapes } from './arch.js';
import { parseConfig } from './config.js';
import { makeDirs } from '../io/dirs.js';

/**
 * Writes config.json and model.safetensors for `rawConfig` with seeded N(0, std²) weights
 * (norm weights 1, biases 0): GPT-2's initialisation, less its 1/√(2·layers) scaling of the
 * residual projections (c_proj). Returns the directory.
 */
export function writeRandomCheckpoint(dir: string, rawConfig: Record<string, unknown>, seed = 0, std = 0.02): string {
  const config = parseConfig(rawConfig);
  const spec = buildSpec(config, () => false);
  const normNames = new Set<string>([spec.lnf.w, ...spec.layers.flatMap((l) => [l.ln1.w, ...(l.ln2 ? [l.ln2.w] : [])])]);
  const rand = mulberry32(seed);
  const tensors = [...expectedShapes(config, spec)].map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = normNames.has(name) ? new Float32Array(n).fill(1)
      : name.endsWith('.bias') ? new Float32Array(n) : randn(n, rand, std);
    return { name, shape, data };
  });
  makeDirs(dir);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2) + '\n');
  return dir;
}

/** A GPT-2 config of the given size (defaults: a very small model). */
export function gpt2Config(o: { layers?: number; hidden?: number; heads?: number; vocab?: number; positions?: number } = {}): Record<string, unknown> {
  return {
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'],
    n_layer: o.layers ?? 2, n_embd: o.hidden ?? 32, n_head: o.heads ?? 4,
    vocab_size: o.vocab ?? 100, n_positions: o.positions ?? 64, n_ctx: o.positions ?? 64,
    activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true,
    bos_token_id: 0, eos_token_id: 0,
  };
}
