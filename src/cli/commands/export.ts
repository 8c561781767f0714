// amend export: a model plus patches (applied in order) → a complete Hugging Face checkpoint.
// The helpers below the spec, and exportCommand, are shared with `amend patch` (commands/patch.ts).
import * as path from 'node:path';
import { AmendError } from '../../errors.js';
import type { CausalLM } from '../../models/model.js';
import { EditPatch } from '../../patch/patch.js';
import { editSession } from '../../patch/session.js';
import { applyPatchesInOrder, checkExportDir, exportModel, parseExportDType, type ExportResult } from '../../patch/export.js';
import { shortFingerprint } from '../../models/fingerprint.js';
import { listOption, type CommandSpec, type OptionSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';
import { fmtBytes, Progress } from '../progress.js';
import { cleanUpIfKilled, tempFoldersBeside } from '../interrupt.js';

export const EXPORT_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', short: 'm', help: 'M  the base model: directory or Hugging Face id (local cache)' },
  patch: { type: 'string', short: 'p', multiple: true, help: 'P  a patch file (written by an editor, EditPatch.save); repeat for several, applied in the order given' },
  out: { type: 'string', short: 'o', help: 'DIR  output directory (must not exist, or be empty; see --force)' },
  dtype: { type: 'string', help: 'keep|f32|f16|bf16  storage dtype of floating tensors (default keep: each tensor\'s original)' },
  force: { type: 'boolean', help: 'replace DIR when it exists and is not empty (its files are deleted)' },
  'ignore-fingerprint': { type: 'boolean', help: 'apply patches made for a model with another fingerprint (names and shapes are still checked)' },
};

export const spec: CommandSpec = {
  name: 'export',
  summary: 'write a model with patches applied as a complete Hugging Face checkpoint',
  usage: 'amend export --model M [--patch P ...] --out DIR [--dtype keep|f32|f16|bf16] [--force] [--ignore-fingerprint] [--json]',
  options: EXPORT_OPTIONS,
  examples: [
    'amend export --model gpt2 --patch eiffel.patch.safetensors --out ./gpt2-edited',
    'amend export --model ./llama --patch a.safetensors --patch b.safetensors --out ./llama-ab --dtype keep',
    'amend export --model ./llama --out ./llama-f16 --dtype f16        # no patch: a plain dtype conversion',
    '',
    'The output has the original tensor names, shapes, storage dtypes and weight files (same shards',
    'and index), and the folder\'s other files (config.json, generation_config.json, the tokenizer',
    'files, ...) copied verbatim, so transformers loads it as it loads the original',
    '(from_pretrained). Patches are checked against the model\'s fingerprint (a patch made on an',
    'export also applies to that export\'s first base after the export\'s patches, in order); the',
    'weight files of an edited export record the patches in their metadata (amend patch show DIR',
    'lists them). Written to a temporary directory, then renamed: a failure leaves nothing behind,',
    'and the hidden folder of an export killed mid-write (Ctrl-C) is removed once its process is',
    'gone (else by the next export into the same parent folder). F64 and 64/32-bit integer tensors',
    'no patch touches are copied byte for byte',
    '(float32 cannot hold all their values).',
  ],
};

/** The value of a string option that must be given and not be empty. */
export function requiredString(args: Parsed, name: string, what: string): string {
  const v = args.values[name];
  if (typeof v !== 'string' || v === '') throw new AmendError(`--${name} is required: ${what}`);
  return v;
}

/**
 * Loads patch files (before the model, so a bad file fails fast). A patch inside the output folder
 * is refused: --force replaces that folder, and the patch with it. So is one patch listed twice
 * (the same file, or a copy): applied twice it would add its change twice, and `patch revert
 * --drop` could not tell which of the two to take out.
 */
export function loadPatches(files: string[], out: string): EditPatch[] {
  const dir = path.resolve(out);
  for (const f of files) {
    if (path.resolve(f).startsWith(dir + path.sep)) throw new AmendError(`--patch ${f} is inside --out ${out}, which the export replaces; move the patch out of that folder first`);
  }
  const patches = files.map((f) => EditPatch.load(f));
  patches.forEach((p, i) => {
    const first = patches.findIndex((q) => q.id === p.id);
    if (first < i) {
      const same = path.resolve(files[first]!) === path.resolve(files[i]!) ? 'is listed twice in --patch' : `is the same patch as --patch ${files[first]} (id ${p.id.slice(0, 12)})`;
      throw new AmendError(`--patch ${files[i]} ${same}; give each patch once — applied twice it would add its change twice`);
    }
  });
  return patches;
}

