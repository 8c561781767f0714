// An exported checkpoint is what a Hugging Face user loads: test/numpy-export.py reads the export
// with nothing of Amend (a strict safetensors parse, its own float64 forward, the HF `tokenizers`
// library) and the logits it computes over its tokenizer's ids must be Amend's for the edited
// model. For the demo model and every tiny checkpoint in ../shared/models (ROME, and a MEMIT
// batch), through the API and the CLI, for a sharded BF16 and a single-file F16 original, and
// with the storage dtype converted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM } from '../src/models/index.js';
import { readCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { EditPatch, editSession, exportModel, exportPatched } from '../src/patch/index.js';
import { editWithReport, type EditMethod, type EditRequest } from '../src/editors/index.js';
import { noGrad } from '../src/tensor/index.js';
import { AmendTokenizer } from '../src/tokenizer/index.js';
import { randomStats, repoRoot, runCli, sharedDir } from './helpers.js';

// The first python3 with numpy and the HF tokenizers library, else the first with numpy (Debian
// packages numpy but not tokenizers): then the export's token ids are not checked in Python, only
// that its tokenizer files are the original's byte for byte, and Amend's ids are what numpy runs.
const canImport = (py: string, what: string): boolean => spawnSync(py, ['-c', `import ${what}`], { encoding: 'utf8' }).status === 0;
const PYTHONS = ['python3', '/usr/bin/python3'];
const PY = PYTHONS.find((py) => canImport(py, 'numpy, tokenizers')) ?? PYTHONS.find((py) => canImport(py, 'numpy'));
const hasPython = PY !== undefined;
const hasHfTokenizers = hasPython && canImport(PY, 'tokenizers');
const MODELS = sharedDir('models');
/** A shared checkpoint's folder, or the built-in demo model's. */
const folderOf = (base: string): string => base === 'world' ? path.join(repoRoot(), 'world') : path.join(MODELS ?? '', base);
const skipFor = (base: string): string | false => !hasPython ? 'python3 with numpy is not installed'
  : base === 'world' ? !fs.existsSync(path.join(folderOf(base), 'model.safetensors')) && 'the demo model is not built (amend world build)'
  : !MODELS || !fs.existsSync(folderOf(base)) ? `../shared/models/${base} is absent` : false;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-export-numpy-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const ROME_REQ: EditRequest = { prompt: 'The capital of {} is', subject: 'France', targetNew: 'Rome' };
const MEMIT_REQS: EditRequest[] = [ROME_REQ, { prompt: '{} works as a', subject: 'Lily', targetNew: 'pilot' }];
// The edit's own prompt first (the edit must show there), then other text, special characters included.
const TEXTS = ['The capital of France is', 'Lily works as a', 'Once upon a time, there was a little dog.', '  x = 1; naïve café 42 <s>'];
const TOL = 2e-5; // as test/models-numpy.test.ts
const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;
// Few optimisation steps: the edit only has to change the weights, not to succeed.
const FAST = { v_num_grad_steps: 4, context_template_length_params: [[5, 2]] };

interface Reading {
  problems: string[];
  changed: string[];
  dtypes: Record<string, string>;
  ids: number[][];
  /** null where Python has no `tokenizers` (ids are then Amend's own). */
  rawIds: number[][] | null;
  logits: Float64Array[];
}

/**
 * test/numpy-export.py on an export and the checkpoint it came from; `dtype`: the one every
 * floating tensor was converted to; `roundedFrom`: an F32 export of the same model, whose values
 * the export's 16-bit tensors must be rounded from.
 */
function readWithPython(original: string, exported: string, opts: { dtype?: 'F32' | 'F16' | 'BF16'; roundedFrom?: string } = {}): Reading {
  const out = path.join(tmp, 'logits.bin');
  const { dtype, roundedFrom } = opts;
  const ids = hasHfTokenizers ? undefined : TEXTS.map((t) => AmendTokenizer.fromDir(original).encode(t));
  const r = spawnSync(PY!, [path.join(repoRoot(), 'test', 'numpy-export.py')], {
    input: JSON.stringify({
      original, export: exported, texts: TEXTS, out, dtype, config_changes: dtype ? { torch_dtype: TORCH_DTYPE[dtype] } : {}, rounded_from: roundedFrom, ids,
    }),
    encoding: 'utf8', maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { problems: string[]; changed: string[]; dtypes: Record<string, string>; ids: number[][]; raw_ids: number[][] | null; logits: { shape: number[]; offset: number }[] };
  const buf = fs.readFileSync(out);
  const all = new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const logits = res.logits.map((l) => all.subarray(l.offset / 8, l.offset / 8 + l.shape[0]! * l.shape[1]!));
  return { problems: res.problems, changed: res.changed, dtypes: res.dtypes, ids: res.ids, rawIds: res.raw_ids, logits };
}

function amendLogits(model: CausalLM, ids: number[]): Float32Array {
  return noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'all' }).logits!.data);
}

