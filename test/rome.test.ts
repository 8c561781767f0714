// ROME: the rank-one update satisfies its defining equation, the v* loss has the gradient the
// optimiser uses, edits of every architecture apply and revert exactly, and bad input is refused
// with one AmendError while the weights stay byte-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/model.js';
import { addAt, capture, hookPoint } from '../src/models/hooks.js';
import { generate } from '../src/models/generate.js';
import { mulberry32, noGrad, Tensor, withGrad } from '../src/tensor/index.js';
import { KVCache } from '../src/models/kvcache.js';
import { editSession } from '../src/patch/session.js';
import { layerSecondMoments, type SecondMoment } from '../src/stats/index.js';
import { editWithReport, resolveHparams, type EditRequest } from '../src/editors/index.js';
import { dividedUpdate, rankOneDivisor } from '../src/editors/rome/index.js';
import { buildJob, encodePrompt, fill, lookupIndex, prepareRequests } from '../src/editors/common/prompts.js';
import { templateKeys } from '../src/editors/common/keys.js';
import { contextTemplates, templateSettings } from '../src/editors/common/templates.js';
import { evaluateJobs, optimiseTargets, type JobState, type VStarSettings } from '../src/editors/common/vstar.js';
import { scoreTargets } from '../src/editors/common/score.js';
import { relErr as rel, randomStats, sharedDir, weightsHash } from './helpers.js';

const models = sharedDir('models');
const ARCHS = ['tiny-random-gpt2', 'tiny-random-gpt_neox', 'tiny-random-gptj', 'tiny-random-llama', 'tiny-random-qwen2', 'stories260K'];
const REQ = { prompt: 'The capital of {} is', subject: 'France', targetNew: 'Rome' };

async function load(name: string): Promise<CausalLM> {
  return CausalLM.load(`${models}/${name}`);
}

test('ROME: W′k + b = v* at the prompt key (defining equation), Conv1D and Linear orientations, every architecture', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ARCHS) {
    const model = await load(name);
    const layer = 1;
    const stats = await randomStats(model, [layer]);
    const { patch, report } = await editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [layer] }, stats, keepInternals: true });
    const [vec] = report.rome!.vectors!;
    const session = editSession(model);
    session.apply(patch);
    try {
      const tok = model.tok();
      const { hparams } = resolveHparams('rome', model, { overrides: { layers: [layer] } });
      const [req] = prepareRequests(model, [REQ], hparams);
      const ids = encodePrompt(tok, req.template, req.subject);
      const pos = lookupIndex(tok, req.template, req.subject, 'subject_last');
      const keys = capture(hookPoint.mlpKeys(layer), [pos]), out = capture(hookPoint.mlpOut(layer), [pos]);
      noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [keys.hook, out.hook] }));
      // The key is unchanged by the edit (it is the input of the edited matrix) ...
      assert.ok(rel(keys.value().data, vec.key) < 1e-6, `${name}: key moved`);
      // ... and the edited matrix maps it to v*.
      const err = rel(out.value().data, vec.vstar);
      assert.ok(err < 1e-4, `${name}: ‖W′k + b − v*‖/‖v*‖ = ${err}`);
    } finally {
      session.revertAll();
    }
    const d = patch.deltas[0];
    assert.equal(d.kind, 'low_rank');
    const down = model.spec.layers[layer].down;
    // Stored orientation: Conv1D [d_ff, d] (U = u), Linear [d, d_ff] (U = v).
    assert.deepEqual([d.kind === 'low_rank' ? d.rows : 0, d.kind === 'low_rank' ? d.cols : 0],
      down.layout === 'in_out' ? [down.inF, down.outF] : [down.outF, down.inF]);
  }
});

