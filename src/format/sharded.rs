//! A checkpoint split over several safetensors files, as Hugging Face publishes large models:
//! `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`)
//! beside the shards. The shards are opened by their headers and read tensor by tensor, so no
//! shard is ever held whole.

use super::{RawTensor, TensorInfo, TensorSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The index's weight map (tensor → shard file name), checked: shard names are plain file
/// names (no directories, nothing hidden), and there is at least one tensor.
pub fn parse_index(bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let bad = |m: String| Error::BadFile(format!("model.safetensors.index.json: {m}"));
    let idx: Index = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a shard index ({e})")))?;
    if idx.weight_map.is_empty() {
        return Err(bad("the weight map is empty".into()));
    }
    for shard in idx.weight_map.values() {
        if shard.is_empty() || shard.starts_with('.') || shard.contains(['/', '\\', '\0']) {
            return Err(bad(format!("shard `{shard}` is not a plain file name beside the index")));
        }
    }
    Ok(idx.weight_map)
}

/// Tensors spread over shards, each read from the shard the index names.
pub struct Sharded {
    shards: Vec<Box<dyn TensorSource>>,
    infos: BTreeMap<String, TensorInfo>,
    owner: BTreeMap<String, usize>,
}

impl Sharded {
    /// Join opened shards (`(file name, source)`) as the weight map says; every mapped tensor
    /// must be in its shard.
    pub fn new(map: &BTreeMap<String, String>, shards: Vec<(String, Box<dyn TensorSource>)>) -> Result<Sharded> {
        let mut infos = BTreeMap::new();
        let mut owner = BTreeMap::new();
        for (tensor, file) in map {
            let i = shards.iter().position(|(f, _)| f == file).ok_or_else(|| Error::BadFile(format!("shard `{file}` was not opened")))?;
            let info = shards
                .get(i)
                .and_then(|(_, s)| s.tensors().get(tensor))
                .ok_or_else(|| Error::BadFile(format!("the index puts `{tensor}` in `{file}`, which does not hold it; is the download complete?")))?;
            infos.insert(tensor.clone(), info.clone());
            owner.insert(tensor.clone(), i);
        }
        Ok(Sharded { shards: shards.into_iter().map(|(_, s)| s).collect(), infos, owner })
    }
}

impl TensorSource for Sharded {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }

    fn read(&mut self, name: &str) -> Result<RawTensor> {
        let i = *self.owner.get(name).ok_or_else(|| Error::BadModel(format!("missing tensor `{name}`")))?;
        self.shards.get_mut(i).ok_or_else(|| Error::BadModel(format!("missing shard of `{name}`")))?.read(name)
    }

    fn read_rows(&mut self, name: &str, rows: std::ops::Range<usize>) -> Option<Result<RawTensor>> {
        let i = *self.owner.get(name)?;
        self.shards.get_mut(i)?.read_rows(name, rows)
    }

    /// Shard by shard, in file order within each.
    fn order(&self, name: &str) -> Option<u64> {
        let i = *self.owner.get(name)?;
        Some(((i as u64) << 48) | self.shards.get(i)?.order(name)?)
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.shards.first().map(|s| s.metadata()).unwrap_or_default()
    }
}

/// Open `model.safetensors.index.json` and the shards beside it.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_index(path: &std::path::Path) -> Result<Box<dyn TensorSource>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let map = parse_index(&bytes)?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let files: std::collections::BTreeSet<&String> = map.values().collect();
    let mut shards = Vec::new();
    for f in files {
        let st = super::safetensors::SafetensorsFile::open(&dir.join(f))?;
        shards.push((f.clone(), Box::new(st) as Box<dyn TensorSource>));
    }
    Ok(Box::new(Sharded::new(&map, shards)?))
}
