//! GGUF files of RWKV-7 as llama.cpp writes them (architecture `rwkv7`), presented under the
//! official names and shapes (spec §1.3), so the loader and the converter see one layout.
//!
//! The container (llama.cpp `ggml/include/gguf.h`): `GGUF`, version 2 or 3, tensor and key counts,
//! typed key/value metadata, tensor infos (name, dims in ggml order: `ne[0]` is the contiguous
//! one, type, offset), then the data from the first multiple of `general.alignment` (32).
//! Every count, length and offset is checked against the file before it is used.
//!
//! The tensors (llama.cpp `convert_hf_to_gguf.py`, class `Rwkv7Model`): matrices keep the
//! PyTorch `[out, in]` byte order; the eight LoRA factors `w1 w2 a1 a2 v1 v2 g1 g2` are stored
//! transposed relative to the official checkpoint; `x_r … x_g` are stacked as
//! `time_mix_lerp_fused` (`ne = [C, 1, 1, 6]`, in the order r, w, k, v, a, g); `w0 a0 v0 k_k k_a`
//! and `ffn.x_k` are `[C]`; `r_k` is flattened to `[C]`; layer 0's `v0 v1 v2` are copies of its
//! `a0 a1 a2` that llama.cpp needs and the maths does not use (ignored here). No rescaling.
//!
//! Types: F32, F16 and BF16 are read as they are; Q8_0 and Q4_0 matrices are handed to the
//! backends as Gander's int8 and q4 without any rounding (the same block of 32, the same
//! f16 scale, the same codes: Q8_0 `q·d`, Q4_0 `(nibble − 8)·d` with elements 0–15 in the low
//! nibbles, as in `quant::q4`; a Q4_0 scale may be negative, which the kernels take as it is).
//! Q4_1, Q5_0, Q5_1 and the K-quants (Q4_K, Q5_K, Q6_K) are dequantised to f32 on read
//! (llama.cpp's `dequantize_row_*`), so `gander convert --quant int8|q4` requantises them, and
//! says so. The `rwkv` tokenizer list, when present, must be the World vocabulary.

use super::layout::Layout;
use super::quant::{HostMatrix, MatrixData};
use super::{DType, RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use half::f16;
use std::collections::BTreeMap;

/// Where a file's bytes live.
enum Buf {
    Owned(Vec<u8>),
    /// Read tensor by tensor through a reader ([`GgufFile::from_read_seek`]).
    Reader(std::cell::RefCell<Box<dyn super::ReadSeek>>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Owned(v) => v,
            Buf::Reader(_) => &[],
            #[cfg(not(target_arch = "wasm32"))]
            Buf::Mapped(m) => m,
        }
    }
}

/// The ggml element types Gander reads (ids from ggml.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block).
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
        }
    }

    /// Whether Gander keeps this type's values exactly (a float type, or a block format its
    /// int8/q4 share).
    pub fn lossless(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16 | Self::Q8_0 | Self::Q4_0)
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text (arrays are summarised).
    fn text(&self) -> String {
        match self {
            Value::Uint(v) => v.to_string(),
            Value::Int(v) => v.to_string(),
            Value::Float(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => s.clone(),
            Value::Array(a) => format!("[{} values]", a.len()),
        }
    }
}

