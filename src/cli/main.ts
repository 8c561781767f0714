#!/usr/bin/env node
// amend: the command line. Each command lives in commands/<name>.ts with its spec (options,
// help, examples) and a run function. User errors (AmendError) print one line and exit 1;
// anything else is a bug and keeps its stack trace (exit 70). With --json a failure also prints
// one JSON document on stdout, {"error": {...}}.
import { AmendError } from '../errors.js';
import { amendVersion } from '../version.js';
import { kernels } from '../backend/index.js';
import { didYouMean, helpJson, helpText, intOption, parse, type CommandSpec, type Parsed } from './args.js';
import * as demo from './commands/demo.js';
import * as doctor from './commands/doctor.js';
import * as edit from './commands/edit.js';
import * as evalCmd from './commands/eval.js';
import * as exportCmd from './commands/export.js';
import * as generate from './commands/generate.js';
import * as logits from './commands/logits.js';
import * as patch from './commands/patch.js';
import * as stats from './commands/stats.js';
import * as world from './commands/world.js';

// A command's run may return its exit status (a run stopped by a signal: 130, 143); none is 0.
interface Command { spec: CommandSpec; run: (args: Parsed) => Promise<void | number> }

const COMMANDS: Record<string, Command> = {
  demo, doctor, generate, logits, world, stats, edit, eval: evalCmd, patch, export: exportCmd,
};

function usage(): string {
  const lines = ['amend — edit what a language model knows', '', 'usage: amend <command> [options]', '', 'commands:'];
  for (const c of Object.values(COMMANDS)) lines.push(`  ${c.spec.name.padEnd(10)} ${c.spec.summary}`);
  lines.push('', 'amend <command> --help shows its options and examples; amend --version prints the version.');
  return lines.join('\n');
}

/** The command of that name; an own key only ("constructor" is a key of every object). */
function commandNamed(name: string): Command | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

async function main(argv: string[]): Promise<number> {
  // Every command takes --json, so `amend --json version` or `amend --json edit ...` means the same
  // with --json after the command; other options before a command are refused below.
  if (argv[0] === '--json' && argv.length > 1) {
    const end = argv.indexOf('--');
    argv = end < 0 ? [...argv.slice(1), '--json'] : [...argv.slice(1, end), '--json', ...argv.slice(end)];
  }
  const [name, ...rest] = argv;
  if (!name) {
    // No command is a usage error: the usage goes to stderr, where errors go.
    process.stderr.write(`${usage()}\n`);
    return 1;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    // "amend help edit" is "amend edit --help".
    // "amend help patch apply" is "amend patch apply --help".
    const [asked, sub] = rest.filter((a) => a !== '--json');
    const topic = name === 'help' && asked !== undefined ? commandNamed(asked) : undefined;
    if (name === 'help' && asked !== undefined && !topic) throw new AmendError(`no command "${asked}"${didYouMean(asked, Object.keys(COMMANDS))} (commands: ${Object.keys(COMMANDS).join(', ')})`);
    if (!wantsJson(argv)) console.log(topic ? helpText(topic.spec, sub) : usage());
    else printJson(topic ? helpJson(topic.spec, sub) : { commands: Object.values(COMMANDS).map((c) => ({ name: c.spec.name, summary: c.spec.summary })) });
    return 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    if (wantsJson(argv)) printJson({ version: amendVersion() });
    else console.log(`amend ${amendVersion()}`);
    return 0;
  }
  const command = commandNamed(name);
  if (!command) {
    const near = didYouMean(name.replace(/^-+/, ''), [...Object.keys(COMMANDS), 'help', 'version']);
    // `amend --threads 2 demo`: the options are each command's, so they follow it.
    if (!near && name.startsWith('-')) throw new AmendError(`"${name}" is not a command: options go after one (amend <command> ${name} ...; commands: ${Object.keys(COMMANDS).join(', ')})`);
    throw new AmendError(`unknown command "${name}"${near} (commands: ${Object.keys(COMMANDS).join(', ')}; see amend --help)`);
  }
  const args = parse(command.spec, rest);
  if (args.values.help) {
    // `amend patch apply --help`: that subcommand's usage
    const sub = args.positionals[0];
    if (args.values.json) printJson(helpJson(command.spec, sub));
    else console.log(helpText(command.spec, sub));
    return 0;
  }
  const fromFlag = args.values.threads !== undefined;
  const threads = fromFlag ? args.values.threads : process.env.AMEND_THREADS;
  if (threads !== undefined) {
    // The native pool takes at most 1024 threads.
    if (!fromFlag && !(/^\s*[1-9]\d*\s*$/.test(threads as string) && Number(threads) <= 1024)) throw new AmendError(`AMEND_THREADS must be an integer from 1 to 1024, got "${threads}"`);
    kernels().setThreads(intOption(fromFlag ? threads : (threads as string).trim(), 'threads', 0, 1, 1024));
  }
  return (await command.run(args)) ?? 0;
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

// The library reports what it carries on past (statistics left uncached, a default corpus) with
// process.emitWarning, which a program can listen to; here it is one plain line, like the errors,
// without Node's "(node:PID)" prefix and --trace-warnings hint.
// NODE_NO_WARNINGS=1 and --no-warnings silence them, as they silence Node's own printer.
const noWarnings = process.env.NODE_NO_WARNINGS === '1' || [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--no-warnings');
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (noWarnings) return;
  const kind = w.name && w.name !== 'Warning' ? ` (${w.name}${(w as NodeJS.ErrnoException).code ? ` ${(w as NodeJS.ErrnoException).code}` : ''})` : '';
  process.stderr.write(`amend: warning${kind}: ${w.message}\n`);
});

// Output piped into a reader that stops early (amend ... | head): end quietly with the status a
// tool killed by SIGPIPE has (128 + 13), as other tools do; the work was cut short.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(141);
  throw e;
});

/**
 * Messages shared with the library name a way out both ways, "--force (force: true)"; on the
 * command line only the flag means anything.
 */
function forTheCommandLine(message: string): string {
  return message.replace(/(--[a-z][\w-]*) \(\w+: [^()]*\)/g, '$1');
}

/**
 * Whether the command line asked for machine output: then a failure is a JSON document on stdout
 * too, {"error": {"message", "exitCode"}} (plus "internal": true for a bug), besides the line on
 * stderr. Read from the raw arguments, so an error in parsing them is covered; "--" ends options.
 */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => { process.exitCode = code; },
  // After a turn of the event loop: warnings emitted on the way to the failure (process.emitWarning
  // prints on a later tick) come before the error line they explain, not after it.
  (err: unknown) => setImmediate(() => {
    const internal = !(err instanceof AmendError);
    const message = internal ? String((err as Error)?.message ?? err) : forTheCommandLine(err.message);
    const exitCode = internal ? 70 : 1;
    if (internal) process.stderr.write(`amend: internal error (please report): ${(err as Error)?.stack ?? String(err)}\n`);
    else process.stderr.write(`amend: ${message}\n`);
    if (wantsJson(argv)) process.stdout.write(`${JSON.stringify({ error: { message, exitCode, ...(internal ? { internal: true } : {}) } })}\n`);
    process.exitCode = exitCode;
  }),
);
