//! The CPU benchmark as a WASI program, so the wasm build (single thread, `simd128`) can be
//! measured in Node on the same model as the native `gander bench` (`make bench-wasm`).
//!
//! ```text
//! cargo build --release --example wasm_bench --target wasm32-wasip1   # RUSTFLAGS: +simd128
//! node bench/wasm_bench.mjs MODEL [PROMPT_TOKENS] [GEN_TOKENS]
//! ```
//! Prints one JSON line like `gander bench`: prefill_tok_s, decode_tok_s. It also builds and
//! runs natively (where it uses the native kernels and threads).

use gander::backend::cpu::Cpu;
use gander::model::Model;
use gander::sampler::{Sampler, SamplerOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: wasm_bench MODEL [PROMPT_TOKENS] [GEN_TOKENS]")?;
    let prompt_tokens: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(512);
    let gen_tokens: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let t = Instant::now();
    let bytes = std::fs::read(path)?;
    let mut src = gander::format::open_bytes(bytes)?;
    let m = Model::load(Cpu, src.as_mut())?;
    drop(src);
    let load_s = t.elapsed().as_secs_f64();
    let prompt = gander::model::bench_prompt(m.config.vocab, prompt_tokens);
    let mut state = m.new_state()?;
    let t0 = Instant::now();
    let mut logits = m.forward(&mut state, &prompt)?;
    let prefill = prompt_tokens as f64 / t0.elapsed().as_secs_f64();
    let mut sampler = Sampler::new(SamplerOptions { temperature: 0.0, ..Default::default() }, m.config.vocab)?;
    let t1 = Instant::now();
    for _ in 0..gen_tokens {
        let tok = sampler.sample(&logits, |_| true)?;
        logits = m.forward(&mut state, &[tok])?;
    }
    let decode = gen_tokens as f64 / t1.elapsed().as_secs_f64();
    println!(
        "{{\"prefill_tok_s\": {prefill}, \"decode_tok_s\": {decode}, \"prompt_tokens\": {prompt_tokens}, \"gen_tokens\": {gen_tokens}, \"load_s\": {load_s}, \"quant\": \"{}\", \"target\": \"{}\"}}",
        m.quant,
        std::env::consts::ARCH
    );
    Ok(())
}
