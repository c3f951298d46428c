//! `int8`: symmetric 8-bit, one f16 scale per block of 32 input elements.
//!
//! Stored as two tensors of a Gander file; each row is padded with zero codes to whole blocks,
//! so kernels only ever see full blocks of 32:
//!
//! ```text
//! X.q      I8  [rows, 32·ceil(cols/32)]   q[r][c] = clamp(round(W[r][c] / s[r][c/32]), -127, 127)
//!                                          (0 for the padding c >= cols)
//! X.scale  F16 [rows, ceil(cols/32)]      s[r][b] = f16(max |W[r][32b .. 32b+32)| / 127)
//!
//! one row, cols = 70:  q: | c0 c1 ... c31 | c32 ... c63 | c64 ... c69 0 ... 0 |   (1 byte each)
//!                      s: |      s0       |     s1      |          s2         |   (2 bytes each)
//! ```
//! Dequantised value: `W'[r][c] = q[r][c] · s[r][c/32]`. Size: 1.0625 bytes per weight.

use super::{blocks_per_row, f16_scale, BLOCK};
use half::f16;

/// Quantise a row-major `[rows, cols]` matrix. Returns `(q, scale)`.
pub fn quantize(rows: usize, cols: usize, w: &[f32]) -> (Vec<i8>, Vec<f16>) {
    let nb = blocks_per_row(cols);
    let stride = nb * BLOCK;
    let mut q = vec![0i8; rows * stride];
    let mut scale = vec![f16::ZERO; rows * nb];
    if cols == 0 {
        return (q, scale);
    }
    for ((row, qrow), srow) in w.chunks_exact(cols).zip(q.chunks_exact_mut(stride)).zip(scale.chunks_exact_mut(nb)) {
        for ((blk, qb), s_out) in row.chunks(BLOCK).zip(qrow.chunks_exact_mut(BLOCK)).zip(srow.iter_mut()) {
            let amax = blk.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let s = f16_scale(amax / 127.0);
            *s_out = s;
            let s = s.to_f32();
            if s > 0.0 {
                for (qv, &x) in qb.iter_mut().zip(blk) {
                    *qv = (x / s).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
    }
    (q, scale)
}

/// Bytes of one stored row of `cols` elements.
pub fn row_bytes(cols: usize) -> usize {
    blocks_per_row(cols) * BLOCK
}

/// Dequantise one row into `out` (`cols` elements): `q` is the stored (padded) row, `scale`
/// its blocks' scales.
#[inline(always)]
pub fn dequantize_row(q: &[i8], scale: &[f16], out: &mut [f32]) {
    for ((qs, os), s) in q.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).zip(scale) {
        let s = s.to_f32();
        for (o, &v) in os.iter_mut().zip(qs) {
            *o = v as f32 * s;
        }
    }
}
