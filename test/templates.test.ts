// Context templates (src/editors/common/templates.ts): how the sampling uses its KV cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CausalLM } from '../src/models/model.js';
import type { KVCache } from '../src/models/kvcache.js';
import { contextTemplates } from '../src/editors/common/templates.js';
import { sharedDir } from './helpers.js';

const models = sharedDir('models');

test('context templates: each sampling KV cache is allocated once, at the length it ends up holding', { skip: models ? false : 'no ../shared/models' }, async () => {
  const model = await CausalLM.load(`${models}/tiny-random-gpt2`);
  const seen = new Map<KVCache, number[]>(); // cache → its capacity at each forward
  const forward = model.forward.bind(model);
  model.forward = (ids, B, T, opts = {}) => {
    if (opts.cache) seen.set(opts.cache, [...(seen.get(opts.cache) ?? []), opts.cache.capacity]);
    return forward(ids, B, T, opts);
  };
  // ROME's shape (one start token, two lengths) and MEMIT's (several prompts of several tokens).
  const groups = contextTemplates(model, { prompts: ['<|endoftext|>'], lengthParams: [[5, 3], [10, 2]], topK: 5, seed: 101 });
  assert.deepEqual(groups.map((g) => g.length), [1, 3, 2]);
  contextTemplates(model, { prompts: ['The', 'Because of the'], lengthParams: [[10, 4]], topK: 5, seed: 102 });
  assert.equal(seen.size, 4, 'one cache per (prompt, length)');
  for (const [cache, capacities] of seen) {
    assert.ok(capacities.length > 3, 'several sampling steps');
    assert.deepEqual(capacities, capacities.map(() => cache.length), `capacity at each step, for ${cache.length} positions held at the end`);
  }
});
