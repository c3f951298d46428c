"""Train a small RWKV-7 (x070) on tools/sql/sqlgen.py data and export an official-format `.pth`.

A tool, not part of the package: plain PyTorch on the CPU. The model is the spec's forward pass
(docs/rwkv7-spec.md §2, sequence form with the WKV recurrence as a loop over tokens) with
the official tensor names, shapes and orientations, so `gander convert` reads the export.

Two tricks keep a CPU run short:
- The loss is computed over the vocabulary rows the data uses (several thousand of 65,536) and only on
  the answers (the SQL after each "SQL:").
- One channel of `ln_out` is pinned to the constant 1 (weight 0, bias 1), so column 0 of `head` is
  a per-token bias. At export every unused row of `head` gets -30 there (and 0 elsewhere): those
  tokens get logit -30 whatever the input, exactly, in the unchanged architecture.
- The head is tied to the embedding during training (column 0 aside, the bias): copying a name
  from the table line needs no output row trained for each token. The export writes the two as
  the official, separate `emb.weight` and `head.weight`.

    python tools/sql/train.py DATA_DIR OUT.pth [--embd 128] [--layers 4] [--steps 3000] [--batch-tokens 6000]
                              [--lr 4e-3] [--seed 0] [--init EARLIER.pth.ckpt]

The WKV recurrence runs in tools/sql/wkv_cpu.cpp (compiled at start with the venv's ninja and
the system's g++, checked against the PyTorch loop on random inputs first), about 2x the whole
step's speed; without a compiler the loop trains the same model, slower.
`--init` starts from an earlier run's checkpoint weights with a fresh optimizer and schedule (a
second stage); `--seed` picks the batch order (a second stage should not replay the first's).

Data: DATA_DIR/train.jsonl from sqlgen.py (sequences of solved questions about one table; the
loss covers every answer, so a sequence teaches the first question from the table alone and the
later ones with the earlier examples in the state). Every 200 steps it writes OUT.pth.ckpt (model,
optimizer, step) and the export; run the same command again to resume from the checkpoint (the
batch order is a function of the seed, so a resumed run is the run that was interrupted).
"""
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from rwkv.rwkv_tokenizer import TRIE_TOKENIZER
import rwkv

VOCAB = 65536
N = 64  # head size


def tokenizer():
    return TRIE_TOKENIZER(os.path.join(os.path.dirname(rwkv.__file__), "rwkv_vocab_v20230424.txt"))


def wkv_loop(r, w, k, v, a, b):
    """The WKV recurrence (spec §2.3 step 11, S[i][j], i = value, j = key) as a loop over tokens
    in PyTorch: the reference for the C++ kernel, and the fallback without a compiler.
    Inputs [B, T, H, N]; returns y [B, T, H, N]."""
    B, T, H, _ = r.shape
    S = torch.zeros(B, H, N, N, dtype=r.dtype)
    ys = []
    # unbind once: indexing [:, t] inside the loop costs a full-size gradient per step
    steps = zip(a.unsqueeze(-1).unbind(1), w.unsqueeze(-2).unbind(1), b.unsqueeze(-2).unbind(1),
                v.unsqueeze(-1).unbind(1), k.unsqueeze(-2).unbind(1), r.unsqueeze(-1).unbind(1))
    for a_t, d_t, b_t, v_t, k_t, r_t in steps:
        S = S * d_t + (S @ a_t) @ b_t + v_t @ k_t
        ys.append(S @ r_t)
    return torch.stack(ys, 1).view(B, T, H, N)


class WkvKernel(torch.autograd.Function):
    """tools/sql/wkv_cpu.cpp: the same recurrence, forward and backward in C++ with OpenMP (a
    6,000-token training step took about 3.0 s with the loop, 1.4-1.7 s with this, on the
    2-core Intel Xeon development VM)."""
    ext = None

    @staticmethod
    def forward(ctx, r, w, k, v, a, b):
        ins = [t.contiguous() for t in (r, w, k, v, a, b)]
        y, states = WkvKernel.ext.forward(*ins)
        ctx.save_for_backward(*ins, states)
        return y

    @staticmethod
    def backward(ctx, dy):
        return tuple(WkvKernel.ext.backward(*ctx.saved_tensors, dy.contiguous()))


