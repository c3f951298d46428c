//! Gander's own weight file (**contract**, docs/design.md "Gander weight file").
//!
//! A safetensors file whose `__metadata__` holds:
//!
//! | key              | value                                                               |
//! |------------------|---------------------------------------------------------------------|
//! | `format`         | `"gander"`                                                          |
//! | `version`        | `"1"` ([`VERSION`])                                                 |
//! | `arch`           | `"rwkv7"`                                                           |
//! | `quant`          | JSON object: matrix name → `"f32"`, `"f16"`, `"int8"` or `"q4"`       |
//! | `logical_shapes` | JSON object: quantised matrix name → `[rows, cols]`                 |
//! | `block_size`     | `"32"`: elements per quantisation block ([`quant::BLOCK`])           |
//! | `fingerprint`    | hex SHA-256 identifying the model (see `config::fingerprint`) |
//!
//! Names and orientation are the official ones (spec §1.3). An `f32`/`f16` matrix `X` is stored
//! as `X`; an `int8`/`q4` matrix as `X.q` (packed codes) and `X.scale` (f16 block scales), with
//! the layouts documented in [`quant::int8`] and [`quant::q4`]. Vectors are always f32. In the
//! quantised formats the small LoRA factors stay f16 (they are ~6% of a 0.1B model's weights and
//! feed the decay, which is sensitive); the embedding and head are quantised like every Linear.
//!
//! The file is written in one streaming pass (header first, computed from shapes), so a
//! conversion holds one tensor at a time, and read tensor by tensor through its header.

use super::quant::{self, HostMatrix, MatrixData};
use super::safetensors::SafetensorsFile;
use super::{le_words, DType, RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use half::f16;
use std::collections::BTreeMap;
use std::io::Write;

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// How the matrices of a Gander file are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    F32,
    F16,
    Int8,
    Q4,
}

impl Quant {
    /// Every quantisation, in the order they are listed to users. The package's JS lists the
    /// same names (`QUANTS` in pkg-template/options.js; tests/quant.rs checks they agree).
    pub const ALL: [Quant; 4] = [Quant::F32, Quant::F16, Quant::Int8, Quant::Q4];

    /// Parse a `--quant` value.
    pub fn parse(s: &str) -> Result<Quant> {
        Quant::ALL.into_iter().find(|q| q.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Quant::ALL.iter().map(|q| q.name()).collect();
            Error::BadInput(format!("--quant {s}: expected one of {}", names.join(", ")))
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Int8 => "int8",
            Quant::Q4 => "q4",
        }
    }
}

/// What the metadata of a Gander file says.
#[derive(Clone, Debug, PartialEq)]
pub struct GanderMeta {
    pub version: u32,
    pub quant: BTreeMap<String, String>,
    pub logical_shapes: BTreeMap<String, [usize; 2]>,
    pub fingerprint: Option<String>,
}

fn json_map<T: serde::de::DeserializeOwned>(meta: &BTreeMap<String, String>, key: &str) -> Result<BTreeMap<String, T>> {
    match meta.get(key) {
        Some(q) => serde_json::from_str(q).map_err(|e| Error::BadFile(format!("Gander `{key}` metadata: {e}"))),
        None => Ok(BTreeMap::new()),
    }
}

/// Parse Gander metadata; `Ok(None)` for files that are not Gander files.
pub fn parse_meta(meta: &BTreeMap<String, String>) -> Result<Option<GanderMeta>> {
    if meta.get("format").map(String::as_str) != Some("gander") {
        return Ok(None);
    }
    let version: u32 = meta.get("version").and_then(|v| v.parse().ok()).ok_or_else(|| Error::BadFile("Gander file without a valid `version`".into()))?;
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "Gander file version {version}; this build reads version {VERSION}. Convert the original checkpoint again with this build"
        )));
    }
    match meta.get("arch").map(String::as_str) {
        Some("rwkv7") => {}
        other => return Err(Error::Unsupported(format!("Gander file for arch {other:?}; only rwkv7"))),
    }
    let quant: BTreeMap<String, String> = json_map(meta, "quant")?;
    let logical_shapes: BTreeMap<String, [usize; 2]> = json_map(meta, "logical_shapes")?;
    let packed = quant.values().any(|q| q == "int8" || q == "q4");
    if packed && meta.get("block_size").map(String::as_str) != Some("32") {
        return Err(Error::Unsupported(format!("Gander block size {:?}; this build reads 32", meta.get("block_size"))));
    }
    Ok(Some(GanderMeta { version, quant, logical_shapes, fingerprint: meta.get("fingerprint").cloned() }))
}

