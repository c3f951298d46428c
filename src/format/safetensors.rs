//! `.safetensors` files: official names and orientation (spec §1.3), bf16/fp16/fp32.
//!
//! The header is parsed and validated by the `safetensors` crate (offsets in bounds, no overlap);
//! natively the file is memory-mapped, so reading one tensor touches only its bytes.

use super::{DType, RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

enum Buffer {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Buffer::Mapped(m) => m,
        }
    }
}

/// An open safetensors file.
pub struct SafetensorsFile {
    buf: Buffer,
    infos: BTreeMap<String, TensorInfo>,
    ranges: BTreeMap<String, (usize, usize)>,
    meta: BTreeMap<String, String>,
}

fn dtype_of(d: safetensors::Dtype, name: &str) -> Result<DType> {
    match d {
        safetensors::Dtype::F32 => Ok(DType::F32),
        safetensors::Dtype::F16 => Ok(DType::F16),
        safetensors::Dtype::BF16 => Ok(DType::BF16),
        safetensors::Dtype::I8 => Ok(DType::I8),
        safetensors::Dtype::U8 => Ok(DType::U8),
        other => Err(Error::Unsupported(format!("tensor `{name}` has dtype {other:?}; only F32, F16, BF16, I8 and U8 are read"))),
    }
}

impl SafetensorsFile {
    /// Open (memory-map) a file on disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // Safety: the map is read-only; a file changed by another process while it is open
        // is outside what Gander promises (as with any memory-mapped reader).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        Self::from_buffer(Buffer::Mapped(map))
    }

    /// Parse a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_buffer(Buffer::Owned(bytes))
    }

    fn from_buffer(buf: Buffer) -> Result<Self> {
        let bad = |e: safetensors::SafeTensorError| {
            Error::BadFile(format!("not a valid safetensors file ({e}); is the file complete?"))
        };
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&buf).map_err(bad)?;
        let st = safetensors::SafeTensors::deserialize(&buf).map_err(bad)?;
        let base = buf.as_ptr() as usize;
        let mut infos = BTreeMap::new();
        let mut ranges = BTreeMap::new();
        for (name, view) in st.tensors() {
            let dtype = dtype_of(view.dtype(), &name)?;
            let start = view.data().as_ptr() as usize - base;
            ranges.insert(name.clone(), (start, start + view.data().len()));
            infos.insert(name, TensorInfo { dtype, shape: view.shape().to_vec() });
        }
        let meta = metadata.metadata().clone().unwrap_or_default().into_iter().collect();
        Ok(Self { buf, infos, ranges, meta })
    }
}

impl TensorSource for SafetensorsFile {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        let info = self.infos.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?.clone();
        let &(a, b) = self.ranges.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?;
        Ok(RawTensor { info, data: self.buf[a..b].to_vec() })
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.meta.clone()
    }
}
