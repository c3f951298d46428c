//! Recording work: one dispatch (its parameter buffer and bind group), the ops built from
//! dispatches (element-wise ops, matrix products with their epilogues, the fused WKV), and the
//! one submission of everything recorded.

use super::*;

/// What `shaders/matmul.wgsl` applies to each result (values match its `epi` switch).
#[derive(Clone, Copy)]
pub(super) enum Epilogue {
    None = 0,
    Tanh = 1,
    Sigmoid = 2,
    Bias = 3,
    BiasSigmoid = 4,
    Accumulate = 5,
    ReluSq = 6,
}

impl Gpu {
    /// Record one dispatch of `pipe` with a uniform block `params` and storage `buffers`.
    pub(super) fn dispatch(&self, pipe: &wgpu::ComputePipeline, params: &[u32], buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
        let dev = &self.ctx.device;
        let ubuf = self.cache.params(dev, params, &self.counts);
        let bufs: Vec<wgpu::Buffer> = std::iter::once(ubuf).chain(buffers.iter().map(|&b| b.clone())).collect();
        let bg = self.cache.bind_group(dev, pipe, bufs, &self.counts);
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        self.counts.dispatches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn elementwise(&self, op: ElementOp, a: &GpuAct, b: Option<&GpuAct>, c: Option<&GpuAct>, vec: Option<&wgpu::Buffer>) -> Result<GpuAct> {
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
    pub(super) fn matmul_epi(&self, x: &GpuAct, w: &GpuMatrix, epi: Epilogue, bias: Option<&wgpu::Buffer>) -> Result<GpuAct> {
        let y = self.act(x.rows, w.rows);
        self.matmul_into(x, None, w, epi, bias, &y)?;
        Ok(y)
    }

    /// Record `y = epi(in·Wᵀ)`, `in = x` or `x + d ⊙ mu` when `mix` is given (with
    /// `Epilogue::Accumulate`, `y += in·Wᵀ`).
    pub(super) fn matmul_into(
        &self,
        x: &GpuAct,
        mix: Option<(&GpuAct, &wgpu::Buffer)>,
        w: &GpuMatrix,
        epi: Epilogue,
        bias: Option<&wgpu::Buffer>,
        y: &GpuAct,
    ) -> Result<()> {
        let mode = if mix.is_some() { 1 } else { 0 };
        self.matmul_record(x, mix, w, epi, bias, y, mode, [0; 4], [0; 4])
    }

    /// The one place that fills `shaders/matmul.wgsl`'s parameters and records its dispatches.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn matmul_record(
        &self,
        x: &GpuAct,
        mix: Option<(&GpuAct, &wgpu::Buffer)>,
        w: &GpuMatrix,
        epi: Epilogue,
        bias: Option<&wgpu::Buffer>,
        y: &GpuAct,
        mode: u32,
        segs: [u32; 4],
        epis: [u32; 4],
    ) -> Result<()> {
        let nb = blocks_per_row(w.cols) as u32;
        let dummy = &self.dummy;
        let (d, mu) = mix.map(|(d, mu)| (d.buf.get(), mu)).unwrap_or((dummy, dummy));
        for part in &w.parts {
            let rows = part.rows as u32;
            let head = [x.rows as u32, w.cols as u32, rows, w.rows as u32, part.row0 as u32, w.row_words as u32, nb, epi as u32, mode, 0, 0, 0];
            let params: Vec<u32> = head.iter().chain(&segs).chain(&epis).copied().collect();
            let bufs = [x.buf.get(), &part.buf, &part.scale, y.buf.get(), bias.unwrap_or(dummy), d, mu];
            let tile = if x.rows > 1 { pipelines::PREFILL_TILE } else { 1 };
            let tiles = (x.rows as u32).div_ceil(tile);
            self.dispatch(self.pipes.matmul(w.format, x.rows), &params, &bufs, (rows.min(32768), rows.div_ceil(32768), tiles))?;
        }
        Ok(())
    }

    /// `shaders/wkv_fused.wgsl`: activations and per-channel constants packed by copies into two
    /// buffers (copies are not dispatches), so the kernel needs 4 storage bindings.
    pub(super) fn wkv_fused_impl(&self, state: &mut GpuState, layer: usize, x: &crate::backend::WkvInputs<'_, Self>) -> Result<GpuAct> {
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
    pub(super) fn with_encoder(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        let dev = &self.ctx.device;
        let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
        let enc = guard.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }));
        f(enc);
        Ok(())
    }

    /// The second half of a LoRA: `post(bias + h·Upᵀ)` in one dispatch.
    pub(super) fn lora_up_impl(&self, h: &GpuAct, up: &GpuMatrix, bias: Option<&wgpu::Buffer>, sigmoid_out: bool) -> Result<GpuAct> {
        let post = match (bias.is_some(), sigmoid_out) {
            (true, true) => Epilogue::BiasSigmoid,
            (true, false) => Epilogue::Bias,
            (false, true) => Epilogue::Sigmoid,
            (false, false) => Epilogue::None,
        };
        self.matmul_epi(h, up, post, bias)
    }

    /// Submit everything recorded so far.
    pub(super) fn submit(&self) -> Result<()> {
        // The upload buffers dropped so far were last used by this encoder or earlier ones, so
        // they may be reused once it is submitted; ones dropped after the take (another thread
        // recording into the next encoder) wait for the next submit. Lock order: encoder, pool.
        let (enc, held) = {
            let mut guard = self.encoder.lock().map_err(|_| Error::DeviceLost("encoder lock poisoned".into()))?;
            (guard.take(), self.take_held())
        };
        if let Some(enc) = enc {
            self.ctx.queue.submit([enc.finish()]);
            self.counts.submits.fetch_add(1, Ordering::Relaxed);
        }
        self.release(held);
        self.ctx.check()
    }
}
