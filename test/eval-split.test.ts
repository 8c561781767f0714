// The per-split-label breakdown of a summary (MQuAKE-Remastered's CF-6334 reports train_edited and
// test_edited apart): hand-computed means and intervals per label, computed by the summary's own
// code, and summaries byte for byte as before for runs with nothing to break down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers.js';
import { PIN_RUNS, writePinRun } from './summary-pin.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-eval-split-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('runs with no split labels, one label in the named run split, or no run split named: summary.md and summary.json as before, byte for byte', () => {
  for (const run of PIN_RUNS) {
    const got = writePinRun(tmp, run);
    for (const [file, text] of Object.entries(got)) {
      assert.equal(text, fs.readFileSync(path.join(repoRoot(), 'test', 'fixtures', 'summary-pin', run.fixture, file), 'utf8'), `${run.what}: ${file}`);
    }
  }
});
