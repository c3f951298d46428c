//! The `gander` command-line tool; see `gander --help` and the README's CLI reference.

fn main() -> std::process::ExitCode {
    gander::cli::main()
}
