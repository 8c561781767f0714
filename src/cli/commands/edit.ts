// amend edit: rewrite facts with ROME or MEMIT, print the completions before and after, and write
// the edit as a patch (--out) and/or the edited model as a checkpoint (--export).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { generate } from '../../models/generate.js';
import { editSession } from '../../patch/session.js';
import { isPatchFile } from '../../patch/patch.js';
import { checkExportDir, exportModel, exportProvenance, parseExportDType } from '../../patch/export.js';
import { checkCanBeFolder, checkCanWriteAt } from '../../io/dirs.js';
import { loadCases } from '../../data/index.js';
import {
  describeSchema, editWithReport, listPresets, METHODS, parseSets, resolveHparams, type EditMethod, type EditRequest, type ResolvedHparams,
} from '../../editors/index.js';
import { applyTargetSpace, continuationIds, fill, prepareRequests, subjectTemplate } from '../../editors/common/prompts.js';
import { scoreTargets } from '../../editors/common/score.js';
import { intOption, listOption, requireExisting, strOption as str, type CommandSpec, type Parsed } from '../args.js';
import { loadModel, nothingLoaded, warnSkippedRecords } from '../load.js';
import { EditBars, fmtP } from '../progress.js';
import { exportAndReport } from './export.js';
import { cleanUpIfKilled, tempFilesOf, tempFoldersBeside } from '../interrupt.js';

export const spec: CommandSpec = {
  name: 'edit',
  summary: 'rewrite facts with ROME or MEMIT; save a patch and/or an edited checkpoint',
  usage: [
    'amend edit --model M --method rome|memit (--prompt P --subject S --target T [--target-true T0] | --requests FILE [--limit N]) [--out PATCH] [--export DIR]',
    '       amend edit --method rome|memit --list-presets | --hparams-help',
  ].join('\n'),
  options: {
    model: { type: 'string', short: 'm', help: 'M  model directory or Hugging Face id (local cache); "world" for the demo model' },
    method: { type: 'string', help: 'rome|memit  the editing method (default rome)' },
    prompt: { type: 'string', help: 'P  the prompt, with "{}" where the subject goes or containing the subject' },
    subject: { type: 'string', help: 'S  the subject the fact is about' },
    target: { type: 'string', help: 'T  the new object (a leading space is added when missing, as ROME does)' },
    'target-true': { type: 'string', help: 'T0  the current object, to print P(new) vs P(true)' },
    requests: { type: 'string', help: 'FILE  many edits: a JSON list of {prompt, subject, targetNew}, or a CounterFact / zsRE / KnowEdit file ("world": the demo world\'s benchmark)' },
    limit: { type: 'string', help: 'N  use the first N records of --requests (an MQuAKE record is a case of several edits)', elsewhere: ['n'] },
    preset: { type: 'string', help: 'NAME  hparams preset (default: the one matching the model, else the rule; see --list-presets)' },
    hparams: { type: 'string', multiple: true, help: 'FILE  hparams YAML/JSON (EasyEdit\'s files as they are); repeatable, later wins' },
    set: { type: 'string', multiple: true, help: 'key=value  override one hparam (e.g. --set layers=[4,5] --set v_lr=0.1); repeatable' },
    out: { type: 'string', short: 'o', help: 'PATCH  write the edit as a patch file (safetensors)' },
    export: { type: 'string', help: 'DIR  write the edited model as a complete checkpoint' },
    dtype: { type: 'string', help: 'keep|f32|f16|bf16  storage dtype for --export (default keep)' },
    force: { type: 'boolean', help: 'replace an earlier patch at --out (never another file) or a non-empty --export directory' },
    'allow-unchanged': { type: 'boolean', help: 'edit requests whose target the model already predicts too (default: refuse them)' },
    'max-new-tokens': { type: 'string', short: 'n', help: 'N  tokens of the before/after completions (default 20)' },
    show: { type: 'string', help: 'N  requests whose completions are printed (default 5; all with --json)' },
    'list-presets': { type: 'boolean', help: 'list the hparams presets of --method and exit' },
    'hparams-help': { type: 'boolean', help: 'list the hparams of --method with their meaning and exit' },
  },
  examples: [
    'amend edit --model world --method rome --prompt "The birthplace of {} is" --subject "Lonmor Dirard" --target Queweba --target-true Moton --out lonmor.safetensors',
    'amend edit --model gpt2-xl --method rome --prompt "The Eiffel Tower is in" --subject "Eiffel Tower" --target Rome --export ./gpt2-xl-rome',
    'amend edit --model gpt2-xl --method memit --requests counterfact.json --limit 1000 --out cf1000.safetensors',
    'amend edit --model ./llama --method rome --hparams EasyEdit/hparams/ROME/llama-7b.yaml --set mom2_adjustment=true ...',
    '',
    'hparams come from the preset matching the model (amend edit --method rome --list-presets), or',
    'for a model without one from the rule in the README ("Editing"), then --hparams files, then',
    '--set. The edit never changes the model on disk: --out writes a patch (amend patch apply /',
    'amend export turn it into a checkpoint), --export writes the edited checkpoint directly.',
  ],
};

