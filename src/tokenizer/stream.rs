//! Incremental UTF-8 decoding for streamed tokens: a World token may end in the middle of a
//! character (e.g. "😀" is three tokens), so text is emitted only up to the last complete
//! character and the rest waits for the next token.

/// Turns a byte stream into text chunks that never split a UTF-8 character.
#[derive(Default, Debug, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes; return the text that is now complete (possibly empty). Bytes that can never
    /// become valid UTF-8 are emitted as U+FFFD.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    // The prefix up to `good` is valid UTF-8 (what `valid_up_to` promises).
                    out.push_str(&String::from_utf8_lossy(self.pending.get(..good).unwrap_or_default()));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..good + bad);
                        }
                        None => {
                            // An incomplete character at the end: wait for more bytes.
                            self.pending.drain(..good);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Flush what is left at the end of the stream (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
