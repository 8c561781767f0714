// A thin wrapper over @huggingface/tokenizers (tokenizer.json), with the special-token conventions
// of transformers and the subject-span rule of ROME.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { AmendError, typeName, isObject } from '../errors.js';
import { readModelJson } from '../io/json.js';

export interface EncodeOptions {
  /** Add the special tokens the model expects (e.g. Llama's BOS); default true, as transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens such as <s> or <|endoftext|> from the text; default true. */
  skipSpecialTokens?: boolean;
  /**
   * Leave out ids the tokenizer does not have instead of refusing them (default false). A model
   * whose embedding is padded past its tokenizer (Pythia's 50304 rows for 50277 tokens) can
   * produce them; Hugging Face's fast tokenizers drop them from the text the same way.
   */
  skipUnknownIds?: boolean;
}

export interface TokenSpan {
  /** First token of the subject. */
  start: number;
  /** One past the last token of the subject (the last subject token is end - 1). */
  end: number;
}

/** Replace the "{}" placeholder of a prompt template by the subject (the prompt itself when it has none). */
export function fillTemplate(prompt: string, subject: string): string {
  const count = prompt.split('{}').length - 1;
  if (count > 1) throw new AmendError(`prompt "${prompt}" has ${count} "{}" placeholders; use exactly one for the subject`);
  return count === 1 ? prompt.replace('{}', () => subject) : prompt;
}

/**
 * Where the subject sits in a prompt: the text before it and the filled prompt.
 * The prompt is a template with "{}" or contains the subject verbatim (first occurrence). The match
 * is case-sensitive, as the references' prompt.replace(subject, "{}"): a prompt that spells the
 * subject otherwise tokenises otherwise, so it is refused with a hint rather than rewritten.
 */
export function locateSubject(prompt: string, subject: string): { text: string; charStart: number; charEnd: number } {
  if (typeof prompt !== 'string') throw new AmendError(`the prompt must be a string (a template with "{}" or a text containing the subject), not ${typeName(prompt)}`);
  if (typeof subject !== 'string' || subject.length === 0) {
    throw new AmendError(`empty subject for prompt "${prompt}": every edit request needs the subject it is about`);
  }
  if (prompt.includes('{}')) {
    const text = fillTemplate(prompt, subject);
    const charStart = prompt.indexOf('{}');
    return { text, charStart, charEnd: charStart + subject.length };
  }
  const at = prompt.indexOf(subject);
  if (at < 0) {
    // Compared slice by slice of the prompt itself: lowercasing the whole prompt can change its
    // length ("İ" becomes two code units) and shift every index after it.
    const want = subject.toLowerCase();
    let other: string | null = null;
    for (let i = 0; other === null && i + subject.length <= prompt.length; i++) {
      if (prompt.slice(i, i + subject.length).toLowerCase() === want) other = prompt.slice(i, i + subject.length);
    }
    // The same letters in another Unicode form (é as one code point or as e + accent) look alike
    // in the message; the tokenizer sees different tokens, so it is said rather than matched.
    const normalised = prompt.normalize('NFC').includes(subject.normalize('NFC'));
    const hint = normalised ? ' (they differ only in Unicode normalisation: one writes an accented letter as one character, the other as a letter and a combining mark; save both in the same form, NFC)'
      : other !== null ? ` (it has "${other}": write the subject as the prompt spells it, or write "{}" where it goes)` : '; put it in the prompt verbatim or write "{}" where it goes';
    throw new AmendError(`subject "${subject}" is not in the prompt "${prompt}"${hint}`);
  }
  return { text: prompt, charStart: at, charEnd: at + subject.length };
}

/** A JSON object file of the tokenizer (`what` names it in the message). */
function readJsonObject(file: string, what: string): Record<string, unknown> {
  const v = readModelJson(file);
  if (!isObject(v)) throw new AmendError(`${file}: ${what} is not a JSON object (it holds ${typeName(v)}) — re-download it`);
  return v as Record<string, unknown>;
}

