// Long synchronous reads written once as generators that yield between pieces of work: a sync
// caller runs them straight through; an async caller lets the event loop run at every yield, so
// loading a checkpoint of many gigabytes keeps timers, progress output and signals alive.

export type Steps<T> = Generator<void, T, void>;

export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export async function runStepsAsync<T>(steps: Steps<T>): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
