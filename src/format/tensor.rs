//! Raw tensors as stored in files: a dtype, a shape and little-endian bytes.

use crate::error::{Error, Result};
use half::{bf16, f16};

/// The element types official checkpoints use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// Packed codes of quantised Gander matrices.
    I8,
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }
}

/// Header information of one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Number of elements, or an error if the shape overflows `usize`.
    pub fn numel(&self) -> Result<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::BadFile(format!("tensor shape {:?} overflows", self.shape)))
    }
}

/// The little-endian words of `N` bytes in `data` (a trailing partial word is ignored; callers
/// have checked the length against the shape).
pub fn le_words<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.as_chunks::<N>().0.iter().copied()
}

/// One tensor's data, contiguous and little-endian in `info.dtype`.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub info: TensorInfo,
    pub data: Vec<u8>,
}

impl RawTensor {
    /// Convert to f32 (exact for every dtype here).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.info.dtype {
            DType::F32 => le_words(&self.data).map(f32::from_le_bytes).collect(),
            DType::F16 => le_words(&self.data).map(|b| f16::from_le_bytes(b).to_f32()).collect(),
            DType::BF16 => le_words(&self.data).map(|b| bf16::from_le_bytes(b).to_f32()).collect(),
            DType::I8 => self.data.iter().map(|&b| b as i8 as f32).collect(),
            DType::U8 => self.data.iter().map(|&b| b as f32).collect(),
        }
    }
}
