// Hyperparameters as data: a schema per method, presets per model (published values, each citing
// the file it comes from), EasyEdit's YAML files read as they are, and `key=value` overrides checked
// against the schema.
//
// Resolution order (later wins): the method's defaults → the preset (named, or matched to the
// model's architecture, or built by the documented rule for models without one) → a YAML/JSON file
// → `--set key=value` overrides. Every value is type-checked; an unknown key is an error naming the
// valid ones.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { AmendError, closest, isObject, MAX_SEED, refuseDevice, refuseOversize, requireObject, requirePath, typeName } from '../errors.js';
import { buildSpec } from '../models/arch.js';
import type { CausalLM } from '../models/model.js';
import { packageRoot } from '../version.js';
import { existingCorpusPath, hasCorpusExtension } from './common/corpus.js';

export type EditMethod = 'rome' | 'memit';
export const METHODS: readonly EditMethod[] = ['rome', 'memit'];

export type FactToken = 'subject_last' | 'subject_first' | 'subject_first_after_last' | 'last';
export const FACT_TOKENS: readonly FactToken[] = ['subject_last', 'subject_first', 'subject_first_after_last', 'last'];

type Kind = 'int' | 'number' | 'bool' | 'string' | 'int_list' | 'int_pairs' | 'string_list' | 'enum';

export interface HparamSpec {
  kind: Kind;
  help: string;
  values?: readonly string[];
  min?: number;
  max?: number;
  /**
   * Accepted so that the reference files load, but not used to compute the edit: bookkeeping
   * (device, fp16...), module names Amend finds itself, and switches the reference code ignores
   * too. Some are still checked (alg_name against the method); a value that would have changed the
   * reference's run is warned about (ignoredWarnings).
   */
  ignored?: boolean;
}

/** Keys shared by ROME and MEMIT (the reference hparams classes, plus Amend's named switches). */
const COMMON: Record<string, HparamSpec> = {
  layers: { kind: 'int_list', help: 'layers whose MLP down projection is rewritten' },
  fact_token: { kind: 'enum', values: FACT_TOKENS, help: 'token where the fact is looked up: subject_last | subject_first | subject_first_after_last | last' },
  v_num_grad_steps: { kind: 'int', min: 1, help: 'Adam iterations of the v* and z optimisation (the last one only evaluates)' },
  v_lr: { kind: 'number', min: 0, help: 'Adam learning rate of the v* and z optimisation' },
  v_loss_layer: { kind: 'int', min: 0, help: 'MEMIT: layer whose output the target NLL is read from (the last layer = the model\'s own logits); ROME reads the model\'s own logits whatever it says, as kmeng01/rome and EasyEdit do (another value is warned about)' },
  v_weight_decay: { kind: 'number', min: 0, help: 'weight of ‖δ‖ / ‖v₀‖² in the v* and z loss' },
  clamp_norm_factor: { kind: 'number', min: 0, help: '‖δ‖ is clamped to clamp_norm_factor · ‖v₀‖ after every step' },
  kl_factor: { kind: 'number', min: 0, help: 'weight of the KL term on the "{} is a" prompts' },
  mom2_adjustment: { kind: 'bool', help: 'ROME: u = C⁻¹k* (second-moment adjustment); MEMIT reads C regardless, as the original' },
  mom2_dataset: { kind: 'string', help: 'corpus of the key statistics: a file/folder path (relative paths also tried inside the model folder), the name of imported statistics ("wikipedia" in the published presets), or empty for the default (<model>/corpus-train.txt, else the model\'s own samples)' },
  mom2_n_samples: { kind: 'int', min: 1, help: 'text samples for the key statistics' },
  mom2_ridge: { kind: 'number', min: 0, help: 'Amend: C + ridge·(tr C / d)·I instead of C, for key statistics with dead MLP units (near-zero eigenvalues that C⁻¹ would blow up); 0 = the reference behaviour' },
  mom2_dtype: { kind: 'string', help: 'precision of the statistics in the reference (not used: Amend keeps them in float64; another value than float32 is warned about)', ignored: true },
  rewrite_module_tmp: { kind: 'string', help: 'module whose weight is rewritten ("{}" = layer); must be the MLP down projection' },
  layer_module_tmp: { kind: 'string', help: 'transformer block module name (not used: Amend finds the modules itself; one that is not this model\'s is warned about)', ignored: true },
  mlp_module_tmp: { kind: 'string', help: 'MLP module name (not used: Amend finds the modules itself; one that is not this model\'s is warned about)', ignored: true },
  attn_module_tmp: { kind: 'string', help: 'attention module name (not used: Amend finds the modules itself; one that is not this model\'s is warned about)', ignored: true },
  ln_f_module: { kind: 'string', help: 'final norm module name (not used: Amend finds the modules itself; one that is not this model\'s is warned about)', ignored: true },
  lm_head_module: { kind: 'string', help: 'LM head module name (not used: Amend finds the modules itself; one that is not this model\'s is warned about)', ignored: true },
  context_template_length_params: { kind: 'int_pairs', help: '[[length, count], ...] of the generated context templates' },
  // Amend's named switches for points where the reference implementations differ.
  target_space: { kind: 'enum', values: ['if_missing', 'always', 'never'], help: 'leading space of targets: if_missing (original ROME/MEMIT), always (EasyEdit ROME prepends one even when present), never' },
  context_template_prompts: { kind: 'string_list', help: 'prompts the context templates are sampled from (original ROME: ["<|endoftext|>"]; MEMIT and EasyEdit: ["The","Therefore","Because","I","You"])' },
  context_template_top_k: { kind: 'int', min: 1, help: 'top-k of the sampling that generates context templates (reference: 5)' },
  context_template_seed: { kind: 'int', min: 0, max: MAX_SEED, help: 'seed of that sampling (the references do not seed it)' },
  template_key_average: { kind: 'enum', values: ['flat', 'grouped'], help: 'k* = mean over all templates (flat, ROME) or mean of per-length means (grouped, MEMIT)' },
  kl_prompts: { kind: 'string_list', help: 'essence prompts of the KL term (reference: ["{} is a"])' },
  early_stop_loss: { kind: 'number', min: 0, help: 'the v* and z optimisation stops once the total loss is below this (reference: 5e-2)' },
  // EasyEdit bookkeeping, accepted so its files load unchanged.
  alg_name: { kind: 'string', help: 'EasyEdit: method name (checked against --method)', ignored: true },
  model_name: { kind: 'string', help: 'EasyEdit: model path (not used: --model decides)', ignored: true },
  stats_dir: { kind: 'string', help: 'EasyEdit: its folder of .npz statistics ({stats_dir}/{model}/{mom2_dataset}_stats/), imported when the cache lacks them (the cache is $AMEND_CACHE)' },
  device: { kind: 'int', help: 'EasyEdit: CUDA device (not used)', ignored: true },
  model_parallel: { kind: 'bool', help: 'EasyEdit: model parallelism (not used; true is warned about)', ignored: true },
  fp16: { kind: 'bool', help: 'EasyEdit: half precision (not used: compute is float32; true is warned about)', ignored: true },
  batch_size: { kind: 'int', help: 'EasyEdit: requests per call (not used: ROME edits the requests one after another, MEMIT all of one call at once; another value than 1 is warned about)', ignored: true },
  max_length: { kind: 'int', help: 'EasyEdit: maximum length (not used; another value than 40 is warned about)', ignored: true },
};

