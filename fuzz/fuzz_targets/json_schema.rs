//! Any bytes as a JSON schema: conversion to a grammar gives a grammar or an error naming the
//! problem, never a panic; a grammar that compiles starts a matcher.
#![no_main]
use gander::grammar::{Grammar, Matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match Grammar::from_json_schema(&schema) {
        Ok(g) => {
            let mut m = Matcher::new(&g);
            let _ = m.accept_bytes(b"{\"");
        }
        Err(e) => assert!(e.to_string().starts_with("json schema: "), "{e}"),
    }
});