/** Largest |a − b| over the rows, relative to the reference's largest |value| (at least 1). */
function relDiff(got: ArrayLike<number>, want: Float64Array): number {
  let scale = 1, worst = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / scale);
  return worst;
}

/**
 * What Python read must be `model`'s: the same token ids (with and without special tokens) from
 * the exported tokenizer files where Python has `tokenizers`, and the same logits over them.
 * Returns the worst logit difference.
 */
function assertSameAsAmend(label: string, r: Reading, model: CausalLM): number {
  assert.deepEqual(r.problems, [], `${label}: the export as Python reads it`);
  const tok = model.tok();
  let worst = 0;
  TEXTS.forEach((text, i) => {
    assert.deepEqual(r.ids[i], tok.encode(text), `${label}: ids of ${JSON.stringify(text)}`);
    if (r.rawIds) assert.deepEqual(r.rawIds[i], tok.encode(text, { addSpecialTokens: false }), `${label}: ids of ${JSON.stringify(text)} without special tokens`);
    worst = Math.max(worst, relDiff(amendLogits(model, r.ids[i]!), r.logits[i]!));
  });
  assert.ok(worst < TOL, `${label}: numpy logits of the export differ from Amend's by ${worst}`);
  return worst;
}

/** A copy of a shared checkpoint stored in another dtype, sharded when maxShardBytes is given. */
function storedAs(base: string, dtype: 'F16' | 'BF16', maxShardBytes?: number): string {
  const from = path.join(MODELS!, base), dir = path.join(tmp, `${base}-${dtype}${maxShardBytes ? '-sharded' : ''}`);
  fs.mkdirSync(dir);
  writeCheckpoint(dir, readCheckpoint(from).tensors, { dtype, maxShardBytes });
  for (const f of fs.readdirSync(from)) {
    if (f === 'config.json') {
      const cfg = JSON.parse(fs.readFileSync(path.join(from, f), 'utf8'));
      fs.writeFileSync(path.join(dir, f), JSON.stringify({ ...cfg, torch_dtype: TORCH_DTYPE[dtype] }, null, 2) + '\n');
    } else if (!f.endsWith('.safetensors')) {
      fs.copyFileSync(path.join(from, f), path.join(dir, f));
    }
  }
  return dir;
}

async function makeEdit(model: CausalLM, method: EditMethod, layers: number[]): Promise<EditPatch> {
  const requests = method === 'rome' ? [ROME_REQ] : MEMIT_REQS;
  const stats = await randomStats(model, layers);
  const { patch } = await editWithReport(model, requests, { method, hparams: { layers, ...FAST }, stats, allowUnchanged: true });
  return patch;
}

type How = 'exportModel' | 'exportPatched' | 'cli';
const CASES: [string, EditMethod, number[], How][] = [
  ['world', 'rome', [1], 'exportModel'],
  ['tiny-random-gpt2', 'rome', [1], 'cli'],
  ['tiny-random-gptj', 'rome', [1], 'exportModel'],
  ['tiny-random-gpt_neox', 'rome', [1], 'exportModel'],
  ['tiny-random-llama', 'rome', [1], 'exportPatched'],
  ['tiny-random-qwen2', 'rome', [1], 'exportModel'],
  ['stories260K', 'rome', [1], 'exportModel'],
  ['stories260K', 'memit', [1, 2], 'exportPatched'],
  ['tiny-random-gpt_neox', 'memit', [0, 1], 'cli'],
];

