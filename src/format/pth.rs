//! Official PyTorch checkpoints (`torch.save` zip archives), read without Python (spec §1.1).
//!
//! The archive holds `<prefix>/data.pkl` (a state-dict pickle, parsed by the restricted
//! [`pickle`](super::pickle) reader) and `<prefix>/data/<key>` (raw little-endian storages).
//! Tensors are read one at a time; `storage_offset`, `size` and `stride` are honoured, and every
//! extent is checked against the storage's real length before any copy.

use super::pickle::{parse_state_dict, TensorRef};
use super::{RawTensor, ReadSeek, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// Largest `data.pkl` accepted; a 13B checkpoint's pickle is about 200 KB.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

type Archive = zip::ZipArchive<Box<dyn ReadSeek>>;

/// An open `.pth` file.
pub struct PthFile {
    zip: Archive,
    prefix: String,
    refs: BTreeMap<String, TensorRef>,
    infos: BTreeMap<String, TensorInfo>,
}

fn zip_err(e: zip::result::ZipError) -> Error {
    Error::BadFile(format!("not a readable PyTorch zip archive ({e}); is the file complete?"))
}

impl PthFile {
    /// Open a `.pth` file on disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(Box::new(std::io::BufReader::new(f)))
    }

    /// Parse a `.pth` held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_reader(Box::new(std::io::Cursor::new(bytes)))
    }

    /// Read a `.pth` through any reader: only the zip directory, `data.pkl` and the storages
    /// read are touched (the browser's reader over fetched byte ranges,
    /// [`super::sparse::Sparse`]).
    pub fn from_read_seek(r: impl Read + Seek + 'static) -> Result<Self> {
        Self::from_reader(Box::new(r))
    }

    /// The archive's zip directory and `data.pkl`, nothing else.
    fn open_archive(r: Box<dyn ReadSeek>) -> Result<(Archive, String, Vec<u8>, u64)> {
        let mut r = r;
        let archive_len = r.seek(std::io::SeekFrom::End(0)).map_err(|e| Error::BadFile(format!("reading .pth: {e}")))?;
        r.seek(std::io::SeekFrom::Start(0)).map_err(|e| Error::BadFile(format!("reading .pth: {e}")))?;
        let mut zip = zip::ZipArchive::new(r).map_err(zip_err)?;
        let pkl_name = zip
            .file_names()
            .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .min_by_key(|n| n.len())
            .map(str::to_string)
            .ok_or_else(|| Error::BadFile("zip archive has no data.pkl: not a PyTorch checkpoint".into()))?;
        let prefix = pkl_name.strip_suffix("data.pkl").unwrap_or("").to_string();
        match zip.by_name(&format!("{prefix}byteorder")) {
            Ok(mut f) => {
                let mut s = String::new();
                // A non-UTF-8 byteorder entry is treated as "not little"; a read that fails
                // (bytes not fetched yet) is an error, never a skipped check.
                if let Err(e) = f.by_ref().take(16).read_to_string(&mut s) {
                    if e.kind() != std::io::ErrorKind::InvalidData {
                        return Err(Error::BadFile(format!("reading the byteorder entry: {e}")));
                    }
                }
                if s.trim() != "little" {
                    return Err(Error::Unsupported(format!("checkpoint byte order `{}` (only little-endian)", s.trim())));
                }
            }
            Err(zip::result::ZipError::FileNotFound) => {}
            Err(e) => return Err(zip_err(e)),
        }
        let pickle = {
            let mut f = zip.by_name(&pkl_name).map_err(zip_err)?;
            if f.size() > MAX_PICKLE_BYTES {
                return Err(Error::BadFile(format!("data.pkl is {} bytes, more than a state dict needs", f.size())));
            }
            let mut buf = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut buf).map_err(|e| Error::BadFile(format!("reading data.pkl: {e}")))?;
            buf
        };
        Ok((zip, prefix, pickle, archive_len))
    }

    fn from_reader(r: Box<dyn ReadSeek>) -> Result<Self> {
        let (zip, prefix, pickle, archive_len) = Self::open_archive(r)?;
        let mut refs = BTreeMap::new();
        let mut infos = BTreeMap::new();
        for (name, t) in parse_state_dict(&pickle)? {
            let info = TensorInfo { dtype: t.dtype, shape: t.size.clone() };
            // Check every extent now, before anything is allocated: the header must not promise
            // more than the archive holds (a 100-byte file cannot ask for gigabytes). The zip
            // directory says which storages exist; their sizes are checked when they are read
            // (an entry's size needs its local header: a read per storage, which a reader over
            // fetched ranges would pay at open).
            let entry = format!("{prefix}data/{}", t.storage_key);
            if zip.index_for_name(&entry).is_none() {
                return Err(Error::BadFile(format!("storage `{entry}` of tensor `{name}` is missing; is the file complete?")));
            }
            let storage_bytes = t.storage_numel.checked_mul(t.dtype.size()).map_or(u64::MAX, |b| b as u64);
            check_view(&name, &t, storage_bytes, archive_len)?;
            if refs.insert(name.clone(), t).is_some() {
                return Err(Error::BadModel(format!("tensor `{name}` appears twice")));
            }
            infos.insert(name, info);
        }
        Ok(Self { zip, prefix, refs, infos })
    }
}

