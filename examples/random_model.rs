//! Write a random RWKV-7 checkpoint of any shape as a Gander file, for benchmarks
//! (`make bench` uses the 0.1B shape: C=768, L=12, V=65536, ranks 64/64/32/128, spec §1.5).
//!
//! ```text
//! cargo run --release --example random_model -- OUT [--embd 768] [--layers 12] [--vocab 65536] [--quant f16]
//! cargo run --release --example random_model -- --shapes [--embd 2048] ...   # names and shapes as JSON
//! ```
//! `--shapes` prints the official tensor names and shapes of that config instead of writing a
//! file (`bench/random_pth.py` writes the same checkpoint as an official `.pth` with torch).
//! Values are seeded pseudo-random numbers with roughly trained-model scales; the output is
//! useless as a language model and exists only to measure speed and memory.

use gander::format::gander::{write, Quant};
use gander::format::{DType, RawTensor, TensorInfo, TensorSource};
use std::collections::BTreeMap;

struct RandomSource {
    infos: BTreeMap<String, TensorInfo>,
    seed: u64,
}

impl TensorSource for RandomSource {
    fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.infos
    }
    fn read(&mut self, name: &str) -> gander::Result<RawTensor> {
        let info = self.infos[name].clone();
        let n: usize = info.shape.iter().product();
        let fan_in = *info.shape.last().unwrap_or(&1) as f32;
        let mut x = self.seed ^ name.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 // uniform [0, 1)
        };
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                let u = next();
                if name.ends_with("att.w0") {
                    -6.0 + 6.0 * u
                } else if info.shape.len() == 1 && name.ends_with(".weight") {
                    1.0
                } else if info.shape.len() == 1 {
                    0.0
                } else if info.shape.len() == 3 || name.ends_with("r_k") {
                    u
                } else {
                    (u - 0.5) * 2.0 / fan_in.sqrt()
                }
            })
            .collect();
        Ok(RawTensor { info, data: vals.iter().flat_map(|v| v.to_le_bytes()).collect() })
    }
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args.first().ok_or("usage: random_model OUT [--embd C] [--layers L] [--vocab V] [--quant f32|f16]")?.clone();
    let c: usize = arg(&args, "--embd", "768").parse()?;
    let l: usize = arg(&args, "--layers", "12").parse()?;
    let v: usize = arg(&args, "--vocab", "65536").parse()?;
    let quant = Quant::parse(&arg(&args, "--quant", "f16"))?;
    let n = 64;
    // LoRA ranks by the formula that matches the released 0.1B/1.5B files (spec §1.5).
    let r = |k: f64, e: f64| (((k * (c as f64).powf(e) / 32.0).round() as usize) * 32).max(32);
    let (dw, da, dv, dg) = (r(1.8, 0.5), r(1.8, 0.5), r(1.3, 0.5), r(0.6, 0.8));
    let cfg = gander::Config {
        vocab: v,
        embd: c,
        layers: l,
        heads: c / n,
        head_size: n,
        ffn: 4 * c,
        rank_w: dw,
        rank_a: da,
        rank_v: dv,
        rank_g: dg,
        layer0_has_v: false,
        deep_embed: 0,
    };
    if out == "--shapes" {
        println!("{}", serde_json::to_string(&cfg.expected_shapes())?);
        return Ok(());
    }
    let infos = cfg.expected_shapes().into_iter().map(|(k, shape)| (k, TensorInfo { dtype: DType::F32, shape })).collect();
    let mut src = RandomSource { infos, seed: 42 };
    let fp = gander::model::fingerprint(&cfg, &mut src)?;
    let names: Vec<String> = src.infos.keys().cloned().collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
    write(&mut src, &names, quant, &hex, &mut w, &mut |_, _| {})?;
    eprintln!("wrote {out}: C={c} L={l} V={v} ranks {dw}/{da}/{dv}/{dg}, {} params, {}", cfg.params(), quant.name());
    Ok(())
}
