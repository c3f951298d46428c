//! The layouts people download (issue 16), written from the `fp32-bytes` golden checkpoint by
//! `tools/layouts/make_layouts.py` (the published converters' mappings; standard-library
//! Python): each loads, is recognised from its contents, and gives exactly the logits of the
//! official checkpoint (bit for bit: renaming, reshaping and transposing lose nothing), which
//! are within FP32_TOL of the official package's. Also the shard index and layout errors.

mod common;
use common::*;
use gander::backend::cpu::Cpu;
use gander::format::layout::{detect, Layout};
use gander::format::{DType, RawTensor, TensorInfo};
use gander::model::Model;
use std::path::{Path, PathBuf};

const CASE: &str = "fp32-bytes";

/// The layouts, written once per test binary into a temporary directory.
fn layouts() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = tmpdir("layouts");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/layouts/make_layouts.py");
        let st = std::process::Command::new("python3")
            .arg(&script)
            .arg(golden_dir(CASE).join("model.safetensors"))
            .arg(&out)
            .status()
            .expect("python3 runs (the layouts are written by tools/layouts/make_layouts.py)");
        assert!(st.success(), "make_layouts.py failed");
        out
    })
    .clone()
}

fn logits(path: &Path) -> Vec<f32> {
    let mut src = gander::format::open_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let m = Model::load(Cpu, src.as_mut()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut st = m.new_state().unwrap();
    m.forward(&mut st, &golden(CASE).tokens).unwrap()
}

/// The official package's logits after the golden tokens (the last row of `logits_one.f32`).
fn official_package() -> Vec<f32> {
    let v = golden(CASE).vocab;
    let all = read_f32(&golden_dir(CASE).join("logits_one.f32"));
    all[all.len() - v..].to_vec()
}

fn stored_layout(path: &Path) -> Layout {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let st = gander::format::safetensors::SafetensorsFile::from_header(&bytes[..8 + n], bytes.len() as u64).unwrap();
    use gander::format::TensorSource;
    detect(st.tensors())
}

#[test]
fn every_layout_gives_the_official_logits_exactly() {
    let dir = layouts();
    let official = logits(&golden_dir(CASE).join("model.pth"));
    assert!(rel_err(&official, &official_package()) <= FP32_TOL);
    let cases: [(&str, Option<Layout>); 5] = [
        ("hf-rwkv7/model.safetensors.index.json", None),
        ("hf-rwkv7", None),
        ("fla/model.safetensors", Some(Layout::Fla)),
        ("fla-xx/model.safetensors", Some(Layout::Fla)),
        ("hf-rwkv7/model-00001-of-00002.safetensors", Some(Layout::Prefixed)),
    ];
    for (rel, layout) in cases {
        let path = dir.join(rel);
        if let Some(l) = layout {
            assert_eq!(stored_layout(&path), l, "{rel}");
        }
        if rel.ends_with("00002.safetensors") {
            // One shard alone is not a model: the error names what is missing.
            let e = Model::load(Cpu, gander::format::open_path(&path).unwrap().as_mut()).err().expect("half a model is refused");
            assert_eq!(e.code(), "BAD_MODEL", "{e}");
            continue;
        }
        let got = logits(&path);
        assert!(got.iter().zip(&official).all(|(a, b)| a.to_bits() == b.to_bits()), "{rel}: not bit-identical to the .pth");
        if path.is_file() && !rel.ends_with(".json") {
            // The browser's pull loader (range by range) reads the layout the same way.
            let (m, _, _) = load_pulled(Cpu, &std::fs::read(&path).unwrap(), None, 1 << 16).unwrap();
            let mut st = m.new_state().unwrap();
            let pulled = m.forward(&mut st, &golden(CASE).tokens).unwrap();
            assert!(pulled.iter().zip(&official).all(|(a, b)| a.to_bits() == b.to_bits()), "{rel}: pulled, not bit-identical to the .pth");
        }
        println!("{rel}: identical to the official checkpoint's logits");
    }
}

/// Hugging Face shards pulled range by range (the browser's path), joined by their index or by
/// their headers alone, give the official logits bit for bit; one shard twice is refused.
#[test]
fn shards_pulled_give_the_official_logits() {
    let dir = layouts().join("hf-rwkv7");
    let official = logits(&golden_dir(CASE).join("model.pth"));
    let shard = |i: usize| {
        let name = format!("model-0000{i}-of-00002.safetensors");
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        (name, bytes)
    };
    let index = std::fs::read(dir.join("model.safetensors.index.json")).unwrap();
    for (files, index) in [(vec![shard(1), shard(2)], Some(index.clone())), (vec![shard(2), shard(1)], None)] {
        let (m, _, _) = load_pulled_shards(Cpu, &files, index, None, 1 << 16).unwrap();
        let mut st = m.new_state().unwrap();
        let got = m.forward(&mut st, &golden(CASE).tokens).unwrap();
        assert!(got.iter().zip(&official).all(|(a, b)| a.to_bits() == b.to_bits()), "sharded pull: not bit-identical to the .pth");
    }
    let e = load_pulled_shards(Cpu, &[shard(1), shard(1)], None, None, 1 << 16).err().expect("the same shard twice is refused");
    assert!(e.to_string().contains("in both"), "{e}");
    let e = load_pulled_shards(Cpu, &[shard(1)], Some(index), None, 1 << 16).err().expect("a missing shard is refused");
    assert_eq!(e.code(), "BAD_MODEL", "{e}");
}

/// web-rwkv's `.st` holds every tensor in f16: its logits equal those of the official tensors
/// rounded to f16 under their own names (the same rounding), bit for bit.
#[test]
fn web_rwkv_st_equals_the_official_tensors_in_f16() {
    let dir = layouts();
    let st = dir.join("st/model.st");
    assert_eq!(stored_layout(&st), Layout::LoraTransposed);
    let f16: std::collections::BTreeMap<String, RawTensor> = read_all(&golden_dir(CASE).join("model.safetensors"))
        .into_iter()
        .map(|(n, t)| {
            let data = t.to_f32().iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
            (n, RawTensor { info: TensorInfo { dtype: DType::F16, shape: t.info.shape }, data })
        })
        .collect();
    let reference = dir.join("official-f16.safetensors");
    write_safetensors(&reference, &f16);
    let (a, b) = (logits(&st), logits(&reference));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), ".st logits differ from the official tensors in f16");
    let e = rel_err(&a, &official_package());
    println!("web-rwkv .st vs the official package (f32 weights): {e:.2e}");
}

