// Loading a model for a command: resolution (path, HF cache, hub), a progress bar on big
// checkpoints, and one clear line when anything is wrong.
import { CausalLM } from '../models/index.js';
import { Progress } from './progress.js';

export async function loadModel(id: string | boolean | string[] | undefined, quiet: boolean): Promise<CausalLM> {
  if (typeof id !== 'string' || id === '') {
    const { AmendError } = await import('../errors.js');
    throw new AmendError('--model is required: a model directory, or a Hugging Face id in the local cache');
  }
  let bar: Progress | null = null;
  const model = await CausalLM.load(id, {
    onLoadProgress: (done, total) => {
      bar ??= new Progress('loading weights', total, !quiet && process.stderr.isTTY === true, 'B');
      bar.update(done);
    },
  });
  (bar as Progress | null)?.done();
  return model;
}
