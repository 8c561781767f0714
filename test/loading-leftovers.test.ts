// Loading a model folder when its files are not quite what they should be: each case is either
// loaded as transformers would load it (with a warning saying what was off) or refused in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { INDEX_FILE, readCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { loadCases } from '../src/data/index.js';
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

/** A copy of the demo model's folder (the weights linked, not copied) to break one file of. */
function worldCopy(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(world)) fs.symlinkSync(path.join(world, f), path.join(dir, f));
  return dir;
}

test('config.json, generation_config.json, tokenizer.json or the weights index that is a folder is named as one, not as invalid JSON or EISDIR', () => {
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'model.safetensors.index.json']) {
    const dir = worldCopy(`folder-${f}`);
    fs.rmSync(path.join(dir, f), { force: true });
    if (f === 'model.safetensors.index.json') fs.rmSync(path.join(dir, 'model.safetensors')); // the index is read when there is no single file
    fs.mkdirSync(path.join(dir, f));
    assert.throws(() => CausalLM.loadDir(dir), (e: unknown) => e instanceof AmendError
      && e.message.startsWith(`${path.join(dir, f)}: is a folder, not a JSON file`) && !/JSON \(|EISDIR/.test(e.message), f);
  }
});

test('a safetensors header that starts with a UTF-8 byte order mark is refused, as the reference reader refuses it', () => {
  const json = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const write = (name: string, header: Buffer): string => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const file = path.join(tmp, name);
    fs.writeFileSync(file, Buffer.concat([len, header, Buffer.alloc(4)]));
    return file;
  };
  assert.equal(readSafetensorsHeader(write('plain.safetensors', json)).entries.length, 1);
  assert.throws(() => readSafetensorsHeader(write('bom.safetensors', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json]))),
    (e: unknown) => e instanceof AmendError && /bom\.safetensors: the header starts with a UTF-8 byte order mark/.test(e.message));
});

test('a record or a whole-file document over the string limit is named by its size and the limit, not as bad UTF-8', () => {
  // Sparse files: 600 MiB on paper, a few bytes on disk. A record first, so that only the size is wrong.
  const record = '{"prompt": "{} was born in", "subject": "Lily", "targetNew": "Paris"}';
  // JSON Lines and JSON lists are read a record at a time: --n 1 uses the first record alone, and
  // only a record that large is refused, by its number.
  const jsonl = path.join(tmp, 'big.jsonl');
  fs.writeFileSync(jsonl, record + '\n');
  fs.truncateSync(jsonl, 600 * 2 ** 20);
  assert.equal(loadCases(jsonl, { limit: 1 }).cases.length, 1);
  assert.throws(() => loadCases(jsonl), (e: unknown) => e instanceof AmendError
    && /big\.jsonl: line 2 is \d+\.\d MiB, over the 512 MiB one text can hold \(a JavaScript string's limit\)/.test(e.message) && !/UTF-8/.test(e.message));
  const list = path.join(tmp, 'big.json');
  fs.writeFileSync(list, `[${record},\n`);
  fs.truncateSync(list, 600 * 2 ** 20);
  assert.throws(() => loadCases(list), (e: unknown) => e instanceof AmendError
    && /big\.json: record 2 \(index 1\) is \d+\.\d MiB, over the 512 MiB one text can hold/.test(e.message) && !/UTF-8/.test(e.message));
  // One JSON document (not a list, not JSON Lines) is parsed whole: refused by its size.
  const doc = path.join(tmp, 'big-object.json');
  fs.writeFileSync(doc, '{\n  "records": [' + record + ',\n');
  fs.truncateSync(doc, 600 * 2 ** 20);
  assert.throws(() => loadCases(doc), (e: unknown) => e instanceof AmendError
    && /big-object\.json: is 600\.0 MiB of one JSON document, over the 512 MiB one text can hold \(a JavaScript string's limit\); give the records as a JSON list or JSON Lines/.test(e.message));
});

/** The demo model's weights in `dtype`, sharded, after `damage` changed some of them. */
function damaged(name: string, dtype: 'F32' | 'F16' | 'BF16', damage: (tensors: ReturnType<typeof readCheckpoint>['tensors']) => void): string {
  const dir = path.join(tmp, name);
  const { tensors } = readCheckpoint(world);
  damage(tensors);
  writeCheckpoint(dir, tensors, { maxShardBytes: 400_000, dtype });
  fs.copyFileSync(path.join(world, 'config.json'), path.join(dir, 'config.json'));
  return dir;
}

test('weights holding NaN or ±Inf are refused on load, naming the shard, the tensor and the count; F16 and BF16 files too', async () => {
  const name = 'transformer.h.1.mlp.c_fc.weight';
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const dir = damaged(`nan-${dtype}`, dtype, (t) => {
      const w = t.get(name)!.data;
      w[7] = NaN;
      w[w.length - 1] = -Infinity;
      w[1000] = Infinity;
    });
    const shard = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8')).weight_map[name];
    const refused = (e: unknown) => e instanceof AmendError && e.message === `${path.join(dir, shard)}: tensor "${name}" holds 3 non-finite values (NaN/Inf); the checkpoint is damaged — download or convert it again`;
    assert.throws(() => CausalLM.loadDir(dir), refused, dtype);
    await assert.rejects(CausalLM.load(dir), refused, dtype);
  }
  // The check reads the tensors the forward pass uses: the untouched model loads, and so does one
  // whose only non-finite value lies in a tensor that the forward pass never reads.
  CausalLM.loadDir(damaged('clean', 'F32', () => {}));
  const extra = damaged('buffer', 'F32', (t) => {
    t.set('transformer.h.0.attn.masked_bias', { name: 'transformer.h.0.attn.masked_bias', dtype: 'F32', shape: [1], data: Float32Array.of(-Infinity) });
  });
  assert.equal(CausalLM.loadDir(extra).weights.get('transformer.h.0.attn.masked_bias')!.data[0], -Infinity);
});