/// A checked little-endian reader over the header.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    /// The whole file's length (`b` may be a prefix of it): counts are checked against it.
    file_len: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Error::BadFile(format!("{TRUNCATED} of the file (at byte {}); is the file complete?", self.at)))?;
        let s = self.b.get(self.at..end).unwrap_or(&[]);
        self.at = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    /// A count of items of at least `min_item` bytes each: no more than the bytes left allow.
    fn count(&mut self, min_item: usize, what: &str) -> Result<usize> {
        let n = self.u64()?;
        let left = self.file_len.saturating_sub(self.at) as u64;
        if n > left / min_item.max(1) as u64 {
            return Err(Error::BadFile(format!("the GGUF header claims {n} {what}, more than the file can hold; is the file complete?")));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count(1, "string bytes")?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Error::BadFile(format!("a GGUF string at byte {} is not UTF-8", self.at)))
    }

    /// One value of type `ty`; arrays keep their items only with `keep` (the token list), so a
    /// hostile header of many one-byte items cannot grow 32-fold in memory.
    fn value(&mut self, ty: u32, depth: usize, keep: bool) -> Result<Value> {
        Ok(match ty {
            0 => Value::Uint(self.arr::<1>()?[0] as u64),
            1 => Value::Int(self.arr::<1>()?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.arr()?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.arr()?) as i64),
            4 => Value::Uint(self.u32()? as u64),
            5 => Value::Int(i32::from_le_bytes(self.arr()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.arr()?) as f64),
            7 => Value::Bool(self.arr::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth > 0 {
                    return Err(Error::BadFile("a GGUF array of arrays (llama.cpp refuses them too)".into()));
                }
                let ety = self.u32()?;
                let n = self.count(1, "array items")?;
                let mut v = Vec::with_capacity(if keep { n.min(1 << 20) } else { 0 });
                for _ in 0..n {
                    let item = self.value(ety, depth + 1, false)?;
                    if keep {
                        v.push(item);
                    }
                }
                Value::Array(v)
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.arr()?)),
            12 => Value::Float(f64::from_le_bytes(self.arr()?)),
            t => return Err(Error::BadFile(format!("GGUF metadata value type {t} is not one of GGUF's (0-12)"))),
        })
    }
}

/// One tensor as stored.
#[derive(Clone, Debug)]
struct Stored {
    ty: GgmlType,
    /// ggml order: `ne[0]` is contiguous.
    ne: Vec<usize>,
    /// Absolute byte range in the file.
    start: usize,
    len: usize,
}

impl Stored {
    /// The row-major (numpy) shape, trailing ggml 1s dropped.
    fn shape(&self) -> Vec<usize> {
        let mut ne = self.ne.clone();
        while ne.len() > 1 && ne.last() == Some(&1) {
            ne.pop();
        }
        ne.reverse();
        ne
    }

    fn numel(&self) -> usize {
        self.ne.iter().product()
    }
}

/// How a stored tensor becomes an official one.
#[derive(Clone, Debug)]
enum Fix {
    Same,
    /// A matrix stored transposed (the LoRA factors).
    Transpose,
    /// The `i`-th `[C]` slice of `time_mix_lerp_fused`.
    Slice(usize),
    /// The same elements under the official shape (`[C]` as `[1, 1, C]`, `r_k` as `[H, N]`).
    Reshape,
}

/// An open GGUF file of an RWKV-7 model.
pub struct GgufFile {
    buf: Buf,
    stored: BTreeMap<String, Stored>,
    meta: BTreeMap<String, Value>,
    /// Official name → (stored name, fix).
    map: BTreeMap<String, (String, Fix)>,
    infos: BTreeMap<String, TensorInfo>,
    /// False for a file opened from its header alone ([`GgufFile::from_header`]).
    data: bool,
}

/// The longest GGUF header read through a reader (a World-vocabulary model's is about 2 MiB).
const MAX_HEADER: usize = 64 << 20;

/// The start of the message of a header cut short (what [`GgufFile::from_header`] says when its
/// prefix ends inside the header: fetch more).
const TRUNCATED: &str = "the GGUF header runs past the end";

/// Whether `e` says that the bytes ended inside the header.
pub fn is_truncated_header(e: &Error) -> bool {
    matches!(e, Error::BadFile(m) if m.starts_with(TRUNCATED))
}

/// Whether `prefix` starts a GGUF file.
pub fn is_gguf(prefix: &[u8]) -> bool {
    prefix.starts_with(b"GGUF")
}

