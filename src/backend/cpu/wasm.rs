//! `simd128` kernels for the wasm build (compiled when the target enables `simd128`, which the
//! project's `.cargo/config.toml` does): the decode dot products per weight format and the
//! prefill tile, mirroring `x86.rs` with 4-lane vectors and no FMA (wasm has none).
//!
//! Results equal the scalar reference up to the order of f32 additions.

use crate::format::quant::BLOCK;
use core::arch::wasm32::*;
use half::f16;

#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

#[inline(always)]
unsafe fn ld(p: *const f32) -> v128 {
    v128_load(p as *const v128)
}

/// `Σ x·w` over f32 rows.
#[inline]
pub fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    let n = x.len().min(w.len());
    let mut acc = [f32x4_splat(0.0); 4];
    let mut i = 0;
    // Safety: every load reads 4 floats inside both slices (i + 16 <= n).
    unsafe {
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = f32x4_add(*a, f32x4_mul(ld(x.as_ptr().add(i + 4 * k)), ld(w.as_ptr().add(i + 4 * k))));
            }
            i += 16;
        }
    }
    let mut s = hsum(f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3])));
    while i < n {
        s += x[i] * w[i];
        i += 1;
    }
    s
}

/// 4 f16 values (bits in the low 64 bits of `h`) to f32, exactly: the exponent is rebased by
/// multiplying with 2^112, which also handles subnormals (weights are finite; Inf/NaN are not
/// preserved).
#[inline(always)]
fn f16x4_to_f32(h: v128) -> v128 {
    let w = u32x4_extend_low_u16x8(h);
    let sign = v128_and(w, u32x4_splat(0x8000));
    let mag = u32x4_shl(v128_and(w, u32x4_splat(0x7fff)), 13);
    let f = f32x4_mul(mag, f32x4_splat(f32::from_bits(0x7780_0000))); // 2^112
    v128_or(f, u32x4_shl(sign, 16))
}

/// `Σ x·w` with w in f16.
#[inline]
pub fn dot_f16(x: &[f32], w: &[f16]) -> f32 {
    let n = x.len().min(w.len());
    let mut acc = [f32x4_splat(0.0); 2];
    let mut i = 0;
    // Safety: loads stay inside both slices (i + 8 <= n).
    unsafe {
        while i + 8 <= n {
            let h = v128_load(w.as_ptr().add(i) as *const v128);
            acc[0] = f32x4_add(acc[0], f32x4_mul(ld(x.as_ptr().add(i)), f16x4_to_f32(h)));
            let hi = i64x2_shuffle::<1, 1>(h, h);
            acc[1] = f32x4_add(acc[1], f32x4_mul(ld(x.as_ptr().add(i + 4)), f16x4_to_f32(hi)));
            i += 8;
        }
    }
    let mut s = hsum(f32x4_add(acc[0], acc[1]));
    while i < n {
        s += x[i] * w[i].to_f32();
        i += 1;
    }
    s
}

/// Multiply 16 signed bytes (as f32) with 16 activations and add to `acc`.
#[inline(always)]
unsafe fn madd16(acc: v128, codes: v128, x: *const f32) -> v128 {
    let lo = i16x8_extend_low_i8x16(codes);
    let hi = i16x8_extend_high_i8x16(codes);
    let c0 = f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo));
    let c1 = f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo));
    let c2 = f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi));
    let c3 = f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi));
    let a = f32x4_add(f32x4_mul(ld(x), c0), f32x4_mul(ld(x.add(4)), c1));
    let b = f32x4_add(f32x4_mul(ld(x.add(8)), c2), f32x4_mul(ld(x.add(12)), c3));
    f32x4_add(acc, f32x4_add(a, b))
}

/// `Σ x·w` with w an int8 row (padded to whole blocks).
#[inline]
pub fn dot_int8(x: &[f32], q: &[i8], scale: &[f16]) -> f32 {
    let n = x.len();
    let full = n / BLOCK;
    let mut acc = f32x4_splat(0.0);
    for b in 0..full {
        let o = b * BLOCK;
        // Safety: block b lies inside x (full blocks only) and inside the padded row q.
        let blk = unsafe {
            let z = f32x4_splat(0.0);
            let z = madd16(z, v128_load(q.as_ptr().add(o) as *const v128), x.as_ptr().add(o));
            madd16(z, v128_load(q.as_ptr().add(o + 16) as *const v128), x.as_ptr().add(o + 16))
        };
        acc = f32x4_add(acc, f32x4_mul(blk, f32x4_splat(scale[b].to_f32())));
    }
    let mut sum = hsum(acc);
    if full * BLOCK < n {
        let t: f32 = (full * BLOCK..n).map(|i| x[i] * q[i] as f32).sum();
        sum += t * scale[full].to_f32();
    }
    sum
}

