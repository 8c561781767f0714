# An independent float64 forward pass of GPT-2, GPT-J, GPT-NeoX, Llama and Qwen2 checkpoints,
# written from the architectures' definitions (transformers' modeling_gpt2.py, modeling_gptj.py,
# modeling_gpt_neox.py, modeling_llama.py, modeling_qwen2.py) for test/models-numpy.test.ts and
# test/numpy-export.py. It shares nothing with Amend: it reads config.json and the safetensors
# files (one model.safetensors, or the shards of model.safetensors.index.json; F32, F16, BF16 or
# F64) itself and computes one unpadded sequence at a time, so what Amend computes with padding or
# a KV cache is checked against the plain definition.
#
# stdin: {"dir": model folder, "seqs": [[ids], ...], "out": file}
# Writes every hook point's activation [T, width] and the logits [T, V] of each sequence, as
# little-endian float64, one after the other, to "out"; prints the layout as JSON:
# [{"seq": i, "point": name, "shape": [T, width], "offset": bytes}, ...].
import json
import math
import os
import struct
import sys

import numpy as np


DTYPES = {'F32': '<f4', 'F16': '<f2', 'BF16': '<u2', 'F64': '<f8', 'I64': '<i8', 'I32': '<i4', 'U8': 'u1', 'BOOL': '?'}


def read_header(path):
    """(header dict, data bytes) of a safetensors file."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def decode(info, raw):
    """One tensor's bytes as float64; BF16 is the high half of a float32."""
    kind = info['dtype']
    if kind not in DTYPES:
        raise SystemExit(f'numpy-forward: dtype {kind} not read here')
    a = np.frombuffer(raw, dtype=DTYPES[kind])
    if kind == 'BF16':
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.reshape(info['shape']).astype(np.float64)


def load_safetensors(path):
    header, data = read_header(path)
    return {name: decode(info, data[info['data_offsets'][0]:info['data_offsets'][1]])
            for name, info in header.items() if name != '__metadata__'}


def weight_files(d):
    """The weight files of a model folder, as transformers picks them: model.safetensors, else the index's shards."""
    if os.path.exists(os.path.join(d, 'model.safetensors')):
        return ['model.safetensors']
    with open(os.path.join(d, 'model.safetensors.index.json')) as f:
        return sorted(set(json.load(f)['weight_map'].values()))


def load_model(d):
    W = {}
    for f in weight_files(d):
        W.update(load_safetensors(os.path.join(d, f)))
    return W


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


erf = np.vectorize(math.erf)


def act(name, x):
    if name in ('gelu_new', 'gelu_fast', 'gelu_pytorch_tanh'):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == 'gelu':
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    if name == 'relu':
        return np.maximum(x, 0)
    raise SystemExit(f'numpy-forward: activation {name} not written here')


def rotate(x, rot, base, interleaved):
    """Rotary embedding on the first `rot` features of each head; x is [T, H, D], positions 0..T-1."""
    if rot == 0:
        return x
    inv = 1.0 / base ** (np.arange(0, rot, 2) / rot)
    angle = np.arange(x.shape[0])[:, None] * inv[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    out = x.copy()
    if interleaved:  # pairs (2i, 2i+1)
        a, b = x[..., 0:rot:2], x[..., 1:rot:2]
        out[..., 0:rot:2] = a * cos - b * sin
        out[..., 1:rot:2] = b * cos + a * sin
    else:  # halves (i, i + rot/2)
        h = rot // 2
        a, b = x[..., :h], x[..., h:rot]
        out[..., :h] = a * cos - b * sin
        out[..., h:rot] = b * cos + a * sin
    return out


def attention(q, k, v, scale=None):
    """Causal attention, q/k/v [T, H, D], scale 1/sqrt(D) unless given; returns [T, H*D]."""
    T, H, D = q.shape
    scores = np.einsum('thd,shd->hts', q, k) * (1 / math.sqrt(D) if scale is None else scale)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool))[None], scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    return np.einsum('hts,shd->thd', p, v).reshape(T, H * D)


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1 + np.exp(-x))


