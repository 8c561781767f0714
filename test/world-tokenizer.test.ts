// The byte-level BPE trained on the demo corpus: loads in @huggingface/tokenizers, round-trips every
// corpus line exactly, is deterministic, and keeps every name at two tokens or more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  DEFAULT_VOCAB_SIZE,
  END_OF_TEXT,
  REAL_WORD_KINDS,
  buildCorpus,
  generateWorld,
  makeTokenizerConfig,
  preTokenize,
  singleWordNames,
  tokenizerTrainingTexts,
  tokenizerVocabSize,
  trainBpe,
  type TokenizerJson,
} from '../src/world/index.js';

const world = generateWorld(7);
const corpus = buildCorpus(world);
const texts = tokenizerTrainingTexts(world, corpus);
const tokJson = trainBpe(texts, { vocabSize: DEFAULT_VOCAB_SIZE, protectedWords: singleWordNames(world) });
const config = makeTokenizerConfig(tokJson);
const tok = new Tokenizer(tokJson as unknown as Record<string, unknown>, config);

test('trainBpe: exact small case (counts, tie-breaking, merges format)', () => {
  const t = trainBpe(['ab ab ab', 'abc abc'], { vocabSize: 256 + 3 + 1, minFrequency: 1 });
  // Words: ab×1, Ġab×2, abc×1, Ġabc×1. (a,b) occurs 5 times, then (Ġ,ab) 3 times; then (ab,c) and
  // (Ġab,c) tie at 1 and the lexicographically smaller merged string "abc" wins.
  assert.deepEqual(t.model.merges, ['a b', 'Ġ ab', 'ab c']);
  assert.equal(t.model.vocab['ab'], 256);
  assert.equal(t.model.vocab['Ġab'], 257);
  assert.equal(t.added_tokens[0]!.content, END_OF_TEXT);
  assert.equal(t.added_tokens[0]!.id, 259);
  assert.equal(tokenizerVocabSize(t), 260);
  // minFrequency stops early.
  const t2 = trainBpe(['ab ab ab', 'abc abc'], { vocabSize: 300, minFrequency: 3 });
  assert.deepEqual(t2.model.merges, ['a b', 'Ġ ab']);
  assert.throws(() => trainBpe(['x'], { vocabSize: 100 }));
});

test('trainBpe: protected words never become one token', () => {
  const t = trainBpe(Array(50).fill('Zorbin went to Zorbin'), { vocabSize: 400, minFrequency: 1, protectedWords: ['Zorbin'] });
  const k = new Tokenizer(t as unknown as Record<string, unknown>, makeTokenizerConfig(t));
  assert.ok(k.tokenize('Zorbin').length >= 2);
  assert.ok(k.tokenize(' Zorbin').length >= 2);
  assert.equal(k.tokenize(' went').length, 1);
});

test('pre-tokenizer matches the GPT-2 split', () => {
  assert.deepEqual(preTokenize("Vorlan Tessaby's home? A: 42"), ['Vorlan', 'ĠTessaby', "'s", 'Ġhome', '?', 'ĠA', ':', 'Ġ42']);
});

test('tokenizer.json is GPT-2 shaped and deterministic', () => {
  assert.equal(tokJson.model.type, 'BPE');
  assert.equal(tokJson.pre_tokenizer.type, 'ByteLevel');
  assert.equal(tokJson.decoder.type, 'ByteLevel');
  assert.equal(tokenizerVocabSize(tokJson), DEFAULT_VOCAB_SIZE);
  assert.equal(tokJson.added_tokens.length, 1);
  assert.equal(tokJson.added_tokens[0]!.id, DEFAULT_VOCAB_SIZE - 1);
  assert.equal(tokJson.model.vocab[END_OF_TEXT], DEFAULT_VOCAB_SIZE - 1);
  // ids are 0..V-1 exactly once
  const ids = Object.values(tokJson.model.vocab).sort((a, b) => a - b);
  assert.deepEqual(ids, Array.from({ length: DEFAULT_VOCAB_SIZE }, (_, i) => i));
  // every merge joins two vocabulary entries into another one
  for (const m of tokJson.model.merges) {
    const [a, b] = m.split(' ') as [string, string];
    assert.ok(a in tokJson.model.vocab && b in tokJson.model.vocab && a + b in tokJson.model.vocab, m);
  }
  const again: TokenizerJson = trainBpe(texts, { vocabSize: DEFAULT_VOCAB_SIZE, protectedWords: singleWordNames(world) });
  assert.equal(JSON.stringify(again), JSON.stringify(tokJson));
});

test('encode → decode gives back every corpus line exactly', () => {
  for (const line of [...corpus.train, ...corpus.heldOut]) {
    const enc = tok.encode(line, { add_special_tokens: false });
    assert.ok(enc.ids.every((id: number) => id >= 0 && id < DEFAULT_VOCAB_SIZE));
    assert.equal(tok.decode(enc.ids), line);
    assert.equal(tok.decode(enc.ids, { clean_up_tokenization_spaces: true }), line);
  }
  // Arbitrary text still round-trips (full byte alphabet).
  for (const s of ['Zürich ½ — 東京 🙂', '  two  spaces\tand tab', `a${END_OF_TEXT}b`]) {
    assert.equal(tok.decode(tok.encode(s).ids, { clean_up_tokenization_spaces: false }), s);
  }
  assert.deepEqual(tok.encode(END_OF_TEXT).ids, [DEFAULT_VOCAB_SIZE - 1]);
});

test('every name spans at least two tokens; invented names stay short', () => {
  const counts: Record<string, number[]> = {};
  for (const list of Object.values(world.entities)) {
    for (const e of list) {
      // Without the start token the committed tokenizer puts in front of every text.
      const spaced = tok.encode(' ' + e.name, { add_special_tokens: false }).ids.length;
      const bare = tok.encode(e.name, { add_special_tokens: false }).ids.length;
      (counts[e.kind] ??= []).push(spaced);
      if (REAL_WORD_KINDS.includes(e.kind)) continue;
      assert.ok(spaced >= 2, `${e.name} is one token after a space`);
      assert.ok(bare >= 2, `${e.name} is one token at the start of a line`);
      assert.ok(spaced <= 7, `${e.name} spans ${spaced} tokens`);
    }
  }
  // Most people's names take 2–4 tokens (86 % in this world; the organisation kind words, whole tokens,
  // take some of the merges, see DEFAULT_VOCAB_SIZE).
  const people = counts['person']!;
  const inRange = people.filter((n) => n >= 2 && n <= 4).length;
  assert.ok(inRange / people.length >= 0.8, `only ${inRange}/${people.length} names in 2–4 tokens`);
});
