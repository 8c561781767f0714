// Benchmark loaders: every public file in ../shared/data, the demo world benchmark, format
// detection from content, and one-line errors for bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { DATASET_FORMATS, caseRequests, detectFormat, loadCases, parseCases, type DatasetFormat } from '../src/data/index.js';
import { buildBenchmark, generateWorld } from '../src/world/index.js';
import { collectGarbage, sharedDir, warningsOf } from './helpers.js';

const DATA = sharedDir('data');
const skip = DATA ? false : '../shared/data is absent';

// file → [format, cases, records in the file]
const EXPECTED: Record<string, [DatasetFormat, number, number]> = {
  'counterfact/counterfact-rome-format-1000.json': ['counterfact', 1000, 1000],
  'counterfact/counterfact-edit-1k.json': ['counterfact-easyedit', 1000, 1000],
  'zsre/zsre_mend_train-1k.json': ['zsre-mend', 998, 1000],
  'wise/zsre_mend_edit_portability.json': ['wise-zsre-portability', 1037, 1037],
  'knowedit/benchmark_ZsRE_ZsRE-test-all.json': ['knowedit-zsre', 1304, 1304],
  'knowedit/benchmark_wiki_counterfact_train_cf.json': ['knowedit-wiki-counterfact', 1428, 1428],
  'knowedit/benchmark_wiki_recent_recent_train.json': ['knowedit-wiki-recent', 570, 570],
  'knowedit/benchmark_WikiBio_wikibio-test-all.json': ['knowedit-wikibio', 306, 306],
  'knowedit/benchmark_WikiBio_wikibio-train-all.json': ['knowedit-wikibio', 464, 464],
  'knowedit/benchmark_Convsent_blender_test.json': ['knowedit-convsent', 800, 800],
  'knowedit/benchmark_Convsent_blender_val.json': ['knowedit-convsent', 799, 799],
  'knowedit/benchmark_trivia_trivia_qa_test.json': ['knowedit-sanitation', 80, 80],
  'knowedit/benchmark_trivia_trivia_qa_train.json': ['knowedit-sanitation', 80, 80],
  'mquake/MQuAKE-hard.json': ['mquake', 429, 429],
  'rome/known_1000.json': ['rome-knowns', 1209, 1209],
  'evedit/QA.json': ['evedit', 500, 500],
  'evedit/Completion.json': ['evedit', 500, 500],
};

test('every benchmark file in ../shared/data loads, with its format detected from the content', { skip }, () => {
  const seen = new Set<string>();
  for (const sub of fs.readdirSync(DATA!)) {
    const dir = path.join(DATA!, sub);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      const rel = `${sub}/${f}`;
      const want = EXPECTED[rel];
      assert.ok(want, `${rel} is not in the expected list — add it`);
      const r = loadCases(path.join(dir, f));
      assert.equal(r.format, want[0], rel);
      assert.equal(r.cases.length, want[1], `${rel}: cases`);
      assert.equal(r.total, want[2], `${rel}: records`);
      for (const c of r.cases) {
        for (const req of caseRequests(c)) {
          assert.equal(typeof req.prompt, 'string');
          assert.ok(req.targetNew.trim() !== '', `${rel}: empty target`);
        }
        for (const pa of [...(c.locality ?? []), ...(c.portability ?? [])]) assert.ok(pa.prompt !== '' && pa.answer.trim() !== '', `${rel}: empty pair`);
      }
      seen.add(rel);
    }
  }
  for (const rel of Object.keys(EXPECTED)) assert.ok(seen.has(rel), `${rel} was expected in ../shared/data`);
});

test('the same file under another name is detected the same way (never from the file name)', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  try {
    const copy = path.join(dir, 'counterfact.json'); // a misleading name
    fs.copyFileSync(path.join(DATA!, 'mquake/MQuAKE-hard.json'), copy);
    assert.equal(loadCases(copy, { limit: 3 }).format, 'mquake');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CounterFact (original): fields, ids, neighbourhood as locality with the true object', { skip }, () => {
  const { cases } = loadCases(path.join(DATA!, 'counterfact/counterfact-rome-format-1000.json'), { limit: 2 });
  assert.equal(cases.length, 2);
  const c = cases[0]!;
  assert.deepEqual(
    { prompt: c.prompt, subject: c.subject, targetNew: c.targetNew, targetTrue: c.targetTrue, id: c.id, rel: c.relationId, nid: c.targetNewId },
    { prompt: '{}, developed by', subject: 'Ferrari F40', targetNew: 'Microsoft', targetTrue: 'Ferrari', id: 13, rel: 'P176', nid: 'Q2283' },
  );
  assert.equal(c.rephrase!.length, 2);
  assert.equal(c.neighborhood!.length, 10);
  assert.equal(c.attributePrompts!.length, 10);
  assert.equal(c.generationPrompts!.length, 10);
  assert.deepEqual(c.locality![0], { prompt: c.neighborhood![0], answer: 'Ferrari' });
});

test('CounterFact with a portability object (EasyEdit counterfact_portability_gpt4.json) keeps its one-hop question', () => {
  const rec = { case_id: 7, requested_rewrite: { prompt: '{} is in', subject: 'X', target_new: { str: 'A' }, target_true: { str: 'B' } }, paraphrase_prompts: [], neighborhood_prompts: [] };
  const withPort = { ...rec, portability: { 'New Question': 'What is the capital of the country X is in?', 'New Answer': 'Acity' } };
  const r = parseCases([withPort, { ...rec, case_id: 8 }]);
  assert.equal(r.format, 'counterfact');
  assert.deepEqual(r.cases[0]!.portability, [{ prompt: 'What is the capital of the country X is in?', answer: 'Acity' }]);
  assert.equal(r.cases[1]!.portability, undefined);
  assert.throws(() => parseCases([{ ...rec, portability: { 'New Question': 'q?' } }]), /record 1 \(index 0, counterfact\) has no "portability\.New Answer" field/);
});

test('CounterFact (EasyEdit layout): a locality prompt with the true object is also the neighbourhood prompt', { skip }, () => {
  const { cases } = loadCases(path.join(DATA!, 'counterfact/counterfact-edit-1k.json'), { limit: 50 });
  assert.deepEqual([cases[0]!.prompt, cases[0]!.targetTrue, cases[0]!.rephrase], ['David Robinson professionally plays the sport', 'basketball', ["David Robinson's greatest weakness is"]]);
  for (const c of cases) {
    assert.equal(c.locality!.length, 1);
    if (c.locality![0]!.answer.trim() === c.targetTrue?.trim()) assert.deepEqual(c.neighborhood, [c.locality![0]!.prompt]);
    else assert.equal(c.neighborhood, undefined);
  }
  assert.ok(cases.some((c) => c.neighborhood), 'the shared file pairs locality with the true object');
});

