# Reads an exported checkpoint the way a Hugging Face user's tools would, with nothing of Amend,
# for test/export-numpy.test.ts: a strict safetensors parse (the header rules of the safetensors
# library), the file layout, names, shapes and dtypes against the original checkpoint, config.json
# and the other files against the original's, the tokenizer through the HF `tokenizers` library,
# and the logits of the float64 forward of numpy-forward.py over that tokenizer's ids. Without
# `tokenizers` (Debian has no package for it) the ids come from the request and are not checked.
#
# stdin: {"original": dir, "export": dir, "texts": [str, ...], "out": file, and optionally
#         "dtype": the storage dtype every floating tensor was converted to,
#         "config_changes": {key: value} that config.json is to differ by,
#         "rounded_from": an F32 export of the same model, whose values every tensor must be the
#         round-to-nearest-even of in its own dtype, as torch's .to(float16 / bfloat16) rounds,
#         "ids": [[ids of each text]], used only where `tokenizers` is not installed}
# Writes the logits [T, V] of each text, little-endian float64, one after the other, to "out";
# prints {"problems": [str], "changed": [tensors stored in their original dtype whose bytes
#         differ from the original's], "dtypes": {name: dtype}, "ids": [[ids with special tokens]],
#         "raw_ids": [[ids without]] (null without `tokenizers`), "logits": [{"shape": [T, V], "offset": bytes}]}.
import importlib.util
import json
import os
import struct
import sys

import numpy as np

try:
    from tokenizers import Tokenizer
except ImportError:
    Tokenizer = None

spec = importlib.util.spec_from_file_location('numpy_forward', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'numpy-forward.py'))
nf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nf)

SIZES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1}
WEIGHTS = ('.safetensors', '.bin', '.pt', '.pth', '.ckpt', '.h5', '.msgpack', '.gguf', '.onnx')
INDEX = 'model.safetensors.index.json'
FLOATS = ('F64', 'F32', 'F16', 'BF16')


def strict_header(path, problems):
    """The header of a safetensors file, checked as the safetensors library checks it on load."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        if 8 + n > size:
            problems.append(f'{path}: header length {n} runs past the end of the file')
            return {}
        text = f.read(n)
    if not text.startswith(b'{'):
        problems.append(f'{path}: header does not start with "{{"')
    header = json.loads(text)
    meta = header.pop('__metadata__', {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        problems.append(f'{path}: __metadata__ is not a map of strings')
    # transformers refuses a safetensors file whose metadata names no format it knows
    if meta.get('format') not in ('pt', 'tf', 'flax', 'mlx'):
        problems.append(f'{path}: __metadata__ has format {meta.get("format")!r}, not "pt"')
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
        lo, hi = info['data_offsets']
        numel = int(np.prod(info['shape'], dtype=np.int64))
        if info['dtype'] not in SIZES:
            problems.append(f'{path}: "{name}" has dtype {info["dtype"]}')
        elif hi - lo != numel * SIZES[info['dtype']]:
            problems.append(f'{path}: "{name}" spans {hi - lo} bytes for shape {info["shape"]} {info["dtype"]}')
        if lo != end:
            problems.append(f'{path}: "{name}" starts at {lo}, not where the tensor before it ends ({end})')
        end = hi
    if 8 + n + end != size:
        problems.append(f'{path}: the tensors end at byte {8 + n + end} of {size}')
    return header


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def tensor_bytes(path, header):
    _, data = nf.read_header(path)
    return {name: data[info['data_offsets'][0]:info['data_offsets'][1]] for name, info in header.items()}


def layout(d, problems):
    """file -> header of a checkpoint folder, and the index's weight_map (None when single-file)."""
    files = nf.weight_files(d)
    headers = {f: strict_header(os.path.join(d, f), problems) for f in files}
    weight_map = None
    if os.path.exists(os.path.join(d, INDEX)):
        with open(os.path.join(d, INDEX)) as f:
            index = json.load(f)
        weight_map = index['weight_map']
        for f, h in headers.items():
            for name in h:
                if weight_map.get(name) != f:
                    problems.append(f'{d}: "{name}" is in {f} but the index names {weight_map.get(name)}')
        total = sum(i['data_offsets'][1] - i['data_offsets'][0] for h in headers.values() for i in h.values())
        if index.get('metadata', {}).get('total_size') != total:
            problems.append(f'{d}: the index says total_size {index.get("metadata", {}).get("total_size")}, the shards hold {total} bytes')
    return headers, weight_map


