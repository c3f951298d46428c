//! Any bytes as a checkpoint: the zip + restricted-pickle `.pth` reader, the safetensors header,
//! Gander metadata, the config inferred from shapes, and (when all of that passes) the load of
//! every tensor and a forward pass over two tokens, so the CPU kernels run on every shape a
//! file can make the loader accept. Nothing may panic, hang or allocate beyond what the bytes
//! can justify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut src) = gander::format::open_bytes(data.to_vec()) {
        if let Ok(m) = gander::Model::load(gander::backend::cpu::Cpu, src.as_mut()) {
            let last = (m.config.vocab - 1) as u32;
            if let Ok(mut st) = m.new_state() {
                let _ = m.forward(&mut st, &[0, last]);
            }
        }
    }
});