test('KnowEdit ConvSent: the topic\'s sentences by target sentiment, the next case\'s topic as outer, the last wrapping to the first', { skip }, () => {
  const file = path.join(DATA!, 'knowedit/benchmark_Convsent_blender_test.json');
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { ent: string; pos: string[]; neg: string[] }[];
  const trimmed = (r: { pos: string[]; neg: string[] }) => [...r.pos, ...r.neg].map((x) => x.trim()).filter((x) => x !== '');
  const three = loadCases(file, { limit: 3 }).cases;
  three.forEach((c, i) => {
    const s = c.sentiment!;
    const rec = raw[i]!;
    const positive = c.prompt.endsWith('positively.');
    assert.deepEqual(s.same, (positive ? rec.pos : rec.neg).map((x) => x.trim()));
    assert.deepEqual(s.other, (positive ? rec.neg : rec.pos).map((x) => x.trim()));
    assert.equal(c.targetNew, s.same[0]);
    assert.ok(s.question.includes(rec.ent) && s.question.endsWith('?'));
    assert.deepEqual(c.generationPrompts, [s.question], 'fluency samples continue the question about the topic');
    // the next record's topic, every sentence of it; the third (last loaded) wraps to the first
    const next = raw[(i + 1) % 3]!;
    assert.equal(s.outer!.topic, next.ent);
    assert.deepEqual(s.outer!.sentences, trimmed(next));
    assert.ok(s.outer!.question.includes(next.ent));
  });
  assert.equal(three[2]!.sentiment!.outer!.topic, raw[0]!.ent);
  // the whole file: record 2's outer is record 3's topic, the last record's the first's
  const all = loadCases(file).cases;
  assert.equal(all[2]!.sentiment!.outer!.topic, raw[3]!.ent);
  assert.deepEqual(all[799]!.sentiment!.outer!.sentences, trimmed(raw[0]!));
  assert.deepEqual(all.slice(0, 2), three.slice(0, 2), 'only the last case of --n N differs from a full load');
  // parsed in memory as read from the file; a skipped record is no one's outer topic
  assert.deepEqual(parseCases(raw.slice(0, 3)).cases, three);
  const gap = parseCases([raw[0], { ent: 'Nothing', pos: [' '], neg: [] }, raw[2]]);
  assert.deepEqual(gap.skipped.map((x) => x.index), [1]);
  assert.equal(gap.cases[0]!.sentiment!.outer!.topic, raw[2]!.ent);
});

test('KnowEdit: sub-keys as groups, first answer of alias lists, empty answers dropped', { skip }, () => {
  const recent = loadCases(path.join(DATA!, 'knowedit/benchmark_wiki_recent_recent_train.json'), { limit: 1 }).cases[0]!;
  assert.equal(recent.targetTrue, undefined);
  const cit = recent.localityGroups!['Relation_Specificity']![1]!;
  assert.equal(cit.answer, 'Soviet Union');
  assert.ok(cit.aliases!.includes('USSR'));
  const zsre = loadCases(path.join(DATA!, 'knowedit/benchmark_ZsRE_ZsRE-test-all.json'), { limit: 1 }).cases[0]!;
  assert.equal(zsre.targetTrue, 'Aspidoceratidae');
  assert.deepEqual(zsre.rephrase, ['What family are Epaspidoceras?']);
  assert.deepEqual(Object.keys(zsre.portabilityGroups!), ['Reasoning']);
  assert.deepEqual(zsre.localityGroups!['Relation_Specificity']![0], { prompt: 'The taxon rank of Epaspidoceras is', answer: 'genus' });
  assert.deepEqual(zsre.locality, Object.values(zsre.localityGroups!).flat());
  const cf = loadCases(path.join(DATA!, 'knowedit/benchmark_wiki_counterfact_train_cf.json'), { limit: 1 }).cases[0]!;
  assert.deepEqual(Object.keys(cf.portabilityGroups!).sort(), ['Reasoning', 'Subject_Aliasing']);
  const bio = loadCases(path.join(DATA!, 'knowedit/benchmark_WikiBio_wikibio-test-all.json'), { limit: 1 }).cases[0]!;
  assert.equal(bio.subject, 'john russell reynolds');
  assert.ok(bio.prompt.startsWith('This is a Wikipedia passage about john russell reynolds.'));
  const conv = loadCases(path.join(DATA!, 'knowedit/benchmark_Convsent_blender_test.json'), { limit: 5 });
  const again = loadCases(path.join(DATA!, 'knowedit/benchmark_Convsent_blender_test.json'), { limit: 5 });
  assert.deepEqual(conv.cases, again.cases, 'ConvSent choices are deterministic');
  for (const c of conv.cases) assert.ok(c.prompt.includes(c.subject) && /positively|negatively/.test(c.prompt));
  const san = loadCases(path.join(DATA!, 'knowedit/benchmark_trivia_trivia_qa_test.json'));
  const locs = san.cases.reduce((a, c) => a + (c.locality?.length ?? 0), 0);
  assert.equal(locs, 453, 'every retain question is a locality pair of some case');
  assert.equal(san.cases[0]!.targetNew, "I don't know.");
  // Answers written as numbers count as their text; a rephrase of the wrong type is named.
  const rec = JSON.parse(fs.readFileSync(path.join(DATA!, 'knowedit/benchmark_ZsRE_ZsRE-test-all.json'), 'utf8'))[0];
  const numeric = parseCases([{ ...rec, ground_truth: 1998, portability: { Reasoning: [{ prompt: 'p?', ground_truth: [[42]] }] } }], { format: 'knowedit-zsre' }).cases[0]!;
  assert.equal(numeric.targetTrue, '1998');
  assert.equal(numeric.portabilityGroups!['Reasoning']![0]!.answer, '42');
  // A list of prompts with a list of as many answers pairs them in order; one answer list for one prompt is its aliases.
  const paired = parseCases([{ ...rec, locality: { Relation_Specificity: [{ prompt: ['a?', 'b?'], ground_truth: [['A'], ['B', 'Bee']] }, { prompt: 'c?', ground_truth: ['C', 'Cee'] }] } }], { format: 'knowedit-zsre' }).cases[0]!;
  assert.deepEqual(paired.localityGroups!['Relation_Specificity']!.map((x) => [x.prompt, x.answer]), [['a?', 'A'], ['b?', 'B'], ['c?', 'C']]);
  assert.throws(() => parseCases([{ ...rec, rephrase_prompt: 5 }], { format: 'knowedit-zsre' }), /field "rephrase_prompt" should be a string or a list of strings, not 5/);
});

test('zsRE (MEND) and WISE: alt is the target, records without alt are skipped with a reason', { skip }, () => {
  const z = loadCases(path.join(DATA!, 'zsre/zsre_mend_train-1k.json'));
  assert.equal(z.skipped.length, 2);
  assert.match(z.skipped[0]!.reason, /alt/);
  const c = z.cases[0]!;
  assert.deepEqual({ p: c.prompt, t: c.targetNew, g: c.targetTrue }, { p: 'What is the product made by UniFirst?', t: 'unmanned aircraft', g: 'uniform' });
  assert.deepEqual(c.rephrase, ['What will be the product of UniFirst?']);
  assert.deepEqual(c.locality, [{ prompt: "nq question: john goodman's character in the big lebowski", answer: 'Walter Sobchak' }]);
  const w = loadCases(path.join(DATA!, 'wise/zsre_mend_edit_portability.json'), { limit: 1 }).cases[0]!;
  assert.equal(w.portability![0]!.answer, 'Athletics');
});

