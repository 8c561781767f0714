// The command line's own contract, whatever the command: strict numbers, a flag given once, the
// nearest option or command named for a typo, help on stdout, and with --json a failure that is
// a JSON document too. Most cases fail before a model is loaded, so these runs take well under a
// second each.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { intOption, numberOption } from '../src/cli/args.js';
import { closest } from '../src/errors.js';
import { Progress } from '../src/cli/progress.js';
import { assertOneLineError, repoRoot, runCli } from './helpers.js';

const amend = (...args: string[]) => runCli(args);

test('integer options take decimal digits only', async (t) => {
  for (const junk of ['1e3', '0x10', ' 5', '+5', '1x', '1.5', '', '-3']) {
    await t.test(JSON.stringify(junk), () => {
      assertOneLineError(amend('generate', '--model', 'world', 'Q: Where was', '-n', junk), new RegExp(`--max-new-tokens must be an integer ≥ 0, got "${junk.replace('+', '\\+')}"`));
    });
  }
  assertOneLineError(amend('logits', '--model', 'world', '--ids', '5', '--top', '1e3'), /--top must be an integer ≥ 1, got "1e3"/);
  assertOneLineError(amend('eval', '--model', 'world', '--data', 'world', '--n', '1e3'), /--n must be an integer ≥ 1, got "1e3"/);
  assert.equal(intOption('007', 'n', 0), 7);
  assert.equal(intOption(undefined, 'n', 4), 4);
  assert.throws(() => intOption('99999999999999999999', 'n', 0), /--n must be an integer/);
});

test('number options take decimal numbers, not hexadecimal, blanks or Infinity', () => {
  for (const ok of ['0.8', '.5', '1e-3', '2', '-1.5']) assert.equal(numberOption(ok, 'x'), Number(ok));
  for (const junk of ['0x1', ' 1', 'Infinity', '', '1,5', 'abc']) assert.throws(() => numberOption(junk, 'top-p'), /--top-p must be a number/, junk);
  assertOneLineError(amend('generate', '--model', 'world', 'x', '--top-p', '0x1'), /--top-p must be a number, got "0x1"/);
});

test('a flag given twice is refused; repeatable ones repeat', () => {
  assertOneLineError(amend('generate', '--model', 'world', 'x', '-n', '3', '--max-new-tokens', '4'), /^amend: --max-new-tokens is given twice \(-n "3", then --max-new-tokens "4"\); give it once/);
  assertOneLineError(amend('doctor', '--json', '--json'), /--json is given twice/);
  assertOneLineError(amend('doctor', '--threads', '1', '--threads', '2'), /--threads is given twice/);
  // --set is repeatable: the run gets past parsing to the check of the second key.
  assertOneLineError(amend('edit', '--model', 'world', '--prompt', '{} is', '--subject', 's', '--target', 't', '--set', 'v_lr=0.1', '--set', 'nope=1'), /unknown ROME hparam "nope"/);
});

test('typos name the nearest option, command or subcommand', () => {
  assertOneLineError(amend('demo', '--jsn'), /unknown option --jsn \(did you mean --json\?\)/);
  assertOneLineError(amend('edit', '--target_true', 'x'), /unknown option --target_true \(did you mean --target-true\?\)/);
  assertOneLineError(amend('edit', '--export-dir', 'x'), /did you mean --export\?/);
  // the count flag another command names differently
  assertOneLineError(amend('edit', '--n', '10'), /unknown option --n \(did you mean --limit\?\)/);
  assertOneLineError(amend('eval', '--limit', '10'), /unknown option --limit \(did you mean --n\?\)/);
  assertOneLineError(amend('genrate'), /unknown command "genrate" \(did you mean generate\?\)/);
  assertOneLineError(amend('--threads', '1', 'doctor'), /^amend: "--threads" is not a command: options go after one \(amend <command> --threads \.\.\.; commands: demo,/);
  assertOneLineError(amend('--vesion'), /unknown command "--vesion" \(did you mean version\?\)/);
  assertOneLineError(amend('patch', 'shw'), /unknown subcommand "shw" \(did you mean show\?\)/);
  assertOneLineError(amend('world', 'bild'), /unknown subcommand "bild" \(did you mean build\?\)/);
  assertOneLineError(amend('help', 'edt'), /no command "edt" \(did you mean edit\?\)/);
  // text that starts with "-" reads as options: say where it goes
  assertOneLineError(amend('generate', '--model', 'world', '-x'), /unknown option -x \(an argument that starts with "-" goes after "--"\)/);
  assert.equal(closest('bogus', ['model', 'json']), undefined);
  assert.equal(closest('lay', ['layers', 'layer']), undefined, 'ambiguous prefix');
  assert.equal(closest('temprature', ['temperature', 'top-p']), 'temperature');
});

test('missing values and values given to a switch: one line in the help text\'s terms', () => {
  assertOneLineError(amend('logits', '--model', 'world', '--ids'), /^amend: --ids needs a value \(see amend logits --help\)$/);
  assertOneLineError(amend('generate', '--model', 'world', 'x', '--greedy=yes'), /^amend: --greedy is a switch and takes no value/);
  assertOneLineError(amend('edit', '--prompt', '-x'), /--prompt needs a value \(the next argument starts with "-", so it is not taken as one; a value that does is written --prompt=-VALUE\)/);
});

test('a short option with "=" (-n=5) is read as the long one with "=", never "=5" or the switches -h -= -1', () => {
  const long = amend('generate', '--model', 'world', '--greedy', '--max-new-tokens=3', 'Q: Where was');
  const short = amend('generate', '--model', 'world', '--greedy', '-n=3', 'Q: Where was');
  assert.equal(short.code, 0, short.stderr);
  assert.equal(short.stdout, long.stdout);
  assertOneLineError(amend('generate', '--model', 'world', '-n=x', 'y'), /^amend: --max-new-tokens must be an integer ≥ 0, got "x"$/);
  assertOneLineError(amend('doctor', '-h=1'), /^amend: --help is a switch and takes no value \(see amend doctor --help\)$/);
  // after "--" it is text, and the value of a string option is its value
  const text = amend('generate', '--model', 'world', '-n', '1', '--greedy', '--', '-n=5');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^-n=5/);
});