/// `Σ x·w` with w a q4 row (padded to whole blocks; nibbles split per block, see `quant::q4`).
#[inline]
pub fn dot_q4(x: &[f32], q: &[u8], scale: &[f16]) -> f32 {
    let n = x.len();
    let full = n / BLOCK;
    let mut acc = f32x4_splat(0.0);
    let mask = u8x16_splat(0x0f);
    let eight = i8x16_splat(8);
    for b in 0..full {
        let o = b * BLOCK;
        // Safety: as in dot_int8; a q4 block is 16 bytes.
        let blk = unsafe {
            let bytes = v128_load(q.as_ptr().add(b * BLOCK / 2) as *const v128);
            let lo = i8x16_sub(v128_and(bytes, mask), eight);
            let hi = i8x16_sub(v128_and(u8x16_shr(bytes, 4), mask), eight);
            let z = madd16(f32x4_splat(0.0), lo, x.as_ptr().add(o));
            madd16(z, hi, x.as_ptr().add(o + 16))
        };
        acc = f32x4_add(acc, f32x4_mul(blk, f32x4_splat(scale[b].to_f32())));
    }
    let mut sum = hsum(acc);
    if full * BLOCK < n {
        let qb = &q[full * BLOCK / 2..];
        let t: f32 = (full * BLOCK..n).enumerate().map(|(j, i)| x[i] * (((qb[j % 16] >> (4 * (j / 16))) & 0x0f) as i32 - 8) as f32).sum();
        sum += t * scale[full].to_f32();
    }
    sum
}

/// Prefill tile: 4 tokens × 3 panel rows over `len` floats (a multiple of 8).
#[inline]
pub fn tile_4x3(x: [&[f32]; 4], w: [&[f32]; 3], len: usize) -> [[f32; 3]; 4] {
    let mut acc = [[f32x4_splat(0.0); 3]; 4];
    let mut k = 0;
    // Safety: every slice has at least `len` floats.
    unsafe {
        while k < len {
            let wv = [ld(w[0].as_ptr().add(k)), ld(w[1].as_ptr().add(k)), ld(w[2].as_ptr().add(k))];
            for t in 0..4 {
                let xv = ld(x[t].as_ptr().add(k));
                for r in 0..3 {
                    acc[t][r] = f32x4_add(acc[t][r], f32x4_mul(xv, wv[r]));
                }
            }
            k += 4;
        }
    }
    acc.map(|row| row.map(hsum))
}

/// Integer dot of 32 i16 activations with 32 signed bytes `w` (two v128), as i32x4 partial sums.
#[inline(always)]
unsafe fn dot32_i16(x: *const i16, w_lo: v128, w_hi: v128) -> v128 {
    let w0 = i16x8_extend_low_i8x16(w_lo);
    let w1 = i16x8_extend_high_i8x16(w_lo);
    let w2 = i16x8_extend_low_i8x16(w_hi);
    let w3 = i16x8_extend_high_i8x16(w_hi);
    let l = |k: usize| v128_load(x.add(8 * k) as *const v128);
    let a = i32x4_add(i32x4_dot_i16x8(l(0), w0), i32x4_dot_i16x8(l(1), w1));
    let b = i32x4_add(i32x4_dot_i16x8(l(2), w2), i32x4_dot_i16x8(l(3), w3));
    i32x4_add(a, b)
}

/// `Σ x·w` for an int8 row from i16 activations (see `a16`); equals `a16::dot_int8_reference`
/// up to the order of the f32 additions across blocks.
#[inline]
pub fn dot_int8_a16(x: &super::a16::Act16, q: &[i8], scale: &[f16]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (b, &s) in x.scale.iter().enumerate() {
        // Safety: block b is inside the padded codes of both x and the row.
        let d = unsafe {
            let w = q.as_ptr().add(b * BLOCK);
            dot32_i16(x.q.as_ptr().add(b * BLOCK), v128_load(w as *const v128), v128_load(w.add(16) as *const v128))
        };
        acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(d), f32x4_splat(s * scale[b].to_f32())));
    }
    hsum(acc)
}

/// `Σ x·w` for a q4 row from i16 activations.
#[inline]
pub fn dot_q4_a16(x: &super::a16::Act16, q: &[u8], scale: &[f16]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mask = u8x16_splat(0x0f);
    let eight = i8x16_splat(8);
    for (b, &s) in x.scale.iter().enumerate() {
        // Safety: as in dot_int8_a16; a q4 block is 16 bytes.
        let d = unsafe {
            let bytes = v128_load(q.as_ptr().add(b * BLOCK / 2) as *const v128);
            let lo = i8x16_sub(v128_and(bytes, mask), eight);
            let hi = i8x16_sub(v128_and(u8x16_shr(bytes, 4), mask), eight);
            dot32_i16(x.q.as_ptr().add(b * BLOCK), lo, hi)
        };
        acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(d), f32x4_splat(s * scale[b].to_f32())));
    }
    hsum(acc)
}
