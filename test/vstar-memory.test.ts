// What the v*/z optimisation keeps alive while a batch's graph is backpropagated: the batch's
// logits (rows × vocabulary, the largest activation of the pass after the head) and the KL
// term's temporaries are not read by any backward, so they must be collectable by then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CausalLM } from '../src/models/model.js';
import { hookPoint } from '../src/models/hooks.js';
import { isGradEnabled, record } from '../src/tensor/index.js';
import { resolveHparams } from '../src/editors/index.js';
import { buildJob, prepareRequests } from '../src/editors/common/prompts.js';
import { contextTemplates, templateSettings } from '../src/editors/common/templates.js';
import { evaluateJobs, type JobState, type VStarSettings } from '../src/editors/common/vstar.js';
import { gcFunction, sharedDir } from './helpers.js';

const models = sharedDir('models');

test('v*/z: a batch\'s logits are collectable before the backward pass reaches the edited point', { skip: models ? false : 'no ../shared/models' }, async () => {
  const gc = gcFunction();
  const model = await CausalLM.load(`${models}/tiny-random-gpt2`);
  const L = model.config.layers;
  const { hparams } = resolveHparams('rome', model, { overrides: { mom2_adjustment: false, context_template_length_params: [[6, 2]] } });
  const [req] = prepareRequests(model, [{ prompt: 'Lily went to the park with {}', subject: 'her mom', targetNew: 'the dog' }], hparams);
  const job = buildJob(model.tok(), req, contextTemplates(model, templateSettings(hparams)).flat(), hparams);
  assert.ok(job.kl.length > 0, 'a KL prompt exercises the KL term');

  // Finalisers run after the turn that collected their target, so the probe below (at the
  // bottom of the graph: its backward runs after every op above the edited point) collects, and
  // the test reads afterwards which arrays that collection found unreachable. A WeakRef cannot
  // tell: it keeps its target alive for the whole turn it was made in.
  const collected = new Set<string>();
  const registry = new FinalizationRegistry<string>((what) => collected.add(what));
  let probes = 0;
  let point = ''; // the edited point of the current case: the probe goes right after δ there
  const forward = model.forward.bind(model);
  model.forward = (ids, B, T, opts = {}) => {
    if (!isGradEnabled()) return forward(ids, B, T, opts);
    const probe = { point, fn: (x: Parameters<typeof record>[3][0]) => record('probe', x.data.slice(), x.shape, [x], (g) => { gc(); probes++; return [g]; }) };
    const out = forward(ids, B, T, { ...opts, hooks: [...opts.hooks!, probe] });
    registry.register(out.logits!.data, `logits ${probes}`);
    return out;
  };
  // ROME's point with the model's head; MEMIT's with a logit lens (the KL rows' logits from the head).
  for (const [at, lossLayer, reusePrefix] of [[hookPoint.mlpOut(1), L - 1, true], [hookPoint.mlpOut(1), L - 1, false], [hookPoint.residPost(1), 1, true]] as const) {
    point = at;
    const s: VStarSettings = { point, lossLayer, steps: 2, lr: 0.5, weightDecay: 0.5, clampFactor: 4, klFactor: 0.5, earlyStop: 0 };
    collected.clear();
    probes = 0;
    const st: JobState = { job, init: null, initNorm: 0, klInit: null, delta: new Float32Array(model.config.hidden) };
    evaluateJobs(model, [st], { ...s, reusePrefix }, false); // records v₀ and the KL's initial distributions
    st.delta.fill(0.01);
    // One batch: what its own probe's collection found is all the finalisers can report (the
    // array becomes unreachable anyway once evaluateJobs returns, and no collection runs then).
    const { grads } = evaluateJobs(model, [st], { ...s, reusePrefix }, true);
    assert.ok(grads![0].some((x) => x !== 0), 'a gradient reached δ');
    assert.equal(probes, 1, 'one batch');
    for (let i = 0; i < 20 && collected.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual([...collected], ['logits 0'], `${point}, loss layer ${lossLayer}, reusePrefix ${reusePrefix}: the logits were still held when the backward pass reached the edited point`);
  }
});
