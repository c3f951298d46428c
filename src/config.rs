//! Hyper-parameters inferred from tensor shapes (spec §1.2), the whole-model shape check, and
//! the model's fingerprint. A leaf below the formats' users: the backends, the state and the
//! converter read it, and it reads only the format layer's tensor descriptions.
//!
//! There is no config file: `(H, N)` come from `blocks.0.att.r_k`, `(V, C)` from `emb.weight`,
//! `L` from the block indices, `F` from `ffn.key.weight`, and the LoRA ranks from the factors'
//! inner dimension (`Dv` from layer 1, because layer 0 may lack `v0/v1/v2`, spec §1.4).

use crate::error::{Error, Result};
use crate::format::{TensorInfo, TensorSource};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The spec's numeric constants, in one place: the CPU backend uses them directly and the GPU
/// backend prepends them to every shader (`backend::gpu::pipelines`), so no shader writes them
/// as literals (tests/shaders.rs checks).
pub mod spec {
    /// LayerNorm epsilon of `ln0`, `ln1`, `ln2`, `ln_out` (spec §2.2; PyTorch's default).
    pub const LN_EPS: f64 = 1e-5;
    /// GroupNorm epsilon of the attention output, `1e-5 · head_size_divisor²` with the official
    /// code's divisor 8 (spec §2.3 step 12).
    pub const GN_EPS: f64 = 64e-5;
    /// `e^-0.5`: the decay is `exp(-e^-0.5 · sigmoid(w))` (spec §2.3 step 4).
    pub const DECAY_SCALE: f32 = 0.606_530_66;
}

/// The shape of an RWKV-7 x070 model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// `V`: rows of the embedding and the head.
    pub vocab: usize,
    /// `C`: `n_embd`.
    pub embd: usize,
    /// `L`: number of blocks.
    pub layers: usize,
    /// `H`: heads, `C / N`.
    pub heads: usize,
    /// `N`: head size (64 in every released model).
    pub head_size: usize,
    /// `F`: channel-mix hidden size (`4C` in released models).
    pub ffn: usize,
    /// LoRA ranks `Dw, Da, Dv, Dg`.
    pub rank_w: usize,
    pub rank_a: usize,
    pub rank_v: usize,
    pub rank_g: usize,
    /// Whether the file carries the unused layer-0 `att.v0/v1/v2` (they are never read).
    pub layer0_has_v: bool,
    /// DeepEmbed (rwkv7a, spec §1.7) rank `R`: every layer's channel mix is gated by a per-token
    /// `R×R` matrix (`ffn.s_emb`, `s_emb_x`, `s0/s1/s2`); 0 for a plain x070 model.
    pub deep_embed: usize,
}

/// The 20B-tokenizer vocabulary of the Pile models, which Gander does not ship.
const PILE_VOCAB: usize = 50304;

fn shape_of<'a>(t: &'a BTreeMap<String, TensorInfo>, name: &str) -> Result<&'a [usize]> {
    t.get(name).map(|i| i.shape.as_slice()).ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))
}

fn dims2(t: &BTreeMap<String, TensorInfo>, name: &str) -> Result<(usize, usize)> {
    match shape_of(t, name)? {
        [a, b] => Ok((*a, *b)),
        s => Err(Error::BadModel(format!("`{name}` has shape {s:?}, expected 2 dimensions"))),
    }
}

/// Refuse checkpoints that look like RWKV-7 relatives Gander does not implement (spec §1.7;
/// DeepEmbed, rwkv7a, is implemented and detected in [`Config::from_tensors`]).
fn reject_variants(t: &BTreeMap<String, TensorInfo>) -> Result<()> {
    for name in t.keys() {
        if name.contains(".qkv.") {
            return Err(Error::Unsupported(format!("`{name}` marks an rwkv7b (attention side path) checkpoint; only plain RWKV-7 x070 is supported")));
        }
        if name.contains("time_decay") || name.contains("time_maa") || name.contains("time_mix_k") || name.contains("time_faaaa") {
            return Err(Error::Unsupported(format!("`{name}` belongs to an older RWKV (v4-v6 or an x070 preview); Gander runs RWKV-7 x070 only")));
        }
    }
    Ok(())
}

