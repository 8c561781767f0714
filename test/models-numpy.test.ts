// Every model family Amend runs (GPT-2, GPT-J, GPT-NeoX, Llama, Qwen2) against an independent
// float64 numpy forward (test/numpy-forward.py): the logits and every hook point's activation, for
// sequences run alone, in left- and right-padded batches (with the gradient tape off and on) and
// through a KV cache, on the tiny checkpoints, on stories260K (trained weights, so activations are
// not the near-uniform ones of random initialisation) and on config variants of the GPT-J/NeoX
// weights (full and other partial rotary, NeoX's sequential residual, NeoX without attention biases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM, KVCache, capture, hookPoint } from '../src/models/index.js';
import { withGrad, type Tensor } from '../src/tensor/index.js';
import { repoRoot, sharedDir } from './helpers.js';

const PY = '/usr/bin/python3';
const hasNumpy = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const MODELS = sharedDir('models');
const skipFor = (base: string): string | false => !hasNumpy ? 'python3 with numpy is not installed'
  : !MODELS || !fs.existsSync(path.join(MODELS, base)) ? `../shared/models/${base} is absent` : false;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-numpy-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const variants = new Map<string, string>();

/** The tiny checkpoint's weights under config.json with `change` applied (one folder per variant). */
function variant(base: string, change: Record<string, unknown>): string {
  const dir = path.join(MODELS!, base);
  if (Object.keys(change).length === 0) return dir;
  const key = JSON.stringify([base, change]);
  if (variants.has(key)) return variants.get(key)!;
  const out = fs.mkdtempSync(path.join(tmp, 'v-'));
  variants.set(key, out);
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...raw, ...change }));
  fs.symlinkSync(path.join(dir, 'model.safetensors'), path.join(out, 'model.safetensors'));
  return out;
}

const refs = new Map<string, Map<string, { shape: number[]; data: Float64Array }>>();

/** numpy's activations: `${seq}:${point}` → [T, width] (row-major), 'logits' among the points. */
function numpyForward(dir: string, seqs: number[][]): Map<string, { shape: number[]; data: Float64Array }> {
  // both tests of a model read the same reference: one python run per model keeps the file quick
  const key = JSON.stringify([dir, seqs]);
  if (!refs.has(key)) refs.set(key, runNumpy(dir, seqs));
  return refs.get(key)!;
}

function runNumpy(dir: string, seqs: number[][]): Map<string, { shape: number[]; data: Float64Array }> {
  const out = path.join(tmp, 'ref.bin');
  const r = spawnSync(PY, [path.join(repoRoot(), 'test', 'numpy-forward.py')], {
    input: JSON.stringify({ dir, seqs, out }), encoding: 'utf8', maxBuffer: 16 << 20,
  });
  assert.equal(r.status, 0, r.stderr);
  const buf = fs.readFileSync(out);
  const all = new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const got = new Map<string, { shape: number[]; data: Float64Array }>();
  for (const e of JSON.parse(r.stdout) as { seq: number; point: string; shape: number[]; offset: number }[]) {
    got.set(`${e.seq}:${e.point}`, { shape: e.shape, data: all.subarray(e.offset / 8, e.offset / 8 + e.shape[0]! * e.shape[1]!) });
  }
  return got;
}

function allPoints(layers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < layers; l++) {
    out.push(hookPoint.residPre(l), hookPoint.attnOut(l), hookPoint.mlpIn(l), hookPoint.mlpKeys(l), hookPoint.mlpOut(l), hookPoint.residPost(l));
  }
  return [...out, hookPoint.finalNorm, 'logits'];
}

/**
 * Largest error over the compared rows, relative to the largest reference value of the point
 * (activations of a few units compare to ~1e-6 in float32).
 */
class Errors {
  worst = 0;
  where = '';
  check(what: string, got: Float32Array, gotRow: number, want: { shape: number[]; data: Float64Array }, wantRow: number): void {
    const w = want.shape[1]!;
    let scale = 1;
    for (const v of want.data) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < w; j++) {
      const e = Math.abs(got[gotRow * w + j]! - want.data[wantRow * w + j]!) / scale;
      if (!(e <= this.worst)) { this.worst = Number.isNaN(e) ? Infinity : e; this.where = `${what} row ${wantRow} [${j}]`; }
    }
  }
}

const SEQS = [[43568, 41393, 48622, 34521, 22952, 25932, 6927], [11, 12, 50256], [200, 3, 4, 9, 17]];
/** SEQS as ids of a `vocab`-sized vocabulary (the Llama-family checkpoints have 512). */
const seqsFor = (vocab: number): number[][] => SEQS.map((s) => s.map((id) => id % vocab));
const TOL = 2e-5;

