/**
 * Writing the demo world's files: world.json, tokenizer.json, tokenizer_config.json, benchmark.json
 * (and, optionally, the corpus). Each file is written to a temporary name in the same folder and then
 * renamed, so a reader never sees a half-written file.
 */
import { join } from 'node:path';
import type { CounterFactRecord } from './benchmark.js';
import { makeTokenizerConfig, type TokenizerJson } from './bpe.js';
import type { Corpus } from './corpus.js';
import type { World } from './types.js';
import { makeDirs, writeFileAtomic } from '../io/dirs.js';

export const WORLD_FILES = {
  world: 'world.json',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  benchmark: 'benchmark.json',
  corpusTrain: 'corpus-train.txt',
  corpusHeldOut: 'corpus-heldout.txt',
} as const;

export interface WriteWorldOptions {
  /** tokenizer_config.json contents (default: makeTokenizerConfig(tokenizer, { modelMaxLength })). */
  tokenizerConfig?: Record<string, unknown>;
  modelMaxLength?: number;
  /** Also write corpus-train.txt and corpus-heldout.txt (one line per document). */
  corpus?: Corpus;
}

export async function writeWorldFiles(
  dir: string,
  world: World,
  tokenizerJson: TokenizerJson,
  benchmark: CounterFactRecord[],
  opts: WriteWorldOptions = {},
): Promise<string[]> {
  makeDirs(dir);
  const config = opts.tokenizerConfig ?? makeTokenizerConfig(tokenizerJson, { modelMaxLength: opts.modelMaxLength });
  const files: [string, string][] = [
    [WORLD_FILES.world, JSON.stringify(world, null, 2) + '\n'],
    [WORLD_FILES.tokenizer, JSON.stringify(tokenizerJson, null, 2) + '\n'],
    [WORLD_FILES.tokenizerConfig, JSON.stringify(config, null, 2) + '\n'],
    // One record per line: compact (the benchmark is the largest file) yet easy to diff and grep.
    [WORLD_FILES.benchmark, benchmark.length === 0 ? '[]\n' : '[\n' + benchmark.map((r) => JSON.stringify(r)).join(',\n') + '\n]\n'],
  ];
  if (opts.corpus) {
    for (const [name, lines] of [
      [WORLD_FILES.corpusTrain, opts.corpus.train],
      [WORLD_FILES.corpusHeldOut, opts.corpus.heldOut],
    ] as const) {
      if (lines.some((l) => l.includes('\n'))) throw new Error(`${name}: a corpus document contains a newline`);
      files.push([name, lines.join('\n') + '\n']);
    }
  }
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(dir, name);
    writeFileAtomic(path, text);
    written.push(path);
  }
  return written;
}
