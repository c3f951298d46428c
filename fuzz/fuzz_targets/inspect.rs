//! Any bytes as a checkpoint inspected range by range (`Gander.inspect`'s loop over the
//! sparse zip/pickle and safetensors header readers): a summary or a coded error within a
//! bounded number of reads, never a panic or an endless loop.
#![no_main]
use gander::model::inspect::{Inspector, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ins = Inspector::new(data.len() as u64);
    for _ in 0..64 {
        match ins.step() {
            Ok(Step::Need(a, b)) => {
                assert!(a < b && b <= data.len() as u64, "{a}..{b} of {}", data.len());
                ins.add(a, data[a as usize..b as usize].to_vec());
            }
            Ok(Step::Done(_)) | Err(_) => return,
        }
    }
    panic!("no answer after 64 reads");
});