test('ROME: finite-difference check of the v* loss gradient (NLL + KL + weight decay)', { skip: models ? false : 'no ../shared/models' }, async () => {
  for (const name of ['stories260K', 'tiny-random-gpt2']) {
    const model = await load(name);
    const { hparams } = resolveHparams('rome', model, { overrides: { mom2_adjustment: false, context_template_length_params: [[6, 2]] } });
    const [req] = prepareRequests(model, [{ prompt: 'Lily went to the park with {}', subject: 'her mom', targetNew: 'the dog' }], hparams);
    const flat = contextTemplates(model, templateSettings(hparams)).flat();
    const job = buildJob(model.tok(), req, flat, hparams);
    assert.ok(job.rewriting[0].scoreTargets.length >= 2, 'a multi-token target exercises the per-token mean');
    // ROME's point with the model's head; MEMIT's with a logit lens (targets through the lens, KL on the head).
    for (const [point, lossLayer] of [[hookPoint.mlpOut(1), model.config.layers - 1], [hookPoint.residPost(1), 1]] as const) {
      const s: VStarSettings = { point, lossLayer, steps: 20, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.5, earlyStop: 0.05 };
      const d = model.config.hidden;
      const st: JobState = { job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) };
      evaluateJobs(model, [st], s, false); // records v₀ and the initial KL distribution
      const rand = mulberry32(7);
      for (let i = 0; i < d; i++) st.delta[i] = (rand() - 0.5) * 0.3 * st.initNorm / Math.sqrt(d);
      const { grads } = evaluateJobs(model, [st], s, true);
      const g = grads![0], base = st.delta.slice();
      // The same loss over many small length-sorted batches (each backpropagated on its own).
      const split = evaluateJobs(model, [st], s, true, 12).grads![0];
      let diff = 0, size = 0;
      for (let i = 0; i < d; i++) { diff += (split[i] - g[i]) ** 2; size += g[i] ** 2; }
      assert.ok(Math.sqrt(diff / size) < 1e-4, `${name} ${point}: batched gradient differs (${Math.sqrt(diff / size)})`);
      let gn = 0;
      for (const x of g) gn += x * x;
      gn = Math.sqrt(gn);
      for (let trial = 0; trial < 4; trial++) {
        const u = Float32Array.from({ length: d }, () => rand() - 0.5);
        const un = Math.hypot(...u);
        const eps = 1e-2 * st.initNorm;
        const at = (sgn: number): number => {
          for (let i = 0; i < d; i++) st.delta[i] = base[i] + (sgn * eps * u[i]) / un;
          return evaluateJobs(model, [st], s, false).evals[0].loss;
        };
        const fd = (at(1) - at(-1)) / (2 * eps);
        let an = 0;
        for (let i = 0; i < d; i++) an += (g[i] * u[i]) / un;
        assert.ok(Math.abs(fd - an) <= 2e-3 * gn + 1e-4, `${name} ${point}: directional derivative ${an} vs finite difference ${fd} (‖g‖ ${gn})`);
      }
    }
  }
});

