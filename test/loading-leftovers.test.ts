// Loading a model folder when its files are not quite what they should be: each case is either
// loaded as transformers would load it (with a warning saying what was off) or refused in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { INDEX_FILE, readCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { CausalLM } from '../src/models/model.js';
import { exportModel } from '../src/patch/export.js';
import { repoRoot, warningsOf } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-loading-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const world = path.join(repoRoot(), 'world');

/** The demo model in several shards, with `forget` left out of the index's weight_map. */
function shardedWithout(name: string, forget: string[]): string {
  const dir = path.join(tmp, name);
  writeCheckpoint(dir, readCheckpoint(world).tensors, { maxShardBytes: 400_000 });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(world, f), path.join(dir, f));
  const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
  for (const n of forget) {
    assert.ok(n in index.weight_map, n);
    delete index.weight_map[n];
  }
  fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify(index));
  return dir;
}

test('a tensor a shard holds but the index does not list is loaded (as transformers does), with a warning, and kept by export', async () => {
  const forgotten = ['transformer.h.1.ln_2.weight', 'transformer.h.2.ln_1.bias'];
  const dir = shardedWithout('unlisted', forgotten);
  let model: CausalLM | undefined;
  const warnings = await warningsOf(() => { model = CausalLM.loadDir(dir); });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /2 tensors in the shards are not listed in model\.safetensors\.index\.json \(e\.g\. "transformer\.h\.\d\.[\w.]+" in model-\d{5}-of-\d{5}\.safetensors\); loaded from their shards/);
  const original = CausalLM.loadDir(world);
  for (const n of forgotten) assert.deepEqual(model!.weights.get(n)!.data, original.weights.get(n)!.data, n);

  // Export writes what was loaded, and its index lists every tensor again.
  const out = path.join(tmp, 'unlisted-export');
  exportModel(model!, out);
  const index = JSON.parse(fs.readFileSync(path.join(out, INDEX_FILE), 'utf8'));
  for (const n of forgotten) assert.ok(n in index.weight_map, `${n} in the exported index`);
  assert.deepEqual(Object.keys(index.weight_map).sort(), [...original.weights.keys()].sort());
  assert.deepEqual(await warningsOf(() => CausalLM.loadDir(out)), [], 'the export loads without a warning');
});

test('a tensor two shards hold and the index lists under neither is refused in one line', () => {
  const forgotten = 'transformer.h.0.ln_1.bias';
  const index = JSON.parse(fs.readFileSync(path.join(shardedWithout('twice-listed', []), INDEX_FILE), 'utf8'));
  const dir = shardedWithout('twice', [forgotten]);
  // Another shard than its own holds a copy of it too.
  const other = [...new Set(Object.values(index.weight_map) as string[])].sort().find((s) => s !== index.weight_map[forgotten])!;
  const ck = readCheckpoint(world);
  const names = [...Object.keys(index.weight_map).filter((n) => index.weight_map[n] === other), forgotten];
  writeCheckpoint(path.join(tmp, 'other'), names.map((n) => ck.tensors.get(n)!));
  fs.copyFileSync(path.join(tmp, 'other', 'model.safetensors'), path.join(dir, other));
  assert.throws(() => CausalLM.loadDir(dir), (e: unknown) => e instanceof AmendError
    && /tensor "transformer\.h\.0\.ln_1\.bias" is in both model-\d+-of-\d+\.safetensors and model-\d+-of-\d+\.safetensors, and model\.safetensors\.index\.json lists neither/.test(e.message));
});
