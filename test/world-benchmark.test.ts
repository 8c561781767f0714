// The CounterFact-format benchmark over the demo world, and writing the world's files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  WorldIndex,
  buildBenchmark,
  buildDemoWorld,
  factKey,
  fillTemplate,
  generateWorld,
  hashString,
  writeWorldFiles,
  type CounterFactRecord,
  type Fact,
} from '../src/world/index.js';
import { parsePrompt, validateBenchmark } from './world-validate.js';

const world = generateWorld(7);
const index = new WorldIndex(world);
const bench = buildBenchmark(world, { seed: 7 });

test('at least 500 cases at default sizes, deterministic', () => {
  assert.ok(bench.length >= 500, `only ${bench.length} cases`);
  assert.equal(JSON.stringify(buildBenchmark(world, { seed: 7 })), JSON.stringify(bench));
  assert.notEqual(JSON.stringify(buildBenchmark(world, { seed: 8 })), JSON.stringify(bench));
  // counts that are not whole numbers are refused, not cut or compared silently
  assert.throws(() => buildBenchmark(world, { seed: 7, n: 2.5 }), /buildBenchmark: n \(the number of cases\) must be an integer ≥ 0, got 2\.5/);
  assert.throws(() => buildBenchmark(world, { seed: 7, minNeighbours: 0 }), /buildBenchmark: minNeighbours must be an integer ≥ 1, got 0/);
  assert.equal(buildBenchmark(world, { seed: 7, n: 3 }).length, 3);
  assert.equal(buildBenchmark(world, { seed: 7, n: 50 }).length, 50);
  const rels = new Set(bench.map((r) => r.requested_rewrite.relation_id));
  for (const r of ['P19', 'P106', 'P108', 'P1303', 'P17', 'P159', 'P112']) assert.ok(rels.has(r), `no case edits ${r}`);
});

test('records have the original CounterFact shape', () => {
  const keys = ['case_id', 'requested_rewrite', 'paraphrase_prompts', 'neighborhood_prompts', 'attribute_prompts', 'generation_prompts'];
  const rwKeys = ['prompt', 'relation_id', 'subject', 'target_new', 'target_true'];
  const ref = '../shared/data/counterfact/counterfact-rome-format-1000.json';
  const refPath = [join(process.cwd(), ref), '/work/shared/data/counterfact/counterfact-rome-format-1000.json'].find((p) => existsSync(p));
  if (refPath) {
    const real = (JSON.parse(readFileSync(refPath, 'utf8')) as Record<string, unknown>[])[0]!;
    for (const k of keys) assert.ok(k in real, `reference lacks ${k}`);
    assert.deepEqual(Object.keys(real['requested_rewrite'] as object).sort(), rwKeys.slice().sort());
    assert.deepEqual(Object.keys((real['requested_rewrite'] as Record<string, object>)['target_new']!).sort(), ['id', 'str']);
  }
  for (const r of bench) {
    for (const k of keys) assert.ok(k in r, k);
    assert.deepEqual(Object.keys(r.requested_rewrite).sort(), rwKeys.slice().sort());
    assert.deepEqual(Object.keys(r.requested_rewrite.target_new).sort(), ['id', 'str']);
    assert.equal(r.requested_rewrite.prompt.split('{}').length, 2);
    for (const list of [r.paraphrase_prompts, r.neighborhood_prompts, r.attribute_prompts, r.generation_prompts]) {
      assert.ok(Array.isArray(list) && list.length > 0 && list.every((p) => typeof p === 'string' && !p.endsWith(' ')));
    }
    // Targets are stored without the leading space, as in CounterFact.
    assert.ok(!r.requested_rewrite.target_new.str.startsWith(' ') && !r.requested_rewrite.target_true.str.startsWith(' '));
  }
});

