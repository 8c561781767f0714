// The report pieces on hand-computed values: confidence intervals, regime/protocol grouping of the
// summary, --mode parsing, chart ticks, the PNG encoder and the SVG writer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import {
  encodePng, layoutChart, meanCI, modeLabel, parseMode, runCharts, sceneToSvg, summarizeByRelation, summarizeRecords, summaryMarkdown, tQuantile975,
  wilson95, type CaseRecord, type EvalSummary,
} from '../src/eval/index.js';
import { decodePng } from './png-decode.js';
import { niceTicks, tickLabel } from '../src/eval/plot.js';
import { MAX_SERIES } from '../src/eval/plots.js';
import { rasterize } from '../src/eval/raster.js';

const close = (a: number, b: number, tol = 1e-4) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('meanCI: Student t interval on hand-computed values', () => {
  // 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.290994, t(3) = 3.182446, half = 3.182446 · 1.290994 / 2 = 2.054260
  const s = meanCI([1, 2, 3, 4]);
  close(s.mean, 2.5);
  close(s.std, 1.290994);
  close(s.low, 2.5 - 2.054260, 1e-6);
  close(s.high, 2.5 + 2.054260, 1e-6);
  assert.equal(s.count, 4);
  // One value has no spread to estimate: no interval.
  const one = meanCI([0.5]);
  assert.deepEqual([one.mean, one.count], [0.5, 1]);
  assert.ok(Number.isNaN(one.std) && Number.isNaN(one.low) && Number.isNaN(one.high), 'no sample deviation either (n − 1 = 0)');
  assert.equal(meanCI([Number.NaN, 1, 1]).count, 2); // NaN left out
  // Scores in [0, 1]: t's interval for [1, 1, 0.1] is 0.7 ± 4.303·0.5196/√3 = [-0.591, 1.991]; cut to [0, 1].
  const open = meanCI([1, 1, 0.1]), cut = meanCI([1, 1, 0.1], [0, 1]);
  assert.ok(open.low < -0.59 && open.high > 1.99);
  assert.deepEqual([cut.low, cut.high], [0, 1]);
  assert.equal(cut.mean, open.mean);
  // Scores that are all 0 or 1 take Wilson's interval: (p + z²/2n) / (1 + z²/n) ± z/(1 + z²/n)·√(p(1−p)/n + z²/4n²).
  // 5 of 5: centre 1.38415 / 1.76830 = 0.78276, half 1.10838 · 0.19600 = 0.21724 → [0.5655, 1].
  const all = meanCI([1, 1, 1, 1, 1], [0, 1]);
  close(all.low, 0.5655);
  close(all.high, 1);
  // 2 of 3: centre 0.57310, half 0.36543 → [0.2077, 0.9385].
  const two = meanCI([1, 1, 0], [0, 1]);
  close(two.low, 0.2077);
  close(two.high, 0.9385);
  // without a [0, 1] range the same values keep t's interval
  assert.ok(meanCI([1, 1, 0]).low < -0.76);
  assert.ok(Number.isNaN(meanCI([]).mean));
  close(tQuantile975(1e9), 1.959964, 1e-6);
});

test('tQuantile975 against closed forms, the printed table and the expansion', () => {
  // Closed forms of the 0.975 quantile: df 1 is tan(0.475π); df 2 is (2p − 1)/√(2p(1 − p));
  // df 4 is 2√(cos(acos(√α)/3)/√α − 1) with α = 4p(1 − p).
  const p = 0.975, alpha = 4 * p * (1 - p);
  const exact: [number, number][] = [
    [1, Math.tan(0.475 * Math.PI)],
    [2, (2 * p - 1) / Math.sqrt(2 * p * (1 - p))],
    [4, 2 * Math.sqrt(Math.cos(Math.acos(Math.sqrt(alpha)) / 3) / Math.sqrt(alpha) - 1)],
  ];
  for (const [df, want] of exact) close(tQuantile975(df), want, 1e-12 * want);
  // The usual three-decimal table (Fisher & Yates), df 1–30, then 40, 60, 120.
  const table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
    2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
  table.forEach((want, i) => close(tQuantile975(i + 1), want, 5e-4));
  close(tQuantile975(40), 2.021, 5e-4);
  close(tQuantile975(60), 2.000, 5e-4);
  close(tQuantile975(120), 1.980, 5e-4);
  // The series and the expansion meet where one takes over from the other.
  const series = tQuantile975(1000), expansion = tQuantile975(1001);
  assert.ok(series > expansion && series - expansion < 1e-5, `${series} ${expansion}`);
  for (let df = 2; df <= 1000; df++) assert.ok(tQuantile975(df) < tQuantile975(df - 1), `decreasing at ${df}`);
});

