//! The generation loop shared by the CLI and the JavaScript API: sample, stream text that never
//! splits a character, stop at end-of-text, at a stop string (text up to it is emitted, the
//! stop string itself is not), at `max_tokens`, or when the caller asks to stop. Optionally
//! under a grammar (`crate::grammar`: only the tokens it allows are sampled; the masks are
//! computed here on the host for every backend) and with a logit bias.
//!
//! Every sampled token is fed back into the state, so after a generation the state holds the
//! whole conversation and the next call can continue from it.

use crate::backend::{Backend, SampleJob, NO_TOKEN};
use crate::error::{Error, Result};
use crate::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
use crate::model::Model;
use crate::sampler::{Sampler, SamplerOptions};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use std::sync::{Arc, Mutex};

/// Options of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampler: SamplerOptions,
    pub stop: Vec<String>,
    /// The output must follow this grammar: only tokens it allows are sampled, and end-of-text
    /// only where it may end (the generation also ends when nothing may follow).
    pub grammar: Option<Grammar>,
    /// Added to the logits of these ids before sampling (OpenAI's `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
}

/// The token trie of a tokenizer and vocabulary size, built once per process (the World
/// vocabulary's takes tens of milliseconds) and shared by every grammar-constrained generation.
fn shared_trie(tok: &Tokenizer, vocab: usize) -> Arc<TokenTrie> {
    static TRIES: Mutex<Vec<(bool, usize, Arc<TokenTrie>)>> = Mutex::new(Vec::new());
    let world = matches!(tok, Tokenizer::World(_));
    let mut tries = TRIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, t)) = tries.iter().find(|(w, v, _)| *w == world && *v == vocab) {
        return t.clone();
    }
    let t = Arc::new(TokenTrie::new(tok, vocab));
    tries.push((world, vocab, t.clone()));
    t
}

/// A grammar being followed: the recogniser's state, the vocabulary's trie, the current mask.
struct Constrained {
    matcher: Matcher,
    trie: Arc<TokenTrie>,
    mask: TokenMask,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    MaxTokens,
    EndOfText,
    Stop,
    Cancelled,
}

/// The result of a generation.
#[derive(Clone, Debug)]
pub struct Generated {
    pub tokens: Vec<u32>,
    pub finish: Finish,
    /// The logits after the last token fed, for continuing later.
    pub logits: Vec<f32>,
}

/// The length of the longest suffix of `text` that is a proper prefix of some stop string:
/// those bytes must be held back until the next token decides.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if text.ends_with(&s[..i]) {
                best = best.max(i);
            }
        }
    }
    best
}

/// One generation as a step machine, so the native loop ([`generate`]) and the browser's async
/// loop (which awaits each GPU forward) share every rule: sample, feed, emit text.
pub struct Generation {
    sampler: Sampler,
    grammar: Option<Constrained>,
    bias: Vec<(u32, f32)>,
    /// The logits plus `bias` (only used with a bias).
    biased: Vec<f32>,
    /// For a device sampler: the ids the tokenizer can produce, as bits (built on first use),
    /// and those ANDed with the grammar's mask.
    can_words: Option<Vec<u32>>,
    mask_words: Vec<u32>,
    decoder: StreamDecoder,
    pending: String,
    stops: Vec<String>,
    max_tokens: usize,
    /// Tokens sampled so far.
    pub tokens: Vec<u32>,
    /// A number no other generation of this process has (device samplers keep per-generation
    /// state under it).
    pub serial: u64,
    /// Set once the generation has ended.
    pub finish: Option<Finish>,
}

