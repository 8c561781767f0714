/**
 * Line charts as a list of drawing primitives, so that the SVG and the PNG of a chart come from
 * one layout and cannot disagree. Coordinates are pixels, y pointing down.
 */

export interface Series {
  label: string;
  points: readonly (readonly [number, number])[];
}

export interface Chart {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Ticks on whole numbers only (edit counts, batch sizes). */
  integerX?: boolean;
}

export type Prim =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; fill: string }
  | { kind: 'line'; x1: number; y1: number; x2: number; y2: number; color: string; width: number }
  | { kind: 'polyline'; points: [number, number][]; color: string; width: number }
  | { kind: 'circle'; cx: number; cy: number; r: number; color: string }
  | { kind: 'text'; x: number; y: number; text: string; size: number; anchor: 'start' | 'middle' | 'end'; color: string; vertical?: boolean };

export interface Scene {
  width: number;
  height: number;
  prims: Prim[];
}

/** Colour-blind-safe palette (Okabe–Ito; its orange after black, as it is hard to tell from vermillion), then greys. */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#56B4E9', '#000000', '#E69F00', '#F0E442', '#777777', '#BBBBBB'];

/** Round tick steps (1, 2, 5 × 10^k) covering [lo, hi] with about `target` ticks. */
export function niceTicks(lo: number, hi: number, target = 6, integer = false): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  // Means of equal scores summed in another order differ in their last bits. Steps that fine would
  // print one label at every tick (six significant digits), and below the spacing of doubles near
  // lo, k++ below stops changing k and the loop never ends: for a chart such values are equal.
  // (Whole numbers a step of 1 apart keep their ticks: six digits tell them apart below a million.)
  const tooClose = hi - lo < Math.max(Math.abs(lo), Math.abs(hi)) * 1e-5 * Math.max(1, target - 1);
  if (tooClose && !(integer && hi - lo >= 1)) lo = hi = (lo + hi) / 2;
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, target - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.max(first + 1, Math.ceil(hi / step - 1e-9));
  const out: number[] = [];
  for (let k = first; k <= last; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

/** A tick's text; `step`, the distance between ticks, decides how many digits tell them apart. */
export function tickLabel(v: number, step = 0): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    const digits = step > 0 ? Math.floor(Math.log10(a)) - Math.floor(Math.log10(step)) : 1;
    return v.toExponential(Math.min(6, Math.max(1, digits)));
  }
  return String(Number(v.toPrecision(6)));
}

/** Rough text width in pixels (sans-serif, wide enough for the PNG pixel font too). */
const textWidth = (s: string, size: number) => s.length * size * 0.75;

export function layoutChart(chart: Chart, width = 760, height = 440): Scene {
  const prims: Prim[] = [];
  const legendW = Math.min(240, Math.max(90, ...chart.series.map((s) => textWidth(s.label, 11) + 34)));
  const left = 72, right = legendW + 16, top = chart.subtitle ? 52 : 38, bottom = 52;
  const pw = width - left - right, ph = height - top - bottom;
  prims.push({ kind: 'rect', x: 0, y: 0, w: width, h: height, fill: '#FFFFFF' });
  prims.push({ kind: 'text', x: width / 2, y: 20, text: chart.title, size: 14, anchor: 'middle', color: '#000000' });
  if (chart.subtitle) prims.push({ kind: 'text', x: width / 2, y: 37, text: chart.subtitle, size: 11, anchor: 'middle', color: '#555555' });

  const xs = chart.series.flatMap((s) => s.points.map((p) => p[0])).filter(Number.isFinite);
  const ys = chart.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xt = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 7, chart.integerX);
  const yt = niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 6);
  const [x0, x1] = [xt[0]!, xt[xt.length - 1]!];
  const [y0, y1] = [yt[0]!, yt[yt.length - 1]!];
  const px = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * pw;
  const py = (y: number) => top + ph - ((y - y0) / (y1 - y0 || 1)) * ph;

  for (const t of yt) {
    const y = py(t);
    prims.push({ kind: 'line', x1: left, y1: y, x2: left + pw, y2: y, color: '#E6E6E6', width: 1 });
    prims.push({ kind: 'line', x1: left - 5, y1: y, x2: left, y2: y, color: '#000000', width: 1 });
    prims.push({ kind: 'text', x: left - 8, y: y + 4, text: tickLabel(t, yt[1]! - yt[0]!), size: 11, anchor: 'end', color: '#000000' });
  }
  for (const t of xt) {
    const x = px(t);
    prims.push({ kind: 'line', x1: x, y1: top + ph, x2: x, y2: top + ph + 5, color: '#000000', width: 1 });
    prims.push({ kind: 'text', x, y: top + ph + 18, text: tickLabel(t, xt[1]! - xt[0]!), size: 11, anchor: 'middle', color: '#000000' });
  }
  prims.push({ kind: 'line', x1: left, y1: top, x2: left, y2: top + ph, color: '#000000', width: 1 });
  prims.push({ kind: 'line', x1: left, y1: top + ph, x2: left + pw, y2: top + ph, color: '#000000', width: 1 });
  prims.push({ kind: 'text', x: left + pw / 2, y: height - 12, text: chart.xLabel, size: 12, anchor: 'middle', color: '#000000' });
  prims.push({ kind: 'text', x: 18, y: top + ph / 2, text: chart.yLabel, size: 12, anchor: 'middle', color: '#000000', vertical: true });

  chart.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])).map((p) => [px(p[0]), py(p[1])] as [number, number]);
    if (pts.length > 1) prims.push({ kind: 'polyline', points: pts, color, width: 2 });
    // Markers only where points are sparse enough to tell apart; a lone point needs one to show at all.
    if (pts.length <= 30) for (const [cx, cy] of pts) prims.push({ kind: 'circle', cx, cy, r: 3, color });
    const ly = top + 8 + i * 18;
    prims.push({ kind: 'line', x1: width - right + 10, y1: ly, x2: width - right + 30, y2: ly, color, width: 3 });
    prims.push({ kind: 'text', x: width - right + 36, y: ly + 4, text: s.label, size: 11, anchor: 'start', color: '#000000' });
  });
  return { width, height, prims };
}
