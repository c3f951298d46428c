//! Quantised Gander files end to end, and issue 3's quality and size bounds as regression checks.
//! (The formats' scalar references and the kernels are tested in tests/kernels.rs.)

mod common;
use common::*;
#[path = "common/rand.rs"]
mod rand;
use gander::model::load_path;
use rand::rand_vec;
use std::process::Command;

fn convert(src: &std::path::Path, out: &std::path::Path, q: &str) {
    let st = Command::new(env!("CARGO_BIN_EXE_gander")).arg("convert").arg(src).arg(out).args(["--quant", q]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
}

/// Greedy agreement with fp32 on the random checkpoints, teacher-forced on the fp32 trajectory
/// (bounds and their origin: tests/common/tolerances.rs).
#[test]
fn quantised_random_checkpoints_track_fp32() {
    let dir = tmpdir("quant-files");
    for case in CASES {
        let g = golden(case);
        let src = golden_dir(case).join("model.pth");
        let m32 = load_path(&src).unwrap();
        // fp32 greedy trajectory of 64 steps after the golden prompt
        let mut st = m32.new_state().unwrap();
        let mut logits = m32.forward(&mut st, &g.tokens).unwrap();
        let argmax = |l: &[f32]| l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32;
        let mut traj = Vec::new();
        let mut ref_logits = vec![logits.clone()];
        for _ in 0..64 {
            let t = argmax(&logits);
            traj.push(t);
            logits = m32.forward(&mut st, &[t]).unwrap();
            ref_logits.push(logits.clone());
        }
        for (q, min_agree, max_err) in [("int8", INT8_AGREEMENT_MIN, INT8_LOGIT_ERR_MAX), ("q4", Q4_AGREEMENT_MIN, Q4_LOGIT_ERR_MAX)] {
            let out = dir.join(format!("{case}-{q}.safetensors"));
            convert(&src, &out, q);
            let m = load_path(&out).unwrap();
            assert_eq!(m.quant, q);
            assert_eq!(m.fingerprint, m32.fingerprint);
            let mut st = m.new_state().unwrap();
            let mut l = m.forward(&mut st, &g.tokens).unwrap();
            let mut agree = 0;
            let mut worst = 0f64;
            for (i, &t) in traj.iter().enumerate() {
                worst = worst.max(rel_err(&l, &ref_logits[i]));
                agree += (argmax(&l) == t) as usize;
                l = m.forward(&mut st, &[t]).unwrap();
            }
            let frac = agree as f64 / traj.len() as f64;
            println!("{case} {q}: greedy agreement {:.1}% ({agree}/64), worst max|d|/std {worst:.3}", frac * 100.0);
            assert!(frac >= min_agree, "{case} {q}: agreement {frac}");
            assert!(worst <= max_err, "{case} {q}: logit error {worst}");
        }
    }
}

fn ppl(model: &std::path::Path, text: &std::path::Path) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_gander")).args(["perplexity", "--model"]).arg(model).arg("--text-file").arg(text).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ppl"].as_f64().unwrap()
}

/// Perplexity ratio to fp32 on held-out English text, trained fixture ([`PPL_RATIO_MAX`]).
#[test]
fn fixture_perplexity_ratios_within_issue_bounds() {
    let fx = fixture_dir();
    let text = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/english.txt");
    let dir = tmpdir("ppl");
    let base = ppl(&fx.join("model.pth"), &text);
    for (q, bound) in PPL_RATIO_MAX {
        let out = dir.join(format!("fx-{q}.safetensors"));
        convert(&fx.join("model.pth"), &out, q);
        let r = ppl(&out, &text) / base;
        println!("fixture {q}: perplexity ratio {r:.5} (bound {bound})");
        assert!(r <= bound, "{q}: {r}");
    }
}

