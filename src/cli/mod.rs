//! The native `gander` command line (**contract**, docs/design.md "CLI").
//!
//! Every failure prints one line, `error: ...`, to stderr and exits non-zero; stdout carries
//! only the command's result (JSON, or the generated text), so it can be piped.
//!
//! `args.rs` holds the argument definitions; this file the dispatch and the small commands;
//! commands with more to them have their own file: `chat.rs`, `sql.rs` (`prime`, `sql`),
//! `bench.rs`, `files.rs` (`convert`, `info`).

use crate::backend::gpu::Gpu;
use crate::backend::Backend;
use crate::chat::Think;
use crate::error::{Error, Result};
use crate::format;
use crate::generate::{generate, GenerateOptions};
use crate::model::{self, Config, Model};
use crate::sampler::SamplerOptions;
use crate::tokenizer::Tokenizer;
use args::{BackendArg, Cli, Cmd};
use clap::Parser;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Parse command-line arguments without running anything (for the fuzz target): every
/// argument vector gives a parsed command or an error, and the numbers inside `--tokens` are
/// checked too.
pub fn check_args<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> std::result::Result<(), String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    if let Cmd::Logits { tokens, .. } = &cli.cmd {
        parse_tokens(tokens).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Entry point of the binary: parse, run, map errors to one line and an exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
                let _ = e.print();
                return std::process::ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            eprintln!("error: {first} (see `gander --help`)");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli.cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_gpu(path: &Path) -> Result<Model<Gpu>> {
    let gpu = Gpu::new()?;
    let mut src = format::open_path(path)?;
    Model::load(gpu, src.as_mut())
}

/// Run `$body` with `$m` bound to the model on the chosen backend (the body is compiled once
/// per backend).
macro_rules! with_model {
    ($path:expr, $backend:expr, |$m:ident| $body:block) => {
        match $backend {
            BackendArg::Cpu => {
                let $m = model::load_path($path)?;
                $body
            }
            BackendArg::Gpu => {
                let $m = load_gpu($path)?;
                $body
            }
        }
    };
}

mod args;
mod bench;
mod chat;
mod files;
mod sql;

/// The state a command starts from: zeros, or the file given with `--state`.
fn initial_state<B: Backend>(m: &Model<B>, path: Option<&Path>) -> Result<B::State> {
    let Some(path) = path else { return m.new_state() };
    // A state or state-tuning file is at most the state's size in f32 plus a container's
    // headers; refuse anything far larger before reading it into memory.
    let cap = 2 * crate::State::byte_len_for(&m.config) as u64 + (1 << 20);
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > cap {
        return Err(Error::StateMismatch(format!(
            "{}: {len} bytes is far more than a state of this model ({} bytes); is it a state file?",
            path.display(),
            crate::State::byte_len_for(&m.config)
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    m.state_from_bytes(&bytes).map_err(|e| match e {
        Error::StateMismatch(msg) => Error::StateMismatch(format!("{}: {msg}", path.display())),
        Error::BadFile(msg) => Error::BadFile(format!("{}: {msg}", path.display())),
        other => other,
    })
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| Error::BadInput(format!("{}: not UTF-8 text", path.display())))
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v).map_err(|e| Error::BadInput(e.to_string()))?;
    writeln!(out).map_err(|e| Error::io("stdout", e))
}

fn parse_tokens(s: &str) -> Result<Vec<u32>> {
    let ids: Result<Vec<u32>> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u32>().map_err(|_| Error::BadInput(format!("--tokens: `{t}` is not a token id (expected e.g. 1,2,3)"))))
        .collect();
    let ids = ids?;
    if ids.is_empty() {
        return Err(Error::BadInput("--tokens: empty prompt: give at least one token id".into()));
    }
    Ok(ids)
}

/// `--logit-bias ID=BIAS`.
fn parse_bias(s: &str) -> Result<(u32, f32)> {
    let bad = || Error::BadInput(format!("--logit-bias: `{s}` is not ID=BIAS (e.g. 0=-100)"));
    let (id, b) = s.split_once('=').ok_or_else(bad)?;
    let b: f32 = b.trim().parse().map_err(|_| bad())?;
    if !b.is_finite() {
        return Err(bad());
    }
    Ok((id.trim().parse().map_err(|_| bad())?, b))
}

/// A grammar or schema error, with the file it came from.
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::BadInput(m) => Error::BadInput(format!("{}: {m}", path.display())),
        other => other,
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Convert { input, output, quant } => files::convert(&input, &output, &quant),
        Cmd::Info { model } => files::info(&model),
        Cmd::Tokenize { model, text, text_file } => {
            let text = match (text, text_file) {
                (Some(t), None) => t,
                (None, Some(f)) => read_text(&f)?,
                _ => return Err(Error::BadInput("tokenize: give TEXT or --text-file FILE".into())),
            };
            let tok = match model {
                None => Tokenizer::world(),
                Some(p) => {
                    let src = format::open_path(&p)?;
                    let cfg = Config::from_tensors(src.tensors())?;
                    Tokenizer::for_vocab(cfg.vocab).ok_or_else(|| Error::Unsupported(format!("no tokenizer for a vocabulary of {} rows", cfg.vocab)))?
                }
            };
            print_json(&serde_json::json!(tok.encode(&text)))
        }
        Cmd::Logits { model, tokens, all, state, backend } => {
            let ids = parse_tokens(&tokens)?;
            with_model!(&model, backend, |m| {
                let mut state = initial_state(&m, state.as_deref())?;
                let rows: Vec<Vec<f32>> = if all {
                    let mut rows = Vec::new();
                    m.forward_all(&mut state, &ids, |_, l| {
                        rows.push(l.to_vec());
                        Ok(())
                    })?;
                    rows
                } else {
                    vec![m.forward(&mut state, &ids)?]
                };
                print_json(&serde_json::json!({ "logits": rows }))
            })
        }
        Cmd::Generate {
            model,
            prompt,
            max_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            presence_penalty,
            frequency_penalty,
            penalty_decay,
            stop,
            state,
            save_state,
            grammar,
            json_schema,
            logit_bias,
            backend,
        } => {
            let sampler = SamplerOptions { temperature, top_p, top_k, presence_penalty, frequency_penalty, penalty_decay, seed };
            sampler.validate()?;
            let grammar = match (grammar, json_schema) {
                (Some(f), _) => Some(crate::grammar::Grammar::parse_gbnf(&read_text(&f)?).map_err(|e| in_file(&f, e))?),
                (None, Some(f)) => {
                    let v: serde_json::Value = serde_json::from_str(&read_text(&f)?).map_err(|e| Error::BadInput(format!("{}: not JSON: {e}", f.display())))?;
                    Some(crate::grammar::Grammar::from_json_schema(&v).map_err(|e| in_file(&f, e))?)
                }
                (None, None) => None,
            };
            let logit_bias = logit_bias.iter().map(|b| parse_bias(b)).collect::<Result<Vec<_>>>()?;
            if prompt.is_empty() {
                return Err(Error::BadInput("--prompt: empty prompt; give some text to continue".into()));
            }
            with_model!(&model, backend, |m| {
                let ids = m.tokenizer()?.encode(&prompt);
                let mut state = initial_state(&m, state.as_deref())?;
                let t0 = Instant::now();
                let logits = m.forward(&mut state, &ids)?;
                let prefill_s = t0.elapsed().as_secs_f64();
                let t1 = Instant::now();
                let mut out = std::io::stdout().lock();
                let mut write_err = None;
                let g = generate(
                    &m,
                    &mut state,
                    logits,
                    &GenerateOptions { max_tokens, sampler, stop, grammar: grammar.clone(), logit_bias: logit_bias.clone() },
                    |_, text| {
                        if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                            write_err = Some(e);
                            return false;
                        }
                        true
                    },
                )?;
                if let Some(e) = write_err {
                    return Err(Error::io("stdout", e));
                }
                if let Some(path) = &save_state {
                    let host = m.backend.state_to_host(&state)?;
                    std::fs::write(path, host.to_bytes()).map_err(|e| Error::io(path, e))?;
                }
                let decode_s = t1.elapsed().as_secs_f64();
                eprintln!(
                    "\n[gander] {} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s ({}, finish: {:?})",
                    ids.len(),
                    ids.len() as f64 / prefill_s.max(1e-9),
                    g.tokens.len(),
                    g.tokens.len() as f64 / decode_s.max(1e-9),
                    m.backend.name(),
                    g.finish
                );
                Ok(())
            })
        }
        Cmd::Chat { model, system, think, fake_think, state, max_tokens, temperature, seed, stats, no_cache, backend } => {
            if let Some(t) = temperature {
                crate::sampler::SamplerOptions { temperature: t, ..Default::default() }.validate()?;
            }
            let think = if think {
                Think::On
            } else if fake_think {
                Think::Fake
            } else {
                Think::Off
            };
            let args = chat::ChatArgs { system, think, state, max_tokens, temperature, seed, stats, no_cache };
            with_model!(&model, backend, |m| { chat::run(m, &args) })
        }
        Cmd::Prime { model, text, text_file, out, backend } => {
            let text = match (text, text_file) {
                (Some(t), None) => t,
                (None, Some(f)) => read_text(&f)?,
                _ => return Err(Error::BadInput("prime: give --text TEXT or --text-file FILE".into())),
            };
            with_model!(&model, backend, |m| { sql::prime(&m, &text, &out) })
        }
        Cmd::Sql { model, table, state, no_grammar, any_value, backend, question } => {
            let grammar = match (no_grammar, any_value) {
                (true, _) => sql::SqlGrammar::None,
                (false, true) => sql::SqlGrammar::AnyValue,
                (false, false) => sql::SqlGrammar::QuestionValues,
            };
            with_model!(&model, backend, |m| { sql::sql(&m, &table, &question, state.as_deref(), grammar) })
        }
        Cmd::Perplexity { model, text_file, state, backend } => {
            let text = read_text(&text_file)?;
            with_model!(&model, backend, |m| {
                let ids = m.tokenizer()?.encode(&text);
                // Each position predicts the next token: inputs are all but the last, targets all but the first.
                let (Some((_, inputs)), Some((_, targets))) = (ids.split_last(), ids.split_first()) else {
                    return Err(Error::BadInput(format!("{}: perplexity needs a text of at least 2 tokens", text_file.display())));
                };
                if inputs.is_empty() {
                    return Err(Error::BadInput(format!("{}: perplexity needs a text of at least 2 tokens", text_file.display())));
                }
                let mut state = initial_state(&m, state.as_deref())?;
                let mut nll = 0f64;
                m.forward_all(&mut state, inputs, |i, logits| {
                    let target = targets.get(i).copied().unwrap_or(0);
                    nll -= log_softmax_at(logits, target as usize);
                    Ok(())
                })?;
                let scored = ids.len() - 1;
                print_json(&serde_json::json!({ "tokens": ids.len(), "scored": scored, "ppl": (nll / scored as f64).exp() }))
            })
        }
        Cmd::Bench { model, backend, prompt_tokens, gen_tokens, repeat } => {
            if prompt_tokens == 0 || repeat == 0 {
                return Err(Error::BadInput("--prompt-tokens and --repeat must be at least 1".into()));
            }
            let t_load = Instant::now();
            with_model!(&model, backend, |m| { bench::bench(&model, m, t_load, prompt_tokens, gen_tokens, repeat) })
        }
    }
}

/// `log softmax(logits)[target]`, in f64.
fn log_softmax_at(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln() + max;
    logits.get(target).map(|&l| l as f64 - lse).unwrap_or(f64::NEG_INFINITY)
}
