/**
 * Invented, pronounceable names for the demo world.
 *
 * Words are built from syllables (onset + vowel + coda) with a kind-specific ending, then checked:
 * - every invented word is unique in the world (case-insensitive), except given names, which are
 *   deliberately shared by at most two people (full names stay unique);
 * - no invented word is a prefix of another one, so no name is hidden inside another;
 * - words of the same object kind (cities, countries, languages, organisation stems) differ in their
 *   first three letters, so objects are easy to tell apart from their first token;
 * - no invented word is a common English word or a word of the templates.
 */
import { Rng } from './rng.js';
import { INSTRUMENTS, ORGANISATION_KINDS, PROFESSIONS } from './phrasings.js';

/** Onsets with weights: mostly single consonants, a few clusters. */
const ONSETS: readonly [string, number][] = [
  ['b', 3], ['d', 3], ['f', 2], ['g', 2], ['h', 2], ['j', 1], ['k', 3], ['l', 3], ['m', 3], ['n', 3],
  ['p', 2], ['r', 3], ['s', 3], ['t', 3], ['v', 3], ['w', 1], ['z', 1], ['br', 1], ['dr', 1], ['tr', 1],
  ['st', 1], ['th', 1], ['sh', 1], ['kr', 1], ['gr', 1], ['pl', 1], ['fr', 1], ['qu', 1],
];
/** Onsets allowed after a syllable that ended in a consonant (keeps clusters pronounceable). */
const INNER_ONSETS: readonly [string, number][] = [
  ['b', 2], ['d', 3], ['g', 2], ['k', 2], ['l', 3], ['m', 3], ['n', 3], ['r', 2], ['s', 3], ['t', 3], ['v', 2], ['z', 1],
];
const VOWELS: readonly [string, number][] = [['a', 6], ['e', 5], ['i', 4], ['o', 5], ['u', 2], ['ai', 1], ['ei', 1]];
const CODAS: readonly [string, number][] = [['', 8], ['n', 3], ['r', 3], ['l', 3], ['s', 2], ['m', 1], ['nd', 1], ['st', 1], ['rk', 1], ['th', 1]];
const SOFT_CODAS: readonly [string, number][] = [['', 4], ['n', 2], ['l', 2], ['s', 1], ['r', 2]];

const FAMILY_ENDINGS = ['by', 'ett', 'ard', 'wick', 'ley', 'mont', 'ish', 'ov', 'ane', 'ek', 'rin', 'dal', 'ston', 'ier', 'ell', 'ander', 'ock', 'en'];
const CITY_ENDINGS = ['mark', 'holt', 'mere', 'ford', 'wick', 'burg', 'port', 'vale', 'stead', 'ton', 'haven', 'ora', 'esh', 'ith', 'gate', 'by', 'dun', 'ness'];
const COUNTRY_ENDINGS = ['ria', 'nia', 'land', 'dor', 'vy', 'mar', 'stan', 'ca', 'eth', 'ova', 'ene'];
const LANGUAGE_ENDINGS = ['ic', 'ish', 'ese', 'ian', 'ari', 'ul', 'ine', 'ot', 'an'];

/**
 * Words a name must never equal: the template vocabulary, the real-word objects and some common
 * English words that the syllable generator could produce.
 */
