// How far a rank-one edit of one subject's key reaches the keys of other subjects of a demo world
// model (results in bench/RESULTS.md, section "Demo world").
//
//   node dist/bench/key-overlap.js [--model DIR] [--layer 0]
//
// ROME writes W' = W + v uᵀ with u = C⁻¹k* / (k*ᵀC⁻¹k*), so another key k moves the layer's output
// by (k*ᵀC⁻¹k / k*ᵀC⁻¹k*) · v: that ratio is the share of the edit another subject receives. For
// each editable relation this prints its mean absolute value over pairs of subjects with the same
// object (the benchmark's neighbourhood prompts) and over pairs with different objects. Keys are
// read at the subject's last token of the relation's first training phrasing, as the editors do.
import fs from 'node:fs';
import path from 'node:path';
import { CausalLM, builtinWorldDir } from '../src/models/model.js';
import { hookPoint } from '../src/models/hooks.js';
import { resolveHparams } from '../src/editors/hparams.js';
import { prepareRequests } from '../src/editors/common/prompts.js';
import { promptActivations } from '../src/editors/common/keys.js';
import { secondMoments, solveCov } from '../src/editors/common/stats.js';
import { EDITABLE_RELATIONS } from '../src/world/phrasings.js';
import type { World } from '../src/world/types.js';
import { intFlag, parseFlags, runBench, strFlag } from './common.js';

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function mean(xs: number[]): string {
  return xs.length === 0 ? '–' : (xs.reduce((s, x) => s + x, 0) / xs.length).toFixed(3);
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), [], ['model', 'layer']);
  const given = strFlag(flags, 'model');
  const dir = given === undefined || given === 'world' ? builtinWorldDir() : path.resolve(given);
  const layer = intFlag(flags, 'layer', 0, 0);
  const model = await CausalLM.load(dir);
  const world = JSON.parse(fs.readFileSync(path.join(dir, 'world.json'), 'utf8')) as World;
  const names = new Map(Object.values(world.entities).flat().map((e) => [e.id, e.name]));
  const hp = resolveHparams('rome', model, { preset: 'world' }).hparams;
  const [sm] = await secondMoments(model, [layer], hp);
  const f = model.config.ffn;
  console.log(`${dir}, layer ${layer}: mean |share of an edit| received by another subject's key`);
  console.log('| relation | subjects | same object | different object |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const rel of world.relations.filter((r) => EDITABLE_RELATIONS.includes(r.id))) {
    const facts = world.facts.filter((x) => x.relation === rel.id);
    const template = rel.phrasings.find((p) => p.split === 'train')!.template;
    const reqs = prepareRequests(model, facts.map((x) => ({ subject: names.get(x.subject)!, prompt: template, targetNew: ' x' })), hp);
    const keys = promptActivations(model, reqs, [hookPoint.mlpKeys(layer)], hp).get(hookPoint.mlpKeys(layer))!;
    const k = facts.map((_, i) => keys.subarray(i * f, (i + 1) * f));
    const u = k.map((ki) => solveCov(sm, ki));
    const same: number[] = [], other: number[] = [];
    for (let i = 0; i < facts.length; i++) {
      const self = dot(k[i], u[i]);
      for (let j = 0; j < facts.length; j++) {
        if (i === j) continue;
        const share = Math.abs(dot(k[j], u[i]) / self);
        (facts[i].object === facts[j].object ? same : other).push(share);
      }
    }
    console.log(`| ${rel.id} ${rel.name} | ${facts.length} | ${mean(same)} | ${mean(other)} |`);
  }
}

runBench(main);
