// Key/value cache for generation: per layer, keys (after rotary) and values of every position
// seen so far, stored as [B, capacity, KVH, D] so attention reads them in place. Positions not
// yet written are excluded by causality; padding by the mask.
//
// The arrays start empty and double (up to maxLength) as tokens arrive: a generation asked for
// up to 1000 new tokens that stops at eos after 20 holds room for about 40, not 1000 (batch ×
// layers × 2 × KVH × D floats per position). Growing copies what is held; attention never reads
// past the causal limit, so where the rows end changes no result.
import { AmendError, requireCount } from '../errors.js';
import type { ModelConfig } from './config.js';
import { positionsFromMask } from './transformer.js';

export class KVCache {
  readonly batch: number;
  /** The most positions it can take in all (capacity grows up to it). */
  readonly maxLength: number;
  /** Positions held per row now: the row stride of k, v and mask. Grows up to maxLength. */
  capacity = 0;
  /** Per layer, [B, capacity, KVH, D]. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** [B * capacity]: 1 where a real (non-padding) token sits. */
  mask = new Uint8Array(0);
  /** Real tokens seen so far in each row (the next token's position id). */
  readonly seen: Int32Array;
  /** Positions written so far, the same in every row (padding fills a row's gaps). */
  length = 0;
  private readonly row: number;

  /**
   * `reserve` positions are allocated at once (default none): a caller that always uses its whole
   * length (no eos stop) saves the copies of growing.
   */
  constructor(config: ModelConfig, batch: number, maxLength: number, opts: { reserve?: number } = {}) {
    requireCount(batch, 'KVCache: the batch', 1);
    requireCount(maxLength, 'KVCache: the length', 1);
    requireCount(opts.reserve, 'KVCache: reserve');
    this.batch = batch;
    this.maxLength = maxLength;
    this.row = config.kvHeads * config.headDim;
    this.k = Array.from({ length: config.layers }, () => new Float32Array(0));
    this.v = Array.from({ length: config.layers }, () => new Float32Array(0));
    this.seen = new Int32Array(batch);
    this.grow(Math.min(opts.reserve ?? 0, maxLength));
  }

  /**
   * The position ids the next T tokens would take (the running count of real tokens in each row),
   * without taking them: a forward checks them before anything is written.
   */
  nextPositions(T: number, mask: Uint8Array | null): Int32Array {
    if (this.length + T > this.maxLength) {
      throw new AmendError(`KV cache full: ${this.length} + ${T} tokens exceed its maximum length of ${this.maxLength}`);
    }
    return positionsFromMask(mask, this.batch, T, this.seen);
  }

  /**
   * Reserves the next T positions for tokens with the given padding mask ([B*T], null = all
   * real); their position ids are nextPositions(T, mask) from before the call.
   */
  advance(T: number, mask: Uint8Array | null): void {
    this.nextPositions(T, mask); // refuses a full cache
    if (this.length + T > this.capacity) this.grow(Math.min(this.maxLength, Math.max(this.length + T, 2 * this.capacity)));
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < T; t++) {
        const real = !mask || mask[b * T + t] !== 0;
        this.mask[b * this.capacity + this.length + t] = real ? 1 : 0;
        if (real) this.seen[b]++;
      }
    }
    this.length += T;
  }

  /** Reallocates every row for `capacity` positions, keeping the `length` written so far. */
  private grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    const B = this.batch, old = this.capacity, n = this.length, row = this.row;
    const move = <A extends Float32Array | Uint8Array>(from: A, to: A, width: number): A => {
      for (let b = 0; b < B; b++) to.set(from.subarray(b * old * width, (b * old + n) * width), b * capacity * width);
      return to;
    };
    for (let l = 0; l < this.k.length; l++) {
      this.k[l] = move(this.k[l]!, new Float32Array(B * capacity * row), row);
      this.v[l] = move(this.v[l]!, new Float32Array(B * capacity * row), row);
    }
    this.mask = move(this.mask, new Uint8Array(B * capacity), 1);
    this.capacity = capacity;
  }
}
