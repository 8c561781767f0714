// The evaluation runner on a tiny checkpoint: every benchmark file of ../shared/data evaluated end
// to end (mechanics, not quality), the model restored exactly, batch and sequential regimes kept
// apart, an interrupted sequential run resumed to the same summary, report files that parse, and
// nothing left in the report folder when a run fails before its first checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM } from '../src/models/model.js';
import { EditPatch } from '../src/patch/patch.js';
import { PartialRun } from '../src/eval/checkpoint.js';
import { loadCases } from '../src/data/index.js';
import type { EditCase } from '../src/editors/types.js';
import { counterfactExclusion, localityBaselines, PARTIAL_DIR, runEval, scoreCases, sharedSubjectEdits, type EvalOptions, type EvalProgress, type EvalResult, type EvalSummary } from '../src/eval/index.js';
import { decodePng } from './png-decode.js';
import { editWithReport, resolveHparams } from '../src/editors/index.js';
import { editSession } from '../src/patch/session.js';
import { caseRequests } from '../src/data/index.js';
import { sharedDir, warningsOf } from './helpers.js';

const DATA = sharedDir('data');
const MODELS = sharedDir('models');
const skip = DATA && MODELS ? false : '../shared/data or ../shared/models is absent';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-eval-'));
process.env.AMEND_CACHE = path.join(tmp, 'cache');
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

// Cheap settings: the mechanics are under test, not the edits' quality.
const ROME: Pick<EvalOptions, 'method' | 'hparams'> = { method: 'rome', hparams: { v_num_grad_steps: 2, mom2_adjustment: false } };
const MEMIT: Pick<EvalOptions, 'method' | 'hparams'> = { method: 'memit', hparams: { v_num_grad_steps: 2, mom2_dataset: 'model-samples', mom2_n_samples: 40 } };

let modelP: Promise<CausalLM> | null = null;
const tiny = () => (modelP ??= CausalLM.load(path.join(MODELS!, 'stories260K')));

const weightsCopy = (m: CausalLM) => new Map([...m.weights.entries()].map(([k, t]) => [k, t.data.slice()]));
function assertSameWeights(m: CausalLM, before: Map<string, Float32Array>): void {
  for (const [k, t] of m.weights.entries()) assert.ok(Buffer.from(t.data.buffer).equals(Buffer.from(before.get(k)!.buffer)), `weight ${k} changed`);
}

const heldout = () => ({ text: fs.readFileSync(path.join(DATA!, 'wikitext', 'wikitext-2-raw-test.txt'), 'utf8').slice(0, 8000) });
/** Summary rows without cost (wall time and memory differ between any two runs), also per split label. */
const noCost = (rows: EvalSummary['rows']) => rows.filter((r) => r.protocol !== 'cost');
const comparable = (s: EvalSummary) => ({
  rows: noCost(s.rows), drift: s.drift, cases: s.cases, failed: s.failed,
  bySplitLabel: s.bySplitLabel?.map((g) => ({ ...g, rows: noCost(g.rows) })),
});

test('every benchmark file in ../shared/data evaluates end to end (single edits, model restored exactly)', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const files = fs.readdirSync(DATA!).flatMap((sub) => {
    const dir = path.join(DATA!, sub);
    return fs.statSync(dir).isDirectory() ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f)) : [];
  });
  assert.ok(files.length >= 15, `${files.length} benchmark files`);
  for (const file of files) {
    const { cases, format } = loadCases(file, { limit: 1 });
    const rel = path.relative(DATA!, file);
    if (!cases[0]!.subject) {
      // EvEdit has no subjects: one up-front error instead of a refusal per case.
      await assert.rejects(runEval(m, cases, { ...ROME, data: { file, format } }), /names a subject/, rel);
      continue;
    }
    // A case the editor refuses up front (a prompt longer than the model takes, ...) ends the run
    // before any work, with the reason; say which, so a loader/editor mismatch is visible.
    const r = await runEval(m, cases, { ...ROME, data: { file, format } }).catch((e: Error) => {
      assert.match(e.message, /refused all 1 case\(s\), so nothing was measured/, rel);
      console.log(`${rel}: ${e.message}`);
      return null;
    });
    if (r === null) continue;
    assert.equal(r.records.length, 1, rel);
    const rec = r.records[0]!;
    assert.equal(rec.regime, 'single');
    if (rec.error) {
      // An editor refusal is recorded, not fatal; say which, so a loader/editor mismatch is visible.
      console.log(`${rel}: the editor refused the case: ${rec.error}`);
      continue;
    }
    const names = new Set(rec.metrics.map((x) => x.name));
    assert.ok(names.has('rewrite_acc'), `${rel}: rewrite_acc`);
    assert.ok(names.has('edit_time') && names.has('peak_rss'), `${rel}: cost`);
    // P(new) > P(true) needs two targets: ROME's known_1000 (causal tracing) names the known answer as both.
    assert.equal(names.has('efficacy_score'), counterfactExclusion(cases[0]!) === undefined, `${rel}: efficacy_score`);
    assert.ok(r.summary!.rows.every((row) => row.regime === 'single'));
    assertSameWeights(m, before);
  }
});

