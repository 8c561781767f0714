/**
 * Consistency checks for a world and for a benchmark built over it, the tests' oracle for the
 * generator and the benchmark builder. Both return a list of problems (empty when everything holds).
 */
import type { CounterFactRecord } from '../src/world/benchmark.js';
import { MULTI_HOP_TEMPLATES, fillTemplate } from '../src/world/phrasings.js';
import { WorldIndex, factKey } from '../src/world/query.js';
import type { Entity, Fact, Relation, World } from '../src/world/types.js';

export function validateWorld(world: World): string[] {
  const problems: string[] = [];
  let index: WorldIndex;
  try {
    index = new WorldIndex(world);
  } catch (err) {
    return [(err as Error).message];
  }
  if (world.format !== 'amend-demo-world' || world.version !== 1) problems.push('unknown world format/version');
  for (const [kind, list] of Object.entries(world.entities)) {
    for (const e of list) if (e.kind !== kind) problems.push(`${e.id} listed under ${kind} but has kind ${e.kind}`);
  }
  for (const r of world.relations) {
    if (r.phrasings.length < 4) problems.push(`${r.id} has fewer than 4 phrasings`);
    if (!r.phrasings.some((p) => p.kind === 'statement')) problems.push(`${r.id} has no statement phrasing`);
    if (!r.phrasings.some((p) => p.kind === 'question')) problems.push(`${r.id} has no question phrasing`);
    if (!r.phrasings.some((p) => p.split === 'train')) problems.push(`${r.id} has no training phrasing`);
    if (!r.phrasings.some((p) => p.split === 'heldOut')) problems.push(`${r.id} has no held-out phrasing`);
    for (const t of [...r.phrasings.map((p) => p.template), ...r.generation]) {
      if (t.split('{}').length !== 2) problems.push(`${r.id} template without exactly one "{}": ${t}`);
      if (/ [.,?!]/.test(t) || / '/.test(t)) problems.push(`${r.id} template has a space before punctuation: ${t}`);
      if (/\s$/.test(t)) problems.push(`${r.id} template ends with a space: ${t}`);
    }
  }
  for (const f of world.facts) {
    let rel: Relation;
    let s: Entity;
    let o: Entity;
    try {
      rel = index.relation(f.relation);
      s = index.entity(f.subject);
      o = index.entity(f.object);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    if (s.kind !== rel.subjectKind) problems.push(`${factKey(f)}: subject kind ${s.kind}, expected ${rel.subjectKind}`);
    if (o.kind !== rel.objectKind) problems.push(`${factKey(f)}: object kind ${o.kind}, expected ${rel.objectKind}`);
  }
  // Every subject of a relation's subject kind has that fact.
  for (const r of world.relations) {
    for (const e of world.entities[r.subjectKind]) {
      if (index.object(e.id, r.id) === undefined) problems.push(`${e.id} has no ${r.id} fact`);
    }
  }
  // A country's capital lies in that country.
  for (const k of world.entities.country) {
    const cap = index.object(k.id, 'P36');
    if (cap !== undefined && index.object(cap, 'P17') !== k.id) problems.push(`capital ${cap} of ${k.id} is not in ${k.id}`);
  }
  // Names: unique (checked by the index), no leading/trailing spaces, no name inside another as a word prefix.
  for (const list of Object.values(world.entities)) {
    for (const e of list) if (e.name !== e.name.trim() || e.name.length === 0) problems.push(`bad name ${JSON.stringify(e.name)}`);
  }
  return problems;
}

/** Finds which (subject, template) of `rel` produced `prompt`, if any. */
export function parsePrompt(index: WorldIndex, rel: Relation, prompt: string): { subject: Entity; template: string } | undefined {
  for (const p of rel.phrasings) {
    const [pre, post] = p.template.split('{}') as [string, string];
    if (prompt.length <= pre.length + post.length || !prompt.startsWith(pre) || !prompt.endsWith(post)) continue;
    const name = prompt.slice(pre.length, prompt.length - post.length);
    const e = index.byName(name);
    if (e && e.kind === rel.subjectKind) return { subject: e, template: p.template };
  }
  return undefined;
}

export interface ValidateBenchmarkOptions {
  isKnown?: (fact: Fact) => boolean;
  /** Also check that no prompt relies on a fact that some case edits (true for buildBenchmark's default). */
  disjoint?: boolean;
}

export function validateBenchmark(world: World, records: readonly CounterFactRecord[], opts: ValidateBenchmarkOptions = {}): string[] {
  const problems: string[] = [];
  const index = new WorldIndex(world);
  const isKnown = opts.isKnown ?? (() => true);
  const disjoint = opts.disjoint ?? true;
  const edited = new Set<string>();
  for (const r of records) {
    const s = index.byName(r.requested_rewrite.subject);
    if (s) edited.add(`${s.id}|${r.requested_rewrite.relation_id}`);
  }
  const checkUsed = (where: string, f: Fact, self: string) => {
    if (!isKnown(f)) problems.push(`${where}: uses unknown fact ${factKey(f)}`);
    const key = factKey(f);
    if (disjoint && key !== self && edited.has(key)) problems.push(`${where}: uses fact ${key} that another case edits`);
  };

  records.forEach((rec, i) => {
    const where = `case ${rec.case_id}`;
    if (rec.case_id !== i) problems.push(`${where}: case_id out of order (index ${i})`);
    const rw = rec.requested_rewrite;
    let rel: Relation;
    try {
      rel = index.relation(rw.relation_id);
    } catch {
      problems.push(`${where}: unknown relation ${rw.relation_id}`);
      return;
    }
    const s = index.byName(rw.subject);
    if (!s || s.kind !== rel.subjectKind) {
      problems.push(`${where}: subject ${rw.subject} is not a ${rel.subjectKind}`);
      return;
    }
    const self = `${s.id}|${rel.id}`;
    const trueFact = index.fact(s.id, rel.id);
    if (!trueFact) {
      problems.push(`${where}: no fact ${self}`);
      return;
    }
    if (!isKnown(trueFact)) problems.push(`${where}: edits an unknown fact`);
    if (rw.prompt.split('{}').length !== 2) problems.push(`${where}: prompt must contain "{}" once`);
    if (!rel.phrasings.some((p) => p.template === rw.prompt && p.split === 'train')) problems.push(`${where}: prompt is not a training phrasing`);
    if (rw.target_true.id !== trueFact.object) problems.push(`${where}: target_true is not the world's object`);
    if (rw.target_new.id === rw.target_true.id || rw.target_new.str === rw.target_true.str) problems.push(`${where}: target_new equals target_true`);
    for (const t of [rw.target_new, rw.target_true]) {
      let e: Entity | undefined;
      try {
        e = index.entity(t.id);
      } catch {
        e = undefined;
      }
      if (!e || e.name !== t.str || e.kind !== rel.objectKind) problems.push(`${where}: target ${JSON.stringify(t)} does not match a ${rel.objectKind}`);
      if (t.str !== t.str.trim()) problems.push(`${where}: target ${JSON.stringify(t.str)} has surrounding spaces`);
    }
    const edit: Fact = { subject: s.id, relation: rel.id, object: rw.target_new.id };

    const heldOut = rel.phrasings.filter((p) => p.split === 'heldOut').map((p) => fillTemplate(p.template, s.name));
    for (const p of rec.paraphrase_prompts) if (!heldOut.includes(p)) problems.push(`${where}: paraphrase is not a held-out phrasing: ${p}`);
    if (rec.paraphrase_prompts.length === 0) problems.push(`${where}: no paraphrase prompts`);

    const checkSameRelation = (kind: string, prompts: readonly string[], object: string) => {
      if (prompts.length === 0) problems.push(`${where}: no ${kind} prompts`);
      if (new Set(prompts).size !== prompts.length) problems.push(`${where}: duplicate ${kind} prompts`);
      for (const p of prompts) {
        const parsed = parsePrompt(index, rel, p);
        if (!parsed) {
          problems.push(`${where}: ${kind} prompt not parseable: ${p}`);
          continue;
        }
        if (parsed.subject.id === s.id) problems.push(`${where}: ${kind} prompt about the edited subject`);
        const f = index.fact(parsed.subject.id, rel.id)!;
        if (f.object !== object) problems.push(`${where}: ${kind} subject ${parsed.subject.name} has object ${f.object}, expected ${object}`);
        checkUsed(`${where} ${kind}`, f, self);
      }
    };
    checkSameRelation('neighborhood', rec.neighborhood_prompts, rw.target_true.id);
    checkSameRelation('attribute', rec.attribute_prompts, rw.target_new.id);
    for (const g of rec.generation_prompts) if (!g.includes(s.name)) problems.push(`${where}: generation prompt without the subject`);

    for (const q of rec.portability) {
      const start = index.byName(q.subject);
      const tpl = MULTI_HOP_TEMPLATES.find((t) => t.path.join('>') === q.relation_path.join('>'));
      if (!start || !tpl) {
        problems.push(`${where}: portability question with unknown subject or path`);
        continue;
      }
      if (fillTemplate(tpl.template, start.name) !== q.prompt) problems.push(`${where}: portability prompt does not match its template`);
      if (q.relation_path[q.edit_hop] !== rel.id) problems.push(`${where}: portability edit_hop does not point at the edited relation`);
      const res = index.follow(start.id, q.relation_path, edit);
      if (res.end === undefined || index.name(res.end) !== q.answer) problems.push(`${where}: portability answer ${q.answer} does not follow from the edit`);
      if (!res.used.includes(edit)) problems.push(`${where}: portability question does not depend on the edit`);
      for (const f of res.used) if (f !== edit) checkUsed(`${where} portability`, f, self);
    }

    for (const q of rec.locality) {
      const lrel = index.relation(q.relation_id);
      const parsed = parsePrompt(index, lrel, q.prompt);
      if (!parsed || parsed.subject.name !== q.subject) {
        problems.push(`${where}: locality prompt not parseable: ${q.prompt}`);
        continue;
      }
      const f = index.fact(parsed.subject.id, lrel.id)!;
      if (factKey(f) === self) problems.push(`${where}: locality question asks the edited fact`);
      if (index.name(f.object) !== q.answer) problems.push(`${where}: locality answer ${q.answer} is not the world's object`);
      checkUsed(`${where} locality`, f, self);
    }
  });
  return problems;
}
