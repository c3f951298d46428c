//! Checkpoints read from files known only by the byte ranges fetched so far, converted on the
//! way. The browser loads a `.pth`, a GGUF file, a safetensors file of any layout or
//! safetensors shards from IndexedDB chunks or range requests this way ([`PullLoader`]); with
//! `quant` (`Gander.load(url, { quant: 'int8' })`) each matrix is quantised as it arrives, so
//! neither JS nor wasm ever holds the whole file. [`PullConverter`] writes a Gander file the same
//! way, piece by piece (`ModelStore.put(name, url, { quant })`).
//!
//! The caller's loop: `step()` says which bytes of which file it needs ([`Pull::Need`]), the
//! caller fetches them and hands them over with `add()`, and steps again. Inside, the
//! container's own reader (zip and pickle for a `.pth`, the safetensors or GGUF header) runs
//! over a [`Sparse`] view of the fetched bytes; a read of bytes not fetched yet fails and names
//! them. Tensors are read one at a time, in file order, into the next part's set ([`Part`]).
//! With `quant`, a matrix bigger than [`BLOCK_BYTES`] as stored is fetched and converted block
//! by block ([`TensorSource::read_rows`], [`gander::RowsTo`]; safetensors and `.pth` files), so
//! it is never whole as stored; other big tensors are read whole and their bytes dropped once
//! read (GGUF's K-quants and Q4_1/Q5_x pass through f32 a whole matrix at a time). Peak memory
//! beyond the weights loaded so far: a part's small tensors, one block and its read-ahead, the
//! matrix being converted (in its target format: the weight itself once done), and (on the
//! GPU) the packed copy of the matrix being uploaded.

use super::{ModelBuilder, Part};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::gander::{self, Quant, Read as Got};
use crate::format::quant::HostMatrix;
use crate::format::sparse::{self, Parts, Sparse};
use crate::format::{RawTensor, TensorInfo, TensorSource};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What [`PullLoader::step`] needs or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    /// Fetch bytes `start..end` of file `file` and [`PullLoader::add`] them (in pieces if you
    /// like).
    Need(usize, u64, u64),
    /// A part was built: (parts loaded, parts in all).
    Built(usize, usize),
    /// Every part is loaded: [`PullLoader::finish`].
    Done,
}

/// Vectors up to this size are copied when read (the fingerprint reads some twice).
const COPY_MAX: usize = 1 << 20;

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
            Some(Got::Raw(t)) => crate::format::raw_matrix(name, t),
            None => Err(Error::BadInput(format!("matrix `{name}` was not read ahead (or was read already)"))),
        }
    }
}

/// One file of a checkpoint (a shard, or the whole file) and the bytes fetched of it.
struct File {
    /// The shard's file name (the index maps tensors to it); empty for a single file.
    name: String,
    len: u64,
    parts: Parts,
    /// What its last read missed.
    missing: Rc<Cell<Option<(u64, u64)>>>,
    /// Whether big parts are dropped once read ([`Sparse::consuming`]): on once the headers
    /// are parsed.
    consume: Rc<Cell<bool>>,
}

impl File {
    fn reader(&self) -> Sparse {
        Sparse::new(self.len, self.parts.clone()).with_missing(self.missing.clone()).consuming(COPY_MAX, self.consume.clone())
    }
}

/// The files of a checkpoint and what was fetched of each.
struct Files {
    files: Vec<File>,
    /// A shard index (`model.safetensors.index.json`), when one came with the shards.
    index: Option<Vec<u8>>,
    fetched: u64,
}

impl Files {
    fn new(files: Vec<(String, u64)>, index: Option<Vec<u8>>) -> Files {
        let files = files
            .into_iter()
            .map(|(name, len)| File { name, len, parts: Default::default(), missing: Default::default(), consume: Default::default() })
            .collect();
        Files { files, index, fetched: 0 }
    }

    fn add(&mut self, file: usize, start: u64, bytes: Vec<u8>) -> Result<()> {
        let f = self.files.get(file).ok_or_else(|| Error::BadInput(format!("file {file}: the loader has {} files", self.files.len())))?;
        let end = start.checked_add(bytes.len() as u64).filter(|&e| e <= f.len);
        if end.is_none() {
            return Err(Error::BadInput(format!("bytes {start}..+{} lie outside file {file} of {} bytes", bytes.len(), f.len)));
        }
        self.fetched += bytes.len() as u64;
        sparse::add(&mut f.parts.borrow_mut(), start, bytes);
        Ok(())
    }

