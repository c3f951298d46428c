//! Weight matrices onto the device: every format packed into `array<u32>` rows (with their f16
//! scales), split by rows where a matrix exceeds the adapter's storage-binding limit, and groups
//! of matrices sharing one input concatenated by rows.

use super::*;

impl Gpu {
    pub(super) fn pack_matrix(&self, m: HostMatrix) -> Result<GpuMatrix> {
        m.validate()?;
        let (rows, cols) = (m.rows, m.cols);
        let nb = blocks_per_row(cols);
        // Bytes of one packed row, and the row as bytes padded to whole words.
        let (format, row_bytes): (u32, usize) = match &m.data {
            MatrixData::F32(_) => (0, cols * 4),
            MatrixData::F16(_) => (1, cols.div_ceil(2) * 4),
            MatrixData::Int8 { .. } => (2, int8::row_bytes(cols)),
            MatrixData::Q4 { .. } => (3, q4::row_bytes(cols)),
        };
        let row_words = row_bytes.div_ceil(4);
        let max_rows = ((self.ctx.max_binding as usize) / (row_words * 4)).max(1);
        let mut parts = Vec::new();
        let mut bytes_total = 0;
        let mut row0 = 0;
        while row0 < rows {
            let n = max_rows.min(rows - row0);
            let mut data = Vec::with_capacity(n * row_words * 4);
            let mut scales: Vec<u8> = Vec::new();
            for r in row0..row0 + n {
                let start = data.len();
                match &m.data {
                    MatrixData::F32(d) => data.extend(d[r * cols..(r + 1) * cols].iter().flat_map(|x| x.to_le_bytes())),
                    MatrixData::F16(d) => data.extend(d[r * cols..(r + 1) * cols].iter().flat_map(|x| x.to_le_bytes())),
                    MatrixData::Int8 { q, scale } => {
                        data.extend(q[r * row_bytes..(r + 1) * row_bytes].iter().map(|&b| b as u8));
                        scales.extend(scale[r * nb..(r + 1) * nb].iter().flat_map(|x| x.to_le_bytes()));
                    }
                    MatrixData::Q4 { q, scale } => {
                        data.extend_from_slice(&q[r * row_bytes..(r + 1) * row_bytes]);
                        scales.extend(scale[r * nb..(r + 1) * nb].iter().flat_map(|x| x.to_le_bytes()));
                    }
                }
                data.resize(start + row_words * 4, 0);
            }
            bytes_total += data.len() + scales.len();
            let buf = self.upload("weights", &data);
            let scale = self.upload("scales", &scales);
            parts.push(MatrixPart { buf, scale, row0, rows: n, binds: self.cache.binds.clone() });
            row0 += n;
        }
        self.ctx.check()?;
        Ok(GpuMatrix { rows, cols, format, row_words, parts, bytes: bytes_total })
    }

    pub(super) fn pack_group(&self, mats: Vec<HostMatrix>) -> Result<GpuGroup> {
        if mats.is_empty() || mats.len() > 4 {
            return Err(Error::BadModel(format!("a group of {} matrices (1 to 4 supported)", mats.len())));
        }
        // One format per group (one buffer): mixed float formats are widened to f32.
        let same = mats.iter().all(|m| std::mem::discriminant(&m.data) == std::mem::discriminant(&mats[0].data));
        let mats: Vec<HostMatrix> =
            if same { mats } else { mats.into_iter().map(|m| HostMatrix { rows: m.rows, cols: m.cols, data: MatrixData::F32(m.to_f32()) }).collect() };
        let cols = mats[0].cols;
        let mut ends = Vec::new();
        let mut rows = 0;
        let mut data: Option<MatrixData> = None;
        for m in mats {
            if m.cols != cols {
                return Err(Error::BadModel(format!("grouped matrices of widths {cols} and {}", m.cols)));
            }
            rows += m.rows;
            ends.push(rows);
            data = Some(match (data, m.data) {
                (None, d) => d,
                (Some(MatrixData::F32(mut a)), MatrixData::F32(b)) => {
                    a.extend(b);
                    MatrixData::F32(a)
                }
                (Some(MatrixData::F16(mut a)), MatrixData::F16(b)) => {
                    a.extend(b);
                    MatrixData::F16(a)
                }
                (Some(MatrixData::Int8 { mut q, mut scale }), MatrixData::Int8 { q: q2, scale: s2 }) => {
                    q.extend(q2);
                    scale.extend(s2);
                    MatrixData::Int8 { q, scale }
                }
                (Some(MatrixData::Q4 { mut q, mut scale }), MatrixData::Q4 { q: q2, scale: s2 }) => {
                    q.extend(q2);
                    scale.extend(s2);
                    MatrixData::Q4 { q, scale }
                }
                _ => return Err(Error::BadModel("grouped matrices are stored in different formats".into())),
            });
        }
        let data = data.ok_or_else(|| Error::BadModel("empty group".into()))?;
        Ok(GpuGroup { mat: self.matrix(HostMatrix { rows, cols, data })?, ends })
    }
}
