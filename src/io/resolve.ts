// Finding a model directory: a local path, the local Hugging Face cache, or a download from the hub
// (through @huggingface/hub) into that same cache, in the layout huggingface_hub uses:
//   <cache>/models--{org}--{name}/refs/{revision}          -> commit sha (text)
//   <cache>/models--{org}--{name}/snapshots/{sha}/{file}   -> symlink to ../../blobs/{etag}
//   <cache>/models--{org}--{name}/blobs/{etag}
// so a model downloaded by Amend is found by transformers and the reverse.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { AmendError, isObject } from '../errors.js';
import { makeDirs } from './dirs.js';

export interface ResolveOptions {
  /** HF hub cache directory (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Allow downloading from the hub (default: true unless HF_HUB_OFFLINE is set). */
  download?: boolean;
  /** Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co). */
  hubUrl?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Access token for gated / private models (default: $HF_TOKEN). */
  token?: string;
  /** Download progress: bytes of the current file and of all files. */
  onProgress?: (p: DownloadProgress) => void;
}

export interface DownloadProgress {
  file: string;
  fileBytes: number;
  fileTotal: number;
  doneBytes: number;
  totalBytes: number;
}

/** A model's config.json (Hugging Face PretrainedConfig) as parsed JSON. */
export interface ModelConfig {
  model_type?: string;
  architectures?: string[];
  [key: string]: unknown;
}

const DEFAULT_HUB = 'https://huggingface.co';

function envFlag(name: string): boolean {
  const v = process.env[name];
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}

