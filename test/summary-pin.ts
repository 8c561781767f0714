// Small hand-made runs whose summary.md and summary.json are pinned in test/fixtures/summary-pin:
// each fixture is the output of the code before the per-split-label breakdown, so runs that have
// nothing to break down must keep producing it byte for byte (eval-split.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import { PartialRun } from '../src/eval/checkpoint.js';
import { writeReports } from '../src/eval/report.js';
import type { CaseRecord, EvalConfig } from '../src/eval/run-types.js';

/** A batch:2 run of five cases over two relations, one refused, with every kind of metric and cost. */
function records(split: (i: number) => Record<string, string[]> | undefined): CaseRecord[] {
  const rewrite = [1, 0, 0.5, 0.75, 0.25];
  return rewrite.map((v, i) => {
    const labels = split(i);
    const call = Math.floor(i / 2);
    const rec: CaseRecord = {
      index: i, id: 100 + i, relation: i < 3 ? 'P27' : 'P19', ...(labels ? { split: labels } : {}),
      regime: 'batch-2', batchSize: 2, batch: call, call, ...(i === 4 ? { callSize: 1 } : {}), metrics: [],
    };
    if (i === 1) return { ...rec, error: 'the subject "X" is not in the prompt' };
    rec.metrics = [
      { name: 'rewrite_acc', protocol: 'token-accuracy', value: v },
      { name: 'efficacy_score', protocol: 'probability-comparison', value: i % 2 === 0 ? 1 : 0 },
      { name: 'paraphrase_score', protocol: 'probability-comparison', value: 0.5 + i / 10 },
      { name: 'neighborhood_score', protocol: 'probability-comparison', value: 1 - i / 8 },
      { name: 'efficacy_magnitude', protocol: 'probability-comparison', value: i / 10 - 0.1 },
      { name: 'qa.rewrite_em', protocol: 'generation-qa', value: i === 3 ? 1 : 0 },
      { name: 'edit_time', protocol: 'cost', value: 1.25 + call, unit: 'seconds' },
      { name: 'peak_rss', protocol: 'cost', value: (300 + 10 * call) * 2 ** 20, unit: 'bytes' },
    ];
    rec.cost = { editSeconds: 1.25 + call, peakRssBytes: (300 + 10 * call) * 2 ** 20, newPeak: true };
    return rec;
  });
}

function config(data: EvalConfig['data']): EvalConfig {
  return {
    method: 'memit', hparams: { layers: [1, 2], mom2_update_weight: 15000 }, hparamsOrigin: 'preset gpt2 (test)',
    model: { dir: '/models/tiny', modelType: 'gpt2', fingerprint: 'ab'.repeat(32) }, mode: { batch: 2 }, cases: 5, casesDigest: 'cd'.repeat(32),
    scoring: { qa: true, fluency: false }, data,
  };
}

export interface PinRun {
  /** The fixture folder whose files this run must reproduce. */
  fixture: 'no-split' | 'one-label';
  what: string;
  records: CaseRecord[];
  config: EvalConfig;
}

const CF6334 = { file: 'cf6334.jsonl', format: 'mquake-remastered' } as const;

export const PIN_RUNS: readonly PinRun[] = [
  { fixture: 'no-split', what: 'cases without split labels', records: records(() => undefined), config: config({ file: 'cf.json', format: 'counterfact' }) },
  // Labels that differ, but no run split named: there is no one label per case to group by.
  { fixture: 'no-split', what: 'labels but no run split named', records: records((i) => ({ '4': [i % 2 ? 'test_edited' : 'train_edited'] })), config: config({ file: 'cf.json', format: 'counterfact' }) },
  // The named run gives every case one label (CF-3k's "edited"); other runs' labels differ.
  {
    fixture: 'one-label', what: 'one label in the named run split',
    records: records((i) => ({ '4': ['edited'], '2': i < 2 ? ['edited'] : ['unedited'], '1': i === 0 ? ['train_edited', 'test_edited'] : [] })),
    config: config({ ...CF6334, split: '4' }),
  },
];

/** The run's summary.md and summary.json as writeReports writes them (in a fresh folder under `dir`). */
export function writePinRun(dir: string, run: PinRun): { 'summary.md': string; 'summary.json': string } {
  const out = fs.mkdtempSync(path.join(dir, 'pin-'));
  const partial = new PartialRun(out);
  partial.reset();
  partial.appendLines(run.records.map((r) => JSON.stringify(r)));
  writeReports({ out, partial, config: run.config, records: run.records, drift: [], seconds: 12.5, kind: 'batch' });
  const read = (f: string) => fs.readFileSync(path.join(out, f), 'utf8');
  return { 'summary.md': read('summary.md'), 'summary.json': read('summary.json') };
}