impl Generation {
    /// A generation for a model with `vocab` rows; a grammar needs the model's tokenizer `tok`.
    pub fn new(opts: &GenerateOptions, vocab: usize, tok: Option<&Tokenizer>) -> Result<Generation> {
        let grammar = match (&opts.grammar, tok) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::BadInput(format!(
                    "grammar: Gander has no tokenizer for a vocabulary of {vocab} rows, so it cannot tell which tokens a grammar allows"
                )))
            }
            (Some(g), Some(tok)) => Some(Constrained { matcher: Matcher::new(g), trie: shared_trie(tok, vocab), mask: TokenMask::new(vocab) }),
        };
        for &(id, b) in &opts.logit_bias {
            if id as usize >= vocab || !b.is_finite() {
                return Err(Error::BadInput(format!("logitBias: token {id} with bias {b}: ids must be below the vocabulary size {vocab} and biases finite")));
            }
        }
        Ok(Generation {
            sampler: Sampler::new(opts.sampler.clone(), vocab)?,
            grammar,
            bias: opts.logit_bias.clone(),
            biased: Vec::new(),
            can_words: None,
            mask_words: Vec::new(),
            decoder: StreamDecoder::new(),
            pending: String::new(),
            stops: opts.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            max_tokens: opts.max_tokens,
            tokens: Vec::new(),
            finish: None,
            serial: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        })
    }

    /// The next token to feed, sampled from `logits`, or `None` when the generation is over
    /// (`max_tokens` reached, end-of-text sampled, or a stop string seen). Without a tokenizer
    /// (a vocabulary Gander has none for) every id may be sampled and there is no end-of-text.
    pub fn sample(&mut self, tok: Option<&Tokenizer>, logits: &[f32]) -> Result<Option<u32>> {
        if !self.begin()? {
            return Ok(None);
        }
        let logits = if self.bias.is_empty() {
            logits
        } else {
            self.biased.clear();
            self.biased.extend_from_slice(logits);
            for &(id, b) in &self.bias {
                if let Some(l) = self.biased.get_mut(id as usize) {
                    *l += b;
                }
            }
            &self.biased
        };
        let can = |id: u32| tok.is_none_or(|tk| tk.can_sample(id));
        let t = match &self.grammar {
            None => self.sampler.sample(logits, can)?,
            Some(g) => self.sampler.sample(logits, |id| g.mask.contains(id) && can(id))?,
        };
        self.commit(tok, t)
    }

    /// The next token's job for a device sampler ([`Backend::sample`]), or `None` when the
    /// generation is over; give the id it picks to [`Generation::accept`]. The job draws from the
    /// same seeded generator as [`Generation::sample`], and its mask holds the ids the tokenizer
    /// can produce and, under a grammar, the ids the grammar allows.
    pub fn device_job(&mut self, tok: Option<&Tokenizer>, vocab: usize) -> Result<Option<SampleJob<'_>>> {
        if !self.begin()? {
            return Ok(None);
        }
        let can = self.can_words.get_or_insert_with(|| {
            let mut w = vec![0u32; vocab.div_ceil(32)];
            for id in 0..vocab as u32 {
                if tok.is_none_or(|tk| tk.can_sample(id)) {
                    if let Some(x) = w.get_mut(id as usize / 32) {
                        *x |= 1 << (id % 32);
                    }
                }
            }
            w
        });
        let mask: &[u32] = match &self.grammar {
            None => can,
            Some(g) => {
                self.mask_words.clear();
                // The grammar's 64-bit words as two 32-bit ones, low half first.
                let halves = g.mask.words().iter().flat_map(|&w| [w as u32, (w >> 32) as u32]);
                self.mask_words.extend(halves.zip(can.iter()).map(|(a, &b)| a & b));
                &self.mask_words
            }
        };
        // In [0, 1) as f32 too: a draw within 2^-25 of 1 would round up to 1.0.
        let uniform = if self.sampler.options().temperature == 0.0 { 0.0 } else { (self.sampler.next_uniform() as f32).min(1.0 - f32::EPSILON / 2.0) };
        Ok(Some(SampleJob { opts: self.sampler.options(), uniform, mask: Some(mask), bias: &self.bias }))
    }

    /// The id a device sampler picked for [`Generation::device_job`]'s job: checked, then
    /// handled as [`Generation::sample`] handles its own choice.
    pub fn accept(&mut self, tok: Option<&Tokenizer>, t: u32) -> Result<Option<u32>> {
        if t == NO_TOKEN {
            return Err(Error::BadInput("no token can be sampled: every logit is masked or not finite".into()));
        }
        self.commit(tok, t)
    }

    /// Whether another token may be sampled; computes the grammar's mask when it may.
    fn begin(&mut self) -> Result<bool> {
        if self.finish.is_some() {
            return Ok(false);
        }
        if self.tokens.len() >= self.max_tokens {
            self.finish = Some(Finish::MaxTokens);
            return Ok(false);
        }
        if let Some(g) = &mut self.grammar {
            if g.matcher.is_complete() {
                // Nothing may follow: the value is whole.
                self.finish = Some(Finish::EndOfText);
                return Ok(false);
            }
            g.matcher.allowed(&g.trie, &mut g.mask);
            if g.mask.count() == 0 {
                return Err(Error::BadInput("grammar: no token of the vocabulary can continue the output here".into()));
            }
        }
        Ok(true)
    }

    /// The sampled token `t`: end-of-text ends the generation; otherwise the grammar and the
    /// penalties take it and it is the next token to feed.
    fn commit(&mut self, tok: Option<&Tokenizer>, t: u32) -> Result<Option<u32>> {
        if tok.is_some_and(|tk| Some(t) == tk.end_of_text()) {
            self.finish = Some(Finish::EndOfText);
            return Ok(None);
        }
        if let Some(g) = &mut self.grammar {
            if !g.matcher.accept_token(&g.trie, t) {
                return Err(Error::BadInput(format!("grammar: token {t} was allowed by the mask but not accepted (report this as a bug)")));
            }
        }
        self.sampler.accept(t);
        self.tokens.push(t);
        Ok(Some(t))
    }

    /// The text `t` (just sampled and fed) completes: characters are never split, text that may
    /// begin a stop string is held back, and a stop string ends the generation (the text before
    /// it is returned, the stop string is not).
    pub fn text(&mut self, tok: Option<&Tokenizer>, t: u32) -> String {
        self.pending.push_str(&self.decoder.push(tok.and_then(|tk| tk.token_bytes(t)).unwrap_or_default()));
        if let Some(pos) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..pos].to_string();
            self.pending.clear();
            self.finish = Some(Finish::Stop);
            return out;
        }
        let keep = held_back(&self.pending, &self.stops);
        self.pending.drain(..self.pending.len() - keep).collect()
    }

    /// Text still held back when the generation ends other than by a stop string or a cancel.
    pub fn flush(&mut self) -> String {
        match self.finish {
            Some(Finish::Stop) | Some(Finish::Cancelled) => String::new(),
            _ => {
                self.pending.push_str(&self.decoder.finish());
                std::mem::take(&mut self.pending)
            }
        }
    }
}

