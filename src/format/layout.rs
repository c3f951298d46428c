//! Other layouts of the official tensors (issue 16), recognised from the tensor names and
//! shapes, never the file name, and presented under the official names and shapes, so the
//! rest of Gander sees one layout:
//!
//! - the RWKV organisation's transformers layout: official names under a `rwkv7.` prefix
//!   (`rwkv7.emb` also as `rwkv7.embeddings`), `head.weight` unprefixed;
//! - the flash-linear-attention ("fla") layout: `model.layers.N.attn.{r,k,v,o}_proj`, the LoRA
//!   factors as `attn.{w,a,v,g}_lora.lora.{0,2}.weight` (transposed) with `w0`/`a0`/`v0` as
//!   `lora.2.bias`, `k_k`/`k_a`/`ffn.x_k` as `[C]`, older files' fused `attn.x_x` `[6, C]` (rows
//!   r, w, k, v, a, g), no layer-0 v LoRA (unused by the maths), `model.norm`, `lm_head`
//!   (fla-org/flash-linear-attention `utils/convert_from_rwkv7.py`);
//! - web-rwkv / Ai00 `.st`: official names, f16, the LoRA factors `w1 w2 a1 a2 g1 g2 v1 v2`
//!   transposed (told apart from official files by those shapes).
//!
//! `tools/layouts/make_layouts.py` writes each layout from an official checkpoint; tests/layouts.rs
//! checks that the logits equal the official package's.

use super::{DType, RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Which layout a set of tensor names is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Official,
    /// Official names under `rwkv7.` (transformers' `Rwkv7ForCausalLM`).
    Prefixed,
    Fla,
    /// Official names with the LoRA factors transposed (web-rwkv / Ai00 `.st`).
    LoraTransposed,
    /// llama.cpp's GGUF (`rwkv7`), renamed by [`super::gguf`] itself (never [`detect`]ed here).
    Gguf,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Official => "official",
            Layout::Prefixed => "transformers (rwkv7.)",
            Layout::Fla => "flash-linear-attention",
            Layout::LoraTransposed => "web-rwkv (.st)",
            Layout::Gguf => "llama.cpp GGUF",
        }
    }
}

/// How a stored tensor becomes the official one.
#[derive(Clone, Debug)]
enum Fix {
    Same,
    /// Swap the two dimensions of a matrix.
    Transpose,
    /// The same data under the official shape (`[C]` → `[1, 1, C]`).
    Reshape,
    /// Row `i` of a `[6, C]` stack, as `[1, 1, C]`.
    Row(usize),
}

/// A source whose tensors are another layout's, renamed and reshaped on read.
pub struct Renamed {
    inner: Box<dyn TensorSource>,
    infos: BTreeMap<String, TensorInfo>,
    /// Official name → (stored name, fix).
    map: BTreeMap<String, (String, Fix)>,
    pub layout: Layout,
}

/// Recognise the layout of `t`.
pub fn detect(t: &BTreeMap<String, TensorInfo>) -> Layout {
    if t.keys().any(|k| k.starts_with("rwkv7.")) {
        return Layout::Prefixed;
    }
    if t.contains_key("model.embeddings.weight") || t.keys().any(|k| k.starts_with("model.layers.")) {
        return Layout::Fla;
    }
    // Official `w1` is [C, rank]; web-rwkv stores [rank, C].
    let c = t.get("emb.weight").and_then(|i| i.shape.get(1).copied());
    match (c, t.get("blocks.0.att.w1").map(|i| i.shape.as_slice())) {
        (Some(c), Some(&[r, c2])) if c2 == c && r != c => Layout::LoraTransposed,
        _ => Layout::Official,
    }
}