test('batch sweep: one row group per batch size, plots against batch size; sequential protocols tagged apart', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 4 });
  const out = path.join(tmp, 'batch');
  const r = await runEval(m, cases, { ...MEMIT, mode: { batch: [2, 4] }, out });
  assertSameWeights(m, before);
  assert.equal(r.records.length, 8);
  assert.deepEqual([...new Set(r.summary!.rows.map((x) => x.regime))], ['batch-2', 'batch-4']);
  assert.deepEqual(r.records.map((x) => x.batch), [0, 0, 1, 1, 0, 0, 0, 0]);
  // The four cases span two relations (P176 ×3, P30): the summary breaks the scores down by them.
  assert.deepEqual(r.records.slice(0, 4).map((x) => x.relation), cases.map((c) => c.relationId));
  assert.deepEqual([...new Set(r.summary!.byRelation!.map((x) => `${x.regime} ${x.relation}`))], ['batch-2 P176', 'batch-2 P30', 'batch-4 P176', 'batch-4 P30']);
  const p30 = r.summary!.byRelation!.find((x) => x.regime === 'batch-4' && x.relation === 'P30' && x.name === 'rewrite_acc')!;
  assert.equal(p30.count, 1);
  assert.equal(p30.mean, r.records.find((x) => x.regime === 'batch-4' && x.index === 3)!.metrics.find((x) => x.name === 'rewrite_acc')!.value);
  assert.match(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'), /## By relation[\s\S]*\| P30 \| 1 \|/);
  const svg = fs.readFileSync(path.join(out, 'plot-token-accuracy.svg'), 'utf8');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, />batch size</);
  assert.match(svg, /<polyline /);

  const imm = await runEval(m, cases, { ...ROME, mode: { sequential: 3 }, protocol: 'immediate' });
  const fin = await runEval(m, cases, { ...ROME, mode: { sequential: 3 }, protocol: 'final' });
  assertSameWeights(m, before);
  assert.deepEqual(imm.records.map((x) => [x.regime, x.edit, x.scoredAfter]), [['score-after-each', 1, 1], ['score-after-each', 2, 2], ['score-after-each', 3, 3]]);
  assert.deepEqual(fin.records.map((x) => [x.regime, x.edit, x.scoredAfter]), [['apply-all-then-score', 1, 3], ['apply-all-then-score', 2, 3], ['apply-all-then-score', 3, 3]]);
  // The last case is scored on the same stack (all three edits) either way; the first is scored
  // after its own edit only, or after all three.
  const logProbs = (rec: (typeof imm.records)[number]) => rec.items!.map((x) => x.meanLogProb);
  assert.deepEqual(logProbs(fin.records[2]!), logProbs(imm.records[2]!));
  assert.notDeepEqual(logProbs(fin.records[0]!), logProbs(imm.records[0]!));
});

