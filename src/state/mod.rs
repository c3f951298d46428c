//! The recurrent state of one session and its versioned binary format (**contract**,
//! docs/design.md "State").
//!
//! Per layer (spec §2.1, §3.1): the time-mix token-shift vector (`LN1` output of the previous
//! token), the WKV matrices `S[h][value i][key j]` in fp32, and the channel-mix shift vector.
//!
//! Binary layout, version 1, all integers and floats little-endian:
//!
//! ```text
//! offset  size          field
//! 0       8             magic "GNDRSTAT"
//! 8       4             version (u32) = 1
//! 12      32            model fingerprint (SHA-256, see config::fingerprint)
//! 44      4 x u32       L, C, H, N
//! 60      per layer:    att_shift  C x f32
//!                       wkv        H x N x N x f32, [h][value][key]
//!                       ffn_shift  C x f32
//! ```
//! Total `60 + 4·L·(2C + H·N·N)` bytes: 2,433,084 for a 0.1B model, whatever the context length.

use crate::config::Config;
use crate::error::{Error, Result};

mod tuning;
pub use tuning::looks_like_tuning_file;

const MAGIC: &[u8; 8] = b"GNDRSTAT";
/// The state format version this build writes and reads.
pub const STATE_VERSION: u32 = 1;
const HEADER: usize = 60;

/// One layer's recurrent state.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerState {
    /// `LN1(x)` of the previous token, length C.
    pub att_shift: Vec<f32>,
    /// WKV state, `H·N·N` floats laid out `[h][value][key]`.
    pub wkv: Vec<f32>,
    /// `LN2(x)` of the previous token, length C.
    pub ffn_shift: Vec<f32>,
}

/// The whole recurrent state: fixed size, independent of how many tokens it has seen.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub embd: usize,
    pub heads: usize,
    pub head_size: usize,
    /// The fingerprint of the model this state belongs to.
    pub fingerprint: [u8; 32],
    pub layers: Vec<LayerState>,
}

impl State {
    /// The all-zero state a session starts from.
    pub fn zeros(cfg: &Config, fingerprint: [u8; 32]) -> State {
        let wkv = cfg.heads * cfg.head_size * cfg.head_size;
        let layer = LayerState { att_shift: vec![0.0; cfg.embd], wkv: vec![0.0; wkv], ffn_shift: vec![0.0; cfg.embd] };
        State { embd: cfg.embd, heads: cfg.heads, head_size: cfg.head_size, fingerprint, layers: vec![layer; cfg.layers] }
    }

    /// Whether this state has the shape of a model with `cfg`: L, C, H, N and every vector's
    /// length. The backends index a state by the config, so every state a model runs on passes
    /// this first (`State`'s fields are public: a hand-built one may be anything).
    pub fn check_fits(&self, cfg: &Config) -> Result<()> {
        let have = [self.layers.len(), self.embd, self.heads, self.head_size];
        let want = [cfg.layers, cfg.embd, cfg.heads, cfg.head_size];
        if have != want {
            return Err(Error::StateMismatch(format!(
                "state is for L={} C={} H={} N={}, this model is L={} C={} H={} N={}",
                have[0], have[1], have[2], have[3], want[0], want[1], want[2], want[3]
            )));
        }
        self.check_consistent()
    }

    /// Whether every layer's vectors have the lengths this state's own C, H, N say.
    pub fn check_consistent(&self) -> Result<()> {
        let wkv = self.heads.checked_mul(self.head_size).and_then(|x| x.checked_mul(self.head_size));
        let bad = |l: &LayerState| l.att_shift.len() != self.embd || Some(l.wkv.len()) != wkv || l.ffn_shift.len() != self.embd;
        match self.layers.iter().position(bad) {
            Some(i) => Err(Error::StateMismatch(format!("layer {i} of the state has vectors of the wrong length"))),
            None => Ok(()),
        }
    }

    /// An independent copy (a branch of the conversation).
    pub fn fork(&self) -> State {
        self.clone()
    }

    /// Size of the binary form of a state of a model with `cfg`, without allocating one.
    pub fn byte_len_for(cfg: &Config) -> usize {
        HEADER + 4 * cfg.state_floats()
    }

    /// Size of the binary form in bytes.
    pub fn byte_len(&self) -> usize {
        HEADER + 4 * self.layers.len() * (2 * self.embd + self.heads * self.head_size * self.head_size)
    }

    /// Serialise to the versioned binary format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.fingerprint);
        for d in [self.layers.len(), self.embd, self.heads, self.head_size] {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        for l in &self.layers {
            for v in [&l.att_shift, &l.wkv, &l.ffn_shift] {
                out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            }
        }
        out
    }

    /// Parse a state blob and check that it belongs to the model with `cfg` and `fingerprint`.
    pub fn from_bytes(bytes: &[u8], cfg: &Config, fingerprint: &[u8; 32]) -> Result<State> {
        let Some((header, body)) = bytes.split_first_chunk::<HEADER>() else {
            return Err(Error::StateMismatch("not a Gander state (too short); was it saved by Gander?".into()));
        };
        let (magic, rest) = header.split_at(8);
        if magic != MAGIC {
            return Err(Error::StateMismatch("not a Gander state (bad magic); was it saved by Gander?".into()));
        }
        let (version, rest) = rest.split_at(4);
        let (saved_fingerprint, dims) = rest.split_at(32);
        let words: Vec<u32> = crate::format::le_words(version).chain(crate::format::le_words(dims)).map(u32::from_le_bytes).collect();
        let [version, l, c, h, n] = *words.as_slice() else {
            return Err(Error::StateMismatch("not a Gander state (short header)".into()));
        };
        if version != STATE_VERSION {
            return Err(Error::StateMismatch(format!("state format version {version}; this build reads version {STATE_VERSION}")));
        }
        let dims = [l, c, h, n].map(|d| d as usize);
        let want = [cfg.layers, cfg.embd, cfg.heads, cfg.head_size];
        if dims != want {
            return Err(Error::StateMismatch(format!(
                "state is for L={} C={} H={} N={}, this model is L={} C={} H={} N={}",
                dims[0], dims[1], dims[2], dims[3], want[0], want[1], want[2], want[3]
            )));
        }
        if saved_fingerprint != fingerprint {
            return Err(Error::StateMismatch("state was saved with a different model (fingerprints differ)".into()));
        }
        let mut st = State::zeros(cfg, *fingerprint);
        if bytes.len() != st.byte_len() {
            return Err(Error::StateMismatch(format!("state blob has {} bytes, {} expected; is it truncated?", bytes.len(), st.byte_len())));
        }
        let mut floats = crate::format::le_words(body).map(f32::from_le_bytes);
        for l in &mut st.layers {
            for v in [&mut l.att_shift, &mut l.wkv, &mut l.ffn_shift] {
                for x in v.iter_mut() {
                    // The length check above guarantees enough floats.
                    *x = floats.next().unwrap_or(0.0);
                }
            }
        }
        if st.layers.iter().any(|l| l.att_shift.iter().chain(&l.wkv).chain(&l.ffn_shift).any(|x| !x.is_finite())) {
            return Err(Error::StateMismatch("state contains NaN or infinite values".into()));
        }
        Ok(st)
    }
}
