//! [`Matcher`]: the recogniser for one generation, advanced byte by byte.
//!
//! Bytes, not characters: a token may end inside a multi-byte character, and the state after it
//! is a valid partial state (the class rules are byte sequences, see utf8.rs). A rejected input
//! leaves the state as it was, so a caller can test a token and pick another.

use super::compile::Program;
use super::mask::MaskCache;
use super::stacks::{Stacks, DONE};
use super::trie::TokenTrie;
use super::Grammar;
use std::sync::Arc;

/// The state of a grammar being matched: which bytes may come next, whether it may end here.
///
/// Memory grows slowly with the accepted input (the stack nodes it went through); one matcher
/// serves one generation.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub(super) program: Arc<Program>,
    pub(super) stacks: Stacks,
    /// The sorted top node ids of the live stacks; empty when nothing can follow (dead).
    pub(super) state: Vec<u32>,
    pub(super) scratch: Vec<u32>,
    pub(super) cache: MaskCache,
}

impl Matcher {
    /// A matcher at the start of `grammar`.
    pub fn new(grammar: &Grammar) -> Matcher {
        let program = Arc::clone(&grammar.program);
        let mut stacks = Stacks::new();
        let mut state = Vec::new();
        stacks.start(&program, &mut state);
        Matcher { program, stacks, state, scratch: Vec::new(), cache: MaskCache::default() }
    }

    /// Advance by `bytes`. Returns false, and leaves the state unchanged, when the grammar does
    /// not allow them here.
    pub fn accept_bytes(&mut self, bytes: &[u8]) -> bool {
        let mark = self.stacks.mark();
        match self.run(bytes) {
            Some(state) => {
                self.state = state;
                true
            }
            None => {
                self.stacks.rollback(mark);
                false
            }
        }
    }

    /// Whether [`Matcher::accept_bytes`] would accept `bytes`, without advancing.
    /// (Takes `&mut self` for the scratch space; the state is unchanged.)
    pub fn would_accept(&mut self, bytes: &[u8]) -> bool {
        let mark = self.stacks.mark();
        let ok = self.run(bytes).is_some();
        self.stacks.rollback(mark);
        ok
    }

    /// Advance by one token of `trie`'s vocabulary; the end-of-text token is accepted (without
    /// changing the state) only where [`Matcher::can_end`]. False for ids without bytes.
    pub fn accept_token(&mut self, trie: &TokenTrie, id: u32) -> bool {
        if trie.end_of_text() == Some(id) {
            return self.can_end();
        }
        match trie.token(id) {
            Some(bytes) if !bytes.is_empty() => self.accept_bytes(bytes),
            _ => false,
        }
    }

    /// The grammar may end here (the input so far is a complete match of `root`).
    pub fn can_end(&self) -> bool {
        self.state.first() == Some(&DONE)
    }

    /// The match is complete and nothing more may follow.
    pub fn is_complete(&self) -> bool {
        self.state.as_slice() == [DONE]
    }

    /// No input can continue from here: the grammar matches nothing at all, or its limits
    /// (nesting, ambiguity) were reached at the start. Never true after a successful accept.
    pub fn is_dead(&self) -> bool {
        self.state.is_empty()
    }

    fn run(&mut self, bytes: &[u8]) -> Option<Vec<u32>> {
        let mut cur = self.state.clone();
        for &b in bytes {
            if !self.stacks.step(&self.program, &cur, b, &mut self.scratch) {
                return None;
            }
            std::mem::swap(&mut cur, &mut self.scratch);
        }
        Some(cur)
    }
}
