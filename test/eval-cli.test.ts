// amend eval: a run with a report folder, --json, resume across processes (--stop-after, then
// --resume, ends with the uninterrupted run's summary), --help, and bad input as one line, exit 1,
// nothing written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertOneLineError, type CliResult, repoRoot, runCli, sharedDir } from './helpers.js';
import { loadCases } from '../src/data/index.js';
import { loadConsistencyResources, sharedSubjectEdits, summarizeRecords, tfidfSimilarity, type CaseRecord } from '../src/eval/index.js';
import { writeNpy } from './npz-writer.js';

const models = sharedDir('models');
const data = sharedDir('data');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-eval-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const amend = (...args: string[]): CliResult => runCli(args, path.join(tmp, 'cache'));
const skip = models && data ? false : 'no ../shared/models or ../shared/data';

const FAST = ['--set', 'v_num_grad_steps=2', '--set', 'mom2_dataset=model-samples', '--set', 'mom2_n_samples=40'];

test('amend eval --help shows the options and examples', () => {
  const r = amend('eval', '--help');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /amend eval — /);
  assert.match(r.stdout, /--mode\s+single \| batch:K/);
  assert.match(r.stdout, /--protocol\s+immediate\|final/);
  assert.match(r.stdout, /amend eval --model world --method rome --data world --n 100/);
  const top = amend('--help');
  assert.match(top.stdout, /\n {2}eval {7}/);
});

test('amend eval: sequential MEMIT stopped, then --resume in a new process, ends with the uninterrupted summary', { skip }, () => {
  const args = ['eval', '--model', `${models}/stories260K`, '--method', 'memit', '--data', `${data}/mquake/MQuAKE-hard.json`,
    '--mode', 'sequential:4', '--protocol', 'final', '--checkpoint-every', '2', '--heldout', `${data}/wikitext/wikitext-2-raw-test.txt`, '--heldout-tokens', '200', ...FAST];
  const whole = path.join(tmp, 'whole');
  const w = amend(...args, '--out', whole, '--json');
  assert.equal(w.code, 0, w.stderr);
  const ws = JSON.parse(w.stdout);
  assert.equal(ws.cases, 4);
  assert.ok(ws.files.some((f: string) => f.endsWith('plot-perplexity-drift.png')));

  const out = path.join(tmp, 'resumed');
  const s = amend(...args, '--out', out, '--stop-after', '3');
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /stopped after 3 of 4/);
  assert.ok(!fs.existsSync(path.join(out, 'summary.json')));
  assertOneLineError(amend(...args, '--out', out), /holds an interrupted run \(3 of 4 done\); pass --resume to continue it or --force to start over$/);
  const r = amend(...args, '--out', out, '--resume');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /apply-all-then-score\n/);
  assert.match(r.stdout, /perplexity drift: 0: ×1\.000, 2: ×\S+, 4: ×\S+/);
  const comparable = (dir: string) => {
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    return { rows: j.rows.filter((x: { protocol: string }) => x.protocol !== 'cost'), drift: j.drift, config: j.config };
  };
  assert.deepEqual(comparable(out), comparable(whole));
  assert.deepEqual(fs.readdirSync(out).sort(), fs.readdirSync(whole).sort());
});

test('amend eval: the world\'s corpus-heldout.txt named with --heldout is scored as by default, one document per line', () => {
  const run = (...extra: string[]) => {
    const r = amend('eval', '--model', 'world', '--method', 'rome', '--data', path.join(repoRoot(), 'world', 'benchmark.json'), '--mode', 'sequential:2', '--json', ...extra);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).drift[0];
  };
  assert.deepEqual(run('--heldout', path.join(repoRoot(), 'world', 'corpus-heldout.txt')), run());
});