test('v* / z evaluations from the recorded prefix keys/values and start stream equal full forwards (ROME\'s and MEMIT\'s points, logit lens, mixed lookups and padding)', { skip: models ? false : 'no ../shared/models' }, async () => {
  // gpt2: learned positions; llama: rotary with grouped-query attention; gptj: parallel residual and
  // partial interleaved rotary; neox: parallel residual, partial rotary; stories260K: trained weights, so attention does carry information
  // from the prefix (a prefix read wrongly shows in the loss).
  for (const name of ['stories260K', 'tiny-random-llama', 'tiny-random-gpt2', 'tiny-random-gptj', 'tiny-random-gpt_neox']) {
    const model = await load(name);
    const L = model.config.layers;
    const { hparams } = resolveHparams('rome', model, { overrides: { mom2_adjustment: false, context_template_length_params: [[6, 3]] } });
    // Subjects of different lengths in different places: the lookup (and so each row's prefix)
    // varies within one batch, and so does the padding of what is run after it.
    const reqs = prepareRequests(model, [
      { prompt: 'Lily went to the park with {}', subject: 'her mom', targetNew: 'the dog' },
      { prompt: '{} was the best friend of', subject: 'Tom', targetNew: 'a big cat' },
    ], hparams);
    const flat = contextTemplates(model, templateSettings(hparams)).flat();
    const jobs = reqs.map((r) => buildJob(model.tok(), r, flat, hparams));
    const lookups = new Set(jobs.flatMap((j) => [...j.rewriting, ...j.kl].map((q) => q.lookup)));
    assert.ok(lookups.size >= 3, `${name}: lookups at several positions (${[...lookups]})`);
    const d = model.config.hidden;
    const full = { reusePrefix: false };
    // ROME's point inside block 1 and inside block 0 (the runs start at the embeddings), MEMIT's
    // point with the model's head, MEMIT's with a logit lens at that layer, and the last block's
    // output (no block runs after the recorded stream).
    for (const [point, lossLayer] of [[hookPoint.mlpOut(1), L - 1], [hookPoint.mlpOut(0), L - 1], [hookPoint.residPost(1), L - 1], [hookPoint.residPost(0), 1], [hookPoint.residPost(L - 1), L - 1]] as const) {
      const s: VStarSettings = { point, lossLayer, steps: 5, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.5, earlyStop: 0.05 };
      const what = `${name} ${point} lens ${lossLayer}`;
      const fresh = (): JobState[] => jobs.map((job) => ({ job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) }));
      const a = fresh(), b = fresh();
      evaluateJobs(model, a, s, false);
      evaluateJobs(model, b, { ...s, ...full }, false);
      const seqs = (st: JobState): number => st.job.rewriting.length + st.job.kl.length;
      assert.ok(a.every((st) => st.prefix?.length === seqs(st) && (point === hookPoint.residPost(L - 1) || st.prefix.some((p) => p && p.k.length > 0))), `${what}: prefixes recorded`);
      assert.ok(b.every((st) => st.prefix === undefined), `${what}: nothing recorded for full forwards`);
      const rand = mulberry32(3);
      for (let j = 0; j < a.length; j++) {
        for (let i = 0; i < d; i++) a[j].delta[i] = b[j].delta[i] = (rand() - 0.5) * 0.5 * a[j].initNorm / Math.sqrt(d);
      }
      // One batch (every row padded), and many small ones.
      for (const maxTokens of [2048, 40]) {
        const ra = evaluateJobs(model, a, s, true, maxTokens), rb = evaluateJobs(model, b, { ...s, ...full }, true);
        for (let j = 0; j < a.length; j++) {
          assert.ok(rb.evals[j].kl > 0, `${what}: a nonzero δ moves the KL`);
          // Each part to float32 rounding of the whole loss (the KL is a small difference of log-probabilities).
          for (const part of ['loss', 'nll', 'kl'] as const) {
            const x = ra.evals[j][part], y = rb.evals[j][part];
            assert.ok(Math.abs(x - y) <= 1e-5 * rb.evals[j].loss, `${what} (${maxTokens}): ${part} ${x} vs ${y}`);
          }
          assert.ok(rel(ra.grads![j], rb.grads![j]) < 2e-5, `${what} (${maxTokens}): gradient differs by ${rel(ra.grads![j], rb.grads![j])}`);
        }
      }
    }
    // memit/compute_z reads the targets through the lens but the KL from the model's own logits:
    // with the same δ, the KL term is the same whichever layer the targets are read at.
    const lensS: VStarSettings = { point: hookPoint.residPost(1), lossLayer: 1, steps: 5, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.5, earlyStop: 0.05 };
    const headS: VStarSettings = { ...lensS, lossLayer: L - 1 };
    const lensJobs: JobState[] = jobs.map((job) => ({ job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) }));
    const headJobs: JobState[] = jobs.map((job) => ({ job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) }));
    evaluateJobs(model, lensJobs, lensS, false);
    evaluateJobs(model, headJobs, headS, false);
    const rand = mulberry32(5);
    for (let j = 0; j < jobs.length; j++) {
      for (let i = 0; i < d; i++) lensJobs[j].delta[i] = headJobs[j].delta[i] = (rand() - 0.5) * 0.5 * lensJobs[j].initNorm / Math.sqrt(d);
    }
    const kLens = evaluateJobs(model, lensJobs, lensS, false).evals, kHead = evaluateJobs(model, headJobs, headS, false).evals;
    for (let j = 0; j < jobs.length; j++) {
      assert.ok(kHead[j].kl > 0, `${name}: a nonzero δ moves the KL`);
      assert.ok(Math.abs(kLens[j].kl - kHead[j].kl) <= 1e-4 * kHead[j].kl, `${name}: KL ${kLens[j].kl} through the lens run vs ${kHead[j].kl} with the head`);
      assert.notEqual(kLens[j].nll, kHead[j].nll, `${name}: the targets are read at another layer`);
    }
  }
});

test('forward with a constant prefix: the tokens after it see the same keys and values as in the whole sequence, under the tape too; a prefix that does not fit is refused', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-llama');
  const c = model.config, n = 10, cut = 6;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 37 + 5) % c.vocabSize);
  const cache = new KVCache(c, 1, n);
  const whole = noGrad(() => model.forward(ids, 1, n, { cache })).logits!;
  const prefix = { k: cache.k.map((k) => new Tensor(k.slice(0, cut * c.kvHeads * c.headDim), [1, cut, c.kvHeads, c.headDim])), v: cache.v.map((v) => new Tensor(v.slice(0, cut * c.kvHeads * c.headDim), [1, cut, c.kvHeads, c.headDim])), lengths: Int32Array.of(cut) };
  const part = withGrad(() => model.forward(ids.slice(cut), 1, n - cut, { prefix })).logits!;
  assert.ok(rel(part.data, whole.data.subarray(cut * c.vocabSize)) < 1e-5, 'the rest of the sequence after its prefix');
  assert.throws(() => noGrad(() => model.forward(ids.slice(cut), 1, n - cut, { prefix, cache: new KVCache(c, 1, n) })), AmendError);
  assert.throws(() => model.forward(ids.slice(cut), 1, n - cut, { prefix: { ...prefix, k: prefix.k.slice(1) } }), /keys for 2 and values for 3 blocks/);
  assert.throws(() => model.forward(ids.slice(cut), 1, n - cut, { prefix: { ...prefix, lengths: Int32Array.of(cut + 1) } }), /prefix lengths/);
});

