// config.json fields that change the forward pass, and configs that describe no runnable model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AmendError } from '../src/errors.js';
import { CausalLM, gpt2Config, writeRandomCheckpoint } from '../src/models/index.js';
import { parseConfig } from '../src/models/config.js';
import { canonicalArchitecture } from '../src/models/fingerprint.js';
import { forward } from '../src/models/transformer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-config-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function withConfig(name: string, base: Record<string, unknown>, change: Record<string, unknown>): CausalLM {
  const dir = writeRandomCheckpoint(path.join(tmp, name), base, 7, 0.3);
  const f = path.join(dir, 'config.json');
  fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), ...change }));
  return CausalLM.loadDir(dir, { noTokenizer: true });
}

const IDS = Int32Array.from([5, 17, 42, 8, 99, 3]);
const logitsOf = (m: CausalLM) => forward(m, IDS, 1, IDS.length).logits!.data;

/** GPT-2's fused c_attn is Conv1D [in, 3·hidden]: the query columns come first. */
function scaleQueries(m: CausalLM, layer: number, by: number): void {
  const qkv = m.spec.layers[layer]!.qkv;
  assert.equal(qkv.kind, 'fused');
  const lin = (qkv as { lin: { w: string; b?: string } }).lin;
  const w = m.weight(lin.w), hidden = m.config.hidden;
  const [rows, cols] = w.shape as [number, number];
  assert.equal(cols, 3 * hidden);
  for (let r = 0; r < rows; r++) for (let c = 0; c < hidden; c++) w.data[r * cols + c] *= by;
  const b = m.weight(lin.b!).data;
  for (let c = 0; c < hidden; c++) b[c] *= by;
}

function assertClose(a: Float32Array, b: Float32Array, tol: number): void {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  assert.ok(worst < tol, `max relative difference ${worst}`);
}

test('GPT-2 scale_attn_weights and scale_attn_by_inverse_layer_idx act as a scale on the queries', () => {
  const base = gpt2Config({ layers: 3 });
  const D = (base.n_embd as number) / (base.n_head as number);
  // scale_attn_weights false: the logits q·k are not divided by √D, as if q were √D times larger.
  const unscaled = withConfig('unscaled', base, { scale_attn_weights: false });
  const ref = withConfig('unscaled-ref', base, {});
  for (let l = 0; l < 3; l++) scaleQueries(ref, l, Math.sqrt(D));
  assertClose(logitsOf(unscaled), logitsOf(ref), 1e-5);
  const plain = logitsOf(withConfig('plain', base, {})), changed = logitsOf(unscaled);
  assert.ok(plain.some((v, i) => Math.abs(v - changed[i]!) > 1e-3), 'the flag changes the output');
  // scale_attn_by_inverse_layer_idx: layer l's logits are divided by l + 1.
  const inverse = withConfig('inverse', base, { scale_attn_by_inverse_layer_idx: true });
  const ref2 = withConfig('inverse-ref', base, {});
  for (let l = 0; l < 3; l++) scaleQueries(ref2, l, 1 / (l + 1));
  assertClose(logitsOf(inverse), logitsOf(ref2), 1e-5);
});

test('a sliding window is the model\'s length (sequences past it are refused, not computed without it)', () => {
  const llama = {
    model_type: 'mistral', num_hidden_layers: 2, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 100, max_position_embeddings: 64, sliding_window: 4,
  };
  assert.equal(parseConfig(llama).maxPositions, 4);
  assert.equal(parseConfig({ ...llama, sliding_window: null }).maxPositions, 64);
  // Qwen2 uses its window only with use_sliding_window
  assert.equal(parseConfig({ ...llama, model_type: 'qwen2' }).maxPositions, 64);
  assert.equal(parseConfig({ ...llama, model_type: 'qwen2', use_sliding_window: true }).maxPositions, 4);
  // The cap is not part of the model's identity: its fingerprint (patches, cached statistics) keeps the config's own length.
  const arch = (raw: Record<string, unknown>) => canonicalArchitecture(parseConfig(raw));
  assert.deepEqual(arch(llama), arch({ ...llama, sliding_window: null }));
  assert.equal(arch(llama).max_positions, 64);
});

