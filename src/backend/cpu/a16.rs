//! Decode with 16-bit integer activations for quantised weights, used by the wasm build, where
//! `i32x4.dot_i16x8_s` makes integer dot products about twice as cheap as widening every weight
//! to f32 (measured: int8 decode in Node 26-33 → see README).
//!
//! Each 32-block of the activation row is quantised to i16 with its own scale:
//! `sx_b = max |x_b| / 32767`, `xq = round(x / sx_b)`, so the activation error is at most
//! `sx_b / 2` (1.5e-5 of the block's largest value): f32-like accuracy. Then
//! `Σ x·w ≈ Σ_b sx_b·sw_b·Σ_{j∈b} xq_j·wq_j`, the inner sum exact in i32
//! (|sum| ≤ 32·32767·127 < 2^31).
//!
//! The scalar functions here are the oracle for the SIMD kernels (`wasm.rs`) and are tested
//! natively; the SIMD kernels are tested in wasm under Node (`make test`).

use crate::format::quant::BLOCK;
use half::f16;

/// An activation row quantised per block to i16: codes (padded to whole blocks) and scales.
pub struct Act16 {
    pub q: Vec<i16>,
    pub scale: Vec<f32>,
}

/// Quantise `x` per block of 32.
pub fn quantize(x: &[f32]) -> Act16 {
    let nb = x.len().div_ceil(BLOCK);
    let mut q = vec![0i16; nb * BLOCK];
    let mut scale = vec![0f32; nb];
    for (b, blk) in x.chunks(BLOCK).enumerate() {
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = amax / 32767.0;
        scale[b] = s;
        if s > 0.0 {
            for (j, &v) in blk.iter().enumerate() {
                q[b * BLOCK + j] = (v / s).round_ties_even().clamp(-32767.0, 32767.0) as i16;
            }
        }
    }
    Act16 { q, scale }
}

/// Scalar oracle: `Σ x·w` for an int8 row (padded), from quantised activations.
pub fn dot_int8_reference(x: &Act16, q: &[i8], scale: &[f16]) -> f32 {
    let mut sum = 0f32;
    for (b, &s) in x.scale.iter().enumerate() {
        let mut acc = 0i32;
        for j in 0..BLOCK {
            acc += x.q[b * BLOCK + j] as i32 * q[b * BLOCK + j] as i32;
        }
        sum += acc as f32 * (s * scale[b].to_f32());
    }
    sum
}

/// Scalar oracle: `Σ x·w` for a q4 row (padded; nibbles split per block).
pub fn dot_q4_reference(x: &Act16, q: &[u8], scale: &[f16]) -> f32 {
    let mut sum = 0f32;
    for (b, &s) in x.scale.iter().enumerate() {
        let mut acc = 0i32;
        for j in 0..BLOCK {
            let code = ((q[b * BLOCK / 2 + j % 16] >> (4 * (j / 16))) & 0x0f) as i32 - 8;
            acc += x.q[b * BLOCK + j] as i32 * code;
        }
        sum += acc as f32 * (s * scale[b].to_f32());
    }
    sum
}
