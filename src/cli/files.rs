//! `gander convert` and `gander info`: a checkpoint to a Gander file (written next to the
//! target and renamed, so a failure never leaves a partial file), and what a file holds.

use super::print_json;
use crate::error::{Error, Result};
use crate::format::{self, gander};
use crate::model::{self, Config};
use crate::tokenizer::Tokenizer;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub(super) fn convert(input: &Path, output: &Path, quant: &str) -> Result<()> {
    let quant = gander::Quant::parse(quant)?;
    let mut src = format::open_path(input)?;
    warn_requantised(src.as_ref(), quant);
    // Write next to the target and rename at the end: a failure never leaves a partial file.
    let mut tmp_name = output.as_os_str().to_owned();
    tmp_name.push(".gander-part");
    let tmp = PathBuf::from(tmp_name);
    if tmp == input || output == input {
        return Err(Error::BadInput(format!("{}: the output would overwrite the input", output.display())));
    }
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(file);
    let tty = std::io::stderr().is_terminal();
    let res = model::convert(src.as_mut(), quant, &mut w, &mut |done, total| {
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!("\rconverting [{}{}] {done}/{total} tensors", "#".repeat(filled), " ".repeat(width - filled));
        }
    });
    if tty {
        eprintln!();
    }
    let res = res.and_then(|_| w.into_inner().map_err(|e| Error::io(&tmp, e.into_error())).map(|_| ()));
    match res.and_then(|_| std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A GGUF file's K-quants and other block formats Gander does not share are dequantised and
/// quantised again: say so (Q8_0 and Q4_0 go to int8 and q4 code for code).
fn warn_requantised(src: &dyn format::TensorSource, quant: gander::Quant) {
    if src.layout() != format::layout::Layout::Gguf {
        return;
    }
    let mut lossy: Vec<String> = src
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("ggml_type:"))
        .map(|(_, t)| t.clone())
        .filter(|t| !matches!(t.as_str(), "F32" | "F16" | "BF16" | "Q8_0" | "Q4_0"))
        .collect();
    lossy.sort();
    lossy.dedup();
    if !lossy.is_empty() {
        eprintln!(
            "warning: this GGUF file holds {} tensors; Gander dequantises them and quantises them again as {}, which rounds a second time (Q8_0 and Q4_0 convert to int8 and q4 exactly)",
            lossy.join(", "),
            quant.name()
        );
    }
}

/// Whether the file begins like a zip (a `.pth`), reading 4 bytes only.
fn starts_with_zip_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).map(|_| &magic == b"PK\x03\x04").unwrap_or(false)
}

pub(super) fn info(path: &Path) -> Result<()> {
    let mut src = format::open_path(path)?;
    let gmeta = gander::read_meta(src.as_ref())?;
    let cfg = Config::from_tensors(src.tensors())?;
    let fp = model::fingerprint(&cfg, src.as_mut())?;
    let gguf = src.layout() == format::layout::Layout::Gguf;
    let quant = match &gmeta {
        Some(m) => m.quant.get("blocks.0.att.key.weight").cloned().unwrap_or_else(|| "f32".into()),
        // GGUF: the ggml type of the layer matrices (`q8_0`, `q4_0`, `q6_k` …)
        None if gguf => src.metadata().get("ggml_type:blocks.0.att.key.weight").map(|t| t.to_lowercase()).unwrap_or_default(),
        None => src.tensors().get("blocks.0.att.key.weight").map(|i| format!("{:?}", i.dtype).to_lowercase()).unwrap_or_default(),
    };
    let tokenizer = match Tokenizer::for_vocab(cfg.vocab) {
        Some(Tokenizer::World(_)) => "world",
        Some(Tokenizer::Bytes) => "bytes",
        None => "none",
    };
    let state_bytes = crate::State::byte_len_for(&cfg);
    let summary = model::inspect::summarize(src.as_ref())?;
    print_json(&serde_json::json!({
        "format": if gmeta.is_some() { "gander" } else if gguf { "gguf" } else if starts_with_zip_magic(path) { "pth" } else { "safetensors" },
        "layout": summary.layout,
        "config": cfg,
        "quant": quant,
        "params": cfg.params(),
        "state_bytes": state_bytes,
        "tokenizer": tokenizer,
        "fingerprint": crate::config::fingerprint_hex(&fp),
        "quants": summary.quants,
    }))
}
