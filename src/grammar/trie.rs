//! [`TokenTrie`]: a vocabulary's token byte strings as a prefix tree, built once per vocabulary.
//!
//! The mask walk (mask.rs) goes down this tree and drops a whole subtree as soon as its prefix is
//! rejected. Nodes are numbered in preorder, so the tokens under a node are one contiguous slice
//! of `tokens`, and each node records the set of bytes that occur below it and the longest path
//! below it, so that the walk can accept a whole subtree at once (mask.rs).

use super::compile::ByteSet;
use crate::tokenizer::Tokenizer;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TrieNode {
    /// Children: `edges[edges_start..edges_end]`, sorted by byte.
    pub edges_start: u32,
    pub edges_end: u32,
    /// Tokens ending here: `tokens[tokens_start..own_end]`; in the subtree: `..subtree_end`.
    pub tokens_start: u32,
    pub own_end: u32,
    pub subtree_end: u32,
    /// Index into `below`: the bytes on the edges under this node.
    pub below: u32,
    /// The longest path below this node, in bytes.
    pub depth: u32,
}

/// A vocabulary as a trie of token bytes, for [`super::Matcher::allowed`].
#[derive(Clone, Debug)]
pub struct TokenTrie {
    vocab: usize,
    end_of_text: Option<u32>,
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    pub(super) nodes: Vec<TrieNode>,
    pub(super) edges: Vec<(u8, u32)>,
    pub(super) tokens: Vec<u32>,
    pub(super) below: Vec<ByteSet>,
}

impl TokenTrie {
    /// The trie of `tokenizer`'s tokens for a model with `vocab` output rows (ids the tokenizer
    /// has no bytes for are never allowed; its end-of-text id is allowed where the grammar may end).
    pub fn new(tokenizer: &Tokenizer, vocab: usize) -> TokenTrie {
        TokenTrie::from_fn(vocab, tokenizer.end_of_text(), |id| tokenizer.token_bytes(id))
    }

    /// The trie of ids `0..vocab` with bytes `bytes_of(id)`; `None` or empty: never allowed.
    pub fn from_fn<'a>(vocab: usize, end_of_text: Option<u32>, bytes_of: impl Fn(u32) -> Option<&'a [u8]>) -> TokenTrie {
        let vocab = vocab.min(u32::MAX as usize);
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(vocab + 1);
        // Build with per-node child lists, then renumber in preorder.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ends: Vec<Vec<u32>> = vec![Vec::new()];
        for id in 0..vocab as u32 {
            offsets.push(bytes.len() as u32);
            let tb = if Some(id) == end_of_text { None } else { bytes_of(id) };
            let Some(tb) = tb.filter(|b| !b.is_empty()) else {
                continue;
            };
            bytes.extend_from_slice(tb);
            let mut node = 0usize;
            for &b in tb {
                let found = children.get(node).and_then(|c| c.iter().find(|e| e.0 == b)).map(|e| e.1 as usize);
                node = match found {
                    Some(n) => n,
                    None => {
                        let n = children.len();
                        children.push(Vec::new());
                        ends.push(Vec::new());
                        if let Some(c) = children.get_mut(node) {
                            c.push((b, n as u32));
                        }
                        n
                    }
                };
            }
            if let Some(e) = ends.get_mut(node) {
                e.push(id);
            }
        }
        offsets.push(bytes.len() as u32);

        // Preorder numbering: `order[new] = old`.
        let mut order = Vec::with_capacity(children.len());
        let mut todo = vec![0u32];
        while let Some(old) = todo.pop() {
            order.push(old);
            if let Some(c) = children.get_mut(old as usize) {
                c.sort_unstable();
                todo.extend(c.iter().rev().map(|e| e.1));
            }
        }
        let mut new_id = vec![0u32; children.len()];
        for (new, &old) in order.iter().enumerate() {
            if let Some(slot) = new_id.get_mut(old as usize) {
                *slot = new as u32;
            }
        }
        let mut nodes = vec![TrieNode::default(); order.len()];
        let mut edges = Vec::with_capacity(order.len());
        let mut tokens = Vec::new();
        for (node, &old) in nodes.iter_mut().zip(&order) {
            node.edges_start = edges.len() as u32;
            for &(b, c) in children.get(old as usize).map(Vec::as_slice).unwrap_or(&[]) {
                edges.push((b, new_id.get(c as usize).copied().unwrap_or(0)));
            }
            node.edges_end = edges.len() as u32;
            node.tokens_start = tokens.len() as u32;
            tokens.extend_from_slice(ends.get(old as usize).map(Vec::as_slice).unwrap_or(&[]));
            node.own_end = tokens.len() as u32;
        }
        // Bottom-up (reverse preorder): subtree token ends and the bytes below each node.
        let mut below = vec![ByteSet::default()];
        let mut below_ids: HashMap<ByteSet, u32> = HashMap::from([(ByteSet::default(), 0)]);
        let mut unions = vec![ByteSet::default(); nodes.len()];
        for i in (0..nodes.len()).rev() {
            let Some(&n) = nodes.get(i) else { continue };
            let mut end = n.own_end;
            let mut depth = 0;
            let mut set = ByteSet::default();
            for &(b, c) in edges.get(n.edges_start as usize..n.edges_end as usize).unwrap_or(&[]) {
                let child = nodes.get(c as usize).copied().unwrap_or_default();
                end = end.max(child.subtree_end);
                depth = depth.max(child.depth + 1);
                if let Some(w) = set.get_mut(usize::from(b >> 6)) {
                    *w |= 1 << (b & 63);
                }
                for (s, u) in set.iter_mut().zip(unions.get(c as usize).copied().unwrap_or_default()) {
                    *s |= u;
                }
            }
            let next = below.len() as u32;
            let id = *below_ids.entry(set).or_insert(next);
            if id == next {
                below.push(set);
            }
            if let (Some(node), Some(u)) = (nodes.get_mut(i), unions.get_mut(i)) {
                node.subtree_end = end;
                node.below = id;
                node.depth = depth;
                *u = set;
            }
        }
        TokenTrie { vocab, end_of_text, bytes, offsets, nodes, edges, tokens, below }
    }

    /// The number of token ids (the length of a mask).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The end-of-text id, if the vocabulary has one.
    pub fn end_of_text(&self) -> Option<u32> {
        self.end_of_text
    }

    /// The bytes of token `id` (empty for ids without bytes); `None` past the vocabulary.
    pub fn token(&self, id: u32) -> Option<&[u8]> {
        let start = *self.offsets.get(id as usize)? as usize;
        let end = *self.offsets.get(id as usize + 1)? as usize;
        self.bytes.get(start..end)
    }

    pub(super) fn node(&self, id: u32) -> TrieNode {
        self.nodes.get(id as usize).copied().unwrap_or_default()
    }

    pub(super) fn children(&self, n: &TrieNode) -> &[(u8, u32)] {
        self.edges.get(n.edges_start as usize..n.edges_end as usize).unwrap_or(&[])
    }
}
