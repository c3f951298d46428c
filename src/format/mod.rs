//! Weight containers: official PyTorch `.pth`, official `.safetensors`, and Gander's own file.
//!
//! Every reader produces a [`TensorSource`]: names, shapes and dtypes from the header, and
//! tensors read one at a time, so a loader never needs the whole file as one buffer of floats.

pub mod gander;
pub mod pickle;
pub mod pth;
pub mod quant;
pub mod safetensors;
pub mod tensor;

pub use tensor::{le_words, DType, RawTensor, TensorInfo};

use crate::error::Result;
use std::collections::BTreeMap;

/// A set of named tensors that can be listed cheaply and read one by one.
pub trait TensorSource {
    /// Every tensor's name, dtype and shape, without reading data.
    fn tensors(&self) -> &BTreeMap<String, TensorInfo>;
    /// Read one tensor's data (contiguous, little-endian, in its stored dtype).
    fn read(&mut self, name: &str) -> Result<RawTensor>;
    /// Read a matrix in its stored format (f16 stays f16, quantised stays packed); everything
    /// else is widened to f32. Backends take this without a dequantised copy.
    fn read_matrix(&mut self, name: &str) -> Result<quant::HostMatrix> {
        let t = self.read(name)?;
        let (rows, cols) = match t.info.shape.as_slice() {
            [r, c] => (*r, *c),
            s => return Err(crate::Error::BadModel(format!("`{name}` has shape {s:?}, expected a matrix"))),
        };
        let data = match t.info.dtype {
            DType::F16 => quant::MatrixData::F16(le_words(&t.data).map(half::f16::from_le_bytes).collect()),
            _ => quant::MatrixData::F32(t.to_f32()),
        };
        Ok(quant::HostMatrix { rows, cols, data })
    }
    /// The underlying safetensors file when it was opened from its header alone and is fed
    /// tensor by tensor ([`safetensors::SafetensorsFile::from_header`]).
    fn pieces(&mut self) -> Option<&mut safetensors::SafetensorsFile> {
        None
    }
    /// Free-form metadata (safetensors `__metadata__`); empty for `.pth`.
    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// Open a checkpoint file by looking at its first bytes (zip = `.pth`, else safetensors).
#[cfg(not(target_arch = "wasm32"))]
pub fn open_path(path: &std::path::Path) -> Result<Box<dyn TensorSource>> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| crate::Error::io(path, e))?;
    if n == 4 && &magic == b"PK\x03\x04" {
        Ok(Box::new(pth::PthFile::open(path)?))
    } else {
        gander::wrap(safetensors::SafetensorsFile::open(path)?)
    }
}

/// Know a safetensors file (official or Gander) by its header block, to stream its tensors in.
pub fn open_header(header: &[u8], file_len: u64) -> Result<Box<dyn TensorSource>> {
    gander::wrap(safetensors::SafetensorsFile::from_header(header, file_len)?)
}

/// Open a checkpoint held in memory (the browser's path): zip = `.pth`, else safetensors.
pub fn open_bytes(bytes: Vec<u8>) -> Result<Box<dyn TensorSource>> {
    if bytes.starts_with(b"PK\x03\x04") {
        Ok(Box::new(pth::PthFile::from_bytes(bytes)?))
    } else {
        gander::wrap(safetensors::SafetensorsFile::from_bytes(bytes)?)
    }
}
