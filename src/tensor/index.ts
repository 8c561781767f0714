export * from './tensor.js';
export * from './ops.js';
export * from './random.js';