#[test]
fn bad_indexes_and_unknown_tensors_are_refused_by_name() {
    use gander::format::sharded::parse_index;
    for (json, needle) in [
        (r#"{"weight_map": {"emb.weight": "../secret.safetensors"}}"#, "plain file name"),
        (r#"{"weight_map": {"emb.weight": "/etc/passwd"}}"#, "plain file name"),
        (r#"{"weight_map": {}}"#, "empty"),
        (r#"{"metadata": {}}"#, "not a shard index"),
        ("[1, 2]", "not a shard index"),
    ] {
        let e = parse_index(json.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "BAD_MODEL");
        assert!(e.to_string().contains(needle), "{json}: {e}");
    }
    // An index that names a tensor its shard does not hold: the download is incomplete.
    let dir = tmpdir("bad-index");
    let src = layouts().join("hf-rwkv7");
    for f in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(src.join("model.safetensors.index.json")).unwrap()).unwrap();
    let map = index["weight_map"].as_object_mut().unwrap();
    let other = |f: &str| if f.starts_with("model-00001") { "model-00002-of-00002.safetensors" } else { "model-00001-of-00002.safetensors" };
    let moved = other(map["rwkv7.emb.weight"].as_str().unwrap());
    map.insert("rwkv7.emb.weight".into(), moved.into());
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let e = gander::format::open_path(&dir).err().expect("a wrong index is refused");
    assert!(e.to_string().contains("rwkv7.emb.weight") && e.to_string().contains("complete"), "{e}");
    // A flash-linear-attention tensor Gander does not know is named, not guessed at.
    use gander::format::TensorSource;
    let mut raw = gander::format::safetensors::SafetensorsFile::open(&layouts().join("fla/model.safetensors")).unwrap();
    let names: Vec<String> = raw.tensors().keys().cloned().collect();
    let mut t: std::collections::BTreeMap<String, RawTensor> = names.into_iter().map(|n| (n.clone(), raw.read(&n).unwrap())).collect();
    let any = t["model.norm.weight"].clone();
    t.insert("model.layers.0.attn.q_norm.weight".into(), any);
    let path = dir.join("fla-extra.safetensors");
    write_safetensors(&path, &t);
    let e = gander::format::open_path(&path).err().expect("an unknown tensor is refused");
    assert_eq!(e.code(), "UNSUPPORTED");
    assert!(e.to_string().contains("q_norm"), "{e}");
}
