//! `PullLoader` for JS: [`crate::model::pull::PullLoader`] on the CPU or a WebGPU device. The
//! package loads a `.pth` or a safetensors file of another layout this way, and any file with
//! `quant` (converted on the way), and safetensors shards. JS loop: `step()` returns `{need:
//! [file, start, end]}` (read those bytes of that file from wherever it lives, hand them over
//! with `add(file, start, bytes)`, in pieces if you like), `{part: [done, total]}` (a part was built), or `{done: true}`; then `finish()`.

use super::{coded, js_err, Engine, WasmGpu, WasmModel};
use crate::backend::cpu::Cpu;
use crate::backend::gpu::Gpu;
use crate::format::gander::Quant;
use crate::model::pull::{self, Convert, Pull};
use js_sys::{Array, Object, Reflect};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

enum Any {
    Cpu(pull::PullLoader<Cpu>),
    Gpu(pull::PullLoader<Gpu>),
}

#[wasm_bindgen]
pub struct PullLoader(Any);

fn quant_of(quant: Option<String>) -> Result<Option<Quant>, JsValue> {
    quant.map(|q| Quant::parse(&q).map_err(|_| coded("BAD_INPUT", &format!("quant: `{q}` is not one of f32, f16, int8, q4")))).transpose()
}

fn files(names: Vec<String>, lens: Vec<f64>) -> Result<Vec<(String, u64)>, JsValue> {
    if names.len() != lens.len() || names.is_empty() {
        return Err(coded("BAD_INPUT", "give one length per shard, and at least one shard"));
    }
    Ok(names.into_iter().zip(lens.into_iter().map(|l| l as u64)).collect())
}

#[wasm_bindgen]
impl PullLoader {
    /// A file of `file_len` bytes onto the CPU, its matrices converted to `quant` (or as stored).
    #[wasm_bindgen(js_name = forCpu)]
    pub fn for_cpu(file_len: f64, quant: Option<String>) -> Result<PullLoader, JsValue> {
        Ok(PullLoader(Any::Cpu(pull::PullLoader::new(Cpu, file_len as u64, quant_of(quant)?))))
    }

    /// [`PullLoader::for_cpu`] onto a WebGPU device.
    #[wasm_bindgen(js_name = forGpu)]
    pub fn for_gpu(file_len: f64, quant: Option<String>, gpu: &WasmGpu) -> Result<PullLoader, JsValue> {
        Ok(PullLoader(Any::Gpu(pull::PullLoader::new(gpu.gpu.clone(), file_len as u64, quant_of(quant)?))))
    }

    /// Safetensors shards (`names[i]` of `lens[i]` bytes) joined by `index` (the bytes of
    /// `model.safetensors.index.json`) or by their headers, onto the CPU.
    #[wasm_bindgen(js_name = shardedCpu)]
    pub fn sharded_cpu(names: Vec<String>, lens: Vec<f64>, index: Option<Vec<u8>>, quant: Option<String>) -> Result<PullLoader, JsValue> {
        Ok(PullLoader(Any::Cpu(pull::PullLoader::sharded(Cpu, files(names, lens)?, index, quant_of(quant)?))))
    }

    /// [`PullLoader::sharded_cpu`] onto a WebGPU device.
    #[wasm_bindgen(js_name = shardedGpu)]
    pub fn sharded_gpu(names: Vec<String>, lens: Vec<f64>, index: Option<Vec<u8>>, quant: Option<String>, gpu: &WasmGpu) -> Result<PullLoader, JsValue> {
        Ok(PullLoader(Any::Gpu(pull::PullLoader::sharded(gpu.gpu.clone(), files(names, lens)?, index, quant_of(quant)?))))
    }

    /// Hand over the bytes of file `file` (0 for a single file) fetched from `start`.
    pub fn add(&mut self, file: u32, start: f64, bytes: Vec<u8>) -> Result<(), JsValue> {
        match &mut self.0 {
            Any::Cpu(l) => l.add(file as usize, start as u64, bytes),
            Any::Gpu(l) => l.add(file as usize, start as u64, bytes),
        }
        .map_err(js_err)
    }

