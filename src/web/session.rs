//! Sessions for JS: one recurrent state, the logits after its last token, and generation steps.
//!
//! Every call that may touch the GPU returns a Promise. A session runs one call at a time: the
//! state is taken out for the call's duration and put back after, so an overlapping call gets a
//! `BUSY` error instead of interleaving two streams into one state.

use super::options::parse_options;
use super::{coded, js_err, Engine};
use crate::backend::{Backend, NO_TOKEN};
use crate::generate::{Finish, GenerateOptions, Generation};
use crate::model::Model;
use crate::sampler::SamplerOptions;
use crate::state::State;
use js_sys::{Object, Promise, Reflect};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

struct Sess<B: Backend> {
    model: Rc<Model<B>>,
    state: RefCell<Option<B::State>>,
    logits: RefCell<Option<Last<B>>>,
    /// A device sampler's occurrence counts, for the generation (by serial) they belong to.
    occ: RefCell<Option<(u64, B::Act)>>,
}

/// The logits after the session's last token: on the host, or left on the device when the
/// backend samples there (a generation step then reads back one id, not the vocabulary).
enum Last<B: Backend> {
    Host(Vec<f32>),
    Device(B::Act),
}

impl<B: Backend> Clone for Last<B> {
    fn clone(&self) -> Self {
        match self {
            Last::Host(v) => Last::Host(v.clone()),
            Last::Device(a) => Last::Device(a.clone()),
        }
    }
}

fn busy() -> JsValue {
    coded("BUSY", "the session is busy with another call; await it (or fork the session) first")
}

