/**
 * `amend world build`: the demo world, its tokenizer and a model trained on it, written as an
 * ordinary Hugging Face GPT-2 folder with the world's own files:
 *
 *   config.json, model.safetensors, tokenizer.json, tokenizer_config.json   (the model)
 *   world.json (every fact), benchmark.json (CounterFact format, known facts only)
 *   corpus-train.txt (the training lines), corpus-heldout.txt (the held-out phrasings)
 *   build-log.txt (the loss curve), BUILD.json (seed, config, backend, timings, sha256)
 *
 * The folder is assembled under a temporary name beside `out` and renamed into place at the end,
 * so an interrupted build never leaves a half-written model behind.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { kernels } from '../backend/index.js';
import { AmendError, closest, requireSeed } from '../errors.js';
import { packageRoot } from '../version.js';
import { writeCheckpoint } from '../io/checkpoint.js';
import type { CausalLM } from '../models/model.js';
import { AmendTokenizer } from '../tokenizer/index.js';
import { buildBenchmark, type CounterFactRecord } from './benchmark.js';
import { withStartToken } from './bpe.js';
import { WORLD_FILES, writeWorldFiles } from './files.js';
import { DEFAULT_WORLD_SEED } from './generator.js';
import { buildDemoWorld, DEFAULT_VOCAB_SIZE, type DemoWorld } from './index.js';
import { factKey } from './query.js';
import {
  SMALL_TRAIN_CONFIG, SMALL_VOCAB_SIZE, SMALL_WORLD_SIZES, WORLD_TRAIN_CONFIG, backendSignature, cpuModel, scoreFacts, summarise,
  trainWorldModel, type AccuracySummary, type EpochLog, type TrainResult, type WorldTrainConfig,
} from './train.js';
import type { World, WorldSizes } from './types.js';
import { checkCanBeFolder, checkCanWriteAt, escapeRegExp, refuseReplacingWholeFolder, removeDeadTemps, replaceFolder, restoreReplacedFolders, tempDirBeside } from '../io/dirs.js';

export const BUILD_FILE = 'BUILD.json';
const BUILD_LOG = 'build-log.txt';
const MODEL_FILE = 'model.safetensors';

export interface BuildWorldOptions {
  /** Output folder (replaced as a whole when the build succeeds). */
  out: string;
  seed?: number;
  /** The small configuration (tiny world and model, seconds): what the reproducibility test builds. */
  small?: boolean;
  /** World sizes (default: the committed world's, or the small configuration's). */
  sizes?: Partial<WorldSizes>;
  /** Overrides of the training configuration (e.g. epochs). */
  config?: Partial<WorldTrainConfig>;
  /** Also build the small configuration and record its sha256 in BUILD.json (default: true for full builds). */
  recordSmall?: boolean;
  log?: (line: string) => void;
  onStep?: (step: number, total: number) => void;
  /** Recorded in BUILD.json (how the build was started). */
  command?: string;
  /** Replace an `out` that holds files other than an earlier build's (default: refuse). */
  force?: boolean;
}

export interface BuildInfo {
  format: 'amend-world-build';
  version: 1;
  command: string;
  seed: number;
  small: boolean;
  world: { sizes: WorldSizes; facts: number; vocabSize: number; trainLines: number; trainTokensPerEpoch: number };
  config: WorldTrainConfig;
  parameters: number;
  backend: { name: string; blas: string; threads: number; cpu?: string; signature: string; node: string };
  seconds: { train: number; total: number };
  accuracy: AccuracySummary & { knownFacts: number };
  benchmarkCases: number;
  finalLoss: { loss: number; answerLoss: number };
  sha256: Record<string, string>;
  /** The small configuration built on the same machine, for the reproducibility test. */
  smallBuild?: { sha256: string; signature: string };
}

