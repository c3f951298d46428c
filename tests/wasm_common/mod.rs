//! Golden data for the wasm32-unknown-unknown tests (no file system there: compiled in).
#![allow(dead_code)]

use gander::backend::Backend;
use gander::format;
use gander::model::Model;

#[path = "../common/tolerances.rs"]
#[allow(dead_code)]
mod tolerances;
#[allow(unused_imports)]
pub use tolerances::*;

pub struct Case {
    pub name: &'static str,
    pub pth: &'static [u8],
    pub golden: &'static str,
    pub logits_one: &'static [u8],
}

macro_rules! case {
    ($n:literal) => {
        Case {
            name: $n,
            pth: include_bytes!(concat!("../golden/", $n, "/model.pth")),
            golden: include_str!(concat!("../golden/", $n, "/golden.json")),
            logits_one: include_bytes!(concat!("../golden/", $n, "/logits_one.f32")),
        }
    };
}

pub fn cases() -> [Case; 3] {
    [case!("bf16-l0v"), case!("fp16-oddranks"), case!("fp32-bytes")]
}

#[derive(serde::Deserialize)]
pub struct Golden {
    pub vocab: usize,
    pub tokens: Vec<u32>,
    pub greedy: Vec<u32>,
}

pub fn golden(c: &Case) -> Golden {
    serde_json::from_str(c.golden).unwrap()
}

pub fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// max|got − want| / std(want).
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let n = want.len() as f64;
    let mean = want.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (want.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    got.iter().zip(want).map(|(&a, &b)| (a as f64 - b as f64).abs()).fold(0.0, f64::max) / std
}

/// Convert a checkpoint to a Gander file of `quant` in memory.
pub fn to_gander(pth: &[u8], quant: &str) -> Vec<u8> {
    let mut src = format::open_bytes(pth.to_vec()).unwrap();
    let mut out = Vec::new();
    gander::model::convert(src.as_mut(), format::gander::Quant::parse(quant).unwrap(), &mut out, &mut |_, _| {}).unwrap();
    out
}

/// Load a safetensors file the way the browser streams one: from its header, part by part.
pub fn load_streamed<B: Backend>(backend: B, file: &[u8]) -> Model<B> {
    let hl = format::safetensors::SafetensorsFile::header_len(file, file.len() as u64).unwrap() as usize;
    let mut src = format::open_header(&file[..hl], file.len() as u64).unwrap();
    let mut b = gander::model::ModelBuilder::new(backend, src.as_ref()).unwrap();
    while let Some(part) = b.next_part() {
        let pieces = src.pieces().unwrap();
        for (name, a, e) in pieces.wanted(&part.prefixes()) {
            pieces.insert(&name, file[a as usize..e as usize].to_vec()).unwrap();
        }
        b.load_next(src.as_mut()).unwrap();
        src.pieces().unwrap().clear();
    }
    b.finish().unwrap()
}

/// Token-by-token logits through the async path the browser uses.
pub async fn worst_golden<B: Backend>(m: &Model<B>, c: &Case) -> f64 {
    let g = golden(c);
    let want = floats(c.logits_one);
    let mut st = m.new_state().unwrap();
    let mut worst = 0f64;
    for (t, &tok) in g.tokens.iter().enumerate() {
        let got = m.forward_async(&mut st, &[tok]).await.unwrap();
        worst = worst.max(rel_err(&got, &want[t * g.vocab..(t + 1) * g.vocab]));
    }
    worst
}
