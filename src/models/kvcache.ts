// Key/value cache for generation: per layer, keys (after rotary) and values of every position
// seen so far, stored as [B, capacity, KVH, D] so attention reads them in place. Positions not
// yet written are excluded by causality; padding by the mask.
import { AmendError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { positionsFromMask } from './transformer.js';

export class KVCache {
  readonly batch: number;
  readonly capacity: number;
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** [B * capacity]: 1 where a real (non-padding) token sits. */
  readonly mask: Uint8Array;
  /** Real tokens seen so far in each row (the next token's position id). */
  readonly seen: Int32Array;
  /** Positions written so far, the same in every row (padding fills a row's gaps). */
  length = 0;

  constructor(config: ModelConfig, batch: number, capacity: number) {
    const per = batch * capacity * config.kvHeads * config.headDim;
    this.batch = batch;
    this.capacity = capacity;
    this.k = Array.from({ length: config.layers }, () => new Float32Array(per));
    this.v = Array.from({ length: config.layers }, () => new Float32Array(per));
    this.mask = new Uint8Array(batch * capacity);
    this.seen = new Int32Array(batch);
  }

  /**
   * The position ids the next T tokens would take (the running count of real tokens in each row),
   * without taking them: a forward checks them before anything is written.
   */
  nextPositions(T: number, mask: Uint8Array | null): Int32Array {
    if (this.length + T > this.capacity) {
      throw new AmendError(`KV cache full: ${this.length} + ${T} tokens exceed its capacity of ${this.capacity}`);
    }
    return positionsFromMask(mask, this.batch, T, this.seen);
  }

  /**
   * Reserves the next T positions for tokens with the given padding mask ([B*T], null = all
   * real) and returns their position ids.
   */
  advance(T: number, mask: Uint8Array | null): Int32Array {
    const pos = this.nextPositions(T, mask);
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < T; t++) {
        const real = !mask || mask[b * T + t] !== 0;
        this.mask[b * this.capacity + this.length + t] = real ? 1 : 0;
        if (real) this.seen[b]++;
      }
    }
    this.length += T;
    return pos;
  }
}