def wkv_kernel(r, w, k, v, a, b):
    return WkvKernel.apply(r, w, k, v, a, b)


WKV_FN = wkv_loop


def use_kernel(build_dir):
    """Compile wkv_cpu.cpp and use it if its outputs and gradients match the loop's on random
    inputs (float32, so within 1e-4 of the largest value): a build that cannot compile keeps the
    loop; one that compiles but differs stops the run (a bug to fix, not to train around)."""
    global WKV_FN
    try:
        from torch.utils.cpp_extension import load
        # ninja comes with the venv (pip install ninja), which need not be on PATH
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        os.makedirs(build_dir, exist_ok=True)
        WkvKernel.ext = load("gander_wkv_cpu", [os.path.join(os.path.dirname(__file__), "wkv_cpu.cpp")],
                             extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"],
                             build_directory=build_dir, verbose=False)
    except Exception as e:  # no compiler or ninja: the loop still trains, slower
        print(f"C++ WKV kernel unavailable ({e}); using the PyTorch loop", flush=True)
        return
    g = torch.Generator().manual_seed(1)
    B, T, H = 3, 23, 2
    def rnd(lo, hi):
        return (torch.rand(B, T, H, N, generator=g) * (hi - lo) + lo).requires_grad_()
    kk = F.normalize(torch.randn(B, T, H, N, generator=g), dim=-1)
    alpha = torch.rand(B, T, H, N, generator=g)
    ins = [rnd(-1, 1), rnd(0.5, 1), rnd(-1, 1), rnd(-1, 1), (-kk).requires_grad_(), (kk * alpha).requires_grad_()]
    dy = torch.randn(B, T, H, N, generator=g)
    outs = []
    for fn in (wkv_loop, wkv_kernel):
        y = fn(*ins)
        grads = torch.autograd.grad(y, ins, dy)
        outs.append([y] + list(grads))
    worst = max(((p - q).abs().max() / q.abs().max()).item() for p, q in zip(*outs))
    if not worst <= 1e-4:  # NaN fails too
        sys.exit(f"the C++ WKV kernel differs from the loop by {worst:.2e} (relative): fix wkv_cpu.cpp")
    print(f"C++ WKV kernel matches the loop (outputs and gradients within {worst:.1e} relative)", flush=True)
    WKV_FN = wkv_kernel


