// Finite-difference checks of every op's gradient rule, on each available backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeStatus, useBackend, type BackendName } from '../src/backend/index.js';
import { AmendError } from '../src/errors.js';
import * as T from '../src/tensor/index.js';
import { Tensor, withGrad, mulberry32, randn } from '../src/tensor/index.js';
import { defaultInvFreq, ropeFrequencies } from '../src/models/rope.js';

type Build = (xs: Tensor[]) => Tensor;

/** Random values, optionally kept away from zero (for abs, relu, recip, log...). */
function rnd(shape: number[], seed: number, opts: { positive?: boolean; awayFromZero?: boolean } = {}): Tensor {
  const rand = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = randn(n, rand);
  for (let i = 0; i < n; i++) {
    if (opts.positive) d[i] = 0.5 + Math.abs(d[i]);
    else if (opts.awayFromZero) d[i] = (d[i] >= 0 ? 0.3 : -0.3) + d[i];
  }
  return new Tensor(d, shape);
}

/**
 * Compares the tape's gradient of L = Σ w ⊙ f(x) against central differences for every element
 * of every input. Float32 forward passes limit accuracy, hence eps = 1e-2 and a loose tolerance
 * relative to the gradient's scale.
 */
function gradCheck(name: string, f: Build, inputs: Tensor[], { eps = 1e-2, tol = 2e-2 } = {}): void {
  const params = inputs.map((x) => T.parameter(x.clone()));
  const out0 = f(params.map((p) => p.detach()));
  const w = randn(out0.size, mulberry32(99));
  const loss = (o: Tensor): number => { let s = 0; for (let i = 0; i < o.size; i++) s += w[i] * o.data[i]; return s; };
  withGrad(() => {
    const out = f(params);
    const weighted = T.sum(T.mul(out, new Tensor(w, out.shape)));
    weighted.backward();
  });
  params.forEach((p, pi) => {
    if (!p.grad) assert.fail(`${name}: input ${pi} got no gradient`);
    const analytic = p.grad.data;
    let scaleRef = 1e-3;
    for (const v of analytic) scaleRef = Math.max(scaleRef, Math.abs(v));
    for (let i = 0; i < p.size; i++) {
      const xs = params.map((q) => q.detach().clone());
      xs[pi].data[i] += eps;
      const up = loss(f(xs));
      xs[pi].data[i] -= 2 * eps;
      const down = loss(f(xs));
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]) / scaleRef;
      assert.ok(err < tol, `${name}: d/dx${pi}[${i}] analytic ${analytic[i]} vs numeric ${numeric} (rel err ${err.toFixed(4)})`);
    }
  });
}

const backends: BackendName[] = ['js'];
const native = nativeStatus();
if (native.ok) backends.push('native');

