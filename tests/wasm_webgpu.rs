//! The WebGPU backend in headless Chromium (SwiftShader) through wasm-bindgen-test: golden
//! logits, parity with the wasm CPU path on every format, states crossing backends, and the
//! streamed loader writing straight into GPU buffers. `make test` runs it.
#![cfg(target_arch = "wasm32")]

#[path = "wasm_common/mod.rs"]
mod common;

use common::*;
use gander::backend::cpu::Cpu;
use gander::backend::gpu::Gpu;
use gander::backend::Backend;
use gander::model::Model;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// CPU vs WebGPU on the same file: both fp32 with different summation order (measured ~1e-6).
const PARITY_TOL: f64 = 1e-4;
/// The same for int8/q4 files: the wasm CPU path decodes them through 16-bit activations
/// (src/backend/cpu/a16.rs: each activation within 1.5e-5 of its block's largest), the GPU in
/// f32; measured 7e-5 to 1.5e-4 after 3 random layers, so 1e-3.
const PARITY_TOL_A16: f64 = 1e-3;

#[wasm_bindgen_test]
async fn webgpu_golden_logits() {
    let gpu = Gpu::new_async().await.expect("WebGPU adapter (Chromium needs --enable-unsafe-webgpu)");
    for c in cases() {
        let m = Model::load(gpu.clone(), gander::format::open_bytes(c.pth.to_vec()).unwrap().as_mut()).unwrap();
        let e = worst_golden(&m, &c).await;
        assert!(e <= FP32_TOL, "{}: {e:e}", c.name);
    }
}

#[wasm_bindgen_test]
async fn webgpu_matches_cpu_on_every_format_streamed() {
    let gpu = Gpu::new_async().await.unwrap();
    let c = &cases()[0];
    let g = golden(c);
    for quant in ["f32", "f16", "int8", "q4"] {
        let file = to_gander(c.pth, quant);
        let mg = load_streamed(gpu.clone(), &file);
        let mc = load_streamed(Cpu, &file);
        let mut sg = mg.new_state().unwrap();
        let mut sc = mc.new_state().unwrap();
        let lg = mg.forward_async(&mut sg, &g.tokens).await.unwrap();
        let lc = mc.forward_async(&mut sc, &g.tokens).await.unwrap();
        let tol = if matches!(quant, "int8" | "q4") { PARITY_TOL_A16 } else { PARITY_TOL };
        let e = rel_err(&lg, &lc);
        assert!(e <= tol, "{quant}: {e:e}");
        // States cross backends: GPU state continues on the CPU and vice versa.
        let hg = mg.backend.state_to_host_async(&sg).await.unwrap();
        let hc = mc.backend.state_to_host_async(&sc).await.unwrap();
        let mut on_cpu = mc.backend.state_from_host(&hg).unwrap();
        let mut on_gpu = mg.backend.state_from_host(&hc).unwrap();
        let a = mc.forward_async(&mut on_cpu, &[7]).await.unwrap();
        let b = mg.forward_async(&mut on_gpu, &[7]).await.unwrap();
        let r = mc.forward_async(&mut sc, &[7]).await.unwrap();
        let (ea, eb) = (rel_err(&a, &r), rel_err(&b, &r));
        assert!(ea <= tol && eb <= tol, "{quant}: crossed states {ea:e} {eb:e} (logits {e:e})");
    }
}

#[wasm_bindgen_test]
async fn lost_device_is_an_error_not_a_trap() {
    let gpu = Gpu::new_async().await.unwrap();
    let c = &cases()[2];
    let m = Model::load(gpu.clone(), gander::format::open_bytes(c.pth.to_vec()).unwrap().as_mut()).unwrap();
    let mut st = m.new_state().unwrap();
    m.forward_async(&mut st, &[1, 2]).await.unwrap();
    gpu.ctx.simulate_loss();
    let e = m.forward_async(&mut st, &[3]).await.unwrap_err();
    assert_eq!(e.code(), "DEVICE_LOST", "{e}");
}

/// Issue 20 in the browser: greedy decoding with the token picked on the device gives the
/// official package's greedy tokens, and after a session's first tokens (`WARM_UP`) each one
/// creates no bind group and no buffer, submits once and reads back 4 bytes (SwiftShader).
#[wasm_bindgen_test]
async fn webgpu_device_sampling_matches_goldens_and_creates_nothing_per_token() {
    use gander::backend::{SampleJob, NO_TOKEN};
    use gander::sampler::SamplerOptions;
    /// Tokens before the steady state: a session's first token builds bind groups for its state,
    /// and the two logits buffers that alternate (one is held while the next token runs) settle
    /// by the third (tests/gpu.rs prints the per-token counts).
    const WARM_UP: usize = 3;
    let gpu = Gpu::new_async().await.unwrap();
    let opts = SamplerOptions { temperature: 0.0, ..Default::default() };
    for c in cases() {
        let g = golden(&c);
        let m = Model::load(gpu.clone(), gander::format::open_bytes(c.pth.to_vec()).unwrap().as_mut()).unwrap();
        let mut st = m.new_state().unwrap();
        let mut logits = m.forward_device(&mut st, &g.tokens).unwrap();
        let mut occ = m.backend.act_from_host(1, g.vocab, &vec![0.0; g.vocab]).unwrap();
        let mut got = Vec::new();
        for i in 0..g.greedy.len() {
            if i == WARM_UP {
                m.backend.take_counters();
            }
            let job = SampleJob { opts: &opts, uniform: 0.0, mask: None, bias: &[] };
            let id = m.backend.sample(&logits, &mut occ, &job).unwrap();
            let t = m.backend.read_async(&id).await.unwrap().first().map_or(NO_TOKEN, |x| x.to_bits());
            got.push(t);
            logits = m.forward_device(&mut st, &[t]).unwrap();
        }
        let n = (g.greedy.len() - WARM_UP) as u64;
        let k = m.backend.take_counters().unwrap();
        assert_eq!(got, g.greedy, "{}: greedy tokens", c.name);
        assert_eq!((k.bind_groups_created, k.buffers_created, k.submits, k.readback_bytes), (0, 0, n, 4 * n), "{}: {k:?}", c.name);
    }
}
