//! A file known only in the byte ranges fetched so far: the browser reads a checkpoint's headers
//! with HTTP range requests, and the readers run over what it has. A read outside the known
//! ranges fails and records the range to fetch next ([`Sparse::missing`]), so a caller can loop
//! "parse, fetch what was missing, parse again" without ever holding the whole file.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

/// Bytes fetched beyond a missing read, so that a parser reading small pieces in sequence does
/// not cost a round trip each.
pub const READ_AHEAD: u64 = 64 << 10;

/// A sparse view of a file of `len` bytes: `parts` maps start offsets to fetched bytes.
pub struct Sparse {
    len: u64,
    parts: Rc<BTreeMap<u64, Vec<u8>>>,
    pos: u64,
    missing: Rc<Cell<Option<(u64, u64)>>>,
}

impl Sparse {
    pub fn new(len: u64, parts: Rc<BTreeMap<u64, Vec<u8>>>) -> Sparse {
        Sparse { len, parts, pos: 0, missing: Rc::new(Cell::new(None)) }
    }

    /// The range a failed read needed (with read-ahead), shared with clones of the handle.
    pub fn missing(&self) -> Rc<Cell<Option<(u64, u64)>>> {
        self.missing.clone()
    }
}

/// Whether `parts` holds every byte of `start..end`.
pub fn covers(parts: &BTreeMap<u64, Vec<u8>>, start: u64, end: u64) -> bool {
    let mut at = start;
    while at < end {
        match parts.range(..=at).next_back() {
            Some((&s, b)) if s + b.len() as u64 > at => at = s + b.len() as u64,
            _ => return false,
        }
    }
    true
}

/// The bytes `start..end` when fetched.
pub fn slice(parts: &BTreeMap<u64, Vec<u8>>, start: u64, end: u64) -> Option<Vec<u8>> {
    if !covers(parts, start, end) {
        return None;
    }
    let mut out = Vec::with_capacity((end - start) as usize);
    let mut at = start;
    while at < end {
        let (&s, b) = parts.range(..=at).next_back()?;
        let from = (at - s) as usize;
        let to = ((end - s) as usize).min(b.len());
        out.extend_from_slice(b.get(from..to)?);
        at = s + to as u64;
    }
    Some(out)
}

impl Read for Sparse {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if let Some((&s, b)) = self.parts.range(..=self.pos).next_back() {
            let off = (self.pos - s) as usize;
            if let Some(avail) = b.get(off..).filter(|a| !a.is_empty()) {
                let n = avail.len().min(buf.len());
                buf.get_mut(..n).unwrap_or_default().copy_from_slice(avail.get(..n).unwrap_or_default());
                self.pos += n as u64;
                return Ok(n);
            }
        }
        let end = (self.pos + (buf.len() as u64).max(READ_AHEAD)).min(self.len);
        self.missing.set(Some((self.pos, end)));
        Err(std::io::Error::other(format!("bytes {}..{end} not fetched yet", self.pos)))
    }
}

impl Seek for Sparse {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let p = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = p;
        Ok(p)
    }
}
