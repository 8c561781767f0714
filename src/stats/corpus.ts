// Corpora for the statistics: resolving what the user named, an id for the cache, and streaming
// the documents (never holding a large corpus in memory).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { AmendError, refuseBinary, requireSeed } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { mulberry32 } from '../tensor/index.js';
import type { CorpusSpec } from './types.js';

/** The file in a model folder that serves as its default corpus (the demo world writes it). */
export const DEFAULT_CORPUS_FILE = 'corpus-train.txt';

/** Extensions of the files a folder corpus reads. */
const TEXT_EXT = new Set(['.txt', '.md', '.text']);
const JSONL_EXT = new Set(['.jsonl', '.ndjson']);

/** One document: text to tokenize, or token ids as they are (`skip` leading ids not counted). */
export type Doc = { text: string } | { ids: number[]; skip?: number };

/** A corpus ready to read. */
export interface ResolvedCorpus {
  spec: CorpusSpec;
  /** Cache key of the content: a content hash (files and folders up to 64 MiB), else path + size + mtime. */
  id: string;
  /** Short, file-name-safe label (the file or folder name, "model-samples", ...). */
  slug: string;
  /** What to show a person. */
  label: string;
}

/** The corpus used when none is given: <model dir>/corpus-train.txt if present, else the model's own samples. */
export function defaultCorpus(model: CausalLM): CorpusSpec {
  if (model.dir) {
    const file = path.join(model.dir, DEFAULT_CORPUS_FILE);
    if (fs.existsSync(file) && fs.statSync(file).isFile()) return { kind: 'file', path: file };
  }
  return { kind: 'model-samples' };
}

/** Turns a path or name into a spec: folder → dir, *.jsonl → jsonl, other file → file, bare name → imported. */
export function corpusSpecOf(corpus: string | CorpusSpec | undefined, model: CausalLM): CorpusSpec {
  if (corpus === undefined) return defaultCorpus(model);
  if (typeof corpus !== 'string') return corpus;
  if (corpus === '') throw new AmendError('the corpus path is empty');
  if (corpus === 'model-samples') return { kind: 'model-samples' };
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(corpus);
  } catch {
    st = null;
  }
  if (st?.isDirectory()) return { kind: 'dir', path: corpus };
  if (st && path.extname(corpus).toLowerCase() === '.json') {
    throw new AmendError(`corpus ${corpus}: a .json file is not read as text; give JSON Lines (.jsonl, one {"text": ...} per line), a text file or a folder`);
  }
  if (st) return { kind: JSONL_EXT.has(path.extname(corpus).toLowerCase()) ? 'jsonl' : 'file', path: corpus };
  if (/^[A-Za-z0-9][\w.-]*$/.test(corpus) && !/\.(txt|md|text|jsonl|ndjson|json)$/i.test(corpus)) {
    return { kind: 'imported', name: corpus };
  }
  throw new AmendError(`corpus ${corpus}: no such file or folder`);
}

const sha = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex');

/**
 * A file's sha256, read once per process for the same file, size and times: the status-change time
 * is in the key, as no copy or touch can set it back, so a file rewritten with the same size and
 * its old modification time is read again.
 */