test('MQuAKE: one multi-edit case per record, multi-hop questions with the new answer', { skip }, () => {
  const { cases } = loadCases(path.join(DATA!, 'mquake/MQuAKE-hard.json'), { limit: 1 });
  const c = cases[0]!;
  assert.equal(c.edits!.length, 4);
  assert.equal(caseRequests(c).length, 4);
  assert.deepEqual({ p: c.prompt, s: c.subject, n: c.targetNew, t: c.targetTrue }, { p: '{} was performed by', s: 'Hey Jude', n: 'Madonna', t: 'The Beatles' });
  assert.deepEqual(c.edits![1]!.rephrase, ['Who is the director of Madonna?']);
  const mh = c.portabilityGroups!['multi_hop']!;
  assert.equal(mh.length, 3);
  assert.equal(mh[0]!.answer, 'Arabic');
  assert.equal(caseRequests({ prompt: 'p', subject: 's', targetNew: 't' }).length, 1);
});

test('EvEdit: completion prompts give their trailing space to the answer', { skip }, () => {
  const c = loadCases(path.join(DATA!, 'evedit/Completion.json'), { limit: 1 }).cases[0]!;
  assert.equal(c.prompt, 'The instrument that Toko Yasuda played until 2023 is the');
  assert.equal(c.targetNew, ' violin.');
  assert.equal(c.subject, '');
  assert.equal(c.portability!.length, 5);
});

