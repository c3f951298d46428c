//! RWKV state-tuning files (`blocks.N.att.time_state`) as an initial state: logits against the
//! official package started from the same state (tests/golden/make_golden.py `--only
//! state-tuning`), both containers, the CLI flag, and refusals of files for other models.

mod common;
use common::*;
use gander::format::{DType, RawTensor, TensorInfo};
use gander::model::load_path;
use gander::State;
use std::collections::BTreeMap;

const CASE: &str = "fp32-bytes";

fn tuned_tokens() -> (Vec<u32>, Vec<u32>) {
    #[derive(serde::Deserialize)]
    struct Tuned {
        tokens: Vec<u32>,
        greedy: Vec<u32>,
    }
    let s = std::fs::read_to_string(golden_dir(CASE).join("tuned.json")).expect("tuned.json");
    let t: Tuned = serde_json::from_str(&s).expect("tuned.json parses");
    (t.tokens, t.greedy)
}

/// Logits token by token from `bytes` as the initial state, checked against the official
/// package's logits from the same initial state (FP32_TOL, the project's fp32 bound).
fn check_against_official(bytes: &[u8], what: &str) {
    let m = load_path(&golden_dir(CASE).join("model.pth")).unwrap();
    let want = read_f32(&golden_dir(CASE).join("logits_tuned.f32"));
    let (tokens, greedy) = tuned_tokens();
    let v = m.config.vocab;
    let mut st = m.state_from_bytes(bytes).expect("the tuning file loads as a state");
    let mut worst = 0f64;
    let mut last = Vec::new();
    for (t, &tok) in tokens.iter().enumerate() {
        last = m.forward(&mut st, &[tok]).unwrap();
        worst = worst.max(rel_err(&last, &want[t * v..(t + 1) * v]));
    }
    println!("{what}: from time_state, token-by-token max|d|/std = {worst:.2e}");
    assert!(worst <= FP32_TOL, "{what}: {worst:e} > {FP32_TOL:e}");
    let mut got = Vec::new();
    for _ in 0..greedy.len() {
        let t = last.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32;
        got.push(t);
        last = m.forward(&mut st, &[t]).unwrap();
    }
    assert_eq!(got, greedy, "{what}: greedy continuation");
    // The zero state gives other logits: the file really changed where the model starts.
    let mut zero = m.new_state().unwrap();
    let first = m.forward(&mut zero, &tokens[..1]).unwrap();
    assert!(rel_err(&first, &want[..v]) > 0.1, "{what}: the tuned state made no difference");
}

#[test]
fn pth_time_state_matches_official_package_started_from_it() {
    let bytes = std::fs::read(golden_dir(CASE).join("time_state.pth")).unwrap();
    check_against_official(&bytes, "time_state.pth (bf16)");
}

#[test]
fn safetensors_time_state_gives_the_same_state() {
    let tensors = read_all(&golden_dir(CASE).join("time_state.pth"));
    assert_eq!(tensors.len(), 2);
    let dir = tmpdir("tuning-st");
    let path = dir.join("time_state.safetensors");
    write_safetensors(&path, &tensors);
    check_against_official(&std::fs::read(&path).unwrap(), "time_state.safetensors");
}

fn f32_tensor(shape: Vec<usize>, value: f32) -> RawTensor {
    let n: usize = shape.iter().product();
    RawTensor { info: TensorInfo { dtype: DType::F32, shape }, data: value.to_le_bytes().repeat(n) }
}

fn tuning_bytes(tensors: BTreeMap<String, RawTensor>) -> Vec<u8> {
    let dir = tmpdir(&format!("tuning-{}", tensors.keys().next().cloned().unwrap_or_default().replace('.', "-")));
    let path = dir.join("t.safetensors");
    write_safetensors(&path, &tensors);
    std::fs::read(&path).unwrap()
}