const STOP_WORDS = new Set(
  [
    // template and question words
    'a', 'an', 'the', 'of', 'in', 'is', 'are', 'was', 'by', 'for', 'as', 'to', 'on', 'at', 'who',
    'what', 'where', 'which', 'does', 'do', 'have', 'has', 'its', 'that', 'born', 'city', 'country',
    'works', 'work', 'plays', 'play', 'played', 'lies', 'located', 'capital', 'official', 'language',
    'founded', 'founder', 'established', 'headquarters', 'headquartered', 'employer', 'employed',
    'employs', 'profession', 'instrument', 'musician', 'birthplace', 'organisation', 'based', 'q',
    // common words the syllables can spell
    'bale', 'band', 'bank', 'barn', 'bear', 'bell', 'bend', 'best', 'bill', 'bird', 'blame', 'blast',
    'bold', 'bolt', 'bond', 'bone', 'born', 'boss', 'brand', 'bread', 'brisk', 'burn', 'bust', 'cast',
    'chest', 'child', 'chin', 'chorus', 'cold', 'dark', 'dean', 'deal', 'dell', 'dent', 'desk', 'dim',
    'dirt', 'dome', 'done', 'drum', 'dust', 'fame', 'farm', 'fast', 'fell', 'film', 'fire', 'firm',
    'first', 'fist', 'flame', 'flask', 'fond', 'ford', 'form', 'fork', 'fort', 'frost', 'fund', 'game',
    'garden', 'gift', 'gold', 'golden', 'grand', 'grim', 'gust', 'hand', 'harm', 'helm', 'hill', 'hold',
    'home', 'horn', 'host', 'hull', 'hunt', 'just', 'kind', 'king', 'land', 'last', 'lemon', 'lend',
    'lens', 'list', 'lost', 'lust', 'mask', 'mast', 'melon', 'mild', 'milk', 'mind', 'mist', 'mold',
    'most', 'must', 'name', 'nest', 'norm', 'north', 'paris', 'past', 'pest', 'plan', 'plum', 'pond',
    'port', 'post', 'prism', 'rest', 'ring', 'risk', 'rust', 'sand', 'send', 'shell', 'shin', 'silk',
    'sold', 'some', 'stand', 'star', 'stern', 'storm', 'sun', 'sunset', 'task', 'tend', 'test', 'thin',
    'torn', 'trend', 'trust', 'turn', 'vast', 'vest', 'warm', 'west', 'wind', 'wold', 'word', 'worm',
    'zeal', 'baron', 'salon', 'talon', 'wagon', 'melody', 'tuba', 'viola', 'drums', 'organ', 'panel',
    'model', 'novel', 'motel', 'hotel', 'medal', 'metal', 'petal', 'total', 'vital', 'level', 'label',
    'solo', 'piano', 'radio', 'polo', 'logo', 'halo', 'tomato', 'potato', 'banana', 'gala', 'sofa',
    'soda', 'coma', 'drama', 'lama', 'mama', 'papa', 'sauna', 'opera', 'era', 'aura', 'data', 'delta',
    'beta', 'zeta', 'theta', 'vista', 'pasta', 'fiesta', 'siesta', 'india', 'russia', 'austria',
    'nigeria', 'syria', 'serbia', 'tunisia', 'bolivia', 'malaysia', 'mongolia', 'romania', 'albania',
    'ireland', 'finland', 'poland', 'iceland', 'england', 'scotland', 'holland', 'thailand',
    'greenland', 'portland', 'oakland', 'highland', 'lowland', 'mainland', 'island', 'inland',
    'ecuador', 'salvador', 'canada', 'america', 'africa', 'korea', 'china', 'japan', 'spain', 'italy',
    'london', 'berlin', 'boston', 'denver', 'dublin', 'milan', 'rome', 'moscow', 'vienna', 'prague',
    'hamburg', 'salzburg', 'brighton', 'preston', 'kingston', 'weston', 'easton',
    'houston', 'newport', 'seaport', 'airport', 'passport', 'rapport', 'support', 'export', 'import',
    'report', 'sport', 'transport', 'stockholm', 'oslo', 'lima', 'riga', 'doha', 'malta', 'cuba',
    'panic', 'tonic', 'sonic', 'comic', 'magic', 'logic', 'topic', 'relic', 'medic', 'manic', 'ethic',
    'polish', 'danish', 'finish', 'banish', 'vanish', 'punish', 'radish', 'lavish', 'famish', 'relish',
    'parish', 'perish', 'garish', 'ravish', 'english', 'spanish', 'turkish', 'irish', 'jewish',
    'russian', 'italian', 'indian', 'asian', 'median', 'guardian', 'civilian', 'ruffian', 'tibetan',
    'maltese', 'chinese', 'japanese', 'siamese', 'obese', 'cheese', 'geese', 'thai', 'romanian',
    'mine', 'line', 'fine', 'wine', 'pine', 'dine', 'nine', 'vine', 'spine', 'shine', 'swine',
    'urine', 'marine', 'routine', 'ravine', 'divine', 'feline', 'canine', 'saline', 'sardine',
    'machine', 'magazine', 'jasmine', 'doctrine', 'examine', 'famine', 'engine', 'imagine',
    'medicine', 'discipline', 'valentine', 'turbine', 'trampoline',
    'paul', 'saul', 'raul', 'mogul', 'tamara', 'sahara', 'safari', 'calamari', 'ferrari', 'atari',
  ].concat(PROFESSIONS, INSTRUMENTS, ORGANISATION_KINDS.map((k) => k.toLowerCase())),
);

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function weighted(rng: Rng, items: readonly [string, number][]): string {
  return items[rng.weightedIndex(items.map((x) => x[1]))]![0];
}

/** A syllable; after a closed syllable only simple onsets are allowed. */
function syllable(rng: Rng, afterClosed: boolean, codas: readonly [string, number][]): string {
  const onset = weighted(rng, afterClosed ? INNER_ONSETS : ONSETS);
  return onset + weighted(rng, VOWELS) + weighted(rng, codas);
}

function stem(rng: Rng, syllables: number, lastCodas: readonly [string, number][]): string {
  let out = '';
  let closed = false;
  for (let i = 0; i < syllables; i++) {
    const s = syllable(rng, closed, i === syllables - 1 ? lastCodas : CODAS);
    out += s;
    closed = !/[aeiouy]$/.test(s);
  }
  return out;
}

