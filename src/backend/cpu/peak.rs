//! Measured peak arithmetic rates of this CPU, for reporting benchmark results as a fraction of
//! what the hardware can do (`gander bench`).

/// Multiply-add throughput in G multiply-adds per second over all pool threads: `(f32 FMA, int8
/// VNNI)`; `None` where the instruction set is missing.
pub fn multiply_add_rates() -> (Option<f64>, Option<f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::isa::{best_isa, Isa};
        let threads = super::isa::pool().current_num_threads();
        let run = |f: &(dyn Fn(usize) -> f64 + Sync), per_iter: f64| -> f64 {
            let iters = 20_000_000;
            let mut best = 0f64;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let sink: f64 = super::isa::pool().install(|| {
                    use rayon::prelude::*;
                    (0..threads).into_par_iter().map(|_| f(iters)).sum()
                });
                std::hint::black_box(sink);
                best = best.max(per_iter * iters as f64 * threads as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            best
        };
        let isa = best_isa();
        // 12 chains x 8 lanes per iteration; VNNI: x 4 products per lane.
        // Safety: each probe runs only when the CPU has its instructions.
        let fma = (isa != Isa::Generic).then(|| run(&|n| unsafe { super::x86::fma_probe(n) } as f64, 96.0));
        let vnni = (isa == Isa::Vnni).then(|| run(&|n| unsafe { super::x86::vnni_probe(n) } as f64, 384.0));
        (fma, vnni)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (None, None)
    }
}
