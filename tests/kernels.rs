//! Matrix-product kernels against the formats' scalar references, for every instruction-set
//! path. Self-contained (no files, no processes), so it also runs as wasm under Node
//! (`make test` runs it for wasm32-wasip1 with tests/wasi-runner.mjs), which is where the
//! `simd128` kernels are exercised.

use gander::backend::cpu::matmul::{best_isa, matmul_with, Isa};
use gander::backend::cpu::{a16, a8, w8a8, Cpu, Tensor};
use gander::backend::Backend;
use gander::format::quant::{int8, q4, HostMatrix, MatrixData, BLOCK};

#[path = "common/rand.rs"]
mod rand;
use rand::rand_vec;

/// The f16 rounding of a block's scale, relative: at most 2^-11 (half an ulp of f16's 10-bit
/// mantissa); 1e-3 is a round bound above it. A code of magnitude m carries it m times.
const F16_SCALE_ROUNDING: f32 = 1e-3;

const SHAPES: [(usize, usize); 9] = [(1, 1), (3, 2), (5, 31), (4, 32), (7, 33), (2, 63), (6, 100), (3, 257), (33, 64)];

#[test]
fn int8_reference_error_is_at_most_half_a_step() {
    for (i, &(r, c)) in SHAPES.iter().enumerate() {
        let w = rand_vec(r * c, i as u64);
        let (q, s) = int8::quantize(r, c, &w);
        let m = HostMatrix { rows: r, cols: c, data: MatrixData::Int8 { q, scale: s.clone() } };
        let d = m.to_f32();
        let nb = c.div_ceil(BLOCK);
        for k in 0..r * c {
            let step = s[(k / c) * nb + (k % c) / BLOCK].to_f32();
            // half a step, plus the f16 rounding of the scale stretched over at most 127 steps
            assert!((w[k] - d[k]).abs() <= 0.5 * step + 127.0 * step * F16_SCALE_ROUNDING, "{r}x{c} at {k}");
        }
    }
}

#[test]
fn q4_reference_error_is_at_most_half_a_step() {
    for (i, &(r, c)) in SHAPES.iter().enumerate() {
        let w = rand_vec(r * c, 100 + i as u64);
        let (q, s) = q4::quantize(r, c, &w);
        assert_eq!(q.len(), r * q4::row_bytes(c));
        assert_eq!(q4::row_bytes(c) * 2 % BLOCK, 0, "rows are padded to whole blocks");
        let m = HostMatrix { rows: r, cols: c, data: MatrixData::Q4 { q, scale: s.clone() } };
        let d = m.to_f32();
        let nb = c.div_ceil(BLOCK);
        for k in 0..r * c {
            let step = s[(k / c) * nb + (k % c) / BLOCK].to_f32();
            // half a step, plus the scale's f16 rounding over at most 8 steps (codes -8..7)
            assert!((w[k] - d[k]).abs() <= 0.5 * step + 8.0 * step * F16_SCALE_ROUNDING, "{r}x{c} at {k}");
        }
    }
}

/// Kernel vs scalar reference: the kernel sums in f32 in another order than the f64 reference,
/// so the bound is relative to Σ|x·w'| (a standard f32 dot-product error bound, n·ε with
/// n ≤ 257 and ε = 6e-8 gives 1.5e-5; 3e-5 leaves room for the lane reduction).
const KERNEL_TOL: f64 = 3e-5;

