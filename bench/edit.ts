// Editing benchmarks (results in bench/RESULTS.md, section "Editing").
//
//   node dist/bench/edit.js timing [--memit 100,1000] [--rome 1] [--samples 1000] [--corpus FILE]
//       [--steps N] [--set "key=value key2=value2"]
//       ROME and MEMIT wall time on the GPT-2-small-shaped checkpoint with seeded random weights
//       (bench/common.ts) and the GPT-2 tokenizer, broken down into statistics, context templates,
//       keys, v*/z optimisation and solve, with the peak resident memory of each run (each scenario
//       runs in its own process). Requests: CounterFact records from ../shared/data.
//   node dist/bench/edit.js run --scenario rome|memit --n N [...]   (one scenario; used by timing)
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CausalLM } from '../src/models/model.js';
import { loadCases } from '../src/data/index.js';
import type { EditCase } from '../src/editors/types.js';
import type { TensorDelta } from '../src/patch/types.js';
import { editWithReport, parseSets, type EditMethod } from '../src/editors/index.js';
import { BenchError, GPT2_SMALL, choiceFlag, ensureGpt2Checkpoint, helpIfAsked, intListFlag, machineInfo, parseFlags, runBench, strFlag, intFlag, type Flags } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const shared = path.resolve(root, '..', 'shared');

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** The GPT-2-small-shaped random checkpoint with the GPT-2 tokenizer beside it (symlinks). */
function gpt2SmallWithTokenizer(): string {
  const weights = ensureGpt2Checkpoint(GPT2_SMALL, undefined, log);
  const dir = `${weights}-tok`;
  const tokDir = path.join(shared, 'models', 'gpt2-tokenizer');
  if (!fs.existsSync(tokDir)) throw new Error(`${tokDir} is missing (the GPT-2 tokenizer files)`);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['model.safetensors', 'config.json']) {
    const to = path.join(dir, f);
    if (!fs.existsSync(to)) fs.symlinkSync(path.join(weights, f), to);
  }
  for (const f of fs.readdirSync(tokDir)) {
    const to = path.join(dir, f);
    if (!fs.existsSync(to)) fs.copyFileSync(path.join(tokDir, f), to);
  }
  return dir;
}

function counterFactRequests(n: number): EditCase[] {
  const file = path.join(shared, 'data', 'counterfact', 'counterfact-rome-format-1000.json');
  const { cases } = loadCases(file);
  const out: EditCase[] = [];
  while (out.length < n) out.push(...cases.slice(0, n - out.length).map((c, i) => ({ ...c, id: `${c.id}#${out.length + i}` })));
  return out;
}

interface ScenarioResult {
  scenario: string;
  n: number;
  layers: number[];
  seconds: number;
  timings: Record<string, number>;
  peakRssMiB: number;
  statsCached: boolean;
  /** sha256 over the patch's delta arrays (its metadata holds the date and timings): equal = the same edit, bit for bit. */
  deltasSha256: string;
  /** v* or z iterations summed over the requests (early stops make runs differ), and their mean final loss. */
  iterations: number;
  meanLoss: number;
}