/// The Gander metadata of a source, if it is a Gander file.
pub fn read_meta(src: &dyn TensorSource) -> Result<Option<GanderMeta>> {
    parse_meta(&src.metadata())
}

/// True for the tensors a Gander file stores in the requested matrix format: every 2-D weight
/// except the per-head bonus `r_k`, which is a small vector in disguise.
pub fn is_matrix(name: &str, info: &TensorInfo) -> bool {
    info.shape.len() == 2 && info.shape.iter().all(|&d| d > 1) && !name.ends_with("att.r_k")
}

/// The LoRA factors (and DeepEmbed's `s1/s2`, the same kind of thin factor), which stay f16 in
/// the quantised formats.
fn is_lora(name: &str) -> bool {
    ["w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"].iter().any(|s| name.ends_with(&format!(".att.{s}")))
        || name.ends_with(".ffn.s1")
        || name.ends_with(".ffn.s2")
}

/// A Gander file, presented with its logical tensors: a quantised `X` appears as `X` (its `.q`
/// and `.scale` are hidden), reads as f32 through [`TensorSource::read`] and packed through
/// [`TensorSource::read_matrix`].
pub struct GanderSource {
    inner: SafetensorsFile,
    meta: GanderMeta,
    infos: BTreeMap<String, TensorInfo>,
}

/// Wrap a safetensors file: Gander files get their logical view, others pass through.
pub fn wrap(st: SafetensorsFile) -> Result<Box<dyn TensorSource>> {
    match parse_meta(&st.metadata())? {
        Some(meta) => Ok(Box::new(GanderSource::new(st, meta)?)),
        None => Ok(Box::new(st)),
    }
}

impl GanderSource {
    fn new(inner: SafetensorsFile, meta: GanderMeta) -> Result<Self> {
        let phys = inner.tensors();
        let bad = |m: String| Error::BadFile(format!("Gander file: {m}"));
        let expect = |name: &str, dtype: DType, shape: &[usize]| -> Result<()> {
            match phys.get(name) {
                Some(i) if i.dtype == dtype && i.shape == shape => Ok(()),
                Some(i) => Err(bad(format!("`{name}` is {:?} {:?}, expected {dtype:?} {shape:?}", i.dtype, i.shape))),
                None => Err(bad(format!("missing tensor `{name}`; is the file complete?"))),
            }
        };
        let mut infos: BTreeMap<String, TensorInfo> = BTreeMap::new();
        let mut hidden = std::collections::BTreeSet::new();
        for (name, q) in &meta.quant {
            match q.as_str() {
                "f32" | "f16" => {
                    let want = if q == "f32" { DType::F32 } else { DType::F16 };
                    let info = phys.get(name).ok_or_else(|| bad(format!("missing tensor `{name}`")))?;
                    if info.dtype != want || info.shape.len() != 2 {
                        return Err(bad(format!("`{name}` is marked {q} but stored as {:?} {:?}", info.dtype, info.shape)));
                    }
                }
                "int8" | "q4" => {
                    let [r, c] = *meta.logical_shapes.get(name).ok_or_else(|| bad(format!("no logical shape for `{name}`")))?;
                    let nb = quant::blocks_per_row(c);
                    if q == "int8" {
                        expect(&format!("{name}.q"), DType::I8, &[r, quant::int8::row_bytes(c)])?;
                    } else {
                        expect(&format!("{name}.q"), DType::U8, &[r, quant::q4::row_bytes(c)])?;
                    }
                    expect(&format!("{name}.scale"), DType::F16, &[r, nb])?;
                    if phys.contains_key(name) {
                        return Err(bad(format!("`{name}` is stored both plain and quantised")));
                    }
                    hidden.insert(format!("{name}.q"));
                    hidden.insert(format!("{name}.scale"));
                    infos.insert(name.clone(), TensorInfo { dtype: DType::F32, shape: vec![r, c] });
                }
                other => return Err(Error::Unsupported(format!("Gander quant format `{other}` of `{name}`"))),
            }
        }
        for (name, info) in phys {
            if !hidden.contains(name) {
                infos.entry(name.clone()).or_insert_with(|| info.clone());
            }
        }
        Ok(GanderSource { inner, meta, infos })
    }

