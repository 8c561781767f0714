// Download from a fake hub on 127.0.0.1 that answers exactly the requests @huggingface/hub makes:
//   GET  /api/models/{repo}/revision/{rev}?expand=...     model info (sha)
//   GET  /api/models/{repo}/tree/{sha}?recursive=...      file listing (oid, size, lfs)
//   GET  /{repo}/resolve/{sha}/{path}                     Range: bytes=0-0 probe (206 + Content-Range + ETag), then the file
// Never the real hub.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { AmendError } from '../src/errors.js';
import { readCheckpoint } from '../src/io/checkpoint.js';
import { resolveModel, type DownloadProgress } from '../src/io/resolve.js';
import { writeSafetensors } from '../src/io/safetensors.js';

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-hub-'));
  dirs.push(d);
  return d;
}

interface FakeFile {
  content: Buffer;
  lfs: boolean;
}
interface FakeRepo {
  sha: string;
  refs: Record<string, string>;
  files: Record<string, FakeFile>;
  status?: number; // answer every request with this status (gated / private)
}

function gitOid(b: Buffer): string {
  return crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}
function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function safetensorsBytes(tensors: { name: string; values: number[] }[]): Buffer {
  const d = tmpDir();
  const f = path.join(d, 'x.safetensors');
  writeSafetensors(
    f,
    tensors.map((t) => ({ name: t.name, shape: [t.values.length], data: new Float32Array(t.values) })),
    { format: 'pt' },
  );
  return fs.readFileSync(f);
}

const repos = new Map<string, FakeRepo>();
const requests: string[] = [];
let server: http.Server;
let hubUrl = '';

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const p = decodeURIComponent(url.pathname);
  requests.push(`${req.method} ${p}`);
  let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(p);
  if (m && req.method === 'GET') {
    const repo = repos.get(m[1]!);
    if (!repo) return json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (repo.status) return json(res, repo.status, { error: 'Access to this model is restricted' });
    const sha = repo.refs[m[2]!] ?? (m[2] === repo.sha ? repo.sha : undefined);
    if (!sha) return json(res, 404, { error: `Invalid rev id: ${m[2]}` }, { 'X-Error-Code': 'RevisionNotFound' });
    assert.ok(url.searchParams.getAll('expand').includes('sha'), 'model info must ask for the sha');
    return json(res, 200, {
      _id: 'abc',
      id: m[1],
      sha,
      private: false,
      gated: false,
      downloads: 0,
      likes: 0,
      lastModified: '2024-01-01T00:00:00.000Z',
      pipeline_tag: 'text-generation',
    });
  }
  m = /^\/api\/models\/(.+)\/tree\/([0-9a-f]{40})(\/.*)?$/.exec(p);
  if (m && req.method === 'GET') {
    const repo = repos.get(m[1]!);
    if (!repo || m[2] !== repo.sha) return json(res, 404, { error: 'not found' });
    const recursive = url.searchParams.get('recursive') === 'true';
    const entries: unknown[] = [];
    const seenDirs = new Set<string>();
    for (const [fp, f] of Object.entries(repo.files)) {
      if (fp.includes('/') && !recursive) {
        const top = fp.split('/')[0]!;
        if (!seenDirs.has(top)) entries.push({ type: 'directory', oid: gitOid(Buffer.from(top)), size: 0, path: top });
        seenDirs.add(top);
        continue;
      }
      entries.push({
        type: 'file',
        oid: gitOid(f.content),
        size: f.lfs ? 134 : f.content.length,
        path: fp,
        ...(f.lfs ? { lfs: { oid: sha256(f.content), size: f.content.length, pointerSize: 134 } } : {}),
      });
    }
    // Paginate like the hub, through the Link header.
    const page = Number(url.searchParams.get('page') ?? '0');
    const per = 3;
    const slice = entries.slice(page * per, page * per + per);
    const headers: Record<string, string> = {};
    if ((page + 1) * per < entries.length) {
      const next = new URL(`${hubUrl}${url.pathname}${url.search}`);
      next.searchParams.set('page', String(page + 1));
      headers['Link'] = `<${next.href}>; rel="next"`;
    }
    return json(res, 200, slice, headers);
  }
  m = /^\/(.+)\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(p);
  if (m && req.method === 'GET') {
    const repo = repos.get(m[1]!);
    const f = repo && m[2] === repo.sha ? repo.files[m[3]!] : undefined;
    if (!repo || !f) {
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound', 'Content-Type': 'text/plain' });
      return void res.end('Entry not found');
    }
    const etag = `"${f.lfs ? sha256(f.content) : gitOid(f.content)}"`;
    const common = { ETag: etag, 'X-Repo-Commit': repo.sha, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    const range = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = Math.min(range[2] === undefined ? f.content.length - 1 : Number(range[2]), f.content.length - 1);
      res.writeHead(206, { ...common, 'Content-Range': `bytes ${start}-${end}/${f.content.length}`, 'Content-Length': String(end - start + 1) });
      return void res.end(f.content.subarray(start, end + 1));
    }
    res.writeHead(200, { ...common, 'Content-Length': String(f.content.length) });
    return void res.end(f.content);
  }
  json(res, 404, { error: `fake hub: no route for ${req.method} ${p}` });
}

