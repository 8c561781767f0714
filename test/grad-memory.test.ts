// What the autograd graph keeps alive: backward() lets go of each node once it has run, and an
// op's node keeps only the arrays its needed gradients read. Checked with WeakRefs and V8's gc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmendError } from '../src/errors.js';
import * as T from '../src/tensor/index.js';
import { Tensor, record, withGrad } from '../src/tensor/index.js';
import { defaultInvFreq } from '../src/models/rope.js';
import { collectGarbage, gcFunction } from './helpers.js';

/** A WeakRef holds its target until the current turn ends, so collections wait for the next. */
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

const vec = (n: number, seed: number): Tensor => new Tensor(T.randn(n, T.mulberry32(seed)), [n]);

test('backward() releases the graph as it goes: the top\'s activations are collectable before the bottom\'s gradient is computed', async () => {
  const gc = gcFunction();
  for (const retainGraph of [false, true]) {
    const p = T.parameter(T.tensor([0.1, -0.2, 0.3]));
    let ref: WeakRef<Float32Array> | null = null;
    let heldAtBottom: boolean | null = null;
    const loss = withGrad(() => {
      // The bottom op's backward runs last: it looks whether the top's activation is still held.
      const bottom = record('probe', p.data.slice(), p.shape, [p], (g) => {
        gc();
        heldAtBottom = ref!.deref() !== undefined;
        return [g];
      });
      const top = T.tanh(T.affine(bottom, 2)); // tanh's backward reads its output
      ref = new WeakRef(top.data);
      return T.sum(top);
    });
    await nextTurn();
    loss.backward(null, { retainGraph });
    // Retained, the graph (held through `loss`) must still hold it: the probe can tell the two apart.
    assert.equal(heldAtBottom, retainGraph, `retainGraph ${retainGraph}: the top activation was ${heldAtBottom ? '' : 'not '}held at the bottom`);
    p.data.forEach((v, i) => {
      const t = Math.tanh(2 * v);
      assert.ok(Math.abs(p.grad!.data[i] - 2 * (1 - t * t)) < 1e-6, `d/dp[${i}]`);
    });
  }
});

test('retainGraph: a second backward() through the graph adds the same gradient again; without it the second is refused and no gradient changes', () => {
  const x = T.parameter(T.tensor([1, 2, 3]));
  const build = (): { a: Tensor; b: Tensor } => withGrad(() => {
    const h = T.mul(x, x); // a trunk shared by two losses
    return { a: T.sum(h), b: T.sum(T.mul(h, T.tensor([1, 0, 2]))) };
  });
  const refused = (f: () => void): void => assert.throws(f, (e: unknown) => e instanceof AmendError
    && /backward\(\) through a graph an earlier backward\(\) released .*retainGraph: true/.test(e.message));

  let { a, b } = build();
  a.backward(null, { retainGraph: true });
  a.backward(null, { retainGraph: true });
  assert.deepEqual(x.grad!.toArray(), [4, 8, 12]); // 2 × 2x
  b.backward(); // through the retained trunk: d/dx Σ c·x² = 2cx
  assert.deepEqual(x.grad!.toArray(), [6, 8, 24]);
  refused(() => b.backward());
  refused(() => a.backward()); // b's pass released the trunk under a
  assert.deepEqual(x.grad!.toArray(), [6, 8, 24]);

  x.grad = null;
  ({ a, b } = build());
  a.backward();
  refused(() => a.backward());
  refused(() => b.backward());
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
});

// Each case: an op applied to x (an activation, whose values only the op's node could keep) and
// whether the op's gradient reads x's values. Constants are plain tensors, parameters need grad.
type Case = [string, (x: Tensor) => Tensor, boolean, ((p: Tensor) => Tensor)?];

test('an op\'s node keeps an input\'s values only where a needed gradient reads them', async () => {
  const c = (shape: number[], seed: number): Tensor => new Tensor(vec(shape.reduce((a, b) => a * b, 1), seed).data, shape);
  const param = (shape: number[], seed: number): Tensor => T.parameter(c(shape, seed));
  const W = c([6, 4], 1), Wp = param([6, 4], 2), bias = c([4], 3), K = c([1, 6], 4);
  const cases: Case[] = [
    ['reshape', (x) => T.reshape(x, [3, 4]), false],
    ['permute', (x) => T.permute(x, [1, 0]), false],
    ['slice', (x) => T.slice(x, 1, 1, 4), false],
    ['concat', (x) => T.concat([x, c([2, 6], 5)], 0), false],
    ['gatherRows', (x) => T.gatherRows(x, [1, 0, 1]), false],
    ['pick', (x) => T.pick(x, [2, 5]), false],
    ['add', (x) => T.add(x, K), false],
    ['sub', (x) => T.sub(K, x), false],
    ['mul by a constant', (x) => T.mul(x, K), false],
    ['mul by a parameter', (x) => T.mul(x, param([1, 6], 6)), true],
    ['affine', (x) => T.affine(x, 2, 1), false],
    ['sum', (x) => T.sum(x, 1), false],
    ['max', (x) => T.max(x, 1), false],
    ['exp (reads its output)', (x) => T.exp(x), false],
    ['tanh (reads its output)', (x) => T.tanh(x), false],
    ['geluTanh (reads its input)', (x) => T.geluTanh(x), true],
    ['geluTanh\'s output into linear', (x) => T.linear(x, W, bias, 'in_out'), false, (p) => T.geluTanh(p)],
    ['softmax', (x) => T.softmax(x), false],
    ['logSoftmax', (x) => T.logSoftmax(x), false],
    ['crossEntropy', (x) => T.crossEntropy(x, [1, 3]), false],
    ['layerNorm', (x) => T.layerNorm(x, null, null, 1e-5), true],
    ['linear, constant weight', (x) => T.linear(x, W, bias, 'in_out'), false],
    ['linear, weight a parameter', (x) => T.linear(x, Wp, null, 'in_out'), true],
    ['matmul, constant b', (x) => T.matmul(x, W), false],
    ['rope', (x) => T.rope(T.reshape(x, [1, 2, 1, 6]), Int32Array.of(0, 1), { rotDim: 4, invFreq: defaultInvFreq(4, 100), interleaved: false }), false],
    ['attention', (x) => { const q = T.reshape(x, [1, 2, 2, 3]); return T.attention(q, q, q); }, true],
    ['addRows', (x) => T.addRows(x, [1], param([6], 7)), false],
    ['setRows', (x) => T.setRows(x, [0], param([6], 8)), false],
  ];
  const p = param([2, 6], 9);
  // Built in a function of its own so that no local of the test holds x.
  const track = (f: Case[1], produce: (p: Tensor) => Tensor): { y: Tensor; ref: WeakRef<Float32Array> } => withGrad(() => {
    const x = produce(p);
    return { y: T.sum(f(x)), ref: new WeakRef(x.data) };
  });
  const built = cases.map(([, f, , produce]) => track(f, produce ?? ((q) => T.affine(q, 1))));
  await collectGarbage();
  const wrong = cases.filter(([, , reads], i) => (built[i].ref.deref() !== undefined) !== reads)
    .map(([name, , reads]) => `${name}: ${reads ? 'released' : 'kept'}`);
  assert.deepEqual(wrong, [], 'input values kept against need, or released while needed');
  // The graphs (held through y until here) still backpropagate.
  for (const { y } of built) y.backward();
  assert.ok(p.grad!.data.every(Number.isFinite));
});
