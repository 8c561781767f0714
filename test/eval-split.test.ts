// The per-split-label breakdown of a summary (MQuAKE-Remastered's CF-6334 reports train_edited and
// test_edited apart): hand-computed means and intervals per label, computed by the summary's own
// code, and summaries byte for byte as before for runs with nothing to break down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { summarizeBySplitLabel, summarizeRecords, summaryMarkdown, type CaseRecord, type EvalConfig } from '../src/eval/index.js';
import { writeReports } from '../src/eval/report.js';
import { repoRoot } from './helpers.js';
import { PIN_RUNS, writePinRun } from './summary-pin.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-eval-split-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('runs with no split labels, one label in the named run split, or no run split named: summary.md and summary.json as before, byte for byte', () => {
  for (const run of PIN_RUNS) {
    const got = writePinRun(tmp, run);
    for (const [file, text] of Object.entries(got)) {
      assert.equal(text, fs.readFileSync(path.join(repoRoot(), 'test', 'fixtures', 'summary-pin', run.fixture, file), 'utf8'), `${run.what}: ${file}`);
    }
  }
});

/** t's 0.975 quantile for 2 degrees of freedom (scipy: t.ppf(0.975, 2)). */
const T2 = 4.302653;
const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

/**
 * CF-6334 style, run split "1000": cases 0, 1 train_edited, case 2 both (in train and test), cases
 * 3, 4 test_edited, case 5 test_edited and refused by the editor.
 */
function cf6334(): CaseRecord[] {
  const labels = [['train_edited'], ['train_edited'], ['train_edited', 'test_edited'], ['test_edited'], ['test_edited'], ['test_edited']];
  const rewrite = [0.4, 0.5, 0.6, 0.7, 0.8];
  const efficacy = [1, 1, 0, 0, 0];
  return labels.map((l, i): CaseRecord => ({
    index: i, split: { '1000': l, '100': i < 3 ? ['edited'] : [] }, regime: 'single',
    metrics: i === 5 ? [] : [
      { name: 'rewrite_acc', protocol: 'token-accuracy', value: rewrite[i]! },
      { name: 'qa.rewrite_em', protocol: 'generation-qa', value: efficacy[i]! },
      { name: 'efficacy_score', protocol: 'probability-comparison', value: efficacy[i]! },
      { name: 'edit_time', protocol: 'cost', value: 2 + i, unit: 'seconds' },
    ],
    ...(i === 5 ? { error: 'refused' } : {}),
  }));
}

test('summarizeBySplitLabel: per label of the named run split, hand-computed means and intervals; a case with two labels under both; protocols apart', () => {
  const groups = summarizeBySplitLabel(cf6334(), '1000');
  assert.deepEqual(groups.map((g) => [g.label, g.cases, g.failed]), [['test_edited', 4, 1], ['train_edited', 3, 0]]);
  const row = (label: string, protocol: string, name: string) => groups.find((g) => g.label === label)!.rows.find((r) => r.protocol === protocol && r.name === name)!;
  // train_edited: rewrite_acc 0.4, 0.5, 0.6 → mean 0.5, sd 0.1, half-width t(2)·0.1/√3
  const train = row('train_edited', 'token-accuracy', 'rewrite_acc');
  close(train.mean, 0.5);
  close(train.std, 0.1);
  close(train.ci95[0], 0.5 - (T2 * 0.1) / Math.sqrt(3));
  close(train.ci95[1], 0.5 + (T2 * 0.1) / Math.sqrt(3));
  assert.equal(train.count, 3);
  // test_edited: 0.6, 0.7, 0.8 (the refused case has no scores) → mean 0.7, [0.7 ∓ the same half-width]
  const testAcc = row('test_edited', 'token-accuracy', 'rewrite_acc');
  close(testAcc.mean, 0.7);
  close(testAcc.ci95[0], 0.7 - (T2 * 0.1) / Math.sqrt(3));
  close(testAcc.ci95[1], 0.7 + (T2 * 0.1) / Math.sqrt(3));
  assert.equal(testAcc.count, 3);
  // efficacy 1, 1, 0 (train) → 2/3 with Wilson's interval; 0, 0, 0 (test) → 0, [0, z²/(n + z²)]
  const trainEff = row('train_edited', 'probability-comparison', 'efficacy_score');
  close(trainEff.mean, 2 / 3);
  const z = 1.959964, n = 3, p = 2 / 3;
  const centre = (p + z * z / (2 * n)) / (1 + z * z / n), half = (z / (1 + z * z / n)) * Math.sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  close(trainEff.ci95[0], centre - half);
  close(trainEff.ci95[1], centre + half);
  const testEff = row('test_edited', 'probability-comparison', 'efficacy_score');
  assert.equal(testEff.mean, 0);
  assert.equal(testEff.ci95[0], 0);
  close(testEff.ci95[1], (z * z) / (3 + z * z));
  // The same values under another protocol stay in their own row, never pooled with efficacy_score.
  assert.deepEqual(row('train_edited', 'generation-qa', 'qa.rewrite_em').count, 3);
  assert.ok(groups.every((g) => g.rows.every((r) => r.name !== 'rewrite_acc' || r.protocol === 'token-accuracy')));
  // Costs count once per edit call, as in the whole run's summary: 2, 3, 4 s (train); 4, 5, 6 s (test).
  close(row('train_edited', 'cost', 'edit_time').mean, 3);
  close(row('test_edited', 'cost', 'edit_time').mean, 5);
  // The rows are the whole run's summary code applied to the label's cases.
  const recs = cf6334();
  assert.deepEqual(groups.find((g) => g.label === 'test_edited')!.rows, summarizeRecords(recs.filter((r) => r.split!['1000']!.includes('test_edited'))));
  // Nothing to break down: one label in the named run split, none named, a run split the cases lack.
  assert.deepEqual(summarizeBySplitLabel(recs, '100'), []);
  assert.deepEqual(summarizeBySplitLabel(recs, undefined), []);
  assert.deepEqual(summarizeBySplitLabel(recs, '6334'), []);
});

