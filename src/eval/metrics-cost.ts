/**
 * What an edit costs: wall time and memory. Node runs an edit synchronously on one thread, so
 * memory cannot be sampled while it runs. On Linux the resident set's high-water mark (VmHWM) is
 * reset before the call (writing 5 to /proc/self/clear_refs) and read after it: the call's own
 * peak. Elsewhere only the process's peak (getrusage maxrss) can be read, and it never goes down:
 * `newPeak` says whether the call raised it, and only then is peakRssBytes the call's own.
 */
import fs from 'node:fs';
import { metric, type Metric } from './protocols.js';
import type { CaseCost } from './run-types.js';

export interface Cost {
  wallSeconds: number;
  /** Peak resident set size during the call, or the process's so far (see newPeak) (bytes). */
  peakRssBytes: number;
  /** peakRssBytes was reached during the call (always, where the peak could be reset before it). */
  newPeak: boolean;
}

const processPeak = () => process.resourceUsage().maxRSS * 1024;

/** Resets the kernel's high-water mark of this process's resident set; false where it cannot. */
function resetPeak(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function highWaterMark(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface Start { t0: bigint; peak0: number; reset: boolean }

function start(): Start {
  const reset = resetPeak();
  return { peak0: processPeak(), reset, t0: process.hrtime.bigint() };
}

function finish(s: Start): Cost {
  const wallSeconds = Number(process.hrtime.bigint() - s.t0) / 1e9;
  const own = s.reset ? highWaterMark() : null;
  const peak = own ?? processPeak();
  return { wallSeconds, peakRssBytes: peak, newPeak: own !== null || peak > s.peak0 };
}

/** Run an async fn and measure it (wall time includes any awaiting). */
export async function measureAsync<T>(fn: () => Promise<T> | T): Promise<{ result: T; cost: Cost }> {
  const s = start();
  const result = await fn();
  return { result, cost: finish(s) };
}

/**
 * edit_time (seconds) and peak_rss (bytes), tagged 'cost'; peak_rss only where it is the call's
 * own (newPeak), so that means and plots never average in another call's peak.
 */
export function costMetrics(c: CaseCost): Metric[] {
  return [
    metric('edit_time', 'cost', c.editSeconds, { unit: 'seconds' }),
    ...(c.newPeak ? [metric('peak_rss', 'cost', c.peakRssBytes, { unit: 'bytes' })] : []),
  ];
}
