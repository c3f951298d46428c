//! Token masks: which tokens of a vocabulary the grammar allows next ([`Matcher::allowed`]).
//!
//! The walk goes depth-first down the [`TokenTrie`], advancing the recogniser one byte per edge
//! and skipping a subtree as soon as its prefix is rejected, so shared prefixes are matched once
//! and most of the vocabulary is never visited. Three things keep it fast:
//! - states met during a walk are numbered and their transitions kept in a table, so most trie
//!   nodes cost one lookup instead of advancing the parse stacks;
//! - a subtree whose bytes all lead to one same live state, level after level (ordinary
//!   characters inside a JSON string, or inside a string of at most n characters), is accepted
//!   whole without being walked;
//! - masks are cached per state (states are canonical, stacks.rs), since generation under a
//!   grammar revisits the same states again and again.
//!
//! Known cost: inside a length-bounded string, subtrees of multi-byte (CJK) tokens do not pass
//! the "same state" test (a lead byte and a continuation byte lead to different states), so they
//! are walked node by node: a few milliseconds for the World vocabulary.

use super::compile::{set_has, ByteSet, Program};
use super::matcher::Matcher;
use super::stacks::{FastMap, Stacks};
use super::trie::{TokenTrie, TrieNode};

/// Masks kept per matcher (8 KiB each for the World vocabulary).
const CACHE_ENTRIES: usize = 128;

/// A set of token ids, one bit per id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenMask {
    words: Vec<u64>,
    len: usize,
}

impl TokenMask {
    /// An empty mask for ids `0..len`.
    pub fn new(len: usize) -> TokenMask {
        TokenMask { words: vec![0; len.div_ceil(64)], len }
    }

    /// The number of ids the mask covers (the vocabulary size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no ids at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        self.words.get(id as usize / 64).is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    /// How many ids are in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The ids in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| (0..64).filter(move |b| w >> b & 1 == 1).map(move |b| (i * 64 + b) as u32))
    }

    /// The bits, 64 ids per word, id `i` at bit `i % 64` of word `i / 64`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    fn reset(&mut self, len: usize) {
        self.words.clear();
        self.words.resize(len.div_ceil(64), 0);
        self.len = len;
    }

    fn insert(&mut self, id: u32) {
        if let Some(w) = self.words.get_mut(id as usize / 64) {
            *w |= 1 << (id % 64);
        }
    }
}

/// Masks by state; cleared when full (states repeat in bursts, so recency is what matters).
#[derive(Clone, Debug, Default)]
pub(super) struct MaskCache {
    masks: FastMap<Vec<u32>, TokenMask>,
    /// The shape of the trie the masks are for; another trie clears the cache.
    trie: (usize, usize, usize),
}

impl Matcher {
    /// Drop the cached masks (to free memory, or to time the uncached walk).
    pub fn clear_cache(&mut self) {
        self.cache.masks.clear();
    }

    /// The tokens of `trie` that the grammar allows next, into `out` (resized to the vocabulary).
    /// The end-of-text token is included only where [`Matcher::can_end`]. Empty when dead.
    pub fn allowed(&mut self, trie: &TokenTrie, out: &mut TokenMask) {
        let trie_key = (trie.vocab(), trie.nodes.len(), trie.tokens.len());
        if self.cache.trie != trie_key {
            self.cache.masks.clear();
            self.cache.trie = trie_key;
        }
        if let Some(m) = self.cache.masks.get(&self.state) {
            out.clone_from(m);
            return;
        }
        out.reset(trie.vocab());
        if self.state.is_empty() {
            return;
        }
        let mark = self.stacks.mark();
        let program = std::sync::Arc::clone(&self.program);
        let mut walk = Walk {
            g: &program,
            trie,
            stacks: &mut self.stacks,
            ids: FastMap::default(),
            states: Vec::new(),
            firsts: Vec::new(),
            next: Vec::new(),
            scratch: Vec::new(),
            uniform: FastMap::default(),
            out,
        };
        walk.run(&self.state);
        self.stacks.rollback(mark);
        if let Some(eot) = trie.end_of_text().filter(|_| self.can_end()) {
            out.insert(eot);
        }
        if self.cache.masks.len() >= CACHE_ENTRIES {
            self.cache.masks.clear();
        }
        self.cache.masks.insert(self.state.clone(), out.clone());
    }
}

