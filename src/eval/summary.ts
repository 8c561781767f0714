/**
 * The run summary: per regime, protocol and metric, the mean over cases (costs: over edit calls)
 * with a 95 % interval.
 * Grouping by (regime, protocol, name) is what keeps "score after each edit" and "apply all then
 * score", or teacher forcing and generation, from ever landing in one average.
 */
import { meanCI } from './ci.js';
import { harmonicMean } from './metrics.js';
import { PROTOCOLS, PROTOCOL_DESCRIPTIONS } from './protocols.js';
import { modeLabel, PROTOCOL_REGIME, REGIME_DESCRIPTIONS, type CaseRecord, type DriftPoint, type EvalSummary, type Regime, type RelationRow, type SplitLabelSummary, type SummaryRow } from './run-types.js';

const regimeOrder = (r: Regime): [number, number] => {
  if (r === 'single') return [0, 0];
  if (r.startsWith('batch-')) return [1, Number(r.slice(6))];
  return [r === 'score-after-each' ? 2 : 3, 0];
};

/** Regimes in report order: single, batches by size, score-after-each, apply-all-then-score. */
function compareRegimes(a: Regime, b: Regime): number {
  const [ra, ka] = regimeOrder(a), [rb, kb] = regimeOrder(b);
  return ra - rb || ka - kb;
}

/**
 * The range a metric's mean cannot leave: scores, accuracies and QA matches (fractions of prompts
 * or tokens) [0, 1], P(new) − P(true) magnitudes [−1, 1], costs ≥ 0; none for the others
 * (perplexity, entropy).
 */
function rangeOf(name: string, protocol: string): [number, number] | undefined {
  if (/(_score|_acc|accuracy|exact_match|_em|_f1|_agree)$/.test(name)) return [0, 1];
  if (protocol === 'probability-comparison' && name.endsWith('_magnitude')) return [-1, 1];
  if (protocol === 'sentiment-likelihood') return name === 'dd' ? [0, Number.POSITIVE_INFINITY] : [0, 1]; // a KL; products of a sigmoid and a min(1, ·)
  if (protocol === 'cost') return [0, Number.POSITIVE_INFINITY];
  return undefined;
}

/**
 * A record's metrics as the summary and the charts count them: every case of one edit call (a
 * batch, a sequential step) carries that call's one time and memory, so a cost counts once per
 * call (the first record of the call that has it), or its interval would shrink with the batch
 * size and a short last batch would weigh less than the others. `callsSeen` spans the records.
 */
export function countedMetrics(rec: CaseRecord, callsSeen: Set<string>): CaseRecord['metrics'] {
  const call = `${rec.regime}\u0000${rec.call ?? rec.edit ?? `case ${rec.index}`}`;
  const costCounted = callsSeen.has(call);
  if (rec.metrics.some((m) => m.protocol === 'cost')) callsSeen.add(call);
  return costCounted ? rec.metrics.filter((m) => m.protocol !== 'cost') : rec.metrics;
}

