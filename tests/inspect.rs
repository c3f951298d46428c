//! `model::inspect::summarize` (what `gander info` and `Gander.inspect` report) predicts, from
//! headers alone, the tensor data of the Gander file of every quantisation exactly and the file
//! within `FILE_ESTIMATE_TOL` (the JSON header is estimated).

mod common;
use common::*;
use gander::format::gander::Quant;

/// The header is estimated at 64 bytes per stored tensor: measured 65 for the 0.1B shape, more
/// per tensor for small models (longer metadata shared by fewer tensors).
const FILE_ESTIMATE_TOL: f64 = 0.02;

#[test]
fn sizes_match_the_converted_files() {
    let path = fixture_dir().join("model.pth");
    let src = gander::format::open_path(&path).unwrap();
    let s = gander::model::inspect::summarize(src.as_ref()).unwrap();
    assert_eq!(s.layout, "official");
    assert_eq!(s.params, s.config.params() as u64);
    for q in Quant::ALL {
        let mut out = Vec::new();
        let mut src = gander::format::open_path(&path).unwrap();
        gander::model::convert(src.as_mut(), q, &mut out, &mut |_, _| {}).unwrap();
        let header = 8 + u64::from_le_bytes(out[..8].try_into().unwrap());
        let c = s.quants.iter().find(|c| c.quant == q.name()).unwrap();
        assert_eq!(c.memory_bytes, out.len() as u64 - header, "{}: tensor data", q.name());
        let e = (c.file_bytes as f64 - out.len() as f64).abs() / out.len() as f64;
        println!("{}: file {} bytes, predicted {} ({:.2}%)", q.name(), out.len(), c.file_bytes, e * 100.0);
        assert!(e <= FILE_ESTIMATE_TOL, "{}: {e}", q.name());
    }
}

/// The browser's path, natively: the inspector asks for byte ranges until it has the headers. A
/// `.pth` needs its zip directory and `data.pkl` (a quarter of this 3.4 MB file at most), a
/// safetensors file its header; the summaries equal the ones from the whole files.
#[test]
fn headers_alone_give_the_same_summary() {
    use gander::model::inspect::{summarize, Inspector, Step};
    for name in ["model.pth", "model.safetensors"] {
        let path = fixture_dir().join(name);
        let bytes = std::fs::read(&path).unwrap();
        let whole = summarize(gander::format::open_path(&path).unwrap().as_ref()).unwrap();
        let (got, ins, steps) = inspect_by_ranges(&bytes);
        assert_eq!(serde_json::to_value(&*got).unwrap(), serde_json::to_value(&whole).unwrap(), "{name}");
        println!("{name}: {} of {} bytes in {} reads", ins.fetched, bytes.len(), steps - 1);
        assert!(ins.fetched < bytes.len() as u64 / 4, "{name}: fetched {} of {}", ins.fetched, bytes.len());
    }
    // Not a model: a clear error, not a loop.
    let mut ins = Inspector::new(40);
    let junk = b"this is not a model at all, just text....".to_vec();
    let e = loop {
        match ins.step() {
            Ok(Step::Need(a, b)) => ins.add(a, junk[a as usize..b as usize].to_vec()),
            Ok(Step::Done(_)) => panic!("junk summarized"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), "BAD_MODEL", "{e}");
}
