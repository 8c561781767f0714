// amend demo: the whole story on the built-in demo world in one command, offline: what the model
// believes, one ROME edit (with a paraphrase, a neighbour and a multi-hop question), a MEMIT batch,
// CounterFact-style scores from the evaluation module, and an exact revert, with the time of each
// phase. Every edit is computed on the unedited model and reverted before the next one, so the
// ROME and MEMIT numbers are independent (as in `amend eval`'s single and batch regimes).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { generate } from '../../models/generate.js';
import { editSession } from '../../patch/session.js';
import type { EditPatch } from '../../patch/patch.js';
import { loadCases } from '../../data/index.js';
import { editWithReport, parseSets, resolveHparams, SCHEMAS, type EditCase, type EditMethod, type ResolvedHparams } from '../../editors/index.js';
import { Timings } from '../../editors/common/run.js';
import { scoreCases, portabilityGroupsOf } from '../../eval/metrics-case.js';
import type { Metric } from '../../eval/protocols.js';
import type { CaseRecord, Regime, SummaryRow } from '../../eval/run-types.js';
import { summarizeRecords } from '../../eval/summary.js';
import { targetLogProbs } from '../../eval/scoring.js';
import { fillTemplate } from '../../tokenizer/index.js';
import { Rng } from '../../world/rng.js';
import { WorldIndex } from '../../world/query.js';
import type { World } from '../../world/types.js';
import { intOption, listOption, requireExisting, seedOption, strOption as str, type CommandSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';
import { EditBars, fmtP, Progress } from '../progress.js';

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'edit the built-in demo model: facts before, a ROME edit, a MEMIT batch, scores, revert (offline)',
  usage: 'amend demo [--n N] [--case ID | --seed S] [--model M] [--data FILE] [--show K] [--tokens N] [--set key=value] [--json]',
  options: {
    n: { type: 'string', help: 'N  edits in the MEMIT batch (default 100; 0 skips MEMIT)' },
    case: { type: 'string', help: 'ID  the benchmark case (case_id) for the ROME edit (default: the first suitable one)' },
    seed: { type: 'string', help: 'S  pick the ROME case and the MEMIT batch at random with this seed (default: file order)' },
    model: { type: 'string', short: 'm', help: 'M  model (default world, the built-in demo model)' },
    data: { type: 'string', help: 'FILE  benchmark in CounterFact format (default: benchmark.json beside the model)' },
    show: { type: 'string', help: 'K  MEMIT cases shown before and after (default 3)' },
    tokens: { type: 'string', help: 'N  tokens of each greedy completion (default 6)' },
    set: { type: 'string', multiple: true, help: 'key=value  override an hparam (of both methods, or of the one that has it); repeatable' },
  },
  examples: [
    'amend demo                      # the demo world: ROME on one fact, MEMIT on 100, scores, revert',
    'amend demo --n 20 --seed 7      # a smaller MEMIT batch, cases drawn with seed 7',
    'amend demo --case 12 --json     # ROME on benchmark case 12; machine-readable output',
    '',
    'Nothing is written but the layer statistics cache: the edits live in memory and are reverted',
    'at the end (bit-identical weights, checked). hparams come from the presets matching the model',
    '(amend edit --list-presets).',
    'Statistics for the edited layers are computed on the first run and then cached',
    '($AMEND_CACHE/stats, default ~/.cache/amend/stats).',
  ],
};

// ------------------------------------------------------------------ small helpers

/** A greedy continuation, cut at the first line break: the world's facts are one line each. */
function completions(model: CausalLM, prompts: readonly string[], tokens: number): string[] {
  if (prompts.length === 0 || tokens === 0) return prompts.map(() => '');
  const tok = model.tok();
  const ins = prompts.map((p) => tok.encode(p));
  const outs = generate(model, ins, { maxNewTokens: tokens });
  return outs.map((ids, i) => {
    const text = tok.decodeContinuation(ins[i]!, ids, { skipSpecialTokens: true });
    const nl = text.indexOf('\n');
    return nl >= 0 ? text.slice(0, nl) : text;
  });
}