def forward_gpt2(cfg, W, ids):
    """GPT-2: learned positions, Conv1D weights stored [in, out], fused c_attn, tied head."""
    p = 'transformer.' if 'transformer.wte.weight' in W else ''  # a GPT2Model checkpoint has no prefix
    d, H, L = cfg['n_embd'], cfg['n_head'], cfg['n_layer']
    D, T = d // H, len(ids)
    eps, actname = cfg.get('layer_norm_epsilon', 1e-5), cfg.get('activation_function', 'gelu_new')
    conv = lambda x, n: x @ W[n + '.weight'] + W[n + '.bias']
    x = W[p + 'wte.weight'][ids] + W[p + 'wpe.weight'][np.arange(T)]
    got = {}
    for l in range(L):
        h = f'{p}h.{l}.'
        got[f'blocks.{l}.resid_pre'] = x
        qkv = conv(layer_norm(x, W[h + 'ln_1.weight'], W[h + 'ln_1.bias'], eps), h + 'attn.c_attn')
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(T, H, D) for i in range(3))
        scale = (1 / math.sqrt(D) if cfg.get('scale_attn_weights', True) else 1.0) / ((l + 1) if cfg.get('scale_attn_by_inverse_layer_idx') else 1)
        a = conv(attention(q, k, v, scale), h + 'attn.c_proj')
        got[f'blocks.{l}.attn.out'] = a
        x = x + a
        m_in = layer_norm(x, W[h + 'ln_2.weight'], W[h + 'ln_2.bias'], eps)
        keys = act(actname, conv(m_in, h + 'mlp.c_fc'))
        m = conv(keys, h + 'mlp.c_proj')
        got[f'blocks.{l}.mlp.in'], got[f'blocks.{l}.mlp.keys'], got[f'blocks.{l}.mlp.out'] = m_in, keys, m
        x = x + m
        got[f'blocks.{l}.resid_post'] = x
    hf = layer_norm(x, W[p + 'ln_f.weight'], W[p + 'ln_f.bias'], eps)
    got['final.norm'] = hf
    got['logits'] = hf @ W[p + 'wte.weight'].T  # GPT2LMHeadModel always ties its head
    return got


def forward_llama(cfg, W, ids):
    """Llama / Qwen2: RMSNorm, rotary on whole heads (halves), grouped KV heads, SwiGLU MLP."""
    if cfg.get('rope_scaling') or (cfg.get('rope_parameters') or {}).get('rope_type', 'default') != 'default':
        raise SystemExit('numpy-forward: rope scaling not written here')
    qwen2 = cfg['model_type'] == 'qwen2'
    d, H, L = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_hidden_layers']
    KV = cfg.get('num_key_value_heads') or H
    D, T = cfg.get('head_dim') or d // H, len(ids)
    eps, base = cfg.get('rms_norm_eps', 1e-6), float(cfg.get('rope_theta', 10000.0))
    if cfg.get('hidden_act', 'silu') != 'silu':
        raise SystemExit(f"numpy-forward: activation {cfg['hidden_act']} not written here")
    # transformers reads attention_bias / mlp_bias for Llama only; Qwen2 always has q/k/v biases, Mistral none
    llama = cfg['model_type'] == 'llama'
    qkv_bias = qwen2 or (llama and cfg.get('attention_bias', False))
    o_bias = llama and cfg.get('attention_bias', False)
    mlp_bias = llama and cfg.get('mlp_bias', False)
    lin = lambda x, n, bias: linear(x, W[n + '.weight'], W[n + '.bias'] if bias else None)
    x = W['model.embed_tokens.weight'][ids]
    got = {}
    for l in range(L):
        h = f'model.layers.{l}.'
        got[f'blocks.{l}.resid_pre'] = x
        a_in = rms_norm(x, W[h + 'input_layernorm.weight'], eps)
        q = lin(a_in, h + 'self_attn.q_proj', qkv_bias).reshape(T, H, D)
        k = lin(a_in, h + 'self_attn.k_proj', qkv_bias).reshape(T, KV, D)
        v = lin(a_in, h + 'self_attn.v_proj', qkv_bias).reshape(T, KV, D)
        q, k = rotate(q, D, base, False), rotate(k, D, base, False)
        # query head i reads key/value head i // (H / KV)
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
        a = lin(attention(q, k, v), h + 'self_attn.o_proj', o_bias)
        got[f'blocks.{l}.attn.out'] = a
        x = x + a
        m_in = rms_norm(x, W[h + 'post_attention_layernorm.weight'], eps)
        keys = silu(lin(m_in, h + 'mlp.gate_proj', mlp_bias)) * lin(m_in, h + 'mlp.up_proj', mlp_bias)
        m = lin(keys, h + 'mlp.down_proj', mlp_bias)
        got[f'blocks.{l}.mlp.in'], got[f'blocks.{l}.mlp.keys'], got[f'blocks.{l}.mlp.out'] = m_in, keys, m
        x = x + m
        got[f'blocks.{l}.resid_post'] = x
    hf = rms_norm(x, W['model.norm.weight'], eps)
    got['final.norm'] = hf
    tied = cfg.get('tie_word_embeddings', False)  # LlamaConfig's and Qwen2Config's default
    got['logits'] = hf @ (W['model.embed_tokens.weight'] if tied else W['lm_head.weight']).T
    return got