for (const [base, method, layers, how] of CASES) {
  test(`${base}: ${method} edit exported (${how}) reads in numpy to Amend's logits of the edited model, tokenizer included`, { skip: skipFor(base) }, async (t) => {
    if (!hasHfTokenizers) t.diagnostic(`${PY} has no HF tokenizers: the token ids numpy runs are Amend's, not checked against HF`);
    const src = folderOf(base);
    const model = await CausalLM.load(src);
    const before = amendLogits(model, model.tok().encode(TEXTS[0]!));
    const patch = await makeEdit(model, method, layers);
    const out = path.join(tmp, `${base}-${method}-${how}`);
    if (how === 'cli') {
      const file = path.join(tmp, `${base}-${method}.safetensors`);
      patch.save(file);
      const r = runCli(['export', '--model', src, '--patch', file, '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      editSession(model).apply(patch);
    } else if (how === 'exportPatched') {
      await exportPatched(model, [patch], out);
    } else {
      editSession(model).apply(patch);
      exportModel(model, out);
    }
    const r = readWithPython(src, out);
    assertSameAsAmend(base, r, model);
    // Exactly the edited tensors differ from the original, and the edit is in the logits.
    assert.deepEqual(r.changed.sort(), patch.touched().sort());
    const moved = relDiff(before, r.logits[0]!);
    assert.ok(moved > 100 * TOL, `${base}: the export's logits at the edit prompt moved only ${moved} from the unedited model's`);
  });
}

test('a sharded BF16 original: the export keeps its shards and BF16, the edit rounded to BF16, and numpy reads it to the reloaded model\'s logits', { skip: skipFor('tiny-random-qwen2') }, async () => {
  const src = storedAs('tiny-random-qwen2', 'BF16', 40_000);
  const shards = fs.readdirSync(src).filter((f) => f.endsWith('.safetensors'));
  assert.ok(shards.length >= 3, `expected several shards, got ${shards.length}`);
  const model = await CausalLM.load(src);
  const patch = await makeEdit(model, 'rome', [1]);
  editSession(model).apply(patch);
  // Converted to F32: the same shards, an index with the doubled total_size, the config naming
  // float32, and the edited model's values exactly.
  const f32 = path.join(tmp, 'qwen2-bf16-as-f32');
  exportModel(model, f32, { dtype: 'f32' });
  assertSameAsAmend('qwen2 BF16 sharded exported as F32', readWithPython(src, f32, { dtype: 'F32' }), model);

  const out = path.join(tmp, 'qwen2-bf16-export');
  exportModel(model, out);
  const r = readWithPython(src, out, { roundedFrom: f32 });
  assert.deepEqual(new Set(Object.values(r.dtypes)), new Set(['BF16']));
  assert.deepEqual(r.changed.sort(), patch.touched().sort());
  assertSameAsAmend('qwen2 BF16 sharded', r, await CausalLM.load(out));
});

test('an F16 original: the edit is written back in F16 (CLI, keep) or all in F32 (--dtype f32, config says so); numpy reads both to Amend\'s logits', { skip: skipFor('tiny-random-gpt2') }, async () => {
  const src = storedAs('tiny-random-gpt2', 'F16');
  const model = await CausalLM.load(src);
  const patch = await makeEdit(model, 'memit', [0, 1]);
  const file = path.join(tmp, 'gpt2-f16.safetensors');
  patch.save(file);
  editSession(model).apply(patch);
  // Float32 holds every F16 value and the edit exactly: this export is the edited model itself.
  const f32 = path.join(tmp, 'gpt2-f16-as-f32');
  let cli = runCli(['export', '--model', src, '--patch', file, '--out', f32, '--dtype', 'f32']);
  assert.equal(cli.code, 0, cli.stderr);
  assertSameAsAmend('gpt2 F16 exported as F32', readWithPython(src, f32, { dtype: 'F32' }), model);

  const keep = path.join(tmp, 'gpt2-f16-keep');
  cli = runCli(['export', '--model', src, '--patch', file, '--out', keep]);
  assert.equal(cli.code, 0, cli.stderr);
  const r = readWithPython(src, keep, { roundedFrom: f32 });
  assert.deepEqual(new Set(Object.values(r.dtypes)), new Set(['F16']));
  assert.deepEqual(r.changed.sort(), patch.touched().sort());
  assertSameAsAmend('gpt2 F16', r, await CausalLM.load(keep));
});

test('an F32 original exported in BF16: every tensor BF16, the config says bfloat16, numpy reads it to the reloaded model\'s logits', { skip: skipFor('tiny-random-llama') }, async () => {
  const src = folderOf('tiny-random-llama');
  const model = await CausalLM.load(src);
  const patch = await makeEdit(model, 'rome', [1]);
  editSession(model).apply(patch);
  const exact = path.join(tmp, 'llama-f32'), out = path.join(tmp, 'llama-as-bf16');
  exportModel(model, exact);
  exportModel(model, out, { dtype: 'bf16' });
  const r = readWithPython(src, out, { dtype: 'BF16', roundedFrom: exact });
  assert.deepEqual(new Set(Object.values(r.dtypes)), new Set(['BF16']));
  assertSameAsAmend('llama exported as BF16', r, await CausalLM.load(out));
});
