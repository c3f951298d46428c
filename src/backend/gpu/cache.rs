//! What is built once and reused, so that a decoded token creates nothing on the device:
//! uniform parameter buffers by their contents, bind groups by pipeline and buffers, read-back
//! staging buffers by size; and the counters that show it (`gander bench --backend gpu`).
//!
//! A decode step asks for the same parameters and, because the activation pool hands out its
//! buffers in a fixed order (`buffers.rs`), the same buffers every token: after the first token
//! every lookup hits. Cached bind groups hold their buffers, so a dropped state removes its
//! entries ([`BindCache::forget`]) and a dropped weight matrix (a dropped model) empties the
//! bind-group cache, freeing its vectors too; the maps are emptied if they ever
//! grow past [`CACHE_MAX`] entries (a long run of prompts of different lengths), which costs
//! only a rebuild.

use super::Counts;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Entries a map may hold before it is emptied. A decode step of a 32-layer model uses about
/// 400 bind groups; prefill adds a set per distinct chunk length.
pub(super) const CACHE_MAX: usize = 8192;

type BindKey = (wgpu::ComputePipeline, Vec<wgpu::Buffer>);

/// Bind groups by pipeline and buffers (shared with the weights and states that must remove
/// their entries when dropped).
#[derive(Default)]
pub struct BindCache(Mutex<HashMap<BindKey, wgpu::BindGroup>>);

impl BindCache {
    /// Drop every entry.
    pub(super) fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    /// Drop every entry that binds one of `bufs`, so that their memory can be freed.
    pub(super) fn forget(&self, bufs: &[&wgpu::Buffer]) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|(_, key), _| !key.iter().any(|b| bufs.contains(&b)));
        }
    }
}

/// The caches of one device.
#[derive(Default)]
pub(super) struct Cache {
    params: Mutex<HashMap<Vec<u32>, wgpu::Buffer>>,
    pub(super) binds: Arc<BindCache>,
    staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

impl Cache {
    /// The uniform buffer holding `params` (padded to 16 bytes), created on first use.
    pub(super) fn params(&self, dev: &wgpu::Device, params: &[u32], counts: &Counts) -> wgpu::Buffer {
        let mut p = params.to_vec();
        p.resize(params.len().next_multiple_of(4).max(4), 0);
        let mut map = self.params.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(&p) {
            return b.clone();
        }
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        counts.buffers.fetch_add(1, Ordering::Relaxed);
        let b = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&p),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        map.insert(p, b.clone());
        b
    }

    /// The bind group of `pipe` with `bufs` at bindings 0, 1, …, created on first use.
    pub(super) fn bind_group(&self, dev: &wgpu::Device, pipe: &wgpu::ComputePipeline, bufs: Vec<wgpu::Buffer>, counts: &Counts) -> wgpu::BindGroup {
        let mut map = self.binds.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (pipe.clone(), bufs);
        if let Some(bg) = map.get(&key) {
            return bg.clone();
        }
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        counts.bind_groups.fetch_add(1, Ordering::Relaxed);
        let entries: Vec<wgpu::BindGroupEntry> =
            key.1.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() }).collect();
        let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipe.get_bind_group_layout(0), entries: &entries });
        map.insert(key, bg.clone());
        bg
    }

    /// A mappable buffer of at least `bytes` for a read-back; give it back with [`Cache::put_staging`].
    pub(super) fn take_staging(&self, dev: &wgpu::Device, bytes: u64, counts: &Counts) -> wgpu::Buffer {
        let size = bytes.max(16).next_multiple_of(16);
        if let Some(b) = self.staging.lock().ok().and_then(|mut m| m.get_mut(&size).and_then(Vec::pop)) {
            return b;
        }
        counts.buffers.fetch_add(1, Ordering::Relaxed);
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Return an unmapped staging buffer for reuse.
    pub(super) fn put_staging(&self, b: wgpu::Buffer) {
        if let Ok(mut m) = self.staging.lock() {
            m.entry(b.size()).or_default().push(b);
        }
    }
}
