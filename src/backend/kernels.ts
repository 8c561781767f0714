// The kernel interface: everything the tensor layer needs from a backend.
//
// Kernels work on plain Float32Arrays (and Int32Arrays for indices) with explicit sizes, never on
// Tensor objects, so the native backend can read and write the very same memory (zero copy) and
// the js backend serves as a line-by-line reference for it. All arrays are dense and row-major.
// Every kernel writes its full output (no accumulation) unless its doc says otherwise.

/** Binary elementwise ops (codes shared with the native addon). */
export const enum BinaryOp { Add = 0, Sub = 1, Mul = 2, Div = 3, Max = 4, Min = 5, Pow = 6 }

/** Unary elementwise ops (codes shared with the native addon). */
export const enum UnaryOp {
  Neg = 0, Exp = 1, Log = 2, Sqrt = 3, Rsqrt = 4, Tanh = 5, Sigmoid = 6, Relu = 7,
  GeluTanh = 8, GeluErf = 9, Silu = 10, Abs = 11, Square = 12, Recip = 13,
}

export interface BackendInfo {
  name: 'js' | 'native';
  /** e.g. "OpenBLAS 0.3.21 (pthread)", or "own blocked GEMM (avx2+fma)", or "none (js)". */
  blas: string;
  threads: number;
  /** Optional details (compiler flags, SIMD level, why native was not loaded...). */
  notes?: string[];
}

export interface Kernels {
  info(): BackendInfo;
  /** Set the number of worker threads used by multithreaded kernels and BLAS (native only). */
  setThreads(n: number): void;

  /**
   * Batched matrix multiply: for b in [0, batch):
   *   C[b] = op(A[b]) @ op(B[b]) + beta * C[b],   C[b] is m×n contiguous at c[b*m*n].
   * op(A) is m×k: A stored as [m,k] (transA=false) or [k,m] (transA=true), at a[b*strideA].
   * op(B) is k×n: B stored as [k,n] (transB=false) or [n,k] (transB=true), at b[b*strideB].
   * A stride of 0 broadcasts that operand over the batch. beta is 0 (overwrite) or 1 (accumulate).
   */
  gemm(
    transA: boolean, transB: boolean, batch: number, m: number, n: number, k: number,
    a: Float32Array, strideA: number, b: Float32Array, strideB: number,
    c: Float32Array, beta: number,
  ): void;

  /**
   * out[i] = op(a[ia(i)], b[ib(i)]) over an output of shape `shape` (rank ≤ 8), where
   * ia(i) = Σ_d idx_d * stridesA[d] (stride 0 broadcasts), likewise ib. Output is contiguous.
   */
  binary(
    op: BinaryOp, a: Float32Array, stridesA: Int32Array, b: Float32Array, stridesB: Int32Array,
    out: Float32Array, shape: Int32Array,
  ): void;

  /** out[i] = f(x[i]) for i < n. out may be x (in place). */
  unary(op: UnaryOp, x: Float32Array, out: Float32Array, n: number): void;

