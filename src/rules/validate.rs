//! `detectd validate`: load rule files and report every problem, then a summary.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{Cli, ValidateArgs};

/// Totals of a validation run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {}

/// `detectd validate`.
pub fn validate_command(_cli: &Cli, _args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd validate` is not implemented yet")
}