for (const backend of backends) {
  test(`gradients (${backend} backend)`, async (t) => {
    useBackend(backend);
    const a23 = rnd([2, 3], 1), b23 = rnd([2, 3], 2), b13 = rnd([1, 3], 3), b3 = rnd([3], 4);
    const pos23 = rnd([2, 3], 5, { positive: true }), az23 = rnd([2, 3], 6, { awayFromZero: true });
    // a partner for max/min that differs from a23 by ±0.5, far from the kink at equality
    const apart23 = T.add(a23, T.tensor([0.5, -0.5, 0.5, -0.5, 0.5, -0.5], [2, 3]));
    const cases: [string, Build, Tensor[], { eps?: number; tol?: number }?][] = [
      ['reshape', ([x]) => T.reshape(x, [3, 2]), [a23]],
      ['permute', ([x]) => T.permute(x, [2, 0, 1]), [rnd([2, 3, 4], 7)]],
      ['transpose', ([x]) => T.transpose(x), [a23]],
      ['slice', ([x]) => T.slice(x, 1, 1, 3), [rnd([2, 4, 2], 8)]],
      ['concat', ([x, y]) => T.concat([x, y], 1), [a23, rnd([2, 2], 9)]],
      ['gatherRows', ([x]) => T.gatherRows(x, [2, 0, 2, 1]), [rnd([3, 4], 10)]],
      ['pick', ([x]) => T.pick(x, [1, 0]), [a23]],
      // a row written twice keeps the last write, which alone receives its gradient
      ['setRows (a row twice)', ([x, v]) => T.setRows(x, [1, 1, 0], v), [rnd([3, 2], 56), rnd([3, 2], 57)]],
      // a row listed twice gets the shared delta twice, and the delta the gradient of each row
      ['addRows (shared delta, a row twice)', ([x, d]) => T.addRows(x, [1, 1, 0], d), [rnd([3, 2], 58), rnd([2], 59)]],
      ['addRows (a delta per row)', ([x, d]) => T.addRows(x, [2, 0], d), [rnd([3, 2], 60), rnd([2, 2], 61)]],
      ['add (broadcast)', ([x, y]) => T.add(x, y), [a23, b13]],
      ['add (rank broadcast)', ([x, y]) => T.add(x, y), [a23, b3]],
      ['sub', ([x, y]) => T.sub(x, y), [a23, b13]],
      ['mul', ([x, y]) => T.mul(x, y), [a23, b23]],
      ['mul (broadcast)', ([x, y]) => T.mul(x, y), [rnd([2, 1, 3], 11), rnd([4, 1], 12)]],
      ['div', ([x, y]) => T.div(x, y), [a23, pos23]],
      ['maximum', ([x, y]) => T.maximum(x, y), [a23, apart23]],
      ['minimum', ([x, y]) => T.minimum(x, y), [a23, apart23]],
      ['pow', ([x, y]) => T.pow(x, y), [pos23, rnd([2, 3], 13)]],
      // d/da b·a^(b−1) is finite at a = 0 (b·out/a would be 0/0 there)
      ['pow (a = 0, integer b)', ([x]) => T.pow(x, T.tensor([2, 3, 2])), [T.tensor([0, 1, -2, 0.5, 0, 1.5], [2, 3])]],
      ['affine', ([x]) => T.affine(x, -1.5, 0.25), [a23]],
      ['neg', ([x]) => T.neg(x), [a23]],
      ['exp', ([x]) => T.exp(x), [a23]],
      ['log', ([x]) => T.log(x), [pos23]],
      ['sqrt', ([x]) => T.sqrt(x), [pos23]],
      ['rsqrt', ([x]) => T.rsqrt(x), [pos23]],
      ['tanh', ([x]) => T.tanh(x), [a23]],
      ['sigmoid', ([x]) => T.sigmoid(x), [a23]],
      ['relu', ([x]) => T.relu(x), [az23]],
      ['geluTanh', ([x]) => T.geluTanh(x), [a23]],
      ['geluErf', ([x]) => T.geluErf(x), [a23]],
      ['silu', ([x]) => T.silu(x), [a23]],
      ['abs', ([x]) => T.abs(x), [az23]],
      ['square', ([x]) => T.square(x), [a23]],
      ['recip', ([x]) => T.recip(x), [pos23]],
      ['sum (all)', ([x]) => T.sum(x), [a23]],
      ['sum (all, keepDim)', ([x]) => T.sum(x, undefined, true), [rnd([2, 3], 63)]],
      ['sum (axis 0)', ([x]) => T.sum(x, 0), [rnd([3, 2, 2], 14)]],
      ['sum (axis -1, keepDim)', ([x]) => T.sum(x, -1, true), [rnd([3, 2, 2], 15)]],
      ['mean', ([x]) => T.mean(x, 1), [rnd([3, 4], 16)]],
      ['max', ([x]) => T.max(x, 1), [rnd([3, 4], 17)]],
      ['max (axis 0, keepDim)', ([x]) => T.max(x, 0, true), [rnd([3, 4], 62)]],
      ['softmax', ([x]) => T.softmax(x), [rnd([3, 5], 18)]],
      ['logSoftmax', ([x]) => T.logSoftmax(x), [rnd([3, 5], 19)]],
      ['crossEntropy', ([x]) => T.crossEntropy(x, [4, -100, 0]), [rnd([3, 5], 20)]],
      ['layerNorm', ([x, w, b]) => T.layerNorm(x, w, b, 1e-5), [rnd([3, 6], 21), rnd([6], 22), rnd([6], 23)]],
      ['layerNorm (no affine)', ([x]) => T.layerNorm(x, null, null, 1e-5), [rnd([3, 6], 24)]],
      ['rmsNorm', ([x, w]) => T.rmsNorm(x, w, 1e-6), [rnd([3, 6], 25), rnd([6], 26)]],
      ['matmul', ([x, y]) => T.matmul(x, y), [rnd([3, 4], 27), rnd([4, 2], 28)]],
      ['matmul (transA)', ([x, y]) => T.matmul(x, y, { transA: true }), [rnd([4, 3], 29), rnd([4, 2], 30)]],
      ['matmul (transB)', ([x, y]) => T.matmul(x, y, { transB: true }), [rnd([3, 4], 31), rnd([2, 4], 32)]],
      ['matmul (transA, transB)', ([x, y]) => T.matmul(x, y, { transA: true, transB: true }), [rnd([4, 3], 33), rnd([2, 4], 34)]],
      ['matmul (batched)', ([x, y]) => T.matmul(x, y), [rnd([2, 3, 4], 35), rnd([2, 4, 2], 36)]],
      ['matmul (batched, transA)', ([x, y]) => T.matmul(x, y, { transA: true }), [rnd([2, 4, 3], 64), rnd([2, 4, 2], 65)]],
      ['matmul (batched, transB)', ([x, y]) => T.matmul(x, y, { transB: true }), [rnd([2, 3, 4], 66), rnd([2, 2, 4], 67)]],
      ['matmul (batched, transA, transB)', ([x, y]) => T.matmul(x, y, { transA: true, transB: true }), [rnd([2, 4, 3], 68), rnd([2, 2, 4], 69)]],
      ['matmul (shared b)', ([x, y]) => T.matmul(x, y), [rnd([2, 3, 4], 37), rnd([4, 2], 38)]],
      ['matmul (shared b, transA)', ([x, y]) => T.matmul(x, y, { transA: true }), [rnd([2, 4, 3], 39), rnd([4, 2], 40)]],
      ['matmul (shared b, transA, transB)', ([x, y]) => T.matmul(x, y, { transA: true, transB: true }), [rnd([2, 4, 3], 41), rnd([2, 4], 42)]],
      ['linear (in_out)', ([x, w, b]) => T.linear(x, w, b, 'in_out'), [rnd([2, 3, 4], 43), rnd([4, 5], 44), rnd([5], 45)]],
      ['linear (out_in, no bias)', ([x, w]) => T.linear(x, w, null, 'out_in'), [rnd([3, 4], 46), rnd([5, 4], 47)]],
      ['linear (a rank-1 input)', ([x, w, b]) => T.linear(x, w, b, 'out_in'), [rnd([4], 70), rnd([3, 4], 71), rnd([3], 72)]],
      ['rope (half)', ([x]) => T.rope(x, Int32Array.of(0, 3, 1, 7), { rotDim: 4, invFreq: defaultInvFreq(4, 10000), interleaved: false }), [rnd([2, 2, 2, 6], 48)]],
      ['rope (interleaved)', ([x]) => T.rope(x, Int32Array.of(2, 5), { rotDim: 4, invFreq: defaultInvFreq(4, 100), interleaved: true }), [rnd([1, 2, 2, 4], 49)]],
      // scaled frequencies (llama3: divided by 8 at low frequencies) and YaRN's cos/sin scale
      ['rope (llama3 frequencies)', ([x]) => T.rope(x, Int32Array.of(0, 9, 40, 7), { rotDim: 6, invFreq: ropeFrequencies(6, 10000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 }, 0).invFreq, interleaved: false }), [rnd([2, 2, 2, 6], 50)]],
      ['rope (yarn, scaled cos/sin)', ([x]) => { const f = ropeFrequencies(4, 10000, { type: 'yarn', factor: 4, originalMaxPositions: 32, attentionFactor: 1.25, betaFast: 32, betaSlow: 1, truncate: true }, 0); return T.rope(x, Int32Array.of(3, 30), { rotDim: 4, invFreq: f.invFreq, scale: f.scale, interleaved: true }); }, [rnd([1, 2, 2, 4], 51)]],
      ['attention', ([q, k, v]) => T.attention(q, k, v), [rnd([2, 3, 2, 4], 50), rnd([2, 3, 2, 4], 51), rnd([2, 3, 2, 4], 52)]],
      ['attention (GQA, mask, qOffset)', ([q, k, v]) => T.attention(q, k, v, {
        keyMask: Uint8Array.of(0, 1, 1, 1, 1, 1, 1, 0), qOffset: 2,
      }), [rnd([2, 2, 4, 3], 53), rnd([2, 4, 2, 3], 54), rnd([2, 4, 2, 3], 55)]],
    ];
    for (const [name, f, inputs, opts] of cases) {
      await t.test(name, () => gradCheck(name, f, inputs, opts));
    }
  });
}

