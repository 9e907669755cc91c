//! `detectd generate`: deterministic realistic raw CloudTrail with injected detections.

use std::process::ExitCode;

use crate::cli::{Cli, GenerateArgs};

/// `detectd generate`.
pub fn generate_command(_cli: &Cli, _args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd generate` is not implemented yet")
}
