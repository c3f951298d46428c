//! Any text as a table line (`NAME(col TYPE, …)`, what `gander sql --table` and `model.sql`
//! take): the SQL grammar of it compiles or the error names the problem, never a panic; a
//! grammar that compiles starts a matcher at ` SELECT `.
#![no_main]
use gander::grammar::{sql_grammar, Matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match sql_grammar(line) {
        Ok(g) => {
            let mut m = Matcher::new(&g);
            assert!(m.accept_bytes(b" SELECT "), "{line:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("sql table: ") || msg.starts_with("grammar: "), "{msg}");
        }
    }
});
