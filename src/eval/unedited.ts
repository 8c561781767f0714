/**
 * The unedited model during an evaluation run, for metrics that compare it with the edited model
 * at the moment the edited one is scored (ConvSent's dd needs both full distributions at every
 * position, too many to keep from before the edits). "Unedited" is the model as the run was given
 * it: the edits of the run are what is measured.
 *
 * The scope copies the current values of every tensor the edit session touches, writes the
 * values the run started from into them, runs fn, and copies the edited values back: bit-identical
 * afterwards, whatever fn throws, in every mode (one patch of a single case or a batch, or a
 * sequential run's whole stack), at the cost of two copies of the touched tensors (one ROME edit
 * of GPT-2 small: one 3072 × 768 matrix, 9 MiB) rather than reverting and re-applying the stack.
 * The model is held by the run (holdModel), so nothing else sees the weights in between.
 */
import type { CausalLM } from '../models/model.js';
import { editSession } from '../patch/session.js';
import type { UneditedScope } from './metrics-sentiment.js';

/** Call before the run's first edit: the start is the model as it is now. */
export function uneditedScope(model: CausalLM): UneditedScope {
  const session = editSession(model);
  // A model that came with patches applied: the values of their tensors as given (the session's
  // originals are from before those patches). Untouched tensors' originals are the start itself.
  const given = new Map(session.touched().map((name) => [name, model.weights.get(name)!.data.slice()]));
  return <T>(fn: () => T): T => {
    const names = session.touched();
    const data = names.map((name) => model.weights.get(name)!.data);
    const edited = data.map((d) => d.slice());
    try {
      names.forEach((name, k) => data[k]!.set(given.get(name) ?? session.original(name)!));
      return fn();
    } finally {
      data.forEach((d, k) => d.set(edited[k]!));
    }
  };
}
