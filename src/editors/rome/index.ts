// ROME (Meng et al. 2022), as kmeng01/rome implements it:
//   rome_main.execute_rome — for each layer (sorted): u = compute_u, v = compute_v, W += u vᵀ in the
//     weight's own orientation (upd_matrix_match_shape), the model restored at the end;
//     apply_rome_to_model runs the requests one after another, each on the model with the earlier
//     ones applied.
//   compute_u — k* = mean of the down projection's input at the lookup token over the context
//     templates; u = C⁻¹k* when mom2_adjustment; u / ‖u‖.
//   compute_v — v* = v₀ + δ by the optimisation of common/vstar.ts with δ added to the MLP output;
//     then, with k and o the down projection's input and output at the lookup token of the prompt
//     itself, v = (v* − o) / (k · u). Hence W' k + b = v* (the defining equation, tested). A key
//     numerically orthogonal to u (k · u ≈ 0) is refused instead, before v* is optimised (rankOneDivisor).
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { hookPoint } from '../../models/hooks.js';
import type { SecondMoment } from '../../stats/index.js';
import type { TensorDelta } from '../../patch/types.js';
import { norm2 } from '../../patch/delta.js';
import type { EditHparams } from '../hparams.js';
import { promptActivations, templateKeys } from '../common/keys.js';
import { buildJob, type PreparedRequest } from '../common/prompts.js';
import { contextTemplates, templateSettings } from '../common/templates.js';
import { optimiseTargets, summariseVStar, vstarSettings, type VStarSummary } from '../common/vstar.js';
import { solveCov } from '../common/stats.js';
import { TemporaryWeights, downProjectionDelta, mergeDeltas } from '../common/weights.js';
import type { EditProgress, Timings } from '../common/run.js';

export interface RomeLayerReport {
  request: number;
  layer: number;
  /** ‖k*‖, the template-averaged key u is made from. */
  keyNorm: number;
  /** k·u: the prompt's key against the unit update direction, what v* − o is divided by. */
  keyDotU: number;
  /** ‖v‖, the right factor of the rank-one update. */
  rightNorm: number;
  vstar: VStarSummary;
}

export interface RomeOutput {
  deltas: TensorDelta[];
  reports: RomeLayerReport[];
  /** With keepInternals (tests): per request and layer, k (the prompt's key), v* and the rank-one factors. */
  vectors?: { request: number; layer: number; key: Float32Array; vstar: Float32Array; u: Float64Array; v: Float64Array }[];
}

/**
 * k·u for a unit u, the rank-one update's divisor. k·u = ‖k‖ cos θ, and a small cos θ is normal
 * (C⁻¹ turns u towards the directions the corpus rarely uses), so only one at the level of k's own
 * float32 rounding is refused: √f·2⁻²⁴ (the typical rounding error of float32 sums over f terms;
 * the worst-case f·2⁻²⁴ would refuse edits the reference makes on wide MLPs). Below it the prompt's
 * key is numerically orthogonal to u: the sign of k·u is noise and ‖v‖ = ‖v* − o‖ / |k·u| has no
 * bound. kmeng01/rome divides regardless; here that is refused, with `where` naming the subject
 * and layer. A zero key is refused by the same test.
 */
export function rankOneDivisor(k: ArrayLike<number>, u: ArrayLike<number>, where: string, mom2Adjustment: boolean): number {
  const f = k.length;
  let ku = 0;
  for (let i = 0; i < f; i++) ku += k[i] * u[i];
  const kn = norm2(k), un = norm2(u);
  if (!Number.isFinite(ku)) throw new AmendError(`ROME: the prompt's key for ${where} is not finite (k·u = ${ku})`);
  if (!(Math.abs(ku) > Math.sqrt(f) * 2 ** -24 * kn * un)) {
    throw new AmendError(`ROME: the prompt's key for ${where} is orthogonal to the update direction u (k·u = ${ku.toPrecision(3)}, ‖k‖ = ${kn.toPrecision(3)}), ` +
      `so the rank-one update would be unbounded; edit another layer (layers) or lookup token (fact_token)${mom2Adjustment ? ', or use other key statistics (or mom2_adjustment=false)' : ''}`);
  }
  return ku;
}

