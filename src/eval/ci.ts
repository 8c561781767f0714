/**
 * Means with 95 % confidence intervals for the reports. The interval is Student's t on the
 * sample standard deviation: per-case scores are bounded, few and often not normal, but the mean
 * of tens of cases is close enough to normal, and t (not z) keeps small runs honest about width.
 * Scores that are all 0 or 1 take Wilson's interval for a proportion (see meanCI).
 */

/** Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom. */
export function tQuantile975(df: number): number {
  if (!(df >= 1)) return Number.NaN;
  if (df <= 30) return T975[Math.floor(df) - 1]!;
  // Beyond the table the Cornish–Fisher expansion around z is accurate to ~1e-4.
  const z = 1.959964;
  const z3 = z ** 3, z5 = z ** 5, z7 = z ** 7;
  return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df ** 2) + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df ** 3);
}

export interface MeanCI {
  mean: number;
  /** Sample standard deviation (n − 1). */
  std: number;
  /** Lower and upper end of the 95 % interval; NaN for fewer than two values (no spread to estimate). */
  low: number;
  high: number;
  count: number;
}

/**
 * Mean and 95 % interval of the finite values (NaN and ±Inf are left out and not counted). With
 * `range`, the interval is cut to it: the mean of scores in [0, 1] cannot leave [0, 1], though
 * t's symmetric interval does on small or lopsided samples. Scores in [0, 1] that are all 0 or 1
 * (a case's one prompt right or wrong) get Wilson's score interval instead, which stays inside
 * [0, 1] and keeps a width when every case agrees (5 of 5 right: [0.57, 1], not [1, 1]).
 */
export function meanCI(values: readonly number[], range?: readonly [number, number]): MeanCI {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, low: Number.NaN, high: Number.NaN, count: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0, low: Number.NaN, high: Number.NaN, count: 1 };
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  if (range && range[0] === 0 && range[1] === 1 && xs.every((x) => x === 0 || x === 1)) {
    const [low, high] = wilson95(mean, n);
    return { mean, std, low, high, count: n };
  }
  const half = tQuantile975(n - 1) * std / Math.sqrt(n);
  const low = range ? Math.max(range[0], mean - half) : mean - half;
  const high = range ? Math.min(range[1], mean + half) : mean + half;
  return { mean, std, low, high, count: n };
}

/** Wilson's 95 % score interval for a proportion p observed over n trials. */
export function wilson95(p: number, n: number): [number, number] {
  const z = 1.959964, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At p = 0 (1) the lower (upper) end is exactly 0 (1); the subtraction leaves a rounding error
  // (5.55e-17 for 0 of 3), which a table would print as a bound above 0.
  return [p === 0 ? 0 : Math.max(0, centre - half), p === 1 ? 1 : Math.min(1, centre + half)];
}
