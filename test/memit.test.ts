// MEMIT: the update solves its least-squares normal equations in float64, the patch holds exactly
// that update in the stored orientation, batches of edits apply to every architecture and revert
// exactly, and bad input is refused without touching the weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/model.js';
import { mulberry32, noGrad } from '../src/tensor/index.js';
import { editSession } from '../src/patch/session.js';
import { materialize } from '../src/patch/delta.js';
import type { SecondMoment } from '../src/stats/index.js';
import { editWithReport } from '../src/editors/index.js';
import { gramRows, memitSolve, type MemitOutput } from '../src/editors/memit/index.js';
import { resolveHparams } from '../src/editors/hparams.js';
import { buildJob, encodePrompt, lookupIndex, prepareRequests } from '../src/editors/common/prompts.js';
import { TemporaryWeights } from '../src/editors/common/weights.js';
import { evaluateJobs, type JobState, type VStarSettings } from '../src/editors/common/vstar.js';
import { capture, hookPoint } from '../src/models/hooks.js';
import { scoreTargets } from '../src/editors/common/score.js';
import { gcFunction, relErr, randomStats, sharedDir, weightsHash } from './helpers.js';

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
  gramRows(G, f, 2 * f, C);
  for (let i = 0; i < f * f; i++) C[i] /= 2 * f;
  const K = Float64Array.from({ length: f * n }, () => rand() - 0.5);
  const X = memitSolve(K, C, f, n, lambda);
  // (λC + KKᵀ) X = K
  const KKt = matmul(K, transpose(K, f, n), f, n, f);
  const A = KKt.map((v, i) => v + lambda * C[i]);
  assert.ok(relErr(matmul(A, X, f, f, n), K) < 1e-12);
});

test('memitSolve: statistics of rank below the key size → an AmendError that names the remedies; a ridge solves it', () => {
  const rand = mulberry32(4);
  const f = 40, samples = 10, n = 3, lambda = 3.5;
  const G = Float64Array.from({ length: f * samples }, () => rand() - 0.5);
  const C = new Float64Array(f * f);
  gramRows(G, f, samples, C); // rank 10: λC + KKᵀ has rank 13 of 40
  const K = Float64Array.from({ length: f * n }, () => rand() - 0.5);
  assert.throws(() => memitSolve(K, C, f, n, lambda), (e: unknown) => e instanceof AmendError &&
    /^MEMIT: λC \+ KKᵀ is not positive definite \(solveSPD: matrix is not positive definite.*mom2_n_samples.*mom2_ridge > 0.*mom2_update_weight/.test(e.message));
  let trace = 0;
  for (let i = 0; i < f; i++) trace += C[i * f + i];
  for (let i = 0; i < f; i++) C[i * f + i] += (1e-3 * trace) / f; // what mom2_ridge = 1e-3 adds
  const X = memitSolve(K, C, f, n, lambda);
  const A = matmul(K, transpose(K, f, n), f, n, f).map((v, i) => v + lambda * C[i]);
  assert.ok(relErr(matmul(A, X, f, f, n), K) < 1e-10);
});

test('MEMIT: every layer\'s update solves ΔW (λC + KKᵀ) = R Kᵀ, and the patch holds ΔW = R Xᵀ in the stored orientation, every architecture', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-gpt_neox', 'tiny-random-gptj', 'tiny-random-llama', 'tiny-random-qwen2', 'stories260K']) {
    const model = await load(name);
    const layers = [0, 1];
    const stats = await randomStats(model, layers);
    const { patch, report } = await editWithReport(model, REQS, { method: 'memit', hparams: { layers }, stats, keepInternals: true });
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
    assert.deepEqual(report.memit!.layers.map((l) => l.remainingLayers), [2, 1]);
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

// Amend's shared_key_targets=joint: requests with the same tokens up to the lookup token read the
// same key at every layer, so the reference's separate z vectors meet in the solve as their mean;
// joint optimises one z for all of their targets instead.
const SHARED = [
  { prompt: '{} plays the sport of', subject: 'Michael Jordan', targetNew: 'football' },
  { prompt: '{} was born in', subject: 'Michael Jordan', targetNew: 'the city of Paris' },
  { prompt: 'The sport of {} is', subject: 'Michael Jordan', targetNew: 'golf' },
];

test('MEMIT shared_key_targets: one z per distinct key when joint, one per request when separate', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ['tiny-random-gpt2', 'tiny-random-llama']) {
    const model = await load(name);
    const layers = [0, 1];
    const stats = await randomStats(model, layers);
    const f = model.config.ffn, d = model.config.hidden, n = SHARED.length;
    const col = (A: Float64Array, rows: number, c: number): number[] => Array.from({ length: rows }, (_, j) => A[j * n + c]);
    const run = async (mode: string): Promise<NonNullable<MemitOutput['systems']>> => {
      const { report } = await editWithReport(model, SHARED, { method: 'memit', hparams: { layers, shared_key_targets: mode }, stats, keepInternals: true });
      assert.equal(report.memit!.z.length, mode === 'joint' ? 2 : 3, `${name} ${mode}: z optimisations`);
      return report.memit!.systems!;
    };
    const separate = await run('separate'), joint = await run('joint');
    for (const sys of [...separate, ...joint]) {
      assert.deepEqual(col(sys.K, f, 0), col(sys.K, f, 1), `${name} layer ${sys.layer}: requests 1 and 2 share their key`);
      assert.notDeepEqual(col(sys.K, f, 0), col(sys.K, f, 2), `${name} layer ${sys.layer}: request 3 has words before the subject`);
    }
    // Joint: the shared key gets one target residual; separate: two different ones.
    assert.deepEqual(col(joint[0].R, d, 0), col(joint[0].R, d, 1));
    assert.ok(relErr(col(separate[0].R, d, 0), col(separate[0].R, d, 1)) > 1e-3, `${name}: separate z vectors should differ`);
  }
});

