//! Tokenizers: the RWKV World vocabulary (65,529 tokens, greedy longest match, spec §6) and the
//! byte-level tokenizer of vocab-256 models (token = byte). Decoding is byte-exact; use
//! [`StreamDecoder`] to turn a growing byte stream into text without splitting a character.

mod stream;
mod world;

pub use stream::StreamDecoder;
pub use world::World;

/// Parse text in the vocabulary file's format into `tokens[id]` (id 0 has no bytes); an error
/// names the first bad line. Public for the fuzz target; the crate ships its own vocabulary.
pub fn parse_vocab_text(text: &str) -> Result<Vec<Vec<u8>>, String> {
    world::parse_vocab(text)
}

use std::sync::OnceLock;

/// A tokenizer chosen from the model's vocabulary size.
#[derive(Clone, Copy, Debug)]
pub enum Tokenizer {
    /// The RWKV World vocabulary (`rwkv_vocab_v20230424.txt`), for models with ≥ 65,530 rows.
    World(&'static World),
    /// One token per byte, for models with exactly 256 rows.
    Bytes,
}

static WORLD: OnceLock<World> = OnceLock::new();

impl Tokenizer {
    /// The shipped World tokenizer (parsed on first use, a few tens of milliseconds).
    pub fn world() -> Tokenizer {
        Tokenizer::World(WORLD.get_or_init(World::builtin))
    }

    /// The tokenizer for a model with `vocab` rows, if Gander ships one.
    pub fn for_vocab(vocab: usize) -> Option<Tokenizer> {
        match vocab {
            256 => Some(Tokenizer::Bytes),
            v if v > world::MAX_ID as usize => Some(Tokenizer::world()),
            _ => None,
        }
    }

    /// Text to token ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_bytes(text.as_bytes())
    }

    /// Bytes to token ids.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        match self {
            Tokenizer::World(w) => w.encode(bytes),
            Tokenizer::Bytes => bytes.iter().map(|&b| b as u32).collect(),
        }
    }

    /// The bytes of one token; `None` for ids without bytes (World id 0, ids past the vocabulary).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        match self {
            Tokenizer::World(w) => w.token_bytes(id),
            Tokenizer::Bytes => BYTES.get(id as usize).map(std::slice::from_ref),
        }
    }

    /// Concatenated bytes of `ids`; ids without bytes contribute nothing.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        ids.iter().filter_map(|&i| self.token_bytes(i)).flatten().copied().collect()
    }

    /// `ids` as text; invalid UTF-8 becomes U+FFFD (only the bad bytes, not the whole string).
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// Whether sampling may produce `id`: a token with bytes, or the World end-of-text id 0.
    pub fn can_sample(&self, id: u32) -> bool {
        self.token_bytes(id).is_some() || self.end_of_text() == Some(id)
    }

    /// The end-of-text id, which ends a generation (World: 0, spec §6.4; byte-level: none).
    pub fn end_of_text(&self) -> Option<u32> {
        match self {
            Tokenizer::World(_) => Some(0),
            Tokenizer::Bytes => None,
        }
    }
}

// Evaluated at compile time: an index out of range would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static BYTES: [u8; 256] = {
    let mut b = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        b[i] = i as u8;
        i += 1;
    }
    b
};