export function summarizeRecords(records: readonly CaseRecord[]): SummaryRow[] {
  const groups = new Map<string, { regime: Regime; protocol: SummaryRow['protocol']; name: string; unit?: string; values: number[] }>();
  const callsSeen = new Set<string>();
  for (const rec of records) {
    for (const m of countedMetrics(rec, callsSeen)) {
      const key = `${rec.regime}\u0000${m.protocol}\u0000${m.name}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { regime: rec.regime, protocol: m.protocol, name: m.name, unit: m.unit, values: [] }));
      g.values.push(m.value);
    }
  }
  const rows: SummaryRow[] = [...groups.values()].map((g) => {
    const s = meanCI(g.values, rangeOf(g.name, g.protocol));
    const row: SummaryRow = { regime: g.regime, protocol: g.protocol, name: g.name, mean: s.mean, std: s.std, ci95: [s.low, s.high], count: s.count };
    if (g.unit !== undefined) row.unit = g.unit;
    return row;
  });
  rows.push(...overallScores(rows));
  rows.sort((a, b) => compareRegimes(a.regime, b.regime) || PROTOCOLS.indexOf(a.protocol) - PROTOCOLS.indexOf(b.protocol) || a.name.localeCompare(b.name));
  return rows;
}

/**
 * ROME's and MEMIT's summarize.py "score": per run, the harmonic mean of the mean efficacy,
 * paraphrase and neighbourhood scores (ROME's before August 2022 took paraphrase and neighbourhood
 * only). A function of three means, so it has no interval; n is the efficacy row's.
 */
function overallScores(rows: readonly SummaryRow[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const regime of new Set(rows.map((r) => r.regime))) {
    const find = (name: string) => rows.find((r) => r.regime === regime && r.protocol === 'probability-comparison' && r.name === name);
    const parts = ['efficacy_score', 'paraphrase_score', 'neighborhood_score'].map(find);
    if (parts.some((p) => p === undefined || !Number.isFinite(p.mean))) continue;
    out.push({
      regime, protocol: 'probability-comparison', name: 'score', mean: harmonicMean(parts.map((p) => p!.mean)),
      std: Number.NaN, ci95: [Number.NaN, Number.NaN], count: parts[0]!.count,
    });
  }
  return out;
}

/** The cases the records cover and those the editor refused (a batch sweep records a case once per size). */
export function caseCounts(records: readonly CaseRecord[]): { cases: number; failed: number } {
  const indexes = new Set(records.map((r) => r.index));
  const failed = new Set(records.filter((r) => r.error !== undefined).map((r) => r.index));
  return { cases: indexes.size, failed: failed.size };
}

/**
 * The run summarised apart for each label its cases carry in the run split `run` that chose them
 * (MQuAKE-Remastered's CF-6334 labels its edited cases train_edited or test_edited, and its authors
 * report the two apart), with the counts and rows of the whole run's summary. A case with two
 * labels counts under both, as their accuracy does. Empty unless a run split is named and its
 * cases carry two or more labels there: every label means the same run split, while across run
 * splits a case has labels for each.
 */
export function summarizeBySplitLabel(records: readonly CaseRecord[], run: string | undefined): SplitLabelSummary[] {
  if (run === undefined) return [];
  const labelsOf = (r: CaseRecord) => r.split?.[run] ?? [];
  const labels = [...new Set(records.flatMap(labelsOf))].sort();
  if (labels.length < 2) return [];
  return labels.map((label) => {
    const mine = records.filter((r) => labelsOf(r).includes(label));
    return { label, ...caseCounts(mine), rows: summarizeRecords(mine) };
  });
}

/** The metrics broken down by relation: the ones a reader compares across relations. */
export const RELATION_METRICS = [
  'efficacy_score', 'paraphrase_score', 'neighborhood_score', 'rewrite_acc', 'rephrase_acc', 'locality_acc', 'portability_acc',
] as const;

/**
 * Means of the headline metrics per regime, protocol and relation; empty unless the records span
 * two or more relations (which relations an editor fails on is often the first thing to know).
 */
export function summarizeByRelation(records: readonly CaseRecord[]): RelationRow[] {
  if (new Set(records.map((r) => r.relation).filter((x) => x !== undefined)).size < 2) return [];
  const groups = new Map<string, RelationRow & { sum: number }>();
  for (const rec of records) {
    if (rec.relation === undefined) continue;
    for (const m of rec.metrics) {
      if (!(RELATION_METRICS as readonly string[]).includes(m.name) || !Number.isFinite(m.value)) continue;
      const key = `${rec.regime}\u0000${m.protocol}\u0000${m.name}\u0000${rec.relation}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { regime: rec.regime, protocol: m.protocol, name: m.name, relation: rec.relation, mean: 0, count: 0, sum: 0 }));
      g.sum += m.value;
      g.count++;
    }
  }
  return [...groups.values()]
    .map(({ sum, ...g }) => ({ ...g, mean: sum / g.count }))
    .sort((a, b) => compareRegimes(a.regime, b.regime) || a.relation.localeCompare(b.relation) || RELATION_METRICS.indexOf(a.name as never) - RELATION_METRICS.indexOf(b.name as never));
}

/** A number for a table: enough digits to compare, bytes in MiB. */
export function formatValue(v: number, unit?: string): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 'bytes') return `${(v / 2 ** 20).toFixed(1)} MiB`;
  if (unit === 'seconds') return `${v.toFixed(v < 10 ? 3 : 1)} s`;
  const a = Math.abs(v);
  const text = a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a >= 100 ? 1 : 4);
  return unit ? `${text} ${unit}` : text; // other units (entropy in bits) are named, not dropped
}

