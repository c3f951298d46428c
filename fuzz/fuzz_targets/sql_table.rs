//! Any text as a table line (`NAME(col TYPE, …)`, what `gander sql --table` and `model.sql`
//! take) and, after the first newline of the input, any text as the question whose words the
//! text literals come from: the SQL grammar compiles or the error names the problem, never a
//! panic. A grammar that compiles starts a matcher at ` SELECT `; with a question, its grammar
//! compiles whenever the question-free one does (whatever quotes or backslashes the question
//! holds), and each run of its words is a text literal it accepts.
#![no_main]
use gander::grammar::{question_spans, sql_gbnf_for, sql_grammar, sql_grammar_for, Grammar, Matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (line, question) = text.split_once('\n').unwrap_or((text, ""));
    match sql_grammar(line) {
        Ok(g) => {
            let mut m = Matcher::new(&g);
            assert!(m.accept_bytes(b" SELECT "), "{line:?}");
            let gq = sql_grammar_for(line, question).unwrap_or_else(|e| panic!("{line:?} / {question:?}: {e}"));
            assert!(Matcher::new(&gq).accept_bytes(b" SELECT "), "{line:?} / {question:?}");
            // A one-TEXT-column table to try every span as a literal.
            let t = gander::grammar::parse_table("t(a TEXT)").expect("a valid table");
            let g1 = Grammar::parse_gbnf(&sql_gbnf_for(&t, Some(question))).expect("compiles");
            for span in question_spans(question).iter().take(20) {
                let sql = format!(" SELECT a FROM t WHERE a = '{}';", span.replace('\'', "''"));
                let mut m = Matcher::new(&g1);
                assert!(m.accept_bytes(sql.as_bytes()) && m.can_end(), "{sql:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("sql table: ") || msg.starts_with("grammar: "), "{msg}");
        }
    }
});
