//! A file known only in the byte ranges fetched so far: the browser reads a checkpoint's headers
//! with HTTP range requests, and the readers run over what it has. A read outside the known
//! ranges fails and records the range to fetch next ([`Sparse::missing`]), so a caller can loop
//! "parse, fetch what was missing, parse again" without ever holding the whole file.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

/// Bytes fetched around a missing read (ahead and behind, within the gap it falls in), so that a
/// parser reading small pieces in sequence, forward or backward (the zip reader looks for its
/// end record backward), does not cost a round trip each.
pub const READ_AHEAD: u64 = 64 << 10;

/// Add `bytes` at `start` to `parts`, merging every part it overlaps or touches, so parts stay
/// disjoint and [`covers`] can look at one part per position.
pub fn insert(parts: &mut BTreeMap<u64, Vec<u8>>, start: u64, bytes: Vec<u8>) {
    let end = start + bytes.len() as u64;
    let touching: Vec<u64> = parts.range(..=end).filter(|(&s, b)| s + b.len() as u64 >= start).map(|(&s, _)| s).collect();
    let mut lo = start;
    let mut hi = end;
    let mut old = Vec::new();
    for s in touching {
        if let Some(b) = parts.remove(&s) {
            lo = lo.min(s);
            hi = hi.max(s + b.len() as u64);
            old.push((s, b));
        }
    }
    let mut merged = vec![0u8; (hi - lo) as usize];
    for (s, b) in old.iter().map(|(s, b)| (*s, b.as_slice())).chain(std::iter::once((start, bytes.as_slice()))) {
        let at = (s - lo) as usize;
        if let Some(dst) = merged.get_mut(at..at + b.len()) {
            dst.copy_from_slice(b);
        }
    }
    parts.insert(lo, merged);
}

/// Add `bytes` at `start` as a part of its own when they fall in a gap (the usual case: a caller
/// fetches what a read said was missing), so adding a big range piece by piece copies nothing
/// (pieces that only touch stay apart); bytes that overlap fetched ones are merged ([`insert`]).
pub fn add(parts: &mut BTreeMap<u64, Vec<u8>>, start: u64, bytes: Vec<u8>) {
    let end = start + bytes.len() as u64;
    let before = parts.range(..=start).next_back().is_some_and(|(&s, b)| s + b.len() as u64 > start);
    let inside = parts.range(start..end).next().is_some();
    if before || inside {
        insert(parts, start, bytes);
    } else if !bytes.is_empty() {
        parts.insert(start, bytes);
    }
}

/// Fetched parts shared between their owner (who adds and drops bytes) and the readers over them.
pub type Parts = Rc<RefCell<BTreeMap<u64, Vec<u8>>>>;

/// A sparse view of a file of `len` bytes: `parts` maps start offsets to fetched bytes.
pub struct Sparse {
    len: u64,
    parts: Parts,
    pos: u64,
    missing: Rc<Cell<Option<(u64, u64)>>>,
    /// Parts longer than this are dropped once read to their end while the flag is on
    /// ([`Sparse::consuming`]).
    consume_over: Option<(usize, Rc<Cell<bool>>)>,
}

impl Sparse {
    pub fn new(len: u64, parts: Parts) -> Sparse {
        Sparse { len, parts, pos: 0, missing: Rc::new(Cell::new(None)), consume_over: None }
    }

    /// This reader, dropping every part longer than `min_len` bytes once a read reaches its
    /// end, while `on` is set (a caller turns it on once the headers are parsed: a parser that is
    /// retried from the start must find them again): a big tensor handed over in pieces is then
    /// held about once while it is copied out, not twice. A part dropped too early is fetched
    /// again (a miss), never read wrong.
    pub fn consuming(self, min_len: usize, on: Rc<Cell<bool>>) -> Sparse {
        Sparse { consume_over: Some((min_len, on)), ..self }
    }

    /// This reader, reporting its misses into `missing` (one cell shared by several readers).
    pub fn with_missing(self, missing: Rc<Cell<Option<(u64, u64)>>>) -> Sparse {
        Sparse { missing, ..self }
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

/// How many bytes from the start of the file are fetched without a gap (parts are merged, so
/// that is the length of the part at 0).
pub fn covered_prefix(parts: &BTreeMap<u64, Vec<u8>>) -> u64 {
    parts.get(&0).map_or(0, |b| b.len() as u64)
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
        let parts = self.parts.borrow();
        if let Some((&s, b)) = parts.range(..=self.pos).next_back() {
            let off = (self.pos - s) as usize;
            if let Some(avail) = b.get(off..).filter(|a| !a.is_empty()) {
                let n = avail.len().min(buf.len());
                buf.get_mut(..n).unwrap_or_default().copy_from_slice(avail.get(..n).unwrap_or_default());
                self.pos += n as u64;
                let used_up = self.consume_over.as_ref().is_some_and(|(min, on)| on.get() && b.len() > *min) && off + n == b.len();
                drop(parts);
                if used_up {
                    self.parts.borrow_mut().remove(&s);
                }
                return Ok(n);
            }
        }
        // The gap around `pos`: from the end of the part before it to the start of the next.
        let gap_lo = parts.range(..=self.pos).next_back().map_or(0, |(&s, b)| s + b.len() as u64);
        let gap_hi = parts.range(self.pos..).next().map_or(self.len, |(&s, _)| s).min(self.len);
        let start = self.pos.saturating_sub(READ_AHEAD).max(gap_lo);
        let end = (self.pos + (buf.len() as u64).max(READ_AHEAD)).min(gap_hi);
        self.missing.set(Some((start, end)));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A consuming reader drops a big part once it has been read to its end, keeps small ones
    /// and partly read ones, and a second read of dropped bytes is a miss, not wrong bytes.
    #[test]
    fn a_consuming_reader_drops_big_parts_read_to_their_end() {
        let parts: Parts = Default::default();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        add(&mut parts.borrow_mut(), 0, data[..100].to_vec());
        add(&mut parts.borrow_mut(), 100, data[100..5_000].to_vec());
        add(&mut parts.borrow_mut(), 5_000, data[5_000..].to_vec());
        assert_eq!(parts.borrow().len(), 3, "touching pieces stay apart");
        let on = Rc::new(Cell::new(false));
        let mut r = Sparse::new(10_000, parts.clone()).consuming(1_000, on.clone());
        let mut buf = vec![0u8; 6_000];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(parts.borrow().len(), 3, "nothing is dropped while consuming is off");
        on.set(true);
        r.seek(SeekFrom::Start(0)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[..6_000]);
        let left: Vec<u64> = parts.borrow().keys().copied().collect();
        assert_eq!(left, vec![0, 5_000], "the small part and the partly read one stay");
        r.seek(SeekFrom::Start(200)).unwrap();
        let missing = r.missing();
        assert!(r.read_exact(&mut buf[..10]).is_err());
        assert_eq!(missing.get().map(|(a, _)| a <= 200), Some(true));
    }
}
