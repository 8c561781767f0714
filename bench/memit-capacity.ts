// How much of each edit MEMIT's closed-form solve can realise when a batch grows, on a demo world
// model (results in bench/RESULTS.md, section "Demo world: MEMIT's capacity").
//
//   node dist/bench/memit-capacity.js [--model DIR] [--data FILE] [--sizes 50,100,250,500] [--layer L] [--lambda X]
//
// (defaults: the MEMIT preset's last edited layer and its mom2_update_weight)
//
// MEMIT writes ΔW = R Kᵀ (λC + K Kᵀ)⁻¹ (memit/index.ts), so at the edit keys themselves the layer
// moves by ΔW K = R · G (I + G)⁻¹ with G = Kᵀ (λC)⁻¹ K (push-through identity). Along an
// eigenvector of G with eigenvalue g the solve realises g / (1 + g) of the residual: keys that
// stand apart from the others and from the corpus (large g) keep their edits, keys that the batch
// crowds into a few directions share them. This prints, for batches of the benchmark's first N
// cases, the distinct subjects and keys, the participation ratio (Σg)² / Σg² (how many directions
// the batch's keys really span) and the mean realised share tr(G (I + G)⁻¹) / N.
import path from 'node:path';
import { CausalLM, builtinWorldDir } from '../src/models/model.js';
import { resolveHparams } from '../src/editors/hparams.js';
import { keyIdentity, prepareRequests } from '../src/editors/common/prompts.js';
import { templateKeys } from '../src/editors/common/keys.js';
import { contextTemplates, templateSettings } from '../src/editors/common/templates.js';
import { secondMoments, solveCov, withRidge } from '../src/editors/common/stats.js';
import { loadCases } from '../src/data/index.js';
import { symEig } from '../src/linalg/index.js';
import { BenchError, intFlag, intListFlag, numFlag, parseFlags, runBench, strFlag } from './common.js';

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [], ['model', 'data', 'sizes', 'layer', 'lambda']);
  const given = strFlag(flags, 'model');
  const dir = given === undefined || given === 'world' ? builtinWorldDir() : path.resolve(given);
  const data = strFlag(flags, 'data') ?? path.join(dir, 'benchmark.json');
  const sizes = intListFlag(flags, 'sizes', [50, 100, 250, 500]);
  const layerFlag = intFlag(flags, 'layer', -1, 0);
  const model = await CausalLM.load(dir);
  const hp = resolveHparams('memit', model, {}).hparams;
  const layer = layerFlag >= 0 ? layerFlag : hp.layers[hp.layers.length - 1];
  const cases = loadCases(data, { limit: Math.max(...sizes) }).cases;
  const reqs = prepareRequests(model, cases, hp);
  const f = model.config.ffn;
  const keys = templateKeys(model, reqs, contextTemplates(model, templateSettings(hp)), layer, hp);
  let [sm] = await secondMoments(model, [layer], hp);
  if (hp.mom2_ridge) sm = withRidge(sm, hp.mom2_ridge);
  const lambdaFlag = strFlag(flags, 'lambda');
  const lambda = lambdaFlag === undefined ? hp.mom2_update_weight! : numFlag(flags, 'lambda', 0, Number.MIN_VALUE);
  if (!(lambda > 0)) throw new BenchError(`--lambda must be a positive number, got ${lambdaFlag}`);
  const whitened = reqs.map((_, i) => solveCov(sm, keys.subarray(i * f, (i + 1) * f))); // C⁻¹k
  console.log(`${dir}, layer ${layer} (${f} MLP units), λ ${lambda}, first cases of ${data}`);
  console.log('| edits | subjects | distinct keys | participation ratio | g > 1 | mean realised share |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const n of sizes) {
    if (n > reqs.length) throw new Error(`--sizes: ${n} is more than the ${reqs.length} cases in ${data}`);
    const G = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        const u = whitened[i], k = keys.subarray(j * f, (j + 1) * f);
        let s = 0;
        for (let t = 0; t < f; t++) s += u[t] * k[t];
        G[i * n + j] = G[j * n + i] = s / lambda;
      }
    }
    const g = Array.from(symEig(G, n).values).map((x) => Math.max(0, x));
    const sum = g.reduce((a, b) => a + b, 0), sum2 = g.reduce((a, b) => a + b * b, 0);
    const realised = g.reduce((a, b) => a + b / (1 + b), 0) / n;
    const distinct = new Set(reqs.slice(0, n).map((r) => keyIdentity(model.tok(), r, hp.fact_token))).size;
    const subjects = new Set(reqs.slice(0, n).map((r) => r.subject)).size;
    console.log(`| ${n} | ${subjects} | ${distinct} | ${(sum * sum / sum2).toFixed(1)} | ${g.filter((x) => x > 1).length} | ${realised.toFixed(3)} |`);
  }
}

runBench(main);
