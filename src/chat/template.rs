//! The G1 chat template (model authors' `RWKV7-G1x-templates.txt`, BlinkDL/RWKV-LM `RWKV-v7/`):
//! each text is cleaned so that `\n\n`, the turn separator, never occurs inside a turn; turns are
//! `System: …`, `User: …`, `Assistant: …` joined by `\n\n`; the prompt ends with `Assistant:`,
//! or with an opened (or an empty, "fake") think block.

use crate::error::{Error, Result};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// `system`, `user` or `assistant` (the OpenAI names); anything else is refused by name.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(Error::BadInput(format!("chat: unknown role `{other}` (RWKV G1 models know system, user and assistant)"))),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into() }
    }
}

/// How the assistant's turn opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Think {
    /// `Assistant:`: the model answers (it may still think on its own).
    #[default]
    Off,
    /// `Assistant: <think`: the model reasons first.
    On,
    /// `Assistant: <think>\n</think`: an empty think block ("fake thinking", fast and good).
    Fake,
}

/// A message's text as the template wants it: `\r\n` -> `\n`, every run of two or more `\n` ->
/// one `\n`, then trimmed.
pub fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    let mut after_newline = false;
    for c in text.chars() {
        if c == '\n' {
            if after_newline {
                continue;
            }
            after_newline = true;
        } else {
            after_newline = false;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// The exact prompt text for `messages`, ending where the assistant's answer begins. Refused:
/// an empty list, or one that does not end with a user message.
pub fn format_chat(messages: &[Message], think: Think) -> Result<String> {
    let Some(last) = messages.last() else {
        return Err(Error::BadInput("chat: no messages; give at least one user message".into()));
    };
    if last.role != Role::User {
        return Err(Error::BadInput(format!(
            "chat: the last message is a {} message; the conversation must end with a user message",
            last.role.label().to_lowercase()
        )));
    }
    let mut turns: Vec<String> = messages.iter().map(|m| format!("{}: {}", m.role.label(), clean(&m.content))).collect();
    turns.push(
        match think {
            Think::Off => "Assistant:",
            Think::On => "Assistant: <think",
            Think::Fake => "Assistant: <think>\n</think",
        }
        .to_string(),
    );
    Ok(turns.join("\n\n"))
}
