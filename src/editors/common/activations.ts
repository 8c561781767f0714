// Reading activations at chosen (sequence, token) pairs: batched, right-padded forward passes with
// capture hooks, stopped as soon as the last requested hook point has been read.
import type { CausalLM } from '../../models/model.js';
import { capture, type Hook } from '../../models/hooks.js';
import { noGrad } from '../../tensor/index.js';

const ORDER = ['resid_pre', 'attn.out', 'mlp.in', 'mlp.keys', 'mlp.out', 'resid_post'];

/** Position of a hook point in the forward order (layer-major). */
function pointOrder(point: string): number {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(point);
  if (!m) return Number.MAX_SAFE_INTEGER;
  return Number(m[1]) * ORDER.length + ORDER.indexOf(m[2]);
}

class StopForward extends Error {}

/** A right-padded batch of token sequences. */
export interface Batch {
  ids: Int32Array;
  mask: Uint8Array;
  B: number;
  T: number;
}

export function padBatch(seqs: readonly (readonly number[])[], pad = 0): Batch {
  const B = seqs.length, T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T).fill(pad), mask = new Uint8Array(B * T);
  seqs.forEach((s, b) => s.forEach((id, t) => { ids[b * T + t] = id; mask[b * T + t] = 1; }));
  return { ids, mask, B, T };
}

/** Indices of `lengths` split into batches of at most `maxTokens` padded tokens (longest first). */
export function planBatches(lengths: readonly number[], maxTokens: number, maxRows = 512): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const out: number[][] = [];
  let cur: number[] = [], curMax = 0;
  for (const i of order) {
    const m = Math.max(curMax, lengths[i]);
    if (cur.length > 0 && (m * (cur.length + 1) > maxTokens || cur.length >= maxRows)) {
      out.push(cur);
      cur = [];
    }
    curMax = cur.length === 0 ? lengths[i] : Math.max(curMax, lengths[i]);
    cur.push(i);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * For each point, the activation at (sequence i, position positions[i]) for every i, as
 * [n, width] row-major. The forward pass of each batch stops after the last point.
 */
export function activationsAt(model: CausalLM, seqs: readonly (readonly number[])[], positions: readonly number[],
  points: readonly string[], opts: { maxTokens?: number } = {}): Map<string, Float32Array> {
  const n = seqs.length;
  const out = new Map<string, Float32Array>();
  if (n === 0) return out;
  const last = [...points].sort((a, b) => pointOrder(b) - pointOrder(a))[0];
  for (const batchIdx of planBatches(seqs.map((s) => s.length), opts.maxTokens ?? 8192)) {
    const batch = padBatch(batchIdx.map((i) => seqs[i]));
    const rows = batchIdx.map((i, b) => b * batch.T + positions[i]);
    const caps = points.map((p) => capture(p, rows));
    const hooks: Hook[] = caps.map((c) => c.hook);
    hooks.push({ point: last, fn: () => { throw new StopForward(); } });
    noGrad(() => {
      try {
        model.forward(batch.ids, batch.B, batch.T, { attentionMask: batch.mask, logitsAt: 'none', hooks });
      } catch (e) {
        if (!(e instanceof StopForward)) throw e;
      }
    });
    points.forEach((p, k) => {
      const v = caps[k].value();
      const w = v.dim(-1);
      let dst = out.get(p);
      if (!dst) out.set(p, (dst = new Float32Array(n * w)));
      batchIdx.forEach((i, r) => dst!.set(v.data.subarray(r * w, (r + 1) * w), i * w));
    });
  }
  return out;
}
