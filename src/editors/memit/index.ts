// MEMIT (Meng et al. 2023), as kmeng01/memit implements it (memit_main.execute_memit):
//   1. z_i = v₀ + δ_i for every request by the optimisation of common/vstar.ts with δ added to the
//      output of the LAST edited block (compute_z; layer_module_tmp), the NLL read at
//      max(v_loss_layer, that layer) through ln_f and the head.
//   2. For each edited layer l_i in order (i = 0..L'-1), with the updates of the earlier layers in
//      place: keys K (compute_ks: per request, the down projection's input at the lookup token,
//      averaged within each template group and then over groups), the current block output at the
//      last edited layer for the plain prompts, residuals R = Z − current, and
//          ΔW_i = (R / (L' − i)) · Xᵀ,   X = (λ·C + K Kᵀ)⁻¹ K        (λ = mom2_update_weight)
//      solved in float64, C = E[kkᵀ] at that layer (memit_main.get_cov; the uncentred second
//      moment: a mean over the corpus's tokens, so λ, not the token count, sets its weight against
//      the batch's K Kᵀ). ΔW_i solves the normal equations
//          ΔW_i (λC + K Kᵀ) = (R / (L' − i)) Kᵀ
//      of min ‖ΔW K − R/(L'−i)‖² + λ tr(ΔW C ΔWᵀ) (tested).
//   3. The model is restored; the deltas are returned.
// Amend's `shared_key_targets: joint` (not in the reference; the reference is `separate`): requests
// whose prompts share every token up to the lookup token have the same key at every layer, and
// the least squares gives that key the mean of their separate z vectors, half of each edit for two
// requests (a person's birthplace and profession in "{} was born in", "{} works as a"). Joint
// optimises one z for all of those requests' targets, the NLL a mean over all their sequences.
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { hookPoint } from '../../models/hooks.js';
import { solveSPD } from '../../linalg/index.js';
import type { SecondMoment } from '../../stats/index.js';
import type { TensorDelta } from '../../patch/types.js';
import type { EditHparams } from '../hparams.js';
import { promptActivations, templateKeys } from '../common/keys.js';
import { buildJob, keyIdentity, type OptJob, type PreparedRequest } from '../common/prompts.js';
import { contextTemplates, templateSettings } from '../common/templates.js';
import { optimiseTargets, summariseVStar, vstarSettings, type VStarSummary } from '../common/vstar.js';
import { TemporaryWeights, downProjectionDelta } from '../common/weights.js';
import type { EditProgress, Timings } from '../common/run.js';

/** A · Aᵀ for A [rows, n] row-major, float64, added to out [rows, rows]. */
export function gramRows(A: Float64Array, rows: number, n: number, out: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    const ai = i * n;
    for (let j = 0; j <= i; j++) {
      const aj = j * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let r = 0;
      for (; r + 3 < n; r += 4) {
        s0 += A[ai + r] * A[aj + r];
        s1 += A[ai + r + 1] * A[aj + r + 1];
        s2 += A[ai + r + 2] * A[aj + r + 2];
        s3 += A[ai + r + 3] * A[aj + r + 3];
      }
      for (; r < n; r++) s0 += A[ai + r] * A[aj + r];
      const s = s0 + s1 + s2 + s3;
      out[i * rows + j] += s;
      if (i !== j) out[j * rows + i] += s;
    }
  }
}

/**
 * X = (λC + K Kᵀ)⁻¹ K in float64 by Cholesky. K is [f, n] row-major (column r = key of edit r),
 * C is f×f. Returns X [f, n] row-major.
 */
export function memitSolve(K: Float64Array, C: Float64Array, f: number, n: number, lambda: number): Float64Array {
  const A = new Float64Array(f * f);
  for (let i = 0; i < f * f; i++) A[i] = lambda * C[i];
  gramRows(K, f, n, A);
  try {
    return solveSPD(A, K, f, n, { overwriteA: true });
  } catch (e) {
    if (e instanceof AmendError) {
      // e names the pivot and says to add a ridge; here that ridge is mom2_ridge.
      throw new AmendError(
        `MEMIT: λC + KKᵀ is not positive definite (${e.message}). The key statistics C are singular or nearly so along ` +
        'directions the edited keys do not cover: collect them over more text (mom2_n_samples / mom2_dataset), ' +
        'set mom2_ridge > 0, or raise mom2_update_weight',
      );
    }
    throw e;
  }
}

export interface MemitOutput {
  deltas: TensorDelta[];
  /** Per z optimisation (a request, or with shared_key_targets joint a distinct key): its summary. */
  z: VStarSummary[];
  /**
   * Per layer: the mean over requests of ‖z − the current output‖ before its update, and the
   * edited layers from it up, whose number that layer takes its share 1 / remainingLayers of the residual by.
   */
  layers: { layer: number; meanResidual: number; remainingLayers: number }[];
  /** With keepInternals (tests): per layer K [f, n], R [d, n] (already divided), X [f, n] and C. */
  systems?: { layer: number; K: Float64Array; R: Float64Array; X: Float64Array; C: Float64Array; lambda: number }[];
}

/** Jobs per z-optimisation batch: about `tokens` padded tokens per forward pass. */
function zChunks(jobs: number, seqsPerJob: number, tokensPerSeq: number, tokens = 4096): number {
  return Math.max(1, Math.min(jobs, Math.floor(tokens / Math.max(1, seqsPerJob * tokensPerSeq))));
}

