/**
 * The training corpus of the demo model: every fact in every training phrasing, one fact per line
 * (statements end with ".", questions are "Q: …? A: object"). Held-out phrasings never appear in
 * `train`; they form `heldOut` (paraphrase checks, held-out perplexity).
 */
import { organisationKind } from './generator.js';
import { MULTI_HOP_TEMPLATES, fillTemplate } from './phrasings.js';
import { Rng } from './rng.js';
import { WorldIndex, renderLine } from './query.js';
import { REAL_WORD_KINDS, type World } from './types.js';

export interface CorpusOptions {
  /** Seed of the line order and of the biographies (default: the world's seed). */
  seed?: number;
  /** Include the question phrasings in `train` (default true). */
  questions?: boolean;
  /**
   * Biographies per subject (default 0): extra training lines that chain all facts of one subject,
   * each in a randomly chosen training statement ("A was born in X. A works as a Y. …").
   */
  bios?: number;
  /** Shuffle the lines (default true); false keeps world order (fact by fact, phrasing by phrasing). */
  shuffle?: boolean;
}

export interface Corpus {
  train: string[];
  heldOut: string[];
}

export function buildCorpus(world: World, opts: CorpusOptions = {}): Corpus {
  const index = new WorldIndex(world);
  const seed = opts.seed ?? world.seed;
  const questions = opts.questions ?? true;
  const bios = opts.bios ?? 0;
  if (!Number.isInteger(bios) || bios < 0) throw new RangeError(`bios must be a non-negative integer, got ${bios}`);

  const train: string[] = [];
  const heldOut: string[] = [];
  for (const f of world.facts) {
    const rel = index.relation(f.relation);
    const subject = index.name(f.subject);
    const object = index.name(f.object);
    for (const p of rel.phrasings) {
      const line = renderLine(fillTemplate(p.template, subject), object, p.kind);
      if (p.split === 'heldOut') heldOut.push(line);
      else if (p.kind === 'statement' || questions) train.push(line);
    }
  }

  if (bios > 0) {
    const rng = Rng.stream(seed, 'corpus/bios');
    const subjects: string[] = [];
    const seen = new Set<string>();
    for (const f of world.facts) {
      if (!seen.has(f.subject)) {
        seen.add(f.subject);
        subjects.push(f.subject);
      }
    }
    for (let b = 0; b < bios; b++) {
      for (const sid of subjects) {
        const own = rng.shuffled(index.factsOf(sid));
        if (own.length < 2) continue;
        const name = index.name(sid);
        const sentences = own.map((f) => {
          const rel = index.relation(f.relation);
          const statements = rel.phrasings.filter((p) => p.split === 'train' && p.kind === 'statement');
          return renderLine(fillTemplate(rng.pick(statements).template, name), index.name(f.object), 'statement');
        });
        train.push(sentences.join(' '));
      }
    }
  }

  if (opts.shuffle ?? true) {
    Rng.stream(seed, 'corpus/train-order').shuffle(train);
    Rng.stream(seed, 'corpus/held-out-order').shuffle(heldOut);
  }
  return { train, heldOut };
}

/** How often each real-word name (profession, instrument, field, instrument family, organisation kind) is added to the tokenizer texts. */
export const REAL_WORD_BOOST = 40;

/**
 * Texts to train the tokenizer on: the corpus (train and held-out lines), every evaluation template
 * with the subject slot removed (so that words of benchmark prompts are in the vocabulary too), and
 * the real-word names a few dozen times each, so that common English words such as "medicine"
 * become whole tokens as they would in a real model's vocabulary.
 */
export function tokenizerTrainingTexts(world: World, corpus: Corpus): string[] {
  const texts = [...corpus.train, ...corpus.heldOut];
  const realWords = REAL_WORD_KINDS.flatMap((kind) => world.entities[kind].map((e) => e.name));
  // Organisation kinds ("Foundry") are English words too, each in one organisation's name only.
  const orgKinds = new Set(world.entities.organisation.map((e) => organisationKind(e.name)));
  for (const word of [...realWords, ...orgKinds]) {
    for (let i = 0; i < REAL_WORD_BOOST; i++) texts.push(' ' + word);
  }
  const strip = (t: string) => fillTemplate(t, '').replace(/\s+/g, ' ').trim();
  for (const r of world.relations) {
    for (const p of r.phrasings) texts.push(strip(p.template));
    for (const g of r.generation) texts.push(strip(g));
  }
  for (const m of MULTI_HOP_TEMPLATES) texts.push(strip(m.template));
  return texts;
}

/** Every single-word entity name (cities, countries, languages): the tokenizer never makes them one token. */
export function singleWordNames(world: World): string[] {
  const out: string[] = [];
  for (const list of Object.values(world.entities)) {
    for (const e of list) {
      if (REAL_WORD_KINDS.includes(e.kind)) continue;
      if (!e.name.includes(' ')) out.push(e.name);
    }
  }
  return out;
}
