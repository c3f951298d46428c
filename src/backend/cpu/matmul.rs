//! Matrix products `y = x·Wᵀ` for every weight format, threaded natively (rayon) and SIMD where
//! the CPU has it (chosen at run time).
//!
//! - Decode (`T < 4` tokens): one dot product per weight row, the rows split across threads;
//!   each weight byte is read once per token. f32/f16 rows are widened in registers; int8/q4
//!   rows on x86 multiply bytes by the token's 8-bit activations ([`super::a8`]).
//! - Prefill (`T ≥ 4`): rows are split across threads in groups; each group's rows are
//!   dequantised once into an f32 panel (a few KB, in L1/L2) and multiplied with blocks of tokens
//!   by a 4-token × 3-row register-tiled FMA kernel, so every weight is read from memory once per
//!   call and used `T` times. Token blocks are sized so the activations stay in L2.
//!
//! Activations are f32 except in the quantised paths named in the backend's doc (`a8`, `w8a8`,
//! `a16`): results equal the scalar reference (`HostMatrix::row_into` then an f64 dot) up to the
//! order of f32 additions (tests/kernels.rs, `KERNEL_TOL`), plus those paths' stated bounds.

use super::isa::{par_map, PARALLEL_MIN_WEIGHTS};
use super::kernels::dot;
use super::{CpuMatrix, Tensor};
use crate::format::quant::{blocks_per_row, int8, q4, MatrixData};

// The instruction set is chosen in `isa`; re-exported here, where the products take it.
pub use super::isa::{best_isa, Isa};

/// `Σ a·b` with the best instruction set (used by the bandwidth probe of `gander bench`).
pub fn dot_best(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if best_isa() != Isa::Generic {
        // Safety: AVX2/FMA are present.
        return unsafe { super::x86::dot_f32(a, b) };
    }
    dot(a, b)
}

/// `x · row r of W`, for one activation row `x` (length `cols`).
#[inline]
fn dot_row(isa: Isa, x: &[f32], w: &CpuMatrix, r: usize, scratch: &mut Vec<f32>) -> f32 {
    let c = w.cols;
    let nb = blocks_per_row(c);
    match (isa, &w.data) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, data) => unsafe {
            // Safety: Isa::Avx2 is only chosen when the CPU has AVX2, FMA and F16C.
            match data {
                MatrixData::F32(d) => super::x86::dot_f32(x, &d[r * c..(r + 1) * c]),
                MatrixData::F16(d) => super::x86::dot_f16(x, &d[r * c..(r + 1) * c]),
                // int8/q4 decode never comes here on x86 (`decode_a8`); prefill widens rows into
                // a panel first.
                _ => {
                    scratch.resize(c, 0.0);
                    w.row_into(r, scratch);
                    super::x86::dot_f32(x, scratch)
                }
            }
        },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        (_, data) => match data {
            MatrixData::F32(d) => super::wasm::dot_f32(x, &d[r * c..(r + 1) * c]),
            MatrixData::F16(d) => super::wasm::dot_f16(x, &d[r * c..(r + 1) * c]),
            MatrixData::Int8 { q, scale } => {
                let rb = int8::row_bytes(c);
                super::wasm::dot_int8(x, &q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb])
            }
            MatrixData::Q4 { q, scale } => {
                let rb = q4::row_bytes(c);
                super::wasm::dot_q4(x, &q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb])
            }
        },
        #[allow(unreachable_patterns)]
        (_, MatrixData::F32(d)) => dot(x, &d[r * c..(r + 1) * c]),
        #[allow(unreachable_patterns)]
        _ => {
            let _ = nb;
            scratch.resize(c, 0.0);
            w.row_into(r, scratch);
            dot(x, scratch)
        }
    }
}

/// Rows of output per parallel task when decoding.
const DECODE_ROWS_PER_TASK: usize = 64;
/// Weight rows per parallel task in prefill (a multiple of the tile's 3 rows).
const PREFILL_ROWS_PER_TASK: usize = 12;
/// Bytes of activations a prefill token block may occupy (half of a 1 MiB L2).
const TOKEN_BLOCK_BYTES: usize = 512 * 1024;

/// `y = x·Wᵀ`: x `[T, in]`, W `[out, in]`, y `[T, out]`, with the best instruction set.
pub fn matmul(x: &Tensor, w: &CpuMatrix) -> Tensor {
    matmul_with(x, w, best_isa())
}