test('MEMIT joint z: the loss of a merged job is the mean of its targets\' per-token NLL, and its gradient matches finite differences', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const { hparams } = resolveHparams('memit', model, { overrides: { layers: [1], context_template_length_params: [[5, 0]] } });
  const reqs = prepareRequests(model, SHARED.slice(0, 2), hparams);
  const [a, b] = reqs.map((r) => buildJob(model.tok(), r, ['{}'], hparams));
  assert.notEqual(a.rewriting[0].scoreTargets.length, b.rewriting[0].scoreTargets.length, 'targets of different lengths exercise the per-sequence weights');
  const merged = { ...a, rewriting: [...a.rewriting, ...b.rewriting] };
  const s: VStarSettings = { point: hookPoint.residPost(1), lossLayer: model.config.layers - 1, steps: 20, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.5, earlyStop: 0.05 };
  const d = model.config.hidden;
  const state = (job: typeof a): JobState => ({ job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) });
  const sts = [state(a), state(b), state(merged)];
  evaluateJobs(model, sts, s, false); // v₀ and the initial KL distributions
  const rand = mulberry32(11);
  const delta = Float32Array.from({ length: d }, () => (rand() - 0.5) * 0.3 * sts[2].initNorm / Math.sqrt(d));
  for (const st of sts) st.delta.set(delta);
  const { evals, grads } = evaluateJobs(model, sts, s, true);
  const want = (evals[0].nll + evals[1].nll) / 2;
  assert.ok(Math.abs(evals[2].nll - want) <= 1e-5 * Math.abs(want), `merged NLL ${evals[2].nll} vs mean ${want}`);
  const g = grads![2];
  const gn = Math.hypot(...g);
  for (let trial = 0; trial < 3; trial++) {
    const u = Float32Array.from({ length: d }, () => rand() - 0.5);
    const un = Math.hypot(...u), eps = 1e-2 * sts[2].initNorm;
    const at = (sgn: number): number => {
      for (let i = 0; i < d; i++) sts[2].delta[i] = delta[i] + (sgn * eps * u[i]) / un;
      return evaluateJobs(model, [sts[2]], s, false).evals[0].loss;
    };
    const fd = (at(1) - at(-1)) / (2 * eps);
    let an = 0;
    for (let i = 0; i < d; i++) an += (g[i] * u[i]) / un;
    assert.ok(Math.abs(fd - an) <= 2e-3 * gn + 1e-4, `directional derivative ${an} vs finite difference ${fd} (‖g‖ ${gn})`);
  }
});