test('geluTanh: the gradient saturates to 0 or 1 for large |x| instead of 0·∞ = NaN, on every backend', () => {
  // 3·0.044715·x² overflows float32 from |x| ≈ 1.8e19 on (native), ±Infinity in both.
  const x = [1e20, -1e20, -1e30, -3e38, 3e38, 15, -15, Infinity, -Infinity, NaN];
  const want = [1, 0, 0, 0, 1, 1, 0, 1, 0, NaN];
  for (const backend of backends) {
    useBackend(backend);
    const p = T.parameter(T.tensor(x));
    withGrad(() => T.sum(T.geluTanh(p)).backward());
    assert.deepEqual(Array.from(p.grad!.data, (g) => (Object.is(g, -0) ? 0 : g)), want, backend);
  }
  useBackend('js');
});

test('silu and geluErf: the gradient at ±Infinity is its limit, 0 or 1, not ∞·0 = NaN, on every backend', () => {
  const x = [Infinity, -Infinity, 1e30, -1e30, 100, -100, NaN];
  const want = [1, 0, 1, 0, 1, 0, NaN];
  for (const backend of backends) {
    useBackend(backend);
    for (const [name, f] of [['silu', T.silu], ['geluErf', T.geluErf]] as const) {
      const p = T.parameter(T.tensor(x));
      withGrad(() => T.sum(f(p)).backward());
      assert.deepEqual(Array.from(p.grad!.data, (g) => (Math.abs(g) < 1e-30 ? 0 : g)), want, `${backend} ${name}`);
    }
  }
  useBackend('js');
});