export const SCHEMAS: Record<EditMethod, Record<string, HparamSpec>> = {
  rome: { ...COMMON },
  memit: {
    ...COMMON,
    mom2_update_weight: { kind: 'number', min: 0, help: 'λ in ΔW = R Kᵀ (λC + KKᵀ)⁻¹' },
    layer_selection: { kind: 'enum', values: ['all', 'random'], help: 'reference field (not used, as in the original code: every listed layer is edited; random is warned about)', ignored: true },
    shared_key_targets: { kind: 'enum', values: ['separate', 'joint'], help: 'Amend: requests whose key is the same (same subject, same words before it) get one z each, which the solve averages (separate, the reference) or one z optimised for all of their targets (joint)' },
  },
};

export interface EditHparams {
  layers: number[];
  fact_token: FactToken;
  v_num_grad_steps: number;
  v_lr: number;
  v_loss_layer: number;
  v_weight_decay: number;
  clamp_norm_factor: number;
  kl_factor: number;
  mom2_adjustment: boolean;
  mom2_dataset: string;
  mom2_n_samples?: number;
  mom2_ridge: number;
  mom2_dtype: string;
  rewrite_module_tmp: string;
  layer_module_tmp: string;
  mlp_module_tmp: string;
  attn_module_tmp: string;
  ln_f_module: string;
  lm_head_module: string;
  context_template_length_params: [number, number][];
  target_space: 'if_missing' | 'always' | 'never';
  context_template_prompts: string[];
  context_template_top_k: number;
  context_template_seed: number;
  template_key_average: 'flat' | 'grouped';
  kl_prompts: string[];
  early_stop_loss: number;
  stats_dir?: string;
  // MEMIT
  mom2_update_weight?: number;
  layer_selection?: 'all' | 'random';
  shared_key_targets?: 'separate' | 'joint';
  [key: string]: unknown;
}

export type HparamValues = Partial<EditHparams> & Record<string, unknown>;

/** The method's defaults: the reference constants that are not in its hparams files. */
function methodDefaults(method: EditMethod): HparamValues {
  const base: HparamValues = {
    fact_token: 'subject_last',
    v_lr: 0.5,
    kl_factor: 0.0625,
    mom2_adjustment: true,
    // Without a preset: the stats module's default corpus (<model>/corpus-train.txt, else the
    // model's own samples) and its default sample count.
    mom2_dataset: '',
    mom2_dtype: 'float32',
    mom2_ridge: 0,
    target_space: 'if_missing',
    context_template_top_k: 5,
    context_template_seed: 0,
    kl_prompts: ['{} is a'],
    early_stop_loss: 5e-2,
  };
  if (method === 'rome') {
    // kmeng01/rome rome/rome_main.py get_context_templates: sampled from "<|endoftext|>", one flat list.
    return {
      ...base, v_num_grad_steps: 20, v_weight_decay: 0.5, clamp_norm_factor: 4,
      context_template_length_params: [[5, 10], [10, 10]],
      context_template_prompts: ['<|endoftext|>'], template_key_average: 'flat',
    };
  }
  // kmeng01/memit memit/memit_main.py get_context_templates: [(10, 5)] from five prompts,
  // compute_ks averages within each group, then over groups.
  return {
    ...base, v_num_grad_steps: 25, v_weight_decay: 0.5, clamp_norm_factor: 0.75,
    layer_selection: 'all', shared_key_targets: 'separate', context_template_length_params: [[10, 5]],
    context_template_prompts: ['The', 'Therefore', 'Because', 'I', 'You'], template_key_average: 'grouped',
  };
}

// ---- presets ----------------------------------------------------------------------------------

