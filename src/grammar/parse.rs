//! GBNF text to a syntax tree: the grammar format of llama.cpp (`name ::= ...`, `|`, `( )`,
//! `* + ? {m,n}`, `"literals"`, `[classes]`, `.`, `# comments`).
//!
//! Errors name the line and column. Nesting (parentheses and stacked repetition operators) is
//! limited so a hostile grammar cannot overflow the stack here or in the compiler, and repetition
//! counts are bounded so that expanding them cannot allocate without limit.

use crate::error::{Error, Result};

/// Deepest nesting of parentheses plus repetition operators on one item.
const MAX_DEPTH: usize = 64;
/// Largest count in `{m,n}`; the compiled size is bounded separately (compile.rs).
pub(super) const MAX_REPEAT: u32 = 10_000;

/// One element of a rule body.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    /// A string literal, as UTF-8.
    Literal(Vec<u8>),
    /// A character class: inclusive code point ranges, possibly negated; `.` is `[^]`.
    Class { ranges: Vec<(u32, u32)>, negated: bool },
    /// A reference to a rule, with where it was written (for "undefined rule" errors).
    Ref { name: String, line: usize, column: usize },
    /// Parenthesised alternatives.
    Group(Vec<Vec<Expr>>),
    /// `item{min,max}`; `max == None` is unbounded (`*`, `+`, `{m,}`).
    Repeat { item: Box<Expr>, min: u32, max: Option<u32> },
}

/// `name ::= alternatives`.
#[derive(Debug)]
pub(super) struct Rule {
    pub name: String,
    pub line: usize,
    pub column: usize,
    pub alternatives: Vec<Vec<Expr>>,
}

