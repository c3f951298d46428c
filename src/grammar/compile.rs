//! Syntax tree to the flat program the recogniser runs.
//!
//! Every rule becomes a list of alternatives, each a sequence of elements laid out in one array
//! and closed by [`Elem::End`] (the layout of llama.cpp, so that "the next element" is `pos + 1`).
//! Elements are only byte sets and rule references: literals become one set per byte, classes
//! become byte sets (ASCII) or small rules over their UTF-8 byte ranges (utf8.rs), groups and
//! repetitions become helper rules. Repetitions expand `{m,n}` into m copies and a chain of
//! n - m optional rules; the total size is bounded so that a hostile grammar is an error.
//! Left recursion (which a top-down recogniser cannot run) is refused here.

use super::parse::{Expr, Rule};
use super::utf8;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// The most elements a compiled grammar may have (8 bytes each).
const MAX_ELEMS: usize = 1_000_000;

/// A 256-bit byte set.
pub(super) type ByteSet = [u64; 4];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Elem {
    /// The end of an alternative.
    End,
    /// One byte from the set with this index.
    Bytes(u32),
    /// The rule with this index.
    Ref(u32),
}

/// A compiled grammar.
#[derive(Debug)]
pub(super) struct Program {
    pub elems: Vec<Elem>,
    /// For each rule, where its alternatives start in `elems`.
    pub alts: Vec<Vec<u32>>,
    pub sets: Vec<ByteSet>,
    pub root: u32,
}

impl Program {
    pub fn elem(&self, pos: u32) -> Elem {
        self.elems.get(pos as usize).copied().unwrap_or(Elem::End)
    }

    pub fn set(&self, id: u32) -> ByteSet {
        self.sets.get(id as usize).copied().unwrap_or_default()
    }
}

pub(super) fn set_has(set: &ByteSet, b: u8) -> bool {
    set.get(usize::from(b >> 6)).is_some_and(|w| w >> (b & 63) & 1 == 1)
}

fn set_add(set: &mut ByteSet, lo: u8, hi: u8) {
    for b in lo..=hi {
        if let Some(w) = set.get_mut(usize::from(b >> 6)) {
            *w |= 1 << (b & 63);
        }
    }
}

type Alts = Vec<Vec<Elem>>;

struct Builder<'a> {
    names: HashMap<&'a str, u32>,
    /// Per rule, the name of the user rule it belongs to (for error messages).
    origin: Vec<&'a str>,
    rules: Vec<Alts>,
    sets: Vec<ByteSet>,
    set_ids: HashMap<ByteSet, u32>,
    classes: HashMap<Vec<(u32, u32)>, Elem>,
    size: usize,
    current: &'a str,
}

/// Compile parsed rules; `start` (normally `root`) is the start rule.
pub(super) fn compile(rules: &[Rule], start: &str) -> Result<Program> {
    let mut b = Builder {
        names: HashMap::new(),
        origin: Vec::new(),
        rules: Vec::new(),
        sets: Vec::new(),
        set_ids: HashMap::new(),
        classes: HashMap::new(),
        size: 0,
        current: "root",
    };
    for r in rules {
        if b.names.insert(&r.name, b.rules.len() as u32).is_some() {
            return Err(Error::BadInput(format!("grammar: line {}, column {}: rule `{}` is defined twice", r.line, r.column, r.name)));
        }
        b.rules.push(Vec::new());
        b.origin.push(&r.name);
    }
    let root = *b.names.get(start).ok_or_else(|| Error::BadInput("grammar: no `root` rule (the start rule must be called `root`)".into()))?;
    for (i, r) in rules.iter().enumerate() {
        b.current = &r.name;
        let alts = r.alternatives.iter().map(|seq| b.sequence(seq)).collect::<Result<Alts>>()?;
        if let Some(slot) = b.rules.get_mut(i) {
            *slot = alts;
        }
    }
    b.check_left_recursion()?;
    let mut elems = Vec::with_capacity(b.size);
    let mut starts = Vec::with_capacity(b.rules.len());
    for alts in &b.rules {
        let mut s = Vec::with_capacity(alts.len());
        for alt in alts {
            s.push(elems.len() as u32);
            elems.extend_from_slice(alt);
            elems.push(Elem::End);
        }
        starts.push(s);
    }
    Ok(Program { elems, alts: starts, sets: b.sets, root })
}

