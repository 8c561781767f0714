// The world trainer's optional settings (sequence packing, no learned positions, block drop) and the
// `amend world build --config` file that selects them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CausalLM } from '../src/models/index.js';
import { buildWorldModel } from '../src/world/build.js';
import { withStartToken } from '../src/world/bpe.js';
import { buildDemoWorld } from '../src/world/index.js';
import { AmendTokenizer } from '../src/tokenizer/index.js';
import { mulberry32 } from '../src/tensor/index.js';
import { SMALL_TRAIN_CONFIG, SMALL_VOCAB_SIZE, SMALL_WORLD_SIZES, dropMask, packRows, prepareDocs, trainWorldModel, type TrainDoc } from '../src/world/train.js';
import { assertOneLineError, runCli } from './helpers.js';

const doc = (n: number): TrainDoc => ({
  ids: new Int32Array(n), weights: new Float32Array(n - 1), answer: new Uint8Array(n - 1), phrase: new Uint8Array(n),
});

test('packRows: one line per row when packing is off, greedy rows of at most packTokens tokens when on', () => {
  const docs = [doc(3), doc(4), doc(5), doc(2), doc(9)];
  assert.deepEqual(packRows(docs, [0, 1, 2, 3, 4], 0), [[0], [1], [2], [3], [4]]);
  // 3 + 4 ≤ 8; 5 starts a row, 5 + 2 ≤ 8; a line longer than the budget gets a row of its own.
  assert.deepEqual(packRows(docs, [0, 1, 2, 3, 4], 8), [[0, 1], [2, 3], [4]]);
  // The batch order is kept, so packing follows the epoch's shuffled order.
  assert.deepEqual(packRows(docs, [3, 0, 1], 100), [[3, 0, 1]]);
});

