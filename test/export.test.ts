// amend export / exportModel: a complete Hugging Face checkpoint with the original names, shapes,
// dtypes, sharding and side files; reloads to the same logits; untouched tensors byte-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { CausalLM, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { readCheckpoint, writeCheckpoint, INDEX_FILE } from '../src/io/checkpoint.js';
import { readRawTensor, readSafetensors, readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { f32BitsToBf16Bits, f32BitsToF16Bits } from '../src/io/dtype.js';
import { Tensor, mulberry32, randn } from '../src/tensor/index.js';
import { AmendTokenizer } from '../src/tokenizer/index.js';
import { EditPatch, applyPatchesInOrder, editSession, exportModel, exportPatched, exportProvenance, lowRankDelta, denseDelta, type TensorDelta } from '../src/patch/index.js';
import { modelFingerprint } from '../src/models/fingerprint.js';
import { AmendError } from '../src/errors.js';
import { assertOneLineError, type CliResult, repoRoot, runCli, sharedDir, warningsOf, weightsHash } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-export-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args);

const load = (dir: string): CausalLM => CausalLM.loadDir(dir, { noTokenizer: true });

/** A random patch on the MLP down projections of some layers, plus a dense delta on one bias (if any). */
function randomPatch(model: CausalLM, seed: number, layers: number[], subject = 'X'): EditPatch {
  const rand = mulberry32(seed);
  const deltas: TensorDelta[] = [];
  for (const l of layers) {
    const down = model.spec.layers[l]!.down;
    const [rows, cols] = model.weight(down.w).shape as [number, number];
    deltas.push(lowRankDelta(down.w, randn(rows, rand, 0.2), randn(cols, rand, 0.2), rows, cols));
  }
  const b = model.spec.layers[layers[0]!]!.down.b;
  if (b) deltas.push(denseDelta(b, model.weight(b).shape, randn(model.weight(b).size, rand, 0.1)));
  return EditPatch.create(model, deltas, {
    method: 'test', hparams: { seed }, requests: [{ prompt: '{} is in', subject, targetNew: ' Rome' }],
  });
}

function logits(model: CausalLM, ids: number[]): Float32Array {
  return model.forward(Int32Array.from(ids), 1, ids.length, { logitsAt: 'all' }).logits!.data;
}

/** Raw bytes of one tensor inside a safetensors file. */
function rawBytes(file: string, name: string): Buffer {
  const h = readSafetensorsHeader(file);
  const e = h.entries.find((x) => x.name === name);
  assert.ok(e, `${name} in ${file}`);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(e.end - e.begin);
    fs.readSync(fd, buf, 0, buf.length, h.dataStart + e.begin);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** weight file of each tensor in a checkpoint directory. */
function fileOf(dir: string): Map<string, string> {
  return new Map(readCheckpoint(dir, { filter: () => false }).shards.flatMap((s) => s.names.map((n) => [n, path.join(dir, s.file)] as [string, string])));
}

function assertUntouchedBytesIdentical(src: string, out: string, touched: Set<string>): number {
  const a = fileOf(src), b = fileOf(out);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let n = 0;
  for (const [name, f] of a) {
    if (touched.has(name)) continue;
    assert.ok(rawBytes(f, name).equals(rawBytes(b.get(name)!, name)), `"${name}" bytes differ`);
    n++;
  }
  return n;
}

function noTempLeft(): void {
  const stray = fs.readdirSync(tmp).filter((f) => f.includes('amend-export') || f.includes('amend-old') || f.endsWith('.tmp'));
  assert.deepEqual(stray, [], 'temporary directories left behind');
}

/** A source model directory with side files: generation config, tokenizer files, a README, junk that must not be copied. */
function withSideFiles(dir: string): string {
  fs.writeFileSync(path.join(dir, 'generation_config.json'), '{\n  "bos_token_id": 0,\n  "eos_token_id": 0\n}\n');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{"model_max_length": 64}');
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), '{}');
  fs.writeFileSync(path.join(dir, 'README.md'), '# a model\n');
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'stale weights');
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'onnx', 'model.onnx'), 'x');
  return dir;
}

const src = withSideFiles(writeRandomCheckpoint(path.join(tmp, 'src'), gpt2Config({ layers: 3 }), 7));

test('export of a patched model: reloads to the same logits, untouched tensors byte-identical, side files verbatim', () => {
  const m = load(src);
  const p = randomPatch(m, 1, [0, 2]);
  p.apply(m);
  const out = path.join(tmp, 'out1');
  const r = exportModel(m, out);
  assert.deepEqual(r.shards.map((s) => s.file), ['model.safetensors']);
  assert.deepEqual(r.patches, [p.id]);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md']) {
    assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(src, f))), `${f} copied verbatim`);
  }
  assert.ok(!fs.existsSync(path.join(out, 'pytorch_model.bin')), 'other weight formats are not copied');
  assert.ok(!fs.existsSync(path.join(out, 'onnx')));
  assert.ok(r.skipped.some((s) => s.file === 'pytorch_model.bin'));

  const back = load(out);
  const ids = [1, 5, 9, 33, 2, 70];
  assert.deepEqual(logits(back, ids), logits(m, ids), 'logits of the reloaded export equal the patched model');
  for (const d of p.deltas) assert.deepEqual(back.weight(d.name).data, m.weight(d.name).data);
  assert.ok(assertUntouchedBytesIdentical(src, out, new Set(p.touched())) > 10);
  assert.deepEqual([...back.dtypes.values()].filter((d) => d !== 'F32'), []);

  const meta = readSafetensorsHeader(path.join(out, 'model.safetensors')).metadata;
  assert.equal(meta.format, 'pt');
  const prov = exportProvenance(out)!;
  assert.equal(prov.baseFingerprint, editSession(m).baseFingerprint);
  assert.deepEqual(prov.patches.map((x) => x.id), [p.id]);
  assert.equal(exportProvenance(src), null);
  // The session is not changed by the export (commit does not revert or forget).
  assert.deepEqual(editSession(m).applied(), [p]);
  noTempLeft();
});

