// Where a single-layer, single-edit MEMIT update loses the effect of its z (results in
// bench/RESULTS.md, "Why one MEMIT edit on stories260K falls short of its z").
//
//   node dist/bench/memit-realisation.js [--model DIR] [--layers 0,3] [--lambda 1] [--requests FILE]
//
// For each request and layer, with λ = mom2_update_weight:
//   zAvg     z's own score: the mean over the context-template prompts of exp(−NLL per target
//            token), the number compute_z prints as "avg prob" (VStarResult.targetProb);
//   zPlain   P(new) of the plain prompt (all target tokens, as `amend edit` prints it) with z − h
//            added at the edited layer's output at the lookup token only;
//   cos, g   cosine of the plain prompt's key and the template-averaged key k*, and kᵀ(λC)⁻¹k for k*;
//   share    (ΔW k_plain)·r / ‖r‖² = Xᵀk_plain: the part of r = z − h the update writes at the plain key;
//   lookup   P(new) with only that realised change, at the lookup token;
//   edited   P(new) of the edited model: a one-layer rank-one edit adds c_t·r at every position t
//            (c_t = Xᵀk_t; keys of the edited layer do not depend on its own output), so the gap
//            from `lookup` is the edit firing at the prompt's other tokens and the fed target tokens;
//   spill    max |c_t| over the other positions;
//   and the same for ROME at that layer (v* − o injected at the MLP output, then the edited model).
import fs from 'node:fs';
import path from 'node:path';
import { CausalLM } from '../src/models/model.js';
import { addAt, capture, hookPoint } from '../src/models/hooks.js';
import { resolveHparams, type EditHparams } from '../src/editors/hparams.js';
import { encodePrompt, lookupIndex, prepareRequests, type PreparedRequest } from '../src/editors/common/prompts.js';
import { promptActivations } from '../src/editors/common/keys.js';
import { secondMoments, solveCov } from '../src/editors/common/stats.js';
import { computeMemit } from '../src/editors/memit/index.js';
import { computeRome } from '../src/editors/rome/index.js';
import { Timings } from '../src/editors/common/run.js';
import type { EditRequest } from '../src/editors/types.js';
import * as T from '../src/tensor/index.js';
import { intListFlag, numFlag, parseFlags, runBench, strFlag } from './common.js';

const STORIES: EditRequest[] = [
  { prompt: '{} went to the', subject: 'Lily', targetNew: 'zoo' },
  { prompt: 'Once upon a time, there was a girl named {}. She loved to', subject: 'Lily', targetNew: 'swim' },
  { prompt: '{} was very', subject: 'The big dog', targetNew: 'sad' },
  { prompt: '{} lived in a small', subject: 'Tom', targetNew: 'boat' },
  { prompt: 'The favorite color of {} was', subject: 'Mia', targetNew: 'green' },
  { prompt: '{} said to his mom,', subject: 'Timmy', targetNew: 'Look' },
  { prompt: '{} is a', subject: 'Spot', targetNew: 'cat' },
  { prompt: '{} wanted to be a', subject: 'Anna', targetNew: 'doctor' },
];

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function fmt(x: number): string {
  return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(1) : x.toFixed(3);
}

interface Probe {
  ids: number[];
  promptLen: number;
  lookup: number;
  /** Keys of `layer` at every position of prompt + target (but its last token), [len, f]. */
  keys: Float32Array;
}

function probe(model: CausalLM, req: PreparedRequest, layer: number, hp: EditHparams): Probe {
  const tok = model.tok();
  const prompt = encodePrompt(tok, req.template, req.subject);
  const ids = [...prompt, ...req.targetIds.slice(0, -1)];
  const cap = capture(hookPoint.mlpKeys(layer));
  T.noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'none', hooks: [cap.hook] }));
  return { ids, promptLen: prompt.length, lookup: lookupIndex(tok, req.template, req.subject, hp.fact_token), keys: cap.value().data.slice() };
}

