//! A model loaded from a file known only by the byte ranges fetched so far, converted on the
//! way: the browser loads a `.pth` or a safetensors file of any layout from IndexedDB chunks or
//! range requests this way, and with `quant` (`Gander.load(url, { quant: 'int8' })`) each
//! matrix is quantised as it arrives, so neither JS nor wasm ever holds the whole file.
//!
//! The caller's loop: [`PullLoader::step`] says which bytes it needs ([`Pull::Need`]), the
//! caller fetches them and hands them over with [`PullLoader::add`], and steps again, until
//! [`Pull::Done`]. Inside, the container's own reader (zip and pickle for a `.pth`, the
//! safetensors header) runs over a [`Sparse`] view of the fetched bytes; a read of bytes not
//! fetched yet fails and names them. Tensors are read one at a time into the next part's set
//! ([`Part`]); when the part has every tensor, the fetched bytes are dropped and the part is
//! built. Peak memory: the part's raw tensors, the bytes of the one being read, and one matrix
//! being converted (for a 1.5B model the embedding: 256 MiB in bf16, 512 MiB as f32), plus the
//! weights loaded so far.

use super::{ModelBuilder, Part};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::gander::{self, Quant};
use crate::format::quant::HostMatrix;
use crate::format::sparse::{self, Parts, Sparse};
use crate::format::{RawTensor, TensorInfo, TensorSource};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What [`PullLoader::step`] needs or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    /// Fetch bytes `start..end` and [`PullLoader::add`] them (in pieces if you like).
    Need(u64, u64),
    /// A part was built: (parts loaded, parts in all).
    Built(usize, usize),
    /// Every part is loaded: [`PullLoader::finish`].
    Done,
}

/// Vectors up to this size are copied when read (the fingerprint reads some twice).
const COPY_MAX: usize = 1 << 20;

/// A tensor read ahead: a matrix already in its target storage, or anything else as stored.
enum Got {
    Matrix(HostMatrix),
    Raw(RawTensor),
}

/// One part's tensors, read ahead, served to the builder.
struct Fetched<'a> {
    infos: &'a BTreeMap<String, TensorInfo>,
    got: &'a mut BTreeMap<String, Got>,
}

impl TensorSource for Fetched<'_> {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        match self.got.get(name) {
            Some(Got::Raw(t)) if t.data.len() <= COPY_MAX => Ok(t.clone()),
            Some(Got::Raw(_)) => match self.got.remove(name) {
                Some(Got::Raw(t)) => Ok(t),
                _ => Err(Error::BadInput(format!("tensor `{name}` was read already"))),
            },
            Some(Got::Matrix(_)) => Err(Error::BadInput(format!("`{name}` is a matrix: read it with read_matrix"))),
            None => Err(Error::BadInput(format!("tensor `{name}` was not read ahead (or was read already)"))),
        }
    }

    fn read_matrix(&mut self, name: &str) -> Result<HostMatrix> {
        match self.got.remove(name) {
            Some(Got::Matrix(m)) => Ok(m),
            Some(Got::Raw(t)) => RawSource(Some(t)).read_matrix(name),
            None => Err(Error::BadInput(format!("matrix `{name}` was not read ahead (or was read already)"))),
        }
    }
}

/// One raw tensor as a source, for the default [`TensorSource::read_matrix`].
struct RawSource(Option<RawTensor>);

impl TensorSource for RawSource {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        static EMPTY: BTreeMap<String, TensorInfo> = BTreeMap::new();
        &EMPTY
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        self.0.take().ok_or_else(|| Error::BadInput(format!("`{name}` was read already")))
    }
}

/// A model being loaded from fetched byte ranges (see the module doc).
pub struct PullLoader<B: Backend> {
    len: u64,
    parts: Parts,
    missing: Rc<Cell<Option<(u64, u64)>>>,
    backend: Option<B>,
    quant: Option<Quant>,
    src: Option<Box<dyn TensorSource>>,
    builder: Option<ModelBuilder<B>>,
    got: BTreeMap<String, Got>,
    /// Bytes handed over so far.
    pub fetched: u64,
}

impl<B: Backend> PullLoader<B> {
    /// A loader for a file of `len` bytes onto `backend`, its matrices converted to `quant`
    /// (None: as stored).
    pub fn new(backend: B, len: u64, quant: Option<Quant>) -> Self {
        let parts: Parts = Default::default();
        PullLoader { len, parts, missing: Default::default(), backend: Some(backend), quant, src: None, builder: None, got: BTreeMap::new(), fetched: 0 }
    }