export interface BuildWorldResult {
  dir: string;
  info: BuildInfo;
  epochs: EpochLog[];
  model: CausalLM;
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The training configuration a build uses (defaults, small preset, overrides); refuses bad overrides. */
export function resolveTrainConfig(small: boolean, over: Partial<WorldTrainConfig> = {}): WorldTrainConfig {
  const base = small ? SMALL_TRAIN_CONFIG : WORLD_TRAIN_CONFIG;
  // The defaults name every setting but the optional model.inner (MLP width).
  checkLike(over, { ...base, model: { ...base.model, inner: 4 * base.model.hidden } }, '');
  const config: WorldTrainConfig = { ...base, ...over, model: { ...base.model, ...(over.model ?? {}) }, betas: [...(over.betas ?? base.betas)] as [number, number] };
  if (!Number.isInteger(config.epochs) || config.epochs < 1) throw new AmendError(`epochs must be an integer ≥ 1, got ${config.epochs}`);
  if (!Number.isInteger(config.batchSize) || config.batchSize < 1) throw new AmendError(`batch size must be an integer ≥ 1, got ${config.batchSize}`);
  if (!Number.isInteger(config.bios) || config.bios < 0) throw new AmendError(`bios must be an integer ≥ 0, got ${config.bios}`);
  if (!(config.dropout >= 0 && config.dropout < 1)) throw new AmendError(`dropout must be in [0, 1), got ${config.dropout}`);
  if (!(config.layerDrop >= 0 && config.layerDrop < 1)) throw new AmendError(`layerDrop must be in [0, 1), got ${config.layerDrop}`);
  if (!(config.phraseNoise >= 0 && config.phraseNoise < 1)) throw new AmendError(`phraseNoise must be in [0, 1), got ${config.phraseNoise}`);
  if (!Number.isInteger(config.packTokens) || config.packTokens < 0) throw new AmendError(`packTokens must be an integer ≥ 0, got ${config.packTokens}`);
  if (typeof config.bos !== 'boolean') throw new AmendError(`bos must be true or false, got ${String(config.bos)}`);
  if (typeof config.positionEmbeddings !== 'boolean') throw new AmendError(`positionEmbeddings must be true or false, got ${String(config.positionEmbeddings)}`);
  if (!(config.lr > 0)) throw new AmendError(`learning rate must be > 0, got ${config.lr}`);
  for (const k of ['layers', 'hidden', 'heads', 'positions', 'inner'] as const) {
    const x = config.model[k];
    if (x !== undefined && (!Number.isInteger(x) || x < 1)) throw new AmendError(`model.${k} must be an integer ≥ 1, got ${x}`);
  }
  // Checked here with the rest, not when the model's config is written after the world is generated.
  if (config.model.hidden % config.model.heads !== 0) throw new AmendError(`model.hidden ${config.model.hidden} must be divisible by model.heads ${config.model.heads}`);
  for (const k of ['warmupSteps', 'evalFacts'] as const) {
    if (!Number.isInteger(config[k]) || config[k] < 0) throw new AmendError(`${k} must be an integer ≥ 0, got ${config[k]}`);
  }
  for (const k of ['minLrRatio', 'betas.0', 'betas.1'] as const) {
    const x = k === 'minLrRatio' ? config.minLrRatio : config.betas[Number(k.slice(-1))]!;
    if (!(x >= 0 && x < 1)) throw new AmendError(`${k} must be in [0, 1), got ${x}`);
  }
  for (const k of ['weightDecay', 'answerWeight'] as const) if (!(config[k] >= 0)) throw new AmendError(`${k} must be ≥ 0, got ${config[k]}`);
  for (const k of ['clipNorm', 'initStd'] as const) if (!(config[k] > 0)) throw new AmendError(`${k} must be > 0, got ${config[k]}`);
  return config;
}

/** Overrides must have the defaults' keys and types, at every depth (a typo or a "2" for 2 is named). */
function checkLike(over: unknown, base: unknown, where: string): void {
  if (typeof over !== 'object' || over === null || Array.isArray(over)) throw new AmendError(`${where || 'the configuration'} must be a JSON object`);
  for (const [k, v] of Object.entries(over)) {
    const name = where ? `${where}.${k}` : k;
    if (!Object.hasOwn(base as object, k)) {
      const near = closest(k, Object.keys(base as object));
      throw new AmendError(`unknown setting "${name}"${near ? ` (did you mean "${where ? `${where}.${near}` : near}"?)` : ''}; known: ${Object.keys(base as object).map((x) => (where ? `${where}.${x}` : x)).join(', ')}`);
    }
    const want = (base as Record<string, unknown>)[k];
    if (Array.isArray(want)) {
      if (!Array.isArray(v) || v.length !== want.length || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new AmendError(`${name} must be a list of ${want.length} numbers, got ${JSON.stringify(v)}`);
      }
    } else if (typeof want === 'object' && want !== null) {
      checkLike(v, want, name);
    } else if (typeof v !== typeof want || (typeof v === 'number' && !Number.isFinite(v))) {
      // JSON.stringify writes ±Infinity (1e309 in the JSON) as null.
      throw new AmendError(`${name} must be a ${typeof want === 'number' ? 'finite number' : typeof want}, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`);
    }
  }
}

/** Builds the world, trains the model, scores every fact, builds the benchmark and writes `out`. */
export async function buildWorldModel(opts: BuildWorldOptions): Promise<BuildWorldResult> {
  const b = startBuild(opts);
  const { dw, tokenizer } = worldAndTokenizer(b);
  b.log(`# amend world build: seed ${b.seed}${b.small ? ' (small configuration)' : ''}`);
  const trained = trainWorldModel(dw.world, dw.corpus, tokenizer, { seed: b.seed, config: b.config, log: b.log, onStep: opts.onStep });
  const made = { dw, tokenizer, trained, ...scoreAndBenchmark(b, dw.world, trained) };
  return writeBuild(b, made);
}

/** A build in progress: its settings and its log. */
interface Build {
  opts: BuildWorldOptions;
  started: number;
  seed: number;
  small: boolean;
  config: WorldTrainConfig;
  /** The build log so far (build-log.txt). */
  lines: string[];
  log: (line: string) => void;
}

/** What a build made: the world and its tokenizer, the trained model, what it knows, the benchmark. */
interface Made {
  dw: DemoWorld;
  tokenizer: AmendTokenizer;
  trained: TrainResult;
  accuracy: AccuracySummary;
  known: Set<string>;
  benchmark: CounterFactRecord[];
}

/** The build's settings, checked, and a check that its output folder can be written. */
function startBuild(opts: BuildWorldOptions): Build {
  const started = Date.now();
  requireSeed(opts.seed, 'buildWorldModel: seed');
  const seed = opts.seed ?? DEFAULT_WORLD_SEED;
  const small = opts.small ?? false;
  const config = resolveTrainConfig(small, opts.config);
  checkBuildOut(path.resolve(opts.out), opts.force === true); // before minutes of training, not after
  const lines: string[] = [];
  const log = (line: string): void => { lines.push(line); opts.log?.(line); };
  return { opts, started, seed, small, config, lines, log };
}

function worldAndTokenizer(b: Build): { dw: DemoWorld; tokenizer: AmendTokenizer } {
  const dw = buildDemoWorld({
    seed: b.seed,
    sizes: { ...(b.small ? SMALL_WORLD_SIZES : {}), ...(b.opts.sizes ?? {}) },
    vocabSize: b.small ? SMALL_VOCAB_SIZE : DEFAULT_VOCAB_SIZE,
    corpus: { bios: b.config.bios },
    benchmarkCases: 0, // rebuilt by scoreAndBenchmark from the facts the trained model knows
    modelMaxLength: b.config.model.positions,
  });
  if (b.config.bos) dw.tokenizer = withStartToken(dw.tokenizer);
  const tokenizer = new AmendTokenizer(dw.tokenizer as unknown as Record<string, unknown>, dw.tokenizerConfig);
  return { dw, tokenizer };
}

/** Every fact in every phrasing: the known ones feed the benchmark. */
function scoreAndBenchmark(b: Build, world: World, trained: TrainResult): Pick<Made, 'accuracy' | 'known' | 'benchmark'> {
  const t0 = Date.now();
  const scores = scoreFacts(trained.model, world, world.facts);
  const accuracy = summarise(scores);
  const known = new Set(scores.filter((s) => s.phrasings.every((p) => p.correct)).map((s) => factKey(s.fact)));
  const benchmark = buildBenchmark(world, { seed: b.seed, isKnown: (f) => known.has(factKey(f)) });
  b.log(`# final accuracy over all ${world.facts.length} facts: train phrasings ${pct(accuracy.train)}, held-out phrasings ${pct(accuracy.heldOut)}, all ${pct(accuracy.all)}; known in every phrasing: ${known.size} facts (${pct(accuracy.factsAllPhrasings)})`);
  for (const line of perPhrasing(scores)) b.log(line);
  b.log(`# benchmark: ${benchmark.length} cases from known facts (scored in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  b.log(`# training time: ${trained.seconds.toFixed(1)} s`);
  return { accuracy, known, benchmark };
}

/** Writes the whole folder under a temporary name beside `out`, then renames it into place. */
async function writeBuild(b: Build, made: Made): Promise<BuildWorldResult> {
  const outDir = path.resolve(b.opts.out);
  const tmpDir = tempDirBeside(outDir, 'amend-build');
  try {
    await writeModelFiles(tmpDir, made);
    const sha256: Record<string, string> = {};
    for (const f of [MODEL_FILE, 'config.json', WORLD_FILES.tokenizer, WORLD_FILES.world, WORLD_FILES.benchmark]) {
      sha256[f] = sha256File(path.join(tmpDir, f));
    }
    const smallBuild = !b.small && (b.opts.recordSmall ?? true) ? await smallBuildCheck(b, tmpDir) : undefined;
    const info = buildInfo(b, made, sha256, smallBuild);
    fs.writeFileSync(path.join(tmpDir, BUILD_LOG), b.lines.join('\n') + '\n');
    fs.writeFileSync(path.join(tmpDir, BUILD_FILE), JSON.stringify(info, null, 2) + '\n');
    try {
      replaceFolder(tmpDir, outDir);
    } catch (err) {
      throw new AmendError(`${outDir}: cannot move the finished build into place: ${(err as Error).message}`);
    }
    return { dir: outDir, info, epochs: made.trained.epochs, model: made.trained.model };
  } catch (err) {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } catch {
      /* the first error is the one to report */
    }
    throw err;
  }
}

/** The model (config.json, model.safetensors) and the world's files. */
async function writeModelFiles(dir: string, made: Made): Promise<void> {
  const { dw, trained } = made;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(trained.rawConfig, null, 2) + '\n');
  const records = [...trained.model.weights].map(([name, t]) => ({ name, dtype: 'F32', shape: [...t.shape], data: t.data }));
  writeCheckpoint(dir, records, { dtype: 'F32' });
  // corpus-train.txt: exactly the lines the model was trained on (editors compute their key
  // statistics over it); corpus-heldout.txt: every fact in its held-out phrasings.
  await writeWorldFiles(dir, dw.world, dw.tokenizer, made.benchmark, {
    tokenizerConfig: dw.tokenizerConfig,
    corpus: { train: trained.lines, heldOut: dw.corpus.heldOut },
  });
}

