import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AmendError } from '../src/errors.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { defaultHubCache, findInCache, isRepoId, readConfig, repoFolderName, resolveModel, selectFiles } from '../src/io/resolve.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-resolve-'));
  dirs.push(d);
  return d;
}

async function expectAmendError(p: Promise<unknown>, pattern: RegExp): Promise<string> {
  let msg = '';
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AmendError, `expected AmendError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'));
    msg = err.message;
    return true;
  });
  return msg;
}

const SHA = 'a'.repeat(40);
const SHA2 = '0123456789abcdef0123456789abcdef01234567';

/** A fake HF cache in huggingface_hub's layout, with blobs and relative symlinks. */
function fakeCache(): string {
  const cache = tmpDir();
  const repo = path.join(cache, 'models--acme--tiny');
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'refs', 'main'), SHA + '\n');
  fs.writeFileSync(path.join(repo, 'refs', 'v2'), SHA2);
  for (const sha of [SHA, SHA2]) {
    const snap = path.join(repo, 'snapshots', sha);
    fs.mkdirSync(snap, { recursive: true });
    const blob = path.join(repo, 'blobs', `cfg${sha.slice(0, 4)}`);
    fs.writeFileSync(blob, JSON.stringify({ model_type: 'gpt2', rev: sha }));
    fs.symlinkSync(path.relative(snap, blob), path.join(snap, 'config.json'));
  }
  // A model id without an org, and an incomplete download.
  const bare = path.join(cache, 'models--bare', 'snapshots', SHA);
  fs.mkdirSync(bare, { recursive: true });
  fs.mkdirSync(path.join(cache, 'models--bare', 'refs'));
  fs.writeFileSync(path.join(cache, 'models--bare', 'refs', 'main'), SHA);
  fs.writeFileSync(path.join(bare, 'config.json'), '{"model_type":"llama"}');
  const partial = path.join(cache, 'models--acme--partial');
  fs.mkdirSync(path.join(partial, 'snapshots', SHA), { recursive: true });
  fs.mkdirSync(path.join(partial, 'refs'));
  fs.writeFileSync(path.join(partial, 'refs', 'main'), SHA);
  return cache;
}

test('a directory with config.json resolves to itself', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type":"gpt2"}');
  assert.equal(await resolveModel(dir, { download: false }), dir);
  // relative paths resolve against the working directory
  const rel = path.relative(process.cwd(), dir);
  assert.equal(await resolveModel(rel, { download: false }), dir);
});

test('the HF cache: refs/main, other revisions, a commit sha, ids without org', async () => {
  const cache = fakeCache();
  const main = await resolveModel('acme/tiny', { cacheDir: cache, download: false });
  assert.equal(main, path.join(cache, 'models--acme--tiny', 'snapshots', SHA));
  assert.equal(readConfig(main)['rev'], SHA);
  const v2 = await resolveModel('acme/tiny', { cacheDir: cache, download: false, revision: 'v2' });
  assert.equal(readConfig(v2)['rev'], SHA2);
  const bySha = await resolveModel('acme/tiny', { cacheDir: cache, download: false, revision: SHA2 });
  assert.equal(bySha, v2);
  assert.equal(await resolveModel('bare', { cacheDir: cache, download: false }), path.join(cache, 'models--bare', 'snapshots', SHA));
});

test('the cache location follows HF_HUB_CACHE, then HF_HOME', async () => {
  const saved = { ...process.env };
  try {
    const cache = fakeCache();
    process.env['HF_HUB_CACHE'] = cache;
    assert.equal(defaultHubCache(), cache);
    assert.equal(await resolveModel('acme/tiny', { download: false }), path.join(cache, 'models--acme--tiny', 'snapshots', SHA));
    delete process.env['HF_HUB_CACHE'];
    delete process.env['HUGGINGFACE_HUB_CACHE'];
    process.env['HF_HOME'] = '/some/hf/home';
    assert.equal(defaultHubCache(), path.join('/some/hf/home', 'hub'));
    delete process.env['HF_HOME'];
    delete process.env['XDG_CACHE_HOME'];
    assert.equal(defaultHubCache(), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  } finally {
    for (const k of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test('failure names every place it looked, in one line', async () => {
  const cache = fakeCache();
  const msg = await expectAmendError(
    resolveModel('acme/missing', { cacheDir: cache, download: false }),
    /^model "acme\/missing" not found: no directory .*acme\/missing; not in the HF cache \(.*models--acme--missing does not exist\); hub not tried \(downloads are off\)/,
  );
  assert.ok(msg.includes(cache));
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, download: false, revision: 'nope' }), /has no refs\/nope/);
  await expectAmendError(resolveModel('acme/partial', { cacheDir: cache, download: false }), /has no config\.json: an incomplete or non-transformers download/);
  // an empty ref (it named the snapshots folder itself, "which has no config.json")
  fs.writeFileSync(path.join(cache, 'models--acme--tiny', 'refs', 'main'), '');
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, download: false }), /refs\/main holds nothing, not a commit hash: an interrupted download — delete it and download the model again\); hub not tried/);
  fs.writeFileSync(path.join(cache, 'models--acme--tiny', 'refs', 'main'), SHA);
  // a snapshot whose blob was deleted: named in the cache lookup and by the weights reader
  const snap = path.join(cache, 'models--acme--tiny', 'snapshots', SHA);
  fs.symlinkSync(path.join('..', '..', 'blobs', 'gone'), path.join(snap, 'model.safetensors'));
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, download: false }), /snapshots\/a{40}: model\.safetensors links to a deleted cache blob — download the model again\)/);
  assert.throws(() => readSafetensorsHeader(path.join(snap, 'model.safetensors')),
    new RegExp(`model\\.safetensors: a link to ${path.join(cache, 'models--acme--tiny', 'blobs', 'gone').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, which does not exist \\(the Hugging Face cache blob was deleted\\) — re-download the model$`));
  fs.rmSync(path.join(snap, 'model.safetensors'));
  // a path that is not a hub id
  await expectAmendError(resolveModel('./no/such/dir/x', { cacheDir: cache }), /no directory .*; and it is not a hub id/);
  // a directory without config.json
  const d = tmpDir();
  await expectAmendError(resolveModel(d, { cacheDir: cache }), /exists but has no config\.json/);
  // a file
  const f = path.join(d, 'file.txt');
  fs.writeFileSync(f, 'x');
  await expectAmendError(resolveModel(f, { cacheDir: cache }), /is a file, not a model directory/);
  // a file whose name could be a hub id is still the file meant: no cache or hub lookup after it
  const here = process.cwd();
  process.chdir(d);
  try {
    fs.writeFileSync(path.join(d, 'gpt2x'), 'x');
    await expectAmendError(resolveModel('gpt2x', { cacheDir: cache, download: true, hubUrl: 'http://127.0.0.1:9' }), /^model "gpt2x": \S+ is a file, not a model directory — give the folder that holds config\.json and the weights$/);
  } finally {
    process.chdir(here);
  }
  // offline by environment
  const saved = process.env['HF_HUB_OFFLINE'];
  process.env['HF_HUB_OFFLINE'] = '1';
  try {
    await expectAmendError(resolveModel('acme/missing', { cacheDir: cache }), /hub not tried \(downloads are off: HF_HUB_OFFLINE is set\)/);
  } finally {
    if (saved === undefined) delete process.env['HF_HUB_OFFLINE'];
    else process.env['HF_HUB_OFFLINE'] = saved;
  }
  await expectAmendError(resolveModel('', {}), /no model given/);
});

test('findInCache explains what is missing', () => {
  const cache = fakeCache();
  assert.deepEqual(findInCache('acme/tiny', cache), { dir: path.join(cache, 'models--acme--tiny', 'snapshots', SHA) });
  fs.rmSync(path.join(cache, 'models--acme--tiny', 'snapshots', SHA), { recursive: true });
  const r = findInCache('acme/tiny', cache);
  assert.ok('reason' in r && /points to snapshot a{40}, which is missing/.test(r.reason));
});

test('repo ids and the files a download takes', () => {
  assert.ok(isRepoId('gpt2'));
  assert.ok(isRepoId('openai-community/gpt2'));
  assert.ok(isRepoId('EleutherAI/pythia-70m.v1'));
  assert.ok(!isRepoId('./gpt2'));
  assert.ok(!isRepoId('/abs/path'));
  assert.ok(!isRepoId('a/b/c'));
  assert.ok(!isRepoId('a--b/c'));
  assert.ok(!isRepoId(''));
  assert.equal(repoFolderName('openai-community/gpt2'), 'models--openai-community--gpt2');
  const all = [
    'config.json',
    'generation_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'vocab.json',
    'merges.txt',
    'tokenizer.model',
    'model.safetensors',
    'pytorch_model.bin',
    'tf_model.h5',
    'flax_model.msgpack',
    'rust_model.ot',
    'onnx/model.onnx',
    'onnx/config.json',
    'README.md',
    '.gitattributes',
  ];
  const s = selectFiles(all);
  assert.equal(s.weights, 'single');
  assert.deepEqual(s.files.sort(), [
    'config.json',
    'generation_config.json',
    'merges.txt',
    'model.safetensors',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer.model',
    'tokenizer_config.json',
    'vocab.json',
  ]);
  const sharded = selectFiles(['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'consolidated.safetensors', 'pytorch_model.bin.index.json']);
  assert.equal(sharded.weights, 'index');
  assert.deepEqual(sharded.files.sort(), ['config.json', 'model.safetensors.index.json']); // shards come from the index
  assert.equal(selectFiles(['config.json', 'pytorch_model.bin']).weights, 'none');
});

test('readConfig: clear errors', () => {
  const d = tmpDir();
  assert.throws(() => readConfig(d), /no config\.json — not a Hugging Face model directory/);
  assert.throws(() => readConfig(path.join(d, 'nope')), /no such model directory/);
  fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": ');
  assert.throws(() => readConfig(d), (e: unknown) => e instanceof AmendError && /config\.json: not valid JSON/.test(e.message));
  fs.writeFileSync(path.join(d, 'config.json'), '[1]');
  assert.throws(() => readConfig(d), /must be a JSON object/);
  fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": 3}');
  assert.throws(() => readConfig(d), /"model_type" must be a string/);
  fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": "gpt2", "n_layer": 3}');
  assert.deepEqual(readConfig(d), { model_type: 'gpt2', n_layer: 3 });
});
