//! Sampling on the device (`shaders/sample.wgsl`): one dispatch picks the next token, so a
//! decoded token reads back 4 bytes instead of the vocabulary's logits. The per-generation
//! options go in the (cached) parameter block; the per-token draw, the bias and the grammar's
//! mask go in pooled upload buffers, so nothing is created per token.

use super::*;
use crate::backend::SampleJob;

impl Gpu {
    pub(super) fn sample_impl(&self, logits: &GpuAct, occ: &mut GpuAct, job: &SampleJob<'_>) -> Result<GpuAct> {
        let v = logits.cols;
        if logits.rows != 1 || occ.rows * occ.cols != v || v == 0 || v >= u32::MAX as usize / 2 {
            return Err(Error::BadInput(format!("sampling [{}, {v}] logits with {} occurrence counts", logits.rows, occ.rows * occ.cols)));
        }
        if let Some(m) = job.mask {
            if m.len() < v.div_ceil(32) {
                return Err(Error::BadInput(format!("a token mask of {} bits for a vocabulary of {v}", m.len() * 32)));
            }
        }
        let o = job.opts;
        o.validate()?;
        let greedy = o.temperature == 0.0;
        // A subnormal temperature would make 1/T infinite (and (v - max)/T NaN for the top token).
        let inv_temp = if greedy { 0.0 } else { (1.0 / o.temperature).min(f32::MAX) };
        let params = [
            v as u32,
            o.top_k.min(u32::MAX as usize) as u32,
            greedy as u32,
            job.mask.is_some() as u32,
            inv_temp.to_bits(),
            o.top_p.to_bits(),
            o.presence_penalty.to_bits(),
            o.frequency_penalty.to_bits(),
            o.penalty_decay.to_bits(),
            (o.top_p < 1.0) as u32,
        ];
        let mut words = vec![job.uniform.to_bits(), job.bias.len() as u32];
        for &(id, b) in job.bias {
            words.extend([id, b.to_bits()]);
        }
        let draw = self.upload_pooled(bytemuck::cast_slice(&words));
        let mask = job.mask.map(|m| self.upload_pooled(bytemuck::cast_slice(m)));
        let scratch = self.buffer(2 * v as u64 * 4);
        let out = self.act(1, 1);
        let bufs = [logits.buf.get(), draw.get(), mask.as_ref().map(|m| m.get()).unwrap_or(&self.dummy), occ.buf.get(), scratch.get(), out.buf.get()];
        self.dispatch(&self.pipes.sample, &params, &bufs, (1, 1, 1))?;
        Ok(out)
    }
}
