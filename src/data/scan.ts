// The records of a JSON list file, one at a time, straight from its bytes. A full benchmark file
// (CounterFact: 21,919 records, about 60 MB) parsed whole costs its text as a string and every
// record as objects at once, when `--n 10` uses ten of them; here only the records asked for are
// decoded and parsed, the others are only counted. The same holds for the lines of a JSON Lines
// file and for the lists inside one object (KnowEdit Sanitation).
import { AmendError } from '../errors.js';
import { bytePosition, formatPosition } from './json-error.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The byte after a UTF-8 byte order mark, or 0 when there is none. */
export function bomEnd(bytes: Uint8Array): number {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
}

/** The byte where the content starts (after a byte order mark and white space), or where it goes on after `from`. */
export function contentStart(bytes: Uint8Array, from = bomEnd(bytes)): number {
  let i = from;
  while (isSpace(bytes[i])) i++;
  return i;
}

/** What the scanners share: the bytes, a position in them, and errors that name the file. */
class Walker {
  constructor(protected readonly bytes: Uint8Array, protected pos: number, protected readonly source: string) {}

  /** `at`: the byte where it breaks, named by its line and column (a file cut short needs none). */
  protected broken(what: string, at?: number): never {
    const where = at === undefined ? '' : ` at ${formatPosition(bytePosition(this.bytes, at))}`;
    throw new AmendError(`${this.source}: not valid JSON${where} (${what})`);
  }

  protected skipSpace(): void {
    while (isSpace(this.bytes[this.pos])) this.pos++;
  }

  /** The position after the string whose opening quote is at p; `cut` when the file ends first. */
  protected stringEnd(p: number, cut: () => never): number {
    const b = this.bytes;
    for (;;) {
      const q = b.indexOf(QUOTE, p + 1);
      if (q < 0) cut();
      let k = q - 1;
      while (b[k] === BACKSLASH) k--;
      if ((q - 1 - k) % 2 === 0) return q + 1;
      p = q;
    }
  }

  /**
   * The position after the value that starts at `start`: an object or list up to its matching
   * bracket, a string, or a bare word (number, true, false, null) up to white space, "," or a
   * closing bracket. `cut` when the file ends inside it.
   */
  protected valueEnd(start: number, cut: () => never): number {
    const b = this.bytes;
    let p = start;
    const c = b[p];
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      do {
        if (p >= b.length) cut();
        const x = b[p]!;
        if (x === QUOTE) {
          p = this.stringEnd(p, cut);
          continue;
        }
        if (x === 0x7b || x === 0x5b) depth++;
        else if (x === 0x7d || x === 0x5d) depth--;
        p++;
      } while (depth > 0);
      return p;
    }
    if (c === QUOTE) return this.stringEnd(p, cut);
    while (p < b.length && !isSpace(b[p]) && b[p] !== 0x2c && b[p] !== 0x5d && b[p] !== 0x7d) p++;
    return p;
  }

  /** Only white space may follow `pos` to the end of the file. */
  protected checkEnd(what: string): void {
    this.skipSpace();
    if (this.pos < this.bytes.length) this.broken(`text after ${what}`, this.pos);
  }
}

/**
 * Walks the top-level elements of the list that starts at `start` ("["). `next()` gives the byte
 * range of each element and null after the closing "]". It checks the list's structure (commas,
 * nesting, the end of the file); an element's own syntax is JSON.parse's to check, when it is parsed.
 * `item` names an element in errors ("record", or '"success" item' for a list inside an object,
 * where what follows its "]" is the object's to check).
 */
export class ListScanner extends Walker {
  private first = true;
  private done = false;
  /** Elements returned so far. */
  count = 0;

  constructor(bytes: Uint8Array, start: number, source: string, private readonly item = 'record', private readonly nested = false) {
    super(bytes, start + 1, source);
  }

  private cut = (): never => this.broken(`the file ends inside ${this.item} ${this.count + 1}; is it cut short?`);

