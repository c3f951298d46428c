//! The generation loop shared by the CLI and the JavaScript API: sample, stream text that never
//! splits a character, stop at end-of-text, at a stop string (text up to it is emitted, the
//! stop string itself is not), at `max_tokens`, or when the caller asks to stop.
//!
//! Every sampled token is fed back into the state, so after a generation the state holds the
//! whole conversation and the next call can continue from it.

use crate::backend::Backend;
use crate::error::Result;
use crate::model::Model;
use crate::sampler::{Sampler, SamplerOptions};
use crate::tokenizer::StreamDecoder;

/// Options of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampler: SamplerOptions,
    pub stop: Vec<String>,
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
    let mut sampler = Sampler::new(opts.sampler.clone(), model.config.vocab)?;
    let mut decoder = StreamDecoder::new();
    let mut pending = String::new();
    let mut tokens = Vec::new();
    let stops: Vec<String> = opts.stop.iter().filter(|s| !s.is_empty()).cloned().collect();
    let mut finish = Finish::MaxTokens;
    while tokens.len() < opts.max_tokens {
        let t = sampler.sample(&logits, |id| tok.can_sample(id))?;
        if Some(t) == tok.end_of_text() {
            finish = Finish::EndOfText;
            break;
        }
        sampler.accept(t);
        tokens.push(t);
        model.forward_into(state, &[t], &mut logits)?;
        pending.push_str(&decoder.push(tok.token_bytes(t).unwrap_or_default()));
        if let Some(pos) = stops.iter().filter_map(|s| pending.find(s.as_str())).min() {
            on_text(t, &pending[..pos]);
            finish = Finish::Stop;
            pending.clear();
            break;
        }
        let keep = held_back(&pending, &stops);
        let emit: String = pending.drain(..pending.len() - keep).collect();
        if !on_text(t, &emit) {
            finish = Finish::Cancelled;
            break;
        }
    }
    if finish != Finish::Stop && finish != Finish::Cancelled {
        pending.push_str(&decoder.finish());
        if !pending.is_empty() {
            on_text(tokens.last().copied().unwrap_or(0), &pending);
        }
    }
    Ok(Generated { tokens, finish, logits })
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
