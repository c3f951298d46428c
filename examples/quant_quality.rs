//! Quantisation quality on a model and a text: for f16, int8, q4 with the NF4 code book and q4
//! with the linear code book, the perplexity ratio to fp32, the mean KL divergence
//! KL(p_fp32 ‖ p_quant) per token, and greedy top-1 agreement with fp32.
//!
//! ```text
//! cargo run --release --example quant_quality -- MODEL TEXT_FILE
//! ```
//! Matrices are quantised and dequantised in memory exactly as `gander convert` stores them
//! (same blocks, same rules for which tensors stay f16/f32), so the numbers are those of the files.

use gander::backend::cpu::Cpu;
use gander::format::quant::{int8, q4, HostMatrix, MatrixData};
use gander::format::{self, RawTensor, TensorInfo, TensorSource};
use gander::model::Model;
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
enum Fake {
    F16,
    Int8,
    Q4(&'static [f32; 16]),
    /// The stored `q4` format itself.
    Q4Stored,
}

struct FakeQuant {
    inner: Box<dyn TensorSource>,
    how: Fake,
}

fn quantised(name: &str, info: &TensorInfo) -> bool {
    let lora = ["w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"].iter().any(|s| name.ends_with(&format!(".att.{s}")));
    info.shape.len() == 2 && info.shape.iter().all(|&d| d > 1) && !name.ends_with("att.r_k") && !lora
}

impl TensorSource for FakeQuant {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        self.inner.tensors()
    }
    fn read(&mut self, name: &str) -> gander::Result<RawTensor> {
        let t = self.inner.read(name)?;
        let info = t.info.clone();
        let is_lora_or_mat = info.shape.len() == 2 && info.shape.iter().all(|&d| d > 1) && !name.ends_with("att.r_k");
        if !is_lora_or_mat {
            return Ok(t);
        }
        let (r, c) = (info.shape[0], info.shape[1]);
        let w = t.to_f32();
        let deq: Vec<f32> = match (self.how, quantised(name, &info)) {
            (Fake::Int8, true) => {
                let (q, scale) = int8::quantize(r, c, &w);
                HostMatrix { rows: r, cols: c, data: MatrixData::Int8 { q, scale } }.to_f32()
            }
            (Fake::Q4(book), true) => {
                let (q, scale) = q4::quantize_with(book, r, c, &w);
                let nb = c.div_ceil(32);
                let rb = q4::row_bytes(c);
                let mut out = vec![0f32; r * c];
                for i in 0..r {
                    q4::dequantize_row_with(book, &q[i * rb..(i + 1) * rb], &scale[i * nb..(i + 1) * nb], &mut out[i * c..(i + 1) * c]);
                }
                out
            }
            (Fake::Q4Stored, true) => {
                let (q, scale) = q4::quantize(r, c, &w);
                HostMatrix { rows: r, cols: c, data: MatrixData::Q4 { q, scale } }.to_f32()
            }
            // f16 everywhere in f16 mode; LoRA factors f16 in the quantised modes
            _ => w.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        };
        Ok(RawTensor { info: TensorInfo { dtype: format::DType::F32, shape: info.shape }, data: deq.iter().flat_map(|x| x.to_le_bytes()).collect() })
    }
}

fn softmax(l: &[f32]) -> Vec<f64> {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

fn all_probs(m: &Model<Cpu>, ids: &[u32]) -> Vec<Vec<f64>> {
    let mut st = m.new_state().expect("state");
    let mut out = Vec::new();
    m.forward_all(&mut st, ids, |_, l| {
        out.push(softmax(l));
        Ok(())
    })
    .expect("forward");
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, text) = match args.as_slice() {
        [m, t] => (std::path::PathBuf::from(m), std::fs::read_to_string(t)?),
        _ => return Err("usage: quant_quality MODEL TEXT_FILE".into()),
    };
    let reference = gander::model::load_path(&model)?;
    let ids = reference.tokenizer()?.encode(&text);
    let ctx = &ids[..ids.len() - 1];
    let p_ref = all_probs(&reference, ctx);
    let nll = |p: &[Vec<f64>]| -> f64 { p.iter().enumerate().map(|(i, d)| -d[ids[i + 1] as usize].ln()).sum::<f64>() / p.len() as f64 };
    let ppl_ref = nll(&p_ref).exp();
    println!("fp32 perplexity {ppl_ref:.4} over {} scored tokens", ctx.len());
    println!("{:<20} {:>10} {:>12} {:>14}", "format", "ppl ratio", "mean KL", "top-1 agree");
    for (label, how) in [
        ("f16", Fake::F16),
        ("int8", Fake::Int8),
        ("q4 nf4", Fake::Q4(&q4::NF4)),
        ("q4 linear (stored)", Fake::Q4Stored),
        ("q4 linear book", Fake::Q4(&q4::LINEAR)),
    ] {
        let mut src = FakeQuant { inner: format::open_path(&model)?, how };
        let m = Model::load(Cpu, &mut src)?;
        let p = all_probs(&m, ctx);
        let kl: f64 = p_ref
            .iter()
            .zip(&p)
            .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| if x > 0.0 { x * (x / y.max(1e-300)).ln() } else { 0.0 }).sum::<f64>())
            .sum::<f64>()
            / p.len() as f64;
        let argmax = |d: &Vec<f64>| d.iter().enumerate().fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
        let agree = p_ref.iter().zip(&p).filter(|(a, b)| argmax(a) == argmax(b)).count() as f64 / p.len() as f64;
        println!("{label:<20} {:>10.5} {:>12.3e} {:>13.2}%", nll(&p).exp() / ppl_ref, kl, agree * 100.0);
    }
    Ok(())
}