class Block(nn.Module):
    def __init__(self, C, layer, L, ranks):
        super().__init__()
        H = C // N
        dw, da, dv, dg = ranks
        self.layer = layer
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        if layer == 0:
            self.ln0 = nn.LayerNorm(C)
        ratio = 1 - layer / L
        ddd = torch.arange(C) / C
        p = lambda x: nn.Parameter(x.reshape(1, 1, C).clone())
        self.x_r = p(1 - ddd ** (0.2 * ratio))
        self.x_w = p(1 - ddd ** (0.9 * ratio))
        self.x_k = p(1 - ddd ** (0.7 * ratio))
        self.x_v = p(1 - ddd ** (0.7 * ratio))
        self.x_a = p(1 - ddd ** (0.9 * ratio))
        self.x_g = p(1 - ddd ** (0.2 * ratio))
        decay = torch.tensor([-7 + 5 * (n / (C - 1)) ** (0.85 + 1.0 * ratio ** 0.5) for n in range(C)])
        self.w0 = p(decay + 0.5)
        self.w1 = nn.Parameter(torch.zeros(C, dw))
        self.w2 = nn.Parameter(torch.randn(dw, C) * 0.1)
        self.a0 = p(torch.zeros(C))
        self.a1 = nn.Parameter(torch.zeros(C, da))
        self.a2 = nn.Parameter(torch.randn(da, C) * 0.1)
        if layer > 0:
            self.v0 = p(torch.ones(C))
            self.v1 = nn.Parameter(torch.zeros(C, dv))
            self.v2 = nn.Parameter(torch.randn(dv, C) * 0.1)
        self.g1 = nn.Parameter(torch.zeros(C, dg))
        self.g2 = nn.Parameter(torch.randn(dg, C) * 0.1)
        self.k_k = p(torch.ones(C) * 0.85)
        self.k_a = p(torch.ones(C))
        self.r_k = nn.Parameter(torch.zeros(H, N) - 0.04)
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        for m, s in ((self.receptance, 1.0), (self.key, 0.1), (self.value, 1.0)):
            nn.init.orthogonal_(m.weight, gain=s)
        nn.init.zeros_(self.output.weight)
        self.ln_x = nn.GroupNorm(H, C, eps=64e-5)
        with torch.no_grad():
            self.ln_x.weight.fill_(((1 + layer) / L) ** 0.7)
        self.ffn_x_k = p(1 - ddd ** (ratio ** 4))
        self.ffn_key = nn.Linear(C, 4 * C, bias=False)
        self.ffn_value = nn.Linear(4 * C, C, bias=False)
        nn.init.orthogonal_(self.ffn_key.weight)
        nn.init.zeros_(self.ffn_value.weight)

    def forward(self, x, v_first):
        B, T, C = x.shape
        H = C // N
        u = self.ln1(x)
        d = F.pad(u, (0, 0, 1, -1)) - u
        xr, xw, xk = u + d * self.x_r, u + d * self.x_w, u + d * self.x_k
        xv, xa, xg = u + d * self.x_v, u + d * self.x_a, u + d * self.x_g
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        decay = torch.exp(-0.6065306597 * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2))
        alpha = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, eps=1e-12).view(B, T, C)
        k = k * (1 + (alpha - 1) * self.k_a)
        if self.layer == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        # WKV, spec §2.3 step 11: S[i][j], i = value, j = key.
        rs, ds, ks, vs = (t.view(B, T, H, N) for t in (r, decay, k, v))
        aa = (-kk).view(B, T, H, N)
        bb = (kk * alpha).view(B, T, H, N)
        y = WKV_FN(rs, ds, ks, vs, aa, bb).reshape(B * T, C)
        y = self.ln_x(y).view(B, T, C)
        bonus = (rs * ks * self.r_k).sum(-1, keepdim=True) * vs
        y = y + bonus.reshape(B, T, C)
        x = x + self.output(y * g)
        u = self.ln2(x)
        d = F.pad(u, (0, 0, 1, -1)) - u
        x = x + self.ffn_value(torch.relu(self.ffn_key(u + d * self.ffn_x_k)) ** 2)
        return x, v_first


class Model(nn.Module):
    def __init__(self, C, L, used, ranks):
        super().__init__()
        self.emb = nn.Embedding(len(used), C)
        # Tied: the head is the embedding (its column 0, which meets ln_out's pinned channel,
        # replaced by a per-token bias), so a token read in the table line is a token the model
        # can write: copying names needs no separately trained output row for each of the
        # ~30,000 tokens. Rows start at a norm that lets an untrained token be copied too.
        nn.init.normal_(self.emb.weight, std=0.02)
        self.head_bias = nn.Parameter(torch.zeros(len(used)))
        self.blocks = nn.ModuleList([Block(C, i, L, ranks) for i in range(L)])
        self.ln_out = nn.LayerNorm(C)
        self.pin()

    def head_weight(self):
        return torch.cat([self.head_bias[:, None], self.emb.weight[:, 1:]], 1)

    @torch.no_grad()
    def pin(self):
        """Channel 0 of ln_out is the constant 1: head column 0 is a per-token bias."""
        self.ln_out.weight[0] = 0.0
        self.ln_out.bias[0] = 1.0

    def forward(self, idx, at=None):
        """Logits [B, T, V], or [K, V] at the K positions where the mask `at` is true (the
        head over ~30,000 rows is most of the cost: only answer positions need it)."""
        x = self.blocks[0].ln0(self.emb(idx))
        v_first = None
        for b in self.blocks:
            x, v_first = b(x, v_first)
        x = self.ln_out(x)
        return (x if at is None else x[at]) @ self.head_weight().T


