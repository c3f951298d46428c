//! Prefill for quantised weights with 8-bit integer dot products (x86-64 AVX512-VNNI).
//!
//! The f32 FMA path is capped by the FMA rate (on the 2-core Zen 4 development machine about
//! 166 GFLOP/s, ~590 prompt tokens/s for a 0.1B model); `vpdpbusd` does 4 times the
//! multiply-adds per instruction. To accumulate whole rows in 32-bit integers, this path uses
//! one scale per weight row and one per token (W8A8), instead of the file's per-block scales:
//!
//! ```text
//! panel row r:  sw_r = max_k |W'[r][k]| / 127,  u[r][k] = round(W'[r][k] / sw_r) + 128   (u8)
//! token t:      sx_t = max_k |x[t][k]| / 127,   q[t][k] = round(x[t][k] / sx_t)          (i8)
//! y[t][r] = sw_r · sx_t · (Σ_k u[r][k]·q[t][k] − 128·Σ_k q[t][k])
//! ```
//! (`W'` is the stored matrix dequantised.) The +128 offset makes the weights the unsigned
//! operand `vpdpbusd` needs; its correction depends on the token only. |sum| ≤ K·255·127 fits
//! i32 for K < 66,000. Measured on the trained fixture (README): the int8 file's perplexity ratio
//! stays 0.999 with this prompt path, q4's 0.994. Decoding (one token) has its own 8-bit path, [`super::a8`].
//!
//! [`w8a8_reference`] is the scalar oracle; the SIMD kernel must equal it exactly up to the
//! final f32 products.

#[cfg(target_arch = "x86_64")]
use super::isa::par_map;
use super::{CpuMatrix, Tensor};

pub use super::isa::vnni_available as available;

/// Widths are padded to whole 32-byte vectors.
const LANE_BYTES: usize = 32;

/// Tokens quantised to i8 per row: codes `[T][kp]`, scale and code sum per token.
pub struct QuantTokens {
    pub kp: usize,
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
    pub sum: Vec<i32>,
}

/// `max |v|` with 8 explicit lanes, so it vectorises (a plain float fold would not).
#[inline(always)]
fn absmax(v: &[f32]) -> f32 {
    let mut m = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            m[i] = m[i].max(c[i].abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |a, x| a.max(x.abs()));
    m.iter().fold(tail, |a, &x| a.max(x))
}

/// `round_ties_even(v / s)` clamped to ±127: one `vroundps` per 8 values in the AVX2 build.
/// (Called from closures it would not inherit the AVX2 build and cost a libm call per value,
/// which is why the dispatchers below are named functions.)
#[inline(always)]
fn code(v: f32, s: f32) -> i32 {
    (v / s).round_ties_even().clamp(-127.0, 127.0) as i32
}

/// Quantise activations per token (row) to i8.
pub fn quantize_tokens(x: &Tensor) -> QuantTokens {
    #[cfg(target_arch = "x86_64")]
    if available() {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn avx2(x: &Tensor) -> QuantTokens {
            quantize_tokens_body(x)
        }
        // Safety: available() implies AVX2 (the VNNI machines also have FMA and F16C).
        return unsafe { avx2(x) };
    }
    quantize_tokens_body(x)
}

#[inline(always)]
fn quantize_tokens_body(x: &Tensor) -> QuantTokens {
    let kp = x.cols.next_multiple_of(LANE_BYTES);
    let mut q = vec![0i8; x.rows * kp];
    let mut scale = vec![0f32; x.rows];
    let mut sum = vec![0i32; x.rows];
    for t in 0..x.rows {
        let row = x.row(t);
        let s = absmax(row) / 127.0;
        scale[t] = s;
        if s > 0.0 {
            let out = &mut q[t * kp..t * kp + row.len()];
            for (o, &v) in out.iter_mut().zip(row) {
                *o = code(v, s) as i8;
            }
            sum[t] = out.iter().map(|&c| c as i32).sum();
        }
    }
    QuantTokens { kp, q, scale, sum }
}

/// Requantise rows `r0..r1` of `w` per row to offset u8; returns codes `[n][kp]` and scales.
pub fn quantize_rows(w: &CpuMatrix, r0: usize, r1: usize, kp: usize) -> (Vec<u8>, Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn avx2(w: &CpuMatrix, r0: usize, r1: usize, kp: usize) -> (Vec<u8>, Vec<f32>) {
            quantize_rows_body(w, r0, r1, kp)
        }
        // Safety: as in quantize_tokens.
        return unsafe { avx2(w, r0, r1, kp) };
    }
    quantize_rows_body(w, r0, r1, kp)
}

