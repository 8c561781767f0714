// Hyperparameters: presets (published values, each citing its source) matched to models, the rule
// for models without one, EasyEdit YAML files as they are, `--set` overrides checked against the
// method's schema, and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { warningsOf } from './helpers.js';
import { buildSpec } from '../src/models/arch.js';
import { parseConfig } from '../src/models/config.js';
import { builtinWorldDir, type CausalLM } from '../src/models/model.js';
import {
  checkHparams, describeSchema, findPreset, ignoredWarnings, listPresets, parseSets, presetByName, readHparamsFile, resolveHparams, ruleHparams, SCHEMAS,
} from '../src/editors/hparams.js';

/** A model stand-in with the config and tensor names of a real architecture (no weights). */
function fakeModel(raw: Record<string, unknown>, dir: string): CausalLM {
  const config = parseConfig(raw);
  return { config, spec: buildSpec(config, () => false), dir } as unknown as CausalLM;
}

const GPT2 = (layers: number, hidden: number): Record<string, unknown> => ({
  model_type: 'gpt2', n_layer: layers, n_embd: hidden, n_head: 16, vocab_size: 50257, n_positions: 1024,
});
const LLAMA = (layers: number, hidden: number, ffn: number, type = 'llama'): Record<string, unknown> => ({
  model_type: type, num_hidden_layers: layers, hidden_size: hidden, intermediate_size: ffn, num_attention_heads: 32,
  vocab_size: 32000, max_position_embeddings: 4096,
});
const GPTJ = { model_type: 'gptj', n_layer: 28, n_embd: 4096, n_head: 16, vocab_size: 50400, n_positions: 2048, rotary_dim: 64 };

const gpt2xl = fakeModel(GPT2(48, 1600), '/hub/models--gpt2-xl/snapshots/x');
const gpt2medium = fakeModel(GPT2(24, 1024), '/m/gpt2-medium');
const gptj = fakeModel(GPTJ, '/m/gpt-j-6B');
const llama2 = fakeModel(LLAMA(32, 4096, 11008), '/m/Llama-2-7b-hf');
const gpt2small = fakeModel(GPT2(12, 768), '/m/gpt2');

test('every preset parses, passes its method schema and cites its source file', () => {
  const all = listPresets();
  assert.ok(all.length >= 20);
  for (const p of all) {
    assert.match(p.source, /^((kmeng01\/rome|kmeng01\/memit|zjunlp\/EasyEdit) hparams\/(ROME|MEMIT)\/\S+\.(json|yaml)|amend: tuned on the demo world model)/, p.file);
    checkHparams(p.method, p.hparams, p.file);
    assert.ok(Array.isArray(p.hparams.layers) && p.hparams.layers.length > 0);
  }
  for (const name of ['gpt2-medium', 'gpt2-large', 'gpt2-xl', 'gpt-j-6B', 'llama-2-7b', 'llama3-8b', 'mistral-7b', 'qwen2-7b', 'qwen2.5-7b']) presetByName('rome', name);
  for (const name of ['gpt2-xl', 'gpt-j-6B', 'llama-2-7b', 'mistral-7b', 'qwen2.5-7b']) presetByName('memit', name);
  // The original ROME's C⁻¹ adjustment in every ROME preset but the named EasyEdit variants (whose
  // YAML files turn it off), the rule of ../shared/DESIGN.md: EasyEdit's deviations are switches.
  for (const p of all.filter((q) => q.method === 'rome')) {
    assert.equal(p.hparams.mom2_adjustment, !p.name.endsWith('-easyedit'), `${p.file}: mom2_adjustment`);
  }
});

