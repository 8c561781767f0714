import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AmendError } from '../src/errors.js';
import { AmendTokenizer, fillTemplate, locateSubject } from '../src/tokenizer/index.js';
import { mulberry32 } from '../src/tensor/index.js';
import { repoRoot } from './helpers.js';

const MODELS = path.resolve(repoRoot(), '..', 'shared', 'models');
const STORIES = path.join(MODELS, 'stories260K');
const GPT2 = path.join(MODELS, 'gpt2-tokenizer');

function load(t: { skip: (msg: string) => void }, dir: string): AmendTokenizer | null {
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    t.skip(`${dir} is absent (shared test models not installed)`);
    return null;
  }
  return AmendTokenizer.fromDir(dir);
}

function expectAmendError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmendError, `expected AmendError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'));
    return true;
  });
}

/** The text of the tokens in [start, end). */
function spanText(tok: AmendTokenizer, prompt: string, subject: string): string {
  const r = tok.subjectRange(prompt, subject);
  const ids = tok.encode(fillTemplate(prompt, subject));
  return tok.decode(ids.slice(r.start, r.end));
}

test('stories260K (Llama SentencePiece BPE): BOS by default, reference ids and text', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode('Once upon a time', { addSpecialTokens: false }), [403, 407, 261, 378]);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.padId, null);
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual(tok.encode(''), [1]);

  const ref = fs.readFileSync(path.join(STORIES, 'REFERENCE.md'), 'utf8');
  const ids = JSON.parse(/ids out \(prompt included\): (\[[^\]]*\])/.exec(ref)![1]!) as number[];
  const text = /text: `([^`]*)`/.exec(ref)![1]!;
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.decode(ids, { skipSpecialTokens: false }), `<s> ${text}`);
  assert.deepEqual(tok.encode(text).slice(0, 5), [1, 403, 407, 261, 378]);
  assert.equal(tok.decode([]), '');
  expectAmendError(() => tok.decode([9999]), /token id 9999/);
  // ids past the tokenizer (a padded embedding's) are left out when asked, as HF's fast tokenizers do
  assert.equal(tok.decode([...ids, 9999], { skipUnknownIds: true }), text);
});

test('decodeContinuation keeps the space a SentencePiece decoder strips from a lone token', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  const prompt = tok.encode('Once upon');
  const next = tok.encode(' a time', { addSpecialTokens: false }).slice(-2); // "▁a", "▁time"
  assert.equal(tok.decode(next), 'a time', 'alone, the leading space is stripped');
  assert.equal(tok.decodeContinuation(prompt, next), ' a time');
  assert.equal(tok.decode(prompt) + tok.decodeContinuation(prompt, next), tok.decode([...prompt, ...next]));
});

test('decodeContinuation after a context that ends inside a character gives the whole character, not U+FFFD', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  // "ï" and "☃" are byte-fallback tokens in this vocabulary: a cut between them leaves half a character.
  for (const text of ['naïve', 'café ☃ x']) {
    const ids = tok.encode(text);
    for (let k = 1; k < ids.length; k++) {
      const rest = tok.decodeContinuation(ids.slice(0, k), ids.slice(k));
      assert.ok(!rest.includes('\uFFFD'), `${text} cut at ${k}: ${JSON.stringify(rest)}`);
      assert.ok(tok.decode(ids).endsWith(rest), `${text} cut at ${k}: ${JSON.stringify(rest)}`);
    }
  }
});

test('gpt2: no special tokens added, reference ids, round trip', (t) => {
  const tok = load(t, GPT2);
  if (!tok) return;
  const prompt = 'The Eiffel Tower is located in the city of';
  assert.deepEqual(tok.encode(prompt), [464, 412, 733, 417, 8765, 318, 5140, 287, 262, 1748, 286]);
  assert.equal(tok.decode(tok.encode(prompt)), prompt);
  assert.deepEqual(tok.encode(' Paris'), [6342]);
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.bosId, 50256);
  assert.equal(tok.eosId, 50256);
  assert.equal(tok.padId, null);
  assert.equal(tok.decode([464, 50256]), 'The');
  assert.equal(tok.decode([464, 50256], { skipSpecialTokens: false }), 'The<|endoftext|>');
  assert.equal(tok.idToToken(6342), 'ĠParis');
  assert.equal(tok.tokenToId('ĠParis'), 6342);
  assert.ok(tok.isSpecial(50256));
});

