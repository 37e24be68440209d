//! The `bedrud` command; all behaviour lives in the library.

fn main() -> std::process::ExitCode {
    bedrud::cli::main()
}
