//! What a checkpoint holds and what it would cost, from its headers alone: the config, the
//! parameter count, the layout and storage type, the state size, and for each quantisation the
//! Gander file's size and the weights' memory (`gander info`, `Gander.inspect` in the browser,
//! which fetches only the headers with range requests).

use crate::config::Config;
use crate::error::Result;
use crate::format::gander::{self, Quant};
use crate::format::TensorSource;
use serde::Serialize;

/// One quantisation's cost.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantCost {
    pub quant: &'static str,
    /// The Gander file (`gander convert`, `ModelStore.put(.., { quant })`): tensor data plus a
    /// header of a few KB.
    pub file_bytes: u64,
    /// The weights in memory on either backend: the CPU holds them as stored, WebGPU in buffers
    /// of the same size (rows padded to 4 bytes).
    pub memory_bytes: u64,
}

/// A checkpoint's summary.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub config: Config,
    pub params: u64,
    /// The layout the tensors were stored in (`official`, a Hugging Face layout, web-rwkv).
    pub layout: &'static str,
    /// How the matrices are stored (`bf16`, `f16`, `f32`, or a Gander quantisation).
    pub stored: String,
    pub state_bytes: u64,
    pub quants: Vec<QuantCost>,
    /// Whether it is a Gander file (`gander convert`, `ModelStore.put(.., { quant })`).
    pub gander: bool,
}

/// Header overhead of a Gander file per stored tensor (its JSON entry, and its share of the
/// metadata): 0.1B files measure 65 bytes.
const HEADER_ESTIMATE_PER_TENSOR: u64 = 64;

pub fn summarize(src: &dyn TensorSource) -> Result<Summary> {
    let cfg = Config::from_tensors(src.tensors())?;
    let names: Vec<String> = cfg.expected_shapes().into_keys().collect();
    let header = names.len() as u64 * 2 * HEADER_ESTIMATE_PER_TENSOR;
    let mut quants = Vec::new();
    for q in Quant::ALL {
        let data = gander::data_bytes(src.tensors(), &names, q)?;
        quants.push(QuantCost { quant: q.name(), file_bytes: data + header, memory_bytes: data });
    }
    let meta = gander::parse_meta(&src.metadata())?;
    let is_gander = meta.is_some();
    let stored = match meta {
        Some(m) => m.quant.get("blocks.0.att.key.weight").cloned().unwrap_or_else(|| "f32".into()),
        // GGUF: the ggml type of the layer matrices (`q8_0`, `q6_k` …)
        None if src.layout() == crate::format::layout::Layout::Gguf => {
            src.metadata().get("ggml_type:blocks.0.att.key.weight").map(|t| t.to_lowercase()).unwrap_or_default()
        }
        None => src.tensors().get("blocks.0.att.key.weight").map(|i| format!("{:?}", i.dtype).to_lowercase()).unwrap_or_default(),
    };
    Ok(Summary {
        params: cfg.params(),
        layout: src.layout().name(),
        stored,
        state_bytes: crate::State::byte_len_for(&cfg) as u64,
        quants,
        gander: is_gander,
        config: cfg,
    })
}

/// Bytes fetched from the end of a `.pth` first: its zip directory (about 100 bytes per tensor).
const PTH_TAIL: u64 = 256 << 10;
/// At most this many bytes are fetched in all; a file whose headers need more is refused.
pub const MAX_FETCH: u64 = 64 << 20;

/// What [`Inspector::step`] needs or found.
pub enum Step {
    /// Fetch bytes `start..end` and [`Inspector::add`] them.
    Need(u64, u64),
    Done(Box<Summary>),
}

/// A summary from a file's headers, fetched range by range (the browser's range requests): a
/// safetensors file needs its header; a `.pth` its zip directory (at the end) and `data.pkl`,
/// found by running the zip and pickle readers over the parts fetched so far
/// ([`crate::format::sparse`]).
pub struct Inspector {
    len: u64,
    parts: std::collections::BTreeMap<u64, Vec<u8>>,
    pub fetched: u64,
}

impl Inspector {
    pub fn new(len: u64) -> Inspector {
        Inspector { len, parts: Default::default(), fetched: 0 }
    }

    /// Hand over the bytes fetched from `start`.
    pub fn add(&mut self, start: u64, bytes: Vec<u8>) {
        self.fetched += bytes.len() as u64;
        crate::format::sparse::insert(&mut self.parts, start, bytes);
    }

    /// The next range to fetch, or the summary.
    pub fn step(&self) -> Result<Step> {
        use crate::format::{self, sparse};
        let len = self.len;
        let need = |a: u64, b: u64| {
            if self.fetched + (b - a) > MAX_FETCH {
                return Err(crate::Error::BadModel(format!("the headers need more than {} MiB: not a checkpoint Gander can inspect", MAX_FETCH >> 20)));
            }
            Ok(Step::Need(a, b))
        };
        let done = |src: Box<dyn TensorSource>| Ok(Step::Done(Box::new(summarize(src.as_ref())?)));
        let Some(head) = sparse::slice(&self.parts, 0, len.min(16)) else { return need(0, len.min(sparse::READ_AHEAD)) };
        if head.len() < 16 {
            return Err(crate::Error::BadModel(format!("the file is {len} bytes long: not a model")));
        }
        if head.starts_with(b"PK\x03\x04") {
            let tail = len.saturating_sub(PTH_TAIL);
            if !sparse::covers(&self.parts, tail, len) {
                return need(tail, len);
            }
            let reader = sparse::Sparse::new(len, std::rc::Rc::new(std::cell::RefCell::new(self.parts.clone())));
            let missing = reader.missing();
            return match format::pth::PthHeaders::from_read_seek(reader) {
                Ok(p) => done(format::layout::wrap(Box::new(p))?),
                Err(e) => match missing.get() {
                    Some((a, b)) => need(a, b),
                    None => Err(e),
                },
            };
        }
        if format::gguf::is_gguf(&head) {
            // The header (metadata with the token list, then the tensor infos) has no length
            // field: fetch a growing prefix until it parses.
            let have = sparse::covered_prefix(&self.parts);
            return match format::gguf::GgufFile::from_header(sparse::slice(&self.parts, 0, have).unwrap_or_default(), len) {
                Ok(g) => done(Box::new(g)),
                Err(e) if have < len && format::gguf::is_truncated_header(&e) => need(have, len.min(have.saturating_mul(2).max(sparse::READ_AHEAD))),
                Err(e) => Err(e),
            };
        }
        let n = format::safetensors::SafetensorsFile::header_len(&head, len)?;
        let Some(header) = sparse::slice(&self.parts, 0, n) else { return need(0, n) };
        let st = format::safetensors::SafetensorsFile::from_header(&header, len)?;
        done(format::layout::wrap(format::gander::wrap(st)?)?)
    }
}