/** Builds the small configuration from the same seed, for the sha256 the reproducibility test pins. */
async function smallBuildCheck(b: Build, tmpDir: string): Promise<NonNullable<BuildInfo['smallBuild']>> {
  const smallOut = path.join(tmpDir, '.small-check'); // inside: one folder for a killed build to leave
  let smallBuild: BuildInfo['smallBuild'];
  try {
    const r = await buildWorldModel({ out: smallOut, seed: b.seed, small: true, recordSmall: false });
    smallBuild = { sha256: r.info.sha256[MODEL_FILE]!, signature: r.info.backend.signature };
  } finally {
    fs.rmSync(smallOut, { recursive: true, force: true });
  }
  b.log(`# small configuration (reproducibility check): sha256 ${smallBuild.sha256}`);
  return smallBuild;
}

function buildInfo(b: Build, made: Made, sha256: Record<string, string>, smallBuild: BuildInfo['smallBuild']): BuildInfo {
  const { dw, trained } = made;
  return {
    format: 'amend-world-build',
    version: 1,
    command: b.opts.command ?? `amend world build --seed ${b.seed}${b.small ? ' --small' : ''}`,
    seed: b.seed,
    small: b.small,
    world: {
      sizes: dw.world.sizes, facts: dw.world.facts.length, vocabSize: made.tokenizer.vocabSize,
      trainLines: dw.corpus.train.length, trainTokensPerEpoch: trained.trainTokens,
    },
    config: b.config,
    parameters: trained.parameters,
    backend: { ...pickInfo(), cpu: cpuModel(), signature: backendSignature(), node: process.version },
    seconds: { train: round1(trained.seconds), total: round1((Date.now() - b.started) / 1000) },
    accuracy: { ...made.accuracy, knownFacts: made.known.size },
    benchmarkCases: made.benchmark.length,
    finalLoss: { loss: trained.epochs.at(-1)!.loss, answerLoss: trained.epochs.at(-1)!.answerLoss },
    sha256,
    ...(smallBuild ? { smallBuild } : {}),
  };
}

