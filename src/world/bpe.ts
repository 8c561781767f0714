/**
 * A byte-level BPE trainer (GPT-2 style) whose output is a Hugging Face `tokenizer.json`:
 * ByteLevel pre-tokenizer with the GPT-2 split regex, a BPE model (vocab + merges), ByteLevel
 * post-processor and decoder, and `<|endoftext|>` as the last id (as in GPT-2).
 *
 * Training is the classic algorithm: split every text with the GPT-2 regex, map its UTF-8 bytes to
 * the printable byte alphabet, count the words, then repeatedly merge the most frequent adjacent
 * pair. Ties are broken by a fixed rule (the lexicographically smallest merged string, then the
 * smallest left part), so the result depends only on the texts and the options.
 */

/** The GPT-2 pre-tokenization pattern (the one the ByteLevel pre-tokenizer uses with use_regex). */
export const GPT2_SPLIT_REGEX = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export const END_OF_TEXT = '<|endoftext|>';

let byteMap: string[] | undefined;

/** GPT-2's bytes_to_unicode: byte value → the printable character that stands for it. */
export function byteToUnicode(): readonly string[] {
  if (byteMap) return byteMap;
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const keepSet = new Set(keep);
  const map = new Array<string>(256);
  for (const b of keep) map[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!keepSet.has(b)) map[b] = String.fromCharCode(256 + n++);
  }
  byteMap = map;
  return map;
}

const utf8 = new TextEncoder();

/** A string in the byte-level alphabet (each UTF-8 byte → one character). */
export function toByteLevel(text: string): string {
  const map = byteToUnicode();
  let out = '';
  for (const b of utf8.encode(text)) out += map[b]!;
  return out;
}

/** The byte-level pre-tokens of `text`, exactly as the ByteLevel pre-tokenizer (add_prefix_space false) splits it. */
export function preTokenize(text: string): string[] {
  const pieces = text.match(GPT2_SPLIT_REGEX) ?? [];
  return pieces.map(toByteLevel);
}

export interface BpeTrainOptions {
  /** Total vocabulary size including the special tokens (≥ 256 + number of special tokens). */
  vocabSize: number;
  /**
   * Words that must never become a single token (with or without a leading space). Used so that
   * single-word names of the demo world always span two or more tokens, as names do in real models.
   */
  protectedWords?: readonly string[];
  /** Stop merging when the best pair occurs fewer times than this (default 2). The vocabulary may then be smaller than vocabSize. */
  minFrequency?: number;
  /** Special tokens appended after the merges (default ["<|endoftext|>"]). */
  specialTokens?: readonly string[];
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface ByteLevelComponentJson {
  type: 'ByteLevel';
  add_prefix_space: boolean;
  trim_offsets: boolean;
  use_regex: boolean;
}

/** A post-processor that puts one special token in front of every encoded text. */
export interface StartTokenProcessorJson {
  type: 'TemplateProcessing';
  single: ({ SpecialToken: { id: string; type_id: 0 } } | { Sequence: { id: 'A' | 'B'; type_id: 0 } })[];
  pair: ({ SpecialToken: { id: string; type_id: 0 } } | { Sequence: { id: 'A' | 'B'; type_id: 0 } })[];
  special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }>;
}

export interface TokenizerJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: ByteLevelComponentJson;
  post_processor: ByteLevelComponentJson | StartTokenProcessorJson;
  decoder: ByteLevelComponentJson;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: '';
    end_of_word_suffix: '';
    fuse_unk: false;
    byte_fallback: false;
    vocab: Record<string, number>;
    merges: string[];
  };
}

const SHIFT = 65536;

/** A training run's state: the symbols so far, and every distinct word as symbols with its pairs counted. */
interface BpeState {
  /** Symbol id → string; ids 0..255 are the byte alphabet in byte order, merges follow. */
  symStr: string[];
  symId: Map<string, number>;
  /** Each distinct byte-level pre-token (sorted) as symbol ids, and how often it occurs. */
  words: number[][];
  wordCount: number[];
  /** Occurrences of every adjacent pair (key: left * SHIFT + right), and the words it occurs in. */
  pairCount: Map<number, number>;
  pairWords: Map<number, Set<number>>;
}