    fn packed(&self, name: &str) -> Option<&str> {
        self.meta.quant.get(name).map(String::as_str).filter(|q| *q == "int8" || *q == "q4")
    }
}

impl TensorSource for GanderSource {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn pieces(&mut self) -> Option<&mut SafetensorsFile> {
        Some(&mut self.inner)
    }

    fn is_packed(&self, name: &str) -> bool {
        self.packed(name).is_some()
    }

    fn order(&self, name: &str) -> Option<u64> {
        self.inner.order(name).or_else(|| self.inner.order(&format!("{name}.q")))
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        if self.packed(name).is_some() {
            let m = self.read_matrix(name)?;
            let info = TensorInfo { dtype: DType::F32, shape: vec![m.rows, m.cols] };
            return Ok(RawTensor { info, data: m.to_f32().iter().flat_map(|x| x.to_le_bytes()).collect() });
        }
        self.inner.read(name)
    }

    fn read_matrix(&mut self, name: &str) -> Result<HostMatrix> {
        let Some(fmt) = self.packed(name).map(str::to_string) else {
            return super::raw_matrix(name, self.inner.read(name)?);
        };
        let [rows, cols] = *self.meta.logical_shapes.get(name).ok_or_else(|| Error::BadModel(format!("no logical shape for `{name}`")))?;
        let q = self.inner.read(&format!("{name}.q"))?.data;
        let s = self.inner.read(&format!("{name}.scale"))?.data;
        let scale: Vec<f16> = le_words(&s).map(f16::from_le_bytes).collect();
        if scale.iter().any(|x| !x.is_finite()) {
            return Err(Error::BadModel(format!("`{name}.scale` contains NaN or infinite values")));
        }
        // int8 codes are -127..=127 (the writer clamps); -128 has no negation in i8, which the
        // integer kernels rely on (backend/cpu/a8.rs), so a file holding it is refused.
        if fmt == "int8" && q.contains(&0x80) {
            return Err(Error::BadModel(format!(
                "`{name}.q` holds the int8 code -128; Gander's int8 codes are -127..127 (a corrupt file, or one Gander did not write)"
            )));
        }
        let data = if fmt == "int8" { MatrixData::Int8 { q: q.into_iter().map(|b| b as i8).collect(), scale } } else { MatrixData::Q4 { q, scale } };
        Ok(HostMatrix { rows, cols, data })
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.metadata()
    }
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `v` rounded to f16, refused when a value is beyond its range.
fn to_f16(name: &str, v: &[f32]) -> Result<Vec<f16>> {
    if let Some(x) = v.iter().find(|x| x.abs() > f16::MAX.to_f32()) {
        return Err(Error::BadInput(format!("`{name}` holds {x}, beyond the f16 range (65504); convert with --quant f32 or int8")));
    }
    Ok(v.iter().map(|x| f16::from_f32(*x)).collect())
}

/// Write `src` as a Gander file to `out`, converting one tensor at a time.
/// How a Gander file of `quant` stores the logical tensor `name`: vectors f32, the LoRA factors
/// f16 in the quantised formats, every other matrix in `quant`.
pub fn storage_of(name: &str, info: &TensorInfo, quant: Quant) -> Quant {
    if !is_matrix(name, info) {
        Quant::F32
    } else if is_lora(name) && matches!(quant, Quant::Int8 | Quant::Q4) {
        Quant::F16
    } else {
        quant
    }
}

/// The physical tensors (name, dtype, shape) that store `name` as `how`.
fn stored_tensors(name: &str, info: &TensorInfo, how: Quant) -> Result<Vec<(String, &'static str, Vec<usize>)>> {
    Ok(match how {
        Quant::F32 => vec![(name.to_string(), "F32", info.shape.clone())],
        Quant::F16 => vec![(name.to_string(), "F16", info.shape.clone())],
        Quant::Int8 | Quant::Q4 => {
            let [r, c] = *info.shape.as_slice() else {
                return Err(Error::BadModel(format!("`{name}` has shape {:?}, expected a matrix", info.shape)));
            };
            let qshape = if how == Quant::Int8 { vec![r, quant::int8::row_bytes(c)] } else { vec![r, quant::q4::row_bytes(c)] };
            let qtype = if how == Quant::Int8 { "I8" } else { "U8" };
            vec![(format!("{name}.q"), qtype, qshape), (format!("{name}.scale"), "F16", vec![r, quant::blocks_per_row(c)])]
        }
    })
}

/// Bytes of tensor data in a Gander file of `quant` holding the logical tensors `names` of
/// `infos` (the header adds a few KB): what [`write`] would produce, from shapes alone.
pub fn data_bytes(infos: &BTreeMap<String, TensorInfo>, names: &[String], quant: Quant) -> Result<u64> {
    let mut total = 0u64;
    for name in names {
        let info = infos.get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?;
        for (_, dt, shape) in stored_tensors(name, info, storage_of(name, info, quant))? {
            let es: u64 = match dt {
                "F32" => 4,
                "F16" => 2,
                _ => 1,
            };
            total = shape
                .iter()
                .try_fold(es, |a, &d| a.checked_mul(d as u64))
                .and_then(|b| total.checked_add(b))
                .ok_or_else(|| Error::BadModel(format!("`{name}` too large")))?;
        }
    }
    Ok(total)
}

/// A Gander file laid out before any tensor is read: its header block (length and JSON, padded
/// to 8 bytes) and the logical tensors in the order their bytes follow, each with its storage.
pub struct Plan {
    pub header: Vec<u8>,
    pub tensors: Vec<(String, Quant)>,
    /// Bytes of tensor data after the header.
    pub data_bytes: u64,
}

/// Lay out the Gander file of `quant` holding the logical tensors `names` of `src` (the caller
/// drops unused ones such as layer-0 `v*`), from shapes alone.
pub fn plan(src: &dyn TensorSource, names: &[String], quant: Quant, fingerprint: &str) -> Result<Plan> {
    let mut tensors = Vec::with_capacity(names.len());
    let mut header: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut quant_map = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    let mut offset = 0usize;
    for name in names {
        let info = src.tensors().get(name).ok_or_else(|| Error::BadModel(format!("no tensor `{name}`")))?.clone();
        let how = storage_of(name, &info, quant);
        info.numel()?;
        let out_tensors = stored_tensors(name, &info, how)?;
        if let (Quant::Int8 | Quant::Q4, [r, c]) = (how, info.shape.as_slice()) {
            shapes.insert(name.clone(), [*r, *c]);
        }
        if is_matrix(name, &info) {
            quant_map.insert(name.clone(), how.name());
        }
        for (tname, dt, shape) in &out_tensors {
            let es = if *dt == "F32" {
                4
            } else if *dt == "F16" {
                2
            } else {
                1
            };
            let bytes = shape.iter().try_fold(es, |a: usize, &d| a.checked_mul(d)).ok_or_else(|| Error::BadModel(format!("`{name}` too large")))?;
            header.insert(tname.clone(), serde_json::json!({ "dtype": dt, "shape": shape, "data_offsets": [offset, offset + bytes] }));
            offset += bytes;
        }
        tensors.push((name.clone(), how));
    }
    let meta = serde_json::json!({
        "format": "gander",
        "version": VERSION.to_string(),
        "arch": "rwkv7",
        "quant": json_text(&quant_map),
        "logical_shapes": json_text(&shapes),
        "block_size": quant::BLOCK.to_string(),
        "fingerprint": fingerprint,
    });
    header.insert("__metadata__".into(), meta);
    let mut json = serde_json::to_vec(&header).map_err(|e| Error::BadFile(e.to_string()))?;
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut block = (json.len() as u64).to_le_bytes().to_vec();
    block.extend_from_slice(&json);
    Ok(Plan { header: block, tensors, data_bytes: offset as u64 })
}

/// A logical tensor as read from a source: a packed matrix ([`TensorSource::is_packed`], read
/// with `read_matrix` to keep its codes) or anything else as stored.
pub enum Read {
    Matrix(HostMatrix),
    Raw(RawTensor),
}

/// Read `name` as [`Read`]: packed matrices keep their codes.
pub fn read_for_storage(src: &mut dyn TensorSource, name: &str) -> Result<Read> {
    let packed = src.tensors().get(name).is_some_and(|i| is_matrix(name, i)) && src.is_packed(name);
    Ok(if packed { Read::Matrix(src.read_matrix(name)?) } else { Read::Raw(src.read(name)?) })
}

/// The matrix `name`, as read, in the storage `how`: codes already in `how` kept
/// ([`to_storage`]), a raw matrix converted a few rows at a time ([`raw_to_storage`]).
pub fn matrix_in(name: &str, got: Read, how: Quant) -> Result<HostMatrix> {
    match got {
        Read::Raw(t) => raw_to_storage(name, t, how),
        Read::Matrix(m) => to_storage(name, m, how),
    }
}

/// The bytes a Gander file stores for the logical tensor `name` as `how` (what [`plan`] laid
/// out for it): f32 or f16 values, or int8/q4 codes then their scales. Codes already in `how`
/// are kept ([`to_storage`]); a raw matrix is converted a few rows at a time ([`raw_to_storage`]).
pub fn stored_bytes(name: &str, got: Read, how: Quant) -> Result<Vec<u8>> {
    let m = match (how, got) {
        (Quant::F32, Read::Raw(t)) => return Ok(le_bytes_f32(&t.to_f32())),
        (Quant::F32, Read::Matrix(m)) => return Ok(le_bytes_f32(&m.to_f32())),
        (how, got) => matrix_in(name, got, how)?,
    };
    Ok(match m.data {
        MatrixData::F32(v) => le_bytes_f32(&v),
        MatrixData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        MatrixData::Int8 { q, scale } => {
            let mut out = bytemuck::cast_slice::<i8, u8>(&q).to_vec();
            out.extend_from_slice(bytemuck::cast_slice(&scale));
            out
        }
        MatrixData::Q4 { mut q, scale } => {
            q.extend_from_slice(bytemuck::cast_slice(&scale));
            q
        }
    })
}

/// Write `src` as a Gander file of `quant` holding the logical tensors `names` ([`plan`]), one
/// tensor at a time. `progress(done, total)` is called after each tensor.
pub fn write(
    src: &mut dyn TensorSource,
    names: &[String],
    quant: Quant,
    fingerprint: &str,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let p = plan(src, names, quant, fingerprint)?;
    let werr = |e: std::io::Error| Error::io("output", e);
    out.write_all(&p.header).map_err(werr)?;
    let total = p.tensors.len();
    for (i, (name, how)) in p.tensors.iter().enumerate() {
        let got = read_for_storage(src, name)?;
        out.write_all(&stored_bytes(name, got, *how)?).map_err(werr)?;
        progress(i + 1, total);
    }
    out.flush().map_err(werr)
}

/// The matrix `name`, read as `m`, in the storage `how` (see [`storage_of`]): codes already in
/// `how` (a GGUF Q8_0 or Q4_0, a Gander file) are kept as they are, since requantising would
/// round a second time; anything else is converted as `gander convert` converts it.
pub fn to_storage(name: &str, m: quant::HostMatrix, how: Quant) -> Result<quant::HostMatrix> {
    use quant::MatrixData as D;
    let (rows, cols) = (m.rows, m.cols);
    let codes = |row_bytes: usize| (rows * row_bytes, rows * quant::blocks_per_row(cols));
    let data = match (how, m.data) {
        (Quant::Int8, D::Int8 { q, scale }) if (q.len(), scale.len()) == codes(quant::int8::row_bytes(cols)) => D::Int8 { q, scale },
        (Quant::Q4, D::Q4 { q, scale }) if (q.len(), scale.len()) == codes(quant::q4::row_bytes(cols)) => D::Q4 { q, scale },
        (Quant::F16, D::F16(v)) => D::F16(v),
        (Quant::F32, D::F32(v)) => D::F32(v),
        (how, data) => {
            let w = match data {
                D::F32(w) => w,
                data => quant::HostMatrix { rows, cols, data }.to_f32(),
            };
            match how {
                Quant::F32 => D::F32(w),
                Quant::F16 => D::F16(to_f16(name, &w)?),
                Quant::Int8 => {
                    let (q, scale) = quant::int8::quantize(rows, cols, &w);
                    D::Int8 { q, scale }
                }
                Quant::Q4 => {
                    let (q, scale) = quant::q4::quantize(rows, cols, &w);
                    D::Q4 { q, scale }
                }
            }
        }
    };
    Ok(quant::HostMatrix { rows, cols, data })
}

/// Rows converted at a time by [`raw_to_storage`]: about a million values (4 MiB as f32).
const ROWS_ELEMS: usize = 1 << 20;

/// A raw matrix (as a file stores it: bf16, f16, f32) in the storage `how`, converted a few rows
/// at a time, so a big matrix is never held as f32 on its way to int8, q4 or f16 (the values
/// are those of [`to_storage`]: every quantisation block lies within one row).
pub fn raw_to_storage(name: &str, t: RawTensor, how: Quant) -> Result<HostMatrix> {
    let Some(mut rows) = RowsTo::new(name, &t.info, how)? else {
        return to_storage(name, super::raw_matrix(name, t)?, how);
    };
    if t.data.len() != rows.rows * rows.row_bytes() {
        return Err(Error::BadFile(format!("`{name}` holds {} bytes, not a [{}, {}] matrix", t.data.len(), rows.rows, rows.cols)));
    }
    rows.push(&t.data)?;
    rows.finish()
}

/// A raw matrix converted to int8, q4 or f16 as its rows arrive ([`raw_to_storage`] in one go;
/// the pull loader block by block as they are fetched, so a big matrix is never whole as stored).
pub struct RowsTo {
    name: String,
    dtype: DType,
    pub rows: usize,
    pub cols: usize,
    /// Rows converted so far.
    pub done: usize,
    data: MatrixData,
}

impl RowsTo {
    /// A converter of the matrix `name` stored as `info` to `how`; `None` for codes that are
    /// not plain floats (f32, f16, bf16).
    pub fn new(name: &str, info: &TensorInfo, how: Quant) -> Result<Option<RowsTo>> {
        use MatrixData as D;
        let (rows, cols) = match info.shape.as_slice() {
            [r, c] => (*r, *c),
            s => return Err(Error::BadModel(format!("`{name}` has shape {s:?}, expected a matrix"))),
        };
        if !matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Ok(None);
        }
        if rows == 0 || cols == 0 {
            return Err(Error::BadModel(format!("`{name}` is an empty [{rows}, {cols}] matrix")));
        }
        // Reserved at the first push ([`Self::reserve`]): a caller that finds it cannot read
        // rows after all drops this for nothing.
        let data = match how {
            Quant::Int8 => D::Int8 { q: Vec::new(), scale: Vec::new() },
            Quant::Q4 => D::Q4 { q: Vec::new(), scale: Vec::new() },
            Quant::F16 => D::F16(Vec::new()),
            Quant::F32 => D::F32(Vec::new()),
        };
        Ok(Some(RowsTo { name: name.to_string(), dtype: info.dtype, rows, cols, done: 0, data }))
    }

