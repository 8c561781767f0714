// Command-line parsing shared by every command: node's parseArgs plus the help text, so a
// command declares its options once.
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AmendError, closest, MAX_SEED } from '../errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given several times (the value is then a list, in order). */
  multiple?: boolean;
  /** Shown in --help, e.g. "N  number of new tokens (default 20)". */
  help: string;
  /** What other commands call this option (eval's --n for edit's --limit): suggested when typed here. */
  elsewhere?: readonly string[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** Example command lines; after the first blank entry, notes (shown under the examples). */
  examples: string[];
  /** Each subcommand's own usage, shown by `amend CMD SUB --help` instead of the whole command's. */
  subcommands?: Record<string, string>;
}

/** The usage and title of the command, or of one of its subcommands when `sub` names one. */
function usageOf(spec: CommandSpec, sub?: string): { name: string; usage: string } {
  const own = sub !== undefined && spec.subcommands && Object.hasOwn(spec.subcommands, sub) ? spec.subcommands[sub] : undefined;
  return own === undefined ? { name: spec.name, usage: spec.usage } : { name: `${spec.name} ${sub}`, usage: own };
}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: 'machine-readable output on stdout' },
  threads: { type: 'string', help: 'N  worker threads for kernels and BLAS (default: all cores)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/**
 * The options and examples help shows: a subcommand's own (the options its usage names, the
 * examples that run it, all of them when none does), else the whole command's.
 */
function helpContent(spec: CommandSpec, sub?: string): { options: [string, OptionSpec][]; examples: string[] } {
  const { name, usage } = usageOf(spec, sub);
  if (name === spec.name) return { options: Object.entries({ ...spec.options, ...COMMON_OPTIONS }), examples: spec.examples };
  const named = new Set([...usage.matchAll(/--([a-z][\w-]*)/g)].map((m) => m[1]!));
  const options = [...Object.entries(spec.options).filter(([k]) => named.has(k)), ...Object.entries(COMMON_OPTIONS)];
  const own = spec.examples.filter((e) => e.startsWith(`amend ${name} `) || e === `amend ${name}`);
  return { options, examples: own.length ? own : spec.examples };
}

export function helpText(spec: CommandSpec, sub?: string): string {
  const { name, usage } = usageOf(spec, sub);
  const { options, examples } = helpContent(spec, sub);
  const lines = [`amend ${name} — ${spec.summary}`, '', `usage: ${usage}`, '', 'options:'];
  for (const [name, o] of options) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}`;
    lines.push(`  ${flag.padEnd(22)} ${o.help}`);
  }
  lines.push('', 'examples:', ...examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/**
 * The help as data (for --help --json): the same options, usage and examples as helpText, the
 * examples only command lines and the notes after them one text (its lines and blank lines kept).
 */
export function helpJson(spec: CommandSpec, sub?: string): object {
  const content = helpContent(spec, sub);
  const options = content.options.map(([name, o]) => ({
    name, type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}), help: o.help,
  }));
  const { name, usage } = usageOf(spec, sub);
  const blank = content.examples.indexOf('');
  const examples = blank < 0 ? content.examples : content.examples.slice(0, blank);
  const notes = blank < 0 ? '' : content.examples.slice(blank + 1).join('\n').trim();
  return { command: name, summary: spec.summary, usage, options, examples, ...(notes ? { notes } : {}) };
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options: ParseArgsConfig['options'] = {};
  const all = { ...spec.options, ...COMMON_OPTIONS };
  for (const [name, o] of Object.entries(all)) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  const see = `see amend ${spec.name} --help`;
  const parsed = (() => {
    try {
      return parseArgs({ args: joinNegativeValues(argv, options), options, allowPositionals: true, strict: true, tokens: true });
    } catch (e) {
      throw new AmendError(`${parseErrorLine(e as Error & { code?: string }, all)} (${see})`);
    }
  })();
  // parseArgs keeps the last of a repeated option silently: "--n 5 --n 50" is more likely a slip
  // (an edited command line, a flag pasted twice) than a wish, so only "multiple" options repeat.
  const seen = new Map<string, string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || all[t.name]?.multiple) continue;
    const shown = t.value === undefined ? t.rawName : `${t.rawName} ${JSON.stringify(t.value)}`;
    const first = seen.get(t.name);
    if (first !== undefined) throw new AmendError(`--${t.name} is given twice (${first}, then ${shown}); give it once (${see})`);
    seen.set(t.name, shown);
  }
  return { values: parsed.values as Parsed['values'], positionals: parsed.positionals };
}

/** parseArgs's errors, as one line in the terms of the help text, with the nearest option for a typo. */
function parseErrorLine(err: Error & { code?: string }, all: Record<string, OptionSpec>): string {
  const quoted = /'(-[^' ]*)/.exec(err.message)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) {
    const typed = quoted.replace(/^-+/, '').replace(/=.*$/, '');
    const near = Object.keys(all).find((k) => all[k]!.elsewhere?.includes(typed))
      ?? (quoted.startsWith('--') || typed.length > 1 ? closest(typed, Object.keys(all)) : undefined);
    // "-hi" as a prompt reads as the options -h -i: say how to pass text that starts with "-".
    const hint = near ? ` (did you mean --${near}?)` : !quoted.startsWith('--') ? ' (an argument that starts with "-" goes after "--")' : '';
    return `unknown option ${quoted}${hint}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    // "Option '-n, --max-new-tokens <value>' argument missing", "Option '--greedy' does not take an
    // argument", "Option '--prompt' argument is ambiguous. ... use '--prompt=-XYZ'".
    const name = /--([\w-]+)/.exec(err.message)?.[1];
    if (name && /argument missing/.test(err.message)) return `--${name} needs a value`;
    if (name && /does not take an argument/.test(err.message)) return `--${name} is a switch and takes no value`;
    if (name && /ambiguous/.test(err.message)) return `--${name} needs a value (the next argument starts with "-", so it is not taken as one; a value that does is written --${name}=-VALUE)`;
  }
  return err.message.split('\n')[0]!;
}