/** A special token entry of tokenizer_config.json: a string or {content: string, ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** How many ids two encodings share from the start. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Why `ids` is not an array of ids, or null. The tokenizers library refuses typed arrays too. */
function notIdList(ids: unknown): string | null {
  if (Array.isArray(ids)) return null;
  return ArrayBuffer.isView(ids) ? `${ids.constructor.name} (Array.from(ids) makes one)` : typeName(ids);
}

/** Whether `part` sits in `whole` at index `at`. */
function occursAt(whole: readonly number[], part: readonly number[], at: number): boolean {
  if (at < 0 || at + part.length > whole.length) return false;
  for (let i = 0; i < part.length; i++) if (whole[at + i] !== part[i]) return false;
  return true;
}

/**
 * How many ids tokenizer.json's post-processor puts before a single text (Llama's BOS: 1), or null
 * where its kind is not known here. Where the text itself is made of those tokens ("<s>"), the
 * encoding alone cannot tell which of them the post-processor added.
 */
function postProcessorLead(pp: unknown): number | null {
  if (pp === null || pp === undefined) return 0;
  const p = pp as { type?: unknown; single?: unknown; special_tokens?: Record<string, { ids?: unknown }>; processors?: unknown };
  switch (p.type) {
    case 'ByteLevel': return 0;
    case 'BertProcessing':
    case 'RobertaProcessing': return 1; // [CLS] / <s> text [SEP] / </s>
    case 'Sequence': {
      if (!Array.isArray(p.processors)) return null;
      let sum = 0;
      for (const q of p.processors) {
        const n = postProcessorLead(q);
        if (n === null) return null;
        sum += n;
      }
      return sum;
    }
    case 'TemplateProcessing': return templateLead(p.single, p.special_tokens ?? {});
    default: return null;
  }
}

/** The ids of a TemplateProcessing "single" template before its sequence "A". */
function templateLead(single: unknown, specials: Record<string, { ids?: unknown }>): number | null {
  if (!Array.isArray(single)) return null;
  let n = 0;
  for (const piece of single as Array<{ Sequence?: unknown; SpecialToken?: { id?: unknown } }>) {
    if (piece?.Sequence !== undefined) return n;
    const ids = typeof piece?.SpecialToken?.id === 'string' ? specials[piece.SpecialToken.id]?.ids : undefined;
    if (!Array.isArray(ids)) return null;
    n += ids.length;
  }
  return null;
}

/**
 * A run of byte tokens (<0xE6><0x9D><0xB1>) decoded as HF tokenizers' ByteFallback does: a BOM is
 * kept (TextDecoder drops a leading one by default) and a run that is not valid UTF-8 becomes one
 * U+FFFD per byte (a lenient TextDecoder gives one per bad sequence, and folds good bytes of the
 * run into it). A model cut off inside a character produces such runs.
 */
class ByteRunDecoder extends TextDecoder {
  constructor() {
    super('utf-8', { fatal: true, ignoreBOM: true });
  }

  override decode(input?: AllowSharedBufferSource, options?: TextDecodeOptions): string {
    try {
      return super.decode(input, options);
    } catch {
      return '\ufffd'.repeat(input?.byteLength ?? 0);
    }
  }
}

/**
 * Call `fix` on every step of one of the library's components whose config type is `type`, the
 * steps of a Sequence (listed under `children`) included. The library's typings do not export its
 * component classes, so steps are found by the type their config names.
 */
function fixSteps(root: unknown, type: string, children: string, fix: (step: Record<string, unknown>) => void): void {
  if (root === null || (typeof root !== 'object' && typeof root !== 'function')) return;
  const step = root as Record<string, unknown> & { config?: { type?: unknown } };
  if (step.config?.type === type) fix(step);
  const kids = step[children];
  if (Array.isArray(kids)) for (const k of kids) fixSteps(k, type, children, fix);
}

