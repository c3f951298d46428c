//! The engine under the npm package `gander-rwkv` (wasm-bindgen): models, sessions, generation,
//! conversion. The package's JavaScript (`pkg-template/`) wraps it into the API of docs/design.md
//! (error classes, async iterators, the worker, the IndexedDB store); this layer keeps every rule
//! in Rust so the CLI and the browser behave alike.
//!
//! - Every fallible call returns a JS `Error` with a stable `code` property (`BAD_MODEL`, ...);
//!   nothing here can panic (JS would see `RuntimeError: unreachable` and a dead instance).
//! - WebGPU reads back asynchronously, so calls that return numbers are Promises.
//! - A model streams in part by part ([`Loader`]): JS reads the byte ranges each step names from
//!   wherever the file lives (IndexedDB chunks, a Blob, an ArrayBuffer) and the wasm heap holds one
//!   part at a time; on WebGPU the weights go straight to GPU buffers. A `.pth`, another
//!   safetensors layout, or a load with `quant` goes through [`PullLoader`] instead: it asks for
//!   byte ranges as its readers need them and converts each matrix as it arrives.

mod alloc;
mod inspect;
mod options;
mod pull;
mod session;

use crate::backend::cpu::Cpu;
use crate::backend::gpu::Gpu;
use crate::backend::Backend;
use crate::error::Error;
use crate::format::{self, TensorSource};
use crate::model::{Model, ModelBuilder};
use crate::state::State;
use js_sys::{Array, Object, Reflect};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

pub use inspect::Inspector;
pub use pull::PullLoader;
pub use session::{WasmGeneration, WasmSession};

/// A crate error as a JS `Error` with `code` (the JS wrapper turns it into its error class).
pub(crate) fn js_err(e: Error) -> JsValue {
    coded(e.code(), &e.to_string())
}

pub(crate) fn coded(code: &str, msg: &str) -> JsValue {
    let err = js_sys::Error::new(msg);
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

/// A WebGPU device, opened once and shared by the models loaded on it.
#[wasm_bindgen]
pub struct WasmGpu {
    gpu: Gpu,
}

#[wasm_bindgen]
impl WasmGpu {
    /// Open the browser's WebGPU adapter; rejects with `NO_WEBGPU` and the reason.
    pub async fn open() -> Result<WasmGpu, JsValue> {
        Gpu::new_async().await.map(|gpu| WasmGpu { gpu }).map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.gpu.ctx.adapter_name.clone()
    }

    /// The largest storage binding the adapter allows, in bytes (matrices above it are split).
    #[wasm_bindgen(getter, js_name = maxBinding)]
    pub fn max_binding(&self) -> f64 {
        self.gpu.ctx.max_binding as f64
    }
}

/// What the first bytes of a file say: `{kind: "pth" | "gguf" | "safetensors", headerLen}`.
#[wasm_bindgen]
pub fn probe(prefix: &[u8], file_len: f64) -> Result<JsValue, JsValue> {
    let o = Object::new();
    if prefix.starts_with(b"PK\x03\x04") {
        set(&o, "kind", "pth");
    } else if format::gguf::is_gguf(prefix) {
        set(&o, "kind", "gguf");
    } else {
        let n = format::safetensors::SafetensorsFile::header_len(prefix, file_len as u64).map_err(js_err)?;
        set(&o, "kind", "safetensors");
        set(&o, "headerLen", n as f64);
    }
    Ok(o.into())
}

/// The layout of a safetensors file from its header block: `official` (streamed tensor by
/// tensor), or another one (`prefixed`, `fla`, `st`), which the package loads whole.
#[wasm_bindgen(js_name = headerLayout)]
pub fn header_layout(header: &[u8], file_len: f64) -> Result<String, JsValue> {
    let st = format::safetensors::SafetensorsFile::from_header(header, file_len as u64).map_err(js_err)?;
    Ok(match format::layout::detect(st.tensors()) {
        format::layout::Layout::Official => "official",
        format::layout::Layout::Prefixed => "prefixed",
        format::layout::Layout::Fla => "fla",
        format::layout::Layout::LoraTransposed => "st",
        format::layout::Layout::Gguf => "gguf",
    }
    .into())
}

enum AnyBuilder {
    Cpu(ModelBuilder<Cpu>),
    Gpu(ModelBuilder<Gpu>),
}

/// A model being streamed in. JS loop: `wanted()` names the byte ranges of the next step,
/// `insert()` each, then `step()`; when `wanted()` is `null`, `finish()`.
#[wasm_bindgen]
pub struct Loader {
    src: Box<dyn TensorSource>,
    builder: Option<AnyBuilder>,
}

#[wasm_bindgen]
impl Loader {
    /// Know a safetensors file (official or Gander) of `file_len` bytes by its header block, to
    /// load it on the CPU.
    #[wasm_bindgen(js_name = forCpu)]
    pub fn for_cpu(header: &[u8], file_len: f64) -> Result<Loader, JsValue> {
        Self::new(header, file_len, None)
    }

    /// [`Loader::for_cpu`] onto a WebGPU device.
    #[wasm_bindgen(js_name = forGpu)]
    pub fn for_gpu(header: &[u8], file_len: f64, gpu: &WasmGpu) -> Result<Loader, JsValue> {
        Self::new(header, file_len, Some(gpu.gpu.clone()))
    }

    fn new(header: &[u8], file_len: f64, gpu: Option<Gpu>) -> Result<Loader, JsValue> {
        let src = format::open_header(header, file_len as u64).map_err(js_err)?;
        let builder = match gpu {
            Some(g) => AnyBuilder::Gpu(ModelBuilder::new(g, src.as_ref()).map_err(js_err)?),
            None => AnyBuilder::Cpu(ModelBuilder::new(Cpu, src.as_ref()).map_err(js_err)?),
        };
        Ok(Loader { src, builder: Some(builder) })
    }

    fn prefixes(&self) -> Option<Vec<String>> {
        let part = |b: &AnyBuilder| match b {
            AnyBuilder::Cpu(b) => b.next_part(),
            AnyBuilder::Gpu(b) => b.next_part(),
        };
        part(self.builder.as_ref()?).map(|p| p.prefixes())
    }

    /// The next part's tensors as `[[name, start, end], ...]` (byte ranges in the file, in file
    /// order), or `null` when every part is loaded.
    pub fn wanted(&mut self) -> JsValue {
        let Some(prefixes) = self.prefixes() else { return JsValue::NULL };
        let list = self.src.pieces().map(|p| p.wanted(&prefixes)).unwrap_or_default();
        list.into_iter().map(|(n, a, b)| Array::of3(&n.into(), &(a as f64).into(), &(b as f64).into())).collect::<Array>().into()
    }

    /// Hand over one tensor's bytes.
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), JsValue> {
        match self.src.pieces() {
            Some(p) => p.insert(name, bytes).map_err(js_err),
            None => Err(coded("BAD_INPUT", "this loader takes no tensors")),
        }
    }

    /// Run the step whose tensors were inserted, then free them. Returns `[done, total]` steps.
    pub fn step(&mut self) -> Result<Vec<u32>, JsValue> {
        let src = self.src.as_mut();
        let b = self.builder.as_mut().ok_or_else(|| coded("BAD_INPUT", "the loader has finished"))?;
        let res = match b {
            AnyBuilder::Cpu(b) => b.load_next(src),
            AnyBuilder::Gpu(b) => b.load_next(src),
        };
        if let Some(p) = self.src.pieces() {
            p.clear();
        }
        res.map_err(js_err)?;
        let (done, total) = match self.builder.as_ref() {
            Some(AnyBuilder::Cpu(b)) => b.progress(),
            Some(AnyBuilder::Gpu(b)) => b.progress(),
            None => (0, 0),
        };
        Ok(vec![done as u32, total as u32])
    }

    /// The loaded model.
    pub fn finish(&mut self) -> Result<WasmModel, JsValue> {
        let engine = match self.builder.take() {
            Some(AnyBuilder::Cpu(b)) => Engine::Cpu(Rc::new(b.finish().map_err(js_err)?)),
            Some(AnyBuilder::Gpu(b)) => Engine::Gpu(Rc::new(b.finish().map_err(js_err)?)),
            None => return Err(coded("BAD_INPUT", "the loader has finished")),
        };
        Ok(WasmModel { engine })
    }
}

