/**
 * The evaluation runner: edits cases in one of three regimes and scores them with the eval
 * metrics (metrics-case.ts), writing cases.jsonl as it goes, checkpoints for resuming, and at the
 * end the summary and plots (report.ts).
 *
 * - single: each case edited on the model as given, scored, reverted (exact, edit session).
 * - batch K: K cases in one edit call, scored, reverted; several K may be given (a sweep).
 * - sequential T: the first T cases edited one after another with the edits stacked, one case
 *   per edit call or K (sequential:T/K: MEMIT in sequential batches); under 'immediate' each case
 *   is scored right after its edit (score-after-each), under 'final' all are scored after the
 *   last (apply-all-then-score). Perplexity of held-out text is measured before the first edit,
 *   at every checkpoint and after the last.
 *
 * Everything that depends on "the unedited model" is computed before any edit: locality
 * baselines (and ConvSent's unedited sentiment means; its dd reads the unedited weights when a
 * case is scored, through uneditedScope), the key statistics and the editors' context templates (both would otherwise be
 * computed on whatever model the first edit of this process sees, and a resumed run would then
 * edit with different ones than the run it continues).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError, describeValue, optionKeys, refuseUnknownKeys, requireCount, requireObject } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { EditPatch } from '../patch/patch.js';
import { editSession, holdModel, outsideHold, type EditSession } from '../patch/session.js';
import { caseRequests } from '../data/load.js';
import type { LoadedCase } from '../data/types.js';
import { checkResolvedHparams, editWithReport, refuseUnknownEditOptions, resolveHparams, type EditMethod, type EditProgress, type ResolvedHparams, type StatsSource } from '../editors/index.js';
import { contextTemplates, templateSettings } from '../editors/common/templates.js';
import { prepareRequests } from '../editors/common/prompts.js';
import { checkStatsSource, secondMoments, statsOptionsWithProgress, usesStatistics } from '../editors/common/stats.js';
import type { EditCase, EditRequest } from '../editors/types.js';
import type { EditHparams } from '../editors/hparams.js';
import { STATS_OPTION_KEYS, type SecondMoment, type StatsOptions } from '../stats/index.js';
import { FLUENCY_OPTION_KEYS, localityBaselines, QA_OPTION_KEYS, scoreCases, type ConsistencyResources, type FluencyOptions, type LocalityBaseline, type QaOptions } from './metrics-case.js';
import { measureAsync, costMetrics, type Cost } from './metrics-cost.js';
import { heldoutPerplexity } from './heldout.js';
import { uneditedScope } from './unedited.js';
import type { UneditedScope } from './metrics-sentiment.js';
import { configDifference, LOCK_FILE, PartialRun, type Checkpoint, type PendingCase } from './checkpoint.js';
import { isReportFile, writeReports } from './report.js';
import { modeLabel, PROTOCOL_REGIME, stepOf, type CaseCost, type CaseRecord, type DriftPoint, type EvalConfig, type EvalMode, type EvalProgress, type EvalSummary, type Regime, type SequentialProtocol } from './run-types.js';
import { checkCanBeFolder, makeDirs, takeLock, writeError } from '../io/dirs.js';

export interface EvalOptions {
  method: EditMethod;
  /** hparams on top of the preset (as `amend edit --set`). */
  hparams?: Record<string, unknown>;
  preset?: string;
  hparamsFiles?: string[];
  /** Already resolved hparams (skips preset/file/override resolution). */
  resolved?: ResolvedHparams;
  /** Default 'single'. */
  mode?: EvalMode;
  /** Sequential runs only (default 'immediate'). */
  protocol?: SequentialProtocol;
  /** Report folder; without it nothing is written (and nothing can be resumed). */
  out?: string;
  /** Continue the interrupted run in `out` (same cases and settings). */
  resume?: boolean;
  /**
   * Start over in an `out` that holds a finished report or an interrupted run. The interrupted run
   * goes at once; the report stays until this run's own replaces it, so a run that fails or is
   * interrupted leaves the previous report as it was.
   */
  force?: boolean;
  /** A checkpoint every N units (cases / batches / edits); default 10. */
  checkpointEvery?: number;
  /** Held-out text for perplexity drift (sequential runs). */
  heldout?: { text: string; file?: string; lines?: boolean };
  /** Tokens of the held-out text scored (default 2048). */
  heldoutTokens?: number;
  /** Generation-based metrics (see scoreCases). */
  qa?: boolean | QaOptions;
  fluency?: boolean | FluencyOptions;
  /**
   * ROME's TF-IDF statistics and attribute snippets (loadConsistencyResources): adds
   * reference_score to cases with a relation and new-object id, from fluency's samples.
   */
  consistency?: ConsistencyResources;
  /** Keep per-prompt details in cases.jsonl (default true). */
  details?: boolean;
  /** Key statistics to use instead of src/stats; statsOptions are passed to src/stats. */
  stats?: StatsSource;
  statsOptions?: StatsOptions;
  onProgress?: (p: EvalProgress) => void;
  /** The editor's own progress (statistics, optimisation). */
  onEditProgress?: EditProgress;
  /** Stop after this many units as if the process died there (tests of resume). */
  stopAfter?: number;
  /**
   * Stops the run when aborted: at the next boundary between units (an edit call and its scoring
   * are never cut in half), or while the key statistics are computed, with a checkpoint to resume
   * from; the result then says `interrupted`. The CLI aborts it on SIGINT / SIGTERM.
   */
  signal?: AbortSignal;
  /**
   * Where the cases came from, for the report (the file, its format, the run split that chose them).
   * The run split also names the labels the summary breaks down by (EvalSummary.bySplitLabel).
   */
  data?: EvalConfig['data'];
}