/** Joins a stem and an ending, avoiding vowel-vowel and awkward consonant pile-ups at the seam. */
function withEnding(base: string, ending: string): string {
  const endsVowel = /[aeiou]$/.test(base);
  const startsVowel = /^[aeiou]/.test(ending);
  if (endsVowel && startsVowel) return base.slice(0, -1) + ending;
  if (!endsVowel && !startsVowel && /[^aeiou]{2}$/.test(base)) return base.slice(0, -1) + ending;
  return base + ending;
}

function wellFormed(word: string, minLen: number, maxLen: number): boolean {
  if (word.length < minLen || word.length > maxLen) return false;
  if (/(.)\1\1/.test(word)) return false; // no triple letters
  if (/[^aeiouy]{3}/.test(word.replace(/^(st|tr|th|sh|br|dr|kr|gr|pl|fr)/, 'x'))) return false; // at most two consonants in a row
  if (/[aeiou]{3}/.test(word)) return false;
  if (/q(?!u)/.test(word)) return false;
  if (/([^aeiou])\1$/.test(word)) return false; // no double consonant at the end ("Brekk")
  return !STOP_WORDS.has(word);
}

export type WordClass = 'given' | 'family' | 'city' | 'country' | 'language' | 'orgStem';

const ORG_CODAS: readonly [string, number][] = [['n', 2], ['r', 2], ['l', 2], ['s', 1], ['sk', 1], ['rk', 1], ['nd', 1], ['st', 1], ['ld', 1], ['rn', 1]];

const GENERATORS: Record<WordClass, (rng: Rng) => string> = {
  given: (rng) => stem(rng, 2, SOFT_CODAS),
  family: (rng) => withEnding(stem(rng, rng.chance(0.6) ? 1 : 2, CODAS), rng.pick(FAMILY_ENDINGS)),
  city: (rng) => (rng.chance(0.75) ? withEnding(stem(rng, 1, CODAS), rng.pick(CITY_ENDINGS)) : stem(rng, 3, SOFT_CODAS)),
  country: (rng) => withEnding(stem(rng, 2, SOFT_CODAS), rng.pick(COUNTRY_ENDINGS)),
  language: (rng) => withEnding(stem(rng, rng.chance(0.6) ? 1 : 2, CODAS), rng.pick(LANGUAGE_ENDINGS)),
  orgStem: (rng) => stem(rng, rng.chance(0.6) ? 1 : 2, ORG_CODAS),
};

const LENGTHS: Record<WordClass, [number, number]> = {
  given: [4, 6],
  family: [5, 8],
  city: [5, 10],
  country: [6, 10],
  language: [5, 8],
  orgStem: [4, 8],
};

/** Classes whose words are objects of facts: they must differ in their first three letters. */
const DISTINCT_PREFIX_CLASSES: ReadonlySet<WordClass> = new Set<WordClass>(['city', 'country', 'language', 'orgStem']);

/** Hands out invented words under the uniqueness rules above. */
export class NameFactory {
  private readonly used = new Set<string>();
  private readonly sortedUsed: string[] = [];
  private readonly prefixes = new Map<WordClass, Set<string>>();

  constructor(private readonly rng: Rng) {}

  /** True if `w` (lower case) equals, contains as prefix, or is a prefix of a word already handed out. */
  private clashes(w: string): boolean {
    if (this.used.has(w)) return true;
    // Binary search for the insertion point; neighbours in sorted order are the only prefix candidates
    // in one direction, and every word starting with w follows w immediately.
    let lo = 0;
    let hi = this.sortedUsed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sortedUsed[mid]! < w) lo = mid + 1;
      else hi = mid;
    }
    const next = this.sortedUsed[lo];
    if (next !== undefined && next.startsWith(w)) return true;
    for (let k = 1; k < w.length; k++) if (this.used.has(w.slice(0, k))) return true;
    return false;
  }

  private register(w: string): void {
    this.used.add(w);
    let lo = 0;
    let hi = this.sortedUsed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sortedUsed[mid]! < w) lo = mid + 1;
      else hi = mid;
    }
    this.sortedUsed.splice(lo, 0, w);
  }

  /** A fresh capitalised word of the given class. Throws after many failed attempts (sizes too large). */
  word(cls: WordClass): string {
    const [minLen, maxLen] = LENGTHS[cls];
    let prefixSet = this.prefixes.get(cls);
    if (!prefixSet) {
      prefixSet = new Set();
      this.prefixes.set(cls, prefixSet);
    }
    for (let attempt = 0; attempt < 20000; attempt++) {
      const w = GENERATORS[cls](this.rng);
      if (!wellFormed(w, minLen, maxLen)) continue;
      if (this.clashes(w)) continue;
      const p3 = w.slice(0, 3);
      if (DISTINCT_PREFIX_CLASSES.has(cls) && prefixSet.has(p3)) continue;
      this.register(w);
      prefixSet.add(p3);
      return capitalise(w);
    }
    throw new Error(`could not invent a new ${cls} name; the requested world is too large for the name generator`);
  }
}
