// amend eval: edit the cases of a benchmark file with ROME or MEMIT and score them (single edits,
// batches, or sequential editing under either protocol), with a report folder that can be resumed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError, refuseDevice } from '../../errors.js';
import { loadCases, type LoadedCases } from '../../data/index.js';
import { parseSets, resolveHparams, type ResolvedHparams } from '../../editors/index.js';
import type { ProgressEvent } from '../../editors/common/run.js';
import { counterfactExclusion, qaPromptText, type QaOptions } from '../../eval/metrics-case.js';
import { loadConsistencyResources, type ConsistencyResources } from '../../eval/metrics-text.js';
import { readHeldOutText } from '../../eval/metrics-ppl.js';
import { BUILTIN_WORLD, type CausalLM } from '../../models/model.js';
import { modeLabel, parseMode, runEval, type EvalOptions, type EvalResult } from '../../eval/runner.js';
import { formatValue } from '../../eval/summary.js';
import { stepOf, type EvalMode, type EvalProgress, type EvalSummary, type SequentialProtocol } from '../../eval/run-types.js';
import { intOption, listOption, requireExisting, strOption as str, type CommandSpec, type Parsed } from '../args.js';
import { methodOf } from './edit.js';
import { loadModel, nothingLoaded, warnSkippedRecords } from '../load.js';
import { Progress } from '../progress.js';
import { exitCodeFor, stopOnSignal, type StopSignal } from '../interrupt.js';

