// A causal language model: config, weights under their checkpoint names, tokenizer, forward; and
// its loading from a model folder, the Hugging Face cache or the hub, checked against the spec.
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, requirePath, isObject, optionKeys, refuseUnknownKeys, requireObject } from '../errors.js';
import { packageRoot } from '../version.js';
import { readCheckpoint, readCheckpointAsync, type Checkpoint } from '../io/checkpoint.js';
import { readModelJson } from '../io/json.js';
import { countNonFinite } from '../io/dtype.js';
import { resolveModel, type ResolveOptions } from '../io/resolve.js';
import { AmendTokenizer } from '../tokenizer/index.js';
import { Tensor } from '../tensor/index.js';
import { buildSpec, expectedShapes, type ModelSpec } from './arch.js';
import { parseConfig, type ModelConfig } from './config.js';
import { forward, type ForwardOptions, type ForwardOutput, type ModelWeights } from './transformer.js';

/** Storage types whose values are the weights themselves (not quantized codes). */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
/** What a quantized checkpoint is told, naming the types FLOAT_DTYPES takes. */
const FLOAT_ONLY = `Amend runs float weights only (${[...FLOAT_DTYPES].join(', ')}) — use an unquantized copy of the model`;

/** The model id of the built-in demo model: the repository's world/ folder (`--model world`). */
export const BUILTIN_WORLD = 'world';

/** The built-in demo model's folder (<package root>/world), or a clear error when it is missing. */
export function builtinWorldDir(): string {
  const root = packageRoot();
  if (root === null) throw new AmendError('the built-in demo model cannot be found: no package.json above the amend modules');
  const world = path.join(root, 'world');
  if (!fs.existsSync(path.join(world, 'config.json'))) {
    throw new AmendError(`the built-in demo model is missing (${world} has no config.json); rebuild it with "amend world build", or pass ./world for a folder named world`);
  }
  return world;
}

