//! Bad input through the CLI: every case exits non-zero with one `error:` line that names the
//! problem, prints nothing on stdout, and never panics.

mod common;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn gander(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gander")).args(args).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Assert a clean one-line failure that mentions `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let (ok, stdout, stderr) = gander(args);
    assert!(!ok, "{args:?} should fail");
    assert!(stdout.is_empty(), "{args:?}: stdout must stay empty, got {stdout:?}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let line = stderr.trim_end();
    assert!(line.starts_with("error: ") && !line.contains('\n'), "{args:?}: not one error line: {stderr:?}");
    assert!(line.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: {line:?} does not mention {needle:?}");
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A `.pth`-shaped zip whose data.pkl is `pickle`.
fn pth_with_pickle(dir: &Path, name: &str, pickle: &[u8]) -> PathBuf {
    pth_with_entries(dir, name, pickle, &[])
}

/// A `.pth`-shaped zip with data.pkl and extra `archive/data/<key>` storages.
fn pth_with_entries(dir: &Path, name: &str, pickle: &[u8], storages: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join(name);
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    for (key, bytes) in storages {
        z.start_file(format!("archive/data/{key}"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    path
}

/// A state-dict pickle with one f32 tensor `name` of `size` (one dimension), stride `stride`,
/// on storage "0" that claims `storage_numel` elements.
fn one_tensor_pickle(size: u32, stride: u32, storage_numel: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}(X\x0a\x00\x00\x00emb.weightctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ".to_vec();
    p.extend_from_slice(&storage_numel.to_le_bytes());
    p.extend_from_slice(b"tQK\x00J");
    p.extend_from_slice(&size.to_le_bytes());
    p.extend_from_slice(b"\x85J");
    p.extend_from_slice(&stride.to_le_bytes());
    p.extend_from_slice(b"\x85\x89)tRu.");
    p
}

#[test]
fn small_files_cannot_ask_for_large_allocations() {
    let dir = tmpdir("alloc");
    // The well-formed version of the crafted pickle parses (and then fails only for being no model).
    let ok = pth_with_entries(&dir, "ok.pth", &one_tensor_pickle(4, 1, 4), &[("0", &[0u8; 16])]);
    fails_with(&["info", p(&ok)], "`emb.weight` has shape [4], expected 2 dimensions");
    // A billion-element broadcast view of a 4-element storage.
    let f = pth_with_entries(&dir, "broadcast.pth", &one_tensor_pickle(1_000_000_000, 0, 4), &[("0", &[0u8; 16])]);
    fails_with(&["info", p(&f)], "more elements than its storage");
    // A storage that claims a billion elements but holds 16 bytes.
    let f = pth_with_entries(&dir, "claims.pth", &one_tensor_pickle(1_000_000_000, 1, 1_000_000_000), &[("0", &[0u8; 16])]);
    fails_with(&["info", p(&f)], "more than the whole file");
    // A storage that claims more than its entry holds, yet less than the file: refused when it
    // is read (its size is in its local header), before anything is allocated.
    let f = pth_with_entries(&dir, "short.pth", &one_tensor_pickle(8, 1, 8), &[("0", &[0u8; 16])]);
    let mut src = gander::format::open_path(&f).unwrap();
    let e = src.read("emb.weight").err().expect("a storage shorter than it claims is refused");
    assert!(e.to_string().contains("is the file truncated?"), "{e}");
}

#[test]
fn truncated_and_corrupt_files() {
    let dir = tmpdir("corrupt");
    let pth = std::fs::read(golden_dir("fp32-bytes").join("model.pth")).unwrap();
    let st = std::fs::read(golden_dir("fp32-bytes").join("model.safetensors")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("half.pth", pth[..pth.len() / 2].to_vec(), "zip"),
        ("half.safetensors", st[..st.len() / 2].to_vec(), "safetensors"),
        ("header.safetensors", st[..100].to_vec(), "safetensors"),
        ("noise.bin", (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect(), "safetensors"),
        ("empty.pth", Vec::new(), "safetensors"),
    ];
    for (name, bytes, needle) in cases {
        let f = dir.join(name);
        std::fs::write(&f, bytes).unwrap();
        fails_with(&["info", p(&f)], needle);
        fails_with(&["logits", "--model", p(&f), "--tokens", "1"], needle);
    }
    fails_with(&["info", "/nonexistent/model.pth"], "no such file");
}

#[test]
fn hostile_pickles_are_refused_by_name() {
    let dir = tmpdir("pickle");
    // os.system('ls') via GLOBAL + REDUCE
    let f = pth_with_pickle(&dir, "os.pth", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.");
    fails_with(&["info", p(&f)], "global os.system");
    // builtins.eval
    let f = pth_with_pickle(&dir, "eval.pth", b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.");
    fails_with(&["info", p(&f)], "global builtins.eval");
    // INST opcode ('i'), which imports and calls in one step
    let f = pth_with_pickle(&dir, "inst.pth", b"(X\x01\x00\x00\x00ais\nsystem\n.");
    fails_with(&["info", p(&f)], "refused pickle: opcode 0x69");
    // STACK_GLOBAL naming subprocess.Popen
    let f = pth_with_pickle(&dir, "stack.pth", b"\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93.");
    fails_with(&["info", p(&f)], "subprocess.Popen");
    // Not a state dict: a bare list
    let f = pth_with_pickle(&dir, "list.pth", b"\x80\x02].");
    fails_with(&["info", p(&f)], "not a state dict");
    // A memoised list modified over and over: each copy-on-write copies it (a memory bomb).
    let mut bomb = b"\x80\x02](".to_vec();
    bomb.extend(std::iter::repeat_n(b'N', 1000));
    bomb.extend_from_slice(b"eq\x00");
    for _ in 0..5000 {
        bomb.extend_from_slice(b"h\x00Na");
    }
    bomb.push(b'.');
    let f = pth_with_pickle(&dir, "bomb.pth", &bomb);
    fails_with(&["info", p(&f)], "copied too often");
    // Memo reference that was never defined, stack underflow
    let f = pth_with_pickle(&dir, "memo.pth", b"\x80\x02h\x05.");
    fails_with(&["info", p(&f)], "memo key 5");
    let f = pth_with_pickle(&dir, "underflow.pth", b"\x80\x02t.");
    fails_with(&["info", p(&f)], "no mark");
}

#[test]
fn wrong_tensors_and_unsupported_variants() {
    let dir = tmpdir("tensors");
    let base = read_all(&golden_dir("fp32-bytes").join("model.pth"));
    let write = |name: &str, f: &dyn Fn(&mut std::collections::BTreeMap<String, gander::format::RawTensor>)| {
        let mut t = base.clone();
        f(&mut t);
        let path = dir.join(name);
        write_safetensors(&path, &t);
        path
    };
    let f32t = |shape: Vec<usize>| gander::format::RawTensor {
        data: vec![0u8; shape.iter().product::<usize>() * 4],
        info: gander::format::TensorInfo { dtype: gander::format::DType::F32, shape },
    };
    let missing = write("missing.st", &|t| {
        t.remove("blocks.1.att.key.weight");
    });
    fails_with(&["info", p(&missing)], "missing tensor `blocks.1.att.key.weight`");
    let shaped = write("shape.st", &|t| {
        t.insert("blocks.1.ffn.key.weight".into(), f32t(vec![256, 32]));
    });
    fails_with(&["logits", "--model", p(&shaped), "--tokens", "1"], "`blocks.1.ffn.key.weight` has shape [256, 32], expected [256, 64]");
    let unknown = write("unknown.st", &|t| {
        t.insert("blocks.0.att.gate.weight".into(), f32t(vec![64, 64]));
    });
    fails_with(&["info", p(&unknown)], "unknown tensor `blocks.0.att.gate.weight`");
    let deep = write("deep.st", &|t| {
        t.insert("blocks.0.ffn.s_emb.weight".into(), f32t(vec![256, 32]));
    });
    fails_with(&["info", p(&deep)], "DeepEmbed (rwkv7a) checkpoint, but missing tensor `blocks.0.ffn.s1`");
    let not_square = write("deep-square.st", &|t| {
        t.insert("blocks.0.ffn.s_emb.weight".into(), f32t(vec![256, 30]));
        t.insert("blocks.0.ffn.s1".into(), f32t(vec![64, 5]));
    });
    fails_with(&["info", p(&not_square)], "not the square of the rank 5");
    let qkv = write("qkv.st", &|t| {
        t.insert("blocks.0.qkv.weight".into(), f32t(vec![64, 64]));
    });
    fails_with(&["info", p(&qkv)], "rwkv7b");
    let pile = write("pile.st", &|t| {
        t.insert("emb.weight".into(), f32t(vec![50304, 64]));
        t.insert("head.weight".into(), f32t(vec![50304, 64]));
    });
    fails_with(&["info", p(&pile)], "50304");
    let zero_rank = write("zero.st", &|t| {
        for l in 0..2 {
            t.insert(format!("blocks.{l}.att.w1"), f32t(vec![64, 0]));
            t.insert(format!("blocks.{l}.att.w2"), f32t(vec![0, 64]));
        }
    });
    fails_with(&["logits", "--model", p(&zero_rank), "--tokens", "1,2,3,4"], "decay LoRA rank is 0");
    let ints = write("ints.st", &|t| {
        let info = gander::format::TensorInfo { dtype: gander::format::DType::U8, shape: vec![64, 64] };
        t.insert("blocks.1.att.key.weight".into(), gander::format::RawTensor { data: vec![0u8; 64 * 64], info });
    });
    fails_with(&["info", p(&ints)], "weights must be F32, F16 or BF16");
    let older = write("v6.st", &|t| {
        t.insert("blocks.0.att.time_decay".into(), f32t(vec![64]));
    });
    fails_with(&["info", p(&older)], "older RWKV");
}

#[test]
fn bad_arguments() {
    let m = golden_dir("fp32-bytes").join("model.pth");
    let m = p(&m);
    fails_with(&["logits", "--model", m, "--tokens", "1,300"], "token id 300 is out of range");
    fails_with(&["logits", "--model", m, "--tokens", ""], "empty prompt");
    fails_with(&["logits", "--model", m, "--tokens", "1,x"], "`x` is not a token id");
    fails_with(&["generate", "--model", m, "--prompt", ""], "empty prompt");
    fails_with(&["generate", "--model", m, "--prompt", "hi", "--temperature", "-1"], "temperature");
    fails_with(&["generate", "--model", m, "--prompt", "hi", "--top-p", "1.5"], "topP");
    fails_with(&["generate", "--model", m, "--prompt", "hi", "--max-tokens", "lots"], "invalid value");
    fails_with(&["logits", "--model", m, "--tokens", "1", "--backend", "tpu"], "invalid value 'tpu'");
    fails_with(&["convert", m, "/tmp/gander-never.safetensors", "--quant", "int9"], "expected one of");
    // A conversion that fails leaves nothing behind (it writes OUT.part and renames at the end).
    let dir = tmpdir("noleft");
    let out = dir.join("out.safetensors");
    fails_with(&["convert", "/nonexistent.pth", p(&out), "--quant", "q4"], "no such file");
    let trunc = dir.join("trunc.pth");
    let bytes = std::fs::read(golden_dir("fp32-bytes").join("model.pth")).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 5000]).unwrap();
    fails_with(&["convert", p(&trunc), p(&out), "--quant", "int8"], "is the file");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the input remains");
    fails_with(&["frobnicate"], "unrecognized subcommand");
    fails_with(&["convert", m, m, "--quant", "int8"], "would overwrite the input");
    fails_with(&["tokenize"], "give TEXT or --text-file");
    let tiny = tmpdir("onebyte").join("one.txt");
    std::fs::write(&tiny, "a").unwrap();
    fails_with(&["perplexity", "--model", m, "--text-file", p(&tiny)], "at least 2 tokens");
    let golden16 = golden_dir("fp16-oddranks").join("model.pth");
    fails_with(&["generate", "--model", p(&golden16), "--prompt", "hi"], "no tokenizer for a vocabulary of 300");
}

#[test]
fn good_commands_print_what_the_contract_says() {
    let m = golden_dir("fp32-bytes").join("model.pth");
    let m = p(&m);
    let (ok, out, _) = gander(&["tokenize", "Hello world"]);
    assert!(ok);
    assert_eq!(out.trim(), "[33155,40213]");
    let (ok, out, _) = gander(&["tokenize", "--model", m, "hi"]);
    assert!(ok);
    assert_eq!(out.trim(), "[104,105]");
    let (ok, out, _) = gander(&["logits", "--model", m, "--tokens", "1,2,3", "--all"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["logits"].as_array().unwrap().len(), 3);
    assert_eq!(v["logits"][0].as_array().unwrap().len(), 256);
    let (ok, out, err) = gander(&["generate", "--model", m, "--prompt", "ab", "--max-tokens", "5", "--temperature", "0"]);
    assert!(ok, "{err}");
    assert!(!out.contains("[gander]") && err.contains("tok/s"), "speed goes to stderr only");
    let (ok, out, _) = gander(&["info", m]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["layers"], 2);
    assert_eq!(v["state_bytes"], 60 + 4 * 2 * (2 * 64 + 2 * 32 * 32));
    let txt = tmpdir("ppl").join("t.txt");
    std::fs::write(&txt, "the quick brown fox").unwrap();
    let (ok, out, _) = gander(&["perplexity", "--model", m, "--text-file", p(&txt)]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tokens"], 19);
    assert!(v["ppl"].as_f64().unwrap() > 1.0);
    let (ok, out, _) = gander(&["bench", "--model", m, "--prompt-tokens", "8", "--gen-tokens", "4"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["prefill_tok_s"].as_f64().unwrap() > 0.0 && v["decode_tok_s"].as_f64().unwrap() > 0.0);
}

/// An int8 code of -128 (the writer never makes one; the integer kernels need codes that negate
/// within i8) is refused when the file is read, naming the tensor.
#[test]
fn an_int8_code_of_minus_128_is_refused() {
    let dir = std::env::temp_dir().join(format!("gander-int8-128-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("int8.safetensors");
    let (ok, _, err) = gander(&["convert", p(&golden_dir("fp32-bytes").join("model.pth")), p(&good), "--quant", "int8"]);
    assert!(ok, "{err}");
    let mut bytes = std::fs::read(&good).unwrap();
    let name = "blocks.0.att.key.weight.q";
    let at = {
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let data = st.tensor(name).unwrap().data();
        data.as_ptr() as usize - bytes.as_ptr() as usize
    };
    bytes[at] = 0x80;
    let bad = dir.join("int8-128.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    fails_with(&["generate", "--model", p(&bad), "--prompt", "a", "--max-tokens", "1"], "code -128");
    let (_, _, err) = gander(&["generate", "--model", p(&bad), "--prompt", "a", "--max-tokens", "1"]);
    assert!(err.contains(name), "names the tensor: {err}");
    std::fs::remove_dir_all(&dir).ok();
}
