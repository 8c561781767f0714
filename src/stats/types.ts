// The public shapes of the statistics layer: where the text comes from, how much of it, and what
// comes back; and the defaults.
import { optionKeys } from '../errors.js';

/** ROME's and EasyEdit's mom2_n_samples in every preset. */
export const DEFAULT_SAMPLES = 100000;
/** Default number of model-written samples (generating costs a forward pass per token). */
export const DEFAULT_MODEL_SAMPLES = 1000;
/** EasyEdit caps long-context models at 4096 positions for the statistics. */
export const MAX_DEFAULT_LENGTH = 4096;
/** Default length of model-written samples. */
export const DEFAULT_MODEL_SAMPLE_LENGTH = 128;

/**
 * Where the text for the statistics comes from.
 * - file: a plain text file, one document per line (empty lines skipped; see `split`).
 * - dir: every .txt / .md / .text / .jsonl file under a folder (recursively, hidden files and
 *   folders skipped, in sorted path order), each read as `file` or `jsonl` would read it.
 * - jsonl: one JSON object per line, the document in its `text` field (see `field`).
 * - texts: documents given in memory.
 * - ids: documents given as token ids (no tokenizer needed; special tokens as they are).
 * - model-samples: text the model writes itself: sequences sampled (temperature 1, no top-k/p,
 *   seed `seed`, default 1) from the model's BOS token (else its EOS token, GPT-2's
 *   <|endoftext|>), up to maxLength tokens each, stopping at EOS. The start token is counted only
 *   when the tokenizer itself adds a BOS to every text (Llama-style), as it would for a corpus.
 * - imported: statistics imported from ROME / EasyEdit (`amend stats --import`), looked up in the
 *   cache by dataset name (e.g. "wikipedia") and sample count; nothing is computed.
 */
export interface CorpusSpec {
  kind: 'file' | 'dir' | 'jsonl' | 'texts' | 'model-samples' | 'ids' | 'imported';
  path?: string;
  texts?: string[];
  /** kind 'ids': one token-id array per document. */
  ids?: number[][];
  /** kind 'imported': the dataset name the stats were imported under (e.g. "wikipedia"); kind 'texts': what messages call them. */
  name?: string;
  /**
   * Plain text files: 'line' (default) — each non-empty line is a document (the demo world's
   * corpus, wikitext); 'paragraph' — documents are separated by blank lines; 'file' — each file is
   * one document.
   */
  split?: 'line' | 'paragraph' | 'file';
  /** JSONL: the field holding the document (default "text"). */
  field?: string;
  /** model-samples: the sampling seed (default 1). */
  seed?: number;
}

export interface StatsOptions {
  /**
   * A path (a folder → 'dir'; *.jsonl / *.ndjson → 'jsonl'; any other file → 'file'), the name of
   * imported statistics (e.g. "wikipedia"), or a spec. Default (`defaultCorpus`): the file
   * `corpus-train.txt` in the model's folder when there is one (the demo world, `--model world`),
   * else the model's own samples (kind 'model-samples').
   */
  corpus?: string | CorpusSpec;
  /**
   * Number of documents (text samples), ROME's mom2_n_samples: a fixed pseudo-random subset of
   * this many documents of the corpus (seed 1; the whole corpus when it has fewer), each
   * tokenized and cut to maxLength tokens; every real token of every chosen document contributes
   * one key. Default 100000 (ROME's and EasyEdit's presets) for corpora, 1000 for model samples.
   */
  samples?: number;
  /**
   * Tokens per document (longer documents are cut, keeping the special tokens the tokenizer adds).
   * Default: the model's max positions as in ROME (n_positions), capped at 4096 as EasyEdit caps
   * long-context models; for model samples min(max positions, 128).
   */
  maxLength?: number;
  /** Tokens per forward batch (rows × padded width), as ROME's batch_tokens (default max(maxLength, 2048)). */
  batchTokens?: number;
  /**
   * The Amend cache root (default $AMEND_CACHE, else ~/.cache/amend); statistics live in its
   * stats/ folder.
   */
  cacheDir?: string;
  /**
   * A folder of ROME / EasyEdit statistics laid out as they save them,
   * {npzDir}/{model_name}/{dataset}_stats/{layer_name}_float32_mom2_{n}.npz (EasyEdit's stats_dir).
   * Imported statistics (a dataset name as corpus) that the cache lacks are looked up there and
   * imported into the cache.
   */
  npzDir?: string;
  /** Neither read nor write the cache. */
  noCache?: boolean;
  /** Recompute even when cached, and overwrite the cached file. */
  refresh?: boolean;
  /** Documents processed so far / in all (called after every batch). */
  onProgress?: (done: number, total: number) => void;
}

/** Every key of StatsOptions, for refusing unknown ones (refuseUnknownKeys). */
export const STATS_OPTION_KEYS = optionKeys<StatsOptions>()(['corpus', 'samples', 'maxLength', 'batchTokens', 'cacheDir', 'npzDir', 'noCache', 'refresh', 'onProgress']);

/** The non-centred second moment of the keys (inputs of the MLP down projection) at one layer. */
export interface SecondMoment {
  layer: number;
  /** Width of the keys (the model's d_ff). */
  dim: number;
  /** Number of tokens (keys) summed. */
  count: number;
  /** dim×dim, row-major, = Σ k kᵀ / count (exactly symmetric). */
  mom2: Float64Array;
  /** The corpus id the statistics were computed over (path:size:mtime, hash, or a name). */
  corpus: string;
  /** Number of documents actually used (ROME's sample count, capped by the corpus size). */
  samples: number;
  /** The model fingerprint (empty when imported without a model). */
  fingerprint: string;
  /** The sample count that was asked for (the cache key; ≥ samples). */
  requestedSamples?: number;
  /** Tokens per document (0 when unknown, e.g. imported). */
  maxLength?: number;
  /** Where these numbers came from. */
  source?: 'computed' | 'cache' | 'import' | 'file';
  /** The cache (or stats) file holding them, when there is one. */
  file?: string;
}