#[derive(Clone)]
pub(crate) enum Engine {
    Cpu(Rc<Model<Cpu>>),
    Gpu(Rc<Model<Gpu>>),
}

/// A loaded model.
#[wasm_bindgen]
pub struct WasmModel {
    engine: Engine,
}

fn info_of<B: Backend>(m: &Model<B>) -> Object {
    let c = &m.config;
    let o = Object::new();
    set(&o, "backend", if m.backend.name() == "gpu" { "webgpu" } else { "cpu" });
    set(&o, "layers", c.layers as u32);
    set(&o, "embd", c.embd as u32);
    set(&o, "heads", c.heads as u32);
    set(&o, "headSize", c.head_size as u32);
    set(&o, "vocab", c.vocab as u32);
    set(&o, "quant", m.quant.as_str());
    set(&o, "params", c.params() as f64);
    set(&o, "stateBytes", State::byte_len_for(c) as f64);
    set(&o, "weightBytes", m.decode_bytes_per_token() as f64);
    set(&o, "fingerprint", crate::config::fingerprint_hex(&m.fingerprint));
    let tok = match m.tokenizer() {
        Ok(crate::tokenizer::Tokenizer::World(_)) => JsValue::from("world"),
        Ok(crate::tokenizer::Tokenizer::Bytes) => JsValue::from("bytes"),
        Err(_) => JsValue::NULL,
    };
    set(&o, "tokenizer", tok);
    if let Some(a) = m.backend.adapter_name() {
        set(&o, "adapter", a);
    }
    o
}

