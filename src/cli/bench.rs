//! `gander bench`: prefill and decode speed of a model on a backend, with the CPU's read
//! bandwidth and multiply-add peaks as bounds (README "Speed").

use super::print_json;
use crate::backend::{Backend, SampleJob, NO_TOKEN};
use crate::error::Result;
use crate::model::{self, Model};
use crate::sampler::{Sampler, SamplerOptions};
use std::path::Path;
use std::time::Instant;

/// Memory read bandwidth in GB/s: the best of 5 passes over 1 GiB, summed with the fastest
/// kernel by every thread of the CPU pool (the same threads that run the model), so the probe
/// is limited by memory, not arithmetic.
fn read_bandwidth_gb_s() -> f64 {
    use rayon::prelude::*;
    let buf = vec![1f32; 1 << 28];
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let s: f32 = crate::backend::cpu::pool().install(|| buf.par_chunks(1 << 16).map(|c| crate::backend::cpu::matmul::dot_best(c, c)).sum());
        let gb = (buf.len() * 4) as f64 / 1e9;
        best = best.max(gb / t.elapsed().as_secs_f64());
        std::hint::black_box(s);
    }
    best
}

/// Decoded tokens before timing and counting (see the loop).
const WARM_UP_TOKENS: usize = 3;

pub(super) fn bench<B: Backend>(path: &Path, m: Model<B>, t_load: Instant, prompt_tokens: usize, gen_tokens: usize, repeat: usize) -> Result<()> {
    let load_s = t_load.elapsed().as_secs_f64();
    let cpu = m.backend.name() == "cpu";
    let prompt = model::bench_prompt(m.config.vocab, prompt_tokens);
    let (mut prefill_best, mut decode_best) = (0f64, 0f64);
    let mut counters = None;
    for _ in 0..repeat {
        let mut state = m.new_state()?;
        let t0 = Instant::now();
        let mut logits = m.forward(&mut state, &prompt)?;
        prefill_best = prefill_best.max(prompt_tokens as f64 / t0.elapsed().as_secs_f64());
        // Greedy decoding as `generate` runs it: on the device where the backend samples there
        // (one id read back per token), else on the host from the logits.
        let opts = SamplerOptions { temperature: 0.0, ..Default::default() };
        let mut sampler = Sampler::new(opts.clone(), m.config.vocab)?;
        let v = m.config.vocab;
        // On the device, the last logits stay there (held while the next token runs, as in
        // `generate`), with the penalties' counts.
        let mut dev =
            if m.backend.samples_on_device() { Some((m.backend.act_from_host(1, v, &logits)?, m.backend.act_from_host(1, v, &vec![0.0; v])?)) } else { None };
        let mut next = sampler.sample(&logits, |_| true)?;
        let mut step = |t: u32| -> Result<u32> {
            match &mut dev {
                Some((last, occ)) => {
                    *last = m.forward_device(&mut state, &[t])?;
                    let job = SampleJob { opts: &opts, uniform: 0.0, mask: None, bias: &[] };
                    let id = m.backend.read(&m.backend.sample(last, occ, &job)?)?;
                    Ok(id.first().map_or(NO_TOKEN, |x| x.to_bits()))
                }
                None => {
                    m.forward_into(&mut state, &[t], &mut logits)?;
                    sampler.sample(&logits, |_| true)
                }
            }
        };
        // Three untimed steps first: a session's first token builds bind groups for its state,
        // and the two logits buffers that alternate settle by the third (tests/gpu.rs), so the
        // counters below describe the steady state.
        for _ in 0..WARM_UP_TOKENS {
            next = step(next)?;
        }
        m.backend.take_counters();
        let t1 = Instant::now();
        for _ in 0..gen_tokens {
            next = step(next)?;
        }
        counters = m.backend.take_counters();
        decode_best = decode_best.max(gen_tokens as f64 / t1.elapsed().as_secs_f64().max(1e-9));
    }
    // Host-side bounds describe the CPU; for the GPU they are left out (its bandwidth is the
    // device's, not measured here).
    let bw = if cpu { read_bandwidth_gb_s() } else { f64::NAN };
    let bytes = m.decode_bytes_per_token();
    let bound = bw * 1e9 / bytes as f64;
    // Prefill work: one multiply-add per weight of every layer matrix per token (the head runs
    // for the last token only; the embedding is a lookup).
    let (c, f, l) = (m.config.embd, m.config.ffn, m.config.layers);
    let lora = m.config.rank_w + m.config.rank_a + m.config.rank_v + m.config.rank_g;
    let madds_per_token = (l * (4 * c * c + 2 * c * f + 2 * c * lora)) as f64;
    let prefill_gmadd_s = prefill_best * madds_per_token / 1e9;
    let (fma_peak, vnni_peak) = if cpu { crate::backend::cpu::peak::multiply_add_rates() } else { (None, None) };
    let finite = |x: f64| x.is_finite().then_some(x);
    let per_token = |n: u64| n as f64 / gen_tokens.max(1) as f64;
    let dispatches = counters.map(|c| per_token(c.dispatches));
    let device_per_token = counters.map(|c| {
        serde_json::json!({
            "dispatches": per_token(c.dispatches),
            "bind_groups_created": per_token(c.bind_groups_created),
            "buffers_created": per_token(c.buffers_created),
            "submits": per_token(c.submits),
            "readback_bytes": per_token(c.readback_bytes),
        })
    });
    print_json(&serde_json::json!({
        "prefill_tok_s": prefill_best,
        "decode_tok_s": decode_best,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens,
        "repeat": repeat,
        "backend": m.backend.name(),
        "threads": cpu.then(|| crate::backend::cpu::pool().current_num_threads()),
        "isa": cpu.then(|| format!("{:?}", crate::backend::cpu::matmul::best_isa()).to_lowercase()),
        "quant": m.quant,
        "params": m.config.params(),
        "file_bytes": std::fs::metadata(path).map(|md| md.len()).unwrap_or(0),
        "decode_bytes_per_token": bytes,
        "mem_read_gb_s": finite(bw),
        "decode_bound_tok_s": finite(bound),
        "decode_fraction_of_bound": finite(decode_best / bound),
        "dispatches_per_token": dispatches,
        "dispatches_per_layer": dispatches.map(|d| d / m.config.layers as f64),
        "device_per_token": device_per_token,
        "adapter": m.backend.adapter_name(),
        "prefill_gmadd_s": prefill_gmadd_s,
        "fma_peak_gmadd_s": fma_peak,
        "vnni_peak_gmadd_s": vnni_peak,
        "prefill_fraction_of_fma_peak": fma_peak.map(|p| prefill_gmadd_s / p),
        "prefill_fraction_of_vnni_peak": vnni_peak.map(|p| prefill_gmadd_s / p),
        "load_s": load_s,
        "config": m.config,
    }))
}