/// The DeepEmbed rank from `blocks.0.ffn.s1` `[C, R]`, 0 without DeepEmbed. The per-token
/// matrix is `s_emb`'s row reshaped to `R×R` (the official code fixes `R = 32`; any square is
/// accepted). Every layer must then carry the tensors, which the shape check enforces.
fn deep_embed_rank(t: &BTreeMap<String, TensorInfo>) -> Result<usize> {
    if !t.keys().any(|n| n.contains(".ffn.s_emb") || n.contains(".ffn.s0") || n.contains(".ffn.s1") || n.contains(".ffn.s2")) {
        return Ok(0);
    }
    let named = |e: Error| match e {
        Error::BadModel(m) => Error::BadModel(format!("a DeepEmbed (rwkv7a) checkpoint, but {m}")),
        other => other,
    };
    let r = dims2(t, "blocks.0.ffn.s1").map_err(named)?.1;
    let (_, width) = dims2(t, "blocks.0.ffn.s_emb.weight").map_err(named)?;
    if r == 0 || r.checked_mul(r) != Some(width) {
        return Err(Error::BadModel(format!("DeepEmbed: `blocks.0.ffn.s_emb.weight` rows hold {width} values, not the square of the rank {r} of `ffn.s1`")));
    }
    Ok(r)
}

impl Config {
    /// Infer the config from a checkpoint's tensor list and check every tensor's presence and shape.
    /// Unknown tensors are refused by name, so a file of another architecture fails loudly.
    pub fn from_tensors(t: &BTreeMap<String, TensorInfo>) -> Result<Config> {
        reject_variants(t)?;
        let (vocab, embd) = dims2(t, "emb.weight")?;
        if vocab == PILE_VOCAB {
            return Err(Error::Unsupported("vocabulary of 50304 rows: a Pile model with the GPT-NeoX 20B tokenizer, which Gander does not ship".into()));
        }
        let (heads, head_size) = dims2(t, "blocks.0.att.r_k")?;
        if heads == 0 || head_size == 0 || heads * head_size != embd {
            return Err(Error::BadModel(format!("`blocks.0.att.r_k` is [{heads}, {head_size}] but C = {embd}")));
        }
        let mut layers = 0usize;
        for name in t.keys() {
            if let Some(rest) = name.strip_prefix("blocks.") {
                let idx: usize = rest.split('.').next().and_then(|s| s.parse().ok()).ok_or_else(|| Error::BadModel(format!("unknown tensor `{name}`")))?;
                // Cap against hostile files: a name cannot conjure 10^18 layers.
                if idx >= 4096 {
                    return Err(Error::BadModel(format!("tensor `{name}`: layer index {idx} is implausible")));
                }
                layers = layers.max(idx + 1);
            }
        }
        if layers == 0 {
            return Err(Error::BadModel("no `blocks.*` tensors".into()));
        }
        let (ffn, _) = dims2(t, "blocks.0.ffn.key.weight")?;
        let rank_w = dims2(t, "blocks.0.att.w1")?.1;
        let rank_a = dims2(t, "blocks.0.att.a1")?.1;
        let rank_g = dims2(t, "blocks.0.att.g1")?.1;
        let rank_v = if layers > 1 { dims2(t, "blocks.1.att.v1")?.1 } else { 0 };
        let layer0_has_v = t.contains_key("blocks.0.att.v1");
        let deep_embed = deep_embed_rank(t)?;
        let cfg = Config { vocab, embd, layers, heads, head_size, ffn, rank_w, rank_a, rank_v, rank_g, layer0_has_v, deep_embed };
        for (what, n) in [
            ("vocabulary", vocab),
            ("embedding width", embd),
            ("ffn width", ffn),
            ("decay LoRA rank", rank_w),
            ("ICL LoRA rank", rank_a),
            ("gate LoRA rank", rank_g),
        ] {
            if n == 0 {
                return Err(Error::BadModel(format!("{what} is 0")));
            }
        }
        if layers > 1 && rank_v == 0 {
            return Err(Error::BadModel("value-residual LoRA rank is 0".into()));
        }
        let expected = cfg.expected_shapes();
        for (name, shape) in &expected {
            if let Some(info) = t.get(name) {
                if !matches!(info.dtype, crate::format::DType::F32 | crate::format::DType::F16 | crate::format::DType::BF16) {
                    return Err(Error::BadModel(format!(
                        "`{name}` is stored as {:?}; weights must be F32, F16 or BF16 (or quantised in a Gander file)",
                        info.dtype
                    )));
                }
            }
            let got = shape_of(t, name)?;
            if got != shape.as_slice() {
                return Err(Error::BadModel(format!("`{name}` has shape {got:?}, expected {shape:?}")));
            }
        }
        for name in t.keys() {
            let unused_v = name.starts_with("blocks.0.att.v") && matches!(&name[14..], "0" | "1" | "2");
            if !expected.contains_key(name) && !unused_v {
                return Err(Error::BadModel(format!("unknown tensor `{name}`")));
            }
        }
        Ok(cfg)
    }