/// One mask computation. States met on the way are numbered (0: the starting state) and their
/// transitions remembered, so a trie node costs one lookup unless its (state, byte) is new; the
/// stack nodes made here are rolled back by the caller.
struct Walk<'a> {
    g: &'a Program,
    trie: &'a TokenTrie,
    stacks: &'a mut Stacks,
    ids: FastMap<Vec<u32>, u32>,
    states: Vec<Vec<u32>>,
    /// Per state, the bytes it can accept.
    firsts: Vec<ByteSet>,
    /// `next[state * 256 + byte]`: the next state, `DEAD` when rejected, `UNKNOWN` before the
    /// first time (a table, not a map: this lookup is the cost of most trie nodes).
    next: Vec<u32>,
    scratch: Vec<u32>,
    /// `(state, byte set)` to the state all those bytes lead to (see `uniform`).
    uniform: FastMap<(u32, u32), u32>,
    out: &'a mut TokenMask,
}

const DEAD: u32 = u32::MAX;
const UNKNOWN: u32 = u32::MAX - 1;

impl Walk<'_> {
    fn run(&mut self, start: &[u32]) {
        self.intern(start.to_vec());
        self.visit(&self.trie.node(0), 0);
    }

    fn intern(&mut self, state: Vec<u32>) -> u32 {
        if let Some(&id) = self.ids.get(&state) {
            return id;
        }
        let id = self.states.len() as u32;
        self.firsts.push(self.stacks.first_bytes(self.g, &state));
        self.next.resize(self.next.len() + 256, UNKNOWN);
        self.ids.insert(state.clone(), id);
        self.states.push(state);
        id
    }

    fn advance(&mut self, state: u32, byte: u8) -> u32 {
        let slot = state as usize * 256 + usize::from(byte);
        match self.next.get(slot) {
            Some(&UNKNOWN) => {}
            Some(&t) => return t,
            None => return DEAD,
        }
        let accepts = self.firsts.get(state as usize).is_some_and(|f| set_has(f, byte));
        let from = self.states.get(state as usize).map(Vec::as_slice).unwrap_or(&[]);
        let t = if accepts && self.stacks.step(self.g, from, byte, &mut self.scratch) {
            let next = std::mem::take(&mut self.scratch);
            self.intern(next)
        } else {
            DEAD
        };
        if let Some(s) = self.next.get_mut(slot) {
            *s = t;
        }
        t
    }

    /// Visit the children of `node`, reached in `state`. Recursion depth is the longest token.
    fn visit(&mut self, node: &TrieNode, state: u32) {
        let first = self.firsts.get(state as usize).copied().unwrap_or_default();
        for &(b, child_id) in self.trie.children(node) {
            if !set_has(&first, b) {
                continue;
            }
            let next = self.advance(state, b);
            if next == DEAD {
                continue;
            }
            let child = self.trie.node(child_id);
            if self.accepts_subtree(next, &child) {
                self.mark(child.tokens_start, child.subtree_end);
                continue;
            }
            self.mark(child.tokens_start, child.own_end);
            self.visit(&child, next);
        }
    }

    /// Whether every token below `node` is accepted from `state`: true when each byte that occurs
    /// below leads to one same live state, and again from there, as deep as the subtree goes.
    /// This covers a state that loops (inside a JSON string: any ordinary character leads back to
    /// it) and a counted repetition (a string of at most n characters: each character leads to
    /// "n - 1 left"), where nearly the whole vocabulary is allowed.
    fn accepts_subtree(&mut self, state: u32, node: &TrieNode) -> bool {
        if node.depth == 0 {
            return true;
        }
        let mut cur = state;
        for _ in 0..node.depth {
            cur = self.uniform(cur, node.below);
            if cur == DEAD {
                return false;
            }
        }
        true
    }

    /// The state that every byte of the set `below` leads to from `state`; `DEAD` if they lead to
    /// different states or are rejected.
    fn uniform(&mut self, state: u32, below: u32) -> u32 {
        if let Some(&u) = self.uniform.get(&(state, below)) {
            return u;
        }
        let set = self.trie.below.get(below as usize).copied().unwrap_or_default();
        let first = self.firsts.get(state as usize).copied().unwrap_or_default();
        let mut target = None;
        if set.iter().zip(&first).all(|(s, f)| s & !f == 0) {
            'bytes: for (w, &word) in set.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let b = (w * 64) as u8 + bits.trailing_zeros() as u8;
                    bits &= bits - 1;
                    let t = self.advance(state, b);
                    if t == DEAD || target.is_some_and(|x| x != t) {
                        target = None;
                        break 'bytes;
                    }
                    target = Some(t);
                }
            }
        }
        let u = target.unwrap_or(DEAD);
        self.uniform.insert((state, below), u);
        u
    }

    fn mark(&mut self, start: u32, end: u32) {
        for &id in self.trie.tokens.get(start as usize..end as usize).unwrap_or(&[]) {
            self.out.insert(id);
        }
    }
}
