//! Read-backs: copying device buffers to the host through one reused staging buffer and one
//! map: blocking natively, or on the event loop in the browser.

use super::*;

impl Gpu {
    /// Copy whole buffers (`(buffer, bytes)`) to the host, blocking until the GPU is done.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn read_buffers(&self, srcs: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        pollster::block_on(self.read_buffers_async(srcs))
    }

    /// In a browser a blocking read-back is impossible.
    #[cfg(target_arch = "wasm32")]
    pub(super) fn read_buffers(&self, _srcs: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        Err(Error::Unsupported("a blocking GPU read-back is impossible in a browser; use the async calls".into()))
    }

    /// Copy whole buffers (`(buffer, bytes)`) to the host through one staging buffer and one
    /// map, without blocking: in a browser the map completes on the event loop (natively the
    /// device is polled until it is done, so the future is ready when awaited).
    pub(super) async fn read_buffers_async(&self, srcs: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        self.ctx.check()?;
        let total: u64 = srcs.iter().map(|(_, n)| n.next_multiple_of(4)).sum::<u64>().max(4);
        let staging = self.cache.take_staging(&self.ctx.device, total, &self.counts);
        self.with_encoder(|enc| {
            let mut at = 0;
            for (b, n) in srcs {
                enc.copy_buffer_to_buffer(b, 0, &staging, at, *n);
                at += n.next_multiple_of(4);
            }
        })?;
        self.submit()?;
        self.counts.readback_bytes.fetch_add(total, Ordering::Relaxed);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..total).map_async(wgpu::MapMode::Read, move |r| {
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
            let map = staging.slice(..total).get_mapped_range().map_err(|e| Error::DeviceLost(format!("mapping read-back failed: {e}")))?;
            let mut at = 0usize;
            let mut out = Vec::with_capacity(srcs.len());
            for (_, n) in srcs {
                out.push(map.get(at..at + *n as usize).map(<[u8]>::to_vec).unwrap_or_default());
                at += n.next_multiple_of(4) as usize;
            }
            out
        };
        staging.unmap();
        // Only a buffer that was mapped and unmapped cleanly goes back for reuse.
        self.cache.put_staging(staging);
        self.ctx.check()?;
        Ok(out)
    }

    pub(super) fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}
