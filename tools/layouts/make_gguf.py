"""Write an official RWKV-7 checkpoint as llama.cpp GGUF files, with llama.cpp's own Python
package (`gguf`, gguf-py from the llama.cpp repository, PyPI), for Gander's GGUF tests.

The tensor mapping is llama.cpp's `convert_hf_to_gguf.py` (class `Rwkv7Model`): matrices keep
their `[out, in]` byte order; the LoRA factors w1 w2 a1 a2 v1 v2 g1 g2 are transposed;
x_r..x_g are stacked (r, w, k, v, a, g) as `time_mix_lerp_fused` `[6, 1, 1, C]`; w0 a0 v0 k_k
k_a and ffn.x_k are squeezed to `[C]`; r_k is flattened; layer 0 gets copies of a0 a1 a2 as its
v0 v1 v2 (and its own v tensors, if any, are dropped). The dtype policies are the converter's
(`--outtype f32|f16|bf16|q8_0`: 1-D tensors, norms, biases, w1, w2 and lerp_fused stay F32; a
row length that is not a multiple of the block falls back to F16) and, for q4_0, llama-quantize's
(the big matrices Q4_0, the head Q8_0 as its Q6_K falls back to when a row is not a multiple of
256, the LoRA factors left as they are). `kquants` holds the f32 file with the feed-forward
value matrices replaced by random Q6_K and Q4_K blocks, `q5_k` by Q5_K blocks (gguf-py cannot
quantise K-quants; it dequantises them as llama.cpp does; a K-quant row is a multiple of 256, so
the model needs 4C % 256 = 0: the fp32-bytes golden checkpoint, C = 64).

For every file but f32 it also writes NAME.ref.safetensors: the official names and shapes with
the values the GGUF file holds, dequantised by gguf-py (`gguf.quants.dequantize`), in f32.

    target/gguf-venv/bin/python tools/layouts/make_gguf.py MODEL.safetensors OUT_DIR
"""
import ast
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
LORA = ("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2")
KINDS = ("f32", "f16", "bf16", "q8_0", "q4_0", "kquants", "q5_k")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        raw = data[a:b]
        if h["dtype"] == "F32":
            x = np.frombuffer(raw, dtype="<f4")
        elif h["dtype"] == "F16":
            x = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif h["dtype"] == "BF16":
            x = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{name}: dtype {h['dtype']}")
        out[name] = x.reshape(h["shape"]).astype(np.float32)
    return out


def write_safetensors(path, tensors):
    header, chunks, at = {}, [], 0
    for name, x in tensors.items():
        b = np.ascontiguousarray(x, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(x.shape), "data_offsets": [at, at + len(b)]}
        chunks.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def world_tokens():
    """The converter's `_set_vocab_rwkv_world` list: <s>, the vocabulary file's tokens as
    Python bytes-repr text, padding to 65,536."""
    toks = [b"<s>"]
    for line in open(os.path.join(ROOT, "src", "tokenizer", "rwkv_vocab_v20230424.txt"), encoding="utf-8"):
        i = line.index(" ")
        j = line.rindex(" ")
        t = ast.literal_eval(line[i:j])
        t = t.encode("utf-8") if isinstance(t, str) else t
        toks.append(repr(t)[2:-1].encode("utf-8"))
    toks += [f"[PAD{i}]".encode() for i in range(65536 - len(toks))]
    return toks