impl GgufFile {
    /// Open (memory-map) a file on disk: only the tensors read are touched.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // Safety: read-only map; a file changed by another process while open is outside what
        // Gander promises (as for safetensors).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        Self::parse(Buf::Mapped(map))
    }

    /// Parse a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Buf::Owned(bytes))
    }

    /// Parse the header block of a file of `file_len` bytes (the first bytes, at least up to
    /// the end of the tensor infos): names, shapes and types for [`crate::model::inspect`],
    /// without the data (reading a tensor is an error). A prefix that ends inside the header is
    /// an error that says the file is incomplete: fetch more.
    pub fn from_header(prefix: Vec<u8>, file_len: u64) -> Result<Self> {
        let len = usize::try_from(file_len).map_err(|_| Error::BadFile("the file is too large".into()))?;
        Self::parse_sized(Buf::Owned(prefix), len, false)
    }

    /// Read a file of `file_len` bytes through a reader: the header now (a growing prefix, as
    /// it has no length field), each tensor when it is read (the browser's reader over fetched
    /// byte ranges, [`super::sparse::Sparse`]).
    pub fn from_read_seek(mut r: impl std::io::Read + std::io::Seek + 'static, file_len: u64) -> Result<Self> {
        use std::io::SeekFrom;
        let len = usize::try_from(file_len).map_err(|_| Error::BadFile("the file is too large".into()))?;
        let mut have = len.min(1 << 20);
        loop {
            let mut prefix = vec![0u8; have];
            r.seek(SeekFrom::Start(0)).and_then(|_| r.read_exact(&mut prefix)).map_err(|e| Error::BadFile(format!("reading the GGUF header: {e}")))?;
            match Self::parse_sized(Buf::Owned(prefix), len, false) {
                Ok(mut f) => {
                    f.buf = Buf::Reader(std::cell::RefCell::new(Box::new(r)));
                    f.data = true;
                    return Ok(f);
                }
                Err(e) if have < len && have < MAX_HEADER && is_truncated_header(&e) => have = len.min(have.saturating_mul(4)).min(MAX_HEADER),
                Err(e) if have >= MAX_HEADER && is_truncated_header(&e) => {
                    return Err(Error::BadFile(format!("the GGUF header does not end within {} MiB: not a model Gander reads", MAX_HEADER >> 20)))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn parse(buf: Buf) -> Result<Self> {
        let len = buf.len();
        Self::parse_sized(buf, len, true)
    }

    /// `file_len`: the whole file's length (data ranges are checked against it); `data`: whether
    /// `buf` holds the data too.
    fn parse_sized(buf: Buf, file_len: usize, data: bool) -> Result<Self> {
        let mut c = Cursor { b: &buf, at: 0, file_len };
        if !is_gguf(c.take(4)?) {
            return Err(Error::BadFile("not a GGUF file (no `GGUF` magic)".into()));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!("GGUF version {version} (Gander reads versions 2 and 3)")));
        }
        let n_tensors = c.count(24, "tensors")?;
        let n_kv = c.count(13, "metadata keys")?;
        let mut meta = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let v = c.value(ty, 0, key == "tokenizer.ggml.tokens")?;
            if meta.insert(key.clone(), v).is_some() {
                return Err(Error::BadFile(format!("the GGUF metadata key `{key}` appears twice")));
            }
        }
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()? as usize;
            if !(1..=4).contains(&n_dims) {
                return Err(Error::BadFile(format!("GGUF tensor `{name}` has {n_dims} dimensions (1 to 4 allowed)")));
            }
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(usize::try_from(c.u64()?).map_err(|_| Error::BadFile(format!("GGUF tensor `{name}` is too large")))?);
            }
            let ty_id = c.u32()?;
            let offset = c.u64()?;
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
                Error::Unsupported(format!(
                    "GGUF tensor `{name}` has ggml type {ty_id}; Gander reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (convert other types with llama.cpp's llama-quantize)"
                ))
            })?;
            infos.push((name, ne, ty, offset));
        }
        let align = match meta.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => return Err(Error::BadFile(format!("GGUF general.alignment {v:?} is not a power of two"))),
            },
        };
        let data_start = c.at.div_ceil(align) * align;
        let mut stored = BTreeMap::new();
        for (name, ne, ty, offset) in infos {
            let (be, bb) = ty.block();
            let numel =
                ne.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| Error::BadFile(format!("GGUF tensor `{name}`'s shape {ne:?} overflows")))?;
            let row = ne.first().copied().unwrap_or(0);
            if row % be != 0 {
                return Err(Error::BadFile(format!("GGUF tensor `{name}` ({}) has rows of {row} elements, not a multiple of its block of {be}", ty.name())));
            }
            let len = (numel / be).checked_mul(bb).ok_or_else(|| Error::BadFile(format!("GGUF tensor `{name}` is too large")))?;
            let start = usize::try_from(offset).ok().and_then(|o| o.checked_add(data_start)).filter(|s| s.checked_add(len).is_some_and(|e| e <= file_len));
            let Some(start) = start else {
                return Err(Error::BadFile(format!("GGUF tensor `{name}` lies outside the file (offset {offset}, {len} bytes); is the file complete?")));
            };
            if stored.insert(name.clone(), Stored { ty, ne, start, len }).is_some() {
                return Err(Error::BadFile(format!("GGUF tensor `{name}` appears twice")));
            }
        }
        let mut f = GgufFile { buf, stored, meta, map: BTreeMap::new(), infos: BTreeMap::new(), data };
        f.check_architecture()?;
        f.check_vocabulary()?;
        f.map_names()?;
        Ok(f)
    }

    fn check_architecture(&self) -> Result<()> {
        match self.meta.get("general.architecture").and_then(Value::as_str) {
            Some("rwkv7") => Ok(()),
            Some(a) => Err(Error::Unsupported(format!(
                "a GGUF file of architecture `{a}`; Gander runs RWKV-7 (`rwkv7`){}",
                if a == "arwkv7" { " (ARWKV-7 has a Qwen2 feed-forward and vocabulary)" } else { "" }
            ))),
            None => Err(Error::BadFile("a GGUF file without general.architecture".into())),
        }
    }

    /// The `rwkv` tokenizer list (Python bytes-repr escaped, index = token id, `<s>` at 0, padding
    /// at the end) must spell the World vocabulary: another list means another tokenizer.
    fn check_vocabulary(&self) -> Result<()> {
        let model = self.meta.get("tokenizer.ggml.model").and_then(Value::as_str);
        let Some(Value::Array(tokens)) = self.meta.get("tokenizer.ggml.tokens") else { return Ok(()) };
        if model != Some("rwkv") {
            return Err(Error::Unsupported(format!(
                "a GGUF tokenizer of kind {:?}; RWKV-7 models use the World vocabulary (`rwkv`)",
                model.unwrap_or("(none)")
            )));
        }
        let world = crate::tokenizer::Tokenizer::world();
        for (id, t) in tokens.iter().enumerate().skip(1) {
            let Some(want) = world.token_bytes(id as u32) else { break };
            let ok = t.as_str().is_some_and(|s| unescape_rwkv(s).as_deref() == Some(want));
            if !ok {
                return Err(Error::Unsupported(format!(
                    "this GGUF file's vocabulary differs from the World vocabulary at token {id} ({t:?}); Gander's tokenizer would not match the model"
                )));
            }
        }
        Ok(())
    }

    /// The official name of every stored tensor the maths uses.
    fn map_names(&mut self) -> Result<()> {
        let emb = self.stored.get("token_embd.weight").ok_or_else(|| Error::BadModel("a GGUF rwkv7 file without token_embd.weight".into()))?;
        let c = emb.ne.first().copied().unwrap_or(0);
        let n = self.meta.get("rwkv7.wkv.head_size").and_then(Value::as_u64).map_or(64, |v| v as usize);
        if n == 0 || c % n != 0 {
            return Err(Error::BadModel(format!("GGUF rwkv7.wkv.head_size {n} does not divide the embedding size {c}")));
        }
        let mut map = BTreeMap::new();
        let mut infos = BTreeMap::new();
        for (name, s) in &self.stored {
            for (official, fix) in official_names(name, s, c)? {
                let shape = match (&fix, official.rsplit('.').next()) {
                    (Fix::Same, _) => s.shape(),
                    (Fix::Transpose, _) => match s.shape().as_slice() {
                        &[r, cols] => vec![cols, r],
                        sh => return Err(Error::BadModel(format!("GGUF `{name}` has shape {sh:?}, expected a matrix"))),
                    },
                    (_, Some("r_k")) => vec![c / n, n],
                    _ => vec![1, 1, c],
                };
                let want: usize = shape.iter().product();
                let have = if let Fix::Slice(_) = fix { s.numel() / 6 } else { s.numel() };
                if want != have {
                    return Err(Error::BadModel(format!("GGUF `{name}` holds {have} values where `{official}` needs {want}")));
                }
                let dtype = match s.ty {
                    GgmlType::F16 => DType::F16,
                    GgmlType::BF16 => DType::BF16,
                    _ => DType::F32,
                };
                infos.insert(official.clone(), TensorInfo { dtype, shape });
                map.insert(official, (name.clone(), fix));
            }
        }
        self.map = map;
        self.infos = infos;
        Ok(())
    }

    /// The stored types, for `gander info`: `{type: count}`.
    pub fn type_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for s in self.stored.values() {
            *m.entry(s.ty.name()).or_insert(0) += 1;
        }
        m
    }

    /// Stored types Gander dequantises (not kept exactly), by name.
    pub fn lossy_types(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.stored.values().filter(|s| !s.ty.lossless()).map(|s| s.ty.name()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A stored tensor's bytes (their range was checked against the file when it was opened).
    fn bytes(&self, s: &Stored) -> Result<std::borrow::Cow<'_, [u8]>> {
        if let Buf::Reader(r) = &self.buf {
            use std::io::{Read, Seek, SeekFrom};
            let mut out = vec![0u8; s.len];
            let mut r = r.borrow_mut();
            r.seek(SeekFrom::Start(s.start as u64)).and_then(|_| r.read_exact(&mut out)).map_err(|e| Error::BadFile(format!("reading a GGUF tensor: {e}")))?;
            return Ok(out.into());
        }
        Ok(self.buf.get(s.start..s.start + s.len).unwrap_or(&[]).into())
    }

    /// A stored tensor as little-endian values: floats as stored, block formats as f32.
    fn decoded(&self, s: &Stored) -> Result<(DType, Vec<u8>)> {
        let b = self.bytes(s)?;
        Ok(match s.ty {
            GgmlType::F32 => (DType::F32, b.into_owned()),
            GgmlType::F16 => (DType::F16, b.into_owned()),
            GgmlType::BF16 => (DType::BF16, b.into_owned()),
            t => {
                let (be, bb) = t.block();
                let mut out = Vec::with_capacity(s.numel() * 4);
                let mut y = vec![0f32; be];
                for blk in b.chunks_exact(bb) {
                    dequantize_block(t, blk, &mut y);
                    for v in &y {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                (DType::F32, out)
            }
        })
    }
}

/// The official names (and fixes) of GGUF tensor `name` (none for layer 0's dummy v LoRA).
fn official_names(name: &str, s: &Stored, c: usize) -> Result<Vec<(String, Fix)>> {
    let one = |n: String, f: Fix| Ok(vec![(n, f)]);
    match name {
        "token_embd.weight" => return one("emb.weight".into(), Fix::Same),
        "token_embd_norm.weight" => return one("blocks.0.ln0.weight".into(), Fix::Same),
        "token_embd_norm.bias" => return one("blocks.0.ln0.bias".into(), Fix::Same),
        "output_norm.weight" => return one("ln_out.weight".into(), Fix::Same),
        "output_norm.bias" => return one("ln_out.bias".into(), Fix::Same),
        "output.weight" => return one("head.weight".into(), Fix::Same),
        _ => {}
    }
    let unknown = || Err(Error::Unsupported(format!("the GGUF tensor `{name}` (not an RWKV-7 tensor Gander knows)")));
    let Some(rest) = name.strip_prefix("blk.") else { return unknown() };
    let Some((l, t)) = rest.split_once('.') else { return unknown() };
    let Ok(l) = l.parse::<usize>() else { return unknown() };
    let b = format!("blocks.{l}.");
    let att = |x: &str| format!("{b}att.{x}");
    let Some((base, wb)) = t.rsplit_once('.') else { return unknown() };
    match (base, wb) {
        ("attn_norm", _) => one(format!("{b}ln1.{wb}"), Fix::Same),
        ("attn_norm_2", _) => one(format!("{b}ln2.{wb}"), Fix::Same),
        ("time_mix_ln", _) => one(att(&format!("ln_x.{wb}")), Fix::Same),
        (_, "weight") => match base {
            "time_mix_lerp_fused" => {
                if s.numel() != 6 * c {
                    return Err(Error::Unsupported(format!("`{name}` holds {} mixes, not 6 (an RWKV-7 without the output gate)", s.numel() / c.max(1))));
                }
                Ok(["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"].iter().enumerate().map(|(i, x)| (att(x), Fix::Slice(i))).collect())
            }
            "time_mix_v0" | "time_mix_v1" | "time_mix_v2" if l == 0 => Ok(vec![]),
            "time_mix_w0" | "time_mix_a0" | "time_mix_v0" | "time_mix_k_k" | "time_mix_k_a" | "time_mix_r_k" => {
                one(att(base.trim_start_matches("time_mix_")), Fix::Reshape)
            }
            "time_mix_w1" | "time_mix_w2" | "time_mix_a1" | "time_mix_a2" | "time_mix_v1" | "time_mix_v2" | "time_mix_g1" | "time_mix_g2" => {
                one(att(base.trim_start_matches("time_mix_")), Fix::Transpose)
            }
            "time_mix_receptance" | "time_mix_key" | "time_mix_value" | "time_mix_output" => {
                one(att(&format!("{}.weight", base.trim_start_matches("time_mix_"))), Fix::Same)
            }
            "channel_mix_lerp_k" => one(format!("{b}ffn.x_k"), Fix::Reshape),
            "channel_mix_key" => one(format!("{b}ffn.key.weight"), Fix::Same),
            "channel_mix_value" => one(format!("{b}ffn.value.weight"), Fix::Same),
            _ => unknown(),
        },
        _ => unknown(),
    }
}

/// llama.cpp's `llama_unescape_rwkv_token`: `\t \n \r`, `\xHH` (lower-case hex), `\c` → `c`.
fn unescape_rwkv(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (h, l) = (hex(it.next()?)?, hex(it.next()?)?);
                out.push((h * 16 + l) as u8);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// One block of a ggml block format into `y` (llama.cpp `ggml-quants.c`, `dequantize_row_*`).
/// `b` is one whole block (the caller splits with `chunks_exact`); out-of-range reads give 0.
fn dequantize_block(t: GgmlType, b: &[u8], y: &mut [f32]) {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    let h = |i: usize| f16::from_le_bytes([g(i), g(i + 1)]).to_f32();
    let mut set = |k: usize, v: f32| {
        if let Some(o) = y.get_mut(k) {
            *o = v;
        }
    };
    match t {
        GgmlType::Q8_0 => {
            let d = h(0);
            for j in 0..32 {
                set(j, (g(2 + j) as i8).max(-127) as f32 * d); // as read_matrix reads it
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            // Q4_0: (q − 8)·d; Q4_1: q·d + m
            let (d, m, qs) = if t == GgmlType::Q4_0 { (h(0), -8.0 * h(0), 2) } else { (h(0), h(2), 4) };
            for j in 0..16 {
                let q = g(qs + j);
                set(j, (q & 15) as f32 * d + m);
                set(j + 16, (q >> 4) as f32 * d + m);
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (d, m, qh, qs) = if t == GgmlType::Q5_0 { (h(0), -16.0 * h(0), 2, 6) } else { (h(0), h(2), 4, 8) };
            let qh = u32::from_le_bytes([g(qh), g(qh + 1), g(qh + 2), g(qh + 3)]);
            for j in 0..16 {
                let q = g(qs + j) as u32;
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                set(j, ((q & 15) | h0) as f32 * d + m);
                set(j + 16, ((q >> 4) | h1) as f32 * d + m);
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            // d, dmin, 12 bytes of 6-bit scales and mins, (Q5_K: 32 bytes of high bits), codes
            let (d, dmin) = (h(0), h(2));
            let sc = |j: usize| g(4 + j);
            let (qh, ql) = if t == GgmlType::Q5K { (Some(16), 48) } else { (None, 16) };
            let scale_min = |j: usize| -> (f32, f32) {
                if j < 4 {
                    ((sc(j) & 63) as f32, (sc(j + 4) & 63) as f32)
                } else {
                    (((sc(j + 4) & 15) | ((sc(j - 4) >> 6) << 4)) as f32, ((sc(j + 4) >> 4) | ((sc(j) >> 6) << 4)) as f32)
                }
            };
            for chunk in 0..4 {
                let (s1, m1) = scale_min(2 * chunk);
                let (s2, m2) = scale_min(2 * chunk + 1);
                let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
                for l in 0..32 {
                    let q = g(ql + chunk * 32 + l);
                    let hi = |u: u8| qh.map_or(0.0, |at| if g(at + l) & u != 0 { 16.0 } else { 0.0 });
                    set(chunk * 64 + l, d * s1 * ((q & 15) as f32 + hi(u1)) - dmin * m1);
                    set(chunk * 64 + 32 + l, d * s2 * ((q >> 4) as f32 + hi(u2)) - dmin * m2);
                }
            }
        }
        GgmlType::Q6K => {
            // 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed scales, then d
            let d = h(208);
            for half in 0..2 {
                let (ql, qh, sc, yo) = (half * 64, 128 + half * 32, 192 + half * 8, half * 128);
                for l in 0..32 {
                    let is = l / 16;
                    let (a, b2, hb) = (g(ql + l), g(ql + l + 32), g(qh + l));
                    let q1 = ((a & 15) | ((hb & 3) << 4)) as i32 - 32;
                    let q2 = ((b2 & 15) | (((hb >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((a >> 4) | (((hb >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((b2 >> 4) | (((hb >> 6) & 3) << 4)) as i32 - 32;
                    let s = |k: usize| g(sc + is + k) as i8 as f32;
                    set(yo + l, d * s(0) * q1 as f32);
                    set(yo + l + 32, d * s(2) * q2 as f32);
                    set(yo + l + 64, d * s(4) * q3 as f32);
                    set(yo + l + 96, d * s(6) * q4 as f32);
                }
            }
        }
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {}
    }
}

impl TensorSource for GgufFile {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        if !self.data {
            return Err(Error::BadInput(format!("`{name}`: this GGUF file was opened from its header alone")));
        }
        let (stored, fix) = self.map.get(name).cloned().ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))?;
        let info = self.infos.get(name).cloned().ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))?;
        let s = self.stored.get(&stored).ok_or_else(|| Error::BadModel(format!("missing GGUF tensor `{stored}`")))?;
        let (dtype, data) = self.decoded(s)?;
        let data = match fix {
            Fix::Same | Fix::Reshape => data,
            Fix::Slice(i) => {
                let n = info.shape.iter().product::<usize>() * dtype.size();
                data.get(i * n..(i + 1) * n).ok_or_else(|| Error::BadFile(format!("`{stored}` is shorter than its shape")))?.to_vec()
            }
            Fix::Transpose => {
                let t = RawTensor { info: TensorInfo { dtype, shape: s.shape() }, data };
                super::layout::transpose(&t)?
            }
        };
        Ok(RawTensor { info: TensorInfo { dtype, shape: info.shape }, data })
    }

    /// Q8_0 and Q4_0 matrices go to the backends as int8 and q4, code for code.
    fn read_matrix(&mut self, name: &str) -> Result<HostMatrix> {
        let direct = match self.map.get(name) {
            Some((stored, Fix::Same)) => self.stored.get(stored).filter(|s| matches!(s.ty, GgmlType::Q8_0 | GgmlType::Q4_0)).cloned(),
            _ => None,
        };
        if !self.data {
            return Err(Error::BadInput(format!("`{name}`: this GGUF file was opened from its header alone")));
        }
        let Some(s) = direct else {
            let t = self.read(name)?;
            return super::raw_matrix(name, t);
        };
        let (rows, cols) = match s.shape().as_slice() {
            [r, c] => (*r, *c),
            sh => return Err(Error::BadModel(format!("`{name}` has shape {sh:?}, expected a matrix"))),
        };
        let b = self.bytes(&s)?;
        let blocks = b.len() / s.ty.block().1;
        let mut scale = Vec::with_capacity(blocks);
        let data = if s.ty == GgmlType::Q8_0 {
            let mut q = Vec::with_capacity(blocks * 32);
            for blk in b.chunks_exact(34) {
                let (d, codes) = blk.split_at(2);
                scale.push(f16::from_le_bytes([d.first().copied().unwrap_or(0), d.get(1).copied().unwrap_or(0)]));
                // llama.cpp's Q8_0 codes are in [-127, 127] (d = amax / 127); a -128 from
                // elsewhere would break the integer kernels' sign trick, so it is read as -127.
                q.extend(codes.iter().map(|&x| (x as i8).max(-127)));
            }
            MatrixData::Int8 { q, scale }
        } else {
            // Q4_0's block is q4's: low nibbles elements 0-15, high 16-31, value (code − 8)·d.
            let mut q = Vec::with_capacity(blocks * 16);
            for blk in b.chunks_exact(18) {
                let (d, codes) = blk.split_at(2);
                scale.push(f16::from_le_bytes([d.first().copied().unwrap_or(0), d.get(1).copied().unwrap_or(0)]));
                q.extend_from_slice(codes);
            }
            MatrixData::Q4 { q, scale }
        };
        Ok(HostMatrix { rows, cols, data })
    }

    fn order(&self, name: &str) -> Option<u64> {
        Some(self.stored.get(&self.map.get(name)?.0)?.start as u64)
    }

    fn is_packed(&self, name: &str) -> bool {
        matches!(self.map.get(name), Some((stored, Fix::Same)) if self.stored.get(stored).is_some_and(|s| matches!(s.ty, GgmlType::Q8_0 | GgmlType::Q4_0)))
    }

    /// The file's scalar metadata, and `ggml_type:<official name>` → the stored type of each
    /// tensor (`Q8_0`, `F16` …).
    fn metadata(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self.meta.iter().filter(|(_, v)| !matches!(v, Value::Array(_))).map(|(k, v)| (k.clone(), v.text())).collect();
        for (official, (stored, _)) in &self.map {
            if let Some(s) = self.stored.get(stored) {
                m.insert(format!("ggml_type:{official}"), s.ty.name().to_string());
            }
        }
        m
    }

    fn layout(&self) -> Layout {
        Layout::Gguf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_like_llama_cpp() {
        assert_eq!(unescape_rwkv(r"\n\t\\x").as_deref(), Some(&b"\n\t\\x"[..]));
        assert_eq!(unescape_rwkv(r"\xe4\xb8\x80").as_deref(), Some(&"一".as_bytes()[..]));
        assert_eq!(unescape_rwkv(r"it\'s").as_deref(), Some(&b"it's"[..]));
        assert_eq!(unescape_rwkv(r"\x4"), None);
    }
}
