// Weight updates of the down projection in the tensor's stored orientation, and temporary
// application during an edit (the model is always left exactly as it was found).
import type { CausalLM } from '../../models/model.js';
import { addDeltaInPlace } from '../../patch/delta.js';
import type { TensorDelta } from '../../patch/types.js';

/**
 * ΔW = A Bᵀ in the math orientation of the down projection (out = W k): A is [d, r] (output
 * side), B is [d_ff, r] (input side), both row-major in float64. Returned in the tensor's stored
 * orientation: 'out_in' ([d, d_ff], torch Linear) U = A, V = B; 'in_out' ([d_ff, d], GPT-2 Conv1D)
 * ΔWᵀ, U = B, V = A (rome_main.upd_matrix_match_shape transposes the same way). Low-rank when that
 * stores fewer values than a dense matrix, else dense (the product formed in float64).
 */
export function downProjectionDelta(model: CausalLM, layer: number, A: Float64Array, B: Float64Array, r: number): TensorDelta {
  const lin = model.spec.layers[layer].down;
  const d = lin.outF, f = lin.inF;
  const [U, V, rows, cols] = lin.layout === 'out_in' ? [A, B, d, f] : [B, A, f, d];
  if (r * (rows + cols) < rows * cols) {
    return { kind: 'low_rank', name: lin.w, rows, cols, rank: r, U: Float32Array.from(U), V: Float32Array.from(V) };
  }
  const dense = new Float32Array(rows * cols);
  const Vt = new Float64Array(r * cols);
  for (let j = 0; j < cols; j++) for (let k = 0; k < r; k++) Vt[k * cols + j] = V[j * r + k];
  const acc = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const u = U[i * r + k];
      if (u === 0) continue;
      const off = k * cols;
      for (let j = 0; j < cols; j++) acc[j] += u * Vt[off + j];
    }
    for (let j = 0; j < cols; j++) dense[i * cols + j] = acc[j];
  }
  return { kind: 'dense', name: lin.w, shape: [rows, cols], delta: dense };
}

/** Concatenates low-rank deltas of one tensor along the rank (ΔW = Σ U_i V_iᵀ); dense ones are summed. */
export function mergeDeltas(deltas: readonly TensorDelta[]): TensorDelta[] {
  const byName = new Map<string, TensorDelta[]>();
  for (const d of deltas) byName.set(d.name, [...(byName.get(d.name) ?? []), d]);
  const out: TensorDelta[] = [];
  for (const [name, list] of byName) {
    if (list.length === 1) { out.push(list[0]); continue; }
    if (list.every((d) => d.kind === 'low_rank')) {
      const lr = list as Extract<TensorDelta, { kind: 'low_rank' }>[];
      const rows = lr[0].rows, cols = lr[0].cols, rank = lr.reduce((a, d) => a + d.rank, 0);
      const U = new Float32Array(rows * rank), V = new Float32Array(cols * rank);
      let off = 0;
      for (const d of lr) {
        for (let i = 0; i < rows; i++) for (let k = 0; k < d.rank; k++) U[i * rank + off + k] = d.U[i * d.rank + k];
        for (let j = 0; j < cols; j++) for (let k = 0; k < d.rank; k++) V[j * rank + off + k] = d.V[j * d.rank + k];
        off += d.rank;
      }
      if (rank * (rows + cols) < rows * cols) {
        out.push({ kind: 'low_rank', name, rows, cols, rank, U, V });
        continue;
      }
    }
    const shape = list[0].kind === 'low_rank' ? [list[0].rows, list[0].cols] : list[0].shape;
    const dense = new Float32Array(shape[0] * shape[1]);
    for (const d of list) addDeltaInPlace(dense, d);
    out.push({ kind: 'dense', name, shape, delta: dense });
  }
  return out;
}

/** Keeps the original values of the tensors it touches; restore() puts them back bit for bit. */
export class TemporaryWeights {
  private readonly saved = new Map<string, Float32Array>();
  constructor(private readonly model: CausalLM) {}

  apply(d: TensorDelta): void {
    const t = this.model.weight(d.name);
    if (!this.saved.has(d.name)) this.saved.set(d.name, t.data.slice());
    addDeltaInPlace(t.data, d);
  }

  restore(): void {
    for (const [name, data] of this.saved) this.model.weight(name).data.set(data);
    this.saved.clear();
  }
}