def gguf_tensors(sd):
    """(gguf name, numpy array in GGUF orientation, official name or None for a layer-0 dummy)."""
    L = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    out = [("token_embd.weight", sd["emb.weight"], "emb.weight"),
           ("token_embd_norm.weight", sd["blocks.0.ln0.weight"], None), ("token_embd_norm.bias", sd["blocks.0.ln0.bias"], None),
           ("output_norm.weight", sd["ln_out.weight"], None), ("output_norm.bias", sd["ln_out.bias"], None),
           ("output.weight", sd["head.weight"], "head.weight")]
    for l in range(L):
        p, g = f"blocks.{l}.", f"blk.{l}."
        out += [(g + "attn_norm.weight", sd[p + "ln1.weight"], None), (g + "attn_norm.bias", sd[p + "ln1.bias"], None),
                (g + "attn_norm_2.weight", sd[p + "ln2.weight"], None), (g + "attn_norm_2.bias", sd[p + "ln2.bias"], None),
                (g + "time_mix_ln.weight", sd[p + "att.ln_x.weight"], None), (g + "time_mix_ln.bias", sd[p + "att.ln_x.bias"], None)]
        out.append((g + "time_mix_lerp_fused.weight", np.stack([sd[p + f"att.x_{x}"] for x in "rwkvag"]).reshape(6, 1, 1, -1), None))
        for x in ("w0", "a0", "k_k", "k_a", "r_k"):
            out.append((g + f"time_mix_{x}.weight", sd[p + f"att.{x}"].reshape(-1), None))
        for x in ("w1", "w2", "a1", "a2", "g1", "g2"):
            out.append((g + f"time_mix_{x}.weight", sd[p + f"att.{x}"].T.copy(), p + f"att.{x}"))
        if l == 0:  # llama.cpp's dummies: copies of a0 a1 a2
            out += [(g + "time_mix_v0.weight", sd[p + "att.a0"].reshape(-1), None),
                    (g + "time_mix_v1.weight", sd[p + "att.a1"].T.copy(), None),
                    (g + "time_mix_v2.weight", sd[p + "att.a2"].T.copy(), None)]
        else:
            out += [(g + "time_mix_v0.weight", sd[p + "att.v0"].reshape(-1), None),
                    (g + "time_mix_v1.weight", sd[p + "att.v1"].T.copy(), p + "att.v1"),
                    (g + "time_mix_v2.weight", sd[p + "att.v2"].T.copy(), p + "att.v2")]
        for x in ("receptance", "key", "value", "output"):
            out.append((g + f"time_mix_{x}.weight", sd[p + f"att.{x}.weight"], p + f"att.{x}.weight"))
        out += [(g + "channel_mix_lerp_k.weight", sd[p + "ffn.x_k"].reshape(-1), None),
                (g + "channel_mix_key.weight", sd[p + "ffn.key.weight"], p + "ffn.key.weight"),
                (g + "channel_mix_value.weight", sd[p + "ffn.value.weight"], p + "ffn.value.weight")]
    return out, L


def policy(kind, name, x):
    """The GGUF type a tensor gets in file `kind` (the converter's and llama-quantize's rules)."""
    if x.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or \
            any(name.endswith(f"time_mix_{t}.weight") for t in ("w1", "w2", "lerp_fused")):
        return T.F32
    if kind == "f32":
        return T.F32
    lora = any(name.endswith(f"time_mix_{t}.weight") for t in LORA)
    big = not lora
    if kind in ("f16", "bf16"):
        return T.F16 if kind == "f16" else T.BF16
    if kind in ("kquants", "q5_k"):
        return T.F32  # only the K-quant matrices differ from f32
    if kind == "q8_0":
        return T.Q8_0 if x.shape[-1] % 32 == 0 else T.F16
    if kind == "q4_0":
        if name == "output.weight":
            return T.Q8_0 if x.shape[-1] % 32 == 0 else T.F16
        if big:
            return T.Q4_0 if x.shape[-1] % 32 == 0 else T.F16
        return T.Q8_0 if x.shape[-1] % 32 == 0 else T.F16  # the q8_0 source's LoRA types, kept
    raise SystemExit(kind)


