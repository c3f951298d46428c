//! Any bytes given where a saved state is expected (`session.loadState`, `--state`): a Gander
//! state blob or an RWKV state-tuning file (zip + restricted pickle `.pth`, or safetensors),
//! for the shape of tests/golden/fp32-bytes. Refused with a coded error or accepted as a state
//! of exactly this model's shape with finite values, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = gander::Config {
        vocab: 256, embd: 64, layers: 2, heads: 2, head_size: 32, ffn: 256,
        rank_w: 8, rank_a: 8, rank_v: 8, rank_g: 16, layer0_has_v: false, deep_embed: 0,
    };
    let fp = [7u8; 32];
    match gander::State::from_any_bytes(data, &cfg, &fp) {
        Ok(st) => {
            assert_eq!(st.layers.len(), 2);
            assert_eq!(st.fingerprint, fp);
            for l in &st.layers {
                assert_eq!((l.att_shift.len(), l.wkv.len(), l.ffn_shift.len()), (64, 2 * 32 * 32, 64));
                assert!(l.att_shift.iter().chain(&l.wkv).chain(&l.ffn_shift).all(|x| x.is_finite()));
            }
        }
        Err(e) => assert!(matches!(e.code(), "STATE_MISMATCH" | "BAD_MODEL" | "UNSUPPORTED"), "{e}"),
    }
});
