// Backend selection. The native addon is preferred when it was built; AMEND_BACKEND=js (or
// useBackend('js')) forces the portable reference backend. Callers ask kernels() at each use
// rather than keep the object, so a switch applies to everything computed after it.
import { AmendError } from '../errors.js';
import type { BackendInfo, Kernels } from './kernels.js';
import { jsKernels } from './js.js';
import { loadNative } from './native.js';

export type BackendName = BackendInfo['name'];

let current: Kernels | null = null;

/** The kernels in use (chosen on first call). */
export function kernels(): Kernels {
  if (current) return current;
  const wanted = process.env.AMEND_BACKEND;
  if (wanted && wanted !== 'js' && wanted !== 'native') {
    throw new AmendError(`AMEND_BACKEND must be "js" or "native", not "${wanted}"`);
  }
  // The addon reads AMEND_GEMM itself and takes any other value as unset: checked here so a typo
  // is an error rather than a silent default.
  const gemm = process.env.AMEND_GEMM;
  if (gemm && gemm !== 'own' && gemm !== 'blas') throw new AmendError(`AMEND_GEMM must be "own" or "blas", not "${gemm}"`);
  if (wanted === 'js') return (current = jsKernels);
  const native = loadNative();
  if ('kernels' in native) return (current = native.kernels);
  if (wanted === 'native') throw new AmendError(`native backend requested but unavailable: ${native.error}`);
  return (current = jsKernels);
}

/** Switch backend for everything computed from now on (tests use this to compare backends). */
export function useBackend(name: BackendName): Kernels {
  if (name === 'js') return (current = jsKernels);
  const native = loadNative();
  if ('error' in native) throw new AmendError(`native backend unavailable: ${native.error}`);
  return (current = native.kernels);
}

/** Why the native backend can or cannot be used (for `amend doctor` and test skips). */
export function nativeStatus(): { ok: true } | { ok: false; reason: string } {
  const native = loadNative();
  return 'error' in native ? { ok: false, reason: native.error } : { ok: true };
}

export type { Kernels } from './kernels.js';
