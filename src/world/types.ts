/**
 * Plain, JSON-serialisable types of the demo world (see DESIGN.md, "The built-in demo model").
 */

export type EntityKind =
  | 'person'
  | 'city'
  | 'country'
  | 'organisation'
  | 'language'
  | 'profession'
  | 'instrument'
  | 'field'
  | 'instrumentFamily';

/** Kinds whose names are real English words (not invented): professions, instruments and their categories. */
export const REAL_WORD_KINDS: readonly EntityKind[] = ['profession', 'instrument', 'field', 'instrumentFamily'];

export interface Entity {
  /** Stable id, unique in the world, e.g. "city-007". */
  id: string;
  kind: EntityKind;
  /** The surface form, unique across the whole world. Invented for every kind except REAL_WORD_KINDS. */
  name: string;
}

export type PhrasingKind = 'statement' | 'question';
export type PhrasingSplit = 'train' | 'heldOut';

export interface Phrasing {
  /** Contains "{}" exactly once where the subject goes, and ends right before the object. */
  template: string;
  kind: PhrasingKind;
  /** `train` phrasings are in the training corpus; `heldOut` ones never are (paraphrase evaluation). */
  split: PhrasingSplit;
}

export interface Relation {
  /** Wikidata property id, as CounterFact's relation_id (e.g. "P19" place of birth). */
  id: string;
  /** Readable name, e.g. "birthplace". */
  name: string;
  subjectKind: EntityKind;
  objectKind: EntityKind;
  phrasings: Phrasing[];
  /** Open-ended prompts about the subject (CounterFact generation_prompts), "{}" = subject. */
  generation: string[];
}

/** One fact: ids of the subject and object entities, and the relation id. Every relation is functional. */
export interface Fact {
  subject: string;
  relation: string;
  object: string;
}

export interface WorldSizes {
  people: number;
  cities: number;
  countries: number;
  organisations: number;
  /** Official languages; each is official in at least two countries (so at most countries / 2). */
  languages: number;
  professions: number;
  instruments: number;
  /** Distinct people who founded the organisations (each founded at least two). */
  founders: number;
  /** Distinct cities hosting organisation headquarters (each hosts at least two). */
  headquarterCities: number;
  /**
   * 0 or the number of cities: every city gets a mayor (a different person each; the relation P6
   * exists only then). Left out, every city has one. Without these person-valued relations a
   * city's only fact is its country, so the cities of one country look alike to the model and an
   * edit of one moves its neighbours (bench/RESULTS.md).
   */
  mayors?: number;
  /** 0 or the number of cities: every city is named after a person (relation P138), drawn like the mayors; left out, all are. */
  namesakes?: number;
  /** 0 or the number of organisations: every organisation has a chief executive (relation P169); left out, all have. */
  chiefs?: number;
}

export interface World {
  /** Format version of this JSON. */
  format: 'amend-demo-world';
  version: 1;
  seed: number;
  sizes: WorldSizes;
  entities: Record<EntityKind, Entity[]>;
  relations: Relation[];
  facts: Fact[];
}
