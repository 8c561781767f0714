// Running Σ k kᵀ over batches of keys: each batch's Gram matrix is one set of float32 GEMMs on the
// backend (the fast native kernel), added into a float64 sum. Only the upper triangle is computed:
// the columns are cut into blocks of about BLOCK and only the blocks (i, j ≥ i) are multiplied,
// about (nb + 1) / 2nb of a full GEMM's work; the lower triangle is mirrored at the end, so the
// result is exactly symmetric.
//
// Precision: within a batch (at most batchTokens rows) the sums are float32 — OpenBLAS's blocked
// dot products keep the relative error of each entry near 1e-7 · sqrt(rows) — and across batches
// they are float64, so the error does not grow with the corpus size. test/stats.test.ts measures
// it against a plain float64 sum (relative max-abs error below 1e-5 on real activations).
import { kernels } from '../backend/index.js';

/** Target block width of the triangular GEMM (large enough to keep the kernel at full speed). */
const BLOCK = 512;

export class GramAccumulator {
  readonly dim: number;
  /** Tokens added so far. */
  count = 0;
  /** Σ k kᵀ (upper triangle and diagonal blocks valid until finish()). */
  readonly sum: Float64Array;
  private readonly blocks: { start: number; width: number }[];
  private panel = new Float32Array(0);
  private readonly tmp: Float32Array;

  constructor(dim: number) {
    this.dim = dim;
    this.sum = new Float64Array(dim * dim);
    const nb = Math.max(1, Math.round(dim / BLOCK));
    const base = Math.floor(dim / nb), extra = dim % nb;
    this.blocks = [];
    for (let b = 0, start = 0; b < nb; b++) {
      const width = base + (b < extra ? 1 : 0);
      this.blocks.push({ start, width });
      start += width;
    }
    const wmax = this.blocks[0].width;
    this.tmp = new Float32Array(wmax * wmax);
  }

  /**
   * Adds the rows `rows` (indices into x viewed as [*, dim]) of a batch of keys.
   * Nothing of x is kept: the rows are copied into column-block panels first.
   */
  add(x: Float32Array, rows: Int32Array): void {
    const n = rows.length, d = this.dim;
    if (n === 0) return;
    if (this.panel.length < n * d) this.panel = new Float32Array(n * d);
    const panel = this.panel;
    // Panel b holds columns [start, start + width) of every row, as a contiguous [n, width] matrix.
    for (let k = 0; k < n; k++) {
      const row = x.subarray(rows[k] * d, rows[k] * d + d);
      for (const { start, width } of this.blocks) panel.set(row.subarray(start, start + width), n * start + k * width);
    }
    const K = kernels();
    const sum = this.sum, tmp = this.tmp;
    for (let bi = 0; bi < this.blocks.length; bi++) {
      const { start: si, width: wi } = this.blocks[bi];
      const A = panel.subarray(n * si, n * (si + wi));
      for (let bj = bi; bj < this.blocks.length; bj++) {
        const { start: sj, width: wj } = this.blocks[bj];
        const B = panel.subarray(n * sj, n * (sj + wj));
        // tmp[wi, wj] = Aᵀ B with A, B stored [n, w]
        K.gemm(true, false, 1, wi, wj, n, A, 0, B, 0, tmp, 0);
        for (let r = 0; r < wi; r++) {
          const o = (si + r) * d + sj, t = r * wj;
          for (let c = 0; c < wj; c++) sum[o + c] += tmp[t + c];
        }
      }
    }
    this.count += n;
  }

  /**
   * E[k kᵀ] = Σ k kᵀ / count, mirrored from the upper triangle (exactly symmetric). Works in place
   * on `sum` (no second dim² array) and returns it; the accumulator is finished afterwards.
   */
  finish(): Float64Array {
    const d = this.dim, s = this.sum, n = this.count;
    for (let i = 0; i < d; i++) {
      s[i * d + i] = n > 0 ? s[i * d + i] / n : 0;
      for (let j = i + 1; j < d; j++) {
        const v = n > 0 ? s[i * d + j] / n : 0;
        s[i * d + j] = v;
        s[j * d + i] = v;
      }
    }
    return s;
  }
}
