//! The streamed loader (the browser's path: a file known by its header, fed part by part) gives
//! exactly the model a whole-file load gives, for every weight format, and refuses bad streams.

#[path = "wasm_common/mod.rs"]
mod wasm_common;

use gander::backend::cpu::Cpu;
use gander::format;
use gander::model::Model;
use wasm_common::*;

#[test]
fn streamed_equals_whole_for_every_format() {
    for c in cases() {
        for quant in ["f32", "f16", "int8", "q4"] {
            let file = to_gander(c.pth, quant);
            let whole = Model::load(Cpu, format::open_bytes(file.clone()).unwrap().as_mut()).unwrap();
            let streamed = load_streamed(Cpu, &file);
            assert_eq!(whole.fingerprint, streamed.fingerprint);
            let g = golden(&c);
            let mut a = whole.new_state().unwrap();
            let mut b = streamed.new_state().unwrap();
            assert_eq!(whole.forward(&mut a, &g.tokens).unwrap(), streamed.forward(&mut b, &g.tokens).unwrap(), "{} {quant}", c.name);
        }
    }
}

#[test]
fn bad_streams_are_errors() {
    let file = to_gander(cases()[2].pth, "int8");
    let n = file.len() as u64;
    // A header claiming more bytes than the file has.
    assert!(format::safetensors::SafetensorsFile::header_len(&file, 20).is_err());
    let hl = format::safetensors::SafetensorsFile::header_len(&file, n).unwrap() as usize;
    // Offsets beyond a (claimed) shorter file.
    assert!(format::open_header(&file[..hl], (hl + 10) as u64).is_err());
    let mut src = format::open_header(&file[..hl], n).unwrap();
    let pieces = src.pieces().unwrap();
    let (name, a, b) = pieces.wanted(&["emb.".into()]).remove(0);
    assert!(pieces.insert(&name, vec![0; (b - a) as usize + 1]).is_err(), "wrong length refused");
    assert!(pieces.insert("no.such.tensor", vec![]).is_err());
    // Loading a part whose tensors were not streamed in is an error, not a panic.
    let mut builder = gander::model::ModelBuilder::new(Cpu, src.as_ref()).unwrap();
    let e = builder.load_next(src.as_mut()).err().expect("missing tensors refused");
    assert!(e.to_string().contains("not streamed in"), "{e}");
}
