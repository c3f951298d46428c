//! Any bytes as a checkpoint loaded range by range (the browser's pull loader over the sparse
//! zip/pickle, GGUF and safetensors readers, converting to int8 on the way, big matrices block by
//! block), and as two shards (the first byte splits the data): a model or a coded error within a
//! bounded number of reads, never a panic or an endless loop.
#![no_main]
use gander::backend::cpu::Cpu;
use gander::format::gander::Quant;
use gander::model::pull::{Pull, PullLoader};
use libfuzzer_sys::fuzz_target;

fn drive(mut ld: PullLoader<Cpu>, files: &[&[u8]]) {
    for _ in 0..4096 {
        match ld.step() {
            Ok(Pull::Need(f, a, b)) => {
                let data = files[f];
                assert!(a < b && b <= data.len() as u64, "{a}..{b} of {}", data.len());
                ld.add(f, a, data[a as usize..b as usize].to_vec()).expect("a range it asked for is taken");
            }
            Ok(Pull::Built(..)) => {}
            Ok(Pull::Done) => {
                let _ = ld.finish();
                return;
            }
            Err(_) => return,
        }
    }
    panic!("no answer after 4096 steps");
}

fuzz_target!(|data: &[u8]| {
    // As stored, and converted to int8 with small blocks: every matrix of more than 256 bytes is
    // then read and converted by rows (the first bytes of a `.pth` cannot choose: a zip starts
    // with `PK`).
    for (quant, block) in [(None, 16 << 20), (Some(Quant::Int8), 256)] {
        drive(PullLoader::new(Cpu, data.len() as u64, quant).with_block_bytes(block), &[data]);
    }
    let quant = if data.first().is_some_and(|b| b & 1 == 1) { Some(Quant::Int8) } else { None };
    let block = if data.first().is_some_and(|b| b & 2 == 2) { 256 } else { 16 << 20 };
    let cut = data.first().map_or(0, |&b| (b as usize * data.len() / 256).min(data.len()));
    let (a, b) = data.split_at(cut);
    if !a.is_empty() && !b.is_empty() {
        drive(PullLoader::sharded(Cpu, vec![("a".into(), a.len() as u64), ("b".into(), b.len() as u64)], None, quant).with_block_bytes(block), &[a, b]);
    }
});