export const spec: CommandSpec = {
  name: 'eval',
  summary: 'evaluate ROME or MEMIT on a benchmark: single, batch or sequential edits, with a report',
  usage: 'amend eval --model M --method rome|memit --data FILE [--split NAME] [--n N] [--mode single|batch:K|sequential:T[/K]] [--protocol immediate|final] [--out DIR] [--resume]',
  options: {
    model: { type: 'string', short: 'm', help: 'M  model directory or Hugging Face id (local cache); "world" for the demo model' },
    method: { type: 'string', help: 'rome|memit  the editing method (default rome)' },
    data: { type: 'string', help: 'FILE  benchmark file (CounterFact, zsRE, KnowEdit, MQuAKE, WISE, ...; detected from the content), or "world" for the demo world\'s (default: that of --model world, or the benchmark.json of a world build folder)' },
    split: { type: 'string', help: 'NAME  MQuAKE-Remastered: evaluate the cases its run of split NAME edits (a key of the records\' "split", e.g. 100 or 1000); --n then counts those' },
    n: { type: 'string', help: 'N  evaluate the first N cases (default: all; sequential:T takes the first T)', elsewhere: ['limit'] },
    mode: { type: 'string', help: 'single | batch:K[,K2...] | sequential:T | sequential:T/K (T edits stacked, K per edit call; default single)' },
    protocol: { type: 'string', help: 'immediate|final  sequential only: score each edit right after it (default) or apply all T, then score all' },
    out: { type: 'string', short: 'o', help: 'DIR  report folder: cases.jsonl, summary.json, summary.md, plots (SVG and PNG)' },
    resume: { type: 'boolean', help: 'continue the interrupted run in --out from its last checkpoint (same arguments)' },
    force: { type: 'boolean', help: 'start over in --out: an interrupted run there is dropped; a report there stays until the new run finishes and replaces it' },
    'checkpoint-every': { type: 'string', help: 'N  write a checkpoint every N edit calls: cases, batches or sequential steps (default 10)' },
    heldout: { type: 'string', help: 'FILE  held-out text for perplexity drift in sequential runs (default: corpus-heldout.txt of the model folder, e.g. --model world)' },
    'heldout-lines': { type: 'boolean', help: 'score --heldout as one document per line (always so for the model folder\'s own corpus-heldout.txt)' },
    'heldout-tokens': { type: 'string', help: 'N  tokens of the held-out text scored at each checkpoint (default 2048)' },
    qa: { type: 'boolean', help: 'also score by greedy generation (exact match / token F1)' },
    'qa-cut': { type: 'string', help: 'length|line  the answer --qa scores: the continuation cut at each alias\'s token count (length, default) or its whole first line (line, as MQuAKE compares answers); implies --qa' },
    'qa-template': { type: 'string', help: 'FILE  text around every --qa question, "{}" where it goes (without "{}" the text goes before it; e.g. few-shot examples ending in "Q: {}\\nA:"; the file\'s final newline is dropped); implies --qa' },
    fluency: { type: 'boolean', help: 'also sample texts (top-k 5, 100 tokens, ROME\'s generate_fast) and score their n-gram entropy' },
    consistency: { type: 'string', help: 'DIR  ROME\'s data folder with idf.npy, tfidf_vocab.json and attribute_snippets.json: also the reference score (TF-IDF similarity of the samples to texts about the new object); implies --fluency' },
    preset: { type: 'string', help: 'NAME  hparams preset (default: the one matching the model; see amend edit --list-presets)' },
    hparams: { type: 'string', multiple: true, help: 'FILE  hparams file (YAML/JSON, EasyEdit\'s as they are); may be repeated' },
    set: { type: 'string', multiple: true, help: 'key=value  override one hparam; may be repeated' },
    'stop-after': { type: 'string', help: 'N  stop after N units as if interrupted (to try --resume)' },
  },
  examples: [
    'amend eval --model world --method rome --data world --n 100 --out eval-rome',
    'amend eval --model world --method memit --data world --n 500 --mode batch:500 --out eval-memit',
    'amend eval --model world --method memit --data world --n 256 --mode batch:1,16,64,256 --out eval-sweep',
    'amend eval --model world --method rome --data world --mode sequential:200 --protocol final --out eval-seq',
    'amend eval --model world --method rome --data world --mode sequential:200 --protocol final --out eval-seq --resume',
    'amend eval --model world --method memit --data world --mode sequential:500/50 --protocol final --out eval-memit-seq',
    'amend eval --model gpt2-xl --method rome --data counterfact.json --n 1000 --set v_num_grad_steps=20 --json',
    'amend eval --model gpt2-xl --method memit --data MQuAKE-Remastered-CF3k.jsonl --split 100 --mode batch:100 --qa',
    'amend eval --model gpt2-xl --method rome --data counterfact.json --n 100 --consistency rome/data --out eval-cf',
    '',
    'Reports: cases.jsonl (a line per case), summary.md / summary.json (means with 95 % confidence',
    'intervals per regime, protocol and metric; headline scores per relation, and per split label',
    'with --split when the run\'s cases carry several), plots against the number of edits',
    '(sequential) or the batch size (batch). Every run with --out checkpoints every',
    '--checkpoint-every edit calls (cases, batches or sequential steps); after a crash the same',
    'command with --resume continues from the last checkpoint. Ctrl-C (or SIGTERM) stops the run',
    'once the current edit call is scored, with a checkpoint, and prints the command that resumes',
    'it (exit status 130, 143 for SIGTERM); a second Ctrl-C ends it at once. A report already in',
    '--out (--force) stays until the new run finishes.',
  ],
};

/** --qa, --qa-cut and --qa-template as runEval's qa (plain true without the other two, so a run's recorded settings stay as before). */
function qaOptionsOf(qa: boolean, cut: 'length' | 'line' | undefined, template: string | undefined): boolean | QaOptions {
  if (cut === undefined && template === undefined) return qa;
  return { ...(cut !== undefined ? { cut } : {}), ...(template !== undefined ? { template } : {}) };
}