test('amend eval --model world without --data evaluates the world\'s own benchmark', () => {
  const run = (...extra: string[]) => {
    const r = amend('eval', '--model', 'world', '--method', 'rome', '--n', '1', '--set', 'v_num_grad_steps=2', '--json', ...extra);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    return { data: j.config.data, rows: j.rows.filter((x: { protocol: string }) => x.protocol !== 'cost') };
  };
  const implicit = run();
  assert.deepEqual(implicit.data, { file: 'world', format: 'amend-world' });
  assert.deepEqual(implicit.rows, run('--data', 'world').rows);
  assertOneLineError(amend('eval', '--model', path.join(tmp, 'not-a-world'), '--method', 'rome'), /--data is required/);
  // Another world build's folder (here a copy with a benchmark of its own) brings its benchmark.
  const copy = path.join(tmp, 'world-copy');
  fs.cpSync(path.join(repoRoot(), 'world'), copy, { recursive: true });
  fs.writeFileSync(path.join(copy, 'benchmark.json'), JSON.stringify(JSON.parse(fs.readFileSync(path.join(copy, 'benchmark.json'), 'utf8')).slice(3, 5)));
  const own = amend('eval', '--model', copy, '--method', 'rome', '--set', 'v_num_grad_steps=2', '--json');
  assert.equal(own.code, 0, own.stderr);
  const j = JSON.parse(own.stdout);
  assert.equal(j.config.data.file, path.join(copy, 'benchmark.json'));
  assert.equal(j.cases, 2);
  // --qa-cut line implies --qa, is recorded with the run's settings and scores the answer's first line.
  const byLine = JSON.parse(amend('eval', '--model', 'world', '--method', 'rome', '--n', '1', '--set', 'v_num_grad_steps=2', '--json', '--qa-cut', 'line').stdout);
  assert.deepEqual(byLine.config.scoring.qa, { cut: 'line' });
  assert.ok(byLine.rows.some((x: { name: string }) => x.name === 'qa.rewrite_em'));
  assert.equal(JSON.parse(amend('eval', '--model', 'world', '--method', 'rome', '--n', '1', '--set', 'v_num_grad_steps=2', '--json', '--qa').stdout).config.scoring.qa, true);
});

