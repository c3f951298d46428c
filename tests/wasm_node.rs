//! The engine compiled to wasm32-unknown-unknown (the npm package's build), in Node through
//! wasm-bindgen-test: the wasm CPU path (simd128) against the official package's logits, the
//! streamed loader, the greedy continuation, and states. `make test` runs it.
#![cfg(target_arch = "wasm32")]

#[path = "wasm_common/mod.rs"]
mod common;

use common::*;
use gander::backend::cpu::Cpu;
use gander::backend::Backend;
use gander::model::Model;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn cpu_golden_logits_whole_and_streamed() {
    for c in cases() {
        let whole = Model::load(Cpu, gander::format::open_bytes(c.pth.to_vec()).unwrap().as_mut()).unwrap();
        let e = worst_golden(&whole, &c).await;
        assert!(e <= FP32_TOL, "{}: {e:e}", c.name);
        // The same model streamed part by part from a Gander f32 file.
        let streamed = load_streamed(Cpu, &to_gander(c.pth, "f32"));
        assert_eq!(streamed.fingerprint, whole.fingerprint, "{}", c.name);
        let e2 = worst_golden(&streamed, &c).await;
        assert!(e2 <= FP32_TOL, "{} streamed: {e2:e}", c.name);
    }
}

#[wasm_bindgen_test]
async fn cpu_greedy_and_state_round_trip() {
    for c in cases() {
        let g = golden(&c);
        let m = Model::load(Cpu, gander::format::open_bytes(c.pth.to_vec()).unwrap().as_mut()).unwrap();
        let mut st = m.new_state().unwrap();
        let mut logits = m.forward_async(&mut st, &g.tokens).await.unwrap();
        let saved = m.backend.state_to_host_async(&st).await.unwrap().to_bytes();
        let mut got = Vec::new();
        for _ in 0..g.greedy.len() {
            let t = logits.iter().enumerate().fold(0, |b, (i, &x)| if x > logits[b] { i } else { b }) as u32;
            got.push(t);
            logits = m.forward_async(&mut st, &[t]).await.unwrap();
        }
        assert_eq!(got, g.greedy, "{}", c.name);
        let mut back = gander::State::from_bytes(&saved, &m.config, &m.fingerprint).unwrap();
        let a = m.forward_async(&mut back, &[1]).await.unwrap();
        let mut st2 = m.new_state().unwrap();
        m.forward_async(&mut st2, &g.tokens).await.unwrap();
        let b = m.forward_async(&mut st2, &[1]).await.unwrap();
        assert_eq!(a, b, "{}: a restored state continues exactly", c.name);
    }
}