test('published values: ROME gpt2-xl layer 17 with C⁻¹, MEMIT gpt2-xl layers 13–17 with λ 20000, EasyEdit llama-2-7b', () => {
  const r = resolveHparams('rome', gpt2xl);
  assert.equal(r.preset?.name, 'gpt2-xl');
  assert.deepEqual(r.hparams.layers, [17]);
  assert.equal(r.hparams.mom2_adjustment, true);
  assert.equal(r.hparams.v_lr, 0.5);
  assert.equal(r.hparams.clamp_norm_factor, 4);
  assert.deepEqual(r.hparams.context_template_length_params, [[5, 10], [10, 10]]);
  assert.equal(r.hparams.rewrite_module_tmp, 'transformer.h.{}.mlp.c_proj');
  assert.deepEqual(resolveHparams('rome', gpt2medium).hparams.layers, [8]);
  assert.deepEqual(resolveHparams('rome', gptj).hparams.layers, [5]);
  const m = resolveHparams('memit', gpt2xl).hparams;
  assert.deepEqual(m.layers, [13, 14, 15, 16, 17]);
  assert.equal(m.mom2_update_weight, 20000);
  assert.equal(m.clamp_norm_factor, 0.75);
  assert.deepEqual(m.context_template_prompts, ['The', 'Therefore', 'Because', 'I', 'You']);
  assert.deepEqual(resolveHparams('memit', gptj).hparams.layers, [3, 4, 5, 6, 7, 8]);
  const l = resolveHparams('rome', llama2);
  assert.equal(l.preset?.name, 'llama-2-7b');
  assert.equal(l.hparams.v_weight_decay, 1e-3);
  assert.equal(l.hparams.v_num_grad_steps, 25);
  assert.equal(l.hparams.mom2_adjustment, true, "EasyEdit's numbers, the original's C⁻¹k*");
  assert.deepEqual(resolveHparams('memit', llama2).hparams.layers, [4, 5, 6, 7, 8]);
  // Llama-3.2-1B: EasyEdit's v_loss_layer (27) is past its 16 layers; the preset reads the last one
  const l1 = fakeModel({ ...LLAMA(16, 2048, 8192, 'llama'), tie_word_embeddings: true }, '/m/Llama-3.2-1B');
  assert.equal(resolveHparams('rome', l1).preset?.name, 'llama3.2-1b');
  assert.equal(resolveHparams('rome', l1).hparams.v_loss_layer, 15);
  assert.deepEqual(resolveHparams('memit', l1).hparams.layers, [4, 5, 6, 7, 8]);
  assert.equal(resolveHparams('memit', l1).hparams.v_loss_layer, 15);
  // two presets for one shape: the one named in the path wins
  assert.equal(findPreset('rome', fakeModel(LLAMA(28, 3584, 18944, 'qwen2'), '/m/Qwen2.5-7B'))?.name, 'qwen2.5-7b');
  assert.equal(findPreset('rome', fakeModel(LLAMA(28, 3584, 18944, 'qwen2'), '/m/Qwen2-7B'))?.name, 'qwen2-7b');
});

