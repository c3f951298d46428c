//! The GPU backend (WGSL through wgpu) against the official goldens and against the CPU backend,
//! on whatever adapter wgpu finds: lavapipe (software Vulkan) in `make test`, which sets
//! GANDER_REQUIRE_GPU=1 so a missing adapter fails instead of skipping.

mod common;
use common::*;
use gander::backend::gpu::Gpu;
use gander::model::Model;
use std::sync::OnceLock;

/// GPU vs the official fp32 logits: issue 4's bound for f16-stored weights. The GPU computes in
/// f32 like the CPU, so the measured error is far smaller (printed by the tests).
const GPU_TOL: f64 = 2e-3;

fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => {
            eprintln!("GPU adapter: {}", g.ctx.adapter_name);
            Some(g)
        }
        Err(e) => {
            assert_eq!(e.code(), "NO_WEBGPU", "{e}");
            assert!(std::env::var("GANDER_REQUIRE_GPU").is_err(), "GANDER_REQUIRE_GPU is set but: {e}");
            eprintln!("SKIPPED: {e}");
            None
        }
    })
    .as_ref()
}

fn load_gpu(path: &std::path::Path) -> Model<Gpu> {
    let mut src = gander::format::open_path(path).unwrap();
    Model::load(gpu().unwrap().clone(), src.as_mut()).unwrap()
}

#[test]
fn gpu_logits_match_official_package() {
    if gpu().is_none() {
        return;
    }
    for case in CASES {
        let g = golden(case);
        let want = read_f32(&golden_dir(case).join("logits_one.f32"));
        let m = load_gpu(&golden_dir(case).join("model.pth"));
        let mut st = m.new_state().unwrap();
        let mut worst = 0f64;
        for (t, &tok) in g.tokens.iter().enumerate() {
            let got = m.forward(&mut st, &[tok]).unwrap();
            worst = worst.max(rel_err(&got, &want[t * g.vocab..(t + 1) * g.vocab]));
        }
        println!("{case}: GPU token-by-token max|d|/std = {worst:.2e}");
        assert!(worst <= GPU_TOL, "{case}: {worst:e}");
    }
}
