// The demo world generator: determinism, sizes, names, phrasings, fact consistency, corpus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SIZES,
  Rng,
  WorldIndex,
  buildCorpus,
  factPrompts,
  fillTemplate,
  generateWorld,
  renderLine,
  REAL_WORD_KINDS,
  ORGANISATION_KINDS,
  organisationKind,
  type World,
} from '../src/world/index.js';
import { validateWorld } from './world-validate.js';

const world = generateWorld(7);

test('rng: mulberry32 streams are deterministic and label-separated', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextUint32()));
  // Known first outputs pin the algorithm (any change would silently change every world).
  const r = new Rng(1);
  assert.deepEqual([r.nextUint32(), r.nextUint32()], [2693262067, 11749833]);
  const s1 = Rng.stream(1, 'x').nextUint32();
  const s2 = Rng.stream(1, 'y').nextUint32();
  assert.notEqual(s1, s2);
  const rr = new Rng(3);
  for (let i = 0; i < 1000; i++) {
    const v = rr.int(7);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 7);
  }
  assert.throws(() => new Rng(Number.NaN));
});

test('same seed → identical world (deep equal and serialized bytes)', () => {
  const again = generateWorld(7);
  assert.deepEqual(again, world);
  assert.equal(JSON.stringify(again), JSON.stringify(world));
  // Round-trips through JSON unchanged (plain data only).
  assert.deepEqual(JSON.parse(JSON.stringify(world)) as World, world);
});

test('different seed → different world', () => {
  const other = generateWorld(8);
  assert.notEqual(JSON.stringify(other), JSON.stringify(world));
  const names = (w: World) => w.entities.person.map((e) => e.name).join(',');
  assert.notEqual(names(other), names(world));
});

test('default sizes meet the minimums', () => {
  assert.ok(DEFAULT_SIZES.people >= 200);
  assert.ok(DEFAULT_SIZES.cities >= 40);
  assert.ok(DEFAULT_SIZES.countries >= 12);
  assert.ok(DEFAULT_SIZES.organisations >= 25);
  assert.equal(world.entities.person.length, DEFAULT_SIZES.people);
  assert.equal(world.entities.city.length, DEFAULT_SIZES.cities);
  assert.equal(world.entities.country.length, DEFAULT_SIZES.countries);
  assert.equal(world.entities.organisation.length, DEFAULT_SIZES.organisations);
  assert.equal(world.entities.language.length, DEFAULT_SIZES.languages);
});

test('world invariants hold (kinds, completeness, capitals, templates)', () => {
  assert.deepEqual(validateWorld(world), []);
});

test('every relation has ≥4 phrasings: statements and questions, train and held-out', () => {
  const needed = ['P19', 'P106', 'P108', 'P1303', 'P17', 'P36', 'P37', 'P159', 'P112'];
  for (const id of needed) assert.ok(world.relations.some((r) => r.id === id), `relation ${id} missing`);
  for (const r of world.relations) {
    assert.ok(r.phrasings.length >= 4, r.id);
    const train = r.phrasings.filter((p) => p.split === 'train');
    const held = r.phrasings.filter((p) => p.split === 'heldOut');
    assert.ok(train.some((p) => p.kind === 'statement') && train.some((p) => p.kind === 'question'), r.id);
    assert.ok(held.length >= 1, r.id);
    for (const p of r.phrasings) {
      assert.equal(p.template.split('{}').length, 2, p.template);
      assert.doesNotMatch(p.template, /\s$/);
    }
    assert.equal(new Set(r.phrasings.map((p) => p.template)).size, r.phrasings.length, `${r.id} repeats a phrasing`);
  }
});