test('the demo world benchmark loads as amend-world (in memory and from a file)', () => {
  const world = generateWorld(3);
  const records = buildBenchmark(world, { seed: 3, n: 12 });
  const r = parseCases(records);
  assert.equal(r.format, 'amend-world');
  assert.equal(r.cases.length, 12);
  for (const [c, rec] of r.cases.map((c, i) => [c, records[i]!] as const)) {
    assert.equal(c.targetNew, rec.requested_rewrite.target_new.str);
    assert.equal(c.prompt, rec.requested_rewrite.prompt);
    const port = c.portability ?? [];
    assert.equal(port.length, rec.portability.length);
    assert.deepEqual(new Set(port.map((p) => p.prompt)), new Set(rec.portability.map((p) => p.prompt)));
    assert.equal(c.localityGroups?.['other_facts']?.length ?? 0, rec.locality.length);
    assert.equal(c.localityGroups?.['neighborhood']?.length ?? 0, rec.neighborhood_prompts.length);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  try {
    const file = path.join(dir, 'bench.json');
    fs.writeFileSync(file, JSON.stringify(records));
    assert.deepEqual(loadCases(file).cases, r.cases);
    // JSON Lines works too
    const jsonl = path.join(dir, 'bench.jsonl');
    fs.writeFileSync(jsonl, records.map((x) => JSON.stringify(x)).join('\n') + '\n');
    assert.deepEqual(loadCases(jsonl).cases, r.cases);
    // and Amend's own EditCase records round-trip
    const own = path.join(dir, 'cases.json');
    fs.writeFileSync(own, JSON.stringify(r.cases));
    const back = loadCases(own);
    assert.equal(back.format, 'amend-cases');
    assert.deepEqual(back.cases, r.cases);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("Amend's own records round-trip multi-edit cases (MQuAKE) and sentiment probes (ConvSent), nested fields named in errors", { skip: DATA ? false : 'no ../shared/data' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-own-'));
  try {
    for (const file of ['mquake/MQuAKE-hard.json', 'knowedit/benchmark_Convsent_blender_test.json']) {
      const cases = loadCases(path.join(DATA!, file), { limit: 5 }).cases;
      assert.ok(cases.some((c) => (c.edits?.length ?? 0) > 1 || c.sentiment?.outer), `${file}: the test needs nested fields`);
      const own = path.join(dir, 'cases.json');
      fs.writeFileSync(own, JSON.stringify(cases));
      const back = loadCases(own);
      assert.equal(back.format, 'amend-cases');
      assert.deepEqual(back.cases, cases, file);
    }
    const bad = [{ prompt: '{} is in', subject: 'Paris', targetNew: 'Italy', edits: [{ prompt: '{} is in', subject: 'Paris', targetNew: 'Italy' }, { prompt: '{} x', subject: 'Rome' }] }];
    assert.throws(() => parseCases(bad), /record 1 \(index 0, amend-cases\) has no "edits\.1\.targetNew" field/);
    const noSame = [{ prompt: '{} is in', subject: 'Paris', targetNew: 'Italy', sentiment: { question: 'What of Paris?' } }];
    assert.throws(() => parseCases(noSame), /has no "sentiment\.same" field/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('limit keeps the first cases; a forced format is checked', () => {
  const recs = [0, 1, 2].map((i) => ({ prompt: `p${i} {}`, subject: 's', targetNew: 't' }));
  assert.equal(parseCases(recs, { limit: 2 }).cases.length, 2);
  assert.equal(parseCases(recs, { limit: 0 }).cases.length, 0);
  assert.throws(() => parseCases(recs, { format: 'mquake' }), (e: Error) => e instanceof AmendError && /record 1 \(index 0, mquake\) has no "requested_rewrite" field/.test(e.message));
  assert.throws(() => parseCases(recs, { format: 'nonsense' as DatasetFormat }), /unknown benchmark format "nonsense"; known formats: .*counterfact/);
});

test('one record on its own loads the same with its detected format forced (in memory and from a file)', () => {
  const one = { prompt: '{} plays', subject: 'Messi', targetNew: ' golf' };
  const detected = parseCases(one);
  assert.equal(detected.format, 'amend-cases');
  assert.deepEqual(parseCases(one, { format: 'amend-cases' }), detected);
  assert.throws(() => parseCases(one, { format: 'knowedit-sanitation' }), /knowedit-sanitation needs a "success" and a "locality" list/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-one-'));
  try {
    const file = path.join(dir, 'one.json');
    fs.writeFileSync(file, JSON.stringify(one));
    assert.deepEqual(loadCases(file, { format: 'amend-cases' }), loadCases(file));
    assert.deepEqual(loadCases(file, { format: 'amend-cases' }).cases, detected.cases);
    assert.throws(() => loadCases(file, { format: 'mquake' }), /record 1 \(index 0, mquake\) has no "requested_rewrite" field/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('answers of a type that would be lost, and MQuAKE cases without questions, are refused by name', () => {
  const ke = { subject: 'Paris', prompt: 'Paris is the capital of', target_new: 'Italy', ground_truth: ['France'] };
  assert.equal(parseCases([ke], { format: 'knowedit-wiki-counterfact' }).cases[0]!.targetTrue, 'France');
  assert.throws(() => parseCases([ke, { ...ke, ground_truth: { a: 1 } }], { format: 'knowedit-wiki-counterfact' }),
    /record 2 \(index 1, knowedit-wiki-counterfact\) field "ground_truth" should be a string or a list of strings, not \{"a":1\}/);
  // Lists nested past any real file's depth are refused, not walked until the call stack runs out.
  let deep: unknown = 'France';
  for (let d = 0; d < 20000; d++) deep = [deep];
  assert.throws(() => parseCases([ke, { ...ke, ground_truth: deep as string[] }], { format: 'knowedit-wiki-counterfact' }),
    (e: unknown) => e instanceof AmendError && /record 2 \(index 1, knowedit-wiki-counterfact\) field "ground_truth" nests lists more than 16 deep/.test(e.message));
  assert.deepEqual(parseCases([{ ...ke, ground_truth: [[[['France']]]] }], { format: 'knowedit-wiki-counterfact' }).cases[0]!.targetTrue, 'France');
  const nested = { ...ke, portability: { reasoning: [{ prompt: 'The capital of Italy is', ground_truth: [[true]] }] } };
  assert.throws(() => parseCases([nested], { format: 'knowedit-wiki-counterfact' }), /field "portability\.reasoning\.0\.ground_truth" should be a string or a list of strings, not true/);
  const edit = { prompt: '{} is a citizen of', subject: 'Ann', target_new: { str: 'Peru' }, target_true: { str: 'Chile' }, question: 'Which country is Ann a citizen of?' };
  const mq = { case_id: 1, requested_rewrite: [edit], questions: ['Where does Ann come from?'], answer: 'Chile', new_answer: 'Peru' };
  assert.equal(parseCases([mq], { format: 'mquake' }).cases[0]!.edits!.length, 1);
  assert.throws(() => parseCases([mq, { ...mq, questions: [] }], { format: 'mquake' }), /record 2 \(index 1, mquake\) field "questions" is empty/);
});

function oneLineError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof AmendError, `not an AmendError: ${e}`);
    assert.ok(!e.message.includes('\n'), `not one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('bad input gives one clear line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  const write = (name: string, text: string | Buffer) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  try {
    // unknown format: the error lists every known format
    const unknown = write('u.json', JSON.stringify([{ question: 'q', reply: 'a' }]));
    oneLineError(() => loadCases(unknown), /unknown benchmark format \(first record has keys: question, reply\); known formats: /);
    // A hand-written request list one field off Amend's own format is told which field.
    const near = write('near.json', JSON.stringify([{ prompt: '{} plays', subject: 'X', target: 'chess' }]));
    oneLineError(() => loadCases(near), /keys: prompt, subject, target\) — a request record needs prompt, subject and targetNew \(it has "target"\); known formats: /);
    const nearJsonl = write('near.jsonl', `${JSON.stringify({ prompt: '{} plays', subject: 'X' })}\n`);
    oneLineError(() => loadCases(nearJsonl), /a request record needs prompt, subject and targetNew; known formats: /);
    try {
      loadCases(unknown);
    } catch (e) {
      for (const f of DATASET_FORMATS) assert.ok((e as Error).message.includes(f.name), `the error lists ${f.name}`);
    }
    // KnowEdit Sanitation's keys with a value that is not a list: that, rather than "unknown format".
    oneLineError(() => loadCases(write('san-str.json', JSON.stringify({ success: 'q', locality: [] }))), /^\S*san-str\.json: "success" should be a list of \{question, ground_truth, target_new\} items \(KnowEdit Sanitation\), not a string$/);
    oneLineError(() => parseCases({ K_F: [], K_R: null }, { source: 'kr.json' }), /^kr\.json: "K_R" should be a list of .*, not null$/);
    // Prompts scored as they are: an empty one, or one with a "{}" that would be scored as the two characters.
    const cf = (extra: object) => [{ case_id: 7, requested_rewrite: { prompt: '{} is in', subject: 'Paris', target_new: { str: 'Rome' }, target_true: { str: 'France' } }, paraphrase_prompts: ['Paris lies in'], neighborhood_prompts: ['Lyon is in'], ...extra }];
    oneLineError(() => parseCases(cf({ paraphrase_prompts: ['Paris lies in', '   '] }), { source: 'p.json' }), /^p\.json: record 1 \(index 0, counterfact\) field "paraphrase_prompts\[1\]" is empty$/);
    oneLineError(() => parseCases(cf({ neighborhood_prompts: ['{} is in'] }), { source: 'n.json' }), /^n\.json: record 1 \(index 0, counterfact\) field "neighborhood_prompts\[0\]" holds a "\{\}" placeholder \("\{\} is in"\), but these prompts are used as they are; write the subject out$/);
    oneLineError(() => parseCases(cf({ generation_prompts: [''] })), /field "generation_prompts\[0\]" is empty/);
    oneLineError(() => parseCases([{ prompt: '{} is in', subject: 'Paris', targetNew: 'Rome', rephrase: ['{} lies in'] }]), /\(index 0, amend-cases\) field "rephrase\[0\]" holds a "\{\}" placeholder/);
    const mq = { case_id: 1, requested_rewrite: [{ prompt: '{} is in', subject: 'Paris', target_new: { str: 'Rome' }, target_true: { str: 'France' }, question: 'Where is Paris?' }], questions: ['Which country is Paris in?', ''], new_answer: 'Italy', answer: 'France' };
    oneLineError(() => parseCases([mq]), /\(index 0, mquake\) field "questions\[1\]" is empty/);
    // text in another encoding than UTF-8: named, not parsed into mojibake or U+FFFD
    const amend1 = [{ prompt: '{} est né à', subject: 'Zoé', targetNew: 'Paris' }];
    oneLineError(() => loadCases(write('latin1.json', Buffer.from(JSON.stringify(amend1), 'latin1'))), /latin1\.json: is not valid UTF-8 \(byte 0xe9 at offset 20; Latin-1\?\); save it as UTF-8/);
    oneLineError(() => loadCases(write('utf16.json', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(amend1), 'utf16le')]))), /utf16\.json: is UTF-16 \(or binary\), not UTF-8 text/);
    assert.equal(loadCases(write('bom.json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(amend1))]))).cases[0]!.subject, 'Zoé');
    // a record missing a field: named, with its index (detected from the other records)
    const good = { case_id: 1, requested_rewrite: { prompt: '{} is in', subject: 'X', target_new: { str: 'A' }, target_true: { str: 'B' } }, paraphrase_prompts: [], neighborhood_prompts: [] };
    const bad = { ...good, requested_rewrite: { ...good.requested_rewrite, subject: undefined } };
    oneLineError(() => loadCases(write('m.json', JSON.stringify([good, good, bad]))), /m\.json: record 3 \(index 2, counterfact\) has no "requested_rewrite\.subject" field/);
    const noTarget = { src: 'q?', subject: 'q', alt: 'x', answers: ['y'], rephrase: 'r', loc: 'nq question: l' };
    oneLineError(() => loadCases(write('z.json', JSON.stringify([noTarget]))), /record 1 \(index 0, zsre-mend\) has no "loc_ans" field/);
    const wrongType = { ...good, paraphrase_prompts: 'not a list' };
    oneLineError(() => loadCases(write('w.json', JSON.stringify([good, wrongType]))), /record 2 \(index 1, counterfact\) field "paraphrase_prompts" should be a list/);
    // empty file, empty list, invalid JSON, not a list, missing file
    oneLineError(() => loadCases(write('e.json', '')), /e\.json: empty file/);
    oneLineError(() => loadCases(write('ws.json', '  \n\n ')), /empty file/);
    oneLineError(() => loadCases(write('l.json', '[]')), /no records \(an empty list\)$/);
    // the empty benchmark of a --small world build says why it is empty (its BUILD.json beside it)
    fs.mkdirSync(path.join(dir, 'small-build'));
    const smallBuild = write('small-build/benchmark.json', '[]');
    fs.writeFileSync(path.join(path.dirname(smallBuild), 'BUILD.json'), JSON.stringify({ format: 'amend-world-build', small: true, accuracy: { knownFacts: 0 } }));
    oneLineError(() => loadCases(smallBuild), /small-build\/benchmark\.json: no records \(an empty list\) — a --small world build's model knows too few facts \(0 in every phrasing\) to have benchmark cases; build without --small/);
    fs.writeFileSync(path.join(path.dirname(smallBuild), 'BUILD.json'), JSON.stringify({ format: 'amend-world-build', small: false, accuracy: { knownFacts: 0 } }));
    oneLineError(() => loadCases(smallBuild), /no records \(an empty list\)$/);
    oneLineError(() => loadCases(write('i.json', '[{"prompt": "x",')), /i\.json: not valid JSON \(/);
    oneLineError(() => loadCases(write('jl.json', '{"a": 1}\n{"a": \n')), /line 2 is not valid JSON/);
    // JSON Lines: a record is named with its line too; one record alone (one line, or an object) loads.
    oneLineError(() => loadCases(write('jl2.jsonl', `${JSON.stringify(good)}\n\n\n${JSON.stringify(bad)}\n`)), /record 2 \(index 1, line 4, counterfact\) has no "requested_rewrite\.subject"/);
    assert.equal(loadCases(write('one.jsonl', `${JSON.stringify(good)}\n`)).cases.length, 1);
    // a JSON Lines file whose first line is cut: named by line, not by a character offset
    oneLineError(() => loadCases(write('cut1.jsonl', `${JSON.stringify(good).slice(0, 30)}\n${JSON.stringify(good)}\n`)), /cut1\.jsonl: line 1 is not valid JSON .* the file looks like JSON Lines/);
    // while a pretty-printed object cut short is still plain JSON
    oneLineError(() => loadCases(write('cut.json', JSON.stringify(good, null, 2).slice(0, 60))), /cut\.json: not valid JSON/);
    assert.equal(loadCases(write('one.json', JSON.stringify(good))).format, 'counterfact');
    oneLineError(() => loadCases(write('n.json', '42')), /expected a JSON list of benchmark records/);
    oneLineError(() => loadCases(path.join(dir, 'missing.json')), /missing\.json: no such file/);
    oneLineError(() => loadCases(dir), /is a directory/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('repeated case ids load, with one warning naming them', async () => {
  const rec = (id: number) => ({ case_id: id, requested_rewrite: { prompt: '{} is in', subject: 'X', target_new: { str: 'A' }, target_true: { str: 'B' } }, paraphrase_prompts: [], neighborhood_prompts: [] });
  const got = await warningsOf(() => {
    assert.equal(parseCases([rec(13), rec(14), rec(13)], { source: 'dup.json' }).cases.length, 3);
    parseCases([rec(1), rec(2)], { source: 'unique.json' });
  });
  assert.deepEqual(got, ["dup.json: 1 case id(s) repeat (13); reports also give each case's index in the file"]);
});

test('detection reads the first records, not the first alone: a first record short of a field does not make the file a poorer format', async () => {
  const zsre = (i: number) => ({ subject: `S${i}`, src: `What is S${i}?`, alt: 'A', answers: ['B'], loc: 'nq question: q', loc_ans: 'x' });
  const wise = (i: number) => ({ ...zsre(i), portability: { 'New Question': `Where is S${i}?`, 'New Answer': 'C' } });
  // WISE's zsRE with record 1's portability missing: read as WISE, record 1 named (it used to load every record as MEND zsRE, portability dropped)
  assert.throws(() => parseCases([zsre(0), wise(1), wise(2)], { source: 'w.json' }),
    (e: unknown) => e instanceof AmendError && /^w\.json: record 1 \(index 0, wise-zsre-portability\) has no "portability\.New Question" field$/.test(e.message));
  // A record past the ones detection reads that looks like another format: read as the file's, said once.
  const many = [...Array.from({ length: 25 }, (_, i) => zsre(i)), wise(25), wise(26)];
  let loaded: ReturnType<typeof parseCases> | undefined;
  const got = await warningsOf(() => { loaded = parseCases(many, { source: 'm.json' }); });
  assert.equal(loaded!.format, 'zsre-mend');
  assert.equal(loaded!.cases.length, 27);
  assert.equal(got.length, 1);
  assert.match(got[0]!, /^m\.json: 2 record\(s\) have the fields of another format than zsre-mend, the format of most of the first records \(record 26 \(index 25\) looks like wise-zsre-portability\); they were read as zsre-mend/);
  // Forced, the format is the user's choice: no warning.
  assert.deepEqual(await warningsOf(() => parseCases(many, { source: 'm.json', format: 'zsre-mend' })), []);
  // KnowEdit's ZsRE, WikiData_counterfact and WikiData_recent share one converter: a record without rephrase_prompt loses nothing.
  const ke = (i: number, extra: object) => ({ subject: `S${i}`, prompt: `S${i} is in`, target_new: 'A', ground_truth: 'B', locality: {}, ...extra });
  const mixed = [ke(0, { rephrase_prompt: 'r' }), ke(1, { rephrase_prompt: 'r' }), ke(2, {})];
  assert.deepEqual(await warningsOf(() => assert.equal(parseCases(mixed).format, 'knowedit-zsre')), []);
});

test('a misspelt load option is refused, not ignored (JavaScript callers have no type check)', () => {
  const rec = { prompt: '{} is in', subject: 'Paris', targetNew: 'Rome' };
  assert.throws(() => parseCases([rec, rec], { n: 1 } as never), (e: unknown) => e instanceof AmendError && /^parseCases: unknown option "n" \(did you mean "limit"\?\); options: limit, format, split, source$/.test(e.message));
  assert.throws(() => loadCases('world', { limt: 1 } as never), /loadCases: unknown option "limt" \(did you mean "limit"\?\); options: limit, format, split$/);
  assert.throws(() => loadCases('world', 5 as never), /loadCases takes options as an object/);
  assert.equal(parseCases([rec, rec], null).cases.length, 2);
});

test('detectFormat works on parsed content', () => {
  assert.equal(detectFormat([{ src: 'a', alt: 'b', loc: 'c', loc_ans: 'd', subject: 'a' }]), 'zsre-mend');
  assert.equal(detectFormat({ K_F: [], K_R: [] }), 'knowedit-sanitation');
  assert.equal(detectFormat([{ foo: 1 }]), null);
  assert.equal(detectFormat([1, 2]), null);
});

test('a JSON list file is read a record at a time: --n parses only the records it uses, the rest are counted', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  try {
    // strings with the characters the record scanner must see through: quotes, backslashes, brackets, commas, non-ASCII
    const tricky = ['a "quoted" ] subject', 'back\\slash\\', '{braces}, [brackets]', 'Zürich–東京 😀', '\\"', 'tab\there'];
    const rec = (i: number) => ({
      case_id: 1000 + i,
      requested_rewrite: { prompt: '{} is in', subject: `${tricky[i % tricky.length]} ${i}`, target_new: { str: 'A' }, target_true: { str: 'B' } },
      paraphrase_prompts: [`p ${i} ]`],
      neighborhood_prompts: [],
    });
    const recs = Array.from({ length: 30 }, (_, i) => rec(i));
    for (const [name, text] of [['compact.json', JSON.stringify(recs)], ['pretty.json', `\n ${JSON.stringify(recs, null, 2)}\n`]] as const) {
      const f = path.join(dir, name);
      fs.writeFileSync(f, text);
      assert.deepEqual(loadCases(f), parseCases(JSON.parse(text), { source: f }), name);
      const some = loadCases(f, { limit: 7 });
      assert.equal(some.total, 30, `${name}: every record counted`);
      assert.deepEqual(some.cases, parseCases(recs, { limit: 7 }).cases, name);
    }
    // A record past the ones used that is not valid JSON: --n 2 never parses it; a full load names it.
    const broken = path.join(dir, 'broken.json');
    fs.writeFileSync(broken, `[${recs.slice(0, 3).map((r) => JSON.stringify(r)).join(',\n')},\n{"case_id": 4, oops}\n]`);
    const two = loadCases(broken, { limit: 2 });
    assert.deepEqual([two.cases.length, two.total], [2, 4]);
    // named by the file's line and column, not by an offset inside the record
    oneLineError(() => loadCases(broken), /broken\.json: record 4 \(index 3\) is not valid JSON at line 4, column 16 \(Expected double-quoted property name\)$/);
    // the list's own structure is checked to its end, whatever the limit
    const write = (name: string, text: string | Buffer) => {
      fs.writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const one = JSON.stringify(recs[0]);
    oneLineError(() => loadCases(write('cut.json', `[${one}, ${one.slice(0, 40)}`), { limit: 1 }), /cut\.json: not valid JSON \(the file ends inside record 2; is it cut short\?\)/);
    oneLineError(() => loadCases(write('open.json', `[${one}, ${one}`), { limit: 1 }), /open\.json: not valid JSON \(the file ends after record 2 without the list's closing "\]"; is it cut short\?\)/);
    oneLineError(() => loadCases(write('nocomma.json', `[${one} ${one}]`), { limit: 1 }), new RegExp(`nocomma\\.json: not valid JSON at line 1, column ${one.length + 3} \\(expected "," or "\\]" after record 1, found "\\{"\\)`));
    oneLineError(() => loadCases(write('after.json', `[${one}]\n[${one}]`), { limit: 1 }), /after\.json: not valid JSON at line 2, column 1 \(text after the list's closing "\]"\)/);
    oneLineError(() => loadCases(write('comma.json', `[${one},\n]`), { limit: 1 }), /comma\.json: not valid JSON at line 2, column 1 \(no record 2 where one should be; a "," too many\?\)/);
    oneLineError(() => loadCases(write('comma0.json', `[, ${one}]`), { limit: 1 }), /comma0\.json: not valid JSON at line 1, column 2 \(no record 1 where one should be/);
    // bytes that are not UTF-8 are named by their offset in the file, as for a file read whole
    const latin = Buffer.concat([Buffer.from(`[${one}, `), Buffer.from(JSON.stringify(rec(1)).replace('"B"', '"é"'), 'latin1'), Buffer.from(']')]);
    const at = latin.indexOf(0xe9);
    oneLineError(() => loadCases(write('latin.json', latin)), new RegExp(`is not valid UTF-8 \\(byte 0xe9 at offset ${at};`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cases loaded from a JSON Lines file do not keep the file\'s lines alive', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  try {
    const rec = (i: number) => ({ prompt: `{} ${i} is in`, subject: 'X', targetNew: 'A', rephrase: [`padding ${i} `.repeat(200)] });
    const f = path.join(dir, 'big.jsonl');
    fs.writeFileSync(f, Array.from({ length: 4000 }, (_, i) => JSON.stringify(rec(i))).join('\r\n'));
    const size = fs.statSync(f).size;
    await collectGarbage();
    const before = process.memoryUsage().heapUsed;
    const got = loadCases(f, { limit: 1 });
    await collectGarbage();
    const held = process.memoryUsage().heapUsed - before;
    assert.equal(got.cases.length, 1);
    assert.equal(got.cases[0]!.prompt, '{} 0 is in', 'the \\r of a CRLF line is not part of the record');
    assert.ok(held < size / 4, `one case holds ${(held / 1e6).toFixed(1)} MB after a collection, for a ${(size / 1e6).toFixed(1)} MB file`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("KnowEdit's other rephrase key (`rephrase`, as EasyEdit's WikiRecent loader reads it) is the rephrase prompt", () => {
  const rec = { subject: 'Leo Arons', prompt: 'The place of death of Leo Arons is', target_new: 'Berlin', rephrase: 'Leo Arons died in the city of', locality: { Relation_Specificity: [{ prompt: 'The father of Leo Arons is', ground_truth: [['Albert Arons']] }] } };
  const r = parseCases([rec]);
  assert.equal(r.format, 'knowedit-wiki-recent');
  assert.deepEqual(r.cases[0]!.rephrase, ['Leo Arons died in the city of']);
  assert.deepEqual(parseCases([{ ...rec, rephrase: ['a', ''] }]).cases[0]!.rephrase, ['a']);
  // both keys: both prompts, once each
  assert.deepEqual(parseCases([{ ...rec, rephrase_prompt: 'Leo Arons passed away in', ground_truth: 'x' }]).cases[0]!.rephrase, ['Leo Arons passed away in', 'Leo Arons died in the city of']);
  assert.throws(() => parseCases([rec, { ...rec, rephrase: { a: 1 } }]), /record 2 \(index 1, knowedit-wiki-recent\) field "rephrase" should be a string or a list of strings, not \{"a":1\}/);
});

test("WISE's temporal and hallucination files: their own formats, the out-of-distribution rephrase kept", () => {
  // run_wise_editing.py's fields: temporal asks ood_rephrase as the rephrase prompt, hallucination has none.
  const temporal = {
    prompt: 'Bitcoin Cash is', subject: 'Bitcoin Cash', target_new: 'a cryptocurrency forked from Bitcoin in 2017',
    ood_rephrase: 'The 2017 fork of Bitcoin that enlarged the block size is called', locality_prompt: 'The Nile flows into the', locality_ground_truth: 'Mediterranean Sea',
  };
  const t = parseCases([temporal]);
  assert.equal(t.format, 'wise-temporal');
  assert.deepEqual(t.cases[0], {
    prompt: 'Bitcoin Cash is', subject: 'Bitcoin Cash', targetNew: 'a cryptocurrency forked from Bitcoin in 2017', id: 0,
    rephrase: ['The 2017 fork of Bitcoin that enlarged the block size is called'],
    locality: [{ prompt: 'The Nile flows into the', answer: 'Mediterranean Sea' }],
  });
  // an in-distribution rephrase, where a file has one, comes first
  assert.deepEqual(parseCases([{ ...temporal, rephrase_prompt: 'Bitcoin Cash, in short, is' }]).cases[0]!.rephrase, ['Bitcoin Cash, in short, is', temporal.ood_rephrase]);
  const { ood_rephrase: _, ...hallucination } = temporal;
  const h = parseCases([hallucination]);
  assert.equal(h.format, 'wise-hallucination');
  assert.deepEqual(h.cases[0], { prompt: temporal.prompt, subject: temporal.subject, targetNew: temporal.target_new, id: 0, locality: t.cases[0]!.locality });
  // EasyEdit's CounterFact (ground_truth, rephrase_prompt) is still CounterFact
  assert.equal(parseCases([{ ...hallucination, ground_truth: 'x', rephrase_prompt: 'r' }]).format, 'counterfact-easyedit');
  assert.throws(() => parseCases([temporal, { ...temporal, ood_rephrase: 3 }]), /record 2 \(index 1, wise-temporal\) field "ood_rephrase" should be a string, not a number/);
});

test('MQuAKE-Remastered (flat rewrite fields) loads as the same cases as the nested MQuAKE layout', () => {
  const nested = {
    case_id: 7,
    requested_rewrite: [
      { prompt: '{} is a citizen of', relation_id: 'P27', target_new: { str: 'Peru', id: 'Q419' }, target_true: { str: 'Chile', id: 'Q298' }, subject: 'Ann', question: 'Which country is Ann a citizen of?' },
      { prompt: 'The capital of {} is', relation_id: 'P36', target_new: { str: 'Cusco', id: 'Q5582' }, target_true: { str: 'Lima', id: 'Q2868' }, subject: 'Peru', question: 'What is the capital of Peru?' },
    ],
    questions: ['What is the capital of the country Ann is a citizen of?'],
    answer: 'Santiago', answer_alias: [], new_answer: 'Cusco', new_answer_alias: ['Cuzco'],
  };
  const flat = {
    ...nested,
    requested_rewrite: nested.requested_rewrite.map(({ target_new, target_true, ...r }) => ({
      ...r, target_new_str: target_new.str, target_new_id: target_new.id, target_true_str: target_true.str, target_true_id: target_true.id,
    })),
    orig_triples: [['Q1', 'P27', 'Q298']], new_triples: [['Q1', 'P27', 'Q419']], split: { '100': ['edited'] },
  };
  const r = parseCases([flat]);
  assert.equal(r.format, 'mquake-remastered');
  // the same case, and the run-split labels kept as the record gives them
  const { split, ...rest } = r.cases[0]!;
  assert.deepEqual([rest], parseCases([nested]).cases);
  assert.deepEqual(split, { '100': ['edited'] });
  assert.equal(r.cases[0]!.edits![1]!.targetNewId, 'Q5582');
  const noTarget = { ...flat, requested_rewrite: [{ ...flat.requested_rewrite[0]!, target_new_str: undefined }] };
  assert.throws(() => parseCases([flat, noTarget]), /record 2 \(index 1, mquake-remastered\) has no "requested_rewrite\.0\.target_new_str" field/);
});

/**
 * A synthetic MQuAKE-Remastered file in its Hugging Face copy's layout: `split` maps a run size to
 * the case's labels in that run (henryzhongsc/MQuAKE-Remastered reads split[str(edit_num)]):
 * "edited" in CF-3k / CF-9k / T, "train_edited" / "test_edited" / "test_unedited" in CF-6334.
 */
function remasteredRecord(caseId: number, split: unknown) {
  return {
    case_id: caseId,
    requested_rewrite: [{
      prompt: '{} is a citizen of', relation_id: 'P27', subject: `Person ${caseId}`, question: `Which country is Person ${caseId} a citizen of?`,
      target_new_str: 'Peru', target_new_id: 'Q419', target_true_str: 'Chile', target_true_id: 'Q298',
    }],
    questions: [`What is the capital of the country Person ${caseId} is a citizen of?`],
    answer: 'Santiago', answer_alias: [], new_answer: 'Lima', new_answer_alias: [],
    orig_triples: [['Q1', 'P27', 'Q298']], new_triples: [['Q1', 'P27', 'Q419']], split,
  };
}

test('MQuAKE-Remastered split: the cases a run of that split edits, in file order, limit counted among them; labels kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-split-'));
  try {
    // CF-3k style: "edited", else "unedited" or no label; a null run (a table-shaped copy) is no run
    const records = [
      remasteredRecord(1, { '1': ['edited'], '3': ['edited'], all: ['edited'] }),
      remasteredRecord(2, { '1': [], '3': ['unedited'], all: ['edited'] }),
      remasteredRecord(3, { '1': ['unedited'], '3': ['edited'], all: ['edited'], '9': null }),
      remasteredRecord(4, { '1': [], '3': [], all: ['edited'] }),
      remasteredRecord(5, { '1': [], '3': ['edited'], all: ['edited'] }),
    ];
    const file = path.join(dir, 'cf3k.jsonl');
    fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const ids = (x: { cases: { id?: string | number }[] }) => x.cases.map((c) => c.id);
    const three = loadCases(file, { split: '3' });
    assert.equal(three.format, 'mquake-remastered');
    assert.deepEqual(ids(three), [1, 3, 5]);
    assert.deepEqual(three.split, { name: '3', edited: 3 });
    assert.equal(three.total, 5);
    assert.deepEqual(three.cases[1]!.split, { '1': ['unedited'], '3': ['edited'], all: ['edited'] });
    assert.deepEqual(ids(loadCases(file, { split: '1' })), [1]);
    assert.deepEqual(ids(loadCases(file, { split: 'all' })), [1, 2, 3, 4, 5]);
    // the limit counts the split's cases, not the file's records
    const two = loadCases(file, { split: '3', limit: 2 });
    assert.deepEqual(ids(two), [1, 3]);
    assert.deepEqual(two.split, { name: '3', edited: 3 });
    // parsed content and the file read a record at a time agree; without split, every record
    assert.deepEqual(parseCases(records, { split: '3' }).cases, three.cases);
    assert.deepEqual(ids(loadCases(file)), [1, 2, 3, 4, 5]);

    // CF-6334 style: train and test edited cases are both edited; test_unedited ones only asked
    const cf6334 = [
      remasteredRecord(10, { '1000': ['train_edited'] }),
      remasteredRecord(11, { '1000': ['test_unedited'] }),
      remasteredRecord(12, { '1000': ['test_edited'] }),
      remasteredRecord(13, { '1000': ['train_edited', 'test_edited'] }),
      remasteredRecord(14, { '1000': ['test_edited_unique'] }),
    ];
    assert.deepEqual(ids(parseCases(cf6334, { split: '1000' })), [10, 12, 13, 14]);

    // bad input: one line naming what is wrong
    assert.throws(() => loadCases(file, { split: '100' }), (e: Error) => e instanceof AmendError && /no split "100"; the records' splits are "1", "3", "all"$/.test(e.message));
    assert.throws(() => loadCases(file, { split: '9' }), /no split "9"; the records' splits are "1", "3", "all"$/);
    assert.throws(() => parseCases([remasteredRecord(1, { '3': ['edited'], '1': [] }), remasteredRecord(2, { '1': [] })], { split: '3' }), /case 2 has no labels for split "3" \(its splits: 1\); every record needs them/);
    assert.throws(() => loadCases(file, { split: '' }), /split must name one of the records' run splits/);
    assert.throws(() => parseCases([remasteredRecord(1, { '3': [] }), remasteredRecord(2, { '3': ['unedited'] })], { split: '3' }), /split "3" edits no case \(its labels: unedited; a run edits the cases labelled edited \/ train_edited \/ test_edited \/ test_edited_unique\)/);
    assert.throws(() => parseCases([remasteredRecord(1, { '3': ['edited'] }), remasteredRecord(2, undefined)], { split: '3' }), /case 2 has no labels for split "3" \(no "split" field\)/);
    assert.throws(() => parseCases([remasteredRecord(1, ['edited'])]), /record 1 \(index 0, mquake-remastered\) field "split" should be an object of label lists/);
    assert.throws(() => parseCases([remasteredRecord(1, { '3': 'edited' })]), /field "split\.3" should be a list of labels \(strings\)/);
    const cf = path.join(dir, 'cf.json');
    fs.writeFileSync(cf, JSON.stringify([{ case_id: 0, requested_rewrite: { prompt: '{} is in', subject: 'Paris', target_new: { str: 'Rome' }, target_true: { str: 'France' } }, paraphrase_prompts: [], neighborhood_prompts: [] }]));
    assert.throws(() => loadCases(cf, { split: '3' }), /split "3" selects cases by MQuAKE-Remastered's "split" labels, but these records \(counterfact\) have no "split" field/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('JSON Lines and KnowEdit Sanitation files are read a record at a time too: the shared files load as when parsed whole', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  const write = (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  try {
    const recs = JSON.parse(fs.readFileSync(path.join(DATA!, 'counterfact/counterfact-edit-1k.json'), 'utf8')).slice(0, 20) as unknown[];
    const lines = recs.map((r) => JSON.stringify(r));
    const jl = write('cf.jsonl', `\n${lines.join('\r\n')}\n\n`);
    for (const limit of [undefined, 0, 1, 7, 25]) {
      assert.deepEqual(loadCases(jl, { limit }), parseCases(recs, { limit, source: jl }), `limit ${limit}`);
    }
    // lines are counted from the file's first (a byte order mark and blank lines too)
    const bad3 = write('bad3.jsonl', `\ufeff\n${[lines[0], lines[1], JSON.stringify({ ...(recs[2] as object), subject: 5 })].join('\n')}`);
    oneLineError(() => loadCases(bad3), /bad3\.jsonl: record 3 \(index 2, line 4, counterfact-easyedit\) field "subject" should be a string/);
    for (const f of ['knowedit/benchmark_trivia_trivia_qa_test.json', 'knowedit/benchmark_trivia_trivia_qa_train.json']) {
      const text = fs.readFileSync(path.join(DATA!, f), 'utf8');
      for (const limit of [undefined, 1, 7]) assert.deepEqual(loadCases(path.join(DATA!, f), { limit }), parseCases(JSON.parse(text), { limit, source: path.join(DATA!, f) }), `${f} limit ${limit}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('JSON Lines and KnowEdit Sanitation files are read a record at a time too: --n parses only what it uses', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-data-'));
  const write = (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  try {
    const recs = Array.from({ length: 6 }, (_, i) => ({ prompt: `{} number ${i} lives in`, subject: `Person ${i}`, targetNew: `City ${i}` }));
    const lines = recs.map((r) => JSON.stringify(r));
    const jl = write('cases.jsonl', `${lines.join('\n')}\n`);
    for (const limit of [undefined, 0, 1, 4, 9]) {
      assert.deepEqual(loadCases(jl, { limit }), parseCases(recs, { limit, source: jl }), `limit ${limit}`);
    }
    // A broken line past the ones used: --n 3 never parses it; a full load names it by its line.
    const broken = write('broken.jsonl', [...lines.slice(0, 4), '{"prompt": oops}', lines[5]].join('\n'));
    const three = loadCases(broken, { limit: 3 });
    assert.deepEqual([three.cases.length, three.total], [3, 6]);
    oneLineError(() => loadCases(broken), /broken\.jsonl: line 5 is not valid JSON at column 12 \(Unexpected token 'o'\) — the file looks like JSON Lines$/);

    const item = (i: number) => ({ question: `What is ${i}?`, ground_truth: `${i}`, target_new: "I don't know." });
    const san = (forget: string) => `{"success": [${forget}],\n "locality": [${[0, 1, 2].map((i) => JSON.stringify(item(i))).join(', ')}]}`;
    const goodItems = [0, 1, 2].map((i) => JSON.stringify(item(i)));
    const s = write('san.json', san([...goodItems, '{"question": oops}'].join(', ')));
    const two = loadCases(s, { limit: 2 });
    assert.deepEqual([two.format, two.cases.length, two.total], ['knowedit-sanitation', 2, 4]);
    assert.deepEqual(two.cases.map((c) => c.locality!.length), [2, 1], 'every retain question is still shared out');
    const oops = fs.readFileSync(s, 'utf8').indexOf('oops') + 1;
    oneLineError(() => loadCases(s), new RegExp(`san\\.json: "success" item 4 \\(index 3\\) is not valid JSON at line 1, column ${oops} \\(Unexpected token 'o'\\)$`));
    // a forced format whose lists are missing is named (it was a TypeError)
    oneLineError(() => parseCases({ success: [item(0)] }, { format: 'knowedit-sanitation' }), /knowedit-sanitation needs a "success" and a "locality" list \(test split\) or a "K_F" and a "K_R" list/);
    oneLineError(() => loadCases(write('nolists.json', '{"success": [], "K_R": []}'), { format: 'knowedit-sanitation' }), /nolists\.json: knowedit-sanitation needs/);
    // the object's structure is still checked to its end, whatever the limit
    oneLineError(() => loadCases(write('cut.json', san(goodItems.join(', ')).slice(0, -30)), { limit: 1 }), /cut\.json: not valid JSON/);
    oneLineError(() => loadCases(write('nocomma.json', san(goodItems.join(' '))), { limit: 1 }), /nocomma\.json: not valid JSON/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
