// EditPatch and the edit session: apply / revert exactly, stacking, fingerprint refusal, failure
// atomicity, save / load round trip and load errors, describe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM, generate, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { modelFingerprint } from '../src/models/fingerprint.js';
import { mulberry32, randn } from '../src/tensor/index.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import {
  EditPatch, editSession, sessionOf, isEdited, baseFingerprint, lowRankDelta, denseDelta, materialize, deltaNorm,
  holdModel, outsideHold, PATCH_VERSION, type TensorDelta,
} from '../src/patch/index.js';
import { sharedDir, warningsOf } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-patch-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const baseDir = writeRandomCheckpoint(path.join(tmp, 'base'), gpt2Config(), 1);
const otherDir = writeRandomCheckpoint(path.join(tmp, 'other'), gpt2Config(), 2);
const load = (dir = baseDir): CausalLM => CausalLM.loadDir(dir, { noTokenizer: true });

/** Bit patterns of every tensor, for exact comparisons. */
function snapshot(model: CausalLM): Map<string, Uint32Array> {
  const out = new Map<string, Uint32Array>();
  for (const [name, t] of model.weights) out.set(name, new Uint32Array(t.data.slice().buffer));
  return out;
}

function assertBitIdentical(a: Map<string, Uint32Array>, b: Map<string, Uint32Array>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, x] of a) {
    const y = b.get(name)!;
    const i = x.findIndex((v, k) => v !== y[k]);
    assert.equal(i, -1, `${what}: "${name}" differs at ${i}`);
  }
}

/** A random patch on the down projections of the given layers plus one dense bias delta. */
function randomPatch(model: CausalLM, seed: number, layers: number[], opts: { rank?: number; bias?: boolean } = {}): EditPatch {
  const rand = mulberry32(seed);
  const deltas: TensorDelta[] = [];
  for (const l of layers) {
    const down = model.spec.layers[l]!.down;
    const t = model.weight(down.w);
    const [rows, cols] = t.shape as [number, number];
    const r = opts.rank ?? 2;
    deltas.push(lowRankDelta(down.w, randn(rows * r, rand, 0.05), randn(cols * r, rand, 0.05), rows, cols));
  }
  if (opts.bias !== false) {
    const b = model.spec.layers[layers[0]!]!.down.b!;
    const shape = model.weight(b).shape;
    deltas.push(denseDelta(b, shape, randn(model.weight(b).size, rand, 0.1)));
  }
  return EditPatch.create(model, deltas, {
    method: 'test',
    hparams: { seed, layers },
    requests: [{ prompt: '{} plays', subject: `Subject ${seed}`, targetNew: ' football', targetTrue: ' chess' }],
    timings: { total: 0.5 },
  });
}

test('fingerprint: stable across loads, differs for other weights and after an edit', () => {
  const a = load(), b = load(), c = load(otherDir);
  const fa = modelFingerprint(a);
  assert.match(fa, /^[0-9a-f]{64}$/);
  assert.equal(fa, modelFingerprint(b));
  assert.notEqual(fa, modelFingerprint(c));
  const p = randomPatch(a, 1, [0]);
  p.apply(a);
  assert.notEqual(modelFingerprint(a), fa, 'edited weights hash differently');
  assert.equal(editSession(a).baseFingerprint, fa, 'the session keeps the base fingerprint');
  assert.equal(baseFingerprint(a), fa);
});

test('fingerprint: large tensors are sampled, yet any rank-1 edit of them changes it', () => {
  const m = load();
  const fp = modelFingerprint(m);
  const w = m.weight(m.spec.wte); // 100 × 32 = 3200 values: hashed in full
  w.data[1234] += 1;
  assert.notEqual(modelFingerprint(m), fp);
});

