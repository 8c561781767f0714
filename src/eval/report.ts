/**
 * The report of a finished run: cases.jsonl (already written line by line in the partial folder),
 * summary.json, summary.md and the plots as SVG and PNG. Everything is first written complete
 * inside the partial folder and then renamed into the report folder, summary.json last, so the
 * report folder never holds a file that is half written or from a run that did not finish.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { PartialRun } from './checkpoint.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/dirs.js';
import { renderChart, runCharts } from './plots.js';
import { caseCounts, summarizeByRelation, summarizeBySplitLabel, summarizeRecords, summaryMarkdown } from './summary.js';
import { PROTOCOL_REGIME, type CaseRecord, type DriftPoint, type EvalConfig, type EvalSummary } from './run-types.js';

export interface ReportInput {
  out?: string;
  partial: PartialRun | null;
  config: EvalConfig;
  records: readonly CaseRecord[];
  drift: readonly DriftPoint[];
  seconds: number;
  kind: 'single' | 'batch' | 'sequential';
  sharedSubjects?: EvalSummary['sharedSubjects'];
}

/** Names a previous report in the folder may have used (replaced with --force). */
export const isReportFile = (f: string) => f === 'cases.jsonl' || f === 'summary.json' || f === 'summary.md' || /^plot-.*\.(svg|png)$/.test(f);

function buildSummary(config: EvalConfig, records: readonly CaseRecord[], drift: readonly DriftPoint[], seconds: number): EvalSummary {
  const byRelation = summarizeByRelation(records);
  const bySplitLabel = summarizeBySplitLabel(records, config.data?.split);
  return {
    config, ...caseCounts(records), rows: summarizeRecords(records),
    ...(byRelation.length ? { byRelation } : {}), ...(bySplitLabel.length ? { bySplitLabel } : {}), drift: [...drift], seconds,
  };
}

export function writeReports(r: ReportInput): { summary: EvalSummary; files: string[] } {
  const summary = buildSummary(r.config, r.records, r.drift, r.seconds);
  if (r.sharedSubjects?.length) summary.sharedSubjects = r.sharedSubjects;
  if (!r.out || !r.partial) return { summary, files: [] };
  const stage = r.partial.dir;
  const title = `${r.config.method.toUpperCase()}${r.config.model.dir ? ` on ${path.basename(r.config.model.dir)}` : ''}`;
  const protocolLabel = PROTOCOL_REGIME[r.config.protocol ?? 'immediate'];
  const names = ['cases.jsonl'];
  for (const { file, chart } of runCharts(r.records, r.drift, { title, kind: r.kind, protocolLabel })) {
    const { svg, png } = renderChart(chart);
    writeFileAtomic(path.join(stage, `${file}.svg`), svg);
    writeFileAtomic(path.join(stage, `${file}.png`), png);
    names.push(`${file}.svg`, `${file}.png`);
  }
  names.push('summary.md', 'summary.json');
  summary.files = names;
  writeFileAtomic(path.join(stage, 'summary.md'), summaryMarkdown(summary));
  writeJsonAtomic(path.join(stage, 'summary.json'), summary);
  // summary.json last: it marks a finished report. A kill before the partial run is removed leaves
  // its checkpoint, and --resume (PartialRun.restore) takes cases.jsonl back if it had moved.
  const order = [...names.filter((f) => f !== 'cases.jsonl' && f !== 'summary.json'), 'cases.jsonl', 'summary.json'];
  for (const f of order) fs.renameSync(path.join(stage, f), path.join(r.out, f));
  // Then the replaced report's names this one does not use (plots of another mode): a kill before
  // this leaves a stray plot beside a whole report, never a report with parts gone.
  for (const f of fs.readdirSync(r.out)) if (isReportFile(f) && !names.includes(f)) fs.rmSync(path.join(r.out, f), { force: true });
  r.partial.remove();
  return { summary, files: names.map((f) => path.resolve(r.out!, f)) };
}