export interface PresetMatch {
  model_type?: string[];
  layers?: number;
  hidden?: number;
  ffn?: number;
  /**
   * A file the model's folder must hold: the demo world's world.json marks it wherever it is (a
   * build elsewhere, an export of it), where its folder's name would not.
   */
  has_file?: string;
}

export interface Preset {
  method: EditMethod;
  /** Model name, e.g. "gpt2-xl". */
  name: string;
  /** Where the values come from (repository and file). */
  source: string;
  note?: string;
  /** False for a family Amend does not run (kept for reference): refused when named for a model. */
  supported: boolean;
  match: PresetMatch | null;
  hparams: HparamValues;
  file: string;
}

/** The presets folder: src/editors/presets in the package (the .json files are not compiled). */
function presetsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'presets')];
  const root = packageRoot();
  if (root !== null) candidates.push(path.join(root, 'src', 'editors', 'presets'));
  for (const c of candidates) if (fs.existsSync(c) && fs.readdirSync(c).some((f) => f.endsWith('.json'))) return c;
  throw new AmendError(`the hparams presets are missing (looked in ${candidates.join(', ')}); reinstall amend`);
}

let presetCache: Preset[] | null = null;

/** Every preset shipped with Amend. */
export function listPresets(): Preset[] {
  if (presetCache) return presetCache;
  const dir = presetsDir();
  const out: Preset[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    if (!f.endsWith('.json')) continue;
    const file = path.join(dir, f);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new AmendError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    const method = String(raw.method).toLowerCase() as EditMethod;
    if (!METHODS.includes(method)) throw new AmendError(`${file}: unknown method "${String(raw.method)}"`);
    out.push({
      method, name: String(raw.name), source: String(raw.source), note: raw.note === undefined ? undefined : String(raw.note),
      supported: raw.supported !== false, match: (raw.match ?? null) as PresetMatch | null, hparams: raw.hparams as HparamValues, file,
    });
  }
  presetCache = out;
  return out;
}

function presetMatches(m: PresetMatch, model: CausalLM): boolean {
  const c = model.config;
  if (m.model_type && !m.model_type.includes(c.modelType)) return false;
  if (m.layers !== undefined && m.layers !== c.layers) return false;
  if (m.hidden !== undefined && m.hidden !== c.hidden) return false;
  if (m.ffn !== undefined && m.ffn !== c.ffn) return false;
  if (m.has_file !== undefined && !(model.dir !== null && fs.existsSync(path.join(model.dir, m.has_file)))) return false;
  return true;
}

/** The preset for `method` whose architecture matches the model (null when none does). */
export function findPreset(method: EditMethod, model: CausalLM): Preset | null {
  const hits = listPresets().filter((p) => p.method === method && p.match && presetMatches(p.match, model));
  if (hits.length === 0) return null;
  // Several presets for one shape (e.g. qwen2-7b / qwen2.5-7b): prefer the one named in the path,
  // then the more specific match (more fields), then the first by name.
  const dir = (model.dir ?? '').toLowerCase();
  const score = (p: Preset): number => (dir.includes(p.name.toLowerCase()) ? 100 : 0) + Object.keys(p.match ?? {}).length;
  hits.sort((a, b) => score(b) - score(a) || a.name.localeCompare(b.name));
  return hits[0];
}

/** A preset by name ("gpt2-xl", or "rome/gpt2-xl"). */
export function presetByName(method: EditMethod, name: string): Preset {
  const bare = name.includes('/') ? name.slice(name.indexOf('/') + 1) : name;
  const forMethod = listPresets().filter((p) => p.method === method);
  const p = forMethod.find((x) => x.name.toLowerCase() === bare.toLowerCase());
  if (!p) {
    throw new AmendError(`no ${method.toUpperCase()} preset "${name}" (presets: ${forMethod.map((x) => x.name).join(', ')})`);
  }
  return p;
}

/**
 * Whether two module names name the same module, allowing for a prefix on either side
 * ("h.0.mlp" and "transformer.h.0.mlp": a checkpoint saved from the inner model, or the outer).
 */
function sameModuleName(a: string, b: string): boolean {
  return a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);
}

/** Whether the module template `tmp` ("transformer.h.{}.mlp.c_proj") names the model's down projection at layer `l`. */
function namesDownProjection(tmp: string, model: CausalLM, l: number): boolean {
  return sameModuleName(`${tmp.split('{}').join(String(l))}.weight`, model.spec.layers[l].down.w);
}

/**
 * A preset named for a model of another family. Its layer numbers and module names are another
 * network's: a family Amend does not run, or module names this model does not have, are refused
 * (the values stay usable as a file, --hparams); the same module names under another model_type
 * (a Llama preset on a Qwen2 model) may be meant, and are named in a warning. `tmp` is the
 * rewrite_module_tmp in effect: one a file or an override sets for this model is theirs to answer
 * for (validateForModel), not the preset's.
 */
