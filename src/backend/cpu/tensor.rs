//! The CPU backend's data: activations ([`Tensor`], in pooled buffers) and weight matrices
//! ([`CpuMatrix`], in their stored format, with the lazily built W8A8 prefill panel).

use super::w8a8;
use crate::backend::HostMatrix;

/// A row-major `[rows, cols]` f32 activation. Its buffer comes from, and returns to, a pool
/// ([`buffers`]), so a forward pass in steady state reuses memory instead of allocating it.
#[derive(Debug, PartialEq)]
pub struct Tensor {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Clone for Tensor {
    /// A copy in a pooled buffer.
    fn clone(&self) -> Tensor {
        self.copy()
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        buffers::give(std::mem::take(&mut self.data));
    }
}

/// A recycling pool of activation buffers. Without it every operation of a prompt allocated
/// fresh multi-megabyte tensors, which the allocator maps from the OS and the kernel zeroes
/// page by page (14% of prefill time in `perf`, as `clear_page_erms`), and decoding allocated
/// on every token.
pub mod buffers {
    use std::sync::Mutex;

    static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
    /// Buffers kept at most (a layer needs about 30 live activations).
    const MAX_KEPT: usize = 96;

    /// A zeroed buffer of `len` floats, reused when one is free.
    pub fn take(len: usize) -> Vec<f32> {
        let reused = POOL.lock().ok().and_then(|mut p| {
            let i = p.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i)?;
            Some(p.swap_remove(i))
        });
        match reused {
            Some(mut b) => {
                b.clear();
                b.resize(len, 0.0);
                b
            }
            None => vec![0.0; len],
        }
    }

    /// Return a buffer for reuse.
    pub fn give(b: Vec<f32>) {
        if b.capacity() == 0 {
            return;
        }
        if let Ok(mut p) = POOL.lock() {
            // `try_reserve`: a failed allocation here must not trap while the lock is held (on
            // wasm a trap would leave the pool locked for every later call).
            if p.len() < MAX_KEPT && p.try_reserve(1).is_ok() {
                p.push(b);
            } else if let Some(smallest) = p.iter_mut().min_by_key(|x| x.capacity()) {
                if smallest.capacity() < b.capacity() {
                    *smallest = b;
                }
            }
        }
    }
}

impl Tensor {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Tensor { rows, cols, data: buffers::take(rows * cols) }
    }
    pub fn row(&self, t: usize) -> &[f32] {
        &self.data[t * self.cols..(t + 1) * self.cols]
    }
    pub(super) fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        let mut out = Tensor::zeros(self.rows, self.cols);
        out.data.iter_mut().zip(&self.data).for_each(|(o, &x)| *o = f(x));
        out
    }
    pub(super) fn zip(&self, o: &Tensor, f: impl Fn(f32, f32) -> f32) -> Tensor {
        let mut out = Tensor::zeros(self.rows, self.cols);
        out.data.iter_mut().zip(self.data.iter().zip(&o.data)).for_each(|(r, (&a, &b))| *r = f(a, b));
        out
    }
    /// A pooled copy.
    pub(super) fn copy(&self) -> Tensor {
        let mut out = Tensor::zeros(self.rows, self.cols);
        out.data.copy_from_slice(&self.data);
        out
    }
}

/// A weight matrix `[rows = out, cols = in]` in its stored format; products dequantise one
/// row at a time, never the whole matrix. Quantised matrices may also hold their W8A8 prefill
/// panel ([`w8a8`]), built on the first prompt that needs it (native VNNI machines only).
pub struct CpuMatrix {
    pub stored: HostMatrix,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) w8a8: std::sync::OnceLock<w8a8::Panel>,
}

impl CpuMatrix {
    pub fn new(stored: HostMatrix) -> Self {
        CpuMatrix { stored, w8a8: std::sync::OnceLock::new() }
    }
}

impl std::ops::Deref for CpuMatrix {
    type Target = HostMatrix;
    fn deref(&self) -> &HostMatrix {
        &self.stored
    }
}
