// Peak memory of loading the GPT-2-small-shaped model: a fresh child process imports the engine,
// notes its resident set, loads the checkpoint with CausalLM.loadDir and reports its peak
// resident set (getrusage maxrss). Target: peak - baseline ≤ 1.3 × the model's float32 bytes.
//
//   node dist/bench/load-memory.js [--dtype F32|F16|BF16] [--layers 12] [--dir CACHE] [--runs 3]
//       [--json] [--check]
//
// Each run is its own process, so the peak belongs to that one load (the checkpoint is written
// first, by the parent, so writing it never counts). --dtype F16/BF16 stores the same model in
// half precision, which the loader widens to float32 (the weights in memory are the same size).
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CausalLM } from '../src/models/index.js';
import {
  GPT2_SMALL, defaultCacheDir, ensureGpt2Checkpoint, gpt2WeightBytes, intFlag, machineInfo, parseFlags, BenchError, runBench,
  strFlag, type Gpt2Shape,
} from './common.js';

const TARGET_RATIO = 1.3;
const MiB = 2 ** 20;

interface ChildResult {
  baseline_rss: number;
  peak_rss: number;
  rss_after: number;
  weight_bytes: number;
  load_s: number;
  tensors: number;
}

/** In the child: load once and measure. */
function child(dir: string): void {
  const baseline = process.memoryUsage().rss;
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const t0 = performance.now();
  const model = CausalLM.loadDir(dir, { noTokenizer: true });
  const loadS = (performance.now() - t0) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  let bytes = 0;
  for (const t of model.weights.values()) bytes += t.data.byteLength;
  const res: ChildResult & { peak_before: number } = {
    baseline_rss: baseline, peak_before: peakBefore, peak_rss: peak, rss_after: process.memoryUsage().rss,
    weight_bytes: bytes, load_s: loadS, tensors: model.weights.size,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

function main(): number {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    child(argv[1]);
    return 0;
  }
  const flags = parseFlags(argv, ['json', 'check'], ['layers', 'runs', 'dtype', 'dir']);
  const json = flags.has('json');
  const log = (msg: string): void => { if (!json) console.log(msg); else console.error(msg); };
  const layers = intFlag(flags, 'layers', GPT2_SMALL.layers);
  const runs = intFlag(flags, 'runs', 3);
  const shape: Gpt2Shape = layers === GPT2_SMALL.layers ? GPT2_SMALL : { ...GPT2_SMALL, layers };
  const dtype = (strFlag(flags, 'dtype') ?? 'F32').toUpperCase();
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new BenchError(`--dtype must be F32, F16 or BF16, not ${dtype}`);
  const dir = ensureGpt2Checkpoint(shape, strFlag(flags, 'dir') ?? defaultCacheDir(), log, dtype);

  const results: (ChildResult & { delta: number; ratio: number })[] = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) {
      console.error(`load-memory: the child process failed (${r.error?.message ?? `exit code ${r.status}`})`);
      return 1;
    }
    const c: ChildResult = JSON.parse(r.stdout.trim());
    const delta = c.peak_rss - c.baseline_rss;
    results.push({ ...c, delta, ratio: delta / c.weight_bytes });
  }
  // The run with the smallest peak is the least disturbed; the largest is reported too.
  const sorted = [...results].sort((a, b) => a.ratio - b.ratio);
  const best = sorted[0], worst = sorted[sorted.length - 1];
  const expected = gpt2WeightBytes(shape);
  const report = {
    bench: 'load-memory', model: { ...shape, dir, file_dtype: dtype }, machine: machineInfo(), node: process.version,
    weight_bytes: best.weight_bytes, weight_bytes_expected: expected, runs: results,
    ratio: { best: best.ratio, worst: worst.ratio }, target: TARGET_RATIO,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const mib = (x: number): string => (x / MiB).toFixed(1);
    console.log('');
    console.log('| run | fp32 weights MiB | baseline RSS MiB | peak RSS MiB | peak − baseline MiB | ratio | RSS after MiB | load s |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    results.forEach((r, i) => {
      console.log(`| ${i + 1} | ${mib(r.weight_bytes)} | ${mib(r.baseline_rss)} | ${mib(r.peak_rss)} | ${mib(r.delta)} | ` +
        `${r.ratio.toFixed(3)} | ${mib(r.rss_after)} | ${r.load_s.toFixed(2)} |`);
    });
    console.log('');
    console.log(`peak memory of loading (${dtype} file): ${worst.ratio.toFixed(3)}× the fp32 weight bytes at worst ` +
      `(target ≤ ${TARGET_RATIO}×: ${worst.ratio <= TARGET_RATIO ? 'met' : 'missed'})`);
    if (best.weight_bytes !== expected) console.log(`note: loaded ${best.weight_bytes} bytes, expected ${expected}`);
    console.log(`node ${process.version}, ${os.cpus().length} cores`);
  }
  return flags.has('check') && worst.ratio > TARGET_RATIO ? 1 : 0;
}

runBench(main);