  /**
   * Gradient of a unary op: gx[i] = gy[i] * f'(x[i]) for i < n, where x is the op's INPUT
   * and y its output (y is used where cheaper: Exp, Tanh, Sigmoid, Sqrt, Rsqrt, Recip).
   */
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, n: number): void;

  /** out[i] = x[i] * scale + shift for i < n. out may be x. */
  affine(x: Float32Array, out: Float32Array, n: number, scale: number, shift: number): void;

  /**
   * Reduce the middle axis of x viewed as [outer, dim, inner] into out [outer, inner].
   * kind 0 = sum, 1 = max. For max, argmax (Int32Array [outer*inner]) receives the index
   * along dim of the first maximum when given.
   */
  reduce(kind: 0 | 1, x: Float32Array, out: Float32Array, outer: number, dim: number, inner: number,
    argmax: Int32Array | null): void;

  /**
   * Strided copy over a shape of rank ≤ 8: dst[dOff + Σ idx_d*dStr_d] (=|+=) src[sOff + Σ idx_d*sStr_d].
   * accumulate=false assigns, true adds. Used for permute, slice, concat and their gradients.
   */
  copyStrided(
    src: Float32Array, srcOffset: number, srcStrides: Int32Array,
    dst: Float32Array, dstOffset: number, dstStrides: Int32Array,
    shape: Int32Array, accumulate: boolean,
  ): void;

  /** Softmax over the last axis of x [rows, cols]. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** gx = y * (gy - Σ_j gy_j y_j) per row, y = softmax output. */
  softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number): void;
  /** Log-softmax over the last axis. */
  logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** gx = gy - exp(y) * Σ_j gy_j per row, y = log-softmax output. */
  logSoftmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number): void;

  /**
   * LayerNorm over the last axis: out = (x - mean) * rstd * w + b, w/b of length cols (null: 1/0).
   * mean and rstd [rows] are written (saved for backward).
   */
  layerNorm(x: Float32Array, w: Float32Array | null, b: Float32Array | null, out: Float32Array,
    mean: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void;
  /** Writes gx; ADDS into gw and gb when they are non-null. */
  layerNormBackward(x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array,
    gy: Float32Array, gx: Float32Array, gw: Float32Array | null, gb: Float32Array | null,
    rows: number, cols: number): void;

  /** RMSNorm (Llama): out = x * rstd * w with rstd = 1/sqrt(mean(x²) + eps); rstd [rows] written. */
  rmsNorm(x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array,
    rows: number, cols: number, eps: number): void;
  /** Writes gx; ADDS into gw when non-null. */
  rmsNormBackward(x: Float32Array, w: Float32Array | null, rstd: Float32Array, gy: Float32Array,
    gx: Float32Array, gw: Float32Array | null, rows: number, cols: number): void;

  /** out[r, :] = table[ids[r], :] for r < ids.length; table is [?, dim]. */
  gatherRows(table: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void;
  /** gtable[ids[r], :] += g[r, :] (accumulates; duplicate ids add up). */
  scatterAddRows(g: Float32Array, ids: Int32Array, gtable: Float32Array, dim: number): void;

  /**
   * Rotary position embedding on x [B, T, H, D] (out may be x), rotating the first rotDim of
   * each head's D features at position pos[b*T + t] by the angles pos · invFreq[i]
   * (invFreq [rotDim/2], the model's inverse frequencies, unscaled or scaled), with cos and sin
   * multiplied by `scale` (YaRN's attention factor; 1 otherwise).
   * interleaved=false: pairs (i, i + rotDim/2) (GPT-NeoX / Llama "rotate_half");
   * interleaved=true: pairs (2i, 2i+1) (GPT-J "rotate_every_two").
   * inverse=true applies the transpose, scale·R(-angle) (the gradient of the forward map; with
   * scale 1 it undoes the forward rotation).
   * invFreq is float32, as Hugging Face holds it; the angles pos · invFreq and their cos and sin
   * are computed in float64 from it.
   */
  rope(x: Float32Array, out: Float32Array, pos: Int32Array, B: number, T: number, H: number, D: number,
    rotDim: number, invFreq: Float32Array, scale: number, interleaved: boolean, inverse: boolean): void;

  /**
   * Scaled dot-product attention, causal, with grouped KV heads:
   *   q [B, T, H, D], k and v [B, S, KVH, D] (H % KVH == 0; head h reads kv head h / (H/KVH)),
   *   out [B, T, H, D], probs [B, H, T, S] (written when non-null; needed for backward).
   * Query t sits at key position qOffset + t (with a KV cache, qOffset counts the positions cached
   * before; S may be the cache's capacity, whose unwritten slots lie past every query), and may
   * attend key s iff s <= qOffset + t and (keyMask == null || keyMask[b*S + s] != 0).
   * A query with no key to attend gets out = 0 and probs = 0 (never NaN).
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, probs: Float32Array | null,
    B: number, T: number, S: number, H: number, KVH: number, D: number, scale: number,
    keyMask: Uint8Array | null, qOffset: number): void;
  /** Gradients of attention given its saved probs; writes gq, gk, gv (full overwrite). */
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array, gout: Float32Array,
    gq: Float32Array, gk: Float32Array, gv: Float32Array,
    B: number, T: number, S: number, H: number, KVH: number, D: number, scale: number): void;
}
