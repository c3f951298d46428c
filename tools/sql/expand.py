"""Rebuild the full official-layout f32 checkpoint of the SQL model from its compact form.

The trained model's embedding and head use 832 of the 65,536 vocabulary rows; the repository
keeps only those (`sql-rwkv7-compact.safetensors`: every other tensor as is, plus `emb.rows`,
`head.rows` and the row ids `rows.ids`). This writes the full safetensors file `train.py`'s export
corresponds to: unused embedding rows 0, unused head rows -30 in column 0 (the pinned bias
channel, see train.py) and 0 elsewhere. Plain Python, no torch.

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
        a = array("f" if info["dtype"] == "F32" else "i")
        a.frombytes(b[base + s:base + e])
        out[name] = (info["shape"], a)
    return out


def write(path, tensors):
    header = {}
    offset = 0
    for name, (shape, a) in tensors.items():
        size = len(a) * 4
        header[name] = {"dtype": "F32" if a.typecode == "f" else "I32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, (_, a) in tensors.items():
            f.write(a.tobytes())


def expand(src, dst):
    t = read(src)
    ids = list(t.pop("rows.ids")[1])
    (n, c), er = t.pop("emb.rows")
    _, hr = t.pop("head.rows")
    emb = array("f", bytes(4 * VOCAB * c))
    head = array("f", bytes(4 * VOCAB * c))
    for r in range(VOCAB):
        head[r * c] = -30.0
    for i, r in enumerate(ids):
        emb[r * c:(r + 1) * c] = er[i * c:(i + 1) * c]
        head[r * c:(r + 1) * c] = hr[i * c:(i + 1) * c]
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
    t["emb.rows"] = ([len(ids), emb.shape[1]], array("f", emb[ids].contiguous().numpy().tobytes()))
    t["head.rows"] = ([len(ids), emb.shape[1]], array("f", head[ids].contiguous().numpy().tobytes()))
    t["rows.ids"] = ([len(ids)], array("i", ids.int().numpy().tobytes()))
    write(dst, dict(sorted(t.items())))


if __name__ == "__main__":
    if sys.argv[1] == "--compact":
        compact(sys.argv[2], sys.argv[3])
    else:
        expand(sys.argv[1], sys.argv[2])
