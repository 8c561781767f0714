// Shared pieces of the engine benchmarks: the GPT-2-small-shaped checkpoint with seeded random
// weights (written once into a cache directory and reused), argument parsing, timing and the
// machine description that goes into bench/RESULTS.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { writeCheckpoint } from '../src/io/checkpoint.js';
import type { TensorRecord } from '../src/io/safetensors.js';
import { mulberry32, randn } from '../src/tensor/random.js';

/** The shape of GPT-2 small (124M): 12 layers, 768 wide, 12 heads, 50257-token vocabulary. */
export interface Gpt2Shape {
  layers: number;
  hidden: number;
  heads: number;
  vocab: number;
  positions: number;
}

export const GPT2_SMALL: Gpt2Shape = { layers: 12, hidden: 768, heads: 12, vocab: 50257, positions: 1024 };

/** Bumped whenever the weights the bench writes change, so a stale cache is rewritten. */
const WEIGHTS_VERSION = 1;
const SEED = 1234;

export function gpt2Config(s: Gpt2Shape): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: s.vocab,
    n_positions: s.positions,
    n_ctx: s.positions,
    n_embd: s.hidden,
    n_layer: s.layers,
    n_head: s.heads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
    bos_token_id: 50256,
    eos_token_id: 50256,
    torch_dtype: 'float32',
  };
}

/**
 * The tensors of a GPT-2 checkpoint under Hugging Face's names and layouts (Conv1D weights
 * [in, out]; the LM head is tied to wte and not stored). Matrices and biases are N(0, 0.02²),
 * layer-norm weights 1 + N(0, 0.02²), so every parameter matters to the logits.
 */
export function gpt2RandomTensors(s: Gpt2Shape, seed = SEED): TensorRecord[] {
  const rand = mulberry32(seed);
  const d = s.hidden, f = 4 * s.hidden;
  const out: TensorRecord[] = [];
  const add = (name: string, shape: number[], std: number, mean = 0): void => {
    const data = randn(shape.reduce((a, b) => a * b, 1), rand, std);
    if (mean !== 0) for (let i = 0; i < data.length; i++) data[i] += mean;
    out.push({ name, dtype: 'F32', shape, data });
  };
  add('wte.weight', [s.vocab, d], 0.02);
  add('wpe.weight', [s.positions, d], 0.01);
  for (let l = 0; l < s.layers; l++) {
    const h = `h.${l}.`;
    add(`${h}ln_1.weight`, [d], 0.02, 1);
    add(`${h}ln_1.bias`, [d], 0.02);
    add(`${h}attn.c_attn.weight`, [d, 3 * d], 0.02);
    add(`${h}attn.c_attn.bias`, [3 * d], 0.02);
    add(`${h}attn.c_proj.weight`, [d, d], 0.02);
    add(`${h}attn.c_proj.bias`, [d], 0.02);
    add(`${h}ln_2.weight`, [d], 0.02, 1);
    add(`${h}ln_2.bias`, [d], 0.02);
    add(`${h}mlp.c_fc.weight`, [d, f], 0.02);
    add(`${h}mlp.c_fc.bias`, [f], 0.02);
    add(`${h}mlp.c_proj.weight`, [f, d], 0.02);
    add(`${h}mlp.c_proj.bias`, [d], 0.02);
  }
  add('ln_f.weight', [d], 0.02, 1);
  add('ln_f.bias', [d], 0.02);
  return out;
}

/** Bytes of the model's weights in float32 (what the checkpoint holds; the tied head is not extra). */
export function gpt2WeightBytes(s: Gpt2Shape): number {
  const d = s.hidden, f = 4 * d;
  const perLayer = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
  return 4 * (s.vocab * d + s.positions * d + s.layers * perLayer + 2 * d);
}

export function defaultCacheDir(): string {
  return path.join(os.tmpdir(), 'amend-bench');
}

