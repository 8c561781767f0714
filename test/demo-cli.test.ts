// amend demo on the built-in world with a small MEMIT batch: the output's structure (text and
// --json), the exact revert, the model's files left as they were, and one-line errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertOneLineError, type CliResult, repoRoot, runCli } from './helpers.js';

const WORLD = path.join(repoRoot(), 'world');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-demo-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args, path.join(tmp, 'cache'));
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

/** Name, size and sha256 of every file in world/, to show the demo writes nothing there. */
function worldState(): string[] {
  return fs.readdirSync(WORLD).sort().map((f) => {
    const p = path.join(WORLD, f);
    const st = fs.statSync(p);
    return st.isFile() ? `${f} ${st.size} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}` : `${f}/`;
  });
}

test('amend demo --n 5 --json: facts before, ROME probes, MEMIT batch, scores, exact revert; world/ untouched', () => {
  const before = worldState();
  const r = amend('demo', '--n', '5', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(worldState(), before, 'the demo changed files in world/');
  const o = JSON.parse(r.stdout);
  assert.equal(o.model.modelType, 'gpt2');
  assert.equal(o.data.format, 'amend-world');
  assert.ok(o.data.cases > 100);

  // 1. the ROME case and three of the batch, before any edit: the model knows the true objects
  assert.equal(o.before.length, 4);
  for (const f of o.before) {
    assert.equal(typeof f.completion, 'string');
    assert.ok(f.pTrue > f.pNew, `${f.prompt}: P(true) ${f.pTrue} ≤ P(new) ${f.pNew}`);
  }

  // 2. ROME: the four probes, before and after
  assert.deepEqual(o.rome.probes.map((p: { role: string }) => p.role), ['edited', 'paraphrase', 'neighbour', 'multi-hop']);
  const [edited, , neighbour, hop] = o.rome.probes;
  assert.equal(edited.prompt, o.rome.case.prompt);
  assert.equal(neighbour.shouldChange, false);
  assert.ok(hop.trueAnswer && hop.trueAnswer !== hop.newAnswer, 'the multi-hop answer before the edit comes from world.json');
  for (const p of o.rome.probes) {
    for (const s of [p.before, p.after]) assert.ok(typeof s.completion === 'string' && s.pNew >= 0 && s.pNew <= 1);
  }
  assert.ok(edited.after.pNew > edited.before.pNew, 'ROME raised P(new) on the edited prompt');
  assert.ok(o.rome.timings.v_optimisation > 0);
  assert.equal(o.rome.reverted, true);

  // 3. MEMIT: five other cases in one batch
  assert.equal(o.memit.n, 5);
  assert.equal(o.memit.cases.length, 5);
  assert.equal(new Set(o.memit.cases).size, 5);
  assert.ok(!o.memit.cases.includes(o.rome.case.id), 'the MEMIT batch excludes the ROME case');
  assert.equal(o.memit.shown.length, 3);
  assert.ok(o.memit.timings.z_optimisation > 0);
  assert.equal(o.memit.reverted, true);

  // 4. the table: the evaluation module's metrics, each with its protocol, as fractions
  assert.deepEqual(o.table.map((t: { name: string }) => t.name), ['efficacy_score', 'paraphrase_score', 'neighborhood_score', 'portability_acc']);
  for (const t of o.table) {
    for (const v of [t.rome, t.memit]) assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${t.name}: ${v}`);
  }
  assert.equal(o.table[0].protocol, 'probability-comparison');
  const eff = o.memit.metrics.find((m: { name: string; protocol: string }) => m.name === 'efficacy_score' && m.protocol === 'probability-comparison');
  assert.equal(eff.count, 5);
  // The run summary's rows (as `amend eval` writes them): a regime, an interval, the sample std.
  // Efficacy per case is 0 or 1, so with mean p over n cases the sample std is √(n·p(1−p)/(n−1)).
  assert.equal(eff.regime, 'batch-5');
  assert.equal(eff.ci95.length, 2);
  close(eff.std, Math.sqrt((5 * eff.mean * (1 - eff.mean)) / 4));

  // 5. revert and time
  assert.equal(o.reverted, true);
  for (const k of ['load', 'before', 'rome', 'memit', 'score', 'revert', 'total']) assert.equal(typeof o.seconds[k], 'number', k);
});

test('amend demo (text): the five sections, --set passed to the methods, --n 0 skips MEMIT', () => {
  const r = amend('demo', '--n', '2', '--show', '1', '--set', 'v_num_grad_steps=10');
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^Amend demo: gpt2 model .*world \(4 layers, hidden \d+\); \d+ benchmark cases/);
  assert.match(out, /hparams: ROME preset world \+ --set v_num_grad_steps, layers \[.*\]; MEMIT preset world \+ --set v_num_grad_steps/);
  assert.match(out, /\n1\. Facts before editing/);
  assert.match(out, /\n2\. ROME: ".*" \S.* → \S.* \(case \S+\)/);
  for (const role of ['edited', 'paraphrase', 'neighbour', 'multi-hop']) assert.match(out, new RegExp(`\\n {3}${role} +\\S`));
  assert.match(out, /\n {5}before ".*" +P\(/);
  assert.match(out, /\n {5}after {2}".*" +P\(/);
  assert.match(out, /\n3\. MEMIT: 2 edits in one batch/);
  assert.match(out, /\n4\. Scores/);
  assert.match(out, /efficacy \(P\(new\) > P\(true\), edited prompt\) +\d+\.\d % +\d+\.\d %/);
  assert.match(out, /\n5\. Reverted: the edited tensors are bit-identical/);
  assert.match(out, /time: load .* · rome .* · memit .* · total \d/);

  // mom2_update_weight is MEMIT's alone: ROME runs without it instead of refusing it.
  const z = amend('demo', '--n', '0', '--set', 'v_num_grad_steps=5', '--set', 'mom2_update_weight=1000', '--json');
  assert.equal(z.code, 0, z.stderr);
  const o = JSON.parse(z.stdout);
  assert.equal(o.memit, null);
  assert.equal(o.rome.reverted, true);
  assert.ok(o.table.every((t: { memit: unknown }) => t.memit === null));

  const h = amend('demo', '--help');
  assert.equal(h.code, 0);
  assert.match(h.stdout, /examples:\n {2}amend demo/);
});

test('amend demo: bad input is one line and exit 1', () => {
  assertOneLineError(amend('demo', '--case', 'no-such-case', '--n', '0'), /--case no-such-case: no benchmark case has that case_id/);
  assertOneLineError(amend('demo', '--n=-3'), /--n must be an integer ≥ 0/);
  assertOneLineError(amend('demo', '--case', '3', '--seed', '1'), /either --case .* or --seed/);
  assertOneLineError(amend('demo', '--data', path.join(tmp, 'missing.json')), /--data .*missing\.json: no such file/);
  // zsRE cases have no true object to compare with: the demo says so instead of asking for a --case none can be
  const zsre = path.join(tmp, 'zsre.json');
  fs.writeFileSync(zsre, JSON.stringify([1, 2].map((k) => ({
    subject: `Unifirm${k}`, src: `What is the product made by Unifirm${k}?`, rephrase: `What does Unifirm${k} make?`, alt: 'drones',
    answers: ['uniforms'], loc: 'nq question: who wrote hamlet', loc_ans: 'Shakespeare',
  }))));
  assertOneLineError(amend('demo', '--data', zsre), /none of the 2 cases has a true object, a paraphrase and a neighbourhood prompt/);
  assertOneLineError(amend('demo', '--n', '100000'), /--n 100000: the benchmark has only \d+ other case/);
  assertOneLineError(amend('demo', 'extra'), /unexpected argument "extra"/);
  assertOneLineError(amend('demo', '--set', 'no_such_hparam=1'), /unknown ROME hparam "no_such_hparam"/);
});
