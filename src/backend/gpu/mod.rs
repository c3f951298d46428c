//! The GPU backend: the RWKV-7 ops as WGSL compute shaders (`shaders/`, one file per op)
//! through wgpu: natively on Vulkan (lavapipe in tests), and on WebGPU in the browser (the wasm
//! build; SwiftShader in the headless-Chromium tests).
//!
//! Every op records one or more dispatches into a single command encoder; nothing is submitted
//! until a result is read back ([`Backend::read_into`]), so a forward call is one submission.
//! Activations live in pooled storage buffers; weights of every format are `array<u32>` with the
//! format as a pipeline-override constant (f16 is packed two per word, so `shader-f16` is not
//! needed); a matrix larger than the adapter's storage-binding limit is split by rows.
//! The CPU backend is the reference: tests/gpu.rs checks every op and the whole model against it.
//!
//! Files, one job each: `context` (adapter, device, limits), `pipelines` (shader sources and
//! pipelines), `buffers` (device memory and its pool), `packing` (weights onto the device),
//! `record` (dispatches and the ops built from them), `readback` (device to host), `state_io`
//! (the state both ways); this file holds the handle and the [`Backend`] impl, which maps the
//! trait's ops onto those.

mod buffers;
mod cache;
pub mod context;
mod packing;
pub mod pipelines;
mod readback;
mod record;
mod sample;
mod state_io;

use super::{Backend, DeviceCounters, HostMatrix, LoraMid, MatrixData, Shift};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::quant::{blocks_per_row, int8, q4};
use crate::state::{LayerState, State};
pub use buffers::{GpuAct, GpuGroup, GpuMatrix, GpuState, MatrixPart, PooledBuffer};
use buffers::{Pool, STORAGE};
use cache::Cache;
use context::Context;
use pipelines::{ElementOp, Pipelines};
use record::Epilogue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The GPU backend: a cheap handle; clones share one device (several models can use it).
#[derive(Clone)]
pub struct Gpu(Arc<Shared>);

impl std::ops::Deref for Gpu {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The device's counters (see [`DeviceCounters`]).
#[derive(Default)]
pub(super) struct Counts {
    dispatches: AtomicU64,
    bind_groups: AtomicU64,
    buffers: AtomicU64,
    submits: AtomicU64,
    readback_bytes: AtomicU64,
}

impl Counts {
    fn take(&self) -> DeviceCounters {
        let t = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        DeviceCounters {
            dispatches: t(&self.dispatches),
            bind_groups_created: t(&self.bind_groups),
            buffers_created: t(&self.buffers),
            submits: t(&self.submits),
            readback_bytes: t(&self.readback_bytes),
        }
    }
}

/// What the handles of one device share.
pub struct Shared {
    pub ctx: Context,
    pipes: Pipelines,
    encoder: Mutex<Option<wgpu::CommandEncoder>>,
    pool: Pool,
    cache: Cache,
    counts: Counts,
    dummy: wgpu::Buffer,
    /// Held for a whole forward call: one device runs one call at a time. (Interleaving two
    /// threads' calls on one device gave nondeterministic results on lavapipe; serialising them
    /// is the documented behaviour until that is understood.)
    run: Mutex<()>,
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
        Ok(Gpu(Arc::new(Shared {
            ctx,
            pipes,
            encoder: Mutex::new(None),
            pool: Arc::default(),
            cache: Cache::default(),
            counts: Counts::default(),
            dummy,
            run: Mutex::new(()),
        })))
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

    fn take_counters(&self) -> Option<DeviceCounters> {
        Some(self.counts.take())
    }

    fn adapter_name(&self) -> Option<String> {
        Some(self.ctx.adapter_name.clone())
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let _one_call_at_a_time = self.run.lock();
        f()
    }

    fn matrix(&self, m: HostMatrix) -> Result<GpuMatrix> {
        self.pack_matrix(m)
    }

    fn group(&self, mats: Vec<HostMatrix>) -> Result<GpuGroup> {
        self.pack_group(mats)
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
        self.state_down(s)
    }

    async fn state_to_host_async(&self, s: &GpuState) -> Result<State> {
        self.state_down_async(s).await
    }