/** The --qa-template file, checked before the model loads. */
function readQaTemplate(file: string): string {
  refuseDevice(file, 'a text file');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new AmendError(`--qa-template ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (text.trim() === '') throw new AmendError(`--qa-template ${file}: the file is empty; give the text to put around each question, "{}" where it goes`);
  // An editor ends the file with a newline; the answer follows "A:" on the same line.
  text = text.replace(/\r?\n$/, '');
  try {
    qaPromptText('', text);
  } catch (err) {
    throw new AmendError(`--qa-template ${file}: ${(err as Error).message.replace(/^qa: /, '')}`);
  }
  return text;
}

function protocolOf(v: unknown, mode: EvalMode): SequentialProtocol | undefined {
  if (v === undefined) return undefined;
  if (v !== 'immediate' && v !== 'final') throw new AmendError(`--protocol must be immediate or final, got "${String(v)}"`);
  if (!(typeof mode === 'object' && 'sequential' in mode)) throw new AmendError('--protocol applies to sequential runs only (--mode sequential:T)');
  return v;
}

const STAGES: Record<EvalProgress['stage'], string> = {
  baseline: 'unedited baselines', edit: 'editing', score: 'scoring', perplexity: 'perplexity', checkpoint: 'checkpoint', report: 'writing report',
};

/** --data, or the benchmark the model brings along. */
function dataOf(v: Parsed['values']): string {
  // The demo world model has its own benchmark, so `--model world` needs no --data.
  // So does a world build or export folder (world.json and benchmark.json beside the weights).
  const model0 = str(v.model);
  const ownBenchmark = model0 && model0 !== BUILTIN_WORLD && fs.existsSync(path.join(model0, 'world.json')) ? path.join(model0, 'benchmark.json') : undefined;
  const data = str(v.data) ?? (model0 === BUILTIN_WORLD ? BUILTIN_WORLD : ownBenchmark && fs.existsSync(ownBenchmark) ? ownBenchmark : undefined);
  if (!data) throw new AmendError('--data is required: a benchmark file, or "world" for the demo world\'s (see amend eval --help)');
  return data;
}

/** --out, and the options that need it. */
function reportFolderOf(v: Parsed['values'], stopAfter: number | undefined): string | undefined {
  const out = str(v.out);
  if (out === '') throw new AmendError('--out is empty: give the report folder');
  if (v.resume && !out) throw new AmendError('--resume needs --out DIR, the folder of the interrupted run');
  if (stopAfter !== undefined && !out) throw new AmendError('--stop-after needs --out DIR: the stopped run is continued from the checkpoint written there');
  if (out && fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new AmendError(`--out ${out} is a file, not a folder`);
  if (out && !fs.existsSync(path.dirname(path.resolve(out)))) throw new AmendError(`cannot write ${out}: folder ${path.dirname(path.resolve(out))} does not exist`);
  return out;
}

type EvalArgs = ReturnType<typeof parseArgs>;

/** The command line, checked before any file is read (readInputs reads the files it names). */
function parseArgs(args: Parsed) {
  const v = args.values;
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}" (see amend eval --help)`);
  const method = methodOf(v.method);
  const mode = parseMode(str(v.mode) ?? 'single');
  const sequential = typeof mode === 'object' && 'sequential' in mode;
  const protocol = protocolOf(v.protocol, mode);
  const data = dataOf(v);
  let n = v.n === undefined ? undefined : intOption(v.n, 'n', 0, 1);
  // A sequential run edits and scores its first T cases: more would be read and then dropped unseen.
  if (n !== undefined && sequential && n > mode.sequential) throw new AmendError(`--n ${n} with --mode sequential:${mode.sequential} would evaluate only the first ${mode.sequential} cases; give --n ${mode.sequential}, or --mode sequential:${n} to edit all ${n}`);
  if (n === undefined && sequential) n = mode.sequential;
  const every = intOption(v['checkpoint-every'], 'checkpoint-every', 10, 1);
  // Left unset when not given: the library's default applies, and a run with no held-out text takes no count.
  const heldoutTokens = v['heldout-tokens'] === undefined ? undefined : intOption(v['heldout-tokens'], 'heldout-tokens', 2048, 2);
  const stopAfter = v['stop-after'] === undefined ? undefined : intOption(v['stop-after'], 'stop-after', 0, 1);
  const out = reportFolderOf(v, stopAfter);
  const overrides = parseSets(listOption(args, 'set'));
  const qaCutText = str(v['qa-cut']);
  if (qaCutText !== undefined && qaCutText !== 'length' && qaCutText !== 'line') throw new AmendError(`--qa-cut must be "length" or "line", not "${qaCutText}"`);
  const qaCut = qaCutText as 'length' | 'line' | undefined;
  return {
    json: v.json === true, model: v.model, method, preset: str(v.preset), hparamsFiles: listOption(args, 'hparams'), mode, sequential, protocol, data, n, every, heldoutTokens, heldoutLines: v['heldout-lines'] === true,
    stopAfter, out, resume: v.resume === true, force: v.force === true, overrides, split: str(v.split), qa: v.qa === true || qaCut !== undefined, qaCut, fluency: v.fluency === true,
  };
}