def forward(cfg, W, ids):
    """Hook point name -> [T, width], plus 'logits'."""
    kind = cfg['model_type']
    if kind == 'gpt2':
        return forward_gpt2(cfg, W, ids)
    if kind in ('llama', 'qwen2'):
        return forward_llama(cfg, W, ids)
    got = {}
    if kind == 'gptj':
        p = 'transformer.'
        d, H, L = cfg['n_embd'], cfg['n_head'], cfg['n_layer']
        D = d // H
        # transformers' GPTJConfig: 64 when absent; null rotates the whole head (one head only)
        rot, base, interleaved = cfg.get('rotary_dim', 64) or D, 10000.0, True
        parallel = True  # attention and MLP both read ln_1(x)
        eps, actname = cfg.get('layer_norm_epsilon', 1e-5), cfg.get('activation_function', 'gelu_new')
        x = W[p + 'wte.weight'][ids]
    elif kind == 'gpt_neox':
        p = 'gpt_neox.'
        d, H, L = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_hidden_layers']
        D = d // H
        rot, base, interleaved = int(D * cfg.get('rotary_pct', 0.25)), float(cfg.get('rotary_emb_base', 10000)), False
        eps, actname = cfg.get('layer_norm_eps', 1e-5), cfg.get('hidden_act', 'gelu')
        parallel = cfg.get('use_parallel_residual', True)
        attn_bias = cfg.get('attention_bias', True)
        x = W[p + 'embed_in.weight'][ids]
    else:
        raise SystemExit(f'numpy-forward: model_type {kind} not written here')
    T = len(ids)
    for l in range(L):
        got[f'blocks.{l}.resid_pre'] = x
        if kind == 'gptj':
            h = f'{p}h.{l}.'
            a_in = layer_norm(x, W[h + 'ln_1.weight'], W[h + 'ln_1.bias'], eps)
            q, k, v = (linear(a_in, W[f'{h}attn.{n}_proj.weight']).reshape(T, H, D) for n in 'qkv')
            o_w, o_b = W[h + 'attn.out_proj.weight'], None
            up_w, up_b = W[h + 'mlp.fc_in.weight'], W[h + 'mlp.fc_in.bias']
            down_w, down_b = W[h + 'mlp.fc_out.weight'], W[h + 'mlp.fc_out.bias']
        else:
            h = f'{p}layers.{l}.'
            a_in = layer_norm(x, W[h + 'input_layernorm.weight'], W[h + 'input_layernorm.bias'], eps)
            b = W[h + 'attention.query_key_value.bias'] if attn_bias else None
            qkv = linear(a_in, W[h + 'attention.query_key_value.weight'], b).reshape(T, H, 3 * D)
            q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
            o_w, o_b = W[h + 'attention.dense.weight'], W[h + 'attention.dense.bias'] if attn_bias else None
            up_w, up_b = W[h + 'mlp.dense_h_to_4h.weight'], W[h + 'mlp.dense_h_to_4h.bias']
            down_w, down_b = W[h + 'mlp.dense_4h_to_h.weight'], W[h + 'mlp.dense_4h_to_h.bias']
        q, k = rotate(q, rot, base, interleaved), rotate(k, rot, base, interleaved)
        a = linear(attention(q, k, v), o_w, o_b)
        got[f'blocks.{l}.attn.out'] = a
        if kind == 'gptj':
            m_in = a_in
        else:
            m_in = layer_norm(x if parallel else x + a, W[h + 'post_attention_layernorm.weight'], W[h + 'post_attention_layernorm.bias'], eps)
        keys = act(actname, linear(m_in, up_w, up_b))
        m = linear(keys, down_w, down_b)
        got[f'blocks.{l}.mlp.in'] = m_in
        got[f'blocks.{l}.mlp.keys'] = keys
        got[f'blocks.{l}.mlp.out'] = m
        x = x + a + m
        got[f'blocks.{l}.resid_post'] = x
    if kind == 'gptj':
        hf = layer_norm(x, W[p + 'ln_f.weight'], W[p + 'ln_f.bias'], eps)
        head = W[p + 'wte.weight'] if cfg.get('tie_word_embeddings') else W['lm_head.weight']
        logits = linear(hf, head, W.get('lm_head.bias'))
    else:
        hf = layer_norm(x, W[p + 'final_layer_norm.weight'], W[p + 'final_layer_norm.bias'], eps)
        head = W[p + 'embed_in.weight'] if cfg.get('tie_word_embeddings') else W['embed_out.weight']
        logits = linear(hf, head)
    got['final.norm'] = hf
    got['logits'] = logits
    return got


def main():
    req = json.load(sys.stdin)
    with open(req['dir'] + '/config.json') as f:
        cfg = json.load(f)
    W = load_model(req['dir'])
    layout, offset = [], 0
    with open(req['out'], 'wb') as out:
        for i, ids in enumerate(req['seqs']):
            for point, value in forward(cfg, W, np.array(ids)).items():
                data = np.ascontiguousarray(value, dtype='<f8')
                out.write(data.tobytes())
                layout.append({'seq': i, 'point': point, 'shape': list(value.shape), 'offset': offset})
                offset += data.nbytes
    json.dump(layout, sys.stdout)


if __name__ == '__main__':
    main()