test('apply changes the weights by U Vᵀ and revert restores them bit for bit', () => {
  const m = load();
  const before = snapshot(m);
  const p = randomPatch(m, 3, [0, 1]);
  const name = p.deltas[0]!.name;
  const w0 = m.weight(name).data.slice();
  p.apply(m);
  assert.ok(isEdited(m));
  const dw = materialize(p.deltas[0]!);
  const w1 = m.weight(name).data;
  for (let i = 0; i < w1.length; i += 97) assert.ok(Math.abs(w1[i]! - (w0[i]! + dw[i]!)) < 1e-6);
  assert.deepEqual(editSession(m).touched().sort(), p.touched().sort());
  p.revert(m);
  assert.ok(!isEdited(m));
  assert.deepEqual(editSession(m).touched(), []);
  assertBitIdentical(snapshot(m), before, 'after revert');
});

test('a stack of 3: reverting the last equals applying the first 2; reverting the middle equals 1 then 3', () => {
  const m = load();
  const p1 = randomPatch(m, 11, [0]);
  const p2 = randomPatch(m, 12, [0, 1]); // overlaps p1 on layer 0
  const p3 = randomPatch(m, 13, [1], { bias: true });
  const s = editSession(m);
  for (const p of [p1, p2, p3]) s.apply(p);
  assert.deepEqual(s.applied(), [p1, p2, p3]);
  assert.equal(s.revert(), p3);

  const ref12 = load();
  editSession(ref12).apply(p1);
  editSession(ref12).apply(p2);
  assertBitIdentical(snapshot(m), snapshot(ref12), 'revert last');

  s.apply(p3);
  s.revert(p2); // from the middle
  const ref13 = load();
  editSession(ref13).apply(p1);
  editSession(ref13).apply(p3);
  assertBitIdentical(snapshot(m), snapshot(ref13), 'revert middle');
  assert.deepEqual(s.applied(), [p1, p3]);

  // By id: the whole id or an unambiguous prefix; '' and wrong types are refused, nothing reverted
  const held = snapshot(m);
  assert.throws(() => s.revert(''), /"" is not applied|starts the ids of 2 applied patches/);
  const shared = [...p1.id].findIndex((ch, k) => ch !== p3.id[k]);
  // Ids are content hashes with a creation time in them: p1 and p3 share a first digit in one run
  // in 16, so a patch that does share it with p1 is found and stacked for the ambiguous case.
  let p4 = randomPatch(m, 100, [1], { bias: false });
  for (let seed = 101; p4.id[0] !== p1.id[0]; seed++) p4 = randomPatch(m, seed, [1], { bias: false });
  s.apply(p4);
  const withP4 = snapshot(m);
  assert.throws(() => s.revert(p1.id[0]!), /starts the ids of [23] applied patches/);
  assertBitIdentical(snapshot(m), withP4, 'an ambiguous prefix reverts nothing');
  assert.equal(s.revert(p4.id), p4);
  assert.throws(() => s.revert(null as unknown as string), /revert takes an applied EditPatch, its id or its position/);
  assert.throws(() => s.apply(null as unknown as EditPatch), /apply takes an EditPatch/);
  assert.throws(() => s.apply('p.safetensors' as unknown as EditPatch), /not the string "p\.safetensors"/);
  assertBitIdentical(snapshot(m), held, 'refused calls change nothing');
  assert.equal(s.revert(p3.id.slice(0, Math.max(shared, 0) + 1)), p3);
  assert.deepEqual(s.applied(), [p1]);
});

test('revertAll is bit-identical to the base', () => {
  const m = load();
  const before = snapshot(m);
  const s = editSession(m);
  const ps = [randomPatch(m, 21, [0]), randomPatch(m, 22, [1]), randomPatch(m, 23, [0, 1])];
  for (const p of ps) s.apply(p);
  assert.deepEqual(s.revertAll(), ps);
  assert.equal(s.applied().length, 0);
  assertBitIdentical(snapshot(m), before, 'revertAll');
  assert.throws(() => s.revert(), /nothing to revert/);
});

