//! Any text as a GBNF grammar: parsing and compiling must give a grammar or an error (never a
//! panic, a stack overflow or a huge allocation), and a grammar that compiles must run: a few
//! bytes through a matcher, with a token mask over the byte-level vocabulary at each step.
#![no_main]
use gander::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
use gander::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static TRIE: OnceLock<TokenTrie> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // The last 8 bytes (when there are more) are input to match; the rest is the grammar.
    let (text, input) = data.split_at(data.len().saturating_sub(8));
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(g) = Grammar::parse_gbnf(text) else {
        return;
    };
    let trie = TRIE.get_or_init(|| TokenTrie::new(&Tokenizer::Bytes, 256));
    let mut m = Matcher::new(&g);
    let mut mask = TokenMask::new(256);
    for &b in input {
        m.allowed(trie, &mut mask);
        // The mask and the recogniser agree on every byte.
        assert_eq!(mask.contains(u32::from(b)), m.would_accept(&[b]));
        if !m.accept_bytes(&[b]) {
            break;
        }
    }
});