test('no duplicate names; invented words unique (given names shared by at most two people)', () => {
  const all = Object.values(world.entities).flat();
  const names = all.map((e) => e.name);
  assert.equal(new Set(names).size, names.length, 'duplicate entity name');
  const ids = all.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate entity id');

  const realWords = new Set(all.filter((e) => REAL_WORD_KINDS.includes(e.kind)).flatMap((e) => e.name.toLowerCase().split(' ')));
  const owners = new Map<string, string[]>();
  for (const e of all) {
    if (REAL_WORD_KINDS.includes(e.kind)) continue;
    const words = e.kind === 'organisation' ? [e.name.split(' ')[0]!] : e.name.split(' ');
    words.forEach((w, i) => {
      const key = w.toLowerCase();
      assert.ok(!realWords.has(key), `${w} collides with a real word`);
      const role = e.kind === 'person' && i === 0 ? 'given' : 'other';
      const list = owners.get(key) ?? [];
      list.push(`${role}:${e.id}`);
      owners.set(key, list);
    });
  }
  for (const [w, list] of owners) {
    if (list.length === 1) continue;
    assert.ok(list.every((x) => x.startsWith('given:')) && list.length <= 2, `word ${w} reused: ${list.join(', ')}`);
  }
  // No invented word is a prefix of another one.
  const words = [...owners.keys()].sort();
  for (let i = 0; i + 1 < words.length; i++) {
    assert.ok(!words[i + 1]!.startsWith(words[i]!), `${words[i]} is a prefix of ${words[i + 1]}`);
  }
  // Names are capitalised, letters only, not huge.
  for (const e of all) {
    if (REAL_WORD_KINDS.includes(e.kind)) continue;
    assert.match(e.name, /^[A-Z][a-z]+( [A-Z][a-z]+)?$/, e.name);
    assert.ok(e.name.length <= 22, e.name);
  }
});

test('organisations have distinct kind words while there are enough of them, then reuse them', () => {
  const kindOf = (w: World) => w.entities.organisation.map((e) => organisationKind(e.name));
  const kinds = kindOf(world);
  assert.equal(new Set(kinds).size, kinds.length, `a kind word is shared: ${kinds.join(', ')}`);
  for (const k of kinds) assert.ok(ORGANISATION_KINDS.includes(k), k);
  const many = kindOf(generateWorld(7, { organisations: ORGANISATION_KINDS.length + 4, people: 400, founders: 20, headquarterCities: 20 }));
  assert.equal(new Set(many).size, ORGANISATION_KINDS.length, 'every kind word is used before any repeats');
});

test('objects are spread: every object of a person relation has at least two subjects', () => {
  const index = new WorldIndex(world);
  for (const rel of ['P19', 'P106', 'P108', 'P1303', 'P17', 'P37', 'P159', 'P112']) {
    const objects = new Set(world.facts.filter((f) => f.relation === rel).map((f) => f.object));
    for (const o of objects) assert.ok(index.subjects(rel, o).length >= 2, `${rel} ${o}`);
  }
  // Founders are people, headquarters are cities.
  for (const f of world.facts.filter((x) => x.relation === 'P112')) assert.equal(index.entity(f.object).kind, 'person');
});

test('fact count is compact (a few thousand at most) and sizes scale', () => {
  assert.ok(world.facts.length > 1000 && world.facts.length < 3000, String(world.facts.length));
  const big = generateWorld(7, { people: 400, cities: 60, organisations: 40 });
  assert.equal(big.entities.person.length, 400);
  assert.deepEqual(validateWorld(big), []);
  const small = generateWorld(7, { people: 40, cities: 12, countries: 4, languages: 2, organisations: 8, founders: 3, headquarterCities: 3, professions: 6, instruments: 6 });
  assert.deepEqual(validateWorld(small), []);
  assert.throws(() => generateWorld(7, { people: 10 }), /invalid world sizes|must be/);
  for (const seed of [-1, 2 ** 32, 1.5]) {
    assert.throws(() => generateWorld(seed), new RegExp(`^AmendError: generateWorld: seed must be an integer from 0 to 4294967295, got ${String(seed).replace('.', '\\.')}$`, 'm'));
  }
  assert.throws(() => generateWorld(7, { languages: 7 }), /languages/);
});

test('factPrompts gives every phrasing, ending right before the object', () => {
  const f = world.facts[0]!;
  const ps = factPrompts(world, f);
  const index = new WorldIndex(world);
  assert.equal(ps.length, index.relation(f.relation).phrasings.length);
  for (const p of ps) {
    assert.ok(p.prompt.includes(index.name(f.subject)));
    assert.equal(p.target, index.name(f.object));
    assert.ok(!p.prompt.endsWith(' '));
  }
});

