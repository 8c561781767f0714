// Bookkeeping shared by the editors: seconds per phase, progress callbacks.

/**
 * What a progress event counts: key statistics (stats), ROME's request × layer updates (rome),
 * MEMIT's z vectors (z) and its layer updates (layers).
 */
export type ProgressPhase = 'stats' | 'rome' | 'z' | 'layers';

export interface ProgressEvent {
  phase: ProgressPhase;
  done: number;
  total: number;
}

export type EditProgress = (e: ProgressEvent) => void;

/** Wall-clock seconds per phase, summed over calls. */
export class Timings {
  readonly seconds: Record<string, number> = {};

  time<T>(phase: string, fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.add(phase, (performance.now() - t0) / 1000);
    }
  }

  async timeAsync<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(phase, (performance.now() - t0) / 1000);
    }
  }

  add(phase: string, s: number): void {
    this.seconds[phase] = (this.seconds[phase] ?? 0) + s;
  }

  /** Rounded to the millisecond. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.seconds)) out[k] = Math.round(v * 1000) / 1000;
    return out;
  }
}
