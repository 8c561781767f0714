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
  if (value === null || typeof value !== 'object') throw new AmendError(`${what}, not ${typeName(value)}`);
}

/** For messages: null, array, or typeof (an array is an object to typeof, which misleads there). */
export function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/** A file or folder argument: a non-empty string (fs would read a number as a file descriptor). */
export function requirePath(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value === '') throw new AmendError(`${what} as a path (a non-empty string), not ${value === '' ? 'an empty string' : typeName(value)}`);
}

/**
 * A count option (limit, tokens, units), when given: an integer ≥ min. 2.5 or NaN would otherwise
 * be cut or compared silently (slice(0, 2.5), i < NaN).
 */
export function requireCount(value: unknown, what: string, min = 0): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new AmendError(`${what} must be an integer ≥ ${min}, got ${typeof value === 'number' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : typeName(value)}`);
  }
}
