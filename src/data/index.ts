/**
 * Benchmark loaders: every public knowledge-editing format → EditCase (see loadCases and FORMATS
 * in load.ts for the detection rules). DESIGN.md, "Evaluation". The loaders and the types of what
 * they return; how a format is read (spec.ts, the converters) stays inside.
 */
export type { DatasetFormat, LoadOptions, LoadedCase, LoadedCases, SkippedRecord, SplitLabels } from './types.js';
export { DATASET_FORMATS, caseRequests, detectFormat, loadCases, parseCases } from './load.js';
