// AdamW, gradient clipping and learning-rate schedules against hand-computed values and the
// reference formulas (torch.optim.AdamW, torch.nn.utils.clip_grad_norm_).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { AdamW, clipCoefficient, clipGradNorm, decayGroups, gradNorm, warmupCosine } from '../src/tensor/optim.js';

const f32 = Math.fround;

function param(values: number[], shape?: number[]): T.Tensor {
  return T.parameter(T.tensor(values, shape));
}

function setGrad(p: T.Tensor, values: number[]): void {
  p.grad = T.tensor(values, p.shape);
}

/** Reference AdamW in float64 with float32 rounding where torch stores float32. */
function referenceAdamW(w0: number[], grads: number[][], lrs: number[], o: { b1: number; b2: number; eps: number; wd: number }): number[] {
  const w = w0.map(f32), m = w0.map(() => 0), v = w0.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1, lr = lrs[s];
    for (let i = 0; i < w.length; i++) {
      m[i] = f32(o.b1 * m[i] + (1 - o.b1) * g[i]);
      v[i] = f32(o.b2 * v[i] + (1 - o.b2) * g[i] * g[i]);
      const mhat = m[i] / (1 - o.b1 ** t), vhat = v[i] / (1 - o.b2 ** t);
      w[i] = f32(w[i] * (1 - lr * o.wd) - (lr * mhat) / (Math.sqrt(vhat) + o.eps));
    }
  });
  return w;
}

test('AdamW: first step by hand', () => {
  // With bias correction the first step moves every weight by lr · sign(g) (|g| ≫ eps), after decay.
  const p = param([1, -2, 0.5, 0]);
  const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.5 });
  setGrad(p, [0.3, -4, 1e-3, 0]);
  opt.step();
  const expect = [1 * (1 - 0.05) - 0.1, -2 * (1 - 0.05) + 0.1, 0.5 * (1 - 0.05) - 0.1 * (1e-3 / (1e-3 + 1e-8)), 0];
  p.data.forEach((x, i) => assert.ok(Math.abs(x - expect[i]) < 1e-6, `w[${i}] = ${x}, expected ${expect[i]}`));
  assert.equal(opt.stepCount, 1);
  const st = opt.stateOf(p)!;
  assert.equal(st.t, 1);
  assert.ok(Math.abs(st.m[1] - -0.4) < 1e-7, 'm = (1 − β₁) g');
  assert.ok(Math.abs(st.v[1] - 0.016) < 1e-8, 'v = (1 − β₂) g²');
});

test('AdamW: two steps by hand (bias correction)', () => {
  const p = param([0]);
  const opt = new AdamW([p], { lr: 1, betas: [0.5, 0.75], eps: 0, weightDecay: 0 });
  setGrad(p, [2]);
  opt.step(); // m = 1, v = 1, m̂ = 2, v̂ = 4 → step 2/2 = 1
  assert.equal(p.data[0], -1);
  setGrad(p, [-2]);
  opt.step(); // m = 0.5·1 − 1 = −0.5, v = 0.75 + 1 = 1.75; m̂ = −0.5/0.75, v̂ = 1.75/0.4375 = 4 → step −(−2/3)/2
  assert.ok(Math.abs(p.data[0] - (-1 + 1 / 3)) < 1e-7, `got ${p.data[0]}`);
});

test('AdamW: matches the reference formula over many steps, with a schedule', () => {
  const n = 37;
  const rand = T.mulberry32(7);
  const w0 = Array.from({ length: n }, () => rand() * 2 - 1);
  const grads = Array.from({ length: 25 }, () => Array.from({ length: n }, () => f32((rand() * 2 - 1) * (rand() < 0.1 ? 10 : 0.1))));
  const sched = warmupCosine({ peak: 3e-2, warmupSteps: 5, totalSteps: 25, minRatio: 0.1 });
  const lrs = grads.map((_, s) => sched(s));
  const o = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };
  const expect = referenceAdamW(w0, grads, lrs, o);
  const p = param(w0);
  const opt = new AdamW([{ params: [p], weightDecay: o.wd }], { betas: [o.b1, o.b2], eps: o.eps });
  grads.forEach((g, s) => { setGrad(p, g); opt.step(sched(s)); });
  p.data.forEach((x, i) => assert.ok(Math.abs(x - expect[i]) <= 2e-7 * Math.max(1, Math.abs(expect[i])), `w[${i}]: ${x} vs ${expect[i]}`));
});