/** --consistency: ROME's TF-IDF statistics and attribute snippets. */
function readConsistency(dir: string | undefined): ConsistencyResources | undefined {
  const romeData = "ROME's data folder with idf.npy, tfidf_vocab.json and attribute_snippets.json";
  requireExisting('consistency', dir, romeData, [], true);
  if (dir !== undefined && !fs.statSync(dir).isDirectory()) throw new AmendError(`--consistency ${dir} is a file; give ${romeData}`);
  return dir !== undefined ? loadConsistencyResources(dir) : undefined;
}

/** What the options name, read (and refused) before the model loads, which can take minutes. */
function readInputs(v: Parsed['values'], o: EvalArgs) {
  requireExisting('data', o.data, 'a benchmark file (or "world" for the demo world\'s)', ['world']);
  requireExisting('heldout', str(v.heldout), 'a text file of held-out text');
  const loaded = loadCases(o.data, { limit: o.n, ...(o.split !== undefined ? { split: o.split } : {}) });
  if (loaded.cases.length === 0) throw nothingLoaded(o.data, 'cases to evaluate', loaded);
  warnSkippedRecords(o.data, loaded);
  const heldoutFile = str(v.heldout);
  const heldoutGiven = heldoutFile !== undefined ? 'heldout' : o.heldoutLines ? 'heldout-lines' : v['heldout-tokens'] !== undefined ? 'heldout-tokens' : undefined;
  if (heldoutGiven !== undefined && !o.sequential) {
    throw new AmendError(`--${heldoutGiven}: perplexity drift is measured in sequential runs only (--mode sequential:T)`);
  }
  const heldoutText = heldoutFile !== undefined ? readHeldOutText(heldoutFile) : undefined;
  requireExisting('qa-template', str(v['qa-template']), 'a text file with "{}" where each question goes');
  const qaTemplate = v['qa-template'] === undefined ? undefined : readQaTemplate(str(v['qa-template'])!);
  const consistencyDir = str(v.consistency);
  return { loaded, heldoutFile, heldoutText, qaTemplate, consistencyDir, consistency: readConsistency(consistencyDir) };
}

/** The held-out text for perplexity drift: --heldout, else (sequential runs) the model folder's own. */
function heldoutOf(model: CausalLM, o: EvalArgs, inputs: ReturnType<typeof readInputs>): EvalOptions['heldout'] {
  const { heldoutFile, heldoutText } = inputs;
  // A model folder's own corpus-heldout.txt is one document per line, named or not.
  const ownHeldout = (f: string) => model.dir !== null && path.resolve(f) === path.resolve(model.dir, 'corpus-heldout.txt');
  let heldout = heldoutText !== undefined ? { text: heldoutText, file: path.resolve(heldoutFile!), lines: o.heldoutLines || ownHeldout(heldoutFile!) } : undefined;
  if (!heldout && o.sequential && model.dir && fs.existsSync(path.join(model.dir, 'corpus-heldout.txt'))) {
    const file = path.join(model.dir, 'corpus-heldout.txt');
    // The demo world's corpus is one document per line (see src/eval/heldout.ts).
    heldout = { text: readHeldOutText(file), file, lines: true };
  }
  const given = o.heldoutLines ? 'heldout-lines' : o.heldoutTokens !== undefined ? 'heldout-tokens' : undefined;
  if (!heldout && given) throw new AmendError(`--${given}: there is no held-out text to score (${model.dir ? `${model.dir} has no corpus-heldout.txt` : 'the model has no folder'}); give it with --heldout FILE`);
  return heldout;
}