const HELDOUT_KEYS = optionKeys<NonNullable<EvalOptions['heldout']>>()(['text', 'file', 'lines']);
const EVAL_OPTION_KEYS = optionKeys<EvalOptions>()([
  'method', 'hparams', 'preset', 'hparamsFiles', 'resolved', 'mode', 'protocol', 'out', 'resume', 'force', 'checkpointEvery',
  'heldout', 'heldoutTokens', 'qa', 'fluency', 'consistency', 'details', 'stats', 'statsOptions', 'onProgress', 'onEditProgress',
  'stopAfter', 'signal', 'data',
]);

/** Refuses option keys runEval does not know, at every level that takes an object of options. */
function refuseUnknownEvalKeys(o: EvalOptions): void {
  refuseUnknownEditOptions(o, EVAL_OPTION_KEYS, 'runEval', { n: 'that is amend eval --n; runEval evaluates every case it is given: pass cases.slice(0, n), or loadCases(file, { limit: n }).cases' });
  if (o.statsOptions !== undefined) {
    requireObject(o.statsOptions, 'runEval: statsOptions must be an object of options for src/stats');
    refuseUnknownKeys(o.statsOptions, STATS_OPTION_KEYS, 'runEval: statsOptions');
  }
  if (typeof o.qa === 'object' && o.qa !== null) refuseUnknownKeys(o.qa, QA_OPTION_KEYS, 'runEval: qa');
  if (typeof o.fluency === 'object' && o.fluency !== null) refuseUnknownKeys(o.fluency, FLUENCY_OPTION_KEYS, 'runEval: fluency');
}

export interface EvalResult {
  /** Absent when the run stopped early (stopAfter, signal). */
  summary?: EvalSummary;
  records: CaseRecord[];
  drift: DriftPoint[];
  /** Report files written (absolute paths). */
  files: string[];
  /**
   * The run stopped early (stopAfter, signal) after `done` of `total` units; `resumable`: `out`
   * holds a checkpoint to resume from (not so when it stopped before its first unit and had none).
   */
  interrupted?: { done: number; total: number; resumable: boolean };
}

interface Unit {
  cases: number[];
  /** The k of the batch:k run this batch belongs to (its last batch may hold fewer cases). */
  batchSize?: number;
  batch?: number;
}

/** Parses "single", "batch:K", "batch:K1,K2", "sequential:T", "sequential:T/K". */
export function parseMode(s: string): EvalMode {
  const bad = () => new AmendError(`--mode must be single, batch:K (or batch:K1,K2,...), sequential:T or sequential:T/K with positive integers, got "${s}"`);
  const t = s.trim();
  if (t === 'single') return 'single';
  const seq = /^sequential:\s*([1-9]\d*)\s*(?:\/\s*([1-9]\d*)\s*)?$/.exec(t);
  if (seq) return seq[2] === undefined || seq[2] === '1' ? { sequential: Number(seq[1]) } : { sequential: Number(seq[1]), step: Number(seq[2]) };
  const m = /^batch:(.+)$/.exec(t);
  if (!m) throw bad();
  const nums = m[1]!.split(',').map((x) => x.trim());
  if (nums.some((x) => !/^[1-9]\d*$/.test(x))) throw bad();
  const vals = nums.map(Number);
  return { batch: vals.length === 1 ? vals[0]! : vals };
}

export { modeLabel };

/** Consecutive runs of k of the n cases (the last may be shorter). */
const chunks = (n: number, k: number) => Array.from({ length: Math.ceil(n / k) }, (_, b) => Array.from({ length: Math.min(k, n - b * k) }, (_, j) => b * k + j));

function planUnits(mode: EvalMode, n: number): Unit[] {
  if (mode === 'single' || 'sequential' in mode) return chunks(n, stepOf(mode)).map((cases) => ({ cases }));
  // A last batch shorter than k belongs to the batch-k run, as the last chunk of kmeng01/memit's
  // and EasyEdit's batch loops does; its cases say how many were edited with them (callSize).
  return [mode.batch].flat().flatMap((k) => chunks(n, k).map((cases, batch) => ({ cases, batchSize: k, batch })));
}

/**
 * For batch mode (and a sequential run's steps of K > 1 cases): per batch size, how many edits share
 * their subject with another edit of the same batch. Such edits ask for different values at one
 * key; MEMIT's own batch evaluation runs on MultiCounterFact, which has none, so a report says when
 * a benchmark has them.
 */
export function sharedSubjectEdits(cases: readonly EditCase[], mode: EvalMode): { batchSize: number; edits: number; shared: number }[] {
  if (mode === 'single') return [];
  // A sequential run's steps are the editor's batches, over its first T cases.
  if ('sequential' in mode) return stepOf(mode) === 1 ? [] : sharedSubjectEdits(cases.slice(0, mode.sequential), { batch: stepOf(mode) });
  const out = [mode.batch].flat().map((batchSize) => ({ batchSize, edits: 0, shared: 0 }));
  for (const unit of planUnits(mode, cases.length)) {
    const subjects = unit.cases.flatMap((i) => caseRequests(cases[i]!)).map((r) => r.subject.trim());
    const count = new Map<string, number>();
    for (const x of subjects) count.set(x, (count.get(x) ?? 0) + 1);
    const row = out.find((r) => r.batchSize === unit.batchSize)!;
    row.edits += subjects.length;
    row.shared += subjects.filter((x) => count.get(x)! > 1).length;
  }
  return out;
}