test('a sharded original gives a sharded export with the same shard files, grouping and index', () => {
  const dir = path.join(tmp, 'sharded');
  const ck = readCheckpoint(src);
  writeCheckpoint(dir, ck.tensors, { maxShardBytes: 20_000 });
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const srcShards = readCheckpoint(dir, { filter: () => false }).shards;
  assert.ok(srcShards.length >= 3, `expected several shards, got ${srcShards.length}`);

  const m = load(dir);
  const p = randomPatch(m, 2, [1]);
  p.apply(m);
  const out = path.join(tmp, 'out-sharded');
  exportModel(m, out);
  const outShards = readCheckpoint(out, { filter: () => false }).shards;
  assert.deepEqual(outShards.map((s) => s.file), srcShards.map((s) => s.file));
  assert.deepEqual(outShards.map((s) => [...s.names].sort()), srcShards.map((s) => [...s.names].sort()));
  assert.ok(!fs.existsSync(path.join(out, 'model.safetensors')));
  const idxA = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
  const idxB = JSON.parse(fs.readFileSync(path.join(out, INDEX_FILE), 'utf8'));
  assert.deepEqual(idxB.weight_map, idxA.weight_map);
  assert.equal(idxB.metadata.total_size, idxA.metadata.total_size);
  assert.deepEqual(fs.readFileSync(path.join(out, INDEX_FILE), 'utf8'), fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'), 'same index text');
  assertUntouchedBytesIdentical(dir, out, new Set(p.touched()));
  const ids = [3, 4, 5];
  assert.deepEqual(logits(load(out), ids), logits(m, ids));
  noTempLeft();
});

test('F16 original: dtypes kept (edited tensors rounded back to F16), or converted with dtype', () => {
  const dir = path.join(tmp, 'f16');
  writeCheckpoint(dir, readCheckpoint(src).tensors, { dtype: 'F16' });
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  // as Python writes it: 10000.0 and 1e-05, which a re-serialisation would print as 10000 and 0.00001
  const cfgText = JSON.stringify({ ...cfg, torch_dtype: 'float16', rope_theta: 12345 }, null, 2).replace('12345', '10000.0').replace(/("layer_norm_epsilon": )[^,\n]+/, '$11e-05');
  fs.writeFileSync(path.join(dir, 'config.json'), cfgText);
  const m = load(dir);
  const p = randomPatch(m, 3, [1]);
  p.apply(m);
  const keep = path.join(tmp, 'out-f16');
  exportModel(m, keep, { dtype: 'keep' });
  const back = load(keep);
  assert.deepEqual([...new Set(back.dtypes.values())], ['F16']);
  assertUntouchedBytesIdentical(dir, keep, new Set(p.touched()));
  for (const d of p.deltas) {
    const mem = m.weight(d.name).data, disk = back.weight(d.name).data;
    const memBits = new Uint32Array(mem.buffer, mem.byteOffset, mem.length);
    const diskF = new Float32Array(1), diskBits = new Uint32Array(diskF.buffer);
    for (let i = 0; i < mem.length; i++) {
      diskF[0] = disk[i]!;
      assert.equal(f32BitsToF16Bits(diskBits[0]!), f32BitsToF16Bits(memBits[i]!), `${d.name}[${i}] is the F16 rounding of the edited value`);
    }
  }
  assert.equal(JSON.parse(fs.readFileSync(path.join(keep, 'config.json'), 'utf8')).torch_dtype, 'float16');

  const f32 = path.join(tmp, 'out-f32');
  exportModel(m, f32, { dtype: 'f32' });
  const back32 = load(f32);
  assert.deepEqual([...new Set(back32.dtypes.values())], ['F32']);
  assert.equal(JSON.parse(fs.readFileSync(path.join(f32, 'config.json'), 'utf8')).torch_dtype, 'float32');
  // only the dtype's value changes in the text
  assert.equal(fs.readFileSync(path.join(f32, 'config.json'), 'utf8'), cfgText.replace('"torch_dtype": "float16"', '"torch_dtype": "float32"'));
  const ids = [7, 8, 9, 10];
  assert.deepEqual(logits(back32, ids), logits(m, ids), 'F32 export of an F16 model is exact');
  noTempLeft();
});

test('the output directory: non-empty refused unless force, never the source, nothing left on failure', async () => {
  const m = load(src);
  const out = path.join(tmp, 'busy');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
  assert.throws(() => exportModel(m, out), /exists and is not empty; pass --force \(force: true\)/);
  assert.ok(fs.existsSync(path.join(out, 'keep.txt')));
  exportModel(m, out, { force: true });
  assert.ok(!fs.existsSync(path.join(out, 'keep.txt')));
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
  // Never, force or not: the current folder (replaced, the shell would sit in the folder it replaced),
  // a folder that holds it, the home folder, the root.
  const here = process.cwd();
  const cwd = path.join(tmp, 'cwd-parent', 'cwd');
  fs.mkdirSync(cwd, { recursive: true });
  process.chdir(cwd);
  try {
    assert.throws(() => exportModel(m, '.', { force: true }), (e: unknown) => e instanceof AmendError && /cwd is the current folder, and an export replaces its output folder whole; give another folder/.test(e.message));
    assert.throws(() => exportModel(m, '..', { force: true }), /cwd-parent is a folder that holds the current one/);
  } finally {
    process.chdir(here);
  }
  assert.deepEqual(fs.readdirSync(cwd), []);
  assert.throws(() => exportModel(m, os.homedir(), { force: true }), /is the home folder/);
  assert.throws(() => exportModel(m, '/', { force: true }), /^AmendError: \/ is the root of the file system/);
  // The check at the start does not hold for the whole export: files that appear in the folder
  // meanwhile (another process's) are not deleted without force.
  const later = path.join(tmp, 'later');
  const appear = () => { if (!fs.existsSync(later)) { fs.mkdirSync(later); fs.writeFileSync(path.join(later, 'theirs.txt'), 'y'); } };
  assert.throws(() => exportModel(m, later, { onProgress: appear }), /later: files appeared in it while the export ran; pass --force/);
  assert.equal(fs.readFileSync(path.join(later, 'theirs.txt'), 'utf8'), 'y');
  noTempLeft();
  // An export killed while replacing a folder leaves the replaced one as .NAME.amend-old-PID-x:
  // the next export beside it puts it back where NAME is missing, and removes it where NAME is there.
  const lost = path.join(tmp, '.lost.amend-old-2147483646-abc'), spare = path.join(tmp, '.busy.amend-old-2147483646-def');
  fs.mkdirSync(lost);
  fs.writeFileSync(path.join(lost, 'model.safetensors'), 'the only copy');
  fs.mkdirSync(spare);
  exportModel(m, path.join(tmp, 'another'));
  assert.equal(fs.readFileSync(path.join(tmp, 'lost', 'model.safetensors'), 'utf8'), 'the only copy');
  assert.ok(!fs.existsSync(lost) && !fs.existsSync(spare));
  // An export to that very name finds the restored folder at once (not after writing everything).
  const again = path.join(tmp, '.again.amend-old-2147483646-ghi');
  fs.mkdirSync(again);
  fs.writeFileSync(path.join(again, 'model.safetensors'), 'x');
  let wrote = false;
  assert.throws(() => exportModel(m, path.join(tmp, 'again'), { onProgress: () => { wrote = true; } }), /again: exists and is not empty; pass --force/);
  assert.ok(!wrote, 'refused before any weights were written');
  assert.throws(() => exportModel(m, src, { force: true }), /is the directory the model was loaded from/);
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  exportModel(m, empty);
  assert.ok(fs.existsSync(path.join(empty, 'config.json')));
  // A refused patch writes nothing.
  const other = load(writeRandomCheckpoint(path.join(tmp, 'other'), gpt2Config({ layers: 3 }), 99));
  const foreign = randomPatch(other, 4, [0]);
  // Its advice names exportPatched's override: its `force` replaces the output folder instead.
  await assert.rejects(exportPatched(src, [foreign], path.join(tmp, 'never')),
    (e: unknown) => e instanceof AmendError && /was made for .*; refusing to apply it \(pass --ignore-fingerprint \(ignoreFingerprint: true\) to apply it anyway\)$/.test(e.message));
  await assert.rejects(exportPatched(src, [foreign], path.join(tmp, 'never'), { force: true }), /\(ignoreFingerprint: true\)/);
  assert.ok(!fs.existsSync(path.join(tmp, 'never')));
  const forced = path.join(tmp, 'foreign-forced');
  assert.deepEqual((await exportPatched(src, [foreign], forced, { ignoreFingerprint: true })).patches, [foreign.id], 'the advice works');
  // Given a loaded model, a refused second patch leaves it as it was, not half-patched.
  const before = [...m.weights.values()].map((t) => t.data.slice());
  await assert.rejects(exportPatched(m, [randomPatch(m, 4, [0]), foreign], path.join(tmp, 'never')), /was made for/);
  assert.equal(editSession(m).applied().length, 0);
  [...m.weights.values()].forEach((t, i) => assert.deepEqual(t.data, before[i]));
  // A file where the folder or one of its parents should be: one line before any work.
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  assert.throws(() => exportModel(m, file), /a-file: exists and is not a folder/);
  assert.throws(() => exportModel(m, path.join(file, 'out')), /cannot be created, .*a-file is a file/);
  noTempLeft();
});

test('an export that replaced a folder but cannot delete all of the old files succeeds, with a warning', async () => {
  const m = load(src);
  const out = path.join(tmp, 'stuck');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'old.txt'), 'x');
  // As root a read-only subfolder can still be emptied, so the refusal is simulated.
  const rmSync = fs.rmSync;
  fs.rmSync = ((p: fs.PathLike, o?: fs.RmOptions) => {
    if (String(p).includes('.stuck.amend-old-')) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    return rmSync(p, o);
  }) as typeof fs.rmSync;
  syncBuiltinESMExports(); // so that `import * as fs` sees it too
  let warnings: string[];
  try {
    warnings = await warningsOf(() => exportModel(m, out, { force: true }));
  } finally {
    fs.rmSync = rmSync;
    syncBuiltinESMExports();
  }
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors')) && !fs.existsSync(path.join(out, 'old.txt')));
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /stuck is in place, but the files it replaced could not all be deleted \(EACCES\); what is left of them is in .*\.stuck\.amend-old-/);
  for (const f of fs.readdirSync(tmp).filter((f) => f.startsWith('.stuck.amend-old-'))) fs.rmSync(path.join(tmp, f), { recursive: true });
});

