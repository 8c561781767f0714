// Access to the LAPACK entry points of the native addon (native/src/linalg.cc).
//
// The addon registers them only when it was built against OpenBLAS (-DAMEND_OPENBLAS); otherwise,
// or when the addon is absent, `lapack()` returns null and src/linalg uses its TS reference.
// Every routine works in place on buffers the caller owns; see linalg.cc for the conventions.
import { nativeAddon } from '../backend/native.js';

export type FloatArray = Float64Array | Float32Array;

export interface LapackAddon {
  /** a (n×n, lower triangle read) ← L; returns 0 or k > 0 (leading minor k not positive definite). */
  linalgPotrf(a: FloatArray, n: number): number;
  /** b (n×nrhs) ← (L Lᵀ)⁻¹ b. */
  linalgPotrs(l: FloatArray, b: FloatArray, n: number, nrhs: number): void;
  /** a = L (from potrf) ← (L Lᵀ)⁻¹, full; returns info. */
  linalgPotri(a: FloatArray, n: number): number;
  /** a destroyed, b ← A⁻¹ b, diag ← the LU pivots u_kk; returns 0, k > 0 (u_kk = 0), -1 (no memory). */
  linalgGesv(a: FloatArray, b: FloatArray, n: number, nrhs: number, diag: FloatArray): number;
  /** a (lower triangle read) ← eigenvectors (column j ↔ w[j]), w ← eigenvalues ascending; returns info. */
  linalgSyevd(a: FloatArray, w: FloatArray, n: number): number;
  /** Thin SVD of a (m×n, destroyed) into u (m×r), s (r), vt (r×n); returns info. */
  linalgGesdd(a: FloatArray, m: number, n: number, u: FloatArray, s: FloatArray, vt: FloatArray): number;
}

const NAMES = [
  'linalgPotrf', 'linalgPotrs', 'linalgPotri', 'linalgGesv', 'linalgSyevd', 'linalgGesdd',
] as const;

let cached: LapackAddon | null | undefined;

/** The addon's LAPACK functions, or null when the addon or its OpenBLAS part is missing. */
export function lapack(): LapackAddon | null {
  if (cached !== undefined) return cached;
  let addon: unknown = null;
  try {
    addon = nativeAddon();
  } catch {
    addon = null;
  }
  if (addon && typeof addon === 'object') {
    const rec = addon as Record<string, unknown>;
    if (NAMES.every((k) => typeof rec[k] === 'function')) return (cached = addon as LapackAddon);
  }
  return (cached = null);
}