function checkPresetFamily(method: EditMethod, p: Preset, model: CausalLM, tmp: unknown): void {
  const type = model.config.modelType;
  const own = listPresets().filter((x) => x.method === method && x.match?.model_type?.includes(type)).map((x) => x.name);
  const choose = `${own.length ? `name one for ${type} models (${own.join(', ')})` : 'leave --preset out'} or none (the rule for models without a preset)`;
  const instead = `${choose}, or pass ${p.file} with --hparams (files: [file]) to use its values anyway`;
  if (!p.supported) {
    throw new AmendError(`${method.toUpperCase()} preset ${p.name} is not for this ${type} model: ${p.note ?? 'its architecture is one Amend does not run'}; ${instead}`);
  }
  if (typeof tmp === 'string' && tmp !== '' && tmp === p.hparams.rewrite_module_tmp && !namesDownProjection(tmp, model, 0)) {
    // The preset's file would be refused for the same module names: the way out is to name this model's.
    const down = model.spec.layers[0].down.w.replace(/\.0\./, '.{}.').replace(/\.weight$/, '');
    throw new AmendError(`${method.toUpperCase()} preset ${p.name} rewrites ${tmp}, but this ${type} model's MLP down projection is ${down}: the preset is for another architecture${p.match?.model_type ? ` (${p.match.model_type.join(', ')})` : ''}; `
      + `${choose}, or set rewrite_module_tmp=${down} and layers for this model to use its other values`);
  }
  if (p.match?.model_type && !p.match.model_type.includes(type)) {
    process.emitWarning(`${method.toUpperCase()} preset ${p.name} is for ${p.match.model_type.join(' / ')} models, and this is a ${type} model (${model.config.layers} layers, hidden ${model.config.hidden}); check that its layers and settings suit it`);
  }
}

/**
 * The documented rule for a model without a preset (README, "Editing"), read off the published
 * presets: ROME edits one layer at about a third of the depth for GPT-2-style models (gpt2-medium 8/24,
 * gpt2-large 12/36, gpt2-xl 17/48) and about a sixth for rotary models (GPT-J 5/28, Llama 5/32);
 * MEMIT edits a window of up to five consecutive layers (a quarter of the depth for shallow models)
 * ending at that layer for GPT-2-style models (gpt2-xl 13–17) and three layers after it for rotary
 * models (GPT-J 3–8, Llama 4–8); the loss is read at the last layer.
 * Optimisation settings: those of the original GPT presets, or of EasyEdit's presets for
 * Llama-family models (see below).
 * MEMIT's λ (mom2_update_weight) scales with the MLP width d: one edit keeps about g / (1 + g) of
 * its change at its own key, g = kᵀ(λC)⁻¹k, whose mean over keys like the statistics' is d / λ.
 * The published presets put d / λ between 0.32 (gpt2-xl) and 1.26 (Qwen2-7B), with a median of
 * 0.73 (Llama-2-7B: 11008 / 15000), which the rule keeps; a fixed 15000 would leave a 768-wide
 * layer 5 % of each edit.
 */
export function ruleHparams(method: EditMethod, model: CausalLM): HparamValues {
  const L = model.config.layers;
  // The last layer is never chosen: a change at the subject's token there cannot reach the
  // prediction after the prompt (no attention layer follows it), so its v* gradient is zero.
  const top = Math.max(0, L - 2);
  const romeLayer = Math.min(top, Math.floor(model.config.family === 'gpt2' ? L / 3 : L / 6));
  const names = moduleNames(model);
  const llama = model.config.family === 'llama' ? LLAMA_RULE[method] : {};
  if (method === 'rome') return { layers: [romeLayer], v_loss_layer: L - 1, ...names, ...llama };
  const width = Math.max(1, Math.min(5, Math.floor(L / 4)));
  const last = Math.min(top, Math.max(romeLayer + (model.config.family === 'gpt2' ? 0 : 3), width - 1));
  const layers = Array.from({ length: width }, (_, i) => last - width + 1 + i);
  const mom2_update_weight = Math.round(model.config.ffn * 15000 / 11008);
  return { layers, v_loss_layer: L - 1, mom2_update_weight, ...names, ...llama };
}

/**
 * The rule's optimisation settings for Llama-family models: those of EasyEdit's Llama / Mistral /
 * Qwen2 presets. Other models keep the method defaults (the original GPT-2 / GPT-J presets').
 */
const LLAMA_RULE: Record<EditMethod, HparamValues> = {
  rome: { v_weight_decay: 1e-3, v_num_grad_steps: 25 },
  memit: { v_weight_decay: 1e-3, v_num_grad_steps: 25, clamp_norm_factor: 4 },
};

/** The module-name templates of the reference files for this model's checkpoint names. */
function moduleNames(model: CausalLM): HparamValues {
  const s = model.spec;
  const down = s.layers[0].down.w.replace(/\.weight$/, '');
  const tmp = (name: string): string => name.replace(/\.0\./, '.{}.').replace(/\.0$/, '.{}');
  const rewrite = tmp(down);
  const layer = rewrite.replace(/\.mlp\..*$/, '');
  const attn = model.config.family === 'gpt_neox' ? `${layer}.attention` : model.config.family === 'llama' ? `${layer}.self_attn` : `${layer}.attn`;
  return {
    rewrite_module_tmp: rewrite,
    layer_module_tmp: layer,
    mlp_module_tmp: `${layer}.mlp`,
    attn_module_tmp: attn,
    ln_f_module: s.lnf.w.replace(/\.weight$/, ''),
    lm_head_module: s.lmHead.w.replace(/\.weight$/, ''),
  };
}

// ---- parsing and checking ----------------------------------------------------------------------

