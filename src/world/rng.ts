/**
 * A small deterministic pseudo-random generator for the demo world.
 *
 * The core is mulberry32 (32-bit state, period 2^32): fast, portable and bit-for-bit identical on
 * every platform because it only uses 32-bit integer arithmetic (`Math.imul`, `>>>`). Independent
 * streams are derived from a seed and a label (`deriveSeed`), so that changing how many numbers one
 * part of the generator draws does not shift the numbers every other part sees.
 */

/** FNV-1a over the UTF-16 code units of `text`, as an unsigned 32-bit integer. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The splitmix32 finaliser: a bijective scrambling of a 32-bit integer. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Normalises any finite number to an unsigned 32-bit seed (throws on NaN / infinities). */
export function normaliseSeed(seed: number): number {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  // Fold in the high bits too, so that seeds above 2^32 still differ.
  const lo = seed >>> 0;
  const hi = Math.floor(Math.abs(seed) / 4294967296) >>> 0;
  return hi === 0 ? lo : (lo ^ mix32(hi)) >>> 0;
}

/** A seed for the stream named `label` under `seed`. */
export function deriveSeed(seed: number, label: string): number {
  return mix32(normaliseSeed(seed) ^ mix32(hashString(label)));
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = normaliseSeed(seed);
  }

  /** A new independent generator for the stream `label` under `seed`. */
  static stream(seed: number, label: string): Rng {
    return new Rng(deriveSeed(seed, label));
  }

  /** Next unsigned 32-bit integer (mulberry32). */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(`Rng.int needs an integer in [1, 2^32], got ${n}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick on an empty list');
    return items[this.int(items.length)]!;
  }

  /** Picks an index with probability proportional to `weights[i]` (all ≥ 0, sum > 0). */
  weightedIndex(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    if (!(total > 0)) throw new RangeError('Rng.weightedIndex needs a positive total weight');
    let x = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]!;
      if (x < 0) return i;
    }
    // Rounding: fall back to the last index with positive weight.
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
    return weights.length - 1;
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** A shuffled copy. */
  shuffled<T>(items: readonly T[]): T[] {
    return this.shuffle(items.slice());
  }

  /** `k` distinct items in random order (all of them when k ≥ length). */
  sample<T>(items: readonly T[], k: number): T[] {
    const copy = items.slice();
    const m = Math.min(k, copy.length);
    for (let i = 0; i < m; i++) {
      const j = i + this.int(copy.length - i);
      const tmp = copy[i]!;
      copy[i] = copy[j]!;
      copy[j] = tmp;
    }
    return copy.slice(0, m);
  }
}