/**
 * A build replaces its whole output folder: refuse one that holds anything but an earlier build
 * (unless forced), and find out now whether a folder can be written beside it. What a build killed
 * mid-write left is dealt with first: its temporary folder removed, and a folder it was replacing
 * put back when the kill came between the two renames.
 */
function checkBuildOut(outDir: string, force: boolean): void {
  refuseReplacingWholeFolder(outDir, 'a world build');
  checkCanBeFolder(outDir);
  const parent = path.dirname(outDir);
  restoreReplacedFolders(parent);
  removeDeadTemps(parent, new RegExp(`^\\.${escapeRegExp(path.basename(outDir))}\\.amend-build-(\\d+)-[a-z0-9]+$`));
  if (fs.existsSync(outDir)) {
    const files = fs.readdirSync(outDir);
    if (files.length > 0 && !force) {
      if (!files.includes(BUILD_FILE)) {
        throw new AmendError(`${outDir} holds other files (${files.slice(0, 3).join(', ')}${files.length > 3 ? ', ...' : ''}) and a build replaces the whole folder; choose a new or empty folder, or pass --force (force: true)`);
      }
      const changed = changedSinceBuild(outDir);
      if (changed) {
        throw new AmendError(`${outDir} has a ${BUILD_FILE} but ${changed}, so it is not just an earlier build (an edited or exported model?) and a build replaces the whole folder; choose a new or empty folder, or pass --force (force: true)`);
      }
    }
  }
  checkCanWriteAt(outDir);
}

