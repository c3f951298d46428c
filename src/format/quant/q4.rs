//! `q4`: symmetric linear 4-bit codes, one f16 scale per block of 32 inputs.
//!
//! Stored as two tensors of a Gander file; each row is padded to whole blocks (code 8 = 0):
//!
//! ```text
//! X.q      U8  [rows, 16·ceil(cols/32)]   block b of row r is 16 bytes; byte j of it holds
//!                                          code(W[r][32b+j]) | code(W[r][32b+16+j]) << 4
//! X.scale  F16 [rows, ceil(cols/32)]      s[r][b] = f16(max |W[r][32b .. 32b+32)| / 7)
//!          code(w) = clamp(round(w / s), -8, 7) + 8
//!
//! one block:  byte  0: | e16 : e0  |   byte 1: | e17 : e1 |  ...  byte 15: | e31 : e15 |
//!                       (high nibble : low nibble)
//! ```
//! Splitting a block into low nibbles (elements 0-15) and high nibbles (16-31) lets SIMD code
//! unpack a block with one mask and one shift.
//!
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
    -8.0 / 7.0,
    -1.0,
    -6.0 / 7.0,
    -5.0 / 7.0,
    -4.0 / 7.0,
    -3.0 / 7.0,
    -2.0 / 7.0,
    -1.0 / 7.0,
    0.0,
    1.0 / 7.0,
    2.0 / 7.0,
    3.0 / 7.0,
    4.0 / 7.0,
    5.0 / 7.0,
    6.0 / 7.0,
    1.0,
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
/// the stored `q4` format is [`quantize`]. Same packing as the stored format.
pub fn quantize_with(book: &[f32; 16], rows: usize, cols: usize, w: &[f32]) -> (Vec<u8>, Vec<f16>) {
    pack(rows, cols, w, |amax| amax, |x, s| if s > 0.0 { nearest(book, x / s) } else { nearest(book, 0.0) })
}

/// Quantise a row-major `[rows, cols]` matrix into the `q4` format. Returns `(q, scale)`.
pub fn quantize(rows: usize, cols: usize, w: &[f32]) -> (Vec<u8>, Vec<f16>) {
    pack(rows, cols, w, |amax| amax / 7.0, |x, s| if s > 0.0 { ((x / s).round().clamp(-8.0, 7.0) as i32 + 8) as u8 } else { 8 })
}

/// Bytes of one stored row of `cols` elements.
pub fn row_bytes(cols: usize) -> usize {
    blocks_per_row(cols) * BLOCK / 2
}

/// Shared packing: scale per block from its absmax, then a 4-bit code per element.
fn pack(rows: usize, cols: usize, w: &[f32], scale_of: impl Fn(f32) -> f32, code_of: impl Fn(f32, f32) -> u8) -> (Vec<u8>, Vec<f16>) {
    let nb = blocks_per_row(cols);
    let rb = row_bytes(cols);
    let pad = code_of(0.0, 0.0);
    let mut q = vec![pad | (pad << 4); rows * rb];
    let mut scale = vec![f16::ZERO; rows * nb];
    if cols == 0 {
        return (q, scale);
    }
    for ((row, qrow), srow) in w.chunks_exact(cols).zip(q.chunks_exact_mut(rb)).zip(scale.chunks_exact_mut(nb)) {
        for ((blk, bytes), s_out) in row.chunks(BLOCK).zip(qrow.chunks_exact_mut(BLOCK / 2)).zip(srow.iter_mut()) {
            let amax = blk.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let s16 = f16_scale(scale_of(amax));
            *s_out = s16;
            let s = s16.to_f32();
            // Element j < 16 of a block is the low nibble of byte j, element 16 + j the high one.
            let (lo, hi) = blk.split_at(blk.len().min(BLOCK / 2));
            for (byte, &x) in bytes.iter_mut().zip(lo) {
                *byte = (*byte & 0xf0) | code_of(x, s);
            }
            for (byte, &x) in bytes.iter_mut().zip(hi) {
                *byte = (*byte & 0x0f) | (code_of(x, s) << 4);
            }
        }
    }
    (q, scale)
}

/// Dequantise one `q4` row into `out` (`cols` elements) from its stored (padded) bytes.
#[inline(always)]
pub fn dequantize_row(q: &[u8], scale: &[f16], out: &mut [f32]) {
    for ((os, qb), s) in out.chunks_mut(BLOCK).zip(q.chunks_exact(BLOCK / 2)).zip(scale) {
        let s = s.to_f32();
        let (lo, hi) = os.split_at_mut(os.len().min(BLOCK / 2));
        for (o, &b) in lo.iter_mut().zip(qb) {
            *o = ((b & 0x0f) as i32 - 8) as f32 * s;
        }
        for (o, &b) in hi.iter_mut().zip(qb) {
            *o = ((b >> 4) as i32 - 8) as f32 * s;
        }
    }
}

/// Dequantise a row made by [`quantize_with`] with the same `book`.
pub fn dequantize_row_with(book: &[f32; 16], q: &[u8], scale: &[f16], out: &mut [f32]) {
    let entry = |code: u8| book.get(usize::from(code & 0x0f)).copied().unwrap_or(0.0);
    for ((os, qb), s) in out.chunks_mut(BLOCK).zip(q.chunks_exact(BLOCK / 2)).zip(scale) {
        let s = s.to_f32();
        let (lo, hi) = os.split_at_mut(os.len().min(BLOCK / 2));
        for (o, &b) in lo.iter_mut().zip(qb) {
            *o = entry(b) * s;
        }
        for (o, &b) in hi.iter_mut().zip(qb) {
            *o = entry(b >> 4) * s;
        }
    }
}