const digest = (x: unknown) => crypto.createHash('sha256').update(typeof x === 'string' ? x : JSON.stringify(x)).digest('hex');

/**
 * What identifies consistency resources in a run's config (a resumed run must score with the same):
 * the idf values' bytes and the sizes of the vocabulary and the snippets, not their whole text.
 */
function consistencyDigest(c: ConsistencyResources): string {
  const h = crypto.createHash('sha256').update(new Uint8Array(c.tfidf.idf.buffer, c.tfidf.idf.byteOffset, c.tfidf.idf.byteLength));
  let snippets = 0;
  for (const byTarget of c.snippets.values()) for (const list of byTarget.values()) snippets += list.length;
  return h.update(JSON.stringify([c.tfidf.vocab.size, c.snippets.size, snippets])).digest('hex');
}

const caseCost = (c: Cost): CaseCost => ({ editSeconds: c.wallSeconds, peakRssBytes: c.peakRssBytes, newPeak: c.newPeak });

/**
 * The requests a case gives the editor. zsRE-style files sometimes name as true the answer the
 * edit teaches (the dataset's answer, which the model need not know). The editor refuses such a
 * request as "nothing to edit"; the benchmarks edit it, so it goes without its true target, and
 * only the probability comparisons, which need two targets, leave the case out (metrics-case.ts).
 */
function editRequests(c: EditCase): EditRequest[] {
  // A target of another type than a string is left for the editor to refuse, naming it.
  const same = (r: EditRequest) => typeof r.targetTrue === 'string' && typeof r.targetNew === 'string' && r.targetTrue.trim() === r.targetNew.trim();
  return caseRequests(c).map((r) => (same(r) ? { ...r, targetTrue: undefined } : r));
}

/** Refuses a run in which the editor would refuse every case, naming the first case's reason. */
function checkSomeEditable(model: CausalLM, cases: readonly EditCase[], hp: EditHparams, method: string): void {
  let first = '';
  for (let i = 0; i < cases.length; i++) {
    try {
      prepareRequests(model, editRequests(cases[i]!), hp);
      return;
    } catch (e) {
      if (!(e instanceof AmendError)) throw e;
      first ||= e.message;
    }
  }
  // The words of the CLI's check after a run, where the refusals came from the edits themselves.
  throw new AmendError(`the editor (${method}) refused all ${cases.length} case(s), so nothing was measured (first: ${first})`);
}

/** A mode as a JavaScript caller writes it. */
function modeLiteral(mode: EvalMode): string {
  if (mode === 'single') return "'single'";
  if ('batch' in mode) return `{ batch: ${Array.isArray(mode.batch) ? `[${mode.batch.join(', ')}]` : mode.batch} }`;
  return `{ sequential: ${mode.sequential}${mode.step !== undefined ? `, step: ${mode.step}` : ''} }`;
}

/** A mode runEval does not take; the command line's spelling ("batch:2") is named with the library's. */
function unknownMode(mode: unknown): AmendError {
  const modes = `'single', { batch: 2 } (or a sweep, { batch: [1, 4, 16] }), { sequential: 200 } or { sequential: 200, step: 50 }`;
  if (typeof mode === 'string') {
    let spelt: EvalMode | null = null;
    try {
      spelt = parseMode(mode);
    } catch { /* not the command line's spelling either */ }
    if (spelt !== null) return new AmendError(`runEval: mode ${JSON.stringify(mode)} is the command line's spelling; runEval takes ${modeLiteral(spelt)} (parseMode(${JSON.stringify(mode)}) gives it)`);
  }
  return new AmendError(`runEval: unknown mode ${JSON.stringify(mode)}; modes: ${modes}`);
}