test('a 16-bit export warns of the finite weights that become ±inf in it', async () => {
  const m = load(src);
  const w = [...m.weights.values()].find((t) => t.shape.length === 2)!;
  const name = [...m.weights].find(([, t]) => t === w)![0];
  const saved = w.data.slice(0, 4);
  const big = new Float32Array(new Uint32Array([0x7f7f8000]).buffer)[0]!;  // BF16's first value past its max
  w.data.set([65519.99, 65520, -1e5, big]);
  try {
    // the threshold agrees with the converter: the last three of the four values become ±inf in F16
    assert.deepEqual([...w.data.slice(0, 4)].map((x) => (f32BitsToF16Bits(new Uint32Array(Float32Array.of(x).buffer)[0]!) & 0x7fff) === 0x7c00), [false, true, true, true]);
    assert.equal(f32BitsToBf16Bits(0x7f7f8000) & 0x7fff, 0x7f80);
    assert.equal(f32BitsToBf16Bits(0x7f7f7fff) & 0x7fff, 0x7f7f);
    const f16 = await warningsOf(() => exportModel(m, path.join(tmp, 'big-f16'), { dtype: 'f16' }));
    assert.equal(f16.length, 1, f16.join('\n'));
    assert.match(f16[0]!, new RegExp(`big-f16: 3 finite value\\(s\\) are too large for their 16-bit dtype and are stored as ±inf \\(first 65520; in ${name.replace(/\./g, '\\.')} \\(3, F16\\)\\)`));
    const bf16 = await warningsOf(() => exportModel(m, path.join(tmp, 'big-bf16'), { dtype: 'bf16' }));
    assert.equal(bf16.length, 1, bf16.join('\n'));
    assert.match(bf16[0]!, /big-bf16: 1 finite value\(s\)/);
    assert.deepEqual(await warningsOf(() => exportModel(m, path.join(tmp, 'big-f32'), { dtype: 'f32' })), []);
  } finally {
    w.data.set(saved);
  }
});

test('F64 and integer buffers float32 cannot hold are copied byte for byte; a patch elsewhere leaves them so', () => {
  const dir = path.join(tmp, 'buffers');
  fs.cpSync(src, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const bytes = (a: Float64Array | BigInt64Array) => new Uint8Array(a.buffer);
  const f64 = bytes(new Float64Array([0.1, 1 / 3, 1e-300]));
  const i64 = bytes(new BigInt64Array([0n, 1n, 16777217n]));
  const tensors = [...readSafetensors(file).tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: t.data, dtype: t.dtype as 'F32' }));
  writeSafetensors(file, [
    ...tensors,
    { name: 'extra.f64', shape: [3], data: new Float32Array(3), dtype: 'F64', raw: f64 },
    { name: 'extra.position_ids', shape: [3], data: new Float32Array(3), dtype: 'I64', raw: i64 },
  ]);
  const m = load(dir);
  assert.equal(m.weights.get('extra.position_ids')!.data[2], 16777216, 'float32 in memory cannot hold 16777217');
  randomPatch(m, 7, [0]).apply(m);
  const out = path.join(tmp, 'buffers-out');
  exportModel(m, out);
  const outFile = path.join(out, 'model.safetensors');
  const h = readSafetensorsHeader(outFile);
  assert.deepEqual(readRawTensor(outFile, h, 'extra.f64'), f64);
  assert.deepEqual(readRawTensor(outFile, h, 'extra.position_ids'), i64);
  assert.equal(h.entries.find((e) => e.name === 'extra.f64')!.dtype, 'F64');
});

test('an export of an export: its record goes on from the patches it carries, which are not applied twice', async () => {
  const m = load(src);
  const base = editSession(m).baseFingerprint;
  const p1 = randomPatch(m, 21, [0]);
  p1.apply(m);
  const first = path.join(tmp, 'chain-1');
  exportModel(m, first);
  const e = load(first);
  await assert.rejects(exportPatched(e, [p1], path.join(tmp, 'chain-twice')), /is already in .*chain-1 \(its export recorded it\)/);
  const p2 = randomPatch(e, 22, [1]);
  const second = path.join(tmp, 'chain-2');
  await exportPatched(e, [p2], second);
  const prov = exportProvenance(second)!;
  assert.deepEqual(prov.patches.map((x) => x.id), [p1.id, p2.id]);
  assert.equal(prov.baseFingerprint, base);
  // An export may not replace a folder that holds the model it reads.
  const nest = path.join(tmp, 'nest');
  fs.cpSync(src, path.join(nest, 'model'), { recursive: true });
  assert.throws(() => exportModel(load(path.join(nest, 'model')), nest, { force: true }), /holds the model being read/);
  assert.ok(fs.existsSync(path.join(nest, 'model', 'config.json')));
});

/** Every tensor of two loaded models is bit-identical (same names). */
function assertSameWeights(a: CausalLM, b: CausalLM, what: string): void {
  assert.deepEqual([...a.weights.keys()].sort(), [...b.weights.keys()].sort(), what);
  for (const [name, t] of a.weights) {
    const u = b.weights.get(name)!.data;
    assert.ok(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(u.buffer, u.byteOffset, u.byteLength)), `${what}: "${name}" differs`);
  }
}

