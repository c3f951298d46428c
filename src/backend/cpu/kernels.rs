//! Portable fp32 kernels of the CPU backend: the autovectorised dot product and the WKV-7 scan.
//! Matrix products are in [`super::matmul`].

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

/// `e^{−1/2}`: the decay is `exp(−e^{−1/2}·σ(z))` (spec §2.3 step 5).
use crate::config::spec::DECAY_SCALE;

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
/// indexed `[value i][key j]`. Writes `y` (length N). `decay`/`b` are scratch of length N.
///
/// The two reductions (`sa = Σ_j S[i][j]·(−κ̂_j)` and `y_i = Σ_j S'[i][j]·r_j`) go through
/// [`dot`], whose explicit lanes let the compiler vectorise them (a plain float sum would stay
/// scalar, as float addition is not associative).
#[inline(always)]
pub fn wkv_head_step(s: &mut [f32], x: &WkvRow, y: &mut [f32], decay: &mut [f32], b: &mut [f32]) {
    let n = x.r.len();
    wkv_coefficients(x, decay, b);
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        let sa = -dot(row, x.kk);
        let vi = x.v[i];
        for j in 0..n {
            row[j] = row[j] * decay[j] + sa * b[j] + vi * x.k[j];
        }
        y[i] = dot(row, x.r);
    }
}

/// Scan one head over `T` tokens: `rows(t)` gives token `t`'s inputs, `ys` is `[T][N]`.
/// On x86-64 with AVX2/FMA (and N a multiple of 8) the state update runs through an FMA kernel,
/// which rounds less often than the portable code; both stay within the golden tolerances.
pub fn wkv_scan_head<'a>(s: &mut [f32], t_len: usize, rows: impl Fn(usize) -> WkvRow<'a>, ys: &mut [f32]) {
    let n = ys.len() / t_len.max(1);
    // Scratch on the stack for every released head size (64), on the heap beyond 256.
    let (mut decay_a, mut b_a) = ([0f32; 256], [0f32; 256]);
    let (mut decay_v, mut b_v) = (Vec::new(), Vec::new());
    let (decay, b): (&mut [f32], &mut [f32]) = if n <= 256 {
        (&mut decay_a[..n], &mut b_a[..n])
    } else {
        decay_v.resize(n, 0.0);
        b_v.resize(n, 0.0);
        (&mut decay_v, &mut b_v)
    };
    // The AVX2 rows write N·N floats of `s` through a pointer: only on a state that long (a
    // model checks every state's shape before a forward call; this keeps the kernel sound).
    #[cfg(target_arch = "x86_64")]
    let fma = n.is_multiple_of(8) && s.len() >= n * n && super::isa::best_isa() != super::isa::Isa::Generic;
    for t in 0..t_len {
        let x = rows(t);
        let y = &mut ys[t * n..(t + 1) * n];
        #[cfg(target_arch = "x86_64")]
        if fma {
            wkv_coefficients(&x, decay, b);
            // Safety: AVX2/FMA are present (best_isa), N is a multiple of 8.
            unsafe { super::x86::wkv_rows(s, x.kk, x.k, x.v, x.r, decay, b, y) };
            continue;
        }
        wkv_head_step(s, &x, y, decay, b);
    }
}

/// `decay_j = exp(−e^{−1/2}·σ(z_j))` (fp32, spec §5.3) and `b_j = κ̂_j·α_j`.
#[inline(always)]
fn wkv_coefficients(x: &WkvRow, decay: &mut [f32], b: &mut [f32]) {
    for j in 0..x.r.len() {
        let sig = 1.0 / (1.0 + (-x.z[j]).exp());
        decay[j] = (-DECAY_SCALE * sig).exp();
        b[j] = x.kk[j] * x.alpha[j];
    }
}