test('max and argmax: a NaN anywhere is the maximum, at the first NaN\'s index (as torch), on every backend', () => {
  for (const backend of backends) {
    useBackend(backend);
    const rows = T.tensor([1, NaN, 3, NaN, 2, 0, 4, -1, -Infinity, -Infinity, NaN, 5], [3, 4]);
    assert.deepEqual(Array.from(T.argmax(rows)), [1, 2, 2], `${backend} argmax`);
    assert.deepEqual(T.max(rows, 1).toArray(), [NaN, 4, NaN], `${backend} max over the last axis`);
    // a long row (the vector path) with its NaN far from the start, and a column reduction
    const long = new Float32Array(1000).fill(1);
    long[500] = 7;
    long[733] = NaN;
    long[900] = NaN;
    assert.deepEqual(Array.from(T.argmax(new Tensor(long, [1, 1000]))), [733], `${backend} long row`);
    assert.deepEqual(T.max(rows, 0).toArray(), [2, NaN, NaN, NaN], `${backend} max over axis 0`);
    const p = T.parameter(rows);
    withGrad(() => T.sum(T.max(p, 0)).backward());
    assert.deepEqual(p.grad!.toArray(), [0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0], `${backend} max's gradient goes to the NaN`);
  }
  useBackend('js');
});