/** --method: rome or memit (default rome). */
export function methodOf(v: unknown): EditMethod {
  const m = (str(v) ?? 'rome').toLowerCase();
  if (!METHODS.includes(m as EditMethod)) throw new AmendError(`--method must be one of ${METHODS.join(', ')}, got "${String(v)}"`);
  return m as EditMethod;
}

/** The requests of the command line: one from --prompt/--subject/--target, or a file. */
function requestsFromArgs(args: Parsed): EditRequest[] {
  const v = args.values;
  const file = str(v.requests);
  if (file === '') throw new AmendError('--requests is empty: give the requests file');
  const single = ['prompt', 'subject', 'target'].filter((k) => v[k] !== undefined);
  if (file && single.length > 0) throw new AmendError('give either --requests FILE or --prompt/--subject/--target, not both');
  if (file && v['target-true'] !== undefined) throw new AmendError('--target-true goes with --prompt/--subject/--target; in a requests file each request carries its own true target');
  if (file) {
    const limit = v.limit === undefined ? undefined : intOption(v.limit, 'limit', 0, 1);
    requireExisting('requests', file, 'a JSON list of requests or a benchmark file (or "world" for the demo world\'s)', ['world']);
    const loaded = loadCases(file, { limit });
    const reqs = loaded.cases.flatMap((c) => (c.edits && c.edits.length > 0 ? c.edits : [c]));
    if (reqs.length === 0) throw nothingLoaded(file, 'edit requests', loaded);
    warnSkippedRecords(file, loaded);
    return reqs.map((c) => ({ prompt: c.prompt, subject: c.subject, targetNew: c.targetNew, targetTrue: c.targetTrue, id: c.id }));
  }
  if (single.length === 0) throw new AmendError('nothing to edit: give --prompt, --subject and --target (or --requests FILE)');
  if (v.limit !== undefined) throw new AmendError('--limit applies to --requests FILE; one fact from --prompt/--subject/--target has nothing to limit');
  for (const k of ['prompt', 'subject', 'target']) {
    if (typeof v[k] !== 'string') throw new AmendError(`--${k} is required with ${single.map((s) => `--${s}`).join(' ')}`);
  }
  if ((v.target as string).trim() === '') throw new AmendError('--target is empty: give the new object');
  return [{ prompt: v.prompt as string, subject: v.subject as string, targetNew: v.target as string, targetTrue: str(v['target-true']) }];
}

interface Shown {
  prompt: string;
  target: string;
  completion: string;
  pNew: number;
  pTrue?: number;
}

function completions(model: CausalLM, reqs: readonly EditRequest[], maxNew: number, space: 'if_missing' | 'always' | 'never'): Shown[] {
  const tok = model.tok();
  const texts = reqs.map((r) => fill(subjectTemplate(r.prompt, r.subject), r.subject));
  const ids = texts.map((t) => tok.encode(t));
  const outs = maxNew > 0 ? generate(model, ids, { maxNewTokens: maxNew }) : ids.map(() => []);
  const items = reqs.flatMap((r, i) => {
    const a = { prompt: ids[i], target: continuationIds(tok, texts[i], applyTargetSpace(r.targetNew, space)) };
    return r.targetTrue ? [a, { prompt: ids[i], target: continuationIds(tok, texts[i], applyTargetSpace(r.targetTrue, space)) }] : [a];
  });
  const scores = scoreTargets(model, items);
  let k = 0;
  return reqs.map((r, i) => {
    const pNew = Math.exp(scores[k++].logProb);
    const pTrue = r.targetTrue ? Math.exp(scores[k++].logProb) : undefined;
    return { prompt: texts[i], target: r.targetNew, completion: tok.decodeContinuation(ids[i], outs[i], { skipSpecialTokens: true }), pNew, pTrue };
  });
}

/** --list-presets: the presets of the method, with their layers and sources. */
function listMethodPresets(method: EditMethod, json: boolean): void {
  const ps = listPresets().filter((p) => p.method === method);
  if (json) console.log(JSON.stringify(ps.map(({ file: _f, ...p }) => p)));
  else for (const p of ps) console.log(`${p.name.padEnd(20)} layers ${JSON.stringify(p.hparams.layers).padEnd(18)} ${p.source}${p.note ? ` — ${p.note}` : ''}`);
}