def random_kquant(rng, qtype, rows, cols):
    """Random blocks of a K-quant with small scales, as raw bytes [rows, bytes per row]."""
    be, bb = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(rows * cols // be, bb), dtype=np.uint8)
    d = np.array([0.002], dtype="<f2").view(np.uint8)
    if qtype == T.Q6_K:
        blocks[:, 192:208] = rng.integers(-8, 9, size=(blocks.shape[0], 16)).astype(np.int8).view(np.uint8)
        blocks[:, 208:210] = d
    else:
        blocks[:, 0:2] = d
        blocks[:, 2:4] = np.array([0.001], dtype="<f2").view(np.uint8)
    return blocks.reshape(rows, cols // be * bb)


def write(kind, sd, out_dir, config):
    tensors, L = gguf_tensors(sd)
    path = os.path.join(out_dir, f"{kind}.gguf")
    w = gguf.GGUFWriter(path, "rwkv7")
    C = sd["emb.weight"].shape[1]
    w.add_context_length(1048576)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_layer_norm_eps(1e-5)
    w.add_uint32("rwkv7.wkv.head_size", config["head_size"])
    for key, r in zip(("decay", "iclr", "value_residual_mix", "gate"), config["ranks"]):
        w.add_uint32(f"rwkv7.attention.{key}_lora_rank", r)
    w.add_feed_forward_length(sd["blocks.0.ffn.key.weight"].shape[0])
    w.add_head_count(0)
    if kind == "f32":
        w.add_tokenizer_model("rwkv")
        toks = world_tokens()
        w.add_token_list(toks)
        w.add_token_types([3] + [1] * (len(toks) - 1))
    ref = {}
    rng = np.random.default_rng(7)
    kq = iter({"kquants": [T.Q6_K, T.Q4_K], "q5_k": [T.Q5_K, T.Q5_K]}.get(kind, []))
    for name, x, official in tensors:
        t = policy(kind, name, x)
        if kind in ("kquants", "q5_k") and name.endswith("channel_mix_value.weight") and x.shape[-1] % 256 == 0:
            t = next(kq, T.Q6_K)
            raw = random_kquant(rng, t, *x.shape)
        elif t == T.F32:
            raw = x.astype(np.float32)
        elif t == T.F16:
            raw = x.astype(np.float16)
        else:
            raw = gguf.quants.quantize(x.astype(np.float32), t)
        w.add_tensor(name, raw, raw_dtype=None if t in (T.F32, T.F16) else t)
        # the values the file holds, back in the official orientation
        held = raw.astype(np.float32) if t in (T.F32, T.F16) else gguf.quants.dequantize(raw, t).astype(np.float32).reshape(x.shape)
        ref[name] = held
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if kind != "f32":
        write_safetensors(os.path.join(out_dir, f"{kind}.ref.safetensors"), official_from(ref, sd))


def official_from(held, sd):
    """The official state dict with the GGUF file's values."""
    out = {}
    for name, x in sd.items():
        out[name] = x.copy()
    L = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    out["emb.weight"] = held["token_embd.weight"]
    out["head.weight"] = held["output.weight"]
    out["blocks.0.ln0.weight"], out["blocks.0.ln0.bias"] = held["token_embd_norm.weight"], held["token_embd_norm.bias"]
    out["ln_out.weight"], out["ln_out.bias"] = held["output_norm.weight"], held["output_norm.bias"]
    for l in range(L):
        p, g = f"blocks.{l}.", f"blk.{l}."
        for a, b in (("ln1", "attn_norm"), ("ln2", "attn_norm_2"), ("att.ln_x", "time_mix_ln")):
            out[p + a + ".weight"], out[p + a + ".bias"] = held[g + b + ".weight"], held[g + b + ".bias"]
        lerp = held[g + "time_mix_lerp_fused.weight"].reshape(6, -1)
        for i, x in enumerate("rwkvag"):
            out[p + f"att.x_{x}"] = lerp[i].reshape(1, 1, -1)
        for x in ("w0", "a0", "k_k", "k_a"):
            out[p + f"att.{x}"] = held[g + f"time_mix_{x}.weight"].reshape(1, 1, -1)
        out[p + "att.r_k"] = held[g + "time_mix_r_k.weight"].reshape(sd[p + "att.r_k"].shape)
        for x in ("w1", "w2", "a1", "a2", "g1", "g2") + (("v1", "v2") if l > 0 else ()):
            out[p + f"att.{x}"] = held[g + f"time_mix_{x}.weight"].T.copy()
        if l > 0:
            out[p + "att.v0"] = held[g + "time_mix_v0.weight"].reshape(1, 1, -1)
        for x in ("receptance", "key", "value", "output"):
            out[p + f"att.{x}.weight"] = held[g + f"time_mix_{x}.weight"]
        out[p + "ffn.x_k"] = held[g + "channel_mix_lerp_k.weight"].reshape(1, 1, -1)
        out[p + "ffn.key.weight"] = held[g + "channel_mix_key.weight"]
        out[p + "ffn.value.weight"] = held[g + "channel_mix_value.weight"]
    return out


def main():
    src, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    sd = read_safetensors(src)
    config = json.load(open(os.path.join(os.path.dirname(src), "golden.json")))
    for kind in KINDS:
        write(kind, sd, out_dir, config)
    print(f"wrote {', '.join(KINDS)} .gguf files and their .ref.safetensors to {out_dir}")


if __name__ == "__main__":
    main()
