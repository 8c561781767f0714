// Rotary frequencies: the per-pair inverse frequencies (and the scale of cos/sin) that the rope
// kernels apply, for the unscaled rotary embedding and for the scaled rope types of Hugging Face
// transformers' modeling_rope_utils ("linear", "dynamic", "llama3", "yarn").
//
// transformers computes these in float32 tensors, with Python scalars cast to float32 in each
// tensor operation; the scaled types below repeat that arithmetic step by step (Math.fround after
// every operation, which gives the correctly rounded float32 result of +, −, ×, ÷). Powers are
// computed in float64 and rounded to float32. The unscaled frequencies are computed as Amend
// always has (the exponent 2i/d in float32 as transformers forms it, then 1 / theta^e in float64,
// rounded to float32 once), so unscaled models keep their results bit for bit.
import { AmendError } from '../errors.js';

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'yarn'];

/** A scaled rotary embedding's settings, as config.json names them (null in ModelConfig: unscaled). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  /** The base grows with the sequence length past max_position_embeddings (the config's own). */
  | { type: 'dynamic'; factor: number; maxPositions: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | {
    type: 'yarn'; factor: number; originalMaxPositions: number;
    /** cos and sin are multiplied by it (resolved from attention_factor, or mscale / mscale_all_dim and factor). */
    attentionFactor: number;
    betaFast: number; betaSlow: number; truncate: boolean;
  };

/** What the rope kernels take: invFreq [rotDim / 2] (float32, as transformers holds it) and the cos/sin scale. */
export interface RopeFrequencies { invFreq: Float32Array; scale: number }

const f32 = Math.fround;

/** The unscaled inverse frequencies 1 / theta^(2i/rotDim), i < rotDim/2. */
export function defaultInvFreq(rotDim: number, theta: number): Float32Array {
  const half = rotDim / 2;
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = 1 / Math.pow(theta, f32((2 * i) / rotDim));
  return f;
}

/**
 * The frequencies a forward pass uses. `seqLen` is the largest position in the pass plus one
 * (transformers' max(position_ids) + 1); only "dynamic" reads it.
 */
export function ropeFrequencies(rotDim: number, theta: number, scaling: RopeScaling | null, seqLen: number): RopeFrequencies {
  if (!scaling) return { invFreq: defaultInvFreq(rotDim, theta), scale: 1 };
  switch (scaling.type) {
    case 'linear': {
      // _compute_linear_scaling_rope_parameters: inv_freq /= factor
      const inv = defaultInvFreq(rotDim, theta), factor = f32(scaling.factor);
      for (let i = 0; i < inv.length; i++) inv[i] = inv[i] / factor;
      return { invFreq: inv, scale: 1 };
    }
    case 'dynamic':
      return { invFreq: defaultInvFreq(rotDim, dynamicBase(rotDim, theta, scaling.factor, scaling.maxPositions, seqLen)), scale: 1 };
    case 'llama3':
      return { invFreq: llama3InvFreq(rotDim, theta, scaling), scale: 1 };
    case 'yarn':
      return { invFreq: yarnInvFreq(rotDim, theta, scaling), scale: f32(scaling.attentionFactor) };
  }
}

/**
 * Dynamic NTK (_compute_dynamic_ntk_parameters): within max_position_embeddings the base is
 * theta; past it, theta · (factor·L/max − (factor − 1))^(d/(d−2)). transformers reaches this from
 * its forward with L = max(position_ids) + 1 as a tensor, so the expression is float32.
 */
export function dynamicBase(rotDim: number, theta: number, factor: number, maxPositions: number, seqLen: number): number {
  if (!(seqLen > maxPositions)) return theta;
  const ratio = f32(f32(f32(factor) * f32(seqLen)) / f32(maxPositions));
  const grown = f32(ratio - f32(factor - 1));
  return f32(f32(theta) * f32(Math.pow(grown, f32(rotDim / (rotDim - 2)))));
}

/** _compute_llama3_parameters: low frequencies divided by factor, high ones kept, a smooth blend between. */
function llama3InvFreq(rotDim: number, theta: number, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const inv = defaultInvFreq(rotDim, theta);
  const factor = f32(s.factor), low = f32(s.lowFreqFactor), old = f32(s.originalMaxPositions);
  const lowWavelen = f32(s.originalMaxPositions / s.lowFreqFactor), highWavelen = f32(s.originalMaxPositions / s.highFreqFactor);
  const twoPi = f32(2 * Math.PI), span = f32(s.highFreqFactor - s.lowFreqFactor);
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const wavelen = f32(twoPi / inv[i]);
    const scaled = wavelen > lowWavelen ? f32(inv[i] / factor) : inv[i];
    if (wavelen < highWavelen || wavelen > lowWavelen) { out[i] = scaled; continue; }
    const smooth = f32(f32(f32(old / wavelen) - low) / span);
    out[i] = f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
  }
  return out;
}

