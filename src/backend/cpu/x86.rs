//! AVX2 + FMA + F16C kernels (x86-64), chosen at run time by [`super::matmul`].
//!
//! All work on f32 activations: quantised weights are widened to f32 in registers (decode) or
//! by the caller into a panel (prefill), so results equal the scalar reference up to the order
//! of f32 additions. Every function here is `unsafe` only because it needs those CPU features;
//! callers check them once with `is_x86_feature_detected!`.

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

/// 8 int8 codes at `p` widened to f32.
#[inline(always)]
unsafe fn i8x8(p: *const i8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
}

/// `Σ x·w` with w an int8 row (padded to whole blocks; `x` holds `cols` values).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_int8(x: &[f32], q: &[i8], scale: &[f16]) -> f32 {
    let n = x.len();
    let full = n / BLOCK;
    let (xp, qp) = (x.as_ptr(), q.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut sc = [0f32; 8];
    for b in 0..full {
        let o = b * BLOCK;
        let mut blk = _mm256_mul_ps(_mm256_loadu_ps(xp.add(o)), i8x8(qp.add(o)));
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 8)), i8x8(qp.add(o + 8)), blk);
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 16)), i8x8(qp.add(o + 16)), blk);
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 24)), i8x8(qp.add(o + 24)), blk);
        if b % 8 == 0 {
            sc = scales8(scale, b);
        }
        let s = _mm256_set1_ps(sc[b % 8]);
        // Two accumulators alternate so consecutive blocks do not wait on each other.
        if b % 2 == 0 {
            acc0 = _mm256_fmadd_ps(blk, s, acc0);
        } else {
            acc1 = _mm256_fmadd_ps(blk, s, acc1);
        }
    }
    let mut sum = hsum(_mm256_add_ps(acc0, acc1));
    if full * BLOCK < n {
        let s = scale[full].to_f32();
        let mut t = 0f32;
        for i in full * BLOCK..n {
            t += x[i] * q[i] as f32;
        }
        sum += t * s;
    }
    sum
}

/// The 32 codes of a q4 block (16 bytes) as two vectors of 16 signed bytes: elements 0-15, 16-31.
#[inline(always)]
unsafe fn q4_block(p: *const u8) -> (__m128i, __m128i) {
    let bytes = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(0x0f);
    let eight = _mm_set1_epi8(8);
    let lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);
    let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);
    (lo, hi)
}

/// 8 signed bytes (the low 8 of `v`) widened to f32.
#[inline(always)]
unsafe fn lo8(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
}

/// The high 8 signed bytes of `v` widened to f32.
#[inline(always)]
unsafe fn hi8(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)))
}

/// `Σ x·w` with w a q4 row (padded to whole blocks; `x` holds `cols` values).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4(x: &[f32], q: &[u8], scale: &[f16]) -> f32 {
    let n = x.len();
    let full = n / BLOCK;
    let (xp, qp) = (x.as_ptr(), q.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut sc = [0f32; 8];
    for b in 0..full {
        let o = b * BLOCK;
        let (lo, hi) = q4_block(qp.add(b * BLOCK / 2));
        let mut blk = _mm256_mul_ps(_mm256_loadu_ps(xp.add(o)), lo8(lo));
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 8)), hi8(lo), blk);
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 16)), lo8(hi), blk);
        blk = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o + 24)), hi8(hi), blk);
        if b % 8 == 0 {
            sc = scales8(scale, b);
        }
        let s = _mm256_set1_ps(sc[b % 8]);
        // Two accumulators alternate so consecutive blocks do not wait on each other.
        if b % 2 == 0 {
            acc0 = _mm256_fmadd_ps(blk, s, acc0);
        } else {
            acc1 = _mm256_fmadd_ps(blk, s, acc1);
        }
    }
    let mut sum = hsum(_mm256_add_ps(acc0, acc1));
    if full * BLOCK < n {
        let qb = &q[full * BLOCK / 2..];
        let mut t = 0f32;
        for (j, i) in (full * BLOCK..n).enumerate() {
            let code = (qb[j % 16] >> (4 * (j / 16))) & 0x0f;
            t += x[i] * (code as i32 - 8) as f32;
        }
        sum += t * scale[full].to_f32();
    }
    sum
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