/** Exports with a progress bar; prints the result (text or JSON). */
export function exportAndReport(model: CausalLM, out: string, args: Parsed, extra: Record<string, unknown> = {}): ExportResult {
  const json = args.values.json === true;
  // The write is synchronous (Ctrl-C ends it at once): a killed export leaves its temporary folder,
  // which a helper removes once this process is gone.
  cleanUpIfKilled([tempFoldersBeside(out, 'amend-export')]);
  let bar: Progress | null = null;
  const result = exportModel(model, out, {
    dtype: parseExportDType(args.values.dtype as string | undefined),
    force: args.values.force === true,
    onProgress: (done, total) => {
      bar ??= new Progress('writing weights', total, !json && process.stderr.isTTY === true, 'B');
      bar.update(done);
    },
  });
  (bar as Progress | null)?.done();
  const session = editSession(model);
  if (json) {
    console.log(JSON.stringify({
      ...result,
      patches: session.applied().map((p) => ({ id: p.id, method: p.metadata.method, file: p.file, requests: p.metadata.requests.length })),
      ...extra,
    }));
  } else {
    const tensors = result.shards.reduce((s, sh) => s + sh.names.length, 0);
    console.log(`exported ${result.dir}: ${tensors} tensors in ${result.shards.length} weight file(s), ${fmtBytes(result.totalSize)}, ` +
      `plus ${result.files.length} other file(s)`);
    const applied = session.applied();
    // The source's patches that the export carries on (none when its record no longer matched its weights).
    const carried = result.patches.length - applied.length;
    if (carried > 0) console.log(`the source checkpoint already carries ${carried} patch(es) from the export that wrote it (amend patch show ${model.dir})`);
    if (applied.length === 0) console.log(carried > 0 ? 'no patch applied here' : 'no patch applied: the weights are the original ones');
    else {
      // The record names the first base: an export's own fingerprint beside it would read as a mismatch.
      console.log(carried > 0
        ? `patches applied on top of those, in order (the record goes back to the first base, fingerprint ${shortFingerprint(result.baseFingerprint ?? session.baseFingerprint)}):`
        : `patches applied, in order (base fingerprint ${shortFingerprint(session.baseFingerprint)}):`);
      for (const p of applied) console.log(`  ${p.label}: ${p.metadata.requests.length} request(s), ${p.deltas.length} tensor(s)`);
    }
    for (const s of result.skipped) process.stderr.write(`note: not copied: ${s.file} (${s.reason})\n`);
  }
  return result;
}

export async function run(args: Parsed): Promise<void> {
  if (args.positionals.length > 0) {
    throw new AmendError(`unexpected argument "${args.positionals[0]}"; give patches with --patch (see amend export --help)`);
  }
  await exportCommand(args, false);
}

/** `amend export` and `amend patch apply` (which requires at least one patch). */
export async function exportCommand(args: Parsed, needPatch: boolean): Promise<void> {
  if (needPatch && listOption(args, 'patch').length === 0) throw new AmendError('give at least one --patch P (amend export writes a model without patches)');
  const { model, out } = await loadPatchedModel(args, 'the base model (directory or Hugging Face id)');
  exportAndReport(model, out, args);
}

/**
 * What `export`, `patch apply` and `patch revert` open with: the output place, --dtype and the
 * patch files checked before the model loads (bad input fails in a moment, not after minutes of
 * loading), `beforeLoad` for a command's own checks of the patches, then the model with the
 * patches applied in order.
 */
export async function loadPatchedModel(args: Parsed, modelIs: string, beforeLoad: (patches: EditPatch[], files: string[]) => void = () => {}): Promise<{ model: CausalLM; patches: EditPatch[]; out: string }> {
  const v = args.values;
  const modelId = requiredString(args, 'model', modelIs);
  const out = requiredString(args, 'out', 'the directory to write the checkpoint to');
  parseExportDType(v.dtype as string | undefined);
  const files = listOption(args, 'patch');
  checkExportDir(path.resolve(out), null, v.force === true);
  const patches = loadPatches(files, out);
  beforeLoad(patches, files);
  const model = await loadModel(modelId, v.json === true);
  checkExportDir(path.resolve(out), model.dir, v.force === true);
  applyPatchesInOrder(model, patches, { force: v['ignore-fingerprint'] === true });
  return { model, patches, out };
}