test('MEMIT: each layer\'s residual is (z − the last edited layer\'s output with the earlier layers\' updates in place) / the layers left, with λ = mom2_update_weight', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const layers = [0, 1], zLayer = 1, d = model.config.hidden, n = 2;
  const reqs = REQS.slice(0, n);
  const stats = await randomStats(model, layers);
  const { patch, report } = await editWithReport(model, reqs, { method: 'memit', hparams: { layers, mom2_update_weight: 7 }, stats, keepInternals: true });
  const [s0, s1] = report.memit!.systems!;
  assert.deepEqual([s0.lambda, s1.lambda], [7, 7]);
  const tok = model.tok();
  // resid_post of the last edited layer at each plain prompt's lookup token, [n, d]
  const outputs = (): Float32Array[] => reqs.map((r) => {
    const ids = encodePrompt(tok, r.prompt, r.subject);
    const c = capture(hookPoint.residPost(zLayer), [lookupIndex(tok, r.prompt, r.subject, 'subject_last')]);
    noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [c.hook] }));
    return c.value().data.slice();
  });
  const before = outputs();
  // layer 0: R = (z − before) / 2, so z = before + 2R
  const z = before.map((o, r) => o.map((x, j) => x + 2 * s0.R[j * n + r]));
  const temp = new TemporaryWeights(model);
  temp.apply(patch.deltas.find((x) => x.name === model.spec.layers[0].down.w)!);
  let after: Float32Array[];
  try {
    after = outputs();
  } finally {
    temp.restore();
  }
  // layer 1: R = (z − output with layer 0's update) / 1
  const want = new Float64Array(d * n);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) want[j * n + r] = z[r][j] - after[r][j];
  assert.ok(relErr(s1.R, want) < 1e-4, `layer 1 residual differs by ${relErr(s1.R, want)}`);
  assert.ok(relErr(want, Float64Array.from(s0.R, (x) => 2 * x)) > 1e-3, 'layer 0\'s update moved the output');
});

test('MEMIT: a v_loss_layer below the last edited layer (fact_token=last allows it) reads the targets at that layer\'s output, where z acts', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const { report } = await editWithReport(model, [REQS[0]], {
    method: 'memit', hparams: { layers: [1], fact_token: 'last', v_loss_layer: 0, v_num_grad_steps: 3, kl_factor: 0 }, stats: await randomStats(model, [1]),
  });
  // read below it, the NLL would not depend on z: a zero gradient, and z = v₀
  const [z] = report.memit!.z;
  assert.ok(z.deltaNorm > 0, `‖z − v₀‖ = ${z.deltaNorm}`);
});

test('z optimisation: a batch\'s autograd graph is not kept alive into the next batch\'s forward pass', { skip: models ? false : 'no ../shared/models' }, async () => {
  // Regression: evaluateJobs kept the log-probabilities as a Tensor, whose tape node holds every
  // activation of the batch; the last batch's graph stayed reachable while the next batch ran
  // (even across a full collection), so two graphs were resident at the peak (3.0 GiB instead of
  // 2.0 on the GPT-2-small-shaped bench). Measured here as the array-buffer bytes still held, after
  // a full collection, when the next forward pass starts.
  const model = await load('tiny-random-gpt2');
  const { hparams } = resolveHparams('memit', model, { overrides: { layers: [0], context_template_length_params: [[5, 0]] } });
  const reqs = prepareRequests(model, REQS, hparams);
  const s: VStarSettings = { point: hookPoint.residPost(0), lossLayer: model.config.layers - 1, steps: 2, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.0625, earlyStop: 0.05 };
  const d = model.config.hidden;
  const sts: JobState[] = reqs.map((r) => ({ job: buildJob(model.tok(), r, ['{}', 'A b. {}', 'C d e. {}'], hparams), init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) }));
  evaluateJobs(model, sts, s, false); // v₀, the initial KL distributions and the recorded prefixes
  const gc = gcFunction();
  // Array buffers are freed by a sweep on another thread that may finish after gc() returns:
  // collect, give it a few milliseconds, until the count settles.
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const held = (): number => {
    let last = -1;
    for (let k = 0; k < 20; k++) {
      gc();
      Atomics.wait(pause, 0, 0, 10);
      const now = process.memoryUsage().arrayBuffers;
      if (now === last) break;
      last = now;
    }
    return last;
  };
  const real = model.forward.bind(model);
  const atStart: number[] = [], graph: number[] = [];
  model.forward = (...args: Parameters<CausalLM['forward']>) => {
    const before = held();
    atStart.push(before);
    const out = real(...args);
    graph.push(process.memoryUsage().arrayBuffers - before);
    return out;
  };
  try {
    evaluateJobs(model, sts, s, true, 48); // several batches of at most 48 tokens
  } finally {
    model.forward = real;
  }
  assert.ok(atStart.length >= 3, `${atStart.length} batches; the test needs several`);
  // Batch 2 against batch 1: the transition where the old code kept the graph every time. (Later
  // transitions are not asserted: once in a few runs V8 held one more graph at the last one.)
  const kept = atStart[1] - atStart[0];
  assert.ok(kept < graph[0] / 4, `batch 2 starts with ${kept} bytes more held than batch 1 did (batch 1's forward pass allocated ${graph[0]})`);
});
