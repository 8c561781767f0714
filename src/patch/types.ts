// The shape of an edit: per touched tensor, either low-rank factors or a dense delta, in the
// tensor's own orientation and under its checkpoint name (design: "Edits").
import type { EditRequest } from '../editors/types.js';

/** ΔW = U Vᵀ where W is [rows, cols] as stored; U is [rows, rank], V is [cols, rank], row-major. */
export interface LowRankDelta {
  kind: 'low_rank';
  name: string;
  rows: number;
  cols: number;
  rank: number;
  U: Float32Array;
  V: Float32Array;
}

export interface DenseDelta {
  kind: 'dense';
  name: string;
  shape: number[];
  delta: Float32Array;
}

export type TensorDelta = LowRankDelta | DenseDelta;

export interface PatchMetadata {
  /** 'rome', 'memit', ... */
  method: string;
  hparams: Record<string, unknown>;
  requests: EditRequest[];
  /** Fingerprint of the model the patch was computed on (and may be applied to). */
  modelFingerprint: string;
  /** model_type and name/path of that model, for messages. */
  model: { modelType: string; source: string | null };
  createdAt: string;
  /** Seconds per phase (e.g. stats, keys, v_optimisation, solve). */
  timings: Record<string, number>;
  amendVersion: string;
  /**
   * Ids (EditPatch.id) of the patches that were applied to the model, in order, when this patch was
   * computed (sequential editing); absent or empty when it was computed on the unedited model.
   * Informational: shown by `amend patch show`, never enforced.
   */
  appliedOn?: string[];
}