#[test]
fn a_missing_layer_starts_from_zero_and_shift_vectors_are_zero() {
    let m = load_path(&golden_dir(CASE).join("model.pth")).unwrap();
    let (h, n) = (m.config.heads, m.config.head_size);
    let bytes = tuning_bytes(BTreeMap::from([("blocks.1.att.time_state".to_string(), f32_tensor(vec![h, n, n], 0.25))]));
    let st = State::from_any_bytes(&bytes, &m.config, &m.fingerprint).unwrap();
    assert!(st.layers[0].wkv.iter().all(|&x| x == 0.0));
    assert!(st.layers[1].wkv.iter().all(|&x| x == 0.25));
    assert!(st.layers.iter().all(|l| l.att_shift.iter().chain(&l.ffn_shift).all(|&x| x == 0.0)));
    assert_eq!(st.fingerprint, m.fingerprint, "the state belongs to the model it was loaded for");
}

#[test]
fn tuning_files_for_other_models_or_with_other_tensors_are_refused_by_name() {
    let m = load_path(&golden_dir(CASE).join("model.pth")).unwrap();
    let (h, n) = (m.config.heads, m.config.head_size);
    let refuse = |tensors: Vec<(&str, RawTensor)>, needle: &str| {
        let bytes = tuning_bytes(tensors.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let e = State::from_any_bytes(&bytes, &m.config, &m.fingerprint).unwrap_err();
        assert_eq!(e.code(), "STATE_MISMATCH", "{e}");
        assert!(e.to_string().contains(needle), "`{e}` should mention `{needle}`");
    };
    refuse(vec![("blocks.0.att.time_state", f32_tensor(vec![h, n, 2 * n], 0.0))], "this model needs [2, 32, 32]");
    refuse(vec![("blocks.2.att.time_state", f32_tensor(vec![h, n, n], 0.0))], "layer 2, this model has 2 layers");
    refuse(vec![("blocks.0.att.time_state", f32_tensor(vec![h, n, n], f32::NAN))], "NaN");
    refuse(
        vec![("blocks.0.att.time_state", f32_tensor(vec![h, n, n], 0.0)), ("blocks.0.att.ts_state", f32_tensor(vec![64], 0.0))],
        "`blocks.0.att.ts_state` is not a state-tuning tensor",
    );
    // A model file given where a state is expected.
    let model = std::fs::read(golden_dir(CASE).join("model.safetensors")).unwrap();
    let e = State::from_any_bytes(&model, &m.config, &m.fingerprint).unwrap_err();
    assert!(e.to_string().contains("looks like a model file"), "{e}");
    // The tuning file of this case on a model of another shape.
    let other = load_path(&golden_dir("bf16-l0v").join("model.pth")).unwrap();
    let bytes = std::fs::read(golden_dir(CASE).join("time_state.pth")).unwrap();
    let e = other.state_from_bytes(&bytes).unwrap_err();
    assert_eq!(e.code(), "STATE_MISMATCH", "{e}");
    assert!(e.to_string().contains("tuned for another model"), "{e}");
}

#[test]
fn cli_state_flag_starts_logits_and_generate_from_a_tuning_file() {
    let bin = env!("CARGO_BIN_EXE_gander");
    let model = golden_dir(CASE).join("model.pth");
    let ts = golden_dir(CASE).join("time_state.pth");
    let (tokens, _) = tuned_tokens();
    let list = tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new(bin).args(["logits", "--model"]).arg(&model).args(["--tokens", &list, "--state"]).arg(&ts).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[derive(serde::Deserialize)]
    struct Out {
        logits: Vec<Vec<f32>>,
    }
    let got: Out = serde_json::from_slice(&out.stdout).unwrap();
    let want = read_f32(&golden_dir(CASE).join("logits_tuned.f32"));
    let v = got.logits[0].len();
    let e = rel_err(&got.logits[0], &want[(tokens.len() - 1) * v..]);
    assert!(e <= FP32_TOL, "CLI --state: {e:e}");
    // generate takes it too (the fixture is byte-level, so any prompt tokenizes).
    let out = std::process::Command::new(bin)
        .args(["generate", "--model"])
        .arg(&model)
        .args(["--prompt", "hi", "--max-tokens", "4", "--temperature", "0", "--state"])
        .arg(&ts)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A state file for another model: one line, non-zero exit, no output.
    let out = std::process::Command::new(bin)
        .args(["logits", "--model"])
        .arg(golden_dir("bf16-l0v").join("model.pth"))
        .args(["--tokens", "1,2", "--state"])
        .arg(&ts)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{err}");
    assert!(err.starts_with("error: state does not fit this model: ") && err.contains("time_state.pth"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