function checkOptions(cases: readonly EditCase[], o: EvalOptions): { mode: EvalMode; every: number } {
  if (cases.length === 0) throw new AmendError('nothing to evaluate: no cases');
  // ROME and MEMIT rewrite the fact at its subject's tokens; a dataset without subjects (EvEdit's
  // event questions) can only be refused case by case, so say it once, up front.
  if ((o.method === 'rome' || o.method === 'memit') && cases.every((c) => !c.subject?.trim())) {
    throw new AmendError(`none of the ${cases.length} case(s) names a subject, and ${o.method} edits a fact at its subject's tokens: choose a dataset with subjects (CounterFact, zsRE, KnowEdit, MQuAKE, the demo world)`);
  }
  const mode = o.mode ?? 'single';
  if (typeof mode === 'object' && 'sequential' in mode) {
    if (!(Number.isInteger(mode.sequential) && mode.sequential >= 1)) throw new AmendError(`sequential:T needs a positive integer T, got ${describeValue(mode.sequential)}`);
    if (mode.sequential > cases.length) throw new AmendError(`sequential:${mode.sequential} needs ${mode.sequential} cases, but there are only ${cases.length}; lower T (or raise --n if you limited the cases)`);
    const step = stepOf(mode);
    if (!(Number.isInteger(step) && step >= 1 && step <= mode.sequential)) throw new AmendError(`sequential:T/K needs a step K from 1 to T=${mode.sequential}, got ${describeValue(mode.step)}`);
  } else if (typeof mode === 'object' && 'batch' in mode) {
    if ([mode.batch].flat().some((k) => !(Number.isInteger(k) && k >= 1))) throw new AmendError(`batch:K needs positive integers, got ${[mode.batch].flat().map(describeValue).join(', ')}`);
    // A size given twice would edit and score every case twice, and pool both as one run.
    const twice = [mode.batch].flat().find((k, i, all) => all.indexOf(k) !== i);
    if (twice !== undefined) throw new AmendError(`${modeLabel(mode)} gives batch size ${twice} twice; give each size once`);
    // It would edit all the cases in one call and label that call batch-K in the summary and plots.
    const over = [mode.batch].flat().find((k) => k > cases.length);
    if (over !== undefined) throw new AmendError(`batch:${over} needs ${over} cases, but there are only ${cases.length}; lower K (or raise --n if you limited the cases)`);
  } else if (mode !== 'single') throw unknownMode(mode);
  if (o.protocol !== undefined && o.protocol !== 'immediate' && o.protocol !== 'final') {
    throw new AmendError(`protocol must be immediate or final, got "${String(o.protocol)}"`);
  }
  if (o.protocol !== undefined && !(typeof mode === 'object' && 'sequential' in mode)) {
    throw new AmendError('protocol (immediate | final) applies to sequential runs only (mode sequential:T)');
  }
  if (o.heldout !== undefined && !(typeof mode === 'object' && 'sequential' in mode)) {
    throw new AmendError('heldout: perplexity drift is measured in sequential runs only (mode sequential:T)');
  }
  // Without held-out text there is nothing for the token count to limit.
  if (o.heldoutTokens !== undefined && o.heldout === undefined) throw new AmendError('heldoutTokens limits the held-out text scored for perplexity drift; give heldout ({ text }) too, or leave heldoutTokens out');
  const every = o.checkpointEvery ?? 10;
  if (!(Number.isInteger(every) && every >= 1)) throw new AmendError(`checkpointEvery must be a positive integer, got ${describeValue(o.checkpointEvery)}`);
  if (o.resume && !o.out) throw new AmendError('resume needs the report folder of the interrupted run (out)');
  return { mode, every };
}

/**
 * The checkpoint a --resume continues from (null for a fresh run), after refusing what would
 * clobber the report folder: an interrupted run or a finished report there, without --resume or
 * --force; a checkpoint of other settings or counts.
 */
function checkpointToResume(partial: PartialRun, o: EvalOptions, config: EvalConfig, total: number, caseCount: number): Checkpoint | null {
  const out = partial.out;
  if (o.resume) {
    if (!partial.exists()) {
      // A finished run leaves its report and no checkpoint: say that, rather than a way that ends at "already has a report".
      if (fs.existsSync(`${out}/summary.json`)) throw new AmendError(`${out}: the run there has finished (summary.json); nothing to resume. Rerun from scratch with --force (force: true), or choose another --out`);
      throw new AmendError(`${out}: no interrupted run to resume (no checkpoint); run without --resume (resume: false)`);
    }
    const cp = partial.read();
    const diff = configDifference(cp.config, config);
    if (diff) throw new AmendError(`${out}: the interrupted run had other settings (${diff}); resume with the same arguments, or start over with --force (force: true)`);
    if (cp.total !== total || cp.pending.some((p) => p.index >= caseCount)) {
      throw new AmendError(`${partial.checkpointFile}: a damaged checkpoint (its counts do not fit this run's ${total} units of ${caseCount} cases); start over with --force (force: true)`);
    }
    return cp;
  }
  if (!o.force) {
    if (partial.exists()) {
      // A --force run stopped beside the report it was to replace: say which of the two is which.
      const beside = fs.existsSync(path.join(out, 'summary.json')) ? '; the report beside it is from an earlier run and stays until a run finishes' : '';
      throw new AmendError(`${out} holds an interrupted run (${partial.read().done} of ${total} done${beside}); pass --resume (resume: true) to continue it or --force (force: true) to start over`);
    }
    // Every name a report writes, plots included: the finished report replaces each one.
    const existing = fs.readdirSync(out).filter(isReportFile).sort();
    if (existing.length) throw new AmendError(`${out} already has a report (${existing.slice(0, 4).join(', ')}${existing.length > 4 ? ', ...' : ''}); pass --force (force: true) to replace it`);
  }
  return null;
}

/**
 * The cases of a batch or step the editor refuses on their own (subject not in the prompt, ...),
 * with the reason: they are recorded with their error and the rest is edited without them.
 */
function refusedOnTheirOwn(model: CausalLM, cases: readonly EditCase[], unitCases: readonly number[], hp: EditHparams): Map<number, string> {
  const refused = new Map<number, string>();
  if (unitCases.length < 2) return refused; // a lone case's refusal comes from the edit itself
  for (const i of unitCases) {
    try {
      prepareRequests(model, editRequests(cases[i]!), hp);
    } catch (e) {
      if (!(e instanceof AmendError)) throw e;
      refused.set(i, e.message);
    }
  }
  return refused;
}

/**
 * Evaluates `cases` on `model` (see the file comment). The model's weights are as given afterwards;
 * while the run goes on, the model is held (holdModel): other promises cannot edit or patch it.
 */