    /// Forget the last misses (before a new attempt).
    fn clear_missing(&self) {
        for f in &self.files {
            f.missing.set(None);
        }
    }

    /// After a tensor was read ([`drop_read_bytes`]).
    fn drop_read(&self) {
        for f in &self.files {
            drop_read_bytes(&mut f.parts.borrow_mut());
        }
    }

    /// `e` as a request for the bytes a read missed, or as the error it is.
    fn miss_or(&self, e: Error) -> Result<(usize, u64, u64)> {
        for (i, f) in self.files.iter().enumerate() {
            if let Some((a, b)) = f.missing.take() {
                return Ok((i, a, b));
            }
        }
        Err(e)
    }

    /// The checkpoint over the fetched bytes ([`Self::open_files`]); from then on big parts are
    /// dropped once read.
    fn open(&self) -> Result<Box<dyn TensorSource>> {
        let src = self.open_files()?;
        for f in &self.files {
            f.consume.set(true);
        }
        Ok(src)
    }

    /// One file of any container, or safetensors shards.
    fn open_files(&self) -> Result<Box<dyn TensorSource>> {
        use crate::format::{layout, safetensors::SafetensorsFile, sharded};
        if let ([f], None) = (self.files.as_slice(), &self.index) {
            return crate::format::open_reader(f.reader(), f.len);
        }
        let mut shards = Vec::new();
        for f in &self.files {
            shards.push((f.name.clone(), Box::new(SafetensorsFile::from_read_seek(f.reader(), f.len)?) as Box<dyn TensorSource>));
        }
        let map = match &self.index {
            Some(bytes) => sharded::parse_index(bytes)?,
            None => {
                let mut map = BTreeMap::new();
                for (file, s) in &shards {
                    for t in s.tensors().keys() {
                        if let Some(other) = map.insert(t.clone(), file.clone()) {
                            return Err(Error::BadFile(format!(
                                "`{t}` is in both `{other}` and `{file}`; give the shards of one checkpoint (or its model.safetensors.index.json)"
                            )));
                        }
                    }
                }
                map
            }
        };
        layout::wrap(Box::new(sharded::Sharded::new(&map, shards)?))
    }
}

/// A model being loaded from fetched byte ranges (see the module doc).
pub struct PullLoader<B: Backend> {
    files: Files,
    backend: Option<B>,
    quant: Option<Quant>,
    src: Option<Box<dyn TensorSource>>,
    builder: Option<ModelBuilder<B>>,
    got: BTreeMap<String, Got>,
    /// The big matrix being converted block by block ([`BLOCK_BYTES`]), across steps.
    rows: Option<gander::RowsTo>,
    block_bytes: usize,
}

/// Stored bytes of a big matrix read and converted at a time: a matrix above this is never
/// held whole as stored, only block by block (with `quant`, where the container can read rows).
const BLOCK_BYTES: usize = 16 << 20;

impl<B: Backend> PullLoader<B> {
    /// A loader for a file of `len` bytes onto `backend`, its matrices converted to `quant`
    /// (None: as stored).
    pub fn new(backend: B, len: u64, quant: Option<Quant>) -> Self {
        Self::sharded(backend, vec![(String::new(), len)], None, quant)
    }

    /// A loader for a checkpoint in several safetensors files (`(file name, length)`), joined by
    /// `index` (the bytes of `model.safetensors.index.json`) or, without one, by the tensors
    /// each file's header lists (a tensor in two files is refused).
    pub fn sharded(backend: B, files: Vec<(String, u64)>, index: Option<Vec<u8>>, quant: Option<Quant>) -> Self {
        PullLoader {
            files: Files::new(files, index),
            backend: Some(backend),
            quant,
            src: None,
            builder: None,
            got: BTreeMap::new(),
            rows: None,
            block_bytes: BLOCK_BYTES,
        }
    }

