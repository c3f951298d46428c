//! Splitting a streamed answer into reasoning (the text inside `<think>…</think>`) and content.
//! Text arrives in pieces that may cut a tag in two, so the splitter holds back whatever could
//! still turn out to be the start of a tag, and trailing whitespace (leading and trailing
//! whitespace are not part of either field, as the template trims every turn).

use super::Think;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The prompt ended with `<think`: the model's first `>` closes the tag.
    Opening,
    /// The prompt ended with `<think>\n</think`: a `>` closes the empty block.
    ClosingFake,
    /// No think block in the prompt: the model may still open one.
    Start,
    Reasoning,
    Content,
}

/// What one piece of text adds to each field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyDelta {
    pub reasoning: String,
    pub content: String,
}

/// The reasoning/content splitter of one answer.
#[derive(Clone, Debug)]
pub struct ReplySplitter {
    mode: Mode,
    pending: String,
    reasoning_started: bool,
    content_started: bool,
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_tag(s: &str, tag: &str) -> usize {
    (1..tag.len()).rev().find(|&n| tag.get(..n).is_some_and(|p| s.ends_with(p))).unwrap_or(0)
}

impl ReplySplitter {
    pub fn new(think: Think) -> ReplySplitter {
        let mode = match think {
            Think::Off => Mode::Start,
            Think::On => Mode::Opening,
            Think::Fake => Mode::ClosingFake,
        };
        ReplySplitter { mode, pending: String::new(), reasoning_started: false, content_started: false }
    }

    /// Feed the next piece of the answer's text.
    pub fn push(&mut self, text: &str) -> ReplyDelta {
        self.pending.push_str(text);
        let mut out = ReplyDelta::default();
        self.advance(&mut out, false);
        out
    }

    /// The answer ended: release what was held back (trailing whitespace is dropped).
    pub fn finish(&mut self) -> ReplyDelta {
        let mut out = ReplyDelta::default();
        self.advance(&mut out, true);
        out
    }

    fn advance(&mut self, out: &mut ReplyDelta, end: bool) {
        loop {
            match self.mode {
                Mode::Opening | Mode::ClosingFake => {
                    if self.pending.is_empty() && !end {
                        return;
                    }
                    if let Some(rest) = self.pending.strip_prefix('>') {
                        self.pending = rest.to_string();
                    }
                    self.mode = if self.mode == Mode::Opening { Mode::Reasoning } else { Mode::Content };
                }
                Mode::Start => {
                    let head = self.pending.trim_start();
                    if let Some(rest) = head.strip_prefix(OPEN) {
                        self.pending = rest.to_string();
                        self.mode = Mode::Reasoning;
                    } else if !end && (head.is_empty() || OPEN.starts_with(head)) {
                        return;
                    } else {
                        self.mode = Mode::Content;
                    }
                }
                Mode::Reasoning => {
                    if let Some(at) = self.pending.find(CLOSE) {
                        let before = self.pending.get(..at).unwrap_or_default().trim_end().to_string();
                        self.emit_reasoning(out, &before);
                        self.pending = self.pending.get(at + CLOSE.len()..).unwrap_or_default().to_string();
                        self.mode = Mode::Content;
                        continue;
                    }
                    let keep = if end { self.pending.len() } else { self.pending.len() - partial_tag(&self.pending, CLOSE) };
                    let ready = self.pending.get(..keep).unwrap_or_default();
                    let text = ready.trim_end().to_string();
                    self.emit_reasoning(out, &text);
                    self.pending = if end { String::new() } else { self.pending.get(text.len()..).unwrap_or_default().to_string() };
                    // `text` may have lost leading whitespace to emit_reasoning, never trailing
                    // text: what stays is the held-back whitespace and partial tag.
                    return;
                }
                Mode::Content => {
                    let text = self.pending.trim_end().to_string();
                    self.emit_content(out, &text);
                    self.pending = if end { String::new() } else { self.pending.get(text.len()..).unwrap_or_default().to_string() };
                    return;
                }
            }
        }
    }

    fn emit_reasoning(&mut self, out: &mut ReplyDelta, text: &str) {
        let text = if self.reasoning_started { text } else { text.trim_start() };
        if !text.is_empty() {
            self.reasoning_started = true;
            out.reasoning.push_str(text);
        }
    }

    fn emit_content(&mut self, out: &mut ReplyDelta, text: &str) {
        let text = if self.content_started { text } else { text.trim_start() };
        if !text.is_empty() {
            self.content_started = true;
            out.content.push_str(text);
        }
    }
}