export async function runEval(model: CausalLM, allCases: readonly EditCase[], o: EvalOptions): Promise<EvalResult> {
  requireObject(model, 'runEval takes a loaded model (CausalLM.load(dir))');
  if (!Array.isArray(allCases) || allCases.some((c) => c === null || typeof c !== 'object')) throw new AmendError('runEval takes an array of EditCase objects (loadCases(file).cases)');
  requireObject(o, 'runEval needs options ({ method: "rome" | "memit", ... })');
  refuseUnknownEvalKeys(o);
  checkStatsSource(o.stats, 'runEval');
  if (o.out !== undefined && (typeof o.out !== 'string' || o.out === '')) throw new AmendError('runEval: out must be a folder path (a non-empty string)');
  if (o.heldout !== undefined && (o.heldout === null || typeof o.heldout.text !== 'string')) throw new AmendError('runEval: heldout must be { text } (readHeldOutText(file) reads one)');
  if (o.heldout !== undefined) refuseUnknownKeys(o.heldout, HELDOUT_KEYS, 'runEval: heldout');
  requireCount(o.heldoutTokens, 'runEval: heldoutTokens', 2);
  requireCount(o.stopAfter, 'runEval: stopAfter', 1);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new AmendError(`runEval: signal must be an AbortSignal (new AbortController().signal), got ${describeValue(o.signal)}`);
  // The caller's callbacks are not part of the run: what they start on the model is refused.
  const own = { ...o, onProgress: outsideHold(o.onProgress), onEditProgress: outsideHold(o.onEditProgress) };
  return holdModel(model, 'an evaluation run (runEval)', () => withReportFolder(own.out, () => evaluate(model, allCases, own)));
}

/**
 * Runs `run` holding the report folder: one evaluation at a time writes into it (a lock file with
 * the process id; a second run, or --force beside a live one, is refused), a write the disk refuses
 * is one line naming the folder, and a folder this run made and left empty is removed.
 */
async function withReportFolder<R>(out: string | undefined, run: () => Promise<R>): Promise<R> {
  if (out === undefined) return run();
  checkCanBeFolder(out);
  const created = !fs.existsSync(out);
  try {
    makeDirs(out);
  } catch (err) {
    throw writeError(out, err) ?? new AmendError(`${out}: cannot be created here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose a writable place`);
  }
  let unlock = () => {};
  try {
    const lock = path.join(out, LOCK_FILE);
    unlock = takeLock(lock, (pid, host) =>
      `${out} is in use by another evaluation run (process ${pid}${host === os.hostname() ? '' : ` on ${host}`}); wait for it to finish or choose another report folder; if no run is using it, delete ${lock}`);
    return await run();
  } catch (err) {
    throw writeError(out, err) ?? err;
  } finally {
    unlock();
    if (created && fs.existsSync(out) && fs.readdirSync(out).length === 0) fs.rmdirSync(out);
  }
}

/**
 * A run's settings, resolved once before anything is measured: the options checked, the cases it
 * edits, the hparams, the config its checkpoints and report carry, and its units of work.
 */
interface RunPlan {
  model: CausalLM;
  o: EvalOptions;
  session: EditSession;
  mode: EvalMode;
  /** A checkpoint every `every` units. */
  every: number;
  sequential: boolean;
  /** Protocol final: the cases are scored after the last edit, not after their own. */
  deferScoring: boolean;
  /** The cases edited: all of them, or a sequential run's first T. */
  cases: readonly EditCase[];
  resolved: ResolvedHparams;
  hp: EditHparams;
  config: EvalConfig;
  /** The regime of the run's records (a batch's records say their own, batch-K). */
  regime: Regime;
  units: Unit[];
  total: number;
  /** Held-out text for perplexity drift (sequential runs only), and how many of its tokens are scored. */
  heldoutText: string | undefined;
  heldoutTokens: number;
}

/** What is measured on the unedited model before the first edit (see the file comment). */
interface UneditedMeasures {
  baselines: LocalityBaseline[];
  unedited: UneditedScope | undefined;
  stats: StatsSource | undefined;
  /** Held-out perplexity before the first edit (null without held-out text). */
  basePerplexity: ReturnType<typeof heldoutPerplexity> | null;
}

/** A run under way: its plan, the unedited model's measures, and where it stands (what a checkpoint saves). */
interface Run extends RunPlan, UneditedMeasures {
  partial: PartialRun | null;
  /** When this process started on the run (performance.now()); earlier processes spent secondsBefore. */
  t0: number;
  secondsBefore: number;
  records: CaseRecord[];
  /** Protocol final: the cases edited and not yet scored. */
  pending: PendingCase[];
  drift: DriftPoint[];
  /** A sequential run's patches saved in the checkpoint folder, in order. */
  patchFiles: string[];
  /** Units finished. */
  done: number;
  /** The `done` of the last checkpoint written or resumed from (-1: none yet). */
  checkpointed: number;
  /** The patches this run has applied and not reverted (a sequential run stacks them). */
  ours: EditPatch[];
}