test('a patch made on an export records its origin and applies to the first base after the export\'s patches, in order', async () => {
  const a = load(src);
  const base = editSession(a).baseFingerprint;
  const p1 = randomPatch(a, 31, [0]);
  p1.apply(a);
  const e1Dir = path.join(tmp, 'origin-e1');
  exportModel(a, e1Dir);
  const e1 = load(e1Dir);
  // p2 touches p1's tensor too, so the order of the two shows in the bits
  const p2 = randomPatch(e1, 32, [0, 1]);
  assert.notEqual(p2.metadata.modelFingerprint, base, 'made for the export\'s own fingerprint');
  assert.deepEqual(p2.metadata.origin, { baseFingerprint: base, patches: [p1.id] });
  const f2 = path.join(tmp, 'origin-p2.safetensors');
  p2.save(f2);
  const p2f = EditPatch.load(f2);
  assert.deepEqual(p2f.metadata.origin, p2.metadata.origin);
  assert.equal(p2f.id, p2.id);

  // Accepted on the first base after p1, with no warning, bit-identical to the export plus p2 and
  // to the same patches applied past the fingerprint check.
  const chained = load(src);
  assert.deepEqual(await warningsOf(() => applyPatchesInOrder(chained, [p1, p2f])), []);
  p2.apply(e1);
  assertSameWeights(chained, e1, 'first base + p1 + p2 vs export + p2');
  const forced = load(src);
  applyPatchesInOrder(forced, [p1, p2f], { force: true });
  assertSameWeights(chained, forced, 'checked vs --ignore-fingerprint');
  const bare = load(src);
  assert.equal(p2.describe(bare).target!.fingerprintMatches, false);
  assert.match(p2.describe(bare).target!.fingerprintProblem!, /has no patch before it — apply the export's patches first, in order/);
  assert.equal(p2.describe(chained).target!.fingerprintMatches, true);

  // Rebuilt from the base in one export: the same record and tensors as the export of the export.
  const e2 = path.join(tmp, 'origin-e2'), e2b = path.join(tmp, 'origin-e2b'), e2f = path.join(tmp, 'origin-e2f');
  await exportPatched(src, [p1, f2], e2);
  await exportPatched(e1Dir, [f2], e2b);
  await exportPatched(src, [p1, f2], e2f, { ignoreFingerprint: true });
  const rec = exportProvenance(e2)!;
  assert.deepEqual({ base: rec.baseFingerprint, ids: rec.patches.map((x) => x.id) }, { base, ids: [p1.id, p2.id] });
  assert.deepEqual(exportProvenance(e2b)!.patches.map((x) => x.id), [p1.id, p2.id]);
  const names = [...a.weights.keys()];
  for (const other of [e2b, e2f]) {
    for (const n of names) assert.ok(rawBytes(path.join(e2, 'model.safetensors'), n).equals(rawBytes(path.join(other, 'model.safetensors'), n)), `"${n}" of ${other}`);
  }

  // Refused with one line, the model unchanged: wrong order, p1 missing, another base.
  const fresh = weightsHash(load(src));
  const m = load(src);
  assert.throws(() => applyPatchesInOrder(m, [p2f, p1]), /^AmendError: .*origin-p2\.safetensors\) was made on gpt2 model .*origin-e1 \(fingerprint [0-9a-f]{12}\), an export of the model with fingerprint [0-9a-f]{12} plus 1 patch \([0-9a-f]{12}\); this gpt2 model .* has no patch before it — apply the export's patches first, in order; refusing to apply it \(pass --ignore-fingerprint \(force: true\) to apply it anyway\)/);
  assert.equal(weightsHash(m), fresh);
  assert.deepEqual(editSession(m).applied(), []);
  await assert.rejects(exportPatched(src, [f2], path.join(tmp, 'origin-missing')), /has no patch before it/);
  assert.ok(!fs.existsSync(path.join(tmp, 'origin-missing')));
  const q = randomPatch(m, 33, [2]);
  applyPatchesInOrder(m, [q, p1]);
  const withQ = weightsHash(m);
  assert.throws(() => editSession(m).apply(p2f), /has 2 patches \([0-9a-f]{12}, [0-9a-f]{12}\) before it/);
  assert.equal(weightsHash(m), withQ);
  const otherDir = writeRandomCheckpoint(path.join(tmp, 'origin-other'), gpt2Config({ layers: 3 }), 99);
  const other = load(otherDir);
  p1.apply(other, { force: true });
  const otherHash = weightsHash(other);
  assert.throws(() => p2.apply(other), /an export of the model with fingerprint [0-9a-f]{12} plus 1 patch .*; this gpt2 model .*origin-other \(fingerprint [0-9a-f]{12}\) is neither; refusing/);
  assert.equal(weightsHash(other), otherHash);
  assert.deepEqual(editSession(other).applied(), [p1]);

  // A patch without the field (written before origins were recorded) is checked as before.
  const { origin: _o, ...oldMeta } = p2.metadata;
  const old = new EditPatch(p2.deltas, oldMeta);
  const onA = load(src);
  p1.apply(onA);
  assert.throws(() => old.apply(onA), /was made for gpt2 model .*origin-e1 \(fingerprint [0-9a-f]{12}\), not for this gpt2 model .* refusing to apply it/);
  old.apply(load(e1Dir));
  const oldForced = load(src);
  applyPatchesInOrder(oldForced, [p1, old], { force: true });
  assertSameWeights(oldForced, chained, 'an old patch forced');

  // The chain goes on: a patch made on the export of the export applies to the first export plus
  // p2 (its record counts from the first base) and to the first base plus p1, p2; taking p1 out
  // from under p2 warns.
  const p3 = randomPatch(load(e2), 34, [1]);
  assert.deepEqual(p3.metadata.origin, { baseFingerprint: base, patches: [p1.id, p2.id] });
  const onE1 = load(e1Dir);
  applyPatchesInOrder(onE1, [p2, p3]);
  const onBase = load(src);
  applyPatchesInOrder(onBase, [p1, p2, p3]);
  assertSameWeights(onE1, onBase, 'export + p2 + p3 vs base + p1 + p2 + p3');
  const warned = await warningsOf(() => editSession(onBase).revert(p1));
  assert.ok(warned.some((w) => w.includes(p2.label) && /computed on the model with .* applied, which is now reverted/.test(w)), warned.join('\n'));

  // A folder whose record can no longer be read (gone since the load) costs the patch its origin,
  // with a warning, not the edit.
  const goneDir = path.join(tmp, 'origin-gone');
  fs.cpSync(e1Dir, goneDir, { recursive: true });
  const gone = load(goneDir);
  fs.rmSync(path.join(goneDir, 'model.safetensors'));
  let p5: EditPatch | undefined;
  const lost = await warningsOf(() => { p5 = randomPatch(gone, 37, [1]); });
  assert.equal(p5!.metadata.origin, undefined);
  assert.ok(lost.some((w) => /cannot read the export record of .*origin-gone .*; patches made on it record no origin/.test(w)), lost.join('\n'));

  // A patch made on the export with another patch applied (appliedOn) sits after the export's
  // patches: no stacking warning when that order is kept.
  const e1q = load(e1Dir);
  const qq = randomPatch(e1q, 35, [2]);
  qq.apply(e1q);
  const p4 = randomPatch(e1q, 36, [1]);
  assert.deepEqual([p4.metadata.appliedOn, p4.metadata.origin?.patches], [[qq.id], [p1.id]]);
  assert.deepEqual(await warningsOf(() => applyPatchesInOrder(load(src), [p1, qq, p4], { force: false })), []);
});

/** Adds `by` to the first value of an F32 tensor inside a safetensors file, in place (a sampled value). */
function nudgeFirstValue(file: string, name: string, by: number): void {
  const h = readSafetensorsHeader(file);
  const e = h.entries.find((x) => x.name === name)!;
  assert.equal(e.dtype, 'F32');
  const fd = fs.openSync(file, 'r+');
  try {
    const buf = Buffer.alloc(4);
    fs.readSync(fd, buf, 0, 4, h.dataStart + e.begin);
    buf.writeFloatLE(buf.readFloatLE(0) + by, 0);
    fs.writeSync(fd, buf, 0, 4, h.dataStart + e.begin);
  } finally {
    fs.closeSync(fd);
  }
}

/** A copy of an export folder as an export made before "amend_fingerprint" was recorded wrote it. */
function withoutWeightsFingerprint(from: string, to: string): string {
  fs.cpSync(from, to, { recursive: true });
  const file = path.join(to, 'model.safetensors');
  const { tensors, metadata } = readSafetensors(file);
  assert.ok(metadata.amend_fingerprint);
  delete metadata.amend_fingerprint;
  fs.rmSync(file);
  writeSafetensors(file, [...tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: t.data, dtype: t.dtype as 'F32' })), metadata);
  return to;
}