/** P(target | prompt) of whole targets, with the evaluation module's tokenisation rule. */
function probs(model: CausalLM, items: readonly { prompt: string; target: string }[]): number[] {
  return targetLogProbs(model, items).map((s) => Math.exp(s.sum));
}

const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`);

const secs = (s: number) => `${s.toFixed(s < 10 ? 2 : 1)} s`;

/** sha256 over the named tensors' bytes: taken before an edit and after its revert. */
function weightsDigest(model: CausalLM, names: readonly string[]): string {
  const h = crypto.createHash('sha256');
  for (const n of [...names].sort()) {
    const t = model.weights.get(n);
    if (!t) throw new AmendError(`the patch touches "${n}", which the model does not have`);
    h.update(n);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** "preset world" (+ overrides): the presets' sources are long, `amend edit --list-presets` has them. */
function shortOrigin(r: ResolvedHparams, overrides: Record<string, unknown>): string {
  const base = r.preset ? `preset ${r.preset.name}` : 'rule (no preset for this model)';
  const keys = Object.keys(overrides);
  return keys.length ? `${base} + --set ${keys.join(', ')}` : base;
}

/**
 * The --set values one method takes: a key only the other method knows (MEMIT's
 * mom2_update_weight) goes to that one alone; a key neither knows is left in, so resolution
 * gives its usual one-line error.
 */
function overridesFor(method: EditMethod, all: Record<string, unknown>): Record<string, unknown> {
  const other: EditMethod = method === 'rome' ? 'memit' : 'rome';
  return Object.fromEntries(Object.entries(all).filter(([k]) => k in SCHEMAS[method] || !(k in SCHEMAS[other])));
}

// ------------------------------------------------------------------ picking cases

const hasCounterfactFields = (c: EditCase) =>
  typeof c.targetTrue === 'string' && c.targetTrue.trim() !== '' && (c.rephrase?.length ?? 0) > 0 && (c.neighborhood?.length ?? 0) > 0 && !c.edits;

/** The prompts a case's multi-hop questions ask (the world benchmark's forward portability). */
function multiHop(c: EditCase) {
  const g = portabilityGroupsOf(c);
  return g['multi_hop'] ?? c.portability ?? [];
}

/** Case indices in file order, or shuffled by the seed (the world's generator's Fisher–Yates). */
function order(n: number, seed: number | undefined): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  return seed === undefined ? idx : new Rng(seed).shuffle(idx);
}

/**
 * The ROME case: --case, or the first (in file or seeded order) with everything the demo shows
 * (a paraphrase, a neighbour, a multi-hop question) whose true object the model already gives:
 * an edit of a fact the model never knew would show nothing.
 */
function pickRomeCase(model: CausalLM, cases: readonly EditCase[], ordered: readonly number[], wanted: string | undefined): number {
  if (wanted !== undefined) {
    const i = cases.findIndex((c) => String(c.id) === wanted);
    if (i < 0) throw new AmendError(`--case ${wanted}: no benchmark case has that case_id (ids run from ${String(cases[0]?.id)} to ${String(cases[cases.length - 1]?.id)})`);
    if (!hasCounterfactFields(cases[i]!)) throw new AmendError(`--case ${wanted}: the case lacks a true object, a paraphrase or a neighbourhood prompt; pick another`);
    return i;
  }
  const candidates = ordered.filter((i) => hasCounterfactFields(cases[i]!) && multiHop(cases[i]!).length > 0);
  const CHUNK = 16;
  for (let s = 0; s < candidates.length; s += CHUNK) {
    const chunk = candidates.slice(s, s + CHUNK);
    const scores = targetLogProbs(model, chunk.map((i) => ({ prompt: fillTemplate(cases[i]!.prompt, cases[i]!.subject), target: cases[i]!.targetTrue! })));
    const k = scores.findIndex((x) => x.accuracy === 1);
    if (k >= 0) return chunk[k]!;
  }
  if (!cases.some(hasCounterfactFields)) {
    throw new AmendError(`none of the ${cases.length} cases has a true object, a paraphrase and a neighbourhood prompt, which the demo shows; give CounterFact-style cases (world/benchmark.json, a CounterFact file)`);
  }
  throw new AmendError('no benchmark case suits the demo (a known true object, a paraphrase, a neighbour and a multi-hop question); give one with --case ID');
}

// ------------------------------------------------------------------ the world, for multi-hop truths

/**
 * The answer a multi-hop question had before the edit, from world.json beside the benchmark and the
 * question's relation path in the raw record. Undefined when either is missing (other benchmarks).
 */
function multiHopBefore(benchFile: string, c: EditCase, question: string): string | undefined {
  try {
    const worldFile = path.join(path.dirname(benchFile), 'world.json');
    if (!fs.existsSync(worldFile)) return undefined;
    const raw = JSON.parse(fs.readFileSync(benchFile, 'utf8')) as { case_id?: unknown; portability?: { prompt?: string; relation_path?: string[] }[] }[];
    const rec = raw.find((r) => String(r.case_id) === String(c.id));
    const relPath = rec?.portability?.find((p) => p.prompt === question)?.relation_path;
    if (!relPath) return undefined;
    const index = new WorldIndex(JSON.parse(fs.readFileSync(worldFile, 'utf8')) as World);
    const subject = index.byName(c.subject);
    if (!subject) return undefined;
    const end = index.follow(subject.id, relPath).end;
    return end === undefined ? undefined : index.name(end);
  } catch {
    // The multi-hop truth is a nicety of the demo world; any other file simply goes without it.
    return undefined;
  }
}

// ------------------------------------------------------------------ shown facts

interface Shown {
  prompt: string;
  completion: string;
  pTrue?: number;
  pNew?: number;
}

interface Probe {
  role: 'edited' | 'paraphrase' | 'neighbour' | 'multi-hop';
  prompt: string;
  /** The answer after the edit (multi-hop: in the edited world). */
  newAnswer: string;
  /** The answer before (multi-hop: in the original world, when known). */
  trueAnswer?: string;
  /** Whether the answer should move to newAnswer (false for the neighbour). */
  shouldChange: boolean;
}

function look(model: CausalLM, probes: readonly { prompt: string; trueAnswer?: string; newAnswer: string }[], tokens: number): Shown[] {
  const texts = completions(model, probes.map((p) => p.prompt), tokens);
  const items = probes.flatMap((p) => [{ prompt: p.prompt, target: p.newAnswer }, ...(p.trueAnswer ? [{ prompt: p.prompt, target: p.trueAnswer }] : [])]);
  const ps = probs(model, items);
  let k = 0;
  return probes.map((p, i) => {
    const pNew = ps[k++];
    const pTrue = p.trueAnswer ? ps[k++] : undefined;
    return { prompt: p.prompt, completion: texts[i]!, pNew, pTrue };
  });
}

function probesOf(c: EditCase, benchFile: string): Probe[] {
  const out: Probe[] = [
    { role: 'edited', prompt: fillTemplate(c.prompt, c.subject), newAnswer: c.targetNew, trueAnswer: c.targetTrue, shouldChange: true },
    { role: 'paraphrase', prompt: c.rephrase![0]!, newAnswer: c.targetNew, trueAnswer: c.targetTrue, shouldChange: true },
    { role: 'neighbour', prompt: c.neighborhood![0]!, newAnswer: c.targetNew, trueAnswer: c.targetTrue, shouldChange: false },
  ];
  const q = multiHop(c)[0];
  if (q) out.push({ role: 'multi-hop', prompt: q.prompt, newAnswer: q.answer, trueAnswer: multiHopBefore(benchFile, c, q.prompt), shouldChange: true });
  return out;
}

// ------------------------------------------------------------------ metrics

const TABLE: { name: string; protocol: Metric['protocol']; label: string }[] = [
  { name: 'efficacy_score', protocol: 'probability-comparison', label: 'efficacy (P(new) > P(true), edited prompt)' },
  { name: 'paraphrase_score', protocol: 'probability-comparison', label: 'paraphrase (P(new) > P(true), rephrasings)' },
  { name: 'neighborhood_score', protocol: 'probability-comparison', label: 'neighbourhood (P(true) > P(new), other subjects)' },
  { name: 'portability_acc', protocol: 'token-accuracy', label: 'multi-hop (teacher-forced token accuracy)' },
];

function pickRows(summary: readonly SummaryRow[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const t of TABLE) out[t.name] = summary.find((s) => s.name === t.name && s.protocol === t.protocol)?.mean;
  return out;
}

/**
 * Scores with the evaluation module, in chunks so a long batch gets a progress bar, summarised as
 * `amend eval` summarises a run (one definition of mean, sample std and interval for both).
 */
function scoreAll(model: CausalLM, cases: readonly EditCase[], regime: Regime, bar: Progress | null): SummaryRow[] {
  const records: CaseRecord[] = [];
  const CHUNK = 10;
  for (let s = 0; s < cases.length; s += CHUNK) {
    // Locality agreement needs the unedited model's outputs; the table leaves it out, so no baseline.
    for (const r of scoreCases(model, cases.slice(s, s + CHUNK))) records.push({ index: records.length, regime, metrics: r.metrics });
    bar?.update(Math.min(cases.length, s + CHUNK));
  }
  bar?.done();
  return summarizeRecords(records);
}

// ------------------------------------------------------------------ the command

interface EditOutcome {
  patch: EditPatch;
  timings: Record<string, number>;
  digest: string;
}

async function doEdit(model: CausalLM, method: EditMethod, resolved: ResolvedHparams, reqs: readonly EditCase[], tty: boolean): Promise<EditOutcome> {
  const bars = new EditBars(tty, method === 'memit' ? { phase: 'z', total: reqs.length } : { phase: 'rome', total: reqs.length * resolved.hparams.layers.length });
  const { patch, report } = await editWithReport(model, reqs.map((c) => ({ prompt: c.prompt, subject: c.subject, targetNew: c.targetNew, targetTrue: c.targetTrue, id: c.id })), {
    method, resolved,
    // A benchmark batch may hold a target the model happens to give already; MEMIT still writes it.
    allowUnchanged: method === 'memit',
    onProgress: bars.onProgress,
  });
  bars.done();
  const digest = weightsDigest(model, patch.deltas.map((d) => d.name));
  editSession(model).apply(patch);
  return { patch, timings: report.timings, digest };
}

function revertChecked(model: CausalLM, e: EditOutcome): boolean {
  editSession(model).revert(e.patch);
  return weightsDigest(model, e.patch.deltas.map((d) => d.name)) === e.digest;
}

/** The command line, checked before the model loads. */
function parseArgs(args: Parsed) {
  const v = args.values;
  const json = v.json === true;
  const tty = !json && process.stderr.isTTY === true;
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}" (see amend demo --help)`);
  const n = intOption(v.n, 'n', 100, 0);
  const showK = intOption(v.show, 'show', 3, 0);
  const tokens = intOption(v.tokens, 'tokens', 6, 1);
  const seed = seedOption(v.seed);
  const wantedCase = str(v.case);
  if (wantedCase !== undefined && wantedCase.trim() === '') throw new AmendError('--case is empty: give a benchmark case_id');
  if (wantedCase !== undefined && seed !== undefined) throw new AmendError('give either --case (a chosen ROME case) or --seed (random cases), not both');
  const overrides = parseSets(listOption(args, 'set'));
  return { json, tty, n, showK, tokens, seed, wantedCase, overrides, modelId: str(v.model) ?? 'world', data: str(v.data) };
}