/** Warnings about the cases, then what is about to run. */
function announce(o: EvalArgs, loaded: LoadedCases, model: CausalLM, resolved: ResolvedHparams): void {
  const { data, n, mode, sequential } = o;
  if (n !== undefined && loaded.cases.length < n && !sequential) process.emitWarning(`${data} has ${loaded.cases.length} case(s) to evaluate, fewer than --n ${n}: all of them are evaluated`);
  const evaluated = typeof mode === 'object' && 'sequential' in mode ? mode.sequential : loaded.cases.length;
  // zsRE-style files sometimes give the answer the model should learn as the one it knows.
  const sameTargets = loaded.cases.slice(0, evaluated).filter((c) => counterfactExclusion(c) === 'same-targets').length;
  if (sameTargets > 0) process.emitWarning(`${data}: ${sameTargets} of ${evaluated} case(s) give the new target as the true one, so P(new) > P(true) cannot hold: they are left out of efficacy, paraphrase and neighbourhood (kept in the token-accuracy metrics)`);
  const splitNote = loaded.split ? `, split ${loaded.split.name}: ${loaded.split.edited} edited case(s)${evaluated < loaded.split.edited ? `, the first ${evaluated}` : ''}` : '';
  // Said before the run, which can take hours, so that a terminal shows what is running.
  if (!o.json) console.log(`${o.method.toUpperCase()} on ${model.dir ?? 'model'}: ${evaluated} case(s) of ${data} (${loaded.format}${splitNote}), mode ${modeLabel(mode)}${sequential ? `, protocol ${o.protocol ?? 'immediate'}` : ''}; hparams: ${resolved.origin}`);
}

/**
 * One bar for the whole run: its stages (edit, score, ...) alternate case by case, far faster
 * than a bar of their own would appear. The statistics, computed once, get theirs.
 */
class EvalBars {
  private bar: Progress | null = null;
  private statsBar: Progress | null = null;
  private scoreBar: Progress | null = null;
  private announced = false;
  private readonly tty: boolean;
  private readonly unit: string;

  constructor(private readonly o: EvalArgs) {
    this.tty = !o.json && process.stderr.isTTY === true;
    const { mode, sequential } = o;
    this.unit = unitNoun({ mode, sequential });
  }

  readonly onProgress = (p: EvalProgress): void => {
    this.bar ??= new Progress('eval', p.total, this.tty);
    if (!this.announced && p.stage === 'edit') {
      this.announced = true;
      this.bar.mark(p.done); // the baselines and statistics before say nothing of the pace of the units
      const { out, resume, every } = this.o;
      if (this.tty && out) console.error(resume && p.done > 0
        ? `resuming ${out}: ${p.done} of ${p.total} ${this.unit} done`
        : `checkpoints in ${out} every ${every} ${this.unit}: if the run stops, the same command with --resume continues it`);
    }
    if (p.stage === 'checkpoint') return;
    // Protocol final scores every case after the last edit: a bar of its own, counting cases.
    if (p.cases) this.scoreBar = this.interlude(this.scoreBar, 'scoring', p.cases.done, p.cases.total);
    else if (!this.statsBar) this.bar.update(p.done, STAGES[p.stage]);
  };

  readonly onEditProgress = (e: ProgressEvent): void => {
    if (e.phase === 'stats') this.statsBar = this.interlude(this.statsBar, 'key statistics', e.done, e.total);
  };

  /** A phase with a bar of its own between the main bar's lines; null once it is over. */
  private interlude(bar: Progress | null, label: string, done: number, total: number): Progress | null {
    if (!bar) {
      this.bar?.done();
      bar = new Progress(label, total, this.tty);
    }
    bar.update(done);
    if (done < total) return bar;
    bar.done();
    return null;
  }

  done(): void {
    this.bar?.done();
  }
}

/** A run in which the editor refused every case measured nothing: an error, not a report. */
function refuseUnmeasured(s: EvalSummary, result: EvalResult, out: string | undefined): void {
  if (s.cases > 0 && s.failed === s.cases) {
    const first = result.records.find((r) => r.error)?.error ?? 'no reason recorded';
    throw new AmendError(`the editor refused all ${s.cases} case(s), so nothing was measured (first: ${first})${out ? `; the refusals are in ${path.join(out, 'cases.jsonl')}` : ''}`);
  }
}

