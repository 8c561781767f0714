import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AmendError } from '../src/errors.js';
import { readCheckpoint, readCheckpointAsync, writeCheckpoint, INDEX_FILE } from '../src/io/checkpoint.js';
import { readSafetensorsHeader, writeSafetensors, type TensorRecord } from '../src/io/safetensors.js';
import { repoRoot } from './helpers.js';

const SHARED_MODELS = path.resolve(repoRoot(), '..', 'shared', 'models');

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-ckpt-'));
  dirs.push(d);
  return d;
}

function expectAmendError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmendError, `expected AmendError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'));
    return true;
  });
}

function rec(name: string, shape: number[], dtype: string, seed: number): TensorRecord {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 1000 + i) * (i % 7 === 0 ? 1e-6 : 3);
  return { name, shape, dtype, data };
}

/** The raw storage bytes of every tensor of a checkpoint directory, by name. */
function storedBytes(dir: string): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const h = readSafetensorsHeader(path.join(dir, f));
    const buf = fs.readFileSync(path.join(dir, f));
    for (const e of h.entries) out.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(h.dataStart + e.begin, h.dataStart + e.end) });
  }
  return out;
}

const TENSORS = (): TensorRecord[] => [
  rec('model.embed.weight', [64, 16], 'BF16', 1),
  rec('model.layers.0.w', [16, 32], 'F16', 2),
  rec('model.layers.0.b', [32], 'F32', 3),
  rec('model.layers.1.w', [16, 32], 'F16', 4),
  rec('model.layers.1.b', [32], 'F32', 5),
  rec('lm_head.weight', [64, 16], 'F32', 6),
];

test('single-file checkpoint: write, read, rewrite bit-identical per storage dtype', () => {
  const dir = tmpDir();
  const w = writeCheckpoint(dir, TENSORS());
  assert.equal(w.shards.length, 1);
  assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
  const c = readCheckpoint(dir);
  assert.deepEqual(c.metadata, { format: 'pt' });
  assert.deepEqual(c.shards.map((s) => s.file), ['model.safetensors']);
  assert.equal(c.tensors.get('model.layers.0.w')!.dtype, 'F16');
  assert.equal(c.tensors.get('model.embed.weight')!.dtype, 'BF16');
  const dir2 = tmpDir();
  writeCheckpoint(dir2, c.tensors);
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(fs.readFileSync(path.join(dir2, 'model.safetensors'))));
});

test('sharded checkpoint with index: layout as transformers writes it, read back bit-identical', () => {
  const dir = tmpDir();
  const tensors = TENSORS();
  const w = writeCheckpoint(dir, tensors, { maxShardBytes: 3000, metadata: { note: 'x' } });
  const files = fs.readdirSync(dir).sort();
  assert.ok(w.shards.length > 1);
  const n = w.shards.length;
  const expectedShards = Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  assert.deepEqual(files, [...expectedShards, INDEX_FILE].sort());
  const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
  const totalSize = 64 * 16 * 2 + 16 * 32 * 2 * 2 + 32 * 4 * 2 + 64 * 16 * 4;
  assert.equal(index.metadata.total_size, totalSize);
  assert.equal(w.totalSize, totalSize);
  assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
  for (const t of tensors) assert.ok(expectedShards.includes(index.weight_map[t.name]), t.name);
  // greedy split in order: each shard is within the limit unless it holds one oversized tensor
  for (const s of w.shards) {
    const size = readSafetensorsHeader(path.join(dir, s.file)).entries.reduce((a, e) => a + e.end - e.begin, 0);
    assert.ok(size <= 3000 || s.names.length === 1, `${s.file} has ${size} bytes`);
    assert.deepEqual(readSafetensorsHeader(path.join(dir, s.file)).metadata, { format: 'pt', note: 'x' });
  }

  const c = readCheckpoint(dir);
  assert.deepEqual([...c.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
  assert.deepEqual(c.shards.map((s) => s.file), expectedShards);
  const dir2 = tmpDir();
  writeCheckpoint(dir2, c.tensors, { maxShardBytes: 3000, metadata: { note: 'x' } });
  const a = storedBytes(dir);
  const b = storedBytes(dir2);
  assert.equal(a.size, tensors.length);
  for (const [name, v] of a) {
    assert.equal(b.get(name)!.dtype, v.dtype);
    assert.deepEqual(b.get(name)!.shape, v.shape);
    assert.ok(b.get(name)!.bytes.equals(v.bytes), name);
  }
  const index2 = JSON.parse(fs.readFileSync(path.join(dir2, INDEX_FILE), 'utf8'));
  assert.deepEqual(Object.keys(index2.weight_map), Object.keys(index.weight_map));
  assert.equal(index2.metadata.total_size, totalSize);

  // filter
  const only = readCheckpoint(dir, { filter: (nm) => nm.startsWith('model.layers.1') });
  assert.deepEqual([...only.tensors.keys()].sort(), ['model.layers.1.b', 'model.layers.1.w']);
});

test('readCheckpointAsync reads the same tensors and lets the event loop run between them', async () => {
  for (const maxShardBytes of [undefined, 3000]) {
    const dir = tmpDir();
    writeCheckpoint(dir, TENSORS(), { maxShardBytes });
    const order: string[] = [];
    setTimeout(() => order.push('timer'), 0);
    // Node rounds the delay up to 1 ms: wait until it is due, else a read faster than that (a
    // quick machine) ends before the timer is due and the test measures the clock, not the yield.
    for (const t0 = performance.now(); performance.now() - t0 < 3;);
    const got = await readCheckpointAsync(dir);
    order.push('read');
    assert.deepEqual(order, ['timer', 'read'], 'a timer due before the read fired during it');
    const sync = readCheckpoint(dir);
    assert.deepEqual([...got.tensors.keys()], [...sync.tensors.keys()]);
    for (const [name, t] of sync.tensors) assert.deepEqual(got.tensors.get(name)!.data, t.data, name);
    assert.deepEqual(got.shards, sync.shards);
  }
});

test('dtype choice per tensor, for all, or by function', () => {
  const dir = tmpDir();
  writeCheckpoint(dir, TENSORS(), { dtype: 'F16' });
  assert.ok([...readCheckpoint(dir).tensors.values()].every((t) => t.dtype === 'F16'));
  writeCheckpoint(dir, TENSORS(), { dtype: { 'lm_head.weight': 'BF16' } });
  const c = readCheckpoint(dir);
  assert.equal(c.tensors.get('lm_head.weight')!.dtype, 'BF16');
  assert.equal(c.tensors.get('model.layers.0.w')!.dtype, 'F16'); // its own
  writeCheckpoint(dir, TENSORS(), { dtype: (name) => (name.endsWith('.b') ? 'F32' : 'BF16') });
  const d = readCheckpoint(dir);
  assert.equal(d.tensors.get('model.layers.0.b')!.dtype, 'F32');
  assert.equal(d.tensors.get('model.layers.0.w')!.dtype, 'BF16');
  expectAmendError(() => writeCheckpoint(dir, TENSORS(), { dtype: 'Q8' as never }), /cannot store it as "Q8"/);
});

test('rewriting a directory switches cleanly between sharded and single, keeping other files', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  writeCheckpoint(dir, TENSORS(), { maxShardBytes: 3000 });
  assert.ok(fs.existsSync(path.join(dir, INDEX_FILE)));
  writeCheckpoint(dir, TENSORS());
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  writeCheckpoint(dir, TENSORS(), { maxShardBytes: 5000 });
  assert.ok(!fs.existsSync(path.join(dir, 'model.safetensors')));
  assert.ok(fs.readdirSync(dir).includes('config.json'));
  assert.equal(readCheckpoint(dir).tensors.size, 6);
  // a failed write changes nothing and leaves no temporary files
  const before = fs.readdirSync(dir).sort();
  const bad = TENSORS();
  bad[3] = { ...bad[3]!, shape: [1] };
  expectAmendError(() => writeCheckpoint(dir, bad, { maxShardBytes: 3000 }), /model\.layers\.1\.w.*shape \[1\]/);
  assert.deepEqual(fs.readdirSync(dir).sort(), before);
});

test('clear errors: missing shard, name missing from its shard, no weights, pytorch_model.bin only', () => {
  const dir = tmpDir();
  writeCheckpoint(dir, TENSORS(), { maxShardBytes: 3000 });
  const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));

  // name in the index that its shard does not have
  const idx2 = structuredClone(index);
  const first = index.weight_map['model.embed.weight'] as string;
  idx2.weight_map['model.extra'] = first;
  const d2 = tmpDir();
  for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(d2, f));
  fs.writeFileSync(path.join(d2, INDEX_FILE), JSON.stringify(idx2));
  expectAmendError(() => readCheckpoint(d2), new RegExp(`tensor "model\\.extra" is listed in model\\.safetensors\\.index\\.json under ${first.replace(/\./g, '\\.')} but that shard does not contain it`));

  // missing shard
  const victim = index.weight_map['lm_head.weight'] as string;
  fs.rmSync(path.join(dir, victim));
  expectAmendError(() => readCheckpoint(dir), new RegExp(`shard ${victim.replace(/\./g, '\\.')} listed in model\\.safetensors\\.index\\.json .* is missing`));

  // broken index
  fs.writeFileSync(path.join(dir, INDEX_FILE), '{"weight_map": ');
  expectAmendError(() => readCheckpoint(dir), /model\.safetensors\.index\.json: not valid JSON/);
  fs.writeFileSync(path.join(dir, INDEX_FILE), '{"metadata": {}}');
  expectAmendError(() => readCheckpoint(dir), /has no "weight_map" object/);

  // no weights at all
  const empty = tmpDir();
  fs.writeFileSync(path.join(empty, 'config.json'), '{}');
  expectAmendError(() => readCheckpoint(empty), /no weights found \(expected model\.safetensors or model\.safetensors\.index\.json\)/);
  // only pytorch_model.bin
  fs.writeFileSync(path.join(empty, 'pytorch_model.bin'), 'x');
  expectAmendError(() => readCheckpoint(empty), /has only PyTorch weights \(pytorch_model\.bin\); pytorch_model\.bin is not supported/);
  // an oddly named safetensors file
  const odd = tmpDir();
  writeSafetensors(path.join(odd, 'weights.safetensors'), [{ name: 'a', shape: [1], data: new Float32Array(1) }]);
  expectAmendError(() => readCheckpoint(odd), /found weights\.safetensors/);
  // not a directory
  expectAmendError(() => readCheckpoint(path.join(odd, 'nope')), /no such directory/);
  // corrupt single file surfaces the safetensors error
  const corrupt = tmpDir();
  fs.writeFileSync(path.join(corrupt, 'model.safetensors'), Buffer.from([1, 2, 3]));
  expectAmendError(() => readCheckpoint(corrupt), /model\.safetensors: the file is only 3 bytes/);
});

test('the shared test checkpoints load', (t) => {
  if (!fs.existsSync(SHARED_MODELS)) {
    t.skip(`${SHARED_MODELS} is absent (shared test models not installed)`);
    return;
  }
  const c = readCheckpoint(path.join(SHARED_MODELS, 'stories260K'));
  const emb = c.tensors.get('model.embed_tokens.weight')!;
  assert.deepEqual(emb.shape, [512, 64]);
  assert.equal(emb.dtype, 'F32');
  assert.equal(c.shards.length, 1);
  assert.equal(c.shards[0]!.names.length, c.tensors.size);
});