test('corpus: held-out phrasings never in train; questions and statements; deterministic', () => {
  const corpus = buildCorpus(world);
  const again = buildCorpus(world);
  assert.deepEqual(again, corpus);
  const index = new WorldIndex(world);
  const train = new Set(corpus.train);
  const held = new Set(corpus.heldOut);
  let nTrain = 0;
  let nHeld = 0;
  for (const f of world.facts) {
    for (const p of index.relation(f.relation).phrasings) {
      const line = renderLine(fillTemplate(p.template, index.name(f.subject)), index.name(f.object), p.kind);
      if (p.split === 'train') {
        assert.ok(train.has(line), line);
        assert.ok(!held.has(line), line);
        nTrain++;
      } else {
        assert.ok(held.has(line), line);
        assert.ok(!train.has(line), line);
        nHeld++;
      }
    }
  }
  assert.equal(corpus.train.length, nTrain);
  assert.equal(corpus.heldOut.length, nHeld);
  assert.ok(corpus.train.some((l) => l.startsWith('Q: ')));
  assert.ok(corpus.train.some((l) => l.endsWith('.')));
  const noQ = buildCorpus(world, { questions: false });
  assert.ok(noQ.train.every((l) => !l.startsWith('Q: ')));
  const withBios = buildCorpus(world, { bios: 1 });
  assert.ok(withBios.train.length > corpus.train.length);
  for (const l of [...corpus.train, ...corpus.heldOut]) assert.ok(!l.includes('\n') && !/ [.,?!]/.test(l), l);
});

// The optional person-valued relations: size key, relation, subject kind.
const OPTIONAL_RELATIONS = [
  { key: 'mayors', relation: 'P6', kind: 'city' },
  { key: 'namesakes', relation: 'P138', kind: 'city' },
  { key: 'chiefs', relation: 'P169', kind: 'organisation' },
] as const;

test('sizes.mayors / namesakes / chiefs each add one person-valued relation; 0, the world is as without it', () => {
  const none = { mayors: 0, namesakes: 0, chiefs: 0 };
  const base = generateWorld(7, none);
  for (const o of OPTIONAL_RELATIONS) {
    const subjects = base.entities[o.kind];
    const withIt = generateWorld(7, { ...none, [o.key]: subjects.length });
    const facts = withIt.facts.filter((f) => f.relation === o.relation);
    assert.equal(facts.length, subjects.length, o.key);
    assert.equal(new Set(facts.map((f) => f.object)).size, subjects.length, `${o.key}: a different person for each subject`);
    assert.deepEqual(facts.map((f) => f.subject), subjects.map((c) => c.id));
    assert.ok(facts.every((f) => f.object.startsWith('person')));
    const rel = withIt.relations.find((r) => r.id === o.relation)!;
    assert.equal(rel.subjectKind, o.kind);
    assert.ok(rel.phrasings.filter((p) => p.split === 'train').length >= 4 && rel.phrasings.some((p) => p.split === 'heldOut'));
    assert.deepEqual(validateWorld(withIt), []);
    // Every other fact, name and relation is unchanged: each relation draws on its own random stream.
    assert.deepEqual(withIt.facts.filter((f) => f.relation !== o.relation), base.facts);
    assert.deepEqual(withIt.entities, base.entities);
    assert.deepEqual(withIt.relations.filter((r) => r.id !== o.relation), base.relations);
    assert.equal(base.relations.some((r) => r.id === o.relation), false);
    assert.throws(() => generateWorld(7, { ...none, [o.key]: 5 }), new RegExp(`${o.key} must be 0 or the number of`));
  }
  // Together, each set of facts is the one it has alone.
  const all = generateWorld(7, { mayors: base.entities.city.length, namesakes: base.entities.city.length, chiefs: base.entities.organisation.length });
  for (const o of OPTIONAL_RELATIONS) {
    const alone = generateWorld(7, { ...none, [o.key]: base.entities[o.kind].length });
    assert.deepEqual(all.facts.filter((f) => f.relation === o.relation), alone.facts.filter((f) => f.relation === o.relation));
  }
  // Left out, each holds for every subject of its kind, also when cities / organisations are resized.
  assert.deepEqual(generateWorld(7), all);
  const resized = generateWorld(7, { people: 400, cities: 60, organisations: 40 });
  assert.equal(resized.facts.filter((f) => f.relation === 'P6').length, 60);
  assert.equal(resized.facts.filter((f) => f.relation === 'P169').length, 40);
  assert.throws(() => generateWorld(7, { mayor: 48 } as never), /unknown world size "mayor"/);
});