test('values out of range are echoed; logits says how long a sequence can be and what --text needs', () => {
  assertOneLineError(amend('generate', '--model', 'world', 'x', '--top-p', '1.5'), /^amend: --top-p must be in \(0, 1\] .*, got 1\.5$/);
  assertOneLineError(amend('generate', '--model', 'world', 'x', '--temperature', '0'), /^amend: --temperature must be > 0 \(use --greedy for argmax\), got 0$/);
  assertOneLineError(amend('logits', '--model', 'world', '--text', ''), /^amend: --text is empty; give the text to score, or token ids with --ids$/);
  assertOneLineError(amend('logits', '--model', 'world', '--ids', Array(200).fill(5).join(',')), /^amend: --ids gives 200 tokens, more than the model's 128 positions; give at most 128$/);
  assertOneLineError(amend('logits', '--model', 'world', '--text', 'a b '.repeat(100)), /^amend: --text encodes to \d+ tokens, more than the model's 128 positions; give at most 128$/);
  assert.equal(amend('logits', '--model', 'world', '--ids', Array(128).fill(5).join(','), '--json').code, 0);
});

test('every command and subcommand: --help on stdout, exit 0, with examples; amend help CMD too', () => {
  const all = [['demo'], ['doctor'], ['edit'], ['eval'], ['export'], ['generate'], ['logits'], ['patch'], ['patch', 'show'],
    ['patch', 'apply'], ['patch', 'revert'], ['stats'], ['world'], ['world', 'build'], ['world', 'info']];
  for (const cmd of all) {
    const r = amend(...cmd, '--help');
    assert.equal(r.code, 0, cmd.join(' '));
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`^amend ${cmd.join(' ')} — `));
    assert.match(r.stdout, /examples:\n {2}amend /);
  }
  const h = amend('help', 'edit');
  assert.equal(h.code, 0);
  assert.equal(h.stdout, amend('edit', '--help').stdout);
});

