//! Compute pipelines, created once per shader (and per weight format where the shader reads
//! weights). Shader sources are the plain files in `shaders/`; every one gets the spec's
//! constants prepended ([`prelude`]), the weight readers also `shaders/common.wgsl`, and the
//! workgroup sums `shaders/reduce.wgsl`.

use std::collections::HashMap;

/// The operations of `shaders/elementwise.wgsl` (the values match its `op` switch).
#[derive(Clone, Copy, Debug)]
pub enum ElementOp {
    Lerp = 0,
    WriteKey = 1,
    ValueResidual = 2,
    ReluSq = 3,
    Add = 4,
    Mul = 5,
}

pub struct Pipelines {
    matmul: [wgpu::ComputePipeline; 4],
    matmul_tiled: [wgpu::ComputePipeline; 4],
    embed: [wgpu::ComputePipeline; 4],
    pub norm: wgpu::ComputePipeline,
    pub elementwise: wgpu::ComputePipeline,
    pub token_shift: wgpu::ComputePipeline,
    pub removal_key: wgpu::ComputePipeline,
    pub wkv: wgpu::ComputePipeline,
    pub wkv_fused: wgpu::ComputePipeline,
    pub norm_shift: wgpu::ComputePipeline,
    pub gn_bonus_gate: wgpu::ComputePipeline,
    pub sample: wgpu::ComputePipeline,
    pub token_matvec: wgpu::ComputePipeline,
}

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");

/// The spec's constants as WGSL, from [`crate::config::spec`] (printed so that they parse back to
/// the same f32: Rust's `{:?}` of an f32 is the shortest text that round-trips).
pub fn prelude() -> String {
    use crate::config::spec;
    format!(
        "// Generated from config::spec.\nconst LN_EPS: f32 = {:?};\nconst GN_EPS: f32 = {:?};\nconst DECAY_SCALE: f32 = {:?};\n",
        spec::LN_EPS as f32,
        spec::GN_EPS as f32,
        spec::DECAY_SCALE
    )
}

fn pipeline(dev: &wgpu::Device, label: &str, source: &str, constants: &[(&str, f64)]) -> wgpu::ComputePipeline {
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) });
    let constants: HashMap<String, f64> = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let constants: Vec<(&str, f64)> = constants.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
        cache: None,
    })
}

/// Tokens per workgroup in the prefill matrix product (`shaders/matmul.wgsl`'s `TT`; its
/// `MAX_TT` must equal it, which tests/shaders.rs checks): each weight is read once per tile.
pub const PREFILL_TILE: u32 = 16;

/// The shaders, by the label their pipeline carries.
pub const SHADERS: [&str; 12] =
    ["matmul", "embed", "norm", "elementwise", "token_shift", "removal_key", "wkv", "wkv_fused", "norm_shift", "gn_bonus_gate", "sample", "token_matvec"];

/// The whole WGSL source of shader `name` as it is compiled: the [`prelude`], then the shared
/// helpers it uses, then its own file. `None` for a name not in [`SHADERS`].
pub fn source(name: &str) -> Option<String> {
    let (helpers, body) = match name {
        "matmul" => (COMMON, include_str!("../../../shaders/matmul.wgsl")),
        "embed" => (COMMON, include_str!("../../../shaders/embed.wgsl")),
        "norm" => (REDUCE, include_str!("../../../shaders/norm.wgsl")),
        "elementwise" => ("", include_str!("../../../shaders/elementwise.wgsl")),
        "token_shift" => ("", include_str!("../../../shaders/token_shift.wgsl")),
        "removal_key" => ("", include_str!("../../../shaders/removal_key.wgsl")),
        "wkv" => ("", include_str!("../../../shaders/wkv.wgsl")),
        "wkv_fused" => (REDUCE, include_str!("../../../shaders/wkv_fused.wgsl")),
        "norm_shift" => (REDUCE, include_str!("../../../shaders/norm_shift.wgsl")),
        "gn_bonus_gate" => (REDUCE, include_str!("../../../shaders/gn_bonus_gate.wgsl")),
        "sample" => (REDUCE, include_str!("../../../shaders/sample.wgsl")),
        "token_matvec" => ("", include_str!("../../../shaders/token_matvec.wgsl")),
        _ => return None,
    };
    Some(format!("{}\n{helpers}\n{body}", prelude()))
}

impl Pipelines {
    pub fn new(dev: &wgpu::Device) -> Pipelines {
        // Every name below is in SHADERS (tests/shaders.rs compiles each one).
        let src = |name: &str| source(name).unwrap_or_default();
        let per_format_with = |label: &str, extra: &[(&str, f64)]| {
            let s = src(label);
            [0, 1, 2, 3].map(|f| {
                let mut constants = vec![("FORMAT", f as f64)];
                constants.extend_from_slice(extra);
                pipeline(dev, label, &s, &constants)
            })
        };
        let per_format = |label: &str| per_format_with(label, &[]);
        let one = |label: &str| pipeline(dev, label, &src(label), &[]);
        Pipelines {
            matmul: per_format("matmul"),
            matmul_tiled: per_format_with("matmul", &[("TT", PREFILL_TILE as f64)]),
            embed: per_format("embed"),
            norm: one("norm"),
            elementwise: one("elementwise"),
            token_shift: one("token_shift"),
            removal_key: one("removal_key"),
            wkv: one("wkv"),
            wkv_fused: one("wkv_fused"),
            norm_shift: one("norm_shift"),
            gn_bonus_gate: one("gn_bonus_gate"),
            sample: one("sample"),
            token_matvec: one("token_matvec"),
        }
    }

    /// The matrix product for `tokens` rows of input: one token per workgroup for decode, a
    /// tile of [`PREFILL_TILE`] for more.
    pub fn matmul(&self, format: u32, tokens: usize) -> &wgpu::ComputePipeline {
        let set = if tokens > 1 { &self.matmul_tiled } else { &self.matmul };
        &set[format.min(3) as usize]
    }

    pub fn embed(&self, format: u32) -> &wgpu::ComputePipeline {
        &self.embed[format.min(3) as usize]
    }
}
