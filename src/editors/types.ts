// What an edit asks for and what datasets hand to evaluation (design: "Edits").

export interface EditRequest {
  /** The prompt, with "{}" where the subject goes, or containing the subject verbatim. */
  prompt: string;
  subject: string;
  /** The new object, e.g. " football" (a leading space is added when missing, as ROME does). */
  targetNew: string;
  targetTrue?: string;
  /** Free-form id carried into patches and reports (e.g. CounterFact's case_id). */
  id?: string | number;
}

export interface PromptAnswer {
  prompt: string;
  answer: string;
  /** Other accepted answers (Wikidata aliases, MQuAKE answer_alias): generation-based QA accepts any of them. */
  aliases?: string[];
}

/**
 * KnowEdit ConvSent (SERAC's sentiment editing): sentences that answer a question about a topic,
 * split by sentiment, and another topic whose sentences must keep their distributions. The
 * sentiment metrics (src/eval/metrics-sentiment.ts) score each sentence after its question.
 */
export interface SentimentProbe {
  /** The question about the edited topic that the sentences answer (the topic filled in). */
  question: string;
  /** The topic's sentences with the sentiment the edit asks for. */
  same: string[];
  /** The topic's sentences with the other sentiment. */
  other: string[];
  /** Another topic (ConvSent: the next case's): its question and all its sentences. */
  outer?: { topic: string; question: string; sentences: string[] };
}

/** A request plus everything evaluation needs to score it. */
export interface EditCase extends EditRequest {
  /** Paraphrases of the prompt (generalisation), subject already filled in. */
  rephrase?: string[];
  /** Prompts whose answers must not change. */
  locality?: PromptAnswer[];
  /** Questions whose answers follow from the new fact (reasoning over it). */
  portability?: PromptAnswer[];
  /** CounterFact: prompts about other subjects with the same relation and true object. */
  neighborhood?: string[];
  /** CounterFact: prompts about subjects whose true object is the new one. */
  attributePrompts?: string[];
  generationPrompts?: string[];
  /** Named groups of portability / locality prompts (KnowEdit sub-keys), when a dataset has them. */
  portabilityGroups?: Record<string, PromptAnswer[]>;
  localityGroups?: Record<string, PromptAnswer[]>;
  /**
   * Several edits that belong together (MQuAKE: 1–4 edits, then multi-hop questions). When present,
   * every one of them must be applied before the case is scored; the request fields of the case
   * itself are those of edits[0]. `caseRequests(c)` in src/data returns edits ?? [c].
   */
  edits?: EditCase[];
  /** CounterFact relation and Wikidata ids of the objects (reference-consistency snippets are keyed by them). */
  relationId?: string;
  targetNewId?: string;
  targetTrueId?: string;
  /** KnowEdit ConvSent: what the sentiment metrics score. */
  sentiment?: SentimentProbe;
}
