// Loading a model for a command: resolution (path, HF cache, hub), a progress bar on big
// checkpoints, and one clear line when anything is wrong.
import fs from 'node:fs';
import { AmendError, closest } from '../errors.js';
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
