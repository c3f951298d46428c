//! Grammar-constrained decoding: the recogniser against hand-written strings, token masks against
//! a brute-force check of every token, and JSON schemas (tests/grammar/schema.rs).

#[path = "grammar/schema.rs"]
mod schema;

use gander::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
use gander::tokenizer::Tokenizer;

/// Seeded xorshift64, so every run walks the same states.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn check(grammar: &str, accept: &[&str], reject: &[&str]) {
    let g = Grammar::parse_gbnf(grammar).unwrap();
    for s in accept {
        let mut m = Matcher::new(&g);
        assert!(m.accept_bytes(s.as_bytes()) && m.can_end(), "{grammar:?} should accept {s:?}");
    }
    for s in reject {
        let mut m = Matcher::new(&g);
        assert!(!(m.accept_bytes(s.as_bytes()) && m.can_end()), "{grammar:?} should reject {s:?}");
    }
}

#[test]
fn repetition_counts() {
    check(r#"root ::= "a"{2,4} "b"{3} "c"{2,} "d"{,1}"#, &["aabbbcc", "aaaabbbcccccd"], &["abbbcc", "aaaaabbbcc", "aabbcc", "aabbbc", "aabbbccdd"]);
    check(r#"root ::= ("ab" | "c")+ "."?"#, &["ab", "cab.", "ccc"], &["", "a", "ab..", "."]);
    check(r#"root ::= [0-9]{0} "x""#, &["x"], &["0x"]);
}

#[test]
fn negated_classes_and_any() {
    check(r#"root ::= "\"" [^"\\]* "\"""#, &[r#""""#, r#""hello é 😀""#], &[r#""a"b""#, r#""a\""#, "\"abc"]);
    check(r#"root ::= [^a-z\n]+ . "#, &["ABC\n", "é!x"], &["abc", "A\nB"]);
}

#[test]
fn multi_byte_classes() {
    check("root ::= [α-ω]+ [0-9]", &["αβγ1", "ω0"], &["a1", "Α1", "αβ", "α"]);
    check(r#"root ::= [\u4e00-\u9fff]{2} | [😀-🙏]"#, &["中文", "😀", "🙏"], &["中", "中文字", "🙐"]);
}

#[test]
fn a_token_may_split_a_character() {
    let g = Grammar::parse_gbnf("root ::= [α-ω]+ \"!\"").unwrap();
    let bytes = "αω!".as_bytes();
    let mut m = Matcher::new(&g);
    assert!(m.accept_bytes(&bytes[..1]), "lead byte of α");
    assert!(!m.can_end());
    assert!(!m.would_accept(b"!"), "a lead byte must be followed by its continuation");
    assert!(m.accept_bytes(&bytes[1..3]), "rest of α and the lead byte of ω");
    assert!(m.accept_bytes(&bytes[3..]) && m.is_complete());
    assert!(!Matcher::new(&g).accept_bytes(&[0xCE, 0xA0]), "Π (CE A0) is outside α-ω");
}

#[test]
fn left_recursion_is_a_clear_error() {
    let e = Grammar::parse_gbnf("root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]").unwrap_err();
    assert_eq!(e.code(), "BAD_INPUT");
    assert!(e.to_string().contains("rule `expr` can reach itself without consuming input"), "{e}");
}

/// Every allowed id's bytes are accepted and every other id's are not (the mask walk against
/// testing each token), on states reached by a seeded random walk.
fn mask_equals_brute_force(tok: &Tokenizer, vocab: usize, grammar: &str, steps: usize, seed: u64) {
    let g = Grammar::parse_gbnf(grammar).unwrap();
    let trie = TokenTrie::new(tok, vocab);
    let mut m = Matcher::new(&g);
    let mut mask = TokenMask::new(0);
    let mut rng = Rng::new(seed);
    for step in 0..steps {
        m.allowed(&trie, &mut mask);
        assert_eq!(mask.len(), vocab);
        for id in 0..vocab as u32 {
            let expected = match tok.token_bytes(id) {
                _ if tok.end_of_text() == Some(id) => m.can_end(),
                Some(b) if !b.is_empty() => m.would_accept(b),
                _ => false,
            };
            assert_eq!(mask.contains(id), expected, "step {step}, token {id} {:?}", tok.token_bytes(id).map(String::from_utf8_lossy));
        }
        // The cached mask (same state again) is the same.
        let mut again = TokenMask::new(0);
        m.allowed(&trie, &mut again);
        assert_eq!(again, mask);
        let ids: Vec<u32> = mask.iter().filter(|&i| tok.end_of_text() != Some(i)).collect();
        if ids.is_empty() {
            break;
        }
        let id = ids[rng.below(ids.len())];
        // Also through a clone and accept_bytes, the path generation takes.
        let mut c = m.clone();
        assert!(c.accept_bytes(tok.token_bytes(id).unwrap()));
        assert!(m.accept_token(&trie, id));
    }
}

const LIST_GRAMMAR: &str = r#"root ::= "[" ws (item ("," ws item)*)? ws "]"
item ::= [0-9]+ | "\"" [^"\\\n]* "\"" | "null" | [α-ω]{1,3}
ws ::= [ \n]{0,2}"#;

#[test]
fn world_masks_equal_brute_force() {
    let world = Tokenizer::world();
    mask_equals_brute_force(&world, 65536, LIST_GRAMMAR, 12, 1);
    let schema = serde_json::json!({"type":"object","properties":{"n":{"type":"integer"},"s":{"type":"string","maxLength":5}},"required":["s"]});
    let gbnf = gander::grammar::json_schema_to_gbnf(&schema).unwrap();
    mask_equals_brute_force(&world, 65536, &gbnf, 10, 2);
}

#[test]
fn byte_masks_equal_brute_force() {
    for seed in 0..4 {
        mask_equals_brute_force(&Tokenizer::Bytes, 256, LIST_GRAMMAR, 30, seed);
    }
}

#[test]
fn end_of_text_only_where_the_grammar_may_end() {
    let world = Tokenizer::world();
    let trie = TokenTrie::new(&world, 65536);
    let g = Grammar::parse_gbnf(r#"root ::= "ok" "!"?"#).unwrap();
    let mut m = Matcher::new(&g);
    let mut mask = TokenMask::new(0);
    m.allowed(&trie, &mut mask);
    assert!(!mask.contains(0) && !m.accept_token(&trie, 0));
    assert!(m.accept_bytes(b"ok"));
    m.allowed(&trie, &mut mask);
    assert!(mask.contains(0) && m.accept_token(&trie, 0));
    assert!(!mask.contains(65535), "ids past the tokenizer are never allowed");
}
