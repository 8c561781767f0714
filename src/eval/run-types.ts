/**
 * The shapes a run of the evaluation runner reads and writes (cases.jsonl lines, the summary),
 * kept apart from the runner so reports and tests can use them without loading any model code.
 */
import type { EditCase } from '../editors/types.js';
import type { ItemDetail, QaDetail } from './metrics-case.js';
import type { Metric, Protocol } from './protocols.js';

/**
 * How edits are applied: one case at a time (single), K cases in one edit (batch, or a sweep of
 * sizes), or T cases edited one after another with the edits stacked (sequential), `step` cases
 * per edit call (1 unless given; MEMIT in sequential batches, as in AlphaEdit's lifelong-editing
 * evaluation, has step > 1).
 */
export type EvalMode = 'single' | { batch: number | number[] } | { sequential: number; step?: number };

/** Cases per edit call: a sequential mode's step, 1 for single. */
export const stepOf = (mode: EvalMode): number => (typeof mode === 'object' && 'sequential' in mode ? mode.step ?? 1 : 1);

/** The mode as --mode spells it: single, batch:K1,K2, sequential:T, sequential:T/K. */
export function modeLabel(mode: EvalMode): string {
  if (mode === 'single') return 'single';
  if ('batch' in mode) return `batch:${[mode.batch].flat().join(',')}`;
  return `sequential:${mode.sequential}${stepOf(mode) > 1 ? `/${stepOf(mode)}` : ''}`;
}

/**
 * When a sequential run scores: 'immediate' = each case right after its own edit; 'final' = every
 * case after the T-th edit (the lifelong-editing protocol).
 */
export type SequentialProtocol = 'immediate' | 'final';

/** The regime each protocol's numbers are reported under (summaries, plots, the config line). */
export const PROTOCOL_REGIME = { immediate: 'score-after-each', final: 'apply-all-then-score' } as const satisfies Record<SequentialProtocol, string>;

/**
 * The regime a number was measured under. Numbers of different regimes answer different
 * questions, so summaries keep them in separate rows (as they do protocols of scoring).
 */
export type Regime = 'single' | `batch-${number}` | 'score-after-each' | 'apply-all-then-score';

export const REGIME_DESCRIPTIONS: Record<string, string> = {
  single: 'single edits, the model restored exactly between cases',
  batch: 'K cases edited at once (the last batch fewer when K does not divide the number of cases), scored, then reverted',
  'score-after-each': 'sequential: each case scored right after its own edit (edits stacked)',
  'apply-all-then-score': 'sequential: all T edits applied, then every case scored',
};

export interface CaseCost {
  /** Seconds of the edit call that edited this case (a batch's call for all its cases). */
  editSeconds: number;
  /** Peak resident set during that call (Linux), else the process's peak after it (bytes). */
  peakRssBytes: number;
  /** peakRssBytes is the call's own (always on Linux; elsewhere when the call raised the peak). */
  newPeak: boolean;
}

/** One line of cases.jsonl. */
export interface CaseRecord {
  /** Position of the case in the evaluated list (0-based). */
  index: number;
  id?: string | number;
  /** The case's relation (CounterFact's relation_id), for the per-relation breakdown. */
  relation?: string;
  /** MQuAKE-Remastered: the case's run-split labels as its record gives them (see SplitLabels in src/data). */
  split?: Record<string, string[]>;
  regime: Regime;
  /** Batch runs: the batch size K of the run and which batch of that size. */
  batchSize?: number;
  batch?: number;
  /** Batch runs: the cases edited in this case's call, when fewer than K (the last batch, n not a multiple of K). */
  callSize?: number;
  /** Batch runs: the edit call that edited it, counted from 0 over the run (a sweep's batches apart). */
  call?: number;
  /**
   * Sequential runs: how many cases had been edited once the edit that applied this case was (its
   * 1-based number; with a step of K cases per edit call, the number of the step's last case).
   */
  edit?: number;
  /** How many cases had been edited when the case was scored (sequential). */
  scoredAfter?: number;
  metrics: Metric[];
  cost?: CaseCost;
  items?: ItemDetail[];
  qa?: QaDetail[];
  /** The sampled texts ngram_entropy and reference_score were computed from (fluency, consistency). */
  generations?: string[];
  /** The edit was refused (e.g. subject not in the prompt); the case has no scores. */
  error?: string;
}

/** Perplexity of the held-out text after a number of stacked edits. */
export interface DriftPoint {
  edits: number;
  perplexity: number;
  /** perplexity / perplexity before any edit. */
  ratio: number;
  tokens: number;
}

export interface SummaryRow {
  regime: Regime;
  protocol: Protocol;
  name: string;
  unit?: string;
  mean: number;
  /** Sample standard deviation; NaN where there is none (a single value; the derived `score` row), null in summary.json. */
  std: number;
  /** [NaN, NaN] where there is none (a single value; the derived `score` row), null in summary.json. */
  ci95: [number, number];
  count: number;
}

/** Mean of one metric over the cases of one relation (no interval: these groups are small). */
export interface RelationRow {
  regime: Regime;
  protocol: Protocol;
  name: string;
  relation: string;
  mean: number;
  count: number;
}

/**
 * The summary of the cases that carry one label in the run split that chose them (MQuAKE-Remastered:
 * CF-6334's train_edited, test_edited): counted and summarised as the whole run is.
 */
export interface SplitLabelSummary {
  label: string;
  cases: number;
  failed: number;
  rows: SummaryRow[];
}

export interface EvalConfig {
  method: string;
  /** The resolved hparams the edits ran with, and where they came from. */
  hparams: Record<string, unknown>;
  hparamsOrigin: string;
  model: { dir: string | null; modelType: string; fingerprint: string };
  mode: EvalMode;
  protocol?: SequentialProtocol;
  cases: number;
  /** sha256 of the evaluated cases: a resumed run must evaluate the same ones. */
  casesDigest: string;
  /** Held-out text for perplexity drift (path and sha256), when any. */
  heldout?: { file: string | null; digest: string; maxTokens: number; lines: boolean };
  /** Scoring switches that change numbers (qa, fluency, the consistency resources' digest). */
  scoring: Record<string, unknown>;
  /** Edit calls between checkpoints (a resume with another value is refused, as for any setting here). */
  checkpointEvery?: number;
  /** The benchmark file, its format and, when one was chosen, the run split whose edited cases these are. */
  data?: { file?: string; format?: string; split?: string };
}

export interface EvalSummary {
  config: EvalConfig;
  cases: number;
  failed: number;
  rows: SummaryRow[];
  /** The headline scores per relation, when the cases span two or more relations. */
  byRelation?: RelationRow[];
  /**
   * Per label the cases carry in the run split that chose them (config.data.split), when they
   * carry two or more there; a case with two labels counts under both.
   */
  bySplitLabel?: SplitLabelSummary[];
  drift: DriftPoint[];
  /** Wall seconds of the whole run (all sessions of a resumed run together). */
  seconds: number;
  /**
   * Per batch size, the edits whose subject another edit of the same batch (or sequential step)
   * also has; only sizes where some do. MEMIT gives such edits one key for two values.
   */
  sharedSubjects?: { batchSize: number; edits: number; shared: number }[];
  files?: string[];
}

export interface EvalProgress {
  stage: 'baseline' | 'edit' | 'score' | 'perplexity' | 'checkpoint' | 'report';
  /** Units done (cases, batches or edits) of `total`. */
  done: number;
  total: number;
  /** Protocol final's scoring, after the last unit: the cases scored so far of those to score. */
  cases?: { done: number; total: number };
}

export type { EditCase };
