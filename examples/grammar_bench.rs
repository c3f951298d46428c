//! Token-mask time for a JSON-schema grammar on the World vocabulary (issue 15: the mask must not
//! dominate a ~20 ms decode step).
//!
//! ```text
//! cargo run --release --example grammar_bench -- [STEPS]
//! ```
//! Prints the trie build time, then the median, p99 and maximum time of `Matcher::allowed` per
//! token over a seeded random walk through the grammar (random allowed token each step, a new
//! generation when one ends), twice: as generation runs it (masks cached per state) and with the
//! cache cleared before every step (the full trie walk each time).

use gander::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
use gander::tokenizer::Tokenizer;
use std::time::{Duration, Instant};

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let t = Instant::now();
    let tok = Tokenizer::world();
    let load = t.elapsed();
    let t = Instant::now();
    let trie = TokenTrie::new(&tok, 65536);
    let build = t.elapsed();
    println!("World tokenizer load {:.1} ms, trie build {:.1} ms", ms(load), ms(build));

    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer"},
            "email": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
            "address": {"type": "object", "properties": {
                "street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string", "minLength": 5, "maxLength": 5}
            }, "required": ["city"]},
            "score": {"type": "number"},
            "role": {"enum": ["admin", "user", "guest"]},
            "active": {"type": "boolean"}
        },
        "required": ["name", "age", "active"]
    });
    let t = Instant::now();
    let grammar = Grammar::from_json_schema(&schema).unwrap_or_else(|e| panic!("{e}"));
    println!("schema compile {:.2} ms", ms(t.elapsed()));

    for cached in [true, false] {
        let mut times = walk(&grammar, &tok, &trie, steps, cached);
        times.sort_unstable();
        let pick = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        println!(
            "{:<24} {} steps: median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            if cached { "mask (cache kept):" } else { "mask (cache cleared):" },
            times.len(),
            ms(pick(0.5)),
            ms(pick(0.99)),
            ms(pick(1.0))
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Random allowed tokens (seeded xorshift), one mask timing per step.
fn walk(grammar: &Grammar, tok: &Tokenizer, trie: &TokenTrie, steps: usize, cached: bool) -> Vec<Duration> {
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut m = Matcher::new(grammar);
    let mut mask = TokenMask::new(0);
    let mut times = Vec::with_capacity(steps);
    let mut generated = 0;
    while times.len() < steps {
        if !cached {
            m.clear_cache();
        }
        let t = Instant::now();
        m.allowed(trie, &mut mask);
        times.push(t.elapsed());
        let ids: Vec<u32> = mask.iter().filter(|&i| i != 0).collect();
        // End the generation where allowed (half the time) or when nothing else is; also cap
        // its length so the walk sees the start states again.
        if ids.is_empty() || (mask.contains(0) && next() % 2 == 0) || generated > 300 {
            m = Matcher::new(grammar);
            generated = 0;
            continue;
        }
        // Prefer tokens with a structural character one step in three, to move through the object.
        let structural: Vec<u32> = ids.iter().copied().filter(|&i| tok.token_bytes(i).is_some_and(|b| b.iter().any(|c| b"\"]},".contains(c)))).collect();
        let pool = if !structural.is_empty() && next() % 3 == 0 { &structural } else { &ids };
        let id = pool.get(next() as usize % pool.len()).copied().unwrap_or(0);
        m.accept_token(trie, id);
        generated += 1;
    }
    times
}
