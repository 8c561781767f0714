#!/usr/bin/python3
"""Plain PyTorch GPT-2 forward over the checkpoint the Amend bench wrote (no HF transformers).

    /usr/bin/python3 bench/forward_torch.py <model dir> --threads N [--batch 8] [--seq 128]
        [--warmup 2] [--reps 5] [--ids ids.i32] [--dump-logits out.f32] [--strided-heads] [--serve]

Reads model.safetensors with numpy (the safetensors package is not needed), runs the same
computation as Hugging Face's eager GPT2LMHeadModel with torch.nn.functional ops under
torch.inference_mode, and prints one JSON object with the timings (tokens/s) on stdout.
--ids reads the token ids (little-endian int32, batch*seq of them) so both engines see the same
batch; --dump-logits writes the full logits [batch, seq, vocab] of one forward as raw float32.

--serve (used by bench/forward.ts, which interleaves its own repetitions with these so both
engines see the same background load): after loading, print {"ready": ...} and then answer each
stdin line "all N" / "last N" with one JSON line {"runs": [wall seconds × N], "cpu": [CPU seconds
of the process, all threads, × N]}; "quit" ends.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

if __name__ == "__main__" and any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__.strip())  # answered before importing torch, which may be absent
    sys.exit(0)

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """name -> float32 torch tensor, from a safetensors file (F32, F16 or BF16)."""
    with open(path, 'rb') as fh:
        (n,) = struct.unpack('<Q', fh.read(8))
        header = json.loads(fh.read(n))
    start = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode='r')
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        raw = mm[start + b:start + end]
        dt = e['dtype']
        if dt == 'F32':
            a = np.frombuffer(raw, dtype='<f4').copy()
        elif dt == 'F16':
            a = np.frombuffer(raw, dtype='<f2').astype(np.float32)
        elif dt == 'BF16':
            a = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f'{path}: tensor {name} has dtype {dt}, not F32/F16/BF16')
        out[name] = torch.from_numpy(a.reshape(e['shape']))
    del mm
    return out


class GPT2:
    def __init__(self, cfg, w, contiguous_heads=True):
        self.contiguous_heads = contiguous_heads
        p = 'transformer.' if 'transformer.wte.weight' in w else ''
        self.d = cfg['n_embd']
        self.H = cfg['n_head']
        self.L = cfg['n_layer']
        self.eps = cfg.get('layer_norm_epsilon', 1e-5)
        self.wte = w[p + 'wte.weight']
        self.wpe = w[p + 'wpe.weight']
        self.lnf = (w[p + 'ln_f.weight'], w[p + 'ln_f.bias'])
        self.layers = []
        for l in range(self.L):
            h = f'{p}h.{l}.'
            g = lambda n: w[h + n]
            self.layers.append(dict(
                ln1=(g('ln_1.weight'), g('ln_1.bias')), ln2=(g('ln_2.weight'), g('ln_2.bias')),
                attn=(g('attn.c_attn.weight'), g('attn.c_attn.bias')),
                proj=(g('attn.c_proj.weight'), g('attn.c_proj.bias')),
                fc=(g('mlp.c_fc.weight'), g('mlp.c_fc.bias')),
                mproj=(g('mlp.c_proj.weight'), g('mlp.c_proj.bias'))))
        self.mask = {}

    @staticmethod
    def conv1d(x, wb):
        # GPT-2's Conv1D: x @ W + b with W stored [in, out], as transformers computes it (addmm).
        w, b = wb
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])

    def forward(self, ids, last_only=False):
        B, T = ids.shape
        d, H = self.d, self.H
        D = d // H
        if T not in self.mask:
            self.mask[T] = torch.ones(T, T, dtype=torch.bool).tril_()
        causal = self.mask[T]
        neg = torch.finfo(torch.float32).min
        x = F.embedding(ids, self.wte) + self.wpe[:T]
        for ly in self.layers:
            h = F.layer_norm(x, (d,), *ly['ln1'], self.eps)
            q, k, v = self.conv1d(h, ly['attn']).split(d, dim=2)
            q = q.view(B, T, H, D).transpose(1, 2)
            k = k.view(B, T, H, D).transpose(1, 2)
            v = v.view(B, T, H, D).transpose(1, 2)
            if self.contiguous_heads:
                # transformers leaves the heads strided; torch.matmul on those takes a slow path
                # (≈ 7× slower here), so by default the baseline copies them contiguous first.
                q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D)
            att = torch.where(causal, att, torch.tensor(neg, dtype=att.dtype))
            att = F.softmax(att, dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).reshape(B, T, d)
            x = x + self.conv1d(y, ly['proj'])
            h = F.layer_norm(x, (d,), *ly['ln2'], self.eps)
            x = x + self.conv1d(F.gelu(self.conv1d(h, ly['fc']), approximate='tanh'), ly['mproj'])
        x = F.layer_norm(x, (d,), *self.lnf, self.eps)
        if last_only:
            x = x[:, -1]
        return F.linear(x, self.wte)


def time_it(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    s = sorted(runs)
    m = len(s) // 2
    median = s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2
    return dict(runs=runs, median=median, best=s[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('dir')
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--seq', type=int, default=128)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--ids')
    ap.add_argument('--dump-logits')
    ap.add_argument('--skip-last', action='store_true', help='do not time logits-at-last-position')
    ap.add_argument('--serve', action='store_true', help='answer timing requests on stdin (see above)')
    ap.add_argument('--strided-heads', action='store_true',
                    help="attention on strided head views exactly as transformers' eager GPT-2 (slower)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    with open(os.path.join(a.dir, 'config.json')) as fh:
        cfg = json.load(fh)
    t0 = time.perf_counter()
    model = GPT2(cfg, read_safetensors(os.path.join(a.dir, 'model.safetensors')), contiguous_heads=not a.strided_heads)
    load_s = time.perf_counter() - t0
    B, T = a.batch, a.seq
    if a.ids:
        ids = np.fromfile(a.ids, dtype='<i4')
        if ids.size != B * T:
            raise SystemExit(f'{a.ids}: {ids.size} ids for a [{B}, {T}] batch')
        ids = torch.from_numpy(ids.astype(np.int64)).view(B, T)
    else:
        ids = torch.randint(0, cfg['vocab_size'], (B, T), generator=torch.Generator().manual_seed(7))

    if a.serve:
        with torch.inference_mode():
            if a.dump_logits:
                model.forward(ids).numpy().astype('<f4').tofile(a.dump_logits)
            print(json.dumps(dict(ready=True, torch=torch.__version__, threads=torch.get_num_threads(),
                                  contiguous_heads=model.contiguous_heads,
                                  interop_threads=torch.get_num_interop_threads(), load_s=load_s)), flush=True)
            for line in sys.stdin:
                parts = line.split()
                if not parts or parts[0] == 'quit':
                    break
                last, n = parts[0] == 'last', int(parts[1])
                runs, cpu = [], []
                for _ in range(n):
                    c0, t0 = time.process_time(), time.perf_counter()
                    model.forward(ids, last_only=last)
                    runs.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                print(json.dumps(dict(runs=runs, cpu=cpu)), flush=True)
        return

    res = dict(engine='pytorch', torch=torch.__version__, threads=torch.get_num_threads(),
               contiguous_heads=model.contiguous_heads,
               interop_threads=torch.get_num_interop_threads(), batch=B, seq=T, load_s=load_s)
    with torch.inference_mode():
        if a.dump_logits:
            model.forward(ids).numpy().astype('<f4').tofile(a.dump_logits)
        res['all'] = time_it(lambda: model.forward(ids), a.warmup, a.reps)
        res['all']['tokens_per_s'] = B * T / res['all']['median']
        if not a.skip_last:
            res['last'] = time_it(lambda: model.forward(ids, last_only=True), a.warmup, a.reps)
            res['last']['tokens_per_s'] = B * T / res['last']['median']
    json.dump(res, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