/**
 * The directory of a GPT-2 checkpoint of shape `s` with seeded random weights, written on first
 * use and reused afterwards (a stamp file records what was written). `dtype` is the storage
 * dtype in the file (the values are the float32 ones rounded to it).
 */
export function ensureGpt2Checkpoint(s: Gpt2Shape, root = defaultCacheDir(), log: (msg: string) => void = () => {},
  dtype: 'F32' | 'F16' | 'BF16' = 'F32'): string {
  const name = (s === GPT2_SMALL ? 'gpt2-small-random' : `gpt2-random-${s.layers}x${s.hidden}x${s.heads}-v${s.vocab}`) +
    (dtype === 'F32' ? '' : `-${dtype.toLowerCase()}`);
  const dir = path.join(root, name);
  const stamp = JSON.stringify({ version: WEIGHTS_VERSION, seed: SEED, shape: s, dtype });
  const stampFile = path.join(dir, 'bench-stamp.json');
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp &&
    fs.existsSync(path.join(dir, 'model.safetensors')) && fs.existsSync(path.join(dir, 'config.json'))) {
    return dir;
  }
  log(`writing a ${s.layers}-layer GPT-2 checkpoint (${dtype}) with seeded random weights to ${dir} ...`);
  const t0 = performance.now();
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(stampFile, { force: true });
  writeCheckpoint(dir, gpt2RandomTensors(s), { dtype, metadata: { generator: 'amend bench/common.ts' } });
  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(`${cfg}.tmp`, JSON.stringify(gpt2Config(s), null, 2) + '\n');
  fs.renameSync(`${cfg}.tmp`, cfg);
  fs.writeFileSync(stampFile, stamp);
  log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

/** Seeded token ids in [0, vocab). */
export function randomIds(n: number, vocab: number, seed = 7): Int32Array {
  const rand = mulberry32(seed);
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = Math.floor(rand() * vocab);
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Command line

export type Flags = Map<string, string | true>;

/**
 * --help / -h: print the running script's header comment (each bench file opens with its usage)
 * and exit.
 */
export function helpIfAsked(argv: readonly string[]): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  const lines = fs.readFileSync(process.argv[1]!, 'utf8').split('\n');
  const header: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('//')) break;
    header.push(line.replace(/^\/\/ ?/, ''));
  }
  console.log(header.join('\n') || `usage: node ${path.relative(process.cwd(), process.argv[1]!)} [--flags]`);
  process.exit(0);
}

/** A bad command line or setting: printed as one line by runBench, not as a stack trace. */
export class BenchError extends Error {}

/**
 * Runs a bench script's main: a BenchError (or an AmendError, a user-facing error of the library)
 * is one line on stderr and exit 1; anything else keeps its stack trace. A number it returns is
 * the exit code.
 */
export function runBench(main: () => Promise<number | void> | number | void): void {
  Promise.resolve().then(main).then((code) => { if (typeof code === 'number') process.exitCode = code; }, (e: unknown) => {
    const oneLine = e instanceof BenchError || (e instanceof Error && e.name === 'AmendError');
    console.error(oneLine ? `${path.basename(process.argv[1]!)}: ${(e as Error).message}` : e);
    process.exitCode = 1;
  });
}

/** --name value / --name=value / --flag, for the named flags only (--help is answered here). */
export function parseFlags(argv: readonly string[], booleans: readonly string[], values: readonly string[]): Flags {
  helpIfAsked(argv);
  const flags: Flags = new Map();
  const known = (name: string) => booleans.includes(name) || values.includes(name);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new BenchError(`unexpected argument "${a}" (see --help)`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (!known(name)) throw new BenchError(`unknown option --${name} (known: ${[...values, ...booleans].map((f) => `--${f}`).join(', ')}; see --help)`);
    if (eq >= 0) flags.set(name, a.slice(eq + 1));
    else if (booleans.includes(name)) flags.set(name, true);
    else if (i + 1 < argv.length) flags.set(name, argv[++i]);
    else throw new BenchError(`--${name} needs a value`);
  }
  return flags;
}

