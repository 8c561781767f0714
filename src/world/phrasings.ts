/**
 * The relations of the demo world and their phrasings.
 *
 * Rules every template follows:
 * - "{}" appears exactly once and stands for the subject's name;
 * - the template ends right before the object, which follows after one space
 *   ("{} was born in" + " " + "Quenmark");
 * - no space before punctuation (so tokenizer clean-up never changes a line);
 * - held-out phrasings reuse the cue words of the training ones ("birthplace", "born", "capital")
 *   in new arrangements, so that a small model can plausibly generalise to them.
 */
import type { EntityKind, Phrasing, PhrasingKind, PhrasingSplit, Relation } from './types.js';

interface RelationSpec {
  id: string;
  name: string;
  subjectKind: EntityKind;
  objectKind: EntityKind;
  train: [PhrasingKind, string][];
  heldOut: [PhrasingKind, string][];
  generation: string[];
}

const S: PhrasingKind = 'statement';
const Q: PhrasingKind = 'question';

const SPECS: RelationSpec[] = [
  {
    id: 'P19',
    name: 'birthplace',
    subjectKind: 'person',
    objectKind: 'city',
    train: [
      [S, '{} was born in'],
      [S, 'The birthplace of {} is'],
      [S, '{} was born in the city of'],
      [Q, 'Q: Where was {} born? A:'],
    ],
    heldOut: [
      [S, "{}'s birthplace is"],
      [Q, 'Q: In which city was {} born? A:'],
    ],
    generation: ['{} grew up in', '{} often returns to', 'The childhood home of {} was in'],
  },
  {
    id: 'P106',
    name: 'profession',
    subjectKind: 'person',
    objectKind: 'profession',
    train: [
      [S, '{} works as a'],
      [S, 'The profession of {} is'],
      [S, 'By profession, {} is a'],
      [Q, 'Q: What is the profession of {}? A:'],
    ],
    heldOut: [
      [S, "{}'s profession is"],
      [Q, 'Q: Which profession does {} have? A:'],
    ],
    generation: ['{} is known for work as a', '{} trained for years to become a', 'Every morning, {}'],
  },
  {
    id: 'P108',
    name: 'employer',
    subjectKind: 'person',
    objectKind: 'organisation',
    train: [
      [S, '{} works for'],
      [S, '{} is employed by'],
      [S, 'The employer of {} is'],
      [Q, 'Q: Who employs {}? A:'],
    ],
    heldOut: [
      [S, "{}'s employer is"],
      [Q, 'Q: Which organisation is {} employed by? A:'],
    ],
    generation: ['{} spends every workday at', '{} recently joined', 'The colleagues of {} at'],
  },
  {
    id: 'P1303',
    name: 'instrument',
    subjectKind: 'person',
    objectKind: 'instrument',
    train: [
      [S, '{} plays the'],
      [S, 'The instrument played by {} is the'],
      [S, '{} is a musician who plays the'],
      [Q, 'Q: Which instrument does {} play? A:'],
    ],
    heldOut: [
      [S, "{}'s instrument is the"],
      [Q, 'Q: What instrument is played by {}? A:'],
    ],
    generation: ['{} practises every evening on the', '{} gave a concert playing the', 'The favourite sound of {} is'],
  },
  {
    id: 'P17',
    name: 'country',
    subjectKind: 'city',
    objectKind: 'country',
    train: [
      [S, '{} is a city in'],
      [S, '{} is located in the country of'],
      [S, 'The city of {} lies in'],
      [Q, 'Q: In which country is {}? A:'],
    ],
    heldOut: [
      [S, '{} lies in the country of'],
      [Q, 'Q: Which country is {} located in? A:'],
    ],
    generation: ['Travellers to {} first notice', 'The people of {} are proud of', '{} is famous for'],
  },
  {
    id: 'P36',
    name: 'capital',
    subjectKind: 'country',
    objectKind: 'city',
    train: [
      [S, 'The capital of {} is'],
      [S, "{}'s capital city is"],
      [S, 'The capital city of {} is'],
      [Q, 'Q: What is the capital of {}? A:'],
    ],
    heldOut: [
      [S, "{}'s capital is"],
      [Q, 'Q: Which city is the capital of {}? A:'],
    ],
    generation: ['The government of {} sits in', 'Visitors to {} usually start in', 'The largest square of {} is in'],
  },
  {
    id: 'P37',
    name: 'official language',
    subjectKind: 'country',
    objectKind: 'language',
    train: [
      [S, 'The official language of {} is'],
      [S, 'In {}, the official language is'],
      [S, "{}'s official language is"],
      [Q, 'Q: What is the official language of {}? A:'],
    ],
    heldOut: [
      [S, '{} has the official language'],
      [Q, 'Q: Which language is official in {}? A:'],
    ],
    generation: ['In {}, people speak', 'Schools in {} teach', 'Newspapers in {} are printed in'],
  },
  {
    id: 'P159',
    name: 'headquarters',
    subjectKind: 'organisation',
    objectKind: 'city',
    train: [
      [S, '{} is headquartered in'],
      [S, 'The headquarters of {} are in'],
      [S, '{} has its headquarters in the city of'],
      [Q, 'Q: Where is {} headquartered? A:'],
    ],
    heldOut: [
      [S, "{}'s headquarters are in"],
      [Q, 'Q: In which city is {} headquartered? A:'],
    ],
    generation: ['The offices of {} are in', '{} opened its first office in', 'Most employees of {} live in'],
  },
  {
    id: 'P112',
    name: 'founder',
    subjectKind: 'organisation',
    objectKind: 'person',
    train: [
      [S, '{} was founded by'],
      [S, 'The founder of {} is'],
      [S, '{} was established by'],
      [Q, 'Q: Who founded {}? A:'],
    ],
    heldOut: [
      [S, "{}'s founder is"],
      [Q, 'Q: Who is the founder of {}? A:'],
    ],
    generation: ['The story of {} begins with', '{} was started many years ago by', '{} owes its existence to'],
  },
  {
    id: 'P425',
    name: 'field of work',
    subjectKind: 'profession',
    objectKind: 'field',
    train: [
      [S, 'A {} works in the field of'],
      [S, 'The field of work of a {} is'],
      [S, 'Every {} works in the field of'],
      [Q, 'Q: In which field does a {} work? A:'],
    ],
    heldOut: [
      [S, 'The work of a {} belongs to the field of'],
      [Q, 'Q: What is the field of work of a {}? A:'],
    ],
    generation: ['A {} spends the day', 'Becoming a {} requires', 'A good {} always'],
  },
  {
    id: 'P279',
    name: 'instrument family',
    subjectKind: 'instrument',
    objectKind: 'instrumentFamily',
    train: [
      [S, 'The {} is a kind of'],
      [S, 'The {} is classed as a'],
      [S, 'Musicians know the {} as a'],
      [Q, 'Q: What kind of instrument is the {}? A:'],
    ],
    heldOut: [
      [S, 'The {} counts as a'],
      [Q, 'Q: What type of instrument is the {}? A:'],
    ],
    generation: ['The sound of the {} is', 'Learning the {} takes', 'The {} is made of'],
  },
];