    fn state_fits(&self, s: &GpuState, cfg: &Config) -> Result<()> {
        self.check_state(s, cfg)
    }

    fn state_from_host(&self, s: &State) -> Result<GpuState> {
        self.state_up(s)
    }

    fn act_from_host(&self, rows: usize, cols: usize, data: &[f32]) -> Result<GpuAct> {
        if data.len() != rows * cols {
            return Err(Error::BadInput(format!("{} values for a [{rows}, {cols}] activation", data.len())));
        }
        // An upload buffer, never an activation's: see `PoolInner::uploads`.
        Ok(GpuAct { buf: self.upload_pooled(bytemuck::cast_slice(data)), rows, cols })
    }

    fn embed(&self, emb: &GpuMatrix, tokens: &[u32]) -> Result<GpuAct> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= emb.rows) {
            return Err(Error::BadInput(format!("token id {t} is out of range (vocabulary has {} rows)", emb.rows)));
        }
        let out = self.act(tokens.len(), emb.cols);
        let tok = self.upload_pooled(bytemuck::cast_slice(tokens));
        let nb = blocks_per_row(emb.cols) as u32;
        for part in &emb.parts {
            // The layout of matmul's Params (shared through common.wgsl's readers); the rest unused.
            let mut params = vec![tokens.len() as u32, emb.cols as u32, part.rows as u32, emb.cols as u32, part.row0 as u32, emb.row_words as u32, nb];
            params.resize(20, 0);
            self.dispatch(
                self.pipes.embed(emb.format),
                &params,
                &[tok.get(), &part.buf, &part.scale, out.buf.get()],
                ((emb.cols as u32).div_ceil(64), tokens.len() as u32, 1),
            )?;
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

    fn group_norm_bonus_gate(
        &self,
        y: &GpuAct,
        r: &GpuAct,
        k: &GpuAct,
        v: &GpuAct,
        r_k: &wgpu::Buffer,
        ln_w: &wgpu::Buffer,
        ln_b: &wgpu::Buffer,
        g: &GpuAct,
        head_size: usize,
    ) -> Result<GpuAct> {
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

    fn mul_assign(&self, x: &mut GpuAct, y: &GpuAct) -> Result<()> {
        if (x.rows, x.cols) != (y.rows, y.cols) {
            return Err(Error::BadInput(format!("[{}, {}] ⊙ [{}, {}]", x.rows, x.cols, y.rows, y.cols)));
        }
        // As in add_assign: the product goes to a new buffer.
        *x = self.elementwise(ElementOp::Mul, x, Some(y), None, None)?;
        Ok(())
    }

    fn token_matvec(&self, a: &GpuAct, m: &GpuAct) -> Result<GpuAct> {
        let r = a.cols;
        if m.rows != a.rows || Some(m.cols) != r.checked_mul(r) {
            return Err(Error::BadInput(format!("[{}, {r}] times [{}, {}] as {r}×{r} matrices", a.rows, m.rows, m.cols)));
        }
        let out = self.act(a.rows, r);
        let params = [a.rows as u32, r as u32];
        self.dispatch(&self.pipes.token_matvec, &params, &[a.buf.get(), m.buf.get(), out.buf.get()], ((r as u32).div_ceil(64), a.rows as u32, 1))?;
        Ok(out)
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

    fn samples_on_device(&self) -> bool {
        true
    }

    fn sample(&self, logits: &GpuAct, occurrences: &mut GpuAct, job: &super::SampleJob<'_>) -> Result<GpuAct> {
        self.sample_impl(logits, occurrences, job)
    }

    async fn read_async(&self, x: &GpuAct) -> Result<Vec<f32>> {
        let bytes = self.read_buffers_async(&[(x.buf.get(), (x.rows * x.cols * 4) as u64)]).await?;
        Ok(bytes.first().map(|b| Self::floats(b)).unwrap_or_default())
    }

    fn read_into(&self, x: &GpuAct, out: &mut Vec<f32>) -> Result<()> {
        let bytes = self.read_buffers(&[(x.buf.get(), (x.rows * x.cols * 4) as u64)])?;
        out.clear();
        out.extend(bytes.first().map(|b| Self::floats(b)).unwrap_or_default());
        Ok(())
    }
}
