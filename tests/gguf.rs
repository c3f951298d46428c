//! llama.cpp GGUF files of RWKV-7 (issue 16), written from the `fp32-bytes` golden checkpoint by
//! `tools/layouts/make_gguf.py` with llama.cpp's own Python package (`gguf` from PyPI, in
//! target/gguf-venv: `make gguf-venv`), in the converter's and llama-quantize's type policies.
//! For each file the script also writes the values it holds, dequantised by gguf-py, under the
//! official names (`NAME.ref.safetensors`): the oracle for what Gander must read.
//!
//! - F32: the official package's logits, bit for bit the same as the `.pth`'s.
//! - F16, BF16 and the K-quants (dequantised on read): the same logits as the reference file, bit
//!   for bit (the same f32 values; F16 matrices stay f16, widened exactly by the kernels).
//! - Q8_0 and Q4_0 (kept as int8 and q4 codes): every matrix dequantises to gguf-py's values
//!   exactly (Q4_0 scales are negative about half the time), and the logits are within
//!   INT8_LOGIT_ERR_MAX of the reference's (the CPU decode quantises activations, tests/common/
//!   tolerances.rs). `gander convert` keeps the codes of every layer matrix.
//! - Bad files are refused with a reason, never a panic.

mod common;
use common::*;
use gander::backend::cpu::Cpu;
use gander::format::quant::MatrixData;
use gander::model::Model;
use std::path::{Path, PathBuf};

const CASE: &str = "fp32-bytes";

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/gguf-venv/bin/python");
    assert!(p.is_file(), "{} is missing: run `make gguf-venv` (a venv with gguf and numpy from PyPI)", p.display());
    p
}

/// The GGUF files, written once per test binary.
fn files() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = tmpdir("gguf");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/layouts/make_gguf.py");
        let st =
            std::process::Command::new(python()).arg(&script).arg(golden_dir(CASE).join("model.safetensors")).arg(&out).status().expect("make_gguf.py runs");
        assert!(st.success(), "make_gguf.py failed");
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

#[test]
fn f32_gguf_gives_the_official_logits_exactly() {
    let official = logits(&golden_dir(CASE).join("model.pth"));
    let got = logits(&files().join("f32.gguf"));
    assert_eq!(got, official, "f32 GGUF logits differ from the .pth's");
    let v = golden(CASE).vocab;
    let all = read_f32(&golden_dir(CASE).join("logits_one.f32"));
    let err = rel_err(&got, &all[all.len() - v..]);
    assert!(err <= FP32_TOL, "against the official package: {err}");
    let src = gander::format::open_path(&files().join("f32.gguf")).unwrap();
    assert_eq!(src.layout().name(), "llama.cpp GGUF");
}

#[test]
fn float_and_k_quant_ggufs_give_their_values_logits_exactly() {
    for k in ["f16", "bf16", "kquants", "q5_k"] {
        let got = logits(&files().join(format!("{k}.gguf")));
        let want = logits(&files().join(format!("{k}.ref.safetensors")));
        assert!(got.iter().all(|x| x.is_finite()));
        assert_eq!(got, want, "{k}: logits differ from those of the values the file holds");
        println!("{k}: logits equal the reference's");
    }
    let src = gander::format::open_path(&files().join("kquants.gguf")).unwrap();
    let types: Vec<String> = src.metadata().into_iter().filter(|(k, _)| k.ends_with("ffn.value.weight")).map(|(_, v)| v).collect();
    assert_eq!(types, ["Q6_K", "Q4_K"], "the K-quant file holds what the test means");
}

#[test]
fn q8_0_and_q4_0_are_kept_code_for_code() {
    for (k, want_int8) in [("q8_0", true), ("q4_0", false)] {
        let mut src = gander::format::open_path(&files().join(format!("{k}.gguf"))).unwrap();
        let mut reference = gander::format::open_path(&files().join(format!("{k}.ref.safetensors"))).unwrap();
        let mut negative = 0;
        let mut direct = 0;
        for name in ["blocks.0.att.key.weight", "blocks.1.att.output.weight", "blocks.1.ffn.value.weight", "emb.weight", "head.weight"] {
            let m = src.read_matrix(name).unwrap();
            match &m.data {
                MatrixData::Int8 { .. } => assert!(want_int8 || name == "head.weight", "{k} {name}: int8"),
                MatrixData::Q4 { scale, .. } => {
                    assert!(!want_int8, "{k} {name}: q4");
                    negative += scale.iter().filter(|s| s.to_f32() < 0.0).count();
                }
                _ => panic!("{k} {name}: not kept as stored"),
            }
            direct += 1;
            assert_eq!(m.to_f32(), reference.read(name).unwrap().to_f32(), "{k} {name}: values differ from gguf-py's");
        }
        assert_eq!(direct, 5);
        if !want_int8 {
            assert!(negative > 0, "no negative Q4_0 scale was exercised");
        }
        let got = logits(&files().join(format!("{k}.gguf")));
        let want = logits(&files().join(format!("{k}.ref.safetensors")));
        let err = rel_err(&got, &want);
        println!("{k}: max|d|/std against the file's values in f32: {err:.2e}");
        assert!(err <= INT8_LOGIT_ERR_MAX, "{k}: {err}");
    }
}

