//! AVX2 + FMA + F16C kernels (x86-64), chosen at run time by [`super::matmul`].
//!
//! The f32 kernels widen quantised weights to f32 in registers (or the caller does, into a
//! panel, for prefill), so results equal the scalar reference up to the order of f32 additions.
//! The `_a8` kernels take 8-bit activations ([`super::a8`]) and multiply bytes; the W8A8 tile
//! is prefill's integer kernel ([`super::w8a8`]). Every function here is `unsafe` only because it needs those CPU features;
//! callers check them once with `is_x86_feature_detected!`.

use super::a8::Act8;
use crate::format::quant::BLOCK;
use half::f16;
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps(v, 1);
    let lo = _mm256_castps256_ps128(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// `Σ x·w` over f32 rows (length a multiple of 8 is fastest; any length works).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i + 8 * k)), _mm256_loadu_ps(wp.add(i + 8 * k)), *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(wp.add(i)), acc[0]);
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    while i < n {
        s += x[i] * w[i];
        i += 1;
    }
    s
}

/// `Σ x·w` with w in f16.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16(x: &[f32], w: &[f16]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i + 8 * k) as *const __m128i));
            *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i + 8 * k)), wv, *a);
        }
        i += 32;
    }
    let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    while i < n {
        s += x[i] * w[i].to_f32();
        i += 1;
    }
    s
}

/// Block scales `scale[b0..b0+8]` (fewer at the end) as f32, converted with F16C: `half`'s
/// `to_f32` cannot use F16C here (it is enabled per function, not for the whole build) and its
/// software path would cost more than the block's arithmetic.
#[inline(always)]
unsafe fn scales8(scale: &[f16], b0: usize) -> [f32; 8] {
    let mut bits = [0u16; 8];
    let n = (scale.len() - b0).min(8);
    for (i, b) in bits.iter_mut().enumerate().take(n) {
        *b = scale[b0 + i].to_bits();
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr() as *const __m128i)));
    out
}

/// Prefill micro-kernel: `out[t][r] = Σ_k x[t][k]·w[r][k]` for 4 tokens × 3 weight rows, all f32,
/// `k` over `len` (a multiple of 8). 12 accumulators + 3 weight vectors + 1 activation = 16
/// registers, 12 FMAs per 7 loads.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_4x3(x: [*const f32; 4], w: [*const f32; 3], len: usize) -> [[f32; 3]; 4] {
    let mut acc = [[_mm256_setzero_ps(); 3]; 4];
    let mut k = 0;
    while k < len {
        let w0 = _mm256_loadu_ps(w[0].add(k));
        let w1 = _mm256_loadu_ps(w[1].add(k));
        let w2 = _mm256_loadu_ps(w[2].add(k));
        for t in 0..4 {
            let xv = _mm256_loadu_ps(x[t].add(k));
            acc[t][0] = _mm256_fmadd_ps(xv, w0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, w1, acc[t][1]);
            acc[t][2] = _mm256_fmadd_ps(xv, w2, acc[t][2]);
        }
        k += 8;
    }
    let mut out = [[0f32; 3]; 4];
    for t in 0..4 {
        for r in 0..3 {
            out[t][r] = hsum(acc[t][r]);
        }
    }
    out
}

/// The body of the `_a8` kernels: per block, `|xq|` times the weight codes carrying `xq`'s sign,
/// summed to 8 i32 lanes by `$madd`, then scaled by `sx_b·sw_b` into f32 accumulators. `$wblock`
/// loads block `b`'s 32 signed weight codes. (A macro, not a closure: closures do not inherit
/// the calling function's target features.)
macro_rules! a8_row {
    ($x:expr, $scale:expr, |$b:ident| $wblock:expr, $madd:expr) => {{
        let x: &Act8 = $x;
        let scale: &[f16] = $scale;
        let xp = x.q.as_ptr();
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut sc = [0f32; 8];
        for $b in 0..x.scale.len() {
            let xv = _mm256_loadu_si256(xp.add($b * BLOCK) as *const __m256i);
            let wv: __m256i = $wblock;
            let d = _mm256_cvtepi32_ps($madd(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(wv, xv)));
            if $b % 8 == 0 {
                sc = scales8(scale, $b);
            }
            let s = _mm256_set1_ps(sc[$b % 8] * x.scale[$b]);
            // Two accumulators alternate so consecutive blocks do not wait on each other.
            if $b % 2 == 0 {
                acc0 = _mm256_fmadd_ps(d, s, acc0);
            } else {
                acc1 = _mm256_fmadd_ps(d, s, acc1);
            }
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }};
}

/// `Σ u·s` over 32 byte pairs into 8 i32 lanes with AVX2: `vpmaddubsw` (pairs to i16), then
/// `vpmaddwd` by ones (to i32).
#[inline(always)]
unsafe fn madd_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The same with one VNNI instruction.
#[inline(always)]
unsafe fn madd_vnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

/// The 32 codes of a q4 block (16 bytes) as 32 signed bytes in [-8, 7], in element order.
#[inline(always)]
unsafe fn q4_block32(p: *const u8) -> __m256i {
    let bytes = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(bytes, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
    _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8))
}

/// `Σ x·w`, int8 row (padded to whole blocks), 8-bit activations, AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_int8_a8(x: &Act8, q: &[i8], scale: &[f16]) -> f32 {
    let qp = q.as_ptr();
    a8_row!(x, scale, |b| _mm256_loadu_si256(qp.add(b * BLOCK) as *const __m256i), madd_avx2)
}

