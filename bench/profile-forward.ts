// Where the time of one GPT-2-small forward goes: every kernel call is wrapped with a timer and
// grouped by kernel (GEMMs by their role, recognised from the shape), and whatever is not inside
// a kernel (allocation, JS glue) is reported as "outside kernels".
//
//   node dist/bench/profile-forward.js [--threads N] [--batch 8] [--seq 128] [--reps 3]
//       [--logits all|last|none] [--layers 12] [--quiet-wait 60] [--json]
//
// Before each timed forward it waits (at most --quiet-wait seconds in all) for other processes
// to leave the CPUs idle; the per-kernel times are the sums over the timed forwards / reps.
import os from 'node:os';
import { kernels } from '../src/backend/index.js';
import { CausalLM } from '../src/models/index.js';
import {
  GPT2_SMALL, defaultCacheDir, ensureGpt2Checkpoint, gpt2ForwardFlops, intFlag, machineInfo, parseFlags, choiceFlag, numFlag, runBench,
  randomIds, strFlag, waitForQuiet, type Gpt2Shape,
} from './common.js';

const UNARY = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'geluTanh', 'geluErf', 'silu', 'abs', 'square', 'recip'];
const BINARY = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow'];

interface Entry { calls: number; ms: number; cpuMs: number; flops: number }

