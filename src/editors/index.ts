// One entry for every editing method (EasyEdit-style): edit(model, requests, { method, ... }) →
// an EditPatch. The model is never changed: the patch is applied by the caller (patch.apply(model)
// or the edit session), so an edit can be inspected, saved, stacked or thrown away.
//
// Before anything is computed, every request and hparam is checked (subject in the prompt,
// non-empty target, a target the model does not already predict, layers in range, statistics of
// this model); a problem is one AmendError and the weights stay byte-identical.
import { AmendError, describeValue, optionKeys, refuseUnknownKeys, requireObject, typeName } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { EditPatch } from '../patch/patch.js';
import { holdModel, outsideHold } from '../patch/session.js';
import type { TensorDelta } from '../patch/types.js';
import { STATS_OPTION_KEYS, type SecondMoment, type StatsOptions } from '../stats/index.js';
import type { EditRequest } from './types.js';
import { checkResolvedHparams, resolveHparams, SCHEMAS, type EditHparams, type EditMethod, type ResolvedHparams } from './hparams.js';
import { prepareRequests, encodePrompt, requestPrefix, type PreparedRequest } from './common/prompts.js';
import { scoreTargets } from './common/score.js';
import { checkStatsSource, secondMoments, statsOptionsWithProgress, usesStatistics, withRidge, type StatsSource } from './common/stats.js';
import { Timings, type EditProgress } from './common/run.js';
import { computeRome, type RomeOutput } from './rome/index.js';
import { computeMemit, type MemitOutput } from './memit/index.js';

export type { EditMethod, EditHparams, ResolvedHparams } from './hparams.js';
export {
  resolveHparams, checkResolvedHparams, listPresets, findPreset, presetByName, ruleHparams, parseSets, readHparamsFile, checkHparams,
  describeSchema, SCHEMAS, METHODS, FACT_TOKENS,
} from './hparams.js';
export type { EditRequest, EditCase } from './types.js';
export type { ProgressEvent, ProgressPhase, EditProgress } from './common/run.js';
export type { StatsSource } from './common/stats.js';

export interface EditOptions {
  method: EditMethod;
  /** hparam values on top of the preset (or of the rule for models without one); checked against the schema. */
  hparams?: Record<string, unknown>;
  /** A preset by name instead of the one matching the model. */
  preset?: string;
  /** YAML/JSON hparams files (EasyEdit's as they are), applied before `hparams`. */
  hparamsFiles?: string[];
  /** Already resolved hparams (skips preset/file/override resolution; still checked against the model). */
  resolved?: ResolvedHparams;
  /** Key statistics to use instead of src/stats (tests, imported files). */
  stats?: StatsSource;
  /** Options for src/stats (cache folder, progress...). */
  statsOptions?: StatsOptions;
  onProgress?: EditProgress;
  /** Accept requests whose target the model already predicts (default: refuse them). */
  allowUnchanged?: boolean;
  /** Keep what the method solved in the report (tests): ROME's vectors (k, v*, u, v), MEMIT's linear systems (K, R, X, C). */
  keepInternals?: boolean;
}

const EDIT_OPTION_KEYS = optionKeys<EditOptions>()([
  'method', 'hparams', 'preset', 'hparamsFiles', 'resolved', 'stats', 'statsOptions', 'onProgress', 'allowUnchanged', 'keepInternals',
]);

/**
 * Refuses option keys `known` lacks (edit's, runEval's): an hparam given beside the options (the
 * shape of EasyEdit's hparams objects) is named as one, the rest as unknown options.
 */
export function refuseUnknownEditOptions(opts: object, known: readonly string[], what: string, advice: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(opts)) {
    if (known.includes(key) || !Object.values(SCHEMAS).some((schema) => Object.hasOwn(schema, key))) continue;
    throw new AmendError(`${what}: unknown option "${key}"; it is an hparam: pass it in hparams ({ hparams: { ${key}: ... } })`);
  }
  refuseUnknownKeys(opts, known, what, advice);
}

/** Checks edit's options that the edit reads before it resolves the hparams. */
function checkEditOptions(opts: EditOptions): void {
  refuseUnknownEditOptions(opts, EDIT_OPTION_KEYS, 'edit');
  if (opts.preset !== undefined && typeof opts.preset !== 'string') throw new AmendError(`edit: preset must be a preset name, not ${typeof opts.preset}`);
  if (opts.hparamsFiles !== undefined && (!Array.isArray(opts.hparamsFiles) || opts.hparamsFiles.some((f) => typeof f !== 'string'))) {
    throw new AmendError(`edit: hparamsFiles must be an array of file paths, not ${typeof opts.hparamsFiles === 'string' ? `the string ${JSON.stringify(opts.hparamsFiles)} (put it in [ ])` : typeName(opts.hparamsFiles)}`);
  }
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new AmendError(`edit: onProgress must be a function, not ${typeof opts.onProgress}`);
  // A string such as "no" is truthy: it would allow what it means to refuse.
  if (opts.allowUnchanged !== undefined && typeof opts.allowUnchanged !== 'boolean') throw new AmendError(`edit: allowUnchanged must be true or false, not ${describeValue(opts.allowUnchanged)}`);
  if (opts.statsOptions !== undefined) {
    requireObject(opts.statsOptions, 'edit: statsOptions must be an object of options for src/stats');
    refuseUnknownKeys(opts.statsOptions, STATS_OPTION_KEYS, 'edit: statsOptions');
  }
  checkStatsSource(opts.stats, 'edit');
}

