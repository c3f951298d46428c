#!/usr/bin/env python3
"""Regenerate tests/golden/deepembed/ from the OFFICIAL implementation of DeepEmbed (rwkv7a).

Run only to regenerate (never at test time), with the environment of make_golden.py:
    /tmp/pyref/bin/python tests/golden/make_golden_de.py

The `rwkv` package (0.8.32) implements DeepEmbed when RWKV_DE_VERSION=1 is set before it is
imported (rwkv/model.py: the load-time merge `s_emb += LN0(emb) @ s_emb_xᵀ` and
RWKV_x070_CMix_one/_seq). The switch applies to every x070 model the process loads, so this
case runs in its own process. Its rank is 32 because the package hard-codes `view(32, 32)`.
Outputs are those of make_golden.run_case (logits one by one and in sequence mode, the state,
a greedy continuation), from a random checkpoint saved as .pth and .safetensors.
"""
import os
import sys

os.environ["RWKV_DE_VERSION"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import make_golden  # noqa: E402

CASE = dict(V=256, C=64, N=32, L=2, ranks=(8, 8, 8, 16), l0v=False, dtype=torch.float32, st=True, de=32)

if __name__ == "__main__":
    make_golden.run_case("deepembed", CASE, 400)