def round_to(values, dtype):
    """The bytes of float32 `values` stored as F32, F16 or BF16, rounded to nearest even."""
    if dtype == 'F16':
        return values.astype('<f2').tobytes()
    if dtype == 'BF16':
        u = values.view('<u4').astype(np.uint64)
        return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype('<u2').tobytes()
    return values.astype('<f4').tobytes()


def check_rounding(exp, f32_dir, problems):
    for f in nf.weight_files(exp):
        header, data = nf.read_header(os.path.join(exp, f))
        ref, ref_data = nf.read_header(os.path.join(f32_dir, f))
        for name, info in header.items():
            if name == '__metadata__' or info['dtype'] not in ('F16', 'BF16'):
                continue
            lo, hi = ref[name]['data_offsets']
            want = round_to(np.frombuffer(ref_data[lo:hi], dtype='<f4'), info['dtype'])
            if data[info['data_offsets'][0]:info['data_offsets'][1]] != want:
                problems.append(f'"{name}" is not the {info["dtype"]} rounding of its float32 values')


def main():
    req = json.load(sys.stdin)
    orig, exp = req['original'], req['export']
    problems = []

    oh, owm = layout(orig, problems)
    eh, ewm = layout(exp, problems)
    if sorted(oh) != sorted(eh):
        problems.append(f'weight files {sorted(eh)}, the original has {sorted(oh)}')
    if (owm is None) != (ewm is None) or (owm is not None and owm != ewm):
        problems.append('the index weight_map differs from the original\'s')
    changed, dtypes = [], {}
    for f in sorted(set(oh) & set(eh)):
        a, b = oh[f], eh[f]
        if sorted(a) != sorted(b):
            problems.append(f'{f}: tensors {sorted(set(a) ^ set(b))} are in only one of the original and the export')
        ab, bb = tensor_bytes(os.path.join(orig, f), a), tensor_bytes(os.path.join(exp, f), b)
        for name in sorted(set(a) & set(b)):
            dtypes[name] = b[name]['dtype']
            want = req['dtype'] if req.get('dtype') and a[name]['dtype'] in FLOATS else a[name]['dtype']
            if (want, a[name]['shape']) != (b[name]['dtype'], b[name]['shape']):
                problems.append(f'"{name}": {b[name]["dtype"]} {b[name]["shape"]}, not {want} {a[name]["shape"]} (the original: {a[name]["dtype"]})')
            elif a[name]['dtype'] == want and ab[name] != bb[name]:
                changed.append(name)

    if req.get('rounded_from'):
        check_rounding(exp, req['rounded_from'], problems)

    with open(os.path.join(orig, 'config.json')) as f:
        want = json.load(f)
    with open(os.path.join(exp, 'config.json')) as f:
        got = json.load(f)
    want.update(req.get('config_changes', {}))
    if got != want:
        keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        problems.append(f'config.json differs from the original\'s (with {req.get("config_changes", {})}) at {keys}')
    for f in sorted(os.listdir(orig)):
        p = os.path.join(orig, f)
        if f in ('config.json', INDEX) or f.endswith(WEIGHTS) or f.startswith('.') or not os.path.isfile(p):
            continue
        q = os.path.join(exp, f)
        if not os.path.isfile(q):
            problems.append(f'{f} is not in the export')
        elif read(p) != read(q):
            problems.append(f'{f} differs from the original\'s')
    for f in sorted(set(os.listdir(exp)) - set(os.listdir(orig))):
        problems.append(f'{f} is in the export but not in the original')

    tok = Tokenizer.from_file(os.path.join(exp, 'tokenizer.json')) if Tokenizer else None
    with open(os.path.join(exp, 'config.json')) as f:
        cfg = json.load(f)
    W = nf.load_model(exp)
    ids, raw_ids, shapes, offset = [], [] if tok else None, [], 0
    with open(req['out'], 'wb') as out:
        for i, text in enumerate(req['texts']):
            seq = tok.encode(text).ids if tok else req['ids'][i]
            ids.append(seq)
            if tok:
                raw_ids.append(tok.encode(text, add_special_tokens=False).ids)
            logits = np.ascontiguousarray(nf.forward(cfg, W, np.array(seq))['logits'], dtype='<f8')
            out.write(logits.tobytes())
            shapes.append({'shape': list(logits.shape), 'offset': offset})
            offset += logits.nbytes
    json.dump({'problems': problems, 'changed': changed, 'dtypes': dtypes, 'ids': ids, 'raw_ids': raw_ids, 'logits': shapes}, sys.stdout)


main()