impl<'a> Builder<'a> {
    fn grow(&mut self, n: usize) -> Result<()> {
        self.size = self.size.saturating_add(n);
        if self.size > MAX_ELEMS {
            return Err(Error::BadInput(format!("grammar: too large once repetitions are expanded (more than {MAX_ELEMS} elements)")));
        }
        Ok(())
    }

    fn add_rule(&mut self, alts: Alts) -> Result<u32> {
        self.grow(alts.iter().map(|a| a.len() + 1).sum())?;
        self.rules.push(alts);
        self.origin.push(self.current);
        Ok(self.rules.len() as u32 - 1)
    }

    fn set(&mut self, set: ByteSet) -> Elem {
        let next = self.sets.len() as u32;
        let id = *self.set_ids.entry(set).or_insert(next);
        if id == next {
            self.sets.push(set);
        }
        Elem::Bytes(id)
    }

    fn sequence(&mut self, seq: &[Expr]) -> Result<Vec<Elem>> {
        let mut out = Vec::new();
        for e in seq {
            self.expr(e, &mut out)?;
        }
        Ok(out)
    }

    fn expr(&mut self, e: &Expr, out: &mut Vec<Elem>) -> Result<()> {
        match e {
            Expr::Literal(bytes) => {
                self.grow(bytes.len())?;
                for &byte in bytes {
                    let mut s = ByteSet::default();
                    set_add(&mut s, byte, byte);
                    out.push(self.set(s));
                }
            }
            Expr::Class { ranges, negated } => {
                self.grow(1)?;
                let class = self.class(utf8::normalise(ranges.clone(), *negated))?;
                out.push(class);
            }
            Expr::Ref { name, line, column } => {
                let id =
                    *self.names.get(name.as_str()).ok_or_else(|| Error::BadInput(format!("grammar: line {line}, column {column}: undefined rule `{name}`")))?;
                self.grow(1)?;
                out.push(Elem::Ref(id));
            }
            Expr::Group(alts) => match alts.as_slice() {
                [one] => {
                    for e in one {
                        self.expr(e, out)?;
                    }
                }
                _ => {
                    let alts = alts.iter().map(|seq| self.sequence(seq)).collect::<Result<Alts>>()?;
                    self.grow(1)?;
                    out.push(Elem::Ref(self.add_rule(alts)?));
                }
            },
            Expr::Repeat { item, min, max } => self.repeat(item, *min, *max, out)?,
        }
        Ok(())
    }