/** config.json of a model folder, checked (an unknown model_type fails before any weights are read). */
function readConfig(dir: string): Record<string, unknown> {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new AmendError(`${dir}: no config.json — not a Hugging Face model directory`);
  const raw = readModelJson(configPath);
  if (!isObject(raw)) {
    throw new AmendError(`${configPath}: must be a JSON object of model settings, got ${raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  parseConfig(raw);
  return raw as Record<string, unknown>;
}

/** eos_token_id of dir/generation_config.json as a list, or null when the file or the key is absent. */
function generationEosIds(dir: string): number[] | null {
  const file = path.join(dir, 'generation_config.json');
  if (!fs.existsSync(file)) return null;
  const raw = readModelJson(file);
  const v = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>).eos_token_id : undefined;
  if (v === undefined || v === null) return null;
  const ids = Array.isArray(v) ? v : [v];
  if (!ids.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
    throw new AmendError(`${file}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(v)}`);
  }
  return ids as number[];
}

export interface LoadOptions extends ResolveOptions {
  /** Skip the tokenizer (e.g. a checkpoint without tokenizer.json used with raw ids). */
  noTokenizer?: boolean;
  /** Bytes of weights read so far / in all. */
  onLoadProgress?: (doneBytes: number, totalBytes: number) => void;
}

const LOAD_OPTION_KEYS = optionKeys<LoadOptions>()(['cacheDir', 'download', 'hubUrl', 'revision', 'token', 'onProgress', 'noTokenizer', 'onLoadProgress']);

/** loadDir reads a folder: nothing to resolve or download. */
export type LoadDirOptions = Pick<LoadOptions, 'noTokenizer' | 'onLoadProgress'>;
const LOAD_DIR_OPTION_KEYS = optionKeys<LoadDirOptions>()(['noTokenizer', 'onLoadProgress']);

export class CausalLM implements ModelWeights {
  readonly config: ModelConfig;
  readonly spec: ModelSpec;
  /** Every tensor of the checkpoint by its own name (including ones the forward pass ignores). */
  readonly weights: Map<string, Tensor>;
  /** Storage dtype of each tensor in the file it came from ('F32', 'F16', 'BF16', ...). */
  readonly dtypes: Map<string, string>;
  /** Where it was loaded from, when it came from disk. */
  readonly dir: string | null;
  readonly tokenizer: AmendTokenizer | null;

  constructor(rawConfig: Record<string, unknown>, weights: Map<string, Tensor>,
    opts: { dtypes?: Map<string, string>; dir?: string | null; tokenizer?: AmendTokenizer | null } = {}) {
    // parseConfig has checked the sizes (an integer head dimension, heads in whole key/value groups).
    this.config = parseConfig(rawConfig);
    const c = this.config;
    const quant = rawConfig.quantization_config;
    if (quant !== undefined && quant !== null) {
      const method = (quant as { quant_method?: unknown }).quant_method;
      throw new AmendError(`config.json: the checkpoint is quantized (quantization_config${typeof method === 'string' ? `, quant_method "${method}"` : ''}); ${FLOAT_ONLY}`);
    }
    this.spec = buildSpec(c, (n) => weights.has(n));
    for (const [name, shape] of expectedShapes(c, this.spec)) {
      const t = weights.get(name);
      if (!t) {
        const tied = c.tiedEmbeddings || name !== this.spec.lmHead.w ? '' : ' (tie_word_embeddings is false, so the head is a tensor of its own)';
        throw new AmendError(`weights: tensor "${name}" is missing, but model_type "${c.modelType}" needs it${tied} — is the checkpoint complete?`);
      }
      const stored = opts.dtypes?.get(name);
      if (stored !== undefined && !FLOAT_DTYPES.has(stored)) {
        // Integer weights are quantized values whose scales live elsewhere: read as numbers they are garbage.
        throw new AmendError(`weights: "${name}" is stored as ${stored}, an integer type (a quantized checkpoint?); ${FLOAT_ONLY}`);
      }
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new AmendError(`weights: "${name}" has shape [${t.shape}] but config.json implies [${shape}] — config and weights do not match`);
      }
    }
    this.weights = weights;
    this.dtypes = opts.dtypes ?? new Map([...weights.keys()].map((n) => [n, 'F32']));
    this.dir = opts.dir ?? null;
    this.tokenizer = opts.tokenizer ?? null;
  }

  /**
   * Loads from a directory, the local Hugging Face cache or (when allowed) the hub. The weights are
   * read with a yield to the event loop after each tensor (loadDir reads them in one go).
   */
  static async load(idOrPath: string, opts: LoadOptions | null = {}): Promise<CausalLM> {
    requirePath(idOrPath, 'CausalLM.load needs the model folder or Hugging Face id');
    opts ??= {};
    requireObject(opts, 'CausalLM.load takes options as an object ({ noTokenizer: true }, say)');
    refuseUnknownKeys(opts, LOAD_OPTION_KEYS, 'CausalLM.load');
    const dir = idOrPath === BUILTIN_WORLD ? builtinWorldDir() : await resolveModel(idOrPath, opts);
    const raw = readConfig(dir);
    return CausalLM.fromCheckpoint(dir, raw, await readCheckpointAsync(dir, { onProgress: opts.onLoadProgress }), opts);
  }

  static loadDir(dir: string, opts: LoadDirOptions | null = {}): CausalLM {
    requirePath(dir, 'CausalLM.loadDir needs the model folder');
    opts ??= {};
    requireObject(opts, 'CausalLM.loadDir takes options as an object ({ noTokenizer: true }, say)');
    refuseUnknownKeys(opts, LOAD_DIR_OPTION_KEYS, 'CausalLM.loadDir');
    const raw = readConfig(dir);
    return CausalLM.fromCheckpoint(dir, raw, readCheckpoint(dir, { onProgress: opts.onLoadProgress }), opts);
  }

  private static fromCheckpoint(dir: string, raw: Record<string, unknown>, ckpt: Checkpoint, opts: Pick<LoadOptions, 'noTokenizer'>): CausalLM {
    const weights = new Map<string, Tensor>();
    const dtypes = new Map<string, string>();
    for (const [name, rec] of ckpt.tensors) {
      weights.set(name, new Tensor(rec.data, rec.shape));
      dtypes.set(name, rec.dtype);
    }
    const hasTokenizer = fs.existsSync(path.join(dir, 'tokenizer.json'));
    const tokenizer = hasTokenizer && !opts.noTokenizer ? AmendTokenizer.fromDir(dir) : null;
    const model = new CausalLM(raw, weights, { dtypes, dir, tokenizer });
    // A NaN or Inf among the weights (a damaged download, a bad conversion) loads fine and then
    // turns every edit and every score into garbage far from its cause, so refuse it here. Only the
    // tensors the forward pass uses are checked: a buffer it ignores may hold anything.
    for (const name of expectedShapes(model.config, model.spec).keys()) {
      const bad = countNonFinite(weights.get(name)!.data);
      if (bad > 0) {
        const file = ckpt.shards.find((s) => s.names.includes(name))?.file ?? '';
        throw new AmendError(`${path.join(dir, file)}: tensor "${name}" holds ${bad} non-finite value${bad === 1 ? '' : 's'} (NaN/Inf); the checkpoint is damaged — download or convert it again`);
      }
    }
    // A tokenizer bigger than the embedding is another model's (or has tokens added without
    // resizing); text that uses its extra ids fails later with an id out of range, so say why now.
    if (tokenizer && tokenizer.vocabSize > model.config.vocabSize) {
      process.emitWarning(`${dir}: tokenizer.json has ${tokenizer.vocabSize} token ids but the model's vocabulary only ${model.config.vocabSize}; text with ids ${model.config.vocabSize} and above cannot be run — is the tokenizer this model's own?`);
    }
    // transformers' generate stops at generation_config.json's eos ids when the file names them
    // (Llama 3 Instruct lists <|eot_id|> there, beside config.json's <|end_of_text|>).
    const genEos = generationEosIds(dir);
    if (genEos) model.config.eosIds = genEos;
    return model;
  }

  weight(name: string): Tensor {
    const t = this.weights.get(name);
    if (!t) throw new AmendError(`model has no tensor "${name}"`);
    return t;
  }

  forward(ids: Int32Array, batch: number, seqLen: number, opts?: ForwardOptions): ForwardOutput {
    return forward(this, ids, batch, seqLen, opts);
  }

  /** The tokenizer, or a clear error for a model loaded without one. */
  tok(): AmendTokenizer {
    if (!this.tokenizer) throw new AmendError(`model${this.dir ? ` at ${this.dir}` : ''} has no tokenizer.json, so text cannot be encoded; add the model's tokenizer.json (or give token ids where a command takes them, e.g. amend logits --ids)`);
    return this.tokenizer;
  }

  /** Number of parameters the forward pass uses (tied matrices counted once). */
  parameterCount(): number {
    let n = 0;
    for (const name of expectedShapes(this.config, this.spec).keys()) n += this.weight(name).size;
    return n;
  }
}