test('summaryMarkdown and writeReports: a "By split label" table after the overall ones; summary.json carries bySplitLabel', () => {
  const records = cf6334();
  const config: EvalConfig = {
    method: 'rome', hparams: {}, hparamsOrigin: 'test', model: { dir: null, modelType: 'gpt2', fingerprint: 'f'.repeat(64) }, mode: 'single',
    cases: 6, casesDigest: '', scoring: {}, data: { file: 'cf6334.jsonl', format: 'mquake-remastered', split: '1000' },
  };
  const { summary } = writeReports({ out: undefined, partial: null, config, records, drift: [], seconds: 1, kind: 'single' });
  assert.deepEqual(summary.bySplitLabel, summarizeBySplitLabel(records, '1000'));
  assert.deepEqual([summary.cases, summary.failed], [6, 1]);
  const md = summaryMarkdown(summary);
  assert.match(md, /## By split label\n\nThe cases of run split 1000 grouped by their labels there[^|]*\n\| label \| cases \| refused \|\n\| --- \| ---: \| ---: \|\n\| test_edited \| 4 \| 1 \|\n\| train_edited \| 3 \| 0 \|\n/);
  assert.ok(md.indexOf('## By split label') > md.indexOf('### cost'), 'after the overall tables');
  const table = md.slice(md.indexOf('### single, token-accuracy'));
  assert.match(table, /\| metric \| label \| mean \| 95 % CI \| n \|\n\| --- \| --- \| ---: \| --- \| ---: \|\n\| rewrite_acc \| test_edited \| 0\.7000 \| \[0\.4516, 0\.9484\] \| 3 \|\n\| rewrite_acc \| train_edited \| 0\.5000 \| \[0\.2516, 0\.7484\] \| 3 \|/);
  assert.match(md, /### single, probability-comparison\n\n[^#]*\| efficacy_score \| test_edited \| 0\.0000 \| \[0\.0000, 0\.5615\] \| 3 \|/);
  // Regimes in the overall tables' order, though the first label's cases have only the later one.
  const sweep = (index: number, label: string, regime: CaseRecord['regime']): CaseRecord =>
    ({ index, split: { '1000': [label] }, regime, metrics: [{ name: 'rewrite_acc', protocol: 'token-accuracy', value: 1 }] });
  const swept = summarizeBySplitLabel([sweep(0, 'a_edited', 'batch-10'), sweep(1, 'b_edited', 'batch-2'), sweep(1, 'b_edited', 'batch-10')], '1000');
  const headings = summaryMarkdown({ ...summary, bySplitLabel: swept }).match(/### batch-\d+, token-accuracy/g);
  assert.deepEqual(headings, ['### batch-2, token-accuracy', '### batch-10, token-accuracy']);
  // A label with a "|" keeps its table row whole.
  const odd = summarizeBySplitLabel(records.map((r) => ({ ...r, split: { '1000': r.split!['1000']!.map((l) => l.replace('test', 'te|st')) } })), '1000');
  assert.match(summaryMarkdown({ ...summary, bySplitLabel: odd }), /\| rewrite_acc \| te\\\|st_edited \| 0\.7000 \|/);
});