test('the world presets go with the world\'s own files, not its folder\'s name', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-preset-'));
  try {
    const worldConfig = JSON.parse(fs.readFileSync(path.join(builtinWorldDir(), 'config.json'), 'utf8'));
    // an export of the world (any folder name) holds its world.json: the presets apply
    const exported = path.join(dir, 'ex1');
    fs.mkdirSync(exported);
    fs.copyFileSync(path.join(builtinWorldDir(), 'world.json'), path.join(exported, 'world.json'));
    for (const method of ['rome', 'memit'] as const) assert.equal(findPreset(method, fakeModel(worldConfig, exported))?.name, 'world', method);
    // a model of the same shape in a folder named like it, without the world's files: the rule
    const named = path.join(dir, 'my-world-model');
    fs.mkdirSync(named);
    assert.equal(findPreset('rome', fakeModel(worldConfig, named)), null);
    assert.equal(findPreset('rome', fakeModel(worldConfig, builtinWorldDir()))?.name, 'world');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the rule for models without a preset', () => {
  assert.equal(findPreset('rome', gpt2small), null);
  assert.deepEqual(ruleHparams('rome', gpt2small).layers, [4]);
  assert.deepEqual(ruleHparams('memit', gpt2small).layers, [2, 3, 4]);
  assert.deepEqual(ruleHparams('rome', gpt2xl).layers, [16]);
  assert.deepEqual(ruleHparams('memit', gpt2xl).layers, [12, 13, 14, 15, 16]);
  assert.deepEqual(ruleHparams('rome', llama2).layers, [5]);
  assert.deepEqual(ruleHparams('memit', llama2).layers, [4, 5, 6, 7, 8]);
  assert.deepEqual(ruleHparams('memit', gptj).layers, [3, 4, 5, 6, 7]);
  const tiny = fakeModel(GPT2(3, 32), '/m/tiny');
  assert.deepEqual(ruleHparams('memit', tiny).layers, [1]);
  // never the last layer, whose change at the subject's token cannot reach the prediction
  const tinyRotary = fakeModel(LLAMA(3, 64, 256), '/m/tiny-llama');
  assert.deepEqual(ruleHparams('memit', tinyRotary).layers, [1]);
  assert.deepEqual(ruleHparams('rome', tinyRotary).layers, [0]);
  const oneLayer = fakeModel(LLAMA(1, 64, 256), '/m/one-layer');
  assert.deepEqual(ruleHparams('memit', oneLayer).layers, [0]);
  assert.throws(() => resolveHparams('rome', oneLayer), /with no layer below it, only fact_token=last can edit/);
  const r = resolveHparams('rome', gpt2small);
  assert.match(r.origin, /^rule/);
  assert.equal(r.hparams.v_loss_layer, 11);
  assert.equal(r.hparams.rewrite_module_tmp, 'transformer.h.{}.mlp.c_proj');
  assert.equal(ruleHparams('rome', llama2).rewrite_module_tmp, 'model.layers.{}.mlp.down_proj');
  assert.equal(ruleHparams('rome', llama2).v_weight_decay, 1e-3);
  // MEMIT's λ keeps Llama-2-7B's published d / λ = 11008 / 15000 at every MLP width d
  assert.equal(ruleHparams('memit', llama2).mom2_update_weight, 15000);
  assert.equal(ruleHparams('memit', gpt2small).mom2_update_weight, Math.round(3072 * 15000 / 11008));
  assert.equal(resolveHparams('memit', tiny).hparams.mom2_update_weight, Math.round(128 * 15000 / 11008));
  assert.equal(resolveHparams('memit', tiny, { overrides: parseSets(['mom2_update_weight=7']) }).hparams.mom2_update_weight, 7);
});

test('an EasyEdit YAML file is read as it is (bookkeeping keys accepted, 5e-1 is a number)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-hp-'));
  const file = path.join(dir, 'llama-7b.yaml');
  fs.writeFileSync(file, [
    'alg_name: "ROME"', 'model_name: "./hugging_cache/llama-2-7b-chat"', 'stats_dir: "./data/stats"', 'device: 0',
    'layers: [5]', 'fact_token: "subject_last"', 'v_num_grad_steps: 25', 'v_lr: 5e-1', 'v_loss_layer: 31',
    'v_weight_decay: 1e-3', 'clamp_norm_factor: 4', 'kl_factor: 0.0625', 'mom2_adjustment: false',
    'context_template_length_params: [[5, 10], [10, 10]]', 'rewrite_module_tmp: "model.layers.{}.mlp.down_proj"',
    'layer_module_tmp: "model.layers.{}"', 'mlp_module_tmp: "model.layers.{}.mlp"', 'attn_module_tmp: "model.layers.{}.self_attn"',
    'ln_f_module: "model.norm"', 'lm_head_module: "lm_head"', 'mom2_dataset: "wikipedia"', 'mom2_n_samples: 100000',
    'mom2_dtype: "float32"', 'model_parallel: false', '# fp16: true', '',
  ].join('\n'));
  const r = resolveHparams('rome', llama2, { files: [file], overrides: parseSets(['mom2_adjustment=true']) });
  assert.equal(r.hparams.v_lr, 0.5);
  assert.equal(r.hparams.v_weight_decay, 0.001);
  assert.equal(r.hparams.mom2_adjustment, true);
  assert.match(r.origin, /llama-7b\.yaml \+ overrides \(mom2_adjustment\)/);
  // on a GPT-2 model the rewritten module does not exist
  assert.throws(() => resolveHparams('rome', gpt2xl, { files: [file] }), (e: unknown) => e instanceof AmendError && /rewrite_module_tmp "model\.layers\.\{\}\.mlp\.down_proj" names model\.layers\.5\.mlp\.down_proj\.weight/.test(e.message));
  // a MEMIT file given to ROME
  fs.writeFileSync(path.join(dir, 'm.yaml'), 'alg_name: "MEMIT"\nlayers: [4, 5]\nmom2_update_weight: 15000\nlayer_selection: "all"\n');
  assert.throws(() => resolveHparams('rome', llama2, { files: [path.join(dir, 'm.yaml')] }), /the file is for MEMIT \(alg_name\), not ROME/);
  // JSON, as in the reference repositories
  fs.writeFileSync(path.join(dir, 'h.json'), JSON.stringify({ layers: [3], v_lr: 0.1 }));
  assert.deepEqual(readHparamsFile(path.join(dir, 'h.json')), { layers: [3], v_lr: 0.1 });
  assert.throws(() => readHparamsFile(path.join(dir, 'missing.yaml')), /no such file/);
  fs.writeFileSync(path.join(dir, 'bad.yaml'), 'layers: [1, 2\n');
  assert.throws(() => readHparamsFile(path.join(dir, 'bad.yaml')), /not valid YAML/);
  fs.rmSync(dir, { recursive: true });
});