for (const [label, method, protocol] of [['ROME, score-after-each', ROME, 'immediate'], ['MEMIT, apply-all-then-score', MEMIT, 'final']] as const) {
  test(`an interrupted sequential run (${label}) resumes from its last checkpoint to the same summary`, { skip }, async () => {
    const m = await tiny();
    const before = weightsCopy(m);
    // Run split labels as MQuAKE-Remastered's CF-6334 gives them, so that the summary has a per-label part to resume.
    const cases = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 7 }).cases
      .map((c, i) => ({ ...c, split: { '7': i % 3 === 0 ? ['test_edited'] : i === 4 ? ['train_edited', 'test_edited'] : ['train_edited'] } }));
    const opts: EvalOptions = { ...method, mode: { sequential: 7 }, protocol, checkpointEvery: 2, heldout: heldout(), heldoutTokens: 200, data: { split: '7' } };
    const whole = await runEval(m, cases, { ...opts, out: path.join(tmp, `whole-${protocol}`) });
    assert.deepEqual(whole.summary!.bySplitLabel!.map((g) => [g.label, g.cases]), [['test_edited', 4], ['train_edited', 4]]);

    const out = path.join(tmp, `resumed-${protocol}`);
    // A crash after the fifth edit (a progress callback throwing), between checkpoints at 4 and 6.
    await assert.rejects(runEval(m, cases, { ...opts, out, onProgress: (p) => { if (p.stage === 'edit' && p.done === 5) throw new Error('crash'); } }), /crash/);
    assertSameWeights(m, before);
    assert.ok(!fs.existsSync(path.join(out, 'summary.json')), 'no report before the run finished');
    const cp = JSON.parse(fs.readFileSync(path.join(out, PARTIAL_DIR, 'checkpoint.json'), 'utf8'));
    assert.equal(cp.done, 4, 'the last checkpoint is at 4 edits');
    assert.equal(cp.patches.length, 4);
    await assert.rejects(runEval(m, cases, { ...opts, out }), /holds an interrupted run \(4 of 7 done\); pass --resume \(resume: true\) to continue it or --force \(force: true\) to start over/);
    await assert.rejects(runEval(m, cases.slice(1), { ...opts, mode: { sequential: 6 }, out, resume: true }), /other settings/);

    // A crash after the resume (a callback throwing once the last edit is checkpointed, before the
    // report): the next resume starts from that checkpoint.
    await assert.rejects(runEval(m, cases, { ...opts, out, resume: true, onProgress: (p) => { if (p.stage === 'edit' && p.done === 7) throw new Error('boom'); } }), /boom/);
    assertSameWeights(m, before);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, PARTIAL_DIR, 'checkpoint.json'), 'utf8')).done, 7);

    const resumed = await runEval(m, cases, { ...opts, out, resume: true });
    assertSameWeights(m, before);
    assert.deepEqual(comparable(resumed.summary!), comparable(whole.summary!));
    assert.deepEqual(resumed.drift.map((d) => d.edits), [0, 2, 4, 6, 7]);
    const lines = (dir: string) => fs.readFileSync(path.join(dir, 'cases.jsonl'), 'utf8').trim().split('\n').map((l) => {
      const r = JSON.parse(l);
      return { ...r, cost: undefined, metrics: r.metrics.filter((x: { protocol: string }) => x.protocol !== 'cost') };
    });
    assert.deepEqual(lines(out), lines(path.join(tmp, `whole-${protocol}`)));
    assert.ok(!fs.existsSync(path.join(out, PARTIAL_DIR)), 'the partial state is gone once the report is written');
  });
}

test('ConvSent: es_sent, z_sent, z_topic and dd in single, batch and sequential runs, dd against the unedited model exactly', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'knowedit', 'benchmark_Convsent_blender_test.json'), { limit: 3 });
  const resolved = resolveHparams('rome', m, { overrides: ROME.hparams });
  const sentiment = (r: EvalResult) => r.records.map((x) => x.metrics.filter((y) => y.protocol === 'sentiment-likelihood').map((y) => [y.name, y.value]));
  const names = [['es_sent', 'z_sent', 'z_topic', 'dd']];
  const runs = {
    single: await runEval(m, cases, { method: 'rome', resolved }),
    batch: await runEval(m, cases, { method: 'rome', resolved, mode: { batch: 3 } }),
    final: await runEval(m, cases, { method: 'rome', resolved, mode: { sequential: 3 }, protocol: 'final' }),
    immediate: await runEval(m, cases, { method: 'rome', resolved, mode: { sequential: 3 } }),
  };
  assertSameWeights(m, before);
  for (const [mode, r] of Object.entries(runs)) {
    assert.deepEqual(sentiment(r).map((ms) => ms.map(([n]) => n)), [...names, ...names, ...names], mode);
    assert.ok(sentiment(r).every((ms) => ms.every(([, v]) => Number.isFinite(v))), mode);
    assert.ok(sentiment(r).every((ms) => (ms[3]![1] as number) > 0), `${mode}: an edit moves the next topic's distributions`);
  }
  // The last case of score-after-each is scored on the same three edits as under apply-all-then-score.
  assert.deepEqual(sentiment(runs.immediate)[2], sentiment(runs.final)[2]);
  // Resumed after two edits in a new run: the same numbers (the unedited model is the one given, not
  // the one with the checkpoint's patches re-applied).
  const out = path.join(tmp, 'convsent-resume');
  const opts: EvalOptions = { method: 'rome', resolved, mode: { sequential: 3 }, checkpointEvery: 1, out };
  assert.ok((await runEval(m, cases, { ...opts, stopAfter: 2 })).interrupted);
  assert.deepEqual(sentiment(await runEval(m, cases, { ...opts, resume: true })), sentiment(runs.immediate));

  // By hand: the same three edits stacked, and the unedited model by reverting them all and
  // re-applying them (another exact way, independent of the run's uneditedScope).
  const baselines = localityBaselines(m, cases);
  const session = editSession(m);
  for (const c of cases) session.apply((await editWithReport(m, caseRequests(c), { method: 'rome', resolved, allowUnchanged: true })).patch);
  const byRevert = <T>(fn: () => T): T => {
    const patches = session.revertAll();
    try {
      return fn();
    } finally {
      for (const p of patches) session.apply(p, { quiet: true });
    }
  };
  const ref = scoreCases(m, cases, { baselines, unedited: byRevert });
  session.revertAll();
  assertSameWeights(m, before);
  assert.deepEqual(sentiment(runs.final), ref.map((s) => s.metrics.filter((y) => y.protocol === 'sentiment-likelihood').map((y) => [y.name, y.value])));
});

