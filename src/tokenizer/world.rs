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
        if s.len() != n { None } else { u32::from_str_radix(&s, 16).ok() }
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
        let tokens = parse_vocab(VOCAB).unwrap_or_else(|_| {
            std::iter::once(Vec::new()).chain((0..=255u8).map(|b| vec![b])).collect()
        });
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
        let mut order: Vec<u32> = (1..tokens.len() as u32).collect();
        order.sort_by(|&a, &b| tokens[a as usize].cmp(&tokens[b as usize]));
        let mut w = World { bytes, offsets, nodes: Vec::new(), edge_byte: Vec::new(), edge_node: Vec::new() };
        w.nodes.push(Node { token: 0, first_edge: 0, edges: 0 });
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, order.len(), 0usize)]);
        while let Some((node, mut lo, hi, depth)) = queue.pop_front() {
            if lo < hi && tokens[order[lo] as usize].len() == depth {
                w.nodes[node].token = order[lo];
                lo += 1;
            }
            let first_edge = w.edge_byte.len() as u32;
            let mut i = lo;
            while i < hi {
                let b = tokens[order[i] as usize][depth];
                let mut j = i;
                while j < hi && tokens[order[j] as usize][depth] == b {
                    j += 1;
                }
                let child = w.nodes.len();
                w.nodes.push(Node { token: 0, first_edge: 0, edges: 0 });
                w.edge_byte.push(b);
                w.edge_node.push(child as u32);
                queue.push_back((child, i, j, depth + 1));
                i = j;
            }
            w.nodes[node].first_edge = first_edge;
            w.nodes[node].edges = w.edge_byte.len() as u32 - first_edge;
        }
        w
    }

    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let n = self.nodes[node];
        let (s, e) = (n.first_edge as usize, (n.first_edge + n.edges) as usize);
        self.edge_byte[s..e].binary_search(&b).ok().map(|i| self.edge_node[s + i] as usize)
    }

    /// Greedy longest-match encoding (spec §6.2).
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut p = 0;
        while p < text.len() {
            let mut node = 0;
            // Every single byte is a token (id = byte + 1), so a match always exists.
            let mut best = (text[p] as u32 + 1, p + 1);
            for (i, &b) in text[p..].iter().enumerate() {
                match self.child(node, b) {
                    Some(c) => node = c,
                    None => break,
                }
                if self.nodes[node].token != 0 {
                    best = (self.nodes[node].token, p + i + 1);
                }
            }
            out.push(best.0);
            p = best.1;
        }
        out
    }

    /// The bytes of token `id`, or `None` for id 0 and ids past the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        if i == 0 || i + 1 >= self.offsets.len() {
            return None;
        }
        Some(&self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize])
    }

    /// Number of ids with bytes (65,529).
    pub fn len(&self) -> usize {
        self.offsets.len() - 2
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