type DemoArgs = ReturnType<typeof parseArgs>;

/** The model and its benchmark (--data, else benchmark.json beside the model). */
async function loadInputs(o: DemoArgs) {
  if (o.data === '') throw new AmendError('--data is empty: give a benchmark file');
  // Fail on a missing benchmark before spending time on the weights.
  requireExisting('data', o.data, 'a benchmark in CounterFact format (default: benchmark.json beside the model)');
  const m = await loadModel(o.modelId, o.json);
  const file = o.data ?? (m.dir ? path.join(m.dir, 'benchmark.json') : '');
  if (!file || !fs.existsSync(file)) {
    throw new AmendError(`no benchmark for ${o.modelId}: ${m.dir ? `${path.join(m.dir, 'benchmark.json')} does not exist` : 'the model has no folder'}; give one with --data FILE (CounterFact format)`);
  }
  const loaded = loadCases(file);
  return { model: m, cases: loaded.cases, benchFile: file, format: loaded.format };
}

/** Both methods' hparams, the ROME case, and the MEMIT batch (the next suitable cases in the same order). */
function planEdits(model: CausalLM, cases: readonly EditCase[], o: DemoArgs) {
  const rome = resolveHparams('rome', model, { overrides: overridesFor('rome', o.overrides), overridesSource: '--set' });
  const memit = o.n > 0 ? resolveHparams('memit', model, { overrides: overridesFor('memit', o.overrides), overridesSource: '--set' }) : null;
  const ordered = order(cases.length, o.seed);
  const romeIdx = pickRomeCase(model, cases, ordered, o.wantedCase);
  const batchIdx = ordered.filter((i) => i !== romeIdx && hasCounterfactFields(cases[i]!)).slice(0, o.n);
  if (batchIdx.length < o.n) throw new AmendError(`--n ${o.n}: the benchmark has only ${batchIdx.length} other case(s) with a true object, paraphrases and neighbours`);
  const batch = batchIdx.map((i) => cases[i]!);
  return { rome, memit, romeCase: cases[romeIdx]!, batch, shownBatch: batch.slice(0, o.showK) };
}