/**
 * What in a folder with a BUILD.json is no longer as that build wrote it, or null. An export of an
 * edited world model copies BUILD.json with the rest of the folder, so its presence alone does not
 * make the folder a build that may be replaced.
 */
function changedSinceBuild(dir: string): string | null {
  let recorded: unknown;
  try {
    recorded = (JSON.parse(fs.readFileSync(path.join(dir, BUILD_FILE), 'utf8')) as { sha256?: unknown }).sha256;
  } catch {
    return `${BUILD_FILE} cannot be read as a build record`;
  }
  if (recorded === null || typeof recorded !== 'object') return `${BUILD_FILE} records no file hashes`;
  // A user's own file (notes, a patch, an eval folder) beside an earlier build would go with it.
  const written = new Set<string>([MODEL_FILE, 'config.json', BUILD_FILE, BUILD_LOG, ...Object.values(WORLD_FILES)]);
  const extra = fs.readdirSync(dir).filter((f) => !written.has(f));
  if (extra.length > 0) return `it also holds ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}, which a build does not write`;
  for (const [file, sha] of Object.entries(recorded as Record<string, unknown>)) {
    const at = path.join(dir, file);
    if (fs.existsSync(at) && sha256File(at) !== sha) return `${file} is not the file the build wrote`;
  }
  return null;
}

/** Accuracy of every phrasing over its relation's facts, held-out ones marked. */
function perPhrasing(scores: ReturnType<typeof scoreFacts>): string[] {
  const acc = new Map<string, { ok: number; n: number; heldOut: boolean; relation: string }>();
  for (const s of scores) {
    for (const p of s.phrasings) {
      const key = `${s.fact.relation}\t${p.template}`;
      const a = acc.get(key) ?? { ok: 0, n: 0, heldOut: p.split === 'heldOut', relation: s.fact.relation };
      a.n++;
      if (p.correct) a.ok++;
      acc.set(key, a);
    }
  }
  return [...acc].map(([key, a]) => `#   ${a.relation.padEnd(6)} ${a.heldOut ? 'held-out' : 'train   '} ${pct(a.ok / a.n).padStart(9)}  ${JSON.stringify(key.split('\t')[1])}`);
}

function pickInfo(): { name: string; blas: string; threads: number } {
  const i = kernels().info();
  return { name: i.name, blas: i.blas, threads: i.threads };
}

/** A fraction as a percentage with two decimals, as the build log and `amend world info` print it. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)} %`;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Where the committed demo model lives: <package root>/world. */
export function defaultWorldDir(): string {
  const root = packageRoot();
  if (root === null) throw new AmendError('cannot find the amend package root (no package.json above the module)');
  return path.join(root, 'world');
}
