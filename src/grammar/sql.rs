//! A GBNF grammar for the SQL that the text-to-SQL demo model writes (tools/sql/), built from the
//! table line of its prompt (`Table: employees(name TEXT, city TEXT, salary INTEGER)`), so that
//! constrained decoding can only name that table and its own columns, and compares each column
//! with a literal of the column's type.
//!
//! The language is the generator's (tools/sql/sqlgen.py), slightly widened where the widening is
//! still plain single-table SQL a question could need: one `SELECT` with `*`, `DISTINCT`
//! columns, or columns and aggregates (`COUNT(*)`, `COUNT(col)`, `COUNT(DISTINCT col)`, and
//! `SUM`/`AVG`/`MIN`/`MAX` over numeric columns only, as the generator does); `FROM` the table;
//! an optional `WHERE` of `col op literal` joined by `AND`/`OR` (text: `=`/`!=`; numbers:
//! `= != < > <= >=`); `GROUP BY col`; `ORDER BY` a column or aggregate with an optional
//! `ASC`/`DESC`; `LIMIT n`; then `;` and an optional newline. Keywords are upper case and
//! separated by exactly one space (`, ` between list items), as the generator writes them, so the
//! masks leave the model no whitespace choices. The text starts with the space the model writes
//! after `SQL:`.
//!
//! ```
//! use gander::grammar::{sql_grammar, Matcher};
//!
//! let g = sql_grammar("Table: employees(name TEXT, city TEXT, salary INTEGER)").unwrap();
//! let ok = |s: &str| { let mut m = Matcher::new(&g); m.accept_bytes(s.as_bytes()) && m.can_end() };
//! assert!(ok(" SELECT AVG(salary) FROM employees WHERE city = 'Berlin';\n"));
//! assert!(!ok(" SELECT AVG(age) FROM employees;")); // no such column
//! assert!(!ok(" SELECT name FROM employees WHERE salary = '10';")); // text literal, INTEGER column
//! ```

use super::Grammar;
use crate::error::{Error, Result};
use std::fmt::Write as _;

/// How the grammar writes a column's literals: SQLite's three storage classes that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// A single-quoted string (`''` inside for a quote), on one line.
    Text,
    /// An integer, optionally negative.
    Integer,
    /// A number, optionally negative, with an optional fraction.
    Real,
}

impl ColumnType {
    /// The canonical type name (`TEXT`, `INTEGER`, `REAL`).
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
        }
    }
}

/// One column of a [`Table`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
}

/// A table as the prompt declares it: its name and columns, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

impl Table {
    /// The canonical table line without `Table: `, as the generator writes it:
    /// `name(col TYPE, col TYPE)`.
    pub fn schema(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{} {}", c.name, c.ty.sql_name())).collect();
        format!("{}({})", self.name, cols.join(", "))
    }
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("sql table: {msg}"))
}

