// A progress bar on stderr for work that takes more than a second. Silent unless the caller
// enables it (a terminal on stderr, and no --json asked for), so logs and pipes stay clean.
import type { ProgressEvent, ProgressPhase } from '../editors/common/run.js';

export class Progress {
  private readonly start = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private lastLength = 0;
  /** Where the rate behind the eta is counted from (see mark). */
  private markTime = this.start;
  private markDone = 0;

  constructor(private readonly label: string, private readonly total: number,
    private readonly enabled = process.stderr.isTTY === true, private readonly unit = '') {}

  /** `note` follows the counts (what the work is doing now, for a bar that spans several stages). */
  update(done: number, note = ''): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.start < 1000 || (now - this.lastDraw < 100 && done < this.total)) return;
    this.lastDraw = now;
    this.drawn = true;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 0;
    const width = 30, filled = Math.round(frac * width);
    const elapsed = (now - this.start) / 1000;
    const eta = done > this.markDone ? ((now - this.markTime) / 1000) * Math.max(0, this.total - done) / (done - this.markDone) : 0;
    const amount = this.unit === 'B' ? `${fmtBytes(done)}/${fmtBytes(this.total)}` : `${done}/${this.total}`;
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${amount} ${elapsed.toFixed(1)}s eta ${eta.toFixed(1)}s${note ? ` ${note}` : ''}`;
    // A shorter line (the eta falling from 100.0s to 9.9s) blanks what is left of the longer one.
    process.stderr.write(`\r${line.padEnd(this.lastLength)}`);
    this.lastLength = line.length;
  }

  /**
   * Counts the eta's rate from here, `done` units in: for work that starts part-way (a resumed run)
   * or after a set-up whose time says nothing about the units' pace.
   */
  mark(done: number): void {
    this.markTime = Date.now();
    this.markDone = done;
  }

  /** Ends the bar's line; a later update draws it again on a new line (another bar came between). */
  done(): void {
    if (this.drawn) process.stderr.write('\n');
    this.drawn = false;
    this.lastLength = 0;
  }
}

const PHASE_LABELS: Record<ProgressPhase, string> = { stats: 'key statistics', z: 'MEMIT z vectors', rome: 'ROME v*', layers: 'MEMIT layers' };

/**
 * The bars of one edit, one per phase it reports (statistics, then v* or z, then MEMIT's layers).
 * The editors report their main phase only when a step (a v* or a chunk of z vectors) ends, so its
 * bar starts with the edit, and again once statistics are done, for its elapsed time and ETA to
 * count the whole phase.
 */
export class EditBars {
  private readonly bars = new Map<ProgressPhase, Progress>();

  constructor(private readonly enabled: boolean, private readonly main: { phase: ProgressPhase; total: number }) {
    this.startMain();
  }

  private startMain(): void {
    this.bars.set(this.main.phase, new Progress(PHASE_LABELS[this.main.phase], this.main.total, this.enabled));
  }

  readonly onProgress = (e: ProgressEvent): void => {
    let bar = this.bars.get(e.phase);
    if (!bar) this.bars.set(e.phase, (bar = new Progress(PHASE_LABELS[e.phase], e.total, this.enabled)));
    bar.update(e.done);
    if (e.done >= e.total) {
      bar.done();
      this.bars.delete(e.phase);
      if (e.phase === 'stats') this.startMain();
    }
  };

  /** Ends the lines of phases that stopped short of their total (an early stop). */
  done(): void {
    for (const b of this.bars.values()) b.done();
    this.bars.clear();
  }
}

/** A probability as the edit and demo commands print it: 3 decimals, 1 significant digit below 0.001, – when there is none. */
export function fmtP(p: number | undefined): string {
  if (p === undefined || !Number.isFinite(p)) return '–';
  return p >= 1e-3 ? p.toFixed(3) : p.toExponential(1);
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
