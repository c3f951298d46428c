//! The shaders as the GPU backend compiles them, checked without a GPU: each one parses and
//! validates with naga (the WGSL compiler wgpu uses natively), and none writes one of the spec's
//! constants as a literal: they come from `config::spec` through the generated prelude, so the
//! CPU and the GPU cannot drift apart.

use gander::backend::gpu::pipelines::{prelude, source, SHADERS};
use gander::config::spec;

/// Shader text without comments (prose may name the constants).
fn code(src: &str) -> String {
    src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_shader_parses_and_validates() {
    for name in SHADERS {
        let src = source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    assert!(source("no-such-shader").is_none());
}

#[test]
fn spec_constants_come_from_rust_only() {
    let literals = ["1e-5", "0.00001", "64e-5", "0.00064", "0.6065", "exp(-0.5)"];
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders")).unwrap() {
        let path = entry.unwrap().path();
        let text = code(&std::fs::read_to_string(&path).unwrap());
        for lit in literals {
            assert!(!text.contains(lit), "{} writes `{lit}`: use the prelude's constant (config::spec)", path.display());
        }
    }
    // The prelude's text parses back to exactly the Rust values.
    let value = |name: &str| -> f32 {
        let p = prelude();
        let line = p.lines().find(|l| l.starts_with(&format!("const {name}: f32 = "))).unwrap();
        line.rsplit(' ').next().unwrap().trim_end_matches(';').parse().unwrap()
    };
    assert_eq!(value("LN_EPS"), spec::LN_EPS as f32);
    assert_eq!(value("GN_EPS"), spec::GN_EPS as f32);
    assert_eq!(value("DECAY_SCALE"), spec::DECAY_SCALE);
    assert_eq!(spec::DECAY_SCALE, (-0.5f64).exp() as f32, "e^-0.5 rounded to f32");
}

/// The prefill tile is set in one place (`pipelines::PREFILL_TILE`, the `TT` override); the
/// shader's accumulator arrays are sized by `MAX_TT`, which must equal it.
#[test]
fn matmul_tile_matches_its_arrays() {
    let src = code(&source("matmul").unwrap());
    let want = format!("const MAX_TT: u32 = {}u;", gander::backend::gpu::pipelines::PREFILL_TILE);
    assert!(src.contains(&want), "shaders/matmul.wgsl must declare `{want}`");
    assert!(src.contains(&format!("array<f32, {}>", 64 * gander::backend::gpu::pipelines::PREFILL_TILE)), "matmul's partial sums hold 64 × MAX_TT");
}

/// Every float literal fits in f32: Chromium's compiler (Tint) refuses one that rounds past
/// the range (naga above accepts it), which would fail every WebGPU device at its first shader.
#[test]
fn float_literals_fit_in_f32() {
    for name in SHADERS {
        let src = code(&source(name).unwrap());
        for tok in src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '-')) {
            let t = tok.trim_start_matches(['-', '+']).trim_end_matches('f');
            if !t.starts_with(|c: char| c.is_ascii_digit()) || !(t.contains('.') || t.contains('e')) {
                continue;
            }
            if let Ok(v) = t.parse::<f64>() {
                assert!(v.abs() <= f32::MAX as f64, "{name}: the literal {tok} is outside the f32 range");
            }
        }
    }
}