/// Generate from `state`, whose next-token distribution is `logits`. `on_text(token, text)`
/// receives each token with the text it completes (possibly empty); returning `false` stops.
pub fn generate<B: Backend>(
    model: &Model<B>,
    state: &mut B::State,
    mut logits: Vec<f32>,
    opts: &GenerateOptions,
    mut on_text: impl FnMut(u32, &str) -> bool,
) -> Result<Generated> {
    let tok = model.tokenizer()?;
    let mut g = Generation::new(opts, model.config.vocab, Some(tok))?;
    // Text for a token; false when the generation ends here.
    let mut emit = |g: &mut Generation, t: u32| {
        let text = g.text(Some(tok), t);
        if g.finish == Some(Finish::Stop) {
            on_text(t, &text);
            return false;
        }
        if !on_text(t, &text) {
            g.finish = Some(Finish::Cancelled);
            return false;
        }
        true
    };
    if model.backend.samples_on_device() {
        // The logits stay on the device: each step reads back one id (4 bytes), and the
        // penalties' counts live there too. The last logits are read once at the end.
        let v = model.config.vocab;
        let b = &model.backend;
        let mut dev = b.act_from_host(1, v, &logits)?;
        let mut occ = b.act_from_host(1, v, &vec![0.0; v])?;
        while let Some(job) = g.device_job(Some(tok), v)? {
            let id = b.sample(&dev, &mut occ, &job)?;
            let id = b.read(&id)?.first().map(|x| x.to_bits()).unwrap_or(NO_TOKEN);
            let Some(t) = g.accept(Some(tok), id)? else { break };
            dev = model.forward_device(state, &[t])?;
            if !emit(&mut g, t) {
                break;
            }
        }
        b.read_into(&dev, &mut logits)?;
    } else {
        while let Some(t) = g.sample(Some(tok), &logits)? {
            model.forward_into(state, &[t], &mut logits)?;
            if !emit(&mut g, t) {
                break;
            }
        }
    }
    let rest = g.flush();
    if !rest.is_empty() {
        on_text(g.tokens.last().copied().unwrap_or(0), &rest);
    }
    Ok(Generated { tokens: g.tokens, finish: g.finish.unwrap_or(Finish::MaxTokens), logits })
}

#[cfg(test)]
mod tests {
    use super::held_back;

    #[test]
    fn holds_back_partial_stop_strings() {
        let stops = vec!["\n\nUser:".to_string()];
        assert_eq!(held_back("hello\n", &stops), 1);
        assert_eq!(held_back("hello\n\nUs", &stops), 4);
        assert_eq!(held_back("hello", &stops), 0);
    }
}
