/**
 * Every number evaluation produces carries the protocol that produced it, so that numbers from
 * different protocols are never averaged together (DESIGN.md, "Evaluation").
 */
export type Protocol =
  /** KnowEdit / EasyEdit: fraction of target tokens that are the argmax given the gold prefix. */
  | 'token-accuracy'
  /** CounterFact / ROME: P(new) against P(true) on the same prompt (mean per-token log-probability). */
  | 'probability-comparison'
  /**
   * KnowEdit ConvSent / SERAC sentiment editing: pooled mean log-likelihood of a topic's sentences
   * by sentiment against the unedited model's (es), and the KL from the unedited model's
   * next-token distributions on another topic's sentences (dd).
   */
  | 'sentiment-likelihood'
  /** Sampled continuations (top-k), scored as text: n-gram entropy, TF-IDF consistency. */
  | 'sampled-generation'
  /** Greedy decoding, the answer compared as text: exact match / token F1 (SQuAD normalisation). */
  | 'generation-qa'
  /** exp(mean NLL) of reference text, token-weighted. */
  | 'perplexity'
  /** What an edit costs: wall time, memory. */
  | 'cost';

export const PROTOCOLS: readonly Protocol[] = [
  'token-accuracy',
  'probability-comparison',
  'sentiment-likelihood',
  'sampled-generation',
  'generation-qa',
  'perplexity',
  'cost',
];

export const PROTOCOL_DESCRIPTIONS: Readonly<Record<Protocol, string>> = {
  'token-accuracy': 'teacher-forced token accuracy (KnowEdit / EasyEdit)',
  'probability-comparison': 'probability comparison of new vs true target (CounterFact / ROME)',
  'sentiment-likelihood': 'teacher-forced log-likelihood of sentences by sentiment, and KL from the unedited model on another topic (KnowEdit ConvSent / SERAC)',
  'sampled-generation': 'text sampled with top-k and scored as text (ROME fluency / consistency)',
  'generation-qa': 'greedy generation, exact match and token F1 against the answer',
  perplexity: 'perplexity of reference text',
  cost: 'wall time and memory',
};

/** One number for one case (or one run), with where it came from. */
export interface Metric {
  /** e.g. "rewrite_acc", "locality.Relation_Specificity_acc", "efficacy_score". */
  name: string;
  protocol: Protocol;
  value: number;
  /** How many items the value averages over (prompts, tokens, texts). */
  n?: number;
  /**
   * Where the value is not a fraction or a plain number: "bits" (ngram_entropy), "nats" (dd),
   * "seconds" and "bytes" (costs). Reports print it beside the value.
   */
  unit?: string;
}

export function metric(name: string, protocol: Protocol, value: number, extra: { n?: number; unit?: string } = {}): Metric {
  const m: Metric = { name, protocol, value };
  if (extra.n !== undefined) m.n = extra.n;
  if (extra.unit !== undefined) m.unit = extra.unit;
  return m;
}