test('AdamW: groups decay separately, parameters without a gradient are skipped', () => {
  const w = param([1, 1, 1, 1], [2, 2]), b = param([1, 1]), frozen = param([5]);
  const groups = decayGroups([['w', w], ['b', b], ['frozen', frozen]], 0.5);
  assert.deepEqual(groups.map((g) => g.params.length), [1, 2]);
  const opt = new AdamW(groups, { lr: 0.1 });
  setGrad(w, [0, 0, 0, 0]);
  setGrad(b, [0, 0]);
  opt.step();
  // zero gradient: only the decay moves w; b (no decay) stays; frozen has no grad at all.
  assert.ok(Math.abs(w.data[0] - 0.95) < 1e-7);
  assert.equal(b.data[0], 1);
  assert.equal(frozen.data[0], 5);
  assert.equal(opt.stateOf(frozen), undefined);
  opt.zeroGrad();
  assert.equal(w.grad, null);
});

test('decayGroups: embeddings by name, tied tensors once', () => {
  const wte = param([1, 2, 3, 4], [2, 2]), fc = param([1, 2, 3, 4], [2, 2]);
  const groups = decayGroups([['wte', wte], ['lm_head', wte], ['fc', fc]], 0.1, (name) => name === 'wte');
  assert.deepEqual(groups[0].params, [fc]);
  assert.deepEqual(groups[1].params, [wte]);
  assert.throws(() => new AdamW([{ params: [fc] }, { params: [fc] }]), /twice/);
  assert.throws(() => new AdamW([T.tensor([1])]), /require grad/);
});

test('AdamW: minimises a quadratic through the tape', () => {
  const target = T.tensor([3, -1, 2]);
  const x = param([0, 0, 0]);
  const opt = new AdamW([x], { lr: 0.1, weightDecay: 0 });
  for (let s = 0; s < 300; s++) {
    opt.zeroGrad();
    T.withGrad(() => T.sum(T.square(T.sub(x, target))).backward());
    opt.step();
  }
  x.data.forEach((v, i) => assert.ok(Math.abs(v - target.data[i]) < 1e-2, `x[${i}] = ${v}`));
});

test('clipGradNorm: global norm over all parameters, as torch', () => {
  const a = param([0, 0]), b = param([0]), c = param([1]);
  setGrad(a, [3, 0]);
  setGrad(b, [4]);
  // c has no gradient: counts as zero
  assert.equal(gradNorm([a, b, c]), 5);
  const before = clipGradNorm([a, b, c, a], 1);
  assert.equal(before, 5);
  const coef = 1 / (5 + 1e-6);
  assert.ok(Math.abs(a.grad!.data[0] - 3 * coef) < 1e-7);
  assert.ok(Math.abs(b.grad!.data[0] - 4 * coef) < 1e-7);
  assert.ok(Math.abs(gradNorm([a, b]) - 1) < 1e-6);
  // below the limit: untouched
  setGrad(a, [0.3, 0.4]);
  assert.ok(Math.abs(clipGradNorm([a], 1) - 0.5) < 1e-7);
  assert.equal(a.grad!.data[0], f32(0.3));
  setGrad(a, [NaN, 0]);
  assert.throws(() => clipGradNorm([a], 1), /diverged/);
  assert.ok(Number.isNaN(clipGradNorm([a], 1, { allowNonFinite: true })));
});

test('AdamW.step(lr, clipCoefficient) equals clipGradNorm then step', () => {
  const a = param([0.5, -0.25, 2]), b = param([0.5, -0.25, 2]);
  const g = [3, -4, 12];
  setGrad(a, g);
  setGrad(b, g);
  const optA = new AdamW([a], { lr: 0.01, weightDecay: 0.1 }), optB = new AdamW([b], { lr: 0.01, weightDecay: 0.1 });
  clipGradNorm([a], 1);
  optA.step();
  optB.step(undefined, clipCoefficient(gradNorm([b]), 1));
  a.data.forEach((x, i) => assert.ok(Math.abs(x - b.data[i]) < 1e-7));
  assert.equal(clipCoefficient(0.5, 1), 1);
  assert.throws(() => clipCoefficient(Infinity, 1), /diverged/);
});

test('schedule: warmup, then cosine', () => {
  const s = warmupCosine({ peak: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1 });
  assert.deepEqual([0, 1, 2, 3].map(s), [0.25, 0.5, 0.75, 1]);
  assert.equal(s(4), 1);
  assert.ok(Math.abs(s(9) - (0.1 + 0.45)) < 1e-12, 'half way: (peak + min) / 2');
  assert.ok(Math.abs(s(14) - 0.1) < 1e-12);
  assert.equal(s(100), s(14));
  for (let i = 4; i < 14; i++) assert.ok(s(i + 1) <= s(i), 'non-increasing after warmup');
  assert.throws(() => warmupCosine({ peak: 1, warmupSteps: 5, totalSteps: 3 }), /totalSteps/);
});