    /// With `quant`, read a matrix of more than `bytes` (as stored) `bytes` at a time and convert
    /// it as it comes ([`BLOCK_BYTES`] unless set; tests use small blocks on small models).
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(1);
        self
    }

    /// Hand over the bytes of file `file` (0 for a single file) fetched from `start`.
    pub fn add(&mut self, file: usize, start: u64, bytes: Vec<u8>) -> Result<()> {
        self.files.add(file, start, bytes)
    }

    /// Bytes handed over so far.
    pub fn fetched(&self) -> u64 {
        self.files.fetched
    }

    /// The next thing to do: fetch bytes, or a part built, or done.
    pub fn step(&mut self) -> Result<Pull> {
        self.files.clear_missing();
        if self.src.is_none() {
            let src = match self.files.open() {
                Ok(s) => s,
                Err(e) => return need(&self.files, e),
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
            // Packed codes (a Gander or GGUF file's) stay packed; anything else is read as
            // stored, its bytes dropped before it is converted a few rows at a time.
            let info = src.tensors().get(&name).cloned();
            let matrix = info.as_ref().is_some_and(|i| gander::is_matrix(&name, i));
            if let (Some(q), Some(info), true) = (self.quant, &info, matrix && !src.is_packed(&name)) {
                let how = gander::storage_of(&name, info, q);
                let finished = loop {
                    match rows_step(src.as_mut(), &self.files, &mut self.rows, self.block_bytes, &name, info, how) {
                        Ok(Rows::Block) => {}
                        Ok(Rows::Whole) => break None,
                        Ok(Rows::Finished(r)) => break Some(r.finish()?),
                        Err(e) => return need(&self.files, e),
                    }
                };
                if let Some(m) = finished {
                    self.got.insert(name, Got::Matrix(m));
                    continue;
                }
            }
            let got = gander::read_for_storage(src.as_mut(), &name);
            match got {
                Ok(got) => {
                    self.files.drop_read();
                    let got = match (self.quant, info) {
                        (Some(q), Some(info)) if matrix => Got::Matrix(gander::matrix_in(&name, got, gander::storage_of(&name, &info, q))?),
                        _ => got,
                    };
                    self.got.insert(name, got);
                }
                Err(e) => return need(&self.files, e),
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

/// Where a big matrix's block-by-block conversion stands after [`rows_step`].
enum Rows {
    /// Not big, not a float matrix, or the container cannot read rows: read it whole.
    Whole,
    /// One more block was converted (kept in the caller's `rows`).
    Block,
    /// Every row is in.
    Finished(gander::RowsTo),
}

/// Fetch and convert the next block of the big raw matrix `name`, keeping the conversion in
/// `rows` between steps. A miss is returned as the read's error, so that the caller asks for
/// the block.
fn rows_step(
    src: &mut dyn TensorSource,
    files: &Files,
    rows: &mut Option<gander::RowsTo>,
    block: usize,
    name: &str,
    info: &TensorInfo,
    how: Quant,
) -> Result<Rows> {
    if !big(info, block) {
        return Ok(Rows::Whole);
    }
    if rows.as_ref().is_none_or(|r| r.name() != name) {
        *rows = gander::RowsTo::new(name, info, how)?;
    }
    let Some(conv) = rows.as_mut() else { return Ok(Rows::Whole) };
    let next = conv.next_rows(block);
    if next.is_empty() {
        return Ok(rows.take().map_or(Rows::Whole, Rows::Finished));
    }
    let want = next.len() * conv.row_bytes();
    match src.read_rows(name, next) {
        // Before any block only: a converter has already written the blocks it converted.
        None if conv.done == 0 => {
            *rows = None;
            Ok(Rows::Whole)
        }
        None => Err(Error::BadFile(format!("`{name}`: its rows could be read at first, then not"))),
        Some(read) => {
            let t = read?;
            if t.data.len() != want {
                return Err(Error::BadFile(format!("`{name}`: {} bytes read for rows of {want}", t.data.len())));
            }
            files.drop_read();
            conv.push(&t.data)?;
            Ok(Rows::Block)
        }
    }
}

/// Whether a tensor of `info` takes more than `block` bytes as stored.
fn big(info: &TensorInfo, block: usize) -> bool {
    info.numel().ok().and_then(|n| n.checked_mul(info.dtype.size())).is_some_and(|b| b > block)
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

/// `e` as a [`Pull::Need`] for the bytes a read missed, or as the error it is.
fn need(files: &Files, e: Error) -> Result<Pull> {
    files.miss_or(e).map(|(f, a, b)| Pull::Need(f, a, b))
}

/// The names of the tensors `part` reads, in file order where the source knows it.
fn part_tensors(src: &dyn TensorSource, part: Part) -> Vec<String> {
    let prefixes = part.prefixes();
    super::file_order(src, src.tensors().keys().filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str()))).cloned().collect())
}

/// What [`PullConverter::step`] needs or made.
#[derive(Debug, PartialEq, Eq)]
pub enum Convert {
    /// Fetch bytes `start..end` of file `file` and [`PullConverter::add`] them.
    Need(usize, u64, u64),
    /// The Gander file's header block, and the whole file's size.
    Header(Vec<u8>, u64),
    /// The next tensor's bytes, in file order: (bytes, tensors done, tensors in all).
    Tensor(Vec<u8>, usize, usize),
    /// Every byte was given.
    Done,
}

/// A checkpoint converted to a Gander file piece by piece from fetched byte ranges: the header
/// first (laid out from shapes), then each tensor's bytes in order, one tensor in memory at a
/// time. The same bytes as `gander convert` ([`gander::write`]).
pub struct PullConverter {
    files: Files,
    quant: Quant,
    src: Option<Box<dyn TensorSource>>,
    plan: Option<gander::Plan>,
    next: usize,
    /// The big matrix being converted block by block, across steps ([`PullLoader`]'s way).
    rows: Option<gander::RowsTo>,
    block_bytes: usize,
}

impl PullConverter {
    /// A converter of files (`(file name, length)`: one file, or safetensors shards joined by
    /// `index` or by their headers) to a Gander file of `quant`.
    pub fn new(files: Vec<(String, u64)>, index: Option<Vec<u8>>, quant: Quant) -> Self {
        PullConverter { files: Files::new(files, index), quant, src: None, plan: None, next: 0, rows: None, block_bytes: BLOCK_BYTES }
    }

    /// Read a matrix of more than `bytes` (as stored) `bytes` at a time and write its codes as
    /// they come ([`BLOCK_BYTES`] unless set).
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(1);
        self
    }

    /// Hand over the bytes of file `file` fetched from `start`.
    pub fn add(&mut self, file: usize, start: u64, bytes: Vec<u8>) -> Result<()> {
        self.files.add(file, start, bytes)
    }

    /// The source's summary (config, parameters), once the header was given.
    pub fn summary(&self) -> Result<super::inspect::Summary> {
        let src = self.src.as_ref().ok_or_else(|| Error::BadInput("the converter has not read the headers yet".into()))?;
        super::inspect::summarize(src.as_ref())
    }

    /// The next piece of the Gander file, or the bytes to fetch first.
    pub fn step(&mut self) -> Result<Convert> {
        let need = |files: &Files, e: Error| files.miss_or(e).map(|(f, a, b)| Convert::Need(f, a, b));
        self.files.clear_missing();
        if self.src.is_none() {
            match self.files.open() {
                Ok(s) => self.src = Some(s),
                Err(e) => return need(&self.files, e),
            }
        }
        let Some(src) = self.src.as_mut() else { return Err(Error::BadInput("the converter has no source".into())) };
        let Some(plan) = &self.plan else {
            let cfg = super::Config::from_tensors(src.tensors())?;
            let fp = match super::fingerprint(&cfg, src.as_mut()) {
                Ok(fp) => fp,
                Err(e) => return need(&self.files, e),
            };
            let names = super::file_order(src.as_ref(), cfg.expected_shapes().into_keys().collect());
            let plan = gander::plan(src.as_ref(), &names, self.quant, &crate::config::fingerprint_hex(&fp))?;
            let (header, total) = (plan.header.clone(), plan.header.len() as u64 + plan.data_bytes);
            self.plan = Some(plan);
            return Ok(Convert::Header(header, total));
        };
        let Some((name, how)) = plan.tensors.get(self.next) else { return Ok(Convert::Done) };
        let total = plan.tensors.len();
        // A big raw matrix: its codes block by block, then its scales.
        if let Some(info) = src.tensors().get(name).cloned().filter(|i| gander::is_matrix(name, i) && !src.is_packed(name)) {
            match rows_step(src.as_mut(), &self.files, &mut self.rows, self.block_bytes, name, &info, *how) {
                Ok(Rows::Whole) => {}
                Ok(Rows::Block) => return Ok(Convert::Tensor(self.rows.as_mut().map(gander::RowsTo::take_stored).unwrap_or_default(), self.next, total)),
                Ok(Rows::Finished(r)) => {
                    self.next += 1;
                    return Ok(Convert::Tensor(r.finish_stored()?, self.next, total));
                }
                Err(e) => return need(&self.files, e),
            }
        }
        let got = match gander::read_for_storage(src.as_mut(), name) {
            Ok(g) => g,
            Err(e) => return need(&self.files, e),
        };
        self.files.drop_read();
        let bytes = gander::stored_bytes(name, got, *how)?;
        self.next += 1;
        Ok(Convert::Tensor(bytes, self.next, total))
    }
}