    /// Bytes handed over so far.
    #[wasm_bindgen(getter)]
    pub fn fetched(&self) -> f64 {
        match &self.0 {
            Any::Cpu(l) => l.fetched() as f64,
            Any::Gpu(l) => l.fetched() as f64,
        }
    }

    /// `{need: [file, start, end]}`, `{part: [done, total]}` or `{done: true}`.
    pub fn step(&mut self) -> Result<JsValue, JsValue> {
        let r = match &mut self.0 {
            Any::Cpu(l) => l.step(),
            Any::Gpu(l) => l.step(),
        }
        .map_err(js_err)?;
        let o = Object::new();
        match r {
            Pull::Need(f, a, b) => Reflect::set(&o, &"need".into(), &Array::of3(&(f as f64).into(), &(a as f64).into(), &(b as f64).into()))?,
            Pull::Built(d, t) => Reflect::set(&o, &"part".into(), &Array::of2(&(d as f64).into(), &(t as f64).into()))?,
            Pull::Done => Reflect::set(&o, &"done".into(), &true.into())?,
        };
        Ok(o.into())
    }

    /// The loaded model, once `step()` said done.
    pub fn finish(&mut self) -> Result<WasmModel, JsValue> {
        let engine = match &mut self.0 {
            Any::Cpu(l) => Engine::Cpu(Rc::new(l.finish().map_err(js_err)?)),
            Any::Gpu(l) => Engine::Gpu(Rc::new(l.finish().map_err(js_err)?)),
        };
        Ok(WasmModel { engine })
    }
}

/// [`pull::PullConverter`] for JS (`ModelStore.put(name, source, { quant })`): `step()` returns
/// `{need: [file, start, end]}`, `{header: Uint8Array, total}` (the Gander file's first bytes and
/// its whole size), `{bytes: Uint8Array, done, total}` (the next tensor's bytes) or `{finished: true}`.
#[wasm_bindgen]
pub struct PullConverter(pull::PullConverter);

#[wasm_bindgen]
impl PullConverter {
    /// Files `names[i]` of `lens[i]` bytes (one file of any container, or safetensors shards
    /// joined by `index` or their headers) to a Gander file of `quant`.
    #[wasm_bindgen(constructor)]
    pub fn new(names: Vec<String>, lens: Vec<f64>, index: Option<Vec<u8>>, quant: &str) -> Result<PullConverter, JsValue> {
        let q = quant_of(Some(quant.to_string()))?.ok_or_else(|| coded("BAD_INPUT", "quant is required"))?;
        Ok(PullConverter(pull::PullConverter::new(files(names, lens)?, index, q)))
    }

    /// Hand over the bytes of file `file` fetched from `start`.
    pub fn add(&mut self, file: u32, start: f64, bytes: Vec<u8>) -> Result<(), JsValue> {
        self.0.add(file as usize, start as u64, bytes).map_err(js_err)
    }

    /// The source's summary (as `Gander.inspect` reports it), once the header was given.
    pub fn summary(&self) -> Result<JsValue, JsValue> {
        let s = self.0.summary().map_err(js_err)?;
        serde_wasm_bindgen::to_value(&s).map_err(|e| coded("BAD_MODEL", &e.to_string()))
    }

    /// The next piece of the Gander file, or the bytes to fetch first.
    pub fn step(&mut self) -> Result<JsValue, JsValue> {
        let o = Object::new();
        match self.0.step().map_err(js_err)? {
            Convert::Need(f, a, b) => Reflect::set(&o, &"need".into(), &Array::of3(&(f as f64).into(), &(a as f64).into(), &(b as f64).into()))?,
            Convert::Header(h, total) => {
                Reflect::set(&o, &"header".into(), &js_sys::Uint8Array::from(h.as_slice()))?;
                Reflect::set(&o, &"total".into(), &(total as f64).into())?
            }
            Convert::Tensor(t, done, total) => {
                Reflect::set(&o, &"bytes".into(), &js_sys::Uint8Array::from(t.as_slice()))?;
                Reflect::set(&o, &"done".into(), &(done as f64).into())?;
                Reflect::set(&o, &"total".into(), &(total as f64).into())?
            }
            Convert::Done => Reflect::set(&o, &"finished".into(), &true.into())?,
        };
        Ok(o.into())
    }
}
