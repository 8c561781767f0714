// JSON Lines benchmark files: the first line tells the format and is then the first record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCases } from '../src/data/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-jsonl-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const record = (i: number) => ({
  case_id: i, requested_rewrite: { prompt: '{} is in', subject: `S${i}`, target_new: { str: 'A' }, target_true: { str: 'B' } },
  paraphrase_prompts: [], neighborhood_prompts: [],
});

test('a JSON Lines file: each line is parsed once, the first one too (detection parses it, loading keeps it)', () => {
  const lines = [0, 1, 2].map((i) => JSON.stringify(record(i)));
  const file = path.join(tmp, 'cf.jsonl');
  fs.writeFileSync(file, `\n${lines.join('\n')}\n`);
  const parsed = new Map<string, number>();
  const parse = JSON.parse;
  JSON.parse = (text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    parsed.set(text, (parsed.get(text) ?? 0) + 1);
    return parse(text, reviver);
  };
  let got: ReturnType<typeof loadCases>;
  try {
    got = loadCases(file);
  } finally {
    JSON.parse = parse;
  }
  assert.equal(got.format, 'counterfact');
  assert.deepEqual(got.cases.map((c) => c.subject), ['S0', 'S1', 'S2']);
  assert.deepEqual(lines.map((l) => parsed.get(l)), [1, 1, 1]);
});
