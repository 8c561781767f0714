// ROME and MEMIT on the demo world model (world/), scored CounterFact-style (P(new) vs P(true),
// ROME's summarize.py): a small always-on run, and with AMEND_SLOW=1 the full protocol of the
// issue — 100 single ROME edits (model restored between them) and one MEMIT batch of 500 — with
// its thresholds. The full run takes several minutes; `node dist/bench/edit.js world` prints the
// same numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CausalLM } from '../src/models/model.js';
import { editSession } from '../src/patch/session.js';
import { loadCases } from '../src/data/index.js';
import type { EditCase } from '../src/editors/types.js';
import { editWithReport, resolveHparams, type EditMethod } from '../src/editors/index.js';
import { counterFactOutcome, counterFactSummary, type CounterFactOutcome } from '../src/editors/common/score.js';
import { repoRoot, weightsHash } from './helpers.js';

const worldDir = path.join(repoRoot(), 'world');
const skip = fs.existsSync(path.join(worldDir, 'config.json')) && fs.existsSync(path.join(worldDir, 'benchmark.json')) ? false : 'no world/ model (amend world build)';
const slow = process.env.AMEND_SLOW === '1';

async function score(model: CausalLM, cases: readonly EditCase[], method: EditMethod, mode: 'single' | 'batch', hparams: Record<string, unknown>): Promise<ReturnType<typeof counterFactSummary>> {
  const session = editSession(model);
  const base = weightsHash(model);
  const outcomes: CounterFactOutcome[] = [];
  if (mode === 'single') {
    for (const c of cases) {
      const { patch } = await editWithReport(model, [c], { method, hparams });
      session.apply(patch);
      outcomes.push(counterFactOutcome(model, c));
      session.revert(patch);
    }
  } else {
    const { patch } = await editWithReport(model, cases, { method, hparams });
    session.apply(patch);
    for (const c of cases) outcomes.push(counterFactOutcome(model, c));
    session.revert(patch);
  }
  assert.equal(weightsHash(model), base, 'the model is restored exactly after the edits');
  return counterFactSummary(outcomes);
}

test('world: the presets are picked for the demo model', { skip }, async () => {
  const model = await CausalLM.load(worldDir);
  assert.equal(resolveHparams('rome', model).preset?.name, 'world');
  assert.equal(resolveHparams('memit', model).preset?.name, 'world');
});

test('world: ROME single edits and a MEMIT batch raise efficacy and keep the neighbourhood (small run)', { skip }, async () => {
  const model = await CausalLM.load(worldDir);
  const { cases } = loadCases(path.join(worldDir, 'benchmark.json'));
  const hp = {};
  const pick = cases.slice(0, 12);
  const before = counterFactSummary(pick.map((c) => counterFactOutcome(model, c)));
  const rome = await score(model, pick, 'rome', 'single', hp);
  const memit = await score(model, pick, 'memit', 'batch', hp);
  console.log(`world, ${pick.length} cases: unedited efficacy ${before.efficacy.toFixed(1)} %; ROME ${JSON.stringify(rome)}; MEMIT ${JSON.stringify(memit)}`);
  assert.ok(rome.efficacy > before.efficacy, 'ROME raises efficacy');
  assert.ok(rome.neighborhood >= 80, `ROME neighbourhood ${rome.neighborhood}`);
  assert.ok(memit.neighborhood >= 80, `MEMIT neighbourhood ${memit.neighborhood}`);
});

test('world, full protocol: 100 single ROME edits, one MEMIT batch of 500 (AMEND_SLOW=1)', { skip: skip || (slow ? false : 'set AMEND_SLOW=1 (several minutes)') }, async () => {
  const model = await CausalLM.load(worldDir);
  const { cases } = loadCases(path.join(worldDir, 'benchmark.json'));
  const hp = {};
  const rome = await score(model, cases.slice(0, 100), 'rome', 'single', hp);
  console.log(`ROME, 100 single edits: ${JSON.stringify(rome)}`);
  const memit = await score(model, cases.slice(0, 500), 'memit', 'batch', hp);
  console.log(`MEMIT, batch of 500: ${JSON.stringify(memit)}`);
  assert.ok(rome.efficacy >= 99 && rome.paraphrase >= 90 && rome.neighborhood >= 95, `ROME below the thresholds (99/90/95): ${JSON.stringify(rome)}`);
  assert.ok(memit.efficacy >= 95 && memit.paraphrase >= 85 && memit.neighborhood >= 90, `MEMIT below the thresholds (95/85/90): ${JSON.stringify(memit)}`);
});