/** _compute_yarn_parameters: a ramp between interpolated (÷ factor) and extrapolated frequencies. */
function yarnInvFreq(rotDim: number, theta: number, s: Extract<RopeScaling, { type: 'yarn' }>): Float32Array {
  const half = rotDim / 2, factor = f32(s.factor);
  // find_correction_dim / find_correction_range, in float64 as Python computes them
  const correction = (rotations: number) => (rotDim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = correction(s.betaFast), hi = correction(s.betaSlow);
  if (s.truncate) { lo = Math.floor(lo); hi = Math.ceil(hi); }
  lo = Math.max(lo, 0);
  hi = Math.min(hi, rotDim - 1);
  if (lo === hi) hi += 0.001;
  const loF = f32(lo), width = f32(hi - lo);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const posFreq = f32(Math.pow(theta, f32((2 * i) / rotDim)));
    const extrapolation = f32(1 / posFreq), interpolation = f32(1 / f32(factor * posFreq));
    const ramp = Math.min(Math.max(f32(f32(i - loF) / width), 0), 1);
    const extrapolationFactor = f32(1 - ramp);
    out[i] = f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
  }
  return out;
}

/** YaRN's get_mscale. */
const mscaleOf = (scale: number, mscale = 1) => (scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1);

/**
 * A rope_scaling / rope_parameters object (`where` names it in errors) → the scaling Amend
 * computes, or null for the unscaled embedding. `maxPositions` is config.json's
 * max_position_embeddings; `topOriginal` its top-level original_max_position_embeddings, which
 * transformers 5 puts before the one inside the rope settings (Phi-3 style configs).
 */
export function parseRopeScaling(where: string, value: Record<string, unknown>, maxPositions: number, topOriginal: unknown): RopeScaling | null {
  const type = value.rope_type ?? value.type ?? (where === 'rope_parameters' ? 'default' : undefined);
  const bad = (msg: string): never => { throw new AmendError(`config.json: ${where} (rope type "${String(type)}"): ${msg}`); };
  const number = (key: string, check: (v: number) => boolean, what: string, fallback?: number): number => {
    const v = value[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      return bad(`missing ${key}`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) return bad(`${key} is ${JSON.stringify(v)}; it must be ${what}`);
    return v;
  };
  const positive = (v: number) => v > 0;
  const factor = (fallback?: number) => number('factor', positive, 'a number > 0', fallback);
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: factor() };
    case 'dynamic':
      return { type: 'dynamic', factor: factor(), maxPositions };
    case 'llama3': {
      const s: RopeScaling = {
        type: 'llama3', factor: factor(), lowFreqFactor: number('low_freq_factor', positive, 'a number > 0'),
        highFreqFactor: number('high_freq_factor', positive, 'a number > 0'),
        originalMaxPositions: originalOf(value, maxPositions, topOriginal, bad),
      };
      if (!(s.highFreqFactor > s.lowFreqFactor)) bad(`high_freq_factor ${s.highFreqFactor} must be greater than low_freq_factor ${s.lowFreqFactor}`);
      return s;
    }
    case 'yarn': {
      const originalMaxPositions = originalOf(value, maxPositions, topOriginal, bad);
      // transformers 5: an explicit factor is used as it is; without one, the ratio of the lengths.
      const f = factor(maxPositions / originalMaxPositions);
      const truthy = (key: string) => { const v = value[key]; return typeof v === 'number' && v !== 0 ? v : undefined; };
      const mscale = truthy('mscale'), mscaleAll = truthy('mscale_all_dim');
      const given = value.attention_factor;
      const attentionFactor = given !== undefined && given !== null
        ? number('attention_factor', positive, 'a number > 0')
        : mscale !== undefined && mscaleAll !== undefined ? mscaleOf(f, mscale) / mscaleOf(f, mscaleAll) : mscaleOf(f);
      const truncate = value.truncate ?? true;
      if (typeof truncate !== 'boolean') bad(`truncate is ${JSON.stringify(truncate)}; it must be true or false`);
      return {
        type: 'yarn', factor: f, originalMaxPositions, attentionFactor,
        betaFast: truthy('beta_fast') ?? 32, betaSlow: truthy('beta_slow') ?? 1, truncate: truncate as boolean,
      };
    }
    case undefined:
      return bad('no rope_type (or type) names the scaling');
    default:
      throw new AmendError(`config.json: ${where} type "${String(type)}" is not supported (supported rope types: ${ROPE_TYPES.join(', ')})`);
  }
}

function originalOf(value: Record<string, unknown>, maxPositions: number, topOriginal: unknown, bad: (msg: string) => never): number {
  const v = typeof topOriginal === 'number' ? topOriginal : value.original_max_position_embeddings ?? maxPositions;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(`original_max_position_embeddings is ${JSON.stringify(v)}; it must be a positive integer`);
  return v as number;
}
