// Where a benchmark file stops being JSON, as a line and column an editor can jump to. JSON.parse
// names a character offset, in some of its messages only, and for a record or a line read on its
// own that offset counts from the record's start, not the file's; this module finds the offset
// itself and turns it into the file's line and column. Only error paths call it.

/** Where the text stops being JSON (an offset; text.length when it ends early), and how. */
export interface JsonSyntaxError {
  at: number;
  /** A whole JSON value ends before `at`, where more than white space follows. */
  trailing: boolean;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const ESCAPED = '"\\/bfnrtu';
const HEX = /^[0-9a-fA-F]$/;

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** The offset after the string whose quote is at i, or the offset of what breaks it, negated minus one. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c < 0x20) return -j - 1;
    if (c === 0x5c) {
      const e = text[j + 1];
      if (e === undefined || !ESCAPED.includes(e)) return -(j + 1) - 1;
      if (e === 'u') {
        for (let k = j + 2; k < j + 6; k++) if (!HEX.test(text[k] ?? '')) return -k - 1;
        j += 4;
      }
      j++;
    }
  }
  return -text.length - 1;
}

/** The offset after the number, true, false, null or string at i, or the broken offset, negated minus one. */
function scalarEnd(text: string, i: number): number {
  if (text.charCodeAt(i) === 0x22) return stringEnd(text, i);
  for (const word of ['true', 'false', 'null']) {
    if (text[i] !== word[0]) continue;
    for (let k = 1; k < word.length; k++) if (text[i + k] !== word[k]) return -(i + k) - 1;
    return i + word.length;
  }
  return numberEnd(text, i);
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** The offset after the number at i, or the offset of the character that breaks it, negated minus one. */
function numberEnd(text: string, i: number): number {
  const digits = (j: number) => {
    if (!isDigit(text.charCodeAt(j))) return -j - 1;
    while (isDigit(text.charCodeAt(j))) j++;
    return j;
  };
  if (text.charCodeAt(i) === 0x2d) i++;
  // One 0, or digits that do not start with 0 ("01" ends after its 0, and the 1 is then out of place).
  let j = text.charCodeAt(i) === 0x30 ? i + 1 : digits(i);
  if (j >= 0 && text.charCodeAt(j) === 0x2e) j = digits(j + 1);
  if (j >= 0 && (text.charCodeAt(j) | 0x20) === 0x65) {
    j++;
    if (text.charCodeAt(j) === 0x2b || text.charCodeAt(j) === 0x2d) j++;
    j = digits(j);
  }
  return j;
}

/**
 * The first place `text` breaks JSON's grammar (the one JSON.parse reads), or null when it is
 * JSON. Open lists and objects are kept on a stack, not the call stack: a file nested deep enough
 * must give its error, not a stack overflow.
 */
export function jsonSyntaxError(text: string): JsonSyntaxError | null {
  const open: number[] = [];
  let i = skipSpace(text, 0);
  let key = false; // what comes next is an object's key, not a value
  for (;;) {
    const c = text.charCodeAt(i);
    if (key) {
      if (c !== 0x22) return { at: i, trailing: false };
      const end = stringEnd(text, i);
      if (end < 0) return { at: -end - 1, trailing: false };
      i = skipSpace(text, end);
      if (text.charCodeAt(i) !== 0x3a) return { at: i, trailing: false };
      i = skipSpace(text, i + 1);
      key = false;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      i = skipSpace(text, i + 1);
      // An empty object or list is a whole value at once.
      if (text.charCodeAt(i) === c + 2) i++;
      else {
        open.push(c);
        key = c === 0x7b;
        continue;
      }
    } else {
      const end = scalarEnd(text, i);
      if (end < 0) return { at: -end - 1, trailing: false };
      i = end;
    }
    // After a value: the closing brackets it completes, then a comma, or the end of the text.
    for (;;) {
      i = skipSpace(text, i);
      const top = open[open.length - 1];
      if (top === undefined) return i < text.length ? { at: i, trailing: true } : null;
      const next = text.charCodeAt(i);
      if (next === top + 2) {
        open.pop();
        i++;
        continue;
      }
      if (next !== 0x2c) return { at: i, trailing: false };
      i = skipSpace(text, i + 1);
      key = top === 0x7b;
      break;
    }
  }
}

/** A line and column, both from 1; columns count UTF-16 units, as editors such as VS Code do. */
export interface LineColumn {
  line: number;
  column: number;
}

/**
 * The line and column of `offset` in `text`, where the text itself starts at `start` in its file
 * (a record or a line read on its own).
 */
export function textPosition(text: string, offset: number, start: LineColumn = { line: 1, column: 1 }): LineColumn {
  let line = start.line;
  let lineStart = -1;
  for (let nl = text.indexOf('\n'); nl >= 0 && nl < offset; nl = text.indexOf('\n', nl + 1)) {
    line++;
    lineStart = nl;
  }
  return { line, column: lineStart < 0 ? start.column + offset : offset - lineStart };
}

const lenientDecoder = new TextDecoder('utf-8');

/** The line and column of byte `offset` of a file's bytes (a byte order mark is no column). */
export function bytePosition(bytes: Uint8Array, offset: number): LineColumn {
  let line = 1;
  let lineStart = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  for (let nl = bytes.indexOf(0x0a); nl >= 0 && nl < offset; nl = bytes.indexOf(0x0a, nl + 1)) {
    line++;
    lineStart = nl + 1;
  }
  return { line, column: lenientDecoder.decode(bytes.subarray(lineStart, offset)).length + 1 };
}

export function formatPosition(p: LineColumn): string {
  return `line ${p.line}, column ${p.column}`;
}

/**
 * JSON.parse's reason on one line, without the offset or the quoted text around it that its
 * messages end with: the line and column say where (the offset counts from the start of the text
 * it was given, which for a record is not the file's).
 */
export function parseReason(err: unknown): string {
  return String((err as Error)?.message ?? err)
    .replace(/( in JSON)? at position \d+.*$/s, '')
    .replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** What to do with records that each span several lines. */
const ONE_RECORD_PER_LINE = 'put each record on one line (JSON Lines, as `jq -c` writes them), or give the records as one JSON list in a .json file';

/**
 * Why line `line` of a JSON Lines file (`text`) is not JSON. `next`: the next line that is not
 * blank, if any. A line that ends inside its value, followed by one that is no whole value either,
 * is most likely the start of a record written over several lines.
 */
export function lineNotJson(source: string, line: number, text: string, err: unknown, next: string | undefined): string {
  const e = jsonSyntaxError(text);
  const column = e ? ` at column ${e.at + 1}` : '';
  const endsEarly = e?.at === text.length;
  let hint = 'the file looks like JSON Lines';
  if (endsEarly && next === undefined) hint += ', and it ends inside this line\'s record; is it cut short?';
  else if (endsEarly && jsonSyntaxError(next!) !== null) hint = `the record goes on past the end of the line, but JSON Lines takes each record whole on one line; ${ONE_RECORD_PER_LINE}`;
  return `${source}: line ${line} is not valid JSON${column} (${parseReason(err)}) — ${hint}`;
}

/** Why a record or list item (`name`), read on its own from byte `from` of the file, is not JSON. */
export function itemNotJson(source: string, name: string, bytes: Uint8Array, from: number, text: string, err: unknown): string {
  const e = jsonSyntaxError(text);
  const where = e ? ` at ${formatPosition(textPosition(text, e.at, bytePosition(bytes, from)))}` : '';
  return `${source}: ${name} is not valid JSON${where} (${parseReason(err)})`;
}

/**
 * Why a file read whole (`text`, after any byte order mark) is not JSON. A whole object that
 * spans lines followed by another object is records pretty-printed one after another (`jq .`
 * writes them so, and so does json.dump per record with an indent): said so, with what to do.
 */
export function documentNotJson(source: string, text: string, err: unknown): string {
  const e = jsonSyntaxError(text);
  if (!e) return `${source}: not valid JSON (${parseReason(err)})`;
  const pos = textPosition(text, e.at);
  // Records: objects, one after the other.
  const start = skipSpace(text, 0);
  if (e.trailing && text[start] === '{' && text[e.at] === '{') {
    const first = textPosition(text, start).line;
    let end = e.at;
    while (isSpace(text.charCodeAt(end - 1))) end--;
    const last = textPosition(text, end - 1).line;
    if (last > first) {
      return `${source}: not valid JSON at ${formatPosition(pos)} (a second JSON value starts there, after one on lines ${first}-${last}) — records that each span several lines are neither JSON nor JSON Lines; ${ONE_RECORD_PER_LINE}`;
    }
  }
  return `${source}: not valid JSON at ${formatPosition(pos)} (${parseReason(err)})`;
}
