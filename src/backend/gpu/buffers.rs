//! Device memory: activations in pooled storage buffers (returned to the pool when their last
//! handle drops), weights, groups and the state, and uploads.

use super::*;
use wgpu::util::DeviceExt;

/// Buffers waiting for reuse, by byte size.
pub(super) type Pool = Arc<Mutex<std::collections::HashMap<u64, Vec<wgpu::Buffer>>>>;

/// A pooled storage buffer; returns to the pool when the last handle drops.
pub struct PooledBuffer {
    pub(super) buf: Option<wgpu::Buffer>,
    pub(super) pool: Pool,
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
            p.entry(b.size()).or_default().push(b);
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
    pub(super) fn buffer(&self, bytes: u64) -> Arc<PooledBuffer> {
        let size = bytes.max(16).next_multiple_of(16);
        let reused = self.pool.lock().ok().and_then(|mut p| p.get_mut(&size).and_then(Vec::pop));
        let buf = reused
            .unwrap_or_else(|| self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("act"), size, usage: STORAGE, mapped_at_creation: false }));
        Arc::new(PooledBuffer { buf: Some(buf), pool: self.pool.clone() })
    }

    pub(super) fn act(&self, rows: usize, cols: usize) -> GpuAct {
        GpuAct { buf: self.buffer((rows * cols * 4) as u64), rows, cols }
    }

    pub(super) fn upload(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &words(bytes), usage: STORAGE })
    }
}