async function evaluate(model: CausalLM, allCases: readonly EditCase[], o: EvalOptions): Promise<EvalResult> {
  const plan = planRun(model, allCases, o);
  // Otherwise a run whose every case the editor refuses computes the baselines and the layer
  // statistics (minutes on a large model) only to record the refusals.
  checkSomeEditable(model, plan.cases, plan.hp, o.method);

  // ---- the report folder (held by withReportFolder): refuse to clobber, pick up a checkpoint
  const partial = o.out ? new PartialRun(o.out) : null;
  const cp = partial ? checkpointToResume(partial, o, plan.config, plan.total, plan.cases.length) : null;

  const t0 = performance.now();
  await nextTurn();
  let measured: UneditedMeasures;
  try {
    measured = await measureUnedited(plan);
  } catch (err) {
    if (!(err instanceof Stopped)) throw err;
    // Nothing of this run is written yet: the folder is as it was (a resumed run's checkpoint included).
    return { records: [], drift: [], files: [], interrupted: { done: cp?.done ?? 0, total: plan.total, resumable: cp !== null } };
  }
  // ---- state, fresh or from the checkpoint
  const base = measured.basePerplexity;
  const run: Run = {
    ...plan, ...measured, partial, t0, secondsBefore: 0, records: [], pending: [], patchFiles: [], done: 0, checkpointed: -1, ours: [],
    drift: base ? [{ edits: 0, perplexity: base.perplexity, ratio: 1, tokens: base.tokens }] : [],
  };
  try {
    if (partial && cp) resumeFrom(run, partial, cp);
    // With --force, a report already in the folder stays until this run's replaces it (writeReports):
    // a run that fails or is interrupted loses nothing.
    else if (partial) partial.reset();

    progress(run, 'edit', run.done);
    while (run.done < run.total) {
      if (o.signal?.aborted) return stopHere(run);
      await runUnit(run, run.units[run.done]!);
      run.done++;
      if (run.heldoutText !== undefined && run.done % run.every === 0 && run.done < run.total) measureDrift(run);
      const stopping = o.stopAfter !== undefined && run.done >= o.stopAfter && run.done < run.total;
      // A stop (--stop-after) is an interruption the run chose: it leaves a checkpoint to resume from.
      if (run.done % run.every === 0 || run.done === run.total || stopping) checkpoint(run);
      progress(run, 'edit', run.done);
      await nextTurn();
      if (stopping) return stopHere(run);
    }

    if (run.deferScoring && !(await scoreDeferred(run))) return stopHere(run);
    if (run.heldoutText !== undefined && run.drift[run.drift.length - 1]!.edits !== editedAfter(run, run.done)) measureDrift(run);
    restoreModel(run);
    return report(run);
  } catch (err) {
    restoreModel(run);
    // Without a checkpoint there is nothing to resume: leave no trace in the report folder.
    if (partial && !partial.exists()) partial.remove();
    throw err;
  }
}

/** The run's settings from the options (checked), with the config its checkpoints and report carry. */
function planRun(model: CausalLM, allCases: readonly EditCase[], o: EvalOptions): RunPlan {
  const { mode, every } = checkOptions(allCases, o);
  const sequential = typeof mode === 'object' && 'sequential' in mode;
  const protocol: SequentialProtocol | undefined = sequential ? o.protocol ?? 'immediate' : undefined;
  const cases = sequential ? allCases.slice(0, (mode as { sequential: number }).sequential) : allCases;
  if (o.resolved !== undefined) checkResolvedHparams(o.method, o.resolved, model, 'runEval');
  const resolved = o.resolved ?? resolveHparams(o.method, model, { preset: o.preset, files: o.hparamsFiles, overrides: o.hparams });
  const hp = resolved.hparams;
  const session = editSession(model);
  const heldoutTokens = o.heldoutTokens ?? 2048;
  const scoring = { qa: o.qa ?? false, fluency: o.fluency ?? false, ...(o.consistency ? { consistency: consistencyDigest(o.consistency) } : {}) };
  const config: EvalConfig = JSON.parse(JSON.stringify({
    method: o.method,
    hparams: hp,
    hparamsOrigin: resolved.origin,
    model: { dir: model.dir ?? null, modelType: model.config.modelType, fingerprint: session.baseFingerprint },
    mode,
    protocol,
    cases: cases.length,
    casesDigest: digest(cases),
    heldout: sequential && o.heldout ? { file: o.heldout.file ?? null, digest: digest(o.heldout.text), maxTokens: heldoutTokens, lines: o.heldout.lines ?? false } : undefined,
    scoring,
    checkpointEvery: every,
    data: o.data,
  } satisfies EvalConfig)) as EvalConfig;
  const units = planUnits(mode, cases.length);
  return {
    model, o, session, mode, every, sequential, deferScoring: sequential && protocol === 'final', cases, resolved, hp, config,
    regime: protocol ? PROTOCOL_REGIME[protocol] : 'single',
    units, total: units.length,
    heldoutText: sequential ? o.heldout?.text : undefined, heldoutTokens,
  };
}

/**
 * A turn of the event loop. A run is a chain of awaits that resume as microtasks, which Node drains
 * before anything else: without a turn now and then, warnings (process.emitWarning delivers them on
 * a later tick), timers and signals would wait for the whole run.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const progress = (plan: RunPlan, stage: EvalProgress['stage'], done: number, cases?: EvalProgress['cases']) =>
  plan.o.onProgress?.({ stage, done, total: plan.total, ...(cases ? { cases } : {}) });

/** Sequential: cases edited once the first u units are (the x of the drift and of the plots). */
const editedAfter = (plan: RunPlan, u: number) => (u === 0 ? 0 : plan.units[u - 1]!.cases.at(-1)! + 1);

const heldoutPerplexityNow = (plan: RunPlan) => heldoutPerplexity(plan.model, plan.heldoutText!, { maxTokens: plan.heldoutTokens, lines: plan.o.heldout?.lines });

const secondsSoFar = (run: Run) => run.secondsBefore + (performance.now() - run.t0) / 1000;