/** --out: a patch file that can be written, checked before the model is loaded and edited. */
function checkPatchOut(out: string | undefined, exportDir: string | undefined, force: boolean): void {
  if (out !== undefined && out === '') throw new AmendError('--out is empty: give the patch file to write');
  if (out && fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new AmendError(`--out ${out} is a folder; give the patch file to write (a folder is for --export)`);
  // --force replaces an earlier patch, never another file (the model's own weights or config, say).
  if (out && fs.existsSync(out) && !isPatchFile(out)) throw new AmendError(`${out} exists and is not an Amend patch (--force replaces only an earlier patch); choose another --out file`);
  if (out && fs.existsSync(out) && !force) throw new AmendError(`${out} exists; pass --force to overwrite it`);
  if (out && exportDir) {
    const o = path.resolve(out), e = path.resolve(exportDir);
    if (o === e || o.startsWith(e + path.sep)) throw new AmendError(`--out ${out} is ${o === e ? 'the same path as' : 'inside'} --export ${exportDir}; write the patch somewhere else`);
    // The patch file would have to be a folder to hold the checkpoint.
    if (e.startsWith(o + path.sep)) throw new AmendError(`--export ${exportDir} is inside --out ${out}, the patch file; write the checkpoint somewhere else`);
  }
  if (out) {
    checkCanBeFolder(path.dirname(path.resolve(out)));
    if (!fs.existsSync(path.dirname(path.resolve(out)))) throw new AmendError(`cannot write ${out}: folder ${path.dirname(path.resolve(out))} does not exist`);
    // before the model is loaded and edited, which can take minutes, not after
    checkCanWriteAt(out);
  }
}

/** The command line of an edit, checked before the model loads. */
function parseArgs(args: Parsed, method: EditMethod) {
  const v = args.values;
  const json = v.json === true;
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}" (see amend edit --help)`);
  const requests = requestsFromArgs(args);
  const overrides = parseSets(listOption(args, 'set'));
  const out = str(v.out), exportDir = str(v.export), force = v.force === true;
  checkPatchOut(out, exportDir, force);
  if (exportDir) checkExportDir(path.resolve(exportDir), null, force);
  const dtype = parseExportDType(str(v.dtype));
  if (v.dtype !== undefined && !exportDir) throw new AmendError('--dtype is the storage dtype of --export; give --export DIR too (a patch keeps float32)');
  const maxNew = intOption(v['max-new-tokens'], 'max-new-tokens', 20);
  const showN = json ? requests.length : intOption(v.show, 'show', 5);
  return { json, method, requests, overrides, out, exportDir, dtype, force, maxNew, showN, allowUnchanged: v['allow-unchanged'] === true };
}

type EditArgs = ReturnType<typeof parseArgs>;

/** The edit, applied to the model in memory, with the completions of the shown requests before and after. */
async function editShowing(model: CausalLM, resolved: ResolvedHparams, o: EditArgs) {
  const { method, requests } = o;
  const shown = requests.slice(0, o.showN);
  const before = completions(model, shown, o.maxNew, resolved.hparams.target_space);
  const bars = new EditBars(!o.json && process.stderr.isTTY === true,
    method === 'memit' ? { phase: 'z', total: requests.length } : { phase: 'rome', total: requests.length * resolved.hparams.layers.length });
  const { patch, report } = await editWithReport(model, requests, {
    method, resolved, allowUnchanged: o.allowUnchanged, onProgress: bars.onProgress,
  });
  bars.done();
  editSession(model).apply(patch);
  const after = completions(model, shown, o.maxNew, resolved.hparams.target_space);
  return { model, resolved, patch, report, shown, before, after };
}

type Edited = Awaited<ReturnType<typeof editShowing>>;

/**
 * An edit can run to the end and still change nothing that matters (a rule's hparams on a model
 * unlike those the rule was drawn from): say so rather than print "patch written" alone.
 */
function barelyMovedWarning(e: Edited, method: EditMethod): string | null {
  const { shown, before, after } = e;
  return shown.length > 0 && shown.every((_, i) => after[i]!.pNew < 0.5 && after[i]!.pNew < 2 * before[i]!.pNew)
    ? `the edit barely moved P(new) on the requests shown (at most ${fmtP(Math.max(...after.map((a) => a.pNew)))} after); its hparams (${e.resolved.origin}) may hold it back — see --hparams-help${method === 'memit' ? ' (mom2_update_weight)' : ''}`
    : null;
}