/**
 * Text from a data file (a KnowEdit locality or portability key, a relation id) as a table cell:
 * a "|" in it would end the cell and shift the row's numbers into the wrong columns, a line break
 * would end the row.
 */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');

/**
 * A path or file name (the model's folder, the data file) in a heading or a list line: any of
 * Markdown's inline marks in it (`*`, `_`, backticks, `#`, `[`, `<`, `&`...) is escaped so that it
 * shows as typed instead of as emphasis, code, a link or a cut heading, and a line break, which
 * would end the heading, becomes a space as in the table cells.
 */
const inline = (s: string) => s.replace(/[\\`*_{}[\]<>#|~&!]/g, '\\$&').replace(/[\r\n]+/g, ' ');

function regimeText(r: Regime): string {
  if (r.startsWith('batch-')) {
    const k = r.slice(6);
    return `batches of ${k}: ${REGIME_DESCRIPTIONS.batch!.replace(/^K cases edited/, k === '1' ? '1 case edited' : `${k} cases edited`)}`;
  }
  return REGIME_DESCRIPTIONS[r] ?? r;
}

/** The data line's parenthesis: the format, and the run split when one chose the cases. */
function dataDetail(d: EvalSummary['config']['data']): string {
  const parts = [d?.format, d?.split !== undefined ? `edited cases of split ${inline(d.split)}` : undefined].filter((x): x is string => !!x);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

export function summaryMarkdown(s: EvalSummary): string {
  const c = s.config;
  const mode = modeLabel(c.mode);
  const lines = [
    `# Evaluation: ${c.method.toUpperCase()} on ${inline(c.model.dir ?? c.model.modelType)}`,
    '',
    `- data: ${c.data?.file !== undefined ? inline(c.data.file) : '(in memory)'}${dataDetail(c.data)}, ${s.cases} case(s)${s.failed ? `, ${s.failed} refused by the editor` : ''}`,
    `- mode: ${mode}${c.protocol ? `, protocol ${PROTOCOL_REGIME[c.protocol]}` : ''}`,
    `- hparams: ${inline(c.hparamsOrigin)}`,
    `- model fingerprint: ${c.model.fingerprint.slice(0, 16)}`,
    `- wall time: ${s.seconds.toFixed(1)} s`,
    '',
    'Means over cases (costs: over edit calls) with 95 % confidence intervals (Student t; Wilson for',
    'scores that are all 0 or 1; none for one value). Rows of different regimes or protocols are never',
    'averaged together. Cases edited in one call (a batch, a sequential run) share that edit, and the',
    'intervals treat them as independent, so there they understate the spread between runs.',
  ];
  const regimes = [...new Set(s.rows.map((r) => r.regime))];
  for (const regime of regimes) {
    lines.push('', `## ${regime}`, '', `${regimeText(regime)}.`);
    for (const protocol of PROTOCOLS) {
      const rows = s.rows.filter((r) => r.regime === regime && r.protocol === protocol);
      if (!rows.length) continue;
      lines.push('', `### ${protocol}`, '', `${PROTOCOL_DESCRIPTIONS[protocol]}.`, '', '| metric | mean | 95 % CI | n |', '| --- | ---: | --- | ---: |');
      for (const r of rows) lines.push(`| ${cell(r.name)} | ${meanCells(r)} |`);
      if (protocol === 'probability-comparison') {
        const note = comparisonCoverageNote(s.rows, regime, s.cases - s.failed);
        if (note) lines.push('', note);
      }
    }
  }
  for (const x of s.sharedSubjects ?? []) {
    lines.push('', `In batches of ${x.batchSize}, ${x.shared} of ${x.edits} edits share their subject with another edit of the same batch.`);
  }
  if (s.bySplitLabel?.length) lines.push('', ...splitLabelMarkdown(s.bySplitLabel, c.data?.split));
  if (s.byRelation?.length) lines.push('', ...relationMarkdown(s.byRelation));
  if (s.drift.length) lines.push('', ...driftMarkdown(s.drift));
  if (s.files?.length) lines.push('', '## Files', '', ...s.files.map((f) => `- ${f}`));
  return `${lines.join('\n')}\n`;
}