/// [`matmul`] with a chosen instruction set (tests run every path against the reference),
/// capped at what this CPU has. `x.cols` must equal `w.cols` (the backend checks it).
pub fn matmul_with(x: &Tensor, w: &CpuMatrix, isa: Isa) -> Tensor {
    let isa = isa.min(best_isa());
    #[cfg(target_arch = "x86_64")]
    // The W8A8 sums fit i32 for widths below 66,000 (module doc of w8a8); wider products take
    // the f32 path.
    if isa == Isa::Vnni && x.rows >= 4 && w.cols < 65_536 && matches!(w.data, MatrixData::Int8 { .. } | MatrixData::Q4 { .. }) {
        return super::w8a8::matmul(x, w);
    }
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Generic && x.rows < 4 && matches!(w.data, MatrixData::Int8 { .. } | MatrixData::Q4 { .. }) {
        return decode_a8(x, w, isa == Isa::Vnni);
    }
    // Below, Vnni behaves as Avx2.
    let isa = if isa == Isa::Vnni { Isa::Avx2 } else { isa };
    if x.rows < 4 {
        decode(x, w, isa)
    } else {
        prefill(x, w, isa)
    }
}

/// Decode of int8/q4 rows on x86 with 8-bit activations ([`super::a8`]): each token's row is
/// quantised once, then every weight row is an integer dot product (`vnni`: `vpdpbusd`, else
/// AVX2 `vpmaddubsw`). Rows are split across threads as in [`decode`].
#[cfg(target_arch = "x86_64")]
fn decode_a8(x: &Tensor, w: &CpuMatrix, vnni: bool) -> Tensor {
    let (rows, c) = (w.rows, w.cols);
    let nb = blocks_per_row(c);
    let mut y = Tensor::zeros(x.rows, rows);
    for t in 0..x.rows {
        let xa = super::a8::quantize(x.row(t));
        let out = &mut y.data[t * rows..(t + 1) * rows];
        let fill = |(i, chunk): (usize, &mut [f32])| {
            for (j, o) in chunk.iter_mut().enumerate() {
                let r = i * DECODE_ROWS_PER_TASK + j;
                // Safety: `isa` is Avx2 or Vnni only when the CPU has AVX2, FMA and F16C (and the
                // VNNI extensions for Vnni); rows are padded to whole blocks, as `xa` is.
                *o = unsafe {
                    match &w.data {
                        MatrixData::Int8 { q, scale } => {
                            let rb = int8::row_bytes(c);
                            let (q, s) = (&q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb]);
                            if vnni {
                                super::x86::dot_int8_a8_vnni(&xa, q, s)
                            } else {
                                super::x86::dot_int8_a8(&xa, q, s)
                            }
                        }
                        MatrixData::Q4 { q, scale } => {
                            let rb = q4::row_bytes(c);
                            let (q, s) = (&q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb]);
                            if vnni {
                                super::x86::dot_q4_a8_vnni(&xa, q, s)
                            } else {
                                super::x86::dot_q4_a8(&xa, q, s)
                            }
                        }
                        _ => 0.0,
                    }
                };
            }
        };
        if rows * c >= PARALLEL_MIN_WEIGHTS {
            use rayon::prelude::*;
            out.par_chunks_mut(DECODE_ROWS_PER_TASK).enumerate().for_each(fill);
        } else {
            out.chunks_mut(DECODE_ROWS_PER_TASK).enumerate().for_each(fill);
        }
    }
    y
}

fn decode(x: &Tensor, w: &CpuMatrix, isa: Isa) -> Tensor {
    let rows = w.rows;
    let mut y = Tensor::zeros(x.rows, rows);
    for t in 0..x.rows {
        let xr = x.row(t);
        let out = &mut y.data[t * rows..(t + 1) * rows];
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if isa == Isa::Generic && matches!(w.data, MatrixData::Int8 { .. } | MatrixData::Q4 { .. }) {
            decode_a16(xr, w, out);
            continue;
        }
        // Each task fills its own slice of the output: no per-task buffers, so decoding a token
        // allocates nothing here (the portable path's dequantisation scratch aside).
        let fill = |(i, chunk): (usize, &mut [f32])| {
            let mut scratch = Vec::new();
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = dot_row(isa, xr, w, i * DECODE_ROWS_PER_TASK + j, &mut scratch);
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        if rows * w.cols >= PARALLEL_MIN_WEIGHTS {
            use rayon::prelude::*;
            out.par_chunks_mut(DECODE_ROWS_PER_TASK).enumerate().for_each(fill);
            continue;
        }
        out.chunks_mut(DECODE_ROWS_PER_TASK).enumerate().for_each(fill);
    }
    y
}

/// wasm decode for quantised weights through 16-bit activations ([`super::a16`]).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn decode_a16(x: &[f32], w: &CpuMatrix, out: &mut [f32]) {
    let xa = super::a16::quantize(x);
    let c = w.cols;
    let nb = blocks_per_row(c);
    for (r, o) in out.iter_mut().enumerate() {
        *o = match &w.data {
            MatrixData::Int8 { q, scale } => {
                let rb = int8::row_bytes(c);
                super::wasm::dot_int8_a16(&xa, &q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb])
            }
            MatrixData::Q4 { q, scale } => {
                let rb = q4::row_bytes(c);
                super::wasm::dot_q4_a16(&xa, &q[r * rb..(r + 1) * rb], &scale[r * nb..(r + 1) * nb])
            }
            _ => 0.0,
        };
    }
}

