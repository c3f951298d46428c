"""Write an official RWKV-7 checkpoint in the layouts people download (issue 16), so the loader
can be tested against the official package's logits for the same weights.

    python3 tools/layouts/make_layouts.py SRC.safetensors OUT_DIR

SRC has the official names (BlinkDL's `.pth` names; `tests/golden/fp32-bytes/model.safetensors` is
that golden case's `.pth` written as safetensors by make_golden.py). OUT_DIR receives:

- `hf-rwkv7/`: the RWKV organisation's transformers layout: every tensor under a `rwkv7.` prefix
  except `head.weight`, nothing else changed (huggingface/transformers `models/rwkv7`
  `convert_rwkv7_checkpoint_to_hf.py`), sharded in two files with `model.safetensors.index.json`
  (`{"metadata": {"total_size": ...}, "weight_map": {name: shard}}`).
- `fla/model.safetensors`: the flash-linear-attention layout (fla-org/flash-linear-attention
  `utils/convert_from_rwkv7.py`): `model.embeddings`, `model.layers.N.{pre_norm,attn_norm,
  ffn_norm}`, `attn.{r,k,v,o}_proj`, `attn.g_norm`, LoRA factors as `attn.{w,a,v,g}_lora.lora.{0,2}`
  transposed with the `*0` vectors as `lora.2.bias`, `k_k`/`k_a`/`ffn.x_k` as [C], layer 0 without
  its unused v LoRA, `model.norm`, `lm_head`.
- `fla-xx/model.safetensors`: the same with the January-April 2025 fused `attn.x_x` [6, C] (rows
  r, w, k, v, a, g), which published RWKV org repos still carry.
- `st/model.st`: web-rwkv / Ai00 (`assets/scripts/convert_safetensors.py`): official names, every
  tensor f16, the LoRA factors (`w1 w2 a1 a2 g1 g2 v1 v2`) with their two dimensions swapped.

Standard library only: safetensors is a JSON header and raw little-endian data.
"""
import json
import os
import re
import struct
import sys


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[base + a:base + b])
    return out


def write_st(path, tensors):
    """tensors: name -> (dtype, shape, bytes); written in name order."""
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def transpose(t):
    dtype, shape, blob = t
    r, c = shape
    w = SIZE[dtype]
    rows = [blob[i * c * w:(i + 1) * c * w] for i in range(r)]
    out = bytearray(len(blob))
    for i in range(r):
        for j in range(c):
            out[(j * r + i) * w:(j * r + i + 1) * w] = rows[i][j * w:(j + 1) * w]
    return (dtype, [c, r], bytes(out))


def squeeze(t):
    dtype, shape, blob = t
    return (dtype, [shape[-1]], blob)


def to_f16(t):
    dtype, shape, blob = t
    if dtype == "F16":
        return t
    assert dtype == "F32", dtype
    vals = struct.unpack("<%df" % (len(blob) // 4), blob)
    # struct's 'e' rounds to nearest even, as torch's .half() does.
    return ("F16", shape, struct.pack("<%de" % len(vals), *vals))


def hf_rwkv7(src, out):
    named = {("head.weight" if k == "head.weight" else "rwkv7." + k): v for k, v in src.items()}
    names = sorted(named)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map, total = {}, 0
    for shard, keys in shards.items():
        write_st(os.path.join(out, shard), {k: named[k] for k in keys})
        for k in keys:
            weight_map[k] = shard
            total += len(named[k][2])
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)


LORA = {"w": "w_lora", "a": "a_lora", "v": "v_lora", "g": "g_lora"}
PROJ = {"receptance": "r_proj", "key": "k_proj", "value": "v_proj", "output": "o_proj"}


def fla(src, fused):
    out = {}
    for name, t in src.items():
        if name == "emb.weight":
            out["model.embeddings.weight"] = t
            continue
        if name == "head.weight":
            out["lm_head.weight"] = t
            continue
        m = re.fullmatch(r"ln_out\.(weight|bias)", name)
        if m:
            out["model.norm." + m[1]] = t
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
        assert m, name
        n, rest = int(m[1]), m[2]
        p = "model.layers.%d." % n
        if rest.startswith(("ln0.", "ln1.", "ln2.")):
            out[p + {"ln0": "pre_norm", "ln1": "attn_norm", "ln2": "ffn_norm"}[rest[:3]] + rest[3:]] = t
        elif rest.startswith("ffn."):
            out[p + rest] = squeeze(t) if rest == "ffn.x_k" else t
        else:
            a = rest[len("att."):]
            if n == 0 and a in ("v0", "v1", "v2"):
                continue  # layer 0 has no v LoRA in fla
            if re.fullmatch(r"x_[rwkvag]", a):
                if not fused:
                    out[p + "attn." + a] = t
            elif re.fullmatch(r"[wavg][012]", a):
                lora = p + "attn." + LORA[a[0]] + ".lora."
                if a[1] == "1":
                    out[lora + "0.weight"] = transpose(t)
                elif a[1] == "2":
                    out[lora + "2.weight"] = transpose(t)
                else:
                    out[lora + "2.bias"] = squeeze(t)
            elif a in ("k_k", "k_a"):
                out[p + "attn." + a] = squeeze(t)
            elif a == "r_k":
                out[p + "attn.r_k"] = t
            elif a.startswith("ln_x."):
                out[p + "attn.g_norm." + a[len("ln_x."):]] = t
            else:
                proj, rest2 = a.split(".", 1)
                out[p + "attn." + PROJ[proj] + "." + rest2] = t
        if fused and rest == "att.x_r":
            rows = [src["blocks.%d.att.x_%s" % (n, c)] for c in "rwkvag"]
            c = rows[0][1][-1]
            out[p + "attn.x_x"] = (rows[0][0], [6, c], b"".join(r[2] for r in rows))
    return out


def st(src):
    out = {}
    for name, t in src.items():
        t = to_f16(t)
        if re.search(r"\.att\.[wagv][12]$", name):
            t = transpose(t)
        out[name] = t
    return out


def main():
    src_path, out = sys.argv[1], sys.argv[2]
    src = read_st(src_path)
    hf_rwkv7(src, os.path.join(out, "hf-rwkv7"))
    write_st(os.path.join(out, "fla", "model.safetensors"), fla(src, fused=False))
    write_st(os.path.join(out, "fla-xx", "model.safetensors"), fla(src, fused=True))
    write_st(os.path.join(out, "st", "model.st"), st(src))


if __name__ == "__main__":
    main()