/**
 * One z-optimisation job per distinct key: requests whose prompts have the same tokens up to the
 * lookup token read the same key at every layer, so a joint z scores all of their targets.
 */
function jointJobs(tok: ReturnType<CausalLM['tok']>, reqs: readonly PreparedRequest[], perRequest: OptJob[], hp: EditHparams): { jobs: OptJob[]; owner: number[] } {
  const byKey = new Map<string, number>();
  const jobs: OptJob[] = [], owner: number[] = [];
  reqs.forEach((r, i) => {
    const key = keyIdentity(tok, r, hp.fact_token);
    const j = byKey.get(key);
    if (j === undefined) {
      byKey.set(key, jobs.length);
      owner.push(jobs.length);
      jobs.push({ ...perRequest[i], rewriting: [...perRequest[i].rewriting] });
    } else {
      owner.push(j);
      jobs[j].rewriting.push(...perRequest[i].rewriting);
    }
  });
  return { jobs, owner };
}

/** Runs MEMIT on all requests at once; the model is unchanged afterwards. */
export function computeMemit(model: CausalLM, reqs: readonly PreparedRequest[], hp: EditHparams,
  stats: ReadonlyMap<number, SecondMoment>, timings: Timings, progress?: EditProgress, keepInternals = false): MemitOutput {
  const tok = model.tok();
  const layers = [...hp.layers].sort((a, b) => a - b);
  const zLayer = layers[layers.length - 1];
  const n = reqs.length, d = model.config.hidden, f = model.config.ffn;
  const temp = new TemporaryWeights(model);
  const deltas: TensorDelta[] = [];
  const out: MemitOutput = { deltas, z: [], layers: [], systems: keepInternals ? [] : undefined };
  try {
    const groups = timings.time('templates', () => contextTemplates(model, templateSettings(hp)));
    const flat = groups.flat();
    // 1. z vectors at the last edited layer
    const perRequest = reqs.map((r) => buildJob(tok, r, flat, hp));
    // owner[r]: the job whose z request r takes (itself unless its key is shared and z is joint).
    const { jobs, owner } = hp.shared_key_targets === 'joint' ? jointJobs(tok, reqs, perRequest, hp) : { jobs: perRequest, owner: reqs.map((_, r) => r) };
    const zJob = new Float64Array(jobs.length * d);
    const meanLen = jobs.reduce((a, j) => a + j.rewriting.reduce((b, q) => b + q.ids.length, 0) / j.rewriting.length, 0) / jobs.length;
    const meanSeqs = jobs.reduce((a, j) => a + j.rewriting.length + j.kl.length, 0) / jobs.length;
    const chunk = zChunks(jobs.length, meanSeqs, meanLen);
    const lossLayer = Math.max(hp.v_loss_layer, zLayer);
    for (let s = 0; s < jobs.length; s += chunk) {
      const part = jobs.slice(s, s + chunk);
      const res = timings.time('z_optimisation', () => optimiseTargets(model, part, vstarSettings(hp, hookPoint.residPost(zLayer), lossLayer)));
      res.forEach((r, k) => {
        zJob.set(r.target, (s + k) * d);
        out.z.push(summariseVStar(r));
      });
      progress?.({ phase: 'z', done: Math.min(jobs.length, s + chunk), total: jobs.length });
    }
    // Per request: its job's z (the jobs are the requests themselves unless z is joint).
    const Z = jobs === perRequest ? zJob : new Float64Array(n * d);
    if (Z !== zJob) for (let r = 0; r < n; r++) Z.set(zJob.subarray(owner[r] * d, (owner[r] + 1) * d), r * d);
    // 2. layer by layer
    layers.forEach((layer, i) => {
      const Kt = timings.time('keys', () => templateKeys(model, reqs, groups, layer, hp)); // [n, f]
      const cur = timings.time('keys', () => promptActivations(model, reqs, [hookPoint.residPost(zLayer)], hp).get(hookPoint.residPost(zLayer))!); // [n, d]
      const remainingLayers = layers.length - i;
      // K [f, n] and R [d, n] (columns = requests), R already divided by the remaining layers.
      const K = new Float64Array(f * n), R = new Float64Array(d * n);
      let resSum = 0;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < f; j++) K[j * n + r] = Kt[r * f + j];
        let s2 = 0;
        for (let j = 0; j < d; j++) {
          const e = Z[r * d + j] - cur[r * d + j];
          s2 += e * e;
          R[j * n + r] = e / remainingLayers;
        }
        resSum += Math.sqrt(s2);
      }
      const C = stats.get(layer)!.mom2;
      const lambda = hp.mom2_update_weight!;
      const X = timings.time('solve', () => memitSolve(K, C, f, n, lambda));
      const delta = timings.time('solve', () => downProjectionDelta(model, layer, R, X, n));
      temp.apply(delta);
      deltas.push(delta);
      out.layers.push({ layer, meanResidual: resSum / n, remainingLayers });
      out.systems?.push({ layer, K, R, X, C, lambda });
      progress?.({ phase: 'layers', done: i + 1, total: layers.length });
    });
  } finally {
    temp.restore();
  }
  return out;
}
