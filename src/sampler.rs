//! Sampling the next token (spec §8, the reference's `sample_logits` plus penalties).
//!
//! Order, as in the reference: penalties on the logits, softmax, top-p cut (ties at the cutoff
//! kept), top-k, temperature applied to the probabilities (`p^(1/T)`), renormalise, draw.
//! `temperature = 0` is greedy (the lowest id wins a tie). Ids the tokenizer cannot produce are
//! masked. The random generator is xoshiro256** seeded through splitmix64, so a seed gives the
//! same tokens on every platform.

use crate::error::{Error, Result};
use serde::Deserialize;

/// Sampling options; the defaults are plain sampling at temperature 1 without penalties.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SamplerOptions {
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus mass in [0, 1]; 1 keeps everything, 0 only the most likely token(s).
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 = no limit.
    pub top_k: usize,
    /// Subtracted once from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted per (decayed) occurrence.
    pub frequency_penalty: f32,
    /// Occurrence counts are multiplied by this after every token (the reference uses 0.996).
    pub penalty_decay: f32,
    pub seed: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions { temperature: 1.0, top_p: 1.0, top_k: 0, presence_penalty: 0.0, frequency_penalty: 0.0, penalty_decay: 1.0, seed: 0 }
    }
}

impl SamplerOptions {
    /// Check every value, naming the bad option.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: &str| Err(Error::BadInput(format!("{name}: {msg}")));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", "must be a number >= 0 (0 = greedy)");
        }
        if !(self.top_p.is_finite() && self.top_p >= 0.0 && self.top_p <= 1.0) {
            return bad("topP", "must be between 0 and 1");
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("penalty", "presencePenalty and frequencyPenalty must be finite numbers");
        }
        if !(self.penalty_decay.is_finite() && (0.0..=1.0).contains(&self.penalty_decay)) {
            return bad("penaltyDecay", "must be between 0 and 1");
        }
        Ok(())
    }
}

/// xoshiro256** (Blackman & Vigna), seeded with splitmix64.
#[derive(Clone, Debug)]
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A sampler with its random state and occurrence counts.
#[derive(Clone, Debug)]
pub struct Sampler {
    opts: SamplerOptions,
    rng: Rng,
    occurrences: Vec<f32>,
    /// Reused between calls (512 KB for a 65536-row vocabulary).
    cand: Vec<(u32, f64)>,
    probs: Vec<f64>,
}

impl Sampler {
    pub fn new(opts: SamplerOptions, vocab: usize) -> Result<Sampler> {
        opts.validate()?;
        let rng = Rng::new(opts.seed);
        Ok(Sampler { opts, rng, occurrences: vec![0.0; vocab], cand: Vec::new(), probs: Vec::new() })
    }

    /// The options this sampler runs with.
    pub fn options(&self) -> &SamplerOptions {
        &self.opts
    }

    /// The draw a non-greedy [`Sampler::sample`] would use, for a device sampler
    /// ([`crate::backend::Backend::sample`]): the same generator, so a seed gives the same
    /// sequence of draws on every backend.
    pub fn next_uniform(&mut self) -> f64 {
        self.rng.next_f64()
    }

    /// The decayed occurrence count of every id (what the penalties read).
    pub fn occurrences(&self) -> &[f32] {
        &self.occurrences
    }

    /// Record a generated token for the penalties.
    pub fn accept(&mut self, token: u32) {
        if self.opts.penalty_decay != 1.0 {
            self.occurrences.iter_mut().for_each(|o| *o *= self.opts.penalty_decay);
        }
        if let Some(o) = self.occurrences.get_mut(token as usize) {
            *o += 1.0;
        }
    }