/** " (did you mean X?)" for an unknown command or subcommand, or "". */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const near = closest(word, candidates);
  return near ? ` (did you mean ${near}?)` : '';
}

/**
 * Two spellings parseArgs misreads, rewritten to the one it reads:
 * - `--n -1` as `--n=-1`: parseArgs reads a value that starts with '-' as another option, so a
 *   negative number would otherwise fail as "ambiguous" instead of reaching the option's own check;
 * - `-n=5` as `--max-new-tokens=5`: parseArgs takes "=5" as the value of -n (and `-h=1` as the
 *   switches -h, -= and -1), where the long form with "=" is what was meant.
 * Nothing after "--" is touched: it is text, not options.
 */
function joinNegativeValues(argv: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  const byShort = (c: string): string | undefined => Object.keys(options).find((k) => options[k].short === c);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const shortEq = /^-([^-=])=(.*)$/s.exec(a);
    const shortName = shortEq ? byShort(shortEq[1]!) : undefined;
    if (shortEq && shortName) {
      out.push(`--${shortName}=${shortEq[2]}`);
      continue;
    }
    const name = a.startsWith('--') ? a.slice(2) : a.length === 2 && a[0] === '-' ? byShort(a[1]!) : undefined;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(a);
      // the value of a string option is passed on as it is, never read as an option itself
      if (name && options[name]?.type === 'string' && next !== undefined) out.push(argv[++i]!);
    }
  }
  return out;
}

/** A string option's value, or undefined when absent (or given as a bare flag). */
export function strOption(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Every value of an option declared `multiple` (or the single value of one that is not). */
export function listOption(args: Parsed, name: string): string[] {
  const v = args.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** An integer option (decimal digits), with a clear error for anything else (Number("") is 0: a blank is refused). */
export function intOption(v: string | boolean | string[] | undefined, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  // Digits only: Number() also reads "1e3", "0x10", " 5" and "+5", none of which is a count a user types.
  if (typeof v !== 'string' || !/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new AmendError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`}, got "${String(v)}"`);
  }
  return n;
}

/** A seed: mulberry32 takes 32 bits, so a larger seed would silently repeat a smaller one. */
export function seedOption(v: string | boolean | string[] | undefined, fallback: number): number;
export function seedOption(v: string | boolean | string[] | undefined): number | undefined;
export function seedOption(v: string | boolean | string[] | undefined, fallback?: number): number | undefined {
  return v === undefined ? fallback : intOption(v, 'seed', 0, 0, MAX_SEED);
}

export function numberOption(v: string | boolean | string[] | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  // A decimal number (0.8, .5, 1e-3); Number() would also take "0x1", "Infinity" and blanks.
  if (typeof v !== 'string' || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v) || !Number.isFinite(n)) {
    throw new AmendError(`--${name} must be a number, got "${String(v)}"`);
  }
  return n;
}

/**
 * A file option that names no existing path: one line that names the option too (the reader's own
 * "FILE: no such file" leaves a user with several file options guessing which). "world" and the
 * like are left to the reader.
 */
export function requireExisting(flag: string, file: string | undefined, what: string, names: readonly string[] = [], folder = false): void {
  if (file === undefined || names.includes(file)) return;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new AmendError(`--${flag} ${file}: no such file; give ${what}`);
  // Read as a file later, a folder would fail as EISDIR, a code and not a reason.
  if (!folder && st.isDirectory()) throw new AmendError(`--${flag} ${file} is a folder; give ${what}`);
}