/**
 * Under a regime's probability-comparison table, when its scores cover fewer cases than the regime
 * scored: how many the comparisons left out, and why (metrics-case.ts counterfactExclusion). The
 * cases scored are the rewrite accuracy's count, one per case, or without it the cases not refused.
 */
function comparisonCoverageNote(rows: readonly SummaryRow[], regime: Regime, notRefused: number): string | undefined {
  const count = (name: string, protocol: SummaryRow['protocol']) => rows.find((r) => r.regime === regime && r.protocol === protocol && r.name === name)?.count;
  const covered = count('efficacy_score', 'probability-comparison');
  const scored = count('rewrite_acc', 'token-accuracy') ?? notRefused;
  if (covered === undefined || covered >= scored) return undefined;
  return `The probability comparisons cover ${covered} of the ${scored} cases scored: the other ${scored - covered} have no true target, or one that is the new target (after trimming), where P(new) > P(true) could never hold.`;
}

/** A row's mean, interval and count as table cells (the overall tables' and the split labels'). */
const meanCells = (r: SummaryRow) => `${formatValue(r.mean, r.unit)} | [${formatValue(r.ci95[0], r.unit)}, ${formatValue(r.ci95[1], r.unit)}] | ${r.count}`;

/** One table per regime and protocol: for each metric a row per label, as the overall tables give it. */
function splitLabelMarkdown(groups: readonly SplitLabelSummary[], run: string | undefined): string[] {
  const out = [
    '## By split label', '',
    `The cases of run split ${inline(run ?? '?')} grouped by their labels there (a case with two labels counts under both);`,
    'each group is summarised as the whole run is above.', '',
    '| label | cases | refused |', '| --- | ---: | ---: |',
    ...groups.map((g) => `| ${cell(g.label)} | ${g.cases} | ${g.failed} |`),
  ];
  const all = groups.flatMap((g) => g.rows.map((r) => ({ ...r, label: g.label })));
  // In the overall tables' order, whichever label's cases a regime first appears among.
  const regimes = [...new Set(all.map((r) => r.regime))].sort(compareRegimes);
  for (const regime of regimes) {
    for (const protocol of PROTOCOLS) {
      const rows = all.filter((r) => r.regime === regime && r.protocol === protocol);
      if (!rows.length) continue;
      out.push('', `### ${regime}, ${protocol}`, '', '| metric | label | mean | 95 % CI | n |', '| --- | --- | ---: | --- | ---: |');
      for (const name of [...new Set(rows.map((r) => r.name))]) {
        for (const r of rows.filter((x) => x.name === name)) out.push(`| ${cell(name)} | ${cell(r.label)} | ${meanCells(r)} |`);
      }
    }
  }
  return out;
}

/** One table per regime: a row per relation, a column per metric. */
function relationMarkdown(rows: readonly RelationRow[]): string[] {
  const out = ['## By relation', '', 'Means over the cases of each relation (n cases); the metrics are those of the tables above.'];
  for (const regime of [...new Set(rows.map((r) => r.regime))]) {
    const mine = rows.filter((r) => r.regime === regime);
    const metrics = RELATION_METRICS.filter((m) => mine.some((r) => r.name === m));
    out.push('', `### ${regime}`, '', `| relation | n | ${metrics.join(' | ')} |`, `| --- | ---: |${' ---: |'.repeat(metrics.length)}`);
    for (const relation of [...new Set(mine.map((r) => r.relation))]) {
      const cells = metrics.map((m) => mine.find((r) => r.relation === relation && r.name === m));
      const n = Math.max(...cells.map((c) => c?.count ?? 0));
      out.push(`| ${cell(relation)} | ${n} | ${cells.map((c) => (c ? formatValue(c.mean) : '–')).join(' | ')} |`);
    }
  }
  return out;
}

function driftMarkdown(drift: readonly DriftPoint[]): string[] {
  return [
    '## Perplexity drift', '',
    `Perplexity of the held-out text (${drift[0]!.tokens} tokens) after a number of stacked edits; ratio = against the unedited model.`,
    '', '| edits | perplexity | ratio |', '| ---: | ---: | ---: |',
    ...drift.map((d) => `| ${d.edits} | ${formatValue(d.perplexity)} | ${d.ratio.toFixed(4)} |`),
  ];
}
