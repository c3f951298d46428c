//! Unit tests of the grammar pieces together: parsing errors, compilation limits, matching.
//! (Masks against brute force, JSON schemas and random walks: tests/grammar.rs.)

use super::*;

fn err(text: &str) -> String {
    match Grammar::parse_gbnf(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => {
            assert_eq!(e.code(), "BAD_INPUT");
            e.to_string()
        }
    }
}

fn matches(g: &Grammar, s: &str) -> bool {
    let mut m = Matcher::new(g);
    m.accept_bytes(s.as_bytes()) && m.can_end()
}

#[test]
fn errors_name_line_and_column() {
    assert_eq!(err("root ::= \"a\"\nx ::= [a-\n"), "grammar: line 2, column 7: unterminated character class");
    assert_eq!(err("root ::= foo"), "grammar: line 1, column 10: undefined rule `foo`");
    assert_eq!(err("a ::= \"x\""), "grammar: no `root` rule (the start rule must be called `root`)");
    assert_eq!(err("root ::= \"a\" )"), "grammar: line 1, column 14: expected an expression, `|` or the end of the line, found `)`");
    assert_eq!(err("root ::= (\"a\""), "grammar: line 1, column 14: expected `)`, found end of input");
    assert_eq!(err("root := \"a\""), "grammar: line 1, column 6: expected `::=` after rule name `root`, found `:`");
    assert_eq!(err("root ::= \"\\q\""), "grammar: line 1, column 11: unknown escape `\\q`");
    assert_eq!(err("root ::= \"a\"{3,2}"), "grammar: line 1, column 17: repetition {3,2} has its maximum below its minimum");
    assert_eq!(err("root ::= * \"a\""), "grammar: line 1, column 10: a repetition operator needs something before it, found `*`");
    assert_eq!(err("root ::= [z-a]"), "grammar: line 1, column 11: character range out of order");
    assert_eq!(err("root ::= \"\\uD800\""), "grammar: line 1, column 11: `\\uD800` is not a Unicode scalar value");
    assert!(err("root ::= \"a\"\nroot ::= \"b\"").contains("line 2, column 1: rule `root` is defined twice"));
    assert!(err("root ::= \"a\"{99999}").contains("repetition count above 10000"));
}

#[test]
fn left_recursion_and_empty_repetition_are_refused() {
    assert!(err("root ::= root \"a\" | \"a\"").contains("rule `root` can reach itself without consuming input"));
    assert!(err("root ::= x\nx ::= y \"a\"\ny ::= \"\" | x").contains("can reach itself"));
    assert!(err("root ::= (\"a\"?)*").contains("can reach itself"));
    // Right recursion is fine.
    let g = Grammar::parse_gbnf("root ::= \"a\" root | \"b\"").unwrap();
    assert!(matches(&g, "aaab") && !matches(&g, "aaa"));
}

#[test]
fn hostile_sizes_are_errors_not_allocations() {
    // Nested counts stay linear (each level repeats one reference) ...
    assert!(Grammar::parse_gbnf("root ::= ((\"a\"{10000}){10000}){10000}").is_ok());
    // ... and the total is bounded.
    assert!(err(&format!("root ::= {}", "\"ab\"{10000} ".repeat(101))).contains("too large"));
    let deep = format!("root ::= {}\"a\"{}", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&deep).contains("nesting deeper than 64"));
    let stacked = format!("root ::= \"a\"{}", "*".repeat(5000));
    assert!(err(&stacked).contains("nesting deeper than 64"));
}

#[test]
fn rules_continue_on_following_lines_until_a_new_rule() {
    let g = Grammar::parse_gbnf("# a comment\nroot ::= \"a\" # trailing\n   \"b\"\n  | \"c\"\nother ::= \"d\"\n").unwrap();
    assert!(matches(&g, "ab") && matches(&g, "c") && !matches(&g, "a") && !matches(&g, "d"));
    let g = Grammar::parse_gbnf("root ::= (\n  \"x\"\n  | \"y\"\n)+").unwrap();
    assert!(matches(&g, "xyx") && !matches(&g, ""));
}

#[test]
fn escapes_and_any_character() {
    let g = Grammar::parse_gbnf(r#"root ::= "\x41\u00e9\U0001F600\n\t\"\\" . [\]\-^]"#).unwrap();
    assert!(matches(&g, "Aé😀\n\t\"\\ß-"));
    assert!(matches(&g, "Aé😀\n\t\"\\\u{10FFFF}]"));
    assert!(!matches(&g, "Aé😀\n\t\"\\xx"));
}

#[test]
fn rejected_input_leaves_the_state_unchanged() {
    let g = Grammar::parse_gbnf("root ::= \"ab\" \"c\"*").unwrap();
    let mut m = Matcher::new(&g);
    assert!(!m.accept_bytes(b"ax"));
    assert!(m.accept_bytes(b"ab") && m.can_end() && !m.is_complete());
    assert!(m.would_accept(b"cc") && !m.would_accept(b"cd"));
    assert!(m.accept_bytes(b"c") && m.can_end());
}

#[test]
fn json_mode_compiles() {
    let g = Grammar::json();
    for ok in [r#"{"a":[1,-2.5e3,true,null,"x\u00e9\n"]}"#, "0", "[]", "{}", r#""""#] {
        assert!(matches(&g, ok), "{ok}");
    }
    for bad in [r#"{"a" :1}"#, "01", "[1,]", r#""\ud800""#, "1e999", "tru"] {
        assert!(!matches(&g, bad), "{bad}");
    }
}
