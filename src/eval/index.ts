export * from './protocols.js';
export * from './scoring.js';
export * from './metrics.js';
export * from './metrics-text.js';
export * from './metrics-case.js';
export * from './metrics-ppl.js';
export * from './metrics-cost.js';
