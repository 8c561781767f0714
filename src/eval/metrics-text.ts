/**
 * Text metrics of generated text (ROME experiments/py/eval_utils_counterfact.py):
 * - fluency: `n_gram_entropy` / `compute_n_gram_entropy` — per text, the entropy in bits of the
 *   bigram and trigram frequency distributions over nltk.word_tokenize tokens, weighted [2/3, 4/3]
 *   and averaged (arithmetic mean of the two weighted values: H2/3 + 2·H3/3); the mean over texts.
 * - consistency: `tfidf_similarity` — cosine of sklearn TF-IDF vectors of all generated texts joined
 *   by " " and all reference snippets joined by " ", with ROME's idf.npy and tfidf_vocab.json
 *   (dsets/tfidf_stats.py); reference snippets from attribute_snippets.json (dsets/attr_snippets.py).
 *
 * word_tokenize here is NLTK's NLTKWordTokenizer (the improved Treebank rules) after a simple
 * sentence splitter standing in for Punkt (a sentence ends at . ! or ? followed by whitespace and a
 * character that is not lower-case, unless the word is a common abbreviation or an initial).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AmendError, isObject, refuseDevice } from '../errors.js';
import { npyToFloat64, readNpy } from '../io/npz.js';

// ---------------------------------------------------------------- word tokenisation

const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'mt', 'vs', 'etc', 'inc', 'ltd', 'co', 'corp', 'no',
  'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec', 'gen', 'col', 'lt',
  'sgt', 'capt', 'gov', 'sen', 'rep', 'rev', 'fig', 'e.g', 'i.e', 'u.s', 'u.k', 'a.m', 'p.m', 'approx',
]);

/** Sentences of a text (an approximation of NLTK's Punkt for English). */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  const re = /[.!?]+["'”’)\]]*(?=\s+)/g;
  let start = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const end = m.index + m[0].length;
    const rest = text.slice(end);
    const next = /^\s+(\S)/.exec(rest);
    if (!next) continue;
    const ch = next[1]!;
    if (ch !== ch.toUpperCase() || /\p{Ll}/u.test(ch)) continue; // lower-case next word: no break
    if (m[0].startsWith('.')) {
      const word = /(\S+)$/.exec(text.slice(start, m.index))?.[1] ?? '';
      const bare = word.replace(/^[("'“‘[]+/, '').toLowerCase();
      if (ABBREVIATIONS.has(bare) || /^\p{L}$/u.test(bare) || /^(\p{L}\.)+\p{L}$/u.test(bare)) continue;
    }
    out.push(text.slice(start, end));
    start = end;
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

const W = '[\\p{L}\\p{N}_]';

// NLTKWordTokenizer's substitution rules, in its order.
const STARTING_QUOTES: [RegExp, string][] = [
  [/([«“‘„]|`+)/gu, ' $1 '],
  [/^"/u, '``'],
  [/(``)/gu, ' $1 '],
  [/([ ([{<])("|'{2})/gu, '$1 `` '],
  // A quote before a one-letter word ('x') other than a contraction's ('m 's 'd 't 'n) is split
  // off; before a longer word it stays on it ("'alive" is one token). This is the rule of NLTK's
  // releases, which ROME's numbers were computed with: (?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b, its \b
  // written out (JavaScript's \b is ASCII-only). NLTK's development branch splits the quote off
  // every word since its PR #3687 (2026).
  [new RegExp(`(')(?!re|ve|ll|m|t|s|d|n)(${W})(?!${W})`, 'giu'), '$1 $2'],
];
const PUNCTUATION: [RegExp, string][] = [
  [/([^.])(\.)([\])}>"'»”’ ]*)\s*$/u, '$1 $2 $3 '],
  [/([:,])([^\d])/gu, ' $1 $2'],
  [/([:,])$/u, ' $1 '],
  [/\.{2,}/gu, ' $& '],
  [/[;@#$%&]/gu, ' $& '],
  [/[\u2012-\u2015]/gu, ' $& '],
  [/([^.])(\.)([\])}>"']*)\s*$/u, '$1 $2$3 '],
  [/[?!]/gu, ' $& '],
  [/([^'])' /gu, "$1 ' "],
  [/[*]/gu, ' $& '],
];
const PARENS: [RegExp, string] = [/[\][(){}<>]/gu, ' $& '];
const DOUBLE_DASHES: [RegExp, string] = [/--/gu, ' -- '];
const ENDING_QUOTES: [RegExp, string][] = [
  [/([»”’])/gu, ' $1 '],
  [/''/gu, " '' "],
  [/"/gu, " '' "],
  [/\s+/gu, ' '],
  [/([^' ])('[sS]|'[mM]|'[dD]|') /gu, '$1 $2 '],
  [/([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) /gu, '$1 $2 '],
];
// NLTK's \b around a contraction, written out: JavaScript's \b counts only ASCII letters as word
// characters, so it would split "cannot" out of "xücannot", which Python's leaves whole.
const wordAt = (body: string, end = `(?!${W})`) => new RegExp(`(?<!${W})${body}${end}`, 'giu');
const CONTRACTIONS: RegExp[] = [
  wordAt('(can)(not)'),
  wordAt("(d)('ye)"),
  wordAt('(gim)(me)'),
  wordAt('(gon)(na)'),
  wordAt('(got)(ta)'),
  wordAt('(lem)(me)'),
  wordAt("(more)('n)"),
  wordAt('(wan)(na)', '(?=\\s)'),
  new RegExp(` ('t)(is)(?!${W})`, 'giu'),
  new RegExp(` ('t)(was)(?!${W})`, 'giu'),
];

/** NLTKWordTokenizer.tokenize on one sentence. */
export function treebankTokenize(sentence: string): string[] {
  let t = sentence;
  for (const [re, sub] of STARTING_QUOTES) t = t.replace(re, sub);
  for (const [re, sub] of PUNCTUATION) t = t.replace(re, sub);
  t = t.replace(PARENS[0], PARENS[1]);
  t = t.replace(DOUBLE_DASHES[0], DOUBLE_DASHES[1]);
  t = ` ${t} `;
  for (const [re, sub] of ENDING_QUOTES) t = t.replace(re, sub);
  for (const re of CONTRACTIONS) t = t.replace(re, ' $1 $2 ');
  return t.split(/\s+/u).filter((w) => w !== '');
}

/** nltk.word_tokenize: sentences, then the Treebank rules on each. */
export function wordTokenize(text: string): string[] {
  return splitSentences(text).flatMap(treebankTokenize);
}

// ---------------------------------------------------------------- fluency

/** Entropy in bits of the n-gram frequency distribution of a token list (0 when there is no n-gram). */
export function nGramEntropyOf(tokens: readonly string[], n: number): number {
  const counts = new Map<string, number>();
  let total = 0;
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join('\u0000');
    counts.set(k, (counts.get(k) ?? 0) + 1);
    total++;
  }
  let h = 0;
  for (const c of counts.values()) {
    const p = c / total;
    h -= p * Math.log2(p);
  }
  return h;
}

/** ROME's compute_n_gram_entropy of one text: mean of weights[i] · H(n_i-grams), ns [2, 3], weights [2/3, 4/3]. */
export function computeNGramEntropy(text: string, ns: readonly number[] = [2, 3], weights: readonly number[] = [2 / 3, 4 / 3]): number {
  if (ns.length !== weights.length || ns.length === 0) throw new AmendError('n-gram entropy: one weight per n');
  const tokens = wordTokenize(text);
  let s = 0;
  ns.forEach((n, i) => (s += weights[i]! * nGramEntropyOf(tokens, n)));
  return s / ns.length;
}

/** ROME's n_gram_entropy: the arithmetic mean of computeNGramEntropy over the texts. */
export function nGramEntropy(texts: readonly string[]): number {
  if (texts.length === 0) return Number.NaN;
  return texts.reduce((a, t) => a + computeNGramEntropy(t), 0) / texts.length;
}

// ---------------------------------------------------------------- TF-IDF consistency

export interface TfidfModel {
  /** term → column (tfidf_vocab.json). */
  vocab: Map<string, number>;
  /** idf per column (idf.npy). */
  idf: Float64Array;
}

/** sklearn's default analyzer: lower-case, tokens of 2+ word characters (token_pattern \b\w\w+\b). */
export function tfidfTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) ?? [];
}

/** The L2-normalised TF-IDF vector of a text, sparse (column → weight). */
export function tfidfVector(text: string, model: TfidfModel): Map<number, number> {
  const v = new Map<number, number>();
  for (const tok of tfidfTokens(text)) {
    const col = model.vocab.get(tok);
    if (col !== undefined) v.set(col, (v.get(col) ?? 0) + 1);
  }
  let norm = 0;
  for (const [col, tf] of v) {
    const w = tf * (model.idf[col] ?? 0);
    v.set(col, w);
    norm += w * w;
  }
  norm = Math.sqrt(norm);
  if (norm > 0) for (const [col, w] of v) v.set(col, w / norm);
  return v;
}

/**
 * ROME's tfidf_similarity: cosine of the two TF-IDF vectors, their dot product since tfidfVector
 * has L2-normalised them (0 when either has no known term; ROME gives NaN).
 */
export function tfidfSimilarity(a: string, b: string, model: TfidfModel): number {
  const va = tfidfVector(a, model);
  const vb = tfidfVector(b, model);
  let dot = 0;
  for (const [col, w] of va) dot += w * (vb.get(col) ?? 0);
  return dot;
}

/** A 1-D float array from a NumPy .npy file (float64 or float32), through the checked .npy reader. */
export function readNpyVector(file: string): Float64Array {
  const a = readNpy(file);
  if (a.shape.length !== 1) throw new AmendError(`${file}: expected a 1-D array, got shape (${a.shape.join(', ')})`);
  if (a.kind !== 'f8' && a.kind !== 'f4') throw new AmendError(`${file}: unsupported .npy dtype ${a.descr} (expected float64 or float32)`);
  return npyToFloat64(a, file);
}

function readJsonFile(file: string, what: string): unknown {
  refuseDevice(file, `${what} as a JSON file`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new AmendError(`${file}: cannot read ${what} (${(err as Error).message.split('\n')[0]})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AmendError(`${file}: ${what} is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

/** ROME's TF-IDF statistics: idf.npy and tfidf_vocab.json ({term: column}). */
export function loadTfidf(idfFile: string, vocabFile: string): TfidfModel {
  const idf = readNpyVector(idfFile);
  const raw = readJsonFile(vocabFile, 'the TF-IDF vocabulary');
  if (!isObject(raw)) throw new AmendError(`${vocabFile}: expected an object {term: column}`);
  const vocab = new Map<string, number>();
  for (const [term, col] of Object.entries(raw)) {
    if (typeof col !== 'number' || !Number.isInteger(col) || col < 0 || col >= idf.length) {
      throw new AmendError(`${vocabFile}: term "${term}" has column ${String(col)}, outside the ${idf.length} idf values`);
    }
    vocab.set(term, col);
  }
  return { vocab, idf };
}

export interface Snippet {
  name: string;
  text: string;
}

/** relation_id → target_id → Wikipedia snippets about subjects with that object (attribute_snippets.json). */
export type AttributeSnippets = Map<string, Map<string, Snippet[]>>;

export function loadAttributeSnippets(file: string): AttributeSnippets {
  const raw = readJsonFile(file, 'the attribute snippets');
  if (!Array.isArray(raw)) throw new AmendError(`${file}: expected a list of {relation_id, target_id, samples}`);
  const out: AttributeSnippets = new Map();
  raw.forEach((el, i) => {
    const e = el as { relation_id?: unknown; target_id?: unknown; samples?: unknown };
    if (typeof e?.relation_id !== 'string' || typeof e.target_id !== 'string' || !Array.isArray(e.samples)) {
      throw new AmendError(`${file}: entry ${i} lacks relation_id, target_id or samples`);
    }
    let byTarget = out.get(e.relation_id);
    if (!byTarget) out.set(e.relation_id, (byTarget = new Map()));
    let list = byTarget.get(e.target_id);
    if (!list) byTarget.set(e.target_id, (list = []));
    for (const s of e.samples as { name?: unknown; text?: unknown }[]) {
      if (typeof s?.text === 'string') list.push({ name: typeof s.name === 'string' ? s.name : '', text: s.text });
    }
  });
  return out;
}

/** What reference_score and essence_ppl need: ROME's TF-IDF statistics and attribute snippets. */
export interface ConsistencyResources {
  tfidf: TfidfModel;
  snippets: AttributeSnippets;
}

/**
 * ROME's consistency resources from one folder, as its data directory holds them: idf.npy and
 * tfidf_vocab.json (dsets/tfidf_stats.py) and attribute_snippets.json (dsets/attr_snippets.py).
 */
export function loadConsistencyResources(dir: string): ConsistencyResources {
  const need = ['idf.npy', 'tfidf_vocab.json', 'attribute_snippets.json'];
  const missing = need.filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length > 0) {
    throw new AmendError(`${dir}: no ${missing.join(', ')} there; consistency needs ROME's idf.npy, tfidf_vocab.json and attribute_snippets.json in one folder (its data directory)`);
  }
  return {
    tfidf: loadTfidf(path.join(dir, 'idf.npy'), path.join(dir, 'tfidf_vocab.json')),
    snippets: loadAttributeSnippets(path.join(dir, 'attribute_snippets.json')),
  };
}