/// Parse a whole grammar into its rules, in the order written.
pub(super) fn parse(text: &str) -> Result<Vec<Rule>> {
    let mut p = Parser { src: text.chars().collect(), pos: 0, depth: 0 };
    let mut rules = Vec::new();
    loop {
        p.skip_blank(true);
        if p.peek().is_none() {
            return Ok(rules);
        }
        rules.push(p.rule()?);
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

struct Parser {
    src: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, i: usize) -> Option<char> {
        self.src.get(i).copied()
    }

    fn line_col(&self, at: usize) -> (usize, usize) {
        let before = self.src.get(..at).unwrap_or(&self.src);
        let line = 1 + before.iter().filter(|&&c| c == '\n').count();
        let column = 1 + before.iter().rev().take_while(|&&c| c != '\n').count();
        (line, column)
    }

    fn error_at(&self, at: usize, msg: impl std::fmt::Display) -> Error {
        let (line, column) = self.line_col(at);
        Error::BadInput(format!("grammar: line {line}, column {column}: {msg}"))
    }

    fn error(&self, msg: impl std::fmt::Display) -> Error {
        let found = match self.peek() {
            None => "end of input".to_string(),
            Some('\n') => "end of line".to_string(),
            Some(c) => format!("`{}`", c.escape_default()),
        };
        self.error_at(self.pos, format!("{msg}, found {found}"))
    }

    /// Skip spaces, tabs and comments; also line breaks when `newlines`.
    fn skip_blank(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '\r' | '\n' if newlines => self.pos += 1,
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Between items at the top level of a rule: a line break ends the rule only when what follows
    /// is the end of input or a new `name ::=` (llama.cpp's rule, extended so that a rule body may
    /// continue on the next line).
    fn skip_between_items(&mut self, nested: bool) {
        self.skip_blank(nested);
        if nested || !matches!(self.peek(), Some('\r' | '\n')) {
            return;
        }
        let here = self.pos;
        self.skip_blank(true);
        if self.peek().is_none() || self.at_rule_start() {
            self.pos = here;
        }
    }

    /// Whether `name ::=` starts at the current position.
    fn at_rule_start(&self) -> bool {
        let mut i = self.pos;
        while self.peek_at(i).is_some_and(is_name_char) {
            i += 1;
        }
        if i == self.pos {
            return false;
        }
        while matches!(self.peek_at(i), Some(' ' | '\t')) {
            i += 1;
        }
        self.peek_at(i) == Some(':') && self.peek_at(i + 1) == Some(':') && self.peek_at(i + 2) == Some('=')
    }

    fn name(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        let name: String = self.src.get(start..self.pos)?.iter().collect();
        (!name.is_empty()).then_some(name)
    }

    fn rule(&mut self) -> Result<Rule> {
        let (line, column) = self.line_col(self.pos);
        let name = self.name().ok_or_else(|| self.error("expected a rule name"))?;
        self.skip_blank(false);
        if !(self.peek() == Some(':') && self.peek_at(self.pos + 1) == Some(':') && self.peek_at(self.pos + 2) == Some('=')) {
            return Err(self.error(format!("expected `::=` after rule name `{name}`")));
        }
        self.pos += 3;
        self.skip_blank(true);
        let alternatives = self.alternatives(false)?;
        self.skip_blank(false);
        match self.peek() {
            None | Some('\r' | '\n') => Ok(Rule { name, line, column, alternatives }),
            Some(_) => Err(self.error("expected an expression, `|` or the end of the line")),
        }
    }

    fn alternatives(&mut self, nested: bool) -> Result<Vec<Vec<Expr>>> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            self.skip_blank(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Expr>> {
        let mut items = Vec::new();
        loop {
            let item = match self.peek() {
                Some('"') => Expr::Literal(self.literal()?),
                Some('[') => self.class()?,
                Some('.') => {
                    self.pos += 1;
                    Expr::Class { ranges: Vec::new(), negated: true }
                }
                Some('(') => self.group()?,
                Some(c) if is_name_char(c) => {
                    let (line, column) = self.line_col(self.pos);
                    let name = self.name().ok_or_else(|| self.error("expected a rule name"))?;
                    Expr::Ref { name, line, column }
                }
                Some('*' | '+' | '?' | '{') => return Err(self.error("a repetition operator needs something before it")),
                _ => return Ok(items),
            };
            self.skip_blank(nested);
            items.push(self.postfix(item)?);
            self.skip_between_items(nested);
        }
    }

    fn group(&mut self) -> Result<Expr> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        self.pos += 1;
        self.skip_blank(true);
        let alts = self.alternatives(true)?;
        self.skip_blank(true);
        if self.peek() != Some(')') {
            return Err(self.error("expected `)`"));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Expr::Group(alts))
    }

    /// Repetition operators after an item; several may follow one another (`"a"+?`).
    fn postfix(&mut self, mut item: Expr) -> Result<Expr> {
        let mut stacked = 0;
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => self.counts()?,
                _ => return Ok(item),
            };
            self.pos += 1; // the operator, or the `}` that ends the counts
            stacked += 1;
            if self.depth + stacked > MAX_DEPTH {
                return Err(self.error(format!("nesting deeper than {MAX_DEPTH}")));
            }
            item = Expr::Repeat { item: Box::new(item), min, max };
            self.skip_blank(false);
        }
    }

    /// `{m}`, `{m,}`, `{m,n}` or `{,n}`; leaves the position on the closing brace.
    fn counts(&mut self) -> Result<(u32, Option<u32>)> {
        self.pos += 1;
        self.skip_blank(false);
        let min = self.number()?;
        self.skip_blank(false);
        let (min, max) = if self.peek() == Some(',') {
            self.pos += 1;
            self.skip_blank(false);
            let max = self.number()?;
            self.skip_blank(false);
            (min.unwrap_or(0), max)
        } else {
            let m = min.ok_or_else(|| self.error("expected a repetition count"))?;
            (m, Some(m))
        };
        if self.peek() != Some('}') {
            return Err(self.error("expected `}`"));
        }
        if max.is_some_and(|n| n < min) {
            return Err(self.error_at(self.pos, format!("repetition {{{min},{}}} has its maximum below its minimum", max.unwrap_or(0))));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<Option<u32>> {
        let start = self.pos;
        let mut value: u32 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            value = value.saturating_mul(10).saturating_add(d);
            self.pos += 1;
        }
        if value > MAX_REPEAT {
            return Err(self.error_at(start, format!("repetition count above {MAX_REPEAT}")));
        }
        Ok((self.pos > start).then_some(value))
    }

    fn literal(&mut self) -> Result<Vec<u8>> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                Some('"') => {
                    self.pos += 1;
                    return Ok(out.into_bytes());
                }
                None | Some('\n' | '\r') => return Err(self.error_at(start, "unterminated string literal")),
                Some(_) => out.push(self.char_in_text()?),
            }
        }
    }

    fn class(&mut self) -> Result<Expr> {
        let start = self.pos;
        self.pos += 1;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            match self.peek() {
                Some(']') => {
                    self.pos += 1;
                    return Ok(Expr::Class { ranges, negated });
                }
                None | Some('\n' | '\r') => return Err(self.error_at(start, "unterminated character class")),
                Some(_) => {
                    let at = self.pos;
                    let lo = self.char_in_text()? as u32;
                    let hi = if self.peek() == Some('-') && self.peek_at(self.pos + 1).is_some_and(|c| !matches!(c, ']' | '\n' | '\r')) {
                        self.pos += 1;
                        self.char_in_text()? as u32
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err(self.error_at(at, "character range out of order"));
                    }
                    ranges.push((lo, hi));
                }
            }
        }
    }

    /// One character of a literal or class, with escapes (code points, like llama.cpp).
    fn char_in_text(&mut self) -> Result<char> {
        let at = self.pos;
        let c = self.peek().ok_or_else(|| self.error("unexpected end of input"))?;
        self.pos += 1;
        if c != '\\' {
            return Ok(c);
        }
        let e = self.peek().ok_or_else(|| self.error("unexpected end of input after `\\`"))?;
        self.pos += 1;
        let digits = match e {
            'n' => return Ok('\n'),
            'r' => return Ok('\r'),
            't' => return Ok('\t'),
            '0' => return Ok('\0'),
            '\\' | '"' | '\'' | '[' | ']' | '-' | '^' | '/' => return Ok(e),
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(self.error_at(at, format!("unknown escape `\\{}`", e.escape_default()))),
        };
        let mut value: u32 = 0;
        for _ in 0..digits {
            let d = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| self.error(format!("expected {digits} hex digits after `\\{e}`")))?;
            value = value * 16 + d;
            self.pos += 1;
        }
        char::from_u32(value).ok_or_else(|| self.error_at(at, format!("`\\{e}{value:X}` is not a Unicode scalar value")))
    }
}