/// Present `inner` under the official names when it is in another layout.
pub fn wrap(inner: Box<dyn TensorSource>) -> Result<Box<dyn TensorSource>> {
    let layout = detect(inner.tensors());
    if layout == Layout::Official {
        return Ok(inner);
    }
    let mut map = BTreeMap::new();
    for (name, info) in inner.tensors() {
        for (official, fix) in official_names(layout, name, info)? {
            map.insert(official, (name.clone(), fix));
        }
    }
    let mut infos = BTreeMap::new();
    for (official, (stored, fix)) in &map {
        let info = inner.tensors().get(stored).ok_or_else(|| Error::BadFile(format!("`{stored}` vanished")))?;
        infos.insert(official.clone(), fixed_info(info, fix, stored)?);
    }
    Ok(Box::new(Renamed { inner, infos, map, layout }))
}

fn fixed_info(info: &TensorInfo, fix: &Fix, stored: &str) -> Result<TensorInfo> {
    let shape = match (fix, info.shape.as_slice()) {
        (Fix::Same, s) => s.to_vec(),
        (Fix::Transpose, &[r, c]) => vec![c, r],
        (Fix::Reshape, &[c]) | (Fix::Reshape, &[1, 1, c]) => vec![1, 1, c],
        (Fix::Row(_), &[6, c]) => vec![1, 1, c],
        (_, s) => return Err(Error::BadModel(format!("`{stored}` has shape {s:?}, which this layout does not allow"))),
    };
    Ok(TensorInfo { dtype: info.dtype, shape })
}

/// The official names a stored tensor provides (none for one the maths does not use).
fn official_names(layout: Layout, name: &str, info: &TensorInfo) -> Result<Vec<(String, Fix)>> {
    let one = |n: String, f: Fix| Ok(vec![(n, f)]);
    match layout {
        Layout::Official | Layout::Gguf => one(name.to_string(), Fix::Same),
        Layout::Prefixed => {
            let n = name.strip_prefix("rwkv7.").unwrap_or(name);
            let n = if n == "embeddings.weight" { "emb.weight" } else { n };
            one(n.to_string(), Fix::Same)
        }
        Layout::LoraTransposed => {
            let lora = name.rsplit_once(".att.").is_some_and(|(_, l)| matches!(l, "w1" | "w2" | "a1" | "a2" | "g1" | "g2" | "v1" | "v2"));
            one(name.to_string(), if lora && info.shape.len() == 2 { Fix::Transpose } else { Fix::Same })
        }
        Layout::Fla => fla_name(name),
    }
}

fn fla_name(name: &str) -> Result<Vec<(String, Fix)>> {
    let one = |n: String, f: Fix| Ok(vec![(n, f)]);
    match name {
        "model.embeddings.weight" => return one("emb.weight".into(), Fix::Same),
        "lm_head.weight" => return one("head.weight".into(), Fix::Same),
        "model.norm.weight" => return one("ln_out.weight".into(), Fix::Same),
        "model.norm.bias" => return one("ln_out.bias".into(), Fix::Same),
        _ => {}
    }
    let unknown = || Err(Error::Unsupported(format!("the flash-linear-attention tensor `{name}` (not an RWKV-7 x070 tensor Gander knows)")));
    let Some(rest) = name.strip_prefix("model.layers.") else { return unknown() };
    let Some((n, rest)) = rest.split_once('.') else { return unknown() };
    let Ok(n) = n.parse::<usize>() else { return unknown() };
    let b = format!("blocks.{n}.");
    let norm = |ln: &str, wb: &str| one(format!("{b}{ln}.{wb}"), Fix::Same);
    if let Some(wb) = rest.strip_prefix("pre_norm.") {
        return norm("ln0", wb);
    }
    if let Some(wb) = rest.strip_prefix("attn_norm.") {
        return norm("ln1", wb);
    }
    if let Some(wb) = rest.strip_prefix("ffn_norm.") {
        return norm("ln2", wb);
    }
    if let Some(f) = rest.strip_prefix("ffn.") {
        return match f {
            "x_k" => one(format!("{b}ffn.x_k"), Fix::Reshape),
            "key.weight" | "value.weight" => one(format!("{b}ffn.{f}"), Fix::Same),
            _ => unknown(),
        };
    }
    let Some(a) = rest.strip_prefix("attn.") else { return unknown() };
    let att = |s: &str| format!("{b}att.{s}");
    match a {
        "x_r" | "x_w" | "x_k" | "x_v" | "x_a" | "x_g" => one(att(a), Fix::Reshape),
        "x_x" => Ok(["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"].iter().enumerate().map(|(i, x)| (att(x), Fix::Row(i))).collect()),
        "k_k" | "k_a" => one(att(a), Fix::Reshape),
        "r_k" => one(att(a), Fix::Same),
        "r_proj.weight" => one(att("receptance.weight"), Fix::Same),
        "k_proj.weight" => one(att("key.weight"), Fix::Same),
        "v_proj.weight" => one(att("value.weight"), Fix::Same),
        "o_proj.weight" => one(att("output.weight"), Fix::Same),
        "g_norm.weight" => one(att("ln_x.weight"), Fix::Same),
        "g_norm.bias" => one(att("ln_x.bias"), Fix::Same),
        _ => {
            let Some((lora, part)) = a.split_once("_lora.lora.") else { return unknown() };
            if !matches!(lora, "w" | "a" | "v" | "g") {
                return unknown();
            }
            match part {
                "0.weight" => one(att(&format!("{lora}1")), Fix::Transpose),
                "2.weight" => one(att(&format!("{lora}2")), Fix::Transpose),
                "2.bias" if lora != "g" => one(att(&format!("{lora}0")), Fix::Reshape),
                _ => unknown(),
            }
        }
    }
}