/// Letters, digits and `_`, not starting with a digit (ASCII only: the names go into the grammar
/// and the SQL verbatim, so nothing in them may need quoting).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse a table line: `NAME(col TYPE, col TYPE, ...)`, optionally after `Table: `, with any
/// surrounding whitespace. Types are case-insensitive and mapped to [`ColumnType`] by their first
/// word: TEXT, VARCHAR(n), CHAR(n), CHARACTER, NVARCHAR, NCHAR, CLOB, STRING, DATE, DATETIME,
/// TIME and TIMESTAMP are text; INTEGER, INT, BIGINT, SMALLINT, TINYINT, MEDIUMINT, INT2/4/8,
/// SERIAL, BIGSERIAL, BOOLEAN and BOOL are integers; REAL, FLOAT, FLOAT4/8, DOUBLE, NUMERIC,
/// DECIMAL(p, s), DEC and NUMBER are reals. Later words (`PRIMARY KEY`, `NOT NULL`, `DOUBLE
/// PRECISION`) are allowed and ignored. Errors (`BAD_INPUT`) name the problem.
pub fn parse_table(line: &str) -> Result<Table> {
    let line = line.trim();
    let line = line.strip_prefix("Table:").map_or(line, str::trim_start);
    if line.contains(['\n', '\r']) {
        return Err(bad("expected one line (`name(col TYPE, ...)`)"));
    }
    let (name, rest) = line.split_once('(').ok_or_else(|| bad("expected `(` after the table name"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("expected the table name before `(`"));
    }
    if !is_identifier(name) {
        return Err(bad(format!("bad table name `{name}` (letters, digits and `_`, not starting with a digit)")));
    }
    let body = rest.trim_end().strip_suffix(')').ok_or_else(|| bad("expected `)` at the end of the column list"))?;
    let pieces = split_columns(body)?;
    if pieces.iter().all(|p| p.trim().is_empty()) {
        return Err(bad(format!("table `{name}` has no columns")));
    }
    let mut columns: Vec<Column> = Vec::new();
    for piece in pieces {
        let col = parse_column(piece.trim())?;
        // SQL names are case-insensitive: `City` and `city` would be the same column.
        if columns.iter().any(|c| c.name.eq_ignore_ascii_case(&col.name)) {
            return Err(bad(format!("duplicate column `{}`", col.name)));
        }
        columns.push(col);
    }
    Ok(Table { name: name.to_string(), columns })
}

/// Split the column list at the commas outside parentheses (`DECIMAL(10, 2)` keeps its comma).
fn split_columns(body: &str) -> Result<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| bad("unbalanced `)` in the column list"))?,
            ',' if depth == 0 => {
                pieces.push(body.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad("unbalanced `(` in the column list"));
    }
    pieces.push(body.get(start..).unwrap_or_default());
    Ok(pieces)
}

/// `name TYPE [(args)] [more words]`.
fn parse_column(def: &str) -> Result<Column> {
    if def.is_empty() {
        return Err(bad("empty column definition (a stray `,`?)"));
    }
    let (name, ty) = def.split_once(char::is_whitespace).map_or((def, ""), |(n, t)| (n, t.trim()));
    if !is_identifier(name) {
        return Err(bad(format!("bad column name `{name}` (letters, digits and `_`, not starting with a digit)")));
    }
    if ty.is_empty() {
        return Err(bad(format!("column `{name}` has no type (TEXT, INTEGER or REAL)")));
    }
    // Type arguments (`VARCHAR(255)`, `DECIMAL(10, 2)`): digits, commas and spaces only, once.
    let words = match ty.split_once('(') {
        None => ty.to_string(),
        Some((before, after)) => {
            let (args, tail) = after.split_once(')').unwrap_or((after, ""));
            if args.trim().is_empty() || !args.chars().all(|c| c.is_ascii_digit() || c == ',' || c == ' ') || tail.contains(['(', ')']) {
                return Err(bad(format!("column `{name}`: bad type arguments in `{ty}` (expected numbers, as in VARCHAR(20))")));
            }
            format!("{before} {tail}")
        }
    };
    let mut words = words.split_whitespace();
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    if let Some(w) = words.find(|w| !w.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err(bad(format!("column `{name}`: unexpected `{w}` in the type `{ty}`")));
    }
    let ty = match first.as_str() {
        "TEXT" | "VARCHAR" | "CHAR" | "CHARACTER" | "NVARCHAR" | "NCHAR" | "CLOB" | "STRING" | "DATE" | "DATETIME" | "TIME" | "TIMESTAMP" => ColumnType::Text,
        "INTEGER" | "INT" | "BIGINT" | "SMALLINT" | "TINYINT" | "MEDIUMINT" | "INT2" | "INT4" | "INT8" | "SERIAL" | "BIGSERIAL" | "BOOLEAN" | "BOOL" => {
            ColumnType::Integer
        }
        "REAL" | "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "NUMERIC" | "DECIMAL" | "DEC" | "NUMBER" => ColumnType::Real,
        "" => return Err(bad(format!("column `{name}` has no type (TEXT, INTEGER or REAL)"))),
        other => return Err(bad(format!("column `{name}`: unknown type `{other}` (use TEXT, INTEGER or REAL)"))),
    };
    Ok(Column { name: name.to_string(), ty })
}

