//! Weight containers: official PyTorch `.pth`, `.safetensors` (one file or Hugging Face shards
//! with their index), llama.cpp's GGUF, and Gander's own file; tensors in the official layout or another one
//! people download ([`layout`]: transformers `rwkv7.`, flash-linear-attention, web-rwkv `.st`).
//!
//! Every reader produces a [`TensorSource`]: names, shapes and dtypes from the header, and
//! tensors read one at a time, so a loader never needs the whole file as one buffer of floats.
//! Kinds are told from the contents, never the file name.

pub mod gander;
pub mod gguf;
pub mod layout;
pub mod pickle;
pub mod pth;
pub mod quant;
pub mod safetensors;
pub mod sharded;
pub mod sparse;
pub mod tensor;

pub use tensor::{le_words, DType, RawTensor, TensorInfo};

use crate::error::Result;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// A reader a container can be read through, tensor by tensor.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

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
        raw_matrix(name, t)
    }
    /// Whether [`Self::read_matrix`] gives `name` in a packed form that [`Self::read`] does not
    /// (a Gander file's int8/q4 codes, GGUF Q8_0/Q4_0): such a matrix must be read with
    /// `read_matrix` to keep its codes.
    fn is_packed(&self, _name: &str) -> bool {
        false
    }
    /// The underlying safetensors file when it was opened from its header alone and is fed
    /// tensor by tensor ([`safetensors::SafetensorsFile::from_header`]).
    fn pieces(&mut self) -> Option<&mut safetensors::SafetensorsFile> {
        None
    }
    /// Rows `rows` of the 2-D tensor `name` as stored, without reading its other rows: where
    /// the container reads through a reader and stores the matrix contiguous and row-major
    /// (safetensors, a `.pth`'s stored zip entries). `None` where it cannot; then read it whole.
    /// The pull loader converts a big matrix block by block this way.
    fn read_rows(&mut self, _name: &str, _rows: std::ops::Range<usize>) -> Option<Result<RawTensor>> {
        None
    }
    /// A key that sorts tensors in the order their bytes lie in the file (None: not known), so
    /// a reader over fetched ranges reads forward.
    fn order(&self, _name: &str) -> Option<u64> {
        None
    }
    /// Free-form metadata (safetensors `__metadata__`); empty for `.pth`.
    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// The layout the tensors were stored in ([`layout::wrap`] renames others to official).
    fn layout(&self) -> layout::Layout {
        layout::Layout::Official
    }
}

/// A raw tensor as a matrix in its stored format: f16 stays f16, everything else is widened to
/// f32 (what [`TensorSource::read_matrix`] gives by default).
pub fn raw_matrix(name: &str, t: RawTensor) -> Result<quant::HostMatrix> {
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

/// Open a checkpoint by looking at its first bytes: a zip is a `.pth`, `GGUF` llama.cpp's GGUF
/// ([`gguf`]), a JSON object a shard
/// index (`model.safetensors.index.json`, shards beside it), anything else safetensors. A
/// directory (a downloaded Hugging Face repository) opens its index or its `model.safetensors`.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_path(path: &std::path::Path) -> Result<Box<dyn TensorSource>> {
    use std::io::Read;
    if path.is_dir() {
        for f in ["model.safetensors.index.json", "model.safetensors"] {
            if path.join(f).is_file() {
                return open_path(&path.join(f));
            }
        }
        return Err(crate::Error::BadInput(format!(
            "{} is a directory without model.safetensors.index.json or model.safetensors; give the checkpoint file",
            path.display()
        )));
    }
    let mut magic = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| crate::Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| crate::Error::io(path, e))?.len();
    // A safetensors file begins with its header's length, which fits in the file; the first
    // bytes of a JSON index read as a length do not.
    let safetensors_len = n == 8 && u64::from_le_bytes(magic).checked_add(8).is_some_and(|h| h <= file_len);
    if n >= 4 && magic.starts_with(b"PK\x03\x04") {
        layout::wrap(Box::new(pth::PthFile::open(path)?))
    } else if n >= 4 && gguf::is_gguf(&magic) {
        Ok(Box::new(gguf::GgufFile::open(path)?))
    } else if magic.first() == Some(&b'{') && !safetensors_len {
        layout::wrap(sharded::open_index(path)?)
    } else {
        layout::wrap(gander::wrap(safetensors::SafetensorsFile::open(path)?)?)
    }
}

/// Know a safetensors file (official or Gander) by its header block, to stream its tensors in.
/// Other layouts are refused here (the browser loads them whole, through [`open_bytes`]).
pub fn open_header(header: &[u8], file_len: u64) -> Result<Box<dyn TensorSource>> {
    let src = gander::wrap(safetensors::SafetensorsFile::from_header(header, file_len)?)?;
    match layout::detect(src.tensors()) {
        layout::Layout::Official => Ok(src),
        l => Err(crate::Error::Unsupported(format!("streaming a file in the {} layout; load it whole", l.name()))),
    }
}

/// Open a checkpoint held in memory (the browser's path): zip = `.pth`, `GGUF` = llama.cpp's
/// GGUF, else safetensors.
pub fn open_bytes(bytes: Vec<u8>) -> Result<Box<dyn TensorSource>> {
    if bytes.starts_with(b"PK\x03\x04") {
        layout::wrap(Box::new(pth::PthFile::from_bytes(bytes)?))
    } else if gguf::is_gguf(&bytes) {
        Ok(Box::new(gguf::GgufFile::from_bytes(bytes)?))
    } else {
        layout::wrap(gander::wrap(safetensors::SafetensorsFile::from_bytes(bytes)?)?)
    }
}

/// Open a checkpoint of `file_len` bytes through a reader that holds only some of its bytes
/// (the browser's [`sparse::Sparse`] over fetched ranges): a `.pth` or a safetensors file in any
/// layout, or a GGUF file, read tensor by tensor. A read of bytes not fetched yet fails, and
/// the reader's `missing` says which to fetch.
pub fn open_reader(mut r: impl Read + Seek + 'static, file_len: u64) -> Result<Box<dyn TensorSource>> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|e| crate::Error::BadFile(format!("reading the first bytes: {e}")))?;
    r.seek(std::io::SeekFrom::Start(0)).map_err(|e| crate::Error::BadFile(format!("reading the first bytes: {e}")))?;
    if magic.starts_with(b"PK\x03\x04") {
        layout::wrap(Box::new(pth::PthFile::from_read_seek(r)?))
    } else if gguf::is_gguf(&magic) {
        Ok(Box::new(gguf::GgufFile::from_read_seek(r, file_len)?))
    } else {
        layout::wrap(gander::wrap(safetensors::SafetensorsFile::from_read_seek(r, file_len)?)?)
    }
}

/// The byte range of `rows` of a `[r, c]` tensor of `info`, relative to the tensor's first byte,
/// and the info of those rows; `None` unless `info` is 2-D and `rows` lies within it.
pub(crate) fn row_span(info: &TensorInfo, rows: &std::ops::Range<usize>) -> Option<(u64, u64, TensorInfo)> {
    let &[r, c] = info.shape.as_slice() else { return None };
    if rows.start > rows.end || rows.end > r {
        return None;
    }
    let row = (c as u64).checked_mul(info.dtype.size() as u64)?;
    let sub = TensorInfo { dtype: info.dtype, shape: vec![rows.end - rows.start, c] };
    Some((row.checked_mul(rows.start as u64)?, row.checked_mul(rows.end as u64)?, sub))
}