/** Everything measured on the unedited model. */
async function measureUnedited(plan: RunPlan): Promise<UneditedMeasures> {
  const { model, cases, o, hp } = plan;
  progress(plan, 'baseline', 0);
  const baselines: LocalityBaseline[] = localityBaselines(model, cases, { qa: o.qa });
  // ConvSent's dd compares the edited model's distributions with the unedited one's when scored.
  const unedited = cases.some((c) => c.sentiment?.outer) ? uneditedScope(model) : undefined;
  contextTemplates(model, templateSettings(hp));
  let stats: StatsSource | undefined = o.stats;
  if (!stats && usesStatistics(o.method, hp)) {
    const options = statsOptionsWithProgress(o.statsOptions, o.onEditProgress);
    const report = options.onProgress;
    // Statistics take minutes on a large model, with turns of the event loop between batches: a
    // stop asked for meanwhile ends them at the next batch (nothing is cached of them then).
    options.onProgress = (done, total) => {
      if (o.signal?.aborted) throw new Stopped();
      report?.(done, total);
    };
    const got: SecondMoment[] = await secondMoments(model, hp.layers, hp, { options });
    stats = new Map(hp.layers.map((l, i) => [l, got[i]!]));
  }
  const basePerplexity = plan.heldoutText !== undefined ? heldoutPerplexityNow(plan) : null;
  return { baselines, unedited, stats, basePerplexity };
}

/** Picks up where the checkpoint left off: its records, pending cases and drift, its patches applied again. */
function resumeFrom(run: Run, partial: PartialRun, cp: Checkpoint): void {
  run.records = partial.restore(cp).map((l) => JSON.parse(l) as CaseRecord);
  run.pending = cp.pending;
  run.drift = cp.drift;
  run.patchFiles = cp.patches;
  run.done = cp.done;
  run.checkpointed = cp.done;
  run.secondsBefore = cp.seconds;
  for (const f of run.patchFiles) {
    const p = EditPatch.load(partial.patchPath(f));
    run.session.apply(p);
    run.ours.push(p);
  }
}

/** Reverts the patches the run applied, last first: the model's weights are as given again. */
function restoreModel(run: Run): void {
  for (let i = run.ours.length - 1; i >= 0; i--) run.session.revert(run.ours[i]!);
  run.ours.length = 0;
}

function measureDrift(run: Run): void {
  progress(run, 'perplexity', run.done);
  const p = heldoutPerplexityNow(run);
  run.drift.push({ edits: editedAfter(run, run.done), perplexity: p.perplexity, ratio: p.perplexity / run.basePerplexity!.perplexity, tokens: p.tokens });
}

function checkpoint(run: Run): void {
  run.partial?.write({ config: run.config, done: run.done, total: run.total, patches: run.patchFiles, pending: run.pending, drift: run.drift, seconds: secondsSoFar(run) });
  run.checkpointed = run.done;
  progress(run, 'checkpoint', run.done);
}

/** Thrown by the statistics' progress callback when the run's signal is aborted. */
class Stopped extends Error {}

/**
 * Stops between units (stopAfter, signal): a checkpoint of where the run stands, unless the last
 * one is of this very point, and the model's weights as given.
 */
function stopHere(run: Run): EvalResult {
  if (run.partial && run.checkpointed !== run.done) checkpoint(run);
  restoreModel(run);
  return { records: run.records, drift: run.drift, files: [], interrupted: { done: run.done, total: run.total, resumable: run.partial !== null } };
}

/**
 * One unit of work (a case, a batch or a sequential step): one edit call, its patch applied (and
 * kept, in a sequential run), the unit's cases scored or, under protocol final, left pending, and
 * their records appended.
 */
async function runUnit(run: Run, unit: Unit): Promise<void> {
  const ownError = refusedOnTheirOwn(run.model, run.cases, unit.cases, run.hp);
  const editable = unit.cases.filter((i) => !ownError.has(i));
  const casesEdited = editedAfter(run, run.done + 1);
  const tags = unitTags(run, unit, casesEdited);
  const { patch, cost, refused } = await editUnit(run, editable);
  const errorOf = (i: number) => ownError.get(i) ?? refused;
  const fresh: CaseRecord[] = [];
  if (patch) {
    run.session.apply(patch);
    if (run.sequential) keepPatch(run, patch);
  }
  const failed = refused !== undefined ? unit.cases : [...ownError.keys()];
  if (run.deferScoring) run.pending.push(...failed.map((index) => ({ index, edit: casesEdited, error: errorOf(index) })));
  else for (const i of failed) fresh.push(refusedRecord(run, i, tags, errorOf(i)));
  if (patch) {
    if (run.deferScoring) {
      run.pending.push(...editable.map((index) => ({ index, edit: casesEdited, cost })));
    } else {
      try {
        progress(run, 'score', run.done);
        fresh.push(...scoreRecords(run, editable, () => tags, () => cost!));
      } finally {
        if (!run.sequential) run.session.revert(patch);
      }
    }
    fresh.sort((a, b) => a.index - b.index);
  }
  run.records.push(...fresh);
  run.partial?.appendLines(fresh.map((r) => JSON.stringify(r)));
}

/** What the records of a unit say of their edit call: its batch, or its sequential step. */
function unitTags(run: Run, unit: Unit, casesEdited: number): Partial<CaseRecord> {
  if (unit.batchSize) {
    return { regime: `batch-${unit.batchSize}`, batchSize: unit.batchSize, batch: unit.batch, call: run.done, ...(unit.cases.length < unit.batchSize ? { callSize: unit.cases.length } : {}) };
  }
  return run.sequential ? { edit: casesEdited, scoredAfter: casesEdited } : { regime: run.regime };
}