interface BestPair {
  key: number;
  count: number;
  merged: string;
}

/** Trains a byte-level BPE on `texts` and returns the tokenizer.json object. */
export function trainBpe(texts: readonly string[], opts: BpeTrainOptions): TokenizerJson {
  const specials = opts.specialTokens ?? [END_OF_TEXT];
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 256 + specials.length || opts.vocabSize > SHIFT) {
    throw new RangeError(`vocabSize must be an integer in [${256 + specials.length}, ${SHIFT}], got ${opts.vocabSize}`);
  }
  const maxSymbols = opts.vocabSize - specials.length;
  const st = initialState(texts);
  const forbidden = forbiddenMerges(opts.protectedWords ?? []);
  const banned = new Set<number>();
  const merges: string[] = [];
  while (st.symStr.length < maxSymbols) {
    const best = bestPair(st, forbidden, banned);
    if (best === undefined || best.count < minFrequency) break;
    merges.push(applyMerge(st, best));
  }
  return tokenizerJson(st.symStr, merges, specials);
}

/** Word counts over the byte-level pre-tokens, each word spelt in the byte alphabet, every pair counted. */
function initialState(texts: readonly string[]): BpeState {
  const counts = new Map<string, number>();
  for (const t of texts) {
    for (const w of preTokenize(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const uniqueWords = [...counts.keys()].sort();

  const symStr: string[] = byteToUnicode().slice();
  const symId = new Map<string, number>();
  symStr.forEach((s, i) => symId.set(s, i));

  const st: BpeState = {
    symStr,
    symId,
    words: uniqueWords.map((w) => Array.from(w, (ch) => symId.get(ch)!)),
    wordCount: uniqueWords.map((w) => counts.get(w)!),
    pairCount: new Map(),
    pairWords: new Map(),
  };
  for (let wi = 0; wi < st.words.length; wi++) addWordPairs(st, wi, 1);
  return st;
}

/** The byte-level strings no merge may produce: every protected word, with and without a leading space. */
function forbiddenMerges(protectedWords: readonly string[]): Set<string> {
  const forbidden = new Set<string>();
  for (const w of protectedWords) {
    if (w.length === 0) continue;
    forbidden.add(toByteLevel(w));
    forbidden.add(toByteLevel(' ' + w));
  }
  return forbidden;
}

/** Adds (sign 1) or removes (sign -1) the pairs of word `wi` to the pair counts. */
function addWordPairs(st: BpeState, wi: number, sign: 1 | -1): void {
  const syms = st.words[wi]!;
  const c = st.wordCount[wi]! * sign;
  for (let i = 0; i + 1 < syms.length; i++) {
    const key = syms[i]! * SHIFT + syms[i + 1]!;
    const next = (st.pairCount.get(key) ?? 0) + c;
    if (next === 0) st.pairCount.delete(key);
    else st.pairCount.set(key, next);
    if (sign > 0) {
      let set = st.pairWords.get(key);
      if (!set) st.pairWords.set(key, (set = new Set()));
      set.add(wi);
    } else {
      st.pairWords.get(key)?.delete(wi);
    }
  }
}

/**
 * The most frequent pair, ties broken by the smallest merged string, then the smallest left part;
 * a pair whose merge is forbidden is banned for good when it would have won.
 */
function bestPair(st: BpeState, forbidden: ReadonlySet<string>, banned: Set<number>): BestPair | undefined {
  let bestKey = -1;
  let bestCount = 0;
  let bestMerged = '';
  let bestLeft = '';
  for (const [key, c] of st.pairCount) {
    if (c < bestCount || banned.has(key)) continue;
    const a = Math.floor(key / SHIFT);
    const b = key % SHIFT;
    const left = st.symStr[a]!;
    const merged = left + st.symStr[b]!;
    if (c === bestCount && (merged > bestMerged || (merged === bestMerged && left >= bestLeft))) continue;
    if (forbidden.has(merged)) {
      banned.add(key);
      continue;
    }
    bestKey = key;
    bestCount = c;
    bestMerged = merged;
    bestLeft = left;
  }
  return bestKey < 0 ? undefined : { key: bestKey, count: bestCount, merged: bestMerged };
}

/** Merges the pair everywhere it occurs; returns the merge as tokenizer.json writes it ("a b"). */
function applyMerge(st: BpeState, best: BestPair): string {
  const a = Math.floor(best.key / SHIFT);
  const b = best.key % SHIFT;
  let newId = st.symId.get(best.merged);
  if (newId === undefined) {
    newId = st.symStr.length;
    st.symStr.push(best.merged);
    st.symId.set(best.merged, newId);
  }
  const affected = [...(st.pairWords.get(best.key) ?? [])].sort((x, y) => x - y);
  for (const wi of affected) {
    addWordPairs(st, wi, -1);
    st.words[wi] = mergeInWord(st.words[wi]!, a, b, newId);
    addWordPairs(st, wi, 1);
  }
  return `${st.symStr[a]} ${st.symStr[b]}`;
}

/** The word with every non-overlapping (a, b), left to right, replaced by `merged`. */
function mergeInWord(syms: readonly number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < syms.length; i++) {
    if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(syms[i]!);
    }
  }
  return out;
}

/** The tokenizer.json of the trained symbols: the vocabulary in id order, then the special tokens. */
function tokenizerJson(symStr: readonly string[], merges: string[], specials: readonly string[]): TokenizerJson {
  const vocab: Record<string, number> = {};
  symStr.forEach((s, i) => {
    vocab[s] = i;
  });
  const added: AddedTokenJson[] = specials.map((content, k) => {
    const id = symStr.length + k;
    vocab[content] = id;
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  });

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/**
 * The tokenizer with `token` (default <|endoftext|>) put in front of every encoded text, as a
 * TemplateProcessing post-processor: Hugging Face tokenizers apply it as Amend's do. (The ByteLevel
 * post-processor it replaces only adjusts character offsets, never ids.)
 */
export function withStartToken(tok: TokenizerJson, token = END_OF_TEXT): TokenizerJson {
  const added = tok.added_tokens.find((t) => t.content === token);
  if (!added) throw new Error(`withStartToken: ${token} is not a special token of the tokenizer`);
  const start = { SpecialToken: { id: token, type_id: 0 as const } };
  return {
    ...tok,
    post_processor: {
      type: 'TemplateProcessing',
      single: [start, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [start, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
      special_tokens: { [token]: { id: token, ids: [added.id], tokens: [token] } },
    },
  };
}

/** Number of ids in a tokenizer.json (model vocabulary plus added tokens). */
export function tokenizerVocabSize(tok: TokenizerJson): number {
  let max = -1;
  for (const id of Object.values(tok.model.vocab)) if (id > max) max = id;
  for (const t of tok.added_tokens) if (t.id > max) max = t.id;
  return max + 1;
}

/** A GPT-2-like tokenizer_config.json for a tokenizer made by trainBpe. */
export function makeTokenizerConfig(tok: TokenizerJson, opts: { modelMaxLength?: number } = {}): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  for (const t of tok.added_tokens) {
    decoder[String(t.id)] = {
      content: t.content,
      lstrip: t.lstrip,
      normalized: t.normalized,
      rstrip: t.rstrip,
      single_word: t.single_word,
      special: t.special,
    };
  }
  const eos = tok.added_tokens.find((t) => t.content === END_OF_TEXT)?.content ?? tok.added_tokens[0]?.content ?? null;
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: eos,
    eos_token: eos,
    unk_token: eos,
    // Decoding must give back the exact text; the corpus never has a space before punctuation anyway.
    clean_up_tokenization_spaces: false,
    model_max_length: opts.modelMaxLength ?? 1024,
    tokenizer_class: 'GPT2Tokenizer',
  };
}