/// Size bounds ([`SIZE_RATIO_MAX`]) on a World-vocab (V = 65536) checkpoint stored in bf16.
#[test]
fn world_vocab_bf16_file_sizes_within_issue_bounds() {
    use gander::format::{DType, RawTensor, TensorInfo};
    let cfg = gander::Config {
        vocab: 65536,
        embd: 128,
        layers: 2,
        heads: 2,
        head_size: 64,
        ffn: 512,
        rank_w: 32,
        rank_a: 32,
        rank_v: 32,
        rank_g: 32,
        layer0_has_v: true,
        deep_embed: 0,
    };
    let mut shapes = cfg.expected_shapes();
    for (n, s) in [("blocks.0.att.v0", vec![1, 1, 128]), ("blocks.0.att.v1", vec![128, 32]), ("blocks.0.att.v2", vec![32, 128])] {
        shapes.insert(n.into(), s);
    }
    let tensors = shapes
        .into_iter()
        .enumerate()
        .map(|(i, (n, shape))| {
            let numel: usize = shape.iter().product();
            let vals = rand_vec(numel, 1000 + i as u64);
            let data = vals.iter().flat_map(|&x| half::bf16::from_f32(x * 0.1).to_le_bytes()).collect();
            (n, RawTensor { info: TensorInfo { dtype: DType::BF16, shape }, data })
        })
        .collect();
    let dir = tmpdir("sizes");
    let src = dir.join("world-bf16.safetensors");
    write_safetensors(&src, &tensors);
    let bf16 = std::fs::metadata(&src).unwrap().len() as f64;
    for (q, bound) in SIZE_RATIO_MAX {
        let out = dir.join(format!("world-{q}.safetensors"));
        convert(&src, &out, q);
        let r = std::fs::metadata(&out).unwrap().len() as f64 / bf16;
        println!("World-vocab bf16 -> {q}: {r:.4} of the bf16 size (bound {bound})");
        assert!(r <= bound, "{q}: {r}");
        // and it loads
        assert_eq!(load_path(&out).unwrap().config.vocab, 65536);
    }
}

/// Rewrite a Gander file's header metadata with `f`, keeping the data.
fn patch_meta(src: &std::path::Path, dst: &std::path::Path, f: impl Fn(&mut serde_json::Map<String, serde_json::Value>)) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(header["__metadata__"].as_object_mut().unwrap());
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(dst, out).unwrap();
}

#[test]
fn bad_gander_files_are_refused() {
    let dir = tmpdir("bad-gander");
    let good = dir.join("good.safetensors");
    convert(&golden_dir("fp32-bytes").join("model.pth"), &good, "int8");
    let exe = env!("CARGO_BIN_EXE_gander");
    let fails = |path: &std::path::Path, needle: &str| {
        let out = Command::new(exe).arg("info").arg(path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle) && !err.contains("panicked"), "{needle}: {err}");
    };
    let p = dir.join("v2.safetensors");
    patch_meta(&good, &p, |m| {
        m.insert("version".into(), "2".into());
    });
    fails(&p, "version 2");
    let p = dir.join("shape.safetensors");
    patch_meta(&good, &p, |m| {
        let mut s: serde_json::Value = serde_json::from_str(m["logical_shapes"].as_str().unwrap()).unwrap();
        s["blocks.0.att.key.weight"] = serde_json::json!([64, 96]);
        m.insert("logical_shapes".into(), s.to_string().into());
    });
    fails(&p, "`blocks.0.att.key.weight.q` is I8 [64, 64], expected I8 [64, 96]");
    let p = dir.join("q3.safetensors");
    patch_meta(&good, &p, |m| {
        let mut s: serde_json::Value = serde_json::from_str(m["quant"].as_str().unwrap()).unwrap();
        s["blocks.0.att.key.weight"] = "q3".into();
        m.insert("quant".into(), s.to_string().into());
    });
    fails(&p, "quant format `q3`");
    let p = dir.join("block.safetensors");
    patch_meta(&good, &p, |m| {
        m.insert("block_size".into(), "64".into());
    });
    fails(&p, "block size");
    let bytes = std::fs::read(&good).unwrap();
    let p = dir.join("trunc.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    fails(&p, "is the file complete?");
}

/// The package's JS lists the quantisations (`QUANTS` in pkg-template/options.js) for its option
/// checks; they must be Rust's, in the same order.
#[test]
fn js_quantisation_names_match_rust() {
    let js = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pkg-template/options.js")).unwrap();
    let line = js.lines().find(|l| l.starts_with("export const QUANTS = [")).expect("QUANTS in options.js");
    let list = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
    let names: Vec<&str> = list.split(',').map(|s| s.trim().trim_matches('\'')).collect();
    let rust: Vec<&str> = gander::format::gander::Quant::ALL.iter().map(|q| q.name()).collect();
    assert_eq!(names, rust);
}