    /// Every tensor the forward pass reads, with its stored shape (spec §1.3).
    /// Layer-0 `v0/v1/v2` are not listed: they are never read (spec §1.4).
    pub fn expected_shapes(&self) -> BTreeMap<String, Vec<usize>> {
        let (v, c, f) = (self.vocab, self.embd, self.ffn);
        let mut m = BTreeMap::new();
        let mut put = |n: String, s: Vec<usize>| {
            m.insert(n, s);
        };
        put("emb.weight".into(), vec![v, c]);
        put("head.weight".into(), vec![v, c]);
        put("ln_out.weight".into(), vec![c]);
        put("ln_out.bias".into(), vec![c]);
        put("blocks.0.ln0.weight".into(), vec![c]);
        put("blocks.0.ln0.bias".into(), vec![c]);
        for l in 0..self.layers {
            let p = |s: &str| format!("blocks.{l}.{s}");
            for n in ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.ln_x.weight", "att.ln_x.bias"] {
                put(p(n), vec![c]);
            }
            for n in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "k_k", "k_a"] {
                put(p(&format!("att.{n}")), vec![1, 1, c]);
            }
            put(p("att.r_k"), vec![self.heads, self.head_size]);
            for n in ["receptance", "key", "value", "output"] {
                put(p(&format!("att.{n}.weight")), vec![c, c]);
            }
            put(p("att.w1"), vec![c, self.rank_w]);
            put(p("att.w2"), vec![self.rank_w, c]);
            put(p("att.a1"), vec![c, self.rank_a]);
            put(p("att.a2"), vec![self.rank_a, c]);
            put(p("att.g1"), vec![c, self.rank_g]);
            put(p("att.g2"), vec![self.rank_g, c]);
            if l > 0 {
                put(p("att.v0"), vec![1, 1, c]);
                put(p("att.v1"), vec![c, self.rank_v]);
                put(p("att.v2"), vec![self.rank_v, c]);
            }
            put(p("ffn.x_k"), vec![1, 1, c]);
            put(p("ffn.key.weight"), vec![f, c]);
            put(p("ffn.value.weight"), vec![c, f]);
            if self.deep_embed > 0 {
                let r = self.deep_embed;
                put(p("ffn.s_emb.weight"), vec![v, r * r]);
                put(p("ffn.s_emb_x.weight"), vec![r * r, c]);
                put(p("ffn.s1"), vec![c, r]);
                put(p("ffn.s2"), vec![r, f]);
                put(p("ffn.s0"), vec![1, 1, f]);
            }
        }
        m
    }

    /// Parameters the forward pass uses (layer-0 `v*` excluded).
    /// Parameters (in u64 and saturating: a 13B model overflows a wasm32 `usize`).
    pub fn params(&self) -> u64 {
        self.expected_shapes().values().map(|s| s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))).fold(0u64, u64::saturating_add)
    }

    /// Floats in one recurrent state: `L·(2C + H·N·N)` (spec §3.1).
    pub fn state_floats(&self) -> usize {
        self.layers * (2 * self.embd + self.heads * self.head_size * self.head_size)
    }
}

/// The identity of a model's weights, independent of how its matrices are stored: SHA-256 over
/// the shape and the fp32 values of every layer's `att.w0` and `att.r_k` (vectors, which Gander
/// files always keep in f32). States carry it so a state is never loaded into another model.
pub fn fingerprint(cfg: &Config, src: &mut dyn TensorSource) -> Result<[u8; 32]> {
    let mut h = fingerprint_start(cfg);
    for l in 0..cfg.layers {
        fingerprint_layer(&mut h, src, l)?;
    }
    Ok(h.finalize().into())
}

pub(crate) fn fingerprint_start(cfg: &Config) -> Sha256 {
    let mut h = Sha256::new();
    h.update(b"gander-fingerprint-v1");
    for d in [cfg.vocab, cfg.embd, cfg.layers, cfg.heads, cfg.head_size, cfg.ffn, cfg.rank_w, cfg.rank_a, cfg.rank_v, cfg.rank_g] {
        h.update((d as u64).to_le_bytes());
    }
    // Only when present, so that every plain model keeps the fingerprint its states carry.
    if cfg.deep_embed > 0 {
        h.update(b"deep-embed");
        h.update((cfg.deep_embed as u64).to_le_bytes());
    }
    h
}

pub(crate) fn fingerprint_layer(h: &mut Sha256, src: &mut dyn TensorSource, l: usize) -> Result<()> {
    for n in ["att.w0", "att.r_k"] {
        for x in src.read(&format!("blocks.{l}.{n}"))?.to_f32() {
            h.update(x.to_le_bytes());
        }
    }
    Ok(())
}

/// A fingerprint as the 64 lowercase hex digits that files, states and the JS API show.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}