export interface EditReport {
  method: EditMethod;
  hparams: ResolvedHparams;
  timings: Record<string, number>;
  rome?: Omit<RomeOutput, 'deltas'>;
  memit?: Omit<MemitOutput, 'deltas'>;
}

export interface EditResult {
  patch: EditPatch;
  report: EditReport;
}

/** The edit as a patch (the model is unchanged). */
export async function edit(model: CausalLM, requests: readonly EditRequest[], opts: EditOptions): Promise<EditPatch> {
  return (await editWithReport(model, requests, opts)).patch;
}

/** Checks requests against the model: refuses targets the model already predicts (teacher-forced argmax). */
function checkNotPredicted(model: CausalLM, reqs: readonly PreparedRequest[]): void {
  const tok = model.tok();
  const scores = scoreTargets(model, reqs.map((r) => ({ prompt: encodePrompt(tok, r.template, r.subject), target: r.targetIds })));
  scores.forEach((s, i) => {
    if (s.argmaxMatch) {
      const r = reqs[i];
      const where = requestPrefix(reqs.length, i, r.request);
      const hint = reqs.length > 1 ? ' (drop it, or allow such requests: allowUnchanged / amend edit --allow-unchanged)' : '';
      throw new AmendError(`${where}the model already predicts "${r.target.trim()}" after "${r.text}"; nothing to edit${hint}`);
    }
  });
}

/** The edit as a patch, with what each phase found and took. */
export async function editWithReport(model: CausalLM, requests: readonly EditRequest[], opts: EditOptions): Promise<EditResult> {
  requireObject(model, 'edit takes a loaded model (CausalLM.load(dir))');
  if (!Array.isArray(requests)) throw new AmendError('edit takes an array of requests ({ prompt, subject, targetNew })');
  requireObject(opts, 'edit needs options ({ method: "rome" | "memit", ... })');
  checkEditOptions(opts);
  // Held from the first read of the weights to the patch: a patch applied while the statistics
  // are awaited would leave an edit half computed on one model and half on another.
  // The caller's progress callback is not part of the edit: what it starts on the model is refused.
  const own = { ...opts, onProgress: outsideHold(opts.onProgress) };
  return holdModel(model, 'an edit (edit/editWithReport)', () => computeEdit(model, requests, own));
}

async function computeEdit(model: CausalLM, requests: readonly EditRequest[], opts: EditOptions): Promise<EditResult> {
  const method = opts.method;
  let resolved: ResolvedHparams;
  if (opts.resolved !== undefined) {
    checkResolvedHparams(method, opts.resolved, model, 'edit');
    resolved = opts.resolved;
  } else {
    resolved = resolveHparams(method, model, { preset: opts.preset, files: opts.hparamsFiles, overrides: opts.hparams });
  }
  const hp: EditHparams = resolved.hparams;
  const timings = new Timings();
  const reqs = prepareRequests(model, requests, hp);
  if (!opts.allowUnchanged) timings.time('checks', () => checkNotPredicted(model, reqs));

  const stats = new Map<number, SecondMoment>();
  if (usesStatistics(method, hp)) {
    const got = await timings.timeAsync('statistics', () => secondMoments(model, hp.layers, hp, {
      given: opts.stats,
      options: statsOptionsWithProgress(opts.statsOptions, opts.onProgress),
    }));
    hp.layers.forEach((l, i) => {
      // Fewer keys than dimensions: C has rank at most count, whatever the numbers say. Its null
      // space holds only the float32 rounding of the accumulation (eigenvalues ~1e-10 of the
      // largest, enough for Cholesky in double), and C⁻¹ would aim the update along that noise
      // or not, by chance. Refused by count, so the outcome does not depend on the rounding.
      const sm = got[i];
      if (!(hp.mom2_ridge > 0) && sm.count < sm.dim) {
        throw new AmendError(
          `the key statistics for layer ${l} hold ${sm.count} keys for ${sm.dim} dimensions (corpus ${sm.corpus}): their second moment has rank at most ${sm.count} and no inverse; ` +
            `collect statistics over at least ${sm.dim} tokens (mom2_n_samples / mom2_dataset) or set mom2_ridge > 0${method === 'rome' ? ', or mom2_adjustment=false' : ''}`,
        );
      }
      stats.set(l, withRidge(sm, hp.mom2_ridge));
    });
  }

  let deltas: TensorDelta[];
  const report: EditReport = { method, hparams: resolved, timings: {} };
  if (method === 'rome') {
    const { deltas: ds, ...rest } = computeRome(model, reqs, hp, stats, timings, opts.onProgress, opts.keepInternals);
    deltas = ds;
    report.rome = rest;
  } else {
    const { deltas: ds, ...rest } = computeMemit(model, reqs, hp, stats, timings, opts.onProgress, opts.keepInternals);
    deltas = ds;
    report.memit = rest;
  }
  report.timings = timings.toJSON();
  const patch = EditPatch.create(model, deltas, {
    method,
    hparams: { ...hp, origin: resolved.origin },
    requests: requests.map((r) => ({ ...r })),
    timings: report.timings,
  });
  return { patch, report };
}