test('an export records its weights\' own fingerprint, as they load back, in any storage dtype', async () => {
  const a = load(src);
  const p1 = randomPatch(a, 41, [0]);
  p1.apply(a);
  const e1 = path.join(tmp, 'own-e1');
  const r = exportModel(a, e1);
  assert.equal(r.weightsFingerprint, modelFingerprint(load(e1)));
  assert.equal(exportProvenance(e1)!.weightsFingerprint, r.weightsFingerprint);
  // A model without a source folder, sharded and with its config written from memory: the same.
  const copy = new Map([...a.weights].map(([n, t]) => [n, new Tensor(t.data.slice(), [...t.shape])] as [string, Tensor]));
  const inMemory = new CausalLM(a.config.raw, copy, { dtypes: a.dtypes });
  randomPatch(inMemory, 44, [2]).apply(inMemory);
  const mem = path.join(tmp, 'own-mem');
  const rm = exportModel(inMemory, mem, { maxShardBytes: 30_000, dtype: 'bf16' });
  assert.ok(rm.shards.length > 1);
  assert.equal(rm.weightsFingerprint, modelFingerprint(load(mem)));
  assert.equal(exportProvenance(src), null);
  // An unedited export of an original records nothing, as before.
  const plain = path.join(tmp, 'own-plain');
  assert.equal(exportModel(load(src), plain).weightsFingerprint, null);
  assert.equal(readSafetensorsHeader(path.join(plain, 'model.safetensors')).metadata.amend_fingerprint, undefined);

  // 16-bit storage: the record is that of the rounded weights a load gives, not of the float32
  // values in memory.
  const f16 = path.join(tmp, 'own-f16src');
  writeCheckpoint(f16, readCheckpoint(src).tensors, { dtype: 'F16' });
  fs.copyFileSync(path.join(src, 'config.json'), path.join(f16, 'config.json'));
  const h = load(f16);
  randomPatch(h, 42, [1]).apply(h);
  for (const dtype of ['keep', 'bf16'] as const) {
    const out = path.join(tmp, `own-${dtype}`);
    const rec = exportModel(h, out, { dtype }).weightsFingerprint;
    assert.notEqual(rec, modelFingerprint(h), `${dtype}: the rounding shows in the sampled values`);
    assert.equal(rec, modelFingerprint(load(out)), dtype);
  }
  // An export of an export without patches, in another dtype: the record is carried on with the
  // fingerprint of the new weights; patches made on it keep their origin, with no warning.
  const e1bf = path.join(tmp, 'own-e1-bf16');
  assert.deepEqual(await warningsOf(() => exportModel(load(e1), e1bf, { dtype: 'bf16' })), []);
  const bf = load(e1bf);
  assert.equal(exportProvenance(e1bf)!.weightsFingerprint, modelFingerprint(bf));
  assert.notEqual(exportProvenance(e1bf)!.weightsFingerprint, r.weightsFingerprint);
  let p2: EditPatch | undefined;
  assert.deepEqual(await warningsOf(() => { p2 = randomPatch(bf, 43, [1]); }), []);
  assert.deepEqual(p2!.metadata.origin, { baseFingerprint: editSession(a).baseFingerprint, patches: [p1.id] });
});

test('an export whose weights were changed after it (one weight in its file) is not trusted: one warning, no origin, no record carried on', async () => {
  const a = load(src);
  const base = editSession(a).baseFingerprint;
  const p1 = randomPatch(a, 51, [0]);
  p1.apply(a);
  const e1 = path.join(tmp, 'mod-e1');
  exportModel(a, e1);
  const e1mod = path.join(tmp, 'mod-e1-changed');
  fs.cpSync(e1, e1mod, { recursive: true });
  nudgeFirstValue(path.join(e1mod, 'model.safetensors'), 'transformer.h.1.mlp.c_fc.weight', 0.25);

  // The untouched export: no warning, the origin as before.
  let onE1: EditPatch | undefined;
  assert.deepEqual(await warningsOf(() => { onE1 = randomPatch(load(e1), 52, [1]); }), []);
  assert.deepEqual(onE1!.metadata.origin, { baseFingerprint: base, patches: [p1.id] });

  // The changed one: a patch made on it is made for it as it is, with one warning naming it.
  const m = load(e1mod);
  let p2: EditPatch | undefined;
  const warned = await warningsOf(() => {
    p2 = randomPatch(m, 52, [1]);
    p2.apply(m);
    exportModel(m, path.join(tmp, 'mod-e2'));
  });
  assert.equal(warned.length, 1, warned.join('\n'));
  assert.match(warned[0]!, /mod-e1-changed: its weights \(fingerprint [0-9a-f]{12}\) are not those its Amend export wrote \([0-9a-f]{12}\), so they were changed since; its record \(the model with fingerprint [0-9a-f]{12} plus 1 patch \([0-9a-f]{12}\)\) is not trusted: patches made on it record no origin/);
  assert.ok(!warned[0]!.includes('\n'));
  assert.equal(p2!.metadata.origin, undefined);
  assert.equal(p2!.metadata.modelFingerprint, modelFingerprint(load(e1mod)));
  // Its export records the changed weights as the base, with its own patch only.
  const rec = exportProvenance(path.join(tmp, 'mod-e2'))!;
  assert.deepEqual({ base: rec.baseFingerprint, ids: rec.patches.map((x) => x.id) }, { base: p2!.metadata.modelFingerprint, ids: [p2!.id] });
  assert.equal(rec.weightsFingerprint, modelFingerprint(load(path.join(tmp, 'mod-e2'))));
  // Not taken for the first base plus p1 (what its record claimed): refused there, applies to it.
  assert.throws(() => applyPatchesInOrder(load(src), [p1, p2!]), /was made for gpt2 model .*mod-e1-changed .*, not for this gpt2 model/);
  applyPatchesInOrder(load(e1mod), [p2!]);
  // A plain export of it drops the record instead of sealing it with the new weights' fingerprint.
  const again = path.join(tmp, 'mod-again');
  const w = await warningsOf(() => exportModel(load(e1mod), again));
  assert.equal(w.length, 1, w.join('\n'));
  assert.equal(exportProvenance(again), null);
  assert.deepEqual(Object.keys(readSafetensorsHeader(path.join(again, 'model.safetensors')).metadata).filter((k) => k.startsWith('amend_')), []);

  // On the command line: the one warning line, and no claim that the source carries patches.
  const p2File = path.join(tmp, 'mod-p2.safetensors');
  p2!.save(p2File);
  const cli = amend('export', '--model', e1mod, '--patch', p2File, '--out', path.join(tmp, 'mod-cli'));
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr);
  assert.match(cli.stderr, /^amend: warning: .*mod-e1-changed: its weights .* is not trusted/);
  assert.ok(!cli.stdout.includes('already carries'), cli.stdout);
  assert.match(cli.stdout, /patches applied, in order \(base fingerprint [0-9a-f]{12}\)/);
  // patch show DIR --check loads the weights and says whether the record still holds.
  const held = amend('patch', 'show', e1, '--check');
  assert.equal(held.code, 0, held.stderr);
  assert.match(held.stdout, /\n  weights     fingerprint [0-9a-f]{12}, as the export wrote them: the record holds\n/);
  const changed = amend('patch', 'show', e1mod, '--check', '--json');
  assert.equal(changed.code, 0, changed.stderr);
  const shown = JSON.parse(changed.stdout);
  assert.deepEqual(shown.weights, { fingerprint: modelFingerprint(load(e1mod)), matchesRecord: false });
  assert.match(amend('patch', 'show', e1mod, '--check').stdout, /\n  weights     fingerprint [0-9a-f]{12}, not the [0-9a-f]{12} the export wrote: changed since, so the record is not trusted\n/);
  assert.match(amend('patch', 'show', e1mod).stdout, /\n  weights     not checked against the record \(--check loads them\)\n/);
  assertOneLineError(amend('patch', 'show', p2File, '--check'), /--check checks an exported checkpoint folder's weights; .*mod-p2\.safetensors is a patch file/);
});

