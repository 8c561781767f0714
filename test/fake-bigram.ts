// A word-level bigram "model" for hand-computed metric tests: each word's next-token distribution
// is given as probabilities (words left out predict " the"), and set() swaps them, which is the
// tests' "edit". Only what scoring reads is there: config, tok() and forward() with logitsAt rows.
import type { ForwardOptions, ModelConfig } from '../src/models/index.js';
import { Tensor } from '../src/tensor/index.js';
import type { AmendTokenizer } from '../src/tokenizer/index.js';
import type { EvalModel } from '../src/eval/metrics-case.js';

/** word → { next word: probability }. */
export type Dist = Record<string, Record<string, number>>;

export function bigramModel(words: readonly string[], dist: Dist, tok: unknown): EvalModel & { set(d: Dist): void } {
  const id = new Map(words.map((w, i) => [w, i]));
  const V = words.length;
  let table = new Float32Array(0);
  const set = (d: Dist) => {
    table = new Float32Array(V * V).fill(-1e9);
    for (let v = 0; v < V; v++) {
      for (const [w, p] of Object.entries(d[words[v]!] ?? { ' the': 1 })) table[v * V + id.get(w)!] = Math.log(p);
    }
  };
  set(dist);
  return {
    set,
    config: { vocabSize: V, maxPositions: 32 } as ModelConfig,
    tok: () => tok as AmendTokenizer,
    forward(ids: Int32Array, _B: number, _T: number, opts: ForwardOptions = {}) {
      const rows = opts.logitsAt as number[];
      const out = new Float32Array(rows.length * V);
      rows.forEach((r, k) => out.set(table.subarray(ids[r]! * V, (ids[r]! + 1) * V), k * V));
      return { logits: new Tensor(out, [rows.length, V]), hidden: new Tensor(new Float32Array(1), [1]) };
    },
  } as unknown as EvalModel & { set(d: Dist): void };
}
