// GEMM throughput at GPT-2-small shapes: the native addon's gemm (what the engine uses), its own
// blocked GEMM, OpenBLAS's cblas_sgemm, and numpy's matmul measured in the same run (spawned
// python3, same thread count), then a check that OpenBLAS's threads and the addon's thread pool
// do not slow each other down when GEMMs and elementwise kernels alternate.
//
//   node dist/bench/gemm.js [--threads 2] [--seconds 1] [--clock wall|cpu] [--no-numpy]
//       [--python /usr/bin/python3,python3] [--denormal]
//
// --denormal adds the MLP down projection with denormal entries in A (numpy not measured there).
// --clock cpu times each call by the CPU time of the process instead of the wall clock: with one
// thread that is the time the call actually ran, which keeps the comparison fair on a machine
// that other processes load (it is meaningless with more threads, which also count idle spins).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../src/backend/native.js';
import { BenchError, choiceFlag, intFlag, numFlag, parseFlags, runBench, strFlag } from './common.js';


interface Shape {
  name: string; ta: boolean; tb: boolean; m: number; n: number; k: number;
  /** Every `every`-th entry of A scaled into the denormal range (below 1.2e-38). */
  denormal?: { every: number };
}
interface Timing { best: number; median: number; reps: number }

const TOKENS = 1024;
const SHAPES: Shape[] = [
  { name: 'attn proj  x·W', ta: false, tb: false, m: TOKENS, n: 768, k: 768 },
  { name: 'qkv        x·W', ta: false, tb: false, m: TOKENS, n: 2304, k: 768 },
  { name: 'mlp up     x·W', ta: false, tb: false, m: TOKENS, n: 3072, k: 768 },
  { name: 'mlp down   x·W', ta: false, tb: false, m: TOKENS, n: 768, k: 3072 },
  { name: 'LM head    x·Eᵀ', ta: false, tb: true, m: TOKENS, n: 50257, k: 768 },
  { name: 'grad W     xᵀ·dy', ta: true, tb: false, m: 768, n: 3072, k: TOKENS },
  { name: 'grad x     dy·Wᵀ', ta: false, tb: true, m: TOKENS, n: 768, k: 3072 },
];
// A's denormal entries cost an FMA a microcode assist unless the kernel flushes them (the own GEMM
// does; OpenBLAS and numpy do not), so these rows compare against the same shape's normal row.
const DENORMAL_SHAPES: Shape[] = [
  { name: 'mlp down, A 1/10 denormal', ta: false, tb: false, m: TOKENS, n: 768, k: 3072, denormal: { every: 10 } },
  { name: 'mlp down, A all denormal', ta: false, tb: false, m: TOKENS, n: 768, k: 3072, denormal: { every: 1 } },
];

function randn(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

let cpuClock = false;
const now = (): number => {
  if (!cpuClock) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function time(fn: () => void, minSeconds: number): Timing {
  fn(); // warm-up: thread start, page faults, packing buffers
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 3 || performance.now() - start < minSeconds * 1000) {
    const t0 = now();
    fn();
    times.push((now() - t0) / 1000);
  }
  times.sort((x, y) => x - y);
  return { best: times[0], median: times[times.length >> 1], reps: times.length };
}

const gflops = (s: Shape, seconds: number) => (2 * s.m * s.n * s.k) / seconds / 1e9;

function numpy(python: string, shapes: Shape[], threads: number, seconds: number) {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'gemm_numpy.py');
  const env = {
    ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads),
    AMEND_BENCH_CLOCK: cpuClock ? 'cpu' : 'wall',
  };
  try {
    const out = execFileSync(python, [script, JSON.stringify(shapes), String(seconds)], { env, encoding: 'utf8' });
    return JSON.parse(out) as { numpy: string; python: string; blas: string[]; results: Timing[] };
  } catch (e) {
    console.log(`(${python}: numpy not measured: ${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

function main(): void {
  const flags = parseFlags(process.argv.slice(2), ['no-numpy', 'denormal'], ['threads', 'seconds', 'clock', 'python']);
  const addon = nativeAddon();
  if (!addon) {
    console.log('native addon not built; nothing to measure (npm install builds it)');
    return;
  }
  const threads = intFlag(flags, 'threads', 2);
  if (threads > 1024) throw new BenchError('--threads must be at most 1024');
  const seconds = numFlag(flags, 'seconds', 1, 0.001);
  cpuClock = choiceFlag(flags, 'clock', ['wall', 'cpu'] as const, 'wall') === 'cpu';
  const pythons = flags.has('no-numpy') ? [] : (strFlag(flags, 'python') ?? '/usr/bin/python3,python3').split(',');
  addon.setThreads(threads);
  const info = addon.info();
  console.log(`machine: ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} cpus; node ${process.version}; ` +
    `threads ${threads}; ${cpuClock ? 'CPU' : 'wall'} clock; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`addon: ${info.blas}`);
  for (const n of info.notes ?? []) console.log(`  ${n}`);

  const impls: [string, (...a: unknown[]) => void][] = [['gemm', addon.gemm], ['own', addon.gemmOwn]];
  if (typeof addon.gemmBlas === 'function') impls.push(['OpenBLAS', addon.gemmBlas]);
  const header = ['shape', 'm×n×k', ...impls.map(([n]) => n), ...pythons.map((_, i) => `numpy#${i + 1}`), ...pythons.map((_, i) => `gemm/numpy#${i + 1}`)];
  const rows: string[][] = [];
  const numpyInfo: (string | undefined)[] = [];

  for (const s of flags.has('denormal') ? [...SHAPES, ...DENORMAL_SHAPES] : SHAPES) {
    const a = randn(s.m * s.k, 1), b = randn(s.k * s.n, 2), c = new Float32Array(s.m * s.n);
    if (s.denormal) for (let i = 0; i < a.length; i += s.denormal.every) a[i] *= 1e-39;
    const row = [s.name, `${s.m}×${s.n}×${s.k}`];
    let gemmRate = 0;
    for (const [name, f] of impls) {
      const t = time(() => f(s.ta, s.tb, 1, s.m, s.n, s.k, a, 0, b, 0, c, 0), seconds);
      row.push(`${gflops(s, t.best).toFixed(0)} (${gflops(s, t.median).toFixed(0)})`);
      if (name === 'gemm') gemmRate = gflops(s, t.best);
    }
    // A ratio against each numpy measured (Python installs differ in their BLAS, and so in speed).
    const numpyRates = pythons.map((py, i) => {
      const r = s.denormal ? null : numpy(py, [s], threads, seconds);
      if (!r) {
        row.push('–');
        return 0;
      }
      const t = r.results[0];
      numpyInfo[i] ??= `numpy#${i + 1}: ${r.python}, numpy ${r.numpy}, ${r.blas.join(' ') || 'BLAS ?'}`;
      row.push(`${gflops(s, t.best).toFixed(0)} (${gflops(s, t.median).toFixed(0)})`);
      return gflops(s, t.best);
    });
    for (const rate of numpyRates) row.push(rate ? `${(gemmRate / rate).toFixed(2)}×` : '–');
    rows.push(row);
    console.log(row.join('  |  '));
  }

  console.log('\nGFLOP/s, best (median) of repeated runs');
  for (const l of numpyInfo) if (l) console.log(l);
  console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);

  if (!cpuClock) interplay(addon, impls, seconds);
}

