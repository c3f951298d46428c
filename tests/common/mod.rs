//! Shared helpers for the integration tests: golden files, the error metric, test checkpoints.
#![allow(dead_code)]

use gander::format::RawTensor;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[allow(dead_code)]
mod tolerances;
#[allow(unused_imports)]
pub use tolerances::*;

pub fn golden_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case)
}

/// The trained fixture's folder; a missing fixture fails the test (it never skips).
pub fn fixture_dir() -> PathBuf {
    fixture_path("tiny-rwkv7-834k")
}

/// A file of the trained fixture (`../shared/fixtures/`); a missing fixture fails the test.
pub fn fixture_path(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(rel);
    assert!(p.exists(), "{} is missing: the tests need ../shared beside the repository", p.display());
    p
}

pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// max|got − want| / std(want).
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let n = want.len() as f64;
    let mean = want.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (want.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let maxd = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b as f64).abs()).fold(0.0, f64::max);
    maxd / std
}

#[derive(serde::Deserialize)]
pub struct Golden {
    pub vocab: usize,
    pub embd: usize,
    pub head_size: usize,
    pub layers: usize,
    pub tokens: Vec<u32>,
    pub greedy: Vec<u32>,
}

pub fn golden(case: &str) -> Golden {
    let s = std::fs::read_to_string(golden_dir(case).join("golden.json")).expect("golden.json");
    serde_json::from_str(&s).expect("golden.json parses")
}

pub const CASES: [&str; 4] = ["bf16-l0v", "fp16-oddranks", "fp32-bytes", "deepembed"];

/// The checkpoint files of a golden case: every case has `model.pth`; the cases make_golden.py
/// also saves as safetensors (its `st`) have `model.safetensors`. Listed, not probed, so that a
/// missing file fails its test instead of being skipped.
pub fn golden_files(case: &str) -> Vec<&'static str> {
    match case {
        "fp32-bytes" | "deepembed" => vec!["model.pth", "model.safetensors"],
        _ => vec!["model.pth"],
    }
}

/// All tensors of a checkpoint, for building altered copies.
pub fn read_all(path: &std::path::Path) -> BTreeMap<String, RawTensor> {
    let mut src = gander::format::open_path(path).expect("opens");
    let names: Vec<String> = src.tensors().keys().cloned().collect();
    names
        .into_iter()
        .map(|n| {
            let t = src.read(&n).expect("reads");
            (n, t)
        })
        .collect()
}

/// Write tensors as a plain safetensors file.
pub fn write_safetensors(path: &std::path::Path, tensors: &BTreeMap<String, RawTensor>) {
    use gander::format::DType;
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, t)| {
            let dt = match t.info.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::F16 => safetensors::Dtype::F16,
                DType::BF16 => safetensors::Dtype::BF16,
                DType::I8 => safetensors::Dtype::I8,
                DType::U8 => safetensors::Dtype::U8,
            };
            (n.clone(), safetensors::tensor::TensorView::new(dt, t.info.shape.clone(), &t.data).expect("view"))
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("writes");
}

/// A fresh temporary directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gander-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// Drive `model::inspect::Inspector` over a file held in memory, answering each range it asks
/// for: (summary, the inspector (its `fetched` bytes), round trips + 1).
pub fn inspect_by_ranges(bytes: &[u8]) -> (Box<gander::model::inspect::Summary>, gander::model::inspect::Inspector, usize) {
    use gander::model::inspect::{Inspector, Step};
    let mut ins = Inspector::new(bytes.len() as u64);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 32, "too many round trips");
        match ins.step().unwrap() {
            Step::Need(a, b) => ins.add(a, bytes[a as usize..b as usize].to_vec()),
            Step::Done(s) => return (s, ins, steps),
        }
    }
}

/// Drive `model::pull::PullLoader` over a file held in memory, as the browser does over IndexedDB
/// chunks or range requests: each range it asks for is handed over in pieces of `piece` bytes.
/// Returns (model, bytes handed over, round trips).
pub fn load_pulled<B: gander::backend::Backend>(
    backend: B,
    bytes: &[u8],
    quant: Option<&str>,
    piece: usize,
) -> gander::Result<(gander::model::Model<B>, u64, usize)> {
    load_pulled_shards(backend, &[(String::new(), bytes.to_vec())], None, quant, piece)
}

/// [`load_pulled`] over several files (`(file name, bytes)`): one of any container, or
/// safetensors shards joined by `index` or by their headers.
pub fn load_pulled_shards<B: gander::backend::Backend>(
    backend: B,
    files: &[(String, Vec<u8>)],
    index: Option<Vec<u8>>,
    quant: Option<&str>,
    piece: usize,
) -> gander::Result<(gander::model::Model<B>, u64, usize)> {
    load_pulled_blocks(backend, files, index, quant, piece, None).map(|(m, fetched, trips, _)| (m, fetched, trips))
}

/// [`load_pulled_shards`] with the loader's block size for big matrices set (`None`: its
/// default); also returns the largest range the loader asked for at once.
pub fn load_pulled_blocks<B: gander::backend::Backend>(
    backend: B,
    files: &[(String, Vec<u8>)],
    index: Option<Vec<u8>>,
    quant: Option<&str>,
    piece: usize,
    block: Option<usize>,
) -> gander::Result<(gander::model::Model<B>, u64, usize, u64)> {
    use gander::model::pull::{Pull, PullLoader};
    let q = quant.map(|q| gander::format::gander::Quant::parse(q).unwrap());
    let mut ld = if files.len() == 1 && index.is_none() {
        PullLoader::new(backend, files[0].1.len() as u64, q)
    } else {
        PullLoader::sharded(backend, files.iter().map(|(n, b)| (n.clone(), b.len() as u64)).collect(), index, q)
    };
    if let Some(b) = block {
        ld = ld.with_block_bytes(b);
    }
    let (mut trips, mut largest) = (0, 0u64);
    loop {
        match ld.step()? {
            Pull::Need(f, a, b) => {
                largest = largest.max(b - a);
                trips += 1;
                assert!(trips < 10_000, "too many round trips");
                let bytes = &files[f].1;
                let mut at = a as usize;
                while at < b as usize {
                    let end = (at + piece).min(b as usize);
                    ld.add(f, at as u64, bytes[at..end].to_vec())?;
                    at = end;
                }
            }
            Pull::Built(..) => {}
            Pull::Done => return Ok((ld.finish()?, ld.fetched(), trips, largest)),
        }
    }
}