test('ROME on every architecture: applies, changes the edited completion, reverts bit-identically', { skip: models ? false : 'no ../shared/models' }, async () => {
  // The subject ends the prompt: in the random tiny checkpoints attention carries almost nothing
  // from one position to another, so only an edit at the predicting token can show in the output.
  const req = { prompt: 'My favourite city is {}', subject: 'Paris', targetNew: 'Rome' };
  for (const name of ARCHS) {
    const model = await load(name);
    const tok = model.tok();
    const layer = Math.min(1, model.config.layers - 1);
    const stats = await randomStats(model, [layer]);
    const before = weightsHash(model);
    const text = 'My favourite city is Paris';
    const ids = tok.encode(text);
    const target = tok.encode(`${text} Rome`, { addSpecialTokens: false }).slice(tok.encode(text, { addSpecialTokens: false }).length);
    const [genBefore] = generate(model, [ids], { maxNewTokens: 6 });
    const [pBefore] = scoreTargets(model, [{ prompt: ids, target }]);
    const { patch } = await editWithReport(model, [req], { method: 'rome', hparams: { layers: [layer] }, stats });
    assert.equal(weightsHash(model), before, `${name}: computing an edit must not change the model`);
    const session = editSession(model);
    session.apply(patch);
    assert.notEqual(weightsHash(model), before, `${name}: the patch changed nothing`);
    const [genAfter] = generate(model, [ids], { maxNewTokens: 6 });
    const [pAfter] = scoreTargets(model, [{ prompt: ids, target }]);
    assert.notDeepEqual(genAfter, genBefore, `${name}: the edited completion did not change`);
    assert.ok(genAfter[0] === target[0] || pAfter.logProb - pBefore.logProb > 1.5,
      `${name}: the completion does not start with the target and log P(target) did not rise by 1.5 nats: ${pBefore.logProb} → ${pAfter.logProb}`);
    session.revertAll();
    assert.equal(weightsHash(model), before, `${name}: revert is not bit-identical`);
  }
});

test('ROME: bad input is one AmendError and the weights stay byte-identical', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const stats = await randomStats(model, [1]);
  const before = weightsHash(model);
  const run = (req: typeof REQ, hparams: Record<string, unknown> = { layers: [1] }, s: SecondMoment[] = stats) =>
    editWithReport(model, [req], { method: 'rome', hparams, stats: s });
  const refuses = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => e instanceof AmendError && re.test(e.message) && !e.message.includes('\n'));
    assert.equal(weightsHash(model), before);
  };
  await refuses(run({ ...REQ, prompt: 'The capital of Spain is', subject: 'France' }), /subject "France" is not in the prompt/);
  await refuses(run({ ...REQ, targetNew: '' }), /empty target/);
  await refuses(run({ ...REQ, targetNew: '   ' }), /empty target/);
  // a null among several requests is named by its position (not a TypeError reading its id)
  for (const [reqs, re] of [[[REQ, null], /^request 2: not an edit request object$/], [[null, { ...REQ, id: 7 }], /^request 1: not an edit request object$/]] as const) {
    await refuses(editWithReport(model, reqs as unknown as EditRequest[], { method: 'rome', hparams: { layers: [1] }, stats }), re);
  }
  // the target the model already predicts (stories260K continues "Once upon a" with " time")
  const stories = await load('stories260K');
  const sBefore = weightsHash(stories);
  const [next] = generate(stories, [stories.tok().encode('Once upon a')], { maxNewTokens: 1 });
  assert.equal(stories.tok().idToToken(next[0]), '▁time');
  await assert.rejects(editWithReport(stories, [{ prompt: '{} upon a', subject: 'Once', targetNew: 'time' }], { method: 'rome', hparams: { mom2_adjustment: false } }),
    (e: unknown) => e instanceof AmendError && /already predicts "time"/.test(e.message));
  assert.equal(weightsHash(stories), sBefore);
  await refuses(run(REQ, { layers: [7] }), /layer 7 is out of range/);
  // hparams resolved beforehand are checked against this model too: the last layer (a change there
  // cannot reach the prediction; the patch would change nothing), a layer it lacks
  const resolved = resolveHparams('rome', model, { overrides: { layers: [1] } });
  const L = model.config.layers;
  for (const [layers, re] of [[[L - 1], new RegExp(`layer ${L - 1} is not below the last layer`)], [[L + 3], new RegExp(`layer ${L + 3} is out of range`)]] as const) {
    const other = { ...resolved, hparams: { ...resolved.hparams, layers: [...layers] } };
    await refuses(editWithReport(model, [REQ], { method: 'rome', resolved: other, stats }), re);
  }
  await refuses(run(REQ, { v_lrr: 0.1 }), /unknown ROME hparam "v_lrr" \(did you mean "v_lr"\?\)/);
  // statistics of another model (same shape, other weights)
  const other = await load('tiny-random-gpt2');
  for (const x of other.weight(other.spec.wte).data.keys()) other.weight(other.spec.wte).data[x] += 1e-3;
  const foreign = await randomStats(other, [1]);
  await refuses(run(REQ, { layers: [1] }, foreign), /computed on another model/);
  // statistics of another shape
  const wrong = (await randomStats(stories, [1])).map((s) => ({ ...s, fingerprint: '' }));
  await refuses(run(REQ, { layers: [1] }, wrong), /for another model/);
});