/** An integer flag, at least `min` (default 1). */
export function intFlag(flags: Flags, name: string, fallback: number, min = 1): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\s*-?\d+\s*$/.test(v) || n < min) throw new BenchError(`--${name} must be an integer ≥ ${min}, got "${String(v)}"`);
  return n;
}

/** A comma-separated list of integers, each at least `min`. */
export function intListFlag(flags: Flags, name: string, fallback: readonly number[], min = 1): number[] {
  const v = flags.get(name);
  if (v === undefined) return [...fallback];
  const parts = String(v).split(',').map((x) => x.trim());
  if (parts.some((x) => !/^-?\d+$/.test(x) || Number(x) < min)) throw new BenchError(`--${name} must be a comma-separated list of integers ≥ ${min}, got "${String(v)}"`);
  return parts.map(Number);
}

/** A number flag within [min, max]. */
export function numFlag(flags: Flags, name: string, fallback: number, min = 0, max = Number.POSITIVE_INFINITY): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !(n >= min && n <= max)) throw new BenchError(`--${name} must be a number from ${min} to ${max}, got "${String(v)}"`);
  return n;
}

/** One of the given choices. */
export function choiceFlag<T extends string>(flags: Flags, name: string, choices: readonly T[], fallback: T): T {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  if (!choices.includes(v as T)) throw new BenchError(`--${name} must be one of ${choices.join(', ')}, got "${String(v)}"`);
  return v as T;
}

export function strFlag(flags: Flags, name: string): string | undefined {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// Timing and the machine

export interface Timing {
  /** Seconds of each timed repetition. */
  runs: number[];
  median: number;
  best: number;
}

export function summarise(runs: number[]): Timing {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { runs, median, best: s[0] };
}

/** Runs fn `warmup` times untimed, then `reps` times timed. */
export function timeIt(fn: () => void, warmup: number, reps: number): Timing {
  for (let i = 0; i < warmup; i++) fn();
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    runs.push((performance.now() - t0) / 1000);
  }
  return summarise(runs);
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  loadavg: number[];
  date: string;
}

export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /Model name:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) cpu = m[1].trim();
  } catch { /* lscpu missing: keep os.cpus() */ }
  return {
    cpu, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version, loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    date: new Date().toISOString(),
  };
}

/** The repository root (benches run from dist/bench, sources live in bench/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the bench');
    dir = up;
  }
  return dir;
}

/** FLOPs of one GPT-2 forward over [B, T] (multiply-adds × 2; causal attention counted in full). */
export function gpt2ForwardFlops(s: Gpt2Shape, B: number, T: number, logitRows: number): number {
  const d = s.hidden, f = 4 * d, tokens = B * T;
  const dense = 2 * tokens * (d * 3 * d + d * d + 2 * d * f) * s.layers;
  const attn = 2 * 2 * B * T * T * d * s.layers;
  const head = 2 * logitRows * d * s.vocab;
  return dense + attn + head;
}

// ---------------------------------------------------------------------------------------------
// Background load (the development machine is shared: other builds and tests run beside a bench)

function cpuJiffies(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]; // "cpu  user nice system idle iowait ..."
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - (v[4] ?? 0), total };
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Fraction of all CPUs busy over the next `ms` milliseconds (null where /proc/stat is absent). */
export function cpuBusy(ms = 300): number | null {
  if (!fs.existsSync('/proc/stat')) return null;
  const a = cpuJiffies();
  sleepMs(ms);
  const b = cpuJiffies();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/**
 * Waits (up to maxS seconds) until other processes leave the CPUs nearly idle (busy < threshold
 * of all cores while this process sleeps). Returns the busy fraction last seen.
 */
export function waitForQuiet(maxS: number, threshold = 0.12): number | null {
  const end = performance.now() + maxS * 1000;
  let busy = cpuBusy();
  while (busy !== null && busy >= threshold && performance.now() < end) busy = cpuBusy();
  return busy;
}