    /// Hand over the bytes fetched from `start`.
    pub fn add(&mut self, start: u64, bytes: Vec<u8>) -> Result<()> {
        let end = start.checked_add(bytes.len() as u64).filter(|&e| e <= self.len);
        if end.is_none() {
            return Err(Error::BadInput(format!("bytes {start}..+{} lie outside the file of {} bytes", bytes.len(), self.len)));
        }
        self.fetched += bytes.len() as u64;
        sparse::add(&mut self.parts.borrow_mut(), start, bytes);
        Ok(())
    }

    /// The next thing to do: fetch bytes, or a part built, or done.
    pub fn step(&mut self) -> Result<Pull> {
        self.missing.set(None);
        if self.src.is_none() {
            let reader = Sparse::new(self.len, self.parts.clone()).with_missing(self.missing.clone());
            let src = match crate::format::open_reader(reader, self.len) {
                Ok(s) => s,
                Err(e) => return miss_or(&self.missing, e),
            };
            let backend = self.backend.take().ok_or_else(|| Error::BadInput("the loader has finished".into()))?;
            let mut b = ModelBuilder::new(backend, src.as_ref())?;
            if let Some(q) = self.quant {
                b.quant = q.name().to_string();
            }
            self.builder = Some(b);
            self.src = Some(src);
        }
        let (Some(src), Some(b)) = (self.src.as_mut(), self.builder.as_mut()) else {
            return Err(Error::BadInput("the loader has finished".into()));
        };
        let Some(part) = b.next_part() else { return Ok(Pull::Done) };
        let names = part_tensors(src.as_ref(), part);
        for name in names {
            if self.got.contains_key(&name) {
                continue;
            }
            self.missing.set(None);
            // Matrices through read_matrix, so that a source's packed codes (a Gander or GGUF
            // file) stay packed; each is converted to its target storage as it arrives.
            let matrix = src.tensors().get(&name).is_some_and(|i| gander::is_matrix(&name, i));
            let got = if matrix { src.read_matrix(&name).map(Got::Matrix) } else { src.read(&name).map(Got::Raw) };
            match got {
                Ok(got) => {
                    drop_read_bytes(&mut self.parts.borrow_mut());
                    let got = match (got, self.quant, src.tensors().get(&name)) {
                        (Got::Matrix(m), Some(q), Some(info)) => Got::Matrix(gander::to_storage(&name, m, gander::storage_of(&name, info, q))?),
                        (got, _, _) => got,
                    };
                    self.got.insert(name, got);
                }
                Err(e) => return miss_or(&self.missing, e),
            }
        }
        let mut fetched = Fetched { infos: src.tensors(), got: &mut self.got };
        let res = b.load_next(&mut fetched);
        self.got.clear();
        res?;
        let (done, total) = b.progress();
        Ok(Pull::Built(done, total))
    }

    /// The loaded model, once [`Self::step`] said [`Pull::Done`].
    pub fn finish(&mut self) -> Result<super::Model<B>> {
        match self.builder.take() {
            Some(b) if b.next_part().is_none() => b.finish(),
            Some(b) => {
                self.builder = Some(b);
                Err(Error::BadInput("the model is not loaded completely yet: step until done".into()))
            }
            None => Err(Error::BadInput("the loader has not started or has finished".into())),
        }
    }
}

/// Fetched bytes kept for the reads to come (small tensors ahead of the last miss), at most.
const KEEP_MAX: usize = 32 << 20;

/// After a tensor was read: drop the big ranges (each was fetched for one big tensor, now
/// copied out), and everything when what is left passes [`KEEP_MAX`]. A byte dropped too early
/// is fetched again, never read wrong.
fn drop_read_bytes(parts: &mut BTreeMap<u64, Vec<u8>>) {
    parts.retain(|_, b| b.len() <= COPY_MAX);
    if parts.values().map(Vec::len).sum::<usize>() > KEEP_MAX {
        parts.clear();
    }
}

/// `e` as a request for the bytes a read missed, or as the error it is.
fn miss_or(missing: &Cell<Option<(u64, u64)>>, e: Error) -> Result<Pull> {
    match missing.take() {
        Some((a, b)) => Ok(Pull::Need(a, b)),
        None => Err(e),
    }
}

/// The names of the tensors `part` reads, in file order where the source knows it.
fn part_tensors(src: &dyn TensorSource, part: Part) -> Vec<String> {
    let prefixes = part.prefixes();
    let mut v: Vec<String> = src.tensors().keys().filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str()))).cloned().collect();
    v.sort_by_cached_key(|n| (src.order(n), n.clone()));
    v
}
