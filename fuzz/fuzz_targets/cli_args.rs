//! Any argument vector (NUL-separated) through the CLI's parser, including the numbers of
//! `--tokens`, `--max-tokens`, `--temperature`, `--top-p`, `--seed`, ...: parsed or refused,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args = std::iter::once("gander".into())
        .chain(data.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned().into()));
    let _ = gander::cli::check_args(args);
});