type Inputs = Awaited<ReturnType<typeof loadInputs>>;
type Plan = ReturnType<typeof planEdits>;

/** What every step reads: the model, the clock of the phases, and the console (silent with --json). */
interface Demo {
  model: CausalLM;
  clock: Timings;
  say: (line?: string) => void;
  tokens: number;
  tty: boolean;
}

const factProbe = (c: EditCase) => ({ prompt: fillTemplate(c.prompt, c.subject), trueAnswer: c.targetTrue, newAnswer: c.targetNew });

const editTimes = (timings: Record<string, number>) => Object.entries(timings).map(([k, s]) => `${k} ${s.toFixed(2)}`).join(', ');

/** 1. What the model believes about the ROME case and the MEMIT cases shown. */
function showBeliefs(d: Demo, facts: readonly EditCase[]): Shown[] {
  const beforeFacts = d.clock.time('before', () => look(d.model, facts.map(factProbe), d.tokens));
  d.say('\n1. Facts before editing (greedy completion; probability of the true and of the new object)');
  facts.forEach((c, i) => {
    const s = beforeFacts[i]!;
    d.say(`   ${s.prompt} ${JSON.stringify(s.completion)}   P(${c.targetTrue!.trim()}) ${fmtP(s.pTrue)}  P(${c.targetNew.trim()}) ${fmtP(s.pNew)}`);
  });
  return beforeFacts;
}