test('world build with positionEmbeddings false keeps wpe at zero; model.inner sets n_inner; packing trains to finite weights', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-world-opts-'));
  try {
    const nope = await buildWorldModel({
      out: path.join(tmp, 'nope'), small: true, recordSmall: false,
      config: { positionEmbeddings: false, model: { ...SMALL_TRAIN_CONFIG.model, inner: 48 } },
    });
    assert.equal(nope.model.config.ffn, 48, 'model.inner sets the MLP width (n_inner)');
    assert.equal(JSON.parse(fs.readFileSync(path.join(tmp, 'nope', 'config.json'), 'utf8')).n_inner, 48);
    const wpe = nope.model.weights.get('transformer.wpe.weight') ?? nope.model.weights.get('wpe.weight');
    assert.ok(wpe, 'the checkpoint keeps its wpe tensor (an ordinary GPT-2 checkpoint)');
    assert.ok(wpe.data.every((x) => x === 0), 'wpe stays zero');
    const reloaded = await CausalLM.load(path.join(tmp, 'nope'));
    assert.equal(reloaded.config.layers, nope.model.config.layers);

    const packed = await buildWorldModel({ out: path.join(tmp, 'packed'), small: true, recordSmall: false, config: { packTokens: 64 } });
    const plain = await buildWorldModel({ out: path.join(tmp, 'plain'), small: true, recordSmall: false });
    for (const [name, t] of packed.model.weights) assert.ok(t.data.every(Number.isFinite), `${name} is finite`);
    assert.notEqual(packed.info.sha256['model.safetensors'], plain.info.sha256['model.safetensors'], 'packing changes the training batches');
    assert.match(fs.readFileSync(path.join(tmp, 'packed', 'build-log.txt'), 'utf8'), /packing 64 tokens/);

    const dropped = await buildWorldModel({ out: path.join(tmp, 'dropped'), small: true, recordSmall: false, config: { layerDrop: 0.5 } });
    for (const [name, t] of dropped.model.weights) assert.ok(t.data.every(Number.isFinite), `${name} is finite`);
    assert.notEqual(dropped.info.sha256['model.safetensors'], plain.info.sha256['model.safetensors'], 'block drop changes the training forward passes');
    assert.match(fs.readFileSync(path.join(tmp, 'dropped', 'build-log.txt'), 'utf8'), /layer drop 0\.5/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('trainWorldModel calls onStep with each step of the total, and not with the trainer\'s state as `this`', () => {
  const dw = buildDemoWorld({ seed: 3, sizes: SMALL_WORLD_SIZES, vocabSize: SMALL_VOCAB_SIZE, benchmarkCases: 0, modelMaxLength: SMALL_TRAIN_CONFIG.model.positions });
  const tokenizer = new AmendTokenizer(dw.tokenizer as unknown as Record<string, unknown>, dw.tokenizerConfig);
  const calls: [number, number][] = [];
  const receivers = new Set<unknown>();
  trainWorldModel(dw.world, dw.corpus, tokenizer, {
    seed: 3, config: { ...SMALL_TRAIN_CONFIG, epochs: 1 },
    onStep(step: number, total: number) { receivers.add(this); calls.push([step, total]); },
  });
  assert.ok(calls.length > 0);
  assert.deepEqual(calls.map(([step]) => step), calls.map((_, i) => i + 1));
  assert.ok(calls.every(([, total]) => total === calls.length));
  assert.deepEqual([...receivers], [undefined]);
});

test('dropMask with a unit of one line: each line of a [B, T, width] activation is dropped whole (0) or kept whole (1 / (1 − p))', () => {
  const rand = mulberry32(7);
  const [B, T, W] = [400, 3, 5];
  const m = dropMask([B, T, W], 0.25, rand, T * W);
  assert.deepEqual(m.shape, [B, T, W]);
  let dropped = 0;
  for (let b = 0; b < B; b++) {
    const line = m.data.subarray(b * T * W, (b + 1) * T * W);
    const v = line[0]!;
    assert.ok(v === 0 || Math.abs(v - 1 / 0.75) < 1e-6, `line ${b}: ${v} is neither 0 nor 1 / (1 − p)`);
    assert.ok(line.every((x) => x === v), `line ${b} is not dropped or kept whole`);
    if (v === 0) dropped++;
  }
  // 400 draws at p = 0.25: the share dropped lies within 0.25 ± 0.08 (about 3.7 standard deviations).
  assert.ok(Math.abs(dropped / B - 0.25) < 0.08, `${dropped} of ${B} lines dropped at p = 0.25`);
});

test('a start token: the tokenizer puts <|endoftext|> in front of every text; training lines shift by one, weights and marks with them', () => {
  const dw = buildDemoWorld({ sizes: SMALL_WORLD_SIZES, vocabSize: SMALL_VOCAB_SIZE, corpus: { bios: 1 }, benchmarkCases: 0 });
  const plain = new AmendTokenizer(dw.tokenizer as unknown as Record<string, unknown>, dw.tokenizerConfig);
  const started = new AmendTokenizer(withStartToken(dw.tokenizer) as unknown as Record<string, unknown>, dw.tokenizerConfig);
  const eos = plain.eosId!;
  const text = 'The birthplace of someone is';
  assert.deepEqual(started.encode(text), [eos, ...plain.encode(text)]);
  assert.deepEqual(started.encode(text, { addSpecialTokens: false }), plain.encode(text));
  const prompt = `The birthplace of ${dw.world.entities.person[0]!.name} is`;
  const a = plain.subjectRange(prompt.replace(dw.world.entities.person[0]!.name, '{}'), dw.world.entities.person[0]!.name);
  const b = started.subjectRange(prompt.replace(dw.world.entities.person[0]!.name, '{}'), dw.world.entities.person[0]!.name);
  assert.deepEqual([b.start, b.end], [a.start + 1, a.end + 1]);

  const lines = dw.corpus.train.slice(0, 40);
  const without = prepareDocs(dw.world, lines, plain, 4, false), withStart = prepareDocs(dw.world, lines, plain, 4, true);
  without.forEach((d, i) => {
    const e = withStart[i]!;
    assert.deepEqual([...e.ids], [eos, ...d.ids]);
    assert.deepEqual([...e.weights], [1, ...d.weights]);
    assert.deepEqual([...e.answer], [0, ...d.answer]);
    assert.deepEqual([...e.phrase], [0, ...d.phrase]);
  });
  assert.ok(without.some((d) => d.answer.includes(1)), 'the lines mark object tokens');
});

test('amend world build --config: an unknown setting or a bad value is one clear line', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-world-cfg-'));
  try {
    const file = path.join(tmp, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ packTokenz: 64 }));
    assertOneLineError(runCli(['world', 'build', '--small', '--config', file, '--out', path.join(tmp, 'w')]), /^amend: --config \S*c\.json: unknown setting "packTokenz" \(did you mean "packTokens"\?\); known: sizes, model,/);
    fs.writeFileSync(file, JSON.stringify({ packTokens: -1 }));
    assertOneLineError(runCli(['world', 'build', '--small', '--config', file, '--out', path.join(tmp, 'w')]), /--config \S*c\.json: packTokens must be an integer ≥ 0/);
    fs.writeFileSync(file, JSON.stringify({ layerDrop: 1 }));
    assertOneLineError(runCli(['world', 'build', '--small', '--config', file, '--out', path.join(tmp, 'w')]), /layerDrop must be in \[0, 1\)/);
    fs.writeFileSync(file, JSON.stringify({ sizes: { mayor: 8 } }));
    assertOneLineError(runCli(['world', 'build', '--small', '--config', file, '--out', path.join(tmp, 'w')]), /--config \S*c\.json: unknown world size "mayor" \(did you mean "mayors"\?\); known: .*mayors/);
    fs.writeFileSync(file, JSON.stringify({ sizes: { chiefs: 5 } }));
    assertOneLineError(runCli(['world', 'build', '--small', '--config', file, '--out', path.join(tmp, 'w')]), /chiefs must be 0 or the number of organisations/);
    const want = / give a JSON object of training settings \('\{"epochs": 30\}'\) or a file holding one$/;
    const config = (value: string, re: RegExp): void => {
      const r = runCli(['world', 'build', '--small', '--config', value, '--out', path.join(tmp, 'w')]);
      assertOneLineError(r, re);
      assertOneLineError(r, want);
    };
    config(path.join(tmp, 'none.json'), /none\.json: no such file;/);
    fs.writeFileSync(file, '[1, 2]');
    config(file, /c\.json: the file is a JSON array, not an object;/);
    // the file empty, not JSON, a folder; inline JSON that is not an object, or not JSON
    fs.writeFileSync(file, '');
    config(file, /c\.json: the file is empty;/);
    fs.writeFileSync(file, '{"epochs": 1');
    config(file, /c\.json: the file is not valid JSON \([^)]*\);/);
    config(tmp, /: is a folder;/);
    config('[]', /^amend: --config \[\]: the text is a JSON array, not an object;/);
    config('"x"', /^amend: --config "x": the text is a JSON string, not an object;/);
    config('{bad', /^amend: --config \{bad: the text is not valid JSON \([^)]*\);/);
    // Types and nested keys, inline JSON as well as a file.
    const inline = (cfg: unknown, re: RegExp) => assertOneLineError(runCli(['world', 'build', '--small', '--config', JSON.stringify(cfg), '--out', path.join(tmp, 'w')]), re);
    inline({ model: { layrs: 6 } }, /--config \{"model":\{"layrs":6\}\}: unknown setting "model\.layrs" \(did you mean "model\.layers"\?\); known: model\.layers,/);
    inline({ sizes: 3 }, /--config \{"sizes":3\}: sizes must be a JSON object of world sizes/);
    inline({ model: { layers: '2' } }, /model\.layers must be a finite number, got "2"/);
    inline({ model: { layers: 0 } }, /model\.layers must be an integer ≥ 1, got 0/);
    inline({ model: { heads: 7 } }, /--config \{"model":\{"heads":7\}\}: model\.hidden 32 must be divisible by model\.heads 7/);
    assertOneLineError(runCli(['world', 'build', '--small', '--config', '{"lr": 1e309}', '--out', path.join(tmp, 'w')]), /lr must be a finite number, got Infinity/);
    inline({ betas: 0.9 }, /betas must be a list of 2 numbers, got 0\.9/);
    inline({ lr: '0.01' }, /--config \{"lr":"0\.01"\}: lr must be a finite number, got "0\.01"/);
    inline({ statementQuestions: 'no' }, /statementQuestions must be a boolean/);
    inline({ clipNorm: 0 }, /clipNorm must be > 0/);
    assert.equal(fs.existsSync(path.join(tmp, 'w')), false, 'nothing written');
    // Where the build would go: found out before any training.
    assertOneLineError(runCli(['world', 'build', '--small']), /--small builds a tiny test world: give --out DIR/);
    const busy = path.join(tmp, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'mine.txt'), 'precious');
    assertOneLineError(runCli(['world', 'build', '--small', '--out', busy]), /holds other files \(mine\.txt\) and a build replaces the whole folder/);
    assert.equal(fs.readFileSync(path.join(busy, 'mine.txt'), 'utf8'), 'precious');
    // --force replaces a folder, but never one that holds the current folder (the test's), the home folder or the root.
    assertOneLineError(runCli(['world', 'build', '--small', '--out', path.dirname(process.cwd()), '--force']), /is a folder that holds the current one, and a world build replaces its output folder whole; give another folder/);
    assertOneLineError(runCli(['world', 'build', '--small', '--out', '/', '--force']), /^amend: \/ is the root of the file system/);
    assertOneLineError(runCli(['world', 'build', '--small', '--out', path.join(busy, 'mine.txt', 'w')]), /mine\.txt is a file/);
    // world info's rebuild line is a command that runs: --out and an inline --config, quoted.
    const spaced = path.join(tmp, 'w x');
    const built = runCli(['world', 'build', '--small', '--out', spaced, '--config', '{"epochs": 1}', '--json']);
    assert.equal(built.code, 0, built.stderr);
    const info = runCli(['world', 'info', '--model', spaced]);
    assert.match(info.stdout, /rebuild {4}amend world build --out '[^']*w x' --small --config '\{"epochs":1\}'/);
    // A folder with BUILD.json whose weights changed since (an export of an edited world copies
    // BUILD.json) is not an earlier build: refused, and left as it was.
    const edited = path.join(tmp, 'edited');
    fs.cpSync(spaced, edited, { recursive: true });
    const weights = path.join(edited, 'model.safetensors');
    const bytes = fs.readFileSync(weights);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(weights, bytes);
    assertOneLineError(runCli(['world', 'build', '--small', '--out', edited]), /has a BUILD\.json but model\.safetensors is not the file the build wrote/);
    assert.deepEqual(fs.readFileSync(weights), bytes);
    // Nor is one with files a build does not write (they would be deleted with the folder).
    fs.writeFileSync(path.join(spaced, 'notes.txt'), 'mine');
    fs.mkdirSync(path.join(spaced, 'eval-rome'));
    assertOneLineError(runCli(['world', 'build', '--small', '--out', spaced]), /has a BUILD\.json but it also holds (notes\.txt, eval-rome|eval-rome, notes\.txt), which a build does not write/);
    assert.equal(fs.readFileSync(path.join(spaced, 'notes.txt'), 'utf8'), 'mine');
    fs.rmSync(path.join(spaced, 'notes.txt'));
    fs.rmSync(path.join(spaced, 'eval-rome'), { recursive: true });
    // An untouched earlier build is replaced without --force.
    const again = runCli(['world', 'build', '--small', '--out', spaced, '--config', '{"epochs": 1}', '--json']);
    assert.equal(again.code, 0, again.stderr);
    // A build killed between its two renames leaves the folder it replaced moved aside, and its
    // temporary folder: the next build puts the first back (here refused, as it holds a note) and
    // removes the second.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    fs.writeFileSync(path.join(spaced, 'notes.txt'), 'mine');
    const movedAside = path.join(tmp, `.w x.amend-old-${deadPid}-k1`), leftTemp = path.join(tmp, `.w x.amend-build-${deadPid}-k2`);
    fs.renameSync(spaced, movedAside);
    fs.mkdirSync(leftTemp);
    assertOneLineError(runCli(['world', 'build', '--small', '--out', spaced]), /it also holds notes\.txt, which a build does not write/);
    assert.equal(fs.readFileSync(path.join(spaced, 'notes.txt'), 'utf8'), 'mine');
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('.')), []);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