test('ROME and MEMIT: statistics over fewer keys than dimensions are refused in one line with the weights unchanged; mom2_ridge makes them usable', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2'); // d_ff 128
  const before = weightsHash(model);
  // 127 keys: C is singular, but its float32-accumulated rounding fills the null space enough for
  // Cholesky in double; ROME then aimed u along that noise (a patch 5× the usual size), or refused,
  // depending on the corpus. 3 keys: always refused, with a message about the pivot.
  const rand = mulberry32(1);
  const ids127 = [Array.from({ length: 127 }, () => Math.floor(rand() * 5000))];
  for (const ids of [ids127, [[464, 3139, 286]]]) {
    const stats = await layerSecondMoments(model, [1], { corpus: { kind: 'ids', ids }, noCache: true });
    const n = ids[0].length;
    assert.equal(stats[0].count, n);
    for (const method of ['rome', 'memit'] as const) {
      await assert.rejects(editWithReport(model, [REQ], { method, hparams: { layers: [1] }, stats }), (e: unknown) => e instanceof AmendError && !e.message.includes('\n') &&
        new RegExp(`^the key statistics for layer 1 hold ${n} keys for 128 dimensions \\(corpus ids:[0-9a-f]+\\): their second moment has rank at most ${n} and no inverse; collect statistics over at least 128 tokens \\(mom2_n_samples / mom2_dataset\\) or set mom2_ridge > 0${method === 'rome' ? ', or mom2_adjustment=false$' : '$'}`).test(e.message), `${method} ${n} keys`);
      assert.equal(weightsHash(model), before);
      const { patch } = await editWithReport(model, [REQ], { method, hparams: { layers: [1], mom2_ridge: 0.01 }, stats });
      assert.equal(weightsHash(model), before);
      for (const d of patch.deltas) for (const a of d.kind === 'dense' ? [d.delta] : [d.U, d.V]) assert.ok(a.every(Number.isFinite));
    }
  }
  const { patch } = await editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [1], mom2_adjustment: false }, stats: await layerSecondMoments(model, [1], { corpus: { kind: 'ids', ids: ids127 }, noCache: true }) });
  assert.equal(patch.deltas.length, 1);
});

test('ROME: several requests are applied one after another in one patch (rank 2)', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('stories260K');
  const stats = await randomStats(model, [2]);
  const before = weightsHash(model);
  const { patch, report } = await editWithReport(model, [
    { prompt: '{} went to the', subject: 'Lily', targetNew: 'moon' },
    { prompt: '{} liked to eat', subject: 'Tom', targetNew: 'rocks' },
  ], { method: 'rome', hparams: { layers: [2] }, stats, keepInternals: true });
  assert.equal(weightsHash(model), before);
  assert.equal(patch.deltas.length, 1);
  assert.equal(patch.deltas[0].kind === 'low_rank' ? patch.deltas[0].rank : 0, 2);
  assert.equal(report.rome!.reports.length, 2);
  for (const r of report.rome!.reports) assert.ok(r.vstar.iterations >= 1 && Number.isFinite(r.vstar.loss));
  // The second update was computed on the model with the first applied, so with both applied the
  // second prompt's key still maps exactly to its v* (the first prompt's need not: the second moved it).
  const session = editSession(model);
  session.apply(patch);
  try {
    const tok = model.tok();
    const ids = encodePrompt(tok, '{} liked to eat', 'Tom');
    const out = capture(hookPoint.mlpOut(2), [lookupIndex(tok, '{} liked to eat', 'Tom', 'subject_last')]);
    noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [out.hook] }));
    const err = rel(out.value().data, report.rome!.vectors![1].vstar);
    assert.ok(err < 1e-4, `‖W″k₂ + b − v*₂‖/‖v*₂‖ = ${err}`);
  } finally {
    session.revertAll();
  }
});

/** ROME's right factor as computeRome makes it: v = (v* − o) / (k·u), k·u checked first. */
function rankOneRight(target: ArrayLike<number>, o: ArrayLike<number>, k: ArrayLike<number>, u: ArrayLike<number>,
  where: string, mom2Adjustment: boolean): { v: Float64Array; ku: number } {
  const ku = rankOneDivisor(k, u, where, mom2Adjustment);
  return { v: dividedUpdate(target, o, ku, where), ku };
}