/** Relations a world has only when its sizes ask for them (generator.ts: OPTIONAL_RELATIONS). */
const OPTIONAL_SPECS: RelationSpec[] = [
  {
    id: 'P6',
    name: 'mayor',
    subjectKind: 'city',
    objectKind: 'person',
    train: [
      [S, 'The mayor of {} is'],
      [S, '{} is governed by the mayor'],
      [S, 'The city of {} elected as its mayor'],
      [Q, 'Q: Who is the mayor of {}? A:'],
    ],
    heldOut: [
      [S, "{}'s mayor is"],
      [Q, 'Q: Who governs the city of {}? A:'],
    ],
    generation: ['The town hall of {} is run by', 'Everyone in {} knows the mayor,', 'The last election in {} was won by'],
  },
  {
    id: 'P138',
    name: 'named after',
    subjectKind: 'city',
    objectKind: 'person',
    train: [
      [S, 'The city of {} is named after'],
      [S, '{} takes its name from'],
      [S, 'The name of {} honours'],
      [Q, 'Q: Who is {} named after? A:'],
    ],
    heldOut: [
      [S, "{}'s name comes from"],
      [Q, 'Q: After whom is the city of {} named? A:'],
    ],
    generation: ['A statue in the centre of {} shows', 'Every child in {} learns the story of', 'The oldest square in {} remembers'],
  },
  {
    id: 'P169',
    name: 'chief executive',
    subjectKind: 'organisation',
    objectKind: 'person',
    train: [
      [S, 'The chief executive of {} is'],
      [S, '{} is led by its chief executive'],
      [S, '{} is run by'],
      [Q, 'Q: Who is the chief executive of {}? A:'],
    ],
    heldOut: [
      [S, "{}'s chief executive is"],
      [Q, 'Q: Who leads {}? A:'],
    ],
    generation: ['The annual report of {} was signed by', 'Staff at {} answer to', 'The new plan of {} comes from'],
  },
];

function toPhrasings(split: PhrasingSplit, list: [PhrasingKind, string][]): Phrasing[] {
  return list.map(([kind, template]) => ({ template, kind, split }));
}

/** Fresh copies of the relation definitions (the world stores its own copy), optional ones by id. */
export function relationDefinitions(optional: readonly string[] = []): Relation[] {
  return [...SPECS, ...OPTIONAL_SPECS.filter((s) => optional.includes(s.id))].map((s) => ({
    id: s.id,
    name: s.name,
    subjectKind: s.subjectKind,
    objectKind: s.objectKind,
    phrasings: [...toPhrasings('train', s.train), ...toPhrasings('heldOut', s.heldOut)],
    generation: s.generation.slice(),
  }));
}

