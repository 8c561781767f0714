// Forward throughput of a GPT-2-small-shaped model: Amend against a plain PyTorch implementation
// of the same model, on the same weights, token ids, batch and thread count, in the same run.
//
//   node dist/bench/forward.js [--threads N] [--batch 8] [--seq 128] [--warmup 2] [--reps 7]
//       [--layers 12] [--dir CACHE] [--quiet-wait 180] [--no-torch] [--python /usr/bin/python3]
//       [--torch-strided-heads] [--json] [--check]
//
// The checkpoint (config.json + model.safetensors, Hugging Face GPT-2 names and layouts, seeded
// random weights) is written once under $TMPDIR/amend-bench and reused. PyTorch runs in a child
// process (bench/forward_torch.py --serve) that stays up for the whole run, so the timed
// repetitions of the two engines alternate and see the same background load; before each one the
// bench waits for other processes to leave the CPUs idle (at most --quiet-wait seconds in all,
// default 180, so a machine that never quietens down still gets measured, and says so). PyTorch's
// logits are compared with Amend's, so both are known to compute the same thing.
// --torch-strided-heads runs PyTorch's attention on strided head views exactly as transformers'
// eager GPT-2 does (slower; by default the baseline makes them contiguous first).
// --check exits 1 when the target ratio is missed or the logits disagree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { kernels } from '../src/backend/index.js';
import { CausalLM } from '../src/models/index.js';
import {
  GPT2_SMALL, defaultCacheDir, ensureGpt2Checkpoint, gpt2ForwardFlops, intFlag, machineInfo, parseFlags, numFlag, runBench,
  randomIds, repoRoot, strFlag, summarise, waitForQuiet, type Gpt2Shape, type Timing,
} from './common.js';

const TARGET_RATIO = 1.5;

interface EngineResult extends Timing {
  tokens_per_s: number;
  gflops: number;
  /** Median CPU seconds of a forward (the engine's process, all threads; spinning included). */
  cpu_s: number;
  tokens_per_cpu_s: number;
}

/** The PyTorch child in --serve mode: one JSON line per request. */
class TorchServer {
  private lines: AsyncIterableIterator<string>;
  private constructor(private proc: ChildProcess, private failed: Promise<never>) {
    this.lines = readline.createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }

