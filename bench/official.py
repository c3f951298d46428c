#!/usr/bin/env python3
"""Time the official `rwkv` package (RWKV_V7_ON=1, strategy 'cpu fp32') on a checkpoint, for
comparison with `gander bench` in the same run (`make bench-official`).

    python bench/official.py MODEL.safetensors [--prompt-tokens 512] [--gen-tokens 128] [--repeat 3]

MODEL is a Gander f32 file (official names and orientation) or an official .safetensors; it is
saved once as .pth next to itself, since the package loads .pth files. Prints one JSON line with
prefill_tok_s (one sequence-mode call over the prompt) and decode_tok_s (greedy, token by token),
each the best of --repeat runs, like `gander bench --repeat`.
"""
import argparse, json, os, sys, time
os.environ["RWKV_V7_ON"] = "1"
os.environ["RWKV_JIT_ON"] = "1"
os.environ["RWKV_CUDA_ON"] = "0"
import torch

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--prompt-tokens", type=int, default=512)
ap.add_argument("--gen-tokens", type=int, default=128)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
a = ap.parse_args()
torch.set_num_threads(a.threads)

base = os.path.splitext(a.model)[0] + "-official"
if not os.path.exists(base + ".pth"):
    from safetensors.torch import load_file
    sd = load_file(a.model)
    torch.save({k: v.to(torch.bfloat16) for k, v in sd.items()}, base + ".pth")

from rwkv.model import RWKV
model = RWKV(model=base, strategy="cpu fp32")
from safetensors import safe_open
with safe_open(a.model, "pt") as f:
    V = f.get_slice("emb.weight").get_shape()[0]
x = 0x2545F4914F6CDD1D
prompt = []
for _ in range(a.prompt_tokens):  # the same generator as `gander bench`
    x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    prompt.append(1 + x % (min(V, 65530) - 1))
best_p = best_d = 0.0
with torch.no_grad():
    for _ in range(a.repeat):
        t = time.perf_counter()
        logits, state = model.forward(prompt, None)
        best_p = max(best_p, a.prompt_tokens / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(a.gen_tokens):
            tok = int(torch.argmax(logits))
            logits, state = model.forward([tok], state)
        best_d = max(best_d, a.gen_tokens / (time.perf_counter() - t))
print(json.dumps({"prefill_tok_s": best_p, "decode_tok_s": best_d, "threads": torch.get_num_threads(),
                  "impl": "rwkv 0.8.32 cpu fp32, torch " + torch.__version__}))
