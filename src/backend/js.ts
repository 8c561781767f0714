// The js backend: plain TypeScript, the reference semantics of every kernel in kernels.ts.
// Written for clarity over speed; accumulations that decide accuracy (norm statistics, softmax
// sums, dot products in attention) run in float64 JS numbers.
import { BinaryOp, UnaryOp, type Kernels } from './kernels.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** erfc, accurate in both tails (GELU's negative tail is erfc of a large argument). */
function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) {
    // Maclaurin series of erf; 1 - erf loses nothing here since erfc(2.5) ≈ 4e-4.
    let term = x, sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up
  let f = x;
  for (let n = 60; n >= 1; n--) f = x + (n / 2) / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

function unaryF(op: UnaryOp, x: number): number {
  switch (op) {
    case UnaryOp.Neg: return -x;
    case UnaryOp.Exp: return Math.exp(x);
    case UnaryOp.Log: return Math.log(x);
    case UnaryOp.Sqrt: return Math.sqrt(x);
    case UnaryOp.Rsqrt: return 1 / Math.sqrt(x);
    case UnaryOp.Tanh: return Math.tanh(x);
    case UnaryOp.Sigmoid: return 1 / (1 + Math.exp(-x));
    case UnaryOp.Relu: return x > 0 ? x : 0;
    // 0.5·x·(1 + tanh u) = x·sigmoid(2u), and 0.5·x·(1 + erf z) = 0.5·x·erfc(-z): no cancellation
    // in the negative tail.
    case UnaryOp.GeluTanh: return x / (1 + Math.exp(-2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case UnaryOp.GeluErf: return 0.5 * x * erfc(-x / Math.SQRT2);
    case UnaryOp.Silu: return x / (1 + Math.exp(-x));
    case UnaryOp.Abs: return Math.abs(x);
    case UnaryOp.Square: return x * x;
    case UnaryOp.Recip: return 1 / x;
  }
}

/** d op(x) / dx, given the input x and output y. */
function unaryDf(op: UnaryOp, x: number, y: number): number {
  switch (op) {
    case UnaryOp.Neg: return -1;
    case UnaryOp.Exp: return y;
    case UnaryOp.Log: return 1 / x;
    case UnaryOp.Sqrt: return 0.5 / y;
    case UnaryOp.Rsqrt: return -0.5 * y * y * y;
    case UnaryOp.Tanh: return 1 - y * y;
    case UnaryOp.Sigmoid: return y * (1 - y);
    case UnaryOp.Relu: return x > 0 ? 1 : 0;
    case UnaryOp.GeluTanh: {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const t = Math.tanh(u);
      // saturated (t = ±1): the limit 0 or 1, also at ±Infinity, where the formula is ∞·0
      if (t * t === 1) return 0.5 * (1 + t);
      const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }
    case UnaryOp.GeluErf: {
      const cdf = 0.5 * erfc(-x / Math.SQRT2);
      const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
      return pdf === 0 ? cdf : cdf + x * pdf; // pdf 0: the limit 0 or 1, also at ±Infinity (∞·0)
    }
    case UnaryOp.Silu: {
      const s = 1 / (1 + Math.exp(-x));
      // saturated (s 0 or 1): the limit, also at ±Infinity, where the formula is ∞·0
      return s * (1 - s) === 0 ? s : s * (1 + x * (1 - s));
    }
    case UnaryOp.Abs: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case UnaryOp.Square: return 2 * x;
    case UnaryOp.Recip: return -y * y;
  }
}

function binaryF(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case BinaryOp.Add: return a + b;
    case BinaryOp.Sub: return a - b;
    case BinaryOp.Mul: return a * b;
    case BinaryOp.Div: return a / b;
    case BinaryOp.Max: return a > b || Number.isNaN(a) ? a : b;
    case BinaryOp.Min: return a < b || Number.isNaN(a) ? a : b;
    case BinaryOp.Pow: return Math.pow(a, b);
  }
}

/** Calls visit(offsetA, offsetB, i) for every index of `shape` in row-major order. */
function forEachIndex2(shape: Int32Array, sa: Int32Array, sb: Int32Array,
  visit: (oa: number, ob: number, i: number) => void): void {
  const rank = shape.length;
  let total = 1;
  for (let d = 0; d < rank; d++) total *= shape[d];
  if (total === 0) return;
  const idx = new Int32Array(rank);
  let oa = 0, ob = 0;
  for (let i = 0; i < total; i++) {
    visit(oa, ob, i);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < shape[d]) break;
      oa -= sa[d] * shape[d];
      ob -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Row ids must address the table (the native backend checks the same). */
function checkIds(ids: Int32Array, rows: number): void {
  for (const id of ids) if (id < 0 || id >= rows) throw new RangeError(`row id ${id} out of range [0, ${rows})`);
}

export const jsKernels: Kernels = {
  info: () => ({ name: 'js', blas: 'none (plain TypeScript)', threads: 1 }),
  setThreads: () => {},

  gemm(transA, transB, batch, m, n, k, a, strideA, b, strideB, c, beta) {
    for (let bi = 0; bi < batch; bi++) {
      const ao = bi * strideA, bo = bi * strideB, co = bi * m * n;
      // element strides of op(A)[i, p] and op(B)[p, j]
      const ai = transA ? 1 : k, ap = transA ? m : 1;
      const bp = transB ? 1 : n, bj = transB ? k : 1;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a[ao + i * ai + p * ap] * b[bo + p * bp + j * bj];
          const ci = co + i * n + j;
          c[ci] = beta === 0 ? s : c[ci] * beta + s;
        }
      }
    }
  },

  binary(op, a, stridesA, b, stridesB, out, shape) {
    forEachIndex2(shape, stridesA, stridesB, (oa, ob, i) => { out[i] = binaryF(op, a[oa], b[ob]); });
  },

  unary(op, x, out, n) {
    for (let i = 0; i < n; i++) out[i] = unaryF(op, x[i]);
  },

  unaryBackward(op, x, y, gy, gx, n) {
    for (let i = 0; i < n; i++) gx[i] = gy[i] * unaryDf(op, x[i], y[i]);
  },

  affine(x, out, n, scale, shift) {
    for (let i = 0; i < n; i++) out[i] = x[i] * scale + shift;
  },

  reduce(kind, x, out, outer, dim, inner, argmax) {
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * dim * inner + i;
        if (kind === 0) {
          let s = 0;
          for (let d = 0; d < dim; d++) s += x[base + d * inner];
          out[o * inner + i] = s;
        } else {
          let best = -Infinity, at = 0;
          for (let d = 0; d < dim; d++) {
            const v = x[base + d * inner];
            // the first NaN wins (as torch.max): once best is NaN nothing compares greater
            if (v > best || (v !== v && best === best)) { best = v; at = d; }
          }
          out[o * inner + i] = dim === 0 ? -Infinity : x[base + at * inner];
          if (argmax) argmax[o * inner + i] = at;
        }
      }
    }
  },

  copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, accumulate) {
    forEachIndex2(shape, srcStrides, dstStrides, (os, od) => {
      if (accumulate) dst[dstOffset + od] += src[srcOffset + os];
      else dst[dstOffset + od] = src[srcOffset + os];
    });
  },

  softmax(x, out, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, x[o + j]);
      if (mx === -Infinity) { out.fill(0, o, o + cols); continue; }
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - mx);
      for (let j = 0; j < cols; j++) out[o + j] = Math.exp(x[o + j] - mx) / s;
    }
  },

  softmaxBackward(y, gy, gx, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += gy[o + j] * y[o + j];
      for (let j = 0; j < cols; j++) gx[o + j] = y[o + j] * (gy[o + j] - dot);
    }
  },

  logSoftmax(x, out, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, x[o + j]);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - mx);
      const l = mx + Math.log(s);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - l;
    }
  },

  logSoftmaxBackward(y, gy, gx, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += gy[o + j];
      for (let j = 0; j < cols; j++) gx[o + j] = gy[o + j] - Math.exp(y[o + j]) * s;
    }
  },

  layerNorm(x, w, b, out, mean, rstd, rows, cols, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mu = 0;
      for (let j = 0; j < cols; j++) mu += x[o + j];
      mu /= cols;
      let v = 0;
      for (let j = 0; j < cols; j++) v += (x[o + j] - mu) ** 2;
      const rs = 1 / Math.sqrt(v / cols + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) {
        out[o + j] = (x[o + j] - mu) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
      }
    }
  },

  layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols, rs = rstd[r];
      // The saved mean is rounded to float32, which is far off against the spread of a row with a
      // large common offset (3000 ± 0.01): add back the mean of what is left over, in double.
      let off = 0;
      for (let j = 0; j < cols; j++) off += x[o + j] - mean[r];
      const mu = mean[r] + off / cols;
      // with xhat = (x-mu)*rs and g = gy*w:  gx = rs * (g - mean(g) - xhat * mean(g*xhat))
      let mg = 0, mgx = 0;
      for (let j = 0; j < cols; j++) {
        const xhat = (x[o + j] - mu) * rs;
        const g = gy[o + j] * (w ? w[j] : 1);
        mg += g;
        mgx += g * xhat;
        if (gw) gw[j] += gy[o + j] * xhat;
        if (gb) gb[j] += gy[o + j];
      }
      mg /= cols;
      mgx /= cols;
      for (let j = 0; j < cols; j++) {
        const xhat = (x[o + j] - mu) * rs;
        const g = gy[o + j] * (w ? w[j] : 1);
        gx[o + j] = rs * (g - mg - xhat * mgx);
      }
    }
  },

  rmsNorm(x, w, out, rstd, rows, cols, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let ms = 0;
      for (let j = 0; j < cols; j++) ms += x[o + j] * x[o + j];
      const rs = 1 / Math.sqrt(ms / cols + eps);
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] * rs * (w ? w[j] : 1);
    }
  },

  rmsNormBackward(x, w, rstd, gy, gx, gw, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols, rs = rstd[r];
      // y = x*rs*w:  gx = rs * (g - xhat * mean(g*xhat)) with g = gy*w, xhat = x*rs
      let mgx = 0;
      for (let j = 0; j < cols; j++) {
        const xhat = x[o + j] * rs;
        mgx += gy[o + j] * (w ? w[j] : 1) * xhat;
        if (gw) gw[j] += gy[o + j] * xhat;
      }
      mgx /= cols;
      for (let j = 0; j < cols; j++) {
        const xhat = x[o + j] * rs;
        gx[o + j] = rs * (gy[o + j] * (w ? w[j] : 1) - xhat * mgx);
      }
    }
  },

  gatherRows(table, ids, out, dim) {
    checkIds(ids, table.length / dim);
    for (let r = 0; r < ids.length; r++) out.set(table.subarray(ids[r] * dim, ids[r] * dim + dim), r * dim);
  },

  scatterAddRows(g, ids, gtable, dim) {
    checkIds(ids, gtable.length / dim);
    for (let r = 0; r < ids.length; r++) {
      const to = ids[r] * dim, from = r * dim;
      for (let j = 0; j < dim; j++) gtable[to + j] += g[from + j];
    }
  },

  rope(x, out, pos, B, T, H, D, rotDim, invFreq, scale, interleaved, inverse) {
    const half = rotDim / 2;
    if (invFreq.length !== half) throw new RangeError(`rope: ${invFreq.length} inverse frequencies for rotDim ${rotDim}`);
    if (out !== x) out.set(x.subarray(0, B * T * H * D));
    for (let bt = 0; bt < B * T; bt++) {
      const p = pos[bt];
      for (let i = 0; i < half; i++) {
        const ang = p * invFreq[i];
        const cos = Math.cos(ang) * scale, sin = (inverse ? -Math.sin(ang) : Math.sin(ang)) * scale;
        for (let h = 0; h < H; h++) {
          const o = (bt * H + h) * D;
          const i1 = interleaved ? o + 2 * i : o + i;
          const i2 = interleaved ? o + 2 * i + 1 : o + i + half;
          const a = x[i1], b = x[i2];
          out[i1] = a * cos - b * sin;
          out[i2] = b * cos + a * sin;
        }
      }
    }
  },

  attention(q, k, v, out, probs, B, T, S, H, KVH, D, scale, keyMask, qOffset) {
    const group = H / KVH;
    const p = new Float64Array(S);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < T; t++) {
          const qo = ((b * T + t) * H + h) * D;
          let mx = -Infinity;
          for (let s = 0; s < S; s++) {
            const allowed = s <= qOffset + t && (!keyMask || keyMask[b * S + s] !== 0);
            if (!allowed) { p[s] = -Infinity; continue; }
            const ko = ((b * S + s) * KVH + kh) * D;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
            p[s] = dot * scale;
            if (p[s] > mx) mx = p[s];
          }
          let sum = 0;
          for (let s = 0; s < S; s++) {
            p[s] = mx === -Infinity ? 0 : Math.exp(p[s] - mx);
            sum += p[s];
          }
          // sum is 0 only for a query with no key. A NaN score makes it NaN, and the row with it,
          // but not its masked keys: they keep probability 0 (0 / NaN would be NaN).
          if (sum !== 0) for (let s = 0; s < S; s++) if (p[s] !== 0) p[s] /= sum;
          if (probs) for (let s = 0; s < S; s++) probs[((b * H + h) * T + t) * S + s] = p[s];
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let s = 0; s < S; s++) {
              if (p[s] !== 0) acc += p[s] * v[((b * S + s) * KVH + kh) * D + d];
            }
            out[qo + d] = acc;
          }
        }
      }
    }
  },

  attentionBackward(q, k, v, probs, gout, gq, gk, gv, B, T, S, H, KVH, D, scale) {
    const group = H / KVH;
    gq.fill(0, 0, B * T * H * D);
    gk.fill(0, 0, B * S * KVH * D);
    gv.fill(0, 0, B * S * KVH * D);
    const dp = new Float64Array(S);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < T; t++) {
          const qo = ((b * T + t) * H + h) * D;
          const po = ((b * H + h) * T + t) * S;
          // dP = gout · Vᵀ ; dScores = P * (dP - Σ P dP)
          let dot = 0;
          for (let s = 0; s < S; s++) {
            const pv = probs[po + s];
            if (pv === 0) { dp[s] = 0; continue; }
            const vo = ((b * S + s) * KVH + kh) * D;
            let acc = 0;
            for (let d = 0; d < D; d++) {
              acc += gout[qo + d] * v[vo + d];
              gv[vo + d] += pv * gout[qo + d];
            }
            dp[s] = acc;
            dot += pv * acc;
          }
          for (let s = 0; s < S; s++) {
            const pv = probs[po + s];
            if (pv === 0) continue;
            const ds = pv * (dp[s] - dot) * scale;
            const ko = ((b * S + s) * KVH + kh) * D;
            for (let d = 0; d < D; d++) {
              gq[qo + d] += ds * k[ko + d];
              gk[ko + d] += ds * q[qo + d];
            }
          }
        }
      }
    }
  },
};