const shaByFile = new Map<string, string>();
export function contentSha(file: string, st: fs.Stats): string {
  const where = `${file}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  let h = shaByFile.get(where);
  if (h === undefined) shaByFile.set(where, (h = sha(fs.readFileSync(file))));
  return h;
}

/**
 * The first 64 KiB of a file: enough to see a binary file (refuseBinary) and whether the file opens
 * with a UTF-8 byte order mark (which is not text: the readers below drop it).
 */
function fileHead(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(64 << 10);
    return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Files up to this size (a folder: in all) are known by their content, larger ones by path, size and time. */
const HASH_LIMIT = 64 << 20;

function slugOf(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 48) || 'corpus';
}

function statOrFail(p: string, what: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch {
    throw new AmendError(`corpus ${p}: no such ${what}`);
  }
}

/**
 * Every corpus file under a folder: sorted relative paths, hidden entries skipped. Symbolic links
 * are followed (a corpus assembled from links is common); each real folder is walked once, so a
 * link back up the tree cannot loop.
 */
function listCorpusFiles(dir: string): string[] {
  const out: string[] = [];
  const walked = new Set<string>();
  const walk = (rel: string): void => {
    const real = fs.realpathSync(path.join(dir, rel));
    if (walked.has(real)) return;
    walked.add(real);
    const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const r = rel ? path.join(rel, e.name) : e.name;
      let kind: { isDirectory(): boolean; isFile(): boolean } = e;
      if (e.isSymbolicLink()) {
        try {
          kind = fs.statSync(path.join(dir, r));
        } catch {
          throw new AmendError(`corpus ${path.join(dir, r)}: a link to nothing (remove it or point it at a file)`);
        }
      }
      if (kind.isDirectory()) walk(r);
      else if (kind.isFile()) {
        const ext = path.extname(e.name).toLowerCase();
        if (TEXT_EXT.has(ext) || JSONL_EXT.has(ext)) out.push(r);
      }
    }
  };
  walk('');
  return out;
}

/** Checks a spec, and computes its cache id. */
export function resolveCorpus(spec: CorpusSpec): ResolvedCorpus {
  const opt = (s: CorpusSpec): string => [s.split && s.split !== 'line' ? `split=${s.split}` : '', s.field && s.field !== 'text' ? `field=${s.field}` : ''].filter(Boolean).join(',');
  const extra = opt(spec);
  const suffix = extra ? `|${extra}` : '';
  switch (spec.kind) {
    case 'file': case 'jsonl': {
      if (!spec.path) throw new AmendError(`a ${spec.kind} corpus needs a path`);
      const abs = path.resolve(spec.path);
      const st = statOrFail(abs, 'file');
      if (st.isDirectory()) throw new AmendError(`corpus ${spec.path}: is a folder; use kind "dir" (or pass the folder path)`);
      // The corpus is read more than once (its hash for the cache key, then the texts): a pipe cannot be.
      if (!st.isFile()) throw new AmendError(`corpus ${spec.path}: not a regular file (a pipe or a device?); it is read more than once, so write it to a file first`);
      const head = fileHead(abs);
      refuseBinary(head, `corpus ${spec.path}:`, 'give a text file, JSON Lines or a folder');
      // A file up to 64 MiB is known by its content, so the same corpus in another place (another
      // project's copy of the installed demo world) finds the same cached statistics; a larger one
      // by its path, size and modification time, which cost no read. A file that opens with a
      // byte order mark says so: its statistics were once computed with the mark read as text.
      const where = `${abs}:${st.size}:${Math.trunc(st.mtimeMs)}`;
      const bom = head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? '|bom-dropped' : '';
      const id = st.size <= HASH_LIMIT ? `${spec.kind}:sha256:${contentSha(abs, st)}${bom}${suffix}` : `${spec.kind}:${where}${bom}${suffix}`;
      return { spec, id, slug: slugOf(path.basename(abs)), label: abs };
    }
    case 'dir': {
      if (!spec.path) throw new AmendError('a dir corpus needs a path');
      const abs = path.resolve(spec.path);
      const st = statOrFail(abs, 'folder');
      if (!st.isDirectory()) throw new AmendError(`corpus ${spec.path}: is not a folder`);
      const files = listCorpusFiles(abs);
      if (files.length === 0) throw new AmendError(`corpus ${spec.path}: the folder holds no .txt, .md, .text or .jsonl files`);
      const stats = files.map((f) => fs.statSync(path.join(abs, f)));
      for (const f of files) {
        refuseBinary(fileHead(path.join(abs, f)), `corpus ${spec.path}: ${f}`, 'move it out of the folder or rename it');
      }
      // As a file: up to 64 MiB in all, the folder is known by its files' names and contents (a
      // file rewritten with the same size within the same timestamp, or copied over with its old
      // time, is another corpus); a larger one by its path and its files' sizes and times.
      const total = stats.reduce((n, st) => n + st.size, 0);
      const id = total <= HASH_LIMIT
        ? `dir:sha256:${sha(files.map((f, i) => {
          return `${f}:${contentSha(path.join(abs, f), stats[i])}`;
        }).join('\n'))}`
        : `dir:${abs}:${sha(files.map((f, i) => `${f}:${stats[i].size}:${Math.trunc(stats[i].mtimeMs)}`).join('\n')).slice(0, 16)}`;
      return { spec, id: `${id}${suffix}`, slug: slugOf(path.basename(abs)), label: `${abs} (${files.length} files)` };
    }
    case 'texts': {
      if (!Array.isArray(spec.texts) || spec.texts.some((t) => typeof t !== 'string')) throw new AmendError('a texts corpus needs texts: string[]');
      return { spec, id: `texts:${sha(JSON.stringify(spec.texts)).slice(0, 32)}`, slug: 'texts', label: spec.name ? `${spec.name} (${spec.texts.length} texts)` : `${spec.texts.length} texts` };
    }
    case 'ids': {
      if (!Array.isArray(spec.ids) || spec.ids.some((d) => !Array.isArray(d) || d.some((x) => !Number.isInteger(x)))) {
        throw new AmendError('an ids corpus needs ids: number[][] (token ids)');
      }
      return { spec, id: `ids:${sha(JSON.stringify(spec.ids)).slice(0, 32)}`, slug: 'ids', label: `${spec.ids.length} token sequences` };
    }
    case 'model-samples': {
      const seed = spec.seed ?? 1;
      requireSeed(seed, 'model-samples: seed');
      // v2: the sampler's probabilities come from the backend's softmax since 2026-11, which can
      // pick other tokens than the Math.exp sampler did, so older caches are not these samples.
      return { spec, id: `model-samples:v2:seed=${seed}:temperature=1`, slug: 'model-samples', label: `the model's own samples (seed ${seed})` };
    }
    case 'imported': {
      if (!spec.name || !/^[\w.-]+$/.test(spec.name)) throw new AmendError(`imported corpus: give the dataset name the stats were imported under (amend stats --import FILE --dataset NAME; e.g. "wikipedia")`);
      return { spec, id: importedCorpusId(spec.name), slug: slugOf(spec.name), label: `imported ${spec.name} statistics` };
    }
    default:
      throw new AmendError(`unknown corpus kind "${(spec as { kind: string }).kind}" (file, dir, jsonl, texts, ids, model-samples, imported)`);
  }
}