#[wasm_bindgen]
impl WasmModel {
    /// Load a whole file held in memory (any format: `.pth`, safetensors, Gander) on the CPU.
    /// Prefer [`Loader`] for safetensors files: it never holds the whole file.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<WasmModel, JsValue> {
        Self::load(bytes, None)
    }

    /// [`WasmModel::from_bytes`] onto a WebGPU device.
    #[wasm_bindgen(js_name = fromBytesGpu)]
    pub fn from_bytes_gpu(bytes: Vec<u8>, gpu: &WasmGpu) -> Result<WasmModel, JsValue> {
        Self::load(bytes, Some(gpu.gpu.clone()))
    }

    fn load(bytes: Vec<u8>, gpu: Option<Gpu>) -> Result<WasmModel, JsValue> {
        let mut src = format::open_bytes(bytes).map_err(js_err)?;
        let engine = match gpu {
            Some(g) => Engine::Gpu(Rc::new(Model::load(g, src.as_mut()).map_err(js_err)?)),
            None => Engine::Cpu(Rc::new(Model::load(Cpu, src.as_mut()).map_err(js_err)?)),
        };
        Ok(WasmModel { engine })
    }

    /// `{backend, layers, embd, heads, headSize, vocab, quant, params, stateBytes, weightBytes,
    /// fingerprint, tokenizer, adapter?}`.
    pub fn info(&self) -> JsValue {
        match &self.engine {
            Engine::Cpu(m) => info_of(m).into(),
            Engine::Gpu(m) => info_of(m).into(),
        }
    }

    fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer, JsValue> {
        match &self.engine {
            Engine::Cpu(m) => m.tokenizer().copied(),
            Engine::Gpu(m) => m.tokenizer().copied(),
        }
        .map_err(js_err)
    }

    /// Text to token ids (`Uint32Array`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        Ok(self.tokenizer()?.encode(text))
    }

    /// Token ids to text (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> Result<String, JsValue> {
        Ok(self.tokenizer()?.decode(ids))
    }

    /// A new session with a zero state.
    pub fn session(&self) -> Result<WasmSession, JsValue> {
        WasmSession::new(self.engine.clone())
    }

    /// What the WebGPU device did since the last call (`{dispatches, bindGroupsCreated,
    /// buffersCreated, submits, readbackBytes}`), or `null` on the CPU: for benchmarks.
    #[wasm_bindgen(js_name = deviceCounters)]
    pub fn device_counters(&self) -> JsValue {
        match &self.engine {
            Engine::Cpu(_) => JsValue::NULL,
            Engine::Gpu(m) => serde_wasm_bindgen::to_value(&m.backend.take_counters().unwrap_or_default()).unwrap_or(JsValue::NULL),
        }
    }

    /// Destroy the GPU device as a lost GPU would (fault tests); a no-op on the CPU.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        if let Engine::Gpu(m) = &self.engine {
            m.backend.ctx.simulate_loss();
        }
    }
}

/// Convert a checkpoint held in memory (`.pth`, safetensors, Gander) to a Gander file with
/// matrices in `quant` (`f32`, `f16`, `int8`, `q4`). `onProgress(done, total)` gets tensor counts.
#[wasm_bindgen]
pub fn convert(bytes: Vec<u8>, quant: &str, on_progress: Option<js_sys::Function>) -> Result<Vec<u8>, JsValue> {
    let q = format::gander::Quant::parse(quant).map_err(|_| coded("BAD_INPUT", &format!("quant: `{quant}` is not one of f32, f16, int8, q4")))?;
    let mut src = format::open_bytes(bytes).map_err(js_err)?;
    let mut out = Vec::new();
    crate::model::convert(src.as_mut(), q, &mut out, &mut |done, total| {
        if let Some(f) = &on_progress {
            let _ = f.call2(&JsValue::NULL, &(done as u32).into(), &(total as u32).into());
        }
    })
    .map_err(js_err)?;
    Ok(out)
}

#[wasm_bindgen]
pub struct WasmTokenizer {
    t: crate::tokenizer::Tokenizer,
}

#[wasm_bindgen]
impl WasmTokenizer {
    #[wasm_bindgen(js_name = forVocab)]
    pub fn for_vocab(vocab: u32) -> Result<WasmTokenizer, JsValue> {
        crate::tokenizer::Tokenizer::for_vocab(vocab as usize).map(|t| WasmTokenizer { t }).ok_or_else(|| {
            coded(
                "UNSUPPORTED",
                &format!("no tokenizer for a vocabulary of {vocab} rows (Gander ships the World vocabulary and byte-level); pass token ids instead"),
            )
        })
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.t.encode(text)
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.t.decode(ids)
    }
}

/// The crate's version, for reports.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// The SQL grammar (GBNF) of a table line `NAME(col TYPE, …)` and the table as the demo model's
/// prompt writes it: `{schema, grammar}` (`grammar::sql_gbnf_for`: with a question, text
/// literals are runs of its words; BAD_INPUT names the problem).
#[wasm_bindgen(js_name = sqlTable)]
pub fn sql_table(line: &str, question: Option<String>) -> Result<JsValue, JsValue> {
    let t = crate::grammar::parse_table(line).map_err(js_err)?;
    let o = Object::new();
    let _ = Reflect::set(&o, &"schema".into(), &t.schema().into());
    let _ = Reflect::set(&o, &"grammar".into(), &crate::grammar::sql_gbnf_for(&t, question.as_deref()).into());
    Ok(o.into())
}