/** One scenario in this process (for a clean peak RSS). */
async function runScenario(flags: Flags): Promise<void> {
  const method: EditMethod = choiceFlag(flags, 'scenario', ['rome', 'memit'] as const, 'rome');
  const n = intFlag(flags, 'n', 1);
  const dir = gpt2SmallWithTokenizer();
  const model = await CausalLM.load(dir);
  const reqs = counterFactRequests(n).map((c) => ({ prompt: c.prompt, subject: c.subject, targetNew: c.targetNew, targetTrue: c.targetTrue, id: c.id }));
  const corpus = strFlag(flags, 'corpus') ?? path.join(shared, 'data', 'wikitext', 'wikitext-2-raw-test.txt');
  const overrides: Record<string, unknown> = {
    mom2_dataset: corpus, mom2_n_samples: intFlag(flags, 'samples', 1000),
    ...(flags.has('steps') ? { v_num_grad_steps: intFlag(flags, 'steps', 20) } : {}),
    ...parseSets((strFlag(flags, 'set') ?? '').split(/\s+/).filter(Boolean)),
  };
  const t0 = performance.now();
  let statsCached = true;
  const { patch, report } = await editWithReport(model, reqs, {
    method, hparams: overrides, allowUnchanged: true,
    statsOptions: { onProgress: () => { statsCached = false; } },
    onProgress: (e) => { if (e.phase !== 'stats' && (e.done === e.total || e.done % 50 === 0)) log(`  ${e.phase} ${e.done}/${e.total}`); },
  });
  const seconds = (performance.now() - t0) / 1000;
  const opt = report.rome ? report.rome.reports.map((r) => r.vstar) : report.memit!.z;
  const result: ScenarioResult = {
    scenario: method, n, layers: report.hparams.hparams.layers, seconds, timings: report.timings,
    peakRssMiB: process.resourceUsage().maxRSS / 1024, statsCached, deltasSha256: deltasSha256(patch.deltas),
    iterations: opt.reduce((a, o) => a + o.iterations, 0), meanLoss: opt.reduce((a, o) => a + o.loss, 0) / opt.length,
  };
  console.log(JSON.stringify(result));
}

function deltasSha256(deltas: readonly TensorDelta[]): string {
  const h = createHash('sha256');
  for (const d of deltas) {
    h.update(`${d.name}\0`);
    for (const a of d.kind === 'low_rank' ? [d.U, d.V] : [d.delta]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}

function spawnScenario(args: string[]): ScenarioResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'run', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new BenchError(`scenario ${args.join(' ')} failed (exit ${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ScenarioResult;
}

async function timing(flags: Flags): Promise<void> {
  const memit = intListFlag(flags, 'memit', [100, 1000]);
  const romeN = intFlag(flags, 'rome', 1);
  const pass = ['samples', 'corpus', 'steps', 'set'].flatMap((k) => (flags.has(k) ? [`--${k}`, String(flags.get(k))] : []));
  const rows: ScenarioResult[] = [];
  // The first ROME run computes (and caches) the statistics; the second reads them.
  rows.push(spawnScenario(['--scenario', 'rome', '--n', '1', ...pass]));
  rows.push(spawnScenario(['--scenario', 'rome', '--n', String(romeN), ...pass]));
  for (const n of memit) rows.push(spawnScenario(['--scenario', 'memit', '--n', String(n), ...pass]));
  const m = machineInfo();
  const phases = ['statistics', 'templates', 'keys', 'v_optimisation', 'z_optimisation', 'solve', 'checks'];
  console.log(`\nGPT-2-small-shaped model (12 × 768, vocab 50257, seeded random weights), ${m.cpu}, ${m.cores} cores, node ${m.node}, load ${m.loadavg.map((x) => x.toFixed(1)).join('/')}\n`);
  console.log(`| run | edits | layers | total s | ${phases.join(' s | ')} s | peak RSS MiB |`);
  console.log(`| --- | --- | --- | --- | ${phases.map(() => '---').join(' | ')} | --- |`);
  for (const r of rows) {
    console.log(`| ${r.scenario}${r.statsCached ? '' : ' (stats computed)'} | ${r.n} | ${JSON.stringify(r.layers)} | ${r.seconds.toFixed(1)} | ${phases.map((p) => (r.timings[p] ?? 0).toFixed(2)).join(' | ')} | ${r.peakRssMiB.toFixed(0)} |`);
  }
}

helpIfAsked(process.argv.slice(2));
runBench(async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  const flags = parseFlags(rest, [], ['scenario', 'n', 'memit', 'rome', 'samples', 'corpus', 'steps', 'set']);
  if (cmd === 'run') await runScenario(flags);
  else if (cmd === 'timing' || cmd === undefined) await timing(flags);
  else throw new BenchError(`unknown bench command "${cmd}" (timing | run); the demo world's edit scores come from amend eval`);
});