/** The hub cache directory, as huggingface_hub computes it. */
export function defaultHubCache(): string {
  const e = process.env;
  if (e['HF_HUB_CACHE']) return e['HF_HUB_CACHE'];
  if (e['HUGGINGFACE_HUB_CACHE']) return e['HUGGINGFACE_HUB_CACHE'];
  if (e['HF_HOME']) return path.join(e['HF_HOME'], 'hub');
  const xdg = e['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'huggingface', 'hub');
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** True for a string the hub accepts as a model id: "name" or "org/name". */
export function isRepoId(id: string): boolean {
  if (id.length === 0 || id.length > 96 + 40) return false;
  const parts = id.split('/');
  if (parts.length > 2) return false;
  return parts.every(
    (p) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(p) && !p.includes('--') && !p.includes('..') && !p.endsWith('.') && p.length <= 96,
  );
}

/** `models--org--name`: the cache folder of a model repo. */
export function repoFolderName(repoId: string): string {
  return ['models', ...repoId.split('/')].join('--');
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The names of the top-level files of `dir` that are links to nothing. */
function brokenLinks(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((f) => {
    const p = path.join(dir, f);
    try {
      return fs.lstatSync(p).isSymbolicLink() && !fs.existsSync(p);
    } catch {
      return false;
    }
  });
}

/** Look a model up in the cache; returns the snapshot dir or a reason it is not there. */
export function findInCache(repoId: string, cacheDir: string, revision = 'main'): { dir: string } | { reason: string } {
  const repoDir = path.join(cacheDir, repoFolderName(repoId));
  if (!isDir(repoDir)) return { reason: `not in the HF cache (${repoDir} does not exist)` };
  let sha: string | null = null;
  const refFile = path.join(repoDir, 'refs', revision);
  if (isFile(refFile)) {
    sha = fs.readFileSync(refFile, 'utf8').trim();
    // (an empty ref would name the snapshots folder itself, then called a snapshot without config.json)
    if (!COMMIT_RE.test(sha)) return { reason: `not in the HF cache (${refFile} holds ${sha === '' ? 'nothing' : `"${sha.slice(0, 60)}"`}, not a commit hash: an interrupted download — delete it and download the model again)` };
  } else if (COMMIT_RE.test(revision)) {
    sha = revision;
  } else {
    return { reason: `not in the HF cache (${repoDir} has no refs/${revision})` };
  }
  const snap = path.join(repoDir, 'snapshots', sha);
  if (!isDir(snap)) return { reason: `not in the HF cache (${repoDir}: revision ${revision} points to snapshot ${sha}, which is missing)` };
  // A snapshot's files link to blobs: one whose blob was deleted (a cache cleanup) makes the
  // snapshot unusable; a download replaces it.
  const broken = brokenLinks(snap);
  if (broken.length > 0) {
    return { reason: `not usable in the HF cache (${snap}: ${broken.slice(0, 3).join(', ')}${broken.length > 3 ? ', …' : ''} link${broken.length > 1 ? '' : 's'} to a deleted cache blob — download the model again)` };
  }
  if (!isFile(path.join(snap, 'config.json'))) {
    return { reason: `not usable in the HF cache (${snap} has no config.json: an incomplete or non-transformers download)` };
  }
  return { dir: snap };
}

/** Which hub files a model needs: config, tokenizer files and safetensors weights. */
export function selectFiles(paths: string[]): { files: string[]; weights: 'index' | 'single' | 'all' | 'none' } {
  const top = paths.filter((p) => !p.includes('/'));
  const small = top.filter(
    (p) =>
      (p.endsWith('.json') && p !== 'model.safetensors.index.json' && !/^pytorch_model.*\.json$/.test(p) && !/^(tf|flax)_model.*\.json$/.test(p)) ||
      p === 'merges.txt' ||
      p === 'vocab.txt' ||
      p === 'tokenizer.model' ||
      p.endsWith('.tiktoken'),
  );
  if (top.includes('model.safetensors')) return { files: [...small, 'model.safetensors'], weights: 'single' };
  if (top.includes('model.safetensors.index.json')) return { files: [...small, 'model.safetensors.index.json'], weights: 'index' };
  const st = top.filter((p) => p.endsWith('.safetensors'));
  if (st.length > 0) return { files: [...small, ...st], weights: 'all' };
  return { files: small, weights: 'none' };
}

type HubModule = typeof import('@huggingface/hub');

interface TreeEntry {
  type: string;
  path: string;
  size: number;
  oid?: string;
  lfs?: { oid: string; size: number };
  xetHash?: string;
}

function describeHubError(err: unknown): string {
  const e = err as { statusCode?: number; message?: string; cause?: { code?: string; message?: string } };
  if (e && typeof e.statusCode === 'number') {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return `access denied (HTTP ${e.statusCode}: gated or private model) — accept its licence on the hub and set HF_TOKEN`;
    }
    if (e.statusCode === 404) return 'no such model or revision on the hub (HTTP 404)';
    return `HTTP ${e.statusCode}: ${(e.message ?? '').split('. URL:')[0]}`;
  }
  const cause = e?.cause;
  if (cause && (cause.code || cause.message)) return `unreachable (${cause.code ?? cause.message})`;
  return e?.message ?? String(err);
}

interface HubDownload {
  hub: HubModule;
  repoId: string;
  opts: { revision: string; hubUrl: string; token?: string; onProgress?: (p: DownloadProgress) => void };
  creds: { accessToken?: string };
  /** The commit the revision named when listed: every file comes from it. */
  sha: string;
  byPath: Map<string, TreeEntry>;
  snap: string;
  blobs: string;
}

/** Download the files a model needs into the cache; returns the snapshot directory. */
async function downloadToCache(
  hub: HubModule,
  repoId: string,
  cacheDir: string,
  opts: { revision: string; hubUrl: string; token?: string; onProgress?: (p: DownloadProgress) => void },
): Promise<string> {
  const creds = opts.token ? { accessToken: opts.token } : {};
  const { sha, entries } = await listRepository(hub, repoId, opts, creds);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const sel = selectFiles(entries.map((e) => e.path));
  if (!byPath.has('config.json')) {
    throw new AmendError(`hub model ${repoId}@${opts.revision} has no config.json; it is not a transformers model Amend can load`);
  }
  if (sel.weights === 'none') {
    const other = entries.map((e) => e.path).filter((p) => /\.(bin|h5|msgpack|gguf|onnx|pt|pth|ckpt)$/.test(p));
    throw new AmendError(
      other.some((p) => p.endsWith('.bin'))
        ? `hub model ${repoId}@${opts.revision} has only pytorch_model.bin weights, which Amend does not read (pickle) — pick a revision with model.safetensors (the hub's safetensors conversion PR, e.g. --revision refs/pr/N)`
        : `hub model ${repoId}@${opts.revision} has no safetensors weights (${other.slice(0, 3).join(', ') || 'none at all'}) — Amend reads safetensors only`,
    );
  }

  const repoDir = path.join(cacheDir, repoFolderName(repoId));
  const snap = path.join(repoDir, 'snapshots', sha);
  const blobs = path.join(repoDir, 'blobs');
  makeDirs(snap);
  makeDirs(blobs);
  const dl: HubDownload = { hub, repoId, opts, creds, sha, byPath, snap, blobs };

  let files = sel.files;
  if (sel.weights === 'index') files = [...files, ...(await shardsOfIndex(dl))];
  // config.json last: a snapshot counts as present in the cache only once it has config.json.
  files = [...new Set(files.filter((f) => f !== 'config.json')), 'config.json'];
  const progress = { done: 0, total: files.reduce((s, f) => s + (byPath.get(f)?.lfs?.size ?? byPath.get(f)?.size ?? 0), 0) };
  for (const f of files) await downloadOne(dl, f, progress);

  if (opts.revision !== sha) {
    const ref = path.join(repoDir, 'refs', opts.revision);
    makeDirs(path.dirname(ref));
    const tmp = `${ref}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, sha);
    fs.renameSync(tmp, ref);
  }
  return snap;
}

/** The commit a revision names, and the files of the repository at that commit. */
async function listRepository(
  hub: HubModule,
  repoId: string,
  opts: { revision: string; hubUrl: string },
  creds: { accessToken?: string },
): Promise<{ sha: string; entries: TreeEntry[] }> {
  const info = (await hub.modelInfo({ name: repoId, hubUrl: opts.hubUrl, revision: opts.revision, additionalFields: ['sha'], ...creds })) as {
    sha?: string;
  };
  const sha = info.sha;
  if (!sha || !COMMIT_RE.test(sha)) throw new Error(`the hub gave no commit sha for revision ${opts.revision}`);
  const entries: TreeEntry[] = [];
  for await (const e of hub.listFiles({ repo: { type: 'model', name: repoId }, revision: sha, hubUrl: opts.hubUrl, ...creds })) {
    if (e.type === 'file') entries.push(e as TreeEntry);
  }
  return { sha, entries };
}

/** The shards a sharded checkpoint's index lists: the index is downloaded first (small), then exactly these. */
async function shardsOfIndex(dl: HubDownload): Promise<string[]> {
  const where = `hub model ${dl.repoId}@${dl.opts.revision}`;
  await downloadOne(dl, 'model.safetensors.index.json', { done: 0, total: 0 });
  let wm: Record<string, string>;
  try {
    wm = JSON.parse(fs.readFileSync(path.join(dl.snap, 'model.safetensors.index.json'), 'utf8')).weight_map;
  } catch (err) {
    throw new AmendError(`${where}: model.safetensors.index.json is not valid JSON (${(err as Error).message})`);
  }
  if (!wm || typeof wm !== 'object') throw new AmendError(`${where}: model.safetensors.index.json has no weight_map`);
  return [...new Set(Object.values(wm))];
}

/**
 * One file into the cache as huggingface_hub lays it out: the bytes in blobs/<hash>, written under
 * a temporary name and renamed once complete, and a link to it from the snapshot.
 */
async function downloadOne(dl: HubDownload, p: string, progress: { done: number; total: number }): Promise<void> {
  const entry = dl.byPath.get(p);
  if (!entry) throw new AmendError(`hub model ${dl.repoId}@${dl.opts.revision}: ${p} is listed by its index but not in the repository`);
  const etag = entry.lfs?.oid ?? entry.xetHash ?? entry.oid;
  if (!etag || !/^[0-9a-zA-Z]+$/.test(etag)) throw new Error(`no usable hash for ${p} in the hub listing`);
  const size = entry.lfs?.size ?? entry.size;
  const pointer = path.join(dl.snap, p);
  const blob = path.join(dl.blobs, etag);
  if (isFile(pointer)) {
    progress.done += size;
    return;
  }
  if (!isFile(blob) || fs.statSync(blob).size !== size) await downloadBlob(dl, p, blob, size, progress);
  progress.done += size;
  makeDirs(path.dirname(pointer));
  fs.rmSync(pointer, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch {
    fs.copyFileSync(blob, pointer); // file systems without symlinks, as huggingface_hub does
  }
}

async function downloadBlob(dl: HubDownload, p: string, blob: string, size: number, progress: { done: number; total: number }): Promise<void> {
  const incomplete = `${blob}.${process.pid}.incomplete`; // per process: parallel downloads never mix
  const data = await dl.hub.downloadFile({ repo: { type: 'model', name: dl.repoId }, path: p, revision: dl.sha, hubUrl: dl.opts.hubUrl, ...dl.creds });
  if (!data) throw new Error(`${p} vanished from the hub while downloading`);
  let fileBytes = 0;
  const start = progress.done;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      fileBytes += chunk.length;
      dl.opts.onProgress?.({ file: p, fileBytes, fileTotal: size, doneBytes: start + fileBytes, totalBytes: progress.total });
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(data.stream() as NodeReadableStream), counter, fs.createWriteStream(incomplete));
  } catch (err) {
    fs.rmSync(incomplete, { force: true });
    throw typeof err === 'string' ? new Error(err) : err;
  }
  const got = fs.statSync(incomplete).size;
  if (got !== size) {
    fs.rmSync(incomplete, { force: true });
    throw new Error(`${p}: received ${got} bytes, expected ${size} (connection cut?) — try again`);
  }
  fs.renameSync(incomplete, blob);
}

/**
 * Resolve a model id or path to a local directory containing config.json: an existing directory,
 * then the local HF cache, then (when allowed) a download from the hub into that cache.
 */
export async function resolveModel(idOrPath: string, opts: ResolveOptions = {}): Promise<string> {
  if (typeof idOrPath !== 'string' || idOrPath.trim() === '') {
    throw new AmendError('no model given: pass a model directory or a hub id such as openai-community/gpt2');
  }
  const looked: string[] = [];
  const local = path.resolve(expandHome(idOrPath));
  if (isDir(local)) {
    if (isFile(path.join(local, 'config.json'))) return local;
    looked.push(`directory ${local} exists but has no config.json`);
  } else if (fs.existsSync(local)) {
    // An existing file is what the user meant (a weights or config file, say), not a hub id.
    throw new AmendError(`model "${idOrPath}": ${local} is a file, not a model directory — give the folder that holds config.json and the weights`);
  } else {
    looked.push(`no directory ${local}`);
  }

  const repoId = idOrPath;
  if (!isRepoId(repoId)) {
    throw new AmendError(`model "${idOrPath}" not found: ${looked.join('; ')}; and it is not a hub id (org/name) — pass a model directory containing config.json`);
  }
  const revision = opts.revision ?? 'main';
  const cacheDir = path.resolve(expandHome(opts.cacheDir ?? defaultHubCache()));
  const cached = findInCache(repoId, cacheDir, revision);
  if ('dir' in cached) return cached.dir;
  looked.push(cached.reason);

  const download = opts.download ?? !(envFlag('HF_HUB_OFFLINE') || envFlag('TRANSFORMERS_OFFLINE'));
  const hubUrl = (opts.hubUrl ?? process.env['HF_ENDPOINT'] ?? DEFAULT_HUB).replace(/\/+$/, '');
  if (!download) {
    looked.push(`hub not tried (downloads are off${opts.download === false ? '' : ': HF_HUB_OFFLINE is set'})`);
    throw new AmendError(`model "${idOrPath}" not found: ${looked.join('; ')} — pass a local model directory, or allow downloads`);
  }
  const token = opts.token || process.env['HF_TOKEN'] || process.env['HUGGING_FACE_HUB_TOKEN'] || undefined;
  if (token !== undefined && !token.startsWith('hf_')) {
    const from = opts.token ? 'the token option' : process.env['HF_TOKEN'] ? 'HF_TOKEN' : 'HUGGING_FACE_HUB_TOKEN';
    throw new AmendError(`the hub access token does not start with "hf_"; check ${from}`);
  }
  let hub: HubModule;
  try {
    hub = await import('@huggingface/hub');
  } catch (err) {
    looked.push(`hub not tried (@huggingface/hub cannot be loaded: ${(err as Error).message})`);
    throw new AmendError(`model "${idOrPath}" not found: ${looked.join('; ')} — reinstall Amend or pass a local model directory`);
  }
  try {
    return await downloadToCache(hub, repoId, cacheDir, { revision, hubUrl, token, onProgress: opts.onProgress });
  } catch (err) {
    if (err instanceof AmendError) throw err;
    looked.push(`hub ${hubUrl}: ${describeHubError(err)}`);
    throw new AmendError(`model "${idOrPath}" not found: ${looked.join('; ')} — check the id, or pass a local model directory`);
  }
}

/** Parse `dir/config.json`, with one clear line on any problem. */
export function readConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new AmendError(
        isDir(dir) ? `${dir}: no config.json — not a Hugging Face model directory` : `${dir}: no such model directory — check the path`,
      );
    }
    throw new AmendError(`${file}: cannot read it: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AmendError(`${file}: not valid JSON (${(err as Error).message}) — fix or re-download it`);
  }
  if (!isObject(json)) {
    throw new AmendError(`${file}: must be a JSON object of model settings`);
  }
  const cfg = json as ModelConfig;
  if (cfg.model_type !== undefined && typeof cfg.model_type !== 'string') {
    throw new AmendError(`${file}: "model_type" must be a string, got ${JSON.stringify(cfg.model_type)}`);
  }
  if (cfg.architectures !== undefined && (!Array.isArray(cfg.architectures) || !cfg.architectures.every((a) => typeof a === 'string'))) {
    throw new AmendError(`${file}: "architectures" must be a list of strings`);
  }
  return cfg;
}