test('a patch made for another model is refused (one line naming both), unless forced', () => {
  const other = load(otherDir);
  const p = randomPatch(other, 5, [0]);
  const m = load();
  const before = snapshot(m);
  assert.throws(() => p.apply(m), (e: unknown) => {
    assert.ok(e instanceof AmendError);
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, /was made for gpt2 model .*other .*fingerprint [0-9a-f]{12}.*not for this gpt2 model .*base .*fingerprint [0-9a-f]{12}/);
    assert.match(e.message, /ignore-fingerprint|force/);
    return true;
  });
  assertBitIdentical(snapshot(m), before, 'after refusal');
  p.apply(m, { force: true });
  assert.equal(editSession(m).applied().length, 1);
});

test('patches computed on an edited model still carry the base fingerprint and stack', () => {
  const m = load();
  const base = modelFingerprint(m);
  const p1 = randomPatch(m, 31, [0]);
  p1.apply(m);
  const p2 = randomPatch(m, 32, [1]); // computed "after" p1
  assert.equal(p2.metadata.modelFingerprint, base);
  assert.deepEqual(p2.metadata.appliedOn, [p1.id]);
  p2.apply(m);
  // and both apply to a fresh copy of the base
  const fresh = load();
  p1.apply(fresh);
  p2.apply(fresh);
  assertBitIdentical(snapshot(fresh), snapshot(m), 'stacked on a fresh base');
});

test('a patch computed on other patches warns when applied without them; patches of the base stack silently', async () => {
  const m = load();
  const p1 = randomPatch(m, 41, [0]);
  p1.apply(m);
  const p2 = randomPatch(m, 42, [1]); // appliedOn [p1]
  editSession(m).revertAll();
  const fresh = load();
  const p3 = randomPatch(fresh, 43, [1]); // computed on the base
  let w: string[];
  w = await warningsOf(() => editSession(m).apply(p2));
  assert.equal(w.length, 1);
  assert.match(w[0]!, /was computed on the model with 1 other patch\(es\) applied \(.{12}\); here it follows none/);
  editSession(m).revertAll();
  w = await warningsOf(() => { editSession(m).apply(p1); editSession(m).apply(p2); });
  assert.deepEqual(w, [], 'applied on what it was computed on');
  w = await warningsOf(() => { editSession(fresh).apply(p3); editSession(fresh).apply(p1); });
  assert.deepEqual(w, [], 'independent patches of the base');
  // Reverting the patch another one was computed on: that one is named.
  editSession(m).revertAll();
  editSession(m).apply(p1);
  editSession(m).apply(p2);
  w = await warningsOf(() => editSession(m).revert(p1));
  assert.equal(w.length, 1);
  assert.match(w[0]!, /was computed on the model with .* applied, which is now reverted/);
});

test('a held model (an evaluation run) refuses other promises\' patches; the holder\'s own work goes on', async () => {
  const m = load();
  const p = randomPatch(m, 51, [0]);
  const before = snapshot(m);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const ids = new Int32Array([1, 2, 3]);
  const run = holdModel(m, 'a test run', async () => {
    editSession(m).apply(p); // inside the hold: allowed, across an await
    m.forward(ids, 1, 3);
    await gate;
    m.forward(ids, 1, 3);
    // A caller's callback, as the run calls it, is outside the hold.
    assert.throws(() => outsideHold(() => editSession(m).apply(randomPatch(m, 53, [1])))!(), /applying a patch: the model is in use by a test run/);
    editSession(m).revert(p);
    return 'done';
  });
  await new Promise((r) => setImmediate(r));
  // Reads too: the weights are the run's until it ends (here, with its patch applied).
  assert.throws(() => m.forward(ids, 1, 3), (e: unknown) => e instanceof AmendError && /^a forward pass \(forward, generate, scoring\): the model is in use by a test run/.test(e.message));
  assert.throws(() => generate(m, [[1, 2]], { maxNewTokens: 1 }), /a forward pass .*: the model is in use by a test run/);
  assert.throws(() => editSession(m).revertAll(), /the model is in use by a test run/);
  assert.throws(() => editSession(m).apply(randomPatch(m, 52, [1])), /applying a patch: the model is in use by a test run.*load a second copy/);
  await assert.rejects(holdModel(m, 'another run', async () => 0), /another run: the model is in use by a test run/);
  release();
  assert.equal(await run, 'done');
  assertBitIdentical(snapshot(m), before, 'after the hold');
  editSession(m).apply(p); // free again
  editSession(m).revert(p);
});

