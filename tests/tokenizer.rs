//! World tokenizer against the official TRIE_TOKENIZER goldens, round trips, streaming decode.

use gander::tokenizer::{StreamDecoder, Tokenizer};

#[derive(serde::Deserialize)]
struct Case {
    text: Option<String>,
    hex: Option<String>,
    ids: Vec<u32>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn world_matches_official_tokenizer_on_hard_strings() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tokenizer.json");
    let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 25);
    let tok = Tokenizer::world();
    for c in &cases {
        let bytes = match (&c.text, &c.hex) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(h)) => unhex(h),
            _ => panic!("bad case"),
        };
        assert_eq!(tok.encode_bytes(&bytes), c.ids, "case {:?}", c.text);
        assert_eq!(tok.decode_bytes(&c.ids), bytes, "round trip {:?}", c.text);
    }
}

#[test]
fn spec_test_vectors() {
    let tok = Tokenizer::world();
    assert_eq!(tok.encode("Hello world"), vec![33155, 40213]);
    assert_eq!(tok.encode("\n\n"), vec![261]);
    assert_eq!(tok.encode("User:"), vec![24281, 59]);
    assert_eq!(tok.encode("你好"), vec![10464, 11685]);
    assert_eq!(tok.encode("😀"), vec![3319, 153, 129]);
    assert_eq!(tok.token_bytes(0), None);
    assert_eq!(tok.token_bytes(65530), None);
    assert!(tok.can_sample(0) && !tok.can_sample(65530));
}

#[test]
fn arbitrary_bytes_round_trip() {
    let tok = Tokenizer::world();
    let mut x = 12345u64;
    for len in [0usize, 1, 2, 3, 17, 255, 1000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 33) as u8
            })
            .collect();
        assert_eq!(tok.decode_bytes(&tok.encode_bytes(&bytes)), bytes);
    }
    let b = Tokenizer::Bytes;
    assert_eq!(b.encode("hé"), vec![104, 0xC3, 0xA9]);
}

#[test]
fn streaming_never_splits_a_character() {
    let tok = Tokenizer::world();
    let text = "a😀b你好👨‍👩‍👧 ok";
    let ids = tok.encode(text);
    let mut dec = StreamDecoder::new();
    let mut out = String::new();
    for id in ids {
        let chunk = dec.push(tok.token_bytes(id).unwrap());
        // Every chunk is whole characters: it must appear as-is in the original text.
        assert!(text.contains(&chunk), "chunk {chunk:?} split a character");
        out.push_str(&chunk);
    }
    out.push_str(&dec.finish());
    assert_eq!(out, text);
    // Invalid bytes become U+FFFD without losing what follows.
    let mut dec = StreamDecoder::new();
    assert_eq!(dec.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
    assert_eq!(dec.push(&[0xE4, 0xBD]), "");
    assert_eq!(dec.push(&[0xA0]), "你");
}
