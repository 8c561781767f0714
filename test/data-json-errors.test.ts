// Benchmark files that are not JSON: the error names the file's line and column (not an offset,
// nor one counted from a record's start), and records written over several lines in what should
// be JSON Lines are said to be that, with what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { loadCases } from '../src/data/index.js';
import { jsonSyntaxError } from '../src/data/json-error.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-json-errors-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

function loadError(file: string, limit?: number): string {
  let message = '';
  assert.throws(() => loadCases(file, { limit }), (e: Error) => {
    assert.ok(e instanceof AmendError, `not an AmendError: ${e}`);
    assert.ok(!e.message.includes('\n'), `not one line: ${e.message}`);
    message = e.message;
    return true;
  });
  return message;
}

const request = (i: number) => ({ prompt: `{} number ${i} lives in`, subject: `Person ${i}`, targetNew: `City ${i}` });
const SPLIT_HINT = /JSON Lines takes each record whole on one line|records that each span several lines are neither JSON nor JSON Lines/;
const WHAT_TO_DO = /put each record on one line \(JSON Lines, as `jq -c` writes them\), or give the records as one JSON list in a \.json file$/;

test('JSON Lines whose records each span two lines: the line where the second record starts, and what to do', () => {
  const file = write('split.jsonl', '{"prompt": "a {}", "subject": "x",\n "targetNew": "y"}\n{"prompt": "b {}", "subject": "z",\n "targetNew": "w"}\n');
  const message = loadError(file);
  assert.match(message, /split\.jsonl: not valid JSON at line 3, column 1 \(a second JSON value starts there, after one on lines 1-2\) — records that each span several lines/);
  assert.match(message, WHAT_TO_DO);
});

test('records pretty-printed one after another (jq . output) are named as such', () => {
  const pretty = [0, 1, 2].map((i) => JSON.stringify(request(i), null, 2));
  const message = loadError(write('jq.jsonl', `${pretty.join('\n')}\n`));
  const second = pretty[0]!.split('\n').length + 1;
  assert.match(message, new RegExp(`jq\\.jsonl: not valid JSON at line ${second}, column 1 \\(a second JSON value starts there, after one on lines 1-${second - 1}\\)`));
  assert.match(message, WHAT_TO_DO);
});

test('JSON Lines whose first record is on one line and a later one over several: the line it starts on', () => {
  const lines = [JSON.stringify(request(0)), JSON.stringify(request(1)), '{"prompt": "{} lives in",', '  "subject": "S", "targetNew": "T"}'];
  const message = loadError(write('mixed.jsonl', `${lines.join('\r\n')}\r\n`));
  assert.match(message, new RegExp(`mixed\\.jsonl: line 3 is not valid JSON at column ${lines[2]!.length + 1} \\(.*\\) — the record goes on past the end of the line`));
  assert.match(message, WHAT_TO_DO);
});