/** v = (v* − o) / ku for a divisor rankOneDivisor has passed. */
export function dividedUpdate(target: ArrayLike<number>, o: ArrayLike<number>, ku: number, where: string): Float64Array {
  const v = new Float64Array(target.length);
  for (let i = 0; i < v.length; i++) v[i] = (target[i] - o[i]) / ku;
  if (!v.every(Number.isFinite)) throw new AmendError(`ROME: the update for ${where} is not finite (v* or the MLP output there is not finite)`);
  return v;
}

/** Runs ROME for every request in order; the model is unchanged afterwards. */
export function computeRome(model: CausalLM, reqs: readonly PreparedRequest[], hp: EditHparams,
  stats: ReadonlyMap<number, SecondMoment>, timings: Timings, progress?: EditProgress, keepInternals = false): RomeOutput {
  const tok = model.tok();
  const layers = [...hp.layers].sort((a, b) => a - b);
  const temp = new TemporaryWeights(model);
  const deltas: TensorDelta[] = [];
  const reports: RomeLayerReport[] = [];
  const vectors: RomeOutput['vectors'] = keepInternals ? [] : undefined;
  try {
    const groups = timings.time('templates', () => contextTemplates(model, templateSettings(hp)));
    const flat = groups.flat();
    let step = 0;
    const total = reqs.length * layers.length;
    for (const req of reqs) {
      for (const layer of layers) {
        // u (compute_u)
        const kstar = timings.time('keys', () => templateKeys(model, [req], groups, layer, hp));
        let u: Float64Array = kstar;
        if (hp.mom2_adjustment) u = timings.time('solve', () => solveCov(stats.get(layer)!, kstar));
        const un = norm2(u);
        if (!(un > 0 && Number.isFinite(un))) {
          throw new AmendError(`ROME: the key of "${req.subject}" at layer ${layer} is ${un === 0 ? 'zero (no MLP unit fires at the lookup token)' : 'not finite'}, so there is no update direction; edit another layer (layers) or lookup token (fact_token)`);
        }
        u = u.map((x) => x / un);
        // k and o at the prompt itself (get_module_input_output_at_word); the weights are those v*
        // is optimised against, so a key orthogonal to u is refused before that optimisation runs
        const where = `"${req.subject}" at layer ${layer}`;
        const acts = timings.time('keys', () => promptActivations(model, [req], [hookPoint.mlpKeys(layer), hookPoint.mlpOut(layer)], hp));
        const k = acts.get(hookPoint.mlpKeys(layer))!, o = acts.get(hookPoint.mlpOut(layer))!;
        const ku = rankOneDivisor(k, u, where, hp.mom2_adjustment);
        // v* (compute_v)
        const job = buildJob(tok, req, flat, hp);
        const [res] = timings.time('v_optimisation', () => optimiseTargets(model, [job], vstarSettings(hp, hookPoint.mlpOut(layer), model.config.layers - 1)));
        const v = dividedUpdate(res.target, o, ku, where);
        const delta = downProjectionDelta(model, layer, v, u, 1);
        temp.apply(delta);
        deltas.push(delta);
        reports.push({ request: req.index, layer, keyNorm: norm2(kstar), keyDotU: ku, rightNorm: norm2(v), vstar: summariseVStar(res) });
        vectors?.push({ request: req.index, layer, key: k, vstar: res.target, u, v });
        progress?.({ phase: 'rome', done: ++step, total });
      }
    }
  } finally {
    temp.restore();
  }
  return { deltas: mergeDeltas(deltas), reports, vectors };
}