test('every case: target_new ≠ target_true, target_true is the world fact', () => {
  for (const r of bench) {
    const rw = r.requested_rewrite;
    assert.notEqual(rw.target_new.id, rw.target_true.id);
    assert.notEqual(rw.target_new.str, rw.target_true.str);
    const s = index.byName(rw.subject)!;
    assert.equal(index.object(s.id, rw.relation_id), rw.target_true.id);
    assert.equal(index.name(rw.target_true.id), rw.target_true.str);
    assert.equal(index.name(rw.target_new.id), rw.target_new.str);
    assert.equal(fillTemplate(rw.prompt, rw.subject).includes(rw.subject), true);
  }
});

test('neighbourhood subjects share the true object; attribute subjects have target_new', () => {
  let neighbourSubjects = 0;
  for (const r of bench) {
    const rel = index.relation(r.requested_rewrite.relation_id);
    const seen = new Set<string>();
    for (const p of r.neighborhood_prompts) {
      const parsed = parsePrompt(index, rel, p);
      assert.ok(parsed, p);
      assert.notEqual(parsed.subject.name, r.requested_rewrite.subject);
      assert.equal(index.object(parsed.subject.id, rel.id), r.requested_rewrite.target_true.id, p);
      seen.add(parsed.subject.id);
    }
    neighbourSubjects += seen.size;
    for (const p of r.attribute_prompts) {
      const parsed = parsePrompt(index, rel, p);
      assert.ok(parsed, p);
      assert.notEqual(parsed.subject.name, r.requested_rewrite.subject);
      assert.equal(index.object(parsed.subject.id, rel.id), r.requested_rewrite.target_new.id, p);
    }
    // paraphrases are the held-out phrasings
    const held = rel.phrasings.filter((p) => p.split === 'heldOut').map((p) => fillTemplate(p.template, r.requested_rewrite.subject));
    assert.deepEqual(r.paraphrase_prompts, held);
  }
  assert.ok(neighbourSubjects / bench.length >= 2, 'neighbourhoods should average two subjects or more');
});

/** Follows a path in the world with one fact replaced. */
function followEdited(start: string, path: string[], edit: Fact): string {
  let cur = start;
  for (const rel of path) {
    if (cur === edit.subject && rel === edit.relation) cur = edit.object;
    else cur = world.facts.find((f) => f.subject === cur && f.relation === rel)!.object;
  }
  return cur;
}

test('portability answers follow from the new fact and unedited facts', () => {
  let total = 0;
  let changed = 0;
  for (const r of bench) {
    const s = index.byName(r.requested_rewrite.subject)!;
    const edit: Fact = { subject: s.id, relation: r.requested_rewrite.relation_id, object: r.requested_rewrite.target_new.id };
    for (const q of r.portability) {
      total++;
      const start = index.byName(q.subject)!;
      assert.ok(q.prompt.includes(q.subject));
      assert.equal(q.relation_path[q.edit_hop], edit.relation);
      const after = followEdited(start.id, q.relation_path, edit);
      assert.equal(index.name(after), q.answer, q.prompt);
      const before = followEdited(start.id, q.relation_path, { subject: '', relation: '', object: '' });
      if (before !== after) changed++;
    }
    // A birthplace edit always asks for the country of the new birthplace.
    if (edit.relation === 'P19') {
      const q = r.portability.find((x) => x.relation_path.join() === 'P19,P17' && x.subject === r.requested_rewrite.subject);
      assert.ok(q, 'birthplace case without a country question');
      assert.equal(q.answer, index.name(index.object(edit.object, 'P17')!));
    }
  }
  assert.ok(total >= bench.length, `only ${total} portability questions`);
  assert.ok(changed / total > 0.8, 'most portability answers should change with the edit');
  assert.ok(bench.filter((r) => r.portability.length > 0).length / bench.length > 0.9);
});