  static async start(python: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ server: TorchServer; hello: Record<string, unknown> }> {
    const proc = spawn(python, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', reject);
      proc.on('exit', (code) => reject(new Error(`${python} exited with code ${code}`)));
    });
    failed.catch(() => {}); // observed through next()
    const server = new TorchServer(proc, failed);
    const hello = await server.next();
    return { server, hello };
  }

  private async next(): Promise<Record<string, unknown>> {
    const r = await Promise.race([this.lines.next(), this.failed]);
    if (r.done) throw new Error('pytorch child closed its output');
    return JSON.parse(r.value);
  }

  /** n timed forwards: wall and CPU seconds of each. */
  async time(kind: 'all' | 'last', n: number): Promise<{ wall: number[]; cpu: number[] }> {
    this.proc.stdin!.write(`${kind} ${n}\n`);
    const r = await this.next();
    return { wall: r.runs as number[], cpu: r.cpu as number[] };
  }

  close(): void {
    this.proc.stdin!.end('quit\n');
  }
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2), ['json', 'no-torch', 'check', 'help', 'torch-strided-heads'],
    ['threads', 'batch', 'seq', 'warmup', 'reps', 'layers', 'dir', 'quiet-wait', 'python']);
  if (flags.has('help')) {
    console.log('usage: node dist/bench/forward.js [--threads N] [--batch 8] [--seq 128] [--warmup 2] [--reps 7]\n' +
      '         [--layers 12] [--dir CACHE] [--quiet-wait 180] [--no-torch] [--python /usr/bin/python3]\n' +
      '         [--torch-strided-heads] [--json] [--check]');
    return 0;
  }
  const json = flags.has('json');
  const log = (msg: string): void => { if (!json) console.log(msg); else console.error(msg); };
  const threads = intFlag(flags, 'threads', os.cpus().length);
  const B = intFlag(flags, 'batch', 8), T = intFlag(flags, 'seq', 128);
  const warmup = intFlag(flags, 'warmup', 2, 0), reps = intFlag(flags, 'reps', 7);
  const layers = intFlag(flags, 'layers', GPT2_SMALL.layers);
  let quietBudget = numFlag(flags, 'quiet-wait', 180);
  const quiet = (): number => {
    const t = performance.now();
    const busy = waitForQuiet(Math.max(0, quietBudget)) ?? 0;
    quietBudget -= (performance.now() - t) / 1000;
    return busy;
  };
  const shape: Gpt2Shape = layers === GPT2_SMALL.layers ? GPT2_SMALL : { ...GPT2_SMALL, layers };
  const cacheRoot = strFlag(flags, 'dir') ?? defaultCacheDir();
  const python = strFlag(flags, 'python') ?? '/usr/bin/python3';

  const k = kernels();
  k.setThreads(threads);
  const info = k.info();
  const machine = machineInfo();
  log(`machine: ${machine.cpu}, ${machine.cores} cores, load average ${machine.loadavg.join(' ')}`);
  log(`amend backend: ${info.name}, ${info.blas}, ${info.threads} threads`);
  for (const n of info.notes ?? []) log(`  ${n}`);

  const dir = ensureGpt2Checkpoint(shape, cacheRoot, log);
  const t0 = performance.now();
  const model = CausalLM.loadDir(dir, { noTokenizer: true });
  const loadS = (performance.now() - t0) / 1000;
  log(`model: ${dir} (${(model.parameterCount() / 1e6).toFixed(1)}M parameters, loaded in ${loadS.toFixed(2)} s)`);

  const ids = randomIds(B * T, shape.vocab);
  const lastRows = Array.from({ length: B }, (_, b) => b * T + T - 1);
  const tokens = B * T;
  const flops = { all: gpt2ForwardFlops(shape, B, T, B * T), last: gpt2ForwardFlops(shape, B, T, B) };
  const amendRun = (kind: 'all' | 'last'): Float32Array | null =>
    model.forward(ids, B, T, { logitsAt: kind === 'all' ? 'all' : lastRows }).logits?.data ?? null;
  const cpuTimes = { amend: { all: [] as number[], last: [] as number[] }, torch: { all: [] as number[], last: [] as number[] } };
  const timeAmend = (kind: 'all' | 'last'): number => {
    const c0 = process.cpuUsage(), s = performance.now();
    amendRun(kind);
    const wall = (performance.now() - s) / 1000, c = process.cpuUsage(c0);
    cpuTimes.amend[kind].push((c.user + c.system) / 1e6);
    return wall;
  };

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-bench-fwd-'));
  let torch: TorchServer | null = null;
  let torchHello: Record<string, unknown> | null = null;
  let torchError: string | null = null;
  let diff: { all: number; last: number; maxAbsLogit: number } | null = null;
  const busySeen: number[] = [];
  const runs = { amend: { all: [] as number[], last: [] as number[] }, torch: { all: [] as number[], last: [] as number[] } };
  try {
    if (!flags.has('no-torch')) {
      const idsFile = path.join(work, 'ids.i32'), logitsFile = path.join(work, 'logits.f32');
      fs.writeFileSync(idsFile, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
      log(`pytorch: ${python} bench/forward_torch.py --serve --threads ${threads}`);
      const script = path.join(repoRoot(), 'bench', 'forward_torch.py');
      const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
      try {
        // A Python without torch is named as such, not as a child that closed its output.
        const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
        if (probe.status !== 0) throw new Error(`${python} cannot import torch (${(probe.stderr || String(probe.error ?? '')).trim().split('\n').pop()}); install it or pass --no-torch`);
        const started = await TorchServer.start(python, [script, dir, '--serve', '--threads', String(threads),
          '--batch', String(B), '--seq', String(T), '--ids', idsFile, '--dump-logits', logitsFile,
          ...(flags.has('torch-strided-heads') ? ['--strided-heads'] : [])], env);
        torch = started.server;
        torchHello = started.hello;
        const ref = new Float32Array(fs.readFileSync(logitsFile).buffer.slice(0));
        fs.rmSync(logitsFile);
        const mine = amendRun('all')!;
        if (ref.length !== mine.length) throw new Error(`pytorch wrote ${ref.length} logits, Amend has ${mine.length}`);
        let all = 0, last = 0, maxAbs = 0;
        for (let i = 0; i < mine.length; i++) {
          all = Math.max(all, Math.abs(mine[i] - ref[i])); // NaN sticks
          maxAbs = Math.max(maxAbs, Math.abs(ref[i]));
        }
        const lastMine = amendRun('last')!;
        const V = shape.vocab;
        lastRows.forEach((row, i) => {
          for (let j = 0; j < V; j++) last = Math.max(last, Math.abs(lastMine[i * V + j] - ref[row * V + j]));
        });
        diff = { all, last, maxAbsLogit: maxAbs };
      } catch (e) {
        torchError = (e as Error).message;
        torch = null;
      }
    }

    for (const kind of ['all', 'last'] as const) {
      log(`${kind === 'all' ? 'logits at all positions' : 'logits at the last position'}: ${warmup} warm-up + ${reps} timed repetitions per engine, alternating ...`);
      for (let i = 0; i < warmup; i++) timeAmend(kind);
      cpuTimes.amend[kind].length = 0;
      if (torch) await torch.time(kind, warmup);
      for (let r = 0; r < reps; r++) {
        busySeen.push(quiet());
        runs.amend[kind].push(timeAmend(kind));
        if (torch) {
          busySeen.push(quiet());
          const t = await torch.time(kind, 1);
          runs.torch[kind].push(...t.wall);
          cpuTimes.torch[kind].push(...t.cpu);
        }
      }
    }
  } finally {
    torch?.close();
    fs.rmSync(work, { recursive: true, force: true });
  }

  const result = (xs: number[], cpu: number[], kind: 'all' | 'last'): EngineResult => {
    const t = summarise(xs), c = summarise(cpu.length ? cpu : [NaN]);
    return { ...t, tokens_per_s: tokens / t.median, gflops: flops[kind] / t.median / 1e9, cpu_s: c.median, tokens_per_cpu_s: tokens / c.median };
  };
  const amend = { all: result(runs.amend.all, cpuTimes.amend.all, 'all'), last: result(runs.amend.last, cpuTimes.amend.last, 'last') };
  const pt = torch
    ? { all: result(runs.torch.all, cpuTimes.torch.all, 'all'), last: result(runs.torch.last, cpuTimes.torch.last, 'last') }
    : null;
  const ratioAll = pt ? amend.all.tokens_per_s / pt.all.tokens_per_s : null;
  const ratioLast = pt ? amend.last.tokens_per_s / pt.last.tokens_per_s : null;
  const background = { max: Math.max(0, ...busySeen), median: summarise(busySeen.length ? busySeen : [0]).median };
  const report = {
    bench: 'forward', model: { ...shape, params: model.parameterCount(), dir }, batch: B, seq: T, threads, warmup, reps,
    machine: { ...machine, loadavg_end: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    background_busy_before_reps: background,
    amend: { backend: info, load_s: loadS, ...amend },
    pytorch: pt ? { ...torchHello, ...pt } : torchError ? { error: torchError } : null,
    logits_max_abs_diff: diff, ratio: { all: ratioAll, last: ratioLast }, target: TARGET_RATIO,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const f = (x: number, d = 1): string => x.toFixed(d);
    const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
    console.log('');
    console.log(row(['logits', 'Amend tok/s', 'PyTorch tok/s', 'ratio', 'target', 'Amend ms (median / best)', 'PyTorch ms (median / best)', 'Amend GFLOP/s', 'PyTorch GFLOP/s']));
    console.log(row(Array(9).fill('---')));
    for (const kind of ['all', 'last'] as const) {
      const a = amend[kind], p = pt?.[kind], ratio = kind === 'all' ? ratioAll : ratioLast;
      console.log(row([
        kind === 'all' ? 'all positions' : 'last position', f(a.tokens_per_s), p ? f(p.tokens_per_s) : '-',
        ratio !== null ? `${f(ratio, 2)}×` : '-',
        kind === 'all' ? `≥ ${TARGET_RATIO}×${ratio === null ? '' : ratio >= TARGET_RATIO ? ' (met)' : ' (missed)'}` : '-',
        `${f(a.median * 1e3, 0)} / ${f(a.best * 1e3, 0)}`, p ? `${f(p.median * 1e3, 0)} / ${f(p.best * 1e3, 0)}` : '-',
        f(a.gflops), p ? f(p.gflops) : '-',
      ]));
    }
    console.log('');
    if (diff) {
      console.log(`logits max |Amend − PyTorch|: ${diff.all.toExponential(2)} over all positions, ` +
        `${diff.last.toExponential(2)} at the last positions (max |logit| ${diff.maxAbsLogit.toFixed(2)})`);
    }
    if (torchError) console.log(`pytorch run failed: ${torchError}`);
    if (torchHello) console.log(`pytorch ${String(torchHello.torch)}, ${String(torchHello.threads)} threads`);
    for (const kind of ['all', 'last'] as const) {
      const a = amend[kind], p = pt?.[kind];
      console.log(`CPU time per forward (${kind}): Amend ${f(a.cpu_s * 1e3, 0)} ms` +
        (p ? `, PyTorch ${f(p.cpu_s * 1e3, 0)} ms (ratio by CPU time ${f(p.cpu_s / a.cpu_s, 2)}×)` : ''));
    }
    console.log(`background CPU use before the timed repetitions: median ${f(background.median * 100, 0)} %, max ${f(background.max * 100, 0)} % of all cores; ` +
      `load average at the end ${report.machine.loadavg_end.join(' ')}`);
  }
  if (flags.has('check')) {
    if (ratioAll === null || ratioAll < TARGET_RATIO) return 1;
    if (!diff || !(diff.all < 1e-3)) return 1;
  }
  return 0;
}

runBench(main);