/// A `.pth`'s tensor names, dtypes and shapes, from its zip directory and `data.pkl` alone: no
/// storage is touched, so a reader over the fetched parts of a file
/// ([`super::sparse::Sparse`]) needs only those (`Gander.inspect`). Reading a tensor is refused.
pub struct PthHeaders {
    infos: BTreeMap<String, TensorInfo>,
}

impl PthHeaders {
    pub fn from_read_seek(r: impl Read + Seek + 'static) -> Result<Self> {
        let (_, _, pickle, archive_len) = PthFile::open_archive(Box::new(r))?;
        let mut infos = BTreeMap::new();
        for (name, t) in parse_state_dict(&pickle)? {
            let info = TensorInfo { dtype: t.dtype, shape: t.size };
            // The storages are not read here, but no tensor may claim more than the whole file.
            if info.numel()?.checked_mul(info.dtype.size()).is_none_or(|b| b as u64 > archive_len) {
                return Err(Error::BadFile(format!("tensor `{name}` of shape {:?} claims more bytes than the whole file; is the file corrupt?", info.shape)));
            }
            infos.insert(name, info);
        }
        Ok(PthHeaders { infos })
    }
}

impl TensorSource for PthHeaders {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        Err(Error::Unsupported(format!("reading `{name}`: only this checkpoint's headers were read")))
    }
}

/// Check that a tensor view lies inside its storage, that the storage fits its zip entry, and
/// that the entry is no larger than the archive itself.
fn check_view(name: &str, t: &TensorRef, entry_size: u64, archive_len: u64) -> Result<()> {
    let es = t.dtype.size();
    let numel = TensorInfo { dtype: t.dtype, shape: t.size.clone() }.numel()?;
    let max_index = t.size.iter().zip(&t.stride).try_fold(t.offset, |acc, (&n, &s)| if n == 0 { Some(acc) } else { acc.checked_add((n - 1).checked_mul(s)?) });
    let storage_bytes = t.storage_numel.checked_mul(es).map(|b| b as u64);
    let (Some(max_index), Some(storage_bytes)) = (max_index, storage_bytes) else {
        return Err(Error::BadFile(format!("tensor `{name}`: view extent overflows")));
    };
    if t.offset > t.storage_numel || (numel > 0 && max_index >= t.storage_numel) {
        return Err(Error::BadFile(format!("tensor `{name}` reaches past the end of its storage")));
    }
    if numel > t.storage_numel {
        return Err(Error::BadFile(format!("tensor `{name}` has more elements than its storage (broadcast views are not supported)")));
    }
    if entry_size > archive_len {
        return Err(Error::BadFile(format!("storage of tensor `{name}` claims {entry_size} bytes, more than the whole file; is the file corrupt?")));
    }
    if entry_size < storage_bytes {
        return Err(Error::BadFile(format!("storage of tensor `{name}` has {entry_size} bytes, {storage_bytes} expected; is the file truncated?")));
    }
    Ok(())
}

/// Element offsets (within the storage) of a strided view, in row-major order.
fn strided_offsets(t: &TensorRef) -> Vec<usize> {
    let numel: usize = t.size.iter().product();
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return out;
    }
    let mut idx = vec![0usize; t.size.len()];
    loop {
        out.push(t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>());
        // Odometer: bump the last index, carrying leftwards; done when every digit wrapped.
        let mut wrapped = true;
        for (i, &n) in idx.iter_mut().zip(&t.size).rev() {
            *i += 1;
            if *i < n {
                wrapped = false;
                break;
            }
            *i = 0;
        }
        if wrapped {
            return out;
        }
    }
}