function toNumber(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

/** Context templates of one length at most: each is sampled from the model, so more never end. */
const MAX_TEMPLATES = 10000;

/** One value checked (and normalised) against its spec; `where` names it in errors. */
function checkValue(key: string, spec: HparamSpec, v: unknown, where: string): unknown {
  const bad = (what: string): never => {
    // JSON.stringify writes Infinity as null: 1e999 (YAML's Infinity) is echoed as given instead.
    const infinite = typeof v === 'number' ? !Number.isFinite(v) : typeof v === 'string' && Math.abs(Number(v)) === Infinity;
    const got = typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v);
    throw new AmendError(`${where}: ${key} must be ${what}, got ${got}${infinite ? ', which is not a finite number' : ''}`);
  };
  const inRange = (n: number): boolean => (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
  switch (spec.kind) {
    case 'int': {
      const n = toNumber(v);
      const range = spec.min !== undefined && spec.max !== undefined ? ` from ${spec.min} to ${spec.max}` : spec.min !== undefined ? ` ≥ ${spec.min}` : '';
      // Past 2^53 an integer is no longer exact (1e20 + 1 === 1e20): refused, as a count that large never ends anyway.
      if (n !== null && Number.isInteger(n) && !Number.isSafeInteger(n)) bad(`an integer of at most ${Number.MAX_SAFE_INTEGER}`);
      if (n === null || !Number.isInteger(n) || !inRange(n)) bad(`an integer${range}`);
      return n;
    }
    case 'number': {
      const n = toNumber(v);
      if (n === null || !inRange(n)) bad(`a number${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}`);
      return n;
    }
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'True') return true;
      if (v === 'false' || v === 'False') return false;
      return bad('true or false');
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number') return String(v);
      return bad('a string');
    case 'enum':
      if (typeof v === 'string' && spec.values!.includes(v)) return v;
      return bad(`one of ${spec.values!.join(', ')}`);
    case 'int_list': {
      const list = Array.isArray(v) ? v : [v];
      // Numbers only, as for a single layer: a string in the list ("0") is refused, not read as a number.
      const out = list.map((x) => (typeof x === 'number' ? toNumber(x) : null));
      if (out.length === 0 || out.some((n) => n === null || !Number.isInteger(n) || n < 0)) bad('a list of layer indices, e.g. [4, 5]');
      return out as number[];
    }
    case 'int_pairs': {
      if (!Array.isArray(v) || v.length === 0) return bad('a list of [length, count] pairs, e.g. [[5, 10], [10, 10]]');
      return v.map((p) => {
        if (!Array.isArray(p) || p.length !== 2) return bad('a list of [length, count] pairs');
        const [a, b] = p.map(toNumber);
        if (a === null || b === null || !Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < 0) return bad('a list of [length, count] pairs of positive integers');
        if (b > MAX_TEMPLATES) return bad(`a list of [length, count] pairs with at most ${MAX_TEMPLATES} templates of a length (reference: 5 or 10)`);
        return [a, b] as [number, number];
      });
    }
    case 'string_list': {
      const list = Array.isArray(v) ? v : [v];
      if (list.some((s) => typeof s !== 'string')) bad('a list of strings');
      return list as string[];
    }
  }
}

/** Checks every key of `values` against the method's schema; returns normalised values. */
export function checkHparams(method: EditMethod, values: Record<string, unknown>, where: string): HparamValues {
  requireObject(values, `${where}: hparams must be an object of names and values`);
  const schema = SCHEMAS[method];
  const out: HparamValues = {};
  // Another method's file is named as such before any of its own keys is called unknown.
  if (typeof values.alg_name === 'string' && values.alg_name.toLowerCase() !== method) {
    throw new AmendError(`${where}: the file is for ${values.alg_name} (alg_name), not ${method.toUpperCase()}`);
  }
  for (const [key, v] of Object.entries(values)) {
    // An own key only: "constructor" or "__proto__" would otherwise find Object's and pass unchecked.
    const spec = Object.hasOwn(schema, key) ? schema[key] : undefined;
    if (!spec) {
      const hint = closest(key, Object.keys(schema));
      throw new AmendError(`${where}: unknown ${method.toUpperCase()} hparam "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}; valid keys: ${Object.keys(schema).join(', ')}`);
    }
    if (v === null || v === undefined) continue;
    out[key] = checkValue(key, spec, v, where);
  }
  return out;
}

/**
 * YAML text as a value. What the yaml library only warns about (an unknown tag such as
 * !!js/function, whose value it then keeps as a plain string) is an error here: the warning would
 * reach the user as several lines of Node warning, and the value is not what the file meant.
 */
