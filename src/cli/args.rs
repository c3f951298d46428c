//! The command line's arguments: one documented enum, which clap turns into `--help`
//! (**contract**, docs/design.md "CLI").

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gander", version, about = "Run, convert and benchmark RWKV-7 (x070) models")]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum BackendArg {
    Cpu,
    Gpu,
}

#[derive(Subcommand)]
pub(super) enum Cmd {
    /// Convert an official .pth/.safetensors (or a Gander file) to a Gander weight file.
    Convert {
        input: PathBuf,
        output: PathBuf,
        /// Matrix format: f32, f16, int8 or q4.
        #[arg(long, default_value = "f16")]
        quant: String,
    },
    /// Print the model's config, layout, quantisation, parameter count, state size and the size per quantisation as JSON.
    Info { model: PathBuf },
    /// Print the token ids of a text as a JSON array.
    Tokenize {
        /// Use this model's tokenizer (byte-level for vocab-256 models); default: World.
        #[arg(long)]
        model: Option<PathBuf>,
        /// The text to tokenize.
        text: Option<String>,
        /// Read the text from a file instead.
        #[arg(long, conflicts_with = "text")]
        text_file: Option<PathBuf>,
    },
    /// Print the logits after a sequence of token ids as JSON.
    Logits {
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated token ids, e.g. 1,2,3.
        #[arg(long)]
        tokens: String,
        /// Print the logits after every position, not only the last.
        #[arg(long)]
        all: bool,
        /// Start from this state instead of zeros: a Gander state file or an RWKV state-tuning
        /// file (.pth/.safetensors with blocks.N.att.time_state).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
    },
    /// Generate text from a prompt; only the generated text goes to stdout.
    Generate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 200)]
        max_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        temperature: f32,
        #[arg(long, default_value_t = 0.85, allow_negative_numbers = true)]
        top_p: f32,
        /// 0 = no limit.
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        presence_penalty: f32,
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        frequency_penalty: f32,
        #[arg(long, default_value_t = 0.996, allow_negative_numbers = true)]
        penalty_decay: f32,
        /// Stop before this string (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// Start from this state instead of zeros: a Gander state file or an RWKV state-tuning
        /// file (.pth/.safetensors with blocks.N.att.time_state).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Write the state after the prompt and the answer to this file (Gander state format).
        #[arg(long)]
        save_state: Option<PathBuf>,
        /// The output must follow this GBNF grammar (llama.cpp's format; `root` starts it).
        #[arg(long)]
        grammar: Option<PathBuf>,
        /// The output must be JSON valid for this JSON schema (a file).
        #[arg(long, conflicts_with = "grammar")]
        json_schema: Option<PathBuf>,
        /// Add BIAS to token ID's logit before sampling, as ID=BIAS (repeatable; -100 bans it).
        #[arg(long, value_name = "ID=BIAS", allow_hyphen_values = true)]
        logit_bias: Vec<String>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
    },
    /// Chat with an RWKV-7 G1 model (the G1 template): interactive in a terminal, or the
    /// conversation from stdin (a JSON message list, or one user turn per line).
    Chat {
        #[arg(long)]
        model: PathBuf,
        /// A system prompt (keep it short, the model authors advise).
        #[arg(long)]
        system: Option<String>,
        /// Let the model reason first (`Assistant: <think`); the reasoning is shown dimmed.
        #[arg(long)]
        think: bool,
        /// An empty think block (`<think>\n</think`): "fake thinking", fast.
        #[arg(long, conflicts_with = "think")]
        fake_think: bool,
        /// Start from this state (a Gander state file or an RWKV state-tuning file).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, default_value_t = 1024)]
        max_tokens: usize,
        /// Default: the G1 chat sampling (temperature 1, top-p 0.3, penalties 0.5/0.5, decay 0.996).
        #[arg(long, allow_negative_numbers = true)]
        temperature: Option<f32>,
        /// Default: a random seed per run.
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON line per turn to stderr: prompt_tokens, cached_tokens, completion_tokens, ttft_ms, finish.
        #[arg(long)]
        stats: bool,
        /// Feed the whole conversation every turn instead of only its new tokens (for comparison).
        #[arg(long)]
        no_cache: bool,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
    },
    /// Read a text once and save the state (e.g. a table line and solved examples for `gander sql`).
    Prime {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        text: Option<String>,
        #[arg(long, conflicts_with = "text")]
        text_file: Option<PathBuf>,
        /// Where to write the state (Gander state format).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
    },
    /// Turn a question about a table into one SQL statement (the text-to-SQL demo model), under
    /// the grammar of the table's own SQL: it never names a column the table lacks.
    Sql {
        #[arg(long)]
        model: PathBuf,
        /// The table, as NAME(col TYPE, ...).
        #[arg(long)]
        table: String,
        /// A state made by `gander prime` from the `Table:` line and solved examples.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Decode without the SQL grammar.
        #[arg(long)]
        no_grammar: bool,
        /// Let text literals be any string; by default the grammar takes them from runs of the
        /// question's words (the values a question filters on are written in it).
        #[arg(long, conflicts_with = "no_grammar")]
        any_value: bool,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        question: String,
    },
    /// Perplexity of a text: exp(mean over i >= 1 of -log p(t_i | t_<i)).
    Perplexity {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        text_file: PathBuf,
        /// Start from this state instead of zeros: a Gander state file or an RWKV state-tuning
        /// file (.pth/.safetensors with blocks.N.att.time_state).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
    },
    /// Measure prefill and decode speed; prints JSON.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Run the measurement this many times and report the best run (shared machines are noisy).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
}
