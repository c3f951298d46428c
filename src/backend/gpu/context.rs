//! The wgpu device: adapter choice, the limits the model needs, and errors as values.

use crate::error::{Error, Result};

/// A device with its queue and the facts ops need.
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_name: String,
    pub max_binding: u64,
    /// The first uncaptured wgpu error (validation, out of memory), reported by [`Context::check`].
    errors: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Context {
    /// Open the best adapter with its own limits (wgpu's defaults cap storage bindings at
    /// 128 MiB and buffers at 256 MiB).
    pub fn new() -> Result<Context> {
        pollster::block_on(Self::new_async())
    }

    pub async fn new_async() -> Result<Context> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| Error::NoGpu(format!("no GPU adapter ({e}); use --backend cpu")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gander"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoGpu(format!("the GPU adapter {} refused a device ({e})", info.name)))?;
        let errors: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let sink = errors.clone();
        // Errors become values: wgpu's default handler would panic.
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string().split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }));
        Ok(Context { device, queue, adapter_name: info.name, max_binding: limits.max_storage_buffer_binding_size as u64, errors })
    }
}

impl Context {
    /// Wait until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::DeviceLost(format!("waiting for the GPU failed: {e}")))
    }

    /// Report the first GPU error raised since the last check.
    pub fn check(&self) -> Result<()> {
        match self.errors.lock().ok().and_then(|mut e| e.take()) {
            Some(msg) => Err(Error::DeviceLost(msg)),
            None => Ok(()),
        }
    }
}