/** Give every ByteFallback step of a decoder HF's rule for byte runs. */
function useHfByteFallback(decoder: unknown): void {
  fixSteps(decoder, 'ByteFallback', 'decoders', (step) => {
    if (step.text_decoder instanceof TextDecoder) step.text_decoder = new ByteRunDecoder();
  });
}

/**
 * GPT-2's split of byte-level BPE with HF's whitespace. The library writes it with JavaScript's \s,
 * which counts U+FEFF as a space and not U+0085; HF's (Oniguruma's) \s is Unicode White_Space, the
 * other way round, so a text with either split elsewhere and got other ids.
 */
const BYTE_LEVEL_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** Give every ByteLevel step of a pre-tokenizer HF's split. */
function useHfByteLevelSplit(preTokenizer: unknown): void {
  fixSteps(preTokenizer, 'ByteLevel', 'tokenizers', (step) => {
    if (step.pattern instanceof RegExp) step.pattern = new RegExp(BYTE_LEVEL_SPLIT);
  });
}

export class AmendTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  /** The tokenizer_config.json used (empty when the directory has none). */
  readonly config: Readonly<Record<string, unknown>>;
  private readonly tok: Tokenizer;
  private readonly specialIds: Set<number>;
  /** tokenizer_config add_bos_token / add_eos_token, enforced for Llama-style tokenizers. */
  private readonly forceBos: boolean | null;
  private readonly forceEos: boolean | null;
  /** Ids the post-processor puts before the text (null: unknown, found by search). */
  private readonly leadCount: number | null;
  /** What it was built from (the tokenizers library keeps the same objects): files() writes them back. */
  private readonly sources: { json: Record<string, unknown>; config: Record<string, unknown>; specialTokensMap: Record<string, unknown> };

  constructor(tokenizerJson: Record<string, unknown>, config: Record<string, unknown> = {}, specialTokensMap: Record<string, unknown> = {}, source = 'tokenizer') {
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tokenizerJson, config);
    } catch (err) {
      throw new AmendError(`${source}: the tokenizer cannot be built (${(err as Error).message}); the file may be from a newer tokenizers version or corrupt`);
    }
    useHfByteFallback(tok.decoder);
    useHfByteLevelSplit(tok.pre_tokenizer);
    this.tok = tok;
    this.config = config;
    this.sources = { json: tokenizerJson, config, specialTokensMap };
    this.leadCount = postProcessorLead(tokenizerJson['post_processor']);
    const vocab = tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const idOf = (key: string): number | null => {
      const content = tokenContent(config[key]) ?? tokenContent(specialTokensMap[key]);
      if (content === null) return null;
      return tok.token_to_id(content) ?? null;
    };
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.padId = idOf('pad_token');
    this.unkId = idOf('unk_token');
    this.specialIds = new Set<number>();
    for (const [id, t] of tok.get_added_tokens_decoder()) if (t.special) this.specialIds.add(id);
    for (const id of [this.bosId, this.eosId, this.padId, this.unkId]) if (id !== null) this.specialIds.add(id);
    // transformers' Llama-style fast tokenizers rebuild their post-processor from these flags.
    const cls = typeof config['tokenizer_class'] === 'string' ? (config['tokenizer_class'] as string) : '';
    const llamaLike = /^(Llama|CodeLlama|Gemma)Tokenizer/.test(cls);
    this.forceBos = llamaLike && typeof config['add_bos_token'] === 'boolean' ? (config['add_bos_token'] as boolean) : null;
    this.forceEos = llamaLike && typeof config['add_eos_token'] === 'boolean' ? (config['add_eos_token'] as boolean) : null;
  }

  /** Load tokenizer.json (required), tokenizer_config.json and special_tokens_map.json (optional) from a model directory. */
  static fromDir(dir: string): AmendTokenizer {
    const tjPath = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(tjPath)) {
      let hint = '';
      if (fs.existsSync(path.join(dir, 'tokenizer.model'))) hint = ' (only the SentencePiece tokenizer.model is there)';
      else if (fs.existsSync(path.join(dir, 'vocab.json'))) hint = ' (only the slow vocab.json/merges.txt files are there)';
      const exists = fs.existsSync(dir);
      throw new AmendError(
        exists
          ? `${dir}: no tokenizer.json${hint}; Amend needs the fast-tokenizer file — save one with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir)) or download it from the model's hub page`
          : `${dir}: no such directory — check the model path`,
      );
    }
    const tj = readJsonObject(tjPath, 'tokenizer.json');
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    const cfg = fs.existsSync(cfgPath) ? readJsonObject(cfgPath, 'tokenizer_config.json') : {};
    const stmPath = path.join(dir, 'special_tokens_map.json');
    const stm = fs.existsSync(stmPath) ? readJsonObject(stmPath, 'special_tokens_map.json') : {};
    return new AmendTokenizer(tj, cfg, stm, tjPath);
  }

  /**
   * The files of a model folder that rebuild this tokenizer (fromDir reads them back): tokenizer.json,
   * and tokenizer_config.json and special_tokens_map.json when it was given them. For a tokenizer
   * made in memory, which has no folder to copy them from (export writes them).
   */
  files(): Map<string, string> {
    const text = (json: unknown): string => JSON.stringify(json, null, 2) + '\n';
    const out = new Map([['tokenizer.json', text(this.sources.json)]]);
    if (Object.keys(this.sources.config).length > 0) out.set('tokenizer_config.json', text(this.sources.config));
    if (Object.keys(this.sources.specialTokensMap).length > 0) out.set('special_tokens_map.json', text(this.sources.specialTokensMap));
    return out;
  }

  /** Token ids of `text`; with special tokens as the model expects unless addSpecialTokens is false. */
  encode(text: string, opts: EncodeOptions | null = {}): number[] {
    if (typeof text !== 'string') throw new AmendError(`encode takes the text as a string, not ${typeName(text)}`);
    opts ??= {};
    const add = opts.addSpecialTokens ?? true;
    const ids = this.tok.encode(text, { add_special_tokens: add }).ids.slice();
    if (!add || (this.forceBos === null && this.forceEos === null)) return ids;
    const { lead, raw, trail } = this.splitSpecial(text, ids);
    let l = lead;
    let t = trail;
    if (this.forceBos !== null && this.bosId !== null) {
      const has = l.includes(this.bosId);
      if (this.forceBos && !has) l = [this.bosId, ...l];
      if (!this.forceBos && has) l = l.filter((id) => id !== this.bosId);
    }
    if (this.forceEos !== null && this.eosId !== null) {
      const has = t.includes(this.eosId);
      if (this.forceEos && !has) t = [...t, this.eosId];
      if (!this.forceEos && has) t = t.filter((id) => id !== this.eosId);
    }
    return [...l, ...raw, ...t];
  }

  /** Split an encoding with special tokens into what the post-processor added before / after the text. */
  private splitSpecial(text: string, withSpecial: number[]): { lead: number[]; raw: number[]; trail: number[] } {
    const raw = this.tok.encode(text, { add_special_tokens: false }).ids.slice();
    const at = this.leadCount;
    if (at !== null && occursAt(withSpecial, raw, at)) {
      return { lead: withSpecial.slice(0, at), raw, trail: withSpecial.slice(at + raw.length) };
    }
    if (raw.length === 0) {
      let k = 0;
      while (k < withSpecial.length && withSpecial[k] === this.bosId) k++;
      return { lead: withSpecial.slice(0, k), raw, trail: withSpecial.slice(k) };
    }
    for (let k = 0; k + raw.length <= withSpecial.length; k++) {
      if (occursAt(withSpecial, raw, k)) return { lead: withSpecial.slice(0, k), raw, trail: withSpecial.slice(k + raw.length) };
    }
    return { lead: [], raw: withSpecial, trail: [] }; // the post-processor rewrote the text: leave it
  }

  /** Text of token ids; special tokens are dropped unless skipSpecialTokens is false. */
  decode(ids: readonly number[], opts: DecodeOptions | null = {}): string {
    const bad = notIdList(ids);
    if (bad) throw new AmendError(`decode takes an array of token ids, not ${bad}`);
    opts ??= {};
    const skip = opts.skipSpecialTokens ?? true;
    let list = skip ? ids.filter((id) => !this.specialIds.has(id)) : ids.slice();
    if (opts.skipUnknownIds) list = list.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (list.length === 0) return '';
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new AmendError(`cannot decode token id ${id}: the vocabulary has ids 0..${this.vocabSize - 1}`);
      }
    }
    return this.tok.decode(list, { skip_special_tokens: skip });
  }

  /**
   * Text of `next` as it continues `context`. Decoding `next` alone drops what a SentencePiece
   * decoder strips from the start of a text (the space of "▁a"), so the continuation is the
   * decoded whole minus the decoded context, where the one begins with the other. A context that
   * ends inside a character (byte tokens) decodes with a trailing U+FFFD that the whole does not
   * have: the continuation then starts with that whole character rather than with U+FFFD.
   */
  decodeContinuation(context: readonly number[], next: readonly number[], opts: DecodeOptions = {}): string {
    const bad = notIdList(context) ?? notIdList(next);
    if (bad) throw new AmendError(`decodeContinuation takes two arrays of token ids, not ${bad}`);
    const head = this.decode(context, opts);
    const whole = this.decode([...context, ...next], opts);
    if (whole.startsWith(head)) return whole.slice(head.length);
    const stable = head.replace(/\uFFFD+$/, '');
    if (stable !== head && whole.startsWith(stable)) return whole.slice(stable.length);
    return this.decode(next, opts);
  }

  /** The vocabulary string of one token (e.g. "ĠParis", "▁Paris"), or null for an unknown id. */
  idToToken(id: number): string | null {
    return this.tok.id_to_token(id) ?? null;
  }

  /** The id of a vocabulary string, or null. */
  tokenToId(token: string): number | null {
    return this.tok.token_to_id(token) ?? null;
  }

  /** True for ids of special tokens (BOS, EOS, PAD, UNK and added special tokens). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * Token positions [start, end) of the subject in encode(prompt filled with the subject).
   * As ROME: tokenize the text before the subject and the text through the end of the subject and
   * count tokens (a space just before the subject belongs to the subject's first token, as in
   * byte-level and SentencePiece BPE). Where a merge crosses the subject's end, the encoding of the
   * text through the subject and the full one part; the span ends one token after the last they
   * share (with "abc" in "xabcy" tokenised x|ab|cy that is "ab": ROME's count gives the same).
   */
  subjectRange(prompt: string, subject: string, opts: EncodeOptions = {}): TokenSpan {
    const { text, charStart, charEnd } = locateSubject(prompt, subject);
    const full = this.encode(text, opts);
    // Count on encodings without special tokens, then shift by what encode() puts in front.
    const { lead, raw } = opts.addSpecialTokens === false ? { lead: [] as number[], raw: full } : this.splitSpecial(text, full);
    // The space before a word is part of that word's token: leave it to the subject. One space, as
    // rome/repr_tools strips (a second one is a token of the prefix's own).
    const before = text.slice(0, charStart).replace(/ $/, '');
    const prefixIds = before.length === 0 ? [] : this.tok.encode(before, { add_special_tokens: false }).ids;
    const throughIds = this.tok.encode(text.slice(0, charEnd), { add_special_tokens: false }).ids;
    const start = commonPrefix(prefixIds, raw);
    const lcpEnd = commonPrefix(throughIds, raw);
    // Where the two encodings part, the token at which they part ends the span (see above).
    let end = lcpEnd === throughIds.length ? lcpEnd : lcpEnd + 1;
    end = Math.min(Math.max(end, start + 1), raw.length);
    if (start >= raw.length || end <= start) {
      throw new AmendError(`subject "${subject}" has no tokens of its own in "${text}"; check the prompt and subject`);
    }
    return { start: start + lead.length, end: end + lead.length };
  }
}
