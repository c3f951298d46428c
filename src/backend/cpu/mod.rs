//! The CPU backend, the project's numerical reference: with f32 or f16 matrices its maths is
//! exact fp32 (it matches the official `rwkv` package's `cpu fp32` to ~1e-6, tests/golden.rs);
//! f16 rows are widened to f32 inside the product, and the state and all accumulations are f32.
//!
//! Three paths trade exactness for speed, and only for int8/q4 matrices (whose weights are
//! already quantised): prefill on VNNI CPUs quantises the activations to 8 bits per token
//! ([`w8a8`]), native decode on AVX2/VNNI CPUs to 8 bits per block of 32 ([`a8`]), and wasm
//! decode to 16 bits per block ([`a16`]). Each has a scalar oracle and a stated error bound
//! (tests/kernels.rs, tests/quant.rs); `GANDER_CPU_ISA=generic` turns the native ones off
//! ([`isa::best_isa`]), `GANDER_CPU_ISA=avx2` the VNNI ones.

pub mod a16;
pub mod a8;
pub mod isa;
pub mod kernels;
pub mod matmul;
pub mod peak;
mod tensor;
pub mod w8a8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use tensor::{buffers, CpuMatrix, Tensor};

use super::{Backend, HostMatrix, LoraMid, Shift};
use crate::config::{spec, Config};
use crate::error::{Error, Result};
use crate::state::State;