test("progress counts units; protocol final's scoring after the last unit counts its cases apart", { skip }, async () => {
  const m = await tiny();
  const { cases } = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 18 });
  const events: EvalProgress[] = [];
  await runEval(m, cases, { ...MEMIT, mode: { sequential: 18, step: 9 }, protocol: 'final', onProgress: (p) => events.push({ ...p }) });
  for (const p of events) assert.ok(p.done <= p.total && p.total === 2, `${p.stage} ${p.done}/${p.total}`);
  // Its pace is in the cases: 0, 16, then all 18 scored.
  assert.deepEqual(events.filter((p) => p.cases).map((p) => [p.stage, p.done, p.cases!.done, p.cases!.total]), [['score', 2, 0, 18], ['score', 2, 16, 18], ['score', 2, 18, 18]]);
});

test('sequential steps (sequential:T/K): K cases per edit call, stacked; edits counted in cases; resumable', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 5 });
  const opts: EvalOptions = { ...MEMIT, mode: { sequential: 5, step: 2 }, checkpointEvery: 1, heldout: heldout(), heldoutTokens: 200 };
  const imm = await runEval(m, cases, opts);
  assert.deepEqual(imm.records.map((x) => [x.index, x.regime, x.edit, x.scoredAfter]),
    [[0, 'score-after-each', 2, 2], [1, 'score-after-each', 2, 2], [2, 'score-after-each', 4, 4], [3, 'score-after-each', 4, 4], [4, 'score-after-each', 5, 5]]);
  assert.deepEqual(imm.drift.map((d) => d.edits), [0, 2, 4, 5]);
  assertSameWeights(m, before);

  const whole = await runEval(m, cases, { ...opts, protocol: 'final', out: path.join(tmp, 'steps-whole') });
  assert.deepEqual(whole.records.map((x) => [x.edit, x.scoredAfter]), [[2, 5], [2, 5], [4, 5], [4, 5], [5, 5]]);
  // Every case of a step carries that step's edit cost (one call edited them together).
  assert.equal(whole.records[0]!.cost!.editSeconds, whole.records[1]!.cost!.editSeconds);
  assert.deepEqual(whole.summary!.config.mode, { sequential: 5, step: 2 });
  assert.match(fs.readFileSync(path.join(tmp, 'steps-whole', 'summary.md'), 'utf8'), /mode: sequential:5\/2, protocol apply-all-then-score/);

  const out = path.join(tmp, 'steps-resumed');
  const stopped = await runEval(m, cases, { ...opts, protocol: 'final', out, stopAfter: 2 });
  assert.deepEqual(stopped.interrupted, { done: 2, total: 3, resumable: true }, 'three steps: 2 + 2 + 1 cases');
  const cp = JSON.parse(fs.readFileSync(path.join(out, PARTIAL_DIR, 'checkpoint.json'), 'utf8'));
  assert.equal(cp.patches.length, 2, 'one patch per step');
  const partial = new PartialRun(out);
  assert.deepEqual(cp.patches.map((f: string) => EditPatch.load(partial.patchPath(f)).metadata.requests.length), [2, 2], 'two requests in each');
  assert.deepEqual(cp.pending.map((p: { index: number; edit: number }) => [p.index, p.edit]), [[0, 2], [1, 2], [2, 4], [3, 4]]);
  await assert.rejects(runEval(m, cases, { ...opts, mode: { sequential: 5, step: 1 }, protocol: 'final', out, resume: true }), /other settings/);
  const resumed = await runEval(m, cases, { ...opts, protocol: 'final', out, resume: true });
  assertSameWeights(m, before);
  assert.deepEqual(comparable(resumed.summary!), comparable(whole.summary!));

  // One step of all T cases, scored after it, is one batch of T.
  const scores = (r: EvalResult) => r.records.map((x) => x.metrics.filter((y) => y.protocol !== 'cost'));
  const oneStep = await runEval(m, cases.slice(0, 4), { ...MEMIT, mode: { sequential: 4, step: 4 }, protocol: 'final' });
  const oneBatch = await runEval(m, cases.slice(0, 4), { ...MEMIT, mode: { batch: 4 } });
  assert.deepEqual(scores(oneStep), scores(oneBatch));
  assertSameWeights(m, before);

  await assert.rejects(runEval(m, cases, { ...MEMIT, mode: { sequential: 3, step: 4 } }), /step K from 1 to T=3, got 4/);
  assert.deepEqual(sharedSubjectEdits([...cases, ...cases], { sequential: 10, step: 5 }).map((x) => x.batchSize), [5]);
});

