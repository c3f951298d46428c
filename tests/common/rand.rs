//! Seeded test data shared by test files (kept free of file or process access, so wasm tests
//! can use it too).

/// `n` roughly normal values (sum of uniforms) with an occasional 8x outlier, from `seed`.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // roughly normal: sum of uniforms, with an occasional outlier
            let u: f32 = (0..4).map(|k| ((x >> (16 * k)) & 0xffff) as f32 / 65535.0).sum::<f32>() - 2.0;
            if x.is_multiple_of(97) {
                u * 8.0
            } else {
                u
            }
        })
        .collect()
}