/** 2. One ROME edit: its probes before and after, its scores, and the revert. */
async function romeStep(d: Demo, hp: ResolvedHparams, c: EditCase, benchFile: string) {
  const probes = probesOf(c, benchFile);
  const before = d.clock.time('before', () => look(d.model, probes, d.tokens));
  d.say(`\n2. ROME: "${fillTemplate(c.prompt, c.subject)}" ${c.targetTrue!.trim()} → ${c.targetNew.trim()} (case ${String(c.id)})`);
  const edit = await d.clock.timeAsync('rome', () => doEdit(d.model, 'rome', hp, [c], d.tty));
  const after = d.clock.time('after', () => look(d.model, probes, d.tokens));
  const scores = d.clock.time('score', () => scoreAll(d.model, [c], 'single', null));
  const reverted = d.clock.time('revert', () => revertChecked(d.model, edit));
  for (const [i, p] of probes.entries()) {
    const b = before[i]!, a = after[i]!;
    const want = p.role === 'multi-hop'
      ? `answer ${p.trueAnswer ? `${p.trueAnswer.trim()} → ` : ''}${p.newAnswer.trim()}`
      : p.shouldChange ? `should become ${p.newAnswer.trim()}` : `should stay ${p.trueAnswer!.trim()}`;
    const pr = (s: Shown) => `P(${p.newAnswer.trim()}) ${fmtP(s.pNew)}${p.trueAnswer ? `  P(${p.trueAnswer.trim()}) ${fmtP(s.pTrue)}` : ''}`;
    d.say(`   ${p.role.padEnd(10)} ${p.prompt}   (${want})`);
    d.say(`     before ${JSON.stringify(b.completion).padEnd(28)} ${pr(b)}`);
    d.say(`     after  ${JSON.stringify(a.completion).padEnd(28)} ${pr(a)}`);
  }
  d.say(`   edit ${secs(d.clock.seconds['rome']!)} (${editTimes(edit.timings)}); reverted${reverted ? '' : ' — WEIGHTS DIFFER'}`);
  return { probes, before, after, edit, scores, row: pickRows(scores), reverted };
}