test('--set overrides: YAML values, several per argument, type-checked, unknown keys named', () => {
  assert.deepEqual(parseSets(['layers=[4, 5]', 'v_lr=0.1', 'mom2_adjustment=false']), { layers: [4, 5], v_lr: 0.1, mom2_adjustment: false });
  assert.deepEqual(parseSets(['layers=[4,5] v_lr=1e-2; fact_token=last']), { layers: [4, 5], v_lr: 0.01, fact_token: 'last' });
  assert.deepEqual(parseSets(['kl_prompts=["{} is a", "{} was a"]']), { kl_prompts: ['{} is a', '{} was a'] });
  // text-valued keys keep the text as typed (YAML would make 1e3 the number 1000, 0.10 the number 0.1, true a boolean)
  assert.deepEqual(parseSets(['mom2_dataset=1e3', 'stats_dir=0.10', 'model_name=true', 'mom2_dtype="float16"', 'alg_name=null']),
    { mom2_dataset: '1e3', stats_dir: '0.10', model_name: 'true', mom2_dtype: 'float16', alg_name: null });
  const r = resolveHparams('rome', gpt2xl, { overrides: parseSets(['layers=3', 'v_num_grad_steps=7']) });
  assert.deepEqual(r.hparams.layers, [3]);
  assert.equal(r.hparams.v_num_grad_steps, 7);
  const bad = (sets: string[], re: RegExp, method: 'rome' | 'memit' = 'rome'): void => {
    assert.throws(() => resolveHparams(method, gpt2xl, { overrides: parseSets(sets) }), (e: unknown) => e instanceof AmendError && re.test(e.message));
  };
  bad(['v_lr=fast'], /^hparams: v_lr must be a number ≥ 0, got "fast"/);
  // The CLI names its own flag; the API does not tell a program to pass one.
  assert.throws(() => resolveHparams('rome', gpt2xl, { overrides: parseSets(['v_lr=fast']), overridesSource: '--set' }), /^AmendError: --set: v_lr must be/);
  bad(['v_num_grad_steps=2.5'], /v_num_grad_steps must be an integer ≥ 1/);
  bad(['fact_token=subject_middle'], /fact_token must be one of subject_last, subject_first, subject_first_after_last, last/);
  bad(['mom2_adjustment=maybe'], /mom2_adjustment must be true or false/);
  bad(['layers=[48]'], /layer 48 is out of range \(the model has 48 layers, 0\.\.47\)/);
  bad(['layers=[3, 3]'], /repeat a layer/);
  bad(['clamp_norm_fator=2'], /unknown ROME hparam "clamp_norm_fator" \(did you mean "clamp_norm_factor"\?\); valid keys: layers,/);
  bad(['mom2_update_weight=100'], /unknown ROME hparam "mom2_update_weight"/);
  bad(['v_loss_layer=60'], /v_loss_layer 60 is out of range/, 'memit');
  // At or above the loss layer a change at the subject's token cannot reach the prediction.
  bad(['layers=[47]'], /layer 47 is not below the last layer 47, so a change at the subject's token cannot reach the prediction after the prompt .*edit a layer below 47, or use fact_token=last/);
  bad(['layers=[20]', 'v_loss_layer=20'], /layer 20 is not below v_loss_layer 20/, 'memit');
  bad(['layers=[44, 45, 46, 47]'], /layer 47 is not below v_loss_layer 47/, 'memit');
  assert.deepEqual(resolveHparams('rome', gpt2xl, { overrides: parseSets(['layers=[47]', 'fact_token=last']) }).hparams.layers, [47]);
  bad(['kl_prompts=["is a"]'], /exactly one "\{\}"/);
  // Values that would size arrays or loops past any use (a RangeError, or a run that never ends).
  bad(['v_num_grad_steps=99999999999999999999'], /v_num_grad_steps must be an integer of at most 9007199254740991, got 100000000000000000000/);
  bad(['mom2_n_samples=1e300'], /mom2_n_samples must be an integer of at most 9007199254740991/);
  bad(['context_template_top_k=99999999999'], /context_template_top_k 99999999999 is more than the model's 50257 tokens; give at most 50257/);
  bad(['context_template_length_params=[[5, 99999999999]]'], /context_template_length_params must be a list of \[length, count\] pairs with at most 10000 templates of a length/);
  bad(['context_template_length_params=[[10, 5], [99999999999, 1]]'], /context_template_length_params asks for templates of 99999999999 tokens, but the model has 1024 positions/);
  assert.throws(() => parseSets(['layers']), /--set expects key=value, got "layers"/);
  assert.equal(resolveHparams('memit', gpt2xl, { overrides: parseSets(['mom2_update_weight=1e4']) }).hparams.mom2_update_weight, 10000);
  assert.throws(() => presetByName('rome', 'gpt5'), /no ROME preset "gpt5" \(presets: /);
  assert.ok(SCHEMAS.memit.mom2_update_weight && !SCHEMAS.rome.mom2_update_weight);
});

test('--set and hparams files: a number too large to be finite, strings in a layer list, a folder as the file, a corpus path that is not there', () => {
  const bad = (sets: string[], re: RegExp): void => {
    assert.throws(() => resolveHparams('rome', gpt2xl, { overrides: parseSets(sets), overridesSource: '--set' }), (e: unknown) => e instanceof AmendError && re.test(e.message) && !e.message.includes('\n'));
  };
  // JSON.stringify(Infinity) is null: the text given is echoed instead
  bad(['kl_factor=1e999'], /^--set: kl_factor must be a number ≥ 0, got "1e999", which is not a finite number$/);
  bad(['v_lr=-1e999'], /got "-1e999", which is not a finite number/);
  // a layer list holds numbers, as a single layer does ("0" was taken as 0, 0.5 refused)
  bad(['layers=["0"]'], /layers must be a list of layer indices, e.g\. \[4, 5\], got \["0"\]/);
  bad(['layers=[3, "4"]'], /layers must be a list of layer indices/);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-hparams-'));
  try {
    const file = path.join(tmp, 'inf.yaml');
    fs.writeFileSync(file, 'kl_factor: 1e999\n');
    assert.throws(() => resolveHparams('rome', gpt2xl, { files: [file] }), /kl_factor must be a number ≥ 0, got Infinity, which is not a finite number/);
    assert.throws(() => readHparamsFile(tmp), /^AmendError: cannot read hparams file .*: it is a folder; give a YAML or JSON hparams file/);
    // mom2_dataset: a path-looking value that does not exist is an error naming it; a plain name
    // (imported statistics) and an existing file pass
    const model = fakeModel(GPT2(48, 1600), tmp);
    const corpus = (ds: string): unknown => resolveHparams('rome', model, { overrides: { mom2_dataset: ds }, overridesSource: '--set' }).hparams.mom2_dataset;
    for (const ds of ['nope.txt', 'data/wiki', path.join(tmp, 'missing.jsonl')]) {
      assert.throws(() => corpus(ds), (e: unknown) => e instanceof AmendError && e.message.startsWith(`--set: mom2_dataset ${ds}: no such file or folder`) && /give an existing corpus file or folder/.test(e.message), ds);
    }
    const yaml = path.join(tmp, 'ds.yaml');
    fs.writeFileSync(yaml, 'mom2_dataset: nope.txt\n');
    assert.throws(() => resolveHparams('rome', model, { files: [yaml] }), /ds\.yaml: mom2_dataset nope\.txt: no such file or folder/);
    assert.equal(corpus('wikipedia'), 'wikipedia');
    fs.writeFileSync(path.join(tmp, 'here.txt'), 'a text\n');
    assert.equal(corpus('here.txt'), 'here.txt'); // inside the model folder
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('a preset named for another family: refused for a family Amend does not run or other module names, a warning for the same module names', async () => {
  const refused = (re: RegExp) => (e: unknown) => e instanceof AmendError && re.test(e.message);
  // Qwen (v1)'s values on GPT-2-XL (whose module names Qwen v1 happens to share).
  assert.throws(() => resolveHparams('rome', gpt2xl, { preset: 'qwen-7b' }),
    refused(/^ROME preset qwen-7b is not for this gpt2 model: Qwen \(v1\) architecture not supported by Amend; kept for reference; name one for gpt2 models \(gpt2-large, gpt2-medium, gpt2-xl, world\) or none .*--hparams/));
  assert.throws(() => resolveHparams('memit', llama2, { preset: 'chatglm2-6b' }), refused(/^MEMIT preset chatglm2-6b is not for this llama model: .*ChatGLM/));
  // Another architecture's modules: said before its layer numbers (GPT-J's layer 5 is past a small model's layers).
  const gpt2tiny = fakeModel(GPT2(4, 256), '/m/tiny');
  assert.throws(() => resolveHparams('rome', gpt2tiny, { preset: 'gpt-j-6B' }),
    refused(/^ROME preset gpt-j-6B rewrites transformer\.h\.\{\}\.mlp\.fc_out, but this gpt2 model's MLP down projection is transformer\.h\.\{\}\.mlp\.c_proj: the preset is for another architecture \(gptj\)/));
  assert.throws(() => resolveHparams('rome', llama2, { preset: 'gpt-j-6B' }), refused(/preset gpt-j-6B rewrites transformer\.h\.\{\}\.mlp\.fc_out, but this llama model's MLP down projection is model\.layers\.\{\}\.mlp\.down_proj/));
  // The same module names under another model_type: allowed, with a warning.
  const qwen2 = fakeModel(LLAMA(32, 4096, 11008, 'qwen2'), '/m/some-qwen2');
  const warnings = await warningsOf(() => resolveHparams('rome', qwen2, { preset: 'llama-2-7b' }));
  assert.deepEqual(warnings, ['ROME preset llama-2-7b is for llama models, and this is a qwen2 model (32 layers, hidden 4096); check that its layers and settings suit it']);
  // Presets meant to be named: a Llama-format conversion of Baichuan, EasyEdit's variant, the world preset elsewhere.
  assert.deepEqual(await warningsOf(() => {
    resolveHparams('rome', llama2, { preset: 'baichuan-7b' });
    resolveHparams('rome', gpt2xl, { preset: 'gpt2-xl-easyedit' });
    resolveHparams('rome', gpt2small, { preset: 'world' });
  }), []);
  // The way out the refusal names: the preset's values as a file.
  const r = resolveHparams('rome', gpt2xl, { files: [presetByName('rome', 'qwen-7b').file] });
  assert.match(r.origin, /\+ rome\.qwen-7b\.json$/);
  assert.doesNotMatch(resolveHparams('rome', gpt2xl).origin, /note:/);
});

/** A stand-in for the architecture a preset's match describes (path named after the preset). */
function modelFor(p: { name: string; match: { model_type?: string[]; layers?: number; hidden?: number; ffn?: number } | null }): CausalLM | null {
  const m = p.match;
  if (!m?.model_type || m.layers === undefined || m.hidden === undefined) return null;
  const type = m.model_type[0];
  if (type === 'gpt2') return fakeModel(GPT2(m.layers, m.hidden), `/m/${p.name}`);
  if (type === 'gptj') return fakeModel({ ...GPTJ, n_layer: m.layers, n_embd: m.hidden }, `/m/${p.name}`);
  // Llama 3.2 ties its head to the embedding (hence EasyEdit's lm_head_module model.embed_tokens).
  return fakeModel({ ...LLAMA(m.layers, m.hidden, m.ffn ?? 14336, type), tie_word_embeddings: p.name.startsWith('llama3.2') }, `/m/${p.name}`);
}

test('accepted-but-unused hparams: no warning for any preset on its own architecture, one per value that would change the run', async () => {
  let checked = 0;
  for (const p of listPresets()) {
    const model = modelFor(p);
    if (!p.supported || !model) continue;
    assert.deepEqual(ignoredWarnings(p.method, resolveHparams(p.method, model, { preset: p.name }).hparams, model), [], `${p.method} ${p.name}`);
    checked++;
  }
  assert.ok(checked >= 15, `${checked} presets checked`);
  // Values that would have changed the reference's run (EasyEdit's files carry fp16 false, batch_size 1, max_length 40).
  const sets = parseSets(['fp16=true model_parallel=true batch_size=4 max_length=100 mom2_dtype=float16 layer_selection=random ln_f_module=model.norm']);
  const w = await warningsOf(() => resolveHparams('memit', gpt2xl, { overrides: sets }));
  for (const k of ['fp16', 'model_parallel', 'batch_size', 'max_length', 'mom2_dtype', 'layer_selection', 'ln_f_module']) {
    assert.equal(w.filter((x) => x.includes(`${k} `)).length, 1, `${k}: ${w.join(' | ')}`);
  }
  // Once per process: the same values resolved again say nothing.
  assert.deepEqual(await warningsOf(() => resolveHparams('memit', gpt2xl, { overrides: sets })), []);
});

test('ROME reads the loss at the logits: v_loss_layer is warned about, neither refused nor checked against the edited layer', async () => {
  // kmeng01/rome compute_v takes the NLL from model(...).logits; v_loss_layer only names a traced module.
  const w = await warningsOf(() => resolveHparams('rome', gpt2xl, { overrides: { v_loss_layer: 10 } }));
  assert.equal(w.filter((x) => x.includes('v_loss_layer')).length, 1);
  assert.match(w.find((x) => x.includes('v_loss_layer'))!, /ROME: v_loss_layer 10 is not used.*logits \(layer 47\)/);
  // Layer 17 above v_loss_layer 10, and EasyEdit's llama3.2-1b value 27 on a 16-layer model: editable.
  assert.equal(resolveHparams('rome', gpt2xl, { overrides: { v_loss_layer: 12 } }).hparams.layers[0], 17);
  const llama1b = fakeModel(LLAMA(16, 2048, 8192), '/m/Llama-3.2-1B');
  await warningsOf(() => assert.doesNotThrow(() => resolveHparams('rome', llama1b, { overrides: { v_loss_layer: 27 } })));
  // MEMIT reads it (logit lens): still refused out of range and below the edited layers.
  assert.throws(() => resolveHparams('memit', gpt2xl, { overrides: { v_loss_layer: 48 } }), /v_loss_layer 48 is out of range/);
  assert.throws(() => resolveHparams('memit', gpt2xl, { overrides: { v_loss_layer: 10 } }), /layer 17 is not below v_loss_layer 10/);
});

test('key=null sets a key back to its default instead of keeping the preset\'s value', () => {
  assert.equal(resolveHparams('rome', gpt2xl).hparams.mom2_n_samples, 100000);
  const unset = resolveHparams('rome', gpt2xl, { overrides: parseSets(['mom2_n_samples=null']) }).hparams;
  assert.equal(unset.mom2_n_samples, undefined);
  assert.ok(!('mom2_n_samples' in unset));
  assert.equal(resolveHparams('rome', gpt2xl, { overrides: parseSets(['mom2_dataset=null']) }).hparams.mom2_dataset, '');
  assert.deepEqual(resolveHparams('rome', gpt2xl, { overrides: parseSets(['layers=null']) }).hparams.layers, ruleHparams('rome', gpt2xl).layers);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-null-'));
  const f = path.join(dir, 'h.yaml');
  fs.writeFileSync(f, 'kl_factor:\nv_lr: null\n');
  const hp = resolveHparams('rome', gpt2xl, { files: [f] }).hparams;
  assert.equal(hp.kl_factor, 0.0625);
  assert.equal(hp.v_lr, 0.5);
  fs.rmSync(dir, { recursive: true });
});

test('--hparams-help describes every key the schema accepts, with its default', () => {
  for (const method of ['rome', 'memit'] as const) {
    const lines = describeSchema(method);
    for (const k of Object.keys(SCHEMAS[method])) {
      const line = lines.find((l) => l.trimStart().startsWith(`${k} `));
      assert.ok(line, `${method} ${k} missing`);
      assert.match(line, /\(default[ :][^()]*\)$/, `${method} ${k}: ${line}`);
    }
  }
  assert.match(describeSchema('rome').find((l) => l.includes('fp16 '))!, /\[accepted, not used\]/);
});

test('--hparams-help gives the values a model without a preset really gets (MEMIT\'s λ follows the rule, Llama-family models their own optimisation settings)', () => {
  const llamaSmall = fakeModel(LLAMA(8, 512, 1376), '/m/small-llama');
  for (const method of ['rome', 'memit'] as const) {
    const lines = describeSchema(method);
    for (const model of [gpt2small, llamaSmall]) {
      assert.equal(findPreset(method, model), null, 'a model no preset matches');
      const hp = resolveHparams(method, model).hparams;
      const llama = model.config.family === 'llama';
      for (const k of Object.keys(SCHEMAS[method])) {
        const line = lines.find((l) => l.trimStart().startsWith(`${k} `))!;
        const m = /\(default ([^;]*?)(?:; Llama-family models without a preset: (.*))?\)$/.exec(line);
        if (!m) continue; // set by the preset or the rule: no fixed value to show
        const shown = JSON.parse(llama && m[2] !== undefined ? m[2] : m[1]);
        assert.deepEqual(hp[k], shown, `${method} ${k} on ${model.config.modelType}: help says ${JSON.stringify(shown)}, resolved ${JSON.stringify(hp[k])}`);
      }
    }
  }
  const lambda = describeSchema('memit').find((l) => l.trimStart().startsWith('mom2_update_weight '))!;
  assert.match(lambda, /the preset's, else the rule's 15000 · d_ff \/ 11008/);
  assert.equal(resolveHparams('memit', gpt2small).hparams.mom2_update_weight, Math.round(3072 * 15000 / 11008));
});

test("a preset for other module names: the way out the refusal names works, and an override of rewrite_module_tmp is that way", async () => {
  const gpt2deep = fakeModel(GPT2(28, 1024), '/m/deep-gpt2'); // GPT-J's layer numbers fit, its module names do not
  let message = '';
  assert.throws(() => resolveHparams('rome', gpt2deep, { preset: 'gpt-j-6B' }), (e: unknown) => {
    message = (e as Error).message;
    return e instanceof AmendError && /^ROME preset gpt-j-6B rewrites transformer\.h\.\{\}\.mlp\.fc_out/.test(message);
  });
  // The preset's file keeps GPT-J's module names, which the model check refuses in turn: not a way out.
  assert.throws(() => resolveHparams('rome', gpt2deep, { files: [presetByName('rome', 'gpt-j-6B').file] }), /rewrite_module_tmp "transformer\.h\.\{\}\.mlp\.fc_out"/);
  assert.doesNotMatch(message, /--hparams/);
  const named = /or set rewrite_module_tmp=(\S+) and layers for this model/.exec(message);
  assert.ok(named, message);
  // Following it: the preset's other values, GPT-2's module, with the model_type warning.
  let r: ReturnType<typeof resolveHparams> | undefined;
  const warnings = await warningsOf(() => { r = resolveHparams('rome', gpt2deep, { preset: 'gpt-j-6B', overrides: { rewrite_module_tmp: named[1]! } }); });
  assert.equal(r!.hparams.rewrite_module_tmp, 'transformer.h.{}.mlp.c_proj');
  assert.deepEqual([r!.hparams.layers, r!.hparams.v_loss_layer], [[5], 27]);
  assert.deepEqual(warnings, ['ROME preset gpt-j-6B is for gptj models, and this is a gpt2 model (28 layers, hidden 1024); check that its layers and settings suit it']);
});