test('amend eval: the header comes before the run, and a file with fewer cases than --n says so', () => {
  const two = path.join(tmp, 'world-two.json');
  fs.writeFileSync(two, JSON.stringify(JSON.parse(fs.readFileSync(path.join(repoRoot(), 'world', 'benchmark.json'), 'utf8')).slice(0, 2)));
  const r = amend('eval', '--model', 'world', '--method', 'rome', '--data', two, '--n', '5', '--set', 'v_num_grad_steps=2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /world-two\.json has 2 case\(s\) to evaluate, fewer than --n 5: all of them are evaluated/);
  assert.match(r.stdout.split('\n')[0]!, /^ROME on \S*world: 2 case\(s\) of \S*world-two\.json \(amend-world\), mode single; hparams: preset world/);
});

test('amend eval: a paraphrase longer than the model\'s positions is scored on its last tokens, marked in cases.jsonl and counted in a warning', { skip }, () => {
  const file = path.join(tmp, 'long-paraphrase.json');
  const out = path.join(tmp, 'long-paraphrase');
  const rec = { case_id: 1, requested_rewrite: { prompt: '{} was born in', subject: 'Lily', target_new: { str: ' Paris' }, target_true: { str: ' London' } },
    paraphrase_prompts: [`${'and then '.repeat(300)}Lily was born in`, 'Lily comes from'], neighborhood_prompts: ['Tom was born in'] };
  fs.writeFileSync(file, JSON.stringify([rec]));
  const r = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', file, '--out', out, ...FAST);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /amend: warning: 2 of \d+ scored prompt\(s\) with their targets were longer than the model's 512 positions and were scored on the prompt's last tokens \("truncated": true in cases\.jsonl\)/);
  const items = (JSON.parse(fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim()) as { items: { prompt: string; kind: string; truncated?: boolean }[] }).items;
  const cut = items.filter((i) => i.truncated);
  assert.deepEqual(cut.map((i) => i.kind).sort(), ['new', 'true'], 'the long paraphrase, scored for the new and the true target');
  assert.ok(cut.every((i) => i.prompt.startsWith('and then')));
});

// util-linux's `script` runs a command on a pseudo-terminal, where the bars are drawn.
test('amend eval: cases that give the new target as the true one are named before the run, and left out of the probability comparisons', { skip }, () => {
  // Records 100 and 101 of the zsRE sample: the second asks the model to learn the answer it has.
  const two = path.join(tmp, 'zsre-same-target.json');
  // A third record without a target is skipped by the loader, as EasyEdit skips it, and said so.
  const recs = (JSON.parse(fs.readFileSync(`${data}/zsre/zsre_mend_train-1k.json`, 'utf8')) as Record<string, unknown>[]).slice(100, 102);
  fs.writeFileSync(two, JSON.stringify([...recs, { ...recs[0], alt: '' }]));
  const r = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', two, ...FAST, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /zsre-same-target\.json: 1 of 2 case\(s\) give the new target as the true one, so P\(new\) > P\(true\) cannot hold: they are left out of efficacy, paraphrase and neighbourhood/);
  assert.match(r.stderr, /zsre-same-target\.json: 1 record\(s\) skipped \(record 3 \(index 2\): empty "alt" \(no edit target\), skipped as EasyEdit does\)/);
  // Only such records: nothing to evaluate or edit, and the refusal says why.
  const none = path.join(tmp, 'zsre-no-target.json');
  fs.writeFileSync(none, JSON.stringify([{ ...recs[0], alt: '' }]));
  for (const [args, what] of [[['eval', '--data', none], 'cases to evaluate'], [['edit', '--requests', none], 'edit requests']] as const) {
    assertOneLineError(amend(...args, '--model', `${models}/stories260K`, '--method', 'rome'), new RegExp(`zsre-no-target\\.json: no ${what} \\(1 record\\(s\\) skipped: empty "alt" \\(no edit target\\), skipped as EasyEdit does\\)`));
  }
  const rows = (JSON.parse(r.stdout) as { rows: { name: string; count: number }[] }).rows;
  assert.equal(rows.find((x) => x.name === 'efficacy_score')?.count, 1);
  assert.equal(rows.find((x) => x.name === 'rewrite_acc')?.count, 2);
});

const script = ['/usr/bin/script', '/bin/script'].find((f) => fs.existsSync(f));
test('amend eval on a terminal: one bar over the whole run, with the stage, and the way to resume', { skip: script ? false : 'no script(1) to give the command a terminal' }, () => {
  const out = path.join(tmp, 'tty-run');
  const cmd = [process.execPath, path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'eval', '--model', 'world', '--method', 'rome', '--data', 'world',
    '--mode', 'sequential:24', '--checkpoint-every', '4', '--out', out].map((a) => `'${a}'`).join(' ');
  const r = spawnSync(script!, ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, AMEND_CACHE: path.join(tmp, 'cache') } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const text = r.stdout.replace(/\r\n/g, '\n');
  assert.match(text, new RegExp(`checkpoints in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} every 4 edit\\(s\\): if the run stops, the same command with --resume continues it`));
  // The stages alternate case by case, each far under the second a bar waits before it shows.
  const draws = text.match(/\reval \[[#.]{30}\] \d+\/24 [\d.]+s eta [\d.]+s (editing|scoring|perplexity|writing report)/g) ?? [];
  assert.ok(draws.length > 0, `no eval bar drawn:\n${text}`);
  assert.match(text, /\d+\.\d s; report in /);
});

test('amend eval: the report says how many edits of a batch share their subject with another', () => {
  const out = path.join(tmp, 'shared');
  const r = amend('eval', '--model', 'world', '--method', 'memit', '--data', 'world', '--n', '60', '--mode', 'batch:60', '--set', 'v_num_grad_steps=2', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const want = sharedSubjectEdits(loadCases('world', { limit: 60 }).cases, { batch: 60 });
  assert.ok(want.length === 1 && want[0]!.shared > 0, `the world's first 60 cases repeat subjects: ${JSON.stringify(want)}`);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).sharedSubjects, want);
  assert.ok(fs.readFileSync(path.join(out, 'summary.md'), 'utf8').includes(`In batches of 60, ${want[0]!.shared} of 60 edits share their subject`));
  assert.match(r.stdout, new RegExp(`note: in batches of 60, ${want[0]!.shared} of 60 edits share their subject`));
});

test('amend eval on KnowEdit ConvSent: its own metrics (es_sent with z_sent and z_topic, dd) in the summary, under their protocol', { skip }, () => {
  const out = path.join(tmp, 'convsent');
  const r = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', `${data}/knowedit/benchmark_Convsent_blender_test.json`, '--n', '3', ...FAST, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  for (const name of ['es_sent', 'z_sent', 'z_topic']) assert.match(r.stdout, new RegExp(`sentiment-likelihood/${name} +\\d\\.\\d{4} .*n=3`));
  assert.match(r.stdout, /sentiment-likelihood\/dd +\d\.\d{4} nats .*n=3/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  const rows = summary.rows.filter((x: { protocol: string }) => x.protocol === 'sentiment-likelihood');
  assert.deepEqual(rows.map((x: { name: string; count: number }) => [x.name, x.count]), [['dd', 3], ['es_sent', 3], ['z_sent', 3], ['z_topic', 3]]);
  assert.match(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'), /### sentiment-likelihood\n\nteacher-forced log-likelihood of sentences by sentiment, and KL from the unedited model on another topic \(KnowEdit ConvSent \/ SERAC\)\.[\s\S]*\| es_sent \|/);
  // per case: es_sent = z_sent · z_topic
  for (const line of fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n')) {
    const v = Object.fromEntries(JSON.parse(line).metrics.map((x: { name: string; value: number }) => [x.name, x.value]));
    assert.ok(Math.abs(v.es_sent - v.z_sent * v.z_topic) < 1e-12 && v.dd > 0, line);
  }
});

test('amend eval --fluency / --consistency: sampled-text entropy for every case, the reference score where ROME\'s snippets know the new object', { skip }, () => {
  // ROME's data folder in miniature: snippets for the first case's relation and new object only,
  // worded like its generation prompts (which the sampled texts begin with), so its score is > 0.
  const rome = path.join(tmp, 'rome-data');
  fs.mkdirSync(rome);
  const [first] = JSON.parse(fs.readFileSync(`${data}/counterfact/counterfact-rome-format-1000.json`, 'utf8')) as { requested_rewrite: { relation_id: string; target_new: { id: string } }; generation_prompts: string[] }[];
  const words = [...new Set(first!.generation_prompts.join(' ').toLowerCase().match(/\w\w+/g)!)];
  writeNpy(path.join(rome, 'idf.npy'), words.map((_, i) => 1 + i / words.length), '<f8');
  fs.writeFileSync(path.join(rome, 'tfidf_vocab.json'), JSON.stringify(Object.fromEntries(words.map((w, i) => [w, i]))));
  fs.writeFileSync(path.join(rome, 'attribute_snippets.json'), JSON.stringify([
    { relation_id: first!.requested_rewrite.relation_id, target_id: first!.requested_rewrite.target_new.id, samples: [{ name: 'Someone', text: first!.generation_prompts.join(' ') }] },
  ]));
  const args = ['eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', `${data}/counterfact/counterfact-rome-format-1000.json`, '--n', '2', ...FAST];
  const out = path.join(tmp, 'consistency');
  const r = amend(...args, '--consistency', rome, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--consistency: 1 of 2 scored case\(s\) have no reference_score \(no relation and new-object id in counterfact records, or no snippets about that object in /);
  const lines = fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const perCase = lines.map((rec) => Object.fromEntries(rec.metrics.map((x: { name: string; value: number }) => [x.name, x.value])));
  assert.ok(perCase.every((v) => v.ngram_entropy > 0), 'every case has its samples\' entropy (--consistency implies --fluency)');
  assert.ok(perCase[0]!.reference_score > 0 && perCase[0]!.reference_score <= 1, `case 0: ${perCase[0]!.reference_score}`);
  assert.equal(perCase[1]!.reference_score, undefined, 'no snippets about case 1\'s new object: no reference score');
  // the sampled texts are in cases.jsonl, and the reference score is computed from them
  const resources = loadConsistencyResources(rome);
  const snippet = first!.generation_prompts.join(' ');
  assert.ok(lines.every((rec) => Array.isArray(rec.generations) && rec.generations.length > 0), 'every case keeps its sampled texts');
  assert.equal(perCase[0]!.reference_score, tfidfSimilarity(lines[0].generations.join(' '), snippet, resources.tfidf));
  const config = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).config;
  assert.equal(config.scoring.fluency, true, '--consistency implies --fluency, and the run records it so');
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).rows.filter((x: { protocol: string }) => x.protocol === 'sampled-generation');
  assert.deepEqual(rows.map((x: { name: string; count: number }) => [x.name, x.count]), [['ngram_entropy', 2], ['reference_score', 1]]);
  // --fluency alone: the same samples (same seed), no reference score
  const f = amend(...args, '--fluency', '--json');
  assert.equal(f.code, 0, f.stderr);
  const fRows = JSON.parse(f.stdout).rows.filter((x: { protocol: string }) => x.protocol === 'sampled-generation');
  assert.deepEqual(fRows.map((x: { name: string }) => x.name), ['ngram_entropy']);
  assert.equal(fRows[0].mean, rows[0].mean);
  // a folder without ROME's files, or a file: one line each
  assertOneLineError(amend(...args, '--consistency', tmp), /--consistency|no idf\.npy, tfidf_vocab\.json, attribute_snippets\.json there; consistency needs ROME's idf\.npy/);
  assertOneLineError(amend(...args, '--consistency', path.join(rome, 'idf.npy')), /--consistency .*idf\.npy is a file; give ROME's data folder/);
  assertOneLineError(amend(...args, '--consistency', path.join(tmp, 'nowhere')), /--consistency .*nowhere: no such file; give ROME's data folder/);
});

test('amend eval: bad input is one line, exit 1, nothing written in --out', { skip }, () => {
  const m = `${models}/stories260K`;
  const out = path.join(tmp, 'never');
  const write = (name: string, text: string) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, text);
    return f;
  };
  assertOneLineError(amend('eval', '--model', m, '--data', write('unknown.json', '[{"question": "q", "reply": "r"}]'), '--out', out),
    /unknown benchmark format \(first record has keys: question, reply\); known formats: .*mquake.*counterfact.*knowedit-zsre/);
  const good = { case_id: 1, requested_rewrite: { prompt: '{} is in', subject: 'Paris', target_new: { str: 'Rome' }, target_true: { str: 'France' } }, paraphrase_prompts: [], neighborhood_prompts: [] };
  const bad = { ...good, requested_rewrite: { ...good.requested_rewrite, subject: undefined } };
  assertOneLineError(amend('eval', '--model', m, '--data', write('missing.json', JSON.stringify([good, good, bad])), '--out', out),
    /record 3 \(index 2, counterfact\) has no "requested_rewrite\.subject" field/);
  assertOneLineError(amend('eval', '--model', m, '--data', write('empty.json', ''), '--out', out), /empty file/);
  const cf = `${data}/counterfact/counterfact-rome-format-1000.json`;
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--mode', 'batch:0', '--out', out), /--mode must be single, batch:K/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--mode', 'sideways', '--out', out), /--mode must be/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--protocol', 'final', '--out', out), /--protocol applies to sequential runs only/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--heldout', cf, '--out', out), /--heldout: perplexity drift is measured in sequential runs only/);
  // The option named is the one given.
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--heldout-lines', '--out', out), /--heldout-lines: perplexity drift is measured in sequential runs only/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--heldout-tokens', '64', '--out', out), /--heldout-tokens: perplexity drift is measured in sequential runs only/);
  // A sequential run on a model folder without corpus-heldout.txt has no held-out text for them to apply to.
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:2', '--heldout-tokens', '64', '--out', out), /--heldout-tokens: there is no held-out text to score \(\S*stories260K has no corpus-heldout\.txt\); give it with --heldout FILE/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:2', '--heldout-lines', '--out', out), /--heldout-lines: there is no held-out text to score/);
  const binary = path.join(tmp, 'junk.bin');
  fs.writeFileSync(binary, Buffer.from([0x50, 0x4b, 3, 4, 0, 0, 0x41]));
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:2', '--heldout', binary, '--out', out), /junk\.bin: holds NUL bytes, so it is not text/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:2', '--heldout', path.join(tmp, 'no.txt'), '--out', out), /^amend: --heldout \S*no\.txt: no such file; give a text file/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:2', '--heldout', tmp, '--out', out), /^amend: --heldout \S+ is a folder; give a text file of held-out text/);
  assertOneLineError(amend('eval', '--model', m, '--data', tmp, '--out', out), /^amend: --data \S+ is a folder; give a benchmark file/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--mode', 'sequential:3', '--protocol', 'later', '--out', out), /--protocol must be immediate or final/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--method', 'grace', '--out', out), /--method must be one of rome, memit/);
  assertOneLineError(amend('eval', '--model', m, '--data', path.join(tmp, 'nope.json'), '--out', out), /^amend: --data \S*nope\.json: no such file; give a benchmark file/);
  assertOneLineError(amend('eval', '--model', m, '--out', out), /--data is required/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--out', cf), /is a file, not a folder/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'sequential:3', '--out', out), /sequential:3 needs 3 cases, but there are only 2/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'batch:1,2,1', '--out', out), /batch:1,2,1 gives batch size 1 twice; give each size once/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '2', '--mode', 'batch:1,3', '--out', out), /batch:3 needs 3 cases, but there are only 2; lower K/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--set', 'v_lrr=1', '--out', out), /unknown ROME hparam "v_lrr"/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--resume', '--out', out), /no interrupted run to resume/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '3', '--mode', 'sequential:2', '--out', out), /--n 3 with --mode sequential:2 would evaluate only the first 2 cases; give --n 2, or --mode sequential:3/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--stop-after', '1'), /--stop-after needs --out DIR/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--qa-template', path.join(tmp, 'none.txt'), '--out', out), /--qa-template \S*none\.txt: no such file; give a text file/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--qa-template', write('two.txt', 'Q: {} {}'), '--out', out), /--qa-template .*two\.txt: the template has 2 "\{\}" placeholders/);
  assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--qa-cut', 'word', '--out', out), /--qa-cut must be "length" or "line", not "word"/);
  if (fs.existsSync('/proc/self')) {
    // a place where no folder can be made (mkdir answers ENOENT there): one line, before any work
    assertOneLineError(amend('eval', '--model', m, '--data', cf, '--n', '1', '--out', '/proc/amend-no-report'), /\/proc\/amend-no-report: cannot be created here \(ENOENT\)/);
  }
  assert.ok(!fs.existsSync(out), 'nothing written');
  // Every case refused: an error, not an empty report that looks like a result.
  const long = { ...good, requested_rewrite: { ...good.requested_rewrite, prompt: `{} is in ${'the town of '.repeat(200)}` } };
  const refused = path.join(tmp, 'refused');
  // (a corpus for the statistics, so that the model's own samples are not used and announced)
  const corpus = write('corpus.txt', 'The Eiffel Tower is in Paris.\nRome is the capital of Italy.\n');
  assertOneLineError(amend('eval', '--model', m, '--data', write('long.json', JSON.stringify([long, { ...long, case_id: 2 }])), '--set', `mom2_dataset=${corpus}`, '--out', refused),
    /the editor \(rome\) refused all 2 case\(s\), so nothing was measured \(first: the prompt and target take \d+ tokens.*more than the model's 512 positions/);
  // found before the baselines and the statistics are computed, so no report folder either
  assert.ok(!fs.existsSync(refused), 'no report for a run that measured nothing');
});

