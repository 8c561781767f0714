// The statistics layer: per-layer second moments E[k kᵀ] of the MLP keys over a corpus, cached
// on disk, and imports of ROME / EasyEdit statistics.
export * from './types.js';
export { layerSecondMoment, layerSecondMoments, resolveStatsOptions, packBatches, forEachKeys, type ResolvedStatsOptions } from './compute.js';
export { GramAccumulator } from './accumulate.js';
export {
  cacheRoot, statsDir, modelStatsDir, statsCachePath, readStatsFile, writeStatsFile, STATS_FORMAT, type StatsKey,
} from './cache.js';
export {
  defaultCorpus, corpusSpecOf, resolveCorpus, corpusDocs, countDocs, chooseSubset, importedCorpusId, DEFAULT_CORPUS_FILE,
  type Doc, type ResolvedCorpus,
} from './corpus.js';
export {
  importEasyEditStats, importStatsToCache, findImported, loadStatsFile, parseRomeStatsName, cachedStatsFiles,
  type CacheImportOptions, type ImportOptions, type RomeStatsName,
} from './import.js';
export {
  measureStatsFit, fitsModel, describeFit, FIT_RATIO_RANGE, FIT_MIN_UNIT_CORRELATION, FIT_TOKENS, type FitOptions, type StatsFit,
} from './fit.js';
export { FIT_TEXT } from './fit-text.js';
