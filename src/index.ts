// The public API: `import { CausalLM, generate, edit } from 'amend'`, or one layer at a time
// ('amend/tensor', 'amend/models', 'amend/io', 'amend/linalg', 'amend/backend', 'amend/patch',
// 'amend/editors', 'amend/data', 'amend/eval', 'amend/stats').
export { AmendError } from './errors.js';
export { kernels, useBackend, nativeStatus } from './backend/index.js';
export * from './models/index.js';
export { AmendTokenizer } from './tokenizer/index.js';
export * from './patch/index.js';
export { edit, editWithReport, type EditOptions, type EditReport, type EditResult, type EditRequest, type EditMethod, type EditHparams } from './editors/index.js';