/** 3. A MEMIT batch: the cases shown before (from step 1) and after, the batch's scores, and the revert. */
async function memitStep(d: Demo, hp: ResolvedHparams, plan: Plan, before: Shown[]) {
  const { batch, shownBatch } = plan;
  const n = batch.length;
  d.say(`\n3. MEMIT: ${n} edits in one batch (${n === 1 ? 'case' : 'cases'} ${batch.slice(0, 5).map((c) => String(c.id)).join(', ')}${n > 5 ? ', ...' : ''})`);
  const edit = await d.clock.timeAsync('memit', () => doEdit(d.model, 'memit', hp, batch, d.tty));
  const after = d.clock.time('after', () => look(d.model, shownBatch.map(factProbe), d.tokens));
  shownBatch.forEach((c, i) => {
    const b = before[i]!, a = after[i]!;
    d.say(`   ${b.prompt} ${c.targetTrue!.trim()} → ${c.targetNew.trim()}`);
    d.say(`     before ${JSON.stringify(b.completion).padEnd(28)} P(${c.targetNew.trim()}) ${fmtP(b.pNew)}  P(${c.targetTrue!.trim()}) ${fmtP(b.pTrue)}`);
    d.say(`     after  ${JSON.stringify(a.completion).padEnd(28)} P(${c.targetNew.trim()}) ${fmtP(a.pNew)}  P(${c.targetTrue!.trim()}) ${fmtP(a.pTrue)}`);
  });
  d.say(`   edit ${secs(d.clock.seconds['memit']!)} (${editTimes(edit.timings)})`);
  const scores = d.clock.time('score', () => scoreAll(d.model, batch, `batch-${batch.length}`, new Progress('scoring', batch.length, d.tty)));
  const reverted = d.clock.time('revert', () => revertChecked(d.model, edit));
  return { n, before, after, edit, scores, row: pickRows(scores), reverted };
}

type RomeRun = Awaited<ReturnType<typeof romeStep>>;
type MemitRun = Awaited<ReturnType<typeof memitStep>>;

/** 4. The table of scores, a column per method. */
function showScores(d: Demo, rome: RomeRun, memit: MemitRun | null): void {
  const memitRow = memit?.row ?? {};
  d.say(`\n${memit ? 4 : 3}. Scores (CounterFact probability comparison per prompt, mean per-token log-probability; src/eval)`);
  d.say(`   ${''.padEnd(50)} ${'ROME, 1 edit'.padStart(14)}${memit ? ` ${`MEMIT, ${memit.n} edits`.padStart(18)}` : ''}`);
  for (const t of TABLE) {
    if (rome.row[t.name] === undefined && memitRow[t.name] === undefined) continue;
    d.say(`   ${t.label.padEnd(50)} ${pct(rome.row[t.name]).padStart(14)}${memit ? ` ${pct(memitRow[t.name]).padStart(18)}` : ''}`);
  }
}

/** 5. Whether both reverts restored the weights, and the time of each phase (returned, for --json). */
function showRevertAndTime(d: Demo, allOk: boolean, withMemit: boolean, started: number): Record<string, number> {
  const total = (performance.now() - started) / 1000;
  const phaseOrder = ['load', 'before', 'rome', 'memit', 'after', 'score', 'revert'];
  const rounded = d.clock.toJSON();
  const phases = Object.fromEntries(phaseOrder.filter((p) => rounded[p] !== undefined).map((p) => [p, rounded[p]!]));
  d.say(`\n${withMemit ? 5 : 4}. Reverted: ${allOk ? 'the edited tensors are bit-identical to the original (sha256)' : 'WEIGHTS DIFFER FROM THE ORIGINAL'}; nothing was written to disk but the layer statistics cache`);
  d.say(`   time: ${Object.entries(phases).map(([k, s]) => `${k} ${secs(s)}`).join(' · ')} · total ${secs(total)}`);
  return { ...phases, total: Math.round(total * 1000) / 1000 };
}

