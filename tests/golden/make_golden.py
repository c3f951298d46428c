#!/usr/bin/env python3
"""Regenerate the golden files under tests/golden/ from the OFFICIAL implementation.

Run only to regenerate (never at test time):
    python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install rwkv==0.8.32 torch numpy safetensors
    /tmp/pyref/bin/python tests/golden/make_golden.py

For each case it builds a small random RWKV-7 x070 checkpoint with the official tensor names,
shapes and storage dtype, saves it with torch.save (and, for one case, as .safetensors), then
runs the official `rwkv` package (RWKV_V7_ON=1, strategy 'cpu fp32') to record:
  logits_one.f32  logits after each token, fed one at a time         [T, V] little-endian f32
  logits_seq.f32  the same from one sequence-mode call (full_output)  [T, V]
  state.f32       the state after the T tokens, per layer: att_prev[C], S[H][N][N], ffn_prev[C]
  golden.json     tokens, greedy continuation (argmax, fed back), shapes
Tokenizer goldens come from the package's TRIE_TOKENIZER on hard strings.

State tuning (`--only state-tuning`, reuses the committed fp32-bytes/model.pth): a random
per-layer `blocks.N.att.time_state` [H, N, N] in bf16 saved as fp32-bytes/time_state.pth (the
layout state-tuning trainers save), and the official package's logits for the same tokens when
its v7 state starts from it (state[3i+1] = time_state, shift vectors zero) in
fp32-bytes/logits_tuned.f32 [T, V], greedy continuation in fp32-bytes/tuned.json.
"""
import json, os, struct, sys
os.environ["RWKV_V7_ON"] = "1"
os.environ["RWKV_JIT_ON"] = "0"
os.environ["RWKV_CUDA_ON"] = "0"
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # name: V, C, N, L, (Dw, Da, Dv, Dg), layer-0 v present, storage dtype, also safetensors
    "bf16-l0v": dict(V=512, C=128, N=64, L=3, ranks=(32, 32, 32, 64), l0v=True, dtype=torch.bfloat16, st=False),
    "fp16-oddranks": dict(V=300, C=192, N=64, L=2, ranks=(17, 23, 9, 31), l0v=False, dtype=torch.float16, st=False),
    "fp32-bytes": dict(V=256, C=64, N=32, L=2, ranks=(8, 8, 8, 16), l0v=False, dtype=torch.float32, st=True),
}