function parseYaml(text: string): unknown {
  const doc = YAML.parseDocument(text, { logLevel: 'silent' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw problem;
  return doc.toJS();
}

/** Far above any hparams file (EasyEdit's are under 2 KB); a larger file is another file given by mistake. */
const MAX_HPARAMS_BYTES = 2 ** 20;

/** Reads an hparams file: YAML (EasyEdit's files as they are) or JSON (the reference repositories' files). */
export function readHparamsFile(file: string): Record<string, unknown> {
  requirePath(file, 'readHparamsFile needs the hparams file'); // a number would be read as a file descriptor
  refuseDevice(file, 'a YAML or JSON hparams file');
  refuseOversize(file, MAX_HPARAMS_BYTES, 'a YAML or JSON hparams file');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new AmendError(`cannot read hparams file ${file}: it is a folder; give a YAML or JSON hparams file (EasyEdit's hparams/ROME/gpt2-xl.yaml, say)`);
    throw new AmendError(`cannot read hparams file ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new AmendError(`${file}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(e as Error).message.split('\n')[0]})`);
  }
  if (!isObject(v)) throw new AmendError(`${file}: expected a mapping of hparam names to values`);
  // An Amend preset file ({method, name, source, hparams}) is accepted too.
  const rec = v;
  if (rec.hparams && typeof rec.hparams === 'object' && rec.source !== undefined) return rec.hparams as Record<string, unknown>;
  return rec;
}

/** Keys whose value is text in every method's schema. */
const STRING_KEYS = new Set(Object.keys(COMMON).filter((k) => COMMON[k]!.kind === 'string'));

/**
 * `key=value` overrides. A value is read as YAML (numbers, true/false, [4, 5], strings); several
 * assignments may share one argument separated by ";" or whitespace outside brackets.
 */
export function parseSets(args: readonly string[]): Record<string, unknown> {
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new AmendError('parseSets takes a list of "key=value" strings');
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    if (arg.trim() === '') throw new AmendError('--set is empty: give key=value, e.g. --set v_lr=0.1');
    for (const item of splitAssignments(arg)) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new AmendError(`--set expects key=value, got "${item}"`);
      const key = item.slice(0, eq).trim();
      const raw = item.slice(eq + 1).trim();
      let value: unknown;
      try {
        // A text-valued key keeps the text as typed: YAML would read mom2_dataset=1e3 as the number 1000.
        value = raw === '' ? '' : STRING_KEYS.has(key) && raw !== 'null' && !/^["']/.test(raw) ? raw : parseYaml(raw);
      } catch {
        value = raw;
      }
      // 1e999 reads as Infinity: kept as typed, so that the check's message echoes it.
      if (typeof value === 'number' && !Number.isFinite(value)) value = raw;
      // Defined, not assigned: "__proto__=1" is then a key like any other (and refused as unknown), not a no-op.
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

function splitAssignments(s: string): string[] {
  const parts: string[] = [];
  let depth = 0, cur = '', quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) { cur += ch; if (ch === quote) quote = null; continue; }
    if (ch === '"' || ch === "'") { quote = ch; cur += ch; continue; }
    if (ch === '[' || ch === '{') depth++;
    if (ch === ']' || ch === '}') depth--;
    // ";" always separates; whitespace only when a new key= follows
    const sep = depth === 0 && (ch === ';' || (/\s/.test(ch) && /^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(s.slice(i))));
    if (sep) {
      if (cur.trim() !== '') parts.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur.trim() !== '') parts.push(cur.trim());
  return parts;
}

export interface ResolveOptions {
  /** A preset name ("gpt2-xl"); default: the preset matching the model, else the rule. */
  preset?: string;
  /** YAML/JSON hparams files, applied in order. */
  files?: string[];
  /** Values (already parsed), e.g. from --set or from code. */
  overrides?: Record<string, unknown>;
  /** Where the overrides came from, for error messages (default "hparams"; the CLI says "--set"). */
  overridesSource?: string;
}

export interface ResolvedHparams {
  method: EditMethod;
  hparams: EditHparams;
  /** Where the base values came from: "preset gpt2-xl (kmeng01/rome hparams/ROME/gpt2-xl.json)" or "rule". */
  origin: string;
  preset: Preset | null;
}

/**
 * Hparams resolved beforehand (edit's and runEval's `resolved`), checked as resolveHparams checks
 * its own: for this method, every value of the schema's kind, none of the values it always sets
 * missing, and layers this model has. A hand-made object would otherwise fail as a TypeError, or
 * edit with NaN where a value is missing.
 */
export function checkResolvedHparams(method: EditMethod, resolved: unknown, model: CausalLM, where: string): asserts resolved is ResolvedHparams {
  if (!METHODS.includes(method)) throw new AmendError(`unknown editing method "${String(method)}" (methods: ${METHODS.join(', ')})`);
  const hint = 'pass what resolveHparams returns, or hparams instead';
  requireObject(resolved, `${where}: resolved must be what resolveHparams returns`);
  const r = resolved as Partial<ResolvedHparams>;
  if (r.method !== method) throw new AmendError(`${where}: resolved hparams are for ${String(r.method)}, not ${method}`);
  if (!isObject(r.hparams)) throw new AmendError(`${where}: resolved.hparams must be an object of names and values, not ${typeName(r.hparams)}; ${hint}`);
  checkHparams(method, r.hparams, `${where}: resolved.hparams`);
  const missing = Object.keys({ ...methodDefaults(method), ...ruleHparams(method, model) }).filter((k) => r.hparams![k] === undefined);
  if (missing.length > 0) throw new AmendError(`${where}: resolved.hparams lacks ${missing.join(', ')}; ${hint}`);
  // Resolved for another model (or changed since), they would edit layers this one lacks, or
  // ones where the change cannot reach the prediction.
  validateForModel(method, r.hparams as EditHparams, model);
}

/** The hparams for `method` on `model` (see the file comment for the order); checked against the model. */
export function resolveHparams(method: EditMethod, model: CausalLM, opts: ResolveOptions = {}): ResolvedHparams {
  if (!METHODS.includes(method)) throw new AmendError(`unknown editing method "${String(method)}" (methods: ${METHODS.join(', ')})`);
  const preset = opts.preset ? presetByName(method, opts.preset) : findPreset(method, model);
  const base: HparamValues = { ...methodDefaults(method), ...ruleHparams(method, model) };
  let values: HparamValues = { ...base };
  // A key given as null (YAML "key:" or "key: null", --set key=null) goes back to the value it has
  // without a preset; dropping it would silently keep the preset's or an earlier file's value.
  const overlay = (given: Record<string, unknown>, where: string): void => {
    values = { ...values, ...checkHparams(method, given, where) };
    for (const [k, v] of Object.entries(given)) {
      if (v !== null && v !== undefined) continue;
      if (base[k] === undefined) delete values[k];
      else values[k] = base[k];
    }
  };
  let origin = `rule for models without a preset (${model.config.modelType}, ${model.config.layers} layers)`;
  if (preset) {
    overlay(preset.hparams, preset.file);
    // A preset no model matches (a family Amend does not run, a conversion) says why when named.
    origin = `preset ${preset.name} (${preset.source})${preset.match === null && preset.note ? `; note: ${preset.note}` : ''}`;
  }
  for (const f of opts.files ?? []) {
    const given = readHparamsFile(f);
    checkCorpusPath(given.mom2_dataset, model, f);
    overlay(given, f);
    origin += ` + ${path.basename(f)}`;
  }
  if (opts.overrides && Object.keys(opts.overrides).length > 0) {
    checkCorpusPath(opts.overrides.mom2_dataset, model, opts.overridesSource ?? 'hparams');
    overlay(opts.overrides, opts.overridesSource ?? 'hparams');
    origin += ` + overrides (${Object.keys(opts.overrides).join(', ')})`;
  }
  // After the files and overrides (which may name this model's modules), before the layer numbers.
  if (opts.preset && preset) checkPresetFamily(method, preset, model, values.rewrite_module_tmp);
  const hp = values as EditHparams;
  validateForModel(method, hp, model);
  for (const w of ignoredWarnings(method, hp, model)) {
    if (warnedIgnored.has(w)) continue;
    warnedIgnored.add(w);
    process.emitWarning(w);
  }
  return { method, hparams: hp, origin, preset };
}

/**
 * A mom2_dataset the user gave (a file, --set) that looks like a path — a folder separator or a
 * corpus file's extension — must exist, as is or inside the model folder: a mistyped corpus would
 * otherwise fall back to the default corpus with a warning, as a preset's corpus-train.txt does on
 * a copy of the model without it (src/editors/common/stats.ts). A plain name ("wikipedia") names
 * imported statistics, which the statistics step looks up.
 */
function checkCorpusPath(ds: unknown, model: CausalLM, where: string): void {
  if (typeof ds !== 'string' || ds === '' || !(/[\\/]/.test(ds) || hasCorpusExtension(ds))) return;
  if (existingCorpusPath(ds, model.dir) !== null) return;
  throw new AmendError(`${where}: mom2_dataset ${ds}: no such file or folder${model.dir && !path.isAbsolute(ds) ? ` (here or in ${model.dir})` : ''}; `
    + 'give an existing corpus file or folder, the name of imported statistics (amend stats --list), or leave it empty for the default corpus');
}

/** Warnings already given in this process: an eval resolves the same hparams for every batch. */
const warnedIgnored = new Set<string>();

/** Whether a module-name template names the model's own module ("{}" = layer 0), allowing for a prefix. */
function sameModule(given: string, own: string): boolean {
  return sameModuleName(given.split('{}').join('0'), own.split('{}').join('0'));
}

/**
 * One line per accepted-but-unused hparam whose value would have changed the reference's run: the
 * user asked for something Amend does not do. Bookkeeping values the EasyEdit files always carry
 * (fp16 false, batch_size 1...) and those without an effect (device, model_name) say nothing.
 */
export function ignoredWarnings(method: EditMethod, hp: HparamValues, model: CausalLM): string[] {
  const M = method.toUpperCase();
  const out: string[] = [];
  const L = model.config.layers;
  if (method === 'rome' && typeof hp.v_loss_layer === 'number' && hp.v_loss_layer !== L - 1) {
    out.push(`ROME: v_loss_layer ${hp.v_loss_layer} is not used: ROME reads the target's loss from the model's own logits (layer ${L - 1}), as kmeng01/rome and EasyEdit do; only MEMIT reads it at v_loss_layer`);
  }
  if (hp.fp16 === true) out.push(`${M}: fp16 true is not used: Amend computes in float32 (statistics and solves in float64)`);
  if (hp.model_parallel === true) out.push(`${M}: model_parallel true is not used: Amend runs the model in one process`);
  if (typeof hp.batch_size === 'number' && hp.batch_size !== 1) {
    out.push(`${M}: batch_size ${hp.batch_size} is not used: ${method === 'rome' ? 'ROME edits the requests one after another' : 'MEMIT edits all the requests of one call together'}${method === 'memit' ? ' (amend eval --mode batch:K sets the batch)' : ''}`);
  }
  if (typeof hp.max_length === 'number' && hp.max_length !== 40) out.push(`${M}: max_length ${hp.max_length} is not used (EasyEdit's bookkeeping; Amend does not cut prompts)`);
  if (typeof hp.mom2_dtype === 'string' && hp.mom2_dtype !== 'float32') out.push(`${M}: mom2_dtype ${hp.mom2_dtype} is not used: Amend keeps the key statistics in float64`);
  if (hp.layer_selection === 'random') out.push(`${M}: layer_selection random is not used (nor by kmeng01/memit): every layer in layers is edited`);
  const own = moduleNames(model);
  // A tied head is the embedding, and the checkpoint's lm_head names it too (EasyEdit's Llama-3.2 files use either).
  const untiedHead = model.config.tiedEmbeddings ? buildSpec({ ...model.config, tiedEmbeddings: false }, () => false).lmHead.w.replace(/\.weight$/, '') : null;
  for (const k of ['layer_module_tmp', 'mlp_module_tmp', 'attn_module_tmp', 'ln_f_module', 'lm_head_module']) {
    const v = hp[k];
    if (k === 'lm_head_module' && typeof v === 'string' && untiedHead !== null && sameModule(v, untiedHead)) continue;
    if (typeof v === 'string' && v !== '' && !sameModule(v, String(own[k]))) {
      out.push(`${M}: ${k} "${v}" is not used and is not this ${model.config.modelType} model's (${String(own[k])}): Amend finds the modules itself; are the hparams for another architecture?`);
    }
  }
  return out;
}

/**
 * Checks hparams against the model: layers in range, a change that can reach the prediction, the
 * rewritten module is the down projection. resolveHparams runs it; edit runs it on hparams resolved
 * beforehand (EditOptions.resolved), which may have been resolved for another model.
 */
export function validateForModel(method: EditMethod, hp: EditHparams, model: CausalLM): void {
  const L = model.config.layers;
  if (!hp.layers || hp.layers.length === 0) throw new AmendError(`${method.toUpperCase()}: no layers to edit (set layers=[...])`);
  for (const l of hp.layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) {
      throw new AmendError(`${method.toUpperCase()}: layer ${l} is out of range (the model has ${L} layers, 0..${L - 1})`);
    }
  }
  if (new Set(hp.layers).size !== hp.layers.length) throw new AmendError(`${method.toUpperCase()}: layers ${JSON.stringify(hp.layers)} repeat a layer`);
  if (method === 'memit' && hp.v_loss_layer >= L) {
    throw new AmendError(`${method.toUpperCase()}: v_loss_layer ${hp.v_loss_layer} is out of range (the model has ${L} layers; use ${L - 1})`);
  }
  // v*/z is a change at the lookup token of the (last) edited layer, scored at v_loss_layer's
  // output after the prompt. Unless the lookup token is the prompt's last one, only a later layer's
  // attention carries the change there; at or above v_loss_layer its gradient is exactly zero.
  const top = Math.max(...hp.layers);
  // ROME reads the loss at the model's own logits whatever v_loss_layer says (ignoredWarnings).
  const lossLayer = method === 'rome' ? L - 1 : hp.v_loss_layer;
  if (hp.fact_token !== 'last' && top >= lossLayer) {
    throw new AmendError(
      `${method.toUpperCase()}: layer ${top} is not below ${method === 'rome' ? 'the last layer' : 'v_loss_layer'} ${lossLayer}, so a change at the subject's token cannot reach the prediction after the prompt ` +
        `(no attention layer follows it there); ${lossLayer >= 1 ? `edit a layer below ${lossLayer}, or use fact_token=last` : 'with no layer below it, only fact_token=last can edit'}`,
    );
  }
  if (typeof hp.rewrite_module_tmp === 'string' && hp.rewrite_module_tmp !== '') {
    for (const l of hp.layers) {
      if (!namesDownProjection(hp.rewrite_module_tmp, model, l)) {
        const want = model.spec.layers[l].down.w;
        const got = `${hp.rewrite_module_tmp.split('{}').join(String(l))}.weight`;
        throw new AmendError(
          `${method.toUpperCase()}: rewrite_module_tmp "${hp.rewrite_module_tmp}" names ${got}, but this ${model.config.modelType} model's MLP down projection at layer ${l} is ${want} ` +
            '(the hparams are for another architecture; Amend rewrites the down projection only)',
        );
      }
    }
  }
  if (hp.kl_prompts.some((p) => p.split('{}').length !== 2)) throw new AmendError(`${method.toUpperCase()}: every kl_prompts entry needs exactly one "{}" for the subject`);
  checkContextTemplates(method, hp, model);
  if (method === 'memit' && !(typeof hp.mom2_update_weight === 'number')) throw new AmendError('MEMIT: mom2_update_weight is required');
}

/**
 * The context templates' sampling fits the model: top-k within its vocabulary, each length within
 * its positions. Larger values would size arrays by them (a RangeError, or minutes of sorting).
 */
function checkContextTemplates(method: EditMethod, hp: EditHparams, model: CausalLM): void {
  const { vocabSize, maxPositions } = model.config;
  const name = method.toUpperCase();
  if (hp.context_template_top_k > vocabSize) throw new AmendError(`${name}: context_template_top_k ${hp.context_template_top_k} is more than the model's ${vocabSize} tokens; give at most ${vocabSize} (reference: 5)`);
  const long = hp.context_template_length_params.find(([length]) => length >= maxPositions);
  if (long) throw new AmendError(`${name}: context_template_length_params asks for templates of ${long[0]} tokens, but the model has ${maxPositions} positions for template and prompt together; give shorter lengths (reference: 5 and 10)`);
}

/**
 * The schema as help text lines (for `amend edit --hparams-help`): every key the files may hold,
 * with the value it takes when nothing sets it.
 */
export function describeSchema(method: EditMethod): string[] {
  const d = methodDefaults(method);
  // Set by the preset, else by the rule for models without one (ruleHparams).
  const byModel = new Set(['layers', 'v_loss_layer', 'rewrite_module_tmp', 'layer_module_tmp', 'mlp_module_tmp', 'attn_module_tmp', 'ln_f_module', 'lm_head_module']);
  const fromPreset = 'default: the preset\'s, else';
  const lines = Object.entries(SCHEMAS[method]).map(([k, s]) => {
    const llama = LLAMA_RULE[method][k] === undefined ? '' : `; Llama-family models without a preset: ${JSON.stringify(LLAMA_RULE[method][k])}`;
    const def = byModel.has(k) ? `${fromPreset} the rule for models without one`
      : k === 'mom2_update_weight' ? `${fromPreset} the rule's 15000 · d_ff / 11008`
        : k === 'mom2_n_samples' ? `${fromPreset} the statistics' own, as amend stats --samples`
          : d[k] !== undefined ? `default ${JSON.stringify(d[k])}${llama}`
            : 'default: unset';
    return `  ${k.padEnd(32)} ${s.ignored ? '[accepted, not used] ' : ''}${s.help} (${def})`;
  });
  return [...lines, '  key=null (or "key:" in a file) sets a key back to its default'];
}