/** The --json document: all that the console shows, with the metrics in full. */
function demoJson(inputs: Inputs, plan: Plan, beforeFacts: readonly Shown[], romeRun: RomeRun, memitRun: MemitRun | null, seconds: Record<string, number>) {
  const { model, cases, benchFile, format } = inputs;
  const { rome, memit, romeCase, batch, shownBatch } = plan;
  const showCase = (c: EditCase) => ({ id: c.id ?? null, prompt: fillTemplate(c.prompt, c.subject), subject: c.subject, targetTrue: c.targetTrue, targetNew: c.targetNew });
  return {
    model: { dir: model.dir, modelType: model.config.modelType, layers: model.config.layers, hidden: model.config.hidden },
    data: { file: benchFile, format, cases: cases.length },
    before: [romeCase, ...shownBatch].map((c, i) => ({ ...showCase(c), ...beforeFacts[i] })),
    rome: {
      case: showCase(romeCase),
      hparams: { origin: rome.origin, layers: rome.hparams.layers },
      probes: romeRun.probes.map((p, i) => ({ ...p, before: romeRun.before[i], after: romeRun.after[i] })),
      timings: romeRun.edit.timings,
      metrics: romeRun.scores,
      reverted: romeRun.reverted,
    },
    memit: memit && memitRun ? {
      n: memitRun.n,
      cases: batch.map((c) => c.id ?? null),
      hparams: { origin: memit.origin, layers: memit.hparams.layers },
      shown: shownBatch.map((c, i) => ({ ...showCase(c), before: memitRun.before[i], after: memitRun.after[i] })),
      timings: memitRun.edit.timings,
      metrics: memitRun.scores,
      reverted: memitRun.reverted,
    } : null,
    table: TABLE.map((t) => ({ name: t.name, protocol: t.protocol, rome: romeRun.row[t.name] ?? null, memit: memitRun ? memitRun.row[t.name] ?? null : null })),
    reverted: romeRun.reverted && (memitRun?.reverted ?? true),
    seconds,
  };
}

export async function run(args: Parsed): Promise<void> {
  const o = parseArgs(args);
  const clock = new Timings();
  const started = performance.now();

  // ---- 0. model and benchmark
  const inputs = await clock.timeAsync('load', () => loadInputs(o));
  const { model, cases, benchFile, format } = inputs;
  const plan = planEdits(model, cases, o);
  const { rome, memit, romeCase, shownBatch } = plan;
  const d: Demo = { model, clock, say: (line = '') => { if (!o.json) console.log(line); }, tokens: o.tokens, tty: o.tty };
  d.say(`Amend demo: ${model.config.modelType} model ${model.dir ?? o.modelId} (${model.config.layers} layers, hidden ${model.config.hidden}); ${cases.length} benchmark cases in ${benchFile} (${format})`);
  d.say(`hparams: ROME ${shortOrigin(rome, overridesFor('rome', o.overrides))}, layers ${JSON.stringify(rome.hparams.layers)}${memit ? `; MEMIT ${shortOrigin(memit, overridesFor('memit', o.overrides))}, layers ${JSON.stringify(memit.hparams.layers)}` : ''}`);

  const beforeFacts = showBeliefs(d, [romeCase, ...shownBatch]);
  const romeRun = await romeStep(d, rome, romeCase, benchFile);
  const memitRun = memit ? await memitStep(d, memit, plan, beforeFacts.slice(1)) : null;
  showScores(d, romeRun, memitRun);
  const allOk = romeRun.reverted && (memitRun?.reverted ?? true);
  const seconds = showRevertAndTime(d, allOk, memit !== null, started);

  // before the JSON: with --json a failure is its own JSON document, and stdout holds one
  if (!allOk) throw new AmendError('revert did not restore the original weights bit for bit (please report)');
  if (o.json) console.log(JSON.stringify(demoJson(inputs, plan, beforeFacts, romeRun, memitRun, seconds)));
}