impl TensorSource for PthFile {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    /// `torch.save` numbers storages in the order it writes them.
    fn order(&self, name: &str) -> Option<u64> {
        self.refs.get(name)?.storage_key.parse().ok()
    }

    /// Through the zip entry's own seekable reader, for a stored (uncompressed) entry and a
    /// contiguous view, as `torch.save` writes them.
    fn read_rows(&mut self, name: &str, rows: std::ops::Range<usize>) -> Option<Result<RawTensor>> {
        let t = self.refs.get(name)?;
        let (lo, hi, info) = super::row_span(&TensorInfo { dtype: t.dtype, shape: t.size.clone() }, &rows)?;
        let es = t.dtype.size() as u64;
        let contiguous = matches!((t.size.as_slice(), t.stride.as_slice()), ([_, c], [s0, s1]) if *s1 == 1 && s0 == c);
        let start = (t.offset as u64).checked_mul(es)?.checked_add(lo)?;
        let end = (t.offset as u64).checked_mul(es)?.checked_add(hi)?;
        // The view lies within the storage size the pickle declares (checked at open); a zip
        // entry shorter than that ends the read early (an error), never in another entry.
        if !contiguous || end > (t.storage_numel as u64).checked_mul(es)? {
            return None;
        }
        let entry = format!("{}data/{}", self.prefix, t.storage_key);
        let mut f = match self.zip.by_name_seek(&entry) {
            Ok(f) => f,
            // Compressed, or not found: the whole read says which.
            Err(zip::result::ZipError::UnsupportedArchive(_)) | Err(zip::result::ZipError::FileNotFound) => return None,
            Err(e) => return Some(Err(zip_err(e))),
        };
        let mut data = vec![0u8; (end - start) as usize];
        let read = f.seek(std::io::SeekFrom::Start(start)).and_then(|_| f.read_exact(&mut data));
        Some(read.map(|_| RawTensor { info, data }).map_err(|e| Error::BadFile(format!("reading rows {rows:?} of `{name}`: {e}; is the file truncated?"))))
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        let t = self.refs.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?.clone();
        let info = TensorInfo { dtype: t.dtype, shape: t.size.clone() };
        let numel = info.numel()?;
        let es = t.dtype.size();
        let storage_bytes = t.storage_numel * es; // checked at open
        let entry = format!("{}data/{}", self.prefix, t.storage_key);
        let mut f = self.zip.by_name(&entry).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => Error::BadFile(format!("storage `{entry}` of tensor `{name}` is missing; is the file complete?")),
            e => zip_err(e),
        })?;
        if f.size() < storage_bytes as u64 {
            return Err(Error::BadFile(format!("storage of tensor `{name}` has {} bytes, {storage_bytes} expected; is the file truncated?", f.size())));
        }
        let contiguous = {
            let mut expect = 1usize;
            let mut ok = true;
            for (&n, &s) in t.size.iter().zip(&t.stride).rev() {
                if n > 1 && s != expect {
                    ok = false;
                }
                expect = expect.saturating_mul(n);
            }
            ok
        };
        let read_err = |e: std::io::Error| Error::BadFile(format!("reading tensor `{name}`: {e}; is the file truncated?"));
        let data = if contiguous {
            std::io::copy(&mut f.by_ref().take((t.offset * es) as u64), &mut std::io::sink()).map_err(read_err)?;
            let mut buf = vec![0u8; numel * es];
            f.read_exact(&mut buf).map_err(read_err)?;
            buf
        } else {
            let mut storage = vec![0u8; storage_bytes];
            f.read_exact(&mut storage).map_err(read_err)?;
            let mut buf = Vec::with_capacity(numel * es);
            for off in strided_offsets(&t) {
                // Offsets were checked against the storage size above; a miss is a bad file.
                let elem = off.checked_mul(es).and_then(|a| storage.get(a..a.checked_add(es)?));
                buf.extend_from_slice(elem.ok_or_else(|| Error::BadFile(format!("`{name}`: element outside its storage")))?);
            }
            buf
        };
        Ok(RawTensor { info, data })
    }
}