test('--stop-after between checkpoints still leaves one to resume from; a run killed while moving its report resumes; --force keeps the old report beside the stopped run', { skip }, async () => {
  const m = await tiny();
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 4 });
  const opts: EvalOptions = { ...ROME, mode: { sequential: 4 }, protocol: 'final' }; // checkpointEvery 10 by default
  const whole = await runEval(m, cases, opts);
  const out = path.join(tmp, 'stop-between');
  assert.deepEqual((await runEval(m, cases, { ...opts, out, stopAfter: 3 })).interrupted, { done: 3, total: 4, resumable: true });
  const resumed = await runEval(m, cases, { ...opts, out, resume: true });
  assert.deepEqual(comparable(resumed.summary!), comparable(whole.summary!));

  // The finished report was being moved when the run died: cases.jsonl already out, checkpoint left.
  const again = path.join(tmp, 'killed-in-report');
  await runEval(m, cases, { ...opts, out: again, stopAfter: 3 });
  fs.renameSync(path.join(again, PARTIAL_DIR, 'cases.jsonl'), path.join(again, 'cases.jsonl'));
  const afterKill = await runEval(m, cases, { ...opts, out: again, resume: true });
  assert.deepEqual(comparable(afterKill.summary!), comparable(whole.summary!));
  assert.ok(fs.existsSync(path.join(again, 'summary.json')) && !fs.existsSync(path.join(again, PARTIAL_DIR)));

  // --force over a finished report: the report stays beside the stopped run until a run finishes.
  const report = filesIn(again);
  assert.deepEqual((await runEval(m, cases, { ...opts, out: again, force: true, stopAfter: 1 })).interrupted, { done: 1, total: 4, resumable: true });
  assert.deepEqual(filesIn(again), report);
  assert.ok(fs.existsSync(path.join(again, PARTIAL_DIR)));
});

/** The report files of a folder and their bytes. */
const filesIn = (dir: string) => Object.fromEntries(fs.readdirSync(dir).filter((f) => f !== PARTIAL_DIR).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));

test('--force keeps the report it replaces until the new run finishes: a run that fails mid-way leaves it byte for byte', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 4 });
  const opts: EvalOptions = { ...ROME, mode: { sequential: 4 }, checkpointEvery: 1 };
  const out = path.join(tmp, 'force-fails');
  const first = await runEval(m, cases.slice(0, 3), { ...opts, mode: { sequential: 3 }, out });
  const report = filesIn(out);
  // An error in the third unit (a callback throwing), after two checkpoints.
  await assert.rejects(runEval(m, cases, { ...opts, out, force: true, onProgress: (p) => { if (p.stage === 'score' && p.done === 2) throw new Error('editor crashed'); } }), /editor crashed/);
  assertSameWeights(m, before);
  assert.deepEqual(filesIn(out), report, 'the earlier report is as it was');
  // And an error before the first checkpoint: no trace of the new run, the report as it was.
  await assert.rejects(runEval(m, cases, { ...opts, out, force: true, onProgress: (p) => { if (p.stage === 'score') throw new Error('at once'); } }), /at once/);
  assert.deepEqual(fs.readdirSync(out).sort(), Object.keys(report));
  assert.deepEqual(filesIn(out), report);
  // The new run finished: its report replaces the old one whole.
  const second = await runEval(m, cases, { ...opts, out, force: true });
  assert.equal(second.summary!.cases, 4);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).cases, 4);
  assert.equal(first.summary!.cases, 3);
  assert.equal(fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n').length, 4);
});