test('an export made before its weights\' fingerprint was recorded is trusted as before', async () => {
  const a = load(src);
  const base = editSession(a).baseFingerprint;
  const p1 = randomPatch(a, 61, [0]);
  p1.apply(a);
  const e1 = path.join(tmp, 'old-e1');
  exportModel(a, e1);
  const old = withoutWeightsFingerprint(e1, path.join(tmp, 'old-e1-nofp'));
  assert.equal(exportProvenance(old)!.weightsFingerprint, null);
  // Even with a weight changed: nothing to compare it with, so the record stands, as it did.
  const oldChanged = withoutWeightsFingerprint(e1, path.join(tmp, 'old-e1-nofp-changed'));
  nudgeFirstValue(path.join(oldChanged, 'model.safetensors'), 'transformer.h.1.mlp.c_fc.weight', 0.25);
  for (const dir of [old, oldChanged]) {
    const m = load(dir);
    let p2: EditPatch | undefined;
    assert.deepEqual(await warningsOf(() => { p2 = randomPatch(m, 62, [1]); }), [], dir);
    assert.deepEqual(p2!.metadata.origin, { baseFingerprint: base, patches: [p1.id] }, dir);
  }
  // The unchanged one rebuilds from the base exactly, and its export carries the record on.
  const m = load(old);
  const p2 = randomPatch(m, 62, [1]);
  p2.apply(m);
  const chained = load(src);
  applyPatchesInOrder(chained, [p1, p2]);
  assertSameWeights(chained, m, 'base + p1 + p2 vs old export + p2');
  const e2 = path.join(tmp, 'old-e2');
  exportModel(m, e2);
  assert.deepEqual(exportProvenance(e2)!.patches.map((x) => x.id), [p1.id, p2.id]);
});

test('CLI on the demo world model: a patch made on an export applies to the base after the export\'s patch; other orders and bases are refused', () => {
  const cache = path.join(tmp, 'origin-cache');
  const cli = (...args: string[]): CliResult => runCli(args, cache);
  const fast = ['--set', 'mom2_adjustment=false']; // no key statistics: the edit only has to exist
  const d = (name: string) => path.join(tmp, `world-${name}`);
  let r = cli('edit', '--model', 'world', '--prompt', 'The birthplace of {} is', '--subject', 'Lonmor Dirard', '--target', 'Queweba',
    '--out', d('p1.safetensors'), '--export', d('e1'), ...fast);
  assert.equal(r.code, 0, r.stderr);
  r = cli('edit', '--model', d('e1'), '--prompt', '{} was born in', '--subject', 'Balri Grasdal', '--target', 'Sarport', '--out', d('p2.safetensors'), ...fast);
  assert.equal(r.code, 0, r.stderr);
  const p1 = EditPatch.load(d('p1.safetensors')), p2 = EditPatch.load(d('p2.safetensors'));
  const worldFp = p1.metadata.modelFingerprint;
  assert.deepEqual(p2.metadata.origin, { baseFingerprint: worldFp, patches: [p1.id] });

  r = cli('patch', 'show', d('p2.safetensors'));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(`origin      an export: the model with fingerprint ${worldFp.slice(0, 12)} plus 1 patch(es), in order: ${p1.id.slice(0, 12)}`), r.stdout);
  r = cli('patch', 'show', d('p2.safetensors'), '--model', 'world');
  assert.match(r.stdout, /applies to  gpt2 model .*world: NO: .* has no patch before it — apply the export's patches first, in order/);
  r = cli('patch', 'show', d('p2.safetensors'), '--json');
  assert.deepEqual(JSON.parse(r.stdout).origin, { baseFingerprint: worldFp, patches: [p1.id] });

  // Accepted in one export and in patch apply; the same tensors as --ignore-fingerprint and as
  // the export of the export.
  r = cli('export', '--model', 'world', '--patch', d('p1.safetensors'), '--patch', d('p2.safetensors'), '--out', d('e2'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  r = cli('patch', 'apply', '--model', 'world', '--patch', d('p1.safetensors'), '--patch', d('p2.safetensors'), '--out', d('e2-apply'));
  assert.equal(r.code, 0, r.stderr);
  r = cli('export', '--model', 'world', '--patch', d('p1.safetensors'), '--patch', d('p2.safetensors'), '--ignore-fingerprint', '--out', d('e2-forced'));
  assert.equal(r.code, 0, r.stderr);
  r = cli('export', '--model', d('e1'), '--patch', d('p2.safetensors'), '--out', d('e2-of-e1'));
  assert.equal(r.code, 0, r.stderr);
  // The report names the record's first base, not the export's own fingerprint beside it.
  assert.ok(r.stdout.includes(`patches applied on top of those, in order (the record goes back to the first base, fingerprint ${worldFp.slice(0, 12)})`), r.stdout);
  assert.ok(!r.stdout.includes(p2.metadata.modelFingerprint.slice(0, 12)), r.stdout);
  const tensors = (dir: string) => readSafetensors(path.join(dir, 'model.safetensors')).tensors;
  const want = tensors(d('e2'));
  for (const other of ['e2-apply', 'e2-forced', 'e2-of-e1']) {
    const got = tensors(d(other));
    assert.deepEqual([...got.keys()], [...want.keys()]);
    for (const [n, t] of want) assert.deepEqual(got.get(n)!.data, t.data, `"${n}" of ${other}`);
    assert.deepEqual(exportProvenance(d(other))!.patches.map((x) => x.id), [p1.id, p2.id]);
  }
  r = cli('patch', 'show', d('e2'));
  assert.match(r.stdout, new RegExp(`2 patch\\(es\\) applied to a base model with fingerprint ${worldFp.slice(0, 12)}`));

  // Wrong order, p1 missing, another base: one line each, nothing written.
  const refused = /has no patch before it — apply the export's patches first, in order; refusing to apply it \(pass --ignore-fingerprint/;
  assertOneLineError(cli('export', '--model', 'world', '--patch', d('p2.safetensors'), '--patch', d('p1.safetensors'), '--out', d('x')), refused);
  assertOneLineError(cli('patch', 'apply', '--model', 'world', '--patch', d('p2.safetensors'), '--out', d('x')), refused);
  // On the command line only the flag: the API's "(force: true)" is left out.
  assert.match(cli('patch', 'apply', '--model', 'world', '--patch', d('p2.safetensors'), '--out', d('x')).stderr, /refusing to apply it \(pass --ignore-fingerprint to apply it anyway\)$/m);
  const w = CausalLM.loadDir(path.join(repoRoot(), 'world'), { noTokenizer: true });
  w.weights.get('transformer.ln_f.weight')!.data[0]! += 0.5;
  exportModel(w, d('other'));
  assertOneLineError(cli('export', '--model', d('other'), '--patch', d('p2.safetensors'), '--out', d('x')), /an export of the model with fingerprint [0-9a-f]{12} plus 1 patch .*; this gpt2 model .*world-other \(fingerprint [0-9a-f]{12}\) is neither; refusing/);
  assertOneLineError(cli('export', '--model', d('other'), '--patch', d('p1.safetensors'), '--patch', d('p2.safetensors'), '--out', d('x')), /was made for gpt2 model .*world \(fingerprint [0-9a-f]{12}\), not for this gpt2 model .*world-other/);
  assert.ok(!fs.existsSync(d('x')));
  noTempLeft();
});

test('an export killed mid-write leaves a temporary folder that the next export into that folder removes', () => {
  const m = load(src);
  const out = path.join(tmp, 'after-crash');
  // A process that has exited: its pid names a folder no live export owns.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const stale = path.join(tmp, `.another-name.amend-export-${dead}-abc123`); // any export in this folder
  const live = path.join(tmp, `.after-crash.amend-export-${process.pid}-def456`);
  for (const d of [stale, live]) {
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'model.safetensors'), 'partial');
  }
  exportModel(m, out);
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
  assert.ok(!fs.existsSync(stale), 'the dead export\'s folder is removed');
  assert.ok(fs.existsSync(live), 'a folder whose process still runs is kept');
  fs.rmSync(live, { recursive: true });
});

