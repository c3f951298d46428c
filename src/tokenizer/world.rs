//! The RWKV World tokenizer (spec §6).
//!
//! The vocabulary `rwkv_vocab_v20230424.txt` ships inside the crate, byte-identical to the copy
//! in the official `rwkv` package 0.8.32 (Apache-2.0, BlinkDL/ChatRWKV) with its CRLF line ends
//! turned into LF (SHA-256 `e6dee3d4…bca89`, the same as the git copy). Each line is
//! `<id> <python literal> <byte length>`; the literal is parsed here by a small reader of the
//! escapes that occur (no `eval`), and the byte length is checked for every line.
//!
//! Encoding is greedy longest match from the left, through a trie stored as flat arrays.

const VOCAB: &str = include_str!("rwkv_vocab_v20230424.txt");

/// The largest id in the vocabulary file.
pub const MAX_ID: u32 = 65529;

/// One trie node: the token that ends here (0 = none) and its children's slice of the edge arrays.
#[derive(Clone, Copy, Debug)]
struct Node {
    token: u32,
    first_edge: u32,
    edges: u32,
}

/// The World vocabulary and its trie.
#[derive(Debug)]
pub struct World {
    /// Token bytes, concatenated; token `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    nodes: Vec<Node>,
    edge_byte: Vec<u8>,
    edge_node: Vec<u32>,
}

/// Parse one Python `str` or `bytes` literal as it occurs in the vocabulary file.
pub(crate) fn parse_literal(lit: &str) -> Option<Vec<u8>> {
    let (is_bytes, body) = match lit.strip_prefix('b') {
        Some(rest) => (true, rest),
        None => (false, lit),
    };
    let quote = body.chars().next()?;
    if (quote != '\'' && quote != '"') || body.len() < 2 || !body.ends_with(quote) {
        return None;
    }
    let inner = &body[1..body.len() - 1];
    let mut out = Vec::new();
    let mut chars = inner.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| -> Option<u32> {
        let s: String = chars.by_ref().take(n).collect();
        if s.len() != n {
            None
        } else {
            u32::from_str_radix(&s, 16).ok()
        }
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let code = match chars.next()? {
            'n' => '\n' as u32,
            't' => '\t' as u32,
            'r' => '\r' as u32,
            '\\' => '\\' as u32,
            '\'' => '\'' as u32,
            '"' => '"' as u32,
            'x' => {
                let v = hex(&mut chars, 2)?;
                if is_bytes {
                    out.push(v as u8);
                    continue;
                }
                v // in a str literal, \xHH is the code point U+00HH
            }
            'u' if !is_bytes => hex(&mut chars, 4)?,
            _ => return None,
        };
        let ch = char::from_u32(code)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Some(out)
}

/// Parse the vocabulary text into `tokens[id]` (id 0 has no bytes).
pub(crate) fn parse_vocab(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut tokens = vec![Vec::new()];
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (id, rest) = line.split_once(' ').ok_or(format!("line {}: no id", n + 1))?;
        let (lit, len) = rest.rsplit_once(' ').ok_or(format!("line {}: no length", n + 1))?;
        let id: usize = id.parse().map_err(|_| format!("line {}: bad id", n + 1))?;
        let len: usize = len.parse().map_err(|_| format!("line {}: bad length", n + 1))?;
        let bytes = parse_literal(lit).ok_or(format!("line {}: bad literal {lit}", n + 1))?;
        if id != tokens.len() || bytes.len() != len || bytes.is_empty() {
            return Err(format!("line {}: id {id} or length {len} inconsistent", n + 1));
        }
        tokens.push(bytes);
    }
    Ok(tokens)
}

impl World {
    /// The shipped vocabulary. It is checked by the test suite, so parsing it cannot fail in a
    /// released build; should it ever, the tokenizer degrades to single bytes, which still
    /// round-trips every input, rather than panicking.
    pub(crate) fn builtin() -> World {
        let tokens = parse_vocab(VOCAB).unwrap_or_else(|_| std::iter::once(Vec::new()).chain((0..=255u8).map(|b| vec![b])).collect());
        World::from_tokens(&tokens)
    }

