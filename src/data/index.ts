/**
 * Benchmark loaders: every public knowledge-editing format → EditCase (see loadCases and FORMATS
 * for the detection rules). DESIGN.md, "Evaluation".
 */
export * from './types.js';
export { DATASET_FORMATS, FORMATS, caseRequests, detectFormat, loadCases, parseBenchmarkText, parseCases } from './load.js';
export { answerStrings } from './fields.js';
