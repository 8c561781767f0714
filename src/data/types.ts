// What the loaders hand to evaluation: the public types of 'amend/data' (the formats' own plumbing
// is in spec.ts).
import { optionKeys } from '../errors.js';
import type { EditCase } from '../editors/types.js';

/** Every format loadCases understands (detected from the content, never from the file name). */
export type DatasetFormat =
  | 'counterfact'
  | 'counterfact-easyedit'
  | 'amend-world'
  | 'zsre-mend'
  | 'wise-zsre-portability'
  | 'wise-temporal'
  | 'wise-hallucination'
  | 'knowedit-zsre'
  | 'knowedit-wiki-counterfact'
  | 'knowedit-wiki-recent'
  | 'knowedit-wikibio'
  | 'knowedit-convsent'
  | 'knowedit-sanitation'
  | 'mquake'
  | 'mquake-remastered'
  | 'rome-knowns'
  | 'evedit'
  | 'amend-cases';

/**
 * MQuAKE-Remastered's `split` field as its records hold it: for each run size the authors drew a
 * set of edited cases for (the key, e.g. "1", "100", "1000"), the case's labels in that run.
 * "edited" (CF-3k, CF-9k, T) or "train_edited" / "test_edited" / "test_edited_unique" (CF-6334;
 * the authors' scorer reports the last, test cases whose edits no training case shares, apart)
 * mark a case whose edits the run applies; a case without one ("unedited", "test_unedited", no
 * label) is only asked, its original answer expected. Their loader reads split[str(edit_num)].
 */
export type SplitLabels = Record<string, string[]>;

/** The labels that mark a case a run edits (see SplitLabels). */
export const EDITED_SPLIT_LABELS: readonly string[] = ['edited', 'train_edited', 'test_edited', 'test_edited_unique'];

/** A case as the loaders give it: an EditCase, with the run-split labels of a file that has them. */
export interface LoadedCase extends EditCase {
  split?: SplitLabels;
}

export interface SkippedRecord {
  index: number;
  reason: string;
}

export interface LoadedCases {
  format: DatasetFormat;
  /** One line: what the format is and where it comes from. */
  description: string;
  cases: LoadedCase[];
  /** Records in the file (before `limit`). */
  total: number;
  /** With `split`: its name and how many cases of the file that run edits (before `limit`). */
  split?: { name: string; edited: number };
  /** Records left out on purpose, as the reference loaders do (e.g. zsRE records with an empty `alt`). */
  skipped: SkippedRecord[];
}

export interface LoadOptions {
  /** Keep the first `limit` cases (after skipped records). */
  limit?: number;
  /** Force a format instead of detecting it (the records are still validated). */
  format?: DatasetFormat;
  /**
   * MQuAKE-Remastered: keep only the cases the run of this split edits (a key of the records'
   * `split` field, e.g. "100"; see SplitLabels), in file order; `limit` then counts those.
   */
  split?: string;
}

/** LoadOptions' keys, for refusing a misspelt one from JavaScript. */
export const LOAD_OPTION_KEYS = optionKeys<LoadOptions>()(['limit', 'format', 'split']);