/** Joint P(target | plain prompt) with coef[t]·r added at `point` at every position t. */
function jointP(model: CausalLM, p: Probe, target: readonly number[], point: string, coef: readonly number[], r: ArrayLike<number>): number {
  const d = model.config.hidden, V = model.config.vocabSize;
  const rows: number[] = [], vals: number[] = [];
  coef.forEach((c, t) => {
    if (c === 0) return;
    rows.push(t);
    for (let i = 0; i < d; i++) vals.push(c * r[i]);
  });
  const hooks = rows.length > 0 ? [addAt(point, rows, new T.Tensor(Float32Array.from(vals), [rows.length, d]))] : [];
  const at = target.map((_, j) => p.promptLen - 1 + j);
  const lp = T.noGrad(() => T.logSoftmax(model.forward(Int32Array.from(p.ids), 1, p.ids.length, { logitsAt: at, hooks }).logits!));
  let s = 0;
  target.forEach((id, j) => { s += lp.data[j * V + id]; });
  return Math.exp(s);
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [], ['model', 'layers', 'lambda', 'requests']);
  const dir = path.resolve(strFlag(flags, 'model') ?? path.join('..', 'shared', 'models', 'stories260K'));
  const layers = intListFlag(flags, 'layers', [0, 3], 0);
  const lambda = numFlag(flags, 'lambda', 1, 0);
  const file = strFlag(flags, 'requests');
  const requests = file ? JSON.parse(fs.readFileSync(file, 'utf8')) as EditRequest[] : STORIES;
  const model = await CausalLM.load(dir);
  const f = model.config.ffn;
  console.log(`${dir}, MEMIT λ = ${lambda}; P = joint P(new) on the plain prompt`);
  console.log('| layer | request | P before | z avg prob | z plain | cos(k, k*) | g(k*) | share | MEMIT lookup only | MEMIT edited | spill | ROME v* plain | ROME edited |');
  console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const layer of layers) {
    const hpM = resolveHparams('memit', model, { overrides: { layers: [layer], mom2_update_weight: lambda } }).hparams;
    const hpR = resolveHparams('rome', model, { overrides: { layers: [layer] } }).hparams;
    const [sm] = await secondMoments(model, [layer], hpM);
    const stats = new Map([[layer, sm]]);
    const point = hookPoint.mlpOut(layer); // adding at the MLP output = adding at the block output
    for (const r0 of requests) {
      const [req] = prepareRequests(model, [r0], hpM);
      const p = probe(model, req, layer, hpM);
      const none = p.ids.map(() => 0);
      const before = jointP(model, p, req.targetIds, point, none, new Float32Array(model.config.hidden));
      // MEMIT
      const out = computeMemit(model, [req], hpM, stats, new Timings(), undefined, true);
      const { K, R, X } = out.systems![0];
      const kPlain = promptActivations(model, [req], [hookPoint.mlpKeys(layer)], hpM).get(hookPoint.mlpKeys(layer))!;
      const g = dot(K, solveCov(sm, K)) / lambda;
      const cos = dot(kPlain, K) / Math.sqrt(dot(kPlain, kPlain) * dot(K, K));
      const c = none.map((_, t) => dot(X, p.keys.subarray(t * f, (t + 1) * f)));
      const only = none.map((_, t) => (t === p.lookup ? c[t] : 0));
      const unit = none.map((_, t) => (t === p.lookup ? 1 : 0));
      const spill = Math.max(...c.map((x, t) => (t === p.lookup ? 0 : Math.abs(x))));
      // ROME: ΔW k_t = (uᵀk_t) v
      const ro = computeRome(model, [req], hpR, stats, new Timings(), undefined, true);
      const { u, v } = ro.vectors![0];
      const cr = none.map((_, t) => dot(u, p.keys.subarray(t * f, (t + 1) * f)));
      const crOnly = none.map((_, t) => (t === p.lookup ? cr[t] : 0));
      console.log(`| ${layer} | ${r0.subject} → ${r0.targetNew} | ${fmt(before)} | ${fmt(out.z[0].targetProb)} | ${fmt(jointP(model, p, req.targetIds, point, unit, R))} | ` +
        `${fmt(cos)} | ${fmt(g)} | ${fmt(c[p.lookup])} | ${fmt(jointP(model, p, req.targetIds, point, only, R))} | ${fmt(jointP(model, p, req.targetIds, point, c, R))} | ` +
        `${fmt(spill / Math.abs(c[p.lookup]))} | ${fmt(jointP(model, p, req.targetIds, point, crOnly, v))} | ${fmt(jointP(model, p, req.targetIds, point, cr, v))} |`);
    }
  }
}

runBench(main);