test('rankOneRight: a key orthogonal to u (or zero) is refused relative to ‖k‖‖u‖; a small but resolvable k·u is divided', () => {
  const f = 128, rand = mulberry32(7);
  const k = Float32Array.from({ length: f }, () => rand() - 0.5);
  const r = Float64Array.from({ length: f }, () => rand() - 0.5);
  let kk = 0, kr = 0;
  for (let i = 0; i < f; i++) { kk += k[i] * k[i]; kr += k[i] * r[i]; }
  const orth = r.map((x, i) => x - (kr / kk) * k[i]); // k·orth ≈ 1e-17 ‖k‖‖orth‖
  const unit = (a: Float64Array) => { const n = Math.hypot(...a); return a.map((x) => x / n); };
  const target = [1, 2, 3], o = [0.5, 0.5, 0.5];
  assert.throws(() => rankOneRight(target, o, k.map((x, i) => (i === 3 ? NaN : x)), unit(r), '"France" at layer 1', true),
    /^AmendError: ROME: the prompt's key for "France" at layer 1 is not finite \(k·u = NaN\)$/m);
  for (const [what, key, u] of [['orthogonal', k, unit(orth)], ['zero key', new Float32Array(f), unit(r)]] as const) {
    assert.throws(() => rankOneRight(target, o, key, u, '"France" at layer 1', true),
      (e: unknown) => e instanceof AmendError && /^ROME: the prompt's key for "France" at layer 1 is orthogonal to the update direction u \(k·u = .*\), so the rank-one update would be unbounded; edit another layer \(layers\) or lookup token \(fact_token\), or use other key statistics \(or mom2_adjustment=false\)$/.test(e.message), what);
  }
  // cos θ = 1e-3 is far above float32 rounding (√128 · 2⁻²⁴ ≈ 6.7e-7): divided, and (k·u) v = v* − o
  const u = unit(orth.map((x, i) => x + 1e-3 * Math.hypot(...orth) / Math.sqrt(kk) * k[i]));
  const { v, ku } = rankOneRight(target, o, k, u, 'x', false);
  assert.ok(Math.abs(ku / Math.sqrt(kk) - 1e-3) < 1e-6, `cos ${ku / Math.sqrt(kk)}`);
  v.forEach((x, i) => assert.ok(Math.abs(x * ku - (target[i] - o[i])) < 1e-12));
  // A GPT-J-wide key (f = 16384) at cos θ = 1e-4, which an ill-conditioned C gives: above the
  // typical rounding √f·2⁻²⁴ ≈ 7.6e-6 and divided (the worst-case f·2⁻²⁴ ≈ 9.8e-4 refused it)
  const F = 16384, wide = Float32Array.from({ length: F }, () => rand() - 0.5);
  const side = Float64Array.from({ length: F }, () => rand() - 0.5);
  let ww = 0, ws = 0;
  for (let i = 0; i < F; i++) { ww += wide[i] * wide[i]; ws += wide[i] * side[i]; }
  const perp = side.map((x, i) => x - (ws / ww) * wide[i]);
  const perpNorm = Math.hypot(...perp);
  const tilted = unit(perp.map((x, i) => x + 1e-4 * perpNorm / Math.sqrt(ww) * wide[i]));
  assert.ok(Math.abs(rankOneRight(target, o, wide, tilted, 'x', true).ku / Math.sqrt(ww) - 1e-4) < 1e-7);
});

test('ROME: statistics that turn u orthogonal to the prompt\'s key are refused in one line, the weights unchanged (no 1e15-sized update)', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const layer = 1, f = model.config.ffn;
  // u = k*/‖k*‖ without the statistics; then C with C w ∝ k* for a w orthogonal to the prompt key k,
  // so that C⁻¹k* ∝ w: C = û ûᵀ / (w·û) + (I − ŵ ŵᵀ), symmetric positive definite as w·û > 0.
  const { report } = await editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [layer], mom2_adjustment: false }, keepInternals: true });
  const { key: k, u: uHat } = report.rome!.vectors![0];
  let kk = 0, ku = 0;
  for (let i = 0; i < f; i++) { kk += k[i] * k[i]; ku += k[i] * uHat[i]; }
  const w = uHat.map((x, i) => x - (ku / kk) * k[i]);
  let wu = 0, ww = 0;
  for (let i = 0; i < f; i++) { wu += w[i] * uHat[i]; ww += w[i] * w[i]; }
  const mom2 = new Float64Array(f * f);
  for (let i = 0; i < f; i++) {
    for (let j = 0; j < f; j++) mom2[i * f + j] = uHat[i] * uHat[j] / wu + (i === j ? 1 : 0) - w[i] * w[j] / ww;
  }
  const stats: SecondMoment[] = [{ layer, dim: f, count: 10 * f, mom2, corpus: 'constructed', samples: 1, fingerprint: '' }];
  const before = weightsHash(model);
  // forwards that touch the edited MLP output: the prompt's own activations, then one per v* step
  const forward = model.forward.bind(model);
  let atMlpOut = 0;
  model.forward = ((...args: Parameters<CausalLM['forward']>) => {
    if (args[3]?.hooks?.some((h) => h.point === hookPoint.mlpOut(layer))) atMlpOut++;
    return forward(...args);
  }) as CausalLM['forward'];
  await assert.rejects(editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [layer], mom2_ridge: 0 }, stats }),
    (e: unknown) => e instanceof AmendError && !e.message.includes('\n') && /^ROME: the prompt's key for "France" at layer 1 is orthogonal to the update direction u/.test(e.message));
  assert.equal(atMlpOut, 1, 'refused before the v* optimisation, after the prompt activations alone');
  model.forward = forward;
  assert.equal(weightsHash(model), before);
  // the same statistics with a ridge no longer make u orthogonal to k: the edit goes through
  const { patch } = await editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [layer], mom2_ridge: 0.1 }, stats });
  for (const d of patch.deltas) for (const a of d.kind === 'dense' ? [d.delta] : [d.U, d.V]) assert.ok(a.every(Number.isFinite));
  assert.equal(weightsHash(model), before);
});