test('wilson95: 0 of n and n of n have an end exactly at 0 and 1', () => {
  // The rounding error of (p + z²/2n) − z·√(z²/4n²) printed as a lower bound of 5.55e-17 for 0 of 3.
  for (let n = 1; n <= 300; n++) {
    assert.equal(wilson95(0, n)[0], 0, `0 of ${n}`);
    assert.equal(wilson95(1, n)[1], 1, `${n} of ${n}`);
  }
  const none = meanCI([0, 0, 0], [0, 1]);
  assert.equal(none.low, 0);
  close(none.high, 3.841459 / (3 + 3.841459), 1e-6); // z² / (n + z²)
  const rows = summarizeRecords([0, 1, 2].map((index) => ({ index, regime: 'single', metrics: [{ name: 'qa.portability_em', protocol: 'generation-qa', value: 0 }] })));
  assert.equal(rows[0]!.ci95[0], 0);
});

test('summarizeRecords: never averages across regimes or protocols', () => {
  const rec = (regime: CaseRecord['regime'], v: number, protocol: 'token-accuracy' | 'generation-qa' = 'token-accuracy'): CaseRecord =>
    ({ index: 0, regime, metrics: [{ name: 'rewrite_acc', protocol, value: v }] });
  const rows = summarizeRecords([rec('score-after-each', 1), rec('apply-all-then-score', 0), rec('score-after-each', 0.5), rec('score-after-each', 0, 'generation-qa'), rec('batch-10', 1), rec('batch-2', 1)]);
  assert.deepEqual(rows.map((r) => [r.regime, r.protocol, r.mean, r.count]), [
    ['batch-2', 'token-accuracy', 1, 1],
    ['batch-10', 'token-accuracy', 1, 1],
    ['score-after-each', 'token-accuracy', 0.75, 2],
    ['score-after-each', 'generation-qa', 0, 1],
    ['apply-all-then-score', 'token-accuracy', 0, 1],
  ]);
  const s: EvalSummary = {
    config: { method: 'rome', hparams: {}, hparamsOrigin: 'test', model: { dir: null, modelType: 'gpt2', fingerprint: 'f'.repeat(64) }, mode: { sequential: 2 }, protocol: 'immediate', cases: 2, casesDigest: '', scoring: {} },
    cases: 2, failed: 0, rows, drift: [{ edits: 0, perplexity: 10, ratio: 1, tokens: 5 }], seconds: 1,
  };
  const md = summaryMarkdown(s);
  assert.match(md, /## apply-all-then-score/);
  assert.match(md, /\| rewrite_acc \| 0\.7500 \| \[/);
  assert.match(md, /\| 0 \| 10\.0000 \| 1\.0000 \|/);
  // Regime headings agree in number with their batch size.
  assert.match(md, /batches of 10: 10 cases edited at once/);
  const one = summaryMarkdown({ ...s, rows: summarizeRecords([rec('batch-1', 1)]) });
  assert.match(one, /batches of 1: 1 case edited at once/);
});

test('summarizeRecords: the overall score is the harmonic mean of efficacy, paraphrase and neighbourhood means (MEMIT summarize.py)', () => {
  const pc = (name: string, value: number) => ({ name, protocol: 'probability-comparison' as const, value });
  const recs: CaseRecord[] = [[1, 0.5, 1], [1, 1, 0.5], [0, 1, 1], [1, 0.5, 0.5]].map(([e, p, n], i) => ({
    index: i, regime: 'single', metrics: [pc('efficacy_score', e!), pc('paraphrase_score', p!), pc('neighborhood_score', n!)],
  }));
  const rows = summarizeRecords(recs);
  const score = rows.find((r) => r.name === 'score')!;
  // means 0.75, 0.75, 0.75 → 0.75; written out: 3 / (1/0.75 + 1/0.75 + 1/0.75)
  close(score.mean, 0.75, 1e-12);
  assert.deepEqual([score.regime, score.protocol, score.count], ['single', 'probability-comparison', 4]);
  assert.ok(Number.isNaN(score.ci95[0]) && Number.isNaN(score.ci95[1]), 'a function of three means has no interval here');
  const uneven = summarizeRecords(recs.map((r, i) => ({ ...r, metrics: r.metrics.map((m) => (m.name === 'neighborhood_score' ? { ...m, value: i < 2 ? 0.2 : 0.3 } : m)) })));
  close(uneven.find((r) => r.name === 'score')!.mean, 3 / (1 / 0.75 + 1 / 0.75 + 1 / 0.25), 1e-12);
  // no score without all three
  assert.ok(!summarizeRecords(recs.map((r) => ({ ...r, metrics: r.metrics.slice(0, 2) }))).some((r) => r.name === 'score'));
});

test('summaryMarkdown: says how many cases the probability comparisons left out, and why', () => {
  const rec = (index: number, efficacy?: number): CaseRecord => ({
    index, regime: 'single', metrics: [
      { name: 'rewrite_acc', protocol: 'token-accuracy', value: 1 },
      ...(efficacy === undefined ? [] : [{ name: 'efficacy_score', protocol: 'probability-comparison' as const, value: efficacy }]),
    ],
  });
  const summary = (records: CaseRecord[]): EvalSummary => ({
    config: { method: 'rome', hparams: {}, hparamsOrigin: 'test', model: { dir: null, modelType: 'gpt2', fingerprint: 'f'.repeat(64) }, mode: 'single', cases: records.length, casesDigest: '', scoring: {} },
    cases: records.length, failed: 0, rows: summarizeRecords(records), drift: [], seconds: 1,
  });
  const md = summaryMarkdown(summary([rec(0, 1), rec(1, 0), rec(2)]));
  assert.match(md, /The probability comparisons cover 2 of the 3 cases scored: the other 1 have no true target, or one that is the new target/);
  assert.doesNotMatch(summaryMarkdown(summary([rec(0, 1), rec(1, 0)])), /probability comparisons cover/);
});

test('summarizeRecords: intervals stay in the metric\'s range (fractions [0, 1], magnitudes [−1, 1], costs and KLs ≥ 0)', () => {
  const values = [1, 1, 1, 0.5];
  const seconds = [0.01, 0.01, 0.01, 1];
  const recs: CaseRecord[] = values.map((v, i) => ({ index: i, regime: 'batch-1', batch: i, metrics: [
    { name: 'qa.locality_agree', protocol: 'generation-qa', value: v },
    { name: 'qa.rewrite_em', protocol: 'generation-qa', value: v },
    { name: 'efficacy_magnitude', protocol: 'probability-comparison', value: v },
    { name: 'ngram_entropy', protocol: 'sampled-generation', value: v },
    { name: 'edit_time', protocol: 'cost', value: seconds[i]!, unit: 'seconds' },
    { name: 'z_topic', protocol: 'sentiment-likelihood', value: v },
    { name: 'es_sent', protocol: 'sentiment-likelihood', value: v },
    { name: 'dd', protocol: 'sentiment-likelihood', value: seconds[i]!, unit: 'nats' },
  ] }));
  const byName = new Map(summarizeRecords(recs).map((r) => [r.name, r]));
  const open = meanCI(values);
  assert.ok(open.high > 1 && open.low < 1, 'test setup: the uncut interval leaves [0, 1]');
  for (const name of ['qa.locality_agree', 'qa.rewrite_em', 'efficacy_magnitude', 'z_topic', 'es_sent']) assert.equal(byName.get(name)!.ci95[1], 1, name);
  assert.equal(byName.get('dd')!.ci95[0], 0, 'a KL\'s interval stops at 0');
  assert.equal(byName.get('ngram_entropy')!.ci95[1], open.high, 'an unbounded metric keeps t\'s interval');
  const cost = meanCI(seconds);
  assert.ok(cost.low < 0, 'test setup: the uncut cost interval goes below 0');
  assert.deepEqual(byName.get('edit_time')!.ci95, [0, cost.high]);
});

test('summarizeRecords: a cost counts once per edit call (batch, sequential step), scores once per case', () => {
  const rec = (index: number, extra: Partial<CaseRecord>, seconds: number | null): CaseRecord => ({
    index, regime: 'batch-3', ...extra,
    metrics: seconds === null ? [] : [
      { name: 'efficacy_score', protocol: 'probability-comparison', value: index % 2 },
      { name: 'edit_time', protocol: 'cost', value: seconds, unit: 'seconds' },
    ],
    ...(seconds === null ? { error: 'refused' } : {}),
  });
  // Two batches of 3; batch 0's first case was refused (no metrics) and must not hide its cost.
  const recs = [rec(0, { batch: 0, call: 0 }, null), rec(1, { batch: 0, call: 0 }, 2), rec(2, { batch: 0, call: 0 }, 2), rec(3, { batch: 1, call: 1 }, 4), rec(4, { batch: 1, call: 1 }, 4), rec(5, { batch: 1, call: 1 }, 4)];
  const rows = new Map(summarizeRecords(recs).map((r) => [r.name, r]));
  assert.equal(rows.get('edit_time')!.count, 2);
  assert.equal(rows.get('edit_time')!.mean, 3);
  assert.equal(rows.get('efficacy_score')!.count, 5);
  // A sweep (batch:1,2 over 3 cases): K=2's short last batch is a batch-1 with the same index as
  // one of K=1's; the call number keeps them apart.
  const sweep = [rec(0, { batch: 0, call: 0 }, 1), rec(1, { batch: 1, call: 1 }, 2), rec(2, { batch: 2, call: 2 }, 3), rec(2, { batch: 1, call: 4 }, 5)]
    .map((r) => ({ ...r, regime: 'batch-1' as const }));
  const swrow = summarizeRecords(sweep).find((r) => r.name === 'edit_time')!;
  assert.deepEqual([swrow.count, swrow.mean], [4, 2.75]);
  // Sequential steps: the cases of one step share its `edit`.
  const seq = [0, 1, 2, 3].map((i) => ({ ...rec(i, { edit: i < 2 ? 2 : 4 }, i < 2 ? 1 : 5), regime: 'score-after-each' as const }));
  const srow = summarizeRecords(seq).find((r) => r.name === 'edit_time')!;
  assert.deepEqual([srow.count, srow.mean], [2, 3]);
});

test('summarizeByRelation: headline means per relation, kept apart by regime; none for a single relation', () => {
  const rec = (relation: string | undefined, eff: number, para: number, regime: CaseRecord['regime'] = 'single'): CaseRecord => ({
    index: 0, regime, ...(relation ? { relation } : {}),
    metrics: [
      { name: 'efficacy_score', protocol: 'probability-comparison', value: eff },
      { name: 'paraphrase_score', protocol: 'probability-comparison', value: para },
      { name: 'edit_time', protocol: 'cost', value: 3, unit: 'seconds' },
    ],
  });
  const records = [rec('P19', 1, 0.5), rec('P19', 0, 1), rec('P17', 1, 0), rec(undefined, 0, 0), rec('P17', 0, 0, 'batch-4')];
  const rows = summarizeByRelation(records);
  // P17 single: one case (1, 0); P19 single: two cases, means (0.5, 0.75); P17 batch-4 apart; the
  // case without a relation and the cost metric are left out.
  assert.deepEqual(rows.map((r) => [r.regime, r.relation, r.name, r.mean, r.count]), [
    ['single', 'P17', 'efficacy_score', 1, 1],
    ['single', 'P17', 'paraphrase_score', 0, 1],
    ['single', 'P19', 'efficacy_score', 0.5, 2],
    ['single', 'P19', 'paraphrase_score', 0.75, 2],
    ['batch-4', 'P17', 'efficacy_score', 0, 1],
    ['batch-4', 'P17', 'paraphrase_score', 0, 1],
  ]);
  assert.deepEqual(summarizeByRelation([rec('P19', 1, 1), rec('P19', 0, 1)]), []);
  const s: EvalSummary = {
    config: { method: 'rome', hparams: {}, hparamsOrigin: 'test', model: { dir: null, modelType: 'gpt2', fingerprint: 'f'.repeat(64) }, mode: 'single', cases: 4, casesDigest: '', scoring: {} },
    cases: 4, failed: 0, rows: summarizeRecords(records), byRelation: rows, drift: [], seconds: 1,
  };
  const md = summaryMarkdown(s);
  assert.match(md, /## By relation/);
  assert.match(md, /\| relation \| n \| efficacy_score \| paraphrase_score \|/);
  assert.match(md, /\| P19 \| 2 \| 0\.5000 \| 0\.7500 \|/);
});

test('parseMode / modeLabel', () => {
  assert.equal(parseMode('single'), 'single');
  assert.deepEqual(parseMode('batch:8'), { batch: 8 });
  assert.deepEqual(parseMode('batch:1,4,16'), { batch: [1, 4, 16] });
  assert.deepEqual(parseMode('sequential:200'), { sequential: 200 });
  assert.deepEqual(parseMode('sequential:500/50'), { sequential: 500, step: 50 });
  assert.deepEqual(parseMode('sequential:500/1'), { sequential: 500 }, 'a step of 1 is the plain sequential mode');
  assert.equal(modeLabel({ batch: [1, 4] }), 'batch:1,4');
  assert.equal(modeLabel({ sequential: 500, step: 50 }), 'sequential:500/50');
  assert.equal(modeLabel({ sequential: 500 }), 'sequential:500');
  for (const bad of ['batch', 'batch:0', 'batch:-1', 'sequential:2,3', 'sequential:x', 'sequential:5/0', 'sequential:5/', 'sequential:/5', 'batch:4/2', 'lifelong:5', '']) {
    assert.throws(() => parseMode(bad), /--mode must be single, batch:K .*, sequential:T or sequential:T\/K/, bad);
  }
});

test('niceTicks cover the data with round steps', () => {
  assert.deepEqual(niceTicks(0, 0.86, 6), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(1, 12, 7, true), [0, 2, 4, 6, 8, 10, 12]);
  assert.deepEqual(niceTicks(3, 3, 6, true), [2, 3, 4]);
});

test('niceTicks: values a few units in the last place apart end the loop and get distinct labels', async () => {
  // 0.1 + 0.2 and 0.3: the step fell below the spacing of doubles near 0.3 and k++ stopped changing
  // k. A worker, so that a hang fails the test instead of stopping the suite.
  const url = new URL('../src/eval/plot.js', import.meta.url).href;
  const worker = new Worker(`import(${JSON.stringify(url)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.niceTicks(0.3, 0.1 + 0.2)))`, { eval: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const ticks = await Promise.race([
      new Promise<number[]>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); }),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('niceTicks(0.3, 0.1 + 0.2) did not return in 10 s')), 10_000); }),
    ]);
    assert.ok(ticks[0]! <= 0.3 && ticks.at(-1)! >= 0.1 + 0.2, JSON.stringify(ticks));
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
  for (const [lo, hi] of [[1, 1 + 2 ** -52], [100, 100.00000000001], [0.1, 0.1 + 1e-12], [5e-4, 5.1e-4], [2e5, 2.01e5], [0.999, 1]] as const) {
    const ticks = niceTicks(lo, hi, 6);
    assert.ok(ticks.length >= 2 && ticks[0]! <= lo && ticks.at(-1)! >= hi, `${lo}..${hi}: ${ticks}`);
    const labels = ticks.map((t) => tickLabel(t, ticks[1]! - ticks[0]!));
    assert.equal(new Set(labels).size, labels.length, `${lo}..${hi}: ${labels.join(' ')}`);
  }
  // Whole numbers one apart keep their own ticks, however large.
  assert.deepEqual(niceTicks(100000, 100001, 7, true), [100000, 100001]);
});