/** The unit's edit call, timed; the editor's refusal is recorded with the unit's cases. */
async function editUnit(run: Run, editable: readonly number[]): Promise<{ patch: EditPatch | null; cost?: CaseCost; refused?: string }> {
  const reqs = editable.flatMap((i) => editRequests(run.cases[i]!));
  if (editable.length === 0) return { patch: null };
  try {
    const m = await measureAsync(() => editWithReport(run.model, reqs, { method: run.o.method, resolved: run.resolved, allowUnchanged: true, stats: run.stats, statsOptions: run.o.statsOptions, onProgress: run.o.onEditProgress }));
    return { patch: m.result.patch, cost: caseCost(m.cost) };
  } catch (e) {
    // One case the editor refuses (subject not in its prompt, ...) must not sink a benchmark run.
    if (!(e instanceof AmendError)) throw e;
    return { patch: null, refused: e.message };
  }
}

/** A sequential run's patch stays applied, and is saved with the checkpoint for a resumed run to apply again. */
function keepPatch(run: Run, patch: EditPatch): void {
  run.ours.push(patch);
  if (run.partial) {
    const name = run.partial.patchName(run.done + 1);
    patch.save(run.partial.patchPath(name));
    run.patchFiles.push(name);
  }
}

/** The cases `idx` scored on the model as it is now; `extra` and `costOf` say what each record adds of its edit. */
function scoreRecords(run: Run, idx: readonly number[], extra: (i: number) => Partial<CaseRecord>, costOf: (i: number) => CaseCost): CaseRecord[] {
  const { o, cases } = run;
  const scored = scoreCases(run.model, idx.map((i) => cases[i]!), { baselines: idx.map((i) => run.baselines[i]), qa: o.qa, fluency: o.fluency, consistency: o.consistency, unedited: run.unedited });
  return idx.map((i, k) => {
    const s = scored[k]!;
    const cost = costOf(i);
    const rec: CaseRecord = { index: i, ...caseTags(cases[i]!), regime: run.regime, ...extra(i), metrics: [...s.metrics, ...costMetrics(cost)], cost };
    if (o.details !== false) {
      rec.items = s.items;
      if (s.qa) rec.qa = s.qa;
      if (s.generations) rec.generations = s.generations;
    }
    return orderKeys(rec);
  });
}

/** The record of a case the editor refused: its error, no metrics. */
function refusedRecord(run: Run, i: number, extra: Partial<CaseRecord>, error: string | undefined): CaseRecord {
  return orderKeys({ index: i, ...caseTags(run.cases[i]!), regime: run.regime, ...extra, metrics: [], error });
}

/**
 * Protocol final: the pending cases scored once the last edit is applied, then every record
 * appended in case order. False when the run's signal stopped it between two chunks (the
 * checkpoint after the last edit then resumes it, scoring every case again).
 */
async function scoreDeferred(run: Run): Promise<boolean> {
  const ok = run.pending.filter((p) => !p.error);
  const edits = new Map(run.pending.map((p) => [p.index, p]));
  const CHUNK = 16;
  // Every unit is edited, so done stays at total; the pace of this pass is in its cases.
  for (let s = 0; s < ok.length; s += CHUNK) {
    if (s > 0) await nextTurn();
    if (run.o.signal?.aborted) return false;
    progress(run, 'score', run.done, { done: s, total: ok.length });
    const idx = ok.slice(s, s + CHUNK).map((p) => p.index);
    run.records.push(...scoreRecords(run, idx, (i) => ({ edit: edits.get(i)!.edit, scoredAfter: run.cases.length }), (i) => edits.get(i)!.cost!));
  }
  progress(run, 'score', run.done, { done: ok.length, total: ok.length });
  for (const p of run.pending.filter((q) => q.error)) run.records.push(refusedRecord(run, p.index, { edit: p.edit }, p.error));
  run.records.sort((a, b) => a.index - b.index);
  run.partial?.appendLines(run.records.map((r) => JSON.stringify(r)));
  return true;
}

/** The summary, cases.jsonl and plots of the finished run. */
function report(run: Run): EvalResult {
  progress(run, 'report', run.done);
  const written = writeReports({
    out: run.o.out, partial: run.partial, config: run.config, records: run.records, drift: run.drift, seconds: secondsSoFar(run),
    kind: typeof run.mode === 'string' ? 'single' : run.sequential ? 'sequential' : 'batch',
    sharedSubjects: sharedSubjectEdits(run.cases, run.mode).filter((x) => x.shared > 0),
  });
  return { summary: written.summary, records: run.records, drift: run.drift, files: written.files };
}

/** What a record says of its case besides the index: its id, relation and run-split labels, when it has them. */
function caseTags(c: LoadedCase): Pick<CaseRecord, 'id' | 'relation' | 'split'> {
  return { id: c.id, ...(c.relationId !== undefined ? { relation: c.relationId } : {}), ...(c.split !== undefined ? { split: c.split } : {}) };
}

/** Same key order on every line (index, id, relation, split, regime first), so cases.jsonl reads and diffs well. */
function orderKeys(r: CaseRecord): CaseRecord {
  const out = { index: r.index } as CaseRecord;
  if (r.id !== undefined) out.id = r.id;
  if (r.relation !== undefined) out.relation = r.relation;
  if (r.split !== undefined) out.split = r.split;
  out.regime = r.regime;
  for (const k of ['batchSize', 'batch', 'call', 'callSize', 'edit', 'scoredAfter', 'error', 'metrics', 'cost', 'items', 'qa', 'generations'] as const) {
    if (r[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = r[k];
  }
  return out;
}
