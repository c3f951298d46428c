//! `gander chat`: a terminal chat with an RWKV-7 G1 model, or a scripted one from stdin.
//!
//! The conversation never re-reads its past: the state holds the text fed so far (`fed`), and a
//! new turn's prompt, [`format_chat`] over the whole history, normally begins with exactly that
//! text, so only the rest is tokenized and fed. When it does not (the model's answer ended in a
//! way the template cleans differently, or `--no-cache`), the state starts over from the initial
//! one and the whole prompt is fed.

use super::initial_state;
use crate::backend::Backend;
use crate::chat::{answer_alias, chat_sampling, format_chat, Message, ReplySplitter, Role, Think, TURN_STOPS};
use crate::error::{Error, Result};
use crate::generate::{generate, Finish, GenerateOptions};
use crate::model::Model;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Options of `gander chat`.
pub(super) struct ChatArgs {
    pub system: Option<String>,
    pub think: Think,
    pub state: Option<PathBuf>,
    pub max_tokens: usize,
    pub temperature: Option<f32>,
    pub seed: Option<u64>,
    pub stats: bool,
    pub no_cache: bool,
}

/// One conversation on one model.
struct Conversation<'m, B: Backend> {
    m: &'m Model<B>,
    args: &'m ChatArgs,
    state: B::State,
    /// The logits after `fed` (none before anything was fed).
    logits: Option<Vec<f32>>,
    /// The text the state holds since the initial state, and its token count.
    fed: String,
    fed_tokens: usize,
    history: Vec<Message>,
    turns: u64,
}

/// What one turn cost and how it ended (printed with `--stats`).
struct TurnStats {
    prompt_tokens: usize,
    cached_tokens: usize,
    completion_tokens: usize,
    ttft_ms: f64,
    finish: Finish,
}

impl<'m, B: Backend> Conversation<'m, B> {
    fn new(m: &'m Model<B>, args: &'m ChatArgs) -> Result<Self> {
        let state = initial_state(m, args.state.as_deref())?;
        let mut c = Conversation { m, args, state, logits: None, fed: String::new(), fed_tokens: 0, history: Vec::new(), turns: 0 };
        c.reset_history();
        Ok(c)
    }

    fn reset_history(&mut self) {
        self.history.clear();
        if let Some(s) = &self.args.system {
            self.history.push(Message::new(Role::System, s.clone()));
        }
    }

    /// Back to the initial state (zeros, or `--state`) with an empty history.
    fn reset(&mut self) -> Result<()> {
        self.state = initial_state(self.m, self.args.state.as_deref())?;
        self.logits = None;
        self.fed.clear();
        self.fed_tokens = 0;
        self.reset_history();
        Ok(())
    }