    fn from_tokens(tokens: &[Vec<u8>]) -> World {
        let mut bytes = Vec::new();
        let mut offsets = vec![0u32];
        for t in tokens {
            bytes.extend_from_slice(t);
            offsets.push(bytes.len() as u32);
        }
        // Build the trie from the tokens in bytewise order: a node covers a range of tokens that
        // share its prefix; children split the range by the next byte.
        let tok = |i: u32| tokens.get(i as usize).map(Vec::as_slice).unwrap_or_default();
        let mut order: Vec<u32> = (1..tokens.len() as u32).collect();
        order.sort_by(|&a, &b| tok(a).cmp(tok(b)));
        let mut w = World { bytes, offsets, nodes: Vec::new(), edge_byte: Vec::new(), edge_node: Vec::new() };
        w.nodes.push(Node { token: 0, first_edge: 0, edges: 0 });
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, order.len(), 0usize)]);
        while let Some((node, lo, hi, depth)) = queue.pop_front() {
            let mut range = order.get(lo..hi).unwrap_or_default();
            // The token that is exactly this node's prefix sorts first in its range.
            let mut token = 0;
            if let Some((&first, rest)) = range.split_first() {
                if tok(first).len() == depth {
                    token = first;
                    range = rest;
                }
            }
            let first_edge = w.edge_byte.len() as u32;
            let mut start = hi - range.len();
            while let Some((&t, rest)) = range.split_first() {
                let Some(&b) = tok(t).get(depth) else {
                    // A duplicate of this node's token (the shipped vocabulary has none): skip it.
                    range = rest;
                    start += 1;
                    continue;
                };
                let run = range.iter().take_while(|&&u| tok(u).get(depth) == Some(&b)).count();
                let child = w.nodes.len();
                w.nodes.push(Node { token: 0, first_edge: 0, edges: 0 });
                w.edge_byte.push(b);
                w.edge_node.push(child as u32);
                queue.push_back((child, start, start + run, depth + 1));
                start += run;
                range = range.get(run..).unwrap_or_default();
            }
            let edges = w.edge_byte.len() as u32 - first_edge;
            if let Some(n) = w.nodes.get_mut(node) {
                *n = Node { token, first_edge, edges };
            }
        }
        w
    }

    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let n = self.nodes.get(node)?;
        let s = n.first_edge as usize;
        let i = self.edge_byte.get(s..s + n.edges as usize)?.binary_search(&b).ok()?;
        self.edge_node.get(s + i).map(|&c| c as usize)
    }

    /// Greedy longest-match encoding (spec §6.2).
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut rest = text;
        while let Some(&first) = rest.first() {
            let mut node = 0;
            // Every single byte is a token (id = byte + 1), so a match always exists.
            let mut best = (first as u32 + 1, 1);
            for (i, &b) in rest.iter().enumerate() {
                match self.child(node, b) {
                    Some(c) => node = c,
                    None => break,
                }
                let t = self.nodes.get(node).map_or(0, |n| n.token);
                if t != 0 {
                    best = (t, i + 1);
                }
            }
            out.push(best.0);
            rest = rest.get(best.1..).unwrap_or_default();
        }
        out
    }

    /// The bytes of token `id`, or `None` for id 0 and ids past the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        if i == 0 {
            return None;
        }
        let (&a, &b) = (self.offsets.get(i)?, self.offsets.get(i + 1)?);
        self.bytes.get(a as usize..b as usize)
    }

    /// Number of ids with bytes (65,529).
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(2)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_vocab_parses_with_every_length_checked() {
        let t = parse_vocab(VOCAB).expect("vocab parses");
        assert_eq!(t.len() - 1, MAX_ID as usize);
        // First 256 ids are the single bytes, id = byte + 1 (spec §6.1).
        for b in 0..=255u8 {
            assert_eq!(t[b as usize + 1], vec![b]);
        }
        assert_eq!(t[65529], vec![b' '; 128]);
    }

    #[test]
    fn literal_escapes() {
        assert_eq!(parse_literal(r"'\x80'").unwrap(), vec![0xC2, 0x80]);
        assert_eq!(parse_literal(r"b'\x80'").unwrap(), vec![0x80]);
        assert_eq!(parse_literal(r#""'""#).unwrap(), b"'".to_vec());
        assert_eq!(parse_literal(r"'\u00e9'").unwrap(), "é".as_bytes().to_vec());
        assert!(parse_literal("'abc").is_none());
    }
}