function warnMissingReferenceScores(result: EvalResult, format: string, consistencyDir: string | undefined): void {
  // A reference score needs the case's relation and new-object id (CounterFact) and snippets about that object.
  const scored = result.records.filter((r) => r.metrics.some((m) => m.name === 'reference_score')).length;
  const of = result.records.filter((r) => !r.error).length;
  if (scored < of) process.emitWarning(`--consistency: ${of - scored} of ${of} scored case(s) have no reference_score (no relation and new-object id in ${format} records, or no snippets about that object in ${consistencyDir})`);
}

/** Prompts longer than the model's positions are scored on their last tokens: how many, once. */
function warnTruncatedPrompts(result: EvalResult, maxPositions: number): void {
  const items = result.records.flatMap((r) => r.items ?? []);
  const cut = items.filter((i) => i.truncated).length;
  if (cut > 0) process.emitWarning(`${cut} of ${items.length} scored prompt(s) with their targets were longer than the model's ${maxPositions} positions and were scored on the prompt's last tokens ("truncated": true in cases.jsonl)`);
}

/** The console summary: refusals, notes, the headline rows per regime, and where the rest is. */
function printSummary(s: EvalSummary, result: EvalResult, o: EvalArgs, resolved: ResolvedHparams): void {
  const { out } = o;
  if (s.failed) console.log(`${s.failed} case(s) refused by the editor (${out ? 'see "error" in cases.jsonl' : 'give --out DIR for their reasons, in cases.jsonl'})`);
  const hint = o.method === 'memit' && resolved.hparams.shared_key_targets !== 'joint' ? '; --set shared_key_targets=joint gives edits with the same key one z' : '';
  for (const x of s.sharedSubjects ?? []) {
    console.log(`note: in batches of ${x.batchSize}, ${x.shared} of ${x.edits} edits share their subject with another edit of the same batch (MEMIT's own batch evaluation uses MultiCounterFact, which has none${hint})`);
  }
  let last = '';
  // Sub-key rows (portability.Reasoning_acc, ...) are in summary.md / --json; the console keeps the headline ones.
  const shownRows = s.rows.filter((r) => !r.name.replace(/^qa\./, '').includes('.'));
  const width = Math.max(44, ...shownRows.map((r) => r.protocol.length + 1 + r.name.length));
  for (const r of shownRows) {
    if (r.regime !== last) console.log(`\n${r.regime}`);
    last = r.regime;
    console.log(`  ${`${r.protocol}/${r.name}`.padEnd(width)} ${formatValue(r.mean, r.unit).padStart(12)}  [${formatValue(r.ci95[0], r.unit)}, ${formatValue(r.ci95[1], r.unit)}]  n=${r.count}`);
  }
  const hidden = s.rows.length - shownRows.length;
  if (hidden > 0) console.log(`\n(${hidden} sub-key row(s), e.g. ${s.rows.find((r) => !shownRows.includes(r))!.name}: in ${out ? 'summary.md' : '--json'})`);
  if (s.bySplitLabel) {
    const labels = s.bySplitLabel.map((g) => `${g.label} ${g.cases} case(s)`).join(', ');
    console.log(`\nsplit ${s.config.data?.split} by label (${labels}): in ${out ? 'summary.md, "By split label"' : '--json, bySplitLabel'}`);
  }
  if (s.drift.length) console.log(`\nperplexity drift: ${s.drift.map((d) => `${d.edits}: ×${d.ratio.toFixed(3)}`).join(', ')}`);
  console.log(`\n${s.seconds.toFixed(1)} s${out ? `; report in ${out} (summary.md, summary.json, cases.jsonl${result.files.some((f) => f.endsWith('.svg')) ? ', plots' : ''})` : ' (give --out DIR for the report files)'}`);
}

/**
 * The command line the user gave, as a shell reads it, to continue the run: with --resume, and
 * without what would stop it again or start it over (--stop-after, --force).
 */