#[test]
fn convert_keeps_q8_0_and_q4_0_codes() {
    for (k, q, tol) in [("q8_0", "int8", INT8_LOGIT_ERR_MAX), ("q4_0", "q4", Q4_LOGIT_ERR_MAX)] {
        let input = files().join(format!("{k}.gguf"));
        let out = files().join(format!("{k}-converted.safetensors"));
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_gander")).arg("convert").arg(&input).arg(&out).args(["--quant", q]).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let mut a = gander::format::open_path(&input).unwrap();
        let mut b = gander::format::open_path(&out).unwrap();
        for l in 0..2 {
            for m in ["att.receptance", "att.key", "att.value", "att.output", "ffn.key", "ffn.value"] {
                let name = format!("blocks.{l}.{m}.weight");
                assert_eq!(a.read_matrix(&name).unwrap().data, b.read_matrix(&name).unwrap().data, "{k} -> {q}: {name}'s codes changed");
            }
        }
        // What does change: Gander's int8/q4 files keep the LoRA factors in f16 (the GGUF file:
        // f32 or Q8_0), and a q4 file holds its head in q4 (the GGUF file: Q8_0), so the logits
        // move within the bound of that quantisation.
        let err = rel_err(&logits(&out), &logits(&input));
        println!("{k} -> {q}: logits max|d|/std {err:.2e}");
        assert!(err <= tol, "{k} -> {q}: {err}");
    }
    // a K-quant file converts with a warning that says it rounds again
    let out = files().join("kq-int8.safetensors");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_gander"))
        .arg("convert")
        .arg(files().join("kquants.gguf"))
        .arg(&out)
        .args(["--quant", "int8"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("Q4_K, Q6_K") && err.contains("rounds a second time"), "{err}");
}

#[test]
fn gander_info_names_gguf() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gander")).arg("info").arg(files().join("q4_0.gguf")).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["layout"], "llama.cpp GGUF");
    assert_eq!(v["quant"], "q4_0");
    assert_eq!(v["config"]["layers"], 2);
}

/// Bytes of a file with one change.
fn patched(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(files().join(name)).unwrap();
    f(&mut b);
    b
}

