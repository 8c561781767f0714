// Loading for a command: a model (resolution by path, HF cache or hub, a progress bar on big
// checkpoints, one clear line when anything is wrong), and the word on a benchmark's skipped records.
import fs from 'node:fs';
import { AmendError, closest } from '../errors.js';
import type { LoadedCases } from '../data/index.js';
import { BUILTIN_WORLD, CausalLM } from '../models/index.js';
import { Progress } from './progress.js';

export async function loadModel(id: string | boolean | string[] | undefined, quiet: boolean): Promise<CausalLM> {
  if (typeof id !== 'string' || id === '') {
    throw new AmendError('--model is required: a model directory, or a Hugging Face id in the local cache');
  }
  let bar: Progress | null = null;
  let model: CausalLM;
  try {
    model = await CausalLM.load(id, {
      onLoadProgress: (done, total) => {
        bar ??= new Progress('loading weights', total, !quiet && process.stderr.isTTY === true, 'B');
        bar.update(done);
      },
    });
  } catch (err) {
    // "wrld" for the demo model: a typo of the one built-in name is worth naming.
    if (err instanceof AmendError && !fs.existsSync(id) && closest(id, [BUILTIN_WORLD]) === BUILTIN_WORLD) {
      throw new AmendError(`${err.message} (did you mean --model ${BUILTIN_WORLD}, the demo model?)`);
    }
    throw err;
  }
  (bar as Progress | null)?.done();
  return model;
}

/**
 * Records a format's loader leaves out on purpose (zsRE without a target, a ConvSent topic with no
 * sentence): said, so that a run over fewer cases than the file has records does not go unexplained.
 */
export function warnSkippedRecords(source: string, loaded: LoadedCases): void {
  const first = loaded.skipped[0];
  if (!first) return;
  process.emitWarning(`${source}: ${loaded.skipped.length} record(s) skipped (record ${first.index + 1} (index ${first.index}): ${first.reason})`);
}

/** The refusal of a benchmark that gave nothing to work on (`what`: "cases to evaluate"), with why its records were skipped. */
export function nothingLoaded(source: string, what: string, loaded: LoadedCases): AmendError {
  const first = loaded.skipped[0];
  return new AmendError(`${source}: no ${what}${first ? ` (${loaded.skipped.length} record(s) skipped: ${first.reason})` : ''}`);
}