test('maximum / minimum: the gradient goes to the operand the output came from, NaN and ±Infinity ties too', () => {
  for (const backend of backends) {
    useBackend(backend);
    for (const [op, name] of [[T.maximum, 'maximum'], [T.minimum, 'minimum']] as const) {
      // NaN in b, NaN in a, NaN in both (a's), a tie (b's), a tie at ±Infinity (b's), a clear winner
      const a = T.parameter(T.tensor([1, NaN, NaN, 2, Infinity, -Infinity, name === 'maximum' ? 5 : -5]));
      const b = T.parameter(T.tensor([NaN, 1, NaN, 2, Infinity, -Infinity, 0]));
      withGrad(() => T.sum(op(a, b)).backward());
      assert.deepEqual(a.grad!.toArray(), [0, 1, 1, 0, 0, 0, 1], `${backend} ${name} grad a`);
      assert.deepEqual(b.grad!.toArray(), [1, 0, 0, 1, 1, 1, 0], `${backend} ${name} grad b`);
      // broadcast b: the scalar gets every entry it won
      const x = T.parameter(T.tensor([3, NaN, -3], [3, 1])), s = T.parameter(T.tensor([NaN]));
      withGrad(() => T.sum(op(x, s)).backward());
      assert.deepEqual(x.grad!.toArray(), [0, 1, 0], `${backend} ${name} broadcast grad x`);
      assert.deepEqual(s.grad!.toArray(), [2], `${backend} ${name} broadcast grad s`);
    }
  }
  useBackend('js');
});

test('crossEntropy ignores only -100 and names a target out of range', () => {
  for (const backend of backends) {
    useBackend(backend);
    const logits = T.tensor([0, 1, 2, 2, 1, 0], [2, 3]);
    // -100 leaves its row out of the mean
    assert.ok(Math.abs(T.crossEntropy(logits, [2, -100]).item() - T.crossEntropy(T.slice(logits, 0, 0, 1), [2]).item()) < 1e-6);
    const bad = (targets: number[], re: RegExp) =>
      assert.throws(() => T.crossEntropy(logits, targets), (e: unknown) => e instanceof AmendError && re.test(e.message), `${backend} ${targets}`);
    bad([0, 5], /^crossEntropy: target 5 \(index 1\) is not a class of the 3 logits; use a class in \[0, 3\), or -100/);
    bad([-1, 0], /^crossEntropy: target -1 \(index 0\)/);
    bad([0, 1.5], /^crossEntropy: target 1\.5 \(index 1\)/);
  }
  useBackend('js');
});

test('gradients accumulate across uses of one tensor and into leaves', () => {
  useBackend('js');
  const x = T.parameter(T.tensor([1, 2, 3]));
  withGrad(() => {
    const y = T.add(x, x); // the same gradient array flows to both uses
    const z = T.sum(T.mul(y, x)); // z = 2 Σ x²  → dz/dx = 4x
    z.backward();
  });
  assert.deepEqual(x.grad!.toArray(), [4, 8, 12]);
  withGrad(() => T.sum(x).backward());
  assert.deepEqual(x.grad!.toArray(), [5, 9, 13]);
});

test('no tape is recorded outside withGrad', () => {
  const x = T.parameter(T.tensor([1, 2]));
  const y = T.mul(x, x);
  assert.equal(y.node, null);
  assert.equal(y.requiresGrad, false);
});