test('subjectRange on gpt2: "{}" template and verbatim subject give the same span', (t) => {
  const tok = load(t, GPT2);
  if (!tok) return;
  // "The| E|iff|el| Tower| is| located| in| the| city| of"
  assert.deepEqual(tok.subjectRange('The {} is located in the city of', 'Eiffel Tower'), { start: 1, end: 5 });
  assert.deepEqual(tok.subjectRange('The Eiffel Tower is located in the city of', 'Eiffel Tower'), { start: 1, end: 5 });
  assert.equal(spanText(tok, 'The {} is located in the city of', 'Eiffel Tower'), ' Eiffel Tower');
  // subject at the very start, and at the very end
  assert.deepEqual(tok.subjectRange('{} is located in', 'The Eiffel Tower'), { start: 0, end: 5 });
  assert.deepEqual(tok.subjectRange('Where is {}', 'Paris'), { start: 2, end: 3 });
  // ROME's canonical example
  assert.equal(spanText(tok, 'The mother tongue of {} is', 'Danielle Darrieux'), ' Danielle Darrieux');
  // subject followed by punctuation that could merge
  assert.equal(spanText(tok, "{}'s capital is", 'France'), 'France');
  // two spaces before the subject: one goes with it, the other is a token of the prefix ("The| | Paris| is"),
  // as rome/repr_tools strips exactly one
  assert.deepEqual(tok.subjectRange('The  {} is', 'Paris'), { start: 2, end: 3 });
  assert.equal(spanText(tok, 'The  {} is', 'Paris'), ' Paris');
  // a partial word: the straddling token counts as the subject's
  const r = tok.subjectRange('Parisians love it', 'Paris');
  assert.equal(r.start, 0);
  assert.ok(r.end >= 1);
});

test('subjectRange on stories260K: BOS shifts the span; verbatim and template agree', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  const a = tok.subjectRange('Once upon a {} there was', 'time');
  const b = tok.subjectRange('Once upon a time there was', 'time');
  assert.deepEqual(a, b);
  const ids = tok.encode('Once upon a time there was');
  assert.equal(ids[0], 1);
  // "<s>| Once| upon| a| time| ..." -> [4, 5)
  assert.deepEqual(a, { start: 4, end: 5 });
  assert.equal(tok.decode(ids.slice(a.start, a.end)), 'time');
  // subject first: right after BOS
  assert.deepEqual(tok.subjectRange('{} upon a time', 'Once'), { start: 1, end: 2 });
  // without special tokens there is no BOS to skip
  assert.deepEqual(tok.subjectRange('{} upon a time', 'Once', { addSpecialTokens: false }), { start: 0, end: 1 });
  // a multi-token subject
  const s = tok.subjectRange('The little girl named {} went home', 'Lily');
  assert.equal(tok.decode(tok.encode('The little girl named Lily went home').slice(s.start, s.end)), 'Lily');
  assert.equal(spanText(tok, 'One day, {} saw a big, red ball', 'she'), 'she');
});