test('a subcommand\'s --help gives its own usage; --help --json keeps notes out of the examples', () => {
  for (const [cmd, sub] of [['patch', 'show'], ['patch', 'apply'], ['patch', 'revert'], ['world', 'build'], ['world', 'info']] as const) {
    const r = amend(cmd, sub, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^amend ${cmd} ${sub} — `));
    const usage = /^usage: (.*)$/m.exec(r.stdout)![1]!;
    assert.ok(usage.startsWith(`amend ${cmd} ${sub} `), usage);
    // only this subcommand's usage: no other subcommand named in it
    for (const other of ['show', 'apply', 'revert', 'build', 'info'].filter((o) => o !== sub)) assert.ok(!usage.includes(`amend ${cmd} ${other}`), usage);
    const j = JSON.parse(amend(cmd, sub, '--help', '--json').stdout);
    assert.equal(j.command, `${cmd} ${sub}`);
    assert.equal(j.usage, usage);
    // the options its usage names (and the common ones), not its siblings'
    const listed = [...r.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z][\w-]*)/gm)].map((m) => m[1]!);
    const named = new Set([...usage.matchAll(/--([a-z][\w-]*)/g)].map((m) => m[1]!));
    const common = ['json', 'threads', 'help'];
    assert.deepEqual(new Set(listed.filter((o) => !common.includes(o))), new Set([...named].filter((o) => !common.includes(o))), `${cmd} ${sub}: ${listed}`);
    assert.deepEqual(j.options.map((o: { name: string }) => o.name), listed);
    // "amend help CMD SUB" is "amend CMD SUB --help"
    assert.equal(amend('help', cmd, sub).stdout, r.stdout);
  }
  assert.ok(!amend('world', 'info', '--help').stdout.includes('--seed'), 'build\'s options are not info\'s');
  assert.ok(!amend('patch', 'show', '--help').stdout.includes('--drop'));
  // edit's first usage line names both ways of giving requests
  assert.match(/^usage: (.*)$/m.exec(amend('edit', '--help').stdout)![1]!, /--prompt P .*\| --requests FILE \[--limit N\]/);
  for (const cmd of ['demo', 'edit', 'eval', 'export', 'patch', 'stats', 'doctor']) {
    const j = JSON.parse(amend(cmd, '--help', '--json').stdout) as { examples: string[]; notes?: string };
    assert.ok(j.examples.length > 0, cmd);
    for (const e of j.examples) assert.match(e, /^(AMEND_\w+=\S+ )?amend /, `${cmd}: ${JSON.stringify(e)} is not a command line`);
    const text = amend(cmd, '--help').stdout;
    // the notes are the text help's, line for line
    if (j.notes) assert.ok(text.includes(j.notes.split('\n').map((l) => `  ${l}`.trimEnd()).join('\n')), cmd);
  }
  assert.match(JSON.parse(amend('edit', '--help', '--json').stdout).notes, /^hparams come from the preset/);
});

test('--json: a failure is one JSON document on stdout as well as one line on stderr', () => {
  for (const args of [['generate', 'x', '--json'], ['generate', '--bogus', '--json'], ['patch', 'show', '/no/such/patch.safetensors', '--json'], ['frobnicate', '--json']]) {
    const r = amend(...args);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    const doc = JSON.parse(r.stdout) as { error: { message: string; exitCode: number } };
    assert.equal(doc.error.exitCode, 1);
    assert.equal(`amend: ${doc.error.message}`, r.stderr.trim());
  }
  // without --json (or with it after "--", where it is text) stdout stays empty
  assert.equal(amend('generate', 'x').stdout, '');
  const text = amend('generate', '--model', 'world', '-n', '1', '--greedy', '--', '--json');
  assert.equal(text.code, 0, text.stderr);
  assert.throws(() => JSON.parse(text.stdout));
});

test('AMEND_THREADS may carry blanks around its number', () => {
  const run = (threads: string) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'doctor', '--json'],
    { encoding: 'utf8', env: { ...process.env, AMEND_THREADS: threads } });
  const ok = run(' 1 ');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).threads, 1);
  assert.match(run('1e0').stderr, /^amend: AMEND_THREADS must be an integer from 1 to 1024, got "1e0"\n$/);
});

/** A clock the test sets (`clock.now`) and the stderr writes, for drawing progress bars off a terminal. */
function fakeTerminal(t: TestContext): { clock: { now: number }; writes: string[] } {
  const clock = { now: 0 };
  t.mock.method(Date, 'now', () => clock.now);
  const writes: string[] = [];
  t.mock.method(process.stderr, 'write', (s: string) => { writes.push(s); return true; });
  return { clock, writes };
}

test('a progress bar blanks the rest of a longer line it redraws', (t) => {
  const { clock, writes } = fakeTerminal(t);
  const bar = new Progress('p', 100, true);
  clock.now = 10000; bar.update(10); // "10/100 10.0s eta 90.0s"
  clock.now = 10100; bar.update(90); // "90/100 10.1s eta 1.1s": one character shorter
  bar.done();
  t.mock.restoreAll();
  assert.equal(writes.length, 3);
  assert.ok(writes[0]!.startsWith('\r') && writes[1]!.startsWith('\r'));
  assert.equal(writes[1]!.length, writes[0]!.length, 'padded to the longer line');
  assert.match(writes[1]!, /eta 1\.1s +$/);
  assert.equal(writes[2], '\n');
});

test('a progress bar marked part-way counts its eta from the mark, and shows a note after it', (t) => {
  const { clock, writes } = fakeTerminal(t);
  const bar = new Progress('eval', 100, true);
  clock.now = 5000; bar.mark(50); // a resumed run: 50 done before, 5 s of set-up
  clock.now = 7000; bar.update(60, 'scoring'); // 10 units in 2 s: 40 left take 8 s
  bar.done();
  clock.now = 7200; bar.update(70); // after done(), a new line (another bar came between)
  t.mock.restoreAll();
  assert.match(writes[0]!, /^\reval \[#{18}\.{12}\] 60\/100 7\.0s eta 8\.0s scoring$/);
  assert.equal(writes[1], '\n');
  assert.match(writes[2]!, /^\reval .* 70\/100 /);
});

test('no progress bar when stderr is not a terminal', () => {
  const r = amend('stats', '--model', 'world', '--layers', '0', '--samples', '20', '--no-cache');
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /\r/);
});
