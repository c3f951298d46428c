//! `gander chat` driven through a pseudo-terminal (util-linux `script`), as a person uses it:
//! a turn streams, Ctrl+C stops the answer but not the program, `/save` writes the state, and
//! `/quit` leaves. Also the scripted mode (stdin not a terminal): cached turns.
//!
//! No timing is asserted: every wait ends because the answer is bounded by `--max-tokens` (20,000 tokens: long enough that Ctrl+C lands mid-answer on any machine).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

fn fixture() -> std::path::PathBuf {
    common::fixture_path("tiny-rwkv7-834k/model.safetensors")
}

/// Reads the child's output into a channel, so the test can wait for text without blocking on
/// a read that never ends.
fn reader(mut out: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collect output until `done(all)` holds; panics if the program exits first.
fn wait_for(rx: &mpsc::Receiver<Vec<u8>>, all: &mut Vec<u8>, what: &str, done: impl Fn(&str) -> bool) {
    while !done(&String::from_utf8_lossy(all)) {
        match rx.recv() {
            Ok(b) => all.extend(b),
            Err(_) => panic!("gander chat ended before {what}; output:\n{}", String::from_utf8_lossy(all)),
        }
    }
}

#[test]
fn terminal_chat_streams_stops_on_ctrl_c_saves_and_quits() {
    let bin = env!("CARGO_BIN_EXE_gander");
    let dir = std::env::temp_dir().join(format!("gander-chat-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("chat.state");
    // `exec`: `script` runs the command through $SHELL (or /bin/sh); a shell that stays as the
    // parent (dash does) also gets the terminal's SIGINT and exits 130 after the chat ends.
    let cmd = format!("exec {bin} chat --model {} --max-tokens 20000 --seed 3 --stats", fixture().display());
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("util-linux `script` runs the chat in a pseudo-terminal");
    let mut input = child.stdin.take().unwrap();
    let rx = reader(child.stdout.take().unwrap());
    let mut all = Vec::new();
    wait_for(&rx, &mut all, "its prompt", |s| s.contains("Ctrl+C stops an answer") && s.contains("> "));
    input.write_all(b"Tell me a long story.\n").unwrap();
    input.flush().unwrap();
    let start = all.len();
    // Streaming: text arrives before the answer ends.
    wait_for(&rx, &mut all, "streaming an answer", |s| s.len() > start + 200);
    input.write_all(b"\x03").unwrap();
    input.flush().unwrap();
    // The whole stats line (output arrives in pieces).
    wait_for(&rx, &mut all, "the turn's stats", |s| s.find("\"turn\":1").is_some_and(|at| s[at..].contains('}')));
    let text = String::from_utf8_lossy(&all).to_string();
    assert!(text.contains("[stopped]"), "Ctrl+C stops the answer:\n{text}");
    assert!(text.contains("\"finish\":\"abort\""), "the turn ended by Ctrl+C:\n{text}");
    // The program is still there: a command works.
    input.write_all(format!("/save {}\n", state.display()).as_bytes()).unwrap();
    input.flush().unwrap();
    wait_for(&rx, &mut all, "saving the state", |s| s.contains("[state saved to"));
    input.write_all(b"/quit\n").unwrap();
    input.flush().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "gander chat exits cleanly after /quit ({status}); output:\n{}", String::from_utf8_lossy(&all));
    let saved = std::fs::read(&state).unwrap();
    assert!(saved.starts_with(b"GNDRSTAT"), "a Gander state file");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn scripted_chat_feeds_only_new_turns() {
    let bin = env!("CARGO_BIN_EXE_gander");
    let run = |extra: &[&str]| {
        let mut child = Command::new(bin)
            .args(["chat", "--model", fixture().to_str().unwrap(), "--max-tokens", "16", "--temperature", "0", "--stats"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"Hello there.\nWhat is a river?\nAnd the sea?\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stats: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (String::from_utf8_lossy(&out.stdout).to_string(), stats)
    };
    let (cached_out, cached) = run(&[]);
    let (fresh_out, fresh) = run(&["--no-cache"]);
    assert_eq!(cached.len(), 3);
    assert_eq!(cached[0]["cached_tokens"], 0);
    for i in 1..3 {
        let prev = &cached[i - 1];
        let whole = prev["prompt_tokens"].as_u64().unwrap() + prev["completion_tokens"].as_u64().unwrap();
        assert_eq!(cached[i]["cached_tokens"].as_u64().unwrap(), whole, "turn {} reuses the whole conversation", i + 1);
        assert_eq!(fresh[i]["cached_tokens"], 0);
    }
    // Greedy: reading the conversation again gives the same answers as continuing the state
    // (the byte-level tokenizer cuts text the same way in both).
    assert_eq!(cached_out, fresh_out);
}