test('ROME: a key of zeros at the lookup token (ReLU units that never fire) is refused in one line, not a NaN patch', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('tiny-random-gpt2');
  const layer = 1;
  model.config.act = 'relu';
  const bias = model.weight(model.spec.layers[layer].up.b!).data;
  bias.fill(-1e4); // every unit of the layer is dead on every token
  const before = weightsHash(model);
  await assert.rejects(editWithReport(model, [REQ], { method: 'rome', hparams: { layers: [layer], mom2_adjustment: false } }),
    (e: unknown) => e instanceof AmendError && /^ROME: the key of "France" at layer 1 is zero \(no MLP unit fires at the lookup token\), so there is no update direction; edit another layer \(layers\) or lookup token \(fact_token\)$/.test(e.message));
  assert.equal(weightsHash(model), before);
});

test('fact_token: the lookup index of every mode, and subject_first_after_last past the prompt in a longer sequence', { skip: models ? false : 'no ../shared/models' }, async () => {
  const tok = (await load('stories260K')).tok();
  // <s> ▁The ▁c a p it a l ▁of | ▁M i ch a e l ▁ J or d an | ▁ is
  const at = (template: string, mode: 'subject_first' | 'subject_last' | 'subject_first_after_last' | 'last', seqLen?: number) =>
    lookupIndex(tok, template, 'Michael Jordan', mode, seqLen);
  assert.deepEqual(['subject_first', 'subject_last', 'subject_first_after_last', 'last'].map((m) => at('The capital of {} is', m as 'last')), [9, 19, 20, 21]);
  // nothing after the subject: its last token, unless the sequence (prompt + target) goes on
  assert.equal(at('My favourite city is {}', 'subject_first_after_last'), 25);
  assert.equal(at('My favourite city is {}', 'subject_first_after_last', 30), 26);
  assert.equal(at('My favourite city is {}', 'last'), 25);
});

test('k*: the mean of the per-template keys, flat over all templates or per group then over groups', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('stories260K');
  const tok = model.tok(), layer = 1, f = model.config.ffn;
  const [req] = prepareRequests(model, [{ prompt: '{} went to the', subject: 'Lily', targetNew: 'moon' }], resolveHparams('rome', model).hparams);
  const groups = [['{}'], ['Tom was sad. {}', 'One day, {}', 'The sun was hot. {}']];
  const keyOf = (ctx: string): Float32Array => {
    const t = fill(ctx, req.template), ids = encodePrompt(tok, t, req.subject);
    const c = capture(hookPoint.mlpKeys(layer), [lookupIndex(tok, t, req.subject, 'subject_last')]);
    noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [c.hook] }));
    return c.value().data.slice();
  };
  const keys = groups.map((g) => g.map(keyOf));
  const flat = new Float64Array(f), grouped = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    for (const g of keys) for (const k of g) flat[j] += k[j] / 4;
    for (const g of keys) for (const k of g) grouped[j] += k[j] / (g.length * 2);
  }
  assert.ok(rel(flat, grouped) > 1e-3, 'groups of different sizes make the two means differ');
  for (const [average, want] of [['flat', flat], ['grouped', grouped]] as const) {
    const hp = resolveHparams('rome', model, { overrides: { template_key_average: average } }).hparams;
    const got = templateKeys(model, [req], groups, layer, hp);
    assert.ok(rel(got, want) < 1e-5, `${average}: k* differs from the hand mean by ${rel(got, want)}`);
  }
});

