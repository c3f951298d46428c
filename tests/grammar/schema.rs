//! JSON schemas: unsupported keywords are refused by name, and random constrained generations
//! parse as JSON and validate against their schema (checked by a small validator for the
//! supported keywords, below).

use super::Rng;
use gander::grammar::{Grammar, Matcher, TokenMask, TokenTrie};
use gander::tokenizer::Tokenizer;
use serde_json::{json, Value};

#[test]
fn unsupported_keywords_are_refused_by_name() {
    let cases = [
        (json!({"type":"object","properties":{"name":{"type":"string","pattern":"^a"}}}), "unsupported keyword `pattern` at /properties/name"),
        (json!({"type":"integer","minimum":3}), "unsupported keyword `minimum` at the root"),
        (json!({"$ref":"#/defs/x"}), "unsupported keyword `$ref` at the root"),
        (json!({"type":"array","items":{"oneOf":[{"type":"null"}]}}), "unsupported keyword `oneOf` at /items"),
        (json!({"type":"object","additionalProperties":true}), "`additionalProperties` other than `false` is not supported"),
        (json!({"type":"object","properties":{"a/b":{"format":"date"}}}), "unsupported keyword `format` at /properties/a~1b"),
        (json!({"type":"object","required":["x"]}), "required property `x` is not in `properties`"),
        (json!({"type":"strin"}), "unknown type `strin` at /type"),
        (json!({"type":"string","maxLength":1,"minLength":2}), "`maxLength` is below `minLength`"),
    ];
    for (schema, expected) in cases {
        let e = Grammar::from_json_schema(&schema).unwrap_err();
        assert_eq!(e.code(), "BAD_INPUT");
        assert!(e.to_string().starts_with("json schema: ") && e.to_string().contains(expected), "{e} / {expected}");
    }
}

#[test]
fn properties_in_declared_order_with_optional_ones_skippable() {
    let g = Grammar::from_json_schema(&json!({"properties":{"z":{"type":"integer"},"a":{"type":"boolean"},"m":{"type":"null"}},"required":["a"]})).unwrap();
    let ok = |s: &str| {
        let mut m = Matcher::new(&g);
        m.accept_bytes(s.as_bytes()) && m.can_end()
    };
    for s in [r#"{"a":true}"#, r#"{"z":1,"a":false}"#, r#"{"a":true,"m":null}"#, r#"{"z":-2,"a":true,"m":null}"#] {
        assert!(ok(s), "{s}");
    }
    for s in ["{}", r#"{"a":true,"z":1}"#, r#"{"z":1}"#, r#"{,"a":true}"#, r#"{"a":true,}"#, r#"{"a": true}"#, r#"{"a":true,"q":1}"#] {
        assert!(!ok(s), "{s}");
    }
}

