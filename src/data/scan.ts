// The records of a JSON list file, one at a time, straight from its bytes. A full benchmark file
// (CounterFact: 21,919 records, about 60 MB) parsed whole costs its text as a string and every
// record as objects at once, when `--n 10` uses ten of them; here only the records asked for are
// decoded and parsed, the others are only counted.
import { AmendError } from '../errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The byte where a JSON list starts (after a UTF-8 byte order mark and white space), or -1 when the content is not a list. */
export function listStart(bytes: Uint8Array): number {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (isSpace(bytes[i])) i++;
  return bytes[i] === 0x5b ? i : -1;
}

/**
 * Walks the top-level elements of the list that starts at `start` ("["). `next()` gives the byte
 * range of each element and null after the closing "]". It checks the list's structure (commas,
 * nesting, the end of the file); an element's own syntax is JSON.parse's to check, when it is parsed.
 */
export class ListScanner {
  private pos: number;
  private first = true;
  private done = false;
  /** Elements returned so far. */
  count = 0;

  constructor(private readonly bytes: Uint8Array, start: number, private readonly source: string) {
    this.pos = start + 1;
  }

  private broken(what: string): never {
    throw new AmendError(`${this.source}: not valid JSON (${what})`);
  }

  private cut(): never {
    this.broken(`the file ends inside record ${this.count + 1}; is it cut short?`);
  }

  private skipSpace(): void {
    while (isSpace(this.bytes[this.pos])) this.pos++;
  }

  /** The position after the string whose opening quote is at p. */
  private stringEnd(p: number): number {
    const b = this.bytes;
    for (;;) {
      const q = b.indexOf(QUOTE, p + 1);
      if (q < 0) this.cut();
      let k = q - 1;
      while (b[k] === BACKSLASH) k--;
      if ((q - 1 - k) % 2 === 0) return q + 1;
      p = q;
    }
  }

  next(): [number, number] | null {
    const b = this.bytes;
    if (this.done) return null;
    this.skipSpace();
    if (this.pos >= b.length) this.cut();
    if (b[this.pos] === 0x5d) return this.close();
    if (!this.first) {
      if (b[this.pos] !== 0x2c) this.broken(`expected "," or "]" after record ${this.count}, found ${JSON.stringify(String.fromCharCode(b[this.pos]!))}`);
      this.pos++;
      this.skipSpace();
      if (this.pos >= b.length) this.cut();
    }
    this.first = false;
    const start = this.pos;
    const c = b[start]!;
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      do {
        if (this.pos >= b.length) this.cut();
        const x = b[this.pos]!;
        if (x === QUOTE) {
          this.pos = this.stringEnd(this.pos);
          continue;
        }
        if (x === 0x7b || x === 0x5b) depth++;
        else if (x === 0x7d || x === 0x5d) depth--;
        this.pos++;
      } while (depth > 0);
    } else if (c === QUOTE) {
      this.pos = this.stringEnd(start);
    } else {
      // a number, true, false or null: JSON.parse judges it
      while (this.pos < b.length && !isSpace(b[this.pos]) && b[this.pos] !== 0x2c && b[this.pos] !== 0x5d) this.pos++;
      if (this.pos === start) this.broken(`no record ${this.count + 1} where one should be, at byte ${start} (a "," too many?)`);
    }
    this.count++;
    return [start, this.pos];
  }

  private close(): null {
    this.pos++;
    this.skipSpace();
    if (this.pos < this.bytes.length) this.broken(`text after the list's closing "]", at byte ${this.pos}`);
    this.done = true;
    return null;
  }
}
