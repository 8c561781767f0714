import fs from 'node:fs';

// One error type for everything a user can get wrong (bad path, corrupt file, bad argument), and
// the small checks of user input shared by every layer that raise it. The CLI prints `message`,
// always a single line, and exits non-zero; anything else is a bug and keeps its stack trace.
export class AmendError extends Error {
  constructor(message: string) {
    // One line, whatever it quotes: JSON.parse's messages, say, quote the broken text, newlines and all.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
    this.name = 'AmendError';
  }
}

/**
 * For JavaScript callers, whom no type checker stops: an argument that must be an object (a model,
 * options) and is not gets one line naming what was expected, not a TypeError further in.
 */
export function requireObject(value: unknown, what: string): void {
  if (value === null || typeof value !== 'object') throw new AmendError(`${what}, not ${typeName(value)}`);
}

/** A JSON object, i.e. a mapping: typeof calls null and arrays 'object' too. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
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
 * A file that is read whole: a device (/dev/zero, /dev/urandom, a terminal) never ends, and would be
 * read until memory runs out. A pipe (/dev/stdin from `cmd |`) is left to be read.
 */
export function refuseDevice(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return; // the read itself names a missing or unreadable file
  }
  if (st.isCharacterDevice() || st.isBlockDevice() || st.isSocket()) throw new AmendError(`${file}: is a device, not a file; give ${what}`);
}

/**
 * A file that is read whole into memory, over `maxBytes`: refused with its size before it is read
 * (the wrong file given, a model's weights as the hparams, would otherwise fill memory or end in
 * the string limit's own message). A missing file is left to the read, which names it.
 */
export function refuseOversize(file: string, maxBytes: number, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return;
  }
  if (!st.isFile() || st.size <= maxBytes) return;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  // in bytes where MiB would not tell the two apart
  const [size, max] = mib(st.size) === mib(maxBytes) ? [`${st.size} bytes`, `${maxBytes} bytes`] : [mib(st.size), mib(maxBytes)];
  throw new AmendError(`${file}: is ${size}, more than ${what} can be (${max} at most); is it the file meant?`);
}

/**
 * Refuses text that holds a NUL byte: no text file does, and a binary one (an .npz, a checkpoint)
 * nearly always does, in its first bytes. `where` names the file, `hint` says what to give instead.
 */
export function refuseBinary(text: string | Uint8Array, where: string, hint: string): void {
  if (typeof text === 'string' ? text.includes('\u0000') : text.includes(0)) throw new AmendError(`${where} holds NUL bytes, so it is not text (a binary file?); ${hint}`);
}

/**
 * A bad value as a message quotes it: a number as written, a string in quotes (else "3" and 3 read
 * the same, and the reason for the refusal is hidden), anything else by its type.
 */
export function describeValue(value: unknown): string {
  return typeof value === 'number' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : typeName(value);
}

/**
 * A count option (limit, tokens, units), when given: an integer ≥ min. 2.5 or NaN would otherwise
 * be cut or compared silently (slice(0, 2.5), i < NaN).
 */
export function requireCount(value: unknown, what: string, min = 0): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new AmendError(`${what} must be an integer ≥ ${min}, got ${describeValue(value)}`);
  }
}

/**
 * The keys of an options interface, as a list the compiler checks against it both ways: a key the
 * interface lacks is an error, and so is one of its keys left out (the error then names it, as the
 * `missing` property the list lacks). Written optionKeys<EditOptions>()(['method', ...]): the first
 * call fixes the interface, the second infers the list.
 */
export function optionKeys<T extends object>() {
  return <const K extends readonly (keyof T & string)[]>(
    keys: K & ([Exclude<keyof T & string, K[number]>] extends [never] ? unknown : { missing: Exclude<keyof T & string, K[number]> }),
  ): K => keys;
}

/**
 * For JavaScript callers, whom no type checker stops: an options key the function does not know
 * (a misspelt "hparam", "onprogress") would otherwise be ignored, and the run would go on without
 * what it asked for. `what` names the function ("edit", "edit: statsOptions"); `advice` says more
 * about a key that callers are known to give.
 */
export function refuseUnknownKeys(opts: object, known: readonly string[], what: string, advice: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(opts)) {
    if (known.includes(key)) continue;
    // Advice for a key that no spelling is near (a CLI flag's name: "n" for --n), else the nearest.
    const near = closest(key, known);
    const hint = Object.hasOwn(advice, key) ? advice[key] : near ? `did you mean "${near}"?` : '';
    throw new AmendError(`${what}: unknown option "${key}"${hint ? ` (${hint})` : ''}; options: ${known.join(', ')}`);
  }
}

/** The largest seed: the generators (mulberry32) keep 32 bits, so a larger seed would repeat a smaller one. */
export const MAX_SEED = 2 ** 32 - 1;

/**
 * A seed, when given: an integer from 0 to 2^32 − 1. Anything else would be wrapped or cut without
 * a word (-1 and 2^32 − 1 give the same samples, as do 2^32 and 0, 1.5 and 1).
 */
export function requireSeed(value: unknown, what: string): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_SEED) {
    throw new AmendError(`${what} must be an integer from 0 to ${MAX_SEED}, got ${describeValue(value)}`);
  }
}

/** Edit distance (insertions, deletions, substitutions, swaps of neighbours), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate a mistyped word most likely meant: the nearest by edit distance, if near enough
 * (at most 1 edit for short words, 2 from 5 letters, 3 from 9), else the only one it is a prefix of,
 * else the longest that is a prefix of it, else none.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  if (w === '') return undefined;
  const limit = w.length < 5 ? 1 : w.length < 9 ? 2 : 3;
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    if (dist < bestD) { best = c; bestD = dist; }
  }
  if (best !== undefined && bestD <= limit) return best;
  // "--lay" for --layers; "--export-dir" for --export (the longest candidate the word starts with).
  const prefixed = candidates.filter((c) => c.toLowerCase().startsWith(w));
  if (w.length >= 2 && prefixed.length === 1) return prefixed[0];
  return candidates.filter((c) => c.length >= 3 && w.startsWith(c.toLowerCase())).sort((a, b) => b.length - a.length)[0];
}