#[inline(always)]
fn quantize_rows_body(w: &CpuMatrix, r0: usize, r1: usize, kp: usize) -> (Vec<u8>, Vec<f32>) {
    let mut u = vec![128u8; (r1 - r0) * kp];
    let mut scale = vec![0f32; r1 - r0];
    let mut row = vec![0f32; w.cols];
    for r in r0..r1 {
        w.row_into(r, &mut row);
        let s = absmax(&row) / 127.0;
        scale[r - r0] = s;
        if s > 0.0 {
            for (o, &v) in u[(r - r0) * kp..].iter_mut().zip(&row) {
                *o = (code(v, s) + 128) as u8;
            }
        }
    }
    (u, scale)
}

/// The scalar oracle: `y = x·Wᵀ` with the W8A8 rounding described in the module doc.
pub fn w8a8_reference(x: &Tensor, w: &CpuMatrix) -> Tensor {
    let xt = quantize_tokens(x);
    let (u, sw) = quantize_rows(w, 0, w.rows, xt.kp);
    let mut y = Tensor::zeros(x.rows, w.rows);
    for t in 0..x.rows {
        for r in 0..w.rows {
            let mut acc = 0i64;
            for k in 0..xt.kp {
                acc += u[r * xt.kp + k] as i64 * xt.q[t * xt.kp + k] as i64;
            }
            let d = (acc - 128 * xt.sum[t] as i64) as f32;
            y.data[t * w.rows + r] = d * sw[r] * xt.scale[t];
        }
    }
    y
}

/// A matrix requantised per row for this path: offset codes `[rows][kp]` and row scales.
pub struct Panel {
    pub kp: usize,
    pub u: Vec<u8>,
    pub scale: Vec<f32>,
}

/// The W8A8 panel of `w`, built once (in parallel) and kept with the matrix.
#[cfg(target_arch = "x86_64")]
fn panel(w: &CpuMatrix) -> &Panel {
    w.w8a8.get_or_init(|| {
        let kp = w.cols.next_multiple_of(LANE_BYTES);
        let tasks = w.rows.div_ceil(ROWS_PER_TASK);
        let parts = par_map(tasks, true, |i| {
            let r0 = i * ROWS_PER_TASK;
            quantize_rows(w, r0, (r0 + ROWS_PER_TASK).min(w.rows), kp)
        });
        let mut u = Vec::with_capacity(w.rows * kp);
        let mut scale = Vec::with_capacity(w.rows);
        for (cu, cs) in parts {
            u.extend_from_slice(&cu);
            scale.extend_from_slice(&cs);
        }
        Panel { kp, u, scale }
    })
}

/// Weight rows per parallel task (a multiple of the 4-row tile).
#[cfg(target_arch = "x86_64")]
const ROWS_PER_TASK: usize = 16;

/// `y = x·Wᵀ` with VNNI; the caller checks [`available`] and that `W` is quantised.
#[cfg(target_arch = "x86_64")]
pub fn matmul(x: &Tensor, w: &CpuMatrix) -> Tensor {
    let xt = quantize_tokens(x);
    let (t_len, rows, kp) = (x.rows, w.rows, xt.kp);
    let p = panel(w);
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let job = |i: usize| {
        let r0 = i * ROWS_PER_TASK;
        let r1 = (r0 + ROWS_PER_TASK).min(rows);
        let n = r1 - r0;
        let (u, sw) = (&p.u[r0 * kp..r1 * kp], &p.scale[r0..r1]);
        let mut out = vec![0f32; n * t_len];
        let mut r = 0;
        while r < n {
            let nr = (n - r).min(4);
            let mut t = 0;
            while t < t_len {
                let nt = (t_len - t).min(4);
                let wp = [0, 1, 2, 3].map(|d| u[(r + d.min(nr - 1)) * kp..].as_ptr());
                let xp = [0, 1, 2, 3].map(|d| xt.q[(t + d.min(nt - 1)) * kp..].as_ptr());
                // Safety: `available()` was checked by the caller; every pointer has kp bytes.
                let dots = unsafe { super::x86::tile_w8a8_4x4(wp, xp, kp) };
                for dr in 0..nr {
                    for dt in 0..nt {
                        let d = (dots[dr][dt] - 128 * xt.sum[t + dt]) as f32;
                        out[(t + dt) * n + r + dr] = d * sw[r + dr] * xt.scale[t + dt];
                    }
                }
                t += nt;
            }
            r += nr;
        }
        (r0, out)
    };
    let parts = par_map(tasks, rows * kp * t_len >= super::isa::PARALLEL_MIN_WEIGHTS, job);
    // Each task's block is token-major, so it lands in `y` as one contiguous run per token.
    let mut y = Tensor::zeros(t_len, rows);
    for (r0, out) in parts {
        let n = out.len() / t_len.max(1);
        for t in 0..t_len {
            y.data[t * rows + r0..t * rows + r0 + n].copy_from_slice(&out[t * n..(t + 1) * n]);
        }
    }
    y
}
