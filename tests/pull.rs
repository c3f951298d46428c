//! The pull loader (the browser's path for a `.pth` or a safetensors file of any layout, read
//! from IndexedDB chunks or range requests, optionally converted on the way): it gives exactly
//! the model a whole-file load gives, and with `quant` exactly the model of the file `gander
//! convert` writes; it fetches each byte about once; bad files are errors, not panics.

mod common;
use common::*;
use gander::backend::cpu::Cpu;
use gander::format;
use gander::model::Model;

const CASES: [&str; 4] = ["bf16-l0v", "fp16-oddranks", "fp32-bytes", "deepembed"];

fn logits<B: gander::backend::Backend>(m: &Model<B>, tokens: &[u32]) -> Vec<f32> {
    let mut st = m.new_state().unwrap();
    m.forward(&mut st, tokens).unwrap()
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn converted(pth: &[u8], quant: &str) -> Vec<u8> {
    let mut src = format::open_bytes(pth.to_vec()).unwrap();
    let mut out = Vec::new();
    gander::model::convert(src.as_mut(), format::gander::Quant::parse(quant).unwrap(), &mut out, &mut |_, _| {}).unwrap();
    out
}

#[test]
fn a_pth_pulled_equals_the_whole_file_and_converts_as_gander_convert() {
    for case in CASES {
        let pth = std::fs::read(golden_dir(case).join("model.pth")).unwrap();
        let tokens = golden(case).tokens;
        let whole = Model::load(Cpu, format::open_bytes(pth.clone()).unwrap().as_mut()).unwrap();
        // Pieces of odd sizes: a range handed over in parts must read as one.
        let (pulled, fetched, trips) = load_pulled(Cpu, &pth, None, 7_777).unwrap();
        assert_eq!(pulled.fingerprint, whole.fingerprint, "{case}");
        assert_eq!(pulled.quant, whole.quant, "{case}");
        assert!(same(&logits(&pulled, &tokens), &logits(&whole, &tokens)), "{case}: pulled logits differ");
        // Each byte about once: the read-ahead around a miss (64 KiB each side) may fetch some
        // bytes again after a part's bytes were dropped.
        let bound = pth.len() as u64 + (whole.config.layers as u64 + 3) * 2 * format::sparse::READ_AHEAD;
        assert!(fetched <= bound, "{case}: fetched {fetched} bytes of a {}-byte file", pth.len());
        println!("{case}: {} bytes, fetched {fetched} in {trips} round trips", pth.len());
        for quant in ["f32", "f16", "int8", "q4"] {
            let file = converted(&pth, quant);
            let want = Model::load(Cpu, format::open_bytes(file).unwrap().as_mut()).unwrap();
            let (got, _, _) = load_pulled(Cpu, &pth, Some(quant), 1 << 20).unwrap();
            assert_eq!(got.quant, quant);
            assert_eq!(got.fingerprint, want.fingerprint, "{case} {quant}");
            assert!(same(&logits(&got, &tokens), &logits(&want, &tokens)), "{case} {quant}: not the converted file's logits");
        }
    }
}

/// With `quant`, a matrix bigger than a block is fetched and converted block by block, never
/// whole as stored: the loader asks for at most a block plus the read-ahead at once, and the
/// model is still exactly the converted file's. Blocks of 4 KiB on these small models split
/// every big matrix (the DeepEmbed table is 1 MiB) into many, with a last partial one.
#[test]
fn big_matrices_are_fetched_and_converted_block_by_block() {
    const BLOCK: usize = 4096;
    for case in CASES {
        let tokens = golden(case).tokens;
        for file in golden_files(case) {
            let bytes = std::fs::read(golden_dir(case).join(file)).unwrap();
            for quant in ["f32", "f16", "int8", "q4"] {
                let want = Model::load(Cpu, format::open_bytes(converted(&bytes, quant)).unwrap().as_mut()).unwrap();
                let files = [(String::new(), bytes.clone())];
                let (got, fetched, trips, largest) = load_pulled_blocks(Cpu, &files, None, Some(quant), 1_000, Some(BLOCK)).unwrap();
                assert!(same(&logits(&got, &tokens), &logits(&want, &tokens)), "{case}/{file} {quant}: not the converted file's logits");
                // A block, and the read-ahead on both sides of a miss (the whole DeepEmbed
                // table would be 1 MiB, a bf16-l0v FFN matrix 128 KiB).
                let bound = BLOCK as u64 + 2 * format::sparse::READ_AHEAD;
                assert!(largest <= bound, "{case}/{file} {quant}: asked for {largest} bytes at once (bound {bound})");
                // Small parts are kept while they are read, so no byte is fetched twice.
                assert_eq!(fetched, bytes.len() as u64, "{case}/{file} {quant}: fetched {fetched} of {}", bytes.len());
                println!("{case}/{file} {quant}: largest request {largest} bytes, fetched {fetched} of {} in {trips} round trips", bytes.len());
            }
        }
    }
}

#[test]
fn the_trained_fixture_and_gander_files_pull_too() {
    let pth = std::fs::read(fixture_path("tiny-rwkv7-834k/model.pth")).unwrap();
    let tokens: Vec<u32> = (1..40).collect();
    let int8 = converted(&pth, "int8");
    let want = Model::load(Cpu, format::open_bytes(int8.clone()).unwrap().as_mut()).unwrap();
    // A Gander int8 file asked for int8 keeps its codes (no second rounding); as stored it is
    // the same model.
    for quant in [None, Some("int8")] {
        let (got, fetched, _) = load_pulled(Cpu, &int8, quant, 1 << 16).unwrap();
        assert!(same(&logits(&got, &tokens), &logits(&want, &tokens)), "{quant:?}");
        assert!(fetched <= int8.len() as u64 + 20 * 2 * format::sparse::READ_AHEAD);
    }
    let (got, _, _) = load_pulled(Cpu, &pth, Some("int8"), 3 << 20).unwrap();
    assert!(same(&logits(&got, &tokens), &logits(&want, &tokens)));
}

#[test]
fn bad_files_are_errors_not_panics() {
    let pth = std::fs::read(golden_dir("fp32-bytes").join("model.pth")).unwrap();
    // Truncated: the zip directory is gone.
    let e = load_pulled(Cpu, &pth[..pth.len() / 2], None, 1 << 20).err().expect("a truncated .pth is refused");
    assert_eq!(e.code(), "BAD_MODEL", "{e}");
    // Garbage where the storages are: the zip reader or the loader refuses it.
    let mut broken = pth.clone();
    let mid = broken.len() / 2;
    broken[mid..mid + 4096].fill(0xff);
    if let Err(e) = load_pulled(Cpu, &broken, None, 1 << 20) {
        assert!(["BAD_MODEL", "BAD_INPUT"].contains(&e.code()), "{e}");
    }
    // Not a model at all.
    let e = load_pulled(Cpu, &[7u8; 4096], None, 1 << 20).err().expect("noise is refused");
    assert_eq!(e.code(), "BAD_MODEL", "{e}");
    // Bytes outside the file are refused by name.
    let mut ld = gander::model::pull::PullLoader::new(Cpu, 100, None);
    assert!(ld.add(0, 90, vec![0; 20]).is_err());
    assert!(ld.add(1, 0, vec![0; 20]).is_err(), "no second file");
    assert!(ld.finish().is_err(), "finish before done is an error");
}

/// Drive `PullConverter` over files in memory: the Gander file it writes, piece by piece.
fn convert_pulled(files: &[(String, Vec<u8>)], index: Option<Vec<u8>>, quant: &str) -> Vec<u8> {
    convert_pulled_blocks(files, index, quant, None)
}

/// [`convert_pulled`] with the converter's block size for big matrices set.
fn convert_pulled_blocks(files: &[(String, Vec<u8>)], index: Option<Vec<u8>>, quant: &str, block: Option<usize>) -> Vec<u8> {
    use gander::model::pull::{Convert, PullConverter};
    let q = format::gander::Quant::parse(quant).unwrap();
    let mut c = PullConverter::new(files.iter().map(|(n, b)| (n.clone(), b.len() as u64)).collect(), index, q);
    if let Some(b) = block {
        c = c.with_block_bytes(b);
    }
    let mut out = Vec::new();
    let mut size = None;
    loop {
        match c.step().unwrap() {
            Convert::Need(f, a, b) => c.add(f, a, files[f].1[a as usize..b as usize].to_vec()).unwrap(),
            Convert::Header(h, total) => {
                assert!(out.is_empty(), "the header comes first");
                size = Some(total);
                out.extend(h);
            }
            Convert::Tensor(t, done, total) => {
                assert!(done <= total);
                out.extend(t);
            }
            Convert::Done => break,
        }
    }
    assert_eq!(Some(out.len() as u64), size, "the size announced with the header");
    out
}

#[test]
fn a_converter_over_ranges_writes_the_bytes_of_gander_convert() {
    for case in CASES {
        for file in golden_files(case) {
            let bytes = std::fs::read(golden_dir(case).join(file)).unwrap();
            for quant in ["f32", "f16", "int8", "q4"] {
                let want = converted(&bytes, quant);
                assert!(convert_pulled(&[(String::new(), bytes.clone())], None, quant) == want, "{case}/{file} {quant}");
                // Big matrices block by block (4 KiB blocks split every one, the last one partial).
                assert!(convert_pulled_blocks(&[(String::new(), bytes.clone())], None, quant, Some(4096)) == want, "{case}/{file} {quant} by blocks");
            }
        }
    }
    // A Gander file converted again keeps its codes.
    let int8 = converted(&std::fs::read(fixture_path("tiny-rwkv7-834k/model.pth")).unwrap(), "int8");
    assert!(convert_pulled(&[(String::new(), int8.clone())], None, "int8") == int8);
}
