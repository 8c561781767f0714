// Layer statistics that must not be silently wrong: a cached file damaged after it was written
// (flipped bytes, cut short, emptied) is recomputed with a warning, never used; a UTF-8 byte order
// mark is not text; a folder corpus is known by its files' contents; a changed tokenizer is a
// cache miss. Uses the demo world (d_ff 768) on a few hundred short documents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM } from '../src/models/index.js';
import { layerSecondMoment, loadStatsFile, readStatsFile } from '../src/stats/index.js';
import { repoRoot, sharedDir, warningsOf } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-stats-integrity-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const world = (): CausalLM => CausalLM.loadDir(path.join(repoRoot(), 'world'));
const LINES = fs.readFileSync(path.join(repoRoot(), 'world', 'corpus-train.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, 60);

/** Statistics of `layer` computed once over the first lines of the world corpus into a cache of its own. */
async function computedOnce(name: string, layer: number, samples: number) {
  const model = world();
  const corpus = path.join(tmp, `${name}.txt`);
  fs.writeFileSync(corpus, LINES.join('\n'));
  const o = { corpus, samples, cacheDir: path.join(tmp, `${name}-cache`) };
  return { model, o, first: await layerSecondMoment(model, layer, o) };
}

/** Where the matrix starts in a safetensors file. */
function dataStart(file: string): number {
  return 8 + Number(fs.readFileSync(file).readBigUInt64LE(0));
}

test('a cached statistics file damaged after it was written is recomputed with a warning, never used', async () => {
  const { model, o, first } = await computedOnce('damage', 1, 40);
  assert.equal(first.source, 'computed');
  const file = first.file!;
  assert.match(readStatsFile(file).metadata.mom2_sha256, /^[0-9a-f]{64}$/);
  const good = fs.readFileSync(file);
  const d = first.dim, at = dataStart(file);
  const damaged: [string, (b: Buffer) => Buffer][] = [
    // one bit of one diagonal entry: still finite, positive and symmetric, so only the checksum sees it
    ['a flipped bit on the diagonal', (b) => { const c = Buffer.from(b); c[at + (5 * d + 5) * 8 + 7] ^= 0x40; return c; }],
    ['a flipped low bit off the diagonal', (b) => { const c = Buffer.from(b); c[at + (3 * d + 9) * 8] ^= 0x01; return c; }],
    ['cut in half', (b) => b.subarray(0, b.length >> 1)],
    ['empty', () => Buffer.alloc(0)],
  ];
  for (const [what, damage] of damaged) {
    fs.writeFileSync(file, damage(good));
    assert.throws(() => loadStatsFile(file), (e: unknown) => e instanceof AmendError, what);
    let sm = first;
    const warnings = await warningsOf(async () => { sm = await layerSecondMoment(model, 1, o); });
    assert.equal(sm.source, 'computed', what);
    assert.deepEqual(sm.mom2, first.mom2, what);
    assert.ok(warnings.some((w) => w.includes(file) && /computed again/.test(w)), `${what}: ${warnings.join(' | ')}`);
    assert.deepEqual(readStatsFile(file).sm.mom2, first.mom2, `${what}: the file is rewritten`);
    assert.equal((await layerSecondMoment(model, 1, o)).source, 'cache', what);
  }
  // a missing file is an ordinary miss, without a warning
  fs.rmSync(file);
  assert.deepEqual(await warningsOf(() => layerSecondMoment(model, 1, o)), []);
  // an explicitly loaded damaged file is refused in one line naming it
  const c = Buffer.from(good);
  c[at + 8] ^= 0x10;
  fs.writeFileSync(file, c);
  assert.throws(() => loadStatsFile(file), (e: unknown) => e instanceof AmendError && e.message.includes(file) && /damaged/.test(e.message) && !e.message.includes('\n'));
});

test('statistics files written before the checksum are still read, and refused when visibly damaged', async () => {
  const { model, o, first } = await computedOnce('legacy', 0, 30);
  const file = first.file!;
  // the same file without mom2_sha256 (as Amend wrote them before), header padded to its old length
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> };
  delete header.__metadata__.mom2_sha256;
  const json = Buffer.alloc(n, 0x20);
  Buffer.from(JSON.stringify(header), 'utf8').copy(json);
  const legacy = Buffer.concat([bytes.subarray(0, 8), json, bytes.subarray(8 + n)]);
  fs.writeFileSync(file, legacy);
  const hit = await layerSecondMoment(model, 0, o);
  assert.equal(hit.source, 'cache');
  assert.deepEqual(hit.mom2, first.mom2);
  // an off-diagonal entry that no longer mirrors its twin, or a NaN, gives the file away
  const d = first.dim, at = 8 + n;
  for (const [what, off, v] of [['asymmetric', (2 * d + 7) * 8, 1.5], ['NaN on the diagonal', (4 * d + 4) * 8, NaN]] as const) {
    const c = Buffer.from(legacy);
    c.writeDoubleLE(v, at + off);
    fs.writeFileSync(file, c);
    assert.throws(() => readStatsFile(file), /damaged/, what);
    let sm = first;
    await warningsOf(async () => { sm = await layerSecondMoment(model, 0, o); });
    assert.equal(sm.source, 'computed', what);
    fs.writeFileSync(file, legacy);
  }
});

test('a UTF-8 byte order mark is not text: text and JSONL files with one give the statistics of the files without', async () => {
  const model = world();
  const docs = LINES.slice(0, 25);
  const plain = path.join(tmp, 'plain.txt'), bom = path.join(tmp, 'bom.txt');
  const plainJ = path.join(tmp, 'plain.jsonl'), bomJ = path.join(tmp, 'bom.jsonl');
  fs.writeFileSync(plain, docs.join('\n') + '\n');
  fs.writeFileSync(bom, '\uFEFF' + docs.join('\r\n') + '\r\n');
  const jsonl = docs.map((t) => JSON.stringify({ text: t })).join('\n') + '\n';
  fs.writeFileSync(plainJ, jsonl);
  fs.writeFileSync(bomJ, '\uFEFF' + jsonl);
  const o = { samples: 100, noCache: true };
  const want = await layerSecondMoment(model, 1, { ...o, corpus: plain });
  for (const corpus of [bom, plainJ, bomJ]) {
    const sm = await layerSecondMoment(model, 1, { ...o, corpus });
    assert.equal(sm.count, want.count, corpus);
    assert.equal(sm.samples, docs.length, corpus);
    assert.deepEqual(sm.mom2, want.mom2, corpus);
  }
  // a folder of files with a BOM, one document per file
  const dir = path.join(tmp, 'bom-dir');
  fs.mkdirSync(dir);
  docs.slice(0, 5).forEach((t, i) => fs.writeFileSync(path.join(dir, `${i}.txt`), `\uFEFF${t}\n`));
  const fromDir = await layerSecondMoment(model, 1, { ...o, corpus: dir });
  const fromTexts = await layerSecondMoment(model, 1, { ...o, corpus: { kind: 'texts', texts: docs.slice(0, 5) } });
  assert.equal(fromDir.count, fromTexts.count);
  assert.deepEqual(fromDir.mom2, fromTexts.mom2);
  // a file with a BOM is another corpus than the same bytes were before (its old statistics counted the mark)
  const cacheDir = path.join(tmp, 'bom-cache');
  const a = await layerSecondMoment(model, 1, { corpus: plain, samples: 100, cacheDir });
  const b = await layerSecondMoment(model, 1, { corpus: bom, samples: 100, cacheDir });
  assert.match(b.corpus, /bom-dropped/);
  assert.notEqual(a.file, b.file);
});

test('a folder corpus is known by its files\' contents: same names, sizes and times with other text is a miss', async () => {
  const model = world();
  const dir = path.join(tmp, 'folder');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  const a = path.join(dir, 'a.txt');
  fs.writeFileSync(a, LINES.slice(0, 10).join('\n'));
  fs.writeFileSync(path.join(dir, 'sub', 'b.txt'), LINES.slice(10, 20).join('\n'));
  fs.writeFileSync(path.join(dir, 'notes.bin'), Buffer.from([0, 1, 2, 3])); // not a corpus file: skipped
  const o = { corpus: dir, samples: 100, cacheDir: path.join(tmp, 'folder-cache') };
  const first = await layerSecondMoment(model, 1, o);
  assert.equal(first.samples, 20);
  // rewrite a.txt with other text of the same length, and put its old time back
  const st = fs.statSync(a);
  const old = fs.readFileSync(a, 'utf8');
  const swapped = old.replace(/[a-z]/g, (ch) => (ch === 'a' ? 'e' : ch === 'e' ? 'a' : ch));
  assert.equal(Buffer.byteLength(swapped), Buffer.byteLength(old));
  assert.notEqual(swapped, old);
  fs.writeFileSync(a, swapped);
  fs.utimesSync(a, st.atime, st.mtime);
  const second = await layerSecondMoment(model, 1, o);
  assert.equal(second.source, 'computed');
  assert.notDeepEqual(second.mom2, first.mom2);
  // a copy of the folder elsewhere (under the same name) finds the same statistics
  const copy = path.join(tmp, 'elsewhere', 'folder');
  fs.cpSync(dir, copy, { recursive: true });
  assert.equal((await layerSecondMoment(model, 1, { ...o, corpus: copy })).source, 'cache');
  // a .txt file in it holding binary data is named, as a single binary file is refused
  fs.writeFileSync(path.join(copy, 'sub', 'c.txt'), Buffer.from([0x61, 0, 0x62]));
  await assert.rejects(layerSecondMoment(model, 1, { ...o, corpus: copy }), (e: unknown) => e instanceof AmendError && /sub.c\.txt holds NUL bytes/.test(e.message));
});

const llama = sharedDir('models/tiny-random-llama');
test('a model whose tokenizer changed (same weights) does not reuse statistics counted with the old tokenizer',
  { skip: llama ? false : '../shared/models/tiny-random-llama is absent' }, async () => {
    const dir = path.join(tmp, 'llama');
    fs.cpSync(llama!, dir, { recursive: true });
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    const texts = ['Once upon a time there was a cat.', 'The dog ran to the park.', 'Lily saw a big red ball.'];
    const o = { corpus: { kind: 'texts' as const, texts }, maxLength: 32, cacheDir: path.join(tmp, 'llama-cache') };
    const withBos = CausalLM.loadDir(dir);
    assert.equal(withBos.tokenizer!.encode('a')[0], withBos.tokenizer!.bosId);
    const first = await layerSecondMoment(withBos, 1, o);
    assert.equal((await layerSecondMoment(withBos, 1, o)).source, 'cache');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, tokenizer_class: 'LlamaTokenizerFast', add_bos_token: false }));
    const noBos = CausalLM.loadDir(dir);
    assert.notEqual(noBos.tokenizer!.encode('a')[0], noBos.tokenizer!.bosId);
    const second = await layerSecondMoment(noBos, 1, o);
    assert.equal(second.source, 'computed');
    assert.equal(second.count, first.count - texts.length);
    assert.equal((await layerSecondMoment(noBos, 1, o)).source, 'cache');
  });
