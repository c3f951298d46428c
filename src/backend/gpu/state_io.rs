//! The recurrent state between host and device: upload, the blocking and async downloads, and
//! the shape check before a forward call.

use super::*;

impl Gpu {
    /// The state in one read-back (one submit), blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn state_down(&self, s: &GpuState) -> Result<State> {
        pollster::block_on(self.state_down_async(s))
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn state_down(&self, _s: &GpuState) -> Result<State> {
        Err(Error::Unsupported("a blocking GPU read-back is impossible in a browser; use the async calls".into()))
    }

    pub(super) async fn state_down_async(&self, s: &GpuState) -> Result<State> {
        let mut srcs = Vec::with_capacity(3 * s.att.len());
        let (c, w) = ((s.embd * 4) as u64, (s.heads * s.head_size * s.head_size * 4) as u64);
        for l in 0..s.att.len() {
            srcs.extend([(&s.att[l], c), (&s.wkv[l], w), (&s.ffn[l], c)]);
        }
        let bytes = self.read_buffers_async(&srcs).await?;
        let layers =
            bytes.chunks_exact(3).map(|b| LayerState { att_shift: Self::floats(&b[0]), wkv: Self::floats(&b[1]), ffn_shift: Self::floats(&b[2]) }).collect();
        Ok(State { embd: s.embd, heads: s.heads, head_size: s.head_size, fingerprint: s.fingerprint, layers })
    }

    pub(super) fn check_state(&self, s: &GpuState, cfg: &Config) -> Result<()> {
        let have = [s.att.len(), s.wkv.len(), s.ffn.len(), s.embd, s.heads, s.head_size];
        let want = [cfg.layers, cfg.layers, cfg.layers, cfg.embd, cfg.heads, cfg.head_size];
        if have != want {
            return Err(Error::StateMismatch(format!(
                "state is for L={} C={} H={} N={}, this model is L={} C={} H={} N={}",
                s.att.len(),
                s.embd,
                s.heads,
                s.head_size,
                cfg.layers,
                cfg.embd,
                cfg.heads,
                cfg.head_size
            )));
        }
        Ok(())
    }

    pub(super) fn state_up(&self, s: &State) -> Result<GpuState> {
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
            binds: self.cache.binds.clone(),
        })
    }
}
