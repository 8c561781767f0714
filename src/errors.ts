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