  next(): [number, number] | null {
    const b = this.bytes;
    if (this.done) return null;
    this.skipSpace();
    // The end right after an element: the list's "]" is what is missing, not more of an element.
    if (this.pos >= b.length) {
      if (this.first) this.cut();
      this.broken(`the file ends after ${this.item} ${this.count} without the list's closing "]"; is it cut short?`);
    }
    if (b[this.pos] === 0x5d) return this.close();
    if (!this.first) {
      if (b[this.pos] !== 0x2c) this.broken(`expected "," or "]" after ${this.item} ${this.count}, found ${JSON.stringify(String.fromCharCode(b[this.pos]!))}`, this.pos);
      this.pos++;
      this.skipSpace();
      if (this.pos >= b.length) this.cut();
    }
    this.first = false;
    const start = this.pos;
    this.pos = this.valueEnd(start, this.cut);
    // a number, true, false or null ends at white space, "," or "]": JSON.parse judges it
    if (this.pos === start) this.broken(`no ${this.item} ${this.count + 1} where one should be; a "," too many?`, start);
    this.count++;
    return [start, this.pos];
  }

  private close(): null {
    this.pos++;
    if (!this.nested) this.checkEnd('the list\'s closing "]"');
    this.done = true;
    return null;
  }
}

/**
 * The members of the object that starts at `start` ("{"), as byte ranges of their values by key
 * (the last of a repeated key, as JSON.parse keeps), without parsing the values. It checks the
 * object's structure to the end of the file, as ListScanner does a list's; `key` decodes a key.
 */
export function objectMembers(bytes: Uint8Array, start: number, source: string, key: (at: [number, number]) => string): Map<string, [number, number]> {
  return new ObjectScanner(bytes, start, source).members(key);
}

class ObjectScanner extends Walker {
  private cut = (): never => this.broken('the file ends inside the object; is it cut short?');

  constructor(bytes: Uint8Array, start: number, source: string) {
    super(bytes, start + 1, source);
  }

  members(key: (at: [number, number]) => string): Map<string, [number, number]> {
    const b = this.bytes;
    const out = new Map<string, [number, number]>();
    this.skipSpace();
    if (this.pos >= b.length) this.cut();
    if (b[this.pos] !== 0x7d) {
      for (;;) {
        if (b[this.pos] !== QUOTE) this.broken('expected a quoted key', this.pos);
        const k0 = this.pos;
        this.pos = this.stringEnd(k0, this.cut);
        const name = key([k0, this.pos]);
        this.skipSpace();
        if (b[this.pos] !== 0x3a) this.broken(`expected ":" after the key ${JSON.stringify(name)}`, this.pos);
        this.pos++;
        this.skipSpace();
        if (this.pos >= b.length) this.cut();
        const v0 = this.pos;
        this.pos = this.valueEnd(v0, this.cut);
        if (this.pos === v0) this.broken(`no value for the key ${JSON.stringify(name)}`, v0);
        out.set(name, [v0, this.pos]);
        this.skipSpace();
        if (this.pos >= b.length) this.cut();
        if (b[this.pos] === 0x7d) break;
        if (b[this.pos] !== 0x2c) this.broken(`expected "," or "}" after the value of ${JSON.stringify(name)}`, this.pos);
        this.pos++;
        this.skipSpace();
      }
    }
    this.pos++;
    this.checkEnd('the object\'s closing "}"');
    return out;
  }
}

/**
 * The lines of a JSON Lines file that are not blank (white space only), from byte `start` on:
 * `next()` gives the byte range of each (without its "\r\n" or "\n") and its line number.
 */
export class LineScanner {
  private pos: number;
  private lineNo = 0;
  /** Lines returned so far. */
  count = 0;

  constructor(private readonly bytes: Uint8Array, start: number) {
    this.pos = start;
  }

  next(): [number, number, number] | null {
    const b = this.bytes;
    while (this.pos < b.length) {
      const nl = b.indexOf(0x0a, this.pos);
      const end = nl < 0 ? b.length : nl;
      const start = this.pos;
      this.pos = end + 1;
      this.lineNo++;
      let k = start;
      while (k < end && isSpace(b[k])) k++;
      if (k === end) continue;
      this.count++;
      return [start, b[end - 1] === 0x0d ? end - 1 : end, this.lineNo];
    }
    return null;
  }
}