/** The console report: the edit, the shown requests before and after, and the time of each phase. */
function printEdit(e: Edited, o: EditArgs): void {
  const { model, resolved, patch, shown, before, after } = e;
  const { method, requests } = o;
  console.log(`${method.toUpperCase()} on ${model.dir ?? 'model'}: ${requests.length} request(s); hparams: ${resolved.origin}`);
  console.log(`layers ${JSON.stringify(resolved.hparams.layers)}; tensors ${patch.deltas.map((d) => `${d.name} (${d.kind}${d.kind === 'low_rank' ? ` rank ${d.rank}` : ''})`).join(', ')}`);
  shown.forEach((r, i) => {
    console.log(`\n[${i + 1}] ${before[i].prompt} → ${r.targetNew.trim()}`);
    console.log(`  before: ${JSON.stringify(before[i].completion)}  P(new) ${fmtP(before[i].pNew)}${r.targetTrue ? `  P(true) ${fmtP(before[i].pTrue)}` : ''}`);
    console.log(`  after:  ${JSON.stringify(after[i].completion)}  P(new) ${fmtP(after[i].pNew)}${r.targetTrue ? `  P(true) ${fmtP(after[i].pTrue)}` : ''}`);
  });
  if (requests.length > shown.length) console.log(`\n(${requests.length - shown.length} more request(s) not shown; --show N)`);
  console.log(`\ntime: ${Object.entries(e.report.timings).map(([k, s]) => `${k} ${s.toFixed(2)}s`).join(', ')}`);
}

/** --export, then --out; returns what the export wrote (for --json). */
function writeOutputs(e: Edited, o: EditArgs, args: Parsed): unknown {
  const { model, patch } = e;
  // The export first: it takes seconds to minutes, the patch milliseconds, so a run stopped
  // part-way leaves neither rather than a patch whose rerun is refused for existing.
  // Killed while writing (Ctrl-C ends the synchronous writes at once), the process leaves temporary
  // names only; a helper removes them once it is gone.
  cleanUpIfKilled([...(o.exportDir ? [tempFoldersBeside(o.exportDir, 'amend-export')] : []), ...(o.out ? [tempFilesOf(o.out)] : [])]);
  let exported: unknown;
  if (o.exportDir) {
    exported = o.json
      ? exportModel(model, o.exportDir, { dtype: o.dtype, force: o.force })
      : exportAndReport(model, o.exportDir, args);
  }
  if (o.out) {
    patch.save(o.out, { noClobber: !o.force });
    if (!o.json) console.log(`patch written: ${o.out} (${patch.metadata.method} patch ${patch.id.slice(0, 12)})`);
  }
  return exported;
}

export async function run(args: Parsed): Promise<void> {
  const v = args.values;
  const json = v.json === true;
  const method = methodOf(v.method);
  if (v['list-presets']) return listMethodPresets(method, json);
  if (v['hparams-help']) {
    console.log(`${method.toUpperCase()} hparams (--set key=value, or a YAML/JSON file with --hparams):`);
    console.log(describeSchema(method).join('\n'));
    return;
  }
  const o = parseArgs(args, method);

  const model = await loadModel(v.model, json);
  if (o.exportDir) {
    checkExportDir(path.resolve(o.exportDir), model.dir, o.force);
    // The export carries on the source's record of patches: a record it cannot read would
    // otherwise stop the export only after the edit.
    if (model.dir) exportProvenance(model.dir);
  }
  const resolved = resolveHparams(method, model, { preset: str(v.preset), files: listOption(args, 'hparams'), overrides: o.overrides, overridesSource: '--set' });
  prepareRequests(model, o.requests, resolved.hparams); // every request checked (and named) before any is shown
  const e = await editShowing(model, resolved, o);
  const barelyMoved = barelyMovedWarning(e, method);
  if (!json) printEdit(e, o);
  if (barelyMoved) process.emitWarning(barelyMoved); // after the report, which it is about
  const exported = writeOutputs(e, o, args);
  if (json) {
    const { patch } = e;
    console.log(JSON.stringify({
      method, model: model.dir, hparams: resolved.hparams, origin: resolved.origin, timings: e.report.timings,
      requests: e.shown.map((r, i) => ({ ...r, before: e.before[i], after: e.after[i] })),
      patch: { id: patch.id, file: o.out ?? null, tensors: patch.deltas.map((d) => ({ name: d.name, kind: d.kind, rank: d.kind === 'low_rank' ? d.rank : null })) },
      export: exported ?? null,
    }));
  }
  if (!o.out && !o.exportDir && !json) console.log('nothing written (give --out PATCH and/or --export DIR to keep the edit)');
}
