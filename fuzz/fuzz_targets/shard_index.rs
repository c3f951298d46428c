//! Any bytes as `model.safetensors.index.json` (a Hugging Face shard index): the weight map
//! parses or the error names the problem, never a panic; a parsed map names only plain shard
//! file names (nothing outside the index's directory).
#![no_main]
use gander::format::sharded::parse_index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_index(data) {
        Ok(map) => {
            assert!(!map.is_empty());
            for f in map.values() {
                assert!(!f.contains('/') && !f.contains('\\') && !f.starts_with('.'), "{f:?}");
            }
        }
        Err(e) => assert_eq!(e.code(), "BAD_MODEL", "{e}"),
    }
});