/// Dequantise rows `r0..r1` of `w` into a panel of rows of `kp` floats (zero padded).
fn panel(w: &CpuMatrix, r0: usize, r1: usize, kp: usize) -> Vec<f32> {
    let mut p = vec![0f32; (r1 - r0) * kp];
    for r in r0..r1 {
        w.row_into(r, &mut p[(r - r0) * kp..(r - r0) * kp + w.cols]);
    }
    p
}

fn prefill(x: &Tensor, w: &CpuMatrix, isa: Isa) -> Tensor {
    let (t_len, k, rows) = (x.rows, x.cols, w.rows);
    // The micro-kernel wants rows whose length is a multiple of 8: pad when needed
    // (never for real models, whose widths are multiples of 32).
    let kp = k.next_multiple_of(8);
    let xpad;
    let xs: &[f32] = if kp == k {
        &x.data
    } else {
        let mut v = vec![0f32; t_len * kp];
        for t in 0..t_len {
            v[t * kp..t * kp + k].copy_from_slice(x.row(t));
        }
        xpad = v;
        &xpad
    };
    let tb = (TOKEN_BLOCK_BYTES / (4 * kp)).clamp(4, 256) / 4 * 4;
    let tasks = rows.div_ceil(PREFILL_ROWS_PER_TASK);
    let parts = par_map(tasks, rows * k * t_len >= PARALLEL_MIN_WEIGHTS, |i| {
        let r0 = i * PREFILL_ROWS_PER_TASK;
        let r1 = (r0 + PREFILL_ROWS_PER_TASK).min(rows);
        let n = r1 - r0;
        let p = panel(w, r0, r1, kp);
        // out[t][r] for this task's rows (token-major: copied to `y` a token at a time)
        let mut out = vec![0f32; n * t_len];
        for t0 in (0..t_len).step_by(tb) {
            let t1 = (t0 + tb).min(t_len);
            let mut r = 0;
            while r < n {
                let nr = (n - r).min(3);
                let mut t = t0;
                while t < t1 {
                    let nt = (t1 - t).min(4);
                    let tile = tile(isa, xs, kp, t, nt, &p, r, nr);
                    for (dt, row) in tile.iter().enumerate().take(nt) {
                        for (dr, &v) in row.iter().enumerate().take(nr) {
                            out[(t + dt) * n + r + dr] = v;
                        }
                    }
                    t += nt;
                }
                r += nr;
            }
        }
        (r0, n, out)
    });
    let mut y = Tensor::zeros(t_len, rows);
    for (r0, n, out) in parts {
        for t in 0..t_len {
            y.data[t * rows + r0..t * rows + r0 + n].copy_from_slice(&out[t * n..(t + 1) * n]);
        }
    }
    y
}

/// Dot products of tokens `t..t+nt` (≤ 4) with panel rows `r..r+nr` (≤ 3).
#[allow(clippy::too_many_arguments)]
#[inline]
fn tile(isa: Isa, xs: &[f32], kp: usize, t: usize, nt: usize, p: &[f32], r: usize, nr: usize) -> [[f32; 3]; 4] {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && nt == 4 && nr == 3 {
        let xp = [0, 1, 2, 3].map(|d| xs[(t + d) * kp..].as_ptr());
        let wp = [0, 1, 2].map(|d| p[(r + d) * kp..].as_ptr());
        // Safety: AVX2/FMA are present (Isa::Avx2); every pointer has kp readable floats.
        return unsafe { super::x86::tile_4x3(xp, wp, kp) };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if nt == 4 && nr == 3 {
        let xr = [0, 1, 2, 3].map(|d| &xs[(t + d) * kp..(t + d + 1) * kp]);
        let wr = [0, 1, 2].map(|d| &p[(r + d) * kp..(r + d + 1) * kp]);
        return super::wasm::tile_4x3(xr, wr, kp);
    }
    let mut out = [[0f32; 3]; 4];
    for dt in 0..nt {
        for dr in 0..nr {
            let xr = &xs[(t + dt) * kp..(t + dt + 1) * kp];
            let pr = &p[(r + dr) * kp..(r + dr + 1) * kp];
            out[dt][dr] = match isa {
                #[cfg(target_arch = "x86_64")]
                // Safety: as above.
                Isa::Avx2 => unsafe { super::x86::dot_f32(xr, pr) },
                _ => dot(xr, pr),
            };
        }
    }
    out
}
