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

/**
 * What a model loaded from an Amend export is, in terms of where it came from: the first base's
 * fingerprint and the ids (EditPatch.id) of the patches that export applied to it, in order (its
 * record, see export.ts).
 */
export interface PatchOrigin {
  baseFingerprint: string;
  patches: string[];
}

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
  /**
   * Set when the model the patch was computed on was loaded from an Amend export: that export's
   * first base and patches. modelFingerprint is still the export's own; the origin lets the patch
   * also apply to the first base once those patches are applied to it, in that order (session.ts).
   */
  origin?: PatchOrigin;
}
