//! Compute pipelines, created once per shader (and per weight format where the shader reads
//! weights). Shader sources are the plain files in `shaders/`; the weight readers share
//! `shaders/common.wgsl`, which is prepended.

use std::collections::HashMap;

/// The operations of `shaders/elementwise.wgsl` (the values match its `op` switch).
#[derive(Clone, Copy, Debug)]
pub enum ElementOp {
    Lerp = 0,
    WriteKey = 1,
    ValueResidual = 2,
    ReluSq = 3,
    Add = 4,
}

pub struct Pipelines {
    matmul: [wgpu::ComputePipeline; 4],
    embed: [wgpu::ComputePipeline; 4],
    pub norm: wgpu::ComputePipeline,
    pub elementwise: wgpu::ComputePipeline,
    pub token_shift: wgpu::ComputePipeline,
    pub removal_key: wgpu::ComputePipeline,
    pub wkv: wgpu::ComputePipeline,
    pub wkv_fused: wgpu::ComputePipeline,
    pub norm_shift: wgpu::ComputePipeline,
    pub gn_bonus_gate: wgpu::ComputePipeline,
}

const COMMON: &str = include_str!("../../../shaders/common.wgsl");

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

impl Pipelines {
    pub fn new(dev: &wgpu::Device) -> Pipelines {
        let matmul_src = format!("{COMMON}\n{}", include_str!("../../../shaders/matmul.wgsl"));
        let embed_src = format!("{COMMON}\n{}", include_str!("../../../shaders/embed.wgsl"));
        let per_format = |label: &str, src: &str| [0, 1, 2, 3].map(|f| pipeline(dev, label, src, &[("FORMAT", f as f64)]));
        Pipelines {
            matmul: per_format("matmul", &matmul_src),
            embed: per_format("embed", &embed_src),
            norm: pipeline(dev, "norm", include_str!("../../../shaders/norm.wgsl"), &[]),
            elementwise: pipeline(dev, "elementwise", include_str!("../../../shaders/elementwise.wgsl"), &[]),
            token_shift: pipeline(dev, "token_shift", include_str!("../../../shaders/token_shift.wgsl"), &[]),
            removal_key: pipeline(dev, "removal_key", include_str!("../../../shaders/removal_key.wgsl"), &[]),
            wkv: pipeline(dev, "wkv", include_str!("../../../shaders/wkv.wgsl"), &[]),
            wkv_fused: pipeline(dev, "wkv_fused", include_str!("../../../shaders/wkv_fused.wgsl"), &[]),
            norm_shift: pipeline(dev, "norm_shift", include_str!("../../../shaders/norm_shift.wgsl"), &[]),
            gn_bonus_gate: pipeline(dev, "gn_bonus_gate", include_str!("../../../shaders/gn_bonus_gate.wgsl"), &[]),
        }
    }

    pub fn matmul(&self, format: u32) -> &wgpu::ComputePipeline {
        &self.matmul[format.min(3) as usize]
    }

    pub fn embed(&self, format: u32) -> &wgpu::ComputePipeline {
        &self.embed[format.min(3) as usize]
    }
}
