//! The GPU backend: the RWKV-7 ops as WGSL compute shaders (`shaders/`, one file per op)
//! through wgpu, natively on Vulkan (lavapipe in tests) and, later, WebGPU in the browser.
//!
//! Every op records one or more dispatches into a single command encoder; nothing is submitted
//! until a result is read back ([`Backend::read_into`]), so a forward call is one submission.
//! Activations live in pooled storage buffers; weights of every format are `array<u32>` with the
//! format as a pipeline-override constant (f16 is packed two per word, so `shader-f16` is not
//! needed); a matrix larger than the adapter's storage-binding limit is split by rows.
//! The CPU backend is the reference: tests/gpu.rs checks every op and the whole model against it.

pub mod context;
pub mod pipelines;

use super::{Backend, HostMatrix, LoraMid, MatrixData, Shift};
use crate::error::{Error, Result};
use crate::format::quant::{blocks_per_row, int8, q4};
use crate::config::Config;
use crate::state::{LayerState, State};
use context::Context;
use pipelines::{ElementOp, Pipelines};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// What `shaders/matmul.wgsl` applies to each result (values match its `epi` switch).
#[derive(Clone, Copy)]
enum Epilogue {
    None = 0,
    Tanh = 1,
    Sigmoid = 2,
    Bias = 3,
    BiasSigmoid = 4,
    Accumulate = 5,
    ReluSq = 6,
}

/// Buffers waiting for reuse, by byte size.
type Pool = Arc<Mutex<std::collections::HashMap<u64, Vec<wgpu::Buffer>>>>;

/// A pooled storage buffer; returns to the pool when the last handle drops.
pub struct PooledBuffer {
    buf: Option<wgpu::Buffer>,
    pool: Pool,
}

impl PooledBuffer {
    // The buffer is `Some` from construction until `Drop` takes it out, so this cannot fail.
    #[allow(clippy::expect_used)]
    fn get(&self) -> &wgpu::Buffer {
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
    buf: Arc<PooledBuffer>,
    pub rows: usize,
    pub cols: usize,
}

/// One part of a matrix: rows `row0 .. row0 + rows` packed in one buffer.
pub struct MatrixPart {
    buf: wgpu::Buffer,
    scale: wgpu::Buffer,
    row0: usize,
    rows: usize,
}

/// A weight matrix on the device.
pub struct GpuMatrix {
    pub rows: usize,
    pub cols: usize,
    format: u32,
    row_words: usize,
    parts: Vec<MatrixPart>,
    bytes: usize,
}

/// Matrices of one input width concatenated by rows, with each one's end row.
pub struct GpuGroup {
    mat: GpuMatrix,
    ends: Vec<usize>,
}

/// The recurrent state on the device: per layer the two shift vectors and the WKV matrices.
pub struct GpuState {
    att: Vec<wgpu::Buffer>,
    wkv: Vec<wgpu::Buffer>,
    ffn: Vec<wgpu::Buffer>,
    embd: usize,
    heads: usize,
    head_size: usize,
    fingerprint: [u8; 32],
}

/// The GPU backend: a cheap handle; clones share one device (several models can use it).
#[derive(Clone)]
pub struct Gpu(Arc<Shared>);

impl std::ops::Deref for Gpu {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the handles of one device share.
pub struct Shared {
    pub ctx: Context,
    pipes: Pipelines,
    encoder: Mutex<Option<wgpu::CommandEncoder>>,
    pool: Pool,
    dispatches: AtomicUsize,
    dummy: wgpu::Buffer,
    /// Held for a whole forward call: one device runs one call at a time. (Interleaving two
    /// threads' calls on one device gave nondeterministic results on lavapipe; serialising them
    /// is the documented behaviour until that is understood.)
    run: Mutex<()>,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

fn words(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    while !v.len().is_multiple_of(4) || v.is_empty() {
        v.push(0);
    }
    v
}

impl Gpu {
    /// Open the best adapter.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Gpu> {
        Self::with_binding_limit(u64::MAX)
    }

    /// Like [`Gpu::new`], but split matrices as if storage bindings were at most `limit` bytes
    /// (tests use this to exercise row-split matrices on any adapter).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_binding_limit(limit: u64) -> Result<Gpu> {
        let mut ctx = Context::new()?;
        ctx.max_binding = ctx.max_binding.min(limit);
        Self::from_context(ctx)
    }

    /// Open the best adapter without blocking (the browser's path).
    pub async fn new_async() -> Result<Gpu> {
        Self::from_context(Context::new_async().await?)
    }