// A GEMM followed by the elementwise kernels of an MLP block, in a loop, against the same calls
// timed in isolation: if OpenBLAS's idle threads and the addon's pool competed for the cores, the
// loop would cost more than the sum of its parts. CPU time (all threads of this process) is
// reported next to wall time: spinning threads show up there even when other processes load the
// machine and make wall times noisy.
function interplay(addon: any, impls: [string, (...a: unknown[]) => void][], seconds: number): void {
  const [m, n, k] = [TOKENS, 3072, 768];
  const x = randn(m * k, 3), w = randn(k * n, 4), h = new Float32Array(m * n), bias = randn(n, 5);
  const ln = new Float32Array(m * k), mean = new Float32Array(m), rstd = new Float32Array(m);
  const shape = Int32Array.of(m, n), sx = Int32Array.of(n, 1), sb = Int32Array.of(0, 1);
  const elementwise = () => {
    addon.binary(0, h, sx, bias, sb, h, shape); // + bias
    addon.unary(8, h, h, m * n); // GELU (tanh)
    addon.layerNorm(x, null, null, ln, mean, rstd, m, k, 1e-5);
  };
  // Best wall time of one iteration, and the mean wall and CPU time over a batch of them.
  const cost = (fn: () => void) => {
    const best = time(fn, seconds).best * 1e3;
    const reps = 20, c0 = process.cpuUsage(), t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const c = process.cpuUsage(c0), wall = (performance.now() - t0) / reps;
    return { wall: best, mean: wall, cpu: (c.user + c.system) / 1e3 / reps };
  };
  const fmt = (c: { wall: number; mean: number; cpu: number }) =>
    `${c.wall.toFixed(2)} ms best, ${c.mean.toFixed(2)} ms mean, ${c.cpu.toFixed(2)} ms cpu`;
  console.log('\ninterplay, per iteration: GEMM 1024×3072×768, then bias + GELU + layerNorm (cpu: all threads of the process)');
  const e = cost(elementwise);
  console.log(`  elementwise alone: ${fmt(e)}`);
  for (const [name, f] of impls) {
    if (name === 'gemm') continue;
    const gemm = () => f(false, false, 1, m, n, k, x, 0, w, 0, h, 0);
    const g = cost(gemm);
    const both = cost(() => {
      gemm();
      elementwise();
    });
    const extra = (a: number, b: number) => `${a > b ? '+' : ''}${((a / b - 1) * 100).toFixed(0)}%`;
    console.log(`  ${name}: gemm alone ${fmt(g)}; gemm + elementwise ${fmt(both)} ` +
      `(vs sum of parts: wall ${extra(both.wall, g.wall + e.wall)}, cpu ${extra(both.cpu, g.cpu + e.cpu)})`);
  }
}

if (existsSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'gemm_numpy.py'))) runBench(main);
else console.log('bench/gemm_numpy.py not found next to dist/; run from the package checkout');
