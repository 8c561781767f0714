// A checkpoint written by Amend reloads bit-identically, single-file and sharded, and the
// reloaded model computes the same logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { CausalLM, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { sharedDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-roundtrip-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function saveModel(model: CausalLM, dir: string, maxShardBytes?: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const records = [...model.weights].map(([name, t]) => ({ name, dtype: model.dtypes.get(name)!, shape: [...t.shape], data: t.data }));
  writeCheckpoint(dir, records, { maxShardBytes });
  fs.copyFileSync(path.join(model.dir!, 'config.json'), path.join(dir, 'config.json'));
}

function assertSameBytes(a: string, b: string): void {
  const ra = readCheckpoint(a).tensors, rb = readCheckpoint(b).tensors;
  assert.deepEqual([...ra.keys()].sort(), [...rb.keys()].sort());
  for (const [name, x] of ra) {
    const y = rb.get(name)!;
    assert.equal(y.dtype, x.dtype, name);
    assert.deepEqual(y.shape, x.shape, name);
    assert.ok(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength)
      .equals(Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength)), `${name}: bytes differ`);
  }
}

const sources: [string, string | null][] = [
  ['random gpt2', writeRandomCheckpoint(path.join(tmp, 'src-random'), gpt2Config({ layers: 3 }))],
  ['tiny-random-llama', sharedDir('models') && path.join(sharedDir('models')!, 'tiny-random-llama')],
];

for (const [label, src] of sources) {
  test(`${label}: written checkpoints reload bit-identically`, { skip: src ? false : '../shared/models is absent' }, () => {
    const model = CausalLM.loadDir(src!, { noTokenizer: true });
    const single = path.join(tmp, `${label}-single`), sharded = path.join(tmp, `${label}-sharded`);
    saveModel(model, single);
    saveModel(model, sharded, 20_000);
    assert.ok(fs.existsSync(path.join(sharded, 'model.safetensors.index.json')), 'expected a sharded checkpoint');
    assertSameBytes(src!, single);
    assertSameBytes(src!, sharded);
    const ids = Int32Array.from([1, 5, 9, 2]);
    const want = model.forward(ids, 1, 4).logits!.data;
    for (const dir of [single, sharded]) {
      const got = CausalLM.loadDir(dir, { noTokenizer: true }).forward(ids, 1, 4).logits!.data;
      assert.deepEqual(Array.from(got), Array.from(want));
    }
  });
}
