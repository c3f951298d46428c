//! Any text as a World vocabulary file (the parser of Python literals, no eval), and any bytes
//! through the shipped tokenizer: encode then decode must give the bytes back.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gander::tokenizer::parse_vocab_text(text);
    }
    let tok = gander::tokenizer::Tokenizer::world();
    assert_eq!(tok.decode_bytes(&tok.encode_bytes(data)), data);
});
