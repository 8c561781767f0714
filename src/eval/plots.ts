// The emitted .d.ts names Buffer, so it brings @types/node itself (preserve: TypeScript ≥ 5.5 drops it otherwise).
/// <reference types="node" preserve="true" />
/**
 * Which charts a run gets: sequential runs plot each metric against the number of edits (and the
 * perplexity drift at checkpoints), batch runs against the batch size. One chart per scoring
 * protocol and unit, so a chart never mixes what summaries keep apart.
 */
import { layoutChart, type Chart, type Series } from './plot.js';
import { sceneToSvg } from './plot-svg.js';
import { rasterize } from './raster.js';
import { encodePng } from './png.js';
import { PROTOCOLS } from './protocols.js';
import { countedMetrics } from './summary.js';
import type { CaseRecord, DriftPoint } from './run-types.js';

/** Headline metrics only: per-sub-key rows (locality.X_acc) would crowd the legend. */
const plotted = (name: string) => !name.replace(/^qa\./, '').includes('.');
/**
 * Series per chart: the palette's ten colours, each told apart. A protocol with more headline
 * metrics gets further charts (plot-X-2, ...) rather than losing the rest.
 */
export const MAX_SERIES = 10;

interface Point { x: number; value: number }

function byMetric(records: readonly CaseRecord[], xOf: (r: CaseRecord) => number | undefined) {
  const groups = new Map<string, { protocol: string; name: string; unit?: string; points: Point[] }>();
  // Costs count once per edit call, as in the summary, so the chart agrees with the table.
  const callsSeen = new Set<string>();
  for (const r of records) {
    const x = xOf(r);
    if (x === undefined) continue;
    for (const m of countedMetrics(r, callsSeen)) {
      if (!plotted(m.name) || !Number.isFinite(m.value)) continue;
      const key = `${m.protocol}/${m.unit ?? ''}/${m.name}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { protocol: m.protocol, name: m.name, unit: m.unit, points: [] }));
      g.points.push({ x, value: m.unit === 'bytes' ? m.value / 2 ** 20 : m.value });
    }
  }
  return [...groups.values()];
}

/** Mean per x, or per bin of x when there are more than `maxBins` distinct x (long runs). */
function binnedMeans(points: readonly Point[], maxBins: number): [number, number][] {
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const bins = new Map<number, { sx: number; sv: number; n: number }>();
  const lo = xs[0]!, hi = xs[xs.length - 1]!;
  const width = xs.length > maxBins ? (hi - lo + 1) / maxBins : 0;
  for (const p of points) {
    const b = width ? Math.min(maxBins - 1, Math.floor((p.x - lo) / width)) : p.x;
    const s = bins.get(b) ?? { sx: 0, sv: 0, n: 0 };
    s.sx += p.x;
    s.sv += p.value;
    s.n++;
    bins.set(b, s);
  }
  return [...bins.values()].map((s) => [s.sx / s.n, s.sv / s.n] as [number, number]).sort((a, b) => a[0] - b[0]);
}

const unitLabel = (unit?: string) => (unit === 'bytes' ? 'MiB' : unit ?? 'value');

export interface NamedChart { file: string; chart: Chart }

export function runCharts(records: readonly CaseRecord[], drift: readonly DriftPoint[], o: { title: string; kind: 'sequential' | 'batch' | 'single'; protocolLabel?: string }): NamedChart[] {
  if (o.kind === 'single') return [];
  const seq = o.kind === 'sequential';
  const xOf = seq ? (r: CaseRecord) => r.edit : (r: CaseRecord) => r.batchSize;
  const groups = byMetric(records, xOf);
  const out: NamedChart[] = [];
  const keys = [...new Set(groups.map((g) => `${g.protocol}/${g.unit ?? ''}`))].sort((a, b) =>
    PROTOCOLS.indexOf(a.split('/')[0] as never) - PROTOCOLS.indexOf(b.split('/')[0] as never) || a.localeCompare(b));
  for (const key of keys) {
    const [protocol, unit] = key.split('/') as [string, string];
    const all = groups.filter((g) => `${g.protocol}/${g.unit ?? ''}` === key);
    const parts = Math.ceil(all.length / MAX_SERIES);
    for (let part = 0; part < parts; part++) {
      const gs = all.slice(part * MAX_SERIES, (part + 1) * MAX_SERIES);
      const series: Series[] = gs.map((g) => ({ label: g.name, points: binnedMeans(g.points, 50) }));
      const distinct = new Set(gs.flatMap((g) => g.points.map((p) => p.x))).size;
      const partOf = parts > 1 ? ` [${part + 1} of ${parts}]` : '';
      out.push({
        file: `plot-${protocol}${unit ? `-${unit}` : ''}${part > 0 ? `-${part + 1}` : ''}`,
        chart: {
          title: `${o.title}: ${protocol}${unit ? ` (${unitLabel(unit)})` : ''}${partOf}`,
          subtitle: seq
            ? `${o.protocolLabel ?? ''}; x = the edit that applied the case${distinct > 50 ? ', means over bins of edits' : ''}`
            : protocol === 'cost' ? 'mean over the batches of that size (one edit call each)' : 'mean over the cases of every batch of that size',
          xLabel: seq ? 'number of edits' : 'batch size',
          yLabel: unit ? unitLabel(unit) : protocol === 'perplexity' ? 'perplexity' : 'score',
          series,
          integerX: true,
        },
      });
    }
  }
  if (drift.length) {
    out.push({
      file: 'plot-perplexity-drift',
      chart: {
        title: `${o.title}: perplexity drift`,
        subtitle: `held-out text, ${drift[0]!.tokens} tokens; ratio to the unedited model`,
        xLabel: 'number of edits',
        yLabel: 'perplexity ratio',
        series: [{ label: 'ppl_ratio', points: drift.map((d) => [d.edits, d.ratio] as [number, number]) }],
        integerX: true,
      },
    });
  }
  return out;
}

/** SVG text and PNG bytes of a chart. */
export function renderChart(chart: Chart): { svg: string; png: Buffer } {
  const scene = layoutChart(chart);
  const r = rasterize(scene);
  return { svg: sceneToSvg(scene), png: encodePng(r.width, r.height, r.rgb) };
}
