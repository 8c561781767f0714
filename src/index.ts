// The public API: `import { CausalLM, generate } from 'amend'`, or one layer at a time
// ('amend/tensor', 'amend/models', 'amend/io', 'amend/linalg', 'amend/backend').
export { AmendError } from './errors.js';
export { kernels, useBackend, nativeStatus } from './backend/index.js';
export * from './models/index.js';
export { AmendTokenizer } from './tokenizer/index.js';
export * from './patch/index.js';