/// A validator for the keywords the generator supports (absent `additionalProperties` = false).
fn validate(v: &Value, s: &Value, path: &str) -> Result<(), String> {
    let fail = |m: &str| Err(format!("{path}: {m} ({v})"));
    let Some(s) = s.as_object() else {
        return Ok(());
    };
    if let Some(c) = s.get("const") {
        return if v == c { Ok(()) } else { fail("not the const") };
    }
    if let Some(e) = s.get("enum") {
        return if e.as_array().unwrap().contains(v) { Ok(()) } else { fail("not in enum") };
    }
    if let Some(any) = s.get("anyOf") {
        return if any.as_array().unwrap().iter().any(|b| validate(v, b, path).is_ok()) { Ok(()) } else { fail("no anyOf branch") };
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => unreachable!(),
        };
        let is = |t: &str| match t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            return fail("wrong type");
        }
    }
    let num = |k: &str| s.get(k).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(text) = v.as_str() {
        let n = text.chars().count();
        if num("minLength").is_some_and(|m| n < m) || num("maxLength").is_some_and(|m| n > m) {
            return fail("length");
        }
    }
    if let Some(items) = v.as_array() {
        if num("minItems").is_some_and(|m| items.len() < m) || num("maxItems").is_some_and(|m| items.len() > m) {
            return fail("item count");
        }
        for (i, item) in items.iter().enumerate() {
            validate(item, s.get("items").unwrap_or(&Value::Bool(true)), &format!("{path}/{i}"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let required: Vec<&str> = s.get("required").and_then(Value::as_array).map(|r| r.iter().map(|x| x.as_str().unwrap()).collect()).unwrap_or_default();
        if let Some(r) = required.iter().find(|r| !obj.contains_key(**r)) {
            return fail(&format!("missing {r}"));
        }
        let order: Vec<&String> = props.keys().filter(|k| obj.contains_key(*k)).collect();
        if obj.keys().collect::<Vec<_>>() != order {
            return fail("properties missing from the schema or out of the declared order");
        }
        for (k, val) in obj {
            validate(val, &props[k], &format!("{path}/{k}"))?;
        }
    }
    Ok(())
}

/// Generate with random allowed tokens until the grammar may end (then stop with probability
/// 1/2, or always when complete) or `max_tokens` runs out: `None`, a `finish_reason: length`
/// generation, which is not a success case. One step in three prefers tokens with a structural
/// character, so that walks reach the end of strings and lists.
fn walk(g: &Grammar, tok: &Tokenizer, trie: &TokenTrie, rng: &mut Rng, max_tokens: usize) -> Option<Vec<u8>> {
    let mut m = Matcher::new(g);
    let mut mask = TokenMask::new(0);
    let mut out = Vec::new();
    for _ in 0..max_tokens {
        m.allowed(trie, &mut mask);
        if m.can_end() && (m.is_complete() || rng.below(2) == 0) {
            if let Some(eot) = trie.end_of_text() {
                assert!(mask.contains(eot) && m.accept_token(trie, eot));
            }
            return Some(out);
        }
        assert!(mask.count() > 0, "a live state allows some token: {}", String::from_utf8_lossy(&out));
        let ids: Vec<u32> = mask.iter().filter(|&i| Some(i) != trie.end_of_text()).collect();
        let structural: Vec<u32> = ids.iter().copied().filter(|&i| tok.token_bytes(i).unwrap().iter().any(|b| b"\"]},".contains(b))).collect();
        let pool = if !structural.is_empty() && rng.below(3) == 0 { &structural } else { &ids };
        let id = pool[rng.below(pool.len())];
        assert!(m.accept_token(trie, id));
        out.extend_from_slice(tok.token_bytes(id).unwrap());
    }
    None
}

fn schemas() -> Vec<Value> {
    vec![
        json!({"type":"object","properties":{
            "name":{"type":"string","maxLength":12},
            "age":{"type":"integer"},
            "tags":{"type":"array","items":{"type":"string","minLength":1,"maxLength":5},"maxItems":3},
            "kind":{"enum":["a","b",3,null,{"k":[1]}]},
            "nick":{"type":["string","null"],"maxLength":8},
            "score":{"type":"number"}},
          "required":["name","age"],"additionalProperties":false,"title":"person"}),
        json!({"type":"array","items":{"anyOf":[{"type":"number"},{"type":"boolean"},{"const":{"x":[1,2]}}]},"minItems":1,"maxItems":4}),
        json!({"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"integer"},"c":{"type":"null"}},"required":["c"]},"d":{"type":"boolean"}},"description":"all optional"}),
        json!({"type":"string","minLength":2,"maxLength":6}),
        json!({"type":"array","items":{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":2},"maxItems":3}),
    ]
}

fn walks_validate(tok: &Tokenizer, vocab: usize, max_tokens: usize) {
    let trie = TokenTrie::new(tok, vocab);
    for (n, schema) in schemas().iter().enumerate() {
        let g = Grammar::from_json_schema(schema).unwrap();
        let mut rng = Rng::new(n as u64 + 100);
        let (walks, mut complete) = (200, 0);
        for _ in 0..walks {
            let Some(bytes) = walk(&g, tok, &trie, &mut rng, max_tokens) else {
                continue;
            };
            complete += 1;
            let text = String::from_utf8(bytes).expect("UTF-8");
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {n}: {text:?}: {e}"));
            validate(&v, schema, "").unwrap_or_else(|e| panic!("schema {n}: {text}: {e}"));
        }
        assert!(complete * 10 >= walks * 9, "schema {n}: only {complete} of {walks} walks completed");
    }
}

#[test]
fn random_world_generations_validate() {
    walks_validate(&Tokenizer::world(), 65536, 300);
}

#[test]
fn random_byte_generations_validate() {
    walks_validate(&Tokenizer::Bytes, 256, 1000);
}

#[test]
fn json_mode_generations_parse() {
    let tok = Tokenizer::world();
    let trie = TokenTrie::new(&tok, 65536);
    let g = Grammar::json();
    let mut rng = Rng::new(7);
    let mut complete = 0;
    for _ in 0..100 {
        if let Some(bytes) = walk(&g, &tok, &trie, &mut rng, 300) {
            complete += 1;
            let text = String::from_utf8(bytes).unwrap();
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
    }
    assert!(complete >= 50, "{complete}");
}

/// The property through the real generation loop (`gander::generate::generate`, the CLI's and
/// the package's path): a model with random weights (the golden `fp32-bytes` checkpoint, byte
/// vocabulary) and a World-vocabulary model (the shipped text-to-SQL model, which knows nothing
/// of JSON), hot sampling with a new seed each time, 200 generations per schema. Every
/// generation that ends by itself parses and validates; one cut by `max_tokens` ends `MaxTokens`
/// (`finish_reason: 'length'`), never as a value presented whole.
fn model_generations_validate(path: &str, max_tokens: usize, runs: usize) {
    use gander::generate::{generate, Finish, GenerateOptions};
    use gander::sampler::SamplerOptions;
    let m = gander::model::load_path(std::path::Path::new(path)).unwrap();
    for (n, schema) in schemas().iter().enumerate() {
        let grammar = Grammar::from_json_schema(schema).unwrap();
        let mut complete = 0;
        for seed in 0..runs as u64 {
            let mut state = m.new_state().unwrap();
            let logits = m.forward(&mut state, &[1, 2, 3]).unwrap();
            let sampler = SamplerOptions { temperature: 1.5, seed, ..Default::default() };
            let opts = GenerateOptions { max_tokens, sampler, grammar: Some(grammar.clone()), ..Default::default() };
            let mut text = String::new();
            let g = generate(&m, &mut state, logits, &opts, |_, t| {
                text.push_str(t);
                true
            })
            .unwrap();
            if g.finish == Finish::MaxTokens {
                continue;
            }
            assert_eq!(g.finish, Finish::EndOfText, "schema {n} seed {seed}");
            complete += 1;
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {n} seed {seed}: {text:?}: {e}"));
            validate(&v, schema, "").unwrap_or_else(|e| panic!("schema {n} seed {seed}: {text}: {e}"));
        }
        assert!(complete * 10 >= runs * 9, "schema {n}: only {complete} of {runs} generations completed");
    }
}

#[test]
fn random_weight_model_generations_validate() {
    model_generations_validate(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/fp32-bytes/model.safetensors"), 1000, 200);
}

#[test]
fn world_vocabulary_model_generations_validate() {
    model_generations_validate(concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/sql-rwkv7-int8.safetensors"), 300, 200);
}