impl<B: Backend + 'static> Sess<B> {
    fn new(model: Rc<Model<B>>) -> Result<Sess<B>, JsValue> {
        let state = model.new_state().map_err(js_err)?;
        Ok(Sess { model, state: RefCell::new(Some(state)), logits: RefCell::new(None), occ: RefCell::new(None) })
    }

    fn take(&self) -> Result<B::State, JsValue> {
        self.state.borrow_mut().take().ok_or_else(busy)
    }

    fn put(&self, s: B::State) {
        *self.state.borrow_mut() = Some(s);
    }

    async fn forward(self: Rc<Self>, ids: Vec<u32>) -> Result<Vec<f32>, JsValue> {
        let mut st = self.take()?;
        let r = self.model.forward_async(&mut st, &ids).await;
        self.put(st);
        let logits = r.map_err(js_err)?;
        *self.logits.borrow_mut() = Some(Last::Host(logits.clone()));
        Ok(logits)
    }

    /// Feed `ids` keeping the logits: on the device where the backend samples there (no
    /// read-back at all), else on the host.
    async fn feed(self: Rc<Self>, ids: Vec<u32>) -> Result<(), JsValue> {
        if !self.model.backend.samples_on_device() {
            return self.forward(ids).await.map(|_| ());
        }
        let mut st = self.take()?;
        let r = self.model.forward_device(&mut st, &ids);
        self.put(st);
        *self.logits.borrow_mut() = Some(Last::Device(r.map_err(js_err)?));
        Ok(())
    }

    async fn host_state(self: Rc<Self>) -> Result<State, JsValue> {
        let st = self.take()?;
        let r = self.model.backend.state_to_host_async(&st).await;
        self.put(st);
        r.map_err(js_err)
    }

    fn load(&self, bytes: &[u8]) -> Result<(), JsValue> {
        let m = &self.model;
        let host = State::from_any_bytes(bytes, &m.config, &m.fingerprint).map_err(js_err)?;
        let dev = m.backend.state_from_host(&host).map_err(js_err)?;
        // Refuse while a call holds the state, rather than have that call overwrite this one.
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            return Err(busy());
        }
        *slot = Some(dev);
        *self.logits.borrow_mut() = None;
        Ok(())
    }

    fn reset(&self) -> Result<(), JsValue> {
        let fresh = self.model.new_state().map_err(js_err)?;
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            return Err(busy());
        }
        *slot = Some(fresh);
        *self.logits.borrow_mut() = None;
        Ok(())
    }

    async fn fork(self: Rc<Self>) -> Result<Sess<B>, JsValue> {
        let host = self.clone().host_state().await?;
        let dev = self.model.backend.state_from_host(&host).map_err(js_err)?;
        Ok(Sess { model: self.model.clone(), state: RefCell::new(Some(dev)), logits: RefCell::new(self.logits.borrow().clone()), occ: RefCell::new(None) })
    }

    async fn step(self: Rc<Self>, gen: Rc<RefCell<Generation>>) -> Result<JsValue, JsValue> {
        let tok = self.model.tokenizer().ok().copied();
        // The state is held from the sample to the feed, so no other call runs in between.
        let mut st = self.take()?;
        let r = self.clone().sample_and_feed(&gen, &mut st).await;
        self.put(st);
        let out = Object::new();
        let Some(t) = r? else {
            let mut g = gen.borrow_mut();
            let text = g.flush();
            return Ok(step_event(&out, None, &text, g.finish));
        };
        let mut g = gen.borrow_mut();
        let text = g.text(tok.as_ref(), t);
        Ok(step_event(&out, Some(t), &text, g.finish))
    }

    /// Sample the next token and feed it, keeping its logits (on the device where the backend
    /// samples there, so that a step reads back only the id).
    async fn sample_and_feed(self: Rc<Self>, gen: &Rc<RefCell<Generation>>, st: &mut B::State) -> Result<Option<u32>, JsValue> {
        let device = self.model.backend.samples_on_device();
        let next = if device { self.clone().sample_on_device(gen).await? } else { self.sample_on_host(gen)? };
        let Some(t) = next else { return Ok(None) };
        let last = if device {
            Last::Device(self.model.forward_device(st, &[t]).map_err(js_err)?)
        } else {
            Last::Host(self.model.forward_async(st, &[t]).await.map_err(js_err)?)
        };
        *self.logits.borrow_mut() = Some(last);
        Ok(Some(t))
    }

    fn sample_on_host(&self, gen: &RefCell<Generation>) -> Result<Option<u32>, JsValue> {
        let tok = self.model.tokenizer().ok();
        let logits = self.logits.borrow();
        let logits = match logits.as_ref().ok_or_else(no_logits)? {
            Last::Host(v) => v,
            Last::Device(_) => return Err(coded("BAD_INPUT", "internal: device logits on a host-sampling backend (report this as a bug)")),
        };
        gen.borrow_mut().sample(tok, logits).map_err(js_err)
    }

    /// Sample on the device: one dispatch, then a 4-byte read-back of the id.
    async fn sample_on_device(self: Rc<Self>, gen: &Rc<RefCell<Generation>>) -> Result<Option<u32>, JsValue> {
        let b = &self.model.backend;
        let v = self.model.config.vocab;
        let tok = self.model.tokenizer().ok();
        let logits = match self.logits.borrow().clone().ok_or_else(no_logits)? {
            Last::Device(a) => a,
            Last::Host(h) => b.act_from_host(1, v, &h).map_err(js_err)?,
        };
        // The penalties' counts belong to one generation (by its serial number, never reused): a
        // new one starts from zero.
        let key = gen.borrow().serial;
        let mut occ = match self.occ.borrow_mut().take() {
            Some((k, a)) if k == key => a,
            _ => b.act_from_host(1, v, &vec![0.0; v]).map_err(js_err)?,
        };
        let id = {
            let mut g = gen.borrow_mut();
            match g.device_job(tok, v) {
                Ok(None) => Ok(None),
                Ok(Some(job)) => b.sample(&logits, &mut occ, &job).map(Some),
                Err(e) => Err(e),
            }
        };
        // Kept whatever happened, so an error does not lose the counts.
        *self.occ.borrow_mut() = Some((key, occ));
        let Some(id) = id.map_err(js_err)? else { return Ok(None) };
        let id = b.read_async(&id).await.map_err(js_err)?.first().map_or(NO_TOKEN, |x| x.to_bits());
        gen.borrow_mut().accept(tok, id).map_err(js_err)
    }
}

fn no_logits() -> JsValue {
    coded("BAD_INPUT", "this session has no logits to continue from (it is new, reset, or just loaded a state): give a prompt")
}