test('a broken line in a good JSON Lines file: its line and column, with no hint about split records', () => {
  const lines = [0, 1, 2, 3].map((i) => JSON.stringify(request(i)));
  lines[2] = lines[2]!.replace('"subject"', '"subject" "extra"');
  const message = loadError(write('broken.jsonl', `${lines.join('\n')}\n`));
  const column = lines[2]!.indexOf('"extra"') + 1;
  assert.match(message, new RegExp(`broken\\.jsonl: line 3 is not valid JSON at column ${column} \\(Unexpected string\\) — the file looks like JSON Lines$`));
  assert.doesNotMatch(message, SPLIT_HINT);
  // a first line cut short, with whole records after it: a broken line too, not a split record
  const cut = loadError(write('cut-first.jsonl', `${lines[0]!.slice(0, 25)}\n${lines[1]}\n`));
  assert.match(cut, /cut-first\.jsonl: line 1 is not valid JSON at column 26 \(.*\) — the file looks like JSON Lines$/);
  // a last line cut short: the file is
  const last = loadError(write('cut-last.jsonl', `${lines[0]}\n${lines[1]!.slice(0, 25)}`));
  assert.match(last, /cut-last\.jsonl: line 2 is not valid JSON at column 26 \(.*\) — the file looks like JSON Lines, and it ends inside this line's record; is it cut short\?$/);
});

test('a JSON list with a syntax error: the file\'s line and column, inside a record and between records', () => {
  const recs = [0, 1, 2].map(request);
  const pretty = JSON.stringify(recs, null, 2);
  const position = (text: string, at: number) => {
    const before = text.slice(0, at).split('\n');
    return `line ${before.length}, column ${before.at(-1)!.length + 1}`;
  };
  // a trailing comma inside record 2: named by the record and where in the file it breaks
  const comma = pretty.replace('"City 1"', '"City 1",');
  const inRecord = loadError(write('comma.json', comma));
  assert.equal(inRecord, `${path.join(tmp, 'comma.json')}: record 2 (index 1) is not valid JSON at ${position(comma, comma.indexOf('}', comma.indexOf('"City 1",')))} (Expected double-quoted property name)`);
  // a missing comma between records 1 and 2: where record 2 starts
  const nocomma = pretty.replace('},\n  {', '}\n  {');
  assert.match(loadError(write('nocomma.json', nocomma), 1), new RegExp(`not valid JSON at ${position(nocomma, nocomma.indexOf('}\n  {') + 4)} \\(expected "," or "\\]" after record 1`));
  // columns count characters, not bytes, when a line holds non-ASCII text before the error
  const wide = `[${JSON.stringify({ ...request(0), subject: 'Zürich–東京 😀' })}, {"prompt": oops}]`;
  assert.match(loadError(write('wide.json', wide)), new RegExp(`record 2 \\(index 1\\) is not valid JSON at line 1, column ${wide.indexOf('oops') + 1} \\(Unexpected token 'o'\\)$`));
});

test('a JSON document read whole with a syntax error: its line and column', () => {
  // a comma missing between two members of KnowEdit Sanitation's object; its line 3 is a whole
  // record on its own, yet the file is no JSON Lines with a broken line 1
  const text = `{\n  "success": [\n    {"question": "q", "ground_truth": "a", "target_new": "b"}\n  ]\n  "locality": []\n}\n`;
  assert.match(loadError(write('object.json', text)), /object\.json: not valid JSON at line 5, column 3 \(Expected ',' or '\}' after property value\)$/);
  // a stray "}" after a pretty-printed object starts no second record
  const stray = loadError(write('stray.json', JSON.stringify(request(0), null, 2) + '\n}\n'));
  assert.match(stray, /stray\.json: not valid JSON at line 6, column 1 \(Unexpected non-whitespace character after JSON\)$/);
  assert.doesNotMatch(stray, SPLIT_HINT);
  const bare = loadError(write('bare.json', '\n\n  nul'));
  assert.match(bare, /bare\.json: not valid JSON at line 3, column 6 \(Unexpected end of JSON input\)$/);
});

test('jsonSyntaxError agrees with JSON.parse on what is JSON, and on the offset where JSON.parse names one', () => {
  const seeds = [
    JSON.stringify([{ a: [1, -2.5e3, true, false, null, 'x\u00e9\n\\"', {}, []], b: { c: '' } }], null, 2),
    '{"s": "\\u00e9\\t", "n": [0, 1e-7, -0.5E+2]}',
  ];
  const alphabet = ' \n{}[],:"\\0123456789.-+eEtrufalsnx\u0001é';
  let state = 7;
  const random = (n: number) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return Math.floor((state / 2147483648) * n);
  };
  let positions = 0;
  for (let k = 0; k < 5000; k++) {
    let text = seeds[k % seeds.length]!;
    const at = random(text.length + 1);
    const ch = alphabet[random(alphabet.length)]!;
    const op = random(3);
    text = op === 0 ? text.slice(0, at) + ch + text.slice(at) : op === 1 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ch + text.slice(at + 1);
    let reason: string | null = null;
    try {
      JSON.parse(text);
    } catch (e) {
      reason = (e as Error).message;
    }
    const found = jsonSyntaxError(text);
    assert.equal(found === null, reason === null, `${JSON.stringify(text)}: JSON.parse says ${reason ?? 'it is JSON'}`);
    const offset = reason === null ? null : /at position (\d+)/.exec(reason);
    if (offset) {
      positions++;
      assert.equal(found!.at, Number(offset[1]), `${JSON.stringify(text)}: ${reason}`);
    }
  }
  assert.ok(positions > 1000, 'enough of the mutations broke the text where JSON.parse names an offset');
  // nesting deeper than a call stack goes: an answer, not a RangeError
  assert.deepEqual(jsonSyntaxError('['.repeat(200_000)), { at: 200_000, trailing: false });
});