def build(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    V, C, N, L = cfg["V"], cfg["C"], cfg["N"], cfg["L"]
    H = C // N
    Dw, Da, Dv, Dg = cfg["ranks"]
    F = 4 * C
    rn = lambda *s, std=1.0: torch.randn(*s, generator=g) * std
    ru = lambda *s, lo=0.0, hi=1.0: torch.rand(*s, generator=g) * (hi - lo) + lo
    sd = {}
    sd["emb.weight"] = rn(V, C)
    sd["blocks.0.ln0.weight"] = 1 + rn(C, std=0.1)
    sd["blocks.0.ln0.bias"] = rn(C, std=0.1)
    for i in range(L):
        p = f"blocks.{i}."
        for n in ["ln1", "ln2"]:
            sd[p + n + ".weight"] = 1 + rn(C, std=0.1)
            sd[p + n + ".bias"] = rn(C, std=0.1)
        for n in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"]:
            sd[p + "att." + n] = ru(1, 1, C)
        sd[p + "att.w0"] = ru(1, 1, C, lo=-9.0, hi=1.0)  # decays close to 1 included
        sd[p + "att.w1"] = rn(C, Dw, std=0.5 / C**0.5)
        sd[p + "att.w2"] = rn(Dw, C, std=0.5 / Dw**0.5)
        sd[p + "att.a0"] = rn(1, 1, C, std=0.5)
        sd[p + "att.a1"] = rn(C, Da, std=0.5 / C**0.5)
        sd[p + "att.a2"] = rn(Da, C, std=0.5 / Da**0.5)
        if i > 0 or cfg["l0v"]:
            sd[p + "att.v0"] = rn(1, 1, C, std=0.5)
            sd[p + "att.v1"] = rn(C, Dv, std=0.5 / C**0.5)
            sd[p + "att.v2"] = rn(Dv, C, std=0.5 / Dv**0.5)
        sd[p + "att.g1"] = rn(C, Dg, std=0.5 / C**0.5)
        sd[p + "att.g2"] = rn(Dg, C, std=0.5 / Dg**0.5)
        sd[p + "att.k_k"] = ru(1, 1, C, lo=0.5, hi=1.5)
        sd[p + "att.k_a"] = ru(1, 1, C, lo=0.0, hi=1.5)
        sd[p + "att.r_k"] = rn(H, N, std=0.5)
        for n in ["receptance", "key", "value", "output"]:
            sd[p + f"att.{n}.weight"] = rn(C, C, std=1.0 / C**0.5)
        sd[p + "att.ln_x.weight"] = 1 + rn(C, std=0.1)
        sd[p + "att.ln_x.bias"] = rn(C, std=0.1)
        sd[p + "ffn.x_k"] = ru(1, 1, C)
        sd[p + "ffn.key.weight"] = rn(F, C, std=1.0 / C**0.5)
        sd[p + "ffn.value.weight"] = rn(C, F, std=1.0 / F**0.5)
        if cfg.get("de"):
            # DeepEmbed (rwkv7a): a per-token rank-R matrix gating the channel mix's hidden
            # layer; sizes chosen so the gate stays near 1 ± 0.3 and every term shows.
            R = cfg["de"]
            sd[p + "ffn.s_emb.weight"] = rn(V, R * R, std=0.2)
            sd[p + "ffn.s_emb_x.weight"] = rn(R * R, C, std=0.2 / C**0.5)
            sd[p + "ffn.s1"] = rn(C, R, std=1.0 / C**0.5)
            sd[p + "ffn.s2"] = rn(R, F, std=1.0 / R**0.5)
            sd[p + "ffn.s0"] = 1 + rn(1, 1, F, std=0.1)
    sd["ln_out.weight"] = 1 + rn(C, std=0.1)
    sd["ln_out.bias"] = rn(C, std=0.1)
    sd["head.weight"] = rn(V, C, std=1.0 / C**0.5)
    return {k: v.to(cfg["dtype"]).contiguous() for k, v in sd.items()}


def f32_bytes(t):
    return np.asarray(t, dtype="<f4").tobytes()


def run_case(name, cfg, seed):
    from rwkv.model import RWKV
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    sd = build(cfg, seed)
    torch.save(sd, os.path.join(out, "model.pth"))
    if cfg["st"]:
        from safetensors.torch import save_file
        save_file(sd, os.path.join(out, "model.safetensors"))
    model = RWKV(model=os.path.join(out, "model"), strategy="cpu fp32")
    rng = np.random.default_rng(seed)
    T = 16
    tokens = [int(x) for x in rng.integers(1, cfg["V"], size=T)]
    tokens[5] = 0  # token 0 (end of text) is an ordinary input too
    state = None
    one = []
    for t in tokens:
        logits, state = model.forward([t], state)
        one.append(logits.float().numpy().copy())
    seq, _ = model.forward(tokens, None, full_output=True)
    greedy = []
    logits = torch.tensor(one[-1])
    st = [s.clone() for s in state]
    for _ in range(12):
        t = int(torch.argmax(logits))
        greedy.append(t)
        logits, st = model.forward([t], st)
        logits = logits.float()
    with open(os.path.join(out, "logits_one.f32"), "wb") as f:
        f.write(f32_bytes(np.stack(one)))
    with open(os.path.join(out, "logits_seq.f32"), "wb") as f:
        f.write(f32_bytes(seq.float().numpy()))
    with open(os.path.join(out, "state.f32"), "wb") as f:
        for i in range(cfg["L"]):
            for j in range(3):
                f.write(f32_bytes(state[3 * i + j].float().numpy().reshape(-1)))
    meta = dict(vocab=cfg["V"], embd=cfg["C"], head_size=cfg["N"], layers=cfg["L"], ranks=cfg["ranks"],
                layer0_has_v=cfg["l0v"], dtype=str(cfg["dtype"]), tokens=tokens, greedy=greedy,
                deep_embed_rank=cfg.get("de", 0),
                reference=f"rwkv {__import__('rwkv').__version__ if hasattr(__import__('rwkv'), '__version__') else '0.8.32'} cpu fp32, torch {torch.__version__}")
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, "ok", "greedy", greedy)