test('v* optimisation by hand: the first Adam step moves every coordinate by lr against the gradient, ‖δ‖ is clamped to clamp·‖v₀‖, and the loss parts are the NLL, kl_factor × the mean KL and the weight decay', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await load('stories260K');
  const tok = model.tok(), d = model.config.hidden, V = model.config.vocabSize, L = model.config.layers;
  const { hparams } = resolveHparams('rome', model, { overrides: { mom2_adjustment: false, context_template_length_params: [[6, 2]], kl_prompts: ['{} is a', 'The friend of {} was'] } });
  const [req] = prepareRequests(model, [{ prompt: 'Lily went to the park with {}', subject: 'her mom', targetNew: 'the dog' }], hparams);
  const job = buildJob(tok, req, contextTemplates(model, templateSettings(hparams)).flat(), hparams);
  assert.equal(job.kl.length, 2);
  const point = hookPoint.mlpOut(1);
  const s: VStarSettings = { point, lossLayer: L - 1, steps: 2, lr: 1e-3, weightDecay: 0, clampFactor: 1e6, klFactor: 0, earlyStop: 0 };
  // Step 1 from δ = 0 with torch's bias correction: m̂ = g, v̂ = g², so δ = −lr · sign(g).
  const st: JobState = { job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(d) };
  const g = evaluateJobs(model, [st], s, true).grads![0];
  const [one] = optimiseTargets(model, [job], s);
  assert.equal(one.iterations, 2);
  for (let i = 0; i < d; i++) {
    assert.ok(Math.abs(g[i]) > 1e-6, 'a gradient far from Adam\'s eps');
    assert.ok(Math.abs(one.delta[i] + s.lr * Math.sign(g[i])) < 1e-3 * s.lr, `δ[${i}] = ${one.delta[i]}, gradient ${g[i]}`);
  }
  // A step far longer than the ball: δ ends on its surface.
  const [big] = optimiseTargets(model, [job], { ...s, steps: 3, lr: st.initNorm, clampFactor: 0.1 });
  const bn = Math.hypot(...big.delta);
  assert.ok(Math.abs(bn - 0.1 * st.initNorm) < 1e-5 * st.initNorm, `‖δ‖ ${bn} vs 0.1·‖v₀‖ = ${0.1 * st.initNorm}`);
  // The loss parts at a random δ, from plain forwards with δ added at the lookup token.
  const rand = mulberry32(2);
  for (let i = 0; i < d; i++) st.delta[i] = (rand() - 0.5) * st.initNorm / Math.sqrt(d);
  const full = { ...s, weightDecay: 0.3, klFactor: 0.7 };
  const [e] = evaluateJobs(model, [st], full, false).evals;
  const logProbs = (ids: number[], rows: number[], lookup: number, withDelta: boolean): Float64Array[] => {
    const hooks = withDelta ? [addAt(point, [lookup], new Tensor(st.delta.slice(), [1, d]))] : [];
    const logits = noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: rows, hooks })).logits!.data;
    return rows.map((_, r) => {
      const row = Float64Array.from(logits.subarray(r * V, (r + 1) * V));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      return row.map((x) => x - lse);
    });
  };
  let nll = 0;
  for (const q of job.rewriting) {
    const lp = logProbs(q.ids, q.scorePositions, q.lookup, true);
    nll -= q.scoreTargets.reduce((a, t, j) => a + lp[j][t], 0) / q.scoreTargets.length / job.rewriting.length;
  }
  let kl = 0;
  for (const q of job.kl) {
    const [p0] = logProbs(q.ids, [q.lookup], q.lookup, false), [p1] = logProbs(q.ids, [q.lookup], q.lookup, true);
    let x = 0;
    for (let v = 0; v < V; v++) x += Math.exp(p1[v]) * (p1[v] - p0[v]);
    kl += (full.klFactor * x) / job.kl.length;
  }
  const v0 = capture(point, [job.rewriting[0].lookup]);
  noGrad(() => model.forward(Int32Array.from(job.rewriting[0].ids), 1, job.rewriting[0].ids.length, { logitsAt: 'none', hooks: [v0.hook] }));
  const v0n = Math.hypot(...v0.value().data);
  const wd = (full.weightDecay * Math.hypot(...st.delta)) / (v0n * v0n);
  assert.ok(kl > 0 && Math.abs(e.kl - kl) <= 1e-4 * kl, `KL ${e.kl} vs ${kl} by hand`);
  assert.ok(Math.abs(e.nll - nll) <= 1e-5 * nll, `NLL ${e.nll} vs ${nll} by hand`);
  assert.ok(Math.abs(e.weightDecay - wd) <= 1e-5 * wd, `weight decay ${e.weightDecay} vs ${wd} by hand`);
  assert.ok(Math.abs(e.loss - (nll + kl + wd)) <= 1e-5 * e.loss);
});
