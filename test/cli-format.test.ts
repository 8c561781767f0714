// How the commands print numbers: one formatter each, shared by the commands that print them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmtP } from '../src/cli/progress.js';

test('probabilities: 3 decimals, 1 significant digit below 0.001, – for none (amend edit printed NaN, and nothing for a missing one)', () => {
  assert.equal(fmtP(0.5), '0.500');
  assert.equal(fmtP(1), '1.000');
  assert.equal(fmtP(0.001), '0.001');
  assert.equal(fmtP(0.000_42), '4.2e-4');
  assert.equal(fmtP(0), '0.0e+0');
  assert.equal(fmtP(Number.NaN), '–');
  assert.equal(fmtP(Number.POSITIVE_INFINITY), '–');
  assert.equal(fmtP(undefined), '–');
});