fn step_event(o: &Object, token: Option<u32>, text: &str, finish: Option<Finish>) -> JsValue {
    let _ = Reflect::set(o, &"token".into(), &token.map(JsValue::from).unwrap_or(JsValue::UNDEFINED));
    let _ = Reflect::set(o, &"text".into(), &text.into());
    let _ = Reflect::set(o, &"done".into(), &finish.is_some().into());
    let why = match finish {
        None => JsValue::NULL,
        Some(Finish::MaxTokens) => "length".into(),
        Some(Finish::EndOfText) => "eos".into(),
        Some(Finish::Stop) => "stop".into(),
        Some(Finish::Cancelled) => "aborted".into(),
    };
    let _ = Reflect::set(o, &"finish".into(), &why);
    o.into()
}

#[derive(Clone)]
enum AnySess {
    Cpu(Rc<Sess<crate::backend::cpu::Cpu>>),
    Gpu(Rc<Sess<crate::backend::gpu::Gpu>>),
}

/// One conversation: a recurrent state and the logits after its last token.
#[wasm_bindgen]
pub struct WasmSession {
    s: AnySess,
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match &$self.s {
            AnySess::Cpu($s) => $e,
            AnySess::Gpu($s) => $e,
        }
    };
}

fn floats(v: Vec<f32>) -> JsValue {
    js_sys::Float32Array::from(v.as_slice()).into()
}

impl WasmSession {
    pub(crate) fn new(engine: Engine) -> Result<WasmSession, JsValue> {
        Ok(WasmSession {
            s: match engine {
                Engine::Cpu(m) => AnySess::Cpu(Rc::new(Sess::new(m)?)),
                Engine::Gpu(m) => AnySess::Gpu(Rc::new(Sess::new(m)?)),
            },
        })
    }
}

