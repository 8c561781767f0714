// Hook points: named places in the forward pass where an activation can be read or rewritten.
// Names are shared by every architecture:
//   blocks.{l}.resid_pre   blocks.{l}.attn.out   blocks.{l}.mlp.in   blocks.{l}.mlp.keys
//   blocks.{l}.mlp.out     blocks.{l}.resid_post final.norm
// Each activation is [B, T, width]; "rows" below are flat indices b*T + t into it.
import { AmendError } from '../errors.js';
import { Tensor, addRows, gatherRows, reshape } from '../tensor/index.js';

/**
 * Returns a replacement activation (same shape), or nothing to leave it as it is. The activation
 * is [B, T, width], so a hook turns (b, t) into a row b*T + t with x.dim(1).
 */
export type HookFn = (x: Tensor) => Tensor | void;

export interface Hook {
  point: string;
  fn: HookFn;
}

// Layers without leading zeros: forward looks hooks up by the name it builds ("blocks.1...").
const POINT = /^(blocks\.(0|[1-9]\d*)\.(resid_pre|attn\.out|mlp\.in|mlp\.keys|mlp\.out|resid_post)|final\.norm)$/;

/** Throws a clear error for a hook point that no forward pass would ever reach. */
export function checkHookPoint(point: string, layers: number): void {
  const m = POINT.exec(point);
  if (!m) {
    throw new AmendError(`unknown hook point "${point}" (expected blocks.{l}.resid_pre|attn.out|mlp.in|mlp.keys|mlp.out|resid_post or final.norm)`);
  }
  if (m[2] !== undefined && Number(m[2]) >= layers) {
    throw new AmendError(`hook point "${point}": layer ${m[2]} out of range (the model has ${layers} layers)`);
  }
}

export const hookPoint = {
  residPre: (l: number) => `blocks.${l}.resid_pre`,
  attnOut: (l: number) => `blocks.${l}.attn.out`,
  mlpIn: (l: number) => `blocks.${l}.mlp.in`,
  mlpKeys: (l: number) => `blocks.${l}.mlp.keys`,
  mlpOut: (l: number) => `blocks.${l}.mlp.out`,
  residPost: (l: number) => `blocks.${l}.resid_post`,
  finalNorm: 'final.norm',
} as const;

/**
 * Records the activation at `point`: the whole [B, T, width] tensor, or only `rows` as
 * [rows.length, width]. Inside withGrad the captured tensor stays on the tape.
 */
export function capture(point: string, rows?: readonly number[]): { hook: Hook; value: () => Tensor } {
  let got: Tensor | null = null;
  const hook: Hook = {
    point,
    fn: (x) => {
      got = rows ? gatherRows(reshape(x, [-1, x.dim(-1)]), rows) : x;
    },
  };
  return {
    hook,
    value: () => {
      if (!got) throw new AmendError(`hook point ${point} was not reached by the forward pass`);
      return got;
    },
  };
}

/** Adds `delta` ([width], or [rows.length, width]) to the activation at the given rows. */
export function addAt(point: string, rows: readonly number[], delta: Tensor): Hook {
  return { point, fn: (x) => addRows(x, rows, delta) };
}