test('locality answers are unedited world facts', () => {
  for (const r of bench) {
    assert.ok(r.locality.length > 0);
    for (const q of r.locality) {
      const rel = index.relation(q.relation_id);
      const parsed = parsePrompt(index, rel, q.prompt)!;
      assert.ok(parsed, q.prompt);
      assert.equal(index.name(index.object(parsed.subject.id, rel.id)!), q.answer);
      assert.ok(!(q.subject === r.requested_rewrite.subject && q.relation_id === r.requested_rewrite.relation_id));
    }
  }
});

test('full validation passes; disjoint: no prompt uses a fact another case edits', () => {
  assert.deepEqual(validateBenchmark(world, bench), []);
  const edited = new Set(bench.map((r) => `${index.byName(r.requested_rewrite.subject)!.id}|${r.requested_rewrite.relation_id}`));
  assert.equal(edited.size, bench.length, 'a fact is edited twice');
  const loose = buildBenchmark(world, { seed: 7, disjoint: false });
  assert.ok(loose.length >= bench.length);
  assert.deepEqual(validateBenchmark(world, loose, { disjoint: false }), []);
});

test('isKnown: only known facts are edited or used in prompts', () => {
  const isKnown = (f: Fact) => hashString(factKey(f)) % 5 !== 0; // drop ~20% of facts
  const b = buildBenchmark(world, { seed: 7, isKnown });
  assert.ok(b.length > 0);
  assert.deepEqual(validateBenchmark(world, b, { isKnown }), []);
  const none = buildBenchmark(world, { seed: 7, isKnown: () => false });
  assert.equal(none.length, 0);
});

test('validateBenchmark catches a broken record', () => {
  const broken: CounterFactRecord[] = JSON.parse(JSON.stringify(bench.slice(0, 3)));
  broken[0]!.requested_rewrite.target_new = { ...broken[0]!.requested_rewrite.target_true };
  broken[1]!.neighborhood_prompts = broken[1]!.attribute_prompts.slice();
  if (broken[2]!.portability[0]) broken[2]!.portability[0]!.answer = 'Nowhere';
  const problems = validateBenchmark(world, broken);
  assert.ok(problems.some((p) => p.startsWith('case 0') && p.includes('target_new equals target_true')));
  assert.ok(problems.some((p) => p.startsWith('case 1') && p.includes('neighborhood')));
});

test('writeWorldFiles writes the four files atomically; tokenizer loads from disk', async () => {
  const demo = buildDemoWorld({ seed: 7 });
  assert.equal(JSON.stringify(demo.world), JSON.stringify(world));
  const dir = await mkdtemp(join(tmpdir(), 'amend-world-'));
  try {
    await writeWorldFiles(dir, demo.world, demo.tokenizer, demo.benchmark, { corpus: demo.corpus });
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['benchmark.json', 'corpus-heldout.txt', 'corpus-train.txt', 'tokenizer.json', 'tokenizer_config.json', 'world.json']);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'world.json'), 'utf8')), demo.world);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'benchmark.json'), 'utf8')), demo.benchmark);
    const tj = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const tc = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    const tok = new Tokenizer(tj, tc);
    const line = demo.corpus.train[0]!;
    assert.equal(tok.decode(tok.encode(line).ids), line);
    const train = (await readFile(join(dir, 'corpus-train.txt'), 'utf8')).split('\n');
    assert.equal(train.length, demo.corpus.train.length + 1);
    // Rewriting replaces the files in place.
    await writeWorldFiles(dir, demo.world, demo.tokenizer, demo.benchmark.slice(0, 2));
    assert.equal((JSON.parse(await readFile(join(dir, 'benchmark.json'), 'utf8')) as unknown[]).length, 2);
    assert.ok(readdirSync(dir).every((f) => !f.includes('.tmp-')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('default seed: valid world and at least 500 cases', () => {
  const w = generateWorld();
  const b = buildBenchmark(w);
  assert.ok(b.length >= 500, `only ${b.length} cases`);
  assert.deepEqual(validateBenchmark(w, b), []);
});