/// Generation options, as the JS API names them (unknown names are refused).
#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct JsGenerateOptions {
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    top_k: usize,
    presence_penalty: f32,
    frequency_penalty: f32,
    penalty_decay: f32,
    seed: u64,
    stop: Stop,
    grammar: Option<String>,
    json_schema: Option<serde_json::Value>,
    logit_bias: Option<std::collections::BTreeMap<String, f32>>,
    leading_space: bool,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Stop {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Default for JsGenerateOptions {
    fn default() -> Self {
        let s = SamplerOptions::default();
        JsGenerateOptions {
            max_tokens: 256,
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            penalty_decay: s.penalty_decay,
            seed: s.seed,
            stop: Stop::None,
            grammar: None,
            json_schema: None,
            logit_bias: None,
            leading_space: false,
        }
    }
}

/// The grammar of `grammar` (GBNF) or `jsonSchema` (a schema object, a schema as JSON text, or
/// `true` for any JSON value), allowing one space first with `leadingSpace`.
fn js_grammar(o: &JsGenerateOptions) -> Result<Option<crate::grammar::Grammar>, JsValue> {
    use crate::grammar::{json_schema_to_gbnf, Grammar};
    let text = match (&o.grammar, &o.json_schema) {
        (Some(_), Some(_)) => return Err(coded("BAD_INPUT", "generate: give `grammar` or `jsonSchema`, not both")),
        (Some(g), None) => g.clone(),
        (None, Some(serde_json::Value::String(s))) => {
            let v: serde_json::Value =
                serde_json::from_str(s).map_err(|e| coded("BAD_INPUT", &format!("generate: option `jsonSchema` is text but not JSON: {e}")))?;
            json_schema_to_gbnf(&v).map_err(js_err)?
        }
        (None, Some(v)) => json_schema_to_gbnf(v).map_err(js_err)?,
        (None, None) => return Ok(None),
    };
    let g = if o.leading_space { Grammar::parse_gbnf_after_space(&text) } else { Grammar::parse_gbnf(&text) };
    g.map(Some).map_err(js_err)
}

/// `logitBias` as OpenAI writes it: `{"token id": bias}`.
fn js_bias(o: &JsGenerateOptions) -> Result<Vec<(u32, f32)>, JsValue> {
    let Some(m) = &o.logit_bias else { return Ok(Vec::new()) };
    m.iter()
        .map(|(k, &b)| {
            k.trim().parse::<u32>().map(|id| (id, b)).map_err(|_| coded("BAD_INPUT", &format!("generate: option `logitBias`: `{k}` is not a token id")))
        })
        .collect()
}

/// A generation in progress (see [`WasmSession::step`]).
#[wasm_bindgen]
pub struct WasmGeneration {
    g: Rc<RefCell<Generation>>,
}

#[wasm_bindgen]
impl WasmGeneration {
    /// End the generation at the next step (an aborted request).
    pub fn cancel(&self) {
        self.g.borrow_mut().finish.get_or_insert(Finish::Cancelled);
    }

    /// Tokens sampled so far.
    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> Vec<u32> {
        self.g.borrow().tokens.clone()
    }
}

#[wasm_bindgen]
impl WasmSession {
    /// Feed `ids`; resolves to the logits after the last one (`Float32Array`).
    pub fn forward(&self, ids: Vec<u32>) -> Promise {
        each!(self, s => {
            let s = s.clone();
            future_to_promise(async move { s.forward(ids).await.map(floats) })
        })
    }

    /// Feed `ids` without returning logits (they are kept for a later `generate`).
    pub fn prefill(&self, ids: Vec<u32>) -> Promise {
        each!(self, s => {
            let s = s.clone();
            future_to_promise(async move { s.feed(ids).await.map(|_| JsValue::UNDEFINED) })
        })
    }

    /// True when the session can continue without a prompt.
    #[wasm_bindgen(getter, js_name = hasLogits)]
    pub fn has_logits(&self) -> bool {
        each!(self, s => s.logits.borrow().is_some())
    }

    /// The state as a versioned blob (`Uint8Array`, docs/design.md "State").
    #[wasm_bindgen(js_name = saveState)]
    pub fn save_state(&self) -> Promise {
        each!(self, s => {
            let s = s.clone();
            future_to_promise(async move { s.host_state().await.map(|st| js_sys::Uint8Array::from(st.to_bytes().as_slice()).into()) })
        })
    }

    /// Replace the state with a blob from `saveState` (either backend, same model).
    #[wasm_bindgen(js_name = loadState)]
    pub fn load_state(&self, bytes: &[u8]) -> Result<(), JsValue> {
        each!(self, s => s.load(bytes))
    }

    /// Back to a zero state.
    pub fn reset(&self) -> Result<(), JsValue> {
        each!(self, s => s.reset())
    }

    /// A new session with a copy of this one's state and logits.
    pub fn fork(&self) -> Promise {
        match &self.s {
            AnySess::Cpu(s) => {
                let s = s.clone();
                future_to_promise(async move { Ok(WasmSession { s: AnySess::Cpu(Rc::new(s.fork().await?)) }.into()) })
            }
            AnySess::Gpu(s) => {
                let s = s.clone();
                future_to_promise(async move { Ok(WasmSession { s: AnySess::Gpu(Rc::new(s.fork().await?)) }.into()) })
            }
        }
    }

    /// Start a generation from the current logits with `options` (`maxTokens`, `temperature`,
    /// `topP`, `topK`, `presencePenalty`, `frequencyPenalty`, `penaltyDecay`, `seed`, `stop`).
    pub fn generation(&self, options: JsValue) -> Result<WasmGeneration, JsValue> {
        let o: JsGenerateOptions = parse_options(options, "generate")?;
        let sampler = SamplerOptions {
            temperature: o.temperature,
            top_p: o.top_p,
            top_k: o.top_k,
            presence_penalty: o.presence_penalty,
            frequency_penalty: o.frequency_penalty,
            penalty_decay: o.penalty_decay,
            seed: o.seed,
        };
        let (grammar, logit_bias) = (js_grammar(&o)?, js_bias(&o)?);
        let stop = match o.stop {
            Stop::None => Vec::new(),
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        };
        let vocab = each!(self, s => s.model.config.vocab);
        let tok = each!(self, s => s.model.tokenizer().ok().copied());
        let opts = GenerateOptions { max_tokens: o.max_tokens, sampler, stop, grammar, logit_bias };
        let g = Generation::new(&opts, vocab, tok.as_ref()).map_err(js_err)?;
        Ok(WasmGeneration { g: Rc::new(RefCell::new(g)) })
    }

    /// One generation step: sample from the current logits, feed the token, and resolve to
    /// `{token, text, done, finish}` (`finish`: `length`, `eos`, `stop`, `aborted` or `null`).
    pub fn step(&self, generation: &WasmGeneration) -> Promise {
        let g = generation.g.clone();
        each!(self, s => {
            let s = s.clone();
            future_to_promise(async move { s.step(g).await })
        })
    }
}