test('ops refuse malformed shapes and indices with one AmendError, on every backend', () => {
  for (const backend of backends) {
    useBackend(backend);
    const bad = (what: string, f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof AmendError && re.test(e.message), `${backend}: ${what}`);
    bad('short bias', () => T.linear(T.zeros([1, 2]), T.zeros([2, 4]), T.tensor([10, 20]), 'in_out'), /linear: the bias has 2 entries \[2\]; it needs 4/);
    bad('long bias', () => T.linear(T.zeros([1, 2]), T.zeros([2, 4]), T.zeros([6]), 'in_out'), /the bias has 6 entries/);
    bad('norm weight', () => T.layerNorm(T.zeros([2, 5]), T.zeros([3]), null, 1e-5), /layerNorm: the weight has 3 entries/);
    bad('rms weight', () => T.rmsNorm(T.zeros([2, 5]), T.zeros([7]), 1e-5), /rmsNorm: the weight has 7 entries/);
    bad('permutation', () => T.permute(T.zeros([3, 3]), [1, 1]), /\[1,1\] is not an order of the 2 axes/);
    bad('short permutation', () => T.permute(T.zeros([3, 3]), [0]), /is not an order/);
    bad('fractional reshape', () => T.reshape(T.zeros([6]), [-1, 4]), /cannot reshape \[6\] into \[-1,4\]/);
    bad('negative reshape', () => T.reshape(T.zeros([4]), [-2, -2]), /sizes are integers ≥ 0, with at most one -1/);
    bad('targets', () => T.crossEntropy(T.zeros([4, 3]), [1, 2]), /2 targets for 4 rows/);
    bad('fractional row id', () => T.gatherRows(T.zeros([3, 2]), [1.5]), /index 1\.5 out of range/);
    bad('fractional pick', () => T.pick(T.zeros([2, 3]), [1.5, 0]), /pick: index 1\.5/);
    bad('fractional slice', () => T.slice(T.zeros([2, 3]), 1, 0.5, 2), /slice \[0\.5, 2\)/);
    bad('key mask', () => T.attention(T.zeros([2, 3, 2, 4]), T.zeros([2, 3, 2, 4]), T.zeros([2, 3, 2, 4]), { keyMask: Uint8Array.from([1, 0]) }), /the key mask has 2 entries for 2 × 3 keys/);
    bad('qOffset', () => T.attention(T.zeros([1, 1, 1, 2]), T.zeros([1, 2, 1, 2]), T.zeros([1, 2, 1, 2]), { qOffset: 0.5 }), /qOffset must be an integer/);
    bad('rotary dims', () => T.rope(T.zeros([1, 1, 1, 4]), Int32Array.of(0), { rotDim: -2, invFreq: new Float32Array(0), interleaved: false }), /rope: bad shapes/);
    bad('rotary frequencies', () => T.rope(T.zeros([1, 1, 1, 4]), Int32Array.of(0), { rotDim: 4, invFreq: new Float32Array(1), interleaved: false }), /rope: bad shapes/);
    const p = T.parameter(T.zeros([2, 3]));
    bad('gradient size', () => withGrad(() => T.mul(p, p)).backward(new Float32Array(2)), /the gradient has 2 entries for a tensor of shape \[2,3\]/);
    // A zero-size last axis is an empty result, not 0/0 rows.
    assert.deepEqual(T.softmax(T.zeros([3, 0])).shape, [3, 0]);
    assert.deepEqual(T.layerNorm(T.zeros([3, 0]), null, null, 1e-5).shape, [3, 0]);
    assert.equal(T.argmax(T.zeros([3, 0])).length, 3);
    assert.deepEqual(T.linear(T.zeros([2, 0]), T.zeros([0, 3]), T.tensor([1, 2, 3]), 'in_out').toArray(), [1, 2, 3, 1, 2, 3]);
  }
  useBackend('js');
});