def export(model, used, C, L, path):
    """The official state dict (spec §1.3), full 65,536-row vocabulary, fp32."""
    sd = {}
    idx = torch.tensor(used)
    emb = torch.zeros(VOCAB, C)
    emb[idx] = model.emb.weight.detach()
    head = torch.zeros(VOCAB, C)
    head[:, 0] = -30.0
    head[idx] = model.head_weight().detach()
    sd["emb.weight"] = emb
    sd["head.weight"] = head
    sd["ln_out.weight"] = model.ln_out.weight.detach().clone()
    sd["ln_out.bias"] = model.ln_out.bias.detach().clone()
    for i, b in enumerate(model.blocks):
        p = f"blocks.{i}."
        if i == 0:
            sd[p + "ln0.weight"], sd[p + "ln0.bias"] = b.ln0.weight.detach(), b.ln0.bias.detach()
        for n in ("ln1", "ln2"):
            sd[p + n + ".weight"], sd[p + n + ".bias"] = getattr(b, n).weight.detach(), getattr(b, n).bias.detach()
        names = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "w1", "w2", "a0", "a1", "a2", "g1", "g2", "k_k", "k_a", "r_k"]
        if i > 0:
            names += ["v0", "v1", "v2"]
        for n in names:
            sd[p + "att." + n] = getattr(b, n).detach()
        for n in ("receptance", "key", "value", "output"):
            sd[p + f"att.{n}.weight"] = getattr(b, n).weight.detach()
        sd[p + "att.ln_x.weight"], sd[p + "att.ln_x.bias"] = b.ln_x.weight.detach(), b.ln_x.bias.detach()
        sd[p + "ffn.x_k"] = b.ffn_x_k.detach()
        sd[p + "ffn.key.weight"] = b.ffn_key.weight.detach()
        sd[p + "ffn.value.weight"] = b.ffn_value.weight.detach()
    torch.save({k: v.float().contiguous().clone() for k, v in sd.items()}, path)


def load(path, tok):
    """Sequences of [context, answer] pairs -> (ids, target mask). Segments are tokenized one
    by one; main() checks on a sample that this equals tokenizing the whole text (what `gander
    prime` does with a primed state), so training sees the tokens inference will."""
    seqs = []
    for line in open(path):
        ids, mask = [], []
        for ctx, ans in json.loads(line):
            c, a = tok.encode(ctx), tok.encode(ans)
            ids += c + a
            mask += [0] * len(c) + [1] * len(a)
        seqs.append((ids, mask))
    return seqs


def checkpoint(path, model, opt, step, used):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "used": used}, tmp)
    os.replace(tmp, path)


