//! `Gander.inspect`'s wasm side: [`crate::model::inspect::Inspector`] for JS. The JS loop asks
//! `step()` which bytes it needs next (`{need: [start, end]}`), fetches them, hands them over
//! with `add(start, bytes)`, and stops at `{summary}`.

use super::{coded, js_err};
use crate::model::inspect::{self, Step};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Inspector(inspect::Inspector);

#[wasm_bindgen]
impl Inspector {
    #[wasm_bindgen(constructor)]
    pub fn new(file_len: f64) -> Inspector {
        Inspector(inspect::Inspector::new(file_len as u64))
    }

    /// Hand over the bytes fetched from `start`.
    pub fn add(&mut self, start: f64, bytes: Vec<u8>) {
        self.0.add(start as u64, bytes);
    }

    /// Bytes handed over so far.
    #[wasm_bindgen(getter)]
    pub fn fetched(&self) -> f64 {
        self.0.fetched as f64
    }

    /// `{need: [start, end]}` (the next range to fetch) or `{summary: {...}}`.
    pub fn step(&self) -> Result<JsValue, JsValue> {
        let o = js_sys::Object::new();
        match self.0.step().map_err(js_err)? {
            Step::Need(a, b) => {
                js_sys::Reflect::set(&o, &"need".into(), &js_sys::Array::of2(&(a as f64).into(), &(b as f64).into()))?;
            }
            Step::Done(s) => {
                let v = serde_wasm_bindgen::to_value(&*s).map_err(|e| coded("BAD_MODEL", &e.to_string()))?;
                js_sys::Reflect::set(&o, &"summary".into(), &v)?;
            }
        }
        Ok(o.into())
    }
}
