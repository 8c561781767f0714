// A stable identity for a model's weights, so a patch computed on one model is not applied to
// another by mistake.
//
// The fingerprint is the sha256 (hex) of:
//   - a version tag ("amend-fingerprint-v1"), so a change of recipe never collides with old ids;
//   - the canonical architecture: model_type, family and every size and switch the forward pass
//     depends on (vocab, hidden, layers, heads, kv heads, head dim, ffn, positions, norm, eps,
//     activation, rotary settings, residual style, tied embeddings), as sorted JSON — NOT the raw
//     config.json, whose bookkeeping keys (_name_or_path, transformers_version, torch_dtype...)
//     change without changing the model;
//   - for every tensor, in name order: its name, its shape, and a sample of its float32 values:
//     the whole tensor when it has at most SAMPLE_CHUNKS × CHUNK values, otherwise SAMPLE_CHUNKS
//     runs of CHUNK consecutive values at evenly spaced offsets (first and last run included).
//
// What it covers: any change of architecture, tensor set or shape, and any change of values that
// touches a sampled run. Every edit Amend makes (a rank-r update of a whole matrix, a dense delta,
// fine-tuning) moves values everywhere in the tensor, so an edited model never shares the
// fingerprint of its base. A change confined to a few unsampled values (a single weight flipped by
// hand) can go unnoticed; the fingerprint is a guard against mix-ups, not a cryptographic seal.
// It hashes at most 16 KiB per tensor (about 5 MB for a 7B model), so it takes milliseconds.
//
// Values are hashed as float32 bit patterns in memory, so a checkpoint and its exact conversion to
// another storage dtype (F16 → F32, BF16 → F32) share a fingerprint: a patch applies to both.
// The fingerprint of the *unedited* model is what patches record; an edit session remembers it
// from before its first patch (see src/patch/session.ts), since the edited weights hash differently.
//
// storedFingerprint gives the fingerprint a model will have once written in given storage dtypes
// and loaded back (an export records it for its own weights): only the sampled runs are rounded
// through those dtypes, so it costs what modelFingerprint costs, not a pass over the weights.
import { createHash } from 'node:crypto';
import { decodeInto, encodeInto, dtypeSize, type FileDType } from '../io/dtype.js';
import type { CausalLM } from './model.js';
import type { ModelConfig } from './config.js';

const FINGERPRINT_VERSION = 'amend-fingerprint-v1';
/** Runs sampled per tensor. */
const SAMPLE_CHUNKS = 64;
/** float32 values per run. */
const CHUNK = 64;

/** The architecture part of the fingerprint (sorted keys). */
export function canonicalArchitecture(c: ModelConfig): Record<string, unknown> {
  const arch: Record<string, unknown> = {
    model_type: c.modelType,
    family: c.family,
    vocab_size: c.vocabSize,
    hidden: c.hidden,
    layers: c.layers,
    heads: c.heads,
    kv_heads: c.kvHeads,
    head_dim: c.headDim,
    ffn: c.ffn,
    max_positions: c.configPositions,
    norm: c.norm,
    norm_eps: c.normEps,
    act: c.act,
    positions: c.positions,
    rotary_dim: c.rotaryDim,
    rope_theta: c.ropeTheta,
    rope_interleaved: c.ropeInterleaved,
    parallel_residual: c.parallelResidual,
    tied_embeddings: c.tiedEmbeddings,
  };
  // Named only when they differ from the default, so that every other model keeps its fingerprint.
  if (!c.attnScaleHeadDim) arch.attn_scale_head_dim = false;
  if (c.attnScaleInverseLayer) arch.attn_scale_inverse_layer = true;
  if (c.ropeScaling) {
    const scaling: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c.ropeScaling).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) scaling[k] = v;
    arch.rope_scaling = scaling;
  }
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(arch).sort()) sorted[k] = arch[k];
  return sorted;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** The values of a tensor that are hashed: all of them, or SAMPLE_CHUNKS runs of CHUNK at evenly spaced offsets. */
function sampledRuns(data: Float32Array): Float32Array[] {
  if (data.length <= SAMPLE_CHUNKS * CHUNK) return [data];
  const last = data.length - CHUNK;
  const runs: Float32Array[] = [];
  for (let i = 0; i < SAMPLE_CHUNKS; i++) {
    const offset = Math.floor((i * last) / (SAMPLE_CHUNKS - 1));
    runs.push(data.subarray(offset, offset + CHUNK));
  }
  return runs;
}

/** Hex sha256 of the model's architecture, tensor names and shapes, and sampled values (see above). */
export function modelFingerprint(model: CausalLM): string {
  return fingerprintOf(model, (_name, run) => run);
}

/**
 * The fingerprint `model` will have once tensor `name` is stored as storage(name) and read back:
 * each sampled run goes through that dtype as the safetensors writer and reader take it (F16 and
 * BF16 round to nearest even; F32 and F64 keep float32 values).
 */
export function storedFingerprint(model: CausalLM, storage: (name: string) => FileDType): string {
  return fingerprintOf(model, (name, run) => {
    const dtype = storage(name);
    if (dtype === 'F32') return run;
    const raw = new Uint8Array(run.length * dtypeSize(dtype)!);
    // A value an integer dtype cannot hold makes the export itself fail; it is hashed as it is.
    if (encodeInto(dtype, run, 0, run.length, raw) >= 0) return run;
    const back = new Float32Array(run.length);
    decodeInto(dtype, raw, run.length, back, 0);
    return back;
  });
}

/** The fingerprint with each sampled run of values seen through `asRead` (tensor name, values). */
function fingerprintOf(model: CausalLM, asRead: (name: string, run: Float32Array) => Float32Array): string {
  const h = createHash('sha256');
  h.update(FINGERPRINT_VERSION);
  h.update('\0');
  h.update(JSON.stringify(canonicalArchitecture(model.config)));
  h.update('\0');
  const names = [...model.weights.keys()].sort();
  h.update(u32(names.length));
  for (const name of names) {
    const t = model.weights.get(name)!;
    const nameBytes = Buffer.from(name, 'utf8');
    h.update(u32(nameBytes.length));
    h.update(nameBytes);
    h.update(u32(t.shape.length));
    for (const d of t.shape) h.update(u32(d));
    for (const run of sampledRuns(t.data)) {
      const seen = asRead(name, run);
      h.update(new Uint8Array(seen.buffer, seen.byteOffset, seen.byteLength));
    }
  }
  return h.digest('hex');
}

/** The first 12 hex digits, for messages. */
export function shortFingerprint(fp: string): string {
  return fp.slice(0, 12);
}