/**
 * Relation ids that benchmark cases may edit. Capital is one-to-one (no neighbourhood), and field of
 * work / instrument family are fixed real-world categories, so those are used only in multi-hop questions.
 */
export const EDITABLE_RELATIONS: readonly string[] = ['P19', 'P106', 'P108', 'P1303', 'P17', 'P37', 'P159', 'P112'];

/**
 * Multi-hop question templates. `path` is the chain of relations followed from the subject "{}";
 * the answer is the entity reached at the end. Used for portability: after an edit of relation r,
 * any template whose path contains r yields a question whose answer follows from the new fact
 * and unedited facts.
 */
export interface MultiHopTemplate {
  path: string[];
  template: string;
}

export const MULTI_HOP_TEMPLATES: readonly MultiHopTemplate[] = [
  { path: ['P19', 'P17'], template: '{} was born in a city that lies in the country of' },
  { path: ['P19', 'P17', 'P37'], template: 'The official language of the country where {} was born is' },
  { path: ['P19', 'P17', 'P36'], template: 'The capital of the country where {} was born is' },
  { path: ['P108', 'P159'], template: '{} works for an organisation headquartered in' },
  { path: ['P108', 'P112'], template: '{} works for an organisation founded by' },
  { path: ['P108', 'P159', 'P17'], template: '{} works for an organisation based in the country of' },
  { path: ['P17', 'P37'], template: 'The official language of the country where {} lies is' },
  { path: ['P17', 'P36'], template: 'The capital of the country where {} lies is' },
  { path: ['P159', 'P17'], template: '{} is headquartered in the country of' },
  { path: ['P159', 'P17', 'P37'], template: 'The official language of the country where {} is headquartered is' },
  { path: ['P112', 'P19'], template: 'The founder of {} was born in' },
  { path: ['P112', 'P106'], template: 'The founder of {} works as a' },
  { path: ['P112', 'P1303'], template: 'The founder of {} plays the' },
  { path: ['P106', 'P425'], template: '{} works in the field of' },
  { path: ['P1303', 'P279'], template: 'The instrument that {} plays is a kind of' },
  { path: ['P112', 'P106', 'P425'], template: 'The founder of {} works in the field of' },
];

/** Puts the subject into a template ("{}" → subject). */
export function fillTemplate(template: string, subject: string): string {
  const at = template.indexOf('{}');
  if (at < 0 || template.indexOf('{}', at + 2) >= 0) {
    throw new Error(`template must contain "{}" exactly once: ${JSON.stringify(template)}`);
  }
  return template.slice(0, at) + subject + template.slice(at + 2);
}

/**
 * Real-word objects with their category (field of work, instrument family). Professions start with
 * a consonant sound so that "works as a" is grammatical.
 */
export const PROFESSION_FIELDS: Readonly<Record<string, string>> = {
  baker: 'food',
  carpenter: 'craft',
  chemist: 'science',
  diplomat: 'politics',
  farmer: 'food',
  geologist: 'science',
  jeweller: 'craft',
  lawyer: 'law',
  librarian: 'education',
  mason: 'craft',
  nurse: 'medicine',
  painter: 'art',
  pilot: 'transport',
  poet: 'art',
  sculptor: 'art',
  surgeon: 'medicine',
  tailor: 'craft',
  teacher: 'education',
  weaver: 'craft',
  botanist: 'science',
  brewer: 'food',
  cartographer: 'science',
  glassblower: 'craft',
  shipwright: 'craft',
};

export const INSTRUMENT_FAMILIES: Readonly<Record<string, string>> = {
  cello: 'string instrument',
  violin: 'string instrument',
  flute: 'woodwind instrument',
  harp: 'string instrument',
  lute: 'string instrument',
  oboe: 'woodwind instrument',
  trumpet: 'brass instrument',
  piano: 'keyboard instrument',
  guitar: 'string instrument',
  banjo: 'string instrument',
  bassoon: 'woodwind instrument',
  clarinet: 'woodwind instrument',
  accordion: 'keyboard instrument',
  trombone: 'brass instrument',
  mandolin: 'string instrument',
  zither: 'string instrument',
};

export const PROFESSIONS: readonly string[] = Object.keys(PROFESSION_FIELDS);
export const INSTRUMENTS: readonly string[] = Object.keys(INSTRUMENT_FAMILIES);

/** Second word of organisation names ("Brask Foundry"). */
export const ORGANISATION_KINDS: readonly string[] = [
  'Foundry', 'Works', 'Institute', 'Company', 'Press', 'Mills', 'Bank', 'Guild',
  'Academy', 'Shipyards', 'Observatory', 'Railways', 'Brewery', 'Library', 'Museum', 'Theatre',
  'Orchestra', 'Hospital', 'College', 'Society', 'Trust', 'Union', 'Exchange', 'Mint',
  'Quarry', 'Forge', 'Pottery', 'Bakery', 'Dockyards', 'Airlines', 'Laboratory', 'Gazette',
  'Studio', 'Gallery', 'Market', 'Tannery',
];