test('amend eval --split: MQuAKE-Remastered cases of one run split, their labels in cases.jsonl, the split in the summary, broken down by label when they differ', { skip: models ? false : 'no ../shared/models' }, () => {
  // A synthetic file in the Hugging Face copy's layout (split: run size → the case's labels there).
  const rec = (caseId: number, labels: string[]) => ({
    case_id: caseId,
    requested_rewrite: [{ prompt: '{} lives in the town of', relation_id: 'P551', subject: `Tom${caseId}`, question: `Where does Tom${caseId} live?`, target_new_str: 'Oak', target_true_str: 'Elm' }],
    questions: [`Which town is home to Tom${caseId}?`], answer: 'Elm', answer_alias: [], new_answer: 'Oak', new_answer_alias: [],
    orig_triples: [], new_triples: [], split: { '2': labels, all: ['edited'] },
  });
  const file = path.join(tmp, 'remastered.jsonl');
  fs.writeFileSync(file, [rec(1, []), rec(2, ['edited']), rec(3, ['unedited']), rec(4, ['edited'])].map((r) => JSON.stringify(r)).join('\n'));
  const out = path.join(tmp, 'split');
  const r = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', file, '--split', '2', ...FAST, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 case\(s\) of .*remastered\.jsonl \(mquake-remastered, split 2: 2 edited case\(s\)\)/);
  const lines = fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.id, l.split]), [[2, { '2': ['edited'], all: ['edited'] }], [4, { '2': ['edited'], all: ['edited'] }]]);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).config.data.split, '2');
  assert.match(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'), /- data: .*remastered\.jsonl \(mquake-remastered, edited cases of split 2\), 2 case\(s\)/);
  // every case of split 2 is "edited": nothing to break down by label
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).bySplitLabel, undefined);
  assert.doesNotMatch(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'), /By split label/);

  // CF-6334 style: run split 1000 edits train_edited and test_edited cases (one both), reported apart
  const cf6334 = path.join(tmp, 'cf6334.jsonl');
  const labels6334 = [['train_edited'], ['test_unedited'], ['test_edited'], ['train_edited', 'test_edited']];
  fs.writeFileSync(cf6334, labels6334.map((l, i) => JSON.stringify({ ...rec(i + 1, []), split: { '1000': l } })).join('\n'));
  const byLabel = path.join(tmp, 'split-6334');
  const b = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', cf6334, '--split', '1000', ...FAST, '--out', byLabel);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /\nsplit 1000 by label \(test_edited 2 case\(s\), train_edited 2 case\(s\)\): in summary\.md, "By split label"\n/);
  const summary = JSON.parse(fs.readFileSync(path.join(byLabel, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.bySplitLabel.map((g: { label: string; cases: number }) => [g.label, g.cases]), [['test_edited', 2], ['train_edited', 2]]);
  // each label's rows are the summary of its cases' lines in cases.jsonl (cost aside: a case per call here too)
  const caseLines: CaseRecord[] = fs.readFileSync(path.join(byLabel, 'cases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(caseLines.map((l) => l.id), [1, 3, 4]);
  for (const g of summary.bySplitLabel) {
    const rows = summarizeRecords(caseLines.filter((l) => l.split!['1000']!.includes(g.label)));
    assert.deepEqual(g.rows, JSON.parse(JSON.stringify(rows)), g.label);
  }
  const md = fs.readFileSync(path.join(byLabel, 'summary.md'), 'utf8');
  assert.match(md, /## By split label\n\nThe cases of run split 1000 grouped by their labels there/);
  assert.match(md, /\| rewrite_acc \| test_edited \| [\d.]+ \| \[.*\] \| 2 \|\n\| rewrite_acc \| train_edited \| [\d.]+ \| \[.*\] \| 2 \|/);
  // --json carries it too, without a report folder
  const j = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', cf6334, '--split', '1000', ...FAST, '--json');
  assert.equal(j.code, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout).bySplitLabel.map((g: { label: string }) => g.label), ['test_edited', 'train_edited']);
  // --n counts the split's cases; a split the file lacks, or --split on a file without labels: one line
  const one = amend('eval', '--model', `${models}/stories260K`, '--method', 'rome', '--data', file, '--split', '2', '--n', '1', ...FAST, '--json');
  assert.equal(one.code, 0, one.stderr);
  assert.equal(JSON.parse(one.stdout).cases, 1);
  const never = path.join(tmp, 'split-never');
  assertOneLineError(amend('eval', '--model', `${models}/stories260K`, '--data', file, '--split', '100', '--out', never), /no split "100"; the records' splits are "2", "all"/);
  assertOneLineError(amend('eval', '--model', 'world', '--data', 'world', '--split', '2', '--out', never), /split "2" selects cases by MQuAKE-Remastered's "split" labels, but these records \(amend-world\) have no "split" field/);
  assert.ok(!fs.existsSync(never), 'nothing written');
});