export function resumeCommand(argv: readonly string[]): string {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--stop-after') i++;
    else if (a.startsWith('--stop-after=') || a === '--force' || a === '--resume') continue;
    else kept.push(a);
  }
  const quote = (x: string) => (/^[\w./:=,@%+-]+$/.test(x) ? x : `'${x.replace(/'/g, "'\\''")}'`);
  return ['amend', ...kept.map(quote), '--resume'].join(' ');
}

/** What a run stopped by a signal says: how far it got, and how to go on (one line on stderr). */
function reportInterrupted(o: EvalArgs, it: NonNullable<EvalResult['interrupted']>, sig: StopSignal): void {
  const unit = unitNoun(o);
  const where = it.done === 0 ? `before the first ${unit} finished` : `after ${it.done} of ${it.total} ${unit}${it.done === it.total ? ', before all were scored' : ''}`;
  const next = !o.out ? 'without --out nothing was saved'
    : !it.resumable ? 'nothing was saved to resume from; run the same command again'
      : `resume with: ${resumeCommand(process.argv.slice(2))}`;
  const kept = o.out && fs.existsSync(path.join(o.out, 'summary.json')) ? ` (the report already in ${o.out} stays until the run finishes)` : '';
  if (o.json) console.log(JSON.stringify({ interrupted: { ...it, signal: sig }, out: o.out ?? null }));
  process.stderr.write(`amend: interrupted ${where} (${sig}); ${next}${kept}\n`);
}

/** The run's units as the progress and messages count them. */
const unitNoun = (o: Pick<EvalArgs, 'mode' | 'sequential'>) =>
  typeof o.mode === 'object' && 'batch' in o.mode ? 'batch(es)' : !o.sequential ? 'case(s)' : stepOf(o.mode) > 1 ? 'step(s)' : 'edit(s)';

export async function run(args: Parsed): Promise<void | number> {
  const o = parseArgs(args);
  const inputs = readInputs(args.values, o);
  const { loaded, qaTemplate, consistency } = inputs;

  const model = await loadModel(o.model, o.json);
  const resolved = resolveHparams(o.method, model, { preset: o.preset, files: o.hparamsFiles, overrides: o.overrides, overridesSource: '--set' });
  const heldout = heldoutOf(model, o, inputs);
  announce(o, loaded, model, resolved);

  const bars = new EvalBars(o);
  // From here a first Ctrl-C stops the run at the next unit, with a checkpoint (a second one ends it at once).
  const stop = stopOnSignal();
  const result = await runEval(model, loaded.cases, {
    method: o.method, resolved, mode: o.mode, protocol: o.protocol, out: o.out, resume: o.resume, force: o.force, checkpointEvery: o.every,
    heldout, heldoutTokens: o.heldoutTokens, qa: qaOptionsOf(o.qa, o.qaCut, qaTemplate), fluency: o.fluency || consistency !== undefined, consistency, stopAfter: o.stopAfter, data: { file: o.data, format: loaded.format, ...(loaded.split ? { split: loaded.split.name } : {}) },
    onProgress: bars.onProgress,
    onEditProgress: bars.onEditProgress,
    signal: stop.signal,
  }).finally(() => stop.dispose());
  bars.done();

  const sig = stop.received();
  if (result.interrupted && sig) {
    reportInterrupted(o, result.interrupted, sig);
    return exitCodeFor(sig);
  }
  if (result.interrupted) {
    const { done, total } = result.interrupted;
    if (o.json) console.log(JSON.stringify({ interrupted: result.interrupted, out: o.out ?? null }));
    else console.log(`stopped after ${done} of ${total} (--stop-after); continue with the same command and --resume`);
    return;
  }
  const s = result.summary!;
  refuseUnmeasured(s, result, o.out);
  if (consistency) warnMissingReferenceScores(result, loaded.format, inputs.consistencyDir);
  warnTruncatedPrompts(result, model.config.maxPositions);
  if (o.json) console.log(JSON.stringify({ ...s, files: result.files }));
  else printSummary(s, result, o, resolved);
}
