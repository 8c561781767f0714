// A corpus with fewer texts than the samples asked for is used whole; the user hears so once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM } from '../src/models/model.js';
import { layerSecondMoments } from '../src/stats/index.js';
import { repoRoot, runCli, warningsOf } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-fewer-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const corpus = path.join(tmp, 'five.txt');
fs.writeFileSync(corpus, 'one two three\nfour five\nsix seven eight\nnine\nten eleven\n');

test('statistics asked for more samples than the corpus has: one warning naming both numbers, the actual count recorded', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  const cacheDir = path.join(tmp, 'cache');
  let got: Awaited<ReturnType<typeof layerSecondMoments>> = [];
  const first = await warningsOf(async () => { got = await layerSecondMoments(model, [0, 1], { corpus, samples: 10, cacheDir }); });
  assert.equal(first.length, 1, first.join('\n'));
  assert.match(first[0]!, /five\.txt has 5 texts, fewer than the 10 samples asked for/);
  assert.deepEqual(got.map((sm) => [sm.samples, sm.requestedSamples]), [[5, 10], [5, 10]]);
  // Enough texts, or no number asked for: nothing to say.
  assert.deepEqual(await warningsOf(() => layerSecondMoments(model, [0], { corpus, samples: 5, cacheDir })), []);
  assert.deepEqual(await warningsOf(() => layerSecondMoments(model, [0], { corpus: path.join(repoRoot(), 'world', 'corpus-heldout.txt'), cacheDir, samples: 50 })), []);

  // The command line, from the cache this time: the same line, once for two layers.
  const r = runCli(['stats', '--model', 'world', '--layers', '0,1', '--corpus', corpus, '--samples', '10'], cacheDir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stderr.trim().split('\n').filter((l) => l.includes('warning')), [
    `amend: warning: corpus ${corpus} has 5 texts, fewer than the 10 samples asked for (--samples, mom2_n_samples); the statistics use all 5, and record that number`,
  ]);
  assert.match(r.stdout, /from 5 samples \(cached\)/);
});
