// amend world: build the demo world and its model (`amend world build`), or describe the built one
// (`amend world info`).
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, refuseDevice, isObject, typeName } from '../../errors.js';
import { builtinWorldDir } from '../../models/model.js';
import { readSafetensorsHeader } from '../../io/safetensors.js';
import { BUILD_FILE, buildWorldModel, defaultWorldDir, pct, resolveTrainConfig, sha256File, type BuildInfo } from '../../world/build.js';
import { DEFAULT_WORLD_SEED } from '../../world/generator.js';
import { SMALL_WORLD_SIZES, type WorldTrainConfig } from '../../world/train.js';
import { resolveSizes } from '../../world/generator.js';
import type { WorldSizes } from '../../world/types.js';
import { didYouMean, intOption, seedOption, type CommandSpec, type Parsed } from '../args.js';
import { Progress } from '../progress.js';
import { cleanUpIfKilled, tempFoldersBeside } from '../interrupt.js';

export const spec: CommandSpec = {
  name: 'world',
  summary: 'build the demo world and its model, or show what the built one holds',
  usage: 'amend world build [--out DIR] [--seed S] [--epochs N] [--config FILE|JSON] [--small] [--force] [--json]  |  amend world info [--model DIR] [--json]',
  subcommands: {
    build: 'amend world build [--out DIR] [--seed S] [--epochs N] [--config FILE|JSON] [--small] [--force] [--json]',
    info: 'amend world info [--model DIR] [--json]',
  },
  options: {
    out: { type: 'string', short: 'o', help: 'DIR  build: output folder (default in a checkout: the repository\'s world/, what --model world loads; required where amend is an installed package)' },
    seed: { type: 'string', help: `S  build: seed of the world, the initialisation and the data order (default ${DEFAULT_WORLD_SEED})` },
    epochs: { type: 'string', help: 'N  build: training epochs (default: the committed configuration\'s)' },
    config: { type: 'string', help: 'FILE|JSON  build: overrides of the training configuration and world sizes, a file or inline, e.g. \'{"epochs": 30, "model": {"layers": 6}, "sizes": {"people": 600}}\'' },
    small: { type: 'boolean', help: 'build: the tiny configuration the reproducibility test uses (seconds; needs --out)' },
    force: { type: 'boolean', help: 'build: replace an --out folder that holds other files (a build replaces the whole folder)' },
    model: { type: 'string', short: 'm', help: 'DIR  info: a world model folder (default: the built-in one)' },
  },
  examples: [
    'amend world build                      # rebuilds world/ from the seed (about 17 minutes on 2 cores)',
    'amend world build --small --out /tmp/w  # a tiny world and model in seconds',
    'amend world build --config variant.json --out /tmp/world-6  # a variant, e.g. {"model": {"layers": 6}}',
    'amend world info --json',
    'amend generate --model world "Q: Where was" --greedy',
  ],
};

export async function run(args: Parsed): Promise<void> {
  const [sub, ...rest] = args.positionals;
  if (rest.length > 0) throw new AmendError(`unexpected argument "${rest[0]}" (see amend world --help)`);
  if (sub === 'build') return build(args);
  if (sub === 'info') return info(args);
  throw new AmendError(sub === undefined
    ? 'say what to do: amend world build, or amend world info (see amend world --help)'
    : `unknown subcommand "${sub}"${didYouMean(sub, ['build', 'info'])} (amend world build | info)`);
}

