// Loading a benchmark file at the size of the full public CounterFact (21,919 records): time and
// peak memory of Amend's loadCases, all records and the first 10 (what `amend eval --n 10` asks),
// from the JSON list and from the same records as JSON Lines, against Python's json.load and
// Node's JSON.parse of the list, measured in the same run.
//
//   node dist/bench/data-load.js [--records 21919] [--runs 3] [--python python3]
//
// The stand-in file repeats the records of ../shared/data/counterfact/counterfact-rome-format-1000.json
// with new case ids, in a temporary folder that is removed afterwards. Each measurement is its own
// process (the peak resident set belongs to that one load); the fastest of --runs is reported.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadCases } from '../src/data/index.js';
import { BenchError, intFlag, machineInfo, parseFlags, repoRoot, runBench, strFlag } from './common.js';

const MiB = 2 ** 20;
interface Measured { seconds: number; peak_rss: number; cases: number }

const MODES = ['JSON.parse', 'loadCases', 'loadCases --n 10', 'loadCases, JSON Lines', 'loadCases --n 10, JSON Lines'] as const;

/** In the child: one load, its wall time, its peak resident set and what it read. */
function child(mode: string, file: string): void {
  if (mode.endsWith('JSON Lines')) file = file.replace(/\.json$/, '.jsonl');
  const t0 = performance.now();
  let cases: number;
  if (mode === 'JSON.parse') cases = (JSON.parse(fs.readFileSync(file, 'utf8')) as unknown[]).length;
  else cases = loadCases(file, mode.includes('--n 10') ? { limit: 10 } : {}).cases.length;
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, peak_rss: process.resourceUsage().maxRSS * 1024, cases })}\n`);
}

const PYTHON_CHILD = [
  'import json, resource, sys, time',
  't = time.perf_counter()',
  'with open(sys.argv[1], encoding="utf-8") as f: n = len(json.load(f))',
  's = time.perf_counter() - t',
  'print(json.dumps({"seconds": s, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cases": n}))',
].join('\n');

function measure(cmd: string, args: string[], runs: number): Measured {
  let best: Measured | null = null;
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new BenchError(`${path.basename(cmd)} ${args.slice(-2).join(' ')} failed (${r.error?.message ?? `exit code ${r.status}`})`);
    const m = JSON.parse(r.stdout.trim()) as Measured;
    if (!best || m.seconds < best.seconds) best = m;
  }
  return best!;
}

function main(): number {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    child(argv[1]!, argv[2]!);
    return 0;
  }
  const flags = parseFlags(argv, [], ['records', 'runs', 'python']);
  const records = intFlag(flags, 'records', 21919);
  const runs = intFlag(flags, 'runs', 3);
  const python = strFlag(flags, 'python') ?? 'python3';
  const sample = path.join(repoRoot(), '..', 'shared', 'data', 'counterfact', 'counterfact-rome-format-1000.json');
  if (!fs.existsSync(sample)) {
    console.log(`skipped: ${sample} is absent (the bench builds its stand-in file from it)`);
    return 0;
  }
  const base = JSON.parse(fs.readFileSync(sample, 'utf8')) as Record<string, unknown>[];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-load-'));
  try {
    const file = path.join(dir, 'counterfact.json');
    const out = fs.openSync(file, 'w');
    const lines = fs.openSync(`${file}l`, 'w');
    fs.writeSync(out, '[');
    for (let i = 0; i < records; i++) {
      const rec = JSON.stringify({ ...base[i % base.length], case_id: i });
      fs.writeSync(out, `${i ? ', ' : ''}${rec}`);
      fs.writeSync(lines, `${rec}\n`);
    }
    fs.writeSync(out, ']\n');
    fs.closeSync(out);
    fs.closeSync(lines);
    const size = fs.statSync(file).size;
    const m = machineInfo();
    console.log(`machine: ${m.cpu}, ${m.cores} cores; node ${m.node}; load average ${m.loadavg.join(' ')}`);
    console.log(`file: ${records} CounterFact records, ${(size / MiB).toFixed(1)} MiB; fastest of ${runs} runs, each a fresh process\n`);
    const py = measure(python, ['-c', PYTHON_CHILD, file], runs);
    const rows: [string, Measured][] = [[`python json.load (baseline)`, py]];
    const self = fileURLToPath(import.meta.url);
    for (const mode of MODES) rows.push([mode, measure(process.execPath, [self, '--child', mode, file], runs)]);
    console.log('| load | records kept | seconds | × python | peak RSS (MiB) | × python |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, r] of rows) {
      console.log(`| ${name} | ${r.cases} | ${r.seconds.toFixed(3)} | ${(r.seconds / py.seconds).toFixed(2)} | ${(r.peak_rss / MiB).toFixed(0)} | ${(r.peak_rss / py.peak_rss).toFixed(2)} |`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

runBench(main);
