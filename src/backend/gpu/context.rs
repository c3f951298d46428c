//! The wgpu device: adapter choice, the limits the model needs, and errors as values.

use crate::error::{Error, Result};

/// A device with its queue and the facts ops need.
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_name: String,
    pub max_binding: u64,
    /// The first uncaptured wgpu error (validation, out of memory) or the device-lost message,
    /// reported by [`Context::check`].
    errors: Sink,
    /// Set once the device is lost: every later call fails fast with `DEVICE_LOST`.
    lost: Sink,
}

type Sink = std::sync::Arc<std::sync::Mutex<Option<String>>>;

fn put(sink: &Sink, msg: String) {
    if let Ok(mut slot) = sink.lock() {
        slot.get_or_insert_with(|| msg.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

impl Context {
    /// Open the best adapter with its own limits (wgpu's defaults cap storage bindings at
    /// 128 MiB and buffers at 256 MiB).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Context> {
        pollster::block_on(Self::new_async())
    }

    pub async fn new_async() -> Result<Context> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| Error::NoGpu(format!("no GPU adapter ({e}); use the CPU backend")))?;
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
        let errors = Sink::default();
        let lost = Sink::default();
        // Errors become values: wgpu's default handler would panic.
        let sink = errors.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| put(&sink, e.to_string())));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| put(&sink, format!("{reason:?}: {msg}")));
        let adapter_name = if info.name.is_empty() { format!("{:?} adapter", info.backend) } else { info.name };
        Ok(Context { device, queue, adapter_name, max_binding: limits.max_storage_buffer_binding_size as u64, errors, lost })
    }
}

impl Context {
    /// Wait until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| Error::DeviceLost(format!("waiting for the GPU failed: {e}")))
    }

    /// Report a lost device (for good) or the first GPU error raised since the last check.
    pub fn check(&self) -> Result<()> {
        if let Some(msg) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost(msg));
        }
        match self.errors.lock().ok().and_then(|mut e| e.take()) {
            Some(msg) => Err(Error::DeviceLost(msg)),
            None => Ok(()),
        }
    }

    /// Destroy the device, as a driver reset or a lost GPU would: the fault tests use it.
    pub fn simulate_loss(&self) {
        put(&self.lost, "the device was destroyed (simulated loss)".into());
        self.device.destroy();
    }
}
