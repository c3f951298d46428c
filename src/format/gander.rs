//! Gander's own weight file (**contract**, design.md "Gander weight file").
//!
//! A safetensors file whose `__metadata__` holds:
//!
//! | key           | value                                                          |
//! |---------------|----------------------------------------------------------------|
//! | `format`      | `"gander"`                                                     |
//! | `version`     | `"1"` ([`VERSION`])                                            |
//! | `arch`        | `"rwkv7"`                                                      |
//! | `quant`       | JSON object: tensor name → `"f32"` / `"f16"` (each matrix)      |
//! | `fingerprint` | hex SHA-256 identifying the model (see [`crate::model::fingerprint`]) |
//!
//! Tensor names and orientation are the official ones (spec §1.3), so a Gander file is also a
//! valid official safetensors checkpoint. Vectors are always stored as f32; matrices in the
//! requested format. The file is written in one streaming pass (header first, computed from
//! shapes), so converting never holds more than one tensor in memory.

use super::{DType, RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use half::f16;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// How a matrix is stored in a Gander file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    F32,
    F16,
}

impl Quant {
    /// Parse a `--quant` value.
    pub fn parse(s: &str) -> Result<Quant> {
        match s {
            "f32" => Ok(Quant::F32),
            "f16" => Ok(Quant::F16),
            "int8" | "q4" => Err(Error::NotBuilt(format!("--quant {s}: quantised Gander files are not implemented yet; use f32 or f16"))),
            _ => Err(Error::BadInput(format!("--quant {s}: expected one of f32, f16, int8, q4"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
        }
    }
}

/// What the metadata of a Gander file says.
#[derive(Clone, Debug, PartialEq)]
pub struct GanderMeta {
    pub version: u32,
    pub quant: BTreeMap<String, String>,
    pub fingerprint: Option<String>,
}

/// Read and validate Gander metadata; `Ok(None)` for files that are not Gander files.
pub fn read_meta(src: &dyn TensorSource) -> Result<Option<GanderMeta>> {
    let meta = src.metadata();
    if meta.get("format").map(String::as_str) != Some("gander") {
        return Ok(None);
    }
    let version: u32 = meta
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::BadFile("Gander file without a valid `version`".into()))?;
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "Gander file version {version}; this build reads version {VERSION}. Convert the original checkpoint again with this build"
        )));
    }
    match meta.get("arch").map(String::as_str) {
        Some("rwkv7") => {}
        other => return Err(Error::Unsupported(format!("Gander file for arch {other:?}; only rwkv7"))),
    }
    let quant: BTreeMap<String, String> = match meta.get("quant") {
        Some(q) => serde_json::from_str(q).map_err(|e| Error::BadFile(format!("Gander `quant` metadata: {e}")))?,
        None => BTreeMap::new(),
    };
    for (name, q) in &quant {
        let info = src.tensors().get(name).ok_or_else(|| Error::BadFile(format!("Gander `quant` names missing tensor `{name}`")))?;
        let ok = matches!((q.as_str(), info.dtype), ("f32", DType::F32) | ("f16", DType::F16));
        if !ok {
            return Err(Error::BadFile(format!("Gander file: `{name}` is marked {q} but stored as {:?}", info.dtype)));
        }
    }
    Ok(Some(GanderMeta { version, quant, fingerprint: meta.get("fingerprint").cloned() }))
}

/// True for the tensors a Gander file stores in the requested matrix format: every 2-D weight
/// except the per-head bonus `r_k`, which is a small vector in disguise.
pub fn is_matrix(name: &str, info: &TensorInfo) -> bool {
    info.shape.len() == 2 && info.shape.iter().all(|&d| d > 1) && !name.ends_with("att.r_k")
}

#[derive(Serialize)]
struct HeaderEntry {
    dtype: &'static str,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

fn encode(t: &RawTensor, out: DType) -> Vec<u8> {
    if t.info.dtype == out {
        return t.data.clone();
    }
    let v = t.to_f32();
    match out {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F16 => v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
    }
}

/// Write `src` as a Gander file to `out`, converting one tensor at a time.
/// `names` is the set of tensors to keep (the caller drops unused ones such as layer-0 `v*`).
/// `progress(done, total)` is called after each tensor.
pub fn write(
    src: &mut dyn TensorSource,
    names: &[String],
    quant: Quant,
    fingerprint: &str,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let mut plan = Vec::with_capacity(names.len());
    let mut header: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut quant_map = BTreeMap::new();
    let mut offset = 0usize;
    for name in names {
        let info = src.tensors().get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?.clone();
        let dtype = if is_matrix(name, &info) {
            quant_map.insert(name.clone(), quant.name());
            if quant == Quant::F16 { DType::F16 } else { DType::F32 }
        } else {
            DType::F32
        };
        let bytes = info.numel()?.checked_mul(dtype.size()).ok_or_else(|| Error::BadModel(format!("`{name}` too large")))?;
        let entry = HeaderEntry {
            dtype: if dtype == DType::F16 { "F16" } else { "F32" },
            shape: info.shape.clone(),
            data_offsets: [offset, offset + bytes],
        };
        header.insert(name.clone(), serde_json::to_value(entry).map_err(|e| Error::BadFile(e.to_string()))?);
        plan.push((name.clone(), dtype));
        offset += bytes;
    }
    let meta = serde_json::json!({
        "format": "gander",
        "version": VERSION.to_string(),
        "arch": "rwkv7",
        "quant": serde_json::to_string(&quant_map).map_err(|e| Error::BadFile(e.to_string()))?,
        "fingerprint": fingerprint,
    });
    header.insert("__metadata__".into(), meta);
    let mut json = serde_json::to_vec(&header).map_err(|e| Error::BadFile(e.to_string()))?;
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let werr = |e: std::io::Error| Error::io("output", e);
    out.write_all(&(json.len() as u64).to_le_bytes()).map_err(werr)?;
    out.write_all(&json).map_err(werr)?;
    let total = plan.len();
    for (i, (name, dtype)) in plan.iter().enumerate() {
        let t = src.read(name)?;
        out.write_all(&encode(&t, *dtype)).map_err(werr)?;
        progress(i + 1, total);
    }
    out.flush().map_err(werr)
}