async function build(args: Parsed): Promise<void> {
  const v = args.values;
  if (v.model !== undefined) throw new AmendError('--model is for amend world info; use --out to choose where build writes');
  const json = v.json === true;
  if (v.out === '') throw new AmendError('--out is empty: give the folder to build into');
  // The default is the demo model the other commands load: a tiny test build never lands there.
  if (v.small === true && v.out === undefined) throw new AmendError('--small builds a tiny test world: give --out DIR (the default, world/, holds the demo model)');
  // An installed package's world/ is what `npm install` put there: rebuilding it in place would
  // replace the shipped model until the next install. Only a checkout builds without --out.
  if (v.out === undefined && defaultWorldDir().split(path.sep).includes('node_modules')) {
    throw new AmendError('amend is installed as a package here: give --out DIR for the build (its world/ is the shipped demo model)');
  }
  const out = typeof v.out === 'string' ? v.out : defaultWorldDir();
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new AmendError(`${out} exists and is not a folder`);
  const seed = seedOption(v.seed);
  const epochs = v.epochs === undefined ? undefined : intOption(v.epochs, 'epochs', 1, 1);
  const small = v.small === true;
  const fromFile = typeof v.config === 'string' ? readConfigFile(v.config, small) : undefined;
  const { sizes, ...overrides } = fromFile ?? {};
  let bar: Progress | null = null;
  const quote = (x: string) => (/^[\w./-]+$/.test(x) ? x : `'${x.replace(/'/g, "'\\''")}'`);
  const command = ['amend world build', ...(v.out !== undefined ? [`--out ${quote(path.resolve(out))}`] : []), ...(seed !== undefined ? [`--seed ${seed}`] : []),
    ...(epochs !== undefined ? [`--epochs ${epochs}`] : []), ...(small ? ['--small'] : []),
    ...(fromFile ? [`--config ${quote(JSON.stringify(fromFile))}`] : [])].join(' ');
  // Training is synchronous, so Ctrl-C ends a build at once; the folder it was writing is temporary
  // (the finished one is renamed into place), and a helper removes it once this process is gone.
  cleanUpIfKilled([tempFoldersBeside(out, 'amend-build')]);
  const result = await buildWorldModel({
    out, seed, small, command, sizes, force: v.force === true,
    config: { ...overrides, ...(epochs !== undefined ? { epochs } : {}) },
    // The loss curve goes to stderr as it is made (stdout stays for the result / --json).
    log: (line) => {
      if (json) return;
      if (bar) { bar.done(); bar = null; }
      process.stderr.write(line + '\n');
    },
    onStep: (step, total) => {
      if (json) return;
      bar ??= new Progress('training', total);
      bar.update(step);
    },
  });
  (bar as Progress | null)?.done();
  const i = result.info;
  if (json) {
    console.log(JSON.stringify({ dir: result.dir, ...i }, null, 2));
    return;
  }
  console.log(`wrote ${result.dir}`);
  console.log(summaryLines(i).join('\n'));
}

/**
 * A JSON object of WorldTrainConfig fields, plus "sizes" (world sizes such as {"people": 540});
 * unknown fields are refused so that a typo never goes unnoticed.
 */