test('an aborted signal stops a run at the next unit with a checkpoint there; resumed, it ends with the uninterrupted summary', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 5 });
  const opts: EvalOptions = { ...ROME, mode: { sequential: 5 }, protocol: 'final', heldout: heldout(), heldoutTokens: 200 }; // checkpointEvery 10
  const whole = await runEval(m, cases, opts);
  const out = path.join(tmp, 'aborted');
  const stop = new AbortController();
  // Aborted while the third unit is edited (a callback of its editor; a signal handler runs between turns): the unit ends, then the run.
  let unitsSeen = 0;
  const stopped = await runEval(m, cases, {
    ...opts, out, signal: stop.signal,
    onProgress: (p) => { if (p.stage === 'edit') unitsSeen = p.done; },
    onEditProgress: (e) => { if (e.phase === 'rome' && unitsSeen === 2) stop.abort(); },
  });
  assert.deepEqual(stopped.interrupted, { done: 3, total: 5, resumable: true });
  assert.equal(stopped.summary, undefined);
  assertSameWeights(m, before);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, PARTIAL_DIR, 'checkpoint.json'), 'utf8')).done, 3, 'a checkpoint where it stopped, between the periodic ones');
  const resumed = await runEval(m, cases, { ...opts, out, resume: true, signal: new AbortController().signal });
  assert.deepEqual(comparable(resumed.summary!), comparable(whole.summary!));

  // Aborted after the last edit, while protocol final scores: resumed from the checkpoint after the last edit.
  const late = path.join(tmp, 'aborted-scoring');
  const stop2 = new AbortController();
  // 17 cases: two chunks to score (16 + 1), edited in one MEMIT call.
  const cases20 = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 17 }).cases;
  const opts20: EvalOptions = { ...MEMIT, mode: { sequential: 17, step: 17 }, protocol: 'final' };
  const whole20 = await runEval(m, cases20, opts20);
  const scoring = await runEval(m, cases20, { ...opts20, out: late, signal: stop2.signal, onProgress: (p) => { if (p.cases?.done === 0) stop2.abort(); } });
  assert.deepEqual(scoring.interrupted, { done: 1, total: 1, resumable: true });
  assertSameWeights(m, before);
  assert.deepEqual(comparable((await runEval(m, cases20, { ...opts20, out: late, resume: true })).summary!), comparable(whole20.summary!));

  // Aborted before it starts: it stops before the first unit, with a checkpoint there (resuming it is starting it).
  const early = path.join(tmp, 'aborted-early');
  assert.deepEqual((await runEval(m, cases, { ...opts, out: early, signal: AbortSignal.abort() })).interrupted, { done: 0, total: 5, resumable: true });
  await assert.rejects(runEval(m, cases, { ...opts, signal: {} as AbortSignal }), /runEval: signal must be an AbortSignal \(new AbortController\(\)\.signal\), got object/);
});

test('an aborted signal ends the key statistics at their next batch: nothing is cached, nothing written', { skip }, async () => {
  const m = await tiny();
  const { cases } = loadCases(path.join(DATA!, 'zsre', 'zsre_mend_train-1k.json'), { limit: 2 });
  const out = path.join(tmp, 'aborted-stats');
  const cacheDir = path.join(tmp, 'stats-cache-aborted');
  const stop = new AbortController();
  let batches = 0;
  const r = await runEval(m, cases, {
    ...MEMIT, out, signal: stop.signal, statsOptions: { cacheDir },
    onEditProgress: (e) => { if (e.phase === 'stats' && e.done > 0 && ++batches === 1) stop.abort(); },
  });
  assert.deepEqual(r.interrupted, { done: 0, total: 2, resumable: false });
  assert.equal(batches, 1, 'no batch after the abort');
  assert.ok(!fs.existsSync(out), 'the report folder it made is gone again');
  assert.deepEqual(fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir, { recursive: true }).filter((f) => String(f).endsWith('.safetensors')) : [], []);
});

test('report files exist and parse: summary.json, summary.md, cases.jsonl, SVG and PNG plots', { skip }, async () => {
  const m = await tiny();
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 3 });
  const out = path.join(tmp, 'report');
  const r = await runEval(m, cases, { ...ROME, mode: { sequential: 3 }, out, heldout: heldout(), heldoutTokens: 200, checkpointEvery: 1 });
  const names = fs.readdirSync(out).sort();
  assert.deepEqual(names.filter((f) => !f.startsWith('plot-')), ['cases.jsonl', 'summary.json', 'summary.md']);
  for (const base of ['plot-token-accuracy', 'plot-probability-comparison', 'plot-cost-seconds', 'plot-perplexity-drift']) {
    const svg = fs.readFileSync(path.join(out, `${base}.svg`), 'utf8');
    assert.match(svg, /<\/svg>\n$/, base);
    assert.match(svg, />number of edits</, base);
    const png = decodePng(fs.readFileSync(path.join(out, `${base}.png`)));
    assert.equal(png.width, 760);
    assert.equal(png.height, 440);
    assert.ok(png.rgb.some((v) => v < 128), `${base}.png has ink`);
  }
  const s = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as EvalSummary;
  assert.equal(s.cases, 3);
  assert.deepEqual(s.drift.map((d) => d.edits), [0, 1, 2, 3]);
  const eff = s.rows.find((x) => x.name === 'efficacy_score')!;
  assert.equal(eff.regime, 'score-after-each');
  assert.ok(eff.ci95[0] <= eff.mean && eff.mean <= eff.ci95[1]);
  assert.deepEqual(s, JSON.parse(JSON.stringify({ ...r.summary, files: s.files })));
  const md = fs.readFileSync(path.join(out, 'summary.md'), 'utf8');
  assert.match(md, /## score-after-each/);
  assert.match(md, /\| efficacy_score \| [0-9.]+ \| \[/);
  assert.match(md, /## Perplexity drift/);
  const lines = fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.index), [0, 1, 2]);
  assert.ok(lines.every((l) => l.items.length > 0 && l.cost.editSeconds > 0));
  await assert.rejects(runEval(m, cases, { ...ROME, out }), /already has a report/);
  await assert.rejects(runEval(m, cases, { ...ROME, out, resume: true }), /the run there has finished \(summary\.json\); nothing to resume/);
  // A file with a report's name alone (a plot of the user's) is not replaced without force either.
  const mine = path.join(tmp, 'plots-of-mine');
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, 'plot-mine.png'), 'mine');
  await assert.rejects(runEval(m, cases, { ...ROME, out: mine }), /plots-of-mine already has a report \(plot-mine\.png\); pass --force \(force: true\) to replace it/);
  assert.deepEqual(fs.readdirSync(mine), ['plot-mine.png']);
});