    /// `item{min,max}`: `min` copies, then `item*` as `s ::= item s | ε`, or `max - min` nested
    /// optionals `o1 ::= item | ε`, `o2 ::= item o1 | ε`, ... (right recursion, so the
    /// recogniser's stacks do not grow with the count).
    fn repeat(&mut self, item: &Expr, min: u32, max: Option<u32>, out: &mut Vec<Elem>) -> Result<()> {
        let mut body = Vec::new();
        self.expr(item, &mut body)?;
        let unit = match body.as_slice() {
            [] => return Ok(()),
            [one] => *one,
            _ => Elem::Ref(self.add_rule(vec![body])?),
        };
        self.grow(min as usize + 1)?;
        out.extend(std::iter::repeat_n(unit, min as usize));
        match max {
            None => {
                let star = self.add_rule(Vec::new())?;
                self.grow(3)?;
                if let Some(slot) = self.rules.get_mut(star as usize) {
                    *slot = vec![vec![unit, Elem::Ref(star)], Vec::new()];
                }
                out.push(Elem::Ref(star));
            }
            Some(max) if max > min => {
                let mut prev = self.add_rule(vec![vec![unit], Vec::new()])?;
                for _ in min + 1..max {
                    prev = self.add_rule(vec![vec![unit, Elem::Ref(prev)], Vec::new()])?;
                }
                out.push(Elem::Ref(prev));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// A class over code points: one byte set when it is all ASCII, else a rule whose
    /// alternatives are the ASCII part and the UTF-8 byte-range sequences (shared between uses).
    fn class(&mut self, ranges: Vec<(u32, u32)>) -> Result<Elem> {
        if let Some(e) = self.classes.get(&ranges) {
            return Ok(*e);
        }
        let mut seqs = Vec::new();
        for &(lo, hi) in &ranges {
            utf8::sequences(lo, hi, &mut seqs);
        }
        let mut ascii = ByteSet::default();
        let mut alts: Alts = Vec::new();
        for seq in &seqs {
            match seq.as_slice() {
                [(lo, hi)] => set_add(&mut ascii, *lo, *hi),
                _ => {
                    let alt = seq
                        .iter()
                        .map(|&(lo, hi)| {
                            let mut s = ByteSet::default();
                            set_add(&mut s, lo, hi);
                            self.set(s)
                        })
                        .collect();
                    alts.push(alt);
                }
            }
        }
        let elem = if alts.is_empty() {
            self.set(ascii)
        } else {
            if ascii != ByteSet::default() {
                let a = self.set(ascii);
                alts.insert(0, vec![a]);
            }
            Elem::Ref(self.add_rule(alts)?)
        };
        self.classes.insert(ranges, elem);
        Ok(elem)
    }

    /// Refuse a rule that can reach itself before consuming a byte: left recursion, or a
    /// repetition of something that can match the empty string (`("a"?)*`).
    fn check_left_recursion(&self) -> Result<()> {
        let n = self.rules.len();
        let mut nullable = vec![false; n];
        let is_nullable = |e: &Elem, nullable: &[bool]| match e {
            Elem::Ref(r) => nullable.get(*r as usize).copied().unwrap_or(false),
            _ => false,
        };
        let mut changed = true;
        while changed {
            changed = false;
            for (r, alts) in self.rules.iter().enumerate() {
                if !nullable.get(r).copied().unwrap_or(true) && alts.iter().any(|alt| alt.iter().all(|e| is_nullable(e, &nullable))) {
                    if let Some(x) = nullable.get_mut(r) {
                        *x = true;
                    }
                    changed = true;
                }
            }
        }
        // Left corners: the rules each rule can start with.
        let corners: Vec<Vec<u32>> = self
            .rules
            .iter()
            .map(|alts| {
                let mut c = Vec::new();
                for alt in alts {
                    for e in alt {
                        if let Elem::Ref(r) = e {
                            c.push(*r);
                        }
                        if !is_nullable(e, &nullable) {
                            break;
                        }
                    }
                }
                c
            })
            .collect();
        // Depth-first search without recursion; a grey node met again closes a cycle.
        let mut colour = vec![0u8; n];
        for start in 0..n {
            if colour.get(start) != Some(&0) {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            if let Some(c) = colour.get_mut(start) {
                *c = 1;
            }
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                let Some(&child) = corners.get(node).and_then(|c| c.get(*next)) else {
                    if let Some(c) = colour.get_mut(node) {
                        *c = 2;
                    }
                    stack.pop();
                    continue;
                };
                *next += 1;
                match colour.get(child as usize) {
                    Some(0) => {
                        if let Some(c) = colour.get_mut(child as usize) {
                            *c = 1;
                        }
                        stack.push((child as usize, 0));
                    }
                    Some(1) => {
                        let name = self.origin.get(child as usize).copied().unwrap_or("?");
                        return Err(Error::BadInput(format!(
                            "grammar: rule `{name}` can reach itself without consuming input (left recursion, or a repetition of something that can be empty); rewrite it with repetition, e.g. `list ::= item (\",\" item)*`"
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