test('the GPT-2 attention scale flags enter the fingerprint only when they change the model', () => {
  const arch = (raw: Record<string, unknown>) => canonicalArchitecture(parseConfig(raw));
  const base = gpt2Config();
  assert.deepEqual(arch(base), arch({ ...base, scale_attn_weights: true, scale_attn_by_inverse_layer_idx: false }));
  assert.ok(!('attn_scale_head_dim' in arch(base)) && !('attn_scale_inverse_layer' in arch(base)));
  assert.notDeepEqual(arch(base), arch({ ...base, scale_attn_by_inverse_layer_idx: true }));
  assert.notDeepEqual(arch(base), arch({ ...base, scale_attn_weights: false }));
});

test('GPT-NeoX without rotary_pct rotates a quarter of each head, as GPTNeoXConfig', () => {
  const neox = { model_type: 'gpt_neox', num_hidden_layers: 2, hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, vocab_size: 100, max_position_embeddings: 64 };
  assert.equal(parseConfig(neox).rotaryDim, 4);
  assert.equal(parseConfig({ ...neox, rotary_pct: 1 }).rotaryDim, 16);
});

test('GPT-J rotary_dim: absent, null and 0 are read as transformers reads them', () => {
  const gptj = { model_type: 'gptj', n_layer: 1, n_embd: 256, n_head: 2, vocab_size: 50, n_positions: 64 };
  const refused = (cfg: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseConfig(cfg), (e: unknown) => e instanceof AmendError && re.test(e.message) && !e.message.includes('\n'));
  // absent: GPTJConfig's default of 64, not the whole head
  assert.equal(parseConfig(gptj).rotaryDim, 64);
  refused({ ...gptj, n_head: 8 }, /^config\.json: has no rotary_dim, so transformers' GPT-J rotates 64 dimensions of each head \(its default\), more than the head has \(32\); set rotary_dim$/);
  // null: the sin/cos tables span the hidden size, which is one head's only when there is one head
  const { raw: _a, ...oneHead } = parseConfig({ ...gptj, n_head: 1, rotary_dim: null });
  const { raw: _b, ...full } = parseConfig({ ...gptj, n_head: 1, rotary_dim: 256 });
  assert.deepEqual(oneHead, full);
  refused({ ...gptj, rotary_dim: null }, /^config\.json: rotary_dim is null, which transformers' GPT-J cannot run with 2 attention heads; set rotary_dim to the number of dimensions of each head to rotate \(an even number from 2 to 128\)$/);
  refused({ ...gptj, rotary_dim: 0 }, /^config\.json: rotary_dim is 0, which /);
  refused({ ...gptj, n_head: 1, rotary_dim: 0 }, /^config\.json: rotary_dim is 0, which transformers' GPT-J cannot run with 1 attention head;/);
  assert.equal(parseConfig({ ...gptj, rotary_dim: 128 }).rotaryDim, 128);
});

test('counts that describe no model are one clear error', () => {
  const base = gpt2Config();
  const bad = (change: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseConfig({ ...base, ...change }), (e: unknown) => e instanceof AmendError && re.test(e.message));
  bad({ n_layer: -1 }, /the number of layers is -1; it must be an integer from 1 to 4096/);
  bad({ n_layer: 1.5 }, /the number of layers is 1\.5/);
  bad({ n_layer: 1e9 }, /the number of layers is 1000000000/);
  bad({ n_positions: 0 }, /the number of positions is 0/);
  bad({ n_embd: 30, n_head: 4 }, /the head dimension is 7\.5/);
  bad({ layer_norm_epsilon: -1 }, /norm epsilon is -1/);
  const llama = { model_type: 'llama', num_hidden_layers: 2, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, vocab_size: 100, max_position_embeddings: 64 };
  assert.throws(() => parseConfig({ ...llama, num_key_value_heads: 3 }), /4 attention heads do not split into 3 key\/value groups/);
});