    /// Answer the history (which ends with a user message), streaming reasoning and content
    /// through `show`; `stop` ends the answer early (Ctrl+C).
    fn answer(&mut self, stop: &AtomicBool, show: &mut dyn FnMut(&str, &str) -> std::io::Result<()>) -> Result<TurnStats> {
        let tok = *self.m.tokenizer()?;
        let prompt = format_chat(&self.history, self.args.think)?;
        let t0 = Instant::now();
        let reuse = !self.args.no_cache && !self.fed.is_empty() && prompt.starts_with(&self.fed);
        if !reuse && !self.fed.is_empty() {
            self.state = initial_state(self.m, self.args.state.as_deref())?;
            self.logits = None;
            self.fed.clear();
            self.fed_tokens = 0;
        }
        let cached = self.fed_tokens;
        let new_text = prompt.get(self.fed.len()..).unwrap_or_default();
        let ids = tok.encode(new_text);
        let logits = match (ids.is_empty(), self.logits.take()) {
            (true, Some(l)) => l,
            _ => self.m.forward(&mut self.state, &ids)?,
        };
        self.turns += 1;
        let sampler = chat_sampling(self.args.seed.map(|s| s.wrapping_add(self.turns)).unwrap_or_else(random_seed));
        let sampler = match self.args.temperature {
            Some(t) => crate::sampler::SamplerOptions { temperature: t, ..sampler },
            None => sampler,
        };
        let opts =
            GenerateOptions { max_tokens: self.args.max_tokens, sampler, stop: TURN_STOPS.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let mut split = ReplySplitter::new(self.args.think);
        let (mut content, mut ttft, mut io_err) = (String::new(), None, None);
        let g = generate(self.m, &mut self.state, logits, &opts, |_, text| {
            ttft.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
            let d = split.push(text);
            content.push_str(&d.content);
            if let Err(e) = show(&d.reasoning, &d.content) {
                io_err = Some(e);
                return false;
            }
            !stop.load(Ordering::SeqCst)
        })?;
        let d = split.finish();
        content.push_str(&d.content);
        show(&d.reasoning, &d.content).map_err(|e| Error::io("stdout", e))?;
        if let Some(e) = io_err {
            return Err(Error::io("stdout", e));
        }
        // The state now holds the prompt and every sampled token (a stop string's too).
        let raw = tok.decode(&g.tokens);
        self.fed = answer_alias(&prompt, &raw, &content).unwrap_or_else(|| format!("{prompt}{raw}"));
        self.fed_tokens = cached + ids.len() + g.tokens.len();
        self.logits = Some(g.logits);
        self.history.push(Message::new(Role::Assistant, content));
        Ok(TurnStats {
            prompt_tokens: cached + ids.len(),
            cached_tokens: cached,
            completion_tokens: g.tokens.len(),
            ttft_ms: ttft.unwrap_or_else(|| t0.elapsed().as_secs_f64() * 1e3),
            finish: g.finish,
        })
    }

    fn save(&self, path: &Path) -> Result<()> {
        let host = self.m.backend.state_to_host(&self.state)?;
        std::fs::write(path, host.to_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Continue from a saved state (or a state-tuning file) with an empty history.
    fn load(&mut self, path: &Path) -> Result<()> {
        self.state = initial_state(self.m, Some(path))?;
        self.logits = None;
        self.fed.clear();
        self.fed_tokens = 0;
        self.reset_history();
        Ok(())
    }
}

/// A seed from the clock and the process id: different on every run unless `--seed` is given.
fn random_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

fn finish_name(f: Finish) -> &'static str {
    match f {
        Finish::MaxTokens => "length",
        Finish::EndOfText | Finish::Stop => "stop",
        Finish::Cancelled => "abort",
    }
}

fn print_stats(turn: u64, s: &TurnStats) {
    eprintln!(
        "{}",
        serde_json::json!({
            "turn": turn, "prompt_tokens": s.prompt_tokens, "cached_tokens": s.cached_tokens,
            "completion_tokens": s.completion_tokens, "ttft_ms": s.ttft_ms, "finish": finish_name(s.finish),
        })
    );
}

/// Run `gander chat` on a loaded model.
pub(super) fn run<B: Backend>(m: Model<B>, args: &ChatArgs) -> Result<()> {
    let mut conv = Conversation::new(&m, args)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        interactive(&mut conv)
    } else {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdin.lock(), &mut text).map_err(|e| Error::io("stdin", e))?;
        scripted(&mut conv, &text)
    }
}

/// The conversation from stdin: a JSON list of OpenAI-style messages (or `{"messages": [...]}`),
/// answered once; otherwise every non-empty line is a user turn (or a `/command`), answered in turn.
fn scripted<B: Backend>(conv: &mut Conversation<'_, B>, text: &str) -> Result<()> {
    let never = AtomicBool::new(false);
    let mut out = std::io::stdout().lock();
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        conv.history = parse_messages(trimmed)?;
        let s = conv.answer(&never, &mut |_, c| out.write_all(c.as_bytes()).and_then(|_| out.flush()))?;
        writeln!(out).map_err(|e| Error::io("stdout", e))?;
        if conv.args.stats {
            print_stats(conv.turns, &s);
        }
        return Ok(());
    }
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('/') {
            if !command(conv, line)? {
                break;
            }
            continue;
        }
        conv.history.push(Message::new(Role::User, line));
        let s = conv.answer(&never, &mut |_, c| out.write_all(c.as_bytes()).and_then(|_| out.flush()))?;
        writeln!(out).map_err(|e| Error::io("stdout", e))?;
        if conv.args.stats {
            print_stats(conv.turns, &s);
        }
    }
    Ok(())
}

