//! `.safetensors` files: official names and orientation (spec §1.3), bf16/fp16/fp32.
//!
//! The header is parsed and validated by the `safetensors` crate (offsets in bounds, no overlap);
//! natively the file is memory-mapped, so reading one tensor touches only its bytes.
//!
//! A file can also be opened from its header alone ([`SafetensorsFile::from_header`]) and fed its
//! tensors piece by piece: the browser streams a model from IndexedDB chunks this way, one layer
//! at a time, so the wasm heap never holds the whole file.

use super::{DType, RawTensor, ReadSeek, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

enum Buffer {
    Owned(Vec<u8>),
    /// Only some tensors' bytes, by name (see [`SafetensorsFile::from_header`]).
    Pieces(BTreeMap<String, Vec<u8>>),
    /// Read tensor by tensor through a reader (see [`SafetensorsFile::from_read_seek`]).
    Reader(Box<dyn ReadSeek>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Owned(v) => v,
            Buffer::Pieces(_) | Buffer::Reader(_) => &[],
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
        let bad = |e: safetensors::SafeTensorError| Error::BadFile(format!("not a valid safetensors file ({e}); is the file complete?"));
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

/// The largest header accepted from a file known by its header alone (the `safetensors` crate's
/// own cap is 100 MB; a model's header is a few hundred KB).
const MAX_HEADER: u64 = 100_000_000;

/// Streamed tensors up to this size are copied when read; bigger ones are moved out.
const PIECE_COPY_MAX: usize = 1 << 20;

impl SafetensorsFile {
    /// The length of the header block (8-byte length + JSON) from a file's first 8 bytes.
    pub fn header_len(prefix: &[u8], file_len: u64) -> Result<u64> {
        let n = prefix
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| Error::BadFile("not a safetensors file: shorter than 8 bytes".into()))?;
        if n > MAX_HEADER || n + 8 > file_len {
            return Err(Error::BadFile(format!("not a valid safetensors file (header of {n} bytes in a file of {file_len}); is the file complete?")));
        }
        Ok(n + 8)
    }

    /// Know a file of `file_len` bytes by its header block (`header` = its first
    /// [`Self::header_len`] bytes); tensors are then added with [`Self::insert`]. Offsets are
    /// checked as `deserialize` checks them: in bounds, sized by shape and dtype, no overlap.
    pub fn from_header(header: &[u8], file_len: u64) -> Result<Self> {
        let bad = |m: String| Error::BadFile(format!("not a valid safetensors file ({m}); is the file complete?"));
        let hl = Self::header_len(header, file_len)?;
        let json = header.get(8..hl as usize).ok_or_else(|| bad("header cut short".into()))?;
        let text = std::str::from_utf8(json).map_err(|e| bad(e.to_string()))?;
        let md: safetensors::tensor::Metadata = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let data_len = file_len - hl;
        let mut infos = BTreeMap::new();
        let mut ranges = BTreeMap::new();
        let mut spans = Vec::new();
        for (name, info) in md.tensors() {
            let dtype = dtype_of(info.dtype, &name)?;
            let ti = TensorInfo { dtype, shape: info.shape.clone() };
            let (a, b) = info.data_offsets;
            let want = ti.numel()?.checked_mul(dtype.size()).ok_or_else(|| bad(format!("`{name}` is too large")))?;
            if a > b || b as u64 > data_len || b - a != want {
                return Err(bad(format!("`{name}` has offsets {a}..{b}, expected {want} bytes within {data_len}")));
            }
            spans.push((a, b));
            ranges.insert(name.clone(), (hl as usize + a, hl as usize + b));
            infos.insert(name, ti);
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| matches!(w, [a, b] if b.0 < a.1)) {
            return Err(bad("tensors overlap".into()));
        }
        let meta = md.metadata().clone().unwrap_or_default().into_iter().collect();
        Ok(Self { buf: Buffer::Pieces(BTreeMap::new()), infos, ranges, meta })
    }

    /// Know a file of `file_len` bytes through a reader: the header is read now, each tensor's
    /// bytes when it is read (the browser's reader over fetched byte ranges,
    /// [`super::sparse::Sparse`], which says what to fetch when a read fails).
    pub fn from_read_seek(mut r: impl Read + Seek + 'static, file_len: u64) -> Result<Self> {
        let io = |e: std::io::Error| Error::BadFile(format!("reading the safetensors header: {e}"));
        let mut head = [0u8; 8];
        r.seek(SeekFrom::Start(0)).map_err(io)?;
        r.read_exact(&mut head).map_err(io)?;
        let n = Self::header_len(&head, file_len)?;
        let mut header = vec![0u8; n as usize];
        r.seek(SeekFrom::Start(0)).map_err(io)?;
        r.read_exact(&mut header).map_err(io)?;
        let mut f = Self::from_header(&header, file_len)?;
        f.buf = Buffer::Reader(Box::new(r));
        Ok(f)
    }

    /// Tensors whose names start with one of `prefixes` and are not loaded yet, with their byte
    /// ranges in the file, in file order (only for a file opened with [`Self::from_header`]).
    pub fn wanted(&self, prefixes: &[String]) -> Vec<(String, u64, u64)> {
        let Buffer::Pieces(have) = &self.buf else { return Vec::new() };
        let mut v: Vec<_> = self
            .ranges
            .iter()
            .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(p.as_str())) && !have.contains_key(*n))
            .map(|(n, &(a, b))| (n.clone(), a as u64, b as u64))
            .collect();
        v.sort_by_key(|x| x.1);
        v
    }

    /// Add one tensor's bytes (exactly its range in the file).
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let &(a, b) = self.ranges.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?;
        if bytes.len() != b - a {
            return Err(Error::BadFile(format!("`{name}`: got {} bytes, expected {}", bytes.len(), b - a)));
        }
        match &mut self.buf {
            Buffer::Pieces(have) => {
                have.insert(name.to_string(), bytes);
                Ok(())
            }
            _ => Err(Error::BadInput("tensors are only added to a file opened from its header".into())),
        }
    }

    /// Drop the tensors added so far (after the backend has taken them).
    pub fn clear(&mut self) {
        if let Buffer::Pieces(have) = &mut self.buf {
            have.clear();
        }
    }
}