    /// Pick the next token from `logits`; only ids with `allowed(id)` can be chosen.
    pub fn sample(&mut self, logits: &[f32], allowed: impl Fn(u32) -> bool) -> Result<u32> {
        let o = &self.opts;
        let cand = &mut self.cand;
        cand.clear();
        for (i, &l) in logits.iter().enumerate() {
            if !allowed(i as u32) || !l.is_finite() {
                continue;
            }
            let occ = self.occurrences.get(i).copied().unwrap_or(0.0) as f64;
            // In f64: finite f32 penalties cannot overflow here, so every candidate stays finite.
            let pen = if occ > 0.0 { o.presence_penalty as f64 + occ * o.frequency_penalty as f64 } else { 0.0 };
            cand.push((i as u32, l as f64 - pen));
        }
        let Some(&first) = cand.first() else {
            return Err(Error::BadInput("no token can be sampled: every logit is masked or not finite".into()));
        };
        if o.temperature == 0.0 {
            // Greedy: the highest logit, the lowest id on a tie; a scan, not a sort.
            let best = cand.iter().fold(first, |b, &c| if c.1 > b.1 { c } else { b });
            return Ok(best.0);
        }
        // Highest logit first; ties broken by the lower id, so runs are repeatable.
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (top, max) = cand.first().copied().unwrap_or(first);
        let probs = &mut self.probs;
        probs.clear();
        probs.extend(cand.iter().map(|c| (c.1 - max).exp()));
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        // top-p: keep every token whose probability is >= the one where the mass reaches top_p.
        let mut keep = probs.len();
        if o.top_p < 1.0 {
            let mut acc = 0.0;
            let mut cutoff = 1.0;
            for &p in probs.iter() {
                acc += p;
                cutoff = p;
                if acc >= o.top_p as f64 {
                    break;
                }
            }
            keep = probs.iter().take_while(|&&p| p >= cutoff).count().max(1);
        }
        if o.top_k > 0 {
            keep = keep.min(o.top_k);
        }
        // Temperature on the kept probabilities, p^(1/T) renormalised, computed as
        // exp((l − l_max)/T): the most likely token keeps weight 1, so a small T can neither
        // underflow every weight to 0 nor turn them into NaN.
        probs.truncate(keep);
        if o.temperature != 1.0 {
            let inv = 1.0 / o.temperature as f64;
            for (p, c) in probs.iter_mut().zip(cand.iter()) {
                *p = ((c.1 - max) * inv).exp();
            }
        }
        let total: f64 = probs.iter().sum();
        let mut x = self.rng.next_f64() * total;
        let mut last = top;
        for (&p, &c) in probs.iter().zip(cand.iter()) {
            if x < p {
                return Ok(c.0);
            }
            x -= p;
            last = c.0;
        }
        // Rounding left x just above the total: the last kept token.
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_and_masks() {
        let mut s = Sampler::new(SamplerOptions { temperature: 0.0, ..Default::default() }, 4).unwrap();
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 5.0], |_| true).unwrap(), 3);
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 5.0], |i| i != 3).unwrap(), 1);
    }

    #[test]
    fn seed_repeats_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerOptions { seed, ..Default::default() }, 50).unwrap();
            (0..20).map(|_| s.sample(&logits, |_| true).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut s = Sampler::new(SamplerOptions { top_k: 1, seed: 3, ..Default::default() }, 50).unwrap();
        let best = Sampler::new(SamplerOptions { temperature: 0.0, ..Default::default() }, 50).unwrap().sample(&logits, |_| true).unwrap();
        for _ in 0..10 {
            assert_eq!(s.sample(&logits, |_| true).unwrap(), best);
        }
    }

    #[test]
    fn presence_penalty_moves_choice() {
        let mut s = Sampler::new(SamplerOptions { temperature: 0.0, presence_penalty: 2.0, ..Default::default() }, 3).unwrap();
        s.accept(2);
        assert_eq!(s.sample(&[0.0, 1.0, 2.5], |_| true).unwrap(), 1);
    }

    #[test]
    fn tiny_temperature_and_huge_penalties_still_pick_likely_tokens() {
        // p^(1/T) of every token underflows to 0 at T = 0.001 for a flat distribution; the top
        // token must still be chosen.
        let logits: Vec<f32> = (0..50).map(|i| i as f32 * 0.01).collect();
        let mut s = Sampler::new(SamplerOptions { temperature: 0.001, seed: 1, ..Default::default() }, 50).unwrap();
        for _ in 0..20 {
            assert_eq!(s.sample(&logits, |_| true).unwrap(), 49);
        }
        let mut s = Sampler::new(SamplerOptions { temperature: 0.5, frequency_penalty: -3e38, seed: 2, ..Default::default() }, 50).unwrap();
        s.accept(3);
        for _ in 0..5 {
            assert_eq!(s.sample(&logits, |_| true).unwrap(), 3, "a huge negative penalty makes token 3 certain");
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let e = SamplerOptions { top_p: 2.0, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("topP"));
    }
}
