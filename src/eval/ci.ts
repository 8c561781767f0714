/**
 * Means with 95 % confidence intervals for the reports. The interval is Student's t on the
 * sample standard deviation: per-case scores are bounded, few and often not normal, but the mean
 * of tens of cases is close enough to normal, and t (not z) keeps small runs honest about width.
 * Scores that are all 0 or 1 take Wilson's interval for a proportion (see meanCI).
 */

/**
 * P(|T| ≤ t) for Student's t with an integer `df`, by the finite series of Abramowitz & Stegun
 * 26.7.3–4 in θ = atan(t/√df): exact up to rounding, with no gamma functions (df/2 terms).
 */
function tCoverage(t: number, df: number): number {
  const theta = Math.atan(t / Math.sqrt(df));
  const c2 = Math.cos(theta) ** 2;
  if (df % 2 === 1) {
    if (df === 1) return (2 / Math.PI) * theta;
    let term = Math.cos(theta), sum = term;
    for (let k = 3; k <= df - 2; k += 2) sum += (term *= (c2 * (k - 1)) / k);
    return (2 / Math.PI) * (theta + Math.sin(theta) * sum);
  }
  let term = 1, sum = 1;
  for (let k = 2; k <= df - 2; k += 2) sum += (term *= (c2 * (k - 1)) / k);
  return Math.sin(theta) * sum;
}

/** Above this many degrees of freedom the expansion around z is within 1e-10 of the series. */
const SERIES_DF = 1000;

/**
 * The 0.975 quantile of Student's t with `df` degrees of freedom (rounded down to an integer), to
 * the last digit scipy's t.ppf prints: bisection on the exact coverage, or beyond SERIES_DF the
 * Cornish–Fisher expansion, whose next term is below 1e-10 there.
 */
export function tQuantile975(df: number): number {
  if (!(df >= 1)) return Number.NaN;
  const nu = Math.floor(df);
  if (nu > SERIES_DF) {
    const z = 1.959963984540054;
    const z3 = z ** 3, z5 = z ** 5, z7 = z ** 7, z9 = z ** 9;
    return z + (z3 + z) / (4 * nu) + (5 * z5 + 16 * z3 + 3 * z) / (96 * nu ** 2) + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * nu ** 3)
      + (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * nu ** 4);
  }
  let lo = 0, hi = 1;
  while (tCoverage(hi, nu) < 0.95) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (tCoverage(mid, nu) < 0.95) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface MeanCI {
  mean: number;
  /** Sample standard deviation (n − 1; NaN for one value). ROME's summarize.py prints the population one (n). */
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
  // n − 1 = 0: one value has no spread to estimate, as it has no interval.
  if (n === 1) return { mean, std: Number.NaN, low: Number.NaN, high: Number.NaN, count: 1 };
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
