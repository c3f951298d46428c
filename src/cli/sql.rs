//! `gander prime` and `gander sql`: the text-to-SQL workflow of the demo model (tools/sql/) as
//! commands. `prime` reads a text once and saves the state; `sql` asks one question, greedily,
//! under the grammar of the table's own SQL unless `--no-grammar`: by default with text literals
//! taken from runs of the question's words (`grammar::sql_grammar_for`), with `--any-value` any
//! string (`grammar::sql_grammar`).
//!
//! Prompt format (**contract**): without a state, `Table: NAME(cols)\nQuestion: Q\nSQL:`; with a
//! state primed from `Table: NAME(cols)\n` and solved examples (`Question: …\nSQL: …;\n` each),
//! only `Question: Q\nSQL:` is fed, and `--table` still gives the grammar its columns.

use super::initial_state;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::generate::{generate, GenerateOptions};
use crate::grammar::{parse_table, sql_grammar, sql_grammar_for};
use crate::model::Model;
use crate::sampler::SamplerOptions;
use std::path::Path;

/// The longest answer: the model's statements are one line of a few dozen tokens.
const SQL_MAX_TOKENS: usize = 80;

/// Feed `text` and write the state to `out`.
pub(super) fn prime<B: Backend>(m: &Model<B>, text: &str, out: &Path) -> Result<()> {
    if text.is_empty() {
        return Err(Error::BadInput("prime: the text is empty".into()));
    }
    let ids = m.tokenizer()?.encode(text);
    let mut state = m.new_state()?;
    m.prefill(&mut state, &ids)?;
    let host = m.backend.state_to_host(&state)?;
    std::fs::write(out, host.to_bytes()).map_err(|e| Error::io(out, e))?;
    eprintln!("[gander] primed with {} tokens; state written to {}", ids.len(), out.display());
    Ok(())
}

/// How `gander sql` constrains the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SqlGrammar {
    /// No grammar (`--no-grammar`).
    None,
    /// The table's grammar, any text literal (`--any-value`).
    AnyValue,
    /// The table's grammar, text literals from the question's words (the default).
    QuestionValues,
}

/// One question to SQL; the statement (one line) on stdout.
pub(super) fn sql<B: Backend>(m: &Model<B>, table: &str, question: &str, state: Option<&Path>, grammar: SqlGrammar) -> Result<()> {
    let t = parse_table(table)?;
    let question = question.trim();
    if question.is_empty() || question.contains('\n') {
        return Err(Error::BadInput("sql: give the question as one non-empty line".into()));
    }
    let prompt = match state {
        Some(_) => format!("Question: {question}\nSQL:"),
        None => format!("Table: {}\nQuestion: {question}\nSQL:", t.schema()),
    };
    let mut st = initial_state(m, state)?;
    let logits = m.forward(&mut st, &m.tokenizer()?.encode(&prompt))?;
    let opts = GenerateOptions {
        max_tokens: SQL_MAX_TOKENS,
        sampler: SamplerOptions { temperature: 0.0, ..Default::default() },
        stop: vec!["\n".into()],
        grammar: match grammar {
            SqlGrammar::None => None,
            SqlGrammar::AnyValue => Some(sql_grammar(table)?),
            SqlGrammar::QuestionValues => Some(sql_grammar_for(table, question)?),
        },
        logit_bias: Vec::new(),
    };
    let mut out = String::new();
    generate(m, &mut st, logits, &opts, |_, text| {
        out.push_str(text);
        true
    })?;
    println!("{}", out.trim());
    Ok(())
}
