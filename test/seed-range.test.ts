// Seeds, wherever one is taken (command line, library options, hparams): an integer from 0 to
// 2^32 − 1, since the generators keep 32 bits and a larger or fractional seed would silently give
// the samples of another one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/model.js';
import { generate } from '../src/models/generate.js';
import { sampleTexts } from '../src/eval/index.js';
import { resolveHparams } from '../src/editors/index.js';
import { resolveCorpus } from '../src/stats/corpus.js';
import { buildDemoWorld } from '../src/world/index.js';
import { buildWorldModel } from '../src/world/build.js';
import { assertOneLineError, repoRoot, runCli } from './helpers.js';

const refused = (re: RegExp) => (e: unknown) => e instanceof AmendError && re.test(e.message);

test('the command line refuses a seed outside 0..2^32-1 wherever it takes one', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-seed-'));
  try {
    const build = path.join(out, 'w');
    const cases: string[][] = [
      ['demo', '--seed', '4294967296'],
      ['demo', '--seed', '-1'],
      ['world', 'build', '--small', '--seed', '4294967296', '--out', build],
      ['generate', '--model', 'world', '--seed', '-1', 'x'],
    ];
    for (const args of cases) assertOneLineError(runCli(args), /--seed must be an integer from 0 to 4294967295, got "(4294967296|-1)"/);
    assert.equal(fs.existsSync(build), false, 'nothing written');
    // The largest seed is still one.
    const ok = runCli(['generate', '--model', 'world', '--seed', '4294967295', '--temperature', '1', '-n', '2', 'The', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('the library refuses seeds that would wrap (generate, fluency, model samples, world builds, hparams)', async () => {
  const model = CausalLM.loadDir(path.join(repoRoot(), 'world'));
  for (const seed of [-1, 2 ** 32, 1.5]) {
    const re = new RegExp(`seed must be an integer from 0 to 4294967295, got ${String(seed).replace('.', '\\.')}`);
    assert.throws(() => generate(model, [[1, 2]], { maxNewTokens: 1, greedy: false, seed }), refused(/^generate: /), `generate ${seed}`);
    assert.throws(() => generate(model, [[1, 2]], { maxNewTokens: 1, greedy: false, seed }), refused(re));
    assert.throws(() => sampleTexts(model, ['The'], { maxLength: 3, seed }), refused(/^fluency: seed/));
    assert.throws(() => resolveCorpus({ kind: 'model-samples', seed }), refused(/^model-samples: seed/));
    assert.throws(() => buildDemoWorld({ seed }), refused(/^buildDemoWorld: seed/));
    await assert.rejects(buildWorldModel({ out: path.join(os.tmpdir(), 'amend-seed-never'), seed, small: true }), refused(/^buildWorldModel: seed/));
  }
  assert.equal(fs.existsSync(path.join(os.tmpdir(), 'amend-seed-never')), false);
  assert.throws(() => resolveHparams('rome', model, { overrides: { context_template_seed: 2 ** 32 } }),
    refused(/context_template_seed must be an integer from 0 to 4294967295, got 4294967296/));
  // At the top of the range the per-chunk seeds fluency derives still sample.
  assert.equal(sampleTexts(model, ['The', 'A'], { maxLength: 3, seed: 2 ** 32 - 1, batchSize: 1 }).length, 2);
});