/// Literals and fixed pieces. Digits are bounded so a model that loops on `0` still reaches the
/// `;` (and the values stay within SQLite's 64-bit integers and doubles).
const LITERALS: &str = r#"cmp ::= " = " | " != " | " < " | " > " | " <= " | " >= "
int ::= "-"? [0-9]{1,18}
real ::= "-"? [0-9]{1,15} ( "." [0-9]{1,15} )?
dir ::= " ASC" | " DESC"
"#;

/// Any single-line string literal (`''` for a quote inside).
const ANY_TEXT: &str = "text ::= \"'\" ( [^'\\r\\n] | \"''\" )* \"'\"\n";

/// The longest run of the question's words a text literal may be, in words.
const SPAN_WORDS: usize = 6;

/// Words of a question past this many give no literals (a question is one line; the cap keeps a
/// hostile one from growing the grammar without bound). At most `QUESTION_WORDS × SPAN_WORDS`
/// spans are alternatives of one rule, which the matcher must be able to hold at once
/// (`stacks::MAX_STACKS`).
const QUESTION_WORDS: usize = 80;
/// A longer word gives no literal (no value a question names is that long), and past this many
/// bytes of span text the literals are any string again: both keep the grammar text well under
/// `Grammar::parse_gbnf`'s limits whatever the question.
const SPAN_WORD_BYTES: usize = 64;
const SPAN_TEXT_BYTES: usize = 64 * 1024;
const _: () = assert!(QUESTION_WORDS * SPAN_WORDS < super::stacks::MAX_STACKS);

/// The runs of 1 to [`SPAN_WORDS`] consecutive words of `question` (split at white space, each
/// word stripped of the punctuation around it; a word that is all punctuation or longer than
/// [`SPAN_WORD_BYTES`] ends the runs through it), each once, in order of first appearance.
pub fn question_spans(question: &str) -> Vec<String> {
    // Inside a word anything stays (`O'Hare`, `a/b`); at its ends, quotes, dots and every other
    // non-alphanumeric character except `&-$%#/` go (`"Paris".` -> `Paris`).
    let kept_at_end = |c: char| c.is_alphanumeric() || "&-$%#/".contains(c);
    let words: Vec<&str> = question
        .split_whitespace()
        .take(QUESTION_WORDS)
        .map(|w| w.trim_matches(|c: char| !kept_at_end(c)))
        .map(|w| if w.len() > SPAN_WORD_BYTES { "" } else { w })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for i in 0..words.len() {
        let mut span = String::new();
        for w in words.iter().skip(i).take(SPAN_WORDS) {
            if w.is_empty() {
                break;
            }
            if !span.is_empty() {
                span.push(' ');
            }
            span.push_str(w);
            if seen.insert(span.clone()) {
                out.push(span.clone());
            }
        }
    }
    out
}