test('PNG: encode → decode round trip, valid signature and chunk CRCs', () => {
  const w = 7, h = 5;
  const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37) & 0xff);
  const png = encodePng(w, h, rgb);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const back = decodePng(png);
  assert.equal(back.width, w);
  assert.equal(back.height, h);
  assert.deepEqual(back.rgb, rgb);
});

test('a chart: SVG with axes, ticks, labels and one line per series; the raster has the same size', () => {
  const scene = layoutChart({ title: 'T', xLabel: 'number of edits', yLabel: 'score', series: [
    { label: 'a', points: [[1, 0], [2, 0.5], [3, 1]] }, { label: 'b & c', points: [[1, 1], [3, 0]] },
  ], integerX: true });
  const svg = sceneToSvg(scene);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
  assert.match(svg, />number of edits</);
  assert.match(svg, /rotate\(-90/);
  assert.match(svg, />b &amp; c</);
  // a control character (a model folder's name) cannot be written in XML 1.0, even escaped
  const ctl = sceneToSvg(layoutChart({ title: 'model a\u0001b', xLabel: 'x', yLabel: 'y', series: [{ label: 's\u001b', points: [[1, 1]] }] }));
  assert.doesNotMatch(ctl, /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
  assert.match(ctl, />model a b</);
  const r = rasterize(scene);
  assert.equal(r.rgb.length, scene.width * scene.height * 3);
});

test('summaryMarkdown: a "|" or line break in a name from the data keeps its table row whole', () => {
  const recs: CaseRecord[] = [0, 1].map((index) => ({ index, relation: index ? 'P|1' : 'P2', regime: 'single', metrics: [
    { name: 'locality.a|b\nc_acc', protocol: 'token-accuracy', value: 0.5 }, { name: 'rewrite_acc', protocol: 'token-accuracy', value: 1 },
  ] }));
  const s: EvalSummary = {
    config: { method: 'rome', hparams: {}, hparamsOrigin: 'test', model: { dir: null, modelType: 'gpt2', fingerprint: 'f'.repeat(64) }, mode: 'single', cases: 2, casesDigest: '', scoring: {} },
    cases: 2, failed: 0, rows: summarizeRecords(recs), byRelation: summarizeByRelation(recs), drift: [], seconds: 1,
  };
  const md = summaryMarkdown(s);
  const cells = (line: string) => line.split(/(?<!\\)\|/).length;
  for (const table of md.split(/\n\n/).filter((b) => b.startsWith('|'))) {
    const lines = table.split('\n').filter((l) => l !== '');
    for (const l of lines) assert.equal(cells(l), cells(lines[0]!), `row ${JSON.stringify(l)} against header ${JSON.stringify(lines[0])}`);
  }
  assert.match(md, /\| locality\.a\\\|b c_acc \| 0\.5000 \|/);
  assert.match(md, /\| P\\\|1 \| 1 \|/);
});

test('summaryMarkdown: the model folder and data file keep their heading and list line whole, their marks escaped', () => {
  const dir = '/m/a|b #1 *x* `y` _z_ [l](u) <b> &amp;\nnext ##';
  const s: EvalSummary = {
    config: {
      method: 'rome', hparams: {}, hparamsOrigin: 'preset p + my*file*.yaml', model: { dir, modelType: 'gpt2', fingerprint: 'f'.repeat(64) },
      mode: 'single', cases: 1, casesDigest: '', scoring: {}, data: { file: 'cf_*1*.json\n# not a heading', format: 'counterfact' },
    },
    cases: 1, failed: 0, rows: [], drift: [], seconds: 1,
  };
  const lines = summaryMarkdown(s).split('\n');
  assert.equal(lines[0], '# Evaluation: ROME on /m/a\\|b \\#1 \\*x\\* \\`y\\` \\_z\\_ \\[l\\](u) \\<b\\> \\&amp; next \\#\\#');
  assert.equal(lines[1], '');
  assert.equal(lines[2], '- data: cf\\_\\*1\\*.json \\# not a heading (counterfact), 1 case(s)');
  assert.ok(lines.includes('- hparams: preset p + my\\*file\\*.yaml'));
  assert.equal(lines.filter((l) => l.startsWith('#')).length, 1, 'one heading: the line break did not make another');
});

test('runCharts: a batch run\'s cost point is the mean over its edit calls, as in the summary', () => {
  // batch:2 over 3 cases: a call of 2 cases (1 s) and the short last call of 1 case (4 s).
  const rec = (index: number, call: number, seconds: number): CaseRecord => ({
    index, regime: 'batch-2', batchSize: 2, batch: call, call, ...(call === 1 ? { callSize: 1 } : {}),
    metrics: [{ name: 'rewrite_acc', protocol: 'token-accuracy', value: index / 2 }, { name: 'edit_time', protocol: 'cost', value: seconds, unit: 'seconds' }],
  });
  const recs = [rec(0, 0, 1), rec(1, 0, 1), rec(2, 1, 4)];
  const charts = runCharts(recs, [], { title: 'T', kind: 'batch' });
  const point = (name: string) => charts.flatMap((c) => c.chart.series).find((x) => x.label === name)!.points;
  const rows = summarizeRecords(recs);
  assert.deepEqual(point('edit_time'), [[2, rows.find((r) => r.name === 'edit_time')!.mean]]);
  assert.deepEqual(point('edit_time'), [[2, 2.5]]);
  // scores stay a mean over cases
  assert.deepEqual(point('rewrite_acc'), [[2, 0.5]]);
});

test('runCharts: a protocol with more headline metrics than one chart holds gets further charts, none dropped', () => {
  // 23 headline metrics of one protocol (none has these names today; a chart holds MAX_SERIES).
  const names = Array.from({ length: 23 }, (_, k) => `m${String(k).padStart(2, '0')}_acc`);
  const recs: CaseRecord[] = [1, 2, 3].map((edit) => ({
    index: edit - 1, regime: 'score-after-each', edit,
    metrics: [
      ...names.map((name, k) => ({ name, protocol: 'token-accuracy' as const, value: (k + edit) / 30 })),
      { name: 'efficacy_score', protocol: 'probability-comparison' as const, value: edit / 3 },
    ],
  }));
  const charts = runCharts(recs, [], { title: 'T', kind: 'sequential' });
  const token = charts.filter((c) => c.file.startsWith('plot-token-accuracy'));
  const parts = Math.ceil(names.length / MAX_SERIES);
  assert.equal(token.length, parts);
  assert.deepEqual(token.map((c) => c.file), ['plot-token-accuracy', ...Array.from({ length: parts - 1 }, (_, k) => `plot-token-accuracy-${k + 2}`)]);
  for (const c of token) assert.ok(c.chart.series.length <= MAX_SERIES, `${c.file}: ${c.chart.series.length} series`);
  assert.deepEqual(token.flatMap((c) => c.chart.series.map((s) => s.label)).sort(), names);
  token.forEach((c, k) => assert.ok(c.chart.title.endsWith(`[${k + 1} of ${parts}]`), c.chart.title));
  // each series keeps its points (one per edit)
  for (const c of token) for (const s of c.chart.series) assert.equal(s.points.length, 3);
  // a protocol within the limit keeps its one chart, its title unchanged
  const prob = charts.filter((c) => c.file.startsWith('plot-probability-comparison'));
  assert.deepEqual(prob.map((c) => [c.file, c.chart.title]), [['plot-probability-comparison', 'T: probability-comparison']]);
});