fn refused(bytes: Vec<u8>) -> String {
    match gander::format::open_bytes(bytes) {
        Ok(_) => panic!("a bad file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_gguf_files_are_refused_with_a_reason() {
    let find = |b: &[u8], s: &[u8]| b.windows(s.len()).position(|w| w == s).unwrap();
    // every truncation of the header and of the data
    let whole = std::fs::read(files().join("q8_0.gguf")).unwrap();
    for cut in [5, 12, 30, 200, 1000, whole.len() / 2, whole.len() - 1] {
        let e = refused(whole[..cut].to_vec());
        assert!(e.contains("complete") || e.contains("outside"), "cut at {cut}: {e}");
    }
    // another architecture
    let e = refused(patched("q8_0.gguf", |b| {
        let i = find(b, b"rwkv7");
        b[i..i + 5].copy_from_slice(b"llama");
    }));
    assert!(e.contains("architecture `llama`"), "{e}");
    // an unknown ggml type on a tensor: find token_embd.weight's info (name, n_dims, ne, type)
    let e = refused(patched("q8_0.gguf", |b| {
        let i = find(b, b"token_embd.weight") + "token_embd.weight".len();
        let t = i + 4 + 2 * 8;
        b[t..t + 4].copy_from_slice(&99u32.to_le_bytes());
    }));
    assert!(e.contains("ggml type 99"), "{e}");
    // a vocabulary that is not the World one
    let e = refused(patched("f32.gguf", |b| {
        let i = find(b, b"\x03\x00\x00\x00\x00\x00\x00\x00the");
        b[i + 8] = b'x';
    }));
    assert!(e.contains("vocabulary differs"), "{e}");
    // a huge count
    let e = refused(patched("q8_0.gguf", |b| b[8..16].copy_from_slice(&u64::MAX.to_le_bytes())));
    assert!(e.contains("more than the file can hold"), "{e}");
}

/// The GPU takes Q8_0 and Q4_0 codes too, negative Q4_0 scales included (lavapipe here; without
/// an adapter this fails where GANDER_REQUIRE_GPU or CI is set, as tests/gpu.rs does).
#[test]
fn q8_0_and_q4_0_on_the_gpu() {
    let gpu = match gander::backend::gpu::Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            assert!(std::env::var("GANDER_REQUIRE_GPU").is_err() && std::env::var("CI").is_err(), "a GPU adapter is required here: {e}");
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    for k in ["q8_0", "q4_0"] {
        let path = files().join(format!("{k}.gguf"));
        let mut src = gander::format::open_path(&path).unwrap();
        let m = Model::load(gpu.clone(), src.as_mut()).unwrap();
        let mut st = m.new_state().unwrap();
        let got = m.forward(&mut st, &golden(CASE).tokens).unwrap();
        let want = logits(&files().join(format!("{k}.ref.safetensors")));
        let err = rel_err(&got, &want);
        println!("{k} on {}: max|d|/std against the file's values in f32 on the CPU: {err:.2e}", gpu.ctx.adapter_name);
        // The GPU's int8 and q4 products take f32 activations: only the summation order differs
        // from the f32 reference, so the fp32 bound applies (a mishandled negative scale would
        // be off by the size of the weights).
        assert!(err <= FP32_TOL, "{k} on the GPU: {err}");
    }
}

/// `Gander.inspect`'s engine reads a GGUF file's header alone, by a growing prefix (the header
/// has no length field), and says what `gander info` says.
#[test]
fn inspect_reads_the_header_alone() {
    use gander::model::inspect::summarize;
    for k in ["f32", "q4_0"] {
        let path = files().join(format!("{k}.gguf"));
        let bytes = std::fs::read(&path).unwrap();
        let whole = summarize(gander::format::open_path(&path).unwrap().as_ref()).unwrap();
        let (got, ins, steps) = inspect_by_ranges(&bytes);
        assert_eq!(serde_json::to_value(&*got).unwrap(), serde_json::to_value(&whole).unwrap(), "{k}");
        println!("{k}.gguf: {} of {} bytes in {} reads", ins.fetched, bytes.len(), steps - 1);
        // The f32 file carries the 65,536-token list (about 1 MB of header) and little data, so
        // its header is half the file; the q4_0 file has no token list.
        if k == "q4_0" {
            assert_eq!(steps - 1, 1, "{k}: its header fits the first read");
        }
    }
}

/// The browser's pull loader (range by range, `model::pull`) reads every GGUF file as the
/// whole-file reader does, bit for bit; with `quant` a K-quant file becomes the model `gander
/// convert` writes from it.
#[test]
fn ggufs_pulled_range_by_range_equal_the_whole_file() {
    let tokens = golden(CASE).tokens;
    let run = |m: &Model<Cpu>| {
        let mut st = m.new_state().unwrap();
        m.forward(&mut st, &tokens).unwrap()
    };
    let mut n = 0;
    for entry in std::fs::read_dir(files()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let whole = Model::load(Cpu, gander::format::open_path(&path).unwrap().as_mut()).unwrap();
        let (pulled, fetched, _) = load_pulled(Cpu, &bytes, None, 1 << 16).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(run(&pulled).iter().zip(run(&whole)).all(|(a, b)| a.to_bits() == b.to_bits()), "{}: pulled differs", path.display());
        assert!(fetched <= 2 * bytes.len() as u64, "{}: fetched {fetched} of {}", path.display(), bytes.len());
        let mut converted = Vec::new();
        gander::model::convert(gander::format::open_path(&path).unwrap().as_mut(), gander::format::gander::Quant::Int8, &mut converted, &mut |_, _| {})
            .unwrap();
        let want = Model::load(Cpu, gander::format::open_bytes(converted).unwrap().as_mut()).unwrap();
        let (got, _, _) = load_pulled(Cpu, &bytes, Some("int8"), 1 << 20).unwrap();
        assert!(run(&got).iter().zip(run(&want)).all(|(a, b)| a.to_bits() == b.to_bits()), "{}: pulled as int8 differs from gander convert", path.display());
        n += 1;
    }
    assert!(n >= 6, "only {n} GGUF files were written");
}