test('a patch whose application fails half-way leaves the model exactly as it was', () => {
  const m = load();
  const s = editSession(m);
  const p1 = randomPatch(m, 41, [0, 1]);
  s.apply(p1);
  const before = snapshot(m);
  // First delta fine (touches an already-edited tensor), second one overflows float32.
  const down0 = m.spec.layers[0]!.down, down1 = m.spec.layers[1]!.down;
  const [r0, c0] = m.weight(down0.w).shape as [number, number];
  const ln = m.spec.layers[1]!.ln1.w;
  const [r1, c1] = m.weight(down1.w).shape as [number, number];
  const bad = EditPatch.create(m, [
    lowRankDelta(down0.w, randn(r0, mulberry32(1), 0.1), randn(c0, mulberry32(2), 0.1), r0, c0),
    denseDelta(ln, m.weight(ln).shape, new Float32Array(m.weight(ln).size).fill(1)), // never-touched tensor
    lowRankDelta(down1.w, new Float32Array(r1).fill(3e38), new Float32Array(c1).fill(3e38), r1, c1),
  ], { method: 'overflow' });
  assert.throws(() => s.apply(bad), /overflows float32.*unchanged/);
  assertBitIdentical(snapshot(m), before, 'after a failed apply');
  assert.deepEqual(s.applied(), [p1]);
  assert.deepEqual(s.touched().sort(), p1.touched().sort(), 'no original kept for the restored tensor');
  s.revertAll();
  assertBitIdentical(snapshot(m), snapshot(load()), 'revertAll after a failed apply');
});