def main():
    data, out = sys.argv[1], sys.argv[2]
    a = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    C, L = int(a.get("--embd", 128)), int(a.get("--layers", 4))
    steps, batch_tokens = int(a.get("--steps", 3000)), int(a.get("--batch-tokens", 6000))
    lr = float(a.get("--lr", 4e-3))
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 2)
    use_kernel(os.path.join(data, "wkv-build"))
    tok = tokenizer()
    t0 = time.time()
    seqs = load(os.path.join(data, "train.jsonl"), tok)
    sample = [json.loads(l) for l in open(os.path.join(data, "train.jsonl")).readlines()[:300]]
    split = sum(tok.encode("".join(x for p in s for x in p)) != [t for p in s for x in p for t in tok.encode(x)] for s in sample)
    if split:
        sys.exit(f"{split} of 300 sequences tokenize differently whole and by segment: fix the data format")
    vocab = set()
    for ids, _ in seqs:
        vocab.update(ids)
    for name in ("eval.jsonl", "opaque.jsonl"):  # held-out prompts' tokens must be embeddable
        for l in open(os.path.join(data, name)):
            e = json.loads(l)
            vocab.update(tok.encode(e["prompt"] + "".join(e["shots"])))
    ckpt = out + ".ckpt"
    state = torch.load(ckpt) if os.path.exists(ckpt) else None
    if "--init" in a and os.path.abspath(a["--init"]) == os.path.abspath(ckpt):
        sys.exit(f"--init {a['--init']} is this run's own checkpoint: give the second stage another OUT")
    init = torch.load(a["--init"]) if "--init" in a and not state else None
    used = state["used"] if state else init["used"] if init else sorted(vocab)
    missing = vocab - set(used)
    if missing:
        sys.exit(f"{len(missing)} tokens of the data (e.g. {sorted(missing)[:5]}) have no row in the checkpoint's "
                 "vocabulary: a second stage needs the first stage's data")
    remap = {t: i for i, t in enumerate(used)}
    n_ans = sum(sum(m) for _, m in seqs)
    n_tok = sum(len(i) for i, _ in seqs)
    print(f"{len(seqs)} sequences, {n_tok:,} tokens ({n_ans:,} answer tokens), {len(used)} vocabulary rows used, "
          f"tokenized in {time.time() - t0:.0f} s", flush=True)
    model = Model(C, L, used, (16, 16, 16, 32))
    print(f"{sum(p.numel() for p in model.parameters()):,} trainable parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    start = 0
    if init:  # a second stage: the weights of an earlier run, a new optimizer and schedule
        model.load_state_dict(init["model"])
        print(f"weights from {a['--init']} (step {init['step']} of that run)", flush=True)
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        print(f"resumed from {ckpt} at step {start}", flush=True)
    # batches of similar length, about batch_tokens tokens each (the WKV loop runs once per time
    # step for the whole batch, so short sequences go in wide batches)
    seqs.sort(key=lambda s: len(s[0]))
    batches, cur = [], []
    for s in seqs:
        if cur and (len(cur) + 1) * len(s[0]) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(s)
    batches.append(cur)
    rng = random.Random(int(a.get("--seed", 0)))
    order = [rng.randrange(len(batches)) for _ in range(steps)]
    t0 = time.time()
    for step in range(start, steps):
        lr_now = lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for gparam in opt.param_groups:
            gparam["lr"] = lr_now
        bt = batches[order[step]]
        T = max(len(s[0]) for s in bt)
        x = torch.zeros(len(bt), T, dtype=torch.long)
        y = torch.full((len(bt), T), -100, dtype=torch.long)
        for i, (ids, mask) in enumerate(bt):
            s = [remap[t] for t in ids]
            x[i, :len(s)] = torch.tensor(s)
            # position j predicts token j+1 where token j+1 is part of an answer
            for j in range(len(s) - 1):
                if mask[j + 1]:
                    y[i, j] = s[j + 1]
        at = y != -100
        loss = F.cross_entropy(model(x, at), y[at])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.pin()
        if step % 50 == 0 or step == steps - 1 or step < start + 5:
            print(f"step {step} loss {loss.item():.4f} lr {lr_now:.2e} B {len(bt)} T {T} {time.time() - t0:.0f} s", flush=True)
        if step % 200 == 199:
            checkpoint(ckpt, model, opt, step + 1, used)
            export(model, used, C, L, out)
    export(model, used, C, L, out)
    print(f"trained {steps} steps ({steps - start} in this run, {time.time() - t0:.0f} s); wrote {out} "
          "(tools/sql/expand.py --compact makes the repository's compact copy)", flush=True)


if __name__ == "__main__":
    main()
