//! Matrix storage formats: `f32`, `f16`, `int8` and `q4`, with scalar reference code.
//!
//! A matrix is `[rows = out, cols = in]`, row-major. The quantised formats cut every row into
//! blocks of [`BLOCK`] consecutive input elements (the last block of a row may be shorter) and
//! keep one f16 scale per block. Each format's module documents its byte layout and holds the
//! scalar reference (quantise, dequantise a row) that tests and GPU shaders are checked against.

pub mod int8;
pub mod q4;

use half::f16;

/// Elements per quantisation block, along the input dimension.
pub const BLOCK: usize = 32;

/// Blocks in a row of `cols` elements.
pub fn blocks_per_row(cols: usize) -> usize {
    cols.div_ceil(BLOCK)
}

/// The stored data of one matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum MatrixData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// `q`: `rows·int8::row_bytes(cols)` codes; `scale`: `rows·blocks_per_row(cols)`.
    Int8 {
        q: Vec<i8>,
        scale: Vec<f16>,
    },
    /// `q`: `rows·q4::row_bytes(cols)` bytes of two codes; `scale`: `rows·blocks_per_row(cols)`.
    Q4 {
        q: Vec<u8>,
        scale: Vec<f16>,
    },
}

/// A weight matrix on the host, as stored, before a backend takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: MatrixData,
}

impl HostMatrix {
    /// The format's name as used in Gander metadata.
    pub fn format_name(&self) -> &'static str {
        match self.data {
            MatrixData::F32(_) => "f32",
            MatrixData::F16(_) => "f16",
            MatrixData::Int8 { .. } => "int8",
            MatrixData::Q4 { .. } => "q4",
        }
    }

    /// Check that the data holds exactly what `rows × cols` in this format needs (kernels read
    /// rows through raw pointers and rely on it).
    pub fn validate(&self) -> crate::Result<()> {
        let (r, c) = (self.rows, self.cols);
        let nb = blocks_per_row(c);
        let ok = match &self.data {
            MatrixData::F32(d) => d.len() == r * c,
            MatrixData::F16(d) => d.len() == r * c,
            MatrixData::Int8 { q, scale } => q.len() == r * int8::row_bytes(c) && scale.len() == r * nb,
            MatrixData::Q4 { q, scale } => q.len() == r * q4::row_bytes(c) && scale.len() == r * nb,
        };
        if ok && r > 0 && c > 0 {
            Ok(())
        } else {
            Err(crate::Error::BadModel(format!("a {} matrix of {r}x{c} with data of the wrong size", self.format_name())))
        }
    }

    /// Row `r` as f32 into `out` (length `cols`): the scalar reference dequantisation. A row
    /// outside the data reads as zeros; [`HostMatrix::validate`] refuses such matrices when they
    /// are made, so that does not happen on any loaded model.
    #[inline(always)]
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        let nb = blocks_per_row(c);
        let span = |len: usize| r.checked_mul(len).and_then(|a| Some(a..a.checked_add(len)?));
        let done = match &self.data {
            MatrixData::F32(d) => span(c).and_then(|s| d.get(s)).map(|row| out.copy_from_slice(row)),
            MatrixData::F16(d) => {
                use half::slice::HalfFloatSliceExt;
                span(c).and_then(|s| d.get(s)).map(|row| row.convert_to_f32_slice(out))
            }
            MatrixData::Int8 { q, scale } => {
                span(int8::row_bytes(c)).and_then(|s| q.get(s)).zip(span(nb).and_then(|s| scale.get(s))).map(|(q, s)| int8::dequantize_row(q, s, out))
            }
            MatrixData::Q4 { q, scale } => {
                span(q4::row_bytes(c)).and_then(|s| q.get(s)).zip(span(nb).and_then(|s| scale.get(s))).map(|(q, s)| q4::dequantize_row(q, s, out))
            }
        };
        if done.is_none() {
            out.fill(0.0);
        }
    }

    /// The whole matrix as f32 (tests, conversion between formats; never on the inference path).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        if self.cols > 0 {
            for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
                self.row_into(r, row);
            }
        }
        out
    }

    /// Bytes the matrix occupies in memory.
    pub fn byte_len(&self) -> usize {
        match &self.data {
            MatrixData::F32(d) => d.len() * 4,
            MatrixData::F16(d) => d.len() * 2,
            MatrixData::Int8 { q, scale } => q.len() + scale.len() * 2,
            MatrixData::Q4 { q, scale } => q.len() + scale.len() * 2,
        }
    }
}

/// A block's scale as stored: f16, finite, never rounded below what the block needs by more
/// than f16 rounding (callers clamp codes to their range).
pub(crate) fn f16_scale(s: f32) -> f16 {
    f16::from_f32(s.min(f16::MAX.to_f32()))
}