function readConfigFile(file: string, small: boolean): Partial<WorldTrainConfig> & { sizes?: Partial<WorldSizes> } {
  const want = `give a JSON object of training settings ('{"epochs": 30}') or a file holding one`;
  // Inline JSON (what world info prints in its rebuild line) or a file of it. A value that is not
  // a file but reads as JSON ([], "x") is inline JSON of the wrong kind, not a missing file.
  let text = file;
  let what = 'the text';
  if (fs.existsSync(file)) {
    if (fs.statSync(file).isDirectory()) throw new AmendError(`--config ${file}: is a folder; ${want}`);
    refuseDevice(file, 'a JSON file of training settings');
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new AmendError(`--config ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${want}`);
    }
    what = 'the file';
    if (text.trim() === '') throw new AmendError(`--config ${file}: the file is empty; ${want}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    if (what === 'the text' && !file.trimStart().startsWith('{')) throw new AmendError(`--config ${file}: no such file; ${want}`);
    throw new AmendError(`--config ${file}: ${what} is not valid JSON (${(err as Error).message}); ${want}`);
  }
  if (!isObject(parsed)) throw new AmendError(`--config ${file}: ${what} is a JSON ${typeName(parsed)}, not an object; ${want}`);
  const { sizes, ...training } = parsed as Partial<WorldTrainConfig> & { sizes?: Partial<WorldSizes> };
  if (sizes !== undefined && !isObject(sizes)) throw new AmendError(`--config ${file}: sizes must be a JSON object of world sizes (like {"people": 540})`);
  // The training settings and sizes are checked here, before any work, so that their errors name the file.
  try {
    resolveTrainConfig(small, training);
    if (sizes !== undefined && isObject(sizes)) resolveSizes({ ...(small ? SMALL_WORLD_SIZES : {}), ...sizes });
  } catch (err) {
    if (!(err instanceof AmendError)) throw err;
    const topLevel = /^unknown setting "[^".]+"/.test(err.message); // the file may also hold "sizes"
    throw new AmendError(`--config ${file}: ${topLevel ? err.message.replace('; known: ', '; known: sizes, ') : err.message}`);
  }
  return parsed as Partial<WorldTrainConfig> & { sizes?: Partial<WorldSizes> };
}

function summaryLines(i: BuildInfo): string[] {
  const m = i.config.model;
  return [
    `model      gpt2, ${m.layers} layers × ${m.hidden} hidden, ${m.heads} heads, ${i.parameters} parameters`,
    `world      ${i.world.facts} facts, seed ${i.seed}${i.small ? ' (small configuration)' : ''}`,
    `accuracy   train phrasings ${pct(i.accuracy.train)}, held-out phrasings ${pct(i.accuracy.heldOut)}, all ${pct(i.accuracy.all)}`,
    `known      ${i.accuracy.knownFacts} facts in every phrasing (${pct(i.accuracy.factsAllPhrasings)})`,
    `benchmark  ${i.benchmarkCases} cases`,
    `training   ${i.seconds.train} s on ${i.backend.signature}`,
    `sha256     ${i.sha256['model.safetensors']}  model.safetensors`,
  ];
}

async function info(args: Parsed): Promise<void> {
  const v = args.values;
  for (const k of ['out', 'seed', 'epochs', 'small', 'config', 'force'] as const) {
    if (v[k] !== undefined) throw new AmendError(`--${k} is for amend world build`);
  }
  const dir = typeof v.model === 'string' && v.model !== '' && v.model !== 'world' ? path.resolve(v.model) : builtinWorldDir();
  if (!fs.existsSync(dir)) throw new AmendError(`${dir}: no such folder — check --model`);
  if (!fs.statSync(dir).isDirectory()) throw new AmendError(`${dir}: is a file; give the folder amend world build wrote (the one holding ${BUILD_FILE})`);
  const file = path.join(dir, BUILD_FILE);
  if (!fs.existsSync(file)) throw new AmendError(`${dir}: no ${BUILD_FILE} — not a folder written by amend world build`);
  let i: BuildInfo;
  try {
    i = JSON.parse(fs.readFileSync(file, 'utf8')) as BuildInfo;
  } catch (err) {
    throw new AmendError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const obj = i as unknown as Record<string, unknown>;
  if (obj?.format !== 'amend-world-build' || typeof obj.sha256 !== 'object' || obj.sha256 === null || typeof obj.config !== 'object' || typeof obj.accuracy !== 'object') {
    throw new AmendError(`${file}: not the record amend world build writes (no "format": "amend-world-build" with its sha256, config and accuracy)`);
  }
  // An export of an edited world copies BUILD.json with the rest of the folder: say when the
  // weights are no longer the ones the build wrote.
  const weights = path.join(dir, 'model.safetensors');
  const current = fs.existsSync(weights) ? sha256File(weights) : null;
  const asBuilt = current === i.sha256['model.safetensors'];
  // Weights that changed may also be damaged (a cut-short copy, an empty file): say that, as
  // loading them would, rather than call them edited. The header check reads only the header.
  if (!asBuilt && current !== null) {
    try {
      readSafetensorsHeader(weights);
    } catch (e) {
      throw e instanceof AmendError ? new AmendError(`${dir}: ${e.message}`) : e;
    }
  }
  if (v.json) {
    console.log(JSON.stringify({ dir, ...i, weightsAsBuilt: asBuilt, weightsSha256: current }, null, 2));
    return;
  }
  console.log(`folder     ${dir}`);
  console.log(summaryLines(i).join('\n'));
  if (!asBuilt) {
    console.log(`weights    model.safetensors is not the built file (${current ? `sha256 ${current}` : 'missing'}): edited or exported since the build`);
  }
  console.log(`rebuild    ${i.command}`);
}
