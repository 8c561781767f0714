// Dense linear algebra (src/linalg) against numpy on the same matrices, measured in the same run.
//
//   node dist/bench/linalg.js [--sizes 256,1024] [--reps 3] [--python /usr/bin/python3] [--no-js]
//
// For each size n: a symmetric positive definite matrix (off-diagonal entries uniform in ±0.01,
// diagonal + 2, seeded) and a random n × 1 right-hand side, in float64, written to a file that
// bench/linalg_numpy.py reads, so both sides see the same numbers. Timed: cholesky, solve (LU),
// symEig and svd, each through LAPACK in the addon when it has it ("lapack") and the plain
// TypeScript reference ("js", skipped above n = 1024 or with --no-js), and numpy's cholesky,
// solve, eigh and svd (thin). Best (median) seconds of --reps calls after one warm-up, inputs
// copied outside the timing; the ratio is numpy's best time over Amend's (above 1: Amend faster).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cholesky, lapackAvailable, solve, svd, symEig } from '../src/linalg/index.js';
import { mulberry32 } from '../src/tensor/index.js';
import { intFlag, intListFlag, machineInfo, parseFlags, repoRoot, runBench, strFlag, summarise, type Timing } from './common.js';

type Op = 'cholesky' | 'solve' | 'symEig' | 'svd';
const OPS: Op[] = ['cholesky', 'solve', 'symEig', 'svd'];

function spd(n: number, seed: number): Float64Array {
  const rand = mulberry32(seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = (rand() * 2 - 1) * 0.01;
    a[i * n + i] = 2 + (rand() * 2 - 1) * 0.01;
  }
  return a;
}

function run(op: Op, a: Float64Array, b: Float64Array, n: number, backend: 'lapack' | 'js'): void {
  const o = { backend };
  if (op === 'cholesky') cholesky(a, n, o);
  else if (op === 'solve') solve(a, b, n, 1, o);
  else if (op === 'symEig') symEig(a, n, o);
  else svd(a, n, n, o);
}

function timeOp(op: Op, a: Float64Array, b: Float64Array, n: number, backend: 'lapack' | 'js', reps: number): Timing {
  run(op, a.slice(), b.slice(), n, backend); // warm-up
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const ac = a.slice(), bc = b.slice();
    const t0 = performance.now();
    run(op, ac, bc, n, backend);
    runs.push((performance.now() - t0) / 1000);
  }
  return summarise(runs);
}

function numpyTimes(python: string, file: string, n: number, reps: number): Record<Op, Timing> | string {
  const script = path.join(repoRoot(), 'bench', 'linalg_numpy.py');
  const r = spawnSync(python, [script, file, String(n), String(reps)], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: String(os.cpus().length) } });
  if (r.status !== 0) return `numpy not measured (${(r.stderr || String(r.error ?? '')).trim().split('\n').pop()})`;
  return JSON.parse(r.stdout) as Record<Op, Timing>;
}

const fmt = (t: Timing | undefined) => (t ? `${t.best.toFixed(4)} (${t.median.toFixed(4)})` : '–');

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2), ['no-js'], ['sizes', 'reps', 'python']);
  const sizes = intListFlag(flags, 'sizes', [256, 1024]);
  const reps = intFlag(flags, 'reps', 3);
  const python = strFlag(flags, 'python') ?? '/usr/bin/python3';
  const m = machineInfo();
  console.log(`${m.cpu}, ${m.cores} cores, node ${m.node}; LAPACK in the addon: ${lapackAvailable() ? 'yes' : 'no'}; seconds, best (median) of ${reps}`);
  console.log('\n| operation | n | lapack | js | numpy | numpy / amend |\n| --- | ---: | --- | --- | --- | ---: |');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-bench-linalg-'));
  try {
    for (const n of sizes) {
      const a = spd(n, 1), b = Float64Array.from(spd(n, 2).subarray(0, n));
      const file = path.join(dir, `a${n}.f64`);
      fs.writeFileSync(file, Buffer.concat([Buffer.from(a.buffer), Buffer.from(b.buffer)]));
      const np = numpyTimes(python, file, n, reps);
      if (typeof np === 'string') console.log(`(n = ${n}: ${np})`);
      for (const op of OPS) {
        const lap = lapackAvailable() ? timeOp(op, a, b, n, 'lapack', reps) : undefined;
        const js = !flags.has('no-js') && n <= 1024 ? timeOp(op, a, b, n, 'js', reps) : undefined;
        const ref = typeof np === 'string' ? undefined : np[op];
        const ours = lap ?? js;
        const ratio = ref && ours ? `${(ref.best / ours.best).toFixed(2)}×${lap ? '' : ' (js)'}` : '–';
        console.log(`| ${op} | ${n} | ${fmt(lap)} | ${fmt(js)} | ${fmt(ref)} | ${ratio} |`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

runBench(main);
