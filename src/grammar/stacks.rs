//! The recogniser's state: a set of parse stacks (as in llama.cpp), stored as a shared tree.
//!
//! A stack is a list of program positions: the top is the byte set to match next, the entries
//! below are where to continue once the rule above finishes. Stacks share their lower parts, so
//! each one is a node `(position, parent)` in an arena, and nodes are interned: equal stacks are
//! the same node id. A recogniser state is then the sorted list of its top node ids, which makes
//! states cheap to compare and to use as cache keys (mask.rs). Node 0 is the empty stack: the
//! grammar has been matched completely.

use super::compile::{set_has, Elem, Program};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The empty stack.
pub(super) const DONE: u32 = 0;
/// More stacks than this in one state (a very ambiguous grammar) counts as a rejection.
pub(super) const MAX_STACKS: usize = 1024;
/// More nodes than this in one closure is refused (a guard; well-formed grammars need few).
const MAX_CLOSURE: usize = 1 << 16;
/// Arena size limit (about 100 MB of nodes and index).
const MAX_NODES: usize = 1 << 22;

/// A fast hasher for small integer keys (FxHash's multiply-rotate); keys are not attacker-chosen
/// in a way that matters, the arena is bounded.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy, Debug)]
struct Node {
    pos: u32,
    parent: u32,
}

/// The interned stack nodes of one recogniser, with scratch space for advancing states.
#[derive(Clone, Debug)]
pub(super) struct Stacks {
    nodes: Vec<Node>,
    index: FastMap<(u32, u32), u32>,
    work: Vec<u32>,
    seen: FastSet<u32>,
}

impl Stacks {
    pub fn new() -> Stacks {
        Stacks { nodes: vec![Node { pos: u32::MAX, parent: DONE }], index: FastMap::default(), work: Vec::new(), seen: FastSet::default() }
    }

    /// A mark to roll back to: nodes made after it can be dropped with [`Stacks::rollback`].
    pub fn mark(&self) -> usize {
        self.nodes.len()
    }

    /// Forget the nodes made since `mark` (a rejected input, or a finished mask walk).
    pub fn rollback(&mut self, mark: usize) {
        for n in self.nodes.get(mark..).unwrap_or(&[]) {
            self.index.remove(&(n.pos, n.parent));
        }
        self.nodes.truncate(mark.max(1));
    }

    fn node(&self, id: u32) -> Node {
        self.nodes.get(id as usize).copied().unwrap_or(Node { pos: u32::MAX, parent: DONE })
    }

    fn intern(&mut self, pos: u32, parent: u32) -> Option<u32> {
        if let Some(&id) = self.index.get(&(pos, parent)) {
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node { pos, parent });
        self.index.insert((pos, parent), id);
        Some(id)
    }

    /// The union of the byte sets at the tops of `state`: the bytes it can accept next.
    pub fn first_bytes(&self, g: &Program, state: &[u32]) -> [u64; 4] {
        let mut out = [0u64; 4];
        for &top in state {
            if let Elem::Bytes(s) = g.elem(self.node(top).pos) {
                for (o, w) in out.iter_mut().zip(g.set(s)) {
                    *o |= w;
                }
            }
        }
        out
    }

    /// The state at the start of the grammar.
    pub fn start(&mut self, g: &Program, out: &mut Vec<u32>) -> bool {
        self.work.clear();
        for &alt in g.alts.get(g.root as usize).map(Vec::as_slice).unwrap_or(&[]) {
            let top = if g.elem(alt) == Elem::End { Some(DONE) } else { self.intern(alt, DONE) };
            match top {
                Some(t) => self.work.push(t),
                None => return false,
            }
        }
        self.close(g, out)
    }

    /// Advance `from` by one byte into `out`; false when no stack accepts it.
    pub fn step(&mut self, g: &Program, from: &[u32], byte: u8, out: &mut Vec<u32>) -> bool {
        self.work.clear();
        for &top in from {
            let n = self.node(top);
            let Elem::Bytes(s) = g.elem(n.pos) else {
                continue;
            };
            if !set_has(&g.set(s), byte) {
                continue;
            }
            let next = n.pos + 1;
            let moved = if g.elem(next) == Elem::End { Some(n.parent) } else { self.intern(next, n.parent) };
            match moved {
                Some(m) => self.work.push(m),
                None => {
                    out.clear();
                    return false;
                }
            }
        }
        self.close(g, out)
    }

    /// Expand the stacks in `work` until every top is a byte set (or the empty stack), into `out`
    /// sorted and deduplicated. Termination: the compiler refused left recursion, so expanding
    /// without consuming cannot cycle through new nodes; `seen` removes repeats.
    fn close(&mut self, g: &Program, out: &mut Vec<u32>) -> bool {
        out.clear();
        self.seen.clear();
        while let Some(id) = self.work.pop() {
            if !self.seen.insert(id) {
                continue;
            }
            if self.seen.len() > MAX_CLOSURE {
                out.clear();
                return false;
            }
            if id == DONE {
                out.push(DONE);
                continue;
            }
            let n = self.node(id);
            match g.elem(n.pos) {
                Elem::Bytes(_) => out.push(id),
                Elem::End => self.work.push(n.parent),
                Elem::Ref(rule) => {
                    // The continuation after the reference; none at the end of an alternative
                    // (a tail call, so right recursion does not deepen the stack).
                    let after = n.pos + 1;
                    let base = if g.elem(after) == Elem::End { Some(n.parent) } else { self.intern(after, n.parent) };
                    let Some(base) = base else {
                        out.clear();
                        return false;
                    };
                    for &alt in g.alts.get(rule as usize).map(Vec::as_slice).unwrap_or(&[]) {
                        let top = if g.elem(alt) == Elem::End { Some(base) } else { self.intern(alt, base) };
                        let Some(top) = top else {
                            out.clear();
                            return false;
                        };
                        self.work.push(top);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.len() > MAX_STACKS {
            out.clear();
        }
        !out.is_empty()
    }
}
