//! Any bytes as a saved state for a small model shape: refused with STATE_MISMATCH or accepted,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = gander::Config {
        vocab: 256, embd: 64, layers: 2, heads: 1, head_size: 64, ffn: 256,
        rank_w: 8, rank_a: 8, rank_v: 8, rank_g: 8, layer0_has_v: false, deep_embed: 0,
    };
    let fp = if data.len() >= 44 { let mut f = [0u8; 32]; f.copy_from_slice(&data[12..44]); f } else { [0; 32] };
    if let Ok(st) = gander::State::from_bytes(data, &cfg, &fp) {
        assert_eq!(st.to_bytes(), data, "an accepted state round-trips exactly");
    }
});
