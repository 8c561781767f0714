// Holding a model across awaits. An evaluation run (and the key statistics of an edited model)
// changes the weights, awaits, and changes them back; an edit reads them before and after awaiting
// its statistics. Work of another promise on the same model in between would read, patch, export
// or edit weights that are not what it expects, or change them under the edit, silently. Such runs
// hold the model: work started outside the hold, forward passes included, is refused with one line;
// work inside it (the run's own edits and passes, through async context) goes on. A caller's
// callbacks (progress) run outside the hold: they are not part of the run that calls them.
import { AsyncLocalStorage } from 'node:async_hooks';
import { AmendError } from '../errors.js';

interface Holder { what: string }
const holders = new WeakMap<object, Holder>();
const heldHere = new AsyncLocalStorage<ReadonlySet<Holder>>();

/** Throws when another promise's run holds the model (see holdModel). */
export function assertNotHeld(model: object, what: string): void {
  const h = holders.get(model);
  if (h && !heldHere.getStore()?.has(h)) {
    throw new AmendError(`${what}: the model is in use by ${h.what}, which needs the weights to itself until it finishes; await it first, or load a second copy of the model for concurrent work`);
  }
}

/** Runs `fn` with the model held: other promises cannot read, apply, revert, edit or evaluate it meanwhile. */
export async function holdModel<T>(model: object, what: string, fn: () => Promise<T>): Promise<T> {
  assertNotHeld(model, what);
  if (holders.has(model)) return fn(); // already held by this very run
  const h: Holder = { what };
  holders.set(model, h);
  try {
    return await heldHere.run(new Set([...(heldHere.getStore() ?? []), h]), fn);
  } finally {
    holders.delete(model);
  }
}

/**
 * A caller's callback as the run calls it: outside every hold, so that what it starts on a held
 * model (a patch applied from a progress callback, say) is refused as any other promise's work.
 */
export function outsideHold<A extends unknown[], R>(cb: ((...args: A) => R) | undefined): ((...args: A) => R) | undefined {
  return cb && ((...args: A) => heldHere.exit(() => cb(...args)));
}
