//! Heap allocations per decoded token (issue 9 asks for none; this measures how far the CPU
//! decode loop is from that).
//!
//! ```text
//! cargo run --release --example alloc_count -- MODEL [TOKENS]
//! ```
//! A counting global allocator wraps the system one; the count covers `Model::forward` for one
//! token and greedy sampling, after a warm-up token.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: alloc_count MODEL [TOKENS]")?;
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let m = gander::model::load_path(std::path::Path::new(path))?;
    let mut st = m.new_state()?;
    let mut sampler = gander::sampler::Sampler::new(gander::sampler::SamplerOptions { temperature: 0.0, ..Default::default() }, m.config.vocab)?;
    let mut logits = m.forward(&mut st, &[1])?;
    let (c0, b0) = (COUNT.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    for _ in 0..n {
        let t = sampler.sample(&logits, |_| true)?;
        m.forward_into(&mut st, &[t], &mut logits)?;
    }
    let (c, b) = (COUNT.load(Ordering::Relaxed) - c0, BYTES.load(Ordering::Relaxed) - b0);
    println!("{{\"allocations_per_token\": {:.1}, \"bytes_per_token\": {:.0}, \"layers\": {}}}", c as f64 / n as f64, b as f64 / n as f64, m.config.layers);
    Ok(())
}