    /// The matrix's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size()
    }

    /// The rows to read next: as many as fit in `max_bytes` as stored (at least one), none when
    /// every row is in.
    pub fn next_rows(&self, max_bytes: usize) -> std::ops::Range<usize> {
        let n = (max_bytes / self.row_bytes().max(1)).max(1);
        self.done..(self.done + n).min(self.rows)
    }

    /// Room for the rows still to come (once, before the first rows: the whole converted
    /// matrix in one allocation, never regrown).
    fn reserve(&mut self) {
        use MatrixData as D;
        let (left, cols) = (self.rows - self.done, self.cols);
        match &mut self.data {
            D::Int8 { q, scale } => {
                q.reserve_exact(left * quant::int8::row_bytes(cols));
                scale.reserve_exact(left * quant::blocks_per_row(cols));
            }
            D::Q4 { q, scale } => {
                q.reserve_exact(left * quant::q4::row_bytes(cols));
                scale.reserve_exact(left * quant::blocks_per_row(cols));
            }
            D::F16(v) => v.reserve_exact(left * cols),
            D::F32(v) => v.reserve_exact(left * cols),
        }
    }

    /// Convert the next whole rows, as stored (bytes of the matrix's dtype), in chunks of about
    /// [`ROWS_ELEMS`] values.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        use MatrixData as D;
        if self.done == 0 {
            self.reserve();
        }
        let (name, cols, row) = (&self.name, self.cols, self.row_bytes());
        let n_rows = bytes.len() / row.max(1);
        if !bytes.len().is_multiple_of(row.max(1)) || self.done + n_rows > self.rows {
            return Err(Error::BadFile(format!("`{name}`: {} bytes are not the next whole rows of a [{}, {cols}] matrix", bytes.len(), self.rows)));
        }
        let step = (ROWS_ELEMS / cols.max(1)).max(1);
        for chunk in bytes.chunks(step * row) {
            let n = chunk.len() / row;
            if let (D::F16(v), DType::F16) = (&mut self.data, self.dtype) {
                // Kept as stored: no detour through f32.
                v.extend(le_words(chunk).map(f16::from_le_bytes));
                self.done += n;
                continue;
            }
            let w = RawTensor { info: TensorInfo { dtype: self.dtype, shape: vec![n, cols] }, data: chunk.to_vec() }.to_f32();
            match &mut self.data {
                D::Int8 { q, scale } => {
                    let (cq, cs) = quant::int8::quantize(n, cols, &w);
                    q.extend_from_slice(&cq);
                    scale.extend_from_slice(&cs);
                }
                D::Q4 { q, scale } => {
                    let (cq, cs) = quant::q4::quantize(n, cols, &w);
                    q.extend_from_slice(&cq);
                    scale.extend_from_slice(&cs);
                }
                D::F16(v) => v.extend(to_f16(&format!("{name} (rows from {})", self.done), &w)?),
                D::F32(v) => v.extend_from_slice(&w),
            }
            self.done += n;
        }
        Ok(())
    }

    /// The codes (or values) converted since the last call, as a Gander file stores them; the
    /// scales stay, since the file stores them after every code ([`Self::finish_stored`]).
    pub fn take_stored(&mut self) -> Vec<u8> {
        use MatrixData as D;
        match &mut self.data {
            D::Int8 { q, .. } => bytemuck::cast_slice::<i8, u8>(&std::mem::take(q)).to_vec(),
            D::Q4 { q, .. } => std::mem::take(q),
            D::F16(v) => std::mem::take(v).iter().flat_map(|x| x.to_le_bytes()).collect(),
            D::F32(v) => le_bytes_f32(&std::mem::take(v)),
        }
    }

    /// The rest of the matrix's bytes in a Gander file ([`stored_bytes`]), once every row is in:
    /// the codes not taken yet, then the scales.
    pub fn finish_stored(mut self) -> Result<Vec<u8>> {
        if self.done != self.rows {
            return Err(Error::BadFile(format!("`{}`: {} of {} rows were converted", self.name, self.done, self.rows)));
        }
        let mut out = self.take_stored();
        if let MatrixData::Int8 { scale, .. } | MatrixData::Q4 { scale, .. } = &self.data {
            out.extend_from_slice(bytemuck::cast_slice(scale));
        }
        Ok(out)
    }

    /// The converted matrix, once every row is in.
    pub fn finish(self) -> Result<HostMatrix> {
        if self.done != self.rows {
            return Err(Error::BadFile(format!("`{}`: {} of {} rows were converted", self.name, self.done, self.rows)));
        }
        Ok(HostMatrix { rows: self.rows, cols: self.cols, data: self.data })
    }
}

/// JSON text of a metadata map (safetensors metadata values are strings).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converting a few rows at a time gives exactly the codes of converting the whole matrix,
    /// across chunk boundaries and a last partial chunk, from every stored dtype.
    #[test]
    fn raw_to_storage_in_row_chunks_equals_whole() {
        let (rows, cols) = (3001, 704); // 2.1M values: three chunks, the last one partial
        let w: Vec<f32> = (0..rows * cols).map(|i| (((i * 2_654_435_761) % 10_007) as f32 / 10_007.0 - 0.5) * 0.2).collect();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let data: Vec<u8> = match dtype {
                DType::F32 => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                DType::F16 => w.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
                _ => w.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
            };
            let raw = RawTensor { info: TensorInfo { dtype, shape: vec![rows, cols] }, data };
            for how in [Quant::F16, Quant::Int8, Quant::Q4] {
                let whole = to_storage("m", super::super::raw_matrix("m", raw.clone()).unwrap(), how).unwrap();
                let chunked = raw_to_storage("m", raw.clone(), how).unwrap();
                assert!(whole == chunked, "{dtype:?} -> {how:?}");
            }
        }
    }
}
