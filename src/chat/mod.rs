//! Chat with RWKV-7 G1 models: the authors' chat template ([`format_chat`]), the split of a
//! streamed answer into reasoning and content ([`ReplySplitter`]), and the defaults the authors
//! recommend for chat sampling. The CLI's `gander chat` uses all three; the npm package has the
//! same rules in `pkg-template/chat-format.js`, and both are tested against the hand-written
//! vectors in `tests/data/chat-template.json`.

mod reply;
mod template;

pub use reply::{ReplyDelta, ReplySplitter};
pub use template::{clean, format_chat, Message, Role, Think};

use crate::sampler::SamplerOptions;

/// The text a client sends back for an answer the model wrote as `raw` after `prompt`: a
/// space, the content as [`format_chat`] cleans it, then the turn label the model wrote (if it
/// wrote one). `Some` only when it differs from `prompt + raw` in whitespace alone (the model's
/// spacing was not the template's): the state that read `prompt + raw` then stands for that
/// history too. A dropped think block or an edited answer gives `None`.
pub fn answer_alias(prompt: &str, raw: &str, content: &str) -> Option<String> {
    let tail = TURN_STOPS.iter().filter_map(|s| raw.rfind(s)).max().and_then(|at| raw.get(at..)).unwrap_or_default();
    let alias = format!("{prompt} {}{tail}", clean(content));
    let squash = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    (squash(&alias) == squash(&format!("{prompt}{raw}"))).then_some(alias)
}

/// Where an answer ends besides end-of-text: the model starting a new turn. These strings are
/// never part of the content (generation stops before them).
pub const TURN_STOPS: [&str; 2] = ["\n\nUser:", "\n\nSystem:"];

/// Sampling for G1 chat as the RWKV authors' chat demo sets it (BlinkDL/ChatRWKV
/// `API_DEMO_CHAT.py`: temperature 1.0, top-p 0.3, presence 0.5, frequency 0.5, decay 0.996).
/// The seed is the caller's (random unless one is given).
pub fn chat_sampling(seed: u64) -> SamplerOptions {
    SamplerOptions { temperature: 1.0, top_p: 0.3, top_k: 0, presence_penalty: 0.5, frequency_penalty: 0.5, penalty_decay: 0.996, seed }
}