/** The corpus id under which imported ROME / EasyEdit statistics are cached. */
export function importedCorpusId(name: string): string {
  return `imported:${name}`;
}

// ---------------------------------------------------------------------------------------------
// reading documents

/** Streams the lines of a file (any size), without line terminators. */
async function* lines(file: string): AsyncGenerator<string> {
  const stream = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      // A UTF-8 byte order mark marks the encoding; it is not part of the first document.
      yield n === 1 && line.startsWith('\uFEFF') ? line.slice(1) : line;
    }
  } catch (e) {
    // A line longer than a JS string can hold (~512 MB): readline throws a bare RangeError.
    if (e instanceof RangeError) throw new AmendError(`${file}: line ${n + 1} is too long to read as one document; split it into lines`);
    throw e;
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Documents of a plain text file, split as asked. */
async function* textFileDocs(file: string, split: CorpusSpec['split']): AsyncGenerator<Doc> {
  if (split === 'file') {
    const raw = fs.readFileSync(file, 'utf8');
    const text = raw.startsWith('\uFEFF') ? raw.slice(1) : raw;
    if (text.trim() !== '') yield { text };
    return;
  }
  if (split === 'paragraph') {
    let para: string[] = [];
    for await (const line of lines(file)) {
      if (line.trim() === '') {
        if (para.length) yield { text: para.join('\n') };
        para = [];
      } else {
        para.push(line);
      }
    }
    if (para.length) yield { text: para.join('\n') };
    return;
  }
  for await (const line of lines(file)) if (line.trim() !== '') yield { text: line };
}

/** Documents of a JSONL file: every non-blank line is one (an empty text still counts as a sample). */
async function* jsonlDocs(file: string, field: string): AsyncGenerator<Doc> {
  let n = 0;
  for await (const line of lines(file)) {
    n++;
    if (line.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new AmendError(`${file}:${n}: not valid JSON (${(e as Error).message})`);
    }
    const text = obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[field] : undefined;
    if (typeof text !== 'string') {
      throw new AmendError(`${file}:${n}: no string field "${field}" (a JSONL corpus needs {"${field}": "..."} on every line)`);
    }
    yield { text };
  }
}

/** All documents of a file-backed or in-memory corpus, in corpus order. */
export async function* corpusDocs(spec: CorpusSpec): AsyncGenerator<Doc> {
  switch (spec.kind) {
    case 'file':
      yield* textFileDocs(spec.path!, spec.split);
      return;
    case 'jsonl':
      yield* jsonlDocs(spec.path!, spec.field ?? 'text');
      return;
    case 'dir': {
      const root = path.resolve(spec.path!);
      for (const rel of listCorpusFiles(root)) {
        const file = path.join(root, rel);
        if (JSONL_EXT.has(path.extname(rel).toLowerCase())) yield* jsonlDocs(file, spec.field ?? 'text');
        else yield* textFileDocs(file, spec.split);
      }
      return;
    }
    case 'texts':
      for (const text of spec.texts!) yield { text };
      return;
    case 'ids':
      for (const ids of spec.ids!) yield { ids };
      return;
    default:
      throw new AmendError(`corpus kind "${spec.kind}" has no documents to read`);
  }
}

/** Number of documents (a first streaming pass; cheap next to the forward passes). */
export async function countDocs(spec: CorpusSpec): Promise<number> {
  if (spec.kind === 'texts') return spec.texts!.length;
  if (spec.kind === 'ids') return spec.ids!.length;
  let n = 0;
  if (spec.kind === 'jsonl' || spec.kind === 'dir') {
    // Count without parsing JSON: every non-blank line of a JSONL file is one document.
    const files = spec.kind === 'jsonl' ? [path.resolve(spec.path!)]
      : listCorpusFiles(path.resolve(spec.path!)).map((r) => path.join(path.resolve(spec.path!), r));
    for (const f of files) {
      if (JSONL_EXT.has(path.extname(f).toLowerCase()) || spec.kind === 'jsonl') {
        for await (const line of lines(f)) if (line.trim() !== '') n++;
      } else {
        for await (const _ of textFileDocs(f, spec.split)) n++;
      }
    }
    return n;
  }
  for await (const _ of corpusDocs(spec)) n++;
  return n;
}

/**
 * Which of `total` documents to use: all of them when samples ≥ total, else a fixed pseudo-random
 * subset of `samples` (Fisher–Yates with a seeded generator, as ROME's FixedRandomSubsetSampler
 * with seed 1; documents are then read in corpus order, which changes only the summation order).
 */
export function chooseSubset(total: number, samples: number, seed = 1): Uint8Array | null {
  if (samples >= total) return null;
  const idx = new Int32Array(total);
  for (let i = 0; i < total; i++) idx[i] = i;
  const rand = mulberry32(seed);
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
  }
  const chosen = new Uint8Array(total);
  for (let i = 0; i < samples; i++) chosen[idx[i]] = 1;
  return chosen;
}
