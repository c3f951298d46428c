//! Grammars for constrained decoding: GBNF (llama.cpp's grammar format), JSON schemas and a
//! "any JSON value" mode, compiled to a byte-level recogniser that yields token masks.
//!
//! ```
//! use gander::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
//! use gander::tokenizer::Tokenizer;
//!
//! let g = Grammar::parse_gbnf(r#"root ::= "yes" | "no""#).unwrap();
//! let trie = TokenTrie::new(&Tokenizer::Bytes, 256);
//! let mut m = Matcher::new(&g);
//! let mut mask = TokenMask::new(256);
//! m.allowed(&trie, &mut mask);
//! assert_eq!(mask.iter().collect::<Vec<_>>(), vec![b'n' as u32, b'y' as u32]);
//! assert!(m.accept_bytes(b"ye") && !m.can_end() && m.accept_bytes(b"s") && m.is_complete());
//! ```
//!
//! The pieces: parse.rs (text to syntax tree), compile.rs (to a flat program of byte sets and
//! rule references; utf8.rs turns character classes into byte ranges), stacks.rs and matcher.rs
//! (the recogniser), trie.rs and mask.rs (token masks), json_schema.rs (schemas to GBNF), sql.rs
//! (the SQL of the text-to-SQL demo model, for one table).

mod compile;
mod json_schema;
mod mask;
mod matcher;
mod parse;
mod sql;
mod stacks;
mod trie;
mod utf8;

pub use mask::TokenMask;
pub use matcher::Matcher;
pub use sql::{parse_table, question_spans, sql_gbnf, sql_gbnf_for, sql_grammar, sql_grammar_for, Column, ColumnType, Table};
pub use trie::TokenTrie;

use crate::error::{Error, Result};
use std::sync::Arc;

/// The start rule of [`Grammar::parse_gbnf_after_space`] (a name user grammars do not use).
const SPACED_START: &str = "gander_spaced_root";

/// The longest grammar text accepted (a guard; real grammars are a few kilobytes).
const MAX_GBNF_BYTES: usize = 1 << 20;

/// A compiled grammar: immutable, cheap to clone (shared), used by any number of [`Matcher`]s.
#[derive(Clone, Debug)]
pub struct Grammar {
    program: Arc<compile::Program>,
}

impl Grammar {
    /// Compile a grammar in GBNF, the format of llama.cpp. `root` is the start rule.
    ///
    /// Syntax: `name ::= alternatives` (a rule ends at a line break unless the next line does not
    /// start a new `name ::=`, or inside parentheses), `|`, `( )`, `*`, `+`, `?`, `{m}`, `{m,}`,
    /// `{m,n}`, `{,n}`, `"literals"` and `[classes]` (negated `[^...]`, ranges `a-z`) with the
    /// escapes `\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH` (code points), `.` (any character), and
    /// `# comments`. Errors (`BAD_INPUT`) name the line and column. Left recursion, and repeating
    /// something that can match nothing (`("a"?)*`), are refused.
    pub fn parse_gbnf(text: &str) -> Result<Grammar> {
        Grammar::compile_from(text, "root")
    }

    /// [`Grammar::parse_gbnf`], allowing one space before the text: for a value written right
    /// after `Assistant:` or `SQL:`, where models put a space before what they write.
    pub fn parse_gbnf_after_space(text: &str) -> Result<Grammar> {
        Grammar::compile_from(&format!("{text}\n{SPACED_START} ::= \" \"? root\n"), SPACED_START)
    }

    fn compile_from(text: &str, start: &str) -> Result<Grammar> {
        if text.len() > MAX_GBNF_BYTES {
            return Err(Error::BadInput(format!("grammar: longer than {MAX_GBNF_BYTES} bytes")));
        }
        let rules = parse::parse(text)?;
        Ok(Grammar { program: Arc::new(compile::compile(&rules, start)?) })
    }

    /// The grammar of the JSON values that a JSON schema accepts, written compactly (as
    /// `serde_json::to_string` writes them: no whitespace). See [`json_schema_to_gbnf`] for the
    /// supported keywords.
    pub fn from_json_schema(schema: &serde_json::Value) -> Result<Grammar> {
        // The generated text is valid GBNF; what can fail is its size (very long bounded strings
        // or lists), reported as a schema problem.
        Grammar::parse_gbnf(&json_schema_to_gbnf(schema)?).map_err(|e| Error::BadInput(format!("json schema: {e}")))
    }

    /// Any JSON value, compact ("JSON mode").
    pub fn json() -> Grammar {
        // A constant grammar, tested to compile; the fallback (nothing allowed) is unreachable.
        Grammar::parse_gbnf(&json_schema::any_json_gbnf())
            .unwrap_or_else(|_| Grammar { program: Arc::new(compile::Program { elems: Vec::new(), alts: Vec::new(), sets: Vec::new(), root: 0 }) })
    }
}

/// The GBNF text [`Grammar::from_json_schema`] compiles, for inspection.
///
/// Supported: `type` (object, array, string, integer, number, boolean, null, or a list of them),
/// `properties` (written in the declared order), `required` (the other properties may be left
/// out), `additionalProperties` (only `false`; absent is treated as `false` too, so generation
/// writes only declared properties), `items`, `minItems`, `maxItems`, `minLength` and `maxLength`
/// (in characters), `enum`, `const`, `anyOf` (without sibling keywords), and the annotations
/// `$schema`, `$id`, `$comment`, `title`, `description`, `default`, `examples`. Any other keyword
/// is refused by name with where it is (`BAD_INPUT`), rather than silently ignored.
///
/// Numbers are bounded so that every generated value parses as a finite double: at most 20
/// integer digits, 20 fraction digits and a two-digit exponent.
pub fn json_schema_to_gbnf(schema: &serde_json::Value) -> Result<String> {
    json_schema::to_gbnf(schema)
}

/// The GBNF text of [`Grammar::json`] (any compact JSON value).
pub fn json_gbnf() -> String {
    json_schema::any_json_gbnf()
}

#[cfg(test)]
mod tests;