impl TensorSource for SafetensorsFile {
    fn pieces(&mut self) -> Option<&mut SafetensorsFile> {
        Some(self)
    }

    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        let info = self.infos.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?.clone();
        let &(a, b) = self.ranges.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?;
        if let Buffer::Pieces(have) = &mut self.buf {
            // Streamed tensors are handed over, not copied (the wasm heap would otherwise hold
            // each big matrix twice while it goes to the GPU); small ones (vectors, which the
            // fingerprint reads too) are copied so they can be read again.
            let data = if b - a > PIECE_COPY_MAX { have.remove(name) } else { have.get(name).cloned() };
            let data = data.ok_or_else(|| Error::BadInput(format!("tensor `{name}` was not streamed in yet (or was read already)")))?;
            return Ok(RawTensor { info, data });
        }
        if let Buffer::Reader(r) = &mut self.buf {
            let mut data = vec![0u8; b - a];
            r.seek(SeekFrom::Start(a as u64)).and_then(|_| r.read_exact(&mut data)).map_err(|e| Error::BadFile(format!("reading tensor `{name}`: {e}")))?;
            return Ok(RawTensor { info, data });
        }
        let data = self.buf.get(a..b).ok_or_else(|| Error::BadFile(format!("`{name}` lies outside the file")))?.to_vec();
        Ok(RawTensor { info, data })
    }

    fn read_rows(&mut self, name: &str, rows: std::ops::Range<usize>) -> Option<Result<RawTensor>> {
        let Buffer::Reader(r) = &mut self.buf else { return None };
        let (lo, hi, info) = super::row_span(self.infos.get(name)?, &rows)?;
        let &(a, _) = self.ranges.get(name)?;
        let mut data = vec![0u8; (hi - lo) as usize];
        let read = r.seek(SeekFrom::Start(a as u64 + lo)).and_then(|_| r.read_exact(&mut data));
        Some(read.map(|_| RawTensor { info, data }).map_err(|e| Error::BadFile(format!("reading rows {rows:?} of `{name}`: {e}"))))
    }

    fn order(&self, name: &str) -> Option<u64> {
        self.ranges.get(name).map(|r| r.0 as u64)
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.meta.clone()
    }
}
