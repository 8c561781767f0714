// A progress bar on stderr for work that takes more than a second. Silent unless the caller
// enables it (a terminal on stderr, and no --json asked for), so logs and pipes stay clean.
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
