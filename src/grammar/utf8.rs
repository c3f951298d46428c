//! Character classes over Unicode code points, turned into byte-level patterns.
//!
//! The recogniser runs over UTF-8 bytes (tokens may end in the middle of a character), so a class
//! such as `[α-ω]` is compiled into a few sequences of byte ranges, e.g. `[CE][B1-BF] | [CF][80-89]`.
//! The splitting follows the classic construction (as in RE2 and the `utf8-ranges` crate): cut a
//! range where the encoded length changes, then where the continuation bytes stop spanning their
//! full `80-BF` range, until every piece is a product of per-byte ranges.

/// The highest Unicode scalar value.
pub(super) const MAX_CHAR: u32 = 0x10FFFF;
const SURROGATES: (u32, u32) = (0xD800, 0xDFFF);

/// Sort and merge `ranges` (inclusive), apply `negated` against all of Unicode, and drop the
/// surrogates (they have no UTF-8 encoding).
pub(super) fn normalise(mut ranges: Vec<(u32, u32)>, negated: bool) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    if negated {
        let mut complement = Vec::with_capacity(merged.len() + 1);
        let mut next = 0u32;
        for &(lo, hi) in &merged {
            if lo > next {
                complement.push((next, lo - 1));
            }
            next = hi.saturating_add(1);
        }
        if next <= MAX_CHAR {
            complement.push((next, MAX_CHAR));
        }
        merged = complement;
    }
    let mut out = Vec::with_capacity(merged.len() + 1);
    for (lo, hi) in merged {
        let hi = hi.min(MAX_CHAR);
        if lo > hi {
            continue;
        }
        if hi < SURROGATES.0 || lo > SURROGATES.1 {
            out.push((lo, hi));
            continue;
        }
        if lo < SURROGATES.0 {
            out.push((lo, SURROGATES.0 - 1));
        }
        if hi > SURROGATES.1 {
            out.push((SURROGATES.1 + 1, hi));
        }
    }
    out
}

/// The UTF-8 encodings of the scalar values `lo..=hi` (no surrogates inside) as sequences of
/// byte ranges: a byte string matches the range iff it matches one sequence, byte by byte.
pub(super) fn sequences(lo: u32, hi: u32, out: &mut Vec<Vec<(u8, u8)>>) {
    let mut todo = vec![(lo, hi)];
    while let Some((start, mut end)) = todo.pop() {
        'split: loop {
            if start > end {
                break;
            }
            // Pieces must have one encoded length.
            for boundary in [0x7F, 0x7FF, 0xFFFF] {
                if start <= boundary && end > boundary {
                    todo.push((boundary + 1, end));
                    end = boundary;
                }
            }
            // Below the top byte, each continuation byte must span a whole range or a suffix/prefix
            // that the other bytes do not depend on.
            for i in 1..4 {
                let max = (1u32 << (6 * i)) - 1;
                if start & !max != end & !max {
                    if start & max != 0 {
                        todo.push(((start | max) + 1, end));
                        end = start | max;
                        continue 'split;
                    }
                    if end & max != max {
                        todo.push((end & !max, end));
                        end = (end & !max) - 1;
                        continue 'split;
                    }
                }
            }
            if let (Some(a), Some(b)) = (char::from_u32(start), char::from_u32(end)) {
                let (mut ea, mut eb) = ([0u8; 4], [0u8; 4]);
                let (sa, sb) = (a.encode_utf8(&mut ea).as_bytes(), b.encode_utf8(&mut eb).as_bytes());
                out.push(sa.iter().zip(sb).map(|(&x, &y)| (x, y)).collect());
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(seqs: &[Vec<(u8, u8)>], bytes: &[u8]) -> bool {
        seqs.iter().any(|s| s.len() == bytes.len() && s.iter().zip(bytes).all(|(&(lo, hi), &b)| lo <= b && b <= hi))
    }

    #[test]
    fn sequences_match_exactly_the_encoded_range() {
        for &(lo, hi) in &[(0u32, 0x10FFFF), (0x3B1, 0x3C9), (0x7A, 0x800), (0xFFF0, 0x10010), (0x1F600, 0x1F64F)] {
            let mut seqs = Vec::new();
            for (a, b) in normalise(vec![(lo, hi)], false) {
                sequences(a, b, &mut seqs);
            }
            for c in (0..=0x10FFFFu32).step_by(7).chain([lo, hi, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000]) {
                if let Some(ch) = char::from_u32(c) {
                    let mut buf = [0u8; 4];
                    let inside = (lo..=hi).contains(&c);
                    assert_eq!(matches(&seqs, ch.encode_utf8(&mut buf).as_bytes()), inside, "U+{c:X} in {lo:X}-{hi:X}");
                }
            }
        }
    }

    #[test]
    fn negation_complements_and_drops_surrogates() {
        assert_eq!(normalise(vec![(b'"' as u32, b'"' as u32), (0x5C, 0x5C)], true), vec![(0, 0x21), (0x23, 0x5B), (0x5D, 0xD7FF), (0xE000, MAX_CHAR)]);
        assert_eq!(normalise(vec![(5, 9), (1, 6), (11, 12)], false), vec![(1, 9), (11, 12)]);
    }
}
