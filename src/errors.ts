// One error type for everything a user can get wrong (bad path, corrupt file, bad argument).
// The CLI prints `message`, always a single line, and exits non-zero; anything else is a bug and
// keeps its stack trace.
export class AmendError extends Error {
  constructor(message: string) {
    // One line, whatever it quotes: JSON.parse's messages, say, quote the broken text, newlines and all.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
    this.name = 'AmendError';
  }
}

export function fail(message: string): never {
  throw new AmendError(message);
}

/**
 * For JavaScript callers, whom no type checker stops: an argument that must be an object (a model,
 * options) and is not gets one line naming what was expected, not a TypeError further in.
 */
export function requireObject(value: unknown, what: string): void {
  if (value === null || typeof value !== 'object') throw new AmendError(`${what}, not ${value === null ? 'null' : typeof value}`);
}