test('a model without a source directory is written with transformers sharding and its config', () => {
  const m = load(src);
  const inMemory = new CausalLM(m.config.raw, m.weights, { dtypes: m.dtypes });
  const out = path.join(tmp, 'out-mem');
  const r = exportModel(inMemory, out, { maxShardBytes: 30_000 });
  assert.ok(r.shards.length > 1);
  const ids = [1, 2, 3];
  assert.deepEqual(logits(load(out), ids), logits(m, ids));
});

test('a model whose tokenizer was made in memory exports its tokenizer files, and loads back with the same tokenization', () => {
  const world = path.join(repoRoot(), 'world');
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(world, f), 'utf8')) as Record<string, unknown>;
  // As `amend world build` makes it: from the tokenizer's JSON in memory, not from a folder.
  const tokenizer = new AmendTokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
  const { tensors } = readCheckpoint(world);
  const weights = new Map([...tensors].map(([name, t]) => [name, new Tensor(t.data, t.shape)]));
  const model = new CausalLM(read('config.json'), weights, { tokenizer });
  const out = path.join(tmp, 'out-mem-tokenizer');
  const r = exportModel(model, out);
  assert.deepEqual(r.files.sort(), ['config.json', 'tokenizer.json', 'tokenizer_config.json']);
  const back = CausalLM.loadDir(out);
  const texts = ['Lily Moreau was born in', '<|endoftext|>The capital of Veldra is Osk.', ' many  spaces\tand\nlines — ünïcödé 123'];
  for (const text of texts) {
    const ids = tokenizer.encode(text);
    assert.deepEqual(back.tok().encode(text), ids, text);
    assert.equal(back.tok().decode(ids), tokenizer.decode(ids));
  }
  assert.deepEqual([back.tok().bosId, back.tok().eosId, back.tok().vocabSize], [tokenizer.bosId, tokenizer.eosId, tokenizer.vocabSize]);
  const ids = tokenizer.encode(texts[0]!);
  assert.deepEqual(logits(back, ids), logits(model, ids));
});

test('an export into a sub-folder of the model\'s own folder does not list its temporary folder among the files left out', () => {
  const dir = writeRandomCheckpoint(path.join(tmp, 'src-with-sub'), gpt2Config({ layers: 1 }), 3);
  const r = exportModel(load(dir), path.join(dir, 'edited'));
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'edited', 'model.safetensors']);
  // exported again from there: the earlier export is a folder, left out as such
  assert.deepEqual(exportModel(load(dir), path.join(dir, 'edited'), { force: true }).skipped, [{ file: 'edited', reason: 'directory' }]);
});

test('a model without a source directory exported in another dtype: its config names that dtype under the key it uses', () => {
  const m = load(src);
  const { torch_dtype: _, ...rest } = m.config.raw;
  // Newer transformers write "dtype" and read it before "torch_dtype".
  for (const [raw, want] of [
    [{ ...rest, dtype: 'float32' }, { ...rest, dtype: 'float16' }],
    [{ ...rest, torch_dtype: 'float32' }, { ...rest, torch_dtype: 'float16' }],
    [rest, { ...rest, torch_dtype: 'float16' }],
  ] as const) {
    const out = path.join(tmp, 'out-mem-f16');
    exportModel(new CausalLM(raw, m.weights, { dtypes: m.dtypes }), out, { dtype: 'f16', force: true });
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')), want);
    assert.deepEqual([...new Set(load(out).dtypes.values())], ['F16']);
  }
});

const models = sharedDir('models');
const llama = models && fs.existsSync(path.join(models, 'tiny-random-llama')) ? path.join(models, 'tiny-random-llama') : null;
test('tiny-random-llama: patched export reloads to the same logits with its tokenizer files', { skip: llama ? false : '../shared/models/tiny-random-llama is absent' }, () => {
  const m = CausalLM.loadDir(llama!);
  const p = randomPatch(m, 5, [0, 2]);
  p.apply(m);
  const out = path.join(tmp, 'out-llama');
  const r = exportModel(m, out);
  for (const f of fs.readdirSync(llama!)) {
    if (f === 'model.safetensors') continue;
    assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(llama!, f))), `${f} verbatim`);
  }
  assert.ok(r.files.includes('tokenizer.json') && r.files.includes('tokenizer.model'));
  const back = CausalLM.loadDir(out);
  const ids = back.tok().encode('Once upon a time');
  assert.deepEqual(logits(back, ids), logits(m, ids));
  assertUntouchedBytesIdentical(llama!, out, new Set(p.touched()));
  // Reverting in memory and exporting again gives the original bytes for every tensor.
  editSession(m).revertAll();
  const orig = path.join(tmp, 'out-llama-reverted');
  exportModel(m, orig);
  assertUntouchedBytesIdentical(llama!, orig, new Set());
});

