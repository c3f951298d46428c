//! RWKV state-tuning files ("state tuning", the per-layer `time_state` adapters trained by
//! RWKV-PEFT and similar trainers) read as an initial [`State`] (docs/design.md "State").
//!
//! Such a file is a `.pth` or `.safetensors` holding one tensor per layer,
//! `blocks.{i}.att.time_state`, shape `[H, N, N]`, usually bf16. It is the WKV matrix the
//! recurrence starts from instead of zeros; the two token-shift vectors start at zero.
//!
//! Orientation: the x070 training kernels that learn `time_state` start thread `i` (a value
//! index) from `s0[h·N·N + i·N + j]` (`j` a key index), so the tensor is `[h][value][key]`, the
//! same as the official package's v7 state (`state[3i+1]`) and Gander's `wkv`. No transpose,
//! unlike v5/v6 where the package transposes `(1, 2)` on load because its v5/v6 state is
//! `[h][key][value]` (spec §"State", PIP `model.py` ~line 1468).
//!
//! Like the official package for v5/v6, a layer without a `time_state` starts from zeros; a file
//! with none at all, with tensors other than `time_state`, or with another model's shapes is
//! refused by name.

use super::State;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{DType, TensorSource};

/// Whether `bytes` look like a container a state-tuning file comes in (zip `.pth` or
/// safetensors: an 8-byte header length followed by `{`), as opposed to a Gander state blob.
pub fn looks_like_tuning_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.get(8) == Some(&b'{')
}

/// The layer a `blocks.{i}.att.time_state` name is for, or `None` for any other name.
fn layer_of(name: &str) -> Option<usize> {
    let idx = name.strip_prefix("blocks.")?.strip_suffix(".att.time_state")?;
    // Only plain decimal indices: "+1", " 1" or "01" are not names a trainer writes.
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) || (idx.len() > 1 && idx.starts_with('0')) {
        return None;
    }
    idx.parse().ok()
}

impl State {
    /// Read a state-tuning file (see the module docs) as the initial state of the model with
    /// `cfg` and `fingerprint`.
    pub fn from_tuning(src: &mut dyn TensorSource, cfg: &Config, fingerprint: [u8; 32]) -> Result<State> {
        let names: Vec<(String, Option<usize>)> = src.tensors().keys().map(|n| (n.clone(), layer_of(n))).collect();
        if let Some(marker) = ["emb.weight", "head.weight"].into_iter().find(|m| src.tensors().contains_key(*m)) {
            return Err(Error::StateMismatch(format!("this looks like a model file (it has `{marker}`), not a state; load it as a model")));
        }
        if let Some((other, _)) = names.iter().find(|(_, l)| l.is_none()) {
            return Err(Error::StateMismatch(format!("`{other}` is not a state-tuning tensor: only blocks.N.att.time_state is read")));
        }
        if names.is_empty() {
            return Err(Error::StateMismatch("the file holds no blocks.N.att.time_state tensor; is it a state-tuning file?".into()));
        }
        let want = [cfg.heads, cfg.head_size, cfg.head_size];
        let mut st = State::zeros(cfg, fingerprint);
        for (name, layer) in names {
            let Some(layer) = layer else { continue };
            let info = src.tensors().get(&name).cloned().ok_or_else(|| Error::BadFile(format!("`{name}` vanished")))?;
            let Some(slot) = st.layers.get_mut(layer) else {
                return Err(Error::StateMismatch(format!(
                    "`{name}` is for layer {layer}, this model has {} layers; the file was tuned for another model",
                    cfg.layers
                )));
            };
            if info.shape != want {
                return Err(Error::StateMismatch(format!(
                    "`{name}` has shape {:?}, this model needs [{}, {}, {}] (H, N, N); the file was tuned for another model",
                    info.shape, want[0], want[1], want[2]
                )));
            }
            if !matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16) {
                return Err(Error::StateMismatch(format!("`{name}` is stored as {:?}, not a float type", info.dtype)));
            }
            let values = src.read(&name)?.to_f32();
            if values.len() != slot.wkv.len() {
                return Err(Error::BadFile(format!("`{name}`: {} values read, {} expected", values.len(), slot.wkv.len())));
            }
            if values.iter().any(|x| !x.is_finite()) {
                return Err(Error::StateMismatch(format!("`{name}` contains NaN or infinite values")));
            }
            slot.wkv = values;
        }
        Ok(st)
    }

    /// A saved state from bytes of either kind: a Gander state blob ([`State::from_bytes`]) or a
    /// state-tuning file ([`State::from_tuning`]), told apart by their first bytes.
    pub fn from_any_bytes(bytes: &[u8], cfg: &Config, fingerprint: &[u8; 32]) -> Result<State> {
        if looks_like_tuning_file(bytes) {
            let mut src = crate::format::open_bytes(bytes.to_vec())?;
            State::from_tuning(src.as_mut(), cfg, *fingerprint)
        } else {
            State::from_bytes(bytes, cfg, fingerprint)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layer_of;

    #[test]
    fn only_plain_layer_names_are_taken() {
        assert_eq!(layer_of("blocks.0.att.time_state"), Some(0));
        assert_eq!(layer_of("blocks.11.att.time_state"), Some(11));
        for bad in [
            "blocks..att.time_state",
            "blocks.01.att.time_state",
            "blocks.+1.att.time_state",
            "blocks.1.att.time_state.x",
            "blocks.1.ffn.time_state",
            "time_state",
            "blocks.99999999999999999999999.att.time_state",
        ] {
            assert_eq!(layer_of(bad), None, "{bad}");
        }
    }
}
