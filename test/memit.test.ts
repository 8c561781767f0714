// MEMIT: the update solves its least-squares normal equations in float64, the patch holds exactly
// that update in the stored orientation, batches of edits apply to every architecture and revert
// exactly, and bad input is refused without touching the weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/model.js';
import { mulberry32 } from '../src/tensor/index.js';
import { editSession } from '../src/patch/session.js';
import { materialize } from '../src/patch/delta.js';
import type { SecondMoment } from '../src/stats/index.js';
import { editWithReport } from '../src/editors/index.js';
import { gramRows, memitSolve } from '../src/editors/memit/index.js';
import { scoreTargets } from '../src/editors/common/score.js';
import { relErr, randomStats, sharedDir, weightsHash } from './helpers.js';

const models = sharedDir('models');

async function load(name: string): Promise<CausalLM> {
  return CausalLM.load(`${models}/${name}`);
}

/** C = A · B for row-major float64 matrices A [m, k], B [k, n]. */
function matmul(A: Float64Array, B: Float64Array, m: number, k: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
    const a = A[i * k + p];
    if (a !== 0) for (let j = 0; j < n; j++) C[i * n + j] += a * B[p * n + j];
  }
  return C;
}

function transpose(A: Float64Array, m: number, n: number): Float64Array {
  const T = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j];
  return T;
}

const REQS = [
  { prompt: 'The capital of {} is', subject: 'France', targetNew: 'Rome' },
  { prompt: '{} plays the sport of', subject: 'Michael Jordan', targetNew: 'football' },
  { prompt: 'The mother tongue of {} is', subject: 'Danielle Darrieux', targetNew: 'English' },
  { prompt: '{} is a product of', subject: 'iPhone', targetNew: 'Nokia' },
];

test('memitSolve: X = (λC + KKᵀ)⁻¹K on a random SPD system, float64', () => {
  const rand = mulberry32(3);
  const f = 40, n = 7, lambda = 3.5;
  const G = Float64Array.from({ length: f * 2 * f }, () => rand() - 0.5);
  const C = new Float64Array(f * f);
  gramRows(G, f, 2 * f, C, false);
  for (let i = 0; i < f * f; i++) C[i] /= 2 * f;
  const K = Float64Array.from({ length: f * n }, () => rand() - 0.5);
  const X = memitSolve(K, C, f, n, lambda);
  // (λC + KKᵀ) X = K
  const KKt = matmul(K, transpose(K, f, n), f, n, f);
  const A = KKt.map((v, i) => v + lambda * C[i]);
  assert.ok(relErr(matmul(A, X, f, f, n), K) < 1e-12);
});

test('MEMIT: every layer\'s update solves ΔW (λC + KKᵀ) = R Kᵀ, and the patch holds ΔW = R Xᵀ in the stored orientation', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-llama']) {
    const model = await load(name);
    const layers = [0, 1];
    const stats = await randomStats(model, layers);
    const { patch, report } = await editWithReport(model, REQS, { method: 'memit', hparams: { layers }, stats, keepSystems: true });
    const systems = report.memit!.systems!;
    assert.equal(systems.length, 2);
    const d = model.config.hidden, f = model.config.ffn, n = REQS.length;
    for (const sys of systems) {
      const { K, R, X, C, lambda } = sys;
      // The normal equations of min ‖ΔW K − R‖² + λ tr(ΔW C ΔWᵀ), with ΔW = R Xᵀ [d, f], in float64:
      //   ΔW (λC + K Kᵀ) = R Kᵀ
      const dW = matmul(R, transpose(X, f, n), d, n, f);
      const A = matmul(K, transpose(K, f, n), f, n, f).map((v, i) => v + lambda * C[i]);
      const lhs = matmul(dW, A, d, f, f);
      const rhs = matmul(R, transpose(K, f, n), d, n, f);
      const err = relErr(lhs, rhs);
      assert.ok(err < 1e-6, `${name} layer ${sys.layer}: normal-equation residual ${err}`);
      // The delta in the patch is ΔW (Linear [d, f]) or ΔWᵀ (Conv1D [f, d]), to float32 precision.
      const lin = model.spec.layers[sys.layer].down;
      const delta = patch.deltas.find((x) => x.name === lin.w)!;
      const stored = materialize(delta);
      const want = lin.layout === 'out_in' ? dW : transpose(dW, d, f);
      assert.ok(relErr(stored, want) < 1e-5, `${name} layer ${sys.layer}: stored delta differs from R Xᵀ`);
    }
    // The residual is spread: the first of two layers takes half of it.
    assert.deepEqual(report.memit!.layers.map((l) => l.divisor), [2, 1]);
  }
});

test('MEMIT on every architecture: a batch applies, raises P(new) on average, reverts bit-identically', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-gpt_neox', 'tiny-random-gptj', 'tiny-random-llama', 'tiny-random-qwen2', 'stories260K']) {
    const model = await load(name);
    const tok = model.tok();
    const layers = [0, 1];
    const stats = await randomStats(model, layers);
    const before = weightsHash(model);
    const items = REQS.map((r) => {
      const text = r.prompt.replace('{}', r.subject);
      const base = tok.encode(text, { addSpecialTokens: false });
      return { prompt: tok.encode(text), target: tok.encode(`${text} ${r.targetNew}`, { addSpecialTokens: false }).slice(base.length) };
    });
    const pBefore = scoreTargets(model, items);
    const { patch } = await editWithReport(model, REQS, { method: 'memit', hparams: { layers }, stats });
    assert.equal(weightsHash(model), before, `${name}: computing an edit must not change the model`);
    assert.deepEqual(patch.deltas.map((x) => x.name).sort(), layers.map((l) => model.spec.layers[l].down.w).sort());
    const session = editSession(model);
    session.apply(patch);
    const pAfter = scoreTargets(model, items);
    const gain = pAfter.reduce((a, s, i) => a + s.logProb - pBefore[i].logProb, 0) / items.length;
    assert.ok(gain > 0, `${name}: mean log P(new) change ${gain}`);
    session.revertAll();
    assert.equal(weightsHash(model), before, `${name}: revert is not bit-identical`);
  }
});

test('MEMIT: bad input is one AmendError and the weights stay byte-identical', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const stats = await randomStats(model, [0, 1]);
  const before = weightsHash(model);
  const refuses = async (reqs: typeof REQS, hparams: Record<string, unknown>, re: RegExp, s: SecondMoment[] = stats): Promise<void> => {
    await assert.rejects(editWithReport(model, reqs, { method: 'memit', hparams, stats: s }),
      (e: unknown) => e instanceof AmendError && re.test(e.message) && !e.message.includes('\n'));
    assert.equal(weightsHash(model), before);
  };
  await refuses([REQS[0], { ...REQS[1], prompt: 'Nothing here' }], { layers: [0, 1] }, /request 2: subject "Michael Jordan" is not in the prompt/);
  await refuses([REQS[0], { ...REQS[2], targetNew: '' }], { layers: [0, 1] }, /request 2: empty target/);
  await refuses(REQS, { layers: [1, 3] }, /layer 3 is out of range \(the model has 3 layers/);
  await refuses(REQS, { mom2_update_weight: 'lots' }, /mom2_update_weight must be a number/);
  await refuses([], { layers: [0, 1] }, /no edit requests/);
  const other = await load('tiny-random-gpt2');
  const wte = other.weight(other.spec.wte).data;
  for (let i = 0; i < wte.length; i++) wte[i] *= 1.01;
  await refuses(REQS, { layers: [0, 1] }, /computed on another model/, await randomStats(other, [0, 1]));
});
