export * from './config.js';
export * from './arch.js';
export * from './hooks.js';
export * from './kvcache.js';
export * from './transformer.js';
export * from './model.js';
export * from './generate.js';
export * from './random.js';
