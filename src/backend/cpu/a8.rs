//! Native decode for int8 and q4 weights with 8-bit integer activations: the activation row is
//! quantised once per product, per block of 32 as the weights are, and every block's dot
//! product is an integer one (`vpmaddubsw` on AVX2, `vpdpbusd` on AVX-512 VNNI), which reads
//! the weights as stored instead of widening each one to f32 (decode was compute-bound).
//!
//! Block b of the activation: `sx_b = max|x_b| / 127`, `xq = round(x / sx_b)` in [-127, 127],
//! so each activation is off by at most `sx_b / 2` (0.4% of its block's largest value). Then
//! `Σ x·w ≈ Σ_b sx_b·sw_b·Σ_{j∈b} xq_j·wq_j`, the inner sum exact in i32. The error against the
//! f32-activation product is bounded by `Σ_b (sx_b / 2)·sw_b·Σ_{j∈b} |wq_j|` (plus f32 rounding),
//! [`error_bound`]; tests/kernels.rs checks every kernel against [`dot_int8_ref`] /
//! [`dot_q4_ref`] (exact integer maths, so equal up to the f32 sum order) and against that bound.
//!
//! The sign trick: the instructions multiply unsigned by signed bytes, so the kernels use `|xq|`
//! and `wq` with `xq`'s sign moved onto it (`vpsignb`); both codes stay in [-127, 127], so no
//! byte overflows and the pairwise i16 sums of `vpmaddubsw` (≤ 2·127·127) do not saturate.

use crate::format::quant::BLOCK;
use half::f16;

/// An activation row quantised per block to i8: codes padded to whole blocks, scales.
pub struct Act8 {
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
}

/// Quantise `x` per block of 32.
pub fn quantize(x: &[f32]) -> Act8 {
    let nb = x.len().div_ceil(BLOCK);
    let mut q = vec![0i8; nb * BLOCK];
    let mut scale = vec![0f32; nb];
    for ((blk, qb), s_out) in x.chunks(BLOCK).zip(q.chunks_exact_mut(BLOCK)).zip(scale.iter_mut()) {
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = amax / 127.0;
        *s_out = s;
        if s > 0.0 {
            let inv = 1.0 / s;
            for (qv, &v) in qb.iter_mut().zip(blk) {
                *qv = (v * inv).round().clamp(-127.0, 127.0) as i8;
            }
        }
    }
    Act8 { q, scale }
}

/// The scalar oracle for int8 rows: `Σ_b sx_b·sw_b·Σ xq·wq` (row padded to whole blocks).
pub fn dot_int8_ref(x: &Act8, q: &[i8], scale: &[f16]) -> f32 {
    let mut sum = 0f64;
    for (b, (xb, wb)) in x.q.chunks_exact(BLOCK).zip(q.chunks_exact(BLOCK)).enumerate() {
        let d: i32 = xb.iter().zip(wb).map(|(&a, &w)| a as i32 * w as i32).sum();
        sum += d as f64 * (x.scale[b] * scale[b].to_f32()) as f64;
    }
    sum as f32
}

/// The code of element `j` of a q4 block (16 bytes), in [-8, 7].
fn q4_code(blk: &[u8], j: usize) -> i32 {
    let byte = blk[j % (BLOCK / 2)];
    (if j < BLOCK / 2 { byte & 0x0f } else { byte >> 4 }) as i32 - 8
}

/// The scalar oracle for q4 rows.
pub fn dot_q4_ref(x: &Act8, q: &[u8], scale: &[f16]) -> f32 {
    let mut sum = 0f64;
    for (b, (xb, wb)) in x.q.chunks_exact(BLOCK).zip(q.chunks_exact(BLOCK / 2)).enumerate() {
        let d: i32 = xb.iter().enumerate().map(|(j, &a)| a as i32 * q4_code(wb, j)).sum();
        sum += d as f64 * (x.scale[b] * scale[b].to_f32()) as f64;
    }
    sum as f32
}

/// The most the 8-bit activations can move `Σ x·w` of one row with block codes `codes(b)`
/// (their absolute values summed per block) and scales `scale`: `Σ_b (sx_b/2)·sw_b·Σ|wq|`.
pub fn error_bound(x: &Act8, scale: &[f16], abs_code_sum: impl Fn(usize) -> i32) -> f64 {
    x.scale.iter().enumerate().map(|(b, &sx)| 0.5 * sx as f64 * scale[b].to_f32() as f64 * abs_code_sum(b) as f64).sum()
}
