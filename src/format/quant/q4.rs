//! `q4`: symmetric linear 4-bit codes, one f16 scale per block of 32 inputs.
//!
//! Stored as two tensors of a Gander file:
//!
//! ```text
//! X.q      U8  [rows, ceil(cols/2)]      byte j of row r = code(W[r][2j]) | code(W[r][2j+1]) << 4
//!                                         (low nibble first; an odd row's last high nibble is 0)
//! X.scale  F16 [rows, ceil(cols/32)]     s[r][b] = f16(max |W[r][32b .. 32b+32)| / 7)
//!          code(w) = clamp(round(w / s), -8, 7) + 8
//!
//! one row, cols = 5:   q: | c1:c0 | c3:c2 | 0:c4 |      (high nibble : low nibble)
//! ```
//! Dequantised value: `W'[r][c] = (code − 8) · s[r][c/32]`: integer arithmetic, so integer
//! dot-product kernels and shaders can use the codes directly. Size: 0.5625 bytes per weight.
//!
//! Why linear and not NF4: on the trained fixture and `tests/data/english.txt`
//! (`cargo run --release --example quant_quality`), linear gave mean KL(fp32 ‖ q4) 1.52e-3 and a
//! perplexity ratio 0.992, NF4 (the QLoRA code book, Dettmers et al. 2023, arXiv 2305.14314)
//! 1.92e-3 and 1.033; NF4 agreed slightly more often on the top token (98.8% vs 98.0%). The
//! code-book functions below keep NF4 available for that comparison.

use super::{blocks_per_row, f16_scale, BLOCK};
use half::f16;

/// The NF4 code book, ascending, `NF4[7] = 0`.
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// The linear code book `(code − 8)/7`: the values [`quantize`] stores, as a code book.
pub const LINEAR: [f32; 16] = [
    -8.0 / 7.0, -1.0, -6.0 / 7.0, -5.0 / 7.0, -4.0 / 7.0, -3.0 / 7.0, -2.0 / 7.0, -1.0 / 7.0, 0.0,
    1.0 / 7.0, 2.0 / 7.0, 3.0 / 7.0, 4.0 / 7.0, 5.0 / 7.0, 6.0 / 7.0, 1.0,
];


fn nearest(book: &[f32; 16], x: f32) -> u8 {
    let mut best = 0;
    let mut bd = f32::INFINITY;
    for (i, &v) in book.iter().enumerate() {
        let d = (x - v).abs();
        if d < bd {
            bd = d;
            best = i;
        }
    }
    best as u8
}

/// Quantise with a code book (`value = book[code] · absmax`), for comparing code books only;
/// the stored `q4` format is [`quantize`].
pub fn quantize_with(book: &[f32; 16], rows: usize, cols: usize, w: &[f32]) -> (Vec<u8>, Vec<f16>) {
    let nb = blocks_per_row(cols);
    let rb = cols.div_ceil(2);
    let mut q = vec![0u8; rows * rb];
    let mut scale = vec![f16::ZERO; rows * nb];
    let zero = nearest(book, 0.0);
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for b in 0..nb {
            let blk = &row[b * BLOCK..((b + 1) * BLOCK).min(cols)];
            let amax = blk.iter().fold(0f32, |m, &x| m.max(x.abs()));
            scale[r * nb + b] = f16_scale(amax);
        }
        for c in 0..cols {
            let s = scale[r * nb + c / BLOCK].to_f32();
            let code = if s > 0.0 { nearest(book, row[c] / s) } else { zero };
            q[r * rb + c / 2] |= code << (4 * (c % 2));
        }
    }
    (q, scale)
}

/// Quantise a row-major `[rows, cols]` matrix into the `q4` format. Returns `(q, scale)`.
pub fn quantize(rows: usize, cols: usize, w: &[f32]) -> (Vec<u8>, Vec<f16>) {
    let nb = blocks_per_row(cols);
    let rb = cols.div_ceil(2);
    let mut q = vec![0u8; rows * rb];
    let mut scale = vec![f16::ZERO; rows * nb];
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for b in 0..nb {
            let blk = &row[b * BLOCK..((b + 1) * BLOCK).min(cols)];
            let amax = blk.iter().fold(0f32, |m, &x| m.max(x.abs()));
            scale[r * nb + b] = f16_scale(amax / 7.0);
        }
        for c in 0..cols {
            let s = scale[r * nb + c / BLOCK].to_f32();
            let code = if s > 0.0 { (row[c] / s).round().clamp(-8.0, 7.0) as i32 + 8 } else { 8 };
            q[r * rb + c / 2] |= (code as u8) << (4 * (c % 2));
        }
    }
    (q, scale)
}

/// Dequantise one `q4` row of `out.len()` elements.
#[inline(always)]
pub fn dequantize_row(q: &[u8], scale: &[f16], out: &mut [f32]) {
    // Block by block so the scale is converted once per 32 values; a block is 16 bytes.
    for (b, os) in out.chunks_mut(BLOCK).enumerate() {
        let s = scale[b].to_f32();
        let qb = &q[b * BLOCK / 2..];
        let half = os.len() / 2;
        let mut pairs = os.chunks_exact_mut(2);
        for (pair, &byte) in (&mut pairs).zip(qb) {
            pair[0] = ((byte & 0x0f) as i32 - 8) as f32 * s;
            pair[1] = ((byte >> 4) as i32 - 8) as f32 * s;
        }
        if let Some(last) = pairs.into_remainder().first_mut() {
            *last = ((qb[half] & 0x0f) as i32 - 8) as f32 * s;
        }
    }
}

/// Dequantise a row made by [`quantize_with`] with the same `book`.
pub fn dequantize_row_with(book: &[f32; 16], q: &[u8], scale: &[f16], out: &mut [f32]) {
    for (c, o) in out.iter_mut().enumerate() {
        let code = (q[c / 2] >> (4 * (c % 2))) & 0x0f;
        *o = book[code as usize] * scale[c / BLOCK].to_f32();
    }
}