test('subject errors and templates', (t) => {
  assert.equal(fillTemplate('The capital of {} is', 'France'), 'The capital of France is');
  assert.equal(fillTemplate('No placeholder', 'x'), 'No placeholder');
  assert.equal(fillTemplate('{} costs $&', 'It'), 'It costs $&');
  expectAmendError(() => fillTemplate('{} and {}', 'x'), /has 2 "\{\}" placeholders/);
  expectAmendError(() => locateSubject('The capital of France is', ''), /empty subject/);
  expectAmendError(() => locateSubject('The capital of France is', 'Germany'), /subject "Germany" is not in the prompt "The capital of France is"/);
  // The match is case-sensitive (a prompt spelling the subject otherwise tokenises otherwise); the
  // error names the spelling the prompt has.
  assert.deepEqual(locateSubject('the capital of France', 'France'), { text: 'the capital of France', charStart: 15, charEnd: 21 });
  expectAmendError(() => locateSubject('the capital of france', 'France'), /subject "France" is not in the prompt "the capital of france" \(it has "france": write the subject as the prompt spells it/);
  // "İ" lowercases to two code units: the other spelling is still found where it is in the prompt.
  expectAmendError(() => locateSubject('İstanbul and paris are cities', 'Paris'), /\(it has "paris":/);
  // The same letters in two Unicode forms look alike in the message: said so.
  expectAmendError(() => locateSubject('What does Cafe\u0301 Zoe\u0308 make?', 'Caf\u00e9 Zo\u00eb'), /is not in the prompt .* \(they differ only in Unicode normalisation: .* NFC\)/);
  const tok = load(t, GPT2);
  if (!tok) return;
  expectAmendError(() => tok.subjectRange('The capital of France is', 'Germany'), /not in the prompt/);
  expectAmendError(() => tok.subjectRange('The capital of {} is', ''), /empty subject/);
});

test('fromDir: tokenizer.json is required, the rest optional', (t) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-tok-'));
  try {
    expectAmendError(() => AmendTokenizer.fromDir(d), /no tokenizer\.json; Amend needs the fast-tokenizer file/);
    fs.writeFileSync(path.join(d, 'vocab.json'), '{}');
    expectAmendError(() => AmendTokenizer.fromDir(d), /only the slow vocab\.json\/merges\.txt/);
    fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"model": ');
    expectAmendError(() => AmendTokenizer.fromDir(d), /tokenizer\.json: not valid JSON/);
    expectAmendError(() => AmendTokenizer.fromDir(path.join(d, 'nope')), /no such directory/);
    if (!fs.existsSync(path.join(GPT2, 'tokenizer.json'))) {
      t.skip(`${GPT2} is absent`);
      return;
    }
    // tokenizer.json alone works; special tokens come from the vocabulary's added tokens
    fs.copyFileSync(path.join(GPT2, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    const tok = AmendTokenizer.fromDir(d);
    assert.deepEqual(tok.encode('The Eiffel'), [464, 412, 733, 417]);
    assert.equal(tok.bosId, null);
    assert.equal(tok.decode([464, 50256]), 'The');
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('add_bos_token in tokenizer_config.json is honoured for Llama tokenizers', (t) => {
  if (!fs.existsSync(path.join(STORIES, 'tokenizer.json'))) {
    t.skip(`${STORIES} is absent`);
    return;
  }
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-tok-'));
  try {
    fs.copyFileSync(path.join(STORIES, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    const cfg = JSON.parse(fs.readFileSync(path.join(STORIES, 'tokenizer_config.json'), 'utf8'));
    fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ ...cfg, add_bos_token: false, add_eos_token: true }));
    const tok = AmendTokenizer.fromDir(d);
    assert.deepEqual(tok.encode('Once upon a time'), [403, 407, 261, 378, 2]);
    assert.deepEqual(tok.encode('Once upon a time', { addSpecialTokens: false }), [403, 407, 261, 378]);
    assert.deepEqual(tok.subjectRange('Once upon a {}', 'time'), { start: 3, end: 4 });
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('stories260K: a text made only of BOS tokens gets one more BOS, not two', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  // Expected ids from HF tokenizers 0.23.2 (Tokenizer.from_file(...).encode(text).ids). The text's
  // own "<s>" is not the BOS the post-processor adds.
  assert.deepEqual(tok.encode('<s>'), [1, 1]);
  assert.deepEqual(tok.encode('<s><s>'), [1, 1, 1]);
  assert.deepEqual(tok.encode('<s> hi'), [1, 1, 410, 270, 417]);
  assert.equal(tok.decode(tok.encode('<s>'), { skipSpecialTokens: false }), '<s><s>');
});

test('stories260K: byte-fallback runs decode as HF tokenizers (a BOM kept, bad UTF-8 one U+FFFD per byte)', (t) => {
  const tok = load(t, STORIES);
  if (!tok) return;
  // Expected ids and texts from HF tokenizers 0.23.2.
  const bom = tok.encode('\ufeffBOM');
  assert.deepEqual(bom, [1, 410, 242, 190, 194, 445, 441, 446]); // <s> ▁ <0xEF> <0xBB> <0xBF> B O M
  assert.equal(tok.decode(bom), '\ufeffBOM');
  assert.equal(tok.decode([1, 410, 444, 242, 190, 194, 242, 190, 194, 422]), 'x\ufeff\ufeffy');
  // "I like 😀" less its last byte token: the three bytes of a cut emoji are three U+FFFD.
  assert.equal(tok.decode([1, 359, 397, 354, 410, 243, 162, 155]), 'I like \ufffd\ufffd\ufffd');
  // <0x4A> <0xA8> <0xA2>: "J" is in the same invalid run, so it is a U+FFFD too.
  assert.equal(tok.decode([77, 171, 165]), '\ufffd\ufffd\ufffd');
  assert.equal(tok.decode([270, 77, 171, 165, 270]), 'h\ufffd\ufffd\ufffd h');
  assert.equal(tok.decode(tok.encode('a 東京')), 'a 東京');
});

test('gpt2: the byte-level split takes Unicode White_Space as HF does (U+0085 is a space, U+FEFF is not)', (t) => {
  const tok = load(t, GPT2);
  if (!tok) return;
  // Expected ids from HF tokenizers 0.23.2. JavaScript's \s has U+FEFF and lacks U+0085, HF's
  // (Oniguruma's) is Unicode White_Space: the other way round.
  assert.deepEqual(tok.encode('Paris \ufeff!'), [40313, 27332, 119, 123, 0]); // Paris| Ġï|»|¿|!
  assert.deepEqual(tok.encode('Paris \x85is'), [40313, 220, 126, 227, 271]); // Paris| Ġ|Â|ħ|is
  assert.deepEqual(tok.encode('Paris\x85 is'), [40313, 126, 227, 318]);
  assert.deepEqual(tok.encode('a\ufeff b'), [64, 171, 119, 123, 275]);
});

/** HF tokenizers' answers for each tokenizer directory: ids with and without special tokens, their
 * text, and the text of given id sequences; transformers' space clean-up where the config asks. */
const HF_SCRIPT = `
import json, os, sys
from tokenizers import Tokenizer
def clean(t):
    for a, b in [(' .', '.'), (' ?', '?'), (' !', '!'), (' ,', ','), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]:
        t = t.replace(a, b)
    return t
req = json.load(sys.stdin)
out = {}
for d, job in req.items():
    tk = Tokenizer.from_file(os.path.join(d, 'tokenizer.json'))
    cfg = json.load(open(os.path.join(d, 'tokenizer_config.json')))
    fix = clean if cfg.get('clean_up_tokenization_spaces') else (lambda t: t)
    enc = [tk.encode(t).ids for t in job['texts']]
    out[d] = {
        'enc': enc,
        'raw': [tk.encode(t, add_special_tokens=False).ids for t in job['texts']],
        'text': [fix(tk.decode(ids)) for ids in enc],
        'dec': [fix(tk.decode(ids)) for ids in job['ids']],
        'decKeep': [fix(tk.decode(ids, skip_special_tokens=False)) for ids in job['ids']],
    }
json.dump(out, sys.stdout)
`;

/** Texts of every kind the tokenizers treat specially, and seeded random mixes of them. */
function fuzzTexts(count: number, seed: number): string[] {
  const fixed = ['', ' ', '   ', '\n\n', '\t', ' Paris', 'Paris ', 'a  b   c ', "I'm", "YOU'RE", "he'll've", "'s", '1,000,000', '...!?', 'café', 'e\u0301', '東京', '😀', '👨\u200d👩\u200d👧', '👍🏽', '\x00\x1b', '\ufeffBOM', 'a \ufeffb', 'a \x85b', '\u00a0x', 'x'.repeat(300), '<|endoftext|>', 'a<|endoftext|>b', '<s>', 'x <s> </s> <unk>y'];
  const parts = ['a', 'Z', 'th', ' ', '  ', '\n', '\t', '7', '42', "'s", "'T", "'ll", "'", '!', '.', ',', '-', '(', 'é', 'ß', '東', '😀', '\u200d', '\u0301', '\u3000', '\ufeff', '\x85', '\r', '▁', 'Ġ', '<s>', '</s>', '<|endoftext|>', ' Paris', 'Lily'];
  const rand = mulberry32(seed);
  const out = fixed.slice();
  for (let i = 0; i < count; i++) {
    let t = '';
    for (let k = 1 + Math.floor(rand() * 10); k > 0; k--) t += parts[Math.floor(rand() * parts.length)]!;
    out.push(t);
  }
  return out;
}

/** Seeded id sequences over the whole vocabulary, special ids included. */
function fuzzIds(tok: AmendTokenizer, count: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  const out: number[][] = [];
  for (let i = 0; i < count; i++) out.push(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * tok.vocabSize)));
  return out;
}

test('optional: encode and decode agree with HF tokenizers (python3 with tokenizers)', (t) => {
  const probe = spawnSync('python3', ['-c', 'import tokenizers'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('python3 with the tokenizers package is not available');
    return;
  }
  const dirs = [GPT2, STORIES, path.join(repoRoot(), 'world')].filter((d) => fs.existsSync(path.join(d, 'tokenizer.json')));
  const toks = new Map(dirs.map((d) => [d, AmendTokenizer.fromDir(d)]));
  const texts = fuzzTexts(150, 11);
  const req = Object.fromEntries(dirs.map((d) => [d, { texts, ids: fuzzIds(toks.get(d)!, 100, 12) }]));
  const r = spawnSync('python3', ['-c', HF_SCRIPT], { input: JSON.stringify(req), encoding: 'utf8', timeout: 20_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const hf = JSON.parse(r.stdout) as Record<string, { enc: number[][]; raw: number[][]; text: string[]; dec: string[]; decKeep: string[] }>;
  for (const d of dirs) {
    const tok = toks.get(d)!;
    const want = hf[d]!;
    const name = path.basename(d);
    texts.forEach((text, i) => {
      assert.deepEqual(tok.encode(text), want.enc[i], `${name}: encode(${JSON.stringify(text)})`);
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), want.raw[i], `${name}: encode(${JSON.stringify(text)}) without special tokens`);
      assert.equal(tok.decode(want.enc[i]!), want.text[i], `${name}: decode(encode(${JSON.stringify(text)}))`);
    });
    req[d]!.ids.forEach((ids, i) => {
      assert.equal(tok.decode(ids), want.dec[i], `${name}: decode([${ids}])`);
      assert.equal(tok.decode(ids, { skipSpecialTokens: false }), want.decKeep[i], `${name}: decode([${ids}]) keeping special tokens`);
    });
  }
});