const TINY_SHA = '1111111111111111111111111111111111111111';
const SHARDED_SHA = '2222222222222222222222222222222222222222';
const TORCH_SHA = '3333333333333333333333333333333333333333';

before(async () => {
  const shard1 = safetensorsBytes([{ name: 'a', values: [1, 2, 3] }]);
  const shard2 = safetensorsBytes([{ name: 'b', values: [4, 5] }]);
  repos.set('acme/tiny', {
    sha: TINY_SHA,
    refs: { main: TINY_SHA, v1: TINY_SHA },
    files: {
      '.gitattributes': { content: Buffer.from('*.safetensors filter=lfs\n'), lfs: false },
      'README.md': { content: Buffer.from('# tiny\n'), lfs: false },
      'config.json': { content: Buffer.from('{"model_type":"gpt2","n_layer":1}'), lfs: false },
      'tokenizer.json': { content: Buffer.from('{"version":"1.0"}'), lfs: false },
      'merges.txt': { content: Buffer.from('#version: 0.2\n'), lfs: false },
      'model.safetensors': { content: safetensorsBytes([{ name: 'w', values: [0.5, -1.5, 2.25] }]), lfs: true },
      'pytorch_model.bin': { content: Buffer.from('pickle!'), lfs: true },
      'flax_model.msgpack': { content: Buffer.from('msgpack'), lfs: true },
      'onnx/model.onnx': { content: Buffer.from('onnx'), lfs: true },
    },
  });
  repos.set('acme/sharded', {
    sha: SHARDED_SHA,
    refs: { main: SHARDED_SHA },
    files: {
      'config.json': { content: Buffer.from('{"model_type":"llama"}'), lfs: false },
      'model.safetensors.index.json': {
        content: Buffer.from(
          JSON.stringify({
            metadata: { total_size: 20 },
            weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
          }),
        ),
        lfs: false,
      },
      'model-00001-of-00002.safetensors': { content: shard1, lfs: true },
      'model-00002-of-00002.safetensors': { content: shard2, lfs: true },
      'consolidated.safetensors': { content: Buffer.from('not needed'), lfs: true },
    },
  });
  repos.set('acme/torch-only', {
    sha: TORCH_SHA,
    refs: { main: TORCH_SHA },
    files: {
      'config.json': { content: Buffer.from('{"model_type":"gpt2"}'), lfs: false },
      'pytorch_model.bin': { content: Buffer.from('pickle'), lfs: true },
    },
  });
  repos.set('acme/gated', { sha: TINY_SHA, refs: { main: TINY_SHA }, files: {}, status: 401 });
  server = http.createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function expectAmendError(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AmendError, `expected AmendError, got ${String((err as Error)?.stack ?? err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'));
    return true;
  });
}

test('downloads config, tokenizer and safetensors into the HF cache layout, skipping other weights', async () => {
  const cache = tmpDir();
  requests.length = 0;
  const progress: DownloadProgress[] = [];
  const dir = await resolveModel('acme/tiny', { cacheDir: cache, hubUrl, onProgress: (p) => progress.push(p) });
  const repoDir = path.join(cache, 'models--acme--tiny');
  assert.equal(dir, path.join(repoDir, 'snapshots', TINY_SHA));
  assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), TINY_SHA);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'tokenizer.json']);
  // snapshot files are relative symlinks to blobs named by etag (sha256 for LFS files)
  const files = repos.get('acme/tiny')!.files;
  const link = fs.readlinkSync(path.join(dir, 'model.safetensors'));
  assert.equal(link, path.join('..', '..', 'blobs', sha256(files['model.safetensors']!.content)));
  assert.equal(fs.readlinkSync(path.join(dir, 'config.json')), path.join('..', '..', 'blobs', gitOid(files['config.json']!.content)));
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(files['model.safetensors']!.content));
  assert.ok(!fs.readdirSync(path.join(repoDir, 'blobs')).some((b) => b.endsWith('.incomplete')));
  // nothing skipped was fetched
  assert.ok(!requests.some((r) => /pytorch_model|msgpack|onnx|README|gitattributes/.test(r)), requests.join('\n'));
  // the weights load
  const ck = readCheckpoint(dir);
  assert.deepEqual([...ck.tensors.get('w')!.data], [0.5, -1.5, 2.25]);
  // progress ends at the total
  assert.ok(progress.length > 0);
  const last = progress[progress.length - 1]!;
  assert.equal(last.doneBytes, last.totalBytes);

  // Found in the cache afterwards, with no request at all.
  requests.length = 0;
  assert.equal(await resolveModel('acme/tiny', { cacheDir: cache, hubUrl }), dir);
  assert.equal(requests.length, 0, requests.join(", "));
  // Another revision name for the same commit reuses the blobs and writes its ref.
  assert.equal(await resolveModel('acme/tiny', { cacheDir: cache, hubUrl, revision: 'v1' }), dir);
  assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'v1'), 'utf8'), TINY_SHA);
  assert.ok(!requests.some((r) => r.includes('/resolve/')), 'files already in the snapshot are not downloaded again');
});

test('a sharded model downloads the index and exactly the shards it lists', async () => {
  const cache = tmpDir();
  requests.length = 0;
  const dir = await resolveModel('acme/sharded', { cacheDir: cache, hubUrl });
  assert.deepEqual(fs.readdirSync(dir).sort(), [
    'config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  ]);
  assert.ok(!requests.some((r) => r.includes('consolidated')));
  const ck = readCheckpoint(dir);
  assert.deepEqual([...ck.tensors.get('a')!.data], [1, 2, 3]);
  assert.deepEqual([...ck.tensors.get('b')!.data], [4, 5]);
});

test('hub failures are one line naming every place looked', async () => {
  const cache = tmpDir();
  await expectAmendError(
    resolveModel('acme/nope', { cacheDir: cache, hubUrl }),
    new RegExp(`^model "acme/nope" not found: no directory .*; not in the HF cache \\(.*models--acme--nope does not exist\\); hub ${hubUrl.replace(/\./g, '\\.')}: no such model or revision on the hub \\(HTTP 404\\)`),
  );
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, hubUrl, revision: 'v9' }), /no such model or revision on the hub/);
  await expectAmendError(resolveModel('acme/gated', { cacheDir: cache, hubUrl }), /access denied \(HTTP 401: gated or private model\).*HF_TOKEN/);
  await expectAmendError(resolveModel('acme/torch-only', { cacheDir: cache, hubUrl }), /has only pytorch_model\.bin weights, which Amend does not read/);
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, hubUrl, token: 'abc' }), /does not start with "hf_"; check the token option$/);
  // an unreachable hub (a port nobody listens on)
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((r) => closed.close(() => r()));
  await expectAmendError(resolveModel('acme/tiny', { cacheDir: cache, hubUrl: deadUrl }), /hub http:\/\/127\.0\.0\.1:\d+: unreachable \(ECONNREFUSED\)/);
  // nothing half-done is taken for a model later
  await expectAmendError(resolveModel('acme/torch-only', { cacheDir: cache, hubUrl, download: false }), /not in the HF cache/);
});
