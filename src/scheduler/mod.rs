//! The scheduler: every enabled rule on its interval or cron, windows from actual start times,
//! gaps backfilled, state persisted, replay of any period.

use std::process::ExitCode;

use crate::cli::{Cli, RunArgs, StatusArgs};

/// `detectd run`.
pub fn run_command(_cli: &Cli, _args: &RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd run` is not implemented yet")
}

/// `detectd status`.
pub fn status_command(_cli: &Cli, _args: &StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd status` is not implemented yet")
}
