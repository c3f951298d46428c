"""Rebuild the full official-layout f32 checkpoint of the SQL model from its compact form.

The trained model's embedding and head use 28,625 of the 65,536 vocabulary rows, and the head is
tied to the embedding except for column 0 (the pinned bias channel, see train.py). The
repository keeps only those rows, once (`sql-rwkv7-compact.safetensors`: every other tensor as
is, f32; `emb.rows` in f16, `head.bias` (column 0 of the head rows) in f32, and the row ids
`rows.ids`). This writes the full safetensors file: unused embedding rows 0, unused head rows -30
in column 0 and 0 elsewhere, used head rows = [bias, embedding row columns 1..]. The shipped int8
file is converted from this expansion, so the f16 rounding of the embedding rows is part of the
model everywhere (f32, int8 and q4 evaluations alike). Plain Python, no torch.

    python3 tools/sql/expand.py tools/sql/sql-rwkv7-compact.safetensors OUT.safetensors
    python3 tools/sql/expand.py --compact FULL.pth OUT.compact.safetensors   (needs torch)
"""
import json
import struct
import sys
from array import array

VOCAB = 65536


def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        if info["dtype"] == "F16":
            a = array("f", struct.unpack(f"<{(e - s) // 2}e", b[base + s:base + e]))
        else:
            a = array("f" if info["dtype"] == "F32" else "i")
            a.frombytes(b[base + s:base + e])
        out[name] = (info["shape"], a)
    return out


def write(path, tensors, f16=()):
    """`tensors`: name -> (shape, array); names in `f16` are written as F16."""
    header = {}
    offset = 0
    blobs = []
    for name, (shape, a) in tensors.items():
        blob = struct.pack(f"<{len(a)}e", *a) if name in f16 else a.tobytes()
        dtype = "F16" if name in f16 else ("F32" if a.typecode == "f" else "I32")
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)


def expand(src, dst):
    t = read(src)
    ids = list(t.pop("rows.ids")[1])
    (n, c), er = t.pop("emb.rows")
    _, bias = t.pop("head.bias")
    emb = array("f", bytes(4 * VOCAB * c))
    head = array("f", bytes(4 * VOCAB * c))
    for r in range(VOCAB):
        head[r * c] = -30.0
    for i, r in enumerate(ids):
        emb[r * c:(r + 1) * c] = er[i * c:(i + 1) * c]
        head[r * c:(r + 1) * c] = er[i * c:(i + 1) * c]
        head[r * c] = bias[i]
    t["emb.weight"] = ([VOCAB, c], emb)
    t["head.weight"] = ([VOCAB, c], head)
    write(dst, dict(sorted(t.items())))


def compact(full_pth, dst):
    import torch
    sd = torch.load(full_pth)
    head = sd.pop("head.weight")
    emb = sd.pop("emb.weight")
    unused = (head[:, 0] == -30.0) & (head[:, 1:] == 0).all(1) & (emb == 0).all(1)
    ids = (~unused).nonzero().flatten()
    t = {k: (list(v.shape), array("f", v.float().contiguous().numpy().tobytes())) for k, v in sd.items()}
    if not torch.equal(head[ids][:, 1:], emb[ids][:, 1:]):
        sys.exit("the head is not tied to the embedding (train.py ties them): this compact form cannot hold it")
    t["emb.rows"] = ([len(ids), emb.shape[1]], array("f", emb[ids].contiguous().numpy().tobytes()))
    t["head.bias"] = ([len(ids)], array("f", head[ids][:, 0].contiguous().numpy().tobytes()))
    t["rows.ids"] = ([len(ids)], array("i", ids.int().numpy().tobytes()))
    write(dst, dict(sorted(t.items())), f16={"emb.rows"})


if __name__ == "__main__":
    if sys.argv[1] == "--compact":
        compact(sys.argv[2], sys.argv[3])
    else:
        expand(sys.argv[1], sys.argv[2])
