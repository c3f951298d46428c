//! What the CPU can do and how work is spread over its cores: instruction-set detection (once,
//! cached) and the thread pool. A leaf of `backend::cpu`: the kernels and the products read it,
//! it reads none of them.

/// The instruction set a product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust (autovectorised for the build target: SSE2 on x86-64, simd128 on wasm).
    Generic,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// AVX2 plus AVX512-VNNI: quantised prefill uses 8-bit dot products ([`super::w8a8`]).
    Vnni,
}

/// Whether this CPU has 256-bit VNNI (AVX512-VNNI with AVX512-VL).
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *VNNI.get_or_init(|| is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") && is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The best instruction set this CPU supports, capped by the environment variable
/// `GANDER_CPU_ISA` (`generic`, `avx2` or `vnni`, any case), so that the paths of older CPUs
/// can be measured and tested on a newer one. A cap above what the CPU has, or another value,
/// changes nothing (`gander bench` prints the instruction set it used, `isa`).
pub fn best_isa() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        let cap = match std::env::var("GANDER_CPU_ISA").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Ok("generic") => Isa::Generic,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Vnni,
        };
        detected().min(cap)
    })
}

fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
        return if vnni_available() { Isa::Vnni } else { Isa::Avx2 };
    }
    Isa::Generic
}

/// Below this many weights a product runs on the calling thread: waking the pool costs more
/// (tens of microseconds per fork-join, seen in `perf` as scheduler time) than it saves.
pub(crate) const PARALLEL_MIN_WEIGHTS: usize = 1 << 18;

/// Run `f(i)` for `i in 0..n`, in parallel natively when `parallel`, in order otherwise.
pub(crate) fn par_map<R: Send>(n: usize, parallel: bool, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    if parallel {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(f).collect();
    }
    let _ = parallel;
    (0..n).map(f).collect()
}

/// The worker pool: one thread per core. Forward calls run inside it (see `install`), so the
/// calling thread sleeps while the pool works instead of competing with it for a core.
#[cfg(not(target_arch = "wasm32"))]
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    // If even a one-thread pool cannot be created, the process cannot start threads at all and
    // nothing could run; that start-up failure is the one panic left here.
    #[allow(clippy::expect_used)]
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("gander-cpu-{i}"))
            .build()
            .unwrap_or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a 1-thread pool"))
    })
}