fn parse_messages(json: &str) -> Result<Vec<Message>> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::BadInput(format!("stdin: not a JSON message list: {e}")))?;
    let list = v.get("messages").unwrap_or(&v);
    let Some(items) = list.as_array() else {
        return Err(Error::BadInput("stdin: expected a JSON array of {role, content} messages".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(|r| r.as_str()).ok_or_else(|| Error::BadInput(format!("stdin: message {i} has no string `role`")))?;
            let content = m.get("content").and_then(|c| c.as_str()).ok_or_else(|| Error::BadInput(format!("stdin: message {i} has no string `content`")))?;
            Ok(Message::new(Role::parse(role)?, content))
        })
        .collect()
}

/// A `/command`; false for `/quit`.
fn command<B: Backend>(conv: &mut Conversation<'_, B>, line: &str) -> Result<bool> {
    let (cmd, arg) = line.split_once(' ').map(|(c, a)| (c, a.trim())).unwrap_or((line, ""));
    match (cmd, arg) {
        ("/quit" | "/exit", _) => return Ok(false),
        ("/reset", _) => {
            conv.reset()?;
            eprintln!("[conversation reset]");
        }
        ("/save", f) if !f.is_empty() => {
            conv.save(Path::new(f))?;
            eprintln!("[state saved to {f}]");
        }
        ("/load", f) if !f.is_empty() => {
            conv.load(Path::new(f))?;
            eprintln!("[state loaded from {f}; the conversation continues from it]");
        }
        _ => eprintln!("commands: /reset, /save FILE, /load FILE, /quit"),
    }
    Ok(true)
}

/// The terminal chat: a prompt per turn, answers streamed (reasoning dimmed), Ctrl+C stops the
/// answer and keeps what was said, Ctrl+D or /quit leaves.
fn interactive<B: Backend>(conv: &mut Conversation<'_, B>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let generating = Arc::new(AtomicBool::new(false));
    {
        let (stop, generating) = (stop.clone(), generating.clone());
        let handler = ctrlc::set_handler(move || {
            if generating.load(Ordering::SeqCst) {
                stop.store(true, Ordering::SeqCst);
            } else {
                eprint!("\n(Ctrl+D or /quit to leave)\n> ");
            }
        });
        if let Err(e) = handler {
            eprintln!("warning: Ctrl+C will end the program ({e})");
        }
    }
    eprintln!("gander chat ({} backend). /reset, /save FILE, /load FILE, /quit; Ctrl+C stops an answer.", conv.m.backend.name());
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    loop {
        print!("> ");
        out.flush().map_err(|e| Error::io("stdout", e))?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).map_err(|e| Error::io("stdin", e))? == 0 {
            println!();
            return Ok(());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            if !command(conv, line)? {
                return Ok(());
            }
            continue;
        }
        conv.history.push(Message::new(Role::User, line));
        stop.store(false, Ordering::SeqCst);
        generating.store(true, Ordering::SeqCst);
        let mut dim = false;
        let r = conv.answer(&stop, &mut |r, c| {
            if !r.is_empty() {
                if !dim {
                    out.write_all(b"\x1b[2m")?;
                    dim = true;
                }
                out.write_all(r.as_bytes())?;
            }
            if !c.is_empty() {
                if dim {
                    out.write_all(b"\x1b[0m\n")?;
                    dim = false;
                }
                out.write_all(c.as_bytes())?;
            }
            out.flush()
        });
        generating.store(false, Ordering::SeqCst);
        if dim {
            let _ = out.write_all(b"\x1b[0m");
        }
        let s = r?;
        println!();
        if s.finish == Finish::Cancelled {
            eprintln!("[stopped]");
        }
        if conv.args.stats {
            print_stats(conv.turns, &s);
        }
    }
}
