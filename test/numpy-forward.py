# An independent float64 forward pass of GPT-J and GPT-NeoX checkpoints, written from the
# architectures' definitions (transformers' modeling_gptj.py / modeling_gpt_neox.py) for
# test/models-numpy.test.ts. It shares nothing with Amend: it reads config.json and
# model.safetensors itself and computes one unpadded sequence at a time, so what Amend computes
# with padding or a KV cache is checked against the plain definition.
#
# stdin: {"dir": model folder, "seqs": [[ids], ...], "out": file}
# Writes every hook point's activation [T, width] and the logits [T, V] of each sequence, as
# little-endian float64, one after the other, to "out"; prints the layout as JSON:
# [{"seq": i, "point": name, "shape": [T, width], "offset": bytes}, ...].
import json
import math
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {'F32': '<f4', 'F16': '<f2', 'F64': '<f8'}
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        lo, hi = info['data_offsets']
        out[name] = np.frombuffer(data[lo:hi], dtype=kinds[info['dtype']]).reshape(info['shape']).astype(np.float64)
    return out


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


def attention(q, k, v):
    """Causal attention, q/k/v [T, H, D], scale 1/sqrt(D); returns [T, H*D]."""
    T, H, D = q.shape
    scores = np.einsum('thd,shd->hts', q, k) / math.sqrt(D)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool))[None], scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    return np.einsum('hts,shd->thd', p, v).reshape(T, H * D)


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def forward(cfg, W, ids):
    """Hook point name -> [T, width], plus 'logits'."""
    kind = cfg['model_type']
    got = {}
    if kind == 'gptj':
        p = 'transformer.'
        d, H, L = cfg['n_embd'], cfg['n_head'], cfg['n_layer']
        D = d // H
        rot, base, interleaved = cfg.get('rotary_dim') or D, 10000.0, True
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
    W = load_safetensors(req['dir'] + '/model.safetensors')
    layout, offset = [], 0
    with open(req['out'], 'wb') as out:
        for i, ids in enumerate(req['seqs']):
            for point, value in forward(cfg, W, np.array(ids)).items():
                data = np.ascontiguousarray(value, dtype='<f8')
                out.write(data.tobytes())
                layout.append({'seq': i, 'point': point, 'shape': list(value.shape), 'offset': offset})
                offset += data.nbytes
    json.dump(layout, sys.stdout)


main()