impl TensorSource for Renamed {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        let (stored, fix) = self.map.get(name).cloned().ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))?;
        let info = self.infos.get(name).cloned().ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))?;
        let t = self.inner.read(&stored)?;
        let data = match fix {
            Fix::Same | Fix::Reshape => t.data,
            Fix::Transpose => transpose(&t)?,
            Fix::Row(i) => {
                let row = info.shape.last().copied().unwrap_or(0) * t.info.dtype.size();
                t.data.get(i * row..(i + 1) * row).ok_or_else(|| Error::BadFile(format!("`{stored}` is shorter than its shape")))?.to_vec()
            }
        };
        Ok(RawTensor { info, data })
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.metadata()
    }

    /// Only for tensors stored as they are used (a transpose needs every row).
    fn read_rows(&mut self, name: &str, rows: std::ops::Range<usize>) -> Option<Result<RawTensor>> {
        match self.map.get(name)? {
            (stored, Fix::Same) => {
                let stored = stored.clone();
                self.inner.read_rows(&stored, rows)
            }
            _ => None,
        }
    }

    fn order(&self, name: &str) -> Option<u64> {
        self.inner.order(&self.map.get(name)?.0)
    }

    fn layout(&self) -> Layout {
        self.layout
    }
}

/// The transpose of a matrix, element by element in its stored dtype.
pub(crate) fn transpose(t: &RawTensor) -> Result<Vec<u8>> {
    let &[r, c] = t.info.shape.as_slice() else { return Err(Error::BadModel(format!("a transpose of shape {:?}", t.info.shape))) };
    let w = match t.info.dtype {
        DType::F32 | DType::F16 | DType::BF16 => t.info.dtype.size(),
        d => return Err(Error::BadModel(format!("a transposed matrix stored as {d:?}"))),
    };
    if t.data.len() != r * c * w {
        return Err(Error::BadFile(format!("a [{r}, {c}] tensor holds {} bytes", t.data.len())));
    }
    let mut out = vec![0u8; t.data.len()];
    for (i, row) in t.data.chunks_exact(c * w).enumerate() {
        for (j, x) in row.chunks_exact(w).enumerate() {
            if let Some(dst) = out.get_mut((j * r + i) * w..(j * r + i + 1) * w) {
                dst.copy_from_slice(x);
            }
        }
    }
    Ok(out)
}
