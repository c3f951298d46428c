//! Read-backs: copying device buffers to the host, blocking natively or without blocking in the
//! browser (one `mapAsync` round trip for several buffers).

use super::*;

impl Gpu {
    /// Copy `bytes` from `src` to the host, blocking until the GPU is done (natively).
    #[cfg(target_arch = "wasm32")]
    pub(super) fn read_buffer(&self, _src: &wgpu::Buffer, _offset: u64, _bytes: u64) -> Result<Vec<u8>> {
        Err(Error::Unsupported("a blocking GPU read-back is impossible in a browser; use the async calls".into()))
    }

    /// Copy `bytes` from `src` to the host, blocking until the GPU is done (natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn read_buffer(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let dev = &self.ctx.device;
        let staging = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
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
    pub(super) async fn read_buffers_async(&self, srcs: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        self.ctx.check()?;
        let dev = &self.ctx.device;
        let total: u64 = srcs.iter().map(|(_, n)| n.next_multiple_of(4)).sum();
        let staging = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
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

    pub(super) fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}
