//! Any bytes as a llama.cpp GGUF file: the header (counts, strings, typed values, arrays, tensor
//! infos, alignment, offsets) parses or the error names the problem, never a panic or an
//! allocation beyond what the bytes justify; then every tensor of a parsed file is read under
//! its official name, as values and as a matrix (Q8_0/Q4_0 kept as codes, the rest decoded).
#![no_main]
use gander::format::gguf::GgufFile;
use gander::format::TensorSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = match GgufFile::from_bytes(data.to_vec()) {
        Ok(f) => f,
        Err(e) => {
            assert!(matches!(e.code(), "BAD_MODEL" | "UNSUPPORTED"), "{e}");
            return;
        }
    };
    let names: Vec<(String, usize)> = f.tensors().iter().map(|(n, i)| (n.clone(), i.shape.len())).collect();
    for (name, dims) in names {
        let _ = f.read(&name);
        if dims == 2 {
            let _ = f.read_matrix(&name);
        }
    }
});
