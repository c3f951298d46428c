//! Any bytes as a checkpoint: the zip + restricted-pickle `.pth` reader, the safetensors header,
//! Gander metadata, the config inferred from shapes, and (when all of that passes) the load of
//! every tensor. Nothing may panic, hang or allocate beyond what the bytes can justify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut src) = gander::format::open_bytes(data.to_vec()) {
        let _ = gander::Model::load(gander::backend::cpu::Cpu, src.as_mut());
    }
});
