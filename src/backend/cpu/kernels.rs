//! Scalar-plus-autovectorised fp32 kernels of the CPU backend: dot products, matrix products
//! (threaded natively with rayon, sequential on wasm) and the WKV-7 scan.

use super::{CpuMatrix, Tensor};
use crate::format::quant::MatrixData;

/// `Σ a_i·b_i` with 16 independent f32 accumulators, which the compiler turns into SIMD lanes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    // Pairwise reduction of the lanes keeps the rounding error small and order-stable.
    let mut w = 8;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    acc[0] + tail
}

/// Rows of output computed per parallel task.
const ROWS_PER_TASK: usize = 32;

/// Compute rows `o0..o0+n` of `W` against every token: result laid out `[n][T]`.
/// Compiled twice: for the baseline target and, on x86-64, with AVX2/FMA/F16C, chosen at run
/// time. Rust never contracts `a·b + c` into an FMA on its own, so both give identical results.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn rows_block(x: &Tensor, w: &CpuMatrix, o0: usize, n: usize, scratch: &mut Vec<f32>, simd: bool) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let avx2 = *AVX2.get_or_init(|| {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
        });
        if avx2 {
            // Safety: the CPU supports the features this version was compiled for.
            return unsafe { rows_block_avx2(x, w, o0, n, scratch) };
        }
    }
    rows_block_generic(x, w, o0, n, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_block_avx2(x: &Tensor, w: &CpuMatrix, o0: usize, n: usize, scratch: &mut Vec<f32>) -> Vec<f32> {
    rows_block_generic(x, w, o0, n, scratch)
}

#[inline(always)]
fn rows_block_generic(x: &Tensor, w: &CpuMatrix, o0: usize, n: usize, scratch: &mut Vec<f32>) -> Vec<f32> {
    let t = x.rows;
    let mut out = vec![0f32; n * t];
    for i in 0..n {
        let cols = w.cols;
        let row: &[f32] = match &w.data {
            MatrixData::F32(data) => &data[(o0 + i) * cols..(o0 + i + 1) * cols],
            _ => {
                scratch.resize(cols, 0.0);
                w.row_into(o0 + i, scratch);
                scratch
            }
        };
        for tt in 0..t {
            out[i * t + tt] = dot(&x.data[tt * x.cols..(tt + 1) * x.cols], row);
        }
    }
    out
}

/// `y = x·Wᵀ`: x `[T, in]`, W `[out, in]`, y `[T, out]`. Each weight row is read once for all
/// `T` tokens (batched prefill).
pub fn matmul(x: &Tensor, w: &CpuMatrix) -> Tensor {
    matmul_with(x, w, true)
}

/// [`matmul`] with the run-time SIMD selection switchable, so tests cover the baseline path too.
pub fn matmul_with(x: &Tensor, w: &CpuMatrix, simd: bool) -> Tensor {
    let rows = w.rows;
    let t = x.rows;
    let starts: Vec<usize> = (0..rows).step_by(ROWS_PER_TASK).collect();
    let job = |&o0: &usize| {
        let n = ROWS_PER_TASK.min(rows - o0);
        let mut scratch = Vec::new();
        (o0, n, rows_block(x, w, o0, n, &mut scratch, simd))
    };
    #[cfg(not(target_arch = "wasm32"))]
    let blocks: Vec<_> = {
        use rayon::prelude::*;
        starts.par_iter().map(job).collect()
    };
    #[cfg(target_arch = "wasm32")]
    let blocks: Vec<_> = starts.iter().map(job).collect();
    let mut y = Tensor::zeros(t, rows);
    for (o0, n, block) in blocks {
        for i in 0..n {
            for tt in 0..t {
                y.data[tt * rows + o0 + i] = block[i * t + tt];
            }
        }
    }
    y
}

/// `e^{−1/2}`: the decay is `exp(−e^{−1/2}·σ(z))` (spec §2.3 step 5).
const DECAY_SCALE: f32 = 0.606_530_66;

/// Per-head inputs of one token for the WKV scan.
pub struct WkvRow<'a> {
    pub r: &'a [f32],
    pub z: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kk: &'a [f32],
    pub alpha: &'a [f32],
}

/// One token of the WKV-7 recurrence for one head (spec §2.3 step 11), state `s` is `[N][N]`
/// indexed `[value i][key j]`. Writes `y` (length N).
pub fn wkv_head_step(s: &mut [f32], x: &WkvRow, y: &mut [f32]) {
    let n = x.r.len();
    let mut decay = [0f32; 256];
    let mut b = [0f32; 256];
    let (decay, b) = if n <= 256 {
        (&mut decay[..n], &mut b[..n])
    } else {
        // Head sizes above 256 do not occur in released models; fall back to the heap.
        return wkv_head_step_large(s, x, y);
    };
    for j in 0..n {
        let sig = 1.0 / (1.0 + (-x.z[j]).exp());
        decay[j] = (-DECAY_SCALE * sig).exp();
        b[j] = x.kk[j] * x.alpha[j];
    }
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        let mut sa = 0f32;
        for j in 0..n {
            sa -= row[j] * x.kk[j];
        }
        let vi = x.v[i];
        let mut acc = 0f32;
        for j in 0..n {
            let nv = row[j] * decay[j] + sa * b[j] + vi * x.k[j];
            row[j] = nv;
            acc += nv * x.r[j];
        }
        y[i] = acc;
    }
}

fn wkv_head_step_large(s: &mut [f32], x: &WkvRow, y: &mut [f32]) {
    let n = x.r.len();
    let decay: Vec<f32> = x.z.iter().map(|z| (-DECAY_SCALE / (1.0 + (-z).exp())).exp()).collect();
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        let sa: f32 = -row.iter().zip(x.kk).map(|(a, b)| a * b).sum::<f32>();
        let mut acc = 0f32;
        for j in 0..n {
            row[j] = row[j] * decay[j] + sa * x.kk[j] * x.alpha[j] + x.v[i] * x.k[j];
            acc += row[j] * x.r[j];
        }
        y[i] = acc;
    }
}
