//! The `gander` command-line tool; see `gander --help` and the README's CLI reference.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    gander::cli::main()
}

/// The CLI is native only (docs/design.md); a wasm build of this binary exists only because
/// `cargo test --target wasm32-wasip1` builds every binary target.
#[cfg(target_arch = "wasm32")]
fn main() -> std::process::ExitCode {
    eprintln!("error: the gander CLI is native only; use the npm package in the browser");
    std::process::ExitCode::FAILURE
}
