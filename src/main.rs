//! The `detectd` binary: parse the command line, run one command, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: CloudTrail normalisation is allocation-bound (36% more records/s than the system
/// allocator, see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = detectd::cli::Cli::parse();
    detectd::logging::init(cli.log_format);
    match detectd::commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