test('CLI: amend export, patch show, patch apply, patch revert', () => {
  const m = load(src);
  const p1 = randomPatch(m, 11, [0]);
  const p2 = randomPatch(m, 12, [1]);
  const f1 = path.join(tmp, 'p1.safetensors'), f2 = path.join(tmp, 'p2.safetensors');
  p1.save(f1);
  p2.save(f2);

  const out = path.join(tmp, 'cli-both');
  let r = amend('export', '--model', src, '--patch', f1, '--patch', f2, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.deepEqual(res.patches.map((x: { id: string }) => x.id), [p1.id, p2.id]);
  const ref = load(src);
  p1.apply(ref);
  p2.apply(ref);
  const ids = [4, 8, 15, 16, 23, 42];
  assert.deepEqual(logits(load(out), ids), logits(ref, ids));

  r = amend('patch', 'show', f1, '--json');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  assert.equal(d.id, p1.id);
  assert.equal(d.method, 'test');
  assert.equal(d.tensors[0].rank, 1);
  assert.ok(d.tensors[0].norm > 0);
  r = amend('patch', 'show', f1, '--model', src);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /test patch [0-9a-f]{12}/);
  assert.match(r.stdout, /applies to .*: yes/);
  assert.match(r.stdout, /‖ΔW‖\/‖W‖/);
  assert.match(r.stdout, /"X is in" \[subject "X"\] → " Rome"/);
  // a subject is text, even where it holds what a string replacement reads as a pattern ("$&")
  const odd = path.join(tmp, 'p-odd.safetensors');
  randomPatch(m, 13, [0], "Lon$&mor$'").save(odd);
  r = amend('patch', 'show', odd);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"Lon\$&mor\$' is in" \[subject "Lon\$&mor\$'"\] → " Rome"/);
  r = amend('patch', 'show', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 patch\(es\) applied/);

  const applied = path.join(tmp, 'cli-apply');
  r = amend('patch', 'apply', '--model', src, '--patch', f2, '--out', applied);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /exported .*cli-apply/);

  const reverted = path.join(tmp, 'cli-revert');
  r = amend('patch', 'revert', '--model', src, '--patch', f1, '--patch', f2, '--drop', f1, '--out', reverted);
  assert.equal(r.code, 0, r.stderr);
  // revert of p1 = only p2: byte-identical weights to `patch apply` of p2
  assert.ok(rawBytes(path.join(reverted, 'model.safetensors'), p1.deltas[0]!.name).equals(rawBytes(path.join(src, 'model.safetensors'), p1.deltas[0]!.name)));
  for (const name of p2.touched()) {
    assert.ok(rawBytes(path.join(reverted, 'model.safetensors'), name).equals(rawBytes(path.join(applied, 'model.safetensors'), name)));
  }

  // One clear line on bad input.
  // (the library's message also names the option, "--force (force: true)"; the CLI names the flag)
  assertOneLineError(amend('export', '--model', src, '--out', out), /exists and is not empty; pass --force to replace/);
  // --force replaces the folder: a patch read from inside it would go with it
  const inside = path.join(out, 'p1.safetensors');
  fs.copyFileSync(f1, inside);
  assertOneLineError(amend('export', '--model', src, '--patch', inside, '--out', out, '--force'), /--patch .*p1\.safetensors is inside --out .*, which the export replaces/);
  assert.ok(fs.existsSync(inside), 'the patch is still there');
  fs.rmSync(inside);
  assertOneLineError(amend('export', '--patch', f1, '--out', path.join(tmp, 'x')), /--model is required/);
  assertOneLineError(amend('export', '--model', src, '--patch', path.join(src, 'model.safetensors'), '--out', path.join(tmp, 'x')), /not an Amend patch/);
  assertOneLineError(amend('export', '--model', src, '--out', path.join(tmp, 'x'), '--dtype', 'f8'), /--dtype must be keep, f32, f16 or bf16/);
  assertOneLineError(amend('patch', 'apply', '--model', src, '--out', path.join(tmp, 'x')), /at least one --patch/);
  assertOneLineError(amend('patch', 'revert', '--model', src, '--patch', f1, '--drop', 'ffff', '--out', path.join(tmp, 'x')), /not one of the --patch files/);
  assertOneLineError(amend('patch', 'frobnicate'), /unknown subcommand/);
  assertOneLineError(amend('patch', 'apply', '--model', src, '--patch', f1, '--drop', f1, '--out', path.join(tmp, 'x')), /--drop does nothing with amend patch apply/);
  assertOneLineError(amend('patch', 'show', f1, '--out', path.join(tmp, 'x')), /--out does nothing with amend patch show/);
  assertOneLineError(amend('patch', 'revert', '--model', src, '--patch', f1, '--drop', '', '--out', path.join(tmp, 'x')), /--drop is empty/);
  // a bad --dtype before the model is loaded (a model that is not there is not what is named)
  assertOneLineError(amend('patch', 'revert', '--model', path.join(tmp, 'no-model'), '--patch', f1, '--drop', f1, '--out', path.join(tmp, 'x'), '--dtype', 'f8'), /--dtype must be keep, f32, f16 or bf16/);
  // one patch listed twice (the file again, or a copy of it): refused up front, for every command
  // that applies patches — not "matches 2 patches" for --drop, not a second change
  const copy = path.join(tmp, 'p1-copy.safetensors');
  fs.copyFileSync(f1, copy);
  assertOneLineError(amend('patch', 'revert', '--model', src, '--patch', f1, '--patch', f1, '--drop', f1, '--out', path.join(tmp, 'x')),
    /--patch .*p1\.safetensors is listed twice in --patch; give each patch once/);
  assertOneLineError(amend('patch', 'apply', '--model', src, '--patch', f1, '--patch', f2, '--patch', copy, '--out', path.join(tmp, 'x')),
    /--patch .*p1-copy\.safetensors is the same patch as --patch .*p1\.safetensors \(id [0-9a-f]{12}\); give each patch once/);
  assertOneLineError(amend('export', '--model', path.join(tmp, 'no-such-model'), '--patch', f1, '--patch', f1, '--out', path.join(tmp, 'x')), /listed twice in --patch/);
  const foreignDir = writeRandomCheckpoint(path.join(tmp, 'foreign'), gpt2Config({ layers: 3 }), 1234);
  assertOneLineError(amend('export', '--model', foreignDir, '--patch', f1, '--out', path.join(tmp, 'x')), /was made for gpt2 model .* not for this gpt2 model/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x')));
  r = amend('export', '--model', foreignDir, '--patch', f1, '--out', path.join(tmp, 'x'), '--ignore-fingerprint');
  assert.equal(r.code, 0, r.stderr);
  r = amend('patch', '--help');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /revert/);
  noTempLeft();
});

const python = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
test('optional: the exported files load in torch (a plain safetensors parse, no transformers)', { skip: python.status === 0 ? false : 'python3 with torch is not available' }, () => {
  const m = load(src);
  const p = randomPatch(m, 21, [1]);
  p.apply(m);
  const out = path.join(tmp, 'out-torch');
  exportModel(m, out);
  const name = p.deltas[0]!.name;
  const script = `
import json, struct, sys, torch
path, name = sys.argv[1], sys.argv[2]
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
assert header['__metadata__']['format'] == 'pt'
sd = {}
for k, v in header.items():
    if k == '__metadata__': continue
    assert v['dtype'] == 'F32'
    b, e = v['data_offsets']
    sd[k] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(v['shape'])
print(json.dumps({'n': len(sd), 'shape': list(sd[name].shape), 'sum': float(sd[name].double().sum())}))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, path.join(out, 'model.safetensors'), name], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(res.n, m.weights.size);
  assert.deepEqual(res.shape, [...m.weight(name).shape]);
  let s = 0;
  for (const v of m.weight(name).data) s += v;
  assert.ok(Math.abs(res.sum - s) < 1e-6 * Math.max(1, Math.abs(s)));
});
