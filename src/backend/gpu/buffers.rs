//! Device memory: activations in pooled storage buffers (returned to the pool when their last
//! handle drops), weights, groups and the state, and uploads.

use super::cache::BindCache;
use super::*;
use std::collections::{BTreeMap, HashMap};
use wgpu::util::DeviceExt;

/// Buffers waiting for reuse, by byte size, handed out oldest first (by a serial number given
/// at creation, the same natively and in a browser): a decode step then gets the same buffers
/// every token, and the bind-group cache hits.
#[derive(Default)]
pub(super) struct PoolInner {
    free: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    /// Buffers filled by `queue.write_buffer`, kept apart: such a write lands at the next submit
    /// before every recorded command, so a buffer that recorded commands still use must never
    /// receive one.
    uploads: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    /// Upload buffers dropped since the last submit: reusable only after it.
    held: Vec<(u64, wgpu::Buffer)>,
    serial: u64,
}

pub(super) type Pool = Arc<Mutex<PoolInner>>;

/// A pooled storage buffer; returns to the pool when the last handle drops.
pub struct PooledBuffer {
    pub(super) buf: Option<wgpu::Buffer>,
    pub(super) pool: Pool,
    pub(super) upload: bool,
    serial: u64,
}

impl PooledBuffer {
    // The buffer is `Some` from construction until `Drop` takes it out, so this cannot fail.
    #[allow(clippy::expect_used)]
    pub(super) fn get(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut p)) = (self.buf.take(), self.pool.lock()) {
            if self.upload {
                p.held.push((self.serial, b));
            } else {
                p.free.entry(b.size()).or_default().insert(self.serial, b);
            }
        }
    }
}

/// Activations `[rows, cols]` f32 on the device. Clones share the buffer (the forward pass
/// never writes an activation after cloning it).
#[derive(Clone)]
pub struct GpuAct {
    pub(super) buf: Arc<PooledBuffer>,
    pub rows: usize,
    pub cols: usize,
}

/// One part of a matrix: rows `row0 .. row0 + rows` packed in one buffer.
pub struct MatrixPart {
    pub(super) buf: wgpu::Buffer,
    pub(super) scale: wgpu::Buffer,
    pub(super) row0: usize,
    pub(super) rows: usize,
    pub(super) binds: Arc<BindCache>,
}

impl Drop for MatrixPart {
    /// A dropped matrix means a dropped model (or a test's matrix): every cached bind group goes,
    /// not only this matrix's, because the model's vectors (plain buffers) are bound in entries
    /// of their own. Models sharing the device rebuild theirs on their next token.
    fn drop(&mut self) {
        self.binds.clear();
    }
}

/// A weight matrix on the device.
pub struct GpuMatrix {
    pub rows: usize,
    pub cols: usize,
    pub(super) format: u32,
    pub(super) row_words: usize,
    pub(super) parts: Vec<MatrixPart>,
    pub(super) bytes: usize,
}

/// Matrices of one input width concatenated by rows, with each one's end row.
pub struct GpuGroup {
    pub(super) mat: GpuMatrix,
    pub(super) ends: Vec<usize>,
}

/// The recurrent state on the device: per layer the two shift vectors and the WKV matrices.
pub struct GpuState {
    pub(super) att: Vec<wgpu::Buffer>,
    pub(super) wkv: Vec<wgpu::Buffer>,
    pub(super) ffn: Vec<wgpu::Buffer>,
    pub(super) embd: usize,
    pub(super) heads: usize,
    pub(super) head_size: usize,
    pub(super) fingerprint: [u8; 32],
    pub(super) binds: Arc<BindCache>,
}

impl Drop for GpuState {
    fn drop(&mut self) {
        let all: Vec<&wgpu::Buffer> = self.att.iter().chain(&self.wkv).chain(&self.ffn).collect();
        self.binds.forget(&all);
    }
}

pub(super) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

pub(super) fn words(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    while !v.len().is_multiple_of(4) || v.is_empty() {
        v.push(0);
    }
    v
}

impl Gpu {
    fn pooled(&self, bytes: u64, upload: bool) -> Arc<PooledBuffer> {
        let size = bytes.max(16).next_multiple_of(16);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let map = if upload { &mut pool.uploads } else { &mut pool.free };
        let (serial, buf) = match map.get_mut(&size).and_then(BTreeMap::pop_first) {
            Some(reused) => reused,
            None => {
                pool.serial += 1;
                self.counts.buffers.fetch_add(1, Ordering::Relaxed);
                let label = if upload { "upload" } else { "act" };
                (pool.serial, self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage: STORAGE, mapped_at_creation: false }))
            }
        };
        Arc::new(PooledBuffer { buf: Some(buf), pool: self.pool.clone(), upload, serial })
    }

    pub(super) fn buffer(&self, bytes: u64) -> Arc<PooledBuffer> {
        self.pooled(bytes, false)
    }

    pub(super) fn act(&self, rows: usize, cols: usize) -> GpuAct {
        GpuAct { buf: self.buffer((rows * cols * 4) as u64), rows, cols }
    }

    /// A pooled buffer holding `bytes` (written at the next submit, before the commands
    /// recorded so far; see [`PoolInner::uploads`] for why that is safe).
    pub(super) fn upload_pooled(&self, bytes: &[u8]) -> Arc<PooledBuffer> {
        let data = words(bytes);
        let b = self.pooled(data.len() as u64, true);
        self.ctx.queue.write_buffer(b.get(), 0, &data);
        b
    }

    /// The upload buffers dropped so far (see [`Gpu::submit`]).
    pub(super) fn take_held(&self) -> Vec<(u64, wgpu::Buffer)> {
        self.pool.lock().map(|mut p| std::mem::take(&mut p.held)).unwrap_or_default()
    }

    /// Upload buffers taken before a submit, reusable after it.
    pub(super) fn release(&self, held: Vec<(u64, wgpu::Buffer)>) {
        if let Ok(mut p) = self.pool.lock() {
            for (serial, b) in held {
                p.uploads.entry(b.size()).or_default().insert(serial, b);
            }
        }
    }

    /// A buffer created with its contents (weights, vectors, states: made once, not per token).
    pub(super) fn upload(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.counts.buffers.fetch_add(1, Ordering::Relaxed);
        self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &words(bytes), usage: STORAGE })
    }
}