#[test]
fn kernels_match_reference_on_odd_shapes_and_token_counts() {
    let cpu = Cpu;
    for (i, &(r, c)) in SHAPES.iter().enumerate() {
        let w = rand_vec(r * c, 200 + i as u64);
        let mats = [
            HostMatrix { rows: r, cols: c, data: MatrixData::F32(w.clone()) },
            HostMatrix { rows: r, cols: c, data: MatrixData::F16(w.iter().map(|&x| half::f16::from_f32(x)).collect()) },
            {
                let (q, scale) = int8::quantize(r, c, &w);
                HostMatrix { rows: r, cols: c, data: MatrixData::Int8 { q, scale } }
            },
            {
                let (q, scale) = q4::quantize(r, c, &w);
                HostMatrix { rows: r, cols: c, data: MatrixData::Q4 { q, scale } }
            },
        ];
        for t in [1usize, 3, 4, 17, 70] {
            let x = Tensor { rows: t, cols: c, data: rand_vec(t * c, 300 + i as u64 + t as u64) };
            for m in &mats {
                let reference = m.to_f32();
                let cm = cpu.matrix(m.clone()).unwrap();
                let exact = |tt: usize, o: usize| {
                    let (mut e, mut mag) = (0f64, 0f64);
                    for k in 0..c {
                        let p = x.data[tt * c + k] as f64 * reference[o * c + k] as f64;
                        e += p;
                        mag += p.abs();
                    }
                    (e, mag)
                };
                // Every path against f64: portable, AVX2 and VNNI (where the CPU has them).
                // The rounding of activations quantised per block to codes of magnitude `qmax`
                // moves a product by at most Σ_b (sx_b/2)·Σ_{k∈b}|w_k|, sx_b = block max / qmax.
                let act_bound = |tt: usize, o: usize, qmax: f64| -> f64 {
                    (0..c)
                        .map(|kk| {
                            let b = kk / BLOCK;
                            let blk = &x.data[tt * c + b * BLOCK..tt * c + ((b + 1) * BLOCK).min(c)];
                            let sx = blk.iter().fold(0f64, |a, v| a.max(v.abs() as f64)) / qmax;
                            reference[o * c + kk].abs() as f64 * sx / 2.0
                        })
                        .sum::<f64>()
                        * 1.001
                };
                // In wasm the portable path decodes quantised weights through 16-bit activations
                // (a16); native SIMD decode through 8-bit ones (a8), which must also equal its
                // integer oracle up to f32 summation order.
                let quantised = matches!(m.data, MatrixData::Int8 { .. } | MatrixData::Q4 { .. });
                let a16_bound = |tt: usize, o: usize| -> f64 {
                    if cfg!(target_arch = "wasm32") && t < 4 && quantised {
                        act_bound(tt, o, 32767.0)
                    } else {
                        0.0
                    }
                };
                let a8_bound = |tt: usize, o: usize| act_bound(tt, o, 127.0);
                let mut isas = vec![Isa::Generic];
                if best_isa() != Isa::Generic {
                    isas.push(Isa::Avx2);
                }
                if best_isa() == Isa::Vnni && t < 4 {
                    isas.push(Isa::Vnni);
                }
                for isa in isas {
                    let y = matmul_with(&x, &cm, isa);
                    let a8 = cfg!(target_arch = "x86_64") && isa != Isa::Generic && t < 4 && quantised;
                    for tt in 0..t {
                        let xa = a8::quantize(&x.data[tt * c..(tt + 1) * c]);
                        for o in 0..r {
                            let (e, mag) = exact(tt, o);
                            let got = y.data[tt * r + o] as f64;
                            let extra = if a8 { a8_bound(tt, o) } else { a16_bound(tt, o) };
                            assert!((got - e).abs() <= KERNEL_TOL * mag.max(1e-30) + extra, "{isa:?} {} {r}x{c} T={t}: {got} vs {e}", m.format_name());
                            if a8 {
                                let nb = c.div_ceil(BLOCK);
                                let oracle = match &m.data {
                                    MatrixData::Int8 { q, scale } => {
                                        let rb = int8::row_bytes(c);
                                        a8::dot_int8_ref(&xa, &q[o * rb..(o + 1) * rb], &scale[o * nb..(o + 1) * nb])
                                    }
                                    MatrixData::Q4 { q, scale } => {
                                        let rb = q4::row_bytes(c);
                                        a8::dot_q4_ref(&xa, &q[o * rb..(o + 1) * rb], &scale[o * nb..(o + 1) * nb])
                                    }
                                    _ => unreachable!(),
                                } as f64;
                                assert!(
                                    (got - oracle).abs() <= KERNEL_TOL * (mag + extra).max(1e-30),
                                    "{isa:?} a8 {} {r}x{c}: {got} vs its oracle {oracle}",
                                    m.format_name()
                                );
                            }
                        }
                    }
                }
                // The VNNI prompt path for quantised weights: exactly its scalar oracle, and
                // within the W8A8 rounding bound of the f64 reference.
                if quantised && t >= 4 && best_isa() == Isa::Vnni {
                    let y = matmul_with(&x, &cm, Isa::Vnni);
                    assert_eq!(y.data, w8a8::w8a8_reference(&x, &cm).data, "VNNI kernel vs its oracle");
                    for tt in 0..t {
                        let xr = &x.data[tt * c..(tt + 1) * c];
                        let ax = xr.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
                        for o in 0..r {
                            let wr = &reference[o * c..(o + 1) * c];
                            let aw = wr.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
                            let sx: f64 = xr.iter().map(|v| v.abs() as f64).sum();
                            let sw: f64 = wr.iter().map(|v| v.abs() as f64).sum();
                            // |Δw| ≤ aw/254, |Δx| ≤ ax/254 per element (half a step of 127 levels)
                            let bound = (aw * sx + ax * sw) / 254.0 + c as f64 * aw * ax / 254.0 / 254.0;
                            let (e, mag) = exact(tt, o);
                            let got = y.data[tt * r + o] as f64;
                            assert!((got - e).abs() <= bound * 1.001 + KERNEL_TOL * mag, "W8A8 {r}x{c} T={t}: {got} vs {e}, bound {bound}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a16_reference_is_exact_up_to_activation_rounding() {
    for (i, &(r, c)) in SHAPES.iter().enumerate() {
        let w = rand_vec(r * c, 500 + i as u64);
        let x = rand_vec(c, 600 + i as u64);
        let xa = a16::quantize(&x);
        let nb = c.div_ceil(BLOCK);
        let (qi, si) = int8::quantize(r, c, &w);
        let (q4q, q4s) = q4::quantize(r, c, &w);
        let mats = [
            HostMatrix { rows: r, cols: c, data: MatrixData::Int8 { q: qi.clone(), scale: si.clone() } },
            HostMatrix { rows: r, cols: c, data: MatrixData::Q4 { q: q4q.clone(), scale: q4s.clone() } },
        ];
        for (mi, m) in mats.iter().enumerate() {
            let wf = m.to_f32();
            for o in 0..r {
                let got = if mi == 0 {
                    let rb = int8::row_bytes(c);
                    a16::dot_int8_reference(&xa, &qi[o * rb..(o + 1) * rb], &si[o * nb..(o + 1) * nb])
                } else {
                    let rb = q4::row_bytes(c);
                    a16::dot_q4_reference(&xa, &q4q[o * rb..(o + 1) * rb], &q4s[o * nb..(o + 1) * nb])
                } as f64;
                let (mut e, mut mag, mut bound) = (0f64, 0f64, 0f64);
                for kk in 0..c {
                    let p = x[kk] as f64 * wf[o * c + kk] as f64;
                    e += p;
                    mag += p.abs();
                    bound += wf[o * c + kk].abs() as f64 * xa.scale[kk / BLOCK] as f64 / 2.0;
                }
                assert!((got - e).abs() <= bound * 1.001 + KERNEL_TOL * mag, "{} {r}x{c}: {got} vs {e}", m.format_name());
            }
        }
    }
}

#[test]
fn mismatched_shapes_are_errors_not_out_of_bounds_reads() {
    let cpu = Cpu;
    let (q, scale) = int8::quantize(1, 32, &rand_vec(32, 1));
    let m = cpu.matrix(HostMatrix { rows: 1, cols: 32, data: MatrixData::Int8 { q, scale } }).unwrap();
    let x = cpu.act_from_host(1, 64, &rand_vec(64, 2)).unwrap();
    assert_eq!(cpu.matmul(&x, &m).unwrap_err().code(), "BAD_INPUT");
    // A matrix whose data does not match its shape is refused when it is created.
    let bad = HostMatrix { rows: 2, cols: 32, data: MatrixData::Int8 { q: vec![0; 32], scale: vec![half::f16::ONE; 1] } };
    assert!(cpu.matrix(bad).is_err());
}
