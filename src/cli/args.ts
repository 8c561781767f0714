// Command-line parsing shared by every command: node's parseArgs plus the help text, so a
// command declares its options once.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AmendError } from '../errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given several times (the value is then a list, in order). */
  multiple?: boolean;
  /** Shown in --help, e.g. "N  number of new tokens (default 20)". */
  help: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  examples: string[];
}

export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: 'machine-readable output on stdout' },
  threads: { type: 'string', help: 'N  worker threads for kernels and BLAS (default: all cores)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export function helpText(spec: CommandSpec): string {
  const opts = { ...spec.options, ...COMMON_OPTIONS };
  const lines = [`amend ${spec.name} — ${spec.summary}`, '', `usage: ${spec.usage}`, '', 'options:'];
  for (const [name, o] of Object.entries(opts)) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}`;
    lines.push(`  ${flag.padEnd(22)} ${o.help}`);
  }
  lines.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options: ParseArgsConfig['options'] = {};
  for (const [name, o] of Object.entries({ ...spec.options, ...COMMON_OPTIONS })) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, options), options, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    const unknown = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(err.message) : null;
    const what = unknown ? `unknown option ${unknown[1]}` : err.message.split('\n')[0];
    throw new AmendError(`${what} (see amend ${spec.name} --help)`);
  }
}

/**
 * `--n -1` as `--n=-1`: parseArgs reads a value that starts with '-' as another option, so a
 * negative number would otherwise fail as "ambiguous" instead of reaching the option's own check.
 */
function joinNegativeValues(argv: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : a.length === 2 && a[0] === '-' ? Object.keys(options).find((k) => options[k].short === a[1]) : undefined;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(a);
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

/** An integer option, with a clear error for anything else (Number("") is 0: a blank is refused). */
export function intOption(v: string | boolean | string[] | undefined, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new AmendError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`}, got "${String(v)}"`);
  }
  return n;
}

/** A sampling seed: mulberry32 takes 32 bits, so a larger seed would silently repeat a smaller one. */
export function seedOption(v: string | boolean | string[] | undefined, fallback: number): number {
  return intOption(v, 'seed', fallback, 0, 2 ** 32 - 1);
}

export function numberOption(v: string | boolean | string[] | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) {
    throw new AmendError(`--${name} must be a number, got "${String(v)}"`);
  }
  return n;
}