    fn from_context(ctx: Context) -> Result<Gpu> {
        let pipes = Pipelines::new(&ctx.device);
        let dummy = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("dummy"), size: 16, usage: STORAGE, mapped_at_creation: false });
        ctx.check()?;
        Ok(Gpu(Arc::new(Shared { ctx, pipes, encoder: Mutex::new(None), pool: Arc::default(), dispatches: AtomicUsize::new(0), dummy, run: Mutex::new(()) })))
    }


    fn buffer(&self, bytes: u64) -> Arc<PooledBuffer> {
        let size = bytes.max(16).next_multiple_of(16);
        let reused = self.pool.lock().ok().and_then(|mut p| p.get_mut(&size).and_then(Vec::pop));
        let buf = reused.unwrap_or_else(|| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("act"), size, usage: STORAGE, mapped_at_creation: false })
        });
        Arc::new(PooledBuffer { buf: Some(buf), pool: self.pool.clone() })
    }

    fn act(&self, rows: usize, cols: usize) -> GpuAct {
        GpuAct { buf: self.buffer((rows * cols * 4) as u64), rows, cols }
    }

    fn upload(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &words(bytes), usage: STORAGE })
    }

    /// Record one dispatch of `pipe` with a uniform block `params` and storage `buffers`.
    fn dispatch(&self, pipe: &wgpu::ComputePipeline, params: &[u32], buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
        let dev = &self.ctx.device;
        let mut p = params.to_vec();
        while !p.len().is_multiple_of(4) {
            p.push(0);
        }
        let ubuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("params"), contents: bytemuck::cast_slice(&p), usage: wgpu::BufferUsages::UNIFORM });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipe.get_bind_group_layout(0), entries: &entries });
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn elementwise(&self, op: ElementOp, a: &GpuAct, b: Option<&GpuAct>, c: Option<&GpuAct>, vec: Option<&wgpu::Buffer>) -> Result<GpuAct> {
        let out = self.act(a.rows, a.cols);
        let n = (a.rows * a.cols) as u32;
        let groups = n.div_ceil(256);
        let (gx, gy) = if groups > 65535 { (65535, groups.div_ceil(65535)) } else { (groups, 1) };
        let d = &self.dummy;
        self.dispatch(
            &self.pipes.elementwise,
            &[n, a.cols as u32, op as u32],
            &[a.buf.get(), b.map(|x| x.buf.get()).unwrap_or(d), c.map(|x| x.buf.get()).unwrap_or(d), vec.unwrap_or(d), out.buf.get()],
            (gx, gy, 1),
        )?;
        Ok(out)
    }

    /// `epi(x·Wᵀ)` in one dispatch per matrix part (`shaders/matmul.wgsl`).
    fn matmul_epi(&self, x: &GpuAct, w: &GpuMatrix, epi: Epilogue, bias: Option<&wgpu::Buffer>) -> Result<GpuAct> {
        let y = self.act(x.rows, w.rows);
        self.matmul_into(x, None, w, epi, bias, &y)?;
        Ok(y)
    }

    /// Record `y = epi(in·Wᵀ)`, `in = x` or `x + d ⊙ mu` when `mix` is given (with
    /// `Epilogue::Accumulate`, `y += in·Wᵀ`).
    fn matmul_into(&self, x: &GpuAct, mix: Option<(&GpuAct, &wgpu::Buffer)>, w: &GpuMatrix, epi: Epilogue, bias: Option<&wgpu::Buffer>, y: &GpuAct) -> Result<()> {
        let mode = if mix.is_some() { 1 } else { 0 };
        self.matmul_record(x, mix, w, epi, bias, y, mode, [0; 4], [0; 4])
    }

    /// The one place that fills `shaders/matmul.wgsl`'s parameters and records its dispatches.
    #[allow(clippy::too_many_arguments)]
    fn matmul_record(&self, x: &GpuAct, mix: Option<(&GpuAct, &wgpu::Buffer)>, w: &GpuMatrix, epi: Epilogue, bias: Option<&wgpu::Buffer>, y: &GpuAct, mode: u32, segs: [u32; 4], epis: [u32; 4]) -> Result<()> {
        let nb = blocks_per_row(w.cols) as u32;
        let dummy = &self.dummy;
        let (d, mu) = mix.map(|(d, mu)| (d.buf.get(), mu)).unwrap_or((dummy, dummy));
        for part in &w.parts {
            let rows = part.rows as u32;
            let head = [x.rows as u32, w.cols as u32, rows, w.rows as u32, part.row0 as u32, w.row_words as u32, nb, epi as u32, mode, 0, 0, 0];
            let params: Vec<u32> = head.iter().chain(&segs).chain(&epis).copied().collect();
            let bufs = [x.buf.get(), &part.buf, &part.scale, y.buf.get(), bias.unwrap_or(dummy), d, mu];
            self.dispatch(self.pipes.matmul(w.format), &params, &bufs, (rows.min(32768), rows.div_ceil(32768), x.rows as u32))?;
        }
        Ok(())
    }

    /// `shaders/wkv_fused.wgsl`: activations and per-channel constants packed by copies into two
    /// buffers (copies are not dispatches), so the kernel needs 4 storage bindings.
    fn wkv_fused_impl(&self, state: &mut GpuState, layer: usize, x: &super::WkvInputs<'_, Self>) -> Result<GpuAct> {
        if state.head_size > 64 {
            return Err(Error::Unsupported(format!("head size {} on the GPU (at most 64)", state.head_size)));
        }
        let (t, c) = (x.r.rows, x.r.cols);
        let act_bytes = (t * c * 4) as u64;
        let vec_bytes = (c * 4) as u64;
        let acts = self.buffer(8 * act_bytes);
        let consts = self.buffer(5 * vec_bytes);
        {
            let dev = &self.ctx.device;
            let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
            let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
            let mut slots = vec![x.r, x.z, x.k, x.v, x.alpha, x.g];
            if let Some((vf, gate)) = x.residual {
                slots.extend([vf, gate]);
            }
            for (i, a) in slots.into_iter().enumerate() {
                enc.copy_buffer_to_buffer(a.buf.get(), 0, acts.get(), i as u64 * act_bytes, act_bytes);
            }
            for (i, v) in [x.k_k, x.k_a, x.r_k, x.ln_w, x.ln_b].into_iter().enumerate() {
                enc.copy_buffer_to_buffer(v, 0, consts.get(), i as u64 * vec_bytes, vec_bytes);
            }
        }
        let out = self.act(t, c);
        let params = [t as u32, state.head_size as u32, c as u32, x.residual.is_some() as u32];
        self.dispatch(&self.pipes.wkv_fused, &params, &[acts.get(), consts.get(), &state.wkv[layer], out.buf.get()], (state.heads as u32, 1, 1))?;
        Ok(out)
    }

    /// Record commands (copies) into the pending encoder.
    fn with_encoder(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        let dev = &self.ctx.device;
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        f(enc);
        Ok(())
    }

    /// The second half of a LoRA: `post(bias + h·Upᵀ)` in one dispatch.
    fn lora_up_impl(&self, h: &GpuAct, up: &GpuMatrix, bias: Option<&wgpu::Buffer>, sigmoid_out: bool) -> Result<GpuAct> {
        let post = match (bias.is_some(), sigmoid_out) {
            (true, true) => Epilogue::BiasSigmoid,
            (true, false) => Epilogue::Bias,
            (false, true) => Epilogue::Sigmoid,
            (false, false) => Epilogue::None,
        };
        self.matmul_epi(h, up, post, bias)
    }

    /// Submit everything recorded so far.
    fn submit(&self) -> Result<()> {
        let enc = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?.take();
        if let Some(enc) = enc {
            self.ctx.queue.submit([enc.finish()]);
        }
        self.ctx.check()
    }

    /// Copy `bytes` from `src` to the host, blocking until the GPU is done (natively).
    #[cfg(target_arch = "wasm32")]
    fn read_buffer(&self, _src: &wgpu::Buffer, _offset: u64, _bytes: u64) -> Result<Vec<u8>> {
        Err(Error::Unsupported("a blocking GPU read-back is impossible in a browser; use the async calls".into()))
    }

    /// Copy `bytes` from `src` to the host, blocking until the GPU is done (natively).
    #[cfg(not(target_arch = "wasm32"))]
    fn read_buffer(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let dev = &self.ctx.device;
        let staging = dev.create_buffer(&wgpu::BufferDescriptor { label: Some("readback"), size: bytes.max(4), usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        {
            let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
            let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") }));
            enc.copy_buffer_to_buffer(src, offset, &staging, 0, bytes);
        }
        self.submit()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::DeviceLost(format!("reading back results failed: {e}"))),
            Err(_) => return Err(Error::DeviceLost("the device never answered the read-back".into())),
        }
        let data = staging.slice(..bytes).get_mapped_range().map_err(|e| Error::DeviceLost(format!("mapping read-back failed: {e}")))?.to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Copy whole buffers (`(buffer, bytes)`) to the host through one staging buffer and one
    /// map, without blocking: in a browser the map completes on the event loop.
    async fn read_buffers_async(&self, srcs: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        self.ctx.check()?;
        let dev = &self.ctx.device;
        let total: u64 = srcs.iter().map(|(_, n)| n.next_multiple_of(4)).sum();
        let staging = dev.create_buffer(&wgpu::BufferDescriptor { label: Some("readback"), size: total.max(4), usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        self.with_encoder(|enc| {
            let mut at = 0;
            for (b, n) in srcs {
                enc.copy_buffer_to_buffer(b, 0, &staging, at, *n);
                at += n.next_multiple_of(4);
            }
        })?;
        self.submit()?;
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..total.max(4)).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx.wait()?;
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.ctx.check().err().unwrap_or_else(|| Error::DeviceLost(format!("reading back results failed: {e}")))),
            Err(_) => return Err(Error::DeviceLost("the device never answered the read-back".into())),
        }
        let out = {
            let map = staging.slice(..total.max(4)).get_mapped_range().map_err(|e| Error::DeviceLost(format!("mapping read-back failed: {e}")))?;
            let mut at = 0usize;
            let mut out = Vec::with_capacity(srcs.len());
            for (_, n) in srcs {
                out.push(map.get(at..at + *n as usize).map(<[u8]>::to_vec).unwrap_or_default());
                at += n.next_multiple_of(4) as usize;
            }
            out
        };
        staging.unmap();
        self.ctx.check()?;
        Ok(out)
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

impl Backend for Gpu {
    type Matrix = GpuMatrix;
    type Vector = wgpu::Buffer;
    type Group = GpuGroup;
    type Act = GpuAct;
    type State = GpuState;

    fn name(&self) -> String {
        "gpu".into()
    }

    fn matrix_bytes(&self, m: &GpuMatrix) -> usize {
        m.bytes
    }

    fn take_dispatch_count(&self) -> Option<usize> {
        Some(self.dispatches.swap(0, Ordering::Relaxed))
    }

    fn adapter_name(&self) -> Option<String> {
        Some(self.ctx.adapter_name.clone())
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let _one_call_at_a_time = self.run.lock();
        f()
    }

    fn matrix(&self, m: HostMatrix) -> Result<GpuMatrix> {
        m.validate()?;
        let (rows, cols) = (m.rows, m.cols);
        let nb = blocks_per_row(cols);
        // Bytes of one packed row, and the row as bytes padded to whole words.
        let (format, row_bytes): (u32, usize) = match &m.data {
            MatrixData::F32(_) => (0, cols * 4),
            MatrixData::F16(_) => (1, cols.div_ceil(2) * 4),
            MatrixData::Int8 { .. } => (2, int8::row_bytes(cols)),
            MatrixData::Q4 { .. } => (3, q4::row_bytes(cols)),
        };
        let row_words = row_bytes.div_ceil(4);
        let max_rows = ((self.ctx.max_binding as usize) / (row_words * 4)).max(1);
        let mut parts = Vec::new();
        let mut bytes_total = 0;
        let mut row0 = 0;
        while row0 < rows {
            let n = max_rows.min(rows - row0);
            let mut data = Vec::with_capacity(n * row_words * 4);
            let mut scales: Vec<u8> = Vec::new();
            for r in row0..row0 + n {
                let start = data.len();
                match &m.data {
                    MatrixData::F32(d) => data.extend(d[r * cols..(r + 1) * cols].iter().flat_map(|x| x.to_le_bytes())),
                    MatrixData::F16(d) => data.extend(d[r * cols..(r + 1) * cols].iter().flat_map(|x| x.to_le_bytes())),
                    MatrixData::Int8 { q, scale } => {
                        data.extend(q[r * row_bytes..(r + 1) * row_bytes].iter().map(|&b| b as u8));
                        scales.extend(scale[r * nb..(r + 1) * nb].iter().flat_map(|x| x.to_le_bytes()));
                    }
                    MatrixData::Q4 { q, scale } => {
                        data.extend_from_slice(&q[r * row_bytes..(r + 1) * row_bytes]);
                        scales.extend(scale[r * nb..(r + 1) * nb].iter().flat_map(|x| x.to_le_bytes()));
                    }
                }
                data.resize(start + row_words * 4, 0);
            }
            bytes_total += data.len() + scales.len();
            let buf = self.upload("weights", &data);
            let scale = self.upload("scales", &scales);
            parts.push(MatrixPart { buf, scale, row0, rows: n });
            row0 += n;
        }
        self.ctx.check()?;
        Ok(GpuMatrix { rows, cols, format, row_words, parts, bytes: bytes_total })
    }

    fn group(&self, mats: Vec<HostMatrix>) -> Result<GpuGroup> {
        if mats.is_empty() || mats.len() > 4 {
            return Err(Error::BadModel(format!("a group of {} matrices (1 to 4 supported)", mats.len())));
        }
        // One format per group (one buffer): mixed float formats are widened to f32.
        let same = mats.iter().all(|m| std::mem::discriminant(&m.data) == std::mem::discriminant(&mats[0].data));
        let mats: Vec<HostMatrix> = if same {
            mats
        } else {
            mats.into_iter().map(|m| HostMatrix { rows: m.rows, cols: m.cols, data: MatrixData::F32(m.to_f32()) }).collect()
        };
        let cols = mats[0].cols;
        let mut ends = Vec::new();
        let mut rows = 0;
        let mut data: Option<MatrixData> = None;
        for m in mats {
            if m.cols != cols {
                return Err(Error::BadModel(format!("grouped matrices of widths {cols} and {}", m.cols)));
            }
            rows += m.rows;
            ends.push(rows);
            data = Some(match (data, m.data) {
                (None, d) => d,
                (Some(MatrixData::F32(mut a)), MatrixData::F32(b)) => { a.extend(b); MatrixData::F32(a) }
                (Some(MatrixData::F16(mut a)), MatrixData::F16(b)) => { a.extend(b); MatrixData::F16(a) }
                (Some(MatrixData::Int8 { mut q, mut scale }), MatrixData::Int8 { q: q2, scale: s2 }) => { q.extend(q2); scale.extend(s2); MatrixData::Int8 { q, scale } }
                (Some(MatrixData::Q4 { mut q, mut scale }), MatrixData::Q4 { q: q2, scale: s2 }) => { q.extend(q2); scale.extend(s2); MatrixData::Q4 { q, scale } }
                _ => return Err(Error::BadModel("grouped matrices are stored in different formats".into())),
            });
        }
        let data = data.ok_or_else(|| Error::BadModel("empty group".into()))?;
        Ok(GpuGroup { mat: self.matrix(HostMatrix { rows, cols, data })?, ends })
    }

    fn group_bytes(&self, g: &GpuGroup) -> usize {
        g.mat.bytes
    }

    fn matmul_mix_group(&self, u: &GpuAct, d: &GpuAct, mus: &[&wgpu::Buffer], g: &GpuGroup, acts: &[LoraMid]) -> Result<Vec<GpuAct>> {
        let n = g.ends.len();
        if mus.len() != n || acts.len() != n {
            return Err(Error::BadInput(format!("{} lerp vectors and {} activations for a group of {n}", mus.len(), acts.len())));
        }
        let (t, c) = (u.rows, u.cols);
        // The lerp vectors side by side, and the segment-major output, one dispatch in between.
        let vec_bytes = (c * 4) as u64;
        let packed = self.buffer(n as u64 * vec_bytes);
        let y = self.act(t, g.mat.rows);
        let mut segs = [u32::MAX; 4];
        let mut epis = [0u32; 4];
        for (i, (&end, act)) in g.ends.iter().zip(acts).enumerate() {
            segs[i] = end as u32;
            epis[i] = match act {
                LoraMid::None => Epilogue::None,
                LoraMid::Tanh => Epilogue::Tanh,
                LoraMid::Sigmoid => Epilogue::Sigmoid,
            } as u32;
        }
        self.with_encoder(|enc| {
            for (i, mu) in mus.iter().enumerate() {
                enc.copy_buffer_to_buffer(mu, 0, packed.get(), i as u64 * vec_bytes, vec_bytes);
            }
        })?;
        self.matmul_record(u, Some((d, packed.get())), &g.mat, Epilogue::None, None, &y, 2, segs, epis)?;
        // Each segment's block is contiguous: copy it out as its own activation.
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for &end in &g.ends {
            let rows = end - start;
            let a = self.act(t, rows);
            let bytes = (t * rows * 4) as u64;
            self.with_encoder(|enc| enc.copy_buffer_to_buffer(y.buf.get(), (t * start * 4) as u64, a.buf.get(), 0, bytes))?;
            out.push(a);
            start = end;
        }
        Ok(out)
    }

    fn lora_up(&self, h: &GpuAct, up: &GpuMatrix, bias: Option<&wgpu::Buffer>, sigmoid_out: bool) -> Result<GpuAct> {
        self.lora_up_impl(h, up, bias, sigmoid_out)
    }

    fn vector(&self, v: Vec<f32>) -> Result<wgpu::Buffer> {
        Ok(self.upload("vector", bytemuck::cast_slice(&v)))
    }

    fn new_state(&self, cfg: &Config, fingerprint: [u8; 32]) -> Result<GpuState> {
        self.state_from_host(&State::zeros(cfg, fingerprint))
    }

    fn state_to_host(&self, s: &GpuState) -> Result<State> {
        let mut layers = Vec::with_capacity(s.att.len());
        for l in 0..s.att.len() {
            let rd = |b: &wgpu::Buffer| self.read_buffer(b, 0, b.size()).map(|v| Self::floats(&v));
            let mut att = rd(&s.att[l])?;
            let mut wkv = rd(&s.wkv[l])?;
            let mut ffn = rd(&s.ffn[l])?;
            att.truncate(s.embd);
            ffn.truncate(s.embd);
            wkv.truncate(s.heads * s.head_size * s.head_size);
            layers.push(LayerState { att_shift: att, wkv, ffn_shift: ffn });
        }
        Ok(State { embd: s.embd, heads: s.heads, head_size: s.head_size, fingerprint: s.fingerprint, layers })
    }

    async fn state_to_host_async(&self, s: &GpuState) -> Result<State> {
        let mut srcs = Vec::with_capacity(3 * s.att.len());
        let (c, w) = ((s.embd * 4) as u64, (s.heads * s.head_size * s.head_size * 4) as u64);
        for l in 0..s.att.len() {
            srcs.extend([(&s.att[l], c), (&s.wkv[l], w), (&s.ffn[l], c)]);
        }
        let bytes = self.read_buffers_async(&srcs).await?;
        let layers = bytes
            .chunks_exact(3)
            .map(|b| LayerState { att_shift: Self::floats(&b[0]), wkv: Self::floats(&b[1]), ffn_shift: Self::floats(&b[2]) })
            .collect();
        Ok(State { embd: s.embd, heads: s.heads, head_size: s.head_size, fingerprint: s.fingerprint, layers })
    }

    fn state_fits(&self, s: &GpuState, cfg: &Config) -> Result<()> {
        let have = [s.att.len(), s.wkv.len(), s.ffn.len(), s.embd, s.heads, s.head_size];
        let want = [cfg.layers, cfg.layers, cfg.layers, cfg.embd, cfg.heads, cfg.head_size];
        if have != want {
            return Err(Error::StateMismatch(format!(
                "state is for L={} C={} H={} N={}, this model is L={} C={} H={} N={}",
                s.att.len(), s.embd, s.heads, s.head_size, cfg.layers, cfg.embd, cfg.heads, cfg.head_size
            )));
        }
        Ok(())
    }

    fn state_from_host(&self, s: &State) -> Result<GpuState> {
        s.check_consistent()?;
        let up = |v: &[f32]| self.upload("state", bytemuck::cast_slice(v));
        Ok(GpuState {
            att: s.layers.iter().map(|l| up(&l.att_shift)).collect(),
            wkv: s.layers.iter().map(|l| up(&l.wkv)).collect(),
            ffn: s.layers.iter().map(|l| up(&l.ffn_shift)).collect(),
            embd: s.embd,
            heads: s.heads,
            head_size: s.head_size,
            fingerprint: s.fingerprint,
        })
    }

    fn act_from_host(&self, rows: usize, cols: usize, data: &[f32]) -> Result<GpuAct> {
        if data.len() != rows * cols {
            return Err(Error::BadInput(format!("{} values for a [{rows}, {cols}] activation", data.len())));
        }
        // Created with its contents, not `queue.write_buffer` into a pooled buffer: such a write
        // lands at the next submit *before* every recorded command, including earlier ones that
        // may still read that pooled buffer's previous contents.
        let buf = self.upload("input", bytemuck::cast_slice(data));
        Ok(GpuAct { buf: Arc::new(PooledBuffer { buf: Some(buf), pool: self.pool.clone() }), rows, cols })
    }

    fn embed(&self, emb: &GpuMatrix, tokens: &[u32]) -> Result<GpuAct> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= emb.rows) {
            return Err(Error::BadInput(format!("token id {t} is out of range (vocabulary has {} rows)", emb.rows)));
        }
        let out = self.act(tokens.len(), emb.cols);
        let tok = self.upload("tokens", bytemuck::cast_slice(tokens));
        let nb = blocks_per_row(emb.cols) as u32;
        for part in &emb.parts {
            // The layout of matmul's Params (shared through common.wgsl's readers); the rest unused.
            let mut params = vec![tokens.len() as u32, emb.cols as u32, part.rows as u32, emb.cols as u32, part.row0 as u32, emb.row_words as u32, nb];
            params.resize(20, 0);
            self.dispatch(self.pipes.embed(emb.format), &params, &[&tok, &part.buf, &part.scale, out.buf.get()], ((emb.cols as u32).div_ceil(64), tokens.len() as u32, 1))?;
        }
        Ok(out)
    }

    fn layer_norm(&self, x: &GpuAct, w: &wgpu::Buffer, b: &wgpu::Buffer) -> Result<GpuAct> {
        let out = self.act(x.rows, x.cols);
        let groups = x.rows as u32;
        let params = [groups, x.cols as u32, x.cols as u32, (crate::config::spec::LN_EPS as f32).to_bits()];
        self.dispatch(&self.pipes.norm, &params, &[x.buf.get(), w, b, out.buf.get()], (groups.min(32768), groups.div_ceil(32768), 1))?;
        Ok(out)
    }

    fn token_shift(&self, u: &GpuAct, state: &mut GpuState, layer: usize, which: Shift) -> Result<GpuAct> {
        let d = self.act(u.rows, u.cols);
        let st = match which {
            Shift::TimeMix => &state.att[layer],
            Shift::ChannelMix => &state.ffn[layer],
        };
        self.dispatch(&self.pipes.token_shift, &[u.rows as u32, u.cols as u32], &[u.buf.get(), st, d.buf.get()], ((u.cols as u32).div_ceil(64), 1, 1))?;
        Ok(d)
    }

    fn lerp(&self, u: &GpuAct, d: &GpuAct, mu: &wgpu::Buffer) -> Result<GpuAct> {
        self.elementwise(ElementOp::Lerp, u, Some(d), None, Some(mu))
    }

    fn matmul(&self, x: &GpuAct, w: &GpuMatrix) -> Result<GpuAct> {
        self.matmul_epi(x, w, Epilogue::None, None)
    }

    fn norm_shift(&self, x: &GpuAct, w: &wgpu::Buffer, b: &wgpu::Buffer, state: &mut GpuState, layer: usize, which: Shift) -> Result<(GpuAct, GpuAct)> {
        let (u, d) = (self.act(x.rows, x.cols), self.act(x.rows, x.cols));
        let st = match which {
            Shift::TimeMix => &state.att[layer],
            Shift::ChannelMix => &state.ffn[layer],
        };
        let t = x.rows as u32;
        self.dispatch(&self.pipes.norm_shift, &[t, x.cols as u32], &[x.buf.get(), w, b, st, u.buf.get(), d.buf.get()], (t.min(32768), t.div_ceil(32768), 1))?;
        // The state keeps the last token's u: a copy recorded after the dispatch.
        let bytes = (x.cols * 4) as u64;
        let dev = &self.ctx.device;
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        enc.copy_buffer_to_buffer(u.buf.get(), (x.rows as u64).saturating_sub(1) * bytes, st, 0, bytes);
        Ok((u, d))
    }

    fn wkv_fused(&self, state: &mut GpuState, layer: usize, x: &super::WkvInputs<'_, Self>) -> Option<Result<GpuAct>> {
        Some(self.wkv_fused_impl(state, layer, x))
    }

    fn matmul_add(&self, x: &GpuAct, w: &GpuMatrix, acc: &mut GpuAct) -> Result<()> {
        // The residual is read and written by the same invocation, in one dispatch. The stream
        // is never shared with a clone (only v_first is cloned), so updating it in place is safe.
        self.matmul_into(x, None, w, Epilogue::Accumulate, None, acc)
    }

    fn matmul_relu_sq(&self, x: &GpuAct, w: &GpuMatrix) -> Result<GpuAct> {
        self.matmul_epi(x, w, Epilogue::ReluSq, None)
    }

    fn matmul_mix_relu_sq(&self, u: &GpuAct, d: &GpuAct, mu: &wgpu::Buffer, w: &GpuMatrix) -> Result<GpuAct> {
        let y = self.act(u.rows, w.rows);
        self.matmul_into(u, Some((d, mu)), w, Epilogue::ReluSq, None, &y)?;
        Ok(y)
    }

    fn lora(&self, x: &GpuAct, down: &GpuMatrix, mid: LoraMid, up: &GpuMatrix, bias: Option<&wgpu::Buffer>, sigmoid_out: bool) -> Result<GpuAct> {
        // Two dispatches: the activations ride in the products' epilogues.
        let mid = match mid {
            LoraMid::None => Epilogue::None,
            LoraMid::Tanh => Epilogue::Tanh,
            LoraMid::Sigmoid => Epilogue::Sigmoid,
        };
        let h = self.matmul_epi(x, down, mid, None)?;
        self.lora_up_impl(&h, up, bias, sigmoid_out)
    }

    fn removal_key(&self, k: &GpuAct, k_k: &wgpu::Buffer, head_size: usize) -> Result<GpuAct> {
        let out = self.act(k.rows, k.cols);
        let groups = (k.rows * k.cols / head_size) as u32;
        if groups > 65535 {
            return Err(Error::BadInput(format!("{groups} heads × tokens in one removal_key call (at most 65535); send fewer tokens")));
        }
        self.dispatch(&self.pipes.removal_key, &[groups, head_size as u32, k.cols as u32], &[k.buf.get(), k_k, out.buf.get()], (groups, 1, 1))?;
        Ok(out)
    }

    fn write_key(&self, k: &GpuAct, alpha: &GpuAct, k_a: &wgpu::Buffer) -> Result<GpuAct> {
        self.elementwise(ElementOp::WriteKey, k, Some(alpha), None, Some(k_a))
    }

    fn value_residual(&self, v: &GpuAct, v_first: &GpuAct, gate: &GpuAct) -> Result<GpuAct> {
        self.elementwise(ElementOp::ValueResidual, v, Some(v_first), Some(gate), None)
    }

    fn wkv(&self, state: &mut GpuState, layer: usize, r: &GpuAct, z: &GpuAct, k: &GpuAct, v: &GpuAct, kk: &GpuAct, alpha: &GpuAct) -> Result<GpuAct> {
        if state.head_size > 64 {
            return Err(Error::Unsupported(format!("head size {} on the GPU (at most 64)", state.head_size)));
        }
        let y = self.act(r.rows, r.cols);
        let params = [r.rows as u32, state.head_size as u32, r.cols as u32];
        let bufs = [r.buf.get(), z.buf.get(), k.buf.get(), v.buf.get(), kk.buf.get(), alpha.buf.get(), &state.wkv[layer], y.buf.get()];
        self.dispatch(&self.pipes.wkv, &params, &bufs, (state.heads as u32, 1, 1))?;
        Ok(y)
    }

    fn group_norm_bonus_gate(&self, y: &GpuAct, r: &GpuAct, k: &GpuAct, v: &GpuAct, r_k: &wgpu::Buffer, ln_w: &wgpu::Buffer, ln_b: &wgpu::Buffer, g: &GpuAct, head_size: usize) -> Result<GpuAct> {
        let out = self.act(y.rows, y.cols);
        let groups = (y.rows * y.cols / head_size) as u32;
        if groups > 65535 {
            return Err(Error::BadInput(format!("{groups} heads × tokens in one group-norm call (at most 65535); send fewer tokens")));
        }
        // r_k ‖ ln_w ‖ ln_b in one binding (copies, not dispatches).
        let c = (y.cols * 4) as u64;
        let packed = self.buffer(3 * c);
        {
            let dev = &self.ctx.device;
            let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
            let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
            for (i, v) in [r_k, ln_w, ln_b].into_iter().enumerate() {
                enc.copy_buffer_to_buffer(v, 0, packed.get(), i as u64 * c, c);
            }
        }
        let bufs = [y.buf.get(), r.buf.get(), k.buf.get(), v.buf.get(), g.buf.get(), packed.get(), out.buf.get()];
        self.dispatch(&self.pipes.gn_bonus_gate, &[groups, head_size as u32, y.cols as u32], &bufs, (groups, 1, 1))?;
        Ok(out)
    }

    fn relu_sq(&self, x: &GpuAct) -> Result<GpuAct> {
        self.elementwise(ElementOp::ReluSq, x, None, None, None)
    }

    fn add_assign(&self, x: &mut GpuAct, y: &GpuAct) -> Result<()> {
        // A buffer cannot be read and written in one dispatch: write the sum to a new one.
        *x = self.elementwise(ElementOp::Add, x, Some(y), None, None)?;
        Ok(())
    }

    fn last_row(&self, x: &GpuAct) -> Result<GpuAct> {
        let out = self.act(1, x.cols);
        let bytes = (x.cols * 4) as u64;
        let offset = ((x.rows.max(1) - 1) * x.cols * 4) as u64;
        let dev = &self.ctx.device;
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        enc.copy_buffer_to_buffer(x.buf.get(), offset, out.buf.get(), 0, bytes);
        Ok(out)
    }

    async fn read_async(&self, x: &GpuAct) -> Result<Vec<f32>> {
        let bytes = self.read_buffers_async(&[(x.buf.get(), (x.rows * x.cols * 4) as u64)]).await?;
        Ok(bytes.first().map(|b| Self::floats(b)).unwrap_or_default())
    }

    fn read_into(&self, x: &GpuAct, out: &mut Vec<f32>) -> Result<()> {
        let bytes = self.read_buffer(x.buf.get(), 0, (x.rows * x.cols * 4) as u64)?;
        out.clear();
        out.extend(Self::floats(&bytes));
        Ok(())
    }
}
