// amend patch show | apply | revert: look inside a patch, and turn a base model plus patches into
// an edited checkpoint.
//
// A CLI process starts from a model on disk each time, so "the edited model" of the command line
// is a base model plus an ordered list of patch files (or an exported checkpoint). `revert` is
// therefore an export: the patches are applied in order in an edit session, the dropped ones are
// reverted exactly (bit-identical to never applying them), and the result is written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AmendError } from '../../errors.js';
import { EditPatch, type PatchDescription } from '../../patch/patch.js';
import { editSession } from '../../patch/session.js';
import { exportProvenance } from '../../patch/export.js';
import { shortFingerprint } from '../../models/fingerprint.js';
import { didYouMean, listOption, type CommandSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';
import { fmtBytes } from '../progress.js';
import { EXPORT_OPTIONS, exportAndReport, exportCommand, loadPatchedModel, requiredString } from './export.js';

export const spec: CommandSpec = {
  name: 'patch',
  summary: 'show a patch, or apply / revert patches into a new checkpoint',
  usage: [
    'amend patch show P [--model M] [--json]   |   amend patch show DIR [--check] [--json]',
    '       amend patch apply --model M --patch P [--patch P2 ...] --out DIR [--dtype keep|f32|f16|bf16] [--force]',
    '       amend patch revert --model M --patch P1 --patch P2 ... --drop P2 --out DIR [--force]',
  ].join('\n'),
  subcommands: {
    show: 'amend patch show P [--model M] [--json]   |   amend patch show DIR [--check] [--json]',
    apply: 'amend patch apply --model M --patch P [--patch P2 ...] --out DIR [--dtype keep|f32|f16|bf16] [--force] [--ignore-fingerprint] [--json]',
    revert: 'amend patch revert --model M --patch P1 --patch P2 ... --drop P2 [--drop ...] --out DIR [--dtype keep|f32|f16|bf16] [--force] [--ignore-fingerprint] [--json]',
  },
  options: {
    ...EXPORT_OPTIONS,
    model: { type: 'string', short: 'm', help: 'M  show: also check the patch against this model and give ‖ΔW‖/‖W‖; apply/revert: the base model' },
    check: { type: 'boolean', help: 'show DIR: also load its weights and check they are still those its export wrote (its record is trusted only then)' },
    drop: { type: 'string', multiple: true, help: 'P  revert: a patch to take out (its file as given to --patch, or its id or id prefix); repeatable' },
  },
  examples: [
    'amend patch show eiffel.safetensors                 # tensors, ranks, ‖ΔW‖, method, hparams, requests',
    'amend patch show eiffel.safetensors --model gpt2    # plus ‖ΔW‖/‖W‖ and whether it applies to gpt2',
    'amend patch show ./gpt2-edited                      # which patches an exported checkpoint carries',
    'amend patch show ./gpt2-edited --check              # and whether its weights are still those it was exported with',
    'amend patch apply --model gpt2 --patch a.safetensors --patch b.safetensors --out ./gpt2-ab',
    'amend patch revert --model gpt2 --patch a.safetensors --patch b.safetensors --drop a.safetensors --out ./gpt2-b',
    '',
    'show     prints what a patch touches (tensor, kind, rank, shape, ‖ΔW‖_F, and with --model',
    '         ‖ΔW‖_F/‖W‖_F and whether the model fingerprint matches), method, hparams, requests',
    '         and timings. Given a directory, it lists the patches an exported checkpoint carries.',
    'apply    is amend export with at least one patch: the patches are applied in the order given,',
    '         each checked against the base model\'s fingerprint, and a complete checkpoint is written.',
    'revert   a command line process never holds an edited model between runs, so there is nothing',
    '         to revert in place: the edited model is the base plus its patch list (or an export).',
    '         revert applies all --patch files in order, reverts the --drop ones exactly (as if they',
    '         had never been applied) and writes the result — the way to take one edit out of a stack.',
    '         To revert everything, use the base model itself. In TypeScript, editSession(model)',
    '         .revert() / .revertAll() revert in memory.',
  ],
};

/** Options shared in the spec but meaningful to one subcommand only: the others refuse them. */
const ONLY: Record<string, readonly string[]> = {
  show: ['model', 'check'],
  apply: ['model', 'patch', 'out', 'dtype', 'force', 'ignore-fingerprint'],
  revert: ['model', 'patch', 'drop', 'out', 'dtype', 'force', 'ignore-fingerprint'],
};

export async function run(args: Parsed): Promise<void> {
  const [sub, ...rest] = args.positionals;
  const allowed = sub !== undefined ? ONLY[sub] : undefined;
  if (allowed) {
    const shared = new Set(['json', 'threads', 'help']);
    const stray = Object.keys(args.values).find((k) => args.values[k] !== undefined && !shared.has(k) && !allowed.includes(k));
    if (stray) throw new AmendError(`--${stray} does nothing with amend patch ${sub} (see amend patch --help)`);
  }
  switch (sub) {
    case 'show':
      if (rest.length !== 1) throw new AmendError('give one patch file (or exported model directory): amend patch show P [--model M]');
      return show(rest[0]!, args);
    case 'apply':
      if (rest.length > 0) throw new AmendError(`unexpected argument "${rest[0]}"; give patches with --patch (see amend patch --help)`);
      return exportCommand(args, true);
    case 'revert':
      if (rest.length > 0) throw new AmendError(`unexpected argument "${rest[0]}"; give patches with --patch and --drop (see amend patch --help)`);
      return revert(args);
    case undefined:
      throw new AmendError('say what to do: amend patch show | apply | revert (see amend patch --help)');
    default:
      throw new AmendError(`unknown subcommand "${sub}"${didYouMean(sub, ['show', 'apply', 'revert'])} (amend patch show | apply | revert)`);
  }
}

function fmtNum(x: number | undefined): string {
  if (x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  return Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

function requestLine(r: { prompt: string; subject: string; targetNew: string; targetTrue?: string }): string {
  const raw = String(r?.prompt ?? '');
  const prompt = raw.includes('{}') ? raw.replace('{}', () => String(r.subject)) : raw; // a function: "$&" in a subject is text
  return `${JSON.stringify(prompt)} [subject ${JSON.stringify(r.subject)}] → ${JSON.stringify(r.targetNew)}` +
    (r.targetTrue !== undefined ? ` (was ${JSON.stringify(r.targetTrue)})` : '');
}

function formatDescription(d: PatchDescription): string {
  const lines: string[] = [];
  lines.push(`${d.method} patch ${d.id.slice(0, 12)}${d.file ? `  ${d.file}` : ''}`);
  lines.push(`  made for    ${d.model.modelType} model ${d.model.source ?? '(unknown path)'}, fingerprint ${shortFingerprint(d.model.fingerprint)}`);
  lines.push(`  created     ${d.createdAt} with amend ${d.amendVersion} (patch format ${d.format.version})`);
  if (d.origin) {
    const n = d.origin.patches.length;
    lines.push(`  origin      an export: the model with fingerprint ${shortFingerprint(d.origin.baseFingerprint)} plus ${n} patch(es), in order: ` +
      `${d.origin.patches.map((id) => id.slice(0, 12)).join(', ')} (it applies there after them)`);
  }
  if (d.appliedOn.length > 0) {
    lines.push(`  computed on top of ${d.appliedOn.length} patch(es): ${d.appliedOn.map((id) => id.slice(0, 12)).join(', ')}`);
  }
  if (d.target) {
    const t = d.target;
    const verdict = t.fingerprintMatches && t.applicable ? 'yes'
      : !t.applicable ? 'NO (tensor names or shapes differ, see below)'
        // A patch with an origin can fit in more ways than by fingerprint: say which it misses.
        : d.origin && t.fingerprintProblem ? `NO: ${t.fingerprintProblem} (--ignore-fingerprint applies it anyway)`
          : `NO: fingerprint ${shortFingerprint(t.fingerprint)} differs (--ignore-fingerprint applies it anyway)`;
    lines.push(`  applies to  ${t.modelType} model ${t.source ?? '(in memory)'}: ${verdict}`);
  }
  lines.push(`  requests (${d.requests.length}):`);
  const shown = d.requests.slice(0, 20);
  shown.forEach((r, i) => lines.push(`    ${i + 1}. ${requestLine(r)}`));
  if (d.requests.length > shown.length) lines.push(`    … and ${d.requests.length - shown.length} more (--json lists all)`);
  lines.push(`  tensors (${d.totals.tensors}; ${d.totals.storedValues} stored values, ${fmtBytes(d.totals.bytes)}; total ‖ΔW‖_F ${fmtNum(d.totals.norm)}):`);
  const rows = [['name', 'kind', 'rank', 'shape', '‖ΔW‖_F', ...(d.target ? ['‖W‖_F', '‖ΔW‖/‖W‖'] : [])]];
  for (const t of d.tensors) {
    rows.push([t.name, t.kind, t.rank === null ? '-' : String(t.rank), t.shape.join('×'), fmtNum(t.norm),
      ...(d.target ? (t.problem ? [t.problem, ''] : [fmtNum(t.weightNorm), fmtNum(t.relative)]) : [])]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) lines.push(`    ${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()}`);
  lines.push(`  hparams     ${JSON.stringify(d.hparams)}`);
  const timings = Object.entries(d.timings);
  lines.push(`  timings     ${timings.length === 0 ? '-' : timings.map(([k, s]) => `${k} ${typeof s === 'number' ? s.toFixed(s < 10 ? 2 : 1) : String(s)} s`).join(', ')}`);
  return lines.join('\n');
}

async function show(target: string, args: Parsed): Promise<void> {
  const json = args.values.json === true;
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    if (args.values.model !== undefined) throw new AmendError(`--model checks a patch file against a model; ${target} is a checkpoint folder (--check checks its weights against its own record)`);
    const prov = exportProvenance(target);
    // The record describes the weights only while they are the ones written (see patch/session.ts);
    // checking needs them loaded, so it is asked for.
    let weights: { fingerprint: string; matchesRecord: boolean | null } | undefined;
    if (args.values.check === true && prov) {
      const model = await loadModel(target, json);
      const session = editSession(model);
      weights = { fingerprint: session.baseFingerprint, matchesRecord: prov.weightsFingerprint === null ? null : session.trusts(prov) };
    }
    if (json) {
      console.log(JSON.stringify({ dir: target, edited: prov !== null, ...(prov ?? {}), ...(weights ? { weights } : {}) }));
    } else if (!prov) {
      console.log(`${target}: no Amend patches recorded in its weight files (an original checkpoint, or not exported by Amend)`);
    } else {
      console.log(`${target}: exported by Amend with ${prov.patches.length} patch(es) applied to a base model with fingerprint ${shortFingerprint(prov.baseFingerprint)}:`);
      prov.patches.forEach((p, i) => console.log(`  ${i + 1}. ${p.method} patch ${p.id.slice(0, 12)}: ${p.requests} request(s), created ${p.createdAt}`));
      if (!weights) console.log(`  weights     not checked against the record (--check loads them)`);
      else if (weights.matchesRecord === null) console.log(`  weights     fingerprint ${shortFingerprint(weights.fingerprint)}; the export recorded none to compare with (written before Amend recorded it)`);
      else if (weights.matchesRecord) console.log(`  weights     fingerprint ${shortFingerprint(weights.fingerprint)}, as the export wrote them: the record holds`);
      else console.log(`  weights     fingerprint ${shortFingerprint(weights.fingerprint)}, not the ${shortFingerprint(prov.weightsFingerprint!)} the export wrote: changed since, so the record is not trusted`);
    }
    return;
  }
  if (args.values.check !== undefined) throw new AmendError(`--check checks an exported checkpoint folder's weights; ${target} is a patch file (--model M checks a patch against a model)`);
  const patch = EditPatch.load(target);
  const model = args.values.model === undefined ? undefined : await loadModel(requiredString(args, 'model', 'a model'), json);
  const desc = patch.describe(model);
  console.log(json ? JSON.stringify(desc) : formatDescription(desc));
}

async function revert(args: Parsed): Promise<void> {
  const files = listOption(args, 'patch');
  const drops = listOption(args, 'drop');
  if (drops.some((d) => d.trim() === '')) throw new AmendError('--drop is empty: give a patch file or id (prefix)');
  if (files.length === 0) throw new AmendError('give the applied patches with --patch, in order (see amend patch --help)');
  if (drops.length === 0) throw new AmendError('give the patch(es) to take out with --drop (to revert everything, use the base model)');
  let dropped: EditPatch[] = [];
  const { model, out } = await loadPatchedModel(args, 'the base model the patches were made for', (patches) => {
    dropped = [...new Set(drops.map((d) => {
      const byFile = patches.filter((_, i) => files[i] === d || path.resolve(files[i]!) === path.resolve(d));
      const matches = byFile.length > 0 ? byFile : patches.filter((p) => p.id.startsWith(d.toLowerCase()));
      if (matches.length === 0) throw new AmendError(`--drop ${d}: not one of the --patch files, nor the id (prefix) of one`);
      if (matches.length > 1) throw new AmendError(`--drop ${d}: matches ${matches.length} patches; give a longer id prefix or the file`);
      return matches[0]!;
    }))];
  });
  const session = editSession(model);
  for (const p of dropped) session.revert(p);
  if (args.values.json !== true) for (const p of dropped) process.stderr.write(`reverted ${p.label}\n`);
  exportAndReport(model, out, args, { reverted: dropped.map((p) => ({ id: p.id, file: p.file })) });
}