TOKENIZER_TEXTS = [
    "Hello world", "\n\n", "User:", "你好", "😀", "", " ", "a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " " * 300, "\t\t\t\n\r\n", "\x00\x01\x02\x1b[0m\x7f", "User: What is RWKV?\n\nAssistant:",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n", "fn main() { println!(\"{}\", 1 + 2); }",
    "日本語のテキストと한국어 텍스트, 中文標點：「」。", "👨‍👩‍👧‍👦 family, 🇩🇪 flag, ½ ∑ ∞ ≠ é è ê ñ",
    "The quick brown fox jumps over the lazy dog. " * 5, "SELECT name FROM users WHERE age > 30;",
    "Ünïcödé\u00a0non-breaking\u200bzero-width", "\ud7ff\ue000\uffff", "x" * 129, "1234567890" * 8,
    "<|endoftext|> <s> </s>", "Ł" * 40 + "\n" * 7,
]


def tokenizer_goldens():
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER
    import rwkv
    tok = TRIE_TOKENIZER(os.path.join(os.path.dirname(rwkv.__file__), "rwkv_vocab_v20230424.txt"))
    rng = np.random.default_rng(1234)
    cases = [dict(text=t, ids=tok.encode(t)) for t in TOKENIZER_TEXTS]
    for n in [1, 7, 64, 300]:
        b = bytes(rng.integers(0, 256, size=n, dtype=np.uint8))
        cases.append(dict(hex=b.hex(), ids=tok.encodeBytes(b)))
    with open(os.path.join(HERE, "tokenizer.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print("tokenizer", len(cases), "cases")


def state_tuning_case(seed=300):
    from rwkv.model import RWKV
    out = os.path.join(HERE, "fp32-bytes")
    meta = json.load(open(os.path.join(out, "golden.json")))
    C, N, L = meta["embd"], meta["head_size"], meta["layers"]
    H = C // N
    g = torch.Generator().manual_seed(seed)
    ts = {f"blocks.{i}.att.time_state": (torch.randn(H, N, N, generator=g) * 0.5).to(torch.bfloat16) for i in range(L)}
    torch.save(ts, os.path.join(out, "time_state.pth"))
    model = RWKV(model=os.path.join(out, "model"), strategy="cpu fp32")
    state = []
    for i in range(L):
        state += [torch.zeros(C), ts[f"blocks.{i}.att.time_state"].float().clone(), torch.zeros(C)]
    one = []
    for t in meta["tokens"]:
        logits, state = model.forward([t], state)
        one.append(logits.float().numpy().copy())
    greedy, logits = [], torch.tensor(one[-1])
    for _ in range(12):
        t = int(torch.argmax(logits))
        greedy.append(t)
        logits, state = model.forward([t], state)
        logits = logits.float()
    with open(os.path.join(out, "logits_tuned.f32"), "wb") as f:
        f.write(f32_bytes(np.stack(one)))
    with open(os.path.join(out, "tuned.json"), "w") as f:
        json.dump(dict(tokens=meta["tokens"], greedy=greedy, seed=seed,
                       reference=f"rwkv 0.8.32 cpu fp32 from state[3i+1] = time_state, torch {torch.__version__}"), f, indent=1)
    print("state-tuning ok", "greedy", greedy)


if __name__ == "__main__":
    if sys.argv[1:] == ["--only", "state-tuning"]:
        state_tuning_case()
        sys.exit(0)
    for i, (name, cfg) in enumerate(CASES.items()):
        run_case(name, cfg, 100 + i)
    tokenizer_goldens()
    state_tuning_case()