test('a run lets the event loop turn: a warning given before it is delivered while it runs, not after it', { skip }, async () => {
  const m = await tiny();
  const cases: EditCase[] = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 3 }).cases;
  let delivered = false;
  const listener = (w: Error) => { if (w.message === 'said before the run') delivered = true; };
  process.on('warning', listener);
  const seen: boolean[] = [];
  try {
    process.emitWarning('said before the run');
    await runEval(m, cases, { ...ROME, onProgress: (p) => { if (p.stage === 'edit') seen.push(delivered); } });
  } finally {
    process.removeListener('warning', listener);
  }
  // process.emitWarning delivers on a later tick, which a run of microtasks alone would hold back to its end.
  assert.deepEqual(seen, [true, true, true, true]);
});

test('a run that fails before its first checkpoint leaves nothing in the report folder', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const cases: EditCase[] = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 3 }).cases;
  const out = path.join(tmp, 'failed');
  await assert.rejects(runEval(m, cases, { ...ROME, mode: { sequential: 3 }, out, onProgress: (p) => { if (p.stage === 'edit' && p.done === 1) throw new Error('crash'); } }), /crash/);
  assert.ok(!fs.existsSync(out), 'the report folder it created is gone');
  assertSameWeights(m, before);
  await assert.rejects(runEval(m, cases, { ...ROME, mode: { sequential: 4 } }), /sequential:4 needs 4 cases, but there are only 3/);
  await assert.rejects(runEval(m, cases, { ...ROME, protocol: 'final' }), /sequential runs only/);
  await assert.rejects(runEval(m, cases, { ...ROME, mode: { batch: 2 }, heldout: { text: 'Some held-out text.' } }), /heldout: perplexity drift is measured in sequential runs only/);
  await assert.rejects(runEval(m, cases, { ...ROME, mode: { sequential: 2 }, heldoutTokens: 64 }), /heldoutTokens limits the held-out text.*give heldout/);
  await assert.rejects(runEval(m, [], { ...ROME }), /no cases/);
  await assert.rejects(runEval(m, cases, { ...ROME, out, resume: true }), /no interrupted run to resume/);
  assert.ok(!fs.existsSync(out));
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  await assert.rejects(runEval(m, cases, { ...ROME, out: file }), /a-file: exists and is not a folder/);
  await assert.rejects(runEval(m, cases, { ...ROME, out: path.join(file, 'report') }), /cannot be created, .*a-file is a file/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'x');
});

test('a batch edits its other cases when one is refused; a short last batch counts in its run\'s regime', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 5 });
  // Case 1's subject is not in its prompt: the editor refuses it alone.
  const mixed = cases.map((c, i) => (i === 1 ? { ...c, prompt: 'Nothing about anyone is' } : c));
  for (const mode of [{ batch: 3 }, { sequential: 4, step: 2 }] as const) {
    const r = await runEval(m, mixed, { ...MEMIT, mode });
    assertSameWeights(m, before);
    assert.equal(r.summary!.failed, 1, JSON.stringify(mode));
    assert.deepEqual(r.records.map((x) => x.index), 'batch' in mode ? [0, 1, 2, 3, 4] : [0, 1, 2, 3]);
    for (const rec of r.records) {
      if (rec.index === 1) assert.match(rec.error!, /is not in the prompt/);
      else assert.ok(rec.error === undefined && rec.metrics.length > 0, `case ${rec.index} was edited and scored`);
    }
    if ('batch' in mode) {
      // 5 cases in batches of 3: the last batch edits 2 cases together, and they are reported as batch-3's.
      assert.deepEqual(r.records.map((x) => [x.regime, x.batchSize, x.callSize]), [['batch-3', 3, undefined], ['batch-3', 3, undefined], ['batch-3', 3, undefined], ['batch-3', 3, 2], ['batch-3', 3, 2]]);
      assert.deepEqual(r.summary!.rows.filter((row) => row.name === 'efficacy_score').map((row) => [row.regime, row.count]), [['batch-3', 4]]);
    }
  }
});