function main(): void {
  const flags = parseFlags(process.argv.slice(2), ['json'], ['threads', 'batch', 'seq', 'reps', 'layers', 'dir', 'logits', 'quiet-wait']);
  const threads = intFlag(flags, 'threads', os.cpus().length);
  const B = intFlag(flags, 'batch', 8), T = intFlag(flags, 'seq', 128), reps = intFlag(flags, 'reps', 3);
  const layers = intFlag(flags, 'layers', GPT2_SMALL.layers);
  const shape: Gpt2Shape = layers === GPT2_SMALL.layers ? GPT2_SMALL : { ...GPT2_SMALL, layers };
  const which = choiceFlag(flags, 'logits', ['all', 'last', 'none'] as const, 'all');
  const json = flags.has('json');

  const k = kernels();
  k.setThreads(threads);
  const info = k.info();
  const dir = ensureGpt2Checkpoint(shape, strFlag(flags, 'dir') ?? defaultCacheDir(), (m) => console.error(m));
  const model = CausalLM.loadDir(dir, { noTokenizer: true });
  const ids = randomIds(B * T, shape.vocab);
  const logitsAt = which === 'all' ? 'all' as const : which === 'none' ? 'none' as const
    : Array.from({ length: B }, (_, b) => b * T + T - 1);
  const d = shape.hidden;
  const gemmRole = (m: number, n: number, kk: number, batch: number): string => {
    if (batch > 1) return `gemm batched ${batch}×[${m}×${n}×${kk}]`;
    if (n === 3 * d && kk === d) return 'gemm qkv (c_attn)';
    if (n === d && kk === d) return 'gemm attn out (c_proj)';
    if (n === 4 * d && kk === d) return 'gemm mlp up (c_fc)';
    if (n === d && kk === 4 * d) return 'gemm mlp down (c_proj)';
    if (n === shape.vocab) return 'gemm lm head';
    return `gemm ${m}×${n}×${kk}`;
  };

  // Wrap every kernel of the backend in use with a timer.
  const stats = new Map<string, Entry>();
  let inKernel = 0;
  const target = k as unknown as Record<string, unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const name of Object.keys(target)) {
    const fn = target[name];
    if (typeof fn !== 'function' || name === 'info' || name === 'setThreads') continue;
    originals.set(name, fn as (...args: unknown[]) => unknown);
  }
  for (const [name, fn] of originals) {
    target[name] = function timed(this: unknown, ...args: unknown[]) {
      let key = name, flops = 0;
      if (name === 'gemm') {
        const [, , batch, m, n, kk] = args as number[];
        key = gemmRole(m, n, kk, batch);
        flops = 2 * batch * m * n * kk;
      } else if (name === 'unary') key = `unary ${UNARY[args[0] as number] ?? args[0]}`;
      else if (name === 'binary') key = `binary ${BINARY[args[0] as number] ?? args[0]}`;
      else if (name === 'attention') {
        const [, , , , , Bq, Tq, S, H, , D] = args as number[];
        flops = 2 * 2 * Bq * H * Tq * S * D;
      }
      const c0 = process.cpuUsage(), t0 = performance.now();
      const r = fn.apply(this, args);
      const ms = performance.now() - t0, c = process.cpuUsage(c0);
      inKernel += ms;
      const e = stats.get(key) ?? { calls: 0, ms: 0, cpuMs: 0, flops: 0 };
      e.calls++; e.ms += ms; e.cpuMs += (c.user + c.system) / 1000; e.flops += flops;
      stats.set(key, e);
      return r;
    };
  }
  if ((target.gemm as { name?: string }).name !== 'timed') {
    throw new Error('the kernels object cannot be wrapped (frozen?); profile not possible');
  }

  const run = (): void => { model.forward(ids, B, T, { logitsAt }); };
  run(); // warm-up
  stats.clear();
  inKernel = 0;
  let total = 0, cpu = 0, faults = 0, busy = 0;
  let budget = numFlag(flags, 'quiet-wait', 60);
  for (let i = 0; i < reps; i++) {
    const w0 = performance.now();
    busy = Math.max(busy, waitForQuiet(Math.max(0, budget)) ?? 0);
    budget -= (performance.now() - w0) / 1000;
    const f0 = process.resourceUsage().minorPageFault, c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    total += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpu += (c.user + c.system) / 1000;
    faults += process.resourceUsage().minorPageFault - f0;
  }
  faults /= reps;
  for (const [name, fn] of originals) target[name] = fn;

  const per = (x: number): number => x / reps;
  const rows = [...stats.entries()].map(([name, e]) => ({
    name, calls: e.calls / reps, ms: per(e.ms), share: e.ms / total, cpu_ms: per(e.cpuMs), cpu_share: e.cpuMs / cpu,
    gflops: e.flops > 0 ? e.flops / (e.ms / 1e3) / 1e9 : null,
    // GFLOP per CPU-second × threads: what the kernel would reach with every thread on a core of its own
    gflops_cpu: e.flops > 0 ? (e.flops / (e.cpuMs / 1e3) / 1e9) * info.threads : null,
  })).sort((a, b) => b.cpu_ms - a.cpu_ms);
  const cpuInKernels = rows.reduce((acc, r) => acc + r.cpu_ms, 0);
  const outside = per(total - inKernel);
  const outsideCpu = per(cpu) - cpuInKernels;
  const flops = gpt2ForwardFlops(shape, B, T, which === 'all' ? B * T : which === 'none' ? 0 : B);
  const report = {
    bench: 'profile-forward', machine: machineInfo(), backend: info, batch: B, seq: T, logits: which, reps,
    forward_ms: per(total), tokens_per_s: B * T / (per(total) / 1e3), gflops: flops / (per(total) / 1e3) / 1e9,
    kernels: rows, outside_kernels_ms: outside, outside_kernels_cpu_ms: outsideCpu, page_faults_per_forward: faults, cpu_ms_per_forward: per(cpu),
    background_busy_max: busy,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`backend ${info.name} (${info.blas}), ${info.threads} threads; forward [${B}, ${T}], logits ${which}: ` +
    `${per(total).toFixed(1)} ms = ${report.tokens_per_s.toFixed(1)} tok/s, ${report.gflops.toFixed(1)} GFLOP/s overall, ` +
    `${Math.round(faults)} page faults and ${per(cpu).toFixed(0)} ms of CPU time (all threads) per forward; ` +
    `background CPU use before the forwards up to ${(busy * 100).toFixed(0)} %`);
  console.log('');
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const g = (x: number | null): string => (x === null ? '' : x.toFixed(0));
  console.log('| kernel | calls/forward | wall ms/forward | wall share | CPU ms/forward | CPU share | GFLOP/s (wall) | GFLOP/s (CPU × threads) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.calls} | ${r.ms.toFixed(1)} | ${pct(r.share)} | ${r.cpu_ms.toFixed(1)} | ${pct(r.cpu_share)} | ${g(r.gflops)} | ${g(r.gflops_cpu)} |`);
  }
  console.log(`| outside kernels (allocation, JS) | | ${outside.toFixed(1)} | ${pct(outside / per(total))} | ${outsideCpu.toFixed(1)} | ${pct(outsideCpu / per(cpu))} | | |`);
  console.log(`| total | | ${per(total).toFixed(1)} | | ${per(cpu).toFixed(1)} | | ${report.gflops.toFixed(0)} | ${((flops / (per(cpu) / 1e3) / 1e9) * info.threads).toFixed(0)} |`);
}

runBench(main);