/// The product kernels read rows through raw pointers: the input width must be the matrix's.
fn check_width(x: &Tensor, w: &CpuMatrix) -> Result<()> {
    if x.cols != w.cols || x.data.len() != x.rows * x.cols {
        return Err(Error::BadInput(format!("a [{}, {}] input for a matrix of width {}", x.rows, x.cols, w.cols)));
    }
    Ok(())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Normalise `x` to zero mean and unit variance (biased), then scale and shift; statistics in f64.
fn norm_into(x: &[f32], w: &[f32], b: &[f32], eps: f64, out: &mut [f32]) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for i in 0..x.len() {
        out[i] = ((x[i] as f64 - mean) * inv) as f32 * w[i] + b[i];
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use isa::pool;

/// The exact fp32 CPU backend.
#[derive(Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Matrix = CpuMatrix;
    type Vector = Vec<f32>;
    type Group = Vec<CpuMatrix>;
    type Act = Tensor;
    type State = State;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(not(target_arch = "wasm32"))]
        {
            pool().install(f)
        }
        #[cfg(target_arch = "wasm32")]
        {
            f()
        }
    }

    fn matrix_bytes(&self, m: &CpuMatrix) -> usize {
        m.byte_len()
    }

    fn matrix(&self, m: HostMatrix) -> Result<CpuMatrix> {
        m.validate()?;
        Ok(CpuMatrix::new(m))
    }

    fn group(&self, mats: Vec<HostMatrix>) -> Result<Vec<CpuMatrix>> {
        mats.into_iter().map(|m| self.matrix(m)).collect()
    }

    fn group_bytes(&self, g: &Vec<CpuMatrix>) -> usize {
        g.iter().map(|m| m.byte_len()).sum()
    }

    fn matmul_mix_group(&self, u: &Tensor, d: &Tensor, mus: &[&Vec<f32>], g: &Vec<CpuMatrix>, acts: &[LoraMid]) -> Result<Vec<Tensor>> {
        g.iter()
            .zip(mus)
            .zip(acts)
            .map(|((w, mu), act)| {
                let x = self.lerp(u, d, mu)?;
                check_width(&x, w)?;
                let y = matmul::matmul(&x, w);
                Ok(match act {
                    LoraMid::None => y,
                    LoraMid::Tanh => y.map(f32::tanh),
                    LoraMid::Sigmoid => y.map(sigmoid),
                })
            })
            .collect()
    }

    fn lora_up(&self, h: &Tensor, up: &CpuMatrix, bias: Option<&Vec<f32>>, sigmoid_out: bool) -> Result<Tensor> {
        check_width(h, up)?;
        let mut y = matmul::matmul(h, up);
        let c = y.cols;
        for (i, o) in y.data.iter_mut().enumerate() {
            if let Some(b) = bias {
                *o += b[i % c];
            }
            if sigmoid_out {
                *o = sigmoid(*o);
            }
        }
        Ok(y)
    }

    fn vector(&self, v: Vec<f32>) -> Result<Vec<f32>> {
        Ok(v)
    }

    fn new_state(&self, cfg: &Config, fingerprint: [u8; 32]) -> Result<State> {
        Ok(State::zeros(cfg, fingerprint))
    }
    fn state_to_host(&self, s: &State) -> Result<State> {
        Ok(s.clone())
    }
    fn state_from_host(&self, s: &State) -> Result<State> {
        s.check_consistent()?;
        Ok(s.clone())
    }
    fn state_fits(&self, s: &State, cfg: &Config) -> Result<()> {
        s.check_fits(cfg)
    }

    fn act_from_host(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Tensor> {
        if data.len() != rows * cols {
            return Err(Error::BadInput(format!("{} values for a [{rows}, {cols}] activation", data.len())));
        }
        let mut t = Tensor::zeros(rows, cols);
        t.data.copy_from_slice(data);
        Ok(t)
    }

    fn embed(&self, emb: &CpuMatrix, tokens: &[u32]) -> Result<Tensor> {
        let (rows, cols) = (emb.rows, emb.cols);
        let mut out = Tensor::zeros(tokens.len(), cols);
        for (t, &tok) in tokens.iter().enumerate() {
            let tok = tok as usize;
            if tok >= rows {
                return Err(Error::BadInput(format!("token id {tok} is out of range (vocabulary has {rows} rows)")));
            }
            emb.row_into(tok, &mut out.data[t * cols..(t + 1) * cols]);
        }
        Ok(out)
    }

    fn layer_norm(&self, x: &Tensor, w: &Vec<f32>, b: &Vec<f32>) -> Result<Tensor> {
        let mut out = Tensor::zeros(x.rows, x.cols);
        for t in 0..x.rows {
            norm_into(x.row(t), w, b, spec::LN_EPS, &mut out.data[t * x.cols..(t + 1) * x.cols]);
        }
        Ok(out)
    }

    fn token_shift(&self, u: &Tensor, state: &mut State, layer: usize, which: Shift) -> Result<Tensor> {
        let ls = &mut state.layers[layer];
        let prev = match which {
            Shift::TimeMix => &mut ls.att_shift,
            Shift::ChannelMix => &mut ls.ffn_shift,
        };
        let c = u.cols;
        let mut d = Tensor::zeros(u.rows, c);
        for t in 0..u.rows {
            let p: &[f32] = if t == 0 { prev } else { u.row(t - 1) };
            for i in 0..c {
                d.data[t * c + i] = p[i] - u.data[t * c + i];
            }
        }
        if u.rows > 0 {
            prev.copy_from_slice(u.row(u.rows - 1));
        }
        Ok(d)
    }

    fn lerp(&self, u: &Tensor, d: &Tensor, mu: &Vec<f32>) -> Result<Tensor> {
        let c = u.cols;
        let mut out = u.copy();
        for (row, drow) in out.data.chunks_exact_mut(c).zip(d.data.chunks_exact(c)) {
            for ((o, &dv), &m) in row.iter_mut().zip(drow).zip(mu.iter()) {
                *o += dv * m;
            }
        }
        Ok(out)
    }

    fn matmul(&self, x: &Tensor, w: &CpuMatrix) -> Result<Tensor> {
        check_width(x, w)?;
        Ok(matmul::matmul(x, w))
    }

    fn removal_key(&self, k: &Tensor, k_k: &Vec<f32>, head_size: usize) -> Result<Tensor> {
        let c = k.cols;
        let mut out = Tensor::zeros(k.rows, c);
        for (idx, (kr, or)) in k.data.chunks_exact(head_size).zip(out.data.chunks_exact_mut(head_size)).enumerate() {
            let base = (idx * head_size) % c;
            let mut ss = 0f32;
            for j in 0..head_size {
                or[j] = kr[j] * k_k[base + j];
                ss += or[j] * or[j];
            }
            let inv = 1.0 / ss.sqrt().max(1e-12);
            or.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(out)
    }

    fn write_key(&self, k: &Tensor, alpha: &Tensor, k_a: &Vec<f32>) -> Result<Tensor> {
        let c = k.cols;
        let mut out = k.copy();
        for (i, o) in out.data.iter_mut().enumerate() {
            *o *= 1.0 + (alpha.data[i] - 1.0) * k_a[i % c];
        }
        Ok(out)
    }

    fn value_residual(&self, v: &Tensor, v_first: &Tensor, gate: &Tensor) -> Result<Tensor> {
        let mix = v_first.zip(v, |f, v| f - v);
        Ok(v.zip(&mix.zip(gate, |m, g| m * g), |v, m| v + m))
    }

    fn wkv(&self, state: &mut State, layer: usize, r: &Tensor, z: &Tensor, k: &Tensor, v: &Tensor, kk: &Tensor, alpha: &Tensor) -> Result<Tensor> {
        let n = state.head_size;
        let c = r.cols;
        let t_len = r.rows;
        let s = &mut state.layers[layer].wkv;
        let mut y = Tensor::zeros(t_len, c);
        // Heads are independent: each scans all T tokens with its own N×N state.
        let rows_of = |h: usize| {
            move |t: usize| {
                let sl = t * c + h * n..t * c + (h + 1) * n;
                kernels::WkvRow {
                    r: &r.data[sl.clone()],
                    z: &z.data[sl.clone()],
                    k: &k.data[sl.clone()],
                    v: &v.data[sl.clone()],
                    kk: &kk.data[sl.clone()],
                    alpha: &alpha.data[sl],
                }
            }
        };
        if t_len == 1 {
            // Decoding: head h writes y[h·N..(h+1)·N] directly (no per-head buffers).
            let per_head = |(h, (sh, yh)): (usize, (&mut [f32], &mut [f32]))| kernels::wkv_scan_head(sh, 1, rows_of(h), yh);
            #[cfg(not(target_arch = "wasm32"))]
            {
                use rayon::prelude::*;
                s.par_chunks_mut(n * n).zip(y.data.par_chunks_mut(n)).enumerate().for_each(per_head);
            }
            #[cfg(target_arch = "wasm32")]
            s.chunks_mut(n * n).zip(y.data.chunks_mut(n)).enumerate().for_each(per_head);
            return Ok(y);
        }
        let per_head = |(h, sh): (usize, &mut [f32])| {
            let mut ys = vec![0f32; t_len * n];
            kernels::wkv_scan_head(sh, t_len, rows_of(h), &mut ys);
            (h, ys)
        };
        #[cfg(not(target_arch = "wasm32"))]
        let outs: Vec<(usize, Vec<f32>)> = {
            use rayon::prelude::*;
            s.par_chunks_mut(n * n).enumerate().map(per_head).collect()
        };
        #[cfg(target_arch = "wasm32")]
        let outs: Vec<(usize, Vec<f32>)> = s.chunks_mut(n * n).enumerate().map(per_head).collect();
        for (h, ys) in outs {
            for t in 0..t_len {
                y.data[t * c + h * n..t * c + (h + 1) * n].copy_from_slice(&ys[t * n..(t + 1) * n]);
            }
        }
        Ok(y)
    }

    fn group_norm_bonus_gate(
        &self,
        y: &Tensor,
        r: &Tensor,
        k: &Tensor,
        v: &Tensor,
        r_k: &Vec<f32>,
        ln_w: &Vec<f32>,
        ln_b: &Vec<f32>,
        g: &Tensor,
        head_size: usize,
    ) -> Result<Tensor> {
        let c = y.cols;
        let n = head_size;
        let heads = c / n;
        let mut out = Tensor::zeros(y.rows, c);
        for t in 0..y.rows {
            for h in 0..heads {
                let sl = t * c + h * n..t * c + (h + 1) * n;
                let cs = h * n..(h + 1) * n;
                norm_into(&y.data[sl.clone()], &ln_w[cs.clone()], &ln_b[cs.clone()], spec::GN_EPS, &mut out.data[sl.clone()]);
                let beta: f32 = (0..n).map(|j| r.data[sl.start + j] * k.data[sl.start + j] * r_k[h * n + j]).sum();
                for i in 0..n {
                    let o = &mut out.data[sl.start + i];
                    *o = (*o + beta * v.data[sl.start + i]) * g.data[sl.start + i];
                }
            }
        }
        Ok(out)
    }

    fn relu_sq(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.map(|v| {
            let r = v.max(0.0);
            r * r
        }))
    }

    fn add_assign(&self, x: &mut Tensor, y: &Tensor) -> Result<()> {
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn mul_assign(&self, x: &mut Tensor, y: &Tensor) -> Result<()> {
        if (x.rows, x.cols) != (y.rows, y.cols) {
            return Err(Error::BadInput(format!("[{}, {}] ⊙ [{}, {}]", x.rows, x.cols, y.rows, y.cols)));
        }
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a *= b);
        Ok(())
    }

    fn token_matvec(&self, a: &Tensor, m: &Tensor) -> Result<Tensor> {
        let r = a.cols;
        if m.rows != a.rows || Some(m.cols) != r.checked_mul(r) {
            return Err(Error::BadInput(format!("[{}, {r}] times [{}, {}] as {r}×{r} matrices", a.rows, m.rows, m.cols)));
        }
        let mut out = Tensor::zeros(a.rows, r);
        if r == 0 {
            return Ok(out);
        }
        for ((o, av), mv) in out.data.chunks_exact_mut(r).zip(a.data.chunks_exact(r)).zip(m.data.chunks_exact(r * r)) {
            for (&ai, mrow) in av.iter().zip(mv.chunks_exact(r)) {
                o.iter_mut().zip(mrow).for_each(|(o, &x)| *o += ai * x);
            }
        }
        Ok(out)
    }

    fn last_row(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.rows.checked_sub(1).ok_or_else(|| Error::BadInput("no tokens".into()))?;
        let mut out = Tensor::zeros(1, x.cols);
        out.data.copy_from_slice(x.row(t));
        Ok(out)
    }

    fn read_into(&self, x: &Tensor, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        out.extend_from_slice(&x.data);
        Ok(())
    }
}
