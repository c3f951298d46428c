//! An RWKV-7 model: config from shapes, typed weights, the forward pass, and its identity.

pub mod forward;
pub mod inspect;
pub mod pull;
pub mod weights;

// The config and the fingerprint live below the formats and the backends, which need them too.
pub use crate::config::{self, fingerprint, Config};
use crate::config::{fingerprint_layer, fingerprint_start};
pub use forward::Logits;
pub use weights::{Part, Weights};

use crate::backend::cpu::Cpu;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{gander, TensorSource};
use crate::tokenizer::Tokenizer;
use sha2::{Digest, Sha256};

/// Longest run of tokens sent through one sequence-mode call; longer prompts are split and the
/// state carried across (as the reference's `chunk_len`), which bounds activation memory.
pub const MAX_CHUNK: usize = 256;

/// Convert a checkpoint to a Gander file with matrices in `quant`: the tensors the model uses,
/// its fingerprint in the metadata (`format::gander::write` with what the model defines). `progress(done, total)` is called after each tensor.
pub fn convert(src: &mut dyn TensorSource, quant: gander::Quant, out: &mut dyn std::io::Write, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
    let cfg = Config::from_tensors(src.tensors())?;
    let fp = fingerprint(&cfg, src)?;
    let names = file_order(src, cfg.expected_shapes().into_keys().collect());
    gander::write(src, &names, quant, &crate::config::fingerprint_hex(&fp), out, progress)
}

/// `names` in the order their bytes lie in `src` where it knows ([`TensorSource::order`]), by
/// name otherwise: a converter then reads its source front to back (few round trips over range
/// requests), and the Gander file keeps the source's order.
pub fn file_order(src: &dyn TensorSource, mut names: Vec<String>) -> Vec<String> {
    names.sort_by_cached_key(|n| (src.order(n), n.clone()));
    names
}

/// The fixed pseudo-random prompt of the benchmarks (`gander bench`, the wasm bench, and
/// `bench/official.py`, which repeats this generator): `n` ids in `1..min(vocab, 65530)`, which
/// every tokenizer defines.
pub fn bench_prompt(vocab: usize, n: usize) -> Vec<u32> {
    let hi = vocab.min(65530) as u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (1 + x % (hi - 1).max(1)) as u32
        })
        .collect()
}

/// A loaded model on backend `B`.
pub struct Model<B: Backend = Cpu> {
    pub backend: B,
    pub config: Config,
    pub weights: Weights<B>,
    pub fingerprint: [u8; 32],
    /// How the matrices were stored in the file (`bf16`, `f16`, `f32`, or a Gander quant name).
    pub quant: String,
    tokenizer: Option<Tokenizer>,
}

impl<B: Backend> Model<B> {
    /// Check the tensors, infer the config and prepare the weights on `backend`.
    pub fn load(backend: B, src: &mut dyn TensorSource) -> Result<Self> {
        let mut b = ModelBuilder::new(backend, src)?;
        while b.next_part().is_some() {
            b.load_next(src)?;
        }
        b.finish()
    }

    /// Build a model from its parts (see [`ModelBuilder`]).
    fn assemble(backend: B, config: Config, weights: Weights<B>, fingerprint: [u8; 32], quant: String) -> Self {
        let tokenizer = Tokenizer::for_vocab(config.vocab);
        Model { backend, config, weights, fingerprint, quant, tokenizer }
    }

    /// The tokenizer that goes with this model's vocabulary, if Gander ships one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::Unsupported(format!(
                "no tokenizer for a vocabulary of {} rows (Gander ships the World vocabulary, 65536 rows, and byte-level, 256); pass token ids instead",
                self.config.vocab
            ))
        })
    }

    /// A zero state for a new session.
    pub fn new_state(&self) -> Result<B::State> {
        self.backend.new_state(&self.config, self.fingerprint)
    }

    /// A session state from saved bytes: a Gander state blob saved with this model, or an RWKV
    /// state-tuning file (per-layer `time_state`) for this model's shape ([`State::from_any_bytes`]).
    pub fn state_from_bytes(&self, bytes: &[u8]) -> Result<B::State> {
        let host = crate::State::from_any_bytes(bytes, &self.config, &self.fingerprint)?;
        self.backend.state_from_host(&host)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::BadInput("empty prompt: give at least one token".into()));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.config.vocab) {
            return Err(Error::BadInput(format!("token id {t} is out of range (vocabulary has {} rows)", self.config.vocab)));
        }
        Ok(())
    }

    /// Bytes of weights read per decoded token: every matrix except the embedding (one row).
    pub fn decode_bytes_per_token(&self) -> usize {
        let b = &self.backend;
        let w = &self.weights;
        let mut n = b.matrix_bytes(&w.head);
        for blk in &w.blocks {
            let a = &blk.att;
            n += b.group_bytes(&a.rkv) + b.group_bytes(&a.lora_down);
            for m in [&a.output, &a.w2, &a.a2, &a.g2, &blk.ffn.key, &blk.ffn.value] {
                n += b.matrix_bytes(m);
            }
            if let Some(v) = &a.v {
                n += b.matrix_bytes(&v.v2);
            }
        }
        n
    }

    /// Feed `tokens` (sequence mode, in chunks of [`MAX_CHUNK`]) and return the logits after the
    /// last one (`V` floats).
    pub fn forward(&self, state: &mut B::State, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.forward_into(state, tokens, &mut out)?;
        Ok(out)
    }

    /// [`Model::forward`] into a caller's buffer, so a decode loop reuses one logits buffer.
    pub fn forward_into(&self, state: &mut B::State, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        self.chunked(state, tokens, Logits::Last, |_, act| self.backend.read_into(&act, logits))
    }

    /// Advance the state over `tokens` without computing logits.
    pub fn prefill(&self, state: &mut B::State, tokens: &[u32]) -> Result<()> {
        self.chunked(state, tokens, Logits::None, |_, _| Ok(()))
    }

    /// Feed `tokens` and call `each(t, logits_after_token_t)` for every position, in order.
    pub fn forward_all(&self, state: &mut B::State, tokens: &[u32], mut each: impl FnMut(usize, &[f32]) -> Result<()>) -> Result<()> {
        let v = self.config.vocab;
        self.chunked(state, tokens, Logits::All, |base, act| {
            for (i, row) in self.backend.read(&act)?.chunks_exact(v).enumerate() {
                each(base + i, row)?;
            }
            Ok(())
        })
    }

    /// The one loop over a prompt: checks the tokens and the state, runs `tokens` in chunks of
    /// [`MAX_CHUNK`] (the state carried across), and hands `got(first_token_index, activation)`
    /// the logits each chunk produced: every chunk's with [`Logits::All`], the last chunk's with
    /// [`Logits::Last`], none with [`Logits::None`].
    fn chunked(&self, state: &mut B::State, tokens: &[u32], want: Logits, mut got: impl FnMut(usize, B::Act) -> Result<()>) -> Result<()> {
        self.check_tokens(tokens)?;
        self.backend.state_fits(state, &self.config)?;
        let n_chunks = tokens.len().div_ceil(MAX_CHUNK);
        for (i, chunk) in tokens.chunks(MAX_CHUNK).enumerate() {
            let this = if want == Logits::All || i + 1 == n_chunks { want } else { Logits::None };
            let hs = self.config.head_size;
            if let Some(act) = self.backend.install(|| forward::forward(&self.backend, &self.weights, hs, state, chunk, this))? {
                got(i * MAX_CHUNK, act)?;
            }
        }
        Ok(())
    }
}