/// `Σ x·w`, int8 row, 8-bit activations, AVX-512 VNNI (256-bit).
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub unsafe fn dot_int8_a8_vnni(x: &Act8, q: &[i8], scale: &[f16]) -> f32 {
    let qp = q.as_ptr();
    a8_row!(x, scale, |b| _mm256_loadu_si256(qp.add(b * BLOCK) as *const __m256i), madd_vnni)
}

/// `Σ x·w`, q4 row (padded to whole blocks), 8-bit activations, AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_a8(x: &Act8, q: &[u8], scale: &[f16]) -> f32 {
    let qp = q.as_ptr();
    a8_row!(x, scale, |b| q4_block32(qp.add(b * BLOCK / 2)), madd_avx2)
}

/// `Σ x·w`, q4 row, 8-bit activations, AVX-512 VNNI (256-bit).
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub unsafe fn dot_q4_a8_vnni(x: &Act8, q: &[u8], scale: &[f16]) -> f32 {
    let qp = q.as_ptr();
    a8_row!(x, scale, |b| q4_block32(qp.add(b * BLOCK / 2)), madd_vnni)
}

/// W8A8 micro-kernel: `out[r][t] = Σ_k u[r][k]·q[t][k]` (u8 × i8, i32 sums) for 4 weight rows ×
/// 4 tokens over `kp` bytes (a multiple of 32), with `vpdpbusd`: 16 accumulators, 8 loads and
/// 16 dot-product instructions (512 multiply-adds) per 32 bytes.
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub unsafe fn tile_w8a8_4x4(w: [*const u8; 4], x: [*const i8; 4], kp: usize) -> [[i32; 4]; 4] {
    let mut acc = [[_mm256_setzero_si256(); 4]; 4];
    let mut k = 0;
    while k < kp {
        let xv = [0, 1, 2, 3].map(|t| _mm256_loadu_si256(x[t].add(k) as *const __m256i));
        for r in 0..4 {
            let wv = _mm256_loadu_si256(w[r].add(k) as *const __m256i);
            for t in 0..4 {
                acc[r][t] = _mm256_dpbusd_epi32(acc[r][t], wv, xv[t]);
            }
        }
        k += 32;
    }
    let mut out = [[0i32; 4]; 4];
    for r in 0..4 {
        for t in 0..4 {
            let v = acc[r][t];
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            out[r][t] = _mm_cvtsi128_si32(s);
        }
    }
    out
}

/// One WKV-7 token for one head with FMA (spec §2.3 step 11): `s` is `[N][N]` (`[value][key]`),
/// `decay` and `b = κ̂⊙α` are precomputed; N must be a multiple of 8. Same maths as
/// `kernels::wkv_head_step`, with fused multiply-adds (fewer roundings, so it differs from the
/// portable build by float rounding only).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn wkv_rows(s: &mut [f32], kk: &[f32], k: &[f32], v: &[f32], r: &[f32], decay: &[f32], b: &[f32], y: &mut [f32]) {
    let n = r.len();
    let sp = s.as_mut_ptr();
    for i in 0..n {
        let row = sp.add(i * n);
        // sa = Σ_j S[i][j]·(−κ̂_j)
        let mut acc = _mm256_setzero_ps();
        let mut j = 0;
        while j < n {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(j)), _mm256_loadu_ps(kk.as_ptr().add(j)), acc);
            j += 8;
        }
        let sa = _mm256_set1_ps(-hsum(acc));
        let vi = _mm256_set1_ps(v[i]);
        // S'[i][j] = S[i][j]·decay_j + sa·b_j + v_i·k_j;  y_i = Σ_j S'[i][j]·r_j
        let mut yacc = _mm256_setzero_ps();
        let mut j = 0;
        while j < n {
            let mut nv = _mm256_mul_ps(_mm256_loadu_ps(row.add(j)), _mm256_loadu_ps(decay.as_ptr().add(j)));
            nv = _mm256_fmadd_ps(sa, _mm256_loadu_ps(b.as_ptr().add(j)), nv);
            nv = _mm256_fmadd_ps(vi, _mm256_loadu_ps(k.as_ptr().add(j)), nv);
            _mm256_storeu_ps(row.add(j), nv);
            yacc = _mm256_fmadd_ps(nv, _mm256_loadu_ps(r.as_ptr().add(j)), yacc);
            j += 8;
        }
        y[i] = hsum(yacc);
    }
}

/// Peak-rate probes for `gander bench`: `iters` rounds of 12 independent FMA (or VNNI) chains,
/// so the loop is limited by the units' throughput, not by latency. Returns the chains' sum so
/// the work cannot be optimised away.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn fma_probe(iters: usize) -> f32 {
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut s = _mm256_setzero_ps();
    for v in acc {
        s = _mm256_add_ps(s, v);
    }
    hsum(s)
}

/// See [`fma_probe`]; each `vpdpbusd` is 32 multiply-adds.
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub unsafe fn vnni_probe(iters: usize) -> i32 {
    let mut acc = [_mm256_setzero_si256(); 12];
    let a = _mm256_set1_epi8(1);
    let b = _mm256_set1_epi8(1);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_dpbusd_epi32(*v, a, b);
        }
    }
    let mut s = _mm256_setzero_si256();
    for v in acc {
        s = _mm256_add_epi32(s, v);
    }
    _mm256_extract_epi32(s, 0)
}