test('a patch naming a missing tensor or the wrong shape is refused before any change', () => {
  const m = load();
  const before = snapshot(m);
  const fp = baseFingerprint(m);
  const meta = { method: 'x', hparams: {}, requests: [], modelFingerprint: fp, model: { modelType: 'gpt2', source: null }, createdAt: '', timings: {}, amendVersion: '0' };
  const missing = new EditPatch([denseDelta('no.such.weight', [2], new Float32Array(2))], meta);
  assert.throws(() => missing.apply(m), /has no tensor "no\.such\.weight"/);
  const down = m.spec.layers[0]!.down.w;
  const wrong = new EditPatch([lowRankDelta(down, new Float32Array(32), new Float32Array(128), 32, 128)], meta);
  assert.throws(() => wrong.apply(m), /\[32, 128\] tensor but the model's .* is \[128, 32\]/);
  assertBitIdentical(snapshot(m), before, 'after refusals');
  assert.throws(() => new EditPatch([denseDelta(down, [1], new Float32Array(1)), denseDelta(down, [1], new Float32Array(1))], meta), /two deltas/);
  assert.throws(() => denseDelta(down, [2], Float32Array.of(1, NaN)), /finite/);
  const p = randomPatch(m, 51, [0]);
  p.apply(m);
  assert.throws(() => p.apply(m), /already applied/);
});

test('save / load round trip is exact (deltas, metadata, id)', () => {
  const m = load();
  const p = randomPatch(m, 61, [0, 1], { rank: 3 });
  const file = path.join(tmp, 'p61.safetensors');
  p.save(file);
  const q = EditPatch.load(file);
  assert.equal(q.id, p.id);
  assert.deepEqual(q.metadata, p.metadata);
  assert.equal(q.deltas.length, p.deltas.length);
  q.deltas.forEach((d, i) => {
    const e = p.deltas[i]!;
    assert.equal(d.kind, e.kind);
    assert.equal(d.name, e.name);
    if (d.kind === 'low_rank' && e.kind === 'low_rank') {
      assert.deepEqual([d.rows, d.cols, d.rank], [e.rows, e.cols, e.rank]);
      assert.deepEqual(new Uint32Array(d.U.buffer), new Uint32Array(e.U.slice().buffer));
      assert.deepEqual(new Uint32Array(d.V.buffer), new Uint32Array(e.V.slice().buffer));
    } else if (d.kind === 'dense' && e.kind === 'dense') {
      assert.deepEqual(d.shape, e.shape);
      assert.deepEqual(new Uint32Array(d.delta.buffer), new Uint32Array(e.delta.slice().buffer));
    }
  });
  // Applying the loaded copy gives the same weights as the original.
  const a = load(), b = load();
  p.apply(a);
  q.apply(b);
  assertBitIdentical(snapshot(a), snapshot(b), 'loaded patch');
  // Either object reverts the patch, as either applies it: the loaded copy is the same patch (its id).
  q.revert(a);
  editSession(b).revert(p);
  assertBitIdentical(snapshot(a), snapshot(load()), 'reverted with the loaded copy');
  assertBitIdentical(snapshot(b), snapshot(load()), 'reverted with the original given to the other model');
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp')), [], 'no temporary file left');
  // noClobber never replaces a file: one there already, or one that appeared since the check; plain save does.
  const theirs = path.join(tmp, 'theirs.safetensors');
  fs.writeFileSync(theirs, 'a file of someone else\'s');
  assert.throws(() => p.save(theirs, { noClobber: true }), /theirs\.safetensors exists; pass --force \(noClobber: false\) to replace it, or choose another name$/);
  const existsSync = fs.existsSync;
  fs.existsSync = () => false; // the file "appears" after the check
  syncBuiltinESMExports(); // for modules that import fs as a namespace
  try {
    assert.throws(() => p.save(theirs, { noClobber: true }), /theirs\.safetensors: appeared while it was being written; pass --force \(noClobber: false\)/);
  } finally {
    fs.existsSync = existsSync;
    syncBuiltinESMExports();
  }
  assert.equal(fs.readFileSync(theirs, 'utf8'), 'a file of someone else\'s');
  const fresh = path.join(tmp, 'fresh.safetensors');
  p.save(fresh, { noClobber: true });
  assert.equal(EditPatch.load(fresh).id, p.id);
  p.save(theirs);
  assert.equal(EditPatch.load(theirs).id, p.id);
  // A temporary copy left by a killed writer of the same file goes with the next write; a live
  // process's stays.
  const dead = path.join(tmp, '.theirs.safetensors.2147483646.k1ll3d.tmp'), live = path.join(tmp, `.theirs.safetensors.${process.pid}.l1v3.tmp`);
  fs.writeFileSync(dead, 'x');
  fs.writeFileSync(live, 'x');
  p.save(theirs);
  assert.ok(fs.existsSync(dead), 'a dead pid\'s copy written a moment ago may be another PID namespace\'s live write');
  const anHourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(dead, anHourAgo, anHourAgo);
  fs.utimesSync(live, anHourAgo, anHourAgo);
  p.save(theirs);
  assert.ok(!fs.existsSync(dead) && fs.existsSync(live));
  fs.rmSync(live);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp')), [], 'no temporary file left');
});

test('load: clear one-line errors for a non-patch, a corrupt patch and a newer version', () => {
  const junk = path.join(tmp, 'junk.safetensors');
  fs.writeFileSync(junk, 'this is not a safetensors file at all');
  assert.throws(() => EditPatch.load(junk), /junk\.safetensors: not a readable patch file: not safetensors: it starts with the text "this is not a safetensor", like a text file/);
  // A request list given where a patch goes: named as JSON, the file named once.
  const requests = path.join(tmp, 'requests.json');
  fs.writeFileSync(requests, '[\n  {"prompt": "{} plays", "subject": "X", "targetNew": "chess"}\n]\n');
  assert.throws(() => EditPatch.load(requests), (err: Error) => {
    assert.match(err.message, /^\S*requests\.json: not a readable patch file: not safetensors: it starts with the text "\[ \{[^,]*prompt[^,]*", like a JSON file/);
    assert.equal(err.message.split('requests.json').length, 2, err.message);
    return true;
  });
  assert.throws(() => EditPatch.load(path.join(tmp, 'absent.safetensors')), /no such file/);
  assert.throws(() => EditPatch.load(path.join(baseDir, 'model.safetensors')), /not an Amend patch.*looks like model weights.*--model/);

  const m = load();
  const p = randomPatch(m, 71, [0]);
  const good = path.join(tmp, 'good.safetensors');
  p.save(good);
  const rewrite = (name: string, mutate: (meta: Record<string, string>, tensors: { name: string; shape: number[]; data: Float32Array }[]) => void): string => {
    const file = path.join(tmp, name);
    const meta: Record<string, string> = {
      format: 'amend-patch', amend_patch_version: String(PATCH_VERSION), patch: JSON.stringify(p.metadata),
      deltas: JSON.stringify(p.deltas.map((d) => d.kind === 'low_rank' ? { name: d.name, kind: d.kind, rows: d.rows, cols: d.cols, rank: d.rank } : { name: d.name, kind: d.kind, shape: d.shape })),
    };
    const tensors = p.deltas.flatMap((d) => d.kind === 'low_rank'
      ? [{ name: `${d.name}.U`, shape: [d.rows, d.rank], data: d.U }, { name: `${d.name}.V`, shape: [d.cols, d.rank], data: d.V }]
      : [{ name: `${d.name}.delta`, shape: d.shape, data: d.delta }]);
    mutate(meta, tensors);
    writeSafetensors(file, tensors, meta);
    return file;
  };
  assert.doesNotThrow(() => EditPatch.load(rewrite('same.safetensors', () => {})));
  assert.throws(() => EditPatch.load(rewrite('v9.safetensors', (m) => { m.amend_patch_version = '9'; })), /format version 9 by a newer Amend.*upgrade/);
  // Number() reads these as 1; a version is written in decimal digits.
  for (const v of ['0x1', '1e0', ' 1', '1.0', '01', '']) {
    assert.throws(() => EditPatch.load(rewrite('vjunk.safetensors', (m) => { m.amend_patch_version = v; })), (e: Error) => e.message.includes(`format version ${JSON.stringify(v)}, not a positive integer`), v);
  }
  assert.throws(() => EditPatch.load(rewrite('badjson.safetensors', (m) => { m.patch = '{oops'; })), /not valid JSON.*corrupt/);
  assert.throws(() => EditPatch.load(rewrite('missing.safetensors', (_m, t) => { t.pop(); })), /missing from the file.*corrupt/);
  assert.throws(() => EditPatch.load(rewrite('extra.safetensors', (_m, t) => { t.push({ name: 'stray', shape: [1], data: new Float32Array(1) }); })), /"stray" is not in the header's list/);
  assert.throws(() => EditPatch.load(rewrite('nofp.safetensors', (m) => { const o = JSON.parse(m.patch!); delete o.modelFingerprint; m.patch = JSON.stringify(o); })),
    (e: Error) => /nofp\.safetensors: the patch metadata's "modelFingerprint" is missing/.test(e.message) && e.message.split('nofp.safetensors').length === 2);
  assert.throws(() => EditPatch.load(rewrite('badreq.safetensors', (m) => { const o = JSON.parse(m.patch!); o.requests = [1, null, 'x']; m.patch = JSON.stringify(o); })), /"requests" is .*expected a list of requests \{prompt, subject, targetNew\}/);
  assert.throws(() => EditPatch.load(rewrite('nodate.safetensors', (m) => { const o = JSON.parse(m.patch!); delete o.createdAt; m.patch = JSON.stringify(o); })), /"createdAt" is missing, expected a date/);
  assert.throws(() => EditPatch.load(rewrite('badorigin.safetensors', (m) => { const o = JSON.parse(m.patch!); o.origin = { baseFingerprint: 'ab', patches: [1] }; m.patch = JSON.stringify(o); })), /"origin" is .*expected \{baseFingerprint, patches: a list of patch ids\}/);
  assert.throws(() => EditPatch.load(rewrite('strrank.safetensors', (m) => { const d = JSON.parse(m.deltas!); d[0].rank = '2'; m.deltas = JSON.stringify(d); })), /has rank "2" in the header, not a positive integer/);
  // A flipped bit, or a delta moved to another tensor, no longer matches the id saved with the patch.
  const flipped = path.join(tmp, 'flipped.safetensors');
  const saved = Buffer.from(fs.readFileSync(good));
  saved[saved.length - 3]! ^= 0x10;
  fs.writeFileSync(flipped, saved);
  assert.throws(() => EditPatch.load(flipped), /flipped\.safetensors: the patch's contents do not match the id recorded when it was written/);
  const moved = path.join(tmp, 'moved.safetensors');
  const text = fs.readFileSync(good).toString('latin1');
  const from = p.deltas[0]!.name, to = from.replace('.0.', '.1.');
  assert.notEqual(from, to);
  fs.writeFileSync(moved, Buffer.from(text.split(from).join(to), 'latin1'));  // same length: the header's size holds
  assert.throws(() => EditPatch.load(moved), /moved\.safetensors: the patch's contents do not match/);
  assert.equal(EditPatch.load(good).id, p.id);
  // Truncated file
  const trunc = path.join(tmp, 'trunc.safetensors');
  const bytes = fs.readFileSync(good);
  fs.writeFileSync(trunc, bytes.subarray(0, bytes.length - 10));
  assert.throws(() => EditPatch.load(trunc), /trunc\.safetensors: not a readable patch file.*(truncated|corrupt)/);
});

test('describe: norms of ΔW, relative to ‖W‖ of the base, requests and fingerprint match', () => {
  const m = load();
  const p = randomPatch(m, 81, [0, 1], { rank: 4 });
  const d = p.describe();
  assert.equal(d.tensors.length, 3);
  assert.equal(d.method, 'test');
  assert.equal(d.requests.length, 1);
  assert.equal(d.target, undefined);
  for (let i = 0; i < p.deltas.length; i++) {
    const full = materialize(p.deltas[i]!);
    let s = 0;
    for (const v of full) s += v * v;
    assert.ok(Math.abs(d.tensors[i]!.norm - Math.sqrt(s)) < 1e-4 * Math.sqrt(s), `norm of ${p.deltas[i]!.name}`);
    assert.ok(Math.abs(deltaNorm(p.deltas[i]!) - Math.sqrt(s)) < 1e-4 * Math.sqrt(s));
  }
  assert.equal(d.tensors[0]!.rank, 4);
  assert.equal(d.tensors[2]!.rank, null);
  const withModel = p.describe(m);
  assert.equal(withModel.target!.fingerprintMatches, true);
  assert.equal(withModel.target!.applicable, true);
  const w = m.weight(p.deltas[0]!.name).data;
  let ws = 0;
  for (const v of w) ws += v * v;
  assert.ok(Math.abs(withModel.tensors[0]!.relative! - d.tensors[0]!.norm / Math.sqrt(ws)) < 1e-9);
  // After applying, relative norms still refer to the base weights.
  p.apply(m);
  assert.ok(Math.abs(p.describe(m).tensors[0]!.relative! - withModel.tensors[0]!.relative!) < 1e-12);
  const other = load(otherDir);
  assert.equal(p.describe(other).target!.fingerprintMatches, false);
  assert.ok(sessionOf(other));
});

const models = sharedDir('models');
test('tiny-random-llama: fingerprint, apply, revert exactly', { skip: models && fs.existsSync(path.join(models, 'tiny-random-llama')) ? false : '../shared/models/tiny-random-llama is absent' }, () => {
  const dir = path.join(models!, 'tiny-random-llama');
  const m = CausalLM.loadDir(dir, { noTokenizer: true });
  const before = snapshot(m);
  assert.equal(modelFingerprint(m), modelFingerprint(CausalLM.loadDir(dir, { noTokenizer: true })));
  const p = randomPatch(m, 91, [0, 2], { bias: false });
  assert.equal(m.spec.layers[0]!.down.layout, 'out_in');
  p.apply(m);
  p.revert(m);
  assertBitIdentical(snapshot(m), before, 'llama revert');
});