/// `text ::= "'" ( "span" | … ) "'"` over the question's spans, quotes doubled as SQL writes
/// them (and GBNF's `"` and `\` escaped).
fn span_text(spans: &[String]) -> String {
    let alts: Vec<String> = spans.iter().map(|s| format!("\"{}\"", s.replace('\'', "''").replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("text ::= \"'\" ( {} ) \"'\"\n", alts.join(" | "))
}

/// `name ::= "a" | "b"` over the given column names, or nothing when there are none (the rules
/// that would use it are left out too, so no undefined or empty rule is written).
fn alternatives(out: &mut String, rule: &str, names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let alts: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let _ = writeln!(out, "{rule} ::= {}", alts.join(" | "));
}

/// The GBNF text of [`sql_grammar`], for a parsed table (its names must be identifiers, as
/// [`parse_table`] ensures; anything else is left out of the grammar).
pub fn sql_gbnf(table: &Table) -> String {
    sql_gbnf_for(table, None)
}

/// [`sql_gbnf`], with text literals restricted to runs of the question's words when a question
/// is given ([`question_spans`]; the values a question filters on are written in it, and a
/// small model copies them badly: `'CNless A'` for "cordless drill"). A question without words
/// keeps any literal.
pub fn sql_gbnf_for(table: &Table, question: Option<&str>) -> String {
    let cols_of = |want: Option<ColumnType>| -> Vec<&str> {
        table.columns.iter().filter(|c| is_identifier(&c.name) && want.is_none_or(|t| c.ty == t)).map(|c| c.name.as_str()).collect()
    };
    let all = cols_of(None);
    let text = cols_of(Some(ColumnType::Text));
    let int = cols_of(Some(ColumnType::Integer));
    let real = cols_of(Some(ColumnType::Real));
    let name = if is_identifier(&table.name) { table.name.as_str() } else { "" };

    let mut g = String::new();
    if all.is_empty() {
        // No columns (a hand-built table; parse_table refuses it): `*` and `COUNT(*)` remain.
        let _ = writeln!(g, "root ::= \" SELECT \" ( \"*\" | \"COUNT(*)\" ) \" FROM {name}\" limit? \";\" \"\\n\"?");
    } else {
        let _ = writeln!(g, "root ::= \" SELECT \" select \" FROM {name}\" where? group? order? limit? \";\" \"\\n\"?");
        g.push_str("select ::= \"*\" | \"DISTINCT \" col ( \", \" col )* | item ( \", \" item )*\n");
        g.push_str("item ::= col | agg\n");
        // Numeric aggregates over numeric columns only: the generator never sums or ranks text.
        let numeric = if int.is_empty() && real.is_empty() { "" } else { " | ( \"SUM\" | \"AVG\" | \"MIN\" | \"MAX\" ) \"(\" num \")\"" };
        let _ = writeln!(g, "agg ::= \"COUNT(*)\" | \"COUNT(\" col \")\" | \"COUNT(DISTINCT \" col \")\"{numeric}");
        let mut conds = Vec::new();
        for (rule, cols, rhs) in
            [("text-cond", &text, "text-col ( \" = \" | \" != \" ) text"), ("int-cond", &int, "int-col cmp int"), ("real-cond", &real, "real-col cmp real")]
        {
            if !cols.is_empty() {
                let _ = writeln!(g, "{rule} ::= {rhs}");
                conds.push(rule);
            }
        }
        let _ = writeln!(g, "cond ::= {}", conds.join(" | "));
        g.push_str("where ::= \" WHERE \" cond ( ( \" AND \" | \" OR \" ) cond )*\n");
        g.push_str("group ::= \" GROUP BY \" col\n");
        g.push_str("order ::= \" ORDER BY \" ( col | agg ) dir?\n");
        alternatives(&mut g, "col", &all);
        let numeric: Vec<&str> = int.iter().chain(real.iter()).copied().collect();
        alternatives(&mut g, "num", &numeric);
        alternatives(&mut g, "text-col", &text);
        alternatives(&mut g, "int-col", &int);
        alternatives(&mut g, "real-col", &real);
    }
    g.push_str("limit ::= \" LIMIT \" [0-9]{1,9}\n");
    g.push_str(LITERALS);
    let spans = question.map(question_spans).unwrap_or_default();
    let bytes: usize = spans.iter().map(|s| s.len() + 5).sum();
    g.push_str(&if spans.is_empty() || bytes > SPAN_TEXT_BYTES { ANY_TEXT.to_string() } else { span_text(&spans) });
    g
}

/// The grammar of the SQL answers for a table line (see the module documentation): parse it with
/// [`parse_table`], write [`sql_gbnf`], compile.
pub fn sql_grammar(table_line: &str) -> Result<Grammar> {
    Grammar::parse_gbnf(&sql_gbnf(&parse_table(table_line)?))
}

/// [`sql_grammar`] with text literals taken from the question ([`sql_gbnf_for`]).
pub fn sql_grammar_for(table_line: &str, question: &str) -> Result<Grammar> {
    Grammar::parse_gbnf(&sql_gbnf_for(&parse_table(table_line)?, Some(question)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbnf_compiles_for_every_mix_of_types() {
        for line in ["t(a TEXT)", "t(a INTEGER)", "t(a REAL)", "t(a TEXT, b INTEGER, c REAL)", "north_hotels(city TEXT, price REAL, year INTEGER, name TEXT)"] {
            let table = parse_table(line).unwrap();
            assert_eq!(table.schema(), line);
            let text = sql_gbnf(&table);
            Grammar::parse_gbnf(&text).unwrap_or_else(|e| panic!("{line}: {e}\n{text}"));
        }
        // A table built by hand with no columns still gives a grammar that compiles.
        let empty = Table { name: "t".into(), columns: Vec::new() };
        Grammar::parse_gbnf(&sql_gbnf(&empty)).unwrap();
    }

    #[test]
    fn question_spans_are_runs_of_words_without_the_punctuation_around_them() {
        let s = question_spans("How many flights land at O'Hare?");
        assert!(s.contains(&"O'Hare".to_string()) && s.contains(&"land at O'Hare".to_string()), "{s:?}");
        assert!(!s.iter().any(|x| x.contains('?')), "{s:?}");
        assert_eq!(s.iter().filter(|x| x.as_str() == "flights").count(), 1);
        // at most SPAN_WORDS words
        assert!(s.iter().all(|x| x.split(' ').count() <= SPAN_WORDS));
        assert!(question_spans("  ?! ").is_empty());
        assert_eq!(question_spans(r#"Is it "Paris"."#).last().map(String::as_str), Some("Paris"));
        // Hostile sizes: long words give no spans, many words are capped, and the grammar
        // still compiles (any literal past the byte cap).
        let long = format!("{} x", "a".repeat(SPAN_WORD_BYTES + 1));
        assert_eq!(question_spans(&long), vec!["x".to_string()]);
        assert!(question_spans(&"w ".repeat(10 * QUESTION_WORDS)).len() <= QUESTION_WORDS * SPAN_WORDS);
        let many: String = (0..QUESTION_WORDS).map(|i| format!("{}{i} ", "z".repeat(SPAN_WORD_BYTES - 3))).collect();
        sql_grammar_for("t(a TEXT)", &many).unwrap();
    }

    #[test]
    fn text_literals_come_from_the_question() {
        let ok = |q: &str, sql: &str| {
            let g = sql_grammar_for("flights(origin TEXT, fare INTEGER)", q).unwrap();
            let mut m = crate::grammar::Matcher::new(&g);
            m.accept_bytes(sql.as_bytes()) && m.can_end()
        };
        let q = "Which flights land at O'Hare for under 200?";
        assert!(ok(q, " SELECT origin FROM flights WHERE origin = 'O''Hare';"));
        assert!(ok(q, " SELECT origin FROM flights WHERE origin != 'O''Hare' AND fare < 200;"));
        assert!(!ok(q, " SELECT origin FROM flights WHERE origin = 'Ohare';"), "not a run of the question's words");
        assert!(!ok(q, " SELECT origin FROM flights WHERE origin = 'O'Hare';"), "a quote is doubled");
        // Quotes and backslashes in the question cannot break the grammar text.
        let q = r#"Is a"b or c\d there?"#;
        assert!(ok(q, r#" SELECT origin FROM flights WHERE origin = 'a"b';"#));
        assert!(ok(q, r#" SELECT origin FROM flights WHERE origin = 'a"b or c\d';"#));
        assert!(!ok(q, r#" SELECT origin FROM flights WHERE origin = 'a\"b';"#));
        // No words: any literal, as without a question.
        assert!(ok("?", " SELECT origin FROM flights WHERE origin = 'anything';"));
    }
}