/// A model loaded step by step from a source whose tensors may arrive part by part: the
/// browser streams a file from IndexedDB this way ([`crate::format::open_header`]), fetching
/// the tensors each part names ([`Part::prefixes`]) before loading it. [`Model::load`] runs
/// the same steps on a source that already has every tensor. The fingerprint is hashed as the
/// blocks go by (they come in layer order), so the file is read once.
pub struct ModelBuilder<B: Backend> {
    backend: B,
    config: Config,
    quant: String,
    fingerprint: Sha256,
    weights: weights::WeightsBuilder<B>,
    parts: Vec<Part>,
    next: usize,
}

impl<B: Backend> ModelBuilder<B> {
    /// Check the header (names, shapes, dtypes, Gander metadata) and infer the config.
    pub fn new(backend: B, src: &dyn TensorSource) -> Result<Self> {
        let gmeta = gander::read_meta(src)?;
        let config = Config::from_tensors(src.tensors())?;
        let quant = match (&gmeta, src.tensors().get("blocks.0.att.key.weight")) {
            (Some(m), _) => m.quant.get("blocks.0.att.key.weight").cloned().unwrap_or_else(|| "f32".into()),
            (None, Some(info)) => format!("{:?}", info.dtype).to_lowercase(),
            (None, None) => "unknown".into(),
        };
        let parts = Part::all(&config);
        let fingerprint = fingerprint_start(&config);
        Ok(ModelBuilder { backend, config, quant, fingerprint, weights: Default::default(), parts, next: 0 })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next part to load, if any.
    pub fn next_part(&self) -> Option<Part> {
        self.parts.get(self.next).copied()
    }

    /// (parts loaded, parts in all), for progress reports.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.parts.len())
    }

    /// Load the next part from `src`, which must hold its tensors ([`Part::prefixes`]).
    pub fn load_next(&mut self, src: &mut dyn TensorSource) -> Result<()> {
        let part = self.next_part().ok_or_else(|| Error::BadInput("every part is loaded already".into()))?;
        if let Part::Block(l) = part {
            fingerprint_layer(&mut self.fingerprint, src, l)?;
        }
        self.weights.load(&self.backend, src, part)?;
        self.next += 1;
        Ok(())
    }

    /// The loaded model.
    pub fn finish(self) -> Result<Model<B>> {
        let weights = self.weights.finish(&self.config)?;
        let fp = self.fingerprint.finalize().into();
        Ok(Model::assemble(self.backend, self.config, weights, fp, self.quant))
    }
}

impl<B: Backend> Model<B> {
    /// [`Model::forward`] without blocking on a GPU read-back: the browser's path.
    pub async fn forward_async(&self, state: &mut B::State, tokens: &[u32]) -> Result<Vec<f32>> {
        let act = self.forward_device(state, tokens)?;
        self.backend.read_async(&act).await
    }

    /// [`Model::forward`] with the logits left on the device (`[1, V]`), for a sampler there.
    pub fn forward_device(&self, state: &mut B::State, tokens: &[u32]) -> Result<B::Act> {
        let mut last = None;
        self.chunked(state, tokens, Logits::Last, |_, act| {
            last = Some(act);
            Ok(())
        })?;
        last.ok_or_else(|| Error::BadInput("no logits were computed (no tokens were given)".into()))
    }
}

/// Open a checkpoint file (`.pth`, `.safetensors` or Gander file) on the CPU backend.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_path(path: &std::path::Path) -> Result<Model<Cpu>> {
    let mut src = crate::format::open_path(path)?;
    Model::load(Cpu, src.as_mut())
}
