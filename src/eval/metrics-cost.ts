/**
 * What an edit costs: wall time and memory. Node runs an edit synchronously on one thread, so
 * memory cannot be sampled while it runs; the operating system's high-water mark of the resident
 * set (getrusage maxrss) is read before and after instead. It never goes down: `newPeak` says
 * whether the call raised it, and only then is peakRssBytes the call's own peak.
 */
import { metric, type Metric } from './protocols.js';

export interface Cost {
  wallSeconds: number;
  /** Process-wide peak resident set size after the call (bytes). */
  peakRssBytes: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** The call raised the process's peak RSS (so peakRssBytes was reached during it). */
  newPeak: boolean;
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

function finish(t0: bigint, peak0: number, rss0: number): Cost {
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const peak = peakRss();
  return { wallSeconds, peakRssBytes: peak, rssBeforeBytes: rss0, rssAfterBytes: process.memoryUsage.rss(), newPeak: peak > peak0 };
}

/** Run fn and measure it. */
export function measure<T>(fn: () => T): { result: T; cost: Cost } {
  const peak0 = peakRss(), rss0 = process.memoryUsage.rss();
  const t0 = process.hrtime.bigint();
  const result = fn();
  return { result, cost: finish(t0, peak0, rss0) };
}

/** Run an async fn and measure it (wall time includes any awaiting). */
export async function measureAsync<T>(fn: () => Promise<T> | T): Promise<{ result: T; cost: Cost }> {
  const peak0 = peakRss(), rss0 = process.memoryUsage.rss();
  const t0 = process.hrtime.bigint();
  const result = await fn();
  return { result, cost: finish(t0, peak0, rss0) };
}

/** edit_time (seconds) and peak_rss (bytes), tagged 'cost'. */
export function costMetrics(c: Cost): Metric[] {
  return [
    metric('edit_time', 'cost', c.wallSeconds, { unit: 'seconds' }),
    metric('peak_rss', 'cost', c.peakRssBytes, { unit: 'bytes' }),
  ];
}