test('two runs on one model at once: the second is refused, the first is unaffected', { skip }, async () => {
  const m = await tiny();
  const before = weightsCopy(m);
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 2 });
  const alone = await runEval(m, cases, { ...ROME, mode: { sequential: 2 } });
  const [first, second] = await Promise.allSettled([
    runEval(m, cases, { ...ROME, mode: { sequential: 2 } }),
    runEval(m, cases, { ...MEMIT }),
  ]);
  assert.equal(second.status, 'rejected');
  assert.match(String((second as PromiseRejectedResult).reason), /the model is in use by an evaluation run/);
  assert.equal(first.status, 'fulfilled');
  assert.deepEqual(comparable((first as PromiseFulfilledResult<EvalResult>).value.summary!), comparable(alone.summary!));
  assertSameWeights(m, before);
});

test('sharedSubjectEdits counts the edits of a batch whose subject another edit of that batch also has', () => {
  const c = (subject: string, edits?: EditCase[]): EditCase => ({ prompt: '{} is in', subject, targetNew: 'x', ...(edits ? { edits } : {}) });
  // Subjects A A B | A C C | D: batches of 3 share A twice and C twice; one batch of 7 shares A three times and C twice.
  const cases = [c('A'), c(' A '), c('B'), c('A'), c('C'), c('C'), c('D')];
  assert.deepEqual(sharedSubjectEdits(cases, { batch: [3, 7] }), [
    { batchSize: 3, edits: 7, shared: 4 },
    { batchSize: 7, edits: 7, shared: 5 },
  ]);
  // A multi-edit case counts each of its edits (MQuAKE).
  assert.deepEqual(sharedSubjectEdits([c('M', [c('E'), c('F')]), c('E')], { batch: 2 }), [{ batchSize: 2, edits: 3, shared: 2 }]);
  assert.deepEqual(sharedSubjectEdits(cases, 'single'), []);
  assert.deepEqual(sharedSubjectEdits(cases, { sequential: 7 }), []);
});

test('one run at a time in a report folder: a second is refused, a dead run\'s lock is taken over', { skip }, async () => {
  const a = await tiny();
  const b = await CausalLM.load(path.join(MODELS!, 'stories260K')); // another model: holdModel does not stand between them
  const { cases } = loadCases(path.join(DATA!, 'counterfact', 'counterfact-rome-format-1000.json'), { limit: 2 });
  const out = path.join(tmp, 'locked');
  const [first, second] = await Promise.allSettled([
    runEval(a, cases, { ...ROME, out }),
    runEval(b, cases, { ...ROME, out, force: true }),
  ]);
  assert.equal(first.status, 'fulfilled');
  assert.equal(second.status, 'rejected');
  assert.match(String((second as PromiseRejectedResult).reason), new RegExp(`${out} is in use by another evaluation run \\(process ${process.pid}\\)`));
  assert.ok(fs.existsSync(path.join(out, 'summary.json')), 'the first run\'s report is whole');
  assert.ok(!fs.existsSync(path.join(out, '.amend-eval-lock')), 'the lock goes with the run');
  // A lock left by a process that is gone does not block the folder.
  const stale = path.join(tmp, 'stale');
  fs.mkdirSync(stale);
  fs.writeFileSync(path.join(stale, '.amend-eval-lock'), '2147483646\n');
  const took = await warningsOf(() => runEval(a, cases, { ...ROME, out: stale }));
  assert.deepEqual(took.filter((w) => w.includes('taken over')), [`${path.join(stale, '.amend-eval-lock')}: a lock left by process 2147483646, which no longer holds it (an interrupted run), is taken over`]);
  assert.ok(fs.existsSync(path.join(stale, 'summary.json')));
  assert.ok(!fs.existsSync(path.join(stale, '.amend-eval-lock')));
  // So is one naming this very process, which does not hold it (a killed run's pid reused, as
  // PID 1 in a container).
  const own = path.join(tmp, 'own-pid');
  fs.mkdirSync(own);
  fs.writeFileSync(path.join(own, '.amend-eval-lock'), `${process.pid} ${os.hostname()}\n`);
  await runEval(a, cases, { ...ROME, out: own });
  assert.ok(fs.existsSync(path.join(own, 'summary.json')));
  // Another host's lock cannot be judged from here: refused, with the way out named.
  const other = path.join(tmp, 'other-host');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, '.amend-eval-lock'), '4242 some-other-host\n');
  await assert.rejects(runEval(a, cases, { ...ROME, out: other }),
    new RegExp(`in use by another evaluation run \\(process 4242 on some-other-host\\); wait for it to finish or choose another report folder; if no run is using it, delete ${path.join(other, '.amend-eval-lock')}`));
  assert.equal(fs.readFileSync(path.join(other, '.amend-eval-lock'), 'utf8'), '4242 some-other-host\n');
  assert.deepEqual(fs.readdirSync(other), ['.amend-eval-lock'], 'nothing else written');
});