const VARIANTS: [string, string, Record<string, unknown>][] = [
  ['tiny-random-gptj', 'tiny-random-gptj', {}],
  ['gptj, rotary_dim = head dim', 'tiny-random-gptj', { rotary_dim: 8 }],
  ['gptj, rotary_dim 2', 'tiny-random-gptj', { rotary_dim: 2 }],
  ['tiny-random-gpt_neox', 'tiny-random-gpt_neox', {}],
  ['gpt_neox, use_parallel_residual false', 'tiny-random-gpt_neox', { use_parallel_residual: false }],
  ['gpt_neox, rotary_pct 1', 'tiny-random-gpt_neox', { rotary_pct: 1 }],
  ['gpt_neox, rotary_pct 0.5, rotary_emb_base 100', 'tiny-random-gpt_neox', { rotary_pct: 0.5, rotary_emb_base: 100 }],
  ['gpt_neox, attention_bias false', 'tiny-random-gpt_neox', { attention_bias: false }],
  ['tiny-random-gpt2', 'tiny-random-gpt2', {}],
  ['tiny-random-llama', 'tiny-random-llama', {}],
  ['tiny-random-qwen2', 'tiny-random-qwen2', {}],
  ['qwen2, attention_bias and mlp_bias true (transformers ignores both for qwen2)', 'tiny-random-qwen2', { attention_bias: true, mlp_bias: true }],
  ['stories260K', 'stories260K', {}],
];

for (const [name, base, change] of VARIANTS) {
  test(`${name}: logits and every hook point match numpy, alone and in left/right-padded batches`, { skip: skipFor(base) }, () => {
    const dir = variant(base, change);
    const m = CausalLM.loadDir(dir, { noTokenizer: true });
    const SEQS = seqsFor(m.config.vocabSize);
    const ref = numpyForward(dir, SEQS);
    const points = allPoints(m.config.layers);
    const run = (ids: Int32Array, B: number, L: number, mask: Uint8Array | null, grad = false) => {
      const caps = points.filter((p) => p !== 'logits').map((p) => [p, capture(p)] as const);
      const pass = () => m.forward(ids, B, L, { attentionMask: mask, hooks: caps.map(([, c]) => c.hook) }).logits!;
      const logits = grad ? withGrad(pass) : pass();
      return new Map<string, Tensor>([...caps.map(([p, c]) => [p, c.value()] as const), ['logits', logits]]);
    };
    const errors = new Errors();
    SEQS.forEach((s, i) => {
      const got = run(Int32Array.from(s), 1, s.length, null);
      for (const p of points) for (let t = 0; t < s.length; t++) errors.check(`alone ${i} ${p}`, got.get(p)!.data, t, ref.get(`${i}:${p}`)!, t);
    });
    const L = Math.max(...SEQS.map((s) => s.length)), B = SEQS.length;
    // with the tape on too: the forward then allocates every activation instead of reusing scratch
    for (const [side, grad] of [['left', false], ['right', false], ['left', true]] as const) {
      const ids = new Int32Array(B * L), mask = new Uint8Array(B * L);
      const rowOf = (b: number, t: number) => b * L + (side === 'left' ? L - SEQS[b]!.length + t : t);
      SEQS.forEach((s, b) => s.forEach((id, t) => { ids[rowOf(b, t)] = id; mask[rowOf(b, t)] = 1; }));
      const got = run(ids, B, L, mask, grad);
      for (const p of points) {
        SEQS.forEach((s, b) => { for (let t = 0; t < s.length; t++) errors.check(`${side}-padded${grad ? ' (tape)' : ''} ${b} ${p}`, got.get(p)!.data, rowOf(b, t), ref.get(`${b}:${p}`)!, t); });
      }
    }
    assert.ok(errors.worst < TOL, `${name}: ${errors.worst} at ${errors.where}`);
  });

  test(`${name}: every hook point matches numpy through a KV cache (left-padded prompts, then one token at a time)`, { skip: skipFor(base) }, () => {
    const dir = variant(base, change);
    const m = CausalLM.loadDir(dir, { noTokenizer: true });
    const SEQS = seqsFor(m.config.vocabSize);
    const ref = numpyForward(dir, SEQS);
    const points = allPoints(m.config.layers);
    const STEPS = 2;
    const prompts = SEQS.map((s) => s.slice(0, s.length - STEPS));
    const B = SEQS.length, P = Math.max(...prompts.map((p) => p.length));
    const cache = new KVCache(m.config, B, P + STEPS);
    const errors = new Errors();
    const step = (ids: Int32Array, L: number, mask: Uint8Array, rows: [number, number, number][]) => {
      const caps = points.filter((p) => p !== 'logits').map((p) => [p, capture(p)] as const);
      const logits = m.forward(ids, B, L, { attentionMask: mask, cache, hooks: caps.map(([, c]) => c.hook) }).logits!;
      const got = new Map<string, Tensor>([...caps.map(([p, c]) => [p, c.value()] as const), ['logits', logits]]);
      for (const p of points) for (const [b, row, t] of rows) errors.check(`cache ${b} ${p}`, got.get(p)!.data, row, ref.get(`${b}:${p}`)!, t);
    };
    const ids = new Int32Array(B * P), mask = new Uint8Array(B * P);
    const rows: [number, number, number][] = [];
    prompts.forEach((s, b) => s.forEach((id, t) => {
      const row = b * P + P - s.length + t;
      ids[row] = id;
      mask[row] = 1;
      rows.push([b, row, t]);
    }));
    step(ids, P, mask, rows);
    for (let k = 0; k < STEPS; k++) {
      step(Int32Array.from(SEQS.map((s) => s[s.length - STEPS + k]!)), 1, new Uint8Array(B).fill(1),
        SEQS.map((s, b) => [b, b, s.length - STEPS + k]));
    }
    assert.ok(errors.worst < TOL, `${name}: ${errors.worst} at ${errors.where}`);
  });
}
