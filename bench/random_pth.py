"""Write a random RWKV-7 checkpoint as an official `.pth` (torch.save of a bf16 state dict), for
load and memory benchmarks of big shapes (`make bench-load` uses the 1.5B shape: C=2048, L=24,
V=65536). Names and shapes come from Gander's own config (`random_model --shapes`), values
follow the scales of examples/random_model.rs; the file is useless as a language model.

    python bench/random_pth.py OUT.pth --embd 2048 --layers 24 [--vocab 65536]
"""
import argparse
import json
import re
import subprocess

import torch


def order(name):
    """Official files list the embedding, the blocks in layer order, then the head."""
    m = re.match(r"blocks\.(\d+)\.", name)
    if name.startswith("emb."):
        return (0, 0, name)
    if m:
        return (1, int(m.group(1)), name)
    return (2, 0, name)


def value(name, shape, gen):
    u = torch.rand(shape, generator=gen)
    if name.endswith("att.w0"):
        return -6.0 + 6.0 * u
    if len(shape) == 1:
        return torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
    if len(shape) == 3 or name.endswith("r_k"):
        return u
    return (u - 0.5) * 2.0 / shape[-1] ** 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--embd", default="2048")
    ap.add_argument("--layers", default="24")
    ap.add_argument("--vocab", default="65536")
    a = ap.parse_args()
    shapes = json.loads(subprocess.check_output(
        ["cargo", "run", "--release", "--locked", "-q", "--example", "random_model", "--",
         "--shapes", "--embd", a.embd, "--layers", a.layers, "--vocab", a.vocab]))
    gen = torch.Generator().manual_seed(42)
    sd = {n: value(n, s, gen).to(torch.bfloat16) for n, s in sorted(shapes.items(), key=lambda kv: order(kv[0]))}
    torch.save(sd, a.out)
    params = sum(t.numel() for t in sd.values())
    print(f"wrote {a.out}: C={a.embd} L={a.layers} V={a.vocab}, {params} params, bf16")


if __name__ == "__main__":
    main()
